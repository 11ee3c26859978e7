//! Reporter updates that share one group of the write log (one transaction, applied together):
//! each one answered and logged as if applied alone in number order, a failing one failing
//! alone, retries of one key counted once, and a group whose multicast is lost in a crash
//! caught up from the log by every front-end.
//!
//! To put updates in one group for sure, the log is stopped for a moment: what arrives meanwhile
//! waits in its mailbox, and its next life commits all of it in its first group.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use obelix::actors::olympics::frontend_order::UpdateOrder;
use obelix::actors::olympics::messages::SequencedUpdate;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{REPORTER_TOKEN, TestApp, eventually, spawn_app};

const LOG: &str = "olympics-update-log";

/// Stops the update log for `ms` and waits until it is down: updates sent now share a group.
async fn hold_the_log(app: &TestApp, ms: u64) {
    let response = app
        .crash(LOG, &format!("mode=stop&stay_down_ms={ms}"))
        .await;
    assert_eq!(response.status(), 202);
    eventually(Duration::from_secs(5), || async {
        app.actor_status(LOG).await["alive"] == false
    })
    .await;
}

async fn put_keyed(app: &TestApp, game: &str, key: &str, scores: Value) -> Response {
    app.request(Method::PUT, &format!("/olympics/games/{game}/score"))
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", key)
        .json(&json!({ "scores": scores }))
        .send()
        .await
        .expect("PUT score")
}

/// `update_log` as psql shows it: seq, idempotency key, detail, and the group's commit time.
async fn log(app: &TestApp) -> Vec<(i64, String, Value, String)> {
    sqlx::query_as(
        "SELECT seq, idempotency_key, detail, committed_at::text FROM update_log ORDER BY seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn assert_gap_free(numbers: impl IntoIterator<Item = i64>) {
    for (i, seq) in numbers.into_iter().enumerate() {
        assert_eq!(seq, i as i64 + 1, "numbers 1..n without gaps");
    }
}

#[actix_web::test]
async fn updates_of_one_game_in_one_group_get_versions_one_apart_and_boards_in_order() {
    let app = spawn_app().await;
    // 1. Twelve updates of curling's gauls score, all in one group.
    hold_the_log(&app, 600).await;
    let answers = join_all((0..12).map(|i| {
        let app = &app;
        async move {
            let response = put_keyed(
                app,
                "curling",
                &format!("c-{i}"),
                json!({ "gauls": 10 + i }),
            )
            .await;
            assert_eq!(response.status(), 200, "update {i}");
            response.json::<Value>().await.unwrap()
        }
    }))
    .await;
    let entries = log(&app).await;
    assert_eq!(entries.len(), 12);
    assert_gap_free(entries.iter().map(|e| e.0));
    assert!(
        entries.iter().all(|e| e.3 == entries[0].3),
        "one group, one transaction: {:?}",
        entries.iter().map(|e| &e.3).collect::<Vec<_>>()
    );
    // 2. In number order, versions rise by one and each board holds that update's points and
    //    the other team's as they were; each writer was answered its entry's detail.
    for (n, (_, key, detail, _)) in entries.iter().enumerate() {
        let i: i64 = key.strip_prefix("c-").unwrap().parse().unwrap();
        assert_eq!(detail["version"], n as i64 + 1, "{key}");
        assert_eq!(
            detail["scores"],
            json!([{ "team": "gauls", "points": 10 + i }, { "team": "romans", "points": 0 }]),
            "{key}"
        );
        assert_eq!(&answers[i as usize], detail, "{key} was answered its entry");
    }
    // 3. The rows hold the last entry's state; so does every read.
    let last = &entries.last().unwrap().2;
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM games WHERE slug = 'curling'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(version, 12);
    let points: Vec<(String, i64)> =
        sqlx::query_as("SELECT team, points FROM scores WHERE game = 'curling' ORDER BY team")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        points,
        [
            (
                "gauls".to_owned(),
                last["scores"][0]["points"].as_i64().unwrap()
            ),
            ("romans".to_owned(), 0)
        ]
    );
    let read: Value = app.get_json("/olympics/games/curling/score").await;
    assert_eq!(&read, last);
}

#[actix_web::test]
async fn a_failing_member_of_a_group_fails_alone_and_the_others_commit_gap_free() {
    let app = spawn_app().await;
    // The romans' gold count is full: awarding one more breaks its column (an SQL error).
    sqlx::query("UPDATE medal_tallies SET gold = 2147483647 WHERE team = 'romans'")
        .execute(&app.db)
        .await
        .unwrap();
    hold_the_log(&app, 600).await;
    // 1. Good updates, refused ones (unknown game, unknown team) and the poisoned award, in
    //    one group.
    let statuses = join_all((0..16).map(|i| {
        let app = &app;
        async move {
            let key = format!("g-{i}");
            let response = match i % 8 {
                1 => put_keyed(app, "chess", &key, json!({ "gauls": 1 })).await,
                3 => put_keyed(app, "skating", &key, json!({ "huns": 1 })).await,
                5 => app.award_medal("huns", "gold", Some(&key)).await,
                6 if i == 6 => app.award_medal("romans", "gold", Some(&key)).await,
                0 | 4 => put_keyed(app, "skating", &key, json!({ "gauls": i })).await,
                _ => app.award_medal("gauls", "silver", Some(&key)).await,
            };
            (key, response.status().as_u16())
        }
    }))
    .await;
    // 2. Each fails alone, with its own reason.
    let status: BTreeMap<String, u16> = statuses.into_iter().collect();
    for i in 0..16 {
        let expected = match i % 8 {
            1 | 3 | 5 => 404,
            6 if i == 6 => 503,
            _ => 200,
        };
        assert_eq!(status[&format!("g-{i}")], expected, "update g-{i}");
    }
    // 3. The good ones have the numbers 1..n, in order; nothing else is logged or counted.
    let entries = log(&app).await;
    let good = status.values().filter(|&&s| s == 200).count();
    assert_eq!(entries.len(), good);
    assert_gap_free(entries.iter().map(|e| e.0));
    let tallies: Vec<(String, i32, i32, i64)> =
        sqlx::query_as("SELECT team, gold, silver, version FROM medal_tallies ORDER BY team")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let silvers = (0..16)
        .filter(|i| matches!(i % 8, 2 | 7) || *i == 14)
        .count();
    assert_eq!(
        tallies,
        [
            ("gauls".to_owned(), 0, silvers as i32, silvers as i64),
            ("romans".to_owned(), 2147483647, 0, 0)
        ]
    );
    let awards: i64 = sqlx::query_scalar("SELECT count(*) FROM medal_awards")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(awards, silvers as i64);
    let skating: i64 = sqlx::query_scalar("SELECT version FROM games WHERE slug = 'skating'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(skating, 4, "four good score updates of skating");
}

#[actix_web::test]
async fn concurrent_retries_of_one_key_in_one_group_count_once() {
    let app = spawn_app().await;
    hold_the_log(&app, 600).await;
    // 1. Eight copies of one update (one key) and other updates between them, in one group.
    let answers = join_all((0..16).map(|i| {
        let app = &app;
        async move {
            let response = if i % 2 == 0 {
                put_keyed(app, "skating", "same", json!({ "romans": 7 })).await
            } else {
                put_keyed(app, "skating", &format!("other-{i}"), json!({ "gauls": i })).await
            };
            assert_eq!(response.status(), 200, "update {i}");
            response.json::<Value>().await.unwrap()
        }
    }))
    .await;
    // 2. Applied once: one entry for the key, every copy answered its detail.
    let entries = log(&app).await;
    assert_eq!(
        entries.len(),
        9,
        "one entry for `same`, eight for the others"
    );
    assert_gap_free(entries.iter().map(|e| e.0));
    assert!(entries.iter().all(|e| e.3 == entries[0].3), "one group");
    let same = &entries.iter().find(|e| e.1 == "same").unwrap().2;
    for copy in answers.iter().step_by(2) {
        assert_eq!(copy, same);
    }
    let version: i64 = sqlx::query_scalar("SELECT version FROM games WHERE slug = 'skating'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(version, 9);
    // 3. The key for another update is refused.
    let other = put_keyed(&app, "skating", "same", json!({ "romans": 8 })).await;
    assert_eq!(other.status(), 422);
}

/// The digest a front-end shows after applying `entries`, from number 1 on.
fn digest_of(entries: &[SequencedUpdate]) -> String {
    let mut order = UpdateOrder::anchored_after(0);
    for entry in entries {
        order.receive(entry.clone(), 0);
    }
    order.summary().digest
}

#[actix_web::test]
async fn a_group_committed_but_never_multicast_is_caught_up_from_the_log() {
    let app = spawn_app().await;
    // 0. Every front-end caches curling and skating at version 0.
    for _ in 0..9 {
        for game in ["curling", "skating"] {
            let _: Value = app.get_json(&format!("/olympics/games/{game}/score")).await;
        }
    }
    // 1. One group of six updates commits, then the log crashes before its multicast and its
    //    answers (a real panic of the log, after its real commit).
    hold_the_log(&app, 600).await;
    let response = app.crash(LOG, "mode=after-commit").await;
    assert_eq!(response.status(), 202);
    let games = ["curling", "skating"];
    let statuses = join_all((0..6).map(|i| {
        let app = &app;
        async move {
            put_keyed(
                app,
                games[i % 2],
                &format!("cut-{i}"),
                json!({ "gauls": 100 + i }),
            )
            .await
            .status()
        }
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == 503),
        "their outcome is unknown to the writers: {statuses:?}"
    );
    app.await_restart(LOG, 2).await;
    assert_eq!(log(&app).await.len(), 6, "the group is committed");

    // 2. Two writers retry with their keys: answered from the log, and no front-end serves the
    //    state before their update any more.
    for i in [4, 5] {
        let retry = put_keyed(
            &app,
            games[i % 2],
            &format!("cut-{i}"),
            json!({ "gauls": 100 + i }),
        )
        .await;
        assert_eq!(retry.status(), 200, "retry of cut-{i}");
    }
    for _ in 0..9 {
        for (game, version) in [("curling", 3), ("skating", 3)] {
            let read: Value = app.get_json(&format!("/olympics/games/{game}/score")).await;
            assert_eq!(
                read["version"], version,
                "{game} read after the acknowledged retries"
            );
        }
    }

    // 3. The next update shows every front-end its gap; each fills it from the log and applies
    //    exactly the log's order.
    let next = put_keyed(&app, "skiing", "after", json!({ "romans": 1 })).await;
    assert_eq!(next.status(), 200);
    let entries: Vec<SequencedUpdate> =
        sqlx::query_as("SELECT seq, kind, subject, entered_via FROM update_log ORDER BY seq")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(entries.len(), 7);
    let expected = digest_of(&entries);
    eventually(Duration::from_secs(10), || async {
        app.cluster_members()
            .await
            .iter()
            .all(|m| m["updates"]["last_seq"] == 7 && m["updates"]["digest"] == expected)
    })
    .await;
}
