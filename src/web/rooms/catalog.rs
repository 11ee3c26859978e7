//! `GET /rooms/rooms`, `/rooms/timeslots`, `/rooms/days`: the catalogue, from the leader.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::Tree;
use crate::actors::rooms::server::Query;
use crate::web::error::ApiError;
use crate::web::rooms::tagged;

async fn read(
    req: HttpRequest,
    tree: web::Data<Tree>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let served = tree.rooms.read(query).await?;
    Ok(tagged(&req, StatusCode::OK, &served.by, &served.value))
}

#[utoipa::path(
    get,
    path = "/rooms/rooms",
    tag = "rooms",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The rooms, in the seed's order", body = crate::web::openapi::schemas::RoomList, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /rooms/rooms` → `{"rooms": [...]}`
pub async fn rooms(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Rooms).await
}

#[utoipa::path(
    get,
    path = "/rooms/timeslots",
    tag = "rooms",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The timeslots, in the seed's order", body = crate::web::openapi::schemas::TimeslotList, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /rooms/timeslots` → `{"timeslots": [...]}`
pub async fn timeslots(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Timeslots).await
}

#[utoipa::path(
    get,
    path = "/rooms/days",
    tag = "rooms",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The days, in the seed's order", body = crate::web::openapi::schemas::DayList, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /rooms/days` → `{"days": [...]}`
pub async fn days(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Days).await
}
