//! Header handling shared by the Olympic resources: who served a reply, and which tablet asks.

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use serde::Serialize;
use uuid::Uuid;

use crate::actors::router::Served;
use crate::web::error::ApiError;

pub const SERVED_BY: &str = "X-Served-By";
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

/// A 200 with `body` as JSON and the serving front-end in `X-Served-By`.
pub fn served_json<T, B: Serialize>(served: &Served<T>, body: &B) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((SERVED_BY, served.by.as_str()))
        .json(body)
}
