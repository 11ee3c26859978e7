//! `GET /metrics`: Prometheus text with requests by route template and status, latencies,
//! caches, elections, restarts, group commits, queue depth and lag, the database pool.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, eventually, spawn_app};

/// The sum of the samples of `name` whose labels include every pair of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some(split) => split,
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.trim().parse::<f64>().expect("a number");
        }
    }
    found
}

impl TestApp {
    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        response.text().await.unwrap()
    }
}

#[actix_web::test]
async fn metrics_name_routes_by_template_and_report_what_the_actors_do() {
    // 1. Traffic on every service: tablet reads (a miss, then a hit), a reporter write, a
    //    queue topic of our own with three messages of which a consumer reads one, two
    //    bookstore lookups, and a crashed actor.
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let tablet = tablet["id"].as_str().unwrap();
    for _ in 0..2 {
        let read = app
            .get_as_tablet("/olympics/games/curling/score", tablet)
            .await;
        assert_eq!(read.status(), 200);
    }
    let write = app
        .put_score("curling", json!({"scores": {"gauls": 3}}))
        .await;
    assert_eq!(write.status(), 200);
    let topic = format!("metrics{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let queue = app.queue();
    queue.create_topic(&topic, 1).await.unwrap();
    let producer = queue.create_producer(&[&topic]).await.unwrap();
    let words = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
    producer.enqueue_batch(&topic, &words).await.unwrap();
    let consumer = queue.create_consumer(&[&topic]).await.unwrap();
    assert!(consumer.dequeue(&topic).await.unwrap().is_some());
    for _ in 0..2 {
        assert_eq!(app.get("/bookstore/books/1").await.status(), 200);
    }
    assert_eq!(app.crash("dispatcher", "mode=panic").await.status(), 202);
    app.await_restart("dispatcher", 1).await;

    // 2. Requests by the route's template, never by the raw path.
    let text = app.metrics().await;
    let score_route = [
        ("method", "GET"),
        ("route", "/olympics/games/{game}/score"),
        ("status", "200"),
    ];
    let reads = sample(&text, "obelix_http_requests_total", &score_route).unwrap_or(0.0);
    assert!(reads >= 2.0, "{reads} reads counted");
    assert!(
        !text
            .lines()
            .any(|l| l.contains("route=\"/olympics/games/curling")),
        "a raw path became a label"
    );
    let latency = [("route", "/olympics/games/{game}/score"), ("le", "+Inf")];
    let timed = sample(
        &text,
        "obelix_http_request_duration_seconds_bucket",
        &latency,
    );
    assert!(timed.unwrap_or(0.0) >= 2.0, "latency histogram: {timed:?}");
    let unmatched = app.get("/no/such/path").await;
    assert_eq!(unmatched.status(), 404);

    // 3. What the actors did.
    let text = app.metrics().await;
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let value = sample(&text, name, labels).unwrap_or(0.0);
        assert!(value >= 1.0, "{name} {labels:?} = {value}");
    };
    at_least_one(
        "obelix_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    at_least_one(
        "obelix_cache_lookups_total",
        &[("service", "olympics"), ("result", "hit")],
    );
    at_least_one(
        "obelix_cache_lookups_total",
        &[("service", "olympics"), ("result", "miss")],
    );
    at_least_one(
        "obelix_cache_lookups_total",
        &[("service", "bookstore"), ("result", "hit")],
    );
    for group in ["frontends", "queue-managers", "room-servers"] {
        at_least_one("obelix_elections_total", &[("group", group)]);
        at_least_one("obelix_leader_changes_total", &[("group", group)]);
    }
    at_least_one("obelix_actor_restarts_total", &[("actor", "dispatcher")]);
    at_least_one(
        "obelix_group_commit_size_count",
        &[("log", "olympics-update-log")],
    );
    at_least_one("obelix_group_commit_size_count", &[]);
    at_least_one("obelix_db_pool_max_connections", &[]);
    assert!(sample(&text, "obelix_db_pool_connections", &[("state", "in_use")]).is_some());
    assert!(sample(&text, "obelix_db_pool_connections", &[("state", "idle")]).is_some());

    // 4. Queue depth and the consumer's lag, computed from the broker when scraped.
    let partition = [("topic", topic.as_str()), ("partition", "0")];
    eventually(Duration::from_secs(10), || async {
        let text = app.metrics().await;
        sample(&text, "obelix_queue_depth_messages", &partition) == Some(3.0)
            && sample(&text, "obelix_queue_consumer_lag_messages", &partition) == Some(2.0)
    })
    .await;
}

#[actix_web::test]
async fn metrics_are_open_to_loopback_clients_without_a_token() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    // The tests' client is on 127.0.0.1: no token needed (others need the admin token; see the
    // unit tests of web::metrics).
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("# TYPE obelix_http_requests_total counter"),
        "{text}"
    );
}
