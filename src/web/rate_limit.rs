//! Per-client rate limits on the anonymous endpoints (`[rate_limit]`): tablet registration
//! (`POST /olympics/tablets`), the Olympic reads (`GET /olympics/…`) and queue client
//! registration (`POST /queue/producers`, `POST /queue/consumers`). Each client address has a
//! GCRA bucket (the `governor` crate: `per_second` sustained, `burst` at once); a request past
//! it is answered 429 with `Retry-After` (whole seconds, rounded up) and the JSON error body.
//!
//! The client is its TCP peer address, not a forwarded-for header a client could write itself.
//! Loopback peers are exempt unless `exempt_loopback = false`. Memory: an address is forgotten
//! once its bucket is full again (`retain_recent`, every [`MAINTENANCE_EVERY`] requests); past
//! `max_clients` addresses every limited request is refused until enough are forgotten.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use futures_util::future::{Either, LocalBoxFuture};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::settings::RateLimitSettings;
use crate::web::error::ApiError;

/// Requests between two passes that forget the clients whose buckets are full again.
const MAINTENANCE_EVERY: u64 = 1024;

/// Does the limit apply to this request?
pub fn limited(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD => path.starts_with("/olympics/"),
        Method::POST => matches!(
            path,
            "/olympics/tablets" | "/queue/producers" | "/queue/consumers"
        ),
        _ => false,
    }
}

/// The limiter, shared by every HTTP worker.
#[derive(Clone)]
pub struct RateLimit(Option<Arc<Limiter>>);

struct Limiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    exempt_loopback: bool,
    max_clients: usize,
    /// Seconds for a full bucket to refill: the wait told while the limiter is saturated.
    refill_secs: u64,
    checks: AtomicU64,
    saturated: AtomicBool,
}

impl RateLimit {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let (Some(per_second), Some(burst)) = (
            NonZeroU32::new(settings.per_second),
            NonZeroU32::new(settings.burst),
        ) else {
            return Self(None);
        };
        if !settings.enabled {
            return Self(None);
        }
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self(Some(Arc::new(Limiter {
            buckets: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            exempt_loopback: settings.exempt_loopback,
            max_clients: settings.max_clients,
            refill_secs: u64::from(burst.get()).div_ceil(u64::from(per_second.get())),
            checks: AtomicU64::new(0),
            saturated: AtomicBool::new(false),
        })))
    }
}

impl Limiter {
    /// `Err(wait)` when `client` must wait before its next request.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(MAINTENANCE_EVERY)
        {
            self.buckets.retain_recent();
            let over = self.buckets.len() > self.max_clients;
            if over != self.saturated.swap(over, Ordering::Relaxed) {
                tracing::warn!(
                    clients = self.buckets.len(),
                    "rate limiter {} its bound of {} client addresses",
                    if over { "is over" } else { "is back under" },
                    self.max_clients
                );
            }
        }
        if self.saturated.load(Ordering::Relaxed) {
            return Err(Duration::from_secs(self.refill_secs));
        }
        self.buckets
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RateLimitService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            limiter: self.0.clone(),
        }))
    }
}

pub struct RateLimitService<S> {
    service: Rc<S>,
    limiter: Option<Arc<Limiter>>,
}

type Answer<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for RateLimitService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Either<LocalBoxFuture<'static, Answer<B>>, Ready<Answer<B>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let refused = self.limiter.as_ref().and_then(|limiter| {
            let client = req.peer_addr()?.ip();
            if (limiter.exempt_loopback && client.is_loopback())
                || !limited(req.method(), req.path())
            {
                return None;
            }
            limiter.check(client).err()
        });
        match refused {
            None => {
                let fut = self.service.call(req);
                Either::Left(Box::pin(async move {
                    fut.await.map(ServiceResponse::map_into_left_body)
                }))
            }
            Some(wait) => {
                metrics::counter!(crate::telemetry::metrics::RATE_LIMITED).increment(1);
                let error = ApiError::TooManyRequests {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                };
                let response = actix_web::ResponseError::error_response(&error);
                Either::Right(ready(Ok(req.into_response(response).map_into_right_body())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anonymous_endpoints_are_limited_and_the_rest_is_not() {
        assert!(limited(&Method::GET, "/olympics/games/curling/score"));
        assert!(limited(&Method::HEAD, "/olympics/teams"));
        assert!(limited(&Method::POST, "/olympics/tablets"));
        assert!(limited(&Method::POST, "/queue/consumers"));
        assert!(limited(&Method::POST, "/queue/producers"));
        assert!(!limited(&Method::PUT, "/olympics/games/curling/score"));
        assert!(!limited(&Method::POST, "/olympics/teams/gauls/medals"));
        assert!(!limited(&Method::POST, "/queue/producers/1/messages"));
        assert!(!limited(&Method::GET, "/metrics"));
    }

    #[test]
    fn a_client_past_its_burst_waits_and_others_do_not() {
        let limit = RateLimit::new(&RateLimitSettings {
            enabled: true,
            per_second: 1,
            burst: 2,
            exempt_loopback: false,
            max_clients: 10,
        });
        let limiter = limit.0.expect("enabled");
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let wait = limiter.check(a).expect_err("past the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check(b).is_ok());
    }
}
