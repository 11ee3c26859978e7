//! The queue's read side for the ingress: a lock-free routing table the write manager publishes
//! (topics, their partitions' brokers, producers, consumers), read on every request to send
//! enqueues straight to the owning broker, and the way to the managers for everything else.
//!
//! - Enqueue: table → partition (explicit, by key, or round-robin over live partitions) →
//!   [`Append`] to its broker → answer after the broker's group commit.
//! - Dequeue (`consumption.rs`): a read manager (spread round-robin) decides the reader and the
//!   partitions to visit (seed 004's rotation, or the member's share of its group); the ingress
//!   then fetches from the brokers itself and, when nothing is there, waits on the partitions'
//!   commit signals (long poll) until `wait_ms`.
//! - Brokers are reached with `try_send`: a full mailbox (`queue.mailbox_capacity`) is a 503.
//! - Topic creation and registrations: the write manager (whichever manager the election made
//!   it), retried while an election is under way.
//!
//! A partition whose broker is down answers 503 (`PartitionUnavailable`), never an empty or
//! wrong answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::dev::SendError;
use actix::{Handler, MailboxError, Message};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::actors::queue::broker::{Append, BrokerSlot, QueueBroker};
use crate::actors::queue::manager::{
    CreateTopic, LeaveConsumer, ManagerError, QueueManager, QueueShared, RegisterConsumer,
    RegisterProducer,
};
use crate::actors::queue::table::{QueueTable, TopicRoute};
use crate::actors::traced::Traced;
use crate::queue::retention::Retention;
use crate::queue::routing;
use crate::queue::store::Registration;
use crate::queue::{QueueError, TopicInfo};
use crate::settings::QueueSettings;

/// One message's place, as an enqueue answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Placed {
    pub partition: i32,
    pub offset: i64,
}

/// Which partition an enqueue asks for.
#[derive(Debug, Clone, Default)]
pub struct EnqueueTarget {
    pub partition: Option<i32>,
    pub key: Option<String>,
}

/// A dequeue's parameters.
#[derive(Debug, Clone, Copy)]
pub struct DequeueParams {
    pub max: usize,
    pub wait: Duration,
    /// Move the consumer's offset past what it gets (the default); `false` to commit later.
    pub advance: bool,
}

#[derive(Clone)]
pub struct QueueRouter {
    pub(super) shared: Arc<QueueShared>,
    pub(super) next_read_manager: Arc<AtomicUsize>,
}

/// Why text with a NUL is refused.
const NO_NUL: &str = "must not contain NUL (\\u0000): PostgreSQL text cannot hold it";

/// How long writes to the managers are retried while an election runs.
const ELECTION_PATIENCE: Duration = Duration::from_secs(3);

impl QueueRouter {
    pub fn new(shared: Arc<QueueShared>) -> Self {
        Self {
            shared,
            next_read_manager: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn shared(&self) -> &Arc<QueueShared> {
        &self.shared
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.shared.settings
    }

    pub(super) fn timeout(&self) -> Duration {
        self.shared.settings.request_timeout()
    }

    pub(super) fn topic(
        &self,
        table: &QueueTable,
        name: &str,
    ) -> Result<Arc<TopicRoute>, QueueError> {
        table
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| QueueError::UnknownTopic(name.to_owned()))
    }

    pub fn list_topics(&self) -> Vec<TopicInfo> {
        let table = self.shared.table.load();
        let mut topics: Vec<TopicInfo> = table.topics.values().map(|t| t.info()).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    pub async fn create_topic(
        &self,
        name: String,
        partitions: i32,
        retention: Retention,
    ) -> Result<TopicInfo, QueueError> {
        crate::queue::validate_name("name", &name)?;
        retention.validate()?;
        let max = self.shared.settings.max_partitions;
        if !(1..=max).contains(&partitions) {
            return Err(QueueError::invalid(
                "partitions",
                format!("must be between 1 and {max}"),
            ));
        }
        let table = self.shared.table.load();
        if table.topics.contains_key(name.as_str()) {
            return Err(QueueError::TopicExists(name));
        }
        table.check_room(&self.shared.settings, (0, 0), partitions as usize)?;
        self.ask_write_manager(CreateTopic {
            name,
            partitions,
            retention,
        })
        .await
    }

    /// Resolves `(topic name, partition)` pairs against the table.
    fn registrations(
        &self,
        wanted: &[(String, Option<i32>)],
    ) -> Result<Vec<Registration>, QueueError> {
        if wanted.is_empty() {
            return Err(QueueError::invalid("topics", "name at least one topic"));
        }
        let table = self.shared.table.load();
        let mut seen = std::collections::HashSet::new();
        wanted
            .iter()
            .map(|(name, partition)| {
                let topic = self.topic(&table, name)?;
                if !seen.insert(topic.id) {
                    return Err(QueueError::invalid(
                        "topics",
                        format!("`{name}` is named twice"),
                    ));
                }
                if let Some(p) = *partition
                    && (p < 0 || p as usize >= topic.partitions())
                {
                    return Err(QueueError::UnknownPartition {
                        topic: name.clone(),
                        partition: p,
                    });
                }
                Ok(Registration {
                    topic_id: topic.id,
                    partition: *partition,
                })
            })
            .collect()
    }

    pub async fn register_producer(
        &self,
        wanted: Vec<(String, Option<i32>)>,
    ) -> Result<i64, QueueError> {
        let registrations = self.registrations(&wanted)?;
        self.ask_write_manager(RegisterProducer { registrations })
            .await
    }

    pub async fn register_consumer(
        &self,
        wanted: Vec<(String, Option<i32>)>,
        group: Option<String>,
    ) -> Result<i64, QueueError> {
        if let Some(group) = &group {
            crate::queue::validate_name("group", group)?;
        }
        let registrations = self.registrations(&wanted)?;
        self.ask_write_manager(RegisterConsumer {
            registrations,
            group,
        })
        .await
    }

    pub async fn leave(&self, consumer: i64) -> Result<(), QueueError> {
        if !self.shared.clients.consumers.contains(consumer) {
            return Err(QueueError::UnknownConsumer(consumer));
        }
        self.ask_write_manager(LeaveConsumer { id: consumer }).await
    }

    /// The broker of a topic's partition, if it is up.
    pub(super) fn live_broker(
        &self,
        topic: &TopicRoute,
        partition: usize,
    ) -> Result<&Arc<BrokerSlot>, QueueError> {
        let down = |reason: &str| QueueError::PartitionUnavailable {
            topic: topic.name.to_string(),
            partition: partition as i32,
            reason: reason.to_owned(),
        };
        let slot = self
            .shared
            .broker(topic.brokers[partition])
            .ok_or_else(|| down("its broker is unknown"))?;
        if !slot.cell.is_alive() {
            return Err(down(&format!("{} is down", slot.cell.name())));
        }
        Ok(slot)
    }

    fn broker_is_up(&self, topic: &TopicRoute, partition: usize) -> bool {
        self.live_broker(topic, partition).is_ok()
    }

    /// Appends `messages` for `producer` and answers where each went, once committed.
    pub async fn enqueue(
        &self,
        producer: i64,
        topic_name: &str,
        messages: Vec<String>,
        target: EnqueueTarget,
    ) -> Result<Vec<Placed>, QueueError> {
        self.check_messages(&messages, &target)?;
        let table = self.shared.table.load();
        let registrations = self
            .shared
            .clients
            .producers
            .get(producer)
            .ok_or(QueueError::UnknownProducer(producer))?;
        let topic = self.topic(&table, topic_name)?;
        let registered = registrations
            .get(&topic.id)
            .ok_or_else(|| QueueError::NotRegistered {
                client: format!("producer {producer}"),
                what: format!("topic `{topic_name}`"),
            })?;
        if let (Some(mine), Some(p)) = (*registered, target.partition)
            && p != mine
            && p >= 0
            && (p as usize) < topic.partitions()
        {
            return Err(QueueError::NotRegistered {
                client: format!("producer {producer}"),
                what: format!("partition {p} of `{topic_name}`"),
            });
        }
        let target = EnqueueTarget {
            partition: target.partition.or(*registered),
            key: target.key,
        };
        self.place(&topic, messages, target).await
    }

    /// Appends `messages` to a topic with no producer registered (the Kafka REST dialect, whose
    /// producers are anonymous): the same checks, partition choice and group commit.
    pub async fn append(
        &self,
        topic_name: &str,
        messages: Vec<String>,
        target: EnqueueTarget,
    ) -> Result<Vec<Placed>, QueueError> {
        self.check_messages(&messages, &target)?;
        let table = self.shared.table.load();
        let topic = self.topic(&table, topic_name)?;
        self.place(&topic, messages, target).await
    }

    /// What PostgreSQL cannot store, or the limits refuse, is refused here, before it shares a
    /// group commit.
    fn check_messages(
        &self,
        messages: &[String],
        target: &EnqueueTarget,
    ) -> Result<(), QueueError> {
        let limits = &self.shared.settings;
        if messages.is_empty() {
            return Err(QueueError::invalid("messages", "send at least one message"));
        }
        if messages.len() > limits.max_batch {
            return Err(QueueError::invalid(
                "messages",
                format!("at most {} messages per request", limits.max_batch),
            ));
        }
        let storable_only = !limits.hooks.lets_unstorable_through();
        for (i, m) in messages.iter().enumerate() {
            let field = || {
                if messages.len() == 1 {
                    "message".to_owned()
                } else {
                    format!("messages[{i}]")
                }
            };
            if m.is_empty() || m.len() > limits.max_message_bytes {
                return Err(QueueError::invalid(
                    field(),
                    format!("must be 1 to {} bytes", limits.max_message_bytes),
                ));
            }
            if storable_only && m.contains('\0') {
                return Err(QueueError::invalid(field(), NO_NUL));
            }
        }
        if target.key.as_ref().is_some_and(|k| k.contains('\0')) {
            return Err(QueueError::invalid("key", NO_NUL));
        }
        Ok(())
    }

    /// Picks the partition (explicit, by key, or round-robin over live partitions), appends to
    /// its broker and answers where each message went once committed.
    async fn place(
        &self,
        topic: &Arc<TopicRoute>,
        messages: Vec<String>,
        target: EnqueueTarget,
    ) -> Result<Vec<Placed>, QueueError> {
        let n = topic.partitions();
        let partition = match target.partition {
            Some(p) if p < 0 || p as usize >= n => {
                return Err(QueueError::UnknownPartition {
                    topic: topic.name.to_string(),
                    partition: p,
                });
            }
            Some(p) => p as usize,
            None => match &target.key {
                Some(key) => routing::partition_for_key(key, n),
                None => {
                    let ticket = topic.next_write.fetch_add(1, Ordering::Relaxed);
                    routing::round_robin(n, ticket, |p| self.broker_is_up(topic, p))
                        .unwrap_or((ticket % n as u64) as usize)
                }
            },
        };
        let broker = self.live_broker(topic, partition)?;
        let count = messages.len();
        let (reply, answer) = oneshot::channel();
        let append = Append {
            key: topic.key(partition),
            messages,
            reply,
        };
        self.deliver(topic, partition, broker, append)?;
        let first = self.await_broker(topic, partition, broker, answer).await?;
        Ok((0..count as i64)
            .map(|i| Placed {
                partition: partition as i32,
                offset: first + i,
            })
            .collect())
    }

    /// Puts `msg` in the broker's mailbox, or answers 503 when it is full (bounded by
    /// `queue.mailbox_capacity`: an overloaded broker sheds load instead of queueing forever).
    pub(super) fn deliver<M>(
        &self,
        topic: &TopicRoute,
        partition: usize,
        broker: &BrokerSlot,
        msg: M,
    ) -> Result<(), QueueError>
    where
        M: Message<Result = ()> + Send + 'static,
        QueueBroker: Handler<Traced<M>>,
    {
        broker.addr.try_send(Traced::new(msg)).map_err(|e| {
            let reason = match e {
                SendError::Full(_) => format!(
                    "{} is overloaded: {} requests wait in its mailbox",
                    broker.cell.name(),
                    self.shared.settings.mailbox_capacity
                ),
                SendError::Closed(_) => format!("{} is down", broker.cell.name()),
            };
            QueueError::PartitionUnavailable {
                topic: topic.name.to_string(),
                partition: partition as i32,
                reason,
            }
        })
    }

    /// Waits for a broker's answer; a closed channel (the broker crashed) or no answer in time
    /// is a 503.
    pub(super) async fn await_broker<T>(
        &self,
        topic: &TopicRoute,
        partition: usize,
        broker: &BrokerSlot,
        answer: oneshot::Receiver<Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let down = |reason: String| QueueError::PartitionUnavailable {
            topic: topic.name.to_string(),
            partition: partition as i32,
            reason,
        };
        match tokio::time::timeout(self.timeout(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(down(format!(
                "{} dropped the request (it crashed or restarted)",
                broker.cell.name()
            ))),
            Err(_) => Err(down(format!(
                "{} did not answer in time",
                broker.cell.name()
            ))),
        }
    }

    /// Sends `msg` to the write manager, following the election: a manager that no longer
    /// leads, or a leader that is down, means waiting for the election's outcome.
    async fn ask_write_manager<M, R>(&self, msg: M) -> Result<R, QueueError>
    where
        M: Message<Result = Result<R, ManagerError>> + Clone + Send + 'static,
        R: Send + 'static,
        QueueManager: Handler<M>,
    {
        let deadline = Instant::now() + ELECTION_PATIENCE;
        let mut last;
        loop {
            let leader = self.shared.leader.load(Ordering::Acquire);
            let slot = self
                .shared
                .managers()
                .iter()
                .find(|m| m.id == leader)
                .cloned();
            if let Some(slot) = slot.filter(|s| s.cell.is_alive()) {
                match slot.addr.send(msg.clone()).timeout(self.timeout()).await {
                    Ok(Ok(reply)) => return Ok(reply),
                    Ok(Err(ManagerError::Queue(e))) => return Err(e),
                    Ok(Err(ManagerError::NotLeader)) => {
                        last = format!(
                            "{} is not the write manager (an election is running)",
                            slot.cell.name()
                        );
                    }
                    Err(MailboxError::Timeout) => {
                        return Err(QueueError::Unavailable(format!(
                            "{} did not answer in time",
                            slot.cell.name()
                        )));
                    }
                    Err(MailboxError::Closed) => {
                        last = format!("{} crashed", slot.cell.name());
                    }
                }
            } else {
                last = format!("write manager {leader} is down; waiting for the election");
            }
            if Instant::now() >= deadline {
                return Err(QueueError::Unavailable(last));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl std::fmt::Debug for QueueRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRouter").finish_non_exhaustive()
    }
}
