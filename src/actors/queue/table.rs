//! The queue's routing table: topics (and which broker owns each partition), producers and
//! consumers with what they registered for. The write manager loads it from PostgreSQL and
//! publishes every change; the ingress reads it on every request: the topics without a lock
//! (swapped whole on each creation), the clients from sharded maps (one insert each).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use tokio::sync::watch;

use crate::actors::clock::now_ms;
use crate::queue::retention::Retention;
use crate::queue::store::{self, TopicRow};
use crate::queue::{PartitionKey, QueueError, Reader, TopicInfo};
use crate::settings::QueueSettings;

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
    /// When it was last heard from ([`now_ms`]): a poll (at its start and its end), a size
    /// or a commit.
    pub heard: Arc<AtomicU64>,
}

impl ConsumerRoute {
    pub fn new(id: i64, group: Option<Arc<str>>, topics: Registrations) -> Self {
        Self {
            id,
            group,
            topics,
            left: Arc::new(watch::channel(false).0),
            heard: Arc::new(AtomicU64::new(now_ms())),
        }
    }

    /// The consumer was heard from now.
    pub fn touch(&self) {
        self.heard
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Silent since before `cutoff` ([`now_ms`])?
    pub fn silent_since(&self, cutoff: u64) -> bool {
        self.heard.load(std::sync::atomic::Ordering::Relaxed) < cutoff
    }

    pub fn reader(&self) -> Reader {
        match &self.group {
            Some(group) => Reader::Group(group.clone()),
            None => Reader::Consumer(self.id),
        }
    }
}

/// What the write manager publishes after every topic it creates: the topics (few, bounded by
/// `queue.max_topics`), swapped whole. Producers and consumers are in [`Clients`].
#[derive(Debug, Default, Clone)]
pub struct QueueTable {
    pub topics: HashMap<Arc<str>, Arc<TopicRoute>>,
}

impl QueueTable {
    pub fn topic_by_id(&self, id: i32) -> Option<&Arc<TopicRoute>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// Whether one more topic of `partitions` fits, with `reserved` being created already
    /// (`queue.max_topics`, `queue.max_total_partitions`).
    pub fn check_room(
        &self,
        limits: &QueueSettings,
        reserved: (usize, usize),
        partitions: usize,
    ) -> Result<(), QueueError> {
        let topics = self.topics.len() + reserved.0;
        if topics >= limits.max_topics {
            return Err(QueueError::invalid(
                "name",
                format!("the queue holds at most {} topics", limits.max_topics),
            ));
        }
        let used: usize = self.topics.values().map(|t| t.partitions()).sum::<usize>() + reserved.1;
        if used + partitions > limits.max_total_partitions {
            return Err(QueueError::invalid(
                "partitions",
                format!(
                    "{used} of the queue's {} partitions are in use",
                    limits.max_total_partitions
                ),
            ));
        }
        Ok(())
    }

    /// `self` plus the topics `other` has that `self` lacks (a reload racing a creation).
    pub fn merged_with(mut self, other: &QueueTable) -> QueueTable {
        for (name, topic) in &other.topics {
            self.topics
                .entry(name.clone())
                .or_insert_with(|| topic.clone());
        }
        self
    }
}

/// Maps shards: enough that the ingress's reads and the write manager's inserts rarely meet.
const SHARDS: usize = 32;

/// Clients by id in sharded maps: a registration or a departure costs one insert or removal in
/// one shard, O(1), and copies nothing (the routing table was cloned whole for each one).
#[derive(Debug)]
pub struct ClientMap<V> {
    shards: Vec<RwLock<HashMap<i64, Arc<V>>>>,
}

impl<V> Default for ClientMap<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl<V> ClientMap<V> {
    fn shard(&self, id: i64) -> &RwLock<HashMap<i64, Arc<V>>> {
        &self.shards[(id as u64 % SHARDS as u64) as usize]
    }

    pub fn get(&self, id: i64) -> Option<Arc<V>> {
        self.shard(id)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.shard(id)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    pub fn insert(&self, id: i64, value: Arc<V>) {
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, value);
    }

    /// Keeps what is there (a reload racing a registration).
    pub fn insert_if_absent(&self, id: i64, value: Arc<V>) {
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_insert(value);
    }

    pub fn remove(&self, id: i64) -> Option<Arc<V>> {
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    pub fn values(&self) -> Vec<Arc<V>> {
        self.shards
            .iter()
            .flat_map(|s| {
                let shard = s.read().unwrap_or_else(|p| p.into_inner());
                shard.values().cloned().collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Every producer (what it may write to) and every present consumer.
#[derive(Debug, Default)]
pub struct Clients {
    pub producers: ClientMap<Registrations>,
    pub consumers: ClientMap<ConsumerRoute>,
}

/// Everything the routing table is rebuilt from.
pub struct Loaded {
    pub table: QueueTable,
    pub producers: Vec<(i64, Registrations)>,
    pub consumers: Vec<ConsumerRoute>,
}

impl Loaded {
    /// Adds the clients PostgreSQL has that `clients` lacks.
    pub fn fill(self, clients: &Clients) -> QueueTable {
        for (id, registrations) in self.producers {
            clients
                .producers
                .insert_if_absent(id, Arc::new(registrations));
        }
        for consumer in self.consumers {
            clients
                .consumers
                .insert_if_absent(consumer.id, Arc::new(consumer));
        }
        self.table
    }
}

impl QueueTable {
    /// The whole table and every client from PostgreSQL.
    pub async fn load(pool: &PgPool) -> Result<Loaded, QueueError> {
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
        Ok(Loaded {
            table,
            producers: producers.into_iter().collect(),
            consumers: consumers.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Runs `register` for ids 0..100,000; the time of the first and of the last 10,000.
    fn first_and_last_10k(mut register: impl FnMut(i64)) -> (Duration, Duration) {
        let began = Instant::now();
        (0..10_000).for_each(&mut register);
        let first = began.elapsed();
        (10_000..90_000).for_each(&mut register);
        let began = Instant::now();
        (90_000..100_000).for_each(&mut register);
        (first, began.elapsed())
    }

    #[test]
    fn a_hundred_thousand_registrations_at_steady_speed() {
        // What the write manager does in memory for each registration: O(1), whatever is
        // registered already (cloning the table for each made the last 10,000 ~10x slower).
        let clients = Clients::default();
        let registrations = Arc::new(Registrations::from([(1, None)]));
        let (first, last) = first_and_last_10k(|id| {
            clients.producers.insert(id, registrations.clone());
            let consumer = ConsumerRoute::new(id, None, Registrations::from([(1, None)]));
            clients.consumers.insert(id, Arc::new(consumer));
        });
        assert!(
            last < first * 3 + Duration::from_millis(20),
            "first 10,000 in {first:?}, last 10,000 in {last:?}"
        );
        assert!(clients.producers.get(99_999).is_some());
        assert_eq!(clients.consumers.remove(5).map(|c| c.id), Some(5));
        assert!(!clients.consumers.contains(5));
    }
}
