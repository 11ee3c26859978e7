//! Consumer groups: members share a topic's partitions (each read by one member at a time),
//! whatever each registered for, and hand them over when one leaves or falls silent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use obelix::clients::queue::Subscription;
use obelix::queue::StoredMessage;

use crate::helpers::{eventually, spawn_app, spawn_app_with};
use crate::queue::{assert_in_order, drain};
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
async fn consumers_not_heard_from_are_deleted_and_pollers_stay() {
    let app = spawn_app_with(|s| {
        s.queue.consumer_idle_expiry_ms = 1_500;
        s.queue.max_wait_ms = 1_000;
    })
    .await;
    let queue = app.queue();
    queue.create_topic("logs", 3).await.unwrap();
    // 1. Three consumers: one falls silent, one polls now and then, one long-polls without end.
    let silent = queue.create_consumer(&["logs"]).await.unwrap();
    let poller = queue.create_consumer(&["logs"]).await.unwrap();
    let long_poller = queue.create_consumer(&["logs"]).await.unwrap();
    let present = |id: i64| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT left_at IS NULL FROM queue_consumers WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    // 2. The others keep polling until the silent one is deleted.
    let started = Instant::now();
    let keep_long_polling = async {
        loop {
            long_poller
                .dequeue_many("logs", 10, Duration::from_millis(900))
                .await
                .unwrap();
        }
    };
    let wait_for_expiry = async {
        while present(silent.id).await {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the silent consumer was never deleted"
            );
            poller
                .dequeue_many("logs", 10, Duration::ZERO)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        () = wait_for_expiry => {}
        () = keep_long_polling => unreachable!(),
    }
    // 3. The silent one is gone (its polls get 404); the others are still there.
    let gone = silent
        .dequeue_many("logs", 1, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(crate::queue::status_of(gone), 404);
    assert!(present(poller.id).await, "a polling consumer was deleted");
    assert!(
        present(long_poller.id).await,
        "a long-polling consumer was deleted"
    );
}
