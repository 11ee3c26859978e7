//! `/bookstore/replicas`: every catalog replica (alive, serving or catching up, last applied
//! write, digest of its copy) and every order server.

use actix_web::{HttpResponse, web};

use crate::actors::Tree;

#[utoipa::path(
    get,
    path = "/bookstore/replicas",
    tag = "bookstore",
    responses(
        (status = 200, description = "Every catalog replica and order server", body = crate::actors::bookstore::StoreStatus),
    ),
)]
/// `GET /bookstore/replicas`
pub async fn status(tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(tree.bookstore.status().await)
}
