use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{REPORTER_TOKEN, TestApp, error_body, spawn_app, spawn_app_with};

#[actix_web::test]
async fn unknown_games_and_teams_are_404() {
    let app = spawn_app().await;
    error_body(app.get("/olympics/games/chariot-racing/score").await, 404).await;
    error_body(app.get("/olympics/teams/britons/medals").await, 404).await;
    error_body(
        app.put_score("chariot-racing", json!({ "scores": { "gauls": 1 } }))
            .await,
        404,
    )
    .await;
    error_body(app.award_medal("britons", "gold", None).await, 404).await;
    let body = error_body(
        app.put_score("curling", json!({ "scores": { "britons": 1 } }))
            .await,
        404,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("britons"));
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in ["{\"scores\":", "not json", "{\"scores\":{}} trailing"] {
        let response = app
            .request(Method::PUT, "/olympics/games/curling/score")
            .bearer_auth(REPORTER_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        error_body(response, 400).await;
    }
}

#[actix_web::test]
async fn values_of_the_wrong_shape_are_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "scores": { "gauls": -3 } }), "scores.gauls"),
        (json!({ "scores": { "gauls": "three" } }), "scores.gauls"),
        (
            json!({ "scores": { "gauls": 99999999999u64 } }),
            "scores.gauls",
        ),
        (json!({ "scores": {} }), "scores"),
        (json!({}), "scores"),
        (json!({ "scores": { "gauls": 1 }, "extra": true }), "extra"),
    ];
    for (body, field) in cases {
        let error = error_body(app.put_score("curling", body.clone()).await, 422).await;
        assert_eq!(error["field"], field, "for {body}");
    }
    let error = error_body(app.award_medal("gauls", "platinum", None).await, 422).await;
    assert_eq!(error["field"], "medal");
    // Nothing was written by any of them.
    let score: serde_json::Value = app.get_json("/olympics/games/curling/score").await;
    assert!(
        score["scores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["points"] == 0)
    );
}

#[actix_web::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let huge = format!(
        "{{\"scores\":{{\"gauls\":1}},\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let response = app
        .request(Method::PUT, "/olympics/games/curling/score")
        .bearer_auth(REPORTER_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    error_body(response, 413).await;
}

#[actix_web::test]
async fn bad_headers_are_400_naming_the_header() {
    let app = spawn_app().await;
    let error = error_body(
        app.get_as_tablet("/olympics/games", "not-a-uuid").await,
        400,
    )
    .await;
    assert_eq!(error["field"], "X-Tablet-Id");

    let long_key = "k".repeat(500);
    let error = error_body(app.award_medal("gauls", "gold", Some(&long_key)).await, 400).await;
    assert_eq!(error["field"], "Idempotency-Key");
}

#[actix_web::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    error_body(app.get("/olympics/nothing-here").await, 404).await;
    error_body(
        app.request(Method::DELETE, "/olympics/games")
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
}

#[actix_web::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let events = format!(
        "/olympics/tablets/{}/events",
        tablet["id"].as_str().unwrap()
    );
    // One GET route of each kind: lists, one item, a missing item, the operators' routes, the
    // queue, and a stream (whose HEAD must end at once).
    for path in [
        "/olympics/games",
        "/olympics/teams/gauls/medals",
        "/olympics/games/chariot-racing/score",
        "/healthz",
        "/readyz",
        "/cluster",
        "/queue/topics",
        events.as_str(),
    ] {
        let get = app.get(path).await;
        let get_status = get.status();
        let get_type = get.headers().get("content-type").cloned();
        drop(get);
        let head = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app.request(Method::HEAD, path).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("HEAD {path} did not answer"))
        .unwrap();
        assert_eq!(head.status(), get_status, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get_type.as_ref(),
            "HEAD {path}"
        );
        let body = head.bytes().await.unwrap();
        assert!(body.is_empty(), "HEAD {path} has no body");
    }
    // Routes without a GET still say so.
    let head = app
        .request(Method::HEAD, "/olympics/tablets")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
}

/// Opens `count` connections that announce a 60,000-byte body and send one byte of it.
async fn slow_bodies(app: &TestApp, count: usize, chunked: bool) -> Vec<tokio::net::TcpStream> {
    slow_bodies_to(app, "/queue/producers", count, chunked).await
}

/// The same to `path`: chunked (one chunk of one byte) or with a Content-Length.
async fn slow_bodies_to(
    app: &TestApp,
    path: &str,
    count: usize,
    chunked: bool,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let address = app.address.trim_start_matches("http://").to_owned();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
    } else {
        "Content-Length: 60000\r\n\r\n{"
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: obelix\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\n{framing}",
        obelix::queue::tokens::DEVELOPMENT_PRODUCER
    );
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        streams.push(stream);
    }
    streams
}

/// Waits until the server has answered and closed every one of `streams`; returns the status
/// lines it sent.
async fn closed_by_the_server(
    streams: Vec<tokio::net::TcpStream>,
    within: Duration,
) -> Vec<String> {
    use tokio::io::AsyncReadExt;
    let reads = streams.into_iter().map(|mut stream| async move {
        let mut reply = Vec::new();
        match tokio::time::timeout(within, stream.read_to_end(&mut reply)).await {
            Ok(_) => String::from_utf8_lossy(&reply)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
            Err(_) => "still open".to_owned(),
        }
    });
    futures_util::future::join_all(reads).await
}

#[actix_web::test]
async fn slow_bodies_are_cut_off_while_others_are_served() {
    let app = spawn_app_with(|s| {
        s.server.body_timeout_ms = 1_000;
        s.server.max_connections = 100;
    })
    .await;
    // 1. Fewer slow connections than the cap: a normal request is served at once.
    let slow = slow_bodies(&app, 60, false).await;
    let chunked = slow_bodies(&app, 20, true).await;
    let started = Instant::now();
    assert_eq!(app.get("/olympics/games").await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // 2. After the body timeout, each gets a 408 and its connection is closed.
    let mut answers = closed_by_the_server(slow, Duration::from_secs(5)).await;
    answers.extend(closed_by_the_server(chunked, Duration::from_secs(5)).await);
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 408")),
        "{answers:?}"
    );
    // 3. More slow connections than the cap: the server holds no more than the cap (the rest
    //    wait in the backlog, using no descriptor of ours), cuts them off in turn, and a normal
    //    request waits for about one body timeout.
    let slow = slow_bodies(&app, 150, false).await;
    let started = Instant::now();
    assert_eq!(app.get("/olympics/games").await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    let answers = closed_by_the_server(slow, Duration::from_secs(8)).await;
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 408")),
        "{answers:?}"
    );
}

#[actix_web::test]
async fn a_slow_body_that_its_route_never_reads_does_not_keep_the_connection() {
    let app = spawn_app_with(|s| s.server.body_timeout_ms = 60_000).await;
    // Registering a tablet takes no body: the answer comes at once, and the connection goes
    // with it rather than waiting for the rest of a body sent a byte at a time.
    for chunked in [false, true] {
        let slow = slow_bodies_to(&app, "/olympics/tablets", 10, chunked).await;
        let answers = closed_by_the_server(slow, Duration::from_secs(5)).await;
        assert!(
            answers.iter().all(|a| a.starts_with("HTTP/1.1 201")),
            "chunked {chunked}: {answers:?}"
        );
    }
}
