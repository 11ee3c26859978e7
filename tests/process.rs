//! The `obelix` binary as a user runs it, with its own private PostgreSQL cluster:
//! `kill -9` under load loses no acknowledged write (Olympic awards, queue messages, consumer
//! offsets, bookstore orders, room reservations), a killed postmaster is brought back by the keeper, and SIGTERM shuts everything
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
    /// Every line it has logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Obelix {
    fn start(data_dir: &Path) -> Obelix {
        Self::start_with(data_dir, &[])
    }

    /// [`Obelix::start`] with more (or overriding) environment variables.
    fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Obelix {
        let mut child = Command::new(env!("CARGO_BIN_EXE_obelix"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DATABASE_URL")
            .env("OBELIX__DATABASE__DATA_DIR", data_dir)
            .env("OBELIX__SERVER__PORT", "0")
            .env("OBELIX__SERVER__WORKERS", "1")
            .env("OBELIX__OLYMPICS__REPORTER_TOKEN", REPORTER_TOKEN)
            .env("OBELIX__ADMIN__TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("obelix starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = drain(child.stdout.take().unwrap(), log.clone());
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
            log,
        }
    }

    /// Connection options parsed from the `PGPASSFILE=FILE psql -h DIR -p PORT -U USER -d DB`
    /// line it logged, with the password read from that file.
    fn connect_options(&self) -> PgConnectOptions {
        let options = self.connect_options_without_password();
        match self.password() {
            Some(password) => options.password(&password),
            None => options,
        }
    }

    /// The same, without the password.
    fn connect_options_without_password(&self) -> PgConnectOptions {
        let words: Vec<&str> = self.psql.split_whitespace().collect();
        let arg = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
        PgConnectOptions::new()
            .host(arg("-h"))
            .port(arg("-p").parse().unwrap())
            .username(arg("-U"))
            .database(arg("-d"))
    }

    /// The password in the file the logged command's PGPASSFILE names (`host:port:db:user:pw`).
    fn password(&self) -> Option<String> {
        let file = self
            .psql
            .split_whitespace()
            .find_map(|w| w.strip_prefix("PGPASSFILE="))?;
        let text = std::fs::read_to_string(file).expect("the password file is readable");
        Some(text.trim().rsplit(':').next().unwrap().to_owned())
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
fn drain(
    stdout: std::process::ChildStdout,
    log: Arc<Mutex<Vec<String>>>,
) -> Arc<Mutex<Receiver<String>>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if std::env::var("TEST_LOG").is_ok() {
                println!("{line}");
            }
            log.lock().unwrap().push(line.clone());
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

/// Runs `obelix` (a private cluster in a temp folder, port 0) with `env` on top, and waits up to
/// `within` for it to exit; `None` when it was still running (it is killed then).
fn run_until_exit(
    env: &[(&str, &str)],
    within: Duration,
) -> Option<(std::process::ExitStatus, String, String)> {
    let (_guard, data) = data_dir();
    run_until_exit_in(&data, env, within)
}

/// The same with the private cluster in `data`.
fn run_until_exit_in(
    data: &Path,
    env: &[(&str, &str)],
    within: Duration,
) -> Option<(std::process::ExitStatus, String, String)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_obelix"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("OBELIX__DATABASE__DATA_DIR", data)
        .env("OBELIX__SERVER__PORT", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("obelix starts");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    status.map(|status| (status, stdout, stderr))
}

/// Asserts that obelix refused to start at once, with one line on stderr containing `expected`.
fn assert_refused(env: &[(&str, &str)], expected: &[&str]) {
    let Some((status, stdout, stderr)) = run_until_exit(env, Duration::from_secs(10)) else {
        panic!("obelix started with {env:?} instead of refusing");
    };
    assert!(!status.success(), "exit status {status} for {env:?}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line for {env:?}: {stderr}"
    );
    for word in expected {
        assert!(
            stderr.contains(word),
            "{word} in the error for {env:?}: {stderr}"
        );
    }
    assert!(
        !stdout.contains("panic") && !stderr.contains("panic"),
        "no panic: {stdout}{stderr}"
    );
}

#[test]
fn a_misspelled_setting_stops_the_start_and_names_the_key() {
    // From the environment…
    assert_refused(
        &[("OBELIX__SERVER__MAX_BODY_BYTE", "1000")],
        &["max_body_byte"],
    );
    assert_refused(&[("OBELIX__QUEUE__MAXBATCH", "5")], &["maxbatch"]);
    // …and from the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obelix.toml");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .unwrap()
        .replace("cache_capacity = 10000", "cache_capacty = 10000");
    std::fs::write(&file, shipped).unwrap();
    assert_refused(
        &[("OBELIX_CONFIG", file.to_str().unwrap())],
        &["cache_capacty"],
    );
}

#[test]
fn contradicting_settings_stop_the_start() {
    // A message the body limit never lets through.
    assert_refused(
        &[("OBELIX__QUEUE__MAX_MESSAGE_BYTES", "100000")],
        &["queue.max_message_bytes", "server.max_body_bytes"],
    );
}

#[tokio::test]
async fn the_private_postgres_wants_its_password_and_is_closed_to_other_users() {
    let (_guard, data) = data_dir();
    let obelix = Obelix::start(&data);

    // 1. The command Obelix logged opens its database, password included.
    let mut conn = PgConnection::connect_with(&obelix.connect_options())
        .await
        .expect("the logged psql command connects");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    let output = Command::new("sh")
        .args(["-c", &format!("{} -XAtc 'SELECT 40 + 2'", obelix.psql)])
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "42",
        "the logged command, as printed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // 2. Without the password, PostgreSQL refuses.
    let refused = PgConnection::connect_with(&obelix.connect_options_without_password()).await;
    assert!(refused.is_err(), "connected without a password");

    // 3. Another local user cannot even reach the socket, password or not.
    if unsafe { libc::geteuid() } == 0 {
        let password = obelix.password().expect("a password file");
        let psql = obelix.psql.split_once("psql").unwrap().1;
        let output = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!("psql {psql} -XAtc 'SELECT 1'"))
            .env("PGPASSWORD", password)
            .current_dir("/")
            .output()
            .expect("setpriv runs");
        assert!(
            !output.status.success(),
            "nobody reached the private PostgreSQL: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");
    }
}

#[test]
fn a_socket_folder_someone_else_made_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        return; // making a folder for another user needs root
    }
    let (guard, data) = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let socket_dir = obelix::storage::pg_cluster::socket_dir_for(&data.canonicalize().unwrap());
    let _ = std::fs::remove_dir_all(&socket_dir);
    std::fs::create_dir(&socket_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&socket_dir, Some(65534), Some(65534)).unwrap();
    let outcome = run_until_exit_in(&data, &[], Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&socket_dir);
    drop(guard);
    let Some((status, _, stderr)) = outcome else {
        panic!("obelix started with a socket folder that another user owns");
    };
    assert!(!status.success());
    assert!(
        stderr.contains(&socket_dir.display().to_string()),
        "{stderr}"
    );
}

#[tokio::test]
async fn kill_9_under_bookstore_buys_keeps_every_acknowledged_order_once() {
    let (_guard, data) = data_dir();

    // 1. Buyers (each buy with its own idempotency key) until 150 are acknowledged; kill -9.
    let first = Obelix::start(&data);
    let client = client();
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let mut buyers = Vec::new();
    for w in 0..8 {
        let (client, base, acknowledged) =
            (client.clone(), first.base_url.clone(), acknowledged.clone());
        buyers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("bk9-{w}-{i}");
                let book = 1 + (i % 4);
                let sent = client
                    .post(format!("{base}/bookstore/books/{book}/buy"))
                    .header("Idempotency-Key", &key)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let order: serde_json::Value = match r.json().await {
                            Ok(order) => order,
                            Err(_) => return,
                        };
                        acknowledged
                            .lock()
                            .unwrap()
                            .push((key, order["id"].as_i64().unwrap()));
                    }
                    Ok(r) => panic!("buy {key} answered {} before the kill", r.status()),
                    Err(_) => return, // the process is gone
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= 150
    })
    .await;
    first.signal(libc::SIGKILL);
    for buyer in buyers {
        buyer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(first);

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

/// The longest stretch for which `work` kept this (single) thread from running anything else.
async fn longest_stall<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let longest = std::cell::Cell::new(Duration::ZERO);
    let ticker = async {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            longest.set(longest.get().max(last.elapsed()));
            last = Instant::now();
        }
    };
    let result = tokio::select! {
        result = work => result,
        _ = ticker => unreachable!(),
    };
    (result, longest.get())
}

/// Kills the cluster's postmaster and waits until it is gone.
async fn kill_postmaster(data: &Path) {
    let pid = postmaster_pid(data).expect("a running postmaster");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually(
        Duration::from_secs(10),
        || unsafe { libc::kill(pid, 0) } != 0,
    )
    .await;
}

// A current-thread runtime, like the arbiter the keeper shares with every actor.
#[tokio::test(flavor = "current_thread")]
async fn restarting_the_private_postgres_never_blocks_the_actors_thread() {
    use obelix::storage::pg_cluster::{ClusterError, ClusterOptions, PrivateCluster};
    let (_guard, data) = data_dir();
    let options = ClusterOptions {
        durable: false,
        bin_dir: None,
    };
    let cluster = PrivateCluster::start(&data, options).await.unwrap();

    // 1. A restart whose file reads are slow (here its lock file is a pipe that answers after
    //    a second, as a stalled disk would): the thread goes on serving others meanwhile.
    kill_postmaster(&data).await;
    let lock = data.join("postmaster.pid");
    let _ = std::fs::remove_file(&lock);
    let path = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let slow_disk = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let writer = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
        std::fs::remove_file(&lock).unwrap();
        drop(writer); // the reader sees an empty file
    });
    let (restarted, stall) = longest_stall(cluster.ensure_running()).await;
    slow_disk.join().unwrap();
    assert!(restarted.unwrap(), "the postmaster was restarted");
    assert!(
        stall < Duration::from_millis(300),
        "the thread stalled for {stall:?}"
    );

    // 2. A restart that fails reports the lines of its own attempt only, without reading the
    //    whole log (here 40 MB of earlier runs) on the thread.
    kill_postmaster(&data).await;
    let log = data.with_extension("log");
    let earlier = "LOG:  a line of an earlier run\n".repeat(40 * 1024 * 1024 / 31);
    std::fs::write(&log, earlier).unwrap();
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut conf, b"\nno_such_setting = 1\n").unwrap();
    let (failed, stall) = longest_stall(cluster.ensure_running()).await;
    match failed {
        Err(ClusterError::NotReady { log, .. }) => {
            assert!(log.contains("no_such_setting"), "{log}");
            assert!(!log.contains("earlier run"), "{log}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(
        stall < Duration::from_millis(300),
        "the thread stalled for {stall:?}"
    );
}

#[tokio::test]
async fn a_second_obelix_on_the_same_data_is_refused_at_once() {
    let (_guard, data) = data_dir();
    let first = Obelix::start(&data);
    // 1. The second says at once that the data folder is taken, in one line, and exits.
    let started = Instant::now();
    let outcome = run_until_exit_in(&data, &[], Duration::from_secs(15));
    let Some((status, stdout, stderr)) = outcome else {
        panic!("a second obelix on the same data did not exit");
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("another Obelix"), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("panic"),
        "{stdout}{stderr}"
    );
    // 2. The first one never noticed.
    let ready = client()
        .get(format!("{}/readyz", first.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[test]
fn a_taken_port_is_reported_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (_guard, data) = data_dir();
    let outcome = run_until_exit_in(
        &data,
        &[("OBELIX__SERVER__PORT", &port)],
        Duration::from_secs(15),
    );
    let Some((status, stdout, stderr)) = outcome else {
        panic!("obelix did not exit with its port taken");
    };
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("panic"),
        "{stdout}{stderr}"
    );
    // Nothing was started: no cluster was made, no actor ran.
    assert!(
        !data.exists(),
        "the private cluster was set up before the port was checked"
    );
    assert!(!stdout.contains("started"), "{stdout}");
}

/// Warnings that a normal start still logs from service code (reported to the lead; not this
/// branch's files). Remove each once its service no longer warns for normal operation.
const KNOWN_START_WARNINGS_IN_SERVICE_CODE: &[&str] = &[
    // src/startup.rs: a token left at its development value from config.toml is worth a
    // warning at every start (the tests run with the shipped queue and bookstore tokens).
    "is the development one from config.toml",
    // src/actors/queue/manager.rs: on a loaded machine the brokers' first health check can miss
    // its 500 ms deadline while they load their partitions.
    "health check: broker",
];

#[tokio::test]
async fn a_normal_start_logs_no_warning() {
    let (_guard, data) = data_dir();
    let obelix = Obelix::start(&data);
    // Up, ready, and a moment for the groups' first elections and health checks.
    eventually(Duration::from_secs(30), || {
        obelix
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Election completed"))
    })
    .await;
    let ready = client()
        .get(format!("{}/readyz", obelix.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = obelix.log.lock().unwrap().clone();
    let warnings: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| {
            !KNOWN_START_WARNINGS_IN_SERVICE_CODE
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    assert!(warnings.is_empty(), "a normal start warned: {warnings:#?}");
}

#[tokio::test]
async fn json_logs_name_the_request_in_the_actors_events() {
    // 1. JSON lines, with the actors' hops logged (trace).
    let (_guard, data) = data_dir();
    let obelix = Obelix::start_with(
        &data,
        &[
            ("OBELIX__LOG__FORMAT", "json"),
            ("RUST_LOG", "info,obelix=trace"),
        ],
    );
    // 2. A reporter write with an id of the client's.
    let response = client()
        .put(format!("{}/olympics/games/curling/score", obelix.base_url))
        .bearer_auth(REPORTER_TOKEN)
        .header("X-Request-Id", "process-json-1")
        .json(&serde_json::json!({"scores": {"gauls": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "process-json-1");
    // 3. Every line is a JSON object, and the front-end's and the update log's events for
    //    the write name the request in their span list.
    let touched = |target: &str| {
        obelix.log.lock().unwrap().iter().any(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            event["target"].as_str().is_some_and(|t| t.contains(target))
                && event["spans"][0]["request_id"] == "process-json-1"
        })
    };
    eventually(Duration::from_secs(10), || {
        touched("actors::olympics::frontend") && touched("actors::write_log")
    })
    .await;
}
