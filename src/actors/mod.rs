//! The actor tree. Every actor runs under [`supervisor::start_supervised`], which restarts it
//! after a stop or a panic with the same address.
//!
//! ```text
//!   ingress ──► Router ──► Frontend × N ──► Database ──► PostgreSQL
//!                 ▲          │  ▲  group: election,        │ Changed (after each commit)
//!                 │          │  └─ heartbeats, clocks      ▼ to every Frontend (push mode)
//!   routing table │          │     between front-ends      Publisher ──► SSE streams
//!              Dispatcher ◄──┘ (tablets, add/kill front-ends)
//!   ClusterKeeper (only with a private PostgreSQL)
//!
//!   queue (seed 004):
//!   ingress ──► QueueRouter ──── enqueue / fetch ────► QueueBroker × B ──► PostgreSQL
//!                 │   ▲ routing table                    (group commit, in-memory tail)
//!                 │   └───── write manager ◄─ election, heartbeats ─► read managers
//!                 └── where to read (rotation, consumer groups) ──► read managers
//! ```
//!
//! - `database.rs`: the only actor that talks to PostgreSQL for the Olympic service.
//! - `frontend.rs` + `group.rs`: front-end servers, their caches and their group behaviour.
//! - `dispatcher.rs` + `router.rs`: tablet placement, membership, and the lock-free routing
//!   table the ingress reads.
//! - `publisher.rs`: pushes to tablets. `cluster_keeper.rs`: the private PostgreSQL.
//! - `queue_broker.rs`, `queue_manager.rs`, `queue_router.rs`: the log queue's brokers (own
//!   partitions, group commit), managers (the write manager and read managers, one elected
//!   among them) and the ingress's routing table.
//! - `supervisor.rs`, `registry.rs`, `messages.rs`: supervision, names, shared messages.

pub mod cluster_keeper;
pub mod database;
pub mod dispatcher;
pub mod frontend;
pub mod frontend_order;
pub mod group;
pub mod messages;
pub mod publisher;
pub mod queue_broker;
pub mod queue_manager;
pub mod queue_router;
pub mod registry;
pub mod router;
pub mod supervisor;

use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;
use sqlx::PgPool;

use crate::coordination::berkeley::SimulatedClock;
use crate::queue::QueueError;
use crate::queue::groups::GroupBook;
use crate::settings::Settings;
use database::{Database, Watch};
use dispatcher::Dispatcher;
use frontend::FrontendFactory;
use group::GroupMember;
use publisher::Publisher;
use queue_broker::{BrokerLimits, OffsetCommitter, PartitionSignals, QueueBroker};
use queue_manager::QueueManager;
use queue_router::{BrokerSlot, ManagerSlot, QueueRouter, QueueShared, QueueTable};
use registry::Registry;
use router::{FrontendSlot, Router, RoutingTable};
use supervisor::{ActorCell, ShutdownSignal, start_supervised};

/// Handles to the running tree, for the ingress.
#[derive(Clone)]
pub struct Tree {
    pub router: Router,
    pub database: Addr<Database>,
    pub publisher: Addr<Publisher>,
    pub registry: Registry,
    pub shutdown: ShutdownSignal,
    pub queue: QueueRouter,
    /// How long the ingress waits for an actor's answer.
    pub timeout: std::time::Duration,
}

/// Starts every actor of the tree on the current arbiter: the Olympic service's, then the
/// queue's (whose routing table is loaded from PostgreSQL first, so the first request finds it).
/// `last_update_seq` is where the front-ends join the global order of updates.
pub async fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    last_update_seq: u64,
) -> Result<Tree, QueueError> {
    let registry = Registry::default();
    let olympics = boot_olympics(
        settings,
        pool.clone(),
        shutdown.clone(),
        &registry,
        last_update_seq,
    );
    let queue = boot_queue(settings, pool, shutdown.clone(), &registry).await?;
    Ok(Tree {
        router: olympics.router,
        database: olympics.database,
        publisher: olympics.publisher,
        registry,
        shutdown,
        queue,
        timeout: settings.olympics.request_timeout(),
    })
}

/// The Olympic service's handles.
struct Olympics {
    router: Router,
    database: Addr<Database>,
    publisher: Addr<Publisher>,
}

/// Starts the Olympic service's actors on the current arbiter.
fn boot_olympics(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    registry: &Registry,
    last_update_seq: u64,
) -> Olympics {
    let supervision = &settings.supervision;
    let timeout = settings.olympics.request_timeout();
    let registry = registry.clone();

    let db_cell = ActorCell::new("database");
    let database = start_supervised(db_cell.clone(), supervision, shutdown.clone(), |_| {
        Database::new(pool, db_cell.clone())
    });
    registry.add(db_cell, database.clone());

    // The table comes first: front-ends find their peers in it.
    let table = Arc::new(ArcSwap::from_pointee(RoutingTable::default()));
    let factory = FrontendFactory {
        db: database.clone(),
        table: table.clone(),
        timeout,
        cache_capacity: settings.olympics.cache_capacity,
        pull_interval: settings.olympics.pull_interval(),
        group: settings.group.clone(),
        supervision: supervision.clone(),
        shutdown: shutdown.clone(),
        registry: registry.clone(),
        update_anchor: last_update_seq,
        raffle: settings.raffle.clone(),
    };
    let frontends: Vec<Arc<FrontendSlot>> = settings
        .frontend_ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let clock = settings.olympics.clock_skews_ms.get(i).map(|&skew| {
                let derived = GroupMember::default_clock(id, &settings.group);
                SimulatedClock::new(skew, derived.drift_ppm)
            });
            factory.spawn(id, clock)
        })
        .collect();
    // Published before the dispatcher starts, so anonymous reads work from the first moment.
    table.store(Arc::new(RoutingTable::new(
        frontends.clone(),
        Default::default(),
    )));
    let dispatcher_cell = ActorCell::new("dispatcher");
    let dispatcher = {
        let (db, table, cell) = (database.clone(), table.clone(), dispatcher_cell.clone());
        start_supervised(
            dispatcher_cell.clone(),
            supervision,
            shutdown.clone(),
            move |_| Dispatcher::new(frontends, factory, db, table, cell),
        )
    };
    registry.add(dispatcher_cell, dispatcher.clone());

    let publisher_cell = ActorCell::new("publisher");
    let publisher = {
        let (db, cell, push) = (
            database.clone(),
            publisher_cell.clone(),
            settings.push.clone(),
        );
        start_supervised(
            publisher_cell.clone(),
            supervision,
            shutdown.clone(),
            move |_| Publisher::new(db, cell, push.replay_events, push.queue_per_tablet),
        )
    };
    database.do_send(Watch(publisher.clone().recipient()));
    registry.add(publisher_cell, publisher.clone());

    Olympics {
        publisher,
        router: Router::new(table, dispatcher, settings.olympics.balancing, timeout),
        database,
    }
}

/// Starts the queue: brokers, then managers (the write manager has the highest id).
async fn boot_queue(
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
        read_cache_bytes: q.read_cache_bytes,
        max_pending_messages: q.max_pending_messages,
        retention_interval: std::time::Duration::from_millis(q.retention_interval_ms.max(1)),
    };
    let committer = OffsetCommitter::new(pool.clone());
    let brokers: Vec<Arc<BrokerSlot>> = (1..=q.brokers as i32)
        .map(|id| {
            let cell = ActorCell::new(format!("queue-broker-{id}"));
            let (actor_cell, pool, signals) = (cell.clone(), pool.clone(), signals.clone());
            let committer = committer.clone();
            let addr = start_supervised(cell.clone(), supervision, shutdown.clone(), move |_| {
                QueueBroker::new(id, actor_cell, pool, limits, signals, committer.clone())
            });
            registry.add(cell.clone(), addr.clone());
            Arc::new(BrokerSlot { id, addr, cell })
        })
        .collect();

    let table = QueueTable::load(&pool).await?;
    let groups = Arc::new(std::sync::Mutex::new(GroupBook::new(q.session_timeout_ms)));
    {
        let mut book = groups.lock().unwrap_or_else(|p| p.into_inner());
        let now = group::now_ms();
        for consumer in table.consumers.values() {
            let Some(group) = &consumer.group else {
                continue;
            };
            for topic_id in consumer.topics.keys() {
                if let Some(topic) = table.topic_by_id(*topic_id) {
                    book.join(group, topic.id, topic.partitions(), consumer.id, now);
                }
            }
        }
    }
    let write_manager_id = q.read_managers as u64 + 1;
    let shared = Arc::new(QueueShared {
        settings: q.clone(),
        table: ArcSwap::from_pointee(table),
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
