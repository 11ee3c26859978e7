//! Room reservation's routes (seed 003): one resource per file, and the reply headers they
//! share (`X-Served-By`, `ETag` with `If-None-Match`).

pub mod catalog;
pub mod reservations;
pub mod servers;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::rooms::{RoomsError, request_id};
use crate::web::resource;

pub const SERVED_BY: &str = "X-Served-By";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Registers the rooms' routes, in one scope (see `web::bookstore::routes` for why).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/rooms")
            .service(resource("/rooms").route(web::get().to(catalog::rooms)))
            .service(resource("/timeslots").route(web::get().to(catalog::timeslots)))
            .service(resource("/days").route(web::get().to(catalog::days)))
            .service(
                resource("/rooms/{room}/reservations")
                    .route(web::get().to(reservations::check))
                    .route(web::post().to(reservations::reserve)),
            )
            .service(resource("/reservations/{id}").route(web::delete().to(reservations::cancel)))
            .service(resource("/servers").route(web::get().to(servers::list))),
    );
}

/// Registers the rooms' admin routes (under `/admin`, with the others).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/rooms/servers").route(web::post().to(servers::add)))
        .service(resource("/admin/rooms/servers/{id}").route(web::delete().to(servers::kill)));
}

/// The request's `Idempotency-Key`, checked, if it has one.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, RoomsError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| RoomsError::Invalid {
        field: "Idempotency-Key",
        message: "printable ASCII only".into(),
    })?;
    request_id(value).map(Some)
}

/// A JSON reply with who served it and a strong `ETag` (a hash of the body); for a read, `304
/// Not Modified` without a body when `If-None-Match` names it (a write is never a 304). `Cache-Control: no-cache` lets
/// clients keep a copy but makes them revalidate.
pub fn tagged(
    req: &HttpRequest,
    status: actix_web::http::StatusCode,
    by: &str,
    body: &impl Serialize,
) -> HttpResponse {
    let json = serde_json::to_vec(body).expect("replies serialize");
    let etag = format!("\"{:016x}\"", fnv(&json));
    let not_modified = status.is_success() && crate::web::if_none_match(req, &etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::build(status)
    };
    response
        .insert_header((SERVED_BY, by.to_owned()))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if not_modified {
        response.finish()
    } else {
        response.content_type("application/json").body(json)
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
