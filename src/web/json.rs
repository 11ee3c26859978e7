//! Request bodies. `ValidJson<T>`: a JSON body extractor whose errors say what is wrong and
//! where. Syntax errors are 400, well-formed JSON of the wrong shape is 422 naming the field
//! (e.g. `scores.gauls`), a body over the configured limit is 413, and one that does not arrive
//! within the body timeout is 408 (actix-web's own timeout covers the request head only).
//!
//! [`BodyGuard`] makes sure a body that was not read to its end (too late, too large, or never
//! read by its route) costs its connection: see there.

use std::cell::RefCell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::Stream;
use serde::de::DeserializeOwned;

use crate::web::error::ApiError;

/// The body limit, registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a body may take to arrive once its head has, registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .copied()
            .unwrap_or(BodyLimit(64 * 1024))
            .0;
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Box::pin(async move { Err(ApiError::PayloadTooLarge { limit }) });
        }
        let timeout = req
            .app_data::<BodyTimeout>()
            .copied()
            .unwrap_or(BodyTimeout(Duration::from_secs(10)))
            .0;
        let body = web::Payload::from_request(req, payload).into_inner();
        Box::pin(async move {
            let mut payload = body.map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            let bytes = tokio::time::timeout(timeout, read_limited(&mut payload, limit))
                .await
                .map_err(|_| ApiError::BodyTimeout { timeout })??;
            parse(&bytes).map(ValidJson)
        })
    }
}

async fn read_limited(payload: &mut web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
            other => ApiError::MalformedJson(other.to_string()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// App middleware that keeps each request body's stream alive until the response to it has
/// been sent. actix-http closes a connection whose body is unread when its response goes, but a
/// *chunked* body whose stream is already gone is drained instead, for as long as the client
/// keeps sending: a byte a second would hold the connection for ever. Holding the stream (here,
/// in the response body) makes every unfinished body, chunked or not, end its connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyGuard;

type SharedPayload = Rc<RefCell<Payload>>;

impl<S, B> Transform<S, ServiceRequest> for BodyGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<HeldBody<B>>;
    type Error = actix_web::Error;
    type Transform = BodyGuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyGuardService(service)))
    }
}

pub struct BodyGuardService<S>(S);

impl<S, B> Service<ServiceRequest> for BodyGuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<HeldBody<B>>;
    type Error = actix_web::Error;
    type Future = BodyGuardFuture<S::Future>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        // Requests without a body (most GETs) pass untouched.
        let held = match req.take_payload() {
            Payload::None => None,
            payload => {
                let shared = Rc::new(RefCell::new(payload));
                req.set_payload(Payload::Stream {
                    payload: Box::pin(SharedStream(shared.clone())),
                });
                Some(shared)
            }
        };
        BodyGuardFuture {
            call: self.0.call(req),
            held,
        }
    }
}

/// The route's view of a body the guard holds too.
struct SharedStream(SharedPayload);

impl Stream for SharedStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

pin_project_lite::pin_project! {
    pub struct BodyGuardFuture<F> {
        #[pin]
        call: F,
        held: Option<SharedPayload>,
    }
}

impl<F, B> Future for BodyGuardFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<ServiceResponse<HeldBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.call.poll(cx))?;
        let held = this.held.take();
        Poll::Ready(Ok(
            response.map_body(|_, body| HeldBody { body, _held: held })
        ))
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's body stream until it has been sent.
    pub struct HeldBody<B> {
        #[pin]
        body: B,
        _held: Option<SharedPayload>,
    }
}

impl<B: MessageBody> MessageBody for HeldBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// Parses `bytes` as `T`, classifying the error. Well-formed bodies take the fast path; only a
/// failed parse is redone with path tracking, to name the field to blame.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::InvalidField {
                field: field_name(&path, &inner.to_string()),
                message: strip_position(&inner.to_string()),
            },
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    // Trailing characters after the value make the body malformed.
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// The path of the bad value, or for a missing or unknown field at the top, that field's name.
fn field_name(path: &str, message: &str) -> String {
    if path != "." {
        return path.to_owned();
    }
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body")
        .to_owned()
}

/// serde_json appends " at line 1 column 20"; the field name says more to a client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::olympics::{MedalAward, ScoreUpdate};

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_negative_score_names_the_team() {
        let err = parse::<ScoreUpdate>(br#"{"scores":{"gauls":-3}}"#).unwrap_err();
        assert_eq!(field_of(err), "scores.gauls");
    }

    #[test]
    fn an_unknown_medal_names_the_medal_field() {
        let err = parse::<MedalAward>(br#"{"medal":"platinum"}"#).unwrap_err();
        assert_eq!(field_of(err), "medal");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse::<MedalAward>(br#"{}"#).unwrap_err();
        assert_eq!(field_of(err), "medal");
    }

    #[test]
    fn broken_json_is_malformed() {
        assert!(matches!(
            parse::<MedalAward>(br#"{"medal":"#),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<MedalAward>(br#"{"medal":"gold"} trailing"#),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
