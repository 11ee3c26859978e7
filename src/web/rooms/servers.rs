//! The room servers: `GET /rooms/servers`, and (admin) start or kill one.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::web::auth::Admin;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;

/// `GET /rooms/servers` → `{"servers": [...], "duplicate_replies": 0}`
pub async fn list(tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(tree.rooms.servers().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    id: u64,
}

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

/// `DELETE /admin/rooms/servers/{id}` → 204: the server crashes and is not restarted.
pub async fn kill(
    _admin: Admin,
    tree: web::Data<Tree>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    tree.rooms.kill_server(id.into_inner())?;
    Ok(HttpResponse::NoContent().finish())
}
