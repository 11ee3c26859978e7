//! The HTTP ingress. Each handler turns a request into an actor message and the reply into a
//! response; no business logic lives here. Every route is registered in [`routes`].

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod events;
pub mod games;
pub mod health;
pub mod json;
pub mod olympics_common;
pub mod queue_consumers;
pub mod queue_producers;
pub mod queue_topics;
pub mod raffle;
pub mod tablets;
pub mod teams;

use actix_web::{HttpRequest, web};

use error::{ApiError, extractor_error};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| extractor_error("query", e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| extractor_error("path", e)))
        .service(resource("/healthz").route(web::get().to(health::alive)))
        .service(resource("/readyz").route(web::get().to(health::ready)))
        .service(resource("/olympics/games").route(web::get().to(games::list)))
        .service(
            resource("/olympics/games/{game}/score")
                .route(web::get().to(games::score))
                .route(web::put().to(games::set_score)),
        )
        .service(resource("/olympics/teams").route(web::get().to(teams::list)))
        .service(
            resource("/olympics/teams/{team}/medals")
                .route(web::get().to(teams::medals))
                .route(web::post().to(teams::award)),
        )
        .service(resource("/olympics/tablets").route(web::post().to(tablets::register)))
        .service(resource("/olympics/tablets/{id}").route(web::delete().to(tablets::unregister)))
        .service(resource("/olympics/tablets/{id}/events").route(web::get().to(events::stream)))
        .service(resource("/olympics/raffle/winners").route(web::get().to(raffle::winners)))
        .service(
            resource("/queue/topics")
                .route(web::post().to(queue_topics::create))
                .route(web::get().to(queue_topics::list)),
        )
        .service(resource("/queue/producers").route(web::post().to(queue_producers::register)))
        .service(
            resource("/queue/producers/{id}/messages")
                .route(web::post().to(queue_producers::enqueue)),
        )
        .service(resource("/queue/consumers").route(web::post().to(queue_consumers::register)))
        .service(resource("/queue/consumers/{id}").route(web::delete().to(queue_consumers::leave)))
        .service(
            resource("/queue/consumers/{id}/messages")
                .route(web::get().to(queue_consumers::dequeue)),
        )
        .service(resource("/queue/consumers/{id}/size").route(web::get().to(queue_consumers::size)))
        .service(
            resource("/queue/consumers/{id}/offsets")
                .route(web::post().to(queue_consumers::commit)),
        )
        .service(resource("/cluster").route(web::get().to(cluster::members)))
        .service(resource("/cluster/members/{id}/updates").route(web::get().to(cluster::updates)))
        .service(resource("/admin/frontends").route(web::post().to(admin::add_frontend)))
        .service(resource("/admin/frontends/{id}").route(web::delete().to(admin::kill_frontend)))
        .service(resource("/admin/actors").route(web::get().to(admin::list)))
        .service(resource("/admin/actors/{name}/crash").route(web::post().to(admin::crash)));
}

/// A resource that answers other methods with a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<String, _>(ApiError::MethodNotAllowed)
    }))
}

/// The answer for paths no route matches.
pub async fn no_route(req: HttpRequest) -> Result<String, ApiError> {
    Err(ApiError::NoRoute(req.path().to_owned()))
}
