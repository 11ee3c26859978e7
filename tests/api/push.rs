//! Updates pushed to tablets as Server-Sent Events.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use obelix::clients::sse::{SseError, events, parse_chunks};
use serde_json::{Value, json};

use crate::helpers::{REPORTER_TOKEN, TestApp, error_body, spawn_app, spawn_app_with};

/// A Server-Sent Events client on the clients' own parser.
struct Sse {
    body: Pin<Box<dyn Stream<Item = Result<obelix::clients::sse::SseEvent, SseError>>>>,
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
        Sse::from_response(request.send().await.unwrap())
    }

    fn from_response(response: reqwest::Response) -> Sse {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: Box::pin(events(response.bytes_stream())),
        }
    }

    /// The next event, or `None` when the server closed the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        let event = tokio::time::timeout(Duration::from_secs(10), self.body.next())
            .await
            .expect("an event within 10 s")?
            .ok()?;
        Some(SseEvent {
            id: event.id.expect("every event has an id"),
            kind: event.event.expect("every event has a kind"),
            data: serde_json::from_str(&event.data).unwrap(),
        })
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
    // A replay, not a snapshot: every state it missed, each an event of its own (a snapshot
    // would be only the last state, under the id of the log's head).
    let mut ids = vec![seen.id.clone()];
    for points in 2..=4 {
        let event = resumed.next_event().await;
        assert_eq!(points_of(&event.data, "gauls"), points);
        assert_eq!(event.data["version"], points);
        assert!(!ids.contains(&event.id), "{} sent twice", event.id);
        ids.push(event.id);
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

#[actix_web::test]
async fn a_replay_from_a_snapshot_never_goes_back_or_repeats_under_concurrent_writers() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);

    // 1. Four writers keep curling changing.
    let writers = (0..4).map(|w| {
        let (app, done) = (&app, &done);
        async move {
            let mut points = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                points += 1;
                let response = app
                    .put_score("curling", json!({ "scores": { "gauls": points * 4 + w } }))
                    .await;
                assert_eq!(response.status(), 200);
            }
        }
    });
    // 2. Again and again: open a stream, read its snapshot (id I, version V), close, resume
    //    from I. Whatever comes first on the resumed stream is newer than V.
    let trials = async {
        for trial in 0..60 {
            let mut first = Sse::connect(&app, id, "games=curling", None).await;
            let snapshot = first.next_event().await;
            drop(first);
            let seen = snapshot.data["version"].as_i64().unwrap();
            let mut resumed = Sse::connect(&app, id, "games=curling", Some(&snapshot.id)).await;
            let next = resumed.next_event().await;
            let version = next.data["version"].as_i64().unwrap();
            assert!(
                version > seen,
                "trial {trial}: resumed from {} (v{seen}) with v{version}",
                snapshot.id
            );
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    tokio::join!(futures_util::future::join_all(writers), trials);
}

#[actix_web::test]
async fn after_a_publisher_restart_a_resumed_stream_repeats_nothing() {
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let mut events = Sse::connect(&app, id, "games=curling", None).await;
    events.next_event().await; // snapshot, v0
    let mut last = None;
    for points in 1..=3 {
        app.put_score("curling", json!({ "scores": { "gauls": points } }))
            .await;
        last = Some(events.next_event().await);
    }
    let last = last.unwrap();
    assert_eq!(last.data["version"], 3);

    app.crash("publisher", "mode=panic").await;
    assert!(
        events.next().await.is_none(),
        "the stream ends with the crash"
    );
    app.await_restart("publisher", 1).await;

    // The tablet saw v3: resuming from it, the first thing it gets is v4, not v3 again.
    let mut resumed = Sse::connect(&app, id, "games=curling", Some(&last.id)).await;
    app.put_score("curling", json!({ "scores": { "gauls": 4 } }))
        .await;
    let next = resumed.next_event().await;
    assert_eq!(next.data["version"], 4, "resumed with {next:?}");
}

#[actix_web::test]
async fn streams_past_the_configured_ceiling_are_refused_with_503() {
    let app = spawn_app_with(|s| s.push.max_subscriptions = 3).await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut events = Sse::connect(&app, id, "games=curling", None).await;
        events.next_event().await;
        open.push(events);
    }
    let refused = app
        .get(&format!("/olympics/tablets/{id}/events?games=curling"))
        .await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let body = error_body(refused, 503).await;
    assert!(body["error"].as_str().unwrap().contains('3'), "{body}");
    // The open streams are not disturbed.
    app.put_score("curling", json!({ "scores": { "gauls": 1 } }))
        .await;
    for events in &mut open {
        assert_eq!(events.next_event().await.data["version"], 1);
    }
}

/// An HTTP client that asks for a tablet's events and then does not read: its socket's
/// receive buffer is made as small as the kernel allows, so the server's writes back up.
async fn slow_reader(app: &TestApp, tablet: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    socket.connect(&address.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    let request = format!(
        "GET /olympics/tablets/{tablet}/events HTTP/1.1\r\nHost: {address}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Only the status line: the stream is open. Then it reads nothing more.
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head))
        .await
        .expect("a status line within 10 s")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the slow tablet's stream opened");
    stream
}

#[actix_web::test]
async fn a_tablet_that_stops_reading_is_disconnected_and_resumes_where_it_was() {
    let app = spawn_app_with(|s| {
        s.push.queue_per_tablet = 4;
        s.push.max_subscriptions = 1;
    })
    .await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();

    // 1. The slow tablet subscribes to everything and never reads. It holds the only slot.
    let mut slow = slow_reader(&app, id).await;
    error_body(
        app.get(&format!("/olympics/tablets/{id}/events")).await,
        503,
    )
    .await;

    // 2. Updates pile up behind it until the server drops it: then the slot is free again.
    // Two updates of each of the six games per round: writers of different games do not
    // wait for each other.
    const GAMES: [&str; 6] = [
        "curling",
        "skating",
        "skiing",
        "biathlon",
        "bobsleigh",
        "boar-hunting",
    ];
    let mut writes = 0;
    let dropped = loop {
        let batch = (0..12).map(|i| {
            let app = &app;
            async move {
                let game = GAMES[i % GAMES.len()];
                app.request(
                    reqwest::Method::PUT,
                    &format!("/olympics/games/{game}/score"),
                )
                .bearer_auth(REPORTER_TOKEN)
                .json(&json!({ "scores": { "gauls": writes + i } }))
                .send()
                .await
                .unwrap()
                .status()
            }
        });
        for status in futures_util::future::join_all(batch).await {
            assert_eq!(status, 200);
        }
        writes += 12;
        let probe = app
            .get(&format!("/olympics/tablets/{id}/events?teams=romans"))
            .await;
        if probe.status() == 200 {
            break true;
        }
        assert_eq!(probe.status(), 503);
        if writes >= 24_000 {
            break false;
        }
    };
    assert!(
        dropped,
        "the server kept a tablet that read nothing for {writes} updates"
    );

    // 3. What the slow tablet gets when it reads at last: a prefix of the updates, then the end
    //    of the stream.
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut received))
        .await
        .expect("the server closed the slow stream")
        .unwrap();
    let events = parse_chunks([&received]);
    // The snapshot (six games, two teams), then score updates, each game's in version order.
    let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for event in events
        .iter()
        .filter(|e| e.event.as_deref() == Some("score"))
    {
        let state: Value = serde_json::from_str(&event.data).unwrap();
        let (game, version) = (
            state["game"].as_str().unwrap().to_owned(),
            state["version"].as_i64().unwrap(),
        );
        let before = seen.insert(game.clone(), version);
        assert!(
            before.is_none_or(|b| b < version),
            "{game}: v{before:?} then v{version}"
        );
    }
    assert!(events.len() < 8 + writes, "it did not get everything");
    let last_id = events
        .last()
        .and_then(|e| e.id.clone())
        .expect("an event id");

    // 4. It reconnects from its last event and gets what it missed: newer than what it had.
    // (The probe that found the slot free holds it until the server writes to its closed
    // connection: a medal for its team makes it.)
    drop(slow);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut resumed = loop {
        app.award_medal("romans", "bronze", None).await;
        let response = app
            .request(
                reqwest::Method::GET,
                &format!("/olympics/tablets/{id}/events?games={}", GAMES.join(",")),
            )
            .header("Last-Event-ID", &last_id)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break Sse::from_response(response);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no slot for the reconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let next = resumed.next_event().await;
    let game = next.data["game"].as_str().unwrap();
    let version = next.data["version"].as_i64().unwrap();
    assert!(
        seen.get(game).is_none_or(|&had| version > had),
        "resumed with {game} v{version}, had v{:?}",
        seen.get(game)
    );
}

#[actix_web::test]
async fn an_empty_last_event_id_is_no_last_event() {
    // An EventSource with no event yet has an empty last event id; a client that sends it
    // empty (schemathesis did) asks for the stream from its start, as one that sends none.
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let response = app
        .request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{id}/events?games=curling&last_event_id=0-0"),
        )
        .header("Last-Event-ID", "")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
}

#[actix_web::test]
async fn a_malformed_last_event_id_in_the_query_is_refused_even_beside_the_header() {
    // The header wins when both are given, but a query id that is no event id is still bad
    // input (schemathesis sent one beside a valid header and got a stream).
    let app = spawn_app().await;
    let tablet = app.register_tablet().await;
    let id = tablet["id"].as_str().unwrap();
    let response = app
        .request(
            reqwest::Method::GET,
            &format!("/olympics/tablets/{id}/events?last_event_id=%5Da%0C"),
        )
        .header("Last-Event-ID", "1-1")
        .send()
        .await
        .unwrap();
    let body = error_body(response, 400).await;
    assert_eq!(body["field"], "last_event_id", "{body}");
}
