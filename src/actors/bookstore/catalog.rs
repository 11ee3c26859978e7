//! A catalog replica (`bookstore-catalog-<n>`): its own copy of the catalog in its own tables,
//! fed from the store's write log in number order, answering the front end's reads.
//!
//! It subscribes to the log and puts every entry through a hold-back queue
//! ([`HoldBack`]): entries are applied strictly in number order, in batches (one transaction
//! per batch), and each batch's last number is published in its slot for the writers waiting
//! on it. It answers reads only while it is *serving*.
//!
//! Resync (seed 002's, made gap-free): at start, after a restart, when a number has been missing
//! for `gap_patience`, when too much is held back, or when a write gave up waiting for it, the
//! replica stops serving, subscribes (again), and replays the log table from its last applied
//! number in batches; what arrives meanwhile is held. Once a read of the log comes back empty
//! it anchors the hold-back queue at the last replayed number, delivers what was held, serves
//! again, and logs how far it came. A new replica starts from a snapshot of the authority.
//!
//! What it cannot see by itself: a write whose group began before its subscription and
//! committed after its last read of the log reaches it neither way, and with no later write
//! there is no gap to notice. That write's writer waits for this replica's ack, gives up after
//! `ack_timeout`, takes it out of reads and asks for a resync, which then finds the write in
//! the log. So a serving replica never lacks an acknowledged write.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;

use crate::actors::bookstore::messages::{
    BackEnd, CatalogAnswer, CatalogRead, Heartbeat, ReplicaRefusal, ReplicaSlot,
};
use crate::actors::bookstore::write_path::StoreLog;
use crate::actors::clock::now_ms;
use crate::actors::lifecycle::{Crash, Stop, crash_actor};
use crate::actors::write_log::{Sequenced, Subscribe};
use crate::bookstore::replica_store::read_log;
use crate::bookstore::writes::StoreEntry;
use crate::coordination::sequencer::HoldBack;

/// How long a failed resync waits before it tries again.
const RESYNC_RETRY: Duration = Duration::from_millis(200);
/// Entries applied in one transaction at most.
const MAX_APPLY_BATCH: usize = 1_000;

/// A replica's timing and limits.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaTiming {
    pub heartbeat_interval: Duration,
    pub gap_patience_ms: u64,
    pub replay_batch: i64,
    pub max_held: usize,
}

pub struct CatalogReplica {
    index: usize,
    slot: Arc<ReplicaSlot>,
    /// The main database: the log table and the authority's snapshot.
    authority: PgPool,
    log: Addr<StoreLog>,
    heartbeats: Arc<OnceLock<Recipient<Heartbeat>>>,
    timing: ReplicaTiming,
    /// Work of an earlier resync or life is ignored when it reports back.
    generation: u64,
    held: HoldBack<StoreEntry>,
    /// Delivered in order, waiting for their batch.
    ready: Vec<(u64, StoreEntry)>,
    applying: bool,
    resyncing: bool,
}

impl CatalogReplica {
    pub fn new(
        index: usize,
        slot: Arc<ReplicaSlot>,
        authority: PgPool,
        log: Addr<StoreLog>,
        heartbeats: Arc<OnceLock<Recipient<Heartbeat>>>,
        timing: ReplicaTiming,
    ) -> Self {
        Self {
            index,
            slot,
            authority,
            log,
            heartbeats,
            timing,
            generation: 0,
            held: HoldBack::new(),
            ready: Vec::new(),
            applying: false,
            resyncing: false,
        }
    }

    fn name(&self) -> &str {
        self.slot.name()
    }

    /// Stops serving and replays the log from the last applied number (see the module comment).
    fn resync(&mut self, ctx: &mut Context<Self>, why: &str) {
        self.generation += 1;
        self.slot.serving.store(false, Ordering::Release);
        self.slot.resync_requested.store(false, Ordering::Release);
        self.held = HoldBack::new();
        self.ready.clear();
        self.applying = false;
        self.resyncing = true;
        self.slot.resyncs.fetch_add(1, Ordering::AcqRel);
        tracing::info!(
            replica = self.name(),
            reason = why,
            from = self.slot.last_applied(),
            "{} resyncs from the write log ({why})",
            self.name()
        );
        let (slot, authority, log) = (self.slot.clone(), self.authority.clone(), self.log.clone());
        let (generation, batch) = (self.generation, self.timing.replay_batch);
        let me = ctx.address();
        actix_rt::spawn(async move {
            let outcome = replay(&slot, &authority, &log, me.clone().recipient(), batch).await;
            me.do_send(Resynced {
                generation,
                outcome,
            });
        });
    }

    fn deliver(&mut self, entries: Vec<(u64, StoreEntry)>, ctx: &mut Context<Self>) {
        self.ready.extend(entries);
        self.maybe_apply(ctx);
    }

    /// Applies what is ready in one transaction, unless a batch is in flight.
    fn maybe_apply(&mut self, ctx: &mut Context<Self>) {
        if self.applying || self.resyncing || self.ready.is_empty() {
            return;
        }
        let take = self.ready.len().min(MAX_APPLY_BATCH);
        let batch: Vec<(u64, StoreEntry)> = self.ready.drain(..take).collect();
        self.applying = true;
        let (store, generation, me) = (self.slot.store.clone(), self.generation, ctx.address());
        actix_rt::spawn(async move {
            let result = store.apply_entries(&batch).await;
            me.do_send(BatchApplied { generation, result });
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            return;
        }
        if self.slot.resync_requested.load(Ordering::Acquire) {
            self.resync(ctx, "a write gave up waiting for it");
        } else if let Some(missing) = self.held.missing(now_ms(), self.timing.gap_patience_ms) {
            let why = format!(
                "writes #{}..#{} never arrived",
                missing.start(),
                missing.end()
            );
            self.resync(ctx, &why);
        }
    }
}

/// Subscribes, then replays the log after the last applied number: (first, last, replayed).
async fn replay(
    slot: &ReplicaSlot,
    authority: &PgPool,
    log: &Addr<StoreLog>,
    me: Recipient<Sequenced<StoreEntry>>,
    batch: i64,
) -> Result<(u64, u64, usize), String> {
    // Subscribed before reading, so that nothing committed after the reads is missed.
    log.send(Subscribe(me))
        .await
        .map_err(|e| format!("the write log is unreachable: {e}"))?;
    let store = &slot.store;
    let mut last = match store.open().await.map_err(|e| e.to_string())? {
        Some(last) => last,
        None => {
            let last = store
                .bootstrap(authority)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                replica = slot.name(),
                snapshot = last,
                "{} created its copy from the authority at write #{last}",
                slot.name()
            );
            last
        }
    };
    slot.applied_up_to(last);
    let first = last;
    let mut replayed = 0;
    loop {
        let entries = read_log(authority, last, batch)
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok((first, last, replayed));
        }
        replayed += entries.len();
        last = store
            .apply_entries(&entries)
            .await
            .map_err(|e| e.to_string())?;
        slot.applied_up_to(last);
    }
}

impl Actor for CatalogReplica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(replica = self.name(), "{} started", self.name());
        let index = self.index;
        ctx.run_interval(self.timing.heartbeat_interval, move |act, _| {
            if let Some(front_end) = act.heartbeats.get() {
                front_end.do_send(Heartbeat(BackEnd::Replica(index)));
            }
        });
        let patience = Duration::from_millis(self.timing.gap_patience_ms.max(10));
        ctx.run_interval(patience, |act, ctx| act.tick(ctx));
        let why = if self.slot.cell.restarts() > 0 {
            "restart"
        } else {
            "start"
        };
        self.resync(ctx, why);
    }
}

impl actix::Supervised for CatalogReplica {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Out of reads before the supervisor marks it alive again.
        self.slot.serving.store(false, Ordering::Release);
        self.generation += 1;
    }
}

impl Handler<Crash> for CatalogReplica {
    type Result = ();
    fn handle(&mut self, msg: Crash, ctx: &mut Self::Context) {
        crash_actor(&self.slot.cell, msg, ctx);
    }
}

impl Handler<Stop> for CatalogReplica {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        tracing::info!(
            replica = self.name(),
            "actor {} stops for shutdown",
            self.name()
        );
        ctx.stop();
    }
}

/// The hold-back queue takes every entry the log multicasts.
impl Handler<Sequenced<StoreEntry>> for CatalogReplica {
    type Result = ();
    fn handle(&mut self, msg: Sequenced<StoreEntry>, ctx: &mut Self::Context) {
        let delivered = self.held.receive(msg.seq, msg.applied, now_ms());
        if self.held.held() > self.timing.max_held {
            self.resync(ctx, "too many writes held back");
            return;
        }
        if !self.resyncing {
            self.deliver(delivered, ctx);
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Resynced {
    generation: u64,
    outcome: Result<(u64, u64, usize), String>,
}

impl Handler<Resynced> for CatalogReplica {
    type Result = ();
    fn handle(&mut self, msg: Resynced, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        match msg.outcome {
            Ok((first, last, replayed)) => {
                self.resyncing = false;
                let held = self.held.anchor(last, now_ms());
                self.slot.serving.store(true, Ordering::Release);
                tracing::info!(
                    replica = self.name(),
                    from = first,
                    to = last,
                    replayed,
                    "{} resynced: replayed {replayed} writes from the log (#{first} to #{last}); serving reads again",
                    self.name()
                );
                self.deliver(held, ctx);
            }
            Err(error) => {
                tracing::error!(replica = self.name(), error = %error, "{} could not resync; trying again", self.name());
                ctx.run_later(RESYNC_RETRY, |act, ctx| act.resync(ctx, "retry"));
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct BatchApplied {
    generation: u64,
    result: Result<u64, sqlx::Error>,
}

impl Handler<BatchApplied> for CatalogReplica {
    type Result = ();
    fn handle(&mut self, msg: BatchApplied, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        self.applying = false;
        match msg.result {
            Ok(last) => {
                self.slot.applied_up_to(last);
                self.maybe_apply(ctx);
            }
            Err(error) => {
                tracing::error!(replica = self.name(), error = %error, "{} could not apply writes", self.name());
                self.resync(ctx, "a batch failed");
            }
        }
    }
}

crate::traced_handler!(CatalogReplica, CatalogRead);

impl Handler<CatalogRead> for CatalogReplica {
    type Result = ResponseFuture<Result<CatalogAnswer, ReplicaRefusal>>;

    fn handle(&mut self, read: CatalogRead, _ctx: &mut Self::Context) -> Self::Result {
        if !self.slot.is_serving() {
            return Box::pin(async { Err(ReplicaRefusal::NotServing) });
        }
        let slot = self.slot.clone();
        Box::pin(async move {
            let store = &slot.store;
            let answer = match &read {
                CatalogRead::Lookup(id) => store.lookup(*id).await.map(CatalogAnswer::Book),
                CatalogRead::List(topic) => {
                    store.list(topic.as_deref()).await.map(CatalogAnswer::Books)
                }
            };
            match answer {
                Ok(answer) => {
                    tracing::info!(replica = slot.name(), read = ?read, "{} answered {read:?}", slot.name());
                    Ok(answer)
                }
                Err(error) => {
                    tracing::error!(replica = slot.name(), read = ?read, error = %error, "{} could not read its copy", slot.name());
                    Err(ReplicaRefusal::Storage)
                }
            }
        })
    }
}
