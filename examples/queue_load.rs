//! A quick load generator for the log queue's REST API, for measuring throughput locally.
//!
//! ```sh
//! cargo run --release --example queue_load -- http://127.0.0.1:8080 single 64 10
//! cargo run --release --example queue_load -- http://127.0.0.1:8080 batch 16 10
//! cargo run --release --example queue_load -- http://127.0.0.1:8080 dequeue 16 10
//! ```
//! Arguments: server, mode (`single`: one message per request; `batch`: 100 per request;
//! `dequeue`: `max=100` reads of what the batch run left, one consumer per client), concurrent
//! clients, seconds, and optionally the topic's partitions (default 4). Each run uses a fresh
//! topic. Prints messages per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:8080".into());
    let mode = args.get(2).cloned().unwrap_or("single".into());
    let clients: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let partitions: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(4);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let topic = format!("load-{}", uuid::Uuid::new_v4().simple());
    let post = |path: String, body: Value| {
        let http = http.clone();
        let url = format!("{server}{path}");
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()
        }
    };
    post(
        "/queue/topics".into(),
        json!({"name": topic, "partitions": partitions}),
    )
    .await;
    let producer = post("/queue/producers".into(), json!({"topics": [topic]})).await["producer_id"]
        .as_i64()
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let batch: Vec<String> = (0..100)
        .map(|i| format!("log line {i} {}", "x".repeat(60)))
        .collect();

    if mode == "dequeue" {
        // Fill first: batches until there is plenty to read.
        let fill = (0..16).map(|_| {
            let (http, server, topic, batch) =
                (http.clone(), server.clone(), topic.clone(), batch.clone());
            async move {
                for _ in 0..200 {
                    http.post(format!("{server}/queue/producers/{producer}/messages"))
                        .json(&json!({"topic": topic, "messages": batch}))
                        .send()
                        .await
                        .unwrap();
                }
            }
        });
        futures_util::future::join_all(fill).await;
        println!("filled {} messages", 16 * 200 * 100);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks = (0..clients).map(|_| {
        let (http, server, topic, batch, count) = (
            http.clone(),
            server.clone(),
            topic.clone(),
            batch.clone(),
            count.clone(),
        );
        let mode = mode.clone();
        tokio::spawn(async move {
            let consumer = if mode == "dequeue" {
                let r: Value = http
                    .post(format!("{server}/queue/consumers"))
                    .json(&json!({"topics": [topic]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                r["consumer_id"].as_i64().unwrap()
            } else {
                0
            };
            let mut i = 0u64;
            while Instant::now() < deadline {
                let n = match mode.as_str() {
                    "single" => {
                        let r = http
                            .post(format!("{server}/queue/producers/{producer}/messages"))
                            .json(&json!({"topic": topic, "message": format!("log line {i}")}))
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        1
                    }
                    "batch" => {
                        let r = http
                            .post(format!("{server}/queue/producers/{producer}/messages"))
                            .json(&json!({"topic": topic, "messages": batch}))
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        100
                    }
                    _ => {
                        let r: Value = http
                            .get(format!(
                                "{server}/queue/consumers/{consumer}/messages?topic={topic}&max=100"
                            ))
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        let got = r["messages"].as_array().map_or(0, |m| m.len() as u64);
                        if got == 0 {
                            if r["messages"].is_null() {
                                eprintln!("dequeue failed: {r}");
                            }
                            break;
                        }
                        got
                    }
                };
                count.fetch_add(n, Ordering::Relaxed);
                i += 1;
            }
        })
    });
    futures_util::future::join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let total = count.load(Ordering::Relaxed);
    println!(
        "{mode}: {total} messages in {elapsed:.1} s = {:.0} msg/s ({clients} clients, {partitions} partitions)",
        total as f64 / elapsed
    );
}
