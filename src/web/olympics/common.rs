//! Header handling shared by the Olympic resources: who served a reply, and which tablet asks.

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::header;
use uuid::Uuid;

use crate::actors::olympics::messages::{Answer, CommandReply};
use crate::actors::olympics::router::Served;
use crate::olympics::MAX_IDEMPOTENCY_KEY_LEN;
use crate::web::error::ApiError;

pub const SERVED_BY: &str = "X-Served-By";
pub const CACHE: &str = "X-Cache";
pub const TABLET_ID: &str = "X-Tablet-Id";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// On a tablet's reply: the raffle positions it won since its previous reply, comma-separated.
pub const RAFFLE_WON: &str = "X-Raffle-Won";

/// The one value of header `name`, if the request carries it; twice is a client mistake
/// (which one would count?).
fn single_header<'a>(
    req: &'a HttpRequest,
    name: &'static str,
) -> Result<Option<&'a header::HeaderValue>, ApiError> {
    let mut values = req.headers().get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadHeader {
            header: name,
            message: "given more than once".into(),
        });
    }
    Ok(first)
}

/// The `X-Tablet-Id` of a request, if it carries one.
pub fn tablet_id(req: &HttpRequest) -> Result<Option<Uuid>, ApiError> {
    let Some(value) = single_header(req, TABLET_ID)? else {
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

/// The client's `Idempotency-Key` for a write, if it gave one: retries under it count once.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = single_header(req, IDEMPOTENCY_KEY)? else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::BadHeader {
            header: IDEMPOTENCY_KEY,
            message: format!("expected 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        }),
    }
}

/// The tablet id in a path (`/olympics/tablets/{id}…`).
pub fn tablet_id_in_path(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::InvalidField {
        field: "id".into(),
        message: "expected a tablet id (a UUID)".into(),
    })
}

/// A read's answer: the reply as JSON with a strong `ETag` (a hash of the body), who served it
/// (`X-Served-By`) and `X-Cache: hit|miss`; `304 Not Modified` without a body when the client's
/// `If-None-Match` already names that ETag. `Cache-Control: no-cache` lets clients keep a copy but
/// makes them revalidate, so they never show a stale value as fresh.
pub fn read_response(req: &HttpRequest, served: Served<Answer>) -> HttpResponse {
    let rendering = served.value.reply.rendering();
    let etag = format!("\"{:016x}\"", rendering.fingerprint);
    let cache = if served.value.from_cache {
        "hit"
    } else {
        "miss"
    };
    let not_modified = crate::web::if_none_match(req, &etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((SERVED_BY, served.by))
        .insert_header((CACHE, cache))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if !served.value.raffle_wins.is_empty() {
        let positions: Vec<String> = served
            .value
            .raffle_wins
            .iter()
            .map(u64::to_string)
            .collect();
        response.insert_header((RAFFLE_WON, positions.join(",")));
    }
    if not_modified {
        response.finish()
    } else {
        response
            .content_type("application/json")
            .body(rendering.json.clone())
    }
}

/// A write's 200: the new state as JSON and who served it.
pub fn write_response(served: Served<CommandReply>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((SERVED_BY, served.by))
        .json(served.value)
}
