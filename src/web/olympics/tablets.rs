//! `/olympics/tablets`: tablets register with the dispatcher, which assigns each a front-end.

use actix_web::{HttpResponse, web};

use crate::actors::Tree;
use crate::web::error::ApiError;
use crate::web::olympics::common::tablet_id_in_path;

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

/// `DELETE /olympics/tablets/{id}` → 204
pub async fn unregister(
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = tablet_id_in_path(&id)?;
    tree.router.unregister_tablet(id).await?;
    Ok(HttpResponse::NoContent().finish())
}
