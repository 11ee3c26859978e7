//! Front-end caches with push invalidation: after an acknowledged update, no tablet reads the
//! old value through any front-end.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn gauls_curling_points(app: &TestApp, tablet: &str) -> (i64, String) {
    let response = app
        .get_as_tablet("/olympics/games/curling/score", tablet)
        .await;
    assert_eq!(response.status(), 200);
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let board: Value = response.json().await.unwrap();
    let points = board["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["team"] == "gauls")
        .unwrap()["points"]
        .as_i64()
        .unwrap();
    (points, cache)
}

#[actix_web::test]
async fn reads_say_whether_they_came_from_the_cache() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    assert_eq!(gauls_curling_points(&app, id).await.1, "miss");
    assert_eq!(gauls_curling_points(&app, id).await.1, "hit");

    app.put_score("curling", json!({ "scores": { "gauls": 5 } }))
        .await;
    assert_eq!(gauls_curling_points(&app, id).await, (5, "miss".to_owned()));
    assert_eq!(gauls_curling_points(&app, id).await, (5, "hit".to_owned()));
}

#[actix_web::test]
async fn an_update_through_one_frontend_invalidates_every_frontend() {
    let app = spawn_app().await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..3).map(|_| app.register_tablet())).await;
    let ids: Vec<&str> = tablets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    for id in &ids {
        gauls_curling_points(&app, id).await;
        assert_eq!(
            gauls_curling_points(&app, id).await,
            (0, "hit".to_owned()),
            "warm at every front-end"
        );
    }
    // The write goes through one front-end; all three must drop the old value.
    let response = app
        .put_score("curling", json!({ "scores": { "gauls": 9 } }))
        .await;
    assert_eq!(response.status(), 200);
    for id in &ids {
        assert_eq!(
            gauls_curling_points(&app, id).await.0,
            9,
            "a front-end served the old score"
        );
    }
}

#[actix_web::test]
async fn no_read_started_after_an_acknowledgement_sees_an_older_value() {
    let app = spawn_app().await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..3).map(|_| app.register_tablet())).await;
    let acknowledged = AtomicI64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);

    let writer = async {
        for points in 1..=40 {
            let response = app
                .put_score("curling", json!({ "scores": { "gauls": points } }))
                .await;
            assert_eq!(response.status(), 200);
            acknowledged.store(points, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
    };
    let readers = tablets
        .iter()
        .flat_map(|t| [t.clone(), t.clone()])
        .map(|tablet| {
            let (app, acknowledged, done) = (&app, &acknowledged, &done);
            async move {
                let id = tablet["id"].as_str().unwrap();
                while !done.load(Ordering::SeqCst) {
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let (points, _) = gauls_curling_points(app, id).await;
                    assert!(
                        points >= floor,
                        "read {points} after {floor} was acknowledged"
                    );
                }
            }
        });
    tokio::join!(writer, futures_util::future::join_all(readers));
}

#[actix_web::test]
async fn with_caching_off_every_read_is_a_miss() {
    let app = spawn_app_with(|s| s.olympics.cache_capacity = 0).await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(gauls_curling_points(&app, id).await.1, "miss");
    }
}

#[actix_web::test]
async fn a_restarted_frontend_starts_with_an_empty_cache() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    gauls_curling_points(&app, id).await;
    assert_eq!(gauls_curling_points(&app, id).await.1, "hit");
    app.crash(tablet["frontend"].as_str().unwrap(), "mode=panic")
        .await;
    app.await_restart(tablet["frontend"].as_str().unwrap(), 1)
        .await;
    assert_eq!(gauls_curling_points(&app, id).await.1, "miss");
}

#[actix_web::test]
async fn a_conditional_get_is_answered_304_until_the_value_changes() {
    let app = spawn_app().await;
    let first = app.get("/olympics/games/curling/score").await;
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let app = &app;
    let revalidate = |etag: String| async move {
        app.request(reqwest::Method::GET, "/olympics/games/curling/score")
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap()
    };
    let unchanged = revalidate(etag.clone()).await;
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert!(unchanged.bytes().await.unwrap().is_empty());

    app.put_score("curling", json!({ "scores": { "romans": 2 } }))
        .await;
    let changed = revalidate(etag.clone()).await;
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    let board: Value = changed.json().await.unwrap();
    assert_eq!(board["scores"][1]["points"], 2);
}

async fn spawn_pull_app(interval_ms: u64) -> TestApp {
    spawn_app_with(|s| {
        s.olympics.cache_consistency = obelix::settings::CacheConsistency::Pull;
        s.olympics.pull_interval_ms = interval_ms;
    })
    .await
}

#[actix_web::test]
async fn in_pull_mode_writes_do_not_reach_caches_before_the_interval() {
    // An interval far longer than the test: only a push could refresh the entry.
    let app = spawn_pull_app(600_000).await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    gauls_curling_points(&app, id).await;
    app.put_score("curling", json!({ "scores": { "gauls": 3 } }))
        .await;
    assert_eq!(
        gauls_curling_points(&app, id).await,
        (0, "hit".to_owned()),
        "pull mode is stale until its interval"
    );
}

#[actix_web::test]
async fn in_pull_mode_no_read_is_stale_after_one_interval() {
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(1_000);
    // What one refresh may take on top: its database reads and this test's own polling.
    const REFRESH: std::time::Duration = std::time::Duration::from_millis(250);
    let app = spawn_pull_app(INTERVAL.as_millis() as u64).await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..3).map(|_| app.register_tablet())).await;
    for tablet in &tablets {
        gauls_curling_points(&app, tablet["id"].as_str().unwrap()).await;
    }
    for points in 1..=3 {
        let response = app
            .put_score("curling", json!({ "scores": { "gauls": points } }))
            .await;
        assert_eq!(response.status(), 200);
        let acknowledged = std::time::Instant::now();
        // Each front-end (one tablet each) on its own: how long it kept serving the old value.
        let staleness = tablets.iter().map(|tablet| {
            let app = &app;
            async move {
                let id = tablet["id"].as_str().unwrap();
                while gauls_curling_points(app, id).await.0 != points {
                    assert!(
                        acknowledged.elapsed() <= INTERVAL + REFRESH,
                        "{} still stale after {:?}, more than one interval",
                        tablet["frontend"],
                        acknowledged.elapsed()
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                acknowledged.elapsed()
            }
        });
        let worst = futures_util::future::join_all(staleness)
            .await
            .into_iter()
            .max()
            .unwrap();
        assert!(worst <= INTERVAL + REFRESH, "stale for {worst:?}");
    }
}
