//! The queue's second dialect: the Kafka REST Proxy v2 (issue 16), served under `/kafka` over
//! the same brokers, groups and offsets as `/queue`. Plain logic, free of actix:
//!
//! - this file: [`KafkaError`], v2's errors with their `error_code` (mapped to HTTP with the
//!   others in `web::error`);
//! - [`formats`]: the embedded formats (`json`, `binary`) and how a record's value becomes the
//!   queue's message text and back;
//! - [`instances`]: consumer instances (format, subscription, positions and seeks, idle expiry).
//!
//! The actor that owns the instances is `actors::queue::kafka_consumers`; the requests' paths
//! through the brokers are in `actors::queue::kafka`; the routes in `web::kafka`.

pub mod formats;
pub mod instances;

use crate::queue::QueueError;

/// The content type of v2 requests and replies without embedded data.
pub const V2_JSON: &str = "application/vnd.kafka.v2+json";

/// What can go wrong with a v2 request, as the proxy says it:
/// `{"error_code":40401,"message":"Topic not found"}`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KafkaError {
    #[error("Topic not found")]
    TopicNotFound,
    #[error("Partition not found")]
    PartitionNotFound,
    #[error("Consumer instance not found")]
    InstanceNotFound,
    #[error("Consumer with specified consumer ID already exists in the specified consumer group.")]
    InstanceExists,
    #[error(
        "The requested embedded data format does not match the deserializer for this consumer instance"
    )]
    FormatMismatch,
    #[error("{0}")]
    IllegalState(String),
    #[error("Invalid consumer configuration: {0}")]
    InvalidConsumerConfig(String),
    /// A well-formed body or parameter with a wrong value (rest-utils' generic 422).
    #[error("{0}")]
    Invalid(String),
    /// Syntax errors and the like: `error_code` is the status itself, as rest-utils does.
    #[error("{message}")]
    Http { status: u16, message: String },
    #[error("Unauthorized: missing or wrong queue token (Bearer, or the password of Basic)")]
    Unauthorized,
    /// A broker or manager is down, restarting or overloaded: retry shortly.
    #[error("Broker not available: {0}")]
    Unavailable(String),
    /// PostgreSQL failed (its own words stay in the log).
    #[error("Kafka error: storage is unavailable; retry shortly")]
    Storage { detail: String },
}

impl KafkaError {
    /// v2's `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            KafkaError::TopicNotFound => 40401,
            KafkaError::PartitionNotFound => 40402,
            KafkaError::InstanceNotFound => 40403,
            KafkaError::InstanceExists => 40902,
            KafkaError::FormatMismatch => 40601,
            KafkaError::IllegalState(_) => 40903,
            KafkaError::InvalidConsumerConfig(_) => 42204,
            KafkaError::Invalid(_) => 422,
            KafkaError::Http { status, .. } => u32::from(*status),
            KafkaError::Unauthorized => 40101,
            KafkaError::Unavailable(_) => 50302,
            KafkaError::Storage { .. } => 50002,
        }
    }

    /// The HTTP status the proxy gives: the first three digits of a five-digit code.
    pub fn status(&self) -> u16 {
        let code = self.error_code();
        if code >= 10_000 {
            (code / 100) as u16
        } else {
            code as u16
        }
    }

    /// The per-record code of a produce whose records could not be written (v2 puts it in the
    /// record's `error_code` rather than failing the request): retriable or not.
    pub fn produce_error_code(&self) -> u32 {
        match self {
            KafkaError::Unavailable(_) => 50003,
            KafkaError::Storage { .. } => 50002,
            other => other.error_code(),
        }
    }

    /// For the log: PostgreSQL's own message.
    pub fn detail(&self) -> Option<&str> {
        match self {
            KafkaError::Storage { detail } => Some(detail),
            _ => None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        KafkaError::Invalid(message.into())
    }
}

impl From<QueueError> for KafkaError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::UnknownTopic(_) => KafkaError::TopicNotFound,
            QueueError::UnknownPartition { .. } => KafkaError::PartitionNotFound,
            // The instance's own consumer left (expired, deleted) under its feet.
            QueueError::UnknownConsumer(_) | QueueError::UnknownProducer(_) => {
                KafkaError::InstanceNotFound
            }
            QueueError::Fenced { .. } => KafkaError::IllegalState(format!(
                "Commit cannot be completed since the group has already rebalanced: {e}"
            )),
            QueueError::TopicExists(_) | QueueError::NotRegistered { .. } => {
                KafkaError::IllegalState(e.to_string())
            }
            QueueError::Invalid { field, message } => {
                KafkaError::Invalid(format!("{field}: {message}"))
            }
            QueueError::PartitionUnavailable { .. } | QueueError::Unavailable(_) => {
                KafkaError::Unavailable(e.to_string())
            }
            QueueError::Storage { detail, .. } => KafkaError::Storage { detail },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_their_status() {
        assert_eq!(KafkaError::TopicNotFound.status(), 404);
        assert_eq!(KafkaError::TopicNotFound.error_code(), 40401);
        assert_eq!(KafkaError::FormatMismatch.status(), 406);
        assert_eq!(KafkaError::InvalidConsumerConfig("x".into()).status(), 422);
        assert_eq!(KafkaError::Unavailable("x".into()).status(), 503);
        assert_eq!(KafkaError::Storage { detail: "x".into() }.status(), 500);
        let http = KafkaError::Http {
            status: 415,
            message: "x".into(),
        };
        assert_eq!((http.status(), http.error_code()), (415, 415));
    }

    #[test]
    fn queue_errors_keep_their_meaning() {
        let e: KafkaError = QueueError::UnknownTopic("t".into()).into();
        assert_eq!(e, KafkaError::TopicNotFound);
        let e: KafkaError = QueueError::UnknownPartition {
            topic: "t".into(),
            partition: 9,
        }
        .into();
        assert_eq!(e, KafkaError::PartitionNotFound);
        let e: KafkaError = QueueError::Storage {
            what: "w".into(),
            detail: "pg said".into(),
        }
        .into();
        assert_eq!(e.detail(), Some("pg said"));
        assert!(!e.to_string().contains("pg said"));
    }
}
