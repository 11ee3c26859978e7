//! The actor tree: one folder per service, the machinery they share at this level.
//!
//! ```text
//!   olympics/ (seeds 000, 001)
//!   ingress ──► Router ──► Frontend × N ──► Database ──► PostgreSQL
//!                 ▲          │  ▲  server group: election,  │ Changed (after each commit)
//!                 │          │  └─ heartbeats; clocks       ▼ to every Frontend (push mode)
//!   routing table │          │     between front-ends       Publisher ──► SSE streams
//!              Dispatcher ◄──┘ (tablets, add/kill front-ends)
//!
//!   queue/ (seed 004)
//!   ingress ──► QueueRouter ──── enqueue / fetch ────► QueueBroker × B ──► PostgreSQL
//!                 │   ▲ routing table                    (group commit, in-memory tail)
//!                 │   └───── write manager ◄─ server group: election, heartbeats ─► read managers
//!                 └── where to read (rotation, consumer groups) ──► read managers
//!
//!   bookstore/ (seed 002)
//!   ingress ──► Bookstore (cache) ──► bookstore-frontend ──► catalog replicas × R (own tables)
//!                                          └── buys ──► order servers × O ──► write log ──► PostgreSQL
//!
//!   rooms/ (seed 003)
//!   ingress ──► RoomsRouter ── Submit ──► rooms-write-log ──► PostgreSQL
//!     ▲              │ reads: the leader         │ every request, in number order
//!   ReplyBoard ◄── leader ◄─ server group ─► RoomServer × N (full replicas)
//!
//!   PostgresKeeper (only with a private PostgreSQL)
//! ```
//!
//! [`boot`] starts the services in this order: the Olympic service, then the queue (whose
//! routing table is loaded from PostgreSQL first, so the first request finds it), the
//! bookstore, then room reservation (its catalogue loaded first). Each service's
//! folder has its own `boot` and one actor per file.
//!
//! Shared by every service:
//! - [`supervisor`]: restarts an actor after a stop or a panic, with the same address.
//! - [`lifecycle`]: the `Crash` and `Stop` messages every supervised actor answers.
//! - [`registry`]: every actor by name, for `/admin/actors`, readiness and shutdown.
//! - [`server_group`]: a member's part in a server group (election, heartbeats to the leader,
//!   seed 003's log lines), embedded by the front-ends and the queue managers.
//! - [`write_log`]: the sequenced write log with group commit: one order for a service's
//!   writes, many writes per commit.
//! - [`clock`]: the one monotonic millisecond clock of the process.
//! - [`postgres_keeper`]: watches the private PostgreSQL cluster and restarts it.

pub mod bookstore;
pub mod clock;
pub mod lifecycle;
pub mod olympics;
pub mod postgres_keeper;
pub mod queue;
pub mod readiness;
pub mod registry;
pub mod rooms;
pub mod server_group;
pub mod supervisor;
pub mod traced;
pub mod write_log;

use actix::Addr;
use sqlx::PgPool;

use crate::queue::QueueError;
use crate::settings::Settings;
use olympics::database::Database;
use olympics::publisher::Publisher;
use olympics::router::Router;
use queue::router::QueueRouter;
use registry::Registry;
use rooms::router::RoomsRouter;
use supervisor::ShutdownSignal;

/// Why the tree could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot load the queue's routing table: {0}")]
    Queue(#[from] QueueError),
    #[error("cannot load the room catalogue: {0}")]
    Rooms(#[from] sqlx::Error),
}

/// Handles to the running tree, for the ingress.
#[derive(Clone)]
pub struct Tree {
    pub router: Router,
    pub database: Addr<Database>,
    pub publisher: Addr<Publisher>,
    pub registry: Registry,
    pub shutdown: ShutdownSignal,
    pub queue: QueueRouter,
    /// The queue's Kafka REST Proxy v2 dialect (`/kafka`).
    pub kafka: queue::kafka::KafkaGateway,
    pub bookstore: bookstore::Bookstore,
    pub rooms: RoomsRouter,
    /// How long the ingress waits for an actor's answer.
    pub timeout: std::time::Duration,
    /// Tablets silent this long are unregistered; a push stream says it is alive more often.
    pub tablet_idle_expiry: Option<std::time::Duration>,
}

/// Starts every service's actors on the current arbiter, in order.
/// `last_update_seq` is where the front-ends join the global order of updates.
pub async fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    last_update_seq: u64,
) -> Result<Tree, BootError> {
    let registry = Registry::default();
    let olympics = olympics::boot(
        settings,
        pool.clone(),
        shutdown.clone(),
        &registry,
        last_update_seq,
    );
    let queue = queue::boot(settings, pool.clone(), shutdown.clone(), &registry).await?;
    let kafka = queue::boot_kafka(settings, &queue, shutdown.clone(), &registry);
    let bookstore = bookstore::boot(settings, pool.clone(), shutdown.clone(), &registry);
    let rooms = rooms::boot(settings, pool, shutdown.clone(), &registry).await?;
    Ok(Tree {
        router: olympics.router,
        database: olympics.database,
        publisher: olympics.publisher,
        registry,
        shutdown,
        queue,
        kafka,
        bookstore,
        rooms,
        timeout: settings.olympics.request_timeout(),
        tablet_idle_expiry: settings.olympics.tablet_idle_expiry(),
    })
}
