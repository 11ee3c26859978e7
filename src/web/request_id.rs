//! Request ids: every request gets one, taken from the client's `X-Request-Id` when it is a
//! plausible id (1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 - _ . :`), else a new UUID. The
//! reply carries it back in `X-Request-Id`, and the request runs inside a `request` span
//! holding it, which the actors that handle the request's messages enter
//! (`actors::traced`): every event logged on the request's behalf names it.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept; longer ones are replaced (they would bloat every log line).
pub const MAX_LEN: usize = 128;

/// The client's id if it is one we keep as it is.
pub fn accepted(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let ok = !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(id)
}

/// The request's id: the client's one (given once, and acceptable), else a new UUID.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    let mut given = req.headers().get_all(X_REQUEST_ID);
    match (given.next(), given.next()) {
        (Some(value), None) if accepted(value).is_some() => value.clone(),
        _ => HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .expect("a UUID is a valid header value"),
    }
}

/// The middleware: the id, the span, and the header on the reply (error replies too).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestId;

impl<S, B> Transform<S, ServiceRequest> for RequestId
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdService(service)))
    }
}

pub struct RequestIdService<S>(S);

impl<S, B> Service<ServiceRequest> for RequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = request_id(&req);
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            method = %req.method(),
            path = req.path(),
        );
        let fut = span.in_scope(|| self.0.call(req));
        Box::pin(
            async move {
                let mut res = fut.await?;
                res.headers_mut().insert(X_REQUEST_ID, id);
                Ok(res)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_ids_are_kept_and_others_are_not() {
        let ok = |s: &str| accepted(&HeaderValue::from_str(s).unwrap()).is_some();
        assert!(ok("3f2c9a1e-7b0d-4c8e-9f61-2a5d8e4b7c10"));
        assert!(ok("trace:abc.123_x"));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"d"));
        assert!(!ok("<script>"));
        assert!(!ok(&"a".repeat(MAX_LEN + 1)));
        assert!(ok(&"a".repeat(MAX_LEN)));
        assert!(accepted(&HeaderValue::from_bytes(b"\xff\xfe").unwrap()).is_none());
    }
}
