//! The log queue's routes (seed 004): one resource per file; who may call them in [`access`].

pub mod access;
pub mod consumers;
pub mod producers;
pub mod topics;

use actix_web::web;

use crate::web::resource;

/// Registers the log queue's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/queue/topics")
            .route(web::post().to(topics::create))
            .route(web::get().to(topics::list)),
    )
    .service(resource("/queue/producers").route(web::post().to(producers::register)))
    .service(resource("/queue/producers/{id}/messages").route(web::post().to(producers::enqueue)))
    .service(resource("/queue/consumers").route(web::post().to(consumers::register)))
    .service(resource("/queue/consumers/{id}").route(web::delete().to(consumers::leave)))
    .service(resource("/queue/consumers/{id}/messages").route(web::get().to(consumers::dequeue)))
    .service(resource("/queue/consumers/{id}/size").route(web::get().to(consumers::size)))
    .service(resource("/queue/consumers/{id}/offsets").route(web::post().to(consumers::commit)));
}
