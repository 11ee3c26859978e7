//! `/olympics/tablets`: tablets register with the dispatcher, which assigns each a front-end.

use actix_web::{HttpResponse, web};

use crate::actors::Tree;
use crate::web::error::ApiError;
use crate::web::olympics::common::tablet_id_in_path;

#[utoipa::path(
    post,
    path = "/olympics/tablets",
    tag = "olympics",
    responses(
        (status = 201, description = "Registered: keep the id secret, send it as `X-Tablet-Id`", body = crate::olympics::TabletAssignment,
            headers(("Location" = String, description = "`/olympics/tablets/{id}`"))),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /olympics/tablets` → 201 `{"id": "...", "frontend": "frontend-2"}`
pub async fn register(tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let assignment = tree.router.register_tablet().await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/olympics/tablets/{}", assignment.id),
        ))
        .json(assignment))
}

#[utoipa::path(
    delete,
    path = "/olympics/tablets/{id}",
    tag = "olympics",
    params(("id" = uuid::Uuid, Path, description = "The tablet's id")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `DELETE /olympics/tablets/{id}` → 204
pub async fn unregister(
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = tablet_id_in_path(&id)?;
    tree.router.unregister_tablet(id).await?;
    Ok(HttpResponse::NoContent().finish())
}
