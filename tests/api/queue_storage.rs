//! Older messages: retention deletes them in bulk, and readers behind the tail share a read
//! cache of blocks read once from PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use obelix::clients::queue::TopicOptions;
use obelix::queue::hooks::TestHooks;

use crate::helpers::{eventually, spawn_app_with};
use crate::queue::{assert_in_order, drain};
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

/// Three consumers read 5,000 messages older than a tail of 10 (2 partitions, 6 blocks of the
/// read cache), one first, then two together; returns how many range scans the brokers ran.
async fn three_readers_of_old_messages(read_cache_bytes: usize) -> u64 {
    let hooks = TestHooks::default();
    let app = spawn_app_with({
        let hooks = hooks.clone();
        move |s| {
            s.queue.tail_messages = 10;
            s.queue.read_cache_bytes = read_cache_bytes;
            // The budget follows (the start checks it).
            s.queue.memory_budget_bytes = s.queue.brokers_memory_bytes(s.server.max_body_bytes);
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
