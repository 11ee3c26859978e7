//! The log queue (seed 004) through its REST API and client library: real HTTP, real actors,
//! real PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use obelix::clients::ClientError;
use obelix::clients::queue::{Consumer, Subscription, TopicOptions};
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

#[actix_web::test]
async fn a_consumer_group_shares_partitions_and_hands_them_over() {
    let app = spawn_app_with(|s| s.queue.session_timeout_ms = 400).await;
    let queue = app.queue();
    queue.create_topic("work", 4).await.unwrap();
    let producer = queue.create_producer(&["work"]).await.unwrap();
    for p in 0..4 {
        let batch: Vec<String> = (0..5).map(|i| format!("p{p}-{i}")).collect();
        for m in &batch {
            producer.enqueue_to("work", p, m).await.unwrap();
        }
    }
    let topics = Subscription::Topics(vec!["work".into()]);
    let a = queue
        .create_consumer_for(topics.clone(), Some("crew"))
        .await
        .unwrap();
    let b = queue
        .create_consumer_for(topics.clone(), Some("crew"))
        .await
        .unwrap();
    // Each member reads only its own share; together, every message once.
    let mut by_member: BTreeMap<i64, BTreeSet<i32>> = BTreeMap::new();
    let mut all = Vec::new();
    for _ in 0..20 {
        for member in [&a, &b] {
            for m in member
                .dequeue_many("work", 2, Duration::ZERO)
                .await
                .unwrap()
            {
                by_member.entry(member.id).or_default().insert(m.partition);
                all.push(m);
            }
        }
    }
    assert_eq!(all.len(), 20);
    let ids: BTreeSet<(i32, i64)> = all.iter().map(|m| (m.partition, m.offset)).collect();
    assert_eq!(ids.len(), 20, "no message twice within the group");
    assert_in_order(&all);
    let (mine, theirs) = (&by_member[&a.id], &by_member[&b.id]);
    assert!(mine.is_disjoint(theirs), "{mine:?} and {theirs:?} overlap");
    assert_eq!(mine.len() + theirs.len(), 4);

    // The group's offsets are shared and persisted.
    let shared: i64 = sqlx::query_scalar(
        "SELECT sum(next_offset)::bigint FROM queue_offsets WHERE reader = 'group:crew'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(shared, 20);

    // A leaves: B takes over all partitions.
    for p in 0..4 {
        producer
            .enqueue_to("work", p, &format!("after-leave-{p}"))
            .await
            .unwrap();
    }
    a.leave().await.unwrap();
    let rest = drain(&b, "work", 4).await;
    let partitions: BTreeSet<i32> = rest.iter().map(|m| m.partition).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1, 2, 3]));

    // C joins and never polls: after the session timeout, B gets C's share again.
    let c = queue
        .create_consumer_for(topics, Some("crew"))
        .await
        .unwrap();
    for p in 0..4 {
        producer
            .enqueue_to("work", p, &format!("after-join-{p}"))
            .await
            .unwrap();
    }
    let seen = std::sync::Mutex::new(BTreeSet::new());
    eventually(Duration::from_secs(10), || async {
        let messages = b
            .dequeue_many("work", 10, Duration::from_millis(50))
            .await
            .unwrap();
        let mut seen = seen.lock().unwrap();
        seen.extend(messages.iter().map(|m| m.partition));
        seen.len() == 4
    })
    .await;
    assert_eq!(
        c.size("work").await.unwrap(),
        0,
        "the group read everything"
    );
}

#[actix_web::test]
async fn retention_deletes_old_messages_in_bulk_and_offsets_go_on() {
    let app = spawn_app_with(|s| s.queue.retention_interval_ms = 50).await;
    let queue = app.queue();
    queue
        .create_topic_with(
            "recent",
            1,
            TopicOptions {
                retention_messages: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    queue
        .create_topic_with(
            "fleeting",
            1,
            TopicOptions {
                retention_ms: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    queue.create_topic("forever", 1).await.unwrap();
    let producer = queue
        .create_producer(&["recent", "fleeting", "forever"])
        .await
        .unwrap();
    let batch: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    for topic in ["recent", "fleeting", "forever"] {
        producer.enqueue_batch(topic, &batch).await.unwrap();
    }
    let count = |topic: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM queue_messages m JOIN queue_topics t ON t.id = m.topic_id \
                 WHERE t.name = $1",
            )
            .bind(topic)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    eventually(Duration::from_secs(10), || async {
        count("recent").await == 5
    })
    .await;
    eventually(Duration::from_secs(10), || async {
        count("fleeting").await == 0
    })
    .await;
    assert_eq!(count("forever").await, 20, "the default keeps everything");

    // A new consumer starts at the first message kept; offsets are never reused.
    let consumer = queue
        .create_consumer(&["recent", "fleeting"])
        .await
        .unwrap();
    let kept = drain(&consumer, "recent", 5).await;
    assert_eq!(kept[0].offset, 15);
    assert_eq!(consumer.size("fleeting").await.unwrap(), 0);
    let next = producer.enqueue("fleeting", "new").await.unwrap();
    assert_eq!(next.offset, 20, "an emptied partition goes on from its end");
    let start: i64 = sqlx::query_scalar(
        "SELECT p.start_offset FROM queue_partitions p JOIN queue_topics t ON t.id = p.topic_id \
         WHERE t.name = 'recent'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(start, 15);
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

/// Three consumers read 5,000 messages older than a tail of 10 (2 partitions, 6 blocks of the
/// read cache), one first, then two together; returns how many range scans the brokers ran.
async fn three_readers_of_old_messages(read_cache_bytes: usize) -> u64 {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| {
            s.queue.tail_messages = 10;
            s.queue.read_cache_bytes = read_cache_bytes;
            s.queue.hooks = hooks;
        }
    })
    .await;
    let queue = app.queue();
    queue.create_topic("old", 2).await.unwrap();
    let producer = queue.create_producer(&["old"]).await.unwrap();
    let total = 5_000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<String> = chunk.iter().map(|i| format!("m{i}")).collect();
        producer.enqueue_batch("old", &batch).await.unwrap();
    }
    let mut consumers = Vec::new();
    for _ in 0..3 {
        consumers.push(queue.create_consumer(&["old"]).await.unwrap());
    }
    // The first reader goes alone; the other two follow it, together.
    let mut all = vec![drain(&consumers[0], "old", total).await];
    let reads = consumers[1..].iter().map(|c| drain(c, "old", total));
    all.extend(futures_util::future::join_all(reads).await);
    for got in all {
        assert_eq!(got.len(), total);
        assert_in_order(&got);
        let texts: BTreeSet<&str> = got.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(texts.len(), total, "every message once");
        for m in &got {
            assert!(m.message.starts_with('m'), "{m:?}");
        }
    }
    for c in &consumers {
        assert_eq!(c.size("old").await.unwrap(), 0);
    }
    hooks.block_reads()
}

#[actix_web::test]
async fn readers_older_than_the_tail_share_one_range_scan_per_block() {
    // Room for every block: each of the 6 blocks is read from PostgreSQL once, for all three
    // readers (without sharing, each reader would scan each block itself: 18 scans).
    let scans = three_readers_of_old_messages(64 * 1024 * 1024).await;
    assert!(
        (1..=6).contains(&scans),
        "{scans} range scans for 6 blocks read by 3 readers"
    );
}

#[actix_web::test]
async fn a_small_read_cache_evicts_and_reads_blocks_again() {
    // Room for about one block: the blocks the first reader left behind are evicted, and read
    // again for the two that follow; every reader still gets everything once, in order.
    let scans = three_readers_of_old_messages(300 * 1024).await;
    assert!(scans > 6, "only {scans} range scans: nothing was evicted");
}

#[actix_web::test]
async fn the_read_cache_serves_nothing_retention_deleted() {
    let app = spawn_app_with(|s| {
        s.queue.retention_interval_ms = 50;
        s.queue.tail_messages = 0;
    })
    .await;
    let queue = app.queue();
    queue
        .create_topic_with(
            "short",
            1,
            TopicOptions {
                retention_messages: Some(1_500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let producer = queue.create_producer(&["short"]).await.unwrap();
    let early = queue.create_consumer(&["short"]).await.unwrap();
    let batch: Vec<String> = (0..1_000).map(|i| format!("a{i}")).collect();
    producer.enqueue_batch("short", &batch).await.unwrap();
    // Read through the read cache (the tail keeps nothing): block 0 holds offsets 0..1000.
    assert_eq!(drain(&early, "short", 1_000).await.len(), 1_000);
    let batch: Vec<String> = (1_000..3_000).map(|i| format!("b{i}")).collect();
    producer
        .enqueue_batch("short", &batch[..1_000])
        .await
        .unwrap();
    producer
        .enqueue_batch("short", &batch[1_000..])
        .await
        .unwrap();
    let start = || {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT p.start_offset FROM queue_partitions p JOIN queue_topics t \
                 ON t.id = p.topic_id WHERE t.name = 'short'",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    eventually(Duration::from_secs(10), || async { start().await == 1_500 }).await;
    // The broker learns its new start just after the delete commits: wait for its own view (a
    // new consumer has exactly the retained 1,500 to read), then read through the cache.
    let late = queue.create_consumer(&["short"]).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        late.size("short").await.unwrap() == 1_500
    })
    .await;
    let got = drain(&late, "short", 1_500).await;
    assert_eq!(got[0].offset, 1_500, "nothing below the start");
    assert_in_order(&got);
    assert_eq!(late.size("short").await.unwrap(), 0);
}

#[actix_web::test]
async fn a_message_postgresql_cannot_store_fails_alone() {
    // The NUL check is off, so PostgreSQL itself refuses those messages inside group commits
    // shared with honest ones.
    let hooks = TestHooks::default();
    hooks.let_unstorable_through(true);
    let app = spawn_app_with(move |s| s.queue.hooks = hooks).await;
    let queue = app.queue();
    queue.create_topic("mixed", 1).await.unwrap();
    let producer = queue.create_producer(&["mixed"]).await.unwrap();
    let sends = (0..120).map(|i| {
        let producer = &producer;
        async move {
            let poison = i % 6 == 3;
            let m = if poison {
                format!("bad\u{0}{i}")
            } else {
                format!("good {i}")
            };
            let result = producer.enqueue("mixed", &m).await;
            (poison, m, result)
        }
    });
    for (poison, m, result) in futures_util::future::join_all(sends).await {
        match (poison, result) {
            (false, Ok(_)) => {}
            (false, Err(e)) => panic!("the honest {m:?} failed: {e}"),
            (true, Ok(placed)) => panic!("{m:?} was stored at {placed:?}"),
            (true, Err(ClientError::Refused { status, body, .. })) => {
                assert_eq!(status, 422, "{m:?}: {body}");
                for leak in ["0x00", "UTF8", "byte sequence", "SQLSTATE"] {
                    assert!(!body.contains(leak), "database text in a reply: {body}");
                }
            }
            (true, Err(e)) => panic!("{m:?}: {e}"),
        }
    }
    let offsets: Vec<i64> =
        sqlx::query_scalar("SELECT \"offset\" FROM queue_messages ORDER BY \"offset\"")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        offsets,
        (0..100).collect::<Vec<i64>>(),
        "dense, honest only"
    );
}

#[actix_web::test]
async fn a_group_with_mixed_registrations_reads_every_partition() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("mix", 3).await.unwrap();
    let producer = queue.create_producer(&["mix"]).await.unwrap();
    for p in 0..3 {
        let batch: Vec<String> = (0..10).map(|i| format!("p{p}-{i}")).collect();
        for m in &batch {
            producer.enqueue_to("mix", p, m).await.unwrap();
        }
    }
    // A reads partition 1 only, B the whole topic, both in group g.
    let a = queue
        .create_consumer_for(
            Subscription::Partition {
                topic: "mix".into(),
                partition: 1,
            },
            Some("g"),
        )
        .await
        .unwrap();
    let b = queue
        .create_consumer_for(Subscription::Topics(vec!["mix".into()]), Some("g"))
        .await
        .unwrap();
    let got: std::sync::Mutex<Vec<(i64, StoredMessage)>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 30 && Instant::now() < deadline {
        for member in [&a, &b] {
            let messages = member
                .dequeue_many("mix", 10, Duration::from_millis(20))
                .await
                .unwrap();
            got.lock()
                .unwrap()
                .extend(messages.into_iter().map(|m| (member.id, m)));
        }
    }
    let got = got.into_inner().unwrap();
    let partitions: BTreeSet<i32> = got.iter().map(|(_, m)| m.partition).collect();
    assert_eq!(
        partitions,
        BTreeSet::from([0, 1, 2]),
        "every partition is read"
    );
    assert_eq!(got.len(), 30, "every message once");
    assert!(
        got.iter()
            .all(|(member, m)| *member != a.id || m.partition == 1),
        "A reads only the partition it registered for"
    );
    assert!(
        got.iter().any(|(member, _)| *member == a.id),
        "A gets the partition it registered for"
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

#[actix_web::test]
async fn an_overloaded_broker_answers_503_instead_of_queueing() {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| {
            s.queue.hooks = hooks;
            s.queue.brokers = 1;
            s.queue.mailbox_capacity = 4;
            s.queue.max_pending_bytes = 64 * 1024;
        }
    })
    .await;
    let queue = app.queue();
    queue.create_topic("busy", 1).await.unwrap();
    let producer = queue.create_producer(&["busy"]).await.unwrap();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    // Sends `n` messages of `len` bytes at once; each answer is 200 or 503 (with Retry-After).
    let flood = |n: usize, len: usize| {
        let (producer, refused) = (&producer, &refused);
        futures_util::future::join_all((0..n).map(move |i| async move {
            let m = format!("{i:05}").repeat(len / 5);
            match producer.enqueue("busy", &m).await {
                Ok(placed) => Some(placed),
                Err(e) => {
                    assert_eq!(status_of(e), 503);
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    None
                }
            }
        }))
    };
    let refusals = || refused.load(std::sync::atomic::Ordering::SeqCst);

    // 1. The broker stops reading its mailbox: past 4 requests waiting, enqueues are refused
    //    at once instead of queueing behind them.
    hooks.hold_mailboxes(true);
    let (placed, _) = tokio::join!(flood(16, 10), async {
        eventually(Duration::from_secs(5), || async { refusals() >= 10 }).await;
        hooks.hold_mailboxes(false);
    });
    let accepted = placed.iter().flatten().count();
    assert!((1..=6).contains(&accepted), "{accepted} of 16 accepted");

    // 2. Flushes stall: past 64 KiB waiting for their commit (15 KiB each), enqueues are refused
    //    at once.
    refused.store(0, std::sync::atomic::Ordering::SeqCst);
    hooks.hold_flushes(true);
    let (placed, _) = tokio::join!(flood(8, 15 * 1024), async {
        eventually(Duration::from_secs(5), || async { refusals() >= 4 }).await;
        hooks.hold_flushes(false);
    });
    let accepted_now = placed.iter().flatten().count();
    assert!(
        (1..=4).contains(&accepted_now),
        "{accepted_now} of 8 accepted"
    );

    // What was accepted is stored, densely.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, accepted + accepted_now);
    assert_eq!(
        producer.enqueue("busy", "after").await.unwrap().offset,
        stored
    );
}
