//! Every actor kind crashed mid-traffic, by panic and by stop: it is restarted, every request
//! succeeds, and every acknowledged write is in PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, eventually, spawn_app};

const WRITERS: usize = 4;
const WRITES_EACH: usize = 25;
/// The crash is sent once this many writes have been acknowledged.
const CRASH_AFTER: usize = 30;

/// Runs reporter writes and tablet reads, crashes `actor` in the middle, and checks the outcome.
async fn crash_mid_traffic(actor: &str, mode: &str) {
    let app = spawn_app().await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..3).map(|_| app.register_tablet())).await;
    let acknowledged = AtomicUsize::new(0);

    let writers = (0..WRITERS).map(|w| {
        let (app, acknowledged) = (&app, &acknowledged);
        async move {
            for i in 0..WRITES_EACH {
                let key = format!("crash-test-{w}-{i}");
                let response = app.award_medal("gauls", "gold", Some(&key)).await;
                assert_eq!(
                    response.status(),
                    200,
                    "write {key} failed during the crash of {actor}"
                );
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let readers = tablets.iter().map(|tablet| {
        let app = &app;
        async move {
            let id = tablet["id"].as_str().unwrap();
            for _ in 0..20 {
                let response = app.get_as_tablet("/olympics/teams/gauls/medals", id).await;
                assert_eq!(
                    response.status(),
                    200,
                    "a read failed during the crash of {actor}"
                );
            }
        }
    });
    let registrations = async {
        for _ in 0..5 {
            app.register_tablet().await;
        }
    };
    let crasher = async {
        eventually(Duration::from_secs(30), || async {
            acknowledged.load(Ordering::SeqCst) >= CRASH_AFTER
        })
        .await;
        assert_eq!(
            app.crash(actor, &format!("mode={mode}")).await.status(),
            202
        );
    };
    tokio::join!(
        futures_util::future::join_all(writers),
        futures_util::future::join_all(readers),
        registrations,
        crasher
    );

    app.await_restart(actor, 1).await;
    assert_every_acknowledged_write_is_stored(&app, acknowledged.load(Ordering::SeqCst)).await;

    // The restarted tree still serves: reads, writes, and tablets at their own front-ends.
    assert_eq!(
        app.award_medal("gauls", "gold", Some("after-crash"))
            .await
            .status(),
        200
    );
    for tablet in &tablets {
        let response = app
            .get_as_tablet(
                "/olympics/teams/gauls/medals",
                tablet["id"].as_str().unwrap(),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-served-by"],
            tablet["frontend"].as_str().unwrap()
        );
    }
}

async fn assert_every_acknowledged_write_is_stored(app: &TestApp, acknowledged: usize) {
    assert_eq!(acknowledged, WRITERS * WRITES_EACH);
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM medal_awards WHERE idempotency_key LIKE 'crash-test-%'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        stored as usize, acknowledged,
        "acknowledged awards missing from medal_awards"
    );
    let gold: i32 = sqlx::query_scalar("SELECT gold FROM medal_tallies WHERE team = 'gauls'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        gold as usize, acknowledged,
        "tally disagrees with the acknowledged awards"
    );
}

#[actix_web::test]
async fn a_frontend_panic_mid_traffic_loses_nothing() {
    crash_mid_traffic("frontend-1", "panic").await;
}

#[actix_web::test]
async fn a_frontend_stop_mid_traffic_loses_nothing() {
    crash_mid_traffic("frontend-2", "stop").await;
}

#[actix_web::test]
async fn a_database_actor_panic_mid_traffic_loses_nothing() {
    crash_mid_traffic("database", "panic").await;
}

#[actix_web::test]
async fn a_database_actor_stop_mid_traffic_loses_nothing() {
    crash_mid_traffic("database", "stop").await;
}

#[actix_web::test]
async fn an_update_log_panic_mid_traffic_loses_nothing() {
    crash_mid_traffic("olympics-update-log", "panic").await;
}

#[actix_web::test]
async fn an_update_log_stop_mid_traffic_loses_nothing() {
    crash_mid_traffic("olympics-update-log", "stop").await;
}

#[actix_web::test]
async fn a_dispatcher_panic_mid_traffic_loses_nothing() {
    crash_mid_traffic("dispatcher", "panic").await;
}

#[actix_web::test]
async fn a_dispatcher_stop_mid_traffic_loses_nothing() {
    crash_mid_traffic("dispatcher", "stop").await;
}

#[actix_web::test]
async fn a_restarted_dispatcher_reloads_tablets_from_postgres() {
    let app = spawn_app().await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..4).map(|_| app.register_tablet())).await;
    app.crash("dispatcher", "mode=panic").await;
    app.await_restart("dispatcher", 1).await;
    // The reloaded assignment still counts the old tablets: the 5th goes where load is least.
    let fifth = app.register_tablet().await;
    assert_eq!(
        fifth["frontend"], "frontend-2",
        "frontend-1 already had two tablets"
    );
    // Unregistering a tablet from before the crash works: the dispatcher knows it.
    let id = tablets[0]["id"].as_str().unwrap();
    let response = app
        .request(reqwest::Method::DELETE, &format!("/olympics/tablets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}
