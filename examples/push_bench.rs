//! How long an update takes to reach every subscribed tablet.
//!
//! Registers N tablets, subscribes each to `games=curling` over Server-Sent Events, then sends K
//! score updates one after another; each tablet notes when it received each update. Prints p50,
//! p99 and max of (receipt − moment the PUT was sent), over all N × K deliveries.
//!
//! `cargo run --release --example push_bench -- http://127.0.0.1:18080 <reporter-token> 1000 50`
//! (raise `ulimit -n` first: every tablet is a connection.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use obelix::clients::sse::events;
use serde_json::{Value, json};
use tokio::sync::Barrier;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:18080".into());
    let token = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "cacofonix-dev-token".into());
    let tablets: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let updates: usize = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(50);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(tablets + 16)
        .build()
        .unwrap();

    // Every tablet subscribed and past its snapshot before the first update.
    let ready = Arc::new(Barrier::new(tablets + 1));
    let mut receivers = Vec::with_capacity(tablets);
    for _ in 0..tablets {
        let (client, server, ready) = (client.clone(), server.clone(), ready.clone());
        receivers.push(tokio::spawn(async move {
            let tablet: Value = client
                .post(format!("{server}/olympics/tablets"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = tablet["id"].as_str().unwrap().to_owned();
            let response = client
                .get(format!(
                    "{server}/olympics/tablets/{id}/events?games=curling"
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let mut body = Box::pin(events(response.bytes_stream()));
            let mut receipts: Vec<(i64, Instant)> = Vec::with_capacity(updates);
            let mut snapshot_seen = false;
            while receipts.len() < updates {
                let event = body.next().await.expect("stream open").unwrap();
                let now = Instant::now();
                if !snapshot_seen {
                    snapshot_seen = true;
                    ready.wait().await;
                    continue;
                }
                let state: Value = serde_json::from_str(&event.data).unwrap();
                receipts.push((state["scores"][0]["points"].as_i64().unwrap(), now));
            }
            receipts
        }));
    }
    ready.wait().await;

    let base: i64 = 1_000_000 * (std::process::id() as i64 % 1000);
    let mut sent_at = Vec::with_capacity(updates);
    for k in 1..=updates as i64 {
        sent_at.push(Instant::now());
        let response = client
            .put(format!("{server}/olympics/games/curling/score"))
            .bearer_auth(&token)
            .json(&json!({ "scores": { "gauls": base + k } }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "update {k}: {}",
            response.status()
        );
        // Let the fan-out of this update finish before the next, so each is measured alone.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut latencies: Vec<Duration> = Vec::with_capacity(tablets * updates);
    for receiver in receivers {
        for (points, at) in receiver.await.unwrap() {
            let k = (points - base - 1) as usize;
            latencies.push(at.duration_since(sent_at[k]));
        }
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "push to {tablets} tablets x {updates} updates: {} deliveries, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}
