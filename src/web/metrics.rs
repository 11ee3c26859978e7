//! `GET /metrics` (Prometheus text), and [`RequestMetrics`], the middleware that counts every
//! request by route template and status and records its latency.
//!
//! Who may scrape: clients on the loopback interface without a token (the server listens on
//! 127.0.0.1 by default, and a Prometheus or an agent beside it is the usual scraper); from any
//! other address only with the admin token, because the names of actors, topics and groups
//! describe the deployment to whoever reads them.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use sqlx::PgPool;

use crate::actors::Tree;
use crate::actors::queue::broker::stats;
use crate::telemetry::metrics as names;
use crate::web::auth::{bearer, matches};
use crate::web::error::ApiError;

/// What the route reads at scrape time besides the actors.
#[derive(Clone)]
pub struct MetricsSources {
    pub pool: PgPool,
}

/// How long a scrape waits for each broker's figures (a busy or restarting broker is skipped).
const BROKER_WAIT: Duration = Duration::from_millis(500);

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("admin" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition (open to loopback clients; others need the admin token)", body = String, content_type = "text/plain"),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
    ),
)]
/// `GET /metrics`: refreshes the gauges computed from state, then renders everything.
pub async fn render(
    req: HttpRequest,
    tree: web::Data<Tree>,
    sources: web::Data<MetricsSources>,
) -> Result<HttpResponse, ApiError> {
    allowed(&req)?;
    let pool = &sources.pool;
    let idle = pool.num_idle() as f64;
    let size = f64::from(pool.size());
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!(names::DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    metrics::gauge!(names::DB_POOL_MAX).set(f64::from(pool.options().get_max_connections()));
    for p in stats::collect(&tree.queue.shared().brokers, BROKER_WAIT).await {
        let labels = [
            ("topic", p.topic.to_string()),
            ("partition", p.partition.to_string()),
        ];
        metrics::gauge!(names::QUEUE_DEPTH, &labels).set(p.depth as f64);
        metrics::gauge!(names::QUEUE_LAG, &labels).set(p.lag as f64);
    }
    let handle = names::handle();
    handle.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type(ContentType(
            "text/plain; version=0.0.4; charset=utf-8"
                .parse()
                .expect("a valid media type"),
        ))
        .body(handle.render()))
}

/// Loopback peers, or the admin token.
fn allowed(req: &HttpRequest) -> Result<(), ApiError> {
    if req.peer_addr().is_some_and(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    let tokens = req.app_data::<crate::web::auth::Tokens>();
    match tokens.and_then(|t| t.admin.as_ref()) {
        Some(token) if matches(bearer(req), token) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized),
        None => Err(ApiError::AdminDisabled),
    }
}

/// Counts each request (`obelix_http_requests_total`) and records its latency
/// (`obelix_http_request_duration_seconds`) by method, route template and status.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestMetrics;

impl<S, B> Transform<S, ServiceRequest> for RequestMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // The recorder is there before the first request is counted.
        let _ = names::handle();
        ready(Ok(RequestMetricsService(Rc::new(service))))
    }
}

pub struct RequestMetricsService<S>(Rc<S>);

impl<S, B> Service<ServiceRequest> for RequestMetricsService<S>
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
        let started = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let elapsed = started.elapsed().as_secs_f64();
            let request = res.request();
            let (requests, duration) = handles(request, res.status().as_u16());
            requests.increment(1);
            duration.record(elapsed);
            Ok(res)
        })
    }
}

/// Paths remembered per HTTP worker with their route's metric handles; past this many the
/// memory is dropped and rebuilt (paths are client-chosen, so it must be bounded).
const ROUTE_CACHE: usize = 1024;

/// One path's route template and the handles recorded for it so far.
struct RouteHandles {
    route: String,
    /// By method and status.
    requests: Vec<(&'static str, u16, metrics::Counter)>,
    /// By method.
    durations: Vec<(&'static str, metrics::Histogram)>,
}

thread_local! {
    /// The matched template of each path seen (`HttpRequest::match_pattern` walks the whole
    /// route table with regular expressions again: too slow for every request) and the
    /// handles of its metrics (the registry's lookup by labels is a hash and a lock).
    static ROUTES: std::cell::RefCell<std::collections::HashMap<Box<str>, RouteHandles>> =
        Default::default();
}

/// The request's counter (by method, route and status) and latency histogram.
fn handles(request: &HttpRequest, status: u16) -> (metrics::Counter, metrics::Histogram) {
    let method = method_label(request.method());
    ROUTES.with_borrow_mut(|routes| {
        if !routes.contains_key(request.path()) {
            if routes.len() >= ROUTE_CACHE {
                routes.clear();
            }
            let route = request
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            let entry = RouteHandles {
                route,
                requests: Vec::new(),
                durations: Vec::new(),
            };
            routes.insert(request.path().into(), entry);
        }
        let entry = routes.get_mut(request.path()).expect("just inserted");
        let requests = match entry
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, counter)) => counter.clone(),
            None => {
                let counter = metrics::counter!(
                    names::HTTP_REQUESTS,
                    "method" => method,
                    "route" => entry.route.clone(),
                    "status" => status_label(status),
                );
                entry.requests.push((method, status, counter.clone()));
                counter
            }
        };
        let duration = match entry.durations.iter().find(|(m, _)| *m == method) {
            Some((_, histogram)) => histogram.clone(),
            None => {
                let histogram = metrics::histogram!(
                    names::HTTP_DURATION,
                    "method" => method,
                    "route" => entry.route.clone(),
                );
                entry.durations.push((method, histogram.clone()));
                histogram
            }
        };
        (requests, duration)
    })
}

/// The method as a label from a fixed set (anything else is `other`).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as a label, without formatting the common ones.
fn status_label(status: u16) -> metrics::SharedString {
    match status {
        200 => "200".into(),
        201 => "201".into(),
        204 => "204".into(),
        304 => "304".into(),
        400 => "400".into(),
        404 => "404".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use secrecy::SecretString;

    use super::*;
    use crate::web::auth::Tokens;

    fn request(peer: &str, admin: Option<&str>, bearer: Option<&str>) -> HttpRequest {
        let tokens = Tokens {
            reporter: SecretString::from("r"),
            admin: admin.map(SecretString::from),
            bookstore_manager: SecretString::from("m"),
        };
        let mut req = TestRequest::get()
            .uri("/metrics")
            .peer_addr(peer.parse().unwrap())
            .app_data(tokens);
        if let Some(token) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        req.to_http_request()
    }

    #[test]
    fn loopback_scrapes_freely_and_others_need_the_admin_token() {
        assert!(allowed(&request("127.0.0.1:9000", None, None)).is_ok());
        assert!(allowed(&request("[::1]:9000", None, None)).is_ok());
        let remote = "10.1.2.3:9000";
        assert!(matches!(
            allowed(&request(remote, None, None)),
            Err(ApiError::AdminDisabled)
        ));
        assert!(matches!(
            allowed(&request(remote, Some("secret"), None)),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            allowed(&request(remote, Some("secret"), Some("wrong"))),
            Err(ApiError::Unauthorized)
        ));
        assert!(allowed(&request(remote, Some("secret"), Some("secret"))).is_ok());
    }
}
