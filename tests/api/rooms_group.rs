//! The room servers as a group (seed 003): its scenarios a, b and c, c under a steady stream of
//! reservations, and a panic of each server. "Agree" means every live server is ready, not
//! electing, and follows the same leader, within `rooms::AGREEMENT_BOUND` (3 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use obelix::rooms::Reservation;
use obelix::rooms::replica::digest;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};

async fn seed_app(ids: &[u64]) -> TestApp {
    let ids = ids.to_vec();
    spawn_app_with(move |s| s.rooms.server_ids = ids).await
}

/// The database's digest, as a replica computes it.
async fn database_digest(app: &TestApp) -> String {
    let rows: Vec<Reservation> = app
        .stored_reservations()
        .await
        .into_iter()
        .map(|(id, room, timeslot, day)| Reservation {
            id,
            room,
            timeslot,
            day,
        })
        .collect();
    digest(&rows)
}

/// Waits until every live server has applied everything and holds the database's reservations.
async fn await_replicas_equal_the_database(app: &TestApp) {
    let expected = database_digest(app).await;
    eventually(Duration::from_secs(5), || async {
        let view = app.room_servers().await;
        view["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["alive"] == true)
            .all(|s| s["digest"] == expected.as_str())
    })
    .await;
}

#[actix_web::test]
async fn seed_scenarios_a_b_and_c() {
    // 0. Server 41220 starts alone and elects itself ("initiated by 0" in the seed).
    let app = seed_app(&[41220]).await;
    app.await_room_leader(41220).await;
    // a. A lower id joins: it runs an election and learns it is not the leader.
    assert_eq!(app.add_room_server(9152).await.status(), 201);
    app.await_room_leader(41220).await;
    assert_eq!(
        app.reserve("SA318", "8:30-9:30", "Monday").await.status(),
        201
    );
    // b. The highest id joins: it bullies its way to leader; it caught up first (it has the
    //    reservation made before it started).
    assert_eq!(app.add_room_server(45000).await.status(), 201);
    app.await_room_leader(45000).await;
    let check = app.get("/rooms/rooms/SA318/reservations").await;
    assert_eq!(check.headers()["x-served-by"], "room-server-45000");
    assert_eq!(
        check.json::<Value>().await.unwrap()["reservations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // c. The leader is killed: a heartbeat fails, the survivors elect 41220 again.
    assert_eq!(app.kill_room_server(45000).await.status(), 204);
    app.await_room_leader(41220).await;
    let reserved = app.reserve("SA318", "9:30-10:30", "Monday").await;
    assert_eq!(reserved.status(), 201);
    assert_eq!(reserved.headers()["x-served-by"], "room-server-41220");
    let view = app.room_servers().await;
    let killed = view["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 45000)
        .unwrap()
        .clone();
    assert_eq!(killed["alive"], false);
    await_replicas_equal_the_database(&app).await;
    assert_eq!(app.room_servers().await["duplicate_replies"], 0);
}

/// Reservations of distinct slots from `writers` loops until `stop`; each one's status and
/// reservation.
async fn steady_stream(
    app: &TestApp,
    writers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<(u16, Option<Value>)> {
    let results = Arc::new(Mutex::new(Vec::new()));
    let rooms = ["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"];
    let slots = [
        "8:30-9:30",
        "9:30-10:30",
        "10:30-11:30",
        "11:30-12:30",
        "12:30-13:30",
        "13:30-14:30",
        "14:30-15:30",
        "15:30-16:30",
        "16:30-17:30",
        "17:30-19:00",
        "19:30-21:00",
    ];
    let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
    let combos: Vec<(usize, usize, usize)> = (0..rooms.len())
        .flat_map(|r| (0..slots.len()).flat_map(move |s| (0..days.len()).map(move |d| (r, s, d))))
        .collect();
    let loops = (0..writers).map(|w| {
        let (stop, results, combos) = (stop.clone(), results.clone(), combos.clone());
        async move {
            for (r, s, d) in combos.into_iter().skip(w).step_by(writers) {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let response = app.reserve(rooms[r], slots[s], days[d]).await;
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.ok();
                results.lock().await.push((status, body));
            }
        }
    });
    futures_util::future::join_all(loops).await;
    Arc::try_unwrap(results).unwrap().into_inner()
}

#[actix_web::test]
async fn a_killed_leader_under_a_steady_stream_fails_no_request() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let stream = steady_stream(&app, 4, stop.clone());
    let scenario = async {
        // 1. Traffic flows through leader 3 for a while.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // 2. Kill it mid-stream; the others elect 2 and answer what 3 left unanswered.
        assert_eq!(app.kill_room_server(3).await.status(), 204);
        app.await_room_leader(2).await;
        // 3. Traffic keeps flowing through the new leader, then stops.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Release);
    };
    let (results, ()) = tokio::join!(stream, scenario);
    let failed: Vec<&(u16, Option<Value>)> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(results.len() > 10, "too little traffic: {}", results.len());
    // Every acknowledged reservation is stored exactly once (ids are unique, slots distinct).
    let stored = app.stored_reservations().await;
    assert_eq!(stored.len(), results.len());
    for (_, body) in &results {
        let id = body.as_ref().unwrap()["id"].as_i64().unwrap();
        assert_eq!(
            stored.iter().filter(|r| r.0 == id).count(),
            1,
            "reservation {id}"
        );
    }
    await_replicas_equal_the_database(&app).await;
    let view = app.room_servers().await;
    assert_eq!(view["duplicate_replies"], 0);
}

#[actix_web::test]
async fn each_server_restarted_after_a_panic_catches_up_before_it_serves() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let mut made = 0;
    for id in [1u64, 2, 3] {
        let name = format!("room-server-{id}");
        // 1. It panics and stays down a while; reservations go on without it.
        let crash = app.crash(&name, "mode=panic&stay_down_ms=300").await;
        assert_eq!(crash.status(), 202);
        let day = ["Monday", "Tuesday", "Wednesday"][id as usize - 1];
        for slot in ["8:30-9:30", "9:30-10:30"] {
            let reserved = app.reserve("ME4494", slot, day).await;
            assert_eq!(reserved.status(), 201, "while {name} is down");
            made += 1;
        }
        // 2. It is restarted, catches up from the log, and the group agrees on 3 again.
        app.await_restart(&name, 1).await;
        app.await_room_leader(3).await;
        await_replicas_equal_the_database(&app).await;
        let view = app.room_servers().await;
        let server = view["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone();
        assert_eq!(server["reservations"], made, "{name} caught up");
    }
    let reserved = app.reserve("ME4494", "8:30-9:30", "Friday").await;
    assert_eq!(reserved.headers()["x-served-by"], "room-server-3");
    assert_eq!(app.room_servers().await["duplicate_replies"], 0);
}

#[actix_web::test]
async fn a_leader_killed_before_it_replies_leaves_the_reply_to_the_next_one() {
    // Replies wait 2 s (seed 003's slow servers): the leader dies holding one.
    let app = spawn_app_with(|s| s.rooms.reply_delay_ms = 2_000).await;
    app.await_room_leader(3).await;
    let reserve = app.reserve("SA314", "17:30-19:00", "Thursday");
    let kill = async {
        // 1. Once every server has applied the request, 3 has not replied yet: kill it.
        eventually(Duration::from_secs(5), || async {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms_request_log")
                .fetch_one(&app.db)
                .await
                .unwrap();
            stored == 1
        })
        .await;
        let killed_at = Instant::now();
        assert_eq!(app.kill_room_server(3).await.status(), 204);
        // 2. The others agree on 2.
        app.await_room_leader(2).await;
        killed_at
    };
    let (reserved, killed_at) = tokio::join!(reserve, kill);
    let answered_after = killed_at.elapsed();
    // 3. The client saw a delay, not an error: 201 from the new leader, stored once.
    assert_eq!(reserved.status(), 201);
    assert_eq!(reserved.headers()["x-served-by"], "room-server-2");
    assert_eq!(app.stored_reservations().await.len(), 1);
    assert_eq!(app.room_servers().await["duplicate_replies"], 0);
    eprintln!("failover: kill → agreement and reply within {answered_after:?} (reply delay 2 s)");
}
