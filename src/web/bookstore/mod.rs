//! The bookstore's routes (seed 002): one resource per file.

pub mod books;
pub mod orders;
pub mod replicas;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::actors::bookstore::Served;
use crate::bookstore::{RenderedBook, etag_of};
use crate::web::error::ApiError;
use crate::web::resource;

pub const SERVED_BY: &str = "X-Served-By";
pub const CACHE: &str = "X-Cache";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Registers the bookstore's routes, in one scope: a path outside `/bookstore` costs the
/// router one prefix comparison, and a bookstore path is matched against these routes only
/// (each route with a `{param}` is a regex, tried in order: a lookup tried after every Olympic
/// and queue route spent a fifth of its CPU in the router).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/bookstore")
            .service(
                resource("/books/{id}")
                    .route(web::get().to(books::lookup))
                    .route(web::patch().to(books::set_cost)),
            )
            .service(resource("/books").route(web::get().to(books::list)))
            .service(resource("/books/{id}/buy").route(web::post().to(books::buy)))
            .service(resource("/books/{id}/restock").route(web::post().to(books::restock)))
            .service(resource("/orders/{id}").route(web::get().to(orders::get)))
            .service(resource("/replicas").route(web::get().to(replicas::status))),
    );
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
    // Names and values made once where they can be: a cache hit is mostly this.
    const SERVED_BY_NAME: HeaderName = HeaderName::from_static("x-served-by");
    const CACHE_NAME: HeaderName = HeaderName::from_static("x-cache");
    const FRONT_END: HeaderValue = HeaderValue::from_static(crate::actors::bookstore::FRONTEND);
    const HIT: HeaderValue = HeaderValue::from_static("hit");
    const MISS: HeaderValue = HeaderValue::from_static("miss");
    const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
    let not_modified = crate::web::if_none_match(req, etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    if served.from_cache {
        response.insert_header((SERVED_BY_NAME, FRONT_END));
    } else {
        response.insert_header((SERVED_BY_NAME, served.by.clone()));
    }
    response
        .insert_header((CACHE_NAME, if served.from_cache { HIT } else { MISS }))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, NO_CACHE));
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
