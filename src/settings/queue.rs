//! The log queue's settings (`[queue]`): brokers, managers, limits and timing.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The log queue (seed 004): brokers, managers, limits and timing (milliseconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Broker actors; a new topic's partitions are spread over them.
    pub brokers: usize,
    /// Read managers besides the write manager.
    pub read_managers: usize,
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The most messages one enqueue or dequeue may carry.
    pub max_batch: usize,
    /// The most partitions a topic may have.
    pub max_partitions: i32,
    /// The most topics, and the most partitions of all topics together.
    pub max_topics: usize,
    pub max_total_partitions: usize,
    /// Recently committed messages each broker keeps in memory per partition, to serve reads
    /// without PostgreSQL…
    pub tail_messages: usize,
    /// …and the bytes those tails may hold per broker, all its partitions together (each gets
    /// an equal share).
    pub tail_bytes: usize,
    /// Bytes of older messages (read from PostgreSQL in blocks) each broker keeps in memory
    /// for the other readers of the same range; least recently used blocks go first.
    pub read_cache_bytes: usize,
    /// Messages, and bytes, a broker accepts waiting for their commit before answering 503.
    pub max_pending_messages: usize,
    pub max_pending_bytes: usize,
    /// Requests waiting in a broker's mailbox before the next ones are answered 503.
    pub mailbox_capacity: usize,
    /// What the brokers may hold in memory together: `brokers × (tail_bytes +
    /// read_cache_bytes + max_pending_bytes + mailbox_capacity × server.max_body_bytes)` must
    /// fit in it (checked at start).
    pub memory_budget_bytes: usize,
    /// The longest long poll (`wait_ms`) accepted.
    pub max_wait_ms: u64,
    /// How long a request waits for a broker or manager before answering 503.
    pub request_timeout_ms: u64,
    /// Managers ping every broker this often…
    pub health_interval_ms: u64,
    /// …and log it as failed when it does not answer within this.
    pub health_deadline_ms: u64,
    /// A group member that has not polled for this long hands its partitions over.
    pub session_timeout_ms: u64,
    pub consumer_idle_expiry_ms: u64,
    /// How often brokers apply retention.
    pub retention_interval_ms: u64,
    /// Manager election (bully among managers) and heartbeats to the write manager.
    pub tick_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_deadline_ms: u64,
    pub election_answer_ms: u64,
    pub election_coordinator_ms: u64,
    /// Bearer tokens of topic administration (create topics), producers (register, enqueue)
    /// and consumers (register, dequeue, commit, leave). Listing topics takes any of them.
    pub admin_token: SecretString,
    pub producer_token: SecretString,
    pub consumer_token: SecretString,
    /// Kafka REST (`/kafka`) consumer instances: deleted when unused this long (the proxy's
    /// `consumer.instance.timeout.ms`), and at most this many at once (503 past it).
    pub kafka_instance_timeout_ms: u64,
    pub kafka_max_instances: usize,
    /// Faults and counters for tests; never read from configuration.
    #[serde(skip)]
    pub hooks: crate::queue::hooks::TestHooks,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            brokers: 3,
            read_managers: 2,
            max_message_bytes: 16 * 1024,
            max_batch: 1_000,
            max_partitions: 256,
            max_topics: 1_024,
            max_total_partitions: 4_096,
            tail_messages: 8_192,
            tail_bytes: 16 * 1024 * 1024,
            read_cache_bytes: 32 * 1024 * 1024,
            max_pending_messages: 200_000,
            max_pending_bytes: 16 * 1024 * 1024,
            mailbox_capacity: 256,
            memory_budget_bytes: 256 * 1024 * 1024,
            max_wait_ms: 30_000,
            request_timeout_ms: 5_000,
            health_interval_ms: 250,
            health_deadline_ms: 500,
            session_timeout_ms: 10_000,
            consumer_idle_expiry_ms: 3_600_000,
            retention_interval_ms: 1_000,
            tick_ms: 10,
            heartbeat_interval_ms: 50,
            heartbeat_deadline_ms: 150,
            election_answer_ms: 60,
            election_coordinator_ms: 250,
            admin_token: SecretString::from(crate::queue::tokens::DEVELOPMENT_ADMIN),
            producer_token: SecretString::from(crate::queue::tokens::DEVELOPMENT_PRODUCER),
            consumer_token: SecretString::from(crate::queue::tokens::DEVELOPMENT_CONSUMER),
            kafka_instance_timeout_ms: 300_000,
            kafka_max_instances: 10_000,
            hooks: Default::default(),
        }
    }
}

impl QueueSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The most the brokers hold in memory (see `memory_budget_bytes`), for request bodies of
    /// at most `max_body_bytes`.
    pub fn brokers_memory_bytes(&self, max_body_bytes: usize) -> usize {
        let per_broker = self.tail_bytes
            + self.read_cache_bytes
            + self.max_pending_bytes
            + self.mailbox_capacity.saturating_mul(max_body_bytes);
        self.brokers.saturating_mul(per_broker)
    }
}
