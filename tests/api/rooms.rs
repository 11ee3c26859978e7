//! Room reservation (seed 003) through REST: every endpoint, bad input, and no double booking
//! under concurrency. The group's failover scenarios are in `rooms_group.rs`.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, error_body, eventually, spawn_app};

/// How long the group may take to agree on a leader after a change: one election (answer
/// period 60 ms, coordinator period 250 ms) plus a failed heartbeat (deadline 150 ms), with a
/// wide margin for a loaded 2-core machine.
pub const AGREEMENT_BOUND: Duration = Duration::from_secs(3);

impl TestApp {
    pub async fn reserve(&self, room: &str, timeslot: &str, day: &str) -> Response {
        self.post_json(
            &format!("/rooms/rooms/{room}/reservations"),
            json!({ "timeslot": timeslot, "day": day }),
        )
        .await
    }

    pub async fn reserve_with_key(
        &self,
        room: &str,
        timeslot: &str,
        day: &str,
        key: &str,
    ) -> Response {
        self.request(Method::POST, &format!("/rooms/rooms/{room}/reservations"))
            .header("Idempotency-Key", key)
            .json(&json!({ "timeslot": timeslot, "day": day }))
            .send()
            .await
            .expect("POST reservation")
    }

    pub async fn cancel(&self, id: i64) -> Response {
        self.request(Method::DELETE, &format!("/rooms/reservations/{id}"))
            .send()
            .await
            .expect("DELETE reservation")
    }

    pub async fn room_servers(&self) -> Value {
        self.get_json("/rooms/servers").await
    }

    pub async fn add_room_server(&self, id: u64) -> Response {
        self.request(Method::POST, "/admin/rooms/servers")
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "id": id }))
            .send()
            .await
            .expect("POST /admin/rooms/servers")
    }

    pub async fn kill_room_server(&self, id: u64) -> Response {
        self.request(Method::DELETE, &format!("/admin/rooms/servers/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("DELETE /admin/rooms/servers/{id}")
    }

    /// Waits until every live room server is ready, none is electing, and all follow `leader`.
    pub async fn await_room_leader(&self, leader: u64) {
        eventually(AGREEMENT_BOUND, || async {
            let view = self.room_servers().await;
            let live: Vec<&Value> = view["servers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["alive"] == true)
                .collect();
            !live.is_empty()
                && live.iter().all(|s| {
                    s["ready"] == true && s["electing"] == false && s["leader"] == json!(leader)
                })
        })
        .await;
    }

    /// The reservations in the database, in id order, as the replicas' digest sees them.
    pub async fn stored_reservations(&self) -> Vec<(i64, String, String, String)> {
        sqlx::query_as("SELECT id, room, timeslot, day FROM room_reservations ORDER BY id")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }
}

#[actix_web::test]
async fn the_catalogue_is_the_seeds_in_order_with_etags() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let rooms = app.get("/rooms/rooms").await;
    assert_eq!(rooms.status(), 200);
    assert_eq!(rooms.headers()["x-served-by"], "room-server-3");
    let etag = rooms.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = rooms.json().await.unwrap();
    assert_eq!(
        body,
        json!({"rooms": ["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"]})
    );
    let timeslots: Value = app.get_json("/rooms/timeslots").await;
    let slots = timeslots["timeslots"].as_array().unwrap();
    assert_eq!(slots.len(), 11);
    assert_eq!(slots[0], "8:30-9:30");
    assert_eq!(slots[10], "19:30-21:00");
    let days: Value = app.get_json("/rooms/days").await;
    assert_eq!(
        days,
        json!({"days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]})
    );
    // Revalidation: the same ETag gives 304 without a body.
    let again = app
        .request(Method::GET, "/rooms/rooms")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn reserve_check_and_cancel_as_the_seed_shows() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    // 1. Nothing reserved yet.
    let check: Value = app.get_json("/rooms/rooms/ME4326/reservations").await;
    assert_eq!(check, json!({"room": "ME4326", "reservations": []}));
    let empty_etag = app.get("/rooms/rooms/ME4326/reservations").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    // 2. Reserve: 201 with the id, from the leader.
    let reserved = app.reserve("ME4326", "8:30-9:30", "Friday").await;
    assert_eq!(reserved.status(), 201);
    assert_eq!(reserved.headers()["x-served-by"], "room-server-3");
    let reservation: Value = reserved.json().await.unwrap();
    let id = reservation["id"].as_i64().unwrap();
    assert_eq!(reservation["room"], "ME4326");
    // 3. The check shows it at once (read your writes), and the old ETag no longer matches.
    let check = app
        .request(Method::GET, "/rooms/rooms/ME4326/reservations")
        .header("If-None-Match", &empty_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let check: Value = check.json().await.unwrap();
    assert_eq!(check["reservations"], json!([reservation]));
    // 4. The same slot again: 409.
    let taken = error_body(app.reserve("ME4326", "8:30-9:30", "Friday").await, 409).await;
    assert!(
        taken["error"]
            .as_str()
            .unwrap()
            .contains("already reserved")
    );
    // 5. Cancel: 200 with what was cancelled; again: 404.
    let cancelled = app.cancel(id).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(cancelled.json::<Value>().await.unwrap(), reservation);
    error_body(app.cancel(id).await, 404).await;
    let check: Value = app.get_json("/rooms/rooms/ME4326/reservations").await;
    assert_eq!(check["reservations"], json!([]));
    assert!(app.stored_reservations().await.is_empty());
    // 6. Every request took a number in the log, whatever its outcome.
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms_request_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(logged, 4);
}

#[actix_web::test]
async fn a_write_is_never_answered_304_whatever_its_if_none_match() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    // 1. A reservation sent with `If-None-Match: *`: made, and answered 201 with its body.
    let reserved = app
        .request(Method::POST, "/rooms/rooms/SA318/reservations")
        .header("If-None-Match", "*")
        .header("Idempotency-Key", "once")
        .json(&json!({ "timeslot": "8:30-9:30", "day": "Monday" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 201);
    let etag = reserved.headers()["etag"].to_str().unwrap().to_owned();
    let reservation: Value = reserved.json().await.unwrap();
    let id = reservation["id"].as_i64().unwrap();
    // 2. Its retry names the first reply's ETag: still the reply (201 and the reservation).
    let retried = app
        .request(Method::POST, "/rooms/rooms/SA318/reservations")
        .header("If-None-Match", &etag)
        .header("Idempotency-Key", "once")
        .json(&json!({ "timeslot": "8:30-9:30", "day": "Monday" }))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.json::<Value>().await.unwrap(), reservation);
    // 3. A cancel with `If-None-Match: *`: done, 200 with what was cancelled.
    let cancelled = app
        .request(Method::DELETE, &format!("/rooms/reservations/{id}"))
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(cancelled.json::<Value>().await.unwrap(), reservation);
    assert!(app.stored_reservations().await.is_empty());
}

#[actix_web::test]
async fn bad_input_gets_a_clear_4xx() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    error_body(app.get("/rooms/rooms/XX999/reservations").await, 404).await;
    error_body(app.reserve("XX999", "8:30-9:30", "Friday").await, 404).await;
    let slot = error_body(app.reserve("SA318", "7:00-8:00", "Friday").await, 422).await;
    assert_eq!(slot["field"], "timeslot");
    let day = error_body(app.reserve("SA318", "8:30-9:30", "Sunday").await, 422).await;
    assert_eq!(day["field"], "day");
    let missing = error_body(
        app.post_json("/rooms/rooms/SA318/reservations", json!({"day": "Friday"}))
            .await,
        422,
    )
    .await;
    assert_eq!(missing["field"], "timeslot");
    let malformed = app
        .request(Method::POST, "/rooms/rooms/SA318/reservations")
        .header("content-type", "application/json")
        .body("{\"timeslot\":")
        .send()
        .await
        .unwrap();
    error_body(malformed, 400).await;
    let nul = error_body(
        app.post_json(
            "/rooms/rooms/SA318/reservations",
            json!({"timeslot": "8:30\u{0}", "day": "Friday"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(nul["field"], "timeslot");
    error_body(app.cancel(424242).await, 404).await;
    error_body(app.get("/rooms/reservations/abc").await, 405).await;
    let bad_id = app
        .request(Method::DELETE, "/rooms/reservations/abc")
        .send()
        .await
        .unwrap();
    error_body(bad_id, 400).await;
    let long_key = app
        .reserve_with_key("SA318", "8:30-9:30", "Friday", &"k".repeat(200))
        .await;
    assert_eq!(error_body(long_key, 422).await["field"], "Idempotency-Key");
    // Admin routes need the admin token; ids are checked.
    let anonymous = app
        .request(Method::POST, "/admin/rooms/servers")
        .json(&json!({"id": 9}))
        .send()
        .await
        .unwrap();
    error_body(anonymous, 401).await;
    error_body(app.add_room_server(3).await, 409).await;
    assert_eq!(
        error_body(app.add_room_server(0).await, 422).await["field"],
        "id"
    );
    error_body(app.kill_room_server(77).await, 404).await;
    // Nothing above reached the log.
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms_request_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(logged, 1, "only the cancel of an unknown id is a request");
}

#[actix_web::test]
async fn forty_concurrent_reservations_of_one_slot_confirm_exactly_one() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let attempts = (0..40).map(|_| app.reserve("SA412", "12:30-13:30", "Wednesday"));
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        39,
        "{statuses:?}"
    );
    assert_eq!(app.stored_reservations().await.len(), 1);
    let view = app.room_servers().await;
    assert_eq!(view["duplicate_replies"], 0);
}

#[actix_web::test]
async fn a_retried_reservation_with_its_idempotency_key_counts_once() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let first = app
        .reserve_with_key("MC5050", "9:30-10:30", "Monday", "retry-1")
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // The retry is answered with the first outcome (201 with the same id), not a 409.
    let retry = app
        .reserve_with_key("MC5050", "9:30-10:30", "Monday", "retry-1")
        .await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["x-served-by"], "room-server-3");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    // The same key for another request is refused.
    let other = app
        .reserve_with_key("MC5050", "9:30-10:30", "Tuesday", "retry-1")
        .await;
    error_body(other, 422).await;
    assert_eq!(app.stored_reservations().await.len(), 1);
    assert_eq!(app.room_servers().await["duplicate_replies"], 0);
}

#[actix_web::test]
async fn every_server_applies_every_request_and_shows_it() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    for (room, day) in [
        ("SA318", "Monday"),
        ("SA314", "Tuesday"),
        ("SA318", "Tuesday"),
    ] {
        assert_eq!(app.reserve(room, "10:30-11:30", day).await.status(), 201);
    }
    eventually(Duration::from_secs(5), || async {
        let view = app.room_servers().await;
        let servers = view["servers"].as_array().unwrap().clone();
        servers.len() == 3
            && servers.iter().all(|s| {
                s["applied"] == 3 && s["reservations"] == 3 && s["digest"] == servers[0]["digest"]
            })
    })
    .await;
    let view = app.room_servers().await;
    let ids: Vec<u64> = view["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
}
