//! The HTTP ingress. Each handler turns a request into an actor message and the reply into a
//! response; no business logic lives here. Every route is registered in [`routes`], which calls
//! each service's own `routes` ([`olympics::routes`], [`queue::routes`], [`rooms::routes`]).
//!
//! Shared by every service: [`error`] (every error mapped to HTTP in one place), [`json`] (the
//! JSON body extractor), [`auth`] (bearer tokens), [`health`], [`cluster`] and [`admin`].

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod health;
pub mod json;
pub mod olympics;
pub mod queue;
pub mod rooms;

use actix_web::{HttpRequest, web};

use error::{ApiError, extractor_error};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| extractor_error("query", e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| extractor_error("path", e)))
        .service(resource("/healthz").route(web::get().to(health::alive)))
        .service(resource("/readyz").route(web::get().to(health::ready)))
        .configure(olympics::routes)
        .configure(queue::routes)
        .configure(rooms::routes)
        .service(resource("/cluster").route(web::get().to(cluster::members)))
        .service(resource("/cluster/members/{id}/updates").route(web::get().to(cluster::updates)))
        .service(resource("/admin/frontends").route(web::post().to(admin::add_frontend)))
        .service(resource("/admin/frontends/{id}").route(web::delete().to(admin::kill_frontend)))
        .service(resource("/admin/actors").route(web::get().to(admin::list)))
        .service(resource("/admin/actors/{name}/crash").route(web::post().to(admin::crash)));
}

/// A resource that answers other methods with a JSON 405.
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<String, _>(ApiError::MethodNotAllowed)
    }))
}

/// The answer for paths no route matches.
pub async fn no_route(req: HttpRequest) -> Result<String, ApiError> {
    Err(ApiError::NoRoute(req.path().to_owned()))
}
