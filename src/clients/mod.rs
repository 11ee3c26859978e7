//! The command-line clients: `obelix tablet` (a stone tablet following games and teams),
//! `obelix cacofonix` (the reporter), `obelix queue` (the log queue's library and CLI) and
//! `obelix books` (the bookstore's shopper) and `obelix rooms` (seed 003's caching room
//! reservation client). They talk to a running Obelix over its REST API only.

pub mod books;
pub mod cacofonix;
pub mod queue;
pub mod rooms;
pub mod sse;
pub mod tablet;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
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
