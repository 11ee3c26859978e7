//! The room servers: `GET /rooms/servers`, and (admin) start or kill one.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::web::auth::Admin;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;

#[utoipa::path(
    get,
    path = "/rooms/servers",
    tag = "rooms",
    responses(
        (status = 200, description = "Every room server", body = crate::actors::rooms::router::ServersView),
    ),
)]
/// `GET /rooms/servers` → `{"servers": [...], "duplicate_replies": 0}`
pub async fn list(tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(tree.rooms.servers().await)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    #[schema(minimum = 1, format = "uint64")]
    id: u64,
}

#[utoipa::path(
    post,
    path = "/admin/rooms/servers",
    tag = "admin",
    request_body = NewServer,
    security(("admin" = [])),
    responses(
        (status = 201, description = "A new room server joined the group", body = crate::web::openapi::schemas::Joined),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /admin/rooms/servers` `{"id": 45000}` → 201: one more server joins the group (seed
/// 003's third argument); 409 if the id is taken.
pub async fn add(
    _admin: Admin,
    tree: web::Data<Tree>,
    ValidJson(new): ValidJson<NewServer>,
) -> Result<HttpResponse, ApiError> {
    let name = tree.rooms.add_server(new.id).await?;
    Ok(HttpResponse::Created().json(json!({ "id": new.id, "name": name })))
}

#[utoipa::path(
    delete,
    path = "/admin/rooms/servers/{id}",
    tag = "admin",
    params(("id" = u64, Path, format = "uint64", description = "The room server's id")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "The server crashed and is not restarted"),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `DELETE /admin/rooms/servers/{id}` → 204: the server crashes and is not restarted.
pub async fn kill(
    _admin: Admin,
    tree: web::Data<Tree>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    tree.rooms.kill_server(id.into_inner())?;
    Ok(HttpResponse::NoContent().finish())
}
