//! The log queue (seed 004) through its REST API and client library: real HTTP, real actors,
//! real PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use obelix::clients::ClientError;
use obelix::clients::queue::{Consumer, Subscription};
use obelix::queue::StoredMessage;
use obelix::queue::hooks::TestHooks;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, eventually, spawn_app, spawn_app_with};

/// The queue's tokens in the tests: config.toml's development ones.
pub const ADMIN: &str = obelix::queue::tokens::DEVELOPMENT_ADMIN;
pub const PRODUCER: &str = obelix::queue::tokens::DEVELOPMENT_PRODUCER;
pub const CONSUMER: &str = obelix::queue::tokens::DEVELOPMENT_CONSUMER;

/// `POST path` with a JSON body and a bearer token.
pub async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, path)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST")
}

/// `GET path` with a bearer token.
pub async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.request(reqwest::Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

/// Reads everything `consumer` can get of `topic` until it has `expected` messages.
pub async fn drain(consumer: &Consumer, topic: &str, expected: usize) -> Vec<StoredMessage> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumer {} got {} of {expected}",
            consumer.id,
            got.len()
        );
        got.extend(
            consumer
                .dequeue_many(topic, 100, Duration::from_millis(500))
                .await
                .unwrap(),
        );
    }
    got
}

/// Each partition's messages arrive in offset order, densely, from `first[p]` on.
pub fn assert_in_order(messages: &[StoredMessage]) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for m in messages {
        if let Some(prev) = last.insert(m.partition, m.offset) {
            assert_eq!(
                m.offset,
                prev + 1,
                "partition {} out of order: {} after {prev}",
                m.partition,
                m.offset
            );
        }
    }
}

pub fn status_of(e: ClientError) -> u16 {
    match e {
        ClientError::Refused { status, .. } => status.as_u16(),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[actix_web::test]
async fn topics_producers_and_consumers_as_in_seed_004() {
    let app = spawn_app().await;
    let queue = app.queue();

    let topic = queue.create_topic("logs", 3).await.unwrap();
    assert_eq!(topic.partitions, 3);
    assert_eq!(topic.brokers.len(), 3, "one broker per partition");
    let again = post_as(
        &app,
        ADMIN,
        "/queue/topics",
        json!({"name": "logs", "partitions": 3}),
    )
    .await;
    error_body(again, 409).await;
    queue.create_topic("audit", 1).await.unwrap();
    let names: Vec<String> = queue
        .topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["audit", "logs"]);

    let producer = queue.create_producer(&["logs"]).await.unwrap();
    let consumer = queue.create_consumer(&["logs"]).await.unwrap();
    let first = producer.enqueue("logs", "one").await.unwrap();
    let batch = producer
        .enqueue_batch("logs", &["two".into(), "three".into()])
        .await
        .unwrap();
    assert_eq!(
        batch[0].partition, batch[1].partition,
        "a batch stays together"
    );
    assert_eq!(batch[1].offset, batch[0].offset + 1);
    assert_ne!(first.partition, batch[0].partition, "round-robin");
    assert_eq!(consumer.size("logs").await.unwrap(), 3);

    let got = drain(&consumer, "logs", 3).await;
    let texts: BTreeSet<&str> = got.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, BTreeSet::from(["one", "two", "three"]));
    assert_in_order(&got);
    assert_eq!(consumer.size("logs").await.unwrap(), 0);
    assert_eq!(consumer.dequeue("logs").await.unwrap(), None);

    // The single-message reply has the placement at the top too (for the benchmark's clients).
    let reply: Value = post_as(
        &app,
        PRODUCER,
        &format!("/queue/producers/{}/messages", producer.id),
        json!({"topic": "logs", "message": "four"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(reply["messages"][0]["offset"], reply["offset"]);

    // Everything is in PostgreSQL, readable as it is.
    let stored: Vec<(String, i32, i64, String)> = sqlx::query_as(
        "SELECT t.name, m.partition, m.\"offset\", m.payload FROM queue_messages m \
         JOIN queue_topics t ON t.id = m.topic_id ORDER BY m.partition, m.\"offset\"",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(stored.len(), 4);
    let brokers: i64 = sqlx::query_scalar("SELECT count(DISTINCT broker_id) FROM queue_partitions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(brokers, 3);
}

#[actix_web::test]
async fn partitions_keys_and_registrations_to_one_partition() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("orders", 4).await.unwrap();
    let producer = queue.create_producer(&["orders"]).await.unwrap();
    // One key, one partition, in order.
    let mut partitions = BTreeSet::new();
    let mut offsets = Vec::new();
    for i in 0..10 {
        let placed = producer
            .enqueue_keyed("orders", "customer-7", &format!("order {i}"))
            .await
            .unwrap();
        partitions.insert(placed.partition);
        offsets.push(placed.offset);
    }
    assert_eq!(partitions.len(), 1);
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
    let keyed_partition = *partitions.iter().next().unwrap();

    // A producer and a consumer of one partition.
    let other = (keyed_partition + 1) % 4;
    let narrow = queue
        .create_producer_for(Subscription::Partition {
            topic: "orders".into(),
            partition: other,
        })
        .await
        .unwrap();
    assert_eq!(
        narrow.enqueue("orders", "x").await.unwrap().partition,
        other
    );
    let refused = narrow
        .enqueue_to("orders", keyed_partition, "y")
        .await
        .unwrap_err();
    assert_eq!(status_of(refused), 403);
    let reader = queue
        .create_consumer_for(
            Subscription::Partition {
                topic: "orders".into(),
                partition: keyed_partition,
            },
            None,
        )
        .await
        .unwrap();
    let got = drain(&reader, "orders", 10).await;
    assert!(got.iter().all(|m| m.partition == keyed_partition));
    let texts: Vec<&str> = got.iter().map(|m| m.message.as_str()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("order {i}")).collect();
    assert_eq!(texts, expected);
}

#[actix_web::test]
async fn producers_and_consumers_concurrently_lose_nothing_and_keep_order() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 60;
    const CONSUMERS: usize = 3;
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("events", 3).await.unwrap();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        consumers.push(queue.create_consumer(&["events"]).await.unwrap());
    }
    let producers = (0..PRODUCERS).map(|p| {
        let queue = queue.clone();
        async move {
            let producer = queue.create_producer(&["events"]).await.unwrap();
            let mut sent = Vec::new();
            let mut i = 0;
            while i < EACH {
                if i % 3 == 0 {
                    // A batch of 5 now and then.
                    let batch: Vec<String> = (i..i + 5).map(|k| format!("p{p}-m{k}")).collect();
                    producer.enqueue_batch("events", &batch).await.unwrap();
                    sent.extend(batch);
                    i += 5;
                } else {
                    let m = format!("p{p}-m{i}");
                    producer.enqueue("events", &m).await.unwrap();
                    sent.push(m);
                    i += 1;
                }
            }
            sent
        }
    });
    let total: usize = (0..PRODUCERS)
        .map(|_| {
            let mut n = 0;
            let mut i = 0;
            while i < EACH {
                if i % 3 == 0 {
                    n += 5;
                    i += 5;
                } else {
                    n += 1;
                    i += 1;
                }
            }
            n
        })
        .sum();
    let readers = consumers.iter().map(|c| drain(c, "events", total));
    let (sent, got) = tokio::join!(
        futures_util::future::join_all(producers),
        futures_util::future::join_all(readers)
    );
    let produced: BTreeSet<String> = sent.into_iter().flatten().collect();
    assert_eq!(produced.len(), total);
    for (c, messages) in consumers.iter().zip(got) {
        assert_in_order(&messages);
        let positions: BTreeSet<(i32, i64)> =
            messages.iter().map(|m| (m.partition, m.offset)).collect();
        assert_eq!(
            positions.len(),
            messages.len(),
            "consumer {} got duplicates",
            c.id
        );
        let texts: BTreeSet<String> = messages.into_iter().map(|m| m.message).collect();
        assert_eq!(
            texts, produced,
            "consumer {} did not get exactly what was produced",
            c.id
        );
        assert_eq!(c.size("events").await.unwrap(), 0);
    }
    // Offsets are dense from 0 in every partition, as PostgreSQL has them.
    let holes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT partition, max(\"offset\") + 1 - count(*) AS gap \
         FROM queue_messages GROUP BY partition) g WHERE gap <> 0",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(holes, 0);
}

#[actix_web::test]
async fn consumers_read_independently_and_size_counts_what_is_left() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("logs", 2).await.unwrap();
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    let batch: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    producer.enqueue_batch("logs", &batch).await.unwrap();
    let fast = queue.create_consumer(&["logs"]).await.unwrap();
    let slow = queue.create_consumer(&["logs"]).await.unwrap();
    assert_eq!(fast.size("logs").await.unwrap(), 10);
    let got = fast.dequeue_many("logs", 4, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(fast.size("logs").await.unwrap(), 6);
    assert_eq!(
        slow.size("logs").await.unwrap(),
        10,
        "another consumer's offsets are its own"
    );
    let all = drain(&slow, "logs", 10).await;
    let texts: Vec<&str> = all.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, batch.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fast.size("logs").await.unwrap(), 6);
    let offsets: Vec<(String, i64)> =
        sqlx::query_as("SELECT reader, next_offset FROM queue_offsets ORDER BY reader")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(
        offsets.contains(&(format!("consumer:{}", fast.id), 4)),
        "{offsets:?}"
    );
    assert!(
        offsets.contains(&(format!("consumer:{}", slow.id), 10)),
        "{offsets:?}"
    );
}

#[actix_web::test]
async fn a_long_poll_is_woken_by_an_enqueue() {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| s.queue.hooks = hooks
    })
    .await;
    let queue = app.queue();
    queue.create_topic("logs", 2).await.unwrap();
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    let consumer = queue.create_consumer(&["logs"]).await.unwrap();
    let wait = Duration::from_secs(20);
    let started = Instant::now();
    // The enqueue goes once the poll found nothing and is parked: only a wake-up answers it.
    let (got, _) = tokio::join!(consumer.dequeue_many("logs", 10, wait), async {
        eventually(Duration::from_secs(5), || async {
            hooks.parked_polls() == 1
        })
        .await;
        producer.enqueue("logs", "wake up").await.unwrap()
    });
    let got = got.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, "wake up");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, not woken by the enqueue",
        started.elapsed()
    );
    // And with nothing to come, it waits for wait_ms and answers empty.
    let started = Instant::now();
    let none = consumer
        .dequeue_many("logs", 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[actix_web::test]
async fn fetch_without_advancing_then_commit() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("jobs", 1).await.unwrap();
    let producer = queue.create_producer(&["jobs"]).await.unwrap();
    let batch: Vec<String> = (0..6).map(|i| format!("job {i}")).collect();
    producer.enqueue_batch("jobs", &batch).await.unwrap();
    let worker = queue.create_consumer(&["jobs"]).await.unwrap();

    let first = worker.fetch("jobs", 3, Duration::ZERO).await.unwrap();
    let again = worker.fetch("jobs", 3, Duration::ZERO).await.unwrap();
    assert_eq!(
        first, again,
        "a fetch without commit does not move the offset"
    );
    assert_eq!(worker.size("jobs").await.unwrap(), 6);
    // Processed the first two: commit past them.
    worker.commit("jobs", 0, 2).await.unwrap();
    let next = worker.fetch("jobs", 3, Duration::ZERO).await.unwrap();
    assert_eq!(next[0].offset, 2);
    assert_eq!(worker.size("jobs").await.unwrap(), 4);
    let committed: i64 =
        sqlx::query_scalar("SELECT next_offset FROM queue_offsets WHERE reader = $1")
            .bind(format!("consumer:{}", worker.id))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(committed, 2, "the commit is persisted");
    // Rewind is allowed (replay); past the end is not.
    worker.commit("jobs", 0, 0).await.unwrap();
    assert_eq!(worker.size("jobs").await.unwrap(), 6);
    assert_eq!(
        status_of(worker.commit("jobs", 0, 7).await.unwrap_err()),
        422
    );
}

/// Used by the crash tests too: the acknowledged messages are all in PostgreSQL.
pub async fn assert_stored(app: &TestApp, topic: &str, acked: &[(i32, i64, String)]) {
    let stored: Vec<(i32, i64, String)> = sqlx::query_as(
        "SELECT m.partition, m.\"offset\", m.payload FROM queue_messages m \
         JOIN queue_topics t ON t.id = m.topic_id WHERE t.name = $1",
    )
    .bind(topic)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let stored: BTreeSet<(i32, i64, String)> = stored.into_iter().collect();
    let missing: Vec<&(i32, i64, String)> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
}

#[actix_web::test]
async fn a_consumer_deleted_during_its_long_poll_gets_404_at_once() {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| s.queue.hooks = hooks
    })
    .await;
    let queue = app.queue();
    queue.create_topic("logs", 1).await.unwrap();
    let consumer = queue.create_consumer(&["logs"]).await.unwrap();
    let started = Instant::now();
    let (polled, _) = tokio::join!(
        consumer.dequeue_many("logs", 10, Duration::from_secs(20)),
        async {
            eventually(Duration::from_secs(5), || async {
                hooks.parked_polls() == 1
            })
            .await;
            consumer.leave().await.unwrap();
        }
    );
    assert_eq!(status_of(polled.unwrap_err()), 404);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}
