//! `spawn_app()`: the whole Obelix tree on port 0 with a fresh database, and a client for it.
//!
//! PostgreSQL comes from `DATABASE_URL` when set; otherwise one private cluster is started per
//! test binary (from the installed server binaries) and every test gets its own database in it.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use obelix::settings::Settings;
use obelix::startup::Application;
use obelix::storage::pg_cluster::{ClusterOptions, PrivateCluster};
use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::OnceCell;

pub const REPORTER_TOKEN: &str = "test-reporter-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The PostgreSQL server this test binary uses.
enum TestServer {
    External(PgConnectOptions),
    Private(PrivateCluster),
}

static SERVER: OnceCell<TestServer> = OnceCell::const_new();

async fn server() -> &'static TestServer {
    SERVER
        .get_or_init(|| async {
            match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => TestServer::External(
                    PgConnectOptions::from_str(&url).expect("DATABASE_URL parses"),
                ),
                _ => TestServer::Private(
                    PrivateCluster::start(
                        &private_data_dir(),
                        ClusterOptions {
                            durable: false,
                            bin_dir: None,
                        },
                    )
                    .await
                    .expect("a private PostgreSQL cluster for the tests"),
                ),
            }
        })
        .await
}

/// `/tmp/obelix-test-<pid>/pgdata`, after removing those of test processes that are gone.
fn private_data_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("obelix-test-")
                .and_then(|p| p.parse::<i32>().ok())
                && unsafe { libc::kill(pid, 0) } != 0
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("obelix-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test folder");
    // The postgres user must be able to reach the data folder inside.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir.join("pgdata")
}

/// Creates a fresh database and returns a URL for it.
pub async fn fresh_database() -> String {
    let name = format!("obelix_test_{}", uuid::Uuid::new_v4().simple());
    let (admin_options, password) = match server().await {
        TestServer::External(options) => (options.clone(), None),
        TestServer::Private(cluster) => (
            cluster.connect_options("postgres"),
            Some(cluster.password().expose_secret().to_owned()),
        ),
    };
    let mut conn = admin_options
        .connect()
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.ok();
    let options = admin_options.database(&name);
    // Socket connections keep their folder in the `host` parameter.
    let host = options.get_host().to_owned();
    let user = options.get_username().to_owned();
    let port = options.get_port();
    if host.starts_with('/') {
        // The private cluster's password is alphanumeric: nothing to escape.
        let credentials = match password {
            Some(password) => format!("{user}:{password}"),
            None => user,
        };
        format!("postgres://{credentials}@localhost:{port}/{name}?host={host}")
    } else {
        match &std::env::var("DATABASE_URL") {
            Ok(url) => {
                let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
                parsed.set_path(&name);
                parsed.to_string()
            }
            Err(_) => format!("postgres://{user}@{host}:{port}/{name}"),
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Straight into the app's database, to check what is persisted.
    pub db: PgPool,
    handle: actix_web::dev::ServerHandle,
}

/// The default test settings: port 0, one HTTP worker, known tokens, three front-ends.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load().expect("config.toml loads");
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.database.url = Some(SecretString::from(database_url.to_owned()));
    settings.database.max_connections = 8;
    settings.olympics.frontends = 3;
    settings.olympics.reporter_token = SecretString::from(REPORTER_TOKEN);
    settings.admin.token = Some(SecretString::from(ADMIN_TOKEN));
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_tracing();
    let database_url = fresh_database().await;
    let mut settings = test_settings(&database_url);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.server_handle();
    actix_rt::spawn(app.run_until_stopped());
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await
        .expect("test pool");
    TestApp {
        address,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        db,
        handle,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // `stop` sends its command before returning; the future only awaits completion.
        drop(self.handle.stop(false));
    }
}

/// Logs show only with `TEST_LOG=1`; the events of requests that ask for it are kept for the
/// tests that check them (`log_capture`).
fn init_test_tracing() {
    crate::log_capture::install();
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    /// `GET path`, asserting a 200, as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// The queue's client library, pointed at this app.
    pub fn queue(&self) -> obelix::clients::queue::MyQueue {
        obelix::clients::queue::MyQueue::with_client(&self.address, self.client.clone())
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn get_as_tablet(&self, path: &str, tablet: &str) -> Response {
        self.request(Method::GET, path)
            .header("X-Tablet-Id", tablet)
            .send()
            .await
            .expect("GET")
    }

    pub async fn put_score(&self, game: &str, body: Value) -> Response {
        self.request(Method::PUT, &format!("/olympics/games/{game}/score"))
            .bearer_auth(REPORTER_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("PUT score")
    }

    pub async fn award_medal(&self, team: &str, medal: &str, key: Option<&str>) -> Response {
        let mut request = self
            .request(Method::POST, &format!("/olympics/teams/{team}/medals"))
            .bearer_auth(REPORTER_TOKEN)
            .json(&serde_json::json!({ "medal": medal }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST medal")
    }

    pub async fn register_tablet(&self) -> Value {
        let response = self
            .request(Method::POST, "/olympics/tablets")
            .send()
            .await
            .expect("POST tablet");
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn crash(&self, actor: &str, query: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/admin/actors/{actor}/crash?{query}"),
        )
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST crash")
    }

    pub async fn actor_status(&self, actor: &str) -> Value {
        let all: Vec<Value> = self
            .request(Method::GET, "/admin/actors")
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.into_iter()
            .find(|a| a["name"] == actor)
            .unwrap_or_else(|| panic!("no actor {actor}"))
    }

    /// Every front-end of the group as `GET /cluster` shows it.
    pub async fn cluster_members(&self) -> Vec<Value> {
        let cluster: Value = self.get_json("/cluster").await;
        cluster["members"].as_array().unwrap().clone()
    }

    /// `POST /admin/frontends` with `body`, as the admin.
    pub async fn post_frontend(&self, body: Value) -> Response {
        self.request(Method::POST, "/admin/frontends")
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("POST /admin/frontends")
    }

    /// Starts front-end `id` in the group.
    pub async fn add_frontend(&self, id: u64) {
        let response = self.post_frontend(serde_json::json!({ "id": id })).await;
        assert_eq!(response.status(), 201, "start front-end {id}");
    }

    /// Kills front-end `id` (a crash; it is not restarted).
    pub async fn kill_frontend(&self, id: u64) {
        let response = self
            .request(Method::DELETE, &format!("/admin/frontends/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("DELETE /admin/frontends/{id}");
        assert_eq!(response.status(), 204, "kill front-end {id}");
    }

    /// Waits until `actor` has been restarted at least `restarts` times and is alive again.
    pub async fn await_restart(&self, actor: &str, restarts: u64) {
        eventually(Duration::from_secs(10), || async {
            let status = self.actor_status(actor).await;
            status["restarts"].as_u64().unwrap() >= restarts && status["alive"] == true
        })
        .await;
    }
}

/// Asserts a 4xx/5xx JSON error body and returns it.
pub async fn error_body(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "error bodies are JSON"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string(),
        "error body names the error: {body}"
    );
    body
}

/// Polls `condition` until it holds, failing the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
