//! Updates pushed to tablets as Server-Sent Events.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use obelix::clients::sse::SseParser;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, spawn_app};

/// A Server-Sent Events client on the crate's own parser.
struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>>>>,
    parser: SseParser,
    pending: VecDeque<obelix::clients::sse::SseEvent>,
}

#[derive(Debug)]
struct SseEvent {
    id: String,
    kind: String,
    data: Value,
}

impl Sse {
    async fn connect(app: &TestApp, tablet: &str, query: &str, last_event_id: Option<&str>) -> Sse {
        let mut request = app.request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{tablet}/events?{query}"),
        );
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::default(),
            pending: VecDeque::new(),
        }
    }

    /// The next event, or `None` when the server closed the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(SseEvent {
                    id: event.id.expect("every event has an id"),
                    kind: event.event.expect("every event has a kind"),
                    data: serde_json::from_str(&event.data).unwrap(),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?;
            let text = String::from_utf8(chunk.unwrap().to_vec()).unwrap();
            self.pending.extend(self.parser.push(&text));
        }
    }

    async fn next_event(&mut self) -> SseEvent {
        self.next().await.expect("the stream is still open")
    }
}

fn points_of(board: &Value, team: &str) -> i64 {
    board["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["team"] == team)
        .unwrap()["points"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn a_tablet_gets_a_snapshot_then_every_update() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let mut events =
        Sse::connect(&app, tablet["id"].as_str().unwrap(), "games=curling", None).await;

    let snapshot = events.next_event().await;
    assert_eq!(snapshot.kind, "score");
    assert_eq!(snapshot.data["game"], "curling");
    assert_eq!(points_of(&snapshot.data, "gauls"), 0);

    for points in 1..=3 {
        app.put_score("curling", json!({ "scores": { "gauls": points } }))
            .await;
        let update = events.next_event().await;
        assert_eq!(points_of(&update.data, "gauls"), points);
        assert_eq!(update.data["version"], points);
    }
}

#[actix_web::test]
async fn only_followed_games_and_teams_are_pushed() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let mut events = Sse::connect(&app, tablet["id"].as_str().unwrap(), "teams=gauls", None).await;
    assert_eq!(events.next_event().await.data["team"], "gauls"); // snapshot

    app.award_medal("romans", "gold", None).await;
    app.put_score("skating", json!({ "scores": { "romans": 1 } }))
        .await;
    app.award_medal("gauls", "silver", None).await;
    let update = events.next_event().await;
    assert_eq!(
        (
            update.kind.as_str(),
            &update.data["team"],
            &update.data["silver"]
        ),
        ("medals", &json!("gauls"), &json!(1))
    );
}

#[actix_web::test]
async fn a_reconnecting_tablet_misses_nothing_still_held() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let mut events = Sse::connect(&app, id, "games=curling", None).await;
    events.next_event().await; // snapshot
    app.put_score("curling", json!({ "scores": { "gauls": 1 } }))
        .await;
    let seen = events.next_event().await;
    drop(events);

    for points in 2..=4 {
        app.put_score("curling", json!({ "scores": { "gauls": points } }))
            .await;
    }
    let mut resumed = Sse::connect(&app, id, "games=curling", Some(&seen.id)).await;
    for points in 2..=4 {
        let event = resumed.next_event().await;
        assert_eq!(event.kind, "score", "a replay, not a snapshot");
        assert_eq!(points_of(&event.data, "gauls"), points);
    }
    app.put_score("curling", json!({ "scores": { "gauls": 5 } }))
        .await;
    assert_eq!(points_of(&resumed.next_event().await.data, "gauls"), 5);
}

#[actix_web::test]
async fn a_publisher_crash_ends_streams_and_a_reconnect_gets_the_current_state() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let mut events = Sse::connect(&app, id, "games=curling", None).await;
    let snapshot = events.next_event().await;

    app.crash("publisher", "mode=panic").await;
    assert!(
        events.next().await.is_none(),
        "the stream ends with the crash"
    );
    app.await_restart("publisher", 1).await;

    app.put_score("curling", json!({ "scores": { "gauls": 8 } }))
        .await;
    let mut resumed = Sse::connect(&app, id, "games=curling", Some(&snapshot.id)).await;
    let state = resumed.next_event().await;
    assert_eq!(
        points_of(&state.data, "gauls"),
        8,
        "a snapshot of the current state"
    );
    app.put_score("curling", json!({ "scores": { "gauls": 9 } }))
        .await;
    assert_eq!(points_of(&resumed.next_event().await.data, "gauls"), 9);
}

#[actix_web::test]
async fn many_tablets_each_get_every_update_in_order() {
    let app = spawn_app().await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let tablet = app.register_tablet().await;
        let mut events =
            Sse::connect(&app, tablet["id"].as_str().unwrap(), "games=skating", None).await;
        events.next_event().await;
        streams.push(events);
    }
    for points in 1..=10 {
        app.put_score("skating", json!({ "scores": { "romans": points } }))
            .await;
    }
    for events in &mut streams {
        for points in 1..=10 {
            assert_eq!(points_of(&events.next_event().await.data, "romans"), points);
        }
    }
}

#[actix_web::test]
async fn bad_subscriptions_are_refused() {
    let app = spawn_app().await;
    let stranger = uuid::Uuid::new_v4();
    error_body(
        app.get(&format!("/olympics/tablets/{stranger}/events"))
            .await,
        404,
    )
    .await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    error_body(
        app.get(&format!(
            "/olympics/tablets/{id}/events?games=chariot-racing"
        ))
        .await,
        404,
    )
    .await;
    let response = app
        .request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{id}/events"),
        )
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    let error = error_body(response, 400).await;
    assert_eq!(error["field"], "Last-Event-ID");
    error_body(
        app.get(&format!("/olympics/tablets/{id}/events?colour=blue"))
            .await,
        400,
    )
    .await;
}
