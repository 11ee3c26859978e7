//! The `obelix` binary as a user runs it, with its own private PostgreSQL cluster:
//! `kill -9` under load loses no acknowledged write (Olympic awards, queue messages, consumer
//! offsets, room reservations), a killed postmaster is brought back by the keeper, and SIGTERM shuts everything
//! down cleanly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

const REPORTER_TOKEN: &str = "process-test-token";
const ADMIN_TOKEN: &str = "process-test-admin";

/// A running `obelix serve` and what it printed.
struct Obelix {
    child: Child,
    base_url: String,
    psql: String,
}

impl Obelix {
    fn start(data_dir: &Path) -> Obelix {
        let mut child = Command::new(env!("CARGO_BIN_EXE_obelix"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DATABASE_URL")
            .env("OBELIX__DATABASE__DATA_DIR", data_dir)
            .env("OBELIX__SERVER__PORT", "0")
            .env("OBELIX__SERVER__WORKERS", "1")
            .env("OBELIX__OLYMPICS__REPORTER_TOKEN", REPORTER_TOKEN)
            .env("OBELIX__ADMIN__TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("obelix starts");
        let lines = drain(child.stdout.take().unwrap());
        let base_url = wait_for_line(&lines, "Obelix is up: ", |rest| {
            rest.split_whitespace().next().unwrap().to_owned()
        });
        let psql = wait_for_line(&lines, "inspect its database with: ", |rest| {
            rest.trim().to_owned()
        });
        Obelix {
            child,
            base_url,
            psql,
        }
    }

    /// Connection options parsed from the `psql -h DIR -p PORT -U USER -d DB` line it logged.
    fn connect_options(&self) -> PgConnectOptions {
        let words: Vec<&str> = self.psql.split_whitespace().collect();
        let arg = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
        PgConnectOptions::new()
            .host(arg("-h"))
            .port(arg("-p").parse().unwrap())
            .username(arg("-U"))
            .database(arg("-d"))
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Obelix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's stdout on a thread of its own (a full pipe would block it).
fn drain(stdout: std::process::ChildStdout) -> Arc<Mutex<Receiver<String>>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if std::env::var("TEST_LOG").is_ok() {
                println!("{line}");
            }
            // Keep draining after the receiver is gone: a closed pipe would break the child's logging.
            let _ = tx.send(line);
        }
    });
    Arc::new(Mutex::new(rx))
}

fn wait_for_line<T>(lines: &Mutex<Receiver<String>>, marker: &str, parse: impl Fn(&str) -> T) -> T {
    let lines = lines.lock().unwrap();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("obelix never logged `{marker}`"));
        if let Some(at) = line.find(marker) {
            return parse(&line[at + marker.len()..]);
        }
    }
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The postgres user must reach the data folder inside (when we run as root).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("pgdata");
    (dir, data)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn award(
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

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

async fn eventually<F: FnMut() -> bool>(within: Duration, mut condition: F) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_write_and_sigterm_stops_everything() {
    let (_guard, data) = data_dir();

    // 1. Obelix with its own cluster; writers hammer it; kill -9 mid-traffic.
    let first = Obelix::start(&data);
    let client = client();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, acknowledged) =
            (client.clone(), first.base_url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("kill9-{w}-{i}");
                match award(&client, &base, &key).await {
                    Ok(status) if status == 200 => acknowledged.lock().unwrap().push(key),
                    Ok(status) => panic!("write {key} answered {status} before the kill"),
                    Err(_) => return, // the process is gone
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= 200
    })
    .await;
    first.signal(libc::SIGKILL);
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(first);

    // 2. Restart on the same data: every acknowledged award is there, counted once.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM medal_awards WHERE idempotency_key LIKE 'kill9-%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !stored.contains(k))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let gold: i32 = sqlx::query_scalar("SELECT gold FROM medal_tallies WHERE team = 'gauls'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        gold as usize,
        stored.len(),
        "the tally counts each stored award once"
    );
    conn.close().await.unwrap();

    // 3. The keeper panics and its supervisor restarts it; then the postmaster dies, the
    //    restarted keeper starts it again, and writes succeed again.
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

#[tokio::test]
async fn kill_9_under_queue_load_loses_no_acknowledged_message_and_consumers_resume() {
    use obelix::clients::queue::MyQueue;
    use std::collections::{BTreeMap, BTreeSet};

    let (_guard, data) = data_dir();
    // 1. Producers hammer a 3-partition topic (single messages and batches); a consumer reads
    //    some of it; then kill -9 mid-traffic.
    let first = Obelix::start(&data);
    let queue = MyQueue::with_client(&first.base_url, client());
    queue.create_topic("kill9", 3).await.unwrap();
    let consumer = queue.create_consumer(&["kill9"]).await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::<(i32, i64, String)>::new()));
    let mut producers = Vec::new();
    for p in 0..8 {
        let (queue, acked) = (queue.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            let producer = queue.create_producer(&["kill9"]).await.unwrap();
            for i in 0.. {
                let messages: Vec<String> = if i % 4 == 0 {
                    (0..10).map(|k| format!("p{p}-{i}-{k}")).collect()
                } else {
                    vec![format!("p{p}-{i}")]
                };
                match producer.enqueue_batch("kill9", &messages).await {
                    Ok(placed) => acked.lock().unwrap().extend(
                        placed
                            .into_iter()
                            .zip(messages)
                            .map(|(at, m)| (at.partition, at.offset, m)),
                    ),
                    Err(obelix::clients::ClientError::Http(_)) => return, // the process is gone
                    Err(e) => panic!("enqueue answered {e} before the kill"),
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 300
    })
    .await;
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
    eventually(Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 600
    })
    .await;
    first.signal(libc::SIGKILL);
    for producer in producers {
        producer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    drop(first);

    // 2. Restart on the same data: every acknowledged message is in PostgreSQL.
    let second = Obelix::start(&data);
    let mut conn = PgConnection::connect_with(&second.connect_options())
        .await
        .unwrap();
    let stored: Vec<(i32, i64, String)> =
        sqlx::query_as("SELECT partition, \"offset\", payload FROM queue_messages")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let stored: BTreeSet<(i32, i64, String)> = stored.into_iter().collect();
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

#[tokio::test]
async fn kill_9_under_reservations_loses_none_and_the_replicas_reload_them() {
    let (_guard, data) = data_dir();
    // 1. Four clients reserve distinct slots (each with its own Idempotency-Key); kill -9
    //    mid-traffic.
    let first = Obelix::start(&data);
    let rooms = ["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"];
    let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
    let slots = [
        "8:30-9:30",
        "9:30-10:30",
        "10:30-11:30",
        "11:30-12:30",
        "12:30-13:30",
    ];
    let mut combos: Vec<(String, String, String)> = Vec::new();
    for room in rooms {
        for timeslot in slots {
            for day in days {
                combos.push((room.into(), timeslot.into(), day.into()));
            }
        }
    }
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, base, combos) = (acked.clone(), first.base_url.clone(), combos.clone());
        writers.push(tokio::spawn(async move {
            let client = client();
            for (i, (room, timeslot, day)) in combos.into_iter().enumerate().skip(w).step_by(4) {
                let sent = client
                    .post(format!("{base}/rooms/rooms/{room}/reservations"))
                    .header("Idempotency-Key", format!("kill9-{i}"))
                    .json(&serde_json::json!({ "timeslot": timeslot, "day": day }))
                    .send()
                    .await;
                let Ok(response) = sent else { return }; // the process is gone
                if response.status() == 503 {
                    continue; // servers still starting
                }
                assert_eq!(response.status(), 201, "before the kill");
                let body: serde_json::Value = response.json().await.unwrap();
                acked.lock().unwrap().push(body["id"].as_i64().unwrap());
            }
        }));
    }
    eventually(Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 40
    })
    .await;
    first.signal(libc::SIGKILL);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    drop(first);

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
async fn without_server_binaries_it_says_what_to_install() {
    let (_guard, data) = data_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("OBELIX__DATABASE__DATA_DIR", &data)
        .env("OBELIX__SERVER__PORT", "0")
        .env("PATH", "/nonexistent")
        .env("OBELIX__DATABASE__SERVER_BIN_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apt-get install postgresql") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}
