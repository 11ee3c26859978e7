//! The Pygmy.com bookstore (seed 002, issue 12): its actors, its `boot`, and [`Bookstore`], the
//! handle the ingress uses.
//!
//! ```text
//!   ingress ──► Bookstore ── cache hit ──► answered from moka (no actor, no database)
//!                  │ miss, buy, restock, cost
//!                  ▼
//!   bookstore-frontend ── reads (round-robin) ──► bookstore-catalog-1, -2 (own tables)
//!        │  ▲ heartbeats                                 ▲ entries in number order
//!        │  └──────────── back end ─────────────┐        │ (hold-back queue; resync by replay)
//!        └── buys ──► bookstore-order-1, -2 ────┴──► bookstore-write-log ──► bookstore_stock,
//!                      (wait for every live replica's ack; drop the cache entry first)   orders, log
//! ```
//!
//! - [`frontend`]: balancing, failover, heartbeats; [`catalog`]: the replicas; [`order_server`]:
//!   the order servers; [`write_path`]: a write's way through the log and the replicas' acks;
//!   [`messages`]: what they share.

pub mod catalog;
pub mod frontend;
pub mod messages;
pub mod order_server;
pub mod write_path;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::actors::registry::Registry;
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::actors::write_log::WriteLogLimits;
use crate::actors::write_log::{Sequenced, WriteLog};
use crate::bookstore::cache::BookCache;
use crate::bookstore::replica_store::ReplicaStore;
use crate::bookstore::writes::{STORE_LOG, StoreChange, StoreEntry};
use crate::bookstore::{Book, BookstoreError, Order, RenderedBook, parse_book_id, parse_topic};
use crate::settings::Settings;
use catalog::{CatalogReplica, ReplicaTiming};
use frontend::{Buy, Directory, Frontend, FrontendParts, GetOrder, Manage, Read};
use messages::{CatalogAnswer, CatalogRead, OrderSlot, ReplicaSlot, Sold};
use order_server::OrderServer;
use write_path::WritePath;

pub const FRONTEND: &str = "bookstore-frontend";
pub const WRITE_LOG: &str = "bookstore-write-log";

/// How long the ingress waits before asking a restarting front end again.
const FRONTEND_RETRY: Duration = Duration::from_millis(10);

/// Starts the bookstore's actors on the current arbiter: the write log, the replicas, the order
/// servers, then the front end (which they send heartbeats to).
pub fn boot(
    settings: &Settings,
    pool: PgPool,
    shutdown: ShutdownSignal,
    registry: &Registry,
) -> Bookstore {
    let store = &settings.bookstore;
    let supervision = &settings.supervision;

    let log_cell = ActorCell::new(WRITE_LOG);
    let log = {
        let (cell, pool) = (log_cell.clone(), pool.clone());
        let limits = WriteLogLimits::from(&settings.write_log);
        start_supervised(log_cell.clone(), supervision, shutdown.clone(), move |_| {
            WriteLog::new(cell, pool, STORE_LOG, limits)
        })
    };
    registry.add(log_cell, log.clone());

    let cache = Arc::new(BookCache::new(store.cache_capacity));
    let heartbeats = Arc::new(OnceLock::new());
    let slots: Vec<Arc<ReplicaSlot>> = (1..=store.replicas)
        .map(|n| {
            let replica_pool = match store.replica_urls.get(n - 1) {
                Some(url) => PgPoolOptions::new()
                    .max_connections(4)
                    .connect_lazy(url.expose_secret())
                    .expect("validated in settings"),
                None => pool.clone(),
            };
            ReplicaSlot::new(
                format!("bookstore-catalog-{n}"),
                ReplicaStore::new(replica_pool, n),
            )
        })
        .collect();
    let path = WritePath {
        log: log.clone(),
        replicas: Arc::new(slots.clone()),
        cache: cache.clone(),
        ack_timeout: store.ack_timeout(),
        timeout: store.request_timeout(),
    };
    let timing = ReplicaTiming {
        heartbeat_interval: Duration::from_millis(store.heartbeat_interval_ms),
        gap_patience_ms: store.gap_patience_ms,
        replay_batch: store.replay_batch,
        max_held: store.max_held,
    };
    let replicas = slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            let (pool, log, heartbeats, s) =
                (pool.clone(), log.clone(), heartbeats.clone(), slot.clone());
            let addr = start_supervised(
                slot.cell.clone(),
                supervision,
                shutdown.clone(),
                move |_| CatalogReplica::new(i, s, pool, log, heartbeats, timing),
            );
            registry.add(slot.cell.clone(), addr.clone());
            (slot, addr)
        })
        .collect();
    let order_servers = (1..=store.order_servers)
        .enumerate()
        .map(|(i, n)| {
            let slot = OrderSlot::new(format!("bookstore-order-{n}"));
            let (cell, path, pool, heartbeats) = (
                slot.cell.clone(),
                path.clone(),
                pool.clone(),
                heartbeats.clone(),
            );
            let interval = timing.heartbeat_interval;
            let addr = start_supervised(
                slot.cell.clone(),
                supervision,
                shutdown.clone(),
                move |_| OrderServer::new(i, cell, path, pool, heartbeats, interval),
            );
            registry.add(slot.cell.clone(), addr.clone());
            (slot, addr)
        })
        .collect();
    let directory = Arc::new(Directory {
        replicas,
        order_servers,
    });

    let frontend_cell = ActorCell::new(FRONTEND);
    let parts = FrontendParts {
        cell: frontend_cell.clone(),
        directory: directory.clone(),
        path,
        policy: store.balancing,
        timeout: store.request_timeout(),
        heartbeat_interval_ms: store.heartbeat_interval_ms,
        heartbeat_deadline_ms: store.heartbeat_deadline_ms,
    };
    let frontend = start_supervised(frontend_cell.clone(), supervision, shutdown, move |_| {
        Frontend::new(parts)
    });
    registry.add(frontend_cell.clone(), frontend.clone());
    let _ = heartbeats.set(frontend.clone().recipient());

    Bookstore {
        frontend,
        frontend_cell,
        cache,
        directory,
        timeout: store.request_timeout(),
    }
}

/// What the ingress uses: lookups the cache holds are answered here; everything else goes to
/// the front end, asked again if it is restarting.
#[derive(Clone)]
pub struct Bookstore {
    frontend: Addr<Frontend>,
    frontend_cell: Arc<ActorCell>,
    cache: Arc<BookCache>,
    directory: Arc<Directory>,
    timeout: Duration,
}

/// An answer and who gave it.
#[derive(Debug, Clone)]
pub struct Served<T> {
    pub value: T,
    pub by: String,
    pub from_cache: bool,
}

/// `GET /bookstore/replicas`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    pub replicas: Vec<ReplicaStatus>,
    pub order_servers: Vec<ServerStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    pub name: String,
    pub alive: bool,
    /// "serving" or "catching up".
    pub state: &'static str,
    pub last_applied: u64,
    /// Resyncs from the log so far (the one at start included).
    pub resyncs: u64,
    /// md5 of its whole copy (`null` when its database cannot be read).
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerStatus {
    pub name: String,
    pub alive: bool,
}

/// Who can serve now, for `/readyz`: the front end, and the names of the catalog replicas
/// that can answer reads and of the order servers that can sell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreServing {
    pub frontend_alive: bool,
    pub replicas: usize,
    pub serving_replicas: Vec<String>,
    pub order_servers: usize,
    pub selling_servers: Vec<String>,
}

impl Bookstore {
    /// Who can serve now (the front end's own view: alive, heard from, caught up).
    pub fn serving(&self) -> StoreServing {
        let directory = &self.directory;
        StoreServing {
            frontend_alive: self.frontend_cell.is_alive(),
            replicas: directory.replicas.len(),
            serving_replicas: directory
                .replicas
                .iter()
                .filter(|(slot, _)| slot.can_read())
                .map(|(slot, _)| slot.name().to_owned())
                .collect(),
            order_servers: directory.order_servers.len(),
            selling_servers: directory
                .order_servers
                .iter()
                .filter(|(slot, _)| slot.is_up())
                .map(|(slot, _)| slot.cell.name().to_owned())
                .collect(),
        }
    }

    /// Sends `msg` to the front end; a front end that is restarting is asked again until the
    /// request's deadline.
    async fn ask<M, T>(&self, msg: M) -> Result<T, BookstoreError>
    where
        M: Message<Result = Result<T, BookstoreError>> + Clone + Send + 'static,
        T: Send + 'static,
        Frontend: Handler<crate::actors::traced::Traced<M>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let traced = crate::actors::traced::Traced::new(msg.clone());
            match self.frontend.send(traced).timeout(left).await {
                Ok(answer) => return answer,
                Err(MailboxError::Closed) if Instant::now() < deadline => {
                    actix_rt::time::sleep(FRONTEND_RETRY).await
                }
                Err(_) => {
                    return Err(BookstoreError::Unavailable(
                        "the front end did not answer in time".into(),
                    ));
                }
            }
        }
    }

    /// `GET /bookstore/books/{id}`.
    pub async fn lookup(&self, raw_id: &str) -> Result<Served<Arc<RenderedBook>>, BookstoreError> {
        let id = parse_book_id(raw_id)?;
        let cached = self.cache.get(id);
        crate::telemetry::metrics::cache_lookup("bookstore", cached.is_some());
        if let Some(book) = cached {
            tracing::debug!(
                book = id,
                "{FRONTEND} answered lookup of book {id} from its cache"
            );
            return Ok(Served {
                value: book,
                by: FRONTEND.to_owned(),
                from_cache: true,
            });
        }
        let served = self.ask(Read(CatalogRead::Lookup(id))).await?;
        match served.answer {
            CatalogAnswer::Book(Some(book)) => Ok(Served {
                value: RenderedBook::new(book),
                by: served.by,
                from_cache: false,
            }),
            _ => Err(BookstoreError::UnknownBook(id.to_string())),
        }
    }

    /// `GET /bookstore/books[?topic=…]`.
    pub async fn list(&self, topic: Option<String>) -> Result<Served<Vec<Book>>, BookstoreError> {
        let topic = parse_topic(topic)?;
        let served = self.ask(Read(CatalogRead::List(topic))).await?;
        match served.answer {
            CatalogAnswer::Books(books) => Ok(Served {
                value: books,
                by: served.by,
                from_cache: false,
            }),
            CatalogAnswer::Book(_) => Err(BookstoreError::Storage),
        }
    }

    /// `POST /bookstore/books/{id}/buy`: the sale and the order server that made it.
    pub async fn buy(
        &self,
        raw_id: &str,
        key: Option<String>,
    ) -> Result<(Sold, String), BookstoreError> {
        let book = parse_book_id(raw_id)?;
        let key = frontend::internal_key(key);
        self.ask(Buy { book, key }).await
    }

    /// `POST /bookstore/books/{id}/restock` and `PATCH /bookstore/books/{id}`.
    pub async fn manage(
        &self,
        raw_id: &str,
        change: StoreChange,
        key: Option<String>,
    ) -> Result<Sequenced<StoreEntry>, BookstoreError> {
        let book = parse_book_id(raw_id)?;
        let key = frontend::internal_key(key);
        self.ask(Manage { book, change, key }).await
    }

    /// `GET /bookstore/orders/{id}`.
    pub async fn order(&self, raw_id: &str) -> Result<Order, BookstoreError> {
        let id = raw_id
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| BookstoreError::UnknownOrder(raw_id.chars().take(64).collect()))?;
        self.ask(GetOrder(id)).await
    }

    /// `GET /bookstore/replicas`: read from the servers' slots and the replicas' own tables, so
    /// a dead server is shown too.
    pub async fn status(&self) -> StoreStatus {
        let mut replicas = Vec::with_capacity(self.directory.replicas.len());
        for (slot, _) in &self.directory.replicas {
            let digest = slot.store.digest().await.ok();
            replicas.push(ReplicaStatus {
                name: slot.name().to_owned(),
                alive: slot.cell.is_alive(),
                state: if slot.is_serving() {
                    "serving"
                } else {
                    "catching up"
                },
                last_applied: slot.last_applied(),
                resyncs: slot.resyncs.load(std::sync::atomic::Ordering::Acquire),
                digest,
            });
        }
        let order_servers = self
            .directory
            .order_servers
            .iter()
            .map(|(slot, _)| ServerStatus {
                name: slot.cell.name().to_owned(),
                alive: slot.is_up(),
            })
            .collect();
        StoreStatus {
            replicas,
            order_servers,
        }
    }
}
