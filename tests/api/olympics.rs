use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{REPORTER_TOKEN, error_body, eventually, spawn_app, spawn_app_with};

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    // Ready once every service can answer: the room servers' first election and the catalog
    // replicas' first resync take a moment after the start.
    eventually(Duration::from_secs(10), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    let actors: Vec<&str> = ready["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [
            "bookstore-catalog-1",
            "bookstore-catalog-2",
            "bookstore-frontend",
            "bookstore-order-1",
            "bookstore-order-2",
            "bookstore-write-log",
            "database",
            "dispatcher",
            "frontend-1",
            "frontend-2",
            "frontend-3",
            "olympics-update-log",
            "publisher",
            "queue-broker-1",
            "queue-broker-2",
            "queue-broker-3",
            "queue-kafka-consumers",
            "queue-read-manager-1",
            "queue-read-manager-2",
            "queue-write-manager",
            "room-server-1",
            "room-server-2",
            "room-server-3",
            "rooms-write-log"
        ]
    );
}

#[actix_web::test]
async fn games_and_teams_are_listed() {
    let app = spawn_app().await;
    let response = app.get("/olympics/games").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["x-served-by"]
            .to_str()
            .unwrap()
            .starts_with("frontend-")
    );
    let games: Vec<Value> = response.json().await.unwrap();
    let slugs: Vec<&str> = games.iter().map(|g| g["slug"].as_str().unwrap()).collect();
    assert!(
        slugs.contains(&"curling") && slugs.contains(&"skating"),
        "{slugs:?}"
    );

    let teams: Vec<Value> = app.get_json("/olympics/teams").await;
    let slugs: Vec<&str> = teams.iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["gauls", "romans"]);
}

#[actix_web::test]
async fn a_score_update_is_read_back_and_persisted() {
    let app = spawn_app().await;
    let before: Value = app.get_json("/olympics/games/curling/score").await;

    let response = app
        .put_score("curling", json!({ "scores": { "gauls": 7, "romans": 2 } }))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-served-by"));
    let written: Value = response.json().await.unwrap();
    assert_eq!(
        written["scores"],
        json!([{ "team": "gauls", "points": 7 }, { "team": "romans", "points": 2 }])
    );

    let read: Value = app.get_json("/olympics/games/curling/score").await;
    assert_eq!(read, written);
    assert!(read["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());

    let points: i64 =
        sqlx::query_scalar("SELECT points FROM scores WHERE game = 'curling' AND team = 'gauls'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(points, 7);
}

#[actix_web::test]
async fn a_partial_score_update_leaves_other_teams_alone() {
    let app = spawn_app().await;
    app.put_score("skating", json!({ "scores": { "gauls": 4, "romans": 5 } }))
        .await;
    let written: Value = app
        .put_score("skating", json!({ "scores": { "romans": 6 } }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        written["scores"],
        json!([{ "team": "gauls", "points": 4 }, { "team": "romans", "points": 6 }])
    );
}

#[actix_web::test]
async fn medals_are_counted_per_kind() {
    let app = spawn_app().await;
    for medal in ["gold", "gold", "bronze"] {
        assert_eq!(app.award_medal("romans", medal, None).await.status(), 200);
    }
    let tally: Value = app.get_json("/olympics/teams/romans/medals").await;
    assert_eq!(
        (
            tally["gold"].as_i64(),
            tally["silver"].as_i64(),
            tally["bronze"].as_i64()
        ),
        (Some(2), Some(0), Some(1))
    );
    assert!(tally["updated_at"].is_string());

    let awards: i64 = sqlx::query_scalar("SELECT count(*) FROM medal_awards WHERE team = 'romans'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(awards, 3);
}

#[actix_web::test]
async fn a_retried_award_with_the_same_idempotency_key_counts_once() {
    let app = spawn_app().await;
    let first: Value = app
        .award_medal("gauls", "silver", Some("award-42"))
        .await
        .json()
        .await
        .unwrap();
    let retry = app.award_medal("gauls", "silver", Some("award-42")).await;
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first["silver"], 1);
    assert_eq!(retry["silver"], 1, "the retry did not count again");

    // Concurrent retries of one key still count once.
    let attempts = (0..8).map(|_| app.award_medal("gauls", "gold", Some("award-43")));
    for response in futures_util::future::join_all(attempts).await {
        assert_eq!(response.status(), 200);
    }
    let tally: Value = app.get_json("/olympics/teams/gauls/medals").await;
    assert_eq!(tally["gold"], 1);
}

#[actix_web::test]
async fn an_idempotency_key_reused_for_another_award_is_refused() {
    let app = spawn_app().await;
    app.award_medal("gauls", "silver", Some("award-7")).await;
    let body = error_body(app.award_medal("gauls", "gold", Some("award-7")).await, 422).await;
    assert!(body["error"].as_str().unwrap().contains("award-7"));
    let tally: Value = app.get_json("/olympics/teams/gauls/medals").await;
    assert_eq!(
        (tally["gold"].as_i64(), tally["silver"].as_i64()),
        (Some(0), Some(1))
    );
}

#[actix_web::test]
async fn writes_need_the_reporter_token() {
    let app = spawn_app().await;
    let no_token = app
        .request(reqwest::Method::PUT, "/olympics/games/curling/score")
        .json(&json!({ "scores": { "gauls": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    error_body(no_token, 401).await;

    let wrong_token = app
        .request(reqwest::Method::POST, "/olympics/teams/gauls/medals")
        .bearer_auth(format!("{REPORTER_TOKEN}x"))
        .json(&json!({ "medal": "gold" }))
        .send()
        .await
        .unwrap();
    error_body(wrong_token, 401).await;

    // Authentication comes before validation: a stranger learns nothing about the body.
    let stranger = app
        .request(reqwest::Method::POST, "/olympics/teams/gauls/medals")
        .json(&json!({ "medal": "platinum" }))
        .send()
        .await
        .unwrap();
    error_body(stranger, 401).await;

    let tally: Value = app.get_json("/olympics/teams/gauls/medals").await;
    assert_eq!(tally["gold"], 0);
}

/// `(version, rows in update_log)` of curling.
async fn curling_writes(app: &crate::helpers::TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT version FROM games WHERE slug = 'curling'), \
                (SELECT count(*) FROM update_log WHERE subject = 'curling')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[actix_web::test]
async fn a_write_slower_than_the_request_timeout_is_applied_once() {
    let app = spawn_app_with(|s| s.olympics.request_timeout_ms = 1_000).await;

    // 1. Someone else holds curling's row for 3.5 s, longer than three request timeouts.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("SELECT version FROM games WHERE slug = 'curling' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let write = app
        .request(reqwest::Method::PUT, "/olympics/games/curling/score")
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", "slow-write-1")
        .json(&json!({ "scores": { "gauls": 5 } }))
        .send();
    let release = async {
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        blocker.commit().await.unwrap();
    };
    let (answer, ()) = futures_util::future::join(write, release).await;
    let status = answer.unwrap().status();
    assert!(
        status == 200 || status == 503,
        "a slow write is answered 200 or 503 (retry), not {status}"
    );

    // 2. Once every statement the write started has finished, it was applied once.
    eventually(Duration::from_secs(10), || async {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state <> 'idle'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        busy == 0
    })
    .await;
    assert_eq!(
        curling_writes(&app).await,
        (1, 1),
        "(version, logged updates)"
    );

    // 3. The reporter retries with its key: the recorded outcome, nothing applied again.
    let retry = app
        .request(reqwest::Method::PUT, "/olympics/games/curling/score")
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", "slow-write-1")
        .json(&json!({ "scores": { "gauls": 5 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let board: Value = retry.json().await.unwrap();
    assert_eq!(board["version"], 1);
    assert_eq!(curling_writes(&app).await, (1, 1));
}

#[actix_web::test]
async fn a_score_update_retried_with_its_key_counts_once_and_a_reused_key_is_refused() {
    let app = spawn_app().await;
    let put = |key: &'static str, points: u32| {
        app.request(reqwest::Method::PUT, "/olympics/games/skating/score")
            .bearer_auth(REPORTER_TOKEN)
            .header("Idempotency-Key", key)
            .json(&json!({ "scores": { "romans": points } }))
            .send()
    };
    let first: Value = put("score-1", 4).await.unwrap().json().await.unwrap();
    let again = put("score-1", 4).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the retry is answered what the first was");
    let version: i64 = sqlx::query_scalar("SELECT version FROM games WHERE slug = 'skating'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(version, 1);
    // The same key for another update is a client mistake.
    let body = error_body(put("score-1", 9).await.unwrap(), 422).await;
    assert!(
        body["error"].as_str().unwrap().contains("score-1"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_repeated_idempotency_key_or_tablet_id_header_is_400() {
    let app = spawn_app().await;
    let twice = app
        .request(reqwest::Method::PUT, "/olympics/games/curling/score")
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&json!({ "scores": { "gauls": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_body(twice, 400).await["field"], "Idempotency-Key");
    let twice = app
        .request(reqwest::Method::POST, "/olympics/teams/gauls/medals")
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "a")
        .json(&json!({ "medal": "gold" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_body(twice, 400).await["field"], "Idempotency-Key");
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let twice = app
        .request(reqwest::Method::GET, "/olympics/games/curling/score")
        .header("X-Tablet-Id", id)
        .header("X-Tablet-Id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(error_body(twice, 400).await["field"], "X-Tablet-Id");
    assert_eq!(curling_writes(&app).await, (0, 0), "nothing was written");
}

#[actix_web::test]
async fn nul_in_olympic_paths_queries_and_bodies_is_404_or_422() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let requests = [
        app.request(reqwest::Method::GET, "/olympics/games/%00/score"),
        app.request(reqwest::Method::GET, "/olympics/teams/%00/medals"),
        app.request(reqwest::Method::GET, "/olympics/games/cur%00ling/score")
            .header("X-Tablet-Id", id),
        app.request(reqwest::Method::PUT, "/olympics/games/%00/score")
            .bearer_auth(REPORTER_TOKEN)
            .json(&json!({ "scores": { "gauls": 1 } })),
        app.request(reqwest::Method::POST, "/olympics/teams/%00/medals")
            .bearer_auth(REPORTER_TOKEN)
            .json(&json!({ "medal": "gold" })),
        app.request(reqwest::Method::PUT, "/olympics/games/curling/score")
            .bearer_auth(REPORTER_TOKEN)
            .json(&json!({ "scores": { "\u{0}": 1 } })),
        app.request(reqwest::Method::PUT, "/olympics/games/curling/score")
            .bearer_auth(REPORTER_TOKEN)
            .json(&json!({ "scores": { "gauls\u{0}": 1, "romans": 2 } })),
        app.request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{id}/events?games=%00"),
        ),
        app.request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{id}/events?teams=gauls,%00"),
        ),
        app.request(reqwest::Method::GET, "/olympics/raffle/winners?tablet=%00"),
    ];
    for request in requests {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let response = app.client.execute(request).await.unwrap();
        let status = response.status().as_u16();
        assert!(status == 404 || status == 422, "{what}: {status}");
        let body = error_body(response, status).await;
        let text = body.to_string();
        assert!(
            !text.contains("database") && !text.contains("0x00") && !text.contains("storage"),
            "{what}: {text}"
        );
    }
    assert_eq!(curling_writes(&app).await, (0, 0), "nothing was written");
}
