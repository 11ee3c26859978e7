//! The bookstore's routes (seed 002): one resource per file.

pub mod books;
pub mod orders;
pub mod replicas;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::actors::bookstore::Served;
use crate::bookstore::{RenderedBook, etag_of};
use crate::web::error::ApiError;
use crate::web::resource;

pub const SERVED_BY: &str = "X-Served-By";
pub const CACHE: &str = "X-Cache";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Registers the bookstore's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/bookstore/books").route(web::get().to(books::list)))
        .service(
            resource("/bookstore/books/{id}")
                .route(web::get().to(books::lookup))
                .route(web::patch().to(books::set_cost)),
        )
        .service(resource("/bookstore/books/{id}/buy").route(web::post().to(books::buy)))
        .service(resource("/bookstore/books/{id}/restock").route(web::post().to(books::restock)))
        .service(resource("/bookstore/orders/{id}").route(web::get().to(orders::get)))
        .service(resource("/bookstore/replicas").route(web::get().to(replicas::status)));
}

/// A read's answer: JSON with a strong `ETag` (a hash of the body), `X-Served-By`,
/// `X-Cache: hit|miss`, or `304` when `If-None-Match` names that ETag.
pub fn read_response<T, V: Serialize>(
    req: &HttpRequest,
    served: &Served<T>,
    view: &V,
) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_vec(view).map_err(|e| ApiError::NotReady(vec![e.to_string()]))?;
    let etag = etag_of(&body);
    Ok(respond(req, served, body.into(), &etag))
}

/// A lookup's answer, rendered once (in the cache, for hits).
pub fn book_response(
    req: &HttpRequest,
    served: &Served<std::sync::Arc<RenderedBook>>,
) -> HttpResponse {
    respond(req, served, served.value.json.clone(), &served.value.etag)
}

fn respond<T>(
    req: &HttpRequest,
    served: &Served<T>,
    body: bytes::Bytes,
    etag: &str,
) -> HttpResponse {
    let not_modified = crate::web::if_none_match(req, etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((SERVED_BY, served.by.clone()))
        .insert_header((CACHE, if served.from_cache { "hit" } else { "miss" }))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if not_modified {
        response.finish()
    } else {
        response.content_type("application/json").body(body)
    }
}

/// The `Idempotency-Key` of a request: 1 to 200 visible characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| ApiError::BadHeader {
            header: IDEMPOTENCY_KEY,
            message: "expected 1 to 200 visible ASCII characters".into(),
        })
}
