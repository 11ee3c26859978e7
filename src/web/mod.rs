//! The HTTP ingress. Each handler turns a request into an actor message and the reply into a
//! response; no business logic lives here. Every route is registered in [`routes`], which calls
//! each service's own `routes` ([`olympics::routes`], [`queue::routes`] and its Kafka REST
//! dialect [`kafka::routes`], [`bookstore::routes`], [`rooms::routes`]) and the pages for people
//! ([`pages`]).
//!
//! Shared by every service: [`error`] (every error mapped to HTTP in one place), [`json`] (the
//! JSON body extractor), [`auth`] (bearer tokens), [`health`], [`cluster`] and [`admin`], and
//! [`HeadAsGet`], which answers `HEAD` on every GET route. Around every request:
//! [`request_id`] (its id and span), [`metrics`] (counted by route template; `GET /metrics`)
//! and [`rate_limit`] (per client, on the anonymous endpoints).

pub mod admin;
pub mod auth;
pub mod bookstore;
pub mod cluster;
pub mod error;
pub mod health;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod olympics;
pub mod openapi;
pub mod pages;
pub mod queue;
pub mod rate_limit;
pub mod request_id;
pub mod rooms;

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody, None as NoBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::{HttpRequest, web};
use futures_util::TryFutureExt;
use futures_util::future::MapOk;

use error::{ApiError, extractor_error};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| extractor_error("query", e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| extractor_error("path", e)))
        .service(resource("/healthz").route(web::get().to(health::alive)))
        .service(resource("/readyz").route(web::get().to(health::ready)))
        .service(resource("/metrics").route(web::get().to(metrics::render)))
        .configure(openapi::routes)
        // The bookstore and the rooms are scopes (one prefix comparison for other paths), so
        // they go first: their paths are then not tried against every Olympic and queue route.
        .configure(bookstore::routes)
        .configure(rooms::routes)
        .configure(olympics::routes)
        .configure(queue::routes)
        .configure(kafka::routes)
        .configure(rooms::admin_routes)
        .configure(pages::routes)
        .service(
            resource("/cluster")
                .route(web::get().guard(pages::WantsHtml).to(pages::cluster_page))
                .route(web::get().to(cluster::members)),
        )
        .service(resource("/cluster/members/{id}/updates").route(web::get().to(cluster::updates)))
        .service(resource("/admin/frontends").route(web::post().to(admin::add_frontend)))
        .service(resource("/admin/frontends/{id}").route(web::delete().to(admin::kill_frontend)))
        .service(resource("/admin/actors").route(web::get().to(admin::list)))
        .service(resource("/admin/actors/{name}/crash").route(web::post().to(admin::crash)));
}

/// A resource that answers other methods with a JSON 405 (`HEAD` is a GET: see [`HeadAsGet`]).
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// A 405 with `Allow`: the methods of the route, as the OpenAPI document describes them
/// (`tests/api/openapi.rs` holds the document to the routes actix serves).
async fn method_not_allowed(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    use actix_web::http::header::{ALLOW, HeaderValue};
    let mut response = ApiError::MethodNotAllowed.error_response();
    let allowed = req
        .match_pattern()
        .and_then(|pattern| openapi::allowed_methods(&pattern))
        .and_then(|methods| HeaderValue::from_str(&methods).ok());
    if let Some(allowed) = allowed {
        response.headers_mut().insert(ALLOW, allowed);
    }
    response
}

/// The answer for paths no route matches.
pub async fn no_route(req: HttpRequest) -> Result<String, ApiError> {
    Err(ApiError::NoRoute(req.path().to_owned()))
}

/// Middleware for the whole app: a `HEAD` request is routed as the `GET` of the same path, so
/// every GET route answers it with the same status and headers. The HTTP codec never sends a
/// body in reply to a `HEAD`; a streamed body (Server-Sent Events) is dropped here as well, so
/// the exchange ends at once instead of keeping the connection for a stream nobody reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadAsGet;

impl<S, B> Transform<S, ServiceRequest> for HeadAsGet
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, NoBody>>;
    type Error = actix_web::Error;
    type Transform = HeadAsGetService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HeadAsGetService(service)))
    }
}

pub struct HeadAsGetService<S>(S);

type MapBody<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B, NoBody>>;

impl<S, B> Service<ServiceRequest> for HeadAsGetService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, NoBody>>;
    type Error = actix_web::Error;
    type Future = MapOk<S::Future, MapBody<B>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let map: MapBody<B> = if req.method() == Method::HEAD {
            req.head_mut().method = Method::GET;
            |res| {
                res.map_body(|_, body| match body.size() {
                    BodySize::Stream => EitherBody::right(NoBody::new()),
                    _ => EitherBody::left(body),
                })
            }
        } else {
            ServiceResponse::map_into_left_body
        };
        self.0.call(req).map_ok(map)
    }
}

/// Does a read's `If-None-Match` name `etag` (or `*`)? Weak comparison, as RFC 9110 asks for
/// GETs. Every service's conditional reads answer 304 by it. Only a GET (or a HEAD, routed as
/// one) can be answered 304: a write's reply is news to its client whatever tags it sent (a
/// reservation's reply is its id), so for any other method this is `false` and the header is
/// ignored.
pub(crate) fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return false;
    }
    req.headers()
        .get_all(actix_web::http::header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}
