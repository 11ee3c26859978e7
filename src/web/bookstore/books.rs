//! `/bookstore/books`: list, search, lookup (shoppers), buy, and the manager's restock and
//! cost change.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::bookstore::writes::{StoreChange, StoreEntry};
use crate::bookstore::{BookView, CostRequest, OrderView, RestockRequest};
use crate::web::auth::Manager;
use crate::web::bookstore::{SERVED_BY, book_response, idempotency_key, read_response};
use crate::web::error::ApiError;
use crate::web::json::ValidJson;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    topic: Option<String>,
}

/// `GET /bookstore/books` and `GET /bookstore/books?topic=…`
pub async fn list(
    req: HttpRequest,
    tree: web::Data<Tree>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let served = tree.bookstore.list(params.into_inner().topic).await?;
    let view: Vec<BookView> = served.value.iter().map(BookView::from).collect();
    read_response(&req, &served, &view)
}

/// `GET /bookstore/books/{id}`
pub async fn lookup(
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let served = tree.bookstore.lookup(&id).await?;
    Ok(book_response(&req, &served))
}

/// `POST /bookstore/books/{id}/buy` → 201 with the order (409 when out of stock).
pub async fn buy(
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let (sold, by) = tree.bookstore.buy(&id, key).await?;
    Ok(HttpResponse::Created()
        .insert_header((SERVED_BY, by))
        .insert_header(("Idempotent-Replayed", sold.replayed.to_string()))
        .json(OrderView::new(&sold.order, Some(sold.seq))))
}

/// `POST /bookstore/books/{id}/restock` `{"quantity": 10}` (the manager's).
pub async fn restock(
    _manager: Manager,
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
    ValidJson(body): ValidJson<RestockRequest>,
) -> Result<HttpResponse, ApiError> {
    let copies = body.copies()?;
    let key = idempotency_key(&req)?;
    let done = tree
        .bookstore
        .manage(&id, StoreChange::Restock { copies }, key)
        .await?;
    Ok(managed(done.seq, &done.applied))
}

/// `PATCH /bookstore/books/{id}` `{"cost": 12.5}` (the manager's).
pub async fn set_cost(
    _manager: Manager,
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
    ValidJson(body): ValidJson<CostRequest>,
) -> Result<HttpResponse, ApiError> {
    let cents = body.cents()?;
    let key = idempotency_key(&req)?;
    let done = tree
        .bookstore
        .manage(&id, StoreChange::SetCost { cents }, key)
        .await?;
    Ok(managed(done.seq, &done.applied))
}

/// A manager's write: the book after it, and its number in the log.
fn managed(seq: u64, entry: &StoreEntry) -> HttpResponse {
    let mut body = serde_json::to_value(BookView::from(entry.book())).unwrap_or_default();
    body["write_seq"] = json!(seq);
    HttpResponse::Ok().json(body)
}
