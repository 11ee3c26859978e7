//! The log queue (seed 004): its actors and its `boot`.
//!
//! - [`router`]: what the ingress uses: enqueues go straight to the broker of their partition,
//!   dequeues ([`consumption`]) to the brokers a read manager (or, outside groups, the ingress
//!   itself) picks.
//! - [`table`]: the routing table (topics, producers, consumers) the write manager publishes.
//! - [`broker`]: owns partitions; group commit of enqueues (`broker/writes.rs`), reads from an
//!   in-memory tail or a shared read cache (`broker/reads.rs`); [`offset_committer`] groups
//!   every broker's offset commits into one statement.
//! - [`manager`]: the write manager and read managers, one actor type, the write manager
//!   elected among them through the server group; [`read_routes`]: the read managers' job.
//! - The Kafka REST Proxy v2 dialect (`/kafka`): [`kafka`] (the ingress's gateway: topics,
//!   produce, instances), [`kafka_poll`] (an instance's reads, commits, seeks),
//!   [`kafka_reads`] (what it needs of the brokers), [`kafka_consumers`] (the actor that keeps
//!   the instances and expires idle ones).

pub mod broker;
pub mod consumption;
pub mod kafka;
pub mod kafka_consumers;
pub mod kafka_poll;
pub mod kafka_reads;
pub mod manager;
pub mod offset_committer;
pub mod read_routes;
pub mod router;
pub mod table;

use std::sync::Arc;

use arc_swap::ArcSwap;
use sqlx::PgPool;

use crate::actors::clock::now_ms;
use crate::actors::registry::Registry;
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::queue::QueueError;
use crate::queue::groups::GroupBook;
use crate::settings::Settings;
use broker::{BrokerLimits, BrokerSlot, PartitionSignals, QueueBroker};
use kafka::KafkaGateway;
use kafka_consumers::KafkaConsumers;
use manager::{ManagerSlot, QueueManager, QueueShared};
use offset_committer::OffsetCommitter;
use router::QueueRouter;
use table::{Clients, QueueTable};

/// Starts the queue: brokers, then managers (the write manager has the highest id).
pub async fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    registry: &Registry,
) -> Result<QueueRouter, QueueError> {
    let q = &settings.queue;
    let supervision = &settings.supervision;
    let signals = Arc::new(PartitionSignals::default());
    let limits = BrokerLimits {
        tail_messages: q.tail_messages,
        tail_bytes: q.tail_bytes,
        read_cache_bytes: q.read_cache_bytes,
        max_pending_messages: q.max_pending_messages,
        max_pending_bytes: q.max_pending_bytes,
        retention_interval: std::time::Duration::from_millis(q.retention_interval_ms.max(1)),
    };
    let committer = OffsetCommitter::new(pool.clone());
    let brokers: Vec<Arc<BrokerSlot>> = (1..=q.brokers as i32)
        .map(|id| {
            let cell = ActorCell::new(format!("queue-broker-{id}"));
            let (actor_cell, pool, signals) = (cell.clone(), pool.clone(), signals.clone());
            let (committer, hooks) = (committer.clone(), q.hooks.clone());
            let mailbox = q.mailbox_capacity;
            let addr = start_supervised(cell.clone(), supervision, shutdown.clone(), move |ctx| {
                // The ingress try_sends: past this many requests waiting, it answers 503.
                ctx.set_mailbox_capacity(mailbox);
                QueueBroker::new(id, actor_cell, pool, limits, signals, committer, hooks)
            });
            registry.add(cell.clone(), addr.clone());
            Arc::new(BrokerSlot { id, addr, cell })
        })
        .collect();

    let loaded = QueueTable::load(&pool)
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "the queue cannot load its routing table"))?;
    let clients = Clients::default();
    let table = loaded.fill(&clients);
    let groups = Arc::new(std::sync::Mutex::new(GroupBook::new(q.session_timeout_ms)));
    {
        let mut book = groups.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        for consumer in clients.consumers.values() {
            let Some(group) = &consumer.group else {
                continue;
            };
            for (topic_id, partition) in &consumer.topics {
                if let Some(topic) = table.topic_by_id(*topic_id) {
                    let partition = partition.map(|p| p as usize);
                    book.join(
                        group,
                        topic.id,
                        topic.partitions(),
                        consumer.id,
                        partition,
                        now,
                    );
                }
            }
        }
    }
    let write_manager_id = q.read_managers as u64 + 1;
    let shared = Arc::new(QueueShared {
        settings: q.clone(),
        table: ArcSwap::from_pointee(table),
        clients,
        brokers,
        managers: Default::default(),
        leader: std::sync::atomic::AtomicU64::new(write_manager_id),
        signals,
        groups,
    });
    let managers: Vec<Arc<ManagerSlot>> = (1..=write_manager_id)
        .map(|id| {
            let name = if id == write_manager_id {
                "queue-write-manager".to_owned()
            } else {
                format!("queue-read-manager-{id}")
            };
            let cell = ActorCell::new(name);
            let (actor_cell, pool, shared) = (cell.clone(), pool.clone(), shared.clone());
            let addr = start_supervised(cell.clone(), supervision, shutdown.clone(), move |_| {
                QueueManager::new(id, actor_cell, pool, shared)
            });
            registry.add(cell.clone(), addr.clone());
            Arc::new(ManagerSlot { id, addr, cell })
        })
        .collect();
    // Before any manager runs (they start when this task yields): they find each other here.
    let _ = shared.managers.set(managers);
    Ok(QueueRouter::new(shared))
}

/// Starts the Kafka REST dialect's consumer instances' actor over a booted queue.
pub fn boot_kafka(
    settings: &Settings,
    queue: &QueueRouter,
    shutdown: ShutdownSignal,
    registry: &Registry,
) -> KafkaGateway {
    let cell = ActorCell::new("queue-kafka-consumers");
    let (actor_cell, router) = (cell.clone(), queue.clone());
    let addr = start_supervised(cell.clone(), &settings.supervision, shutdown, move |_| {
        KafkaConsumers::new(actor_cell, router)
    });
    registry.add(cell, addr.clone());
    KafkaGateway::new(queue.clone(), addr)
}
