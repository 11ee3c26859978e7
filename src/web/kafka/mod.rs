//! The queue's Kafka REST Proxy v2 routes, under `/kafka` (issue 16): one resource per file,
//! who may call them and in which content types in [`access`]. Errors are v2's
//! (`{"error_code":…,"message":…}`, mapped with every other error in `web::error`), including
//! those of paths and methods `/kafka` does not serve.

pub mod access;
pub mod consumers;
pub mod produce;
pub mod records;
pub mod topics;

use actix_web::{Resource, web};

use crate::queue::kafka::KafkaError;

/// A `/kafka` resource: other methods get v2's 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<String, _>(KafkaError::Http {
            status: 405,
            message: "HTTP 405 Method Not Allowed".into(),
        })
    }))
}

/// Registers the `/kafka` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const INSTANCE: &str = "/consumers/{group}/instances/{instance}";
    cfg.service(
        web::scope("/kafka")
            .service(resource("/topics").route(web::get().to(topics::list)))
            .service(
                resource("/topics/{topic}")
                    .route(web::get().to(topics::get))
                    .route(web::post().to(produce::to_topic)),
            )
            .service(resource("/topics/{topic}/partitions").route(web::get().to(topics::partitions)))
            .service(
                resource("/topics/{topic}/partitions/{partition}")
                    .route(web::get().to(topics::partition))
                    .route(web::post().to(produce::to_partition)),
            )
            .service(
                resource("/topics/{topic}/partitions/{partition}/offsets")
                    .route(web::get().to(topics::offsets)),
            )
            .service(resource("/consumers/{group}").route(web::post().to(consumers::create)))
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
                resource(&format!("{INSTANCE}/positions/end"))
                    .route(web::post().to(records::seek_end)),
            )
            .default_service(web::to(|| async {
                Err::<String, _>(KafkaError::Http {
                    status: 404,
                    message: "HTTP 404 Not Found".into(),
                })
            })),
    );
}
