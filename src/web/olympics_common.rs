//! Header handling shared by the Olympic resources: who served a reply, and which tablet asks.

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use uuid::Uuid;

use crate::actors::messages::{Answer, CommandReply};
use crate::actors::router::Served;
use crate::web::error::ApiError;

pub const SERVED_BY: &str = "X-Served-By";
pub const CACHE: &str = "X-Cache";
pub const TABLET_ID: &str = "X-Tablet-Id";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The `X-Tablet-Id` of a request, if it carries one.
pub fn tablet_id(req: &HttpRequest) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = req.headers().get(TABLET_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadHeader {
            header: TABLET_ID,
            message: "expected a tablet id (a UUID) from POST /olympics/tablets".into(),
        })
}

/// A read's 200: the reply as JSON, who served it (`X-Served-By`), and `X-Cache: hit|miss`.
pub fn read_response(served: Served<Answer>) -> HttpResponse {
    let cache = if served.value.from_cache {
        "hit"
    } else {
        "miss"
    };
    HttpResponse::Ok()
        .insert_header((SERVED_BY, served.by))
        .insert_header((CACHE, cache))
        .json(served.value.reply)
}

/// A write's 200: the new state as JSON and who served it.
pub fn write_response(served: Served<CommandReply>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((SERVED_BY, served.by))
        .json(served.value)
}
