//! One queue, two dialects: records produced through `/kafka` are consumed through `/queue`
//! and back, at the same offsets, and a group's offsets committed in one dialect are where the
//! other reads on.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use obelix::clients::queue::Subscription;

use crate::helpers::spawn_app;
use crate::kafka::{BINARY_V2, JSON_V2, V2, kafka, poll_until, reply};
use crate::queue::{CONSUMER, PRODUCER, drain};

#[actix_web::test]
async fn produced_in_one_dialect_consumed_in_the_other_at_the_same_offsets() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("x", 2).await.unwrap();

    // 1. Through /kafka: JSON records to partition 0, binary ones to partition 1.
    let json_records: Vec<Value> = (0..5).map(|n| json!({"value": {"n": n}})).collect();
    let (status, _, produced_json) = reply(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/x/partitions/0",
            Some(JSON_V2),
            Some(json!({"records": json_records})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{produced_json}");
    let binary_records: Vec<Value> = (0..5).map(|_| json!({"value": "aGVsbG8="})).collect();
    let (_, _, produced_binary) = reply(
        kafka(
            &app,
            Method::POST,
            PRODUCER,
            "/topics/x/partitions/1",
            Some(BINARY_V2),
            Some(json!({"records": binary_records})),
        )
        .await,
    )
    .await;
    let kafka_offsets: Vec<(i64, i64)> = produced_json["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .chain(produced_binary["offsets"].as_array().unwrap())
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kafka_offsets.len(), 10);

    // 2. Through /queue, in a group: the same messages at the same offsets; JSON values as
    //    their JSON text, binary ones as their bytes.
    let native = queue
        .create_consumer_for(Subscription::Topics(vec!["x".into()]), Some("natives"))
        .await
        .unwrap();
    let mut got = drain(&native, "x", 10).await;
    got.sort_by_key(|m| (m.partition, m.offset));
    let native_offsets: Vec<(i64, i64)> =
        got.iter().map(|m| (m.partition as i64, m.offset)).collect();
    assert_eq!(native_offsets, kafka_offsets);
    assert_eq!(got[0].message, r#"{"n":0}"#);
    assert_eq!(got[9].message, "hello");

    // 3. The natives' group offsets, read through /kafka: where /queue stands (the next offset).
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/natives",
            Some(V2),
            Some(json!({"name": "peek", "format": "json"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let ask =
        json!({"partitions": [{"topic": "x", "partition": 0}, {"topic": "x", "partition": 1}]});
    let (_, _, committed) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            "/consumers/natives/instances/peek/offsets",
            Some(V2),
            Some(ask.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(committed["offsets"][0]["offset"], 5);
    assert_eq!(committed["offsets"][1]["offset"], 5);

    // 4. Back: through /queue, consumed through /kafka in a group with auto-commit.
    let producer = queue.create_producer(&["x"]).await.unwrap();
    let plain = producer.enqueue_to("x", 0, "plain text").await.unwrap();
    let object = producer.enqueue_to("x", 1, r#"{"a":1}"#).await.unwrap();
    let create = json!({"name": "k", "format": "json", "auto.offset.reset": "latest"});
    kafka(
        &app,
        Method::POST,
        CONSUMER,
        "/consumers/natives",
        Some(V2),
        Some(create),
    )
    .await;
    // The group has offsets (5 and 5): `latest` does not apply, the instance reads on from them.
    let sub = json!({"topics": ["x"]});
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::POST,
            CONSUMER,
            "/consumers/natives/instances/k/subscription",
            Some(V2),
            Some(sub),
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);
    native.leave().await.unwrap();
    let mut records = poll_until(&app, "/kafka/consumers/natives/instances/k", JSON_V2, 2).await;
    records.sort_by_key(|r| r["partition"].as_i64());
    assert_eq!(
        records,
        vec![
            json!({"topic": "x", "key": null, "value": "plain text", "partition": 0, "offset": plain.offset}),
            json!({"topic": "x", "key": null, "value": {"a": 1}, "partition": 1, "offset": object.offset}),
        ]
    );

    // 5. Auto-committed: the group's offsets moved past them, in both dialects.
    let (_, _, committed) = reply(
        kafka(
            &app,
            Method::GET,
            CONSUMER,
            "/consumers/natives/instances/peek/offsets",
            Some(V2),
            Some(ask),
        )
        .await,
    )
    .await;
    assert_eq!(committed["offsets"][0]["offset"], plain.offset + 1);
    assert_eq!(committed["offsets"][1]["offset"], object.offset + 1);
    let (status, _, _) = reply(
        kafka(
            &app,
            Method::DELETE,
            CONSUMER,
            "/consumers/natives/instances/k",
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 204);
    let again = queue
        .create_consumer_for(Subscription::Topics(vec!["x".into()]), Some("natives"))
        .await
        .unwrap();
    assert_eq!(
        again.size("x").await.unwrap(),
        0,
        "nothing left for the group"
    );
    let next = producer.enqueue_to("x", 0, "after").await.unwrap();
    let m = again
        .dequeue_many("x", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (m.len(), m[0].offset, m[0].message.as_str()),
        (1, next.offset, "after")
    );
}
