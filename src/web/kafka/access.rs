//! Who may call `/kafka`, and what its bodies and replies are.
//!
//! Tokens: the queue's own (`queue.producer_token`, `queue.consumer_token`,
//! `queue.admin_token`), with the same roles as on `/queue`: producing takes the producers'
//! token, everything under `/kafka/consumers` the consumers', reading topic metadata any of the
//! three. A v2 client presents it as `Authorization: Bearer <token>` or, since most REST Proxy
//! clients only do HTTP Basic, as the password of `Authorization: Basic` (any user name).
//!
//! Content types, as the proxy: produce bodies are `application/vnd.kafka.json.v2+json` or
//! `application/vnd.kafka.binary.v2+json` (the embedded format), other bodies
//! `application/vnd.kafka.v2+json` (or `application/vnd.kafka+json`, `application/json`); any
//! other is 415. Replies are `application/vnd.kafka.v2+json` (records: their format's type); an
//! `Accept` that takes none of them is 406.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, AUTHORIZATION};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::queue::kafka::formats::{self, Format};
use crate::queue::kafka::{KafkaError, V2_JSON};
use crate::web::json::ValidJson;
use crate::web::queue::access::{QueueRole, tokens};

/// The token a request presents: a bearer token, or the password of HTTP Basic.
fn presented(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.to_owned());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    pair.split_once(':')
        .map(|(_, password)| password.to_owned())
}

fn check(req: &HttpRequest, role: QueueRole) -> Result<(), KafkaError> {
    if tokens(req).admits(role, presented(req).as_deref()) {
        Ok(())
    } else {
        Err(KafkaError::Unauthorized)
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl FromRequest for $name {
            type Error = KafkaError;
            type Future = Ready<Result<Self, KafkaError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(check(req, $role).map(|_| $name))
            }
        }
    };
}

role_extractor!(
    /// The producers' token.
    KafkaProducer,
    QueueRole::Producer
);
role_extractor!(
    /// The consumers' token.
    KafkaConsumer,
    QueueRole::Consumer
);
role_extractor!(
    /// Any of the queue's tokens.
    KafkaReader,
    QueueRole::Any
);

/// The request's content type, without parameters.
fn media(req: &HttpRequest) -> Option<String> {
    req.mime_type()
        .ok()
        .flatten()
        .map(|m| m.essence_str().to_ascii_lowercase())
}

fn unsupported(media: Option<&str>) -> KafkaError {
    KafkaError::Http {
        status: 415,
        message: format!(
            "HTTP 415 Unsupported Media Type: {}",
            media.unwrap_or("no Content-Type")
        ),
    }
}

fn parse_body<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Pin<Box<dyn Future<Output = Result<T, KafkaError>>>> {
    let body = ValidJson::<T>::from_request(req, payload);
    Box::pin(async move { body.await.map(|ValidJson(v)| v).map_err(KafkaError::from) })
}

/// A v2 body without embedded data (`application/vnd.kafka.v2+json`).
pub struct V2Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for V2Json<T> {
    type Error = KafkaError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, KafkaError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media = media(req);
        if !media.as_deref().is_some_and(formats::is_v2_body) {
            let e = unsupported(media.as_deref());
            return Box::pin(async move { Err(e) });
        }
        let body = parse_body::<T>(req, payload);
        Box::pin(async move { body.await.map(V2Json) })
    }
}

/// A v2 body that may be absent (no bytes, whatever the content type): `POST …/offsets`
/// without one commits everything the instance has been returned.
pub struct MaybeV2Json<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for MaybeV2Json<T> {
    type Error = KafkaError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, KafkaError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // HTTP/1.1: no Content-Length and no Transfer-Encoding is no body.
        let headers = req.headers();
        let empty = match headers.get(actix_web::http::header::CONTENT_LENGTH) {
            Some(length) => length.as_bytes() == b"0",
            None => !headers.contains_key(actix_web::http::header::TRANSFER_ENCODING),
        };
        if empty {
            return Box::pin(async { Ok(MaybeV2Json(None)) });
        }
        let body = V2Json::<T>::from_request(req, payload);
        Box::pin(async move { body.await.map(|V2Json(v)| MaybeV2Json(Some(v))) })
    }
}

/// A produce body, with the embedded format its content type names.
pub struct ProduceJson<T>(pub Format, pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ProduceJson<T> {
    type Error = KafkaError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, KafkaError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media = media(req);
        let Some(format) = media.as_deref().and_then(Format::from_content_type) else {
            let e = unsupported(media.as_deref());
            return Box::pin(async move { Err(e) });
        };
        let body = parse_body::<T>(req, payload);
        Box::pin(async move { body.await.map(|v| ProduceJson(format, v)) })
    }
}

fn not_acceptable(req: &HttpRequest) -> KafkaError {
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    KafkaError::Http {
        status: 406,
        message: format!("HTTP 406 Not Acceptable: {accept}"),
    }
}

/// The `Accept` takes v2 replies without embedded data (406 otherwise).
pub fn accepts_v2(req: &HttpRequest) -> Result<(), KafkaError> {
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    if formats::accepts_v2(accept) {
        Ok(())
    } else {
        Err(not_acceptable(req))
    }
}

/// The embedded format the `Accept` of a records request asks for: `Some` when it names one,
/// `None` when it takes any (`*/*`, `application/vnd.kafka.v2+json`); 406 when it takes none.
pub fn records_format(req: &HttpRequest) -> Result<Option<Format>, KafkaError> {
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let listed = formats::accepted(accept);
    if let Some(format) = listed.iter().find_map(|m| Format::from_content_type(m)) {
        return Ok(Some(format));
    }
    if formats::accepts_v2(accept) {
        return Ok(None);
    }
    Err(not_acceptable(req))
}

/// A v2 reply: `body` as `application/vnd.kafka.v2+json`.
pub fn v2_reply(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(V2_JSON)
        .body(serde_json::to_string(body).unwrap_or_else(|_| "{}".into()))
}

/// A partition named in a path: not a number is as unknown as a number out of range.
pub fn partition_param(raw: &str) -> Result<i32, KafkaError> {
    raw.parse().map_err(|_| KafkaError::PartitionNotFound)
}
