//! The log queue under crashes: a broker, the write manager and a read manager, each crashed
//! mid-traffic through the admin API. Nothing acknowledged is lost and traffic resumes; a broker
//! kept down answers 503 with `Retry-After` for its partitions.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use obelix::clients::ClientError;
use obelix::clients::queue::{Subscription, TopicOptions};
use obelix::queue::StoredMessage;
use obelix::queue::hooks::{BrokerTask, TestHooks};
use serde_json::json;

use crate::helpers::{error_body, eventually, spawn_app, spawn_app_with};
use crate::queue::{CONSUMER, PRODUCER, assert_stored, get_as, post_as, status_of};

const PRODUCERS: usize = 4;
const MESSAGES_EACH: usize = 40;
/// The crash is sent once this many messages have been acknowledged.
const CRASH_AFTER: usize = 30;

fn is_unavailable(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused { status, .. } if status.as_u16() == 503)
}

/// Producers and a consumer of a 3-partition topic, plus registrations, while `actor` crashes
/// (and stays down `stay_down_ms`). Producers retry on 503, as clients should. A consumer in a
/// `group` asks the read managers where to read; one in none does not need them.
async fn crash_under_load(actor: &str, stay_down_ms: u64, group: Option<&str>) {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("load", 3).await.unwrap();
    let consumer = queue
        .create_consumer_for(Subscription::Topics(vec!["load".into()]), group)
        .await
        .unwrap();
    let acked: Mutex<Vec<(i32, i64, String)>> = Mutex::new(Vec::new());
    let consumed: Mutex<Vec<StoredMessage>> = Mutex::new(Vec::new());
    let producing = AtomicBool::new(true);

    let producers = (0..PRODUCERS).map(|p| {
        let (queue, acked) = (&queue, &acked);
        async move {
            let producer = queue.create_producer(&["load"]).await.unwrap();
            for i in 0..MESSAGES_EACH {
                let m = format!("p{p}-{i}");
                let placed = loop {
                    match producer.enqueue("load", &m).await {
                        Ok(placed) => break placed,
                        Err(e) if is_unavailable(&e) => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Err(e) => panic!("enqueue {m} failed during the crash of {actor}: {e}"),
                    }
                };
                acked
                    .lock()
                    .unwrap()
                    .push((placed.partition, placed.offset, m));
            }
        }
    });
    let reader = async {
        while producing.load(Ordering::SeqCst) {
            match consumer
                .dequeue_many("load", 20, Duration::from_millis(100))
                .await
            {
                Ok(messages) => consumed.lock().unwrap().extend(messages),
                Err(e) if is_unavailable(&e) => {}
                Err(e) => panic!("dequeue failed during the crash of {actor}: {e}"),
            }
        }
    };
    let crasher = async {
        eventually(Duration::from_secs(30), || async {
            acked.lock().unwrap().len() >= CRASH_AFTER
        })
        .await;
        let query = format!("mode=panic&stay_down_ms={stay_down_ms}");
        assert_eq!(app.crash(actor, &query).await.status(), 202);
        // While it is down, registrations still work (for the write manager: by the read
        // manager elected in its place).
        eventually(Duration::from_secs(5), || async {
            app.actor_status(actor).await["alive"] == false
        })
        .await;
        let registered = queue.create_producer(&["load"]).await;
        registered.unwrap_or_else(|e| panic!("a registration failed while {actor} was down: {e}"));
        let registered = queue.create_consumer(&["load"]).await;
        registered.unwrap_or_else(|e| panic!("a registration failed while {actor} was down: {e}"));
        assert_eq!(
            app.actor_status(actor).await["alive"],
            false,
            "{actor} came back too early for this test to mean anything"
        );
    };
    tokio::join!(
        async {
            futures_util::future::join_all(producers).await;
            producing.store(false, Ordering::SeqCst);
        },
        reader,
        crasher
    );
    app.await_restart(actor, 1).await;

    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), PRODUCERS * MESSAGES_EACH);
    assert_stored(&app, "load", &acked).await;

    // Traffic resumes: new messages, and the consumer gets every acknowledged one.
    let producer = queue.create_producer(&["load"]).await.unwrap();
    let last = producer.enqueue("load", "after the crash").await.unwrap();
    let got: Mutex<BTreeSet<(i32, i64, String)>> = Mutex::new(
        consumed
            .into_inner()
            .unwrap()
            .into_iter()
            .map(|m| (m.partition, m.offset, m.message))
            .collect(),
    );
    eventually(Duration::from_secs(15), || async {
        if let Ok(messages) = consumer
            .dequeue_many("load", 100, Duration::from_millis(100))
            .await
        {
            got.lock().unwrap().extend(
                messages
                    .into_iter()
                    .map(|m| (m.partition, m.offset, m.message)),
            );
        }
        let got = got.lock().unwrap();
        got.contains(&(last.partition, last.offset, "after the crash".to_owned()))
            && acked.iter().all(|a| got.contains(a))
    })
    .await;
    let got = got.into_inner().unwrap();
    let missing: Vec<_> = acked.iter().filter(|a| !got.contains(*a)).collect();
    assert!(missing.is_empty(), "the consumer never got {missing:?}");
}

#[actix_web::test]
async fn a_broker_crashed_mid_traffic_loses_nothing() {
    crash_under_load("queue-broker-1", 1_000, None).await;
}

#[actix_web::test]
async fn the_write_manager_crashed_mid_traffic_is_replaced() {
    crash_under_load("queue-write-manager", 1_500, None).await;
}

#[actix_web::test]
async fn a_read_manager_crashed_mid_traffic_loses_nothing() {
    // The consumer is in a group: each of its dequeues asks a read manager.
    crash_under_load("queue-read-manager-1", 1_000, Some("crew")).await;
}

#[actix_web::test]
async fn a_broker_kept_down_answers_503_with_retry_after_then_recovers() {
    let app = spawn_app().await;
    let queue = app.queue();
    let topic = queue.create_topic("logs", 3).await.unwrap();
    let down_partition = topic.brokers.iter().position(|&b| b == 1).unwrap() as i32;
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    for i in 0..5 {
        producer
            .enqueue_to("logs", down_partition, &format!("before {i}"))
            .await
            .unwrap();
    }
    let reader = queue
        .create_consumer_for(
            Subscription::Partition {
                topic: "logs".into(),
                partition: down_partition,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        app.crash("queue-broker-1", "mode=panic&stay_down_ms=2000")
            .await
            .status(),
        202
    );
    eventually(Duration::from_secs(5), || async {
        app.actor_status("queue-broker-1").await["alive"] == false
    })
    .await;

    let enqueue = post_as(
        &app,
        PRODUCER,
        &format!("/queue/producers/{}/messages", producer.id),
        json!({"topic": "logs", "partition": down_partition, "message": "while down"}),
    )
    .await;
    assert_eq!(enqueue.headers()["retry-after"], "1");
    let body = error_body(enqueue, 503).await;
    assert!(
        body["error"].as_str().unwrap().contains("queue-broker-1"),
        "{body}"
    );
    let dequeue = get_as(
        &app,
        CONSUMER,
        &format!("/queue/consumers/{}/messages?topic=logs", reader.id),
    )
    .await;
    assert_eq!(dequeue.headers()["retry-after"], "1");
    error_body(dequeue, 503).await;
    let size = get_as(
        &app,
        CONSUMER,
        &format!("/queue/consumers/{}/size?topic=logs", reader.id),
    )
    .await;
    error_body(size, 503).await;
    // Unkeyed messages go to the partitions that are up.
    for _ in 0..4 {
        let placed = producer.enqueue("logs", "elsewhere").await.unwrap();
        assert_ne!(placed.partition, down_partition);
    }

    // Back up when its stay-down ends: it recovered its partition from PostgreSQL.
    app.await_restart("queue-broker-1", 1).await;
    let got = reader
        .dequeue_many("logs", 10, Duration::from_millis(500))
        .await
        .unwrap();
    let texts: Vec<&str> = got.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(
        texts,
        ["before 0", "before 1", "before 2", "before 3", "before 4"]
    );
    let next = producer
        .enqueue_to("logs", down_partition, "after")
        .await
        .unwrap();
    assert_eq!(next.offset, 5, "offsets go on where they stopped");
}

#[actix_web::test]
async fn a_panicking_broker_task_is_reported_and_the_broker_goes_on() {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| {
            s.queue.hooks = hooks;
            s.queue.brokers = 1;
            s.queue.retention_interval_ms = 50;
            // Every read is a block read.
            s.queue.tail_messages = 0;
        }
    })
    .await;
    let queue = app.queue();
    let keep_five = TopicOptions {
        retention_messages: Some(5),
        ..Default::default()
    };
    queue.create_topic_with("t", 1, keep_five).await.unwrap();
    let producer = queue.create_producer(&["t"]).await.unwrap();
    let consumer = queue.create_consumer(&["t"]).await.unwrap();
    let stored = || {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM queue_messages")
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // 1. A retention round panics (the next one after arming, with nothing to cut yet).
    hooks.panic_next(BrokerTask::Retention);
    eventually(Duration::from_secs(5), || async { hooks.armed() == 0 }).await;

    // 2. A flush panics: its request fails with 503; the next ones are committed.
    hooks.panic_next(BrokerTask::Flush);
    let lost = producer.enqueue("t", "lost").await.unwrap_err();
    assert_eq!(status_of(lost), 503);
    let batch: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    producer.enqueue_batch("t", &batch).await.unwrap();

    // Retention still runs after its panic: 5 kept.
    eventually(Duration::from_secs(10), || async { stored().await == 5 }).await;

    // 3. A block read panics: its dequeue fails with 503; the next one reads the block.
    hooks.panic_next(BrokerTask::BlockRead);
    let failed = consumer
        .dequeue_many("t", 10, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(status_of(failed), 503);
    let got = consumer
        .dequeue_many("t", 10, Duration::ZERO)
        .await
        .unwrap();
    let texts: Vec<&str> = got.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["m15", "m16", "m17", "m18", "m19"]);

    // 4. An offset commit panics: that dequeue fails with 503; the next one gets the messages.
    producer
        .enqueue_batch("t", &["x".into(), "y".into()])
        .await
        .unwrap();
    hooks.panic_next(BrokerTask::OffsetCommit);
    let failed = consumer
        .dequeue_many("t", 10, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(status_of(failed), 503);
    let got = consumer
        .dequeue_many("t", 10, Duration::ZERO)
        .await
        .unwrap();
    let texts: Vec<&str> = got.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["x", "y"]);
    assert_eq!(app.actor_status("queue-broker-1").await["alive"], true);
}
