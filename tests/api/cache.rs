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
