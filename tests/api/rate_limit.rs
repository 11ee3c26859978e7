//! Per-client rate limits on the anonymous endpoints: 429 with `Retry-After` and a JSON error
//! body past the budget; other endpoints and loopback clients (by default) are not limited.

use std::time::Duration;

use obelix::settings::RateLimitSettings;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{error_body, eventually, spawn_app, spawn_app_with};
use crate::queue::{CONSUMER, post_as};

#[actix_web::test]
async fn a_client_past_its_budget_gets_429_with_retry_after_on_the_anonymous_endpoints() {
    // 1. A budget of 3 at once, 1 a second, applied to 127.0.0.1 too.
    let app = spawn_app_with(|s| {
        s.rate_limit = RateLimitSettings {
            enabled: true,
            per_second: 1,
            burst: 3,
            exempt_loopback: false,
            max_clients: 100,
        }
    })
    .await;

    // 2. Three registrations pass; the fourth is refused, with when to come back.
    for _ in 0..3 {
        app.register_tablet().await;
    }
    let refused = app
        .request(Method::POST, "/olympics/tablets")
        .send()
        .await
        .unwrap();
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    let body = error_body(refused, 429).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );

    // 3. The same client's reads and queue registrations share its budget.
    error_body(app.get("/olympics/games").await, 429).await;
    let register = post_as(&app, CONSUMER, "/queue/consumers", json!({"topics": ["x"]})).await;
    error_body(register, 429).await;

    // 4. Authenticated writes, health and metrics are not limited.
    let write = app
        .put_score("curling", json!({"scores": {"gauls": 1}}))
        .await;
    assert_eq!(write.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.metrics().await;
    assert!(
        crate::metrics::sample(&metrics, "obelix_rate_limited_total", &[]).unwrap_or(0.0) >= 3.0
    );

    // 5. Once the bucket refills, the client is served again.
    eventually(Duration::from_secs(5), || async {
        app.get("/olympics/games").await.status() == 200
    })
    .await;
}

#[actix_web::test]
async fn loopback_clients_are_not_limited_by_default() {
    let app = spawn_app().await;
    // Past the default burst (200) from 127.0.0.1: every one is served.
    let statuses = app.statuses(250, Method::GET, "/olympics/games").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
