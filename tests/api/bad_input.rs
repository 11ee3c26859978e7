use reqwest::Method;
use serde_json::json;

use crate::helpers::{REPORTER_TOKEN, error_body, spawn_app};

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
