//! The log queue at its limits: a message PostgreSQL cannot store fails alone, and a broker
//! past its mailbox or its bytes waiting for their commit answers 503 at once.

use std::time::Duration;

use obelix::clients::ClientError;
use obelix::queue::hooks::TestHooks;

use crate::helpers::{eventually, spawn_app_with};
use crate::queue::status_of;

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
