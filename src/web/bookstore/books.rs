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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only the books of this topic (1 to 200 bytes, not blank).
    #[param(max_length = 200, pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    topic: Option<String>,
}

#[utoipa::path(
    get,
    path = "/bookstore/books",
    tag = "bookstore",
    params(ListParams, ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The books (of the topic)", body = Vec<crate::bookstore::BookView>, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("X-Cache" = String, description = "`hit` or `miss` in that front end's cache"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/bookstore/books/{id}",
    tag = "bookstore",
    params(("id" = i64, Path, description = "The book's id"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),),
    responses(
        (status = 200, description = "The book", body = crate::bookstore::BookView, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The server that answered"),
            ("X-Cache" = String, description = "`hit` or `miss` in that front end's cache"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(("ETag" = String), ("X-Served-By" = String))),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /bookstore/books/{id}`
pub async fn lookup(
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let served = tree.bookstore.lookup(&id).await?;
    Ok(book_response(&req, &served))
}

#[utoipa::path(
    post,
    path = "/bookstore/books/{id}/buy",
    tag = "bookstore",
    params(("id" = i64, Path, description = "The book's id"), ("Idempotency-Key" = Option<String>, Header, max_length = 200, pattern = "^[ -~]*[!-~][ -~]*$", description = "1 to 200 visible ASCII characters: a retry under the same key is answered as the first time"),),
    responses(
        (status = 201, description = "Bought: the order, with its number in the write log", body = crate::bookstore::OrderView, headers(
            ("X-Served-By" = String, description = "The order server that took it"),
            ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request under the same `Idempotency-Key`"),
        )),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/bookstore/books/{id}/restock",
    tag = "bookstore",
    params(("id" = i64, Path, description = "The book's id"), ("Idempotency-Key" = Option<String>, Header, max_length = 200, pattern = "^[ -~]*[!-~][ -~]*$", description = "1 to 200 visible ASCII characters: a retry under the same key is answered as the first time"),),
    request_body = crate::bookstore::RestockRequest,
    security(("bookstore_manager" = [])),
    responses(
        (status = 200, description = "Restocked: the book after it", body = crate::web::openapi::schemas::ManagedBook),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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

#[utoipa::path(
    patch,
    path = "/bookstore/books/{id}",
    tag = "bookstore",
    params(("id" = i64, Path, description = "The book's id"), ("Idempotency-Key" = Option<String>, Header, max_length = 200, pattern = "^[ -~]*[!-~][ -~]*$", description = "1 to 200 visible ASCII characters: a retry under the same key is answered as the first time"),),
    request_body = crate::bookstore::CostRequest,
    security(("bookstore_manager" = [])),
    responses(
        (status = 200, description = "The book after its new cost", body = crate::web::openapi::schemas::ManagedBook),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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
