//! The `obelix` binary as a user runs it, with its own private PostgreSQL cluster:
//! - `kill9`: `kill -9` under load loses no acknowledged write (Olympic awards, queue messages
//!   and consumer offsets, bookstore orders, room reservations); a killed postmaster is brought
//!   back by the keeper; SIGTERM shuts everything down cleanly;
//! - `chaos`: every service under load while actors crash at random, then `kill -9`;
//! - `postgres`: the private cluster (what to install, passwords, one Obelix per data folder,
//!   a taken port, restarts that never block the actors' thread);
//! - `settings`: refused settings, and a normal start that logs no warning.
//!
//! This file holds the harness they share: a running [`Obelix`] and [`Load`], writers that run
//! against it until it is killed.

mod chaos;
mod kill9;
mod postgres;
mod settings;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

pub const REPORTER_TOKEN: &str = "process-test-token";
pub const ADMIN_TOKEN: &str = "process-test-admin";

/// A running `obelix serve` and what it printed.
pub struct Obelix {
    child: Child,
    base_url: String,
    psql: String,
    /// Every line it has logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Obelix {
    pub fn start(data_dir: &Path) -> Obelix {
        Self::start_with(data_dir, &[])
    }

    /// [`Obelix::start`] with more (or overriding) environment variables.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Obelix {
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
    pub fn connect_options(&self) -> PgConnectOptions {
        let options = self.connect_options_without_password();
        match self.password() {
            Some(password) => options.password(&password),
            None => options,
        }
    }

    /// The same, without the password.
    pub fn connect_options_without_password(&self) -> PgConnectOptions {
        let words: Vec<&str> = self.psql.split_whitespace().collect();
        let arg = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
        PgConnectOptions::new()
            .host(arg("-h"))
            .port(arg("-p").parse().unwrap())
            .username(arg("-U"))
            .database(arg("-d"))
    }

    /// The password in the file the logged command's PGPASSFILE names (`host:port:db:user:pw`).
    pub fn password(&self) -> Option<String> {
        let file = self
            .psql
            .split_whitespace()
            .find_map(|w| w.strip_prefix("PGPASSFILE="))?;
        let text = std::fs::read_to_string(file).expect("the password file is readable");
        Some(text.trim().rsplit(':').next().unwrap().to_owned())
    }

    pub fn signal(&self, signal: i32) {
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

pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The postgres user must reach the data folder inside (when we run as root).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("pgdata");
    (dir, data)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

pub async fn eventually<F: FnMut() -> bool>(within: Duration, mut condition: F) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `/readyz` answers 200: every service can answer, which takes the room servers'
/// first election (a moment after "Obelix is up"). Panics with the last reasons after 30 s.
pub async fn await_ready(base_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client()
            .get(format!("{base_url}/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one write of a [`Load`] came to.
pub enum Outcome<T> {
    /// Acknowledged: kept.
    Acked(T),
    /// Not acknowledged, and the writer goes on.
    Skipped,
    /// The writer stops (the process is gone, or it has nothing left to write).
    Done,
}

/// Writers running against one Obelix, each calling its write with (writer, i) for i = 0, 1, …
/// until it answers [`Outcome::Done`]; what was acknowledged is kept in order of answers.
pub struct Load<T> {
    acked: Arc<Mutex<Vec<T>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Load<T> {
    pub fn start<W, F>(writers: usize, write: W) -> Load<T>
    where
        W: Fn(usize, usize) -> F + Clone + Send + 'static,
        F: Future<Output = Outcome<T>> + Send,
    {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers = (0..writers)
            .map(|w| {
                let (acked, write) = (acked.clone(), write.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        match write(w, i).await {
                            Outcome::Acked(a) => acked.lock().unwrap().push(a),
                            Outcome::Skipped => {}
                            Outcome::Done => return,
                        }
                    }
                })
            })
            .collect();
        Load { acked, writers }
    }

    /// Waits until at least `count` writes are acknowledged.
    pub async fn until(&self, count: usize) {
        eventually(Duration::from_secs(30), || {
            self.acked.lock().unwrap().len() >= count
        })
        .await;
    }

    /// `kill -9` of `obelix` mid-traffic; every writer's end is awaited (a writer's panic, an
    /// answer it did not expect before the kill, fails the test here).
    pub async fn kill(self, obelix: Obelix) -> Vec<T> {
        obelix.signal(libc::SIGKILL);
        let acked = self.finish().await;
        drop(obelix);
        acked
    }

    /// Awaits every writer's end (after the process was killed) and returns what was
    /// acknowledged.
    pub async fn finish(self) -> Vec<T> {
        for writer in self.writers {
            writer.await.unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

/// Runs `obelix` (a private cluster in a temp folder, port 0) with `env` on top, and waits up to
/// `within` for it to exit; `None` when it was still running (it is killed then).
pub fn run_until_exit(
    env: &[(&str, &str)],
    within: Duration,
) -> Option<(std::process::ExitStatus, String, String)> {
    let (_guard, data) = data_dir();
    run_until_exit_in(&data, env, within)
}

/// The same with the private cluster in `data`.
pub fn run_until_exit_in(
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
