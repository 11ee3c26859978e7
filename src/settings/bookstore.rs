//! The Pygmy.com bookstore's settings (`[bookstore]`) and the checks its keys must pass together.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{BalancingPolicy, Settings, SettingsError};

/// The Pygmy.com bookstore (seed 002): its servers, token, cache and timing (milliseconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BookstoreSettings {
    /// Catalog replicas (`bookstore-catalog-1`, …), each with its own tables.
    pub replicas: usize,
    /// Where each replica keeps its copy, in replica order; a missing entry means the main
    /// database.
    pub replica_urls: Vec<SecretString>,
    /// Order servers (`bookstore-order-1`, …).
    pub order_servers: usize,
    /// The store manager's bearer token (restocks, cost changes).
    pub manager_token: SecretString,
    /// Books the front end caches; 0 turns caching off.
    pub cache_capacity: u64,
    /// How reads are spread over the live replicas: "round-robin" or "least-loaded".
    pub balancing: BalancingPolicy,
    /// How long a request may take before the client is answered 503.
    pub request_timeout_ms: u64,
    /// How long a write waits for each live replica to apply it; a replica that does not is
    /// taken out of reads and resyncs from the log.
    pub ack_timeout_ms: u64,
    /// Back-end servers send the front end a heartbeat this often…
    pub heartbeat_interval_ms: u64,
    /// …and one silent this long is routed around.
    pub heartbeat_deadline_ms: u64,
    /// Log entries a replica reads per batch while it resyncs.
    pub replay_batch: i64,
    /// Entries a replica holds back behind a gap before it resyncs instead.
    pub max_held: usize,
    /// How long a replica waits for a missing number before fetching it from the log.
    pub gap_patience_ms: u64,
}

impl Default for BookstoreSettings {
    fn default() -> Self {
        Self {
            replicas: 2,
            replica_urls: Vec::new(),
            order_servers: 2,
            manager_token: SecretString::from(DEVELOPMENT_MANAGER_TOKEN),
            cache_capacity: 10_000,
            balancing: BalancingPolicy::RoundRobin,
            request_timeout_ms: 5_000,
            ack_timeout_ms: 1_000,
            heartbeat_interval_ms: 50,
            heartbeat_deadline_ms: 250,
            replay_batch: 1_000,
            max_held: 100_000,
            gap_patience_ms: 100,
        }
    }
}

/// The manager token `config.toml` ships with, for local use only.
pub const DEVELOPMENT_MANAGER_TOKEN: &str = "pygmy-manager-dev-token";

impl BookstoreSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}

impl Settings {
    /// The bookstore's keys together.
    pub(super) fn validate_bookstore(&self) -> Result<(), SettingsError> {
        let store = &self.bookstore;
        if store.replicas == 0 || store.order_servers == 0 || store.heartbeat_interval_ms == 0 {
            return Err(SettingsError::Invalid(
                "bookstore.replicas, bookstore.order_servers and bookstore.heartbeat_interval_ms must be positive".into(),
            ));
        }
        if store.heartbeat_deadline_ms < store.heartbeat_interval_ms
            || store.replay_batch <= 0
            || store.balancing == BalancingPolicy::Random
        {
            return Err(SettingsError::Invalid(
                "bookstore: heartbeat_deadline_ms must be at least heartbeat_interval_ms, replay_batch positive, balancing round-robin or least-loaded".into(),
            ));
        }
        for (i, url) in store.replica_urls.iter().enumerate() {
            use secrecy::ExposeSecret;
            use std::str::FromStr;
            if sqlx::postgres::PgConnectOptions::from_str(url.expose_secret()).is_err() {
                return Err(SettingsError::Invalid(format!(
                    "bookstore.replica_urls[{i}] is not a PostgreSQL URL"
                )));
            }
        }
        Ok(())
    }
}
