//! The queue's Kafka REST Proxy v2 routes, under `/kafka` (issue 16): one resource per file,
//! who may call them and in which content types in [`access`]. Errors are v2's
//! (`{"error_code":…,"message":…}`, mapped with every other error in `web::error`), including
//! those of paths and methods `/kafka` does not serve.

pub mod access;
pub mod consumers;
pub mod doc;
pub mod produce;
pub mod records;
pub mod topics;

use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};

use crate::queue::kafka::KafkaError;

/// A `/kafka` resource: other methods get v2's 405, with the route's methods in `Allow`.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = KafkaError::Http {
        status: 405,
        message: "HTTP 405 Method Not Allowed".into(),
    }
    .error_response();
    let allowed = req
        .match_pattern()
        .and_then(|pattern| crate::web::openapi::allowed_methods(&pattern))
        .and_then(|methods| HeaderValue::from_str(&methods).ok());
    if let Some(allowed) = allowed {
        response.headers_mut().insert(ALLOW, allowed);
    }
    response
}

/// Registers the `/kafka` routes (full paths, as every service's: the OpenAPI route test reads
/// them from actix's resource map), then v2's 404 for any other path under `/kafka/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const INSTANCE: &str = "/kafka/consumers/{group}/instances/{instance}";
    cfg.service(resource("/kafka/topics").route(web::get().to(topics::list)))
        .service(
            resource("/kafka/topics/{topic}")
                .route(web::get().to(topics::get))
                .route(web::post().to(produce::to_topic)),
        )
        .service(
            resource("/kafka/topics/{topic}/partitions").route(web::get().to(topics::partitions)),
        )
        .service(
            resource("/kafka/topics/{topic}/partitions/{partition}")
                .route(web::get().to(topics::partition))
                .route(web::post().to(produce::to_partition)),
        )
        .service(
            resource("/kafka/topics/{topic}/partitions/{partition}/offsets")
                .route(web::get().to(topics::offsets)),
        )
        .service(resource("/kafka/consumers/{group}").route(web::post().to(consumers::create)))
        .service(resource(INSTANCE).route(web::delete().to(consumers::delete)))
        .service(
            resource(&format!("{INSTANCE}/subscription"))
                .route(web::post().to(consumers::subscribe))
                .route(web::get().to(consumers::subscription))
                .route(web::delete().to(consumers::unsubscribe)),
        )
        .service(
            resource(&format!("{INSTANCE}/assignments"))
                .route(web::get().to(consumers::assignments)),
        )
        .service(resource(&format!("{INSTANCE}/records")).route(web::get().to(records::records)))
        .service(
            resource(&format!("{INSTANCE}/offsets"))
                .route(web::post().to(records::commit))
                .route(web::get().to(records::committed)),
        )
        .service(resource(&format!("{INSTANCE}/positions")).route(web::post().to(records::seek)))
        .service(
            resource(&format!("{INSTANCE}/positions/beginning"))
                .route(web::post().to(records::seek_beginning)),
        )
        .service(
            resource(&format!("{INSTANCE}/positions/end")).route(web::post().to(records::seek_end)),
        )
        .service(web::resource("/kafka/{tail:.*}").default_service(web::to(
            |req: HttpRequest| async move {
                Err::<String, _>(KafkaError::Http {
                    status: 404,
                    message: format!("HTTP 404 Not Found: no such resource: {}", req.path()),
                })
            },
        )));
}
