//! Who may use the log queue: its bearer tokens, JSON-only bodies (no cross-site posts), and
//! offset commits fenced to the partition's owner in a consumer group.

use std::time::{Duration, Instant};

use obelix::clients::queue::Subscription;
use serde_json::json;

use crate::helpers::{error_body, spawn_app, spawn_app_with};
use crate::queue::{ADMIN, CONSUMER, PRODUCER, get_as, post_as, status_of};

#[actix_web::test]
async fn queue_routes_need_their_token_and_json_bodies() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("logs", 1).await.unwrap();
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    let consumer = queue.create_consumer(&["logs"]).await.unwrap();
    let enqueue = format!("/queue/producers/{}/messages", producer.id);
    let message = json!({"topic": "logs", "message": "m"});
    let messages = format!("/queue/consumers/{}/messages?topic=logs", consumer.id);
    let offsets = format!("/queue/consumers/{}/offsets", consumer.id);
    let commit = json!({"topic": "logs", "partition": 0, "offset": 0});

    // 1. Without a token: 401 on every queue route.
    let topic = json!({"name": "x"});
    error_body(app.post_json("/queue/topics", topic.clone()).await, 401).await;
    error_body(app.get("/queue/topics").await, 401).await;
    error_body(app.post_json(&enqueue, message.clone()).await, 401).await;
    error_body(app.get(&messages).await, 401).await;
    error_body(app.post_json(&offsets, commit.clone()).await, 401).await;
    // 2. With another role's token: 401 too.
    let cases = [
        post_as(&app, PRODUCER, "/queue/topics", topic.clone()).await,
        post_as(
            &app,
            CONSUMER,
            "/queue/producers",
            json!({"topics": ["logs"]}),
        )
        .await,
        post_as(&app, ADMIN, &enqueue, message.clone()).await,
        post_as(
            &app,
            PRODUCER,
            "/queue/consumers",
            json!({"topics": ["logs"]}),
        )
        .await,
        get_as(&app, PRODUCER, &messages).await,
        post_as(&app, ADMIN, &offsets, commit.clone()).await,
        post_as(&app, CONSUMER, "/queue/topics", topic).await,
    ];
    for response in cases {
        error_body(response, 401).await;
    }
    // 3. Any of the queue's tokens lists the topics.
    for token in [ADMIN, PRODUCER, CONSUMER] {
        assert_eq!(get_as(&app, token, "/queue/topics").await.status(), 200);
    }
    // 4. A body not declared as JSON is 415, token or not: what a cross-site form can send.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut request = app
            .request(reqwest::Method::POST, &enqueue)
            .bearer_auth(PRODUCER)
            .body(message.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        error_body(request.send().await.unwrap(), 415).await;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing got through");
    // With the right token and JSON: fine.
    assert_eq!(
        post_as(&app, PRODUCER, &enqueue, message).await.status(),
        200
    );
}

#[actix_web::test]
async fn a_member_whose_session_expired_cannot_rewind_the_group() {
    let app = spawn_app_with(|s| s.queue.session_timeout_ms = 300).await;
    let queue = app.queue();
    queue.create_topic("jobs", 1).await.unwrap();
    let producer = queue.create_producer(&["jobs"]).await.unwrap();
    let batch: Vec<String> = (0..20).map(|i| format!("job {i}")).collect();
    producer.enqueue_batch("jobs", &batch).await.unwrap();
    let group = Subscription::Topics(vec!["jobs".into()]);
    let a = queue
        .create_consumer_for(group.clone(), Some("g"))
        .await
        .unwrap();
    let b = queue.create_consumer_for(group, Some("g")).await.unwrap();

    // 1. A owns the only partition (the lowest id): it fetches 10 and commits 5 of them.
    let fetched = a.fetch("jobs", 10, Duration::ZERO).await.unwrap();
    assert_eq!(fetched.len(), 10);
    a.commit("jobs", 0, 5).await.unwrap();
    // B cannot commit a partition it does not own.
    assert_eq!(status_of(b.commit("jobs", 0, 20).await.unwrap_err()), 409);

    // 2. A falls silent; B keeps polling, gets the partition when A's session expires, and
    //    reads the rest from the group's offset.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 15 {
        assert!(Instant::now() < deadline, "B got {} of 15", got.len());
        got.extend(
            b.dequeue_many("jobs", 100, Duration::from_millis(50))
                .await
                .unwrap(),
        );
    }
    assert_eq!(got[0].offset, 5);

    // 3. A, expired, commits offset 0: fenced (409); the group's offset stays at 20.
    assert_eq!(status_of(a.commit("jobs", 0, 0).await.unwrap_err()), 409);
    let offset: i64 =
        sqlx::query_scalar("SELECT next_offset FROM queue_offsets WHERE reader = 'group:g'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(offset, 20, "nothing rewound");
    assert_eq!(b.size("jobs").await.unwrap(), 0);
}
