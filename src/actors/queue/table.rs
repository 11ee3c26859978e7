//! The queue's routing table: topics (and which broker owns each partition), producers and
//! consumers with what they registered for. The write manager loads it from PostgreSQL and
//! publishes every change; the ingress reads it on every request without a lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::queue::retention::Retention;
use crate::queue::store::{self, TopicRow};
use crate::queue::{PartitionKey, QueueError, Reader, TopicInfo};

/// A topic in the routing table.
#[derive(Debug)]
pub struct TopicRoute {
    pub id: i32,
    pub name: Arc<str>,
    pub retention: Retention,
    /// The broker id of each partition.
    pub brokers: Vec<i32>,
    /// Round-robin ticket for unkeyed enqueues.
    pub next_write: AtomicU64,
    /// Seed 004's `j`: the rotation index of whole-topic consumers.
    pub next_read: AtomicU64,
}

impl TopicRoute {
    pub fn from_row(row: &TopicRow) -> Self {
        Self {
            id: row.id,
            name: row.name.as_str().into(),
            retention: row.retention,
            brokers: row.brokers.clone(),
            next_write: AtomicU64::new(0),
            next_read: AtomicU64::new(0),
        }
    }

    pub fn partitions(&self) -> usize {
        self.brokers.len()
    }

    pub fn key(&self, partition: usize) -> PartitionKey {
        PartitionKey {
            topic_id: self.id,
            partition: partition as i32,
        }
    }

    pub fn info(&self) -> TopicInfo {
        TopicInfo {
            name: self.name.to_string(),
            partitions: self.brokers.len() as i32,
            retention_ms: self.retention.max_age_ms,
            retention_messages: self.retention.max_messages,
            brokers: self.brokers.clone(),
        }
    }
}

/// What a producer or consumer may use: topic id → a single partition, or all (`None`).
pub type Registrations = HashMap<i32, Option<i32>>;

#[derive(Debug, Clone)]
pub struct ConsumerRoute {
    pub id: i64,
    pub group: Option<Arc<str>>,
    pub topics: Registrations,
    /// Turns true when the consumer leaves: its long polls end at once (404).
    pub left: Arc<watch::Sender<bool>>,
}

impl ConsumerRoute {
    pub fn new(id: i64, group: Option<Arc<str>>, topics: Registrations) -> Self {
        Self {
            id,
            group,
            topics,
            left: Arc::new(watch::channel(false).0),
        }
    }

    pub fn reader(&self) -> Reader {
        match &self.group {
            Some(group) => Reader::Group(group.clone()),
            None => Reader::Consumer(self.id),
        }
    }
}

/// What the write manager publishes after every change.
#[derive(Debug, Default, Clone)]
pub struct QueueTable {
    pub topics: HashMap<Arc<str>, Arc<TopicRoute>>,
    pub producers: HashMap<i64, Arc<Registrations>>,
    pub consumers: HashMap<i64, Arc<ConsumerRoute>>,
}

impl QueueTable {
    pub fn topic_by_id(&self, id: i32) -> Option<&Arc<TopicRoute>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// `self` plus what `other` has that `self` lacks (a reload racing a registration).
    pub fn merged_with(mut self, other: &QueueTable) -> QueueTable {
        for (name, topic) in &other.topics {
            self.topics
                .entry(name.clone())
                .or_insert_with(|| topic.clone());
        }
        for (id, p) in &other.producers {
            self.producers.entry(*id).or_insert_with(|| p.clone());
        }
        for (id, c) in &other.consumers {
            self.consumers.entry(*id).or_insert_with(|| c.clone());
        }
        self
    }
}

impl QueueTable {
    /// The whole table from PostgreSQL.
    pub async fn load(pool: &PgPool) -> Result<QueueTable, QueueError> {
        let topics = store::load_topics(pool).await?;
        let mut table = QueueTable::default();
        for row in &topics {
            let route = Arc::new(TopicRoute::from_row(row));
            table.topics.insert(route.name.clone(), route);
        }
        let mut producers: HashMap<i64, Registrations> = HashMap::new();
        for (id, topic, partition) in store::load_producers(pool).await? {
            producers.entry(id).or_default().insert(topic, partition);
        }
        table.producers = producers
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        let mut consumers: HashMap<i64, ConsumerRoute> = HashMap::new();
        for (id, group, topic, partition) in store::load_consumers(pool).await? {
            consumers
                .entry(id)
                .or_insert_with(|| {
                    ConsumerRoute::new(id, group.map(|g| g.into()), Registrations::new())
                })
                .topics
                .insert(topic, partition);
        }
        table.consumers = consumers
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        Ok(table)
    }
}
