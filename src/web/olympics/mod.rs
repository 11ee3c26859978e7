//! The Olympic results service's routes (seeds 000, 001): one resource per file.

pub mod common;
pub mod events;
pub mod games;
pub mod raffle;
pub mod tablets;
pub mod teams;

use actix_web::web;

use crate::web::resource;

/// Registers the Olympic results service's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/olympics/games").route(web::get().to(games::list)))
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
        .service(resource("/olympics/raffle/winners").route(web::get().to(raffle::winners)));
}
