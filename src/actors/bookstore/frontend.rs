//! The front end (`bookstore-frontend`): takes every bookstore request that its cache cannot
//! answer. Reads go to a live, caught-up catalog replica (round-robin by default, least
//! connections as a choice; [`candidate_order`]), on to the next when one fails, is not serving
//! or answers with a copy older than a write the cache has heard of. Buys go to a live order
//! server, on to the other if a crash interrupts one (same idempotency key, so the buy counts
//! once). Restocks and cost changes go through the write path from here.
//!
//! It learns who is alive from the back end's heartbeats ([`HeartbeatMonitor`] per server,
//! looked at every heartbeat interval) and from the supervisor's cells, so a dead server is
//! routed around before its heartbeats stop. The cache itself ([`BookCache`]) is shared with
//! the ingress (hits never reach this actor) and with the writers, which drop entries before
//! their writes are acknowledged. A restarted front end starts with a cold cache.

use crate::actors::traced::Traced;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use crate::actors::bookstore::catalog::CatalogReplica;
use crate::actors::bookstore::messages::{
    BackEnd, CatalogAnswer, CatalogRead, Heartbeat, OrderSlot, PlaceOrder, ReadOrder, ReplicaSlot,
    Sold,
};
use crate::actors::bookstore::order_server::OrderServer;
use crate::actors::bookstore::write_path::{CLIENT_KEY_PREFIX, WritePath};
use crate::actors::clock::now_ms;
use crate::actors::supervisor::ActorCell;
use crate::actors::write_log::Sequenced;
use crate::bookstore::cache::BookCache;
use crate::bookstore::writes::{StoreChange, StoreEntry, StoreWrite};
use crate::bookstore::{BookstoreError, Order};
use crate::coordination::balance::{ServerLoad, candidate_order};
use crate::coordination::heartbeat::HeartbeatMonitor;
use crate::settings::BalancingPolicy;

/// How long the front end waits before trying every server again when none could answer.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Every back-end server, by index.
pub struct Directory {
    pub replicas: Vec<(Arc<ReplicaSlot>, Addr<CatalogReplica>)>,
    pub order_servers: Vec<(Arc<OrderSlot>, Addr<OrderServer>)>,
}

/// What the front end needs; kept across its restarts.
pub struct FrontendParts {
    pub cell: Arc<ActorCell>,
    pub directory: Arc<Directory>,
    pub path: WritePath,
    pub policy: BalancingPolicy,
    pub timeout: Duration,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_deadline_ms: u64,
}

pub struct Frontend {
    parts: FrontendParts,
    replica_monitors: Vec<HeartbeatMonitor>,
    order_monitors: Vec<HeartbeatMonitor>,
    ticket: usize,
}

impl Frontend {
    pub fn new(parts: FrontendParts) -> Self {
        let mut frontend = Self {
            parts,
            replica_monitors: Vec::new(),
            order_monitors: Vec::new(),
            ticket: 0,
        };
        frontend.reset_monitors();
        frontend
    }

    fn cache(&self) -> &BookCache {
        &self.parts.path.cache
    }

    fn reset_monitors(&mut self) {
        let (interval, deadline, now) = (
            self.parts.heartbeat_interval_ms,
            self.parts.heartbeat_deadline_ms,
            now_ms(),
        );
        let monitor = || HeartbeatMonitor::new(interval, deadline, now).expect("validated timing");
        self.replica_monitors = self
            .parts
            .directory
            .replicas
            .iter()
            .map(|_| monitor())
            .collect();
        self.order_monitors = self
            .parts
            .directory
            .order_servers
            .iter()
            .map(|_| monitor())
            .collect();
    }

    /// Publishes who is heard from, and logs who stopped or started beating.
    fn check_heartbeats(&mut self) {
        let now = now_ms();
        let directory = self.parts.directory.clone();
        let replicas = directory
            .replicas
            .iter()
            .map(|(s, _)| (s.cell.name(), &s.heartbeat_ok));
        let orders = directory
            .order_servers
            .iter()
            .map(|(s, _)| (s.cell.name(), &s.heartbeat_ok));
        let monitors = self
            .replica_monitors
            .iter()
            .chain(self.order_monitors.iter());
        for ((name, flag), monitor) in replicas.chain(orders).zip(monitors) {
            let ok = !monitor.is_suspect(now);
            if flag.swap(ok, Ordering::AcqRel) != ok {
                if ok {
                    tracing::info!(
                        server = name,
                        "bookstore-frontend hears {name} again; it takes requests"
                    );
                } else {
                    tracing::warn!(
                        server = name,
                        silent_ms = now - monitor.last_heard(),
                        "heartbeats from {name} stopped; bookstore-frontend routes around it"
                    );
                }
            }
        }
    }

    fn next_ticket(&mut self) -> usize {
        self.ticket = self.ticket.wrapping_add(1);
        self.ticket
    }
}

impl Actor for Frontend {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            server = self.parts.cell.name(),
            "{} started",
            self.parts.cell.name()
        );
        let interval = Duration::from_millis(self.parts.heartbeat_interval_ms);
        ctx.run_interval(interval, |act, _| act.check_heartbeats());
    }
}

impl actix::Supervised for Frontend {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.cache().clear();
        self.reset_monitors();
    }
}

impl Handler<crate::actors::lifecycle::Crash> for Frontend {
    type Result = ();
    fn handle(&mut self, msg: crate::actors::lifecycle::Crash, ctx: &mut Self::Context) {
        crate::actors::lifecycle::crash_actor(&self.parts.cell, msg, ctx);
    }
}

impl Handler<crate::actors::lifecycle::Stop> for Frontend {
    type Result = ();
    fn handle(&mut self, _: crate::actors::lifecycle::Stop, ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.parts.cell.name(),
            "actor {} stops for shutdown",
            self.parts.cell.name()
        );
        ctx.stop();
    }
}

impl Handler<Heartbeat> for Frontend {
    type Result = ();
    fn handle(&mut self, Heartbeat(from): Heartbeat, _ctx: &mut Self::Context) {
        let monitor = match from {
            BackEnd::Replica(i) => self.replica_monitors.get_mut(i),
            BackEnd::OrderServer(i) => self.order_monitors.get_mut(i),
        };
        if let Some(monitor) = monitor {
            monitor.record(now_ms());
        }
    }
}

/// A read, answered by a replica.
#[derive(Debug, Clone)]
pub struct ServedRead {
    pub answer: CatalogAnswer,
    pub by: String,
}

/// A read the cache could not answer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ServedRead, BookstoreError>")]
pub struct Read(pub CatalogRead);

crate::traced_handler!(Frontend, Read);
crate::traced_handler!(Frontend, Buy);
crate::traced_handler!(Frontend, Manage);
crate::traced_handler!(Frontend, GetOrder);

impl Handler<Read> for Frontend {
    type Result = ResponseFuture<Result<ServedRead, BookstoreError>>;

    fn handle(&mut self, Read(read): Read, _ctx: &mut Self::Context) -> Self::Result {
        let ticket = self.next_ticket();
        let (directory, cache) = (self.parts.directory.clone(), self.parts.path.cache.clone());
        let (policy, deadline) = (self.parts.policy, Instant::now() + self.parts.timeout);
        Box::pin(async move {
            let mut fallback: Option<ServedRead> = None;
            loop {
                let loads: Vec<ServerLoad> = directory
                    .replicas
                    .iter()
                    .map(|(slot, _)| ServerLoad {
                        alive: slot.can_read(),
                        load: slot.in_flight.load(Ordering::Relaxed),
                    })
                    .collect();
                for i in candidate_order(&loads, None, policy, ticket) {
                    let (slot, addr) = &directory.replicas[i];
                    slot.in_flight.fetch_add(1, Ordering::Relaxed);
                    let answer = addr.send(Traced::new(read.clone())).await;
                    slot.in_flight.fetch_sub(1, Ordering::Relaxed);
                    let Ok(Ok(answer)) = answer else { continue };
                    let served = ServedRead {
                        answer,
                        by: slot.name().to_owned(),
                    };
                    match &served.answer {
                        CatalogAnswer::Book(Some(book))
                            if book.version < cache.last_write(book.id) =>
                        {
                            // This copy lags a write we know of: try another replica.
                            fallback = Some(served);
                            continue;
                        }
                        CatalogAnswer::Book(Some(book)) => cache.fill(book),
                        _ => {}
                    }
                    return Ok(served);
                }
                if let Some(served) = fallback.take() {
                    return Ok(served);
                }
                if Instant::now() >= deadline {
                    return Err(BookstoreError::Unavailable(
                        "no catalog replica is serving".into(),
                    ));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        })
    }
}

/// A buy, for an order server. `key` is the log's idempotency key ([`internal_key`]), so that
/// the front end's own retries, on the other order server or after a crash, count once.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(Sold, String), BookstoreError>")]
pub struct Buy {
    pub book: i64,
    pub key: String,
}

/// The log's key for a request: the client's (prefixed, to keep it apart from ours), or a
/// fresh one made before the first attempt.
pub fn internal_key(key: Option<String>) -> String {
    match key {
        Some(key) => format!("{CLIENT_KEY_PREFIX}{key}"),
        None => format!("frontend:{}", Uuid::new_v4().simple()),
    }
}

impl Handler<Buy> for Frontend {
    type Result = ResponseFuture<Result<(Sold, String), BookstoreError>>;

    fn handle(&mut self, buy: Buy, _ctx: &mut Self::Context) -> Self::Result {
        let ticket = self.next_ticket();
        let directory = self.parts.directory.clone();
        let deadline = Instant::now() + self.parts.timeout;
        let order = PlaceOrder {
            book: buy.book,
            key: buy.key,
        };
        Box::pin(async move {
            let mut last_error = BookstoreError::Unavailable("no order server is up".into());
            loop {
                let loads: Vec<ServerLoad> = directory
                    .order_servers
                    .iter()
                    .map(|(slot, _)| ServerLoad {
                        alive: slot.is_up(),
                        load: slot.in_flight.load(Ordering::Relaxed),
                    })
                    .collect();
                for i in candidate_order(&loads, None, BalancingPolicy::RoundRobin, ticket) {
                    let (slot, addr) = &directory.order_servers[i];
                    slot.in_flight.fetch_add(1, Ordering::Relaxed);
                    let answer = addr.send(Traced::new(order.clone())).await;
                    slot.in_flight.fetch_sub(1, Ordering::Relaxed);
                    match answer {
                        Ok(Ok(sold)) => return Ok((sold, slot.cell.name().to_owned())),
                        // Unknown outcome: the same key on the next server settles it.
                        Ok(Err(e @ (BookstoreError::Unavailable(_) | BookstoreError::Storage))) => {
                            last_error = e
                        }
                        Ok(Err(refused)) => return Err(refused),
                        Err(_) => {}
                    }
                }
                if Instant::now() >= deadline {
                    return Err(last_error);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        })
    }
}

/// A restock or a cost change, from the store manager.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Sequenced<StoreEntry>, BookstoreError>")]
pub struct Manage {
    pub book: i64,
    pub change: StoreChange,
    /// The log's idempotency key ([`internal_key`]).
    pub key: String,
}

impl Handler<Manage> for Frontend {
    type Result = ResponseFuture<Result<Sequenced<StoreEntry>, BookstoreError>>;

    fn handle(&mut self, manage: Manage, _ctx: &mut Self::Context) -> Self::Result {
        let path = self.parts.path.clone();
        let name = self.parts.cell.name().to_owned();
        let write = StoreWrite {
            book: manage.book,
            change: manage.change,
            via: name.clone(),
            key: Some(manage.key),
        };
        let deadline = Instant::now() + self.parts.timeout;
        Box::pin(async move {
            let described = format!("{:?} of book {}", write.change, write.book);
            let outcome = loop {
                // Unknown outcome (the log restarting, storage down): the same key settles it.
                match path.commit(write.clone()).await {
                    Err(BookstoreError::Unavailable(_) | BookstoreError::Storage)
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(RETRY_PAUSE).await
                    }
                    outcome => break outcome,
                }
            };
            match &outcome {
                Ok(s) => {
                    tracing::info!(server = %name, seq = s.seq, "{name} committed {described} as write #{}", s.seq)
                }
                Err(e) => {
                    tracing::info!(server = %name, error = %e, "{name} did not commit {described}: {e}")
                }
            }
            outcome
        })
    }
}

/// Read a recorded order through an order server.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Order, BookstoreError>")]
pub struct GetOrder(pub i64);

impl Handler<GetOrder> for Frontend {
    type Result = ResponseFuture<Result<Order, BookstoreError>>;

    fn handle(&mut self, GetOrder(id): GetOrder, _ctx: &mut Self::Context) -> Self::Result {
        let ticket = self.next_ticket();
        let directory = self.parts.directory.clone();
        Box::pin(async move {
            let loads: Vec<ServerLoad> = directory
                .order_servers
                .iter()
                .map(|(slot, _)| ServerLoad {
                    alive: slot.is_up(),
                    load: 0,
                })
                .collect();
            for i in candidate_order(&loads, None, BalancingPolicy::RoundRobin, ticket) {
                match directory.order_servers[i]
                    .1
                    .send(Traced::new(ReadOrder(id)))
                    .await
                {
                    Ok(Err(BookstoreError::Storage)) | Err(_) => continue,
                    Ok(answer) => return answer,
                }
            }
            Err(BookstoreError::Unavailable("no order server is up".into()))
        })
    }
}
