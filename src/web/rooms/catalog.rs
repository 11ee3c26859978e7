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

/// `GET /rooms/rooms` → `{"rooms": [...]}`
pub async fn rooms(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Rooms).await
}

/// `GET /rooms/timeslots` → `{"timeslots": [...]}`
pub async fn timeslots(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Timeslots).await
}

/// `GET /rooms/days` → `{"days": [...]}`
pub async fn days(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    read(req, tree, Query::Days).await
}
