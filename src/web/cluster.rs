//! `GET /cluster`: every front-end of the group, alive or not, and who it thinks leads.
//! `GET /cluster/members/{id}/updates`: the reporter updates a member applied, in order.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::Tree;
use crate::web::error::ApiError;

#[utoipa::path(
    get,
    path = "/cluster",
    tag = "operations",
    responses((status = 200, description = "Every Olympic front-end", body = crate::web::openapi::schemas::ClusterMembers)),
)]
/// `GET /cluster`
pub async fn members(tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "members": tree.router.cluster().await }))
}

#[utoipa::path(
    get,
    path = "/cluster/members/{id}/updates",
    tag = "operations",
    params(("id" = u64, Path, format = "uint64", description = "A front-end's id")),
    responses(
        (status = 200, description = "The updates the member applied lately, oldest first", body = crate::web::openapi::schemas::MemberUpdates),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /cluster/members/{id}/updates`: the last updates member `id` applied, oldest first.
pub async fn updates(
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::InvalidField {
        field: "id".into(),
        message: "expected a front-end id (a number)".into(),
    })?;
    let updates = tree.router.recent_updates(id).await?;
    Ok(HttpResponse::Ok().json(json!({ "id": id, "updates": updates })))
}
