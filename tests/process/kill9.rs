//! `kill -9` under load, one service at a time: after a restart on the same data every
//! acknowledged write is there once, and the service goes on from it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{
    ADMIN_TOKEN, Load, Obelix, Outcome, REPORTER_TOKEN, client, data_dir, eventually,
    postmaster_pid,
};

pub async fn award(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    client
        .post(format!("{base}/olympics/teams/gauls/medals"))
        .bearer_auth(REPORTER_TOKEN)
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({ "medal": "gold" }))
        .send()
        .await
        .map(|r| r.status())
}

/// The awards stored under keys starting with `prefix`, and gauls' gold count.
pub async fn stored_awards(conn: &mut PgConnection, prefix: &str) -> (Vec<String>, i32) {
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM medal_awards WHERE starts_with(idempotency_key, $1)",
    )
    .bind(prefix)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let gold: i32 = sqlx::query_scalar("SELECT gold FROM medal_tallies WHERE team = 'gauls'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (stored, gold)
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_write_and_sigterm_stops_everything() {
    let (_guard, data) = data_dir();

    // 1. Obelix with its own cluster; writers hammer it; kill -9 mid-traffic.
    let first = Obelix::start(&data);
    let base = first.base_url.clone();
    let load = Load::start(8, move |w, i| {
        let (client, base) = (client(), base.clone());
        async move {
            let key = format!("kill9-{w}-{i}");
            match award(&client, &base, &key).await {
                Ok(status) if status == 200 => Outcome::Acked(key),
                Ok(status) => panic!("write {key} answered {status} before the kill"),
                Err(_) => Outcome::Done, // the process is gone
            }
        }
    });
    load.until(200).await;
    let acknowledged = load.kill(first).await;

    // 2. Restart on the same data: every acknowledged award is there, counted once.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let (stored, gold) = stored_awards(&mut conn, "kill9-").await;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !stored.contains(k))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(
        gold as usize,
        stored.len(),
        "the tally counts each stored award once"
    );
    conn.close().await.unwrap();

    // 3. The keeper panics and its supervisor restarts it; then the postmaster dies, the
    //    restarted keeper starts it again, and writes succeed again.
    let client = client();
    let crash = client
        .post(format!(
            "{}/admin/actors/postgres-keeper/crash?mode=panic",
            second.base_url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(crash.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let actors: Vec<serde_json::Value> = client
            .get(format!("{}/admin/actors", second.base_url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let keeper = actors
            .iter()
            .find(|a| a["name"] == "postgres-keeper")
            .unwrap();
        if keeper["restarts"] == 1 && keeper["alive"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the keeper was not restarted: {keeper}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old_pid = postmaster_pid(&data).expect("a running postmaster");
    unsafe { libc::kill(old_pid, libc::SIGKILL) };
    // Old backends may linger a moment after their postmaster's death, so wait for the new one.
    eventually(Duration::from_secs(30), || {
        postmaster_pid(&data)
            .is_some_and(|pid| pid != old_pid && unsafe { libc::kill(pid, 0) } == 0)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(status) = award(&client, &second.base_url, "after-postmaster-kill").await
            && status == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never recovered after the postmaster was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 4. SIGTERM: Obelix exits cleanly and stops its PostgreSQL.
    let mut second = second;
    second.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "obelix did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        postmaster_pid(&data).is_none(),
        "the private PostgreSQL was stopped"
    );
}

/// A message as stored and acknowledged: (partition, offset, payload).
type Placed = (i32, i64, String);

/// Every message in `queue_messages`.
pub async fn stored_messages(conn: &mut PgConnection) -> BTreeSet<Placed> {
    let stored: Vec<Placed> =
        sqlx::query_as("SELECT partition, \"offset\", payload FROM queue_messages")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    stored.into_iter().collect()
}

#[tokio::test]
async fn kill_9_under_queue_load_loses_no_acknowledged_message_and_consumers_resume() {
    use obelix::clients::queue::MyQueue;

    let (_guard, data) = data_dir();
    // 1. Producers hammer a 3-partition topic (single messages and batches of 10); a consumer
    //    reads some of it; then kill -9 mid-traffic.
    let first = Obelix::start(&data);
    let queue = MyQueue::with_client(&first.base_url, client());
    queue.create_topic("kill9", 3).await.unwrap();
    let consumer = queue.create_consumer(&["kill9"]).await.unwrap();
    let mut producers = Vec::new();
    for _ in 0..8 {
        producers.push(queue.create_producer(&["kill9"]).await.unwrap());
    }
    let load = Load::start(8, move |p, i| {
        let producer = producers[p].clone();
        async move {
            let messages: Vec<String> = if i % 4 == 0 {
                (0..10).map(|k| format!("p{p}-{i}-{k}")).collect()
            } else {
                vec![format!("p{p}-{i}")]
            };
            match producer.enqueue_batch("kill9", &messages).await {
                Ok(placed) => Outcome::Acked(
                    placed
                        .into_iter()
                        .zip(messages)
                        .map(|(at, m)| (at.partition, at.offset, m))
                        .collect::<Vec<Placed>>(),
                ),
                Err(obelix::clients::ClientError::Http(_)) => Outcome::Done, // the process is gone
                Err(e) => panic!("enqueue answered {e} before the kill"),
            }
        }
    });
    load.until(100).await;
    let mut delivered: BTreeMap<i32, i64> = BTreeMap::new();
    let mut consumed = BTreeSet::new();
    for _ in 0..6 {
        for m in consumer
            .dequeue_many("kill9", 20, Duration::ZERO)
            .await
            .unwrap()
        {
            delivered.insert(m.partition, m.offset);
            consumed.insert((m.partition, m.offset, m.message));
        }
    }
    assert!(!delivered.is_empty());
    load.until(200).await;
    let acked: Vec<Placed> = load.kill(first).await.into_iter().flatten().collect();

    // 2. Restart on the same data: every acknowledged message is in PostgreSQL.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let stored = stored_messages(&mut conn).await;
    let missing: Vec<_> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    conn.close().await.unwrap();

    // 3. The consumer resumes at its offsets: each partition goes on right after the last
    //    message it was given, and it gets everything else once.
    let queue = MyQueue::with_client(&second.base_url, client());
    let consumer = obelix::clients::queue::Consumer::resume(&queue, consumer.id);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    loop {
        let messages = consumer
            .dequeue_many("kill9", 100, Duration::ZERO)
            .await
            .unwrap();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let expected = next
                .get(&m.partition)
                .copied()
                .unwrap_or_else(|| delivered.get(&m.partition).map_or(0, |o| o + 1));
            assert_eq!(
                m.offset, expected,
                "partition {} did not resume at its offset",
                m.partition
            );
            next.insert(m.partition, m.offset + 1);
            assert!(
                consumed.insert((m.partition, m.offset, m.message)),
                "delivered twice"
            );
        }
    }
    assert_eq!(
        consumed, stored,
        "the consumer got every stored message exactly once"
    );
    // New messages go on after the recovered offsets.
    let producer = queue.create_producer(&["kill9"]).await.unwrap();
    let placed = producer.enqueue("kill9", "after restart").await.unwrap();
    assert_eq!(
        placed.offset,
        next.get(&placed.partition).copied().unwrap_or(0)
    );
}

/// Every (room, timeslot, day) of the seed's first five slots.
pub fn room_slots() -> Vec<(String, String, String)> {
    let rooms = ["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"];
    let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
    let slots = [
        "8:30-9:30",
        "9:30-10:30",
        "10:30-11:30",
        "11:30-12:30",
        "12:30-13:30",
    ];
    let mut combos = Vec::new();
    for room in rooms {
        for timeslot in slots {
            for day in days {
                combos.push((room.into(), timeslot.into(), day.into()));
            }
        }
    }
    combos
}

#[tokio::test]
async fn kill_9_under_reservations_loses_none_and_the_replicas_reload_them() {
    let (_guard, data) = data_dir();
    // 1. Four clients reserve distinct slots (each with its own Idempotency-Key); kill -9
    //    mid-traffic.
    let first = Obelix::start(&data);
    let (base, combos) = (first.base_url.clone(), room_slots());
    let load = Load::start(4, move |w, i| {
        let (base, client) = (base.clone(), client());
        let slot = 4 * i + w;
        let combo = combos.get(slot).cloned();
        async move {
            let Some((room, timeslot, day)) = combo else {
                return Outcome::Done;
            };
            let sent = client
                .post(format!("{base}/rooms/rooms/{room}/reservations"))
                .header("Idempotency-Key", format!("kill9-{slot}"))
                .json(&serde_json::json!({ "timeslot": timeslot, "day": day }))
                .send()
                .await;
            let Ok(response) = sent else {
                return Outcome::Done; // the process is gone
            };
            if response.status() == 503 {
                return Outcome::Skipped; // servers still starting
            }
            assert_eq!(response.status(), 201, "before the kill");
            let Ok(body) = response.json::<serde_json::Value>().await else {
                return Outcome::Done;
            };
            Outcome::Acked(body["id"].as_i64().unwrap())
        }
    });
    load.until(40).await;
    let acked = load.kill(first).await;

    // 2. Restart on the same data: every acknowledged reservation is stored once.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM room_reservations")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    for id in &acked {
        assert_eq!(
            stored.iter().filter(|s| *s == id).count(),
            1,
            "reservation {id}"
        );
    }
    conn.close().await.unwrap();

    // 3. Every server loaded them (snapshot, then the log): each holds what PostgreSQL holds.
    let client = client();
    let base = second.base_url.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: serde_json::Value = client
            .get(format!("{base}/rooms/servers"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let servers = view["servers"].as_array().unwrap();
        if servers
            .iter()
            .all(|s| s["ready"] == true && s["reservations"] == stored.len())
        {
            break;
        }
        assert!(Instant::now() < deadline, "servers never reloaded: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_under_bookstore_buys_keeps_every_acknowledged_order_once() {
    let (_guard, data) = data_dir();

    // 1. Buyers (each buy with its own idempotency key) until 150 are acknowledged; kill -9.
    let first = Obelix::start(&data);
    let base = first.base_url.clone();
    let load = Load::start(8, move |w, i| {
        let (client, base) = (client(), base.clone());
        async move {
            let key = format!("bk9-{w}-{i}");
            let book = 1 + (i % 4);
            let sent = client
                .post(format!("{base}/bookstore/books/{book}/buy"))
                .header("Idempotency-Key", &key)
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 201 => match r.json::<serde_json::Value>().await {
                    Ok(order) => Outcome::Acked((key, order["id"].as_i64().unwrap())),
                    Err(_) => Outcome::Done,
                },
                Ok(r) => panic!("buy {key} answered {} before the kill", r.status()),
                Err(_) => Outcome::Done, // the process is gone
            }
        }
    });
    load.until(150).await;
    let acknowledged = load.kill(first).await;

    // 2. Restart: every acknowledged buy is in the log and the orders, once; stock matches.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let logged: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM bookstore_write_log WHERE kind = 'buy'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let missing: Vec<&(String, i64)> = acknowledged
        .iter()
        .filter(|(k, _)| !logged.contains(&format!("client:{k}")))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM bookstore_orders")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(orders as usize, logged.len(), "one order per logged buy");
    let sold: i64 =
        sqlx::query_scalar("SELECT sum(100 - quantity)::bigint FROM bookstore_stock WHERE id <= 4")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(sold, orders, "stock went down once per order");
    conn.close().await.unwrap();

    // 3. Retrying an acknowledged buy answers its first order; the replicas catch up and agree.
    let client = client();
    for (key, id) in acknowledged.iter().take(5) {
        let book = 1 + key.rsplit('-').next().unwrap().parse::<i64>().unwrap() % 4;
        let again: serde_json::Value = client
            .post(format!("{}/bookstore/books/{book}/buy", second.base_url))
            .header("Idempotency-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again["id"].as_i64(), Some(*id), "retry of {key}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = client
            .get(format!("{}/bookstore/replicas", second.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let replicas = status["replicas"].as_array().unwrap();
        let agreed = replicas.iter().all(|r| {
            r["state"] == "serving"
                && r["last_applied"].as_u64() == Some(logged.len() as u64)
                && r["digest"] == replicas[0]["digest"]
        });
        if agreed {
            break;
        }
        assert!(Instant::now() < deadline, "replicas never agreed: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
