//! `/bookstore/orders/{id}`: a recorded order.

use actix_web::{HttpResponse, web};

use crate::actors::Tree;
use crate::bookstore::OrderView;
use crate::web::error::ApiError;

#[utoipa::path(
    get,
    path = "/bookstore/orders/{id}",
    tag = "bookstore",
    params(("id" = i64, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = crate::bookstore::OrderView),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /bookstore/orders/{id}`
pub async fn get(tree: web::Data<Tree>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let order = tree.bookstore.order(&id).await?;
    Ok(HttpResponse::Ok().json(OrderView::new(&order, None)))
}
