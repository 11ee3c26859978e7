//! The command-line clients: `obelix tablet` (a stone tablet following games and teams),
//! `obelix cacofonix` (the reporter), `obelix queue` (the log queue's library and CLI) and
//! `obelix books` (the bookstore's shopper) and `obelix rooms` (seed 003's caching room
//! reservation client). They talk to a running Obelix over its REST API only.

pub mod board;
pub mod books;
pub mod cacofonix;
pub mod queue;
pub mod rooms;
pub mod sse;
pub mod tablet;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", describe_http(.0))]
    Http(#[from] reqwest::Error),
    #[error("{status} from {url}: {body}")]
    Refused {
        status: reqwest::StatusCode,
        url: String,
        body: String,
    },
    #[error("unexpected answer: {0}")]
    Decode(String),
}

/// A plain HTTP client (loopback and LANs; no proxy from the environment).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

/// Turns a non-success answer into [`ClientError::Refused`] with its body.
pub async fn expect_success(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    if response.status().is_success() || response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(response);
    }
    Err(ClientError::Refused {
        status: response.status(),
        url: response.url().to_string(),
        body: response.text().await.unwrap_or_default(),
    })
}

/// A connection refused reads as what it means, and says how to start a server.
fn describe_http(e: &reqwest::Error) -> String {
    if e.is_connect() {
        let server = e
            .url()
            .map(|u| format!("{}://{}", u.scheme(), u.authority()))
            .unwrap_or_else(|| "the server".to_owned());
        return format!(
            "cannot reach the Obelix server at {server} (is one running?). Start one with \
             `obelix serve` (or `cargo run --release -- serve` in the repository), or pass \
             --server URL"
        );
    }
    format!("HTTP: {e}")
}

/// Games' and teams' display names by slug (`/olympics/games`, `/olympics/teams`).
pub async fn names(
    client: &reqwest::Client,
    server: &str,
) -> Result<std::collections::HashMap<String, String>, ClientError> {
    let mut names = std::collections::HashMap::new();
    for path in ["/olympics/games", "/olympics/teams"] {
        let list: Vec<serde_json::Value> =
            expect_success(client.get(format!("{server}{path}")).send().await?)
                .await?
                .json()
                .await?;
        for item in list {
            if let (Some(slug), Some(name)) = (item["slug"].as_str(), item["name"].as_str()) {
                names.insert(slug.to_owned(), name.to_owned());
            }
        }
    }
    Ok(names)
}

/// Resolves when the user asks the client to stop: Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
