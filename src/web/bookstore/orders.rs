//! `/bookstore/orders/{id}`: a recorded order.

use actix_web::{HttpResponse, web};

use crate::actors::Tree;
use crate::bookstore::OrderView;
use crate::web::error::ApiError;

/// `GET /bookstore/orders/{id}`
pub async fn get(tree: web::Data<Tree>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let order = tree.bookstore.order(&id).await?;
    Ok(HttpResponse::Ok().json(OrderView::new(&order, None)))
}
