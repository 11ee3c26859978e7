//! A room's reservations: check, reserve, cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::Tree;
use crate::actors::rooms::server::Query;
use crate::rooms::ReservationRequest;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;
use crate::web::rooms::{idempotency_key, tagged};

#[utoipa::path(
    get,
    path = "/rooms/rooms/{room}/reservations",
    tag = "rooms",
    params(("room" = String, Path, description = "A room's name"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The room's reservations", body = crate::web::openapi::schemas::RoomReservations, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /rooms/rooms/{room}/reservations` → `{"room": ..., "reservations": [...]}`; 404 for
/// an unknown room.
pub async fn check(
    req: HttpRequest,
    tree: web::Data<Tree>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let served = tree.rooms.read(Query::Check(room.into_inner())).await?;
    Ok(tagged(&req, StatusCode::OK, &served.by, &served.value))
}

#[utoipa::path(
    post,
    path = "/rooms/rooms/{room}/reservations",
    tag = "rooms",
    params(("room" = String, Path, description = "A room's name"), ("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = "^[ -~]*[!-~][ -~]*$", description = "1 to 200 visible ASCII characters: a retry under the same key is answered as the first time"),),
    request_body = crate::rooms::ReservationRequest,
    responses(
        (status = 201, description = "Reserved", body = crate::rooms::Reservation, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /rooms/rooms/{room}/reservations` `{"timeslot": "8:30-9:30", "day": "Friday"}` → 201
/// with the reservation; 409 if taken, 404 unknown room, 422 unknown slot or day.
pub async fn reserve(
    req: HttpRequest,
    tree: web::Data<Tree>,
    room: web::Path<String>,
    ValidJson(body): ValidJson<ReservationRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let served = tree.rooms.reserve(&room, body, key).await?;
    Ok(tagged(&req, StatusCode::CREATED, &served.by, &served.value))
}

#[utoipa::path(
    delete,
    path = "/rooms/reservations/{id}",
    tag = "rooms",
    params(("id" = i64, Path, description = "The reservation's id"), ("Idempotency-Key" = Option<String>, Header, max_length = 128, pattern = "^[ -~]*[!-~][ -~]*$", description = "1 to 200 visible ASCII characters: a retry under the same key is answered as the first time"),),
    responses(
        (status = 200, description = "Cancelled: the reservation it was", body = crate::rooms::Reservation, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `DELETE /rooms/reservations/{id}` → 200 with the cancelled reservation; 404 if none.
pub async fn cancel(
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let served = tree.rooms.cancel(id.into_inner(), key).await?;
    Ok(tagged(&req, StatusCode::OK, &served.by, &served.value))
}
