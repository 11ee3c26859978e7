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
//! ```
//!
//! - `database.rs`: the only actor that talks to PostgreSQL for the Olympic service.
//! - `frontend.rs` + `group.rs`: front-end servers, their caches and their group behaviour.
//! - `dispatcher.rs` + `router.rs`: tablet placement, membership, and the lock-free routing
//!   table the ingress reads.
//! - `publisher.rs`: pushes to tablets. `cluster_keeper.rs`: the private PostgreSQL.
//! - `supervisor.rs`, `registry.rs`, `messages.rs`: supervision, names, shared messages.

pub mod cluster_keeper;
pub mod database;
pub mod dispatcher;
pub mod frontend;
pub mod frontend_order;
pub mod group;
pub mod messages;
pub mod publisher;
pub mod registry;
pub mod router;
pub mod supervisor;

use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;
use sqlx::PgPool;

use crate::coordination::berkeley::SimulatedClock;
use crate::settings::Settings;
use database::{Database, Watch};
use dispatcher::Dispatcher;
use frontend::FrontendFactory;
use group::GroupMember;
use publisher::Publisher;
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
    /// How long the ingress waits for an actor's answer.
    pub timeout: std::time::Duration,
}

/// Starts the Olympic service's actors on the current arbiter.
pub fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    last_update_seq: u64,
) -> Tree {
    let supervision = &settings.supervision;
    let timeout = settings.olympics.request_timeout();
    let registry = Registry::default();

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

    Tree {
        publisher,
        router: Router::new(table, dispatcher, settings.olympics.balancing, timeout),
        database,
        registry,
        shutdown,
        timeout,
    }
}
