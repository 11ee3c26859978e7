//! The log queue of seed 004 (issue 5): its domain types, its errors, and the plain logic the
//! queue actors drive, free of actix and unit-tested.
//!
//! - [`routing`]: which partition an enqueue goes to (round-robin or by key), and the order in
//!   which a consumer of a whole topic visits its partitions (seed 004's `(i + j) % n`).
//! - [`groups`]: consumer groups: assignment of partitions to live members, session timeouts,
//!   and leases so that a partition is never read by two members at once.
//! - [`retention`]: where retention cuts a partition.
//! - [`store`]: the SQL (sqlx) of the queue, shared by its actors.
//! - [`hooks`]: faults tests inject and counters they wait on (never configured).
//! - [`kafka`]: the Kafka REST Proxy v2 dialect's errors, formats and consumer instances.
//!
//! The actors are in `actors::queue`: the brokers (own partitions, do the reads and writes),
//! the managers (write manager and read managers) and the router (what the ingress uses to
//! reach them). The routes are in `web::queue`, the client in `clients::queue`.

pub mod groups;
pub mod hooks;
pub mod kafka;
pub mod retention;
pub mod routing;
pub mod store;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What can go wrong with a queue request. Mapped to HTTP in `web::error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("topic `{topic}` has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("unknown producer {0}")]
    UnknownProducer(i64),
    #[error("unknown consumer {0}")]
    UnknownConsumer(i64),
    #[error("{client} is not registered for {what}")]
    NotRegistered { client: String, what: String },
    /// A group member committing an offset of a partition it does not own (any more).
    #[error(
        "consumer {consumer} does not own partition {partition} of `{topic}` in group {group} (generation {generation}); poll again to get your partitions"
    )]
    Fenced {
        consumer: i64,
        group: String,
        topic: String,
        partition: i32,
        generation: u64,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The broker owning the partition is down or restarting: retry shortly.
    #[error("partition {partition} of `{topic}` is unavailable: {reason}")]
    PartitionUnavailable {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL failed. `detail` (its own words) is for the log, never for a reply.
    #[error("storage failed: {what}; retry shortly")]
    Storage { what: String, detail: String },
}

impl QueueError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, saying what it interrupted when it comes from the database.
    pub fn in_context(&self, what: &str) -> Self {
        match self {
            QueueError::Storage { detail, .. } => QueueError::Storage {
                what: what.to_owned(),
                detail: detail.clone(),
            },
            other => other.clone(),
        }
    }

    /// Whether retrying later may succeed (503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            QueueError::PartitionUnavailable { .. }
                | QueueError::Unavailable(_)
                | QueueError::Storage { .. }
        )
    }

    /// What the log gets besides the reply's text: PostgreSQL's own message.
    pub fn detail(&self) -> Option<&str> {
        match self {
            QueueError::Storage { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Storage {
            what: "a database statement failed".to_owned(),
            detail: e.to_string(),
        }
    }
}

/// The queue's development tokens, as `config.toml` ships them (the server warns at start while
/// one is in use; the client and the CLI default to them).
pub mod tokens {
    pub const DEVELOPMENT_ADMIN: &str = "queue-admin-dev-token";
    pub const DEVELOPMENT_PRODUCER: &str = "queue-producer-dev-token";
    pub const DEVELOPMENT_CONSUMER: &str = "queue-consumer-dev-token";
}

/// A partition, named by its topic's id and its index in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic_id: i32,
    pub partition: i32,
}

/// Who owns a read position: a consumer on its own, or a consumer group (shared offsets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reader {
    Consumer(i64),
    Group(Arc<str>),
}

impl Reader {
    /// The `queue_offsets.reader` column.
    pub fn key(&self) -> String {
        match self {
            Reader::Consumer(id) => format!("consumer:{id}"),
            Reader::Group(name) => format!("group:{name}"),
        }
    }

    pub fn parse(key: &str) -> Option<Reader> {
        if let Some(id) = key.strip_prefix("consumer:") {
            return id.parse().ok().map(Reader::Consumer);
        }
        key.strip_prefix("group:").map(|g| Reader::Group(g.into()))
    }
}

/// A committed message, as brokers keep it in memory and consumers receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredMessage {
    pub partition: i32,
    pub offset: i64,
    pub message: String,
    pub produced_at: DateTime<Utc>,
    /// Its JSON, rendered once and shared by every reply that carries it (brokers share one
    /// `Arc<StoredMessage>` between all readers).
    #[serde(skip)]
    json: RenderedJson,
}

impl StoredMessage {
    pub fn new(partition: i32, offset: i64, message: String, produced_at: DateTime<Utc>) -> Self {
        Self {
            partition,
            offset,
            message,
            produced_at,
            json: RenderedJson::default(),
        }
    }

    /// `{"partition":0,"offset":0,"message":"…","produced_at":"…"}`, rendered on first use.
    pub fn json(&self) -> &Bytes {
        self.json.0.get_or_init(|| {
            serde_json::to_vec(self)
                .expect("a message renders as JSON")
                .into()
        })
    }
}

/// A lazily rendered JSON fragment; not part of the message's identity.
#[derive(Clone, Default)]
struct RenderedJson(OnceLock<Bytes>);

impl PartialEq for RenderedJson {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RenderedJson {}

impl std::fmt::Debug for RenderedJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

/// A topic as `GET /queue/topics` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_messages: Option<i64>,
    /// The broker owning each partition, in partition order.
    pub brokers: Vec<i32>,
}

/// The longest topic and group names accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A topic or group name: 1 to 128 characters of letters, digits, `.`, `_` and `-`.
pub fn validate_name(field: &str, name: &str) -> Result<(), QueueError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(QueueError::invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(QueueError::invalid(
            field,
            "may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_round_trip_through_their_column() {
        for reader in [Reader::Consumer(42), Reader::Group("billing".into())] {
            assert_eq!(Reader::parse(&reader.key()), Some(reader));
        }
        assert_eq!(Reader::parse("nobody"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("name", "logs.app-1_x").is_ok());
        assert!(validate_name("name", "").is_err());
        assert!(validate_name("name", "with space").is_err());
        assert!(validate_name("name", &"x".repeat(129)).is_err());
    }
}
