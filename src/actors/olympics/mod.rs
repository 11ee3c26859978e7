//! The Olympic results service (seeds 000, 001): its actors and its `boot`.
//!
//! - [`router`]: what the ingress uses: reads go to a tablet's front-end (or one the balancing
//!   policy picks), on to the next live one if it fails; writes go to one front-end, once.
//! - [`routing_table`]: the lock-free snapshot the Dispatcher publishes (front-ends, tablets).
//! - [`dispatcher`]: tablet placement and membership (add and kill front-ends).
//! - [`frontend`]: the front-end servers and their caches; [`frontend_order`]: their place in
//!   the one global order of updates and their raffle reports; [`frontend_clocks`]: their
//!   Berkeley and vector clocks, which only this group switches on.
//! - [`database`]: the service's reads of PostgreSQL, the update
//!   log for front-ends that missed updates, the tablets and the raffle.
//! - [`publisher`]: pushes updates to tablets over SSE.
//! - [`writes`]: the reporter's updates as the service's write log applies them (the log is the
//!   shared [`crate::actors::write_log`]: one global order, group commit).
//! - [`messages`]: the messages these actors share.

pub mod database;
pub mod dispatcher;
pub mod frontend;
pub mod frontend_clocks;
pub mod frontend_order;
pub mod messages;
pub mod publisher;
pub mod router;
pub mod routing_table;
pub mod writes;
mod writes_batch;

use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;
use sqlx::PgPool;

use crate::actors::registry::Registry;
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::actors::write_log::WriteLogLimits;
use crate::coordination::berkeley::SimulatedClock;
use crate::settings::Settings;
use database::Database;
use dispatcher::Dispatcher;
use frontend::FrontendFactory;
use frontend_clocks::FrontendClocks;
use publisher::Publisher;
use router::Router;
use routing_table::{FrontendSlot, RoutingTable};
use writes::{UPDATE_LOG, UpdateLog};

use crate::actors::write_log::Subscribe;

/// The Olympic service's handles.
pub struct Olympics {
    pub router: Router,
    pub database: Addr<Database>,
    pub publisher: Addr<Publisher>,
}

/// Starts the Olympic service's actors on the current arbiter.
pub fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    registry: &Registry,
    last_update_seq: u64,
) -> Olympics {
    let supervision = &settings.supervision;
    // The ingress waits `timeout` for a front-end, which waits less for the database.
    let timeout = settings.olympics.request_timeout();
    let registry = registry.clone();

    let db_cell = ActorCell::new("database");
    let database = {
        let pool = pool.clone();
        start_supervised(db_cell.clone(), supervision, shutdown.clone(), |_| {
            Database::new(pool, db_cell.clone())
        })
    };
    registry.add(db_cell, database.clone());

    // The one global order of the reporter's updates, committed in groups.
    let log_cell = ActorCell::new("olympics-update-log");
    let updates_log = {
        let (cell, limits) = (log_cell.clone(), WriteLogLimits::from(&settings.write_log));
        start_supervised(log_cell.clone(), supervision, shutdown.clone(), move |_| {
            UpdateLog::new(cell, pool, UPDATE_LOG, limits)
        })
    };
    registry.add(log_cell, updates_log.clone());

    // The table comes first: front-ends find their peers in it.
    let table = Arc::new(ArcSwap::from_pointee(RoutingTable::default()));
    let factory = FrontendFactory {
        db: database.clone(),
        updates_log: updates_log.clone(),
        peers: table.clone(),
        timeout: settings.olympics.database_timeout(),
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
                let derived = FrontendClocks::default_clock(id, &settings.group);
                SimulatedClock::new(skew, derived.drift_ppm)
            });
            let (addr, cell) = factory.spawn(id, clock);
            FrontendSlot::new(id, addr, cell)
        })
        .collect();
    // Published before the dispatcher starts, so anonymous reads work from the first moment.
    table.store(Arc::new(RoutingTable::new(
        frontends.clone(),
        Default::default(),
    )));
    let dispatcher_cell = ActorCell::new("dispatcher");
    let max_frontends = settings.olympics.max_frontends;
    let idle_expiry = settings.olympics.tablet_idle_expiry();
    let dispatcher = {
        let (db, table, cell) = (database.clone(), table.clone(), dispatcher_cell.clone());
        start_supervised(
            dispatcher_cell.clone(),
            supervision,
            shutdown.clone(),
            move |_| {
                Dispatcher::new(
                    frontends,
                    factory,
                    db,
                    table,
                    cell,
                    max_frontends,
                    idle_expiry,
                )
            },
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
            move |_| Publisher::new(db, cell, &push),
        )
    };
    updates_log.do_send(Subscribe(publisher.clone().recipient()));
    registry.add(publisher_cell, publisher.clone());

    Olympics {
        publisher,
        router: Router::new(table, dispatcher, settings.olympics.balancing, timeout),
        database,
    }
}
