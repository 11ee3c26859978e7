//! How long the front-end group takes to replace a killed leader, and whether clients notice.
//!
//! Each round adds a front-end with the highest id (it becomes leader), then kills it while
//! tablets read continuously, and times from the kill until every live member names the same
//! new leader (polling `GET /cluster`). Prints the rounds' times and the failed reads.
//!
//! `cargo run --release --example failover_bench -- http://127.0.0.1:18080 <admin-token> 20`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

async fn agreed_leader(client: &reqwest::Client, server: &str) -> Option<u64> {
    let cluster: Value = client
        .get(format!("{server}/cluster"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let alive: Vec<&Value> = cluster["members"]
        .as_array()?
        .iter()
        .filter(|m| m["alive"] == true)
        .collect();
    let leader = alive.first()?["leader"].as_u64()?;
    let max_id = alive.iter().filter_map(|m| m["id"].as_u64()).max()?;
    alive
        .iter()
        .all(|m| m["leader"] == leader && m["electing"] == false)
        .then_some(leader)
        .filter(|&l| l == max_id)
}

async fn await_leader(client: &reqwest::Client, server: &str, leader: u64) -> Duration {
    let start = Instant::now();
    while agreed_leader(client, server).await != Some(leader) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no agreement on {leader}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:18080".into());
    let admin = args.get(2).cloned().unwrap_or_default();
    let rounds: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(20);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // Readers: 8 tablets reading all the time; every failure counts.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (client, server) = (client.clone(), server.clone());
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        readers.push(tokio::spawn(async move {
            let tablet: Value = client
                .post(format!("{server}/olympics/tablets"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = tablet["id"].as_str().unwrap().to_owned();
            while !stop.load(Ordering::Relaxed) {
                let ok = client
                    .get(format!("{server}/olympics/games/curling/score"))
                    .header("X-Tablet-Id", &id)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                reads.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let base = 1_000_000 + u64::from(std::process::id()) * 1000;
    let mut times = Vec::new();
    for round in 0..rounds {
        let before = agreed_leader(&client, &server)
            .await
            .expect("a settled group");
        let id = base + round;
        let added = client
            .post(format!("{server}/admin/frontends"))
            .bearer_auth(&admin)
            .json(&json!({ "id": id }))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201, "add front-end {id}");
        await_leader(&client, &server, id).await;
        let killed_at = Instant::now();
        let killed = client
            .delete(format!("{server}/admin/frontends/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(killed.status(), 204);
        await_leader(&client, &server, before).await;
        times.push(killed_at.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "failover over {rounds} leader kills: median {:.0} ms, max {:.0} ms; reads meanwhile {}, failed {}",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap()),
        reads.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed)
    );
}
