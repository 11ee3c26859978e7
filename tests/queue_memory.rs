//! The log queue's memory under abuse: many large messages to many partitions, as fast as the
//! producers can send them, and the process's resident memory stays under the ceiling the
//! configuration states (README, "Memory"). A test binary of its own, so that no other test's
//! tree shares the process whose RSS it reads.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/log_capture.rs"]
mod log_capture;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// VmRSS of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const MIB: usize = 1024 * 1024;
/// What the rest of the process may add besides the brokers' holdings: the actor tree, HTTP
/// buffers of the requests in flight, the PostgreSQL pool, the test's own client, allocator slack.
const ALLOWANCE: usize = 48 * MIB;

#[actix_web::test]
async fn abusing_the_queue_keeps_the_process_under_its_memory_ceiling() {
    // A small budget and large requests, so that seconds of abuse go far past it if anything
    // were unbounded: 3 brokers × (1 MiB of tails + 1 MiB of read cache + 2 MiB pending + a
    // mailbox of 4 requests of at most 1 MiB) = 24 MiB.
    let app = helpers::spawn_app_with(|s| {
        s.server.max_body_bytes = MIB;
        let q = &mut s.queue;
        q.brokers = 3;
        q.max_message_bytes = 256 * 1024;
        q.tail_bytes = MIB;
        q.read_cache_bytes = MIB;
        q.max_pending_bytes = 2 * MIB;
        q.mailbox_capacity = 4;
        q.memory_budget_bytes = 24 * MIB;
    })
    .await;
    let budget = app_budget();
    let queue = app.queue();
    let mut topics = Vec::new();
    for t in 0..4 {
        let name = format!("flood{t}");
        queue.create_topic(&name, 8).await.unwrap();
        topics.push(name);
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let start = rss();
    let ceiling = start + budget + ALLOWANCE;

    // 1. Six producers send requests of two 256 KiB messages to 32 partitions (each body
    //    serialised once) for 8 seconds or until 600 MiB were accepted; a sampler watches RSS.
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicUsize::new(start));
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(8);
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        async move {
            while !done.load(Ordering::Acquire) {
                peak.fetch_max(rss(), Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let message = "0123456789abcdef".repeat(16 * 1024);
    let mut floods = Vec::new();
    for i in 0..6 {
        let producer = queue.create_producer(&names).await.unwrap();
        let url = format!("{}/queue/producers/{}/messages", app.address, producer.id);
        let bodies: Vec<bytes::Bytes> = topics
            .iter()
            .map(|topic| {
                let body = serde_json::json!({"topic": topic, "messages": [&message, &message]});
                serde_json::to_vec(&body).unwrap().into()
            })
            .collect();
        let (accepted, refused, client) = (accepted.clone(), refused.clone(), app.client.clone());
        floods.push(async move {
            let mut n = i;
            while Instant::now() < deadline && accepted.load(Ordering::Acquire) < 600 * MIB {
                let response = client
                    .post(&url)
                    .bearer_auth(obelix::queue::tokens::DEVELOPMENT_PRODUCER)
                    .header("content-type", "application/json")
                    .body(bodies[n % bodies.len()].clone())
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => {
                        accepted.fetch_add(2 * 256 * 1024, Ordering::AcqRel);
                    }
                    503 => {
                        refused.fetch_add(1, Ordering::AcqRel);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    status => panic!("enqueue: {status} {}", response.text().await.unwrap()),
                }
                n += 1;
            }
        });
    }
    tokio::join!(
        async {
            futures_util::future::join_all(floods).await;
            done.store(true, Ordering::Release);
        },
        sampler
    );
    let peak = peak.load(Ordering::Acquire).max(rss());
    let accepted = accepted.load(Ordering::Acquire);
    println!(
        "RSS {} MiB at start, peak {} MiB, ceiling {} MiB; {} MiB accepted, {} requests refused (503)",
        start / MIB,
        peak / MIB,
        ceiling / MIB,
        accepted / MIB,
        refused.load(Ordering::Acquire)
    );

    // 2. It was abuse: more was accepted than the ceiling leaves room for…
    assert!(
        accepted > budget + ALLOWANCE,
        "only {} MiB accepted: not enough to tell",
        accepted / MIB
    );
    // 3. …and the process stayed under its ceiling.
    assert!(
        peak <= ceiling,
        "RSS peaked at {} MiB, over the ceiling of {} MiB",
        peak / MIB,
        ceiling / MIB
    );
}

/// The test's budget, by the formula the configuration checks (`memory_budget_bytes`).
fn app_budget() -> usize {
    let mut q = obelix::settings::QueueSettings::default();
    q.brokers = 3;
    q.tail_bytes = MIB;
    q.read_cache_bytes = MIB;
    q.max_pending_bytes = 2 * MIB;
    q.mailbox_capacity = 4;
    q.brokers_memory_bytes(MIB)
}
