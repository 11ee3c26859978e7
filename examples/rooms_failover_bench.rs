//! How long the room servers take to replace a killed leader under a steady stream of
//! requests, and whether a client notices (seed 003, issue 13).
//!
//! Clients reserve, check and cancel all the time (each its own rooms, slots and days, so
//! every reservation should be 201 and every cancel 200; anything else, or no answer within the
//! rooms' request timeout, is a failed request). Each round adds a room server with the highest
//! id (it becomes leader), waits until every live server follows it, then kills it through
//! `DELETE /admin/rooms/servers/{id}` and times, from the kill:
//! - **agreement**: every live server ready, not electing, and following the next leader
//!   (polling `GET /rooms/servers`);
//! - **first reply**: the first reply a client receives from the next leader
//!   (`X-Served-By: room-server-<id>`).
//!
//! `cargo run --release --example rooms_failover_bench -- http://127.0.0.1:18080 <admin-token> 20 8`

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The round's watch: whose first reply to time, from when.
#[derive(Default)]
struct Watch {
    leader: Option<String>,
    killed_at: Option<Instant>,
    first_reply: Option<Duration>,
}

/// Counts and the round's watch, shared by the clients.
#[derive(Default)]
struct Stream {
    stop: AtomicBool,
    requests: AtomicUsize,
    failed: AtomicUsize,
    watch: Mutex<Watch>,
}

impl Stream {
    /// One request's outcome: `expected` status or a failure (printed, with its body).
    async fn record(
        &self,
        what: &str,
        sent: reqwest::Result<reqwest::Response>,
        expected: u16,
    ) -> Option<Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = match sent {
            Ok(response) if response.status().as_u16() == expected => response,
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                eprintln!("failed: {what}: {status} {body}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(e) => {
                eprintln!("failed: {what}: {e}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let by = response
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.json().await.ok();
        let mut watch = self.watch.lock().unwrap();
        if watch.first_reply.is_none()
            && watch.leader.as_deref() == Some(by.as_str())
            && let Some(killed_at) = watch.killed_at
        {
            watch.first_reply = Some(killed_at.elapsed());
        }
        body
    }
}

/// The rooms, slots and days, as the servers list them.
struct Catalogue {
    rooms: Vec<String>,
    timeslots: Vec<String>,
    days: Vec<String>,
}

async fn catalogue(client: &reqwest::Client, server: &str) -> Catalogue {
    let list = |what: &'static str| async move {
        let listed: Value = client
            .get(format!("{server}/rooms/{what}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed[what]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<String>>()
    };
    Catalogue {
        rooms: list("rooms").await,
        timeslots: list("timeslots").await,
        days: list("days").await,
    }
}

/// One client: reserve, check, cancel, over and over, on its own share of the slots.
async fn client(
    client: reqwest::Client,
    server: String,
    (me, clients): (usize, usize),
    catalogue: Arc<Catalogue>,
    stream: Arc<Stream>,
) {
    let c = &catalogue;
    let slots: Vec<(&str, &str, &str)> = c
        .rooms
        .iter()
        .flat_map(|r| {
            c.timeslots.iter().flat_map(move |s| {
                c.days
                    .iter()
                    .map(move |d| (r.as_str(), s.as_str(), d.as_str()))
            })
        })
        .enumerate()
        .filter(|(i, _)| i % clients == me)
        .map(|(_, slot)| slot)
        .collect();
    for (room, slot, day) in slots.iter().cycle() {
        if stream.stop.load(Ordering::Relaxed) {
            return;
        }
        let url = format!("{server}/rooms/rooms/{room}/reservations");
        let reserved = client
            .post(&url)
            .json(&json!({ "timeslot": slot, "day": day }))
            .send()
            .await;
        let reservation = stream.record("reserve", reserved, 201).await;
        stream
            .record("check", client.get(&url).send().await, 200)
            .await;
        if let Some(id) = reservation.and_then(|r| r["id"].as_i64()) {
            let cancelled = client
                .delete(format!("{server}/rooms/reservations/{id}"))
                .send()
                .await;
            stream.record("cancel", cancelled, 200).await;
        }
    }
}

/// The leader every live server follows, ready and not electing, if they agree.
async fn agreed_leader(client: &reqwest::Client, server: &str) -> Option<u64> {
    let view: Value = client
        .get(format!("{server}/rooms/servers"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let live: Vec<&Value> = view["servers"]
        .as_array()?
        .iter()
        .filter(|s| s["alive"] == true)
        .collect();
    let leader = live.first()?["leader"].as_u64()?;
    let highest = live.iter().filter_map(|s| s["id"].as_u64()).max()?;
    live.iter()
        .all(|s| s["leader"] == leader && s["electing"] == false && s["ready"] == true)
        .then_some(leader)
        .filter(|&l| l == highest)
}

async fn await_leader(client: &reqwest::Client, server: &str, leader: u64) {
    let start = Instant::now();
    while agreed_leader(client, server).await != Some(leader) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no agreement on {leader}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
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
    let clients: usize = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(8);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let stream = Arc::new(Stream::default());
    let catalogue = Arc::new(catalogue(&http, &server).await);
    let workers: Vec<_> = (0..clients)
        .map(|me| {
            let (http, server) = (http.clone(), server.clone());
            let (catalogue, stream) = (catalogue.clone(), stream.clone());
            tokio::spawn(client(http, server, (me, clients), catalogue, stream))
        })
        .collect();

    let base = 1_000_000 + u64::from(std::process::id()) * 1000;
    let (mut agreement, mut first_reply) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let before = agreed_leader(&http, &server)
            .await
            .expect("a settled group");
        let id = base + round;
        let added = http
            .post(format!("{server}/admin/rooms/servers"))
            .bearer_auth(&admin)
            .json(&json!({ "id": id }))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201, "add room server {id}");
        await_leader(&http, &server, id).await;
        let killed_at = Instant::now();
        *stream.watch.lock().unwrap() = Watch {
            leader: Some(format!("room-server-{before}")),
            killed_at: Some(killed_at),
            first_reply: None,
        };
        let killed = http
            .delete(format!("{server}/admin/rooms/servers/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(killed.status(), 204);
        await_leader(&http, &server, before).await;
        agreement.push(killed_at.elapsed());
        loop {
            if let Some(replied) = stream.watch.lock().unwrap().first_reply {
                first_reply.push(replied);
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(10),
                "no reply from {before}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stream.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let summary = |times: &mut Vec<Duration>| {
        times.sort();
        format!(
            "median {:.0} ms, max {:.0} ms",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap())
        )
    };
    println!(
        "rooms failover over {rounds} leader kills, {clients} clients reserving, checking and cancelling: every live server agrees {}; first reply from the new leader {}; requests meanwhile {}, failed {}",
        summary(&mut agreement),
        summary(&mut first_reply),
        stream.requests.load(Ordering::Relaxed),
        stream.failed.load(Ordering::Relaxed)
    );
}
