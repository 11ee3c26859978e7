//! Room reservation (seed 003): its actors and its `boot`.
//!
//! ```text
//!   ingress ──► RoomsRouter ── Submit ──► rooms-write-log ──► PostgreSQL (room_reservations,
//!     ▲            │  (reads: to the leader)      │ multicast, in number order    rooms_request_log)
//!     │            ▼                              ▼
//!   ReplyBoard ◄── leader ◄─ server group ─► RoomServer × N (each a full replica)
//! ```
//!
//! - [`server`]: a room server: its replica of the reservations, fed by the request log in
//!   number order; the bully election and heartbeats of the shared server group; the leader
//!   alone answers, through the [`replies`] board.
//! - [`router`]: what the ingress uses: writes go through the log, reads to the leader.
//!
//! Every request (reserve, cancel) is a write of the rooms' sequenced write log, which numbers
//! it, lets PostgreSQL decide its outcome (the UNIQUE constraint forbids double booking) and
//! multicasts it to every server. So every server applies every request in one order, and any
//! of them can answer for the group when the leader dies.

pub mod replies;
pub mod router;
pub mod server;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;
use sqlx::PgPool;

use crate::actors::registry::Registry;
use crate::actors::server_group::{GroupTiming, Members};
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::actors::write_log::{Subscribe, WriteLog, WriteLogLimits};
use crate::rooms::store::{self, LOG, RoomWrite};
use crate::rooms::{Catalog, RoomsError};
use crate::settings::{ElectionAlgorithm, RoomsSettings, SupervisionSettings};
use replies::ReplyBoard;
use router::RoomsRouter;
use server::RoomServer;

pub type RoomsLog = WriteLog<RoomWrite>;

/// One room server as the ingress and its peers see it.
#[derive(Debug)]
pub struct ServerSlot {
    pub id: u64,
    pub addr: Addr<RoomServer>,
    pub cell: Arc<ActorCell>,
    /// Set by the server on each tick: it leads and is caught up (reads go there).
    pub leads: AtomicBool,
}

impl ServerSlot {
    pub fn is_alive(&self) -> bool {
        self.cell.is_alive() && !self.cell.is_killed()
    }
}

/// Everything the room servers and the ingress share.
pub struct RoomsShared {
    pub settings: RoomsSettings,
    pub catalog: Catalog,
    pub board: ReplyBoard,
    pub log: Addr<RoomsLog>,
    servers: RwLock<Vec<Arc<ServerSlot>>>,
    /// The highest number the log acknowledged to the ingress: a read is answered by a leader
    /// that has applied at least this much, so a client reads its own writes.
    pub committed: AtomicU64,
    pool: PgPool,
    supervision: SupervisionSettings,
    shutdown: ShutdownSignal,
    registry: Registry,
    /// The arbiter the servers run on (the System's, with the pool): servers started from an
    /// HTTP worker are started there.
    arbiter: actix_rt::ArbiterHandle,
}

impl RoomsShared {
    pub fn servers(&self) -> Vec<Arc<ServerSlot>> {
        self.servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn timing(&self) -> GroupTiming {
        let s = &self.settings;
        GroupTiming {
            election: ElectionAlgorithm::Bully,
            tick_ms: s.tick_ms,
            heartbeat_interval_ms: s.heartbeat_interval_ms,
            heartbeat_deadline_ms: s.heartbeat_deadline_ms,
            election_answer_ms: s.election_answer_ms,
            election_coordinator_ms: s.election_coordinator_ms,
        }
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Starts room server `id` on the servers' arbiter, from any thread.
    pub async fn spawn_server(self: &Arc<Self>, id: u64) -> Result<String, RoomsError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = self.clone();
        if !self.arbiter.spawn_fn(move || {
            let _ = tx.send(shared.start_server(id));
        }) {
            return Err(RoomsError::Unavailable(
                "the servers' arbiter is gone".into(),
            ));
        }
        rx.await
            .unwrap_or_else(|_| Err(RoomsError::Unavailable("the server did not start".into())))
    }

    /// Starts room server `id` (supervised as `room-server-<id>`) and lists it before it runs,
    /// so its first election reaches everyone.
    pub fn start_server(self: &Arc<Self>, id: u64) -> Result<String, RoomsError> {
        let mut servers = self.servers.write().unwrap_or_else(|p| p.into_inner());
        if servers.iter().any(|s| s.id == id) {
            return Err(RoomsError::ServerExists(id));
        }
        if servers.iter().filter(|s| s.is_alive()).count() >= self.settings.max_servers {
            return Err(RoomsError::Invalid {
                field: "id",
                message: format!("at most {} room servers", self.settings.max_servers),
            });
        }
        let name = format!("room-server-{id}");
        let cell = ActorCell::new(name.clone());
        let (actor_cell, pool, shared) = (cell.clone(), self.pool.clone(), self.clone());
        let addr = start_supervised(
            cell.clone(),
            &self.supervision,
            self.shutdown.clone(),
            move |_| RoomServer::new(id, actor_cell, pool, shared),
        );
        self.log.do_send(Subscribe(addr.clone().recipient()));
        self.registry.add(cell.clone(), addr.clone());
        servers.push(Arc::new(ServerSlot {
            id,
            addr,
            cell,
            leads: AtomicBool::new(false),
        }));
        Ok(name)
    }
}

/// The room servers' group is the list of servers (killed ones stay listed, as crashed
/// servers would: their heartbeats fail).
impl Members<RoomServer> for RoomsShared {
    fn members(&self) -> Vec<(u64, Addr<RoomServer>)> {
        self.servers()
            .iter()
            .map(|s| (s.id, s.addr.clone()))
            .collect()
    }

    fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

/// Starts the request log, then the room servers (`rooms.server_ids`, or 1..=`rooms.servers`).
pub async fn boot(
    settings: &crate::settings::Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    registry: &Registry,
) -> Result<RoomsRouter, sqlx::Error> {
    let rooms = &settings.rooms;
    let catalog = store::load_catalog(&pool).await?;
    let cell = ActorCell::new("rooms-write-log");
    let limits = WriteLogLimits {
        max_group: rooms.max_group,
        max_pending: rooms.max_log_pending,
        // Every server, plus restarted ones replacing their dead address.
        max_subscribers: rooms.max_servers * 2,
    };
    let (log_cell, log_pool) = (cell.clone(), pool.clone());
    let log = start_supervised(
        cell.clone(),
        &settings.supervision,
        shutdown.clone(),
        move |_| RoomsLog::new(log_cell, log_pool, LOG, limits),
    );
    registry.add(cell, log.clone());
    let shared = Arc::new(RoomsShared {
        settings: rooms.clone(),
        catalog,
        board: ReplyBoard::new(rooms.max_pending_requests),
        log,
        servers: RwLock::default(),
        committed: AtomicU64::new(store::log_head(&pool).await?),
        pool,
        supervision: settings.supervision.clone(),
        shutdown,
        registry: registry.clone(),
        arbiter: actix_rt::Arbiter::current(),
    });
    for id in rooms.server_ids() {
        shared
            .start_server(id)
            .expect("fresh ids within rooms.max_servers");
    }
    Ok(RoomsRouter::new(shared))
}
