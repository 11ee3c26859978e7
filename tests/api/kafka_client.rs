//! A Kafka REST Proxy v2 client nobody here wrote (the `kafka-http` crate, on reqwest) against
//! `/kafka`: producing, and consuming through a consumer group of two instances, one of which
//! leaves mid-way (it stops polling and expires; its partitions go to the other).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_http::KafkaHttpClient;
use kafka_http::types::Record;
use kafka_http::types::{
    CreateConsumerParams, PartitionOffsetCommitParams, ProduceParams, ProduceRecord,
    SubscribeParams,
};

use crate::helpers::spawn_app_with;
use crate::queue::{CONSUMER, PRODUCER};

/// A client of `/kafka` presenting `token` as its Basic password (the crate does only Basic).
fn client(base: &str, token: &str) -> KafkaHttpClient {
    let mut client = KafkaHttpClient::new(base);
    client.set_basic_auth("obelix", token).unwrap();
    client.set_timeout_ms(300);
    client
}

async fn member(base: &str, name: &str) -> KafkaHttpClient {
    let mut c = client(base, CONSUMER);
    let params = CreateConsumerParams {
        name: name.into(),
        format: "json".into(),
        auto_offset_reset: "earliest".into(),
    };
    let uri = c.create_consumer("crew", &params).await.unwrap();
    assert_eq!(uri, format!("{base}/consumers/crew/instances/{name}"));
    let topics = SubscribeParams {
        topics: vec!["events".into()],
    };
    c.subscribe("crew", &topics).await.unwrap();
    c
}

async fn produce(producer: &KafkaHttpClient, range: std::ops::Range<usize>) {
    for i in range {
        let records = vec![ProduceRecord {
            value: format!("m{i}"),
        }];
        producer
            .produce_to_topic("events", &ProduceParams { records })
            .await
            .unwrap();
    }
}

#[actix_web::test]
async fn kafka_http_produces_and_consumes_through_a_group_with_a_member_leaving() {
    // Instances expire after 4 s unused: long against a poll round (2 × 300 ms) even on loaded
    // cores, short enough for the test to wait for b's.
    let app = spawn_app_with(|s| s.queue.kafka_instance_timeout_ms = 4_000).await;
    app.queue().create_topic("events", 3).await.unwrap();
    let base = format!("{}/kafka", app.address);

    // 1. Two members of one group, then 30 records, one per request (round-robin).
    let a = member(&base, "a").await;
    let b = member(&base, "b").await;
    let producer = client(&base, PRODUCER);
    produce(&producer, 0..30).await;

    // 2. Both poll until the 30 came; each read its own partitions.
    let mut got: Vec<(String, Record)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 30 {
        assert!(Instant::now() < deadline, "got {} of 30", got.len());
        for (name, c) in [("a", &a), ("b", &b)] {
            got.extend(
                c.poll()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (name.to_owned(), r)),
            );
        }
    }
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (name, r) in &got {
        partitions
            .entry(name.clone())
            .or_default()
            .insert(r.partition);
    }
    assert_eq!(partitions.len(), 2, "both members read: {partitions:?}");
    assert!(
        partitions["a"].is_disjoint(&partitions["b"]),
        "a partition is read by one member: {partitions:?}"
    );
    // The crate's commit (its body names no offsets: everything returned is committed).
    let commit = PartitionOffsetCommitParams { partitions: vec![] };
    a.commit(&commit).await.unwrap();

    // 3. b leaves mid-way: it stops polling and expires; a gets its partitions.
    produce(&producer, 30..60).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 60 {
        assert!(Instant::now() < deadline, "got {} of 60", got.len());
        got.extend(
            a.poll()
                .await
                .unwrap()
                .into_iter()
                .map(|r| ("a".to_owned(), r)),
        );
    }
    let late: BTreeSet<i32> = got[30..].iter().map(|(_, r)| r.partition).collect();
    assert_eq!(
        late,
        BTreeSet::from([0, 1, 2]),
        "a took over b's partitions"
    );

    // 4. Every record exactly once, each partition's in offset order.
    let values: Vec<&str> = got.iter().map(|(_, r)| r.value.as_str()).collect();
    let distinct: BTreeSet<&str> = values.iter().copied().collect();
    assert_eq!(values.len(), 60, "no record twice");
    assert_eq!(
        distinct,
        (0..60)
            .map(|i| format!("m{i}"))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(String::as_str)
            .collect()
    );
    for p in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|(_, r)| r.partition == p)
            .map(|(_, r)| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    // b is gone: its instance expired.
    assert!(b.poll().await.is_err(), "an expired instance answers 404");
}
