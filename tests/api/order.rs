//! Totally ordered multicast of reporter updates (seed 000): every front-end applies every
//! update in the same order, even when the updates enter through different front-ends at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, eventually, spawn_app_with};

const UPDATES: usize = 60;

/// `(seq, kind, subject, entered_via)` of every logged update, in order.
async fn logged_updates(app: &TestApp) -> Vec<(i64, String, String, String)> {
    sqlx::query_as("SELECT seq, kind, subject, entered_via FROM update_log ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn applied_by(app: &TestApp, id: u64) -> Vec<(i64, String, String, String)> {
    let body: Value = app
        .get_json(&format!("/cluster/members/{id}/updates"))
        .await;
    body["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["seq"].as_i64().unwrap(),
                u["kind"].as_str().unwrap().to_owned(),
                u["subject"].as_str().unwrap().to_owned(),
                u["entered_via"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Sends UPDATES reporter updates at once (scores of two games, medals of two teams); returns
/// the front-ends they entered through.
async fn concurrent_updates(app: &TestApp) -> BTreeSet<String> {
    let writes = (0..UPDATES).map(|i| async move {
        let response = match i % 4 {
            0 => {
                app.put_score("curling", json!({"scores": {"gauls": i, "romans": 1}}))
                    .await
            }
            1 => {
                app.put_score("skating", json!({"scores": {"romans": i}}))
                    .await
            }
            2 => app.award_medal("gauls", "gold", None).await,
            _ => app.award_medal("romans", "bronze", None).await,
        };
        assert_eq!(response.status(), 200, "update {i}");
        response.headers()["X-Served-By"]
            .to_str()
            .unwrap()
            .to_owned()
    });
    futures_util::future::join_all(writes)
        .await
        .into_iter()
        .collect()
}

#[actix_web::test]
async fn concurrent_updates_through_every_frontend_are_applied_in_one_order_everywhere() {
    let app = spawn_app_with(|s| {
        s.olympics.balancing = obelix::settings::BalancingPolicy::RoundRobin;
    })
    .await;

    // 1. Updates enter through all three front-ends at once.
    let entries = concurrent_updates(&app).await;
    assert_eq!(entries.len(), 3, "entered through {entries:?}");

    // 2. The sequencer numbered them 1..=UPDATES without gaps, in commit order: per game or
    //    team, the logged versions grow with the number, and the last logged state is the
    //    current one.
    let log = logged_updates(&app).await;
    let numbers: Vec<i64> = log.iter().map(|u| u.0).collect();
    assert_eq!(numbers, (1..=UPDATES as i64).collect::<Vec<_>>());
    let versions: Vec<(String, i64)> =
        sqlx::query_as("SELECT subject, (detail->>'version')::bigint FROM update_log ORDER BY seq")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut last_version: BTreeMap<String, i64> = BTreeMap::new();
    for (subject, version) in versions {
        let previous = last_version.insert(subject.clone(), version);
        assert!(
            previous.is_none_or(|p| p < version),
            "{subject}: {previous:?} then {version}"
        );
    }
    let last_curling: Value = sqlx::query_scalar(
        "SELECT detail FROM update_log WHERE subject = 'curling' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let current: Value = app.get_json("/olympics/games/curling/score").await;
    assert_eq!(current["scores"], last_curling["scores"]);
    assert_eq!(current["version"], last_curling["version"]);

    // 3. Every front-end applied all of them, and in exactly that order.
    eventually(Duration::from_secs(5), || async {
        app.cluster_members()
            .await
            .iter()
            .all(|m| m["updates"]["last_seq"] == UPDATES)
    })
    .await;
    for id in [1, 2, 3] {
        assert_eq!(applied_by(&app, id).await, log, "front-end {id}");
    }
    let digests: BTreeSet<String> = app
        .cluster_members()
        .await
        .iter()
        .map(|m| m["updates"]["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
}

#[actix_web::test]
async fn a_frontend_started_later_catches_up_from_the_log_in_the_same_order() {
    let app = spawn_app_with(|_| {}).await;
    concurrent_updates(&app).await;

    // A front-end joins after the updates: it never received them.
    app.add_frontend(10).await;

    // The next update reaches it with a gap before it; it fetches the gap from the log.
    assert_eq!(
        app.put_score("skiing", json!({"scores": {"gauls": 1}}))
            .await
            .status(),
        200
    );
    eventually(Duration::from_secs(5), || async {
        app.cluster_members()
            .await
            .iter()
            .all(|m| m["updates"]["last_seq"] == UPDATES + 1)
    })
    .await;
    let log = logged_updates(&app).await;
    assert_eq!(log.len(), UPDATES + 1);
    assert_eq!(applied_by(&app, 10).await, log);
    assert_eq!(applied_by(&app, 1).await, log);
}

#[actix_web::test]
async fn a_bad_or_unknown_member_id_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let bad = error_body(app.get("/cluster/members/abc/updates").await, 422).await;
    assert!(
        bad["error"].as_str().unwrap().contains("front-end id"),
        "{bad}"
    );
    error_body(app.get("/cluster/members/99/updates").await, 404).await;
}

#[actix_web::test]
async fn a_frontend_started_later_catches_up_on_joining_without_waiting_for_an_update() {
    let app = spawn_app_with(|_| {}).await;
    concurrent_updates(&app).await;

    // It joins after the updates, and no update follows: it loads them from the log itself.
    app.add_frontend(10).await;
    eventually(Duration::from_secs(5), || async {
        let members = app.cluster_members().await;
        let digests: BTreeSet<&str> = members
            .iter()
            .map(|m| m["updates"]["digest"].as_str().unwrap_or("none"))
            .collect();
        members.len() == 4
            && members.iter().all(|m| m["updates"]["count"] == UPDATES)
            && digests.len() == 1
    })
    .await;
    assert_eq!(applied_by(&app, 10).await, logged_updates(&app).await);
}
