use std::collections::HashSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{error_body, spawn_app};

async fn served_by(app: &crate::helpers::TestApp, tablet: &str) -> String {
    let response = app
        .get_as_tablet("/olympics/games/curling/score", tablet)
        .await;
    assert_eq!(response.status(), 200);
    response.headers()["x-served-by"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn tablets_are_spread_over_the_least_loaded_frontends() {
    let app = spawn_app().await;
    let mut frontends = Vec::new();
    for _ in 0..6 {
        let tablet = app.register_tablet().await;
        frontends.push(tablet["frontend"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        frontends,
        [
            "frontend-1",
            "frontend-2",
            "frontend-3",
            "frontend-1",
            "frontend-2",
            "frontend-3"
        ]
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tablets")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 6);
}

#[actix_web::test]
async fn a_tablet_is_served_by_its_own_frontend() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let tablet = app.register_tablet().await;
        let id = tablet["id"].as_str().unwrap();
        for _ in 0..3 {
            assert_eq!(
                served_by(&app, id).await,
                tablet["frontend"].as_str().unwrap()
            );
        }
    }
}

#[actix_web::test]
async fn anonymous_reads_are_balanced_over_all_frontends() {
    let app = spawn_app_round_robin().await;
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let response = app.get("/olympics/games").await;
        seen.insert(
            response.headers()["x-served-by"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        seen.len(),
        3,
        "round robin reached every front-end: {seen:?}"
    );
}

async fn spawn_app_round_robin() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|s| {
        s.olympics.balancing = obelix::settings::BalancingPolicy::RoundRobin;
    })
    .await
}

#[actix_web::test]
async fn an_unregistered_slot_is_filled_first() {
    let app = spawn_app().await;
    let tablets: Vec<Value> =
        futures_util::future::join_all((0..3).map(|_| app.register_tablet())).await;
    let on_two = tablets
        .iter()
        .find(|t| t["frontend"] == "frontend-2")
        .unwrap();
    let id = on_two["id"].as_str().unwrap();
    let response = app
        .request(Method::DELETE, &format!("/olympics/tablets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // The gone tablet is unknown now, and frontend-2 is the least loaded again.
    error_body(app.get_as_tablet("/olympics/games", id).await, 404).await;
    error_body(
        app.request(Method::DELETE, &format!("/olympics/tablets/{id}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(app.register_tablet().await["frontend"], "frontend-2");
}

#[actix_web::test]
async fn an_unknown_or_malformed_tablet_id_is_refused() {
    let app = spawn_app().await;
    let stranger = uuid::Uuid::new_v4().to_string();
    error_body(app.get_as_tablet("/olympics/games", &stranger).await, 404).await;
    let error = error_body(
        app.request(Method::DELETE, "/olympics/tablets/42")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(error["field"], "id");
}

#[actix_web::test]
async fn a_down_frontend_s_tablets_are_served_by_another_without_errors() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    assert_eq!(tablet["frontend"], "frontend-1");
    let id = tablet["id"].as_str().unwrap();

    assert_eq!(
        app.crash("frontend-1", "stay_down_ms=1500").await.status(),
        202
    );
    crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        app.actor_status("frontend-1").await["alive"] == false
    })
    .await;
    for _ in 0..5 {
        let by = served_by(&app, id).await;
        assert_ne!(by, "frontend-1", "a down front-end served a request");
    }

    // Once restarted, its tablets come home.
    app.await_restart("frontend-1", 1).await;
    assert_eq!(served_by(&app, id).await, "frontend-1");
}

#[actix_web::test]
async fn a_hundred_thousand_registrations_run_at_a_steady_speed() {
    const TABLETS: usize = 100_000;
    const WINDOW: usize = 10_000;
    // The Olympic actors on their own (no HTTP: the dispatcher is what is measured), on a
    // fresh database.
    let database_url = crate::helpers::fresh_database().await;
    let settings = crate::helpers::test_settings(&database_url);
    let storage = obelix::storage::connect(&settings.database).await.unwrap();
    let registry = obelix::actors::registry::Registry::default();
    let olympics = obelix::actors::olympics::boot(
        &settings,
        storage.pool.clone(),
        obelix::actors::supervisor::ShutdownSignal::default(),
        &registry,
        storage.last_update_seq,
    );
    let router = olympics.router;

    // Sixteen registrations at a time, as many anonymous clients would; timed by completions.
    use futures_util::StreamExt;
    // Timed in CPU time of this thread, which runs the router, the actors and their SQL
    // clients (not PostgreSQL): other tests on the same cores do not blur the comparison.
    let started = std::time::Instant::now();
    let mut first_window = None;
    let mut window_start = thread_cpu_time();
    let mut done = 0;
    let mut registrations = futures_util::stream::iter(0..TABLETS)
        .map(|_| router.register_tablet())
        .buffer_unordered(16);
    while let Some(registered) = registrations.next().await {
        registered.expect("registered");
        done += 1;
        if done == WINDOW {
            first_window = Some(thread_cpu_time() - window_start);
        }
        if done == TABLETS - WINDOW {
            window_start = thread_cpu_time();
        }
    }
    drop(registrations);
    let (first, last) = (first_window.unwrap(), thread_cpu_time() - window_start);
    let total = started.elapsed();
    eprintln!("{TABLETS} registrations in {total:?}; CPU: first {WINDOW} {first:?}, last {last:?}");
    // Steady: the last 10,000 cost about what the first did (an O(n) registration makes them
    // several times dearer).
    assert!(
        last < first * 2,
        "CPU for the first {WINDOW}: {first:?}, for the last {WINDOW}: {last:?} ({total:?} in all)"
    );
    assert!(total < std::time::Duration::from_secs(60), "{total:?}");
    // Every one of them routes to its front-end.
    let counts: i64 = sqlx::query_scalar("SELECT count(*) FROM tablets")
        .fetch_one(&storage.pool)
        .await
        .unwrap();
    assert_eq!(counts as usize, TABLETS);
    let members = router.cluster().await;
    let per_frontend: Vec<usize> = members.iter().map(|m| m.tablets).collect();
    assert_eq!(
        per_frontend.iter().sum::<usize>(),
        TABLETS,
        "{per_frontend:?}"
    );
    assert!(per_frontend.iter().max().unwrap() - per_frontend.iter().min().unwrap() <= 1);
    registry.stop_all(std::time::Duration::from_secs(5)).await;
}

/// CPU time used by the calling thread so far.
fn thread_cpu_time() -> std::time::Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

#[actix_web::test]
async fn tablets_not_heard_from_expire_and_those_reading_or_streaming_stay() {
    use std::time::Duration;
    let app = crate::helpers::spawn_app_with(|s| s.olympics.tablet_idle_expiry_ms = 1000).await;
    // 1. Three tablets: one goes silent, one keeps reading, one keeps a push stream open.
    let silent = app.register_tablet().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = app.register_tablet().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let streamer = app.register_tablet().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = app
        .request(
            Method::GET,
            &format!("/olympics/tablets/{streamer}/events?games=curling"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let registered = |id: String| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tablets WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
                == 1
        }
    };
    // 2. The reader reads every 200 ms while we wait for the silent one to be expired.
    let started = std::time::Instant::now();
    while registered(silent.clone()).await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the silent tablet was never expired"
        );
        let read = app
            .get_as_tablet("/olympics/games/curling/score", &reader)
            .await;
        assert_eq!(read.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 3. Gone from the directory too: its id is unknown now; the others are still served.
    let gone = app
        .get_as_tablet("/olympics/games/curling/score", &silent)
        .await;
    error_body(gone, 404).await;
    assert!(registered(reader.clone()).await, "a reading tablet expired");
    assert!(
        registered(streamer.clone()).await,
        "a streaming tablet expired"
    );
    let counted: usize = app
        .cluster_members()
        .await
        .iter()
        .map(|m| m["tablets"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(
        counted, 2,
        "the front-ends' tablet counts dropped the expired one"
    );
    drop(stream);
}
