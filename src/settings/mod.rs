//! Typed configuration, layered: `config.toml`, `OBELIX__SECTION__KEY` variables, `DATABASE_URL`.
//!
//! Every struct denies unknown fields: a misspelled key in the file or in an `OBELIX__…`
//! variable stops the start, naming it, instead of silently leaving the default in place.
//! [`Settings::validate`] then checks the keys that must agree with each other.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

mod bookstore;
mod idle;
mod operations;
mod queue;
mod rooms;

pub use bookstore::{BookstoreSettings, DEVELOPMENT_MANAGER_TOKEN};
pub use operations::{LogFormat, LogSettings, RateLimitSettings};
pub use queue::QueueSettings;
pub use rooms::RoomsSettings;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub olympics: OlympicsSettings,
    pub push: PushSettings,
    pub group: GroupSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    pub supervision: SupervisionSettings,
    #[serde(default)]
    pub queue: QueueSettings,
    #[serde(default)]
    pub raffle: RaffleSettings,
    #[serde(default)]
    pub write_log: WriteLogSettings,
    #[serde(default)]
    pub bookstore: BookstoreSettings,
    #[serde(default)]
    pub rooms: RoomsSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
}

/// The sequenced write logs (`actors::write_log`): how much each takes on.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct WriteLogSettings {
    /// Writes committed together at most.
    pub max_group: usize,
    /// Writes waiting for a commit at most; past it a write is answered 503 at once.
    pub max_pending: usize,
    /// Subscribers (front-ends, publishers, replicas) at most per log.
    pub max_subscribers: usize,
}

impl Default for WriteLogSettings {
    fn default() -> Self {
        Self {
            max_group: 256,
            max_pending: 10_000,
            max_subscribers: 1_024,
        }
    }
}

/// The raffle (seed 000): every `every`-th tablet request, across all front-ends, wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaffleSettings {
    pub every: u64,
    /// How often each front-end reports the tablet requests it served (off their path).
    pub report_interval_ms: u64,
    /// Tablet requests a front-end holds that the raffle has not counted yet (its reports fail
    /// or lag); past this its tablet reads are answered 503 until a report goes through.
    pub max_uncounted_requests: usize,
    /// Wins a front-end holds for tablets that have not read since they won; past this the
    /// oldest is forgotten (it stays in `GET /olympics/raffle/winners?tablet=`).
    pub max_untold_wins: usize,
}

impl Default for RaffleSettings {
    fn default() -> Self {
        Self {
            every: 100,
            report_interval_ms: 20,
            max_uncounted_requests: 100_000,
            max_untold_wins: 10_000,
        }
    }
}

impl RaffleSettings {
    pub fn raffle(&self) -> crate::olympics::raffle::Raffle {
        crate::olympics::raffle::Raffle::new(self.every).expect("validated: every > 0")
    }

    pub fn report_interval(&self) -> Duration {
        Duration::from_millis(self.report_interval_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    pub max_body_bytes: usize,
    /// A request's head (line and headers) must arrive within this, or the connection closes.
    #[serde(default = "ServerSettings::default_head_timeout_ms")]
    pub head_timeout_ms: u64,
    /// A request body must arrive within this once its head has: slower ones get 408 and lose
    /// their connection (a body sent a byte a second would otherwise hold it for hours).
    #[serde(default = "ServerSettings::default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Open connections each HTTP worker holds at most; further ones wait in the kernel's
    /// backlog without using a descriptor. Lowered at start to fit the descriptor limit.
    #[serde(default = "ServerSettings::default_max_connections")]
    pub max_connections: usize,
}

impl ServerSettings {
    fn default_head_timeout_ms() -> u64 {
        5_000
    }
    fn default_body_timeout_ms() -> u64 {
        10_000
    }
    fn default_max_connections() -> usize {
        2_048
    }

    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// An existing server. `None` means: run a private cluster in `data_dir`.
    pub url: Option<SecretString>,
    pub data_dir: PathBuf,
    /// Where the private cluster's `initdb` and `postgres` are; unset searches PATH, then
    /// `/usr/lib/postgresql/*/bin`.
    #[serde(default)]
    pub server_bin_dir: Option<PathBuf>,
    pub name: String,
    pub max_connections: u32,
}

/// How requests without a tablet id are spread over the front-ends.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BalancingPolicy {
    LeastLoaded,
    RoundRobin,
    Random,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OlympicsSettings {
    pub frontends: usize,
    /// The front-ends' numeric ids (the highest live one leads); default 1, 2, … `frontends`.
    #[serde(default)]
    pub frontend_ids: Vec<u64>,
    /// Explicit clock skews (ms) for the front-ends, in `frontend_ids` order; default: derived.
    #[serde(default)]
    pub clock_skews_ms: Vec<i64>,
    pub balancing: BalancingPolicy,
    pub reporter_token: SecretString,
    pub request_timeout_ms: u64,
    /// Entries each front-end's cache holds; 0 turns caching off.
    pub cache_capacity: u64,
    pub cache_consistency: CacheConsistency,
    /// How often each front-end re-reads its cached entries in pull mode.
    pub pull_interval_ms: u64,
    /// The most front-ends the group may have (`POST /admin/frontends` past it is 503).
    #[serde(default = "default_max_frontends")]
    pub max_frontends: usize,
    #[serde(default = "idle::default_tablet_idle_expiry_ms")]
    pub tablet_idle_expiry_ms: u64,
}

fn default_max_frontends() -> usize {
    64
}

/// How front-end caches learn of writes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CacheConsistency {
    /// Every write invalidates the entry in every front-end before it is acknowledged.
    Push,
    /// Each front-end re-reads its entries every `pull_interval_ms`; writes tell no one.
    Pull,
}

impl OlympicsSettings {
    /// How long the ingress waits for a front-end.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long a front-end waits for the database actor: shorter than the ingress's wait, so
    /// the front-end's answer (even "unavailable") arrives before the ingress gives up on it.
    pub fn database_timeout(&self) -> Duration {
        self.request_timeout() * 4 / 5
    }

    /// The refresh period when caches pull, `None` when they are pushed to.
    pub fn pull_interval(&self) -> Option<Duration> {
        (self.cache_consistency == CacheConsistency::Pull)
            .then(|| Duration::from_millis(self.pull_interval_ms.max(1)))
    }
}

/// Which election the front-ends run.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ElectionAlgorithm {
    /// Seed 003: broadcast, higher ids answer, the highest live id announces itself.
    Bully,
    /// Seed 000: the election goes round the ring collecting live ids; the highest wins.
    Ring,
}

/// The front-end group: election and failure detection timing (milliseconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    pub election: ElectionAlgorithm,
    /// How often each member looks at its timers.
    pub tick_ms: u64,
    /// How often a member pings its leader.
    pub heartbeat_interval_ms: u64,
    /// Silence after which the leader is suspected (and an unanswered ping has failed).
    pub heartbeat_deadline_ms: u64,
    /// Bully: how long an election waits for a higher member to answer. Ring: how long a hop
    /// waits for its successor's acknowledgement.
    pub election_answer_ms: u64,
    /// Bully: how long it then waits for that member's coordinator message. Ring: how long a
    /// participant waits for the announcement.
    pub election_coordinator_ms: u64,
    /// How often the leader runs a Berkeley clock synchronisation round.
    pub clock_sync_interval_ms: u64,
    /// Clocks further than this from the median are left out of the average (outliers).
    pub clock_max_deviation_ms: u64,
    /// Each front-end's simulated clock starts off by up to this much (derived from its id)…
    pub clock_max_skew_ms: i64,
    /// …and drifts by up to this many parts per million.
    pub clock_max_drift_ppm: i64,
}

/// Server-Sent Events to tablets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Events held for tablets that reconnect with `Last-Event-ID`.
    pub replay_events: usize,
    /// Events queued per tablet; a tablet that falls this far behind is disconnected.
    pub queue_per_tablet: usize,
    /// Open event streams, all tablets together; past this a new one is answered 503.
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: usize,
}

fn default_max_subscriptions() -> usize {
    10_000
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The admin API is disabled while this is `None`.
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSettings {
    pub max_restarts: u32,
    pub window_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl SettingsError {
    /// An unknown key, with where it came from: an `OBELIX__…` variable or the file.
    fn located(error: config::ConfigError, file: &str, variables: &[String]) -> Self {
        let message = error.to_string();
        let Some(key) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        else {
            return SettingsError::Config(error);
        };
        let from_env = variables.iter().find(|var| {
            var.to_lowercase()
                .split("__")
                .skip(1)
                .any(|part| part == key)
        });
        SettingsError::Invalid(match from_env {
            Some(var) => format!("{message} (from the environment variable {var})"),
            None => format!("{message} (in {file})"),
        })
    }
}

impl Settings {
    /// Reads `config.toml` (or the file named by `OBELIX_CONFIG`), then the environment.
    pub fn load() -> Result<Self, SettingsError> {
        let file = std::env::var("OBELIX_CONFIG").unwrap_or_else(|_| "config.toml".to_owned());
        Self::load_from(&file, std::env::vars().collect())
    }

    /// Reads `file` (if it exists), then the `OBELIX__…` and `DATABASE_URL` entries of `env`,
    /// and validates the result.
    pub fn load_from(
        file: &str,
        env: std::collections::HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        let database_url = env
            .get("DATABASE_URL")
            .filter(|url| !url.is_empty())
            .cloned();
        let variables: Vec<String> = env
            .keys()
            .filter(|k| k.starts_with("OBELIX__"))
            .cloned()
            .collect();
        let mut builder = config::Config::builder()
            .add_source(config::File::with_name(file).required(false))
            .add_source(
                config::Environment::with_prefix("OBELIX")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env)),
            );
        if let Some(url) = database_url {
            builder = builder.set_override("database.url", url)?;
        }
        let settings: Settings = builder
            .build()?
            .try_deserialize()
            .map_err(|e| SettingsError::located(e, file, &variables))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The ids of the front-ends to start.
    pub fn frontend_ids(&self) -> Vec<u64> {
        if self.olympics.frontend_ids.is_empty() {
            (1..=self.olympics.frontends as u64).collect()
        } else {
            self.olympics.frontend_ids.clone()
        }
    }

    /// The checks that keys must pass together (each alone has its type); the first that fails
    /// is the error, naming the keys.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let (group, queue, server) = (&self.group, &self.queue, &self.server);
        let ids = self.frontend_ids();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        // The JSON around one message in an enqueue: `{"topic":"<name>","message":"…"}`.
        let envelope = 32 + crate::queue::MAX_NAME_LEN;
        // The smallest message in a batch: `"",` (the queue refuses empty ones; one byte more).
        let smallest_in_batch = 4;
        let needed = queue.brokers_memory_bytes(server.max_body_bytes);
        let checks = [
            (
                needed <= queue.memory_budget_bytes,
                format!(
                    "queue.brokers × (tail_bytes + read_cache_bytes + max_pending_bytes + mailbox_capacity × server.max_body_bytes) is {needed} bytes, over queue.memory_budget_bytes ({})",
                    queue.memory_budget_bytes
                ),
            ),
            (
                queue.max_pending_bytes >= server.max_body_bytes && queue.mailbox_capacity > 0,
                "queue.max_pending_bytes must hold one request body (server.max_body_bytes) and queue.mailbox_capacity be positive".to_owned(),
            ),
            (
                group.heartbeat_interval_ms > 0
                    && group.heartbeat_deadline_ms >= group.heartbeat_interval_ms,
                "group.heartbeat_deadline_ms must be at least group.heartbeat_interval_ms, which must be positive".to_owned(),
            ),
            (
                unique.len() == ids.len(),
                "olympics.frontend_ids must be unique".to_owned(),
            ),
            (
                self.olympics.frontends > 0,
                "olympics.frontends must be at least 1".to_owned(),
            ),
            (
                self.olympics.clock_skews_ms.len() <= ids.len(),
                format!(
                    "olympics.clock_skews_ms has {} entries for {} front-ends",
                    self.olympics.clock_skews_ms.len(),
                    ids.len()
                ),
            ),
            (
                self.olympics.request_timeout_ms > 0 && queue.request_timeout_ms > 0,
                "olympics.request_timeout_ms and queue.request_timeout_ms must be positive"
                    .to_owned(),
            ),
            (
                self.raffle.every > 0,
                "raffle.every must be at least 1".to_owned(),
            ),
            (
                self.push.queue_per_tablet > 0,
                "push.queue_per_tablet must be at least 1".to_owned(),
            ),
            (
                self.database.max_connections > 0,
                "database.max_connections must be at least 1".to_owned(),
            ),
            (
                queue.brokers > 0 && queue.heartbeat_interval_ms > 0 && queue.tick_ms > 0,
                "queue.brokers, queue.heartbeat_interval_ms and queue.tick_ms must be positive"
                    .to_owned(),
            ),
            (
                queue.heartbeat_deadline_ms >= queue.heartbeat_interval_ms,
                "queue.heartbeat_deadline_ms must be at least queue.heartbeat_interval_ms"
                    .to_owned(),
            ),
            (
                queue.health_interval_ms > 0
                    && queue.health_deadline_ms >= queue.health_interval_ms,
                "queue.health_deadline_ms must be at least queue.health_interval_ms, which must be positive".to_owned(),
            ),
            (
                queue.max_message_bytes > 0 && queue.max_batch > 0,
                "queue.max_message_bytes and queue.max_batch must be positive".to_owned(),
            ),
            (
                queue.max_message_bytes.saturating_add(envelope) <= server.max_body_bytes,
                format!(
                    "queue.max_message_bytes ({}) does not fit in a request body of \
                     server.max_body_bytes ({}) with its JSON around it ({envelope} bytes): \
                     raise server.max_body_bytes or lower queue.max_message_bytes",
                    queue.max_message_bytes, server.max_body_bytes
                ),
            ),
            (
                queue.max_batch.saturating_mul(smallest_in_batch) <= server.max_body_bytes,
                format!(
                    "queue.max_batch ({}) messages never fit in a request body of \
                     server.max_body_bytes ({}), even of one byte each: lower queue.max_batch \
                     or raise server.max_body_bytes",
                    queue.max_batch, server.max_body_bytes
                ),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(SettingsError::Invalid(message)),
            None => self.validate_sections(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        Settings::load_from(SHIPPED, env(pairs))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn the_shipped_configuration_loads() {
        let settings = Settings::load_from(SHIPPED, env(&[])).unwrap();
        assert_eq!(settings.server.port, 8080);
    }

    #[test]
    fn an_unknown_variable_is_named_with_its_source() {
        let message = error(&[("OBELIX__PUSH__REPLAY_EVENT", "5")]);
        assert!(message.contains("replay_event"), "{message}");
        assert!(message.contains("OBELIX__PUSH__REPLAY_EVENT"), "{message}");
        let message = error(&[("OBELIX__RAFLE__EVERY", "5")]);
        assert!(message.contains("rafle"), "{message}");
    }

    #[test]
    fn keys_that_contradict_each_other_are_refused() {
        let message = error(&[("OBELIX__SERVER__MAX_BODY_BYTES", "1000")]);
        assert!(
            message.contains("queue.max_message_bytes")
                && message.contains("server.max_body_bytes"),
            "{message}"
        );
        let message = error(&[("OBELIX__QUEUE__MAX_BATCH", "1000000")]);
        assert!(message.contains("queue.max_batch"), "{message}");
        let message = error(&[("OBELIX__QUEUE__HEALTH_DEADLINE_MS", "1")]);
        assert!(message.contains("queue.health_deadline_ms"), "{message}");
    }
}
