//! Request ids: taken from the client's `X-Request-Id` (when plausible) or made, returned in
//! the reply, and carried into the log events of every actor the request touched.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::json;

use crate::helpers::{REPORTER_TOKEN, TestApp, spawn_app};
use crate::log_capture::{PREFIX, events_of};
use crate::queue::{CONSUMER, PRODUCER};

fn new_id(what: &str) -> String {
    format!("{PREFIX}{what}-{}", uuid::Uuid::new_v4().simple())
}

async fn send_with(request: RequestBuilder, id: &str) -> Response {
    let response = request.header("X-Request-Id", id).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], id, "the id comes back");
    response
}

/// The targets (modules) of the events logged for `id`; each must include every one of
/// `actors`.
fn assert_touched(id: &str, actors: &[&str]) {
    let events = events_of(id);
    for actor in actors {
        assert!(
            events.iter().any(|e| e.target.contains(actor)),
            "no event of {actor} carries request id {id}; its events: {events:#?}"
        );
    }
}

#[actix_web::test]
async fn the_request_id_is_kept_made_or_replaced_and_always_returned() {
    let app = spawn_app().await;
    let given = app
        .request(Method::GET, "/olympics/games")
        .header("X-Request-Id", "client-id_1.2:3")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-id_1.2:3");

    let made = app.get("/olympics/games").await;
    let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "a UUID: {made}");

    for bad in ["has spaces", "<script>", &"x".repeat(129)] {
        let response = app
            .request(Method::GET, "/olympics/games")
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{bad:?} replaced: {id}");
    }

    // Error replies carry it too.
    let missing = app
        .request(Method::GET, "/no/such/route")
        .header("X-Request-Id", "lost-1")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-request-id"], "lost-1");
}

#[actix_web::test]
async fn a_request_id_is_in_the_log_events_of_every_actor_the_request_touched() {
    let app = spawn_app().await;

    // Olympic read (a cache miss: front-end, then the database actor) and write (front-end,
    // then the update log).
    let tablet = app.register_tablet().await;
    let id = new_id("olympic-read");
    let read = app
        .request(Method::GET, "/olympics/teams/gauls/medals")
        .header("X-Tablet-Id", tablet["id"].as_str().unwrap());
    assert_eq!(send_with(read, &id).await.status(), 200);
    assert_touched(
        &id,
        &["actors::olympics::frontend", "actors::olympics::database"],
    );
    // The front-end's own event (not only the hop's) carries it.
    assert!(
        events_of(&id)
            .iter()
            .any(|e| e.message.starts_with("cache miss at frontend")),
        "{:#?}",
        events_of(&id)
    );
    let id = new_id("olympic-write");
    let write = app
        .request(Method::PUT, "/olympics/games/curling/score")
        .bearer_auth(REPORTER_TOKEN)
        .json(&json!({"scores": {"gauls": 1}}));
    assert_eq!(send_with(write, &id).await.status(), 200);
    assert_touched(&id, &["actors::olympics::frontend", "actors::write_log"]);

    // Queue produce and consume: the broker of the partition.
    let queue = app.queue();
    queue.create_topic("traced", 1).await.unwrap();
    let producer = queue.create_producer(&["traced"]).await.unwrap();
    let consumer = queue.create_consumer(&["traced"]).await.unwrap();
    let id = new_id("produce");
    let produce = app
        .request(
            Method::POST,
            &format!("/queue/producers/{}/messages", producer.id),
        )
        .bearer_auth(PRODUCER)
        .json(&json!({"topic": "traced", "message": "hello"}));
    assert_eq!(send_with(produce, &id).await.status(), 200);
    assert_touched(&id, &["actors::queue::broker"]);
    let id = new_id("consume");
    let consume = app
        .request(
            Method::GET,
            &format!("/queue/consumers/{}/messages?topic=traced", consumer.id),
        )
        .bearer_auth(CONSUMER);
    assert_eq!(send_with(consume, &id).await.status(), 200);
    assert_touched(&id, &["actors::queue::broker"]);

    // Bookstore lookup (cold: front end, then a catalog replica) and buy (front end, an
    // order server, the write log).
    let id = new_id("lookup");
    let lookup = app.request(Method::GET, "/bookstore/books/3");
    assert_eq!(send_with(lookup, &id).await.status(), 200);
    assert_touched(
        &id,
        &["actors::bookstore::frontend", "actors::bookstore::catalog"],
    );
    let id = new_id("buy");
    let buy = app.request(Method::POST, "/bookstore/books/3/buy");
    assert_eq!(send_with(buy, &id).await.status(), 201);
    assert_touched(
        &id,
        &[
            "actors::bookstore::frontend",
            "actors::bookstore::order_server",
            "actors::write_log",
        ],
    );

    // Room reservation (the rooms' write log) and a read of it (the leading room server).
    let id = new_id("reserve");
    let reserve = app
        .request(Method::POST, "/rooms/rooms/ME4326/reservations")
        .json(&json!({"timeslot": "8:30-9:30", "day": "Friday"}));
    assert_eq!(send_with(reserve, &id).await.status(), 201);
    assert_touched(&id, &["actors::write_log"]);
    let id = new_id("rooms-read");
    let check = app.request(Method::GET, "/rooms/rooms/ME4326/reservations");
    assert_eq!(send_with(check, &id).await.status(), 200);
    assert_touched(&id, &["actors::rooms::server"]);

    // Every event captured for a request carries its id by construction; none of another
    // request's events leaked into it.
    let unrelated = new_id("never-sent");
    assert!(events_of(&unrelated).is_empty());
}

impl TestApp {
    /// `n` requests of `method path`, their statuses.
    pub async fn statuses(&self, n: usize, method: Method, path: &str) -> Vec<u16> {
        let mut statuses = Vec::with_capacity(n);
        for _ in 0..n {
            let response = self.request(method.clone(), path).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    }
}
