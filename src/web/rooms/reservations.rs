//! A room's reservations: check, reserve, cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::Tree;
use crate::actors::rooms::server::Query;
use crate::rooms::ReservationRequest;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;
use crate::web::rooms::{idempotency_key, tagged};

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
