//! `/healthz` (liveness: the process answers) and `/readyz` (readiness, service by service:
//! see [`crate::actors::readiness`]).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::{Tree, readiness};
use crate::web::error::ApiError;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = crate::web::openapi::schemas::Alive)),
)]
/// `GET /healthz`
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Every service can answer", body = crate::web::openapi::schemas::Ready),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /readyz` → 200 `{"status":"ready","services":{…},"actors":[…]}`, or 503 with the
/// reasons of every service that cannot answer.
pub async fn ready(tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let readiness = readiness::check(&tree).await;
    if !readiness.ready() {
        return Err(ApiError::NotReady(readiness.reasons()));
    }
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "services": readiness,
        "actors": tree.registry.statuses(),
    })))
}
