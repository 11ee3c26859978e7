//! The front-end group (seed 003): the highest live id leads, everywhere.
//!
//! Bound: every live member agrees on one leader within AGREEMENT of the change (a join or a
//! kill). With the default timing (heartbeat deadline 150 ms, election 60 ms) agreement takes
//! about 100–300 ms (see docs/benchmarks.md); the bound leaves room for a loaded 2-core CI.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with};

const AGREEMENT: Duration = Duration::from_secs(2);

/// Waits until `leader` is alive and every live member names it and none is electing; returns
/// how long it took.
async fn await_agreement(app: &TestApp, leader: u64) -> Duration {
    let start = Instant::now();
    loop {
        let members = app.cluster_members().await;
        let leader_alive = members
            .iter()
            .any(|m| m["id"] == leader && m["alive"] == true);
        let agreed = leader_alive
            && members
                .iter()
                .filter(|m| m["alive"] == true)
                .all(|m| m["leader"] == leader && m["electing"] == false);
        if agreed {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < AGREEMENT,
            "no agreement on leader {leader} within {AGREEMENT:?}: {members:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn seed_003_group() -> TestApp {
    spawn_app_with(|s| s.olympics.frontend_ids = vec![41220, 9152]).await
}

#[actix_web::test]
async fn the_highest_id_leads_from_the_start() {
    let app = seed_003_group().await;
    await_agreement(&app, 41220).await;
    let ids: Vec<u64> = app
        .cluster_members()
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [41220, 9152]);
}

#[actix_web::test]
async fn a_a_new_server_with_a_lower_id_joins_and_the_leader_stays() {
    let app = seed_003_group().await;
    await_agreement(&app, 41220).await;
    app.add_frontend(100).await;
    await_agreement(&app, 41220).await;
    let newcomer = app
        .cluster_members()
        .await
        .into_iter()
        .find(|m| m["id"] == 100)
        .unwrap();
    assert_eq!(
        newcomer["leader"], 41220,
        "the newcomer learned it does not lead"
    );
}

#[actix_web::test]
async fn b_a_new_server_with_the_highest_id_becomes_leader_everywhere() {
    let app = seed_003_group().await;
    await_agreement(&app, 41220).await;
    app.add_frontend(45000).await;
    await_agreement(&app, 45000).await;
    assert_eq!(app.cluster_members().await.len(), 3);
}

#[actix_web::test]
async fn c_the_leader_is_killed_and_the_next_highest_takes_over() {
    let app = seed_003_group().await;
    app.add_frontend(45000).await;
    await_agreement(&app, 45000).await;
    app.kill_frontend(45000).await;
    await_agreement(&app, 41220).await;
    let ids: Vec<u64> = app
        .cluster_members()
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&45000));
}

#[actix_web::test]
async fn a_crashed_and_restarted_leader_is_leader_again() {
    let app = seed_003_group().await;
    await_agreement(&app, 41220).await;
    app.crash("frontend-41220", "mode=panic&stay_down_ms=400")
        .await;
    await_agreement(&app, 9152).await;
    app.await_restart("frontend-41220", 1).await;
    await_agreement(&app, 41220).await;
}

#[actix_web::test]
async fn killing_the_leader_under_load_fails_no_request() {
    // Caching off and round robin: the leader takes its share of reads and writes, and each
    // read waits on the database, so requests are in flight at the leader when it dies.
    let app = spawn_app_with(|s| {
        s.olympics.cache_capacity = 0;
        s.olympics.balancing = obelix::settings::BalancingPolicy::RoundRobin;
    })
    .await; // ids 1, 2, 3: frontend-3 leads
    await_agreement(&app, 3).await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..9).map(|_| app.register_tablet())).await;
    let on_leader = tablets
        .iter()
        .filter(|t| t["frontend"] == "frontend-3")
        .count();
    assert_eq!(on_leader, 3);
    let served_by_leader = AtomicUsize::new(0);
    let count = |response: &reqwest::Response| {
        if response.headers()["x-served-by"] == "frontend-3" {
            served_by_leader.fetch_add(1, Ordering::SeqCst);
        }
    };
    let readers = tablets.iter().map(|tablet| {
        let (app, count) = (&app, &count);
        async move {
            let id = tablet["id"].as_str().unwrap();
            for _ in 0..40 {
                let response = app.get_as_tablet("/olympics/games/curling/score", id).await;
                assert_eq!(
                    response.status(),
                    200,
                    "a read failed while the leader died"
                );
                count(&response);
            }
        }
    });
    let writer = async {
        for i in 0..40 {
            let response = app
                .award_medal("gauls", "gold", Some(&format!("leader-kill-{i}")))
                .await;
            assert_eq!(
                response.status(),
                200,
                "a write failed while the leader died"
            );
            count(&response);
        }
    };
    let killer = async {
        // Once the leader has served a good part, and while it has requests in flight.
        crate::helpers::eventually(Duration::from_secs(30), || async {
            served_by_leader.load(Ordering::SeqCst) >= 30
                && app
                    .cluster_members()
                    .await
                    .iter()
                    .any(|m| m["id"] == 3 && m["in_flight"].as_u64() > Some(0))
        })
        .await;
        app.kill_frontend(3).await;
    };
    tokio::join!(futures_util::future::join_all(readers), writer, killer);
    await_agreement(&app, 2).await;
    let tally: Value = app.get_json("/olympics/teams/gauls/medals").await;
    assert_eq!(tally["gold"], 40);
}

#[actix_web::test]
async fn adding_an_existing_id_or_killing_an_unknown_one_is_refused() {
    let app = seed_003_group().await;
    let response = app.post_frontend(json!({ "id": 9152 })).await;
    crate::helpers::error_body(response, 409).await;
    let response = app
        .request(reqwest::Method::DELETE, "/admin/frontends/7")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    crate::helpers::error_body(response, 404).await;
    let response = app
        .request(reqwest::Method::POST, "/admin/frontends")
        .json(&json!({ "id": 1 }))
        .send()
        .await
        .unwrap();
    crate::helpers::error_body(response, 401).await;
}

/// Berkeley: skews of 0, +800 and −900 ms agree on their average (−33 ms), within CLOCK_BOUND.
const CLOCK_BOUND: i64 = 10;

#[actix_web::test]
async fn skewed_clocks_converge_on_their_average() {
    let app = spawn_app_with(|s| {
        s.olympics.clock_skews_ms = vec![0, 800, -900]; // as `skews` below
        s.group.clock_sync_interval_ms = 100;
    })
    .await;
    let skews: [i64; 3] = [0, 800, -900];
    let average = skews.iter().sum::<i64>() / 3;
    crate::helpers::eventually(Duration::from_secs(10), || async {
        let offsets: Vec<i64> = app
            .cluster_members()
            .await
            .iter()
            .filter_map(|m| m["clock_offset_ms"].as_i64())
            .collect();
        offsets.len() == 3 && offsets.iter().all(|o| (o - average).abs() <= CLOCK_BOUND)
    })
    .await;
}

#[actix_web::test]
async fn a_newcomer_s_skewed_clock_is_pulled_in() {
    let app = spawn_app_with(|s| s.group.clock_sync_interval_ms = 100).await;
    await_agreement(&app, 3).await;
    let response = app
        .post_frontend(json!({ "id": 2_000_000_000u64, "clock_skew_ms": 3000 }))
        .await;
    assert_eq!(response.status(), 201);
    crate::helpers::eventually(Duration::from_secs(10), || async {
        let offsets: Vec<i64> = app
            .cluster_members()
            .await
            .iter()
            .filter_map(|m| m["clock_offset_ms"].as_i64())
            .collect();
        offsets.len() == 4
            && offsets.iter().max().unwrap() - offsets.iter().min().unwrap() <= CLOCK_BOUND
    })
    .await;
}

#[actix_web::test]
async fn vector_clocks_count_requests_and_spread_to_the_leader() {
    let app = spawn_app().await;
    await_agreement(&app, 3).await;
    let tablet = app.register_tablet().await;
    assert_eq!(tablet["frontend"], "frontend-1");
    for _ in 0..5 {
        app.get_as_tablet(
            "/olympics/teams/gauls/medals",
            tablet["id"].as_str().unwrap(),
        )
        .await;
    }
    let members_now = app.cluster_members().await;
    let first = members_now.iter().find(|m| m["id"] == 1).unwrap();
    assert_eq!(first["vector_clock"]["1"], 5, "{first}");
    // Heartbeats carry it to the leader.
    crate::helpers::eventually(Duration::from_secs(5), || async {
        let leader = app
            .cluster_members()
            .await
            .into_iter()
            .find(|m| m["id"] == 3)
            .unwrap();
        leader["vector_clock"]["1"].as_u64() == Some(5)
    })
    .await;
}

async fn ring_group() -> TestApp {
    spawn_app_with(|s| {
        s.olympics.frontend_ids = vec![41220, 9152];
        s.group.election = obelix::settings::ElectionAlgorithm::Ring;
    })
    .await
}

#[actix_web::test]
async fn ring_the_highest_id_leads_and_a_higher_newcomer_takes_over() {
    let app = ring_group().await;
    await_agreement(&app, 41220).await;
    app.add_frontend(100).await;
    await_agreement(&app, 41220).await;
    app.add_frontend(45000).await;
    await_agreement(&app, 45000).await;
}

#[actix_web::test]
async fn ring_a_killed_leader_is_replaced_by_the_next_highest() {
    let app = ring_group().await;
    app.add_frontend(45000).await;
    await_agreement(&app, 45000).await;
    app.kill_frontend(45000).await;
    await_agreement(&app, 41220).await;
}

#[actix_web::test]
async fn a_dispatcher_restarted_with_every_frontend_killed_keeps_working() {
    let app = spawn_app().await;
    app.register_tablet().await;
    for id in [1, 2, 3] {
        app.kill_frontend(id).await;
    }
    app.crash("dispatcher", "mode=panic").await;
    app.await_restart("dispatcher", 1).await;
    // It serves again: a new front-end joins and takes new tablets.
    app.add_frontend(9).await;
    assert_eq!(app.register_tablet().await["frontend"], "frontend-9");
    assert_eq!(
        app.actor_status("dispatcher").await["restarts"],
        1,
        "no crash loop"
    );
    assert_eq!(app.get("/cluster").await.status(), 200);
}
