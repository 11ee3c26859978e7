//! `GET /cluster`: every front-end of the group, alive or not, and who it thinks leads.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::Tree;

/// `GET /cluster`
pub async fn members(tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "members": tree.router.cluster().await }))
}
