//! The log queue refuses bad input with a clear 4xx and a JSON body naming the field.

use serde_json::{Value, json};

use crate::helpers::{error_body, spawn_app_with};
use crate::queue::{ADMIN, CONSUMER, PRODUCER, get_as, post_as};
#[actix_web::test]
async fn bad_input_gets_clear_4xx_json_errors() {
    let app = spawn_app_with(|s| {
        s.queue.max_message_bytes = 32;
        s.queue.max_topics = 3;
        s.queue.max_total_partitions = 5;
    })
    .await;
    let queue = app.queue();
    queue.create_topic("logs", 2).await.unwrap();
    queue.create_topic("other", 1).await.unwrap();
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    let consumer = queue.create_consumer(&["logs"]).await.unwrap();
    let enqueue = |id: i64, body: Value| {
        let app = &app;
        async move {
            post_as(
                &app,
                PRODUCER,
                &format!("/queue/producers/{id}/messages"),
                body,
            )
            .await
        }
    };

    let cases: Vec<(&str, reqwest::Response, u16)> = vec![
        (
            "unknown producer",
            enqueue(9999, json!({"topic":"logs","message":"m"})).await,
            404,
        ),
        (
            "unregistered topic",
            enqueue(producer.id, json!({"topic":"other","message":"m"})).await,
            403,
        ),
        (
            "unknown topic",
            enqueue(producer.id, json!({"topic":"nope","message":"m"})).await,
            404,
        ),
        (
            "empty message",
            enqueue(producer.id, json!({"topic":"logs","message":""})).await,
            422,
        ),
        (
            "oversized message",
            enqueue(
                producer.id,
                json!({"topic":"logs","message":"x".repeat(33)}),
            )
            .await,
            422,
        ),
        (
            "empty batch",
            enqueue(producer.id, json!({"topic":"logs","messages":[]})).await,
            422,
        ),
        (
            "both message and messages",
            enqueue(
                producer.id,
                json!({"topic":"logs","message":"a","messages":["b"]}),
            )
            .await,
            422,
        ),
        (
            "no message",
            enqueue(producer.id, json!({"topic":"logs"})).await,
            422,
        ),
        (
            "a number as message",
            enqueue(producer.id, json!({"topic":"logs","message":5})).await,
            422,
        ),
        (
            "unknown partition",
            enqueue(
                producer.id,
                json!({"topic":"logs","partition":7,"message":"m"}),
            )
            .await,
            404,
        ),
        (
            "unknown field",
            enqueue(
                producer.id,
                json!({"topic":"logs","message":"m","colour":"red"}),
            )
            .await,
            422,
        ),
        (
            "topic of 0 partitions",
            post_as(
                &app,
                ADMIN,
                "/queue/topics",
                json!({"name":"zero","partitions":0}),
            )
            .await,
            422,
        ),
        (
            "topic with a bad name",
            post_as(
                &app,
                ADMIN,
                "/queue/topics",
                json!({"name":"a b","partitions":1}),
            )
            .await,
            422,
        ),
        (
            "negative retention",
            post_as(
                &app,
                ADMIN,
                "/queue/topics",
                json!({"name":"r","retention_ms":-1}),
            )
            .await,
            422,
        ),
        (
            "a retention older than any clock",
            post_as(
                &app,
                ADMIN,
                "/queue/topics",
                json!({"name":"rhuge","partitions":3,"retention_ms":10_000_000_000_000_000u64}),
            )
            .await,
            422,
        ),
        (
            "a NUL in a message",
            enqueue(producer.id, json!({"topic":"logs","message":"a\u{0}b"})).await,
            422,
        ),
        (
            "a NUL in one message of a batch",
            enqueue(
                producer.id,
                json!({"topic":"logs","messages":["fine","a\u{0}b"]}),
            )
            .await,
            422,
        ),
        (
            "a NUL in a key",
            enqueue(
                producer.id,
                json!({"topic":"logs","key":"k\u{0}","message":"m"}),
            )
            .await,
            422,
        ),
        (
            "partitions past queue.max_total_partitions",
            post_as(
                &app,
                ADMIN,
                "/queue/topics",
                json!({"name":"big","partitions":3}),
            )
            .await,
            422,
        ),
        (
            "a topic past queue.max_topics",
            {
                queue.create_topic("third", 1).await.unwrap();
                post_as(
                    &app,
                    ADMIN,
                    "/queue/topics",
                    json!({"name":"fourth","partitions":1}),
                )
                .await
            },
            422,
        ),
        (
            "producer of an unknown topic",
            post_as(
                &app,
                PRODUCER,
                "/queue/producers",
                json!({"topics":["nope"]}),
            )
            .await,
            404,
        ),
        (
            "producer of nothing",
            post_as(&app, PRODUCER, "/queue/producers", json!({})).await,
            422,
        ),
        (
            "producer of no topics",
            post_as(&app, PRODUCER, "/queue/producers", json!({"topics":[]})).await,
            422,
        ),
        (
            "consumer of an unknown partition",
            post_as(
                &app,
                CONSUMER,
                "/queue/consumers",
                json!({"topic":"logs","partition":2}),
            )
            .await,
            404,
        ),
        (
            "consumer in a bad group",
            post_as(
                &app,
                CONSUMER,
                "/queue/consumers",
                json!({"topics":["logs"],"group":""}),
            )
            .await,
            422,
        ),
        (
            "unknown consumer",
            get_as(&app, CONSUMER, "/queue/consumers/9999/messages?topic=logs").await,
            404,
        ),
        (
            "unknown consumer's size",
            get_as(&app, CONSUMER, "/queue/consumers/9999/size?topic=logs").await,
            404,
        ),
        (
            "consumer of another topic",
            get_as(
                &app,
                CONSUMER,
                &format!("/queue/consumers/{}/messages?topic=other", consumer.id),
            )
            .await,
            403,
        ),
        (
            "max of 0",
            get_as(
                &app,
                CONSUMER,
                &format!("/queue/consumers/{}/messages?topic=logs&max=0", consumer.id),
            )
            .await,
            422,
        ),
        (
            "wait too long",
            get_as(
                &app,
                CONSUMER,
                &format!(
                    "/queue/consumers/{}/messages?topic=logs&wait_ms=99999999",
                    consumer.id
                ),
            )
            .await,
            422,
        ),
        (
            "no topic",
            get_as(
                &app,
                CONSUMER,
                &format!("/queue/consumers/{}/messages", consumer.id),
            )
            .await,
            400,
        ),
        (
            "id not a number",
            get_as(&app, CONSUMER, "/queue/consumers/abc/messages?topic=logs").await,
            400,
        ),
        (
            "commit past the end",
            post_as(
                &app,
                CONSUMER,
                &format!("/queue/consumers/{}/offsets", consumer.id),
                json!({"topic":"logs","partition":0,"offset":5}),
            )
            .await,
            422,
        ),
        (
            "commit to an unknown partition",
            post_as(
                &app,
                CONSUMER,
                &format!("/queue/consumers/{}/offsets", consumer.id),
                json!({"topic":"logs","partition":9,"offset":0}),
            )
            .await,
            404,
        ),
        (
            "leave twice",
            {
                let c = queue.create_consumer(&["logs"]).await.unwrap();
                c.leave().await.unwrap();
                app.request(
                    reqwest::Method::DELETE,
                    &format!("/queue/consumers/{}", c.id),
                )
                .bearer_auth(CONSUMER)
                .send()
                .await
                .unwrap()
            },
            404,
        ),
    ];
    for (what, response, status) in cases {
        assert_eq!(response.status(), status, "{what}");
        let body = error_body(response, status).await;
        assert!(!body["error"].as_str().unwrap().is_empty(), "{what}");
    }
    let broken = app
        .request(reqwest::Method::POST, "/queue/topics")
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    error_body(broken, 400).await;
    // Nothing was stored by any of that.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}
