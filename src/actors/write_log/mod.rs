//! The sequenced write log with group commit: one order for a service's writes, committed
//! together. Shared machinery: the Olympic service's reporter updates, the bookstore's writes
//! and the room servers' requests each go through a log of their own.
//!
//! Writers [`Submit`] a write. While a commit is in flight, what arrives waits; the next commit
//! carries all of it (up to `max_group`): the writes are numbered consecutively in the order
//! they arrived, applied and logged in one transaction (one commit, one fsync), and each writer
//! is answered after that commit. So under load one commit serves many writers, as the queue's
//! brokers do, and a slow disk costs one fsync per group instead of one per write.
//!
//! What the numbers promise: gap-free, unique, and in commit order. A write whose checks fail
//! (the service's [`SequencedWrite::apply`] answers `Err(Rejected)`, having changed nothing)
//! fails alone and takes no number. A write whose SQL fails poisons its transaction: the group
//! is rolled back, that write alone is answered with an error, and the others go again at the
//! head of the queue without it. After each commit the new entries are multicast, in number
//! order, to every subscriber *before* any writer of the group is answered: a subscriber's
//! mailbox holds the update before the writer can send its next request.
//!
//! Idempotency: a write with a key is applied once. A retry with the same key (in a later group
//! or the same one) is answered with the first's result and number; a retry in a later group is
//! multicast again (flagged `replayed`) before it is answered, since the first multicast may
//! have been lost in a crash after its commit: subscribers drop the numbers they have already.
//! The same key for a different write is refused. Keys live in the log table itself.
//!
//! The log is a table, readable with psql (see [`LogTable`] for its columns), and its last
//! number is in `write_log_heads` (log, last_seq), moved by compare-and-set in every group: a
//! second writer of the same log (another process on the same data) fails its group instead of
//! forking the order.
//!
//! Failures: the actor runs under the supervisor. A group in flight when it crashes finishes
//! (its writers are answered, committed or not) or rolls back with the connection; the writes
//! still waiting are kept, and the next life waits for the group (`write_lock`), reloads the
//! last number and commits them. A failed commit answers its
//! writers with an error and reloads the last number before the next group: its outcome may be
//! unknown, which a retry with the same idempotency key resolves. A group that committed but
//! whose multicast was lost (its commit's answer lost, or a crash in between: see
//! [`CrashMode::AfterCommit`]) leaves a gap that subscribers fill from the log when the next
//! number reaches them; a retry of one of its writes is multicast before it is answered.

mod commit;

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex as AsyncMutex, oneshot};

use crate::actors::lifecycle::{Crash, CrashMode, Stop, crash_actor};
use crate::actors::supervisor::ActorCell;
use commit::{GroupOutcome, commit_group, load_last_seq};

/// A write a service sends through its log.
pub trait SequencedWrite: Send + Sync + Unpin + 'static {
    /// What the writer is answered with; logged as the entry's `detail`.
    type Applied: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// Why the write was refused by its checks.
    type Rejected: Send + 'static;

    /// Applies the write in the group's transaction. `Ok(Err(_))` means its checks refused it
    /// and it changed nothing (check before you change: the transaction goes on with the rest of
    /// the group). An SQL error poisons the transaction: the log retries the group without it.
    fn apply<'c>(
        &'c self,
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, Result<Result<Self::Applied, Self::Rejected>, sqlx::Error>>;

    /// Applies several writes in the group's transaction, as [`apply`](Self::apply) would one
    /// after another, in as few statements as the service can: one result per write, in order,
    /// exactly what applying them one by one would give (a refused write changes nothing and
    /// the next sees the state the previous ones left). The log never passes two writes with
    /// the same idempotency key in one call. An error means the transaction is poisoned: the
    /// log rolls it back and applies the group one write at a time to find the guilty write.
    /// The default applies them one after another.
    fn apply_batch<'c>(
        writes: &'c [&'c Self],
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, BatchResult<Self>>
    where
        Self: Sized,
    {
        Box::pin(async move {
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                results.push(write.apply(&mut *tx).await?);
            }
            Ok(results)
        })
    }

    /// The entry's `kind` and `subject` columns (e.g. "score", "curling").
    fn describe(applied: &Self::Applied) -> (&'static str, String);

    /// The entry's `entered_via`: the server the request entered through.
    fn entered_via(&self) -> &str;

    /// A key that makes retries of this write count once.
    fn idempotency_key(&self) -> Option<&str>;

    /// What must be equal for two writes with one key to be the same write.
    fn fingerprint(&self) -> String;
}

/// What [`SequencedWrite::apply_batch`] answers: one result per write, in order.
pub type BatchResult<W> = Result<
    Vec<Result<<W as SequencedWrite>::Applied, <W as SequencedWrite>::Rejected>>,
    sqlx::Error,
>;

/// Where a log is kept: a table with the columns `seq bigint PRIMARY KEY, kind text, subject
/// text, entered_via text, detail jsonb, idempotency_key text UNIQUE, fingerprint text,
/// committed_at timestamptz DEFAULT now()`, and its row in `write_log_heads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTable {
    /// The table's name; also the log's name in `write_log_heads`.
    pub name: &'static str,
}

/// How much a log takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLogLimits {
    /// Writes in one transaction at most.
    pub max_group: usize,
    /// Writes waiting at most; past it a write is refused at once (503) instead of queued.
    pub max_pending: usize,
    /// Subscribers at most (a restarted subscriber replaces its dead address).
    pub max_subscribers: usize,
}

impl From<&crate::settings::WriteLogSettings> for WriteLogLimits {
    fn from(s: &crate::settings::WriteLogSettings) -> Self {
        Self {
            max_group: s.max_group.max(1),
            max_pending: s.max_pending,
            max_subscribers: s.max_subscribers,
        }
    }
}

/// A committed write, as its writer is answered and its subscribers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced<A> {
    /// Its number in the log.
    pub seq: u64,
    pub applied: A,
    /// The server the write entered through.
    pub entered_via: String,
    /// An idempotent retry: answered from the log, not applied again (multicast again, for a
    /// subscriber that missed the first telling).
    pub replayed: bool,
}

impl<A: Send + 'static> Message for Sequenced<A> {
    type Result = ();
}

/// Why a write got no number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError<R> {
    #[error("refused by its checks")]
    Rejected(R),
    #[error("idempotency key `{0}` was already used for a different write")]
    IdempotencyConflict(String),
    /// Too many writes are waiting: retry shortly.
    #[error("the write log is full ({0} writes waiting)")]
    Overloaded(usize),
    /// The database failed (the detail is logged, not answered): retry shortly.
    #[error("the write could not be stored")]
    Storage,
}

type Reply<W> = oneshot::Sender<
    Result<Sequenced<<W as SequencedWrite>::Applied>, WriteError<<W as SequencedWrite>::Rejected>>,
>;

/// Number, apply and log a write; answered once its group committed.
pub struct Submit<W: SequencedWrite>(pub W);

impl<W: SequencedWrite> Message for Submit<W> {
    type Result = Result<Sequenced<W::Applied>, WriteError<W::Rejected>>;
}

/// Tell `0` about every committed write, in number order.
pub struct Subscribe<A: Send + 'static>(pub Recipient<Sequenced<A>>);

impl<A: Send + 'static> Message for Subscribe<A> {
    type Result = ();
}

/// What the log has done, for `/cluster`, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// The last number committed (`None` while it loads).
    pub last_seq: Option<u64>,
    pub groups: u64,
    pub largest_group: usize,
    pub pending: usize,
    pub subscribers: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct DescribeLog;

impl Message for DescribeLog {
    type Result = LogStats;
}

/// One life's work: a group's end or the last number's load, ignored by a later life.
type Generation = u64;

struct Loaded {
    generation: Generation,
    last_seq: Result<u64, sqlx::Error>,
}

impl Message for Loaded {
    type Result = ();
}

struct Flushed<W: SequencedWrite> {
    generation: Generation,
    /// The last number after the group, or `None` when it failed (reload before going on).
    last_seq: Option<u64>,
    /// Writes to go again at the head of the queue (the rest of a poisoned group).
    again: Vec<(W, Reply<W>)>,
}

impl<W: SequencedWrite> Message for Flushed<W> {
    type Result = ();
}

pub struct WriteLog<W: SequencedWrite> {
    cell: Arc<ActorCell>,
    pool: PgPool,
    table: LogTable,
    limits: WriteLogLimits,
    generation: Generation,
    last_seq: Option<u64>,
    pending: VecDeque<(W, Reply<W>)>,
    flushing: bool,
    /// Held by a group in flight; a new life takes it before reloading the last number.
    write_lock: Arc<AsyncMutex<()>>,
    subscribers: Arc<Vec<Recipient<Sequenced<W::Applied>>>>,
    stats: LogStats,
    /// A crash asked for after the next commit ([`CrashMode::AfterCommit`]): how long to stay
    /// down.
    crash_after_commit: Option<std::time::Duration>,
}

impl<W: SequencedWrite> WriteLog<W> {
    pub fn new(
        cell: Arc<ActorCell>,
        pool: PgPool,
        table: LogTable,
        limits: WriteLogLimits,
    ) -> Self {
        Self {
            cell,
            pool,
            table,
            limits,
            generation: 0,
            last_seq: None,
            pending: VecDeque::new(),
            flushing: false,
            write_lock: Arc::default(),
            subscribers: Arc::default(),
            stats: LogStats::default(),
            crash_after_commit: None,
        }
    }

    fn name(&self) -> &str {
        self.cell.name()
    }

    /// Loads the last number once the group of a previous life (if any) is done.
    fn load(&mut self, ctx: &mut Context<Self>) {
        self.last_seq = None;
        let (pool, table, lock, generation) = (
            self.pool.clone(),
            self.table,
            self.write_lock.clone(),
            self.generation,
        );
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let _guard = lock.lock().await;
            let last_seq = load_last_seq(&pool, table).await;
            addr.do_send(Loaded {
                generation,
                last_seq,
            });
        });
    }

    /// Starts a group with what is pending, unless one is in flight.
    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        let Some(start) = self.last_seq else {
            return;
        };
        if self.flushing || self.pending.is_empty() {
            return;
        }
        let Ok(guard) = self.write_lock.clone().try_lock_owned() else {
            return;
        };
        let take = self.pending.len().min(self.limits.max_group.max(1));
        let group: Vec<(W, Reply<W>)> = self.pending.drain(..take).collect();
        self.flushing = true;
        self.stats.groups += 1;
        self.stats.largest_group = self.stats.largest_group.max(group.len());
        let (pool, table, generation) = (self.pool.clone(), self.table, self.generation);
        let subscribers = self.subscribers.clone();
        let (addr, name) = (ctx.address(), self.name().to_owned());
        let crash_after_commit = self.crash_after_commit.take();
        actix_rt::spawn(async move {
            let _guard = guard;
            let (writes, replies): (Vec<W>, Vec<Reply<W>>) = group.into_iter().unzip();
            crate::telemetry::metrics::group_commit(&name, writes.len());
            let outcome = commit_group(&pool, table, start, &writes).await;
            if let (Some(stay_down), GroupOutcome::Committed { last_seq, .. }) =
                (crash_after_commit, &outcome)
            {
                // Committed, and nobody is told: the writers' answers are dropped (their
                // outcome is unknown to them; a retry with their key is answered from the log).
                tracing::warn!(log = %name, last_seq, "write log {name}: group #{}..#{last_seq} committed; crashing before its multicast, on request", start + 1);
                drop(replies);
                addr.do_send(Crash {
                    mode: CrashMode::Panic,
                    stay_down,
                });
                addr.do_send(Flushed {
                    generation,
                    last_seq: None,
                    again: Vec::new(),
                });
                return;
            }
            let flushed = finish_group(&name, outcome, writes, replies, &subscribers, start);
            addr.do_send(Flushed {
                generation,
                last_seq: flushed.0,
                again: flushed.1,
            });
        });
    }
}

/// Multicasts and answers what a group did; returns the last number (if the group committed or
/// was poisoned before it changed anything) and the writes to go again.
#[allow(clippy::type_complexity)]
fn finish_group<W: SequencedWrite>(
    name: &str,
    outcome: GroupOutcome<W::Applied, W::Rejected>,
    writes: Vec<W>,
    replies: Vec<Reply<W>>,
    subscribers: &[Recipient<Sequenced<W::Applied>>],
    start: u64,
) -> (Option<u64>, Vec<(W, Reply<W>)>) {
    match outcome {
        GroupOutcome::Committed { results, last_seq } => {
            // Subscribers first, in number order: then the writers. A retry answered from the
            // log is told again (subscribers drop numbers they have): its first telling may
            // have been lost in a crash, and its writer's OK must not come before it. Unless
            // its first is in this very group, and told just before.
            for result in results.iter().flatten() {
                if !result.replayed || result.seq <= start {
                    for subscriber in subscribers {
                        subscriber.do_send(result.clone());
                    }
                }
            }
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            (Some(last_seq), Vec::new())
        }
        GroupOutcome::Poisoned { index, error } => {
            tracing::error!(log = name, seq_after = start, error = %error, "write log {name}: a write's SQL failed; the rest of its group goes again without it");
            let mut again = Vec::with_capacity(writes.len().saturating_sub(1));
            for (i, (write, reply)) in writes.into_iter().zip(replies).enumerate() {
                if i == index {
                    let _ = reply.send(Err(WriteError::Storage));
                } else {
                    again.push((write, reply));
                }
            }
            // Rolled back: the numbers did not move.
            (Some(start), again)
        }
        GroupOutcome::Failed(error) => {
            tracing::error!(log = name, seq_after = start, writes = writes.len(), error = %error, "write log {name}: a group failed; its writers are answered 503");
            for reply in replies {
                let _ = reply.send(Err(WriteError::Storage));
            }
            (None, Vec::new())
        }
    }
}

impl<W: SequencedWrite> Actor for WriteLog<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load(ctx);
    }
}

impl<W: SequencedWrite> actix::Supervised for WriteLog<W> {
    /// The waiting writes are kept (the actor value survives): the next life commits them once
    /// it has reloaded the last number, after the group in flight (if any) is done.
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let waiting = self.pending.len();
        tracing::warn!(
            log = self.name(),
            waiting,
            "write log {} restarting; its {waiting} waiting writes go in its next life",
            self.name()
        );
        self.generation += 1;
        self.flushing = false;
        self.last_seq = None;
    }
}

impl<W: SequencedWrite> Handler<Crash> for WriteLog<W> {
    type Result = ();
    fn handle(&mut self, msg: Crash, ctx: &mut Self::Context) {
        if msg.mode == CrashMode::AfterCommit {
            tracing::warn!(
                log = self.name(),
                "write log {} crashes after its next commit, on request",
                self.name()
            );
            self.crash_after_commit = Some(msg.stay_down);
            return;
        }
        crash_actor(&self.cell, msg, ctx);
    }
}

impl<W: SequencedWrite> Handler<Stop> for WriteLog<W> {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.name(),
            "actor {} stops for shutdown",
            self.name()
        );
        ctx.stop();
    }
}

/// A write sent in a request's span (`actors::traced`) is taken in that span.
impl<W: SequencedWrite> Handler<crate::actors::traced::Traced<Submit<W>>> for WriteLog<W> {
    type Result = <Self as Handler<Submit<W>>>::Result;
    fn handle(
        &mut self,
        traced: crate::actors::traced::Traced<Submit<W>>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let span = traced.span;
        let answer = span.in_scope(|| {
            tracing::trace!(log = self.name(), "request message received");
            <Self as Handler<Submit<W>>>::handle(self, traced.msg, ctx)
        });
        crate::actors::traced::InSpan::in_span(answer, span)
    }
}

impl<W: SequencedWrite> Handler<Submit<W>> for WriteLog<W> {
    type Result = ResponseFuture<Result<Sequenced<W::Applied>, WriteError<W::Rejected>>>;

    fn handle(&mut self, Submit(write): Submit<W>, ctx: &mut Self::Context) -> Self::Result {
        if self.pending.len() >= self.limits.max_pending {
            let waiting = self.pending.len();
            return Box::pin(async move { Err(WriteError::Overloaded(waiting)) });
        }
        let (reply, answer) = oneshot::channel();
        self.pending.push_back((write, reply));
        self.maybe_flush(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(WriteError::Storage)) })
    }
}

impl<W: SequencedWrite> Handler<Loaded> for WriteLog<W> {
    type Result = ();
    fn handle(&mut self, msg: Loaded, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        match msg.last_seq {
            Ok(last) => {
                tracing::info!(
                    log = self.name(),
                    last_seq = last,
                    "write log {} ready: the next write is #{}",
                    self.name(),
                    last + 1
                );
                self.last_seq = Some(last);
                self.stats.last_seq = Some(last);
                self.maybe_flush(ctx);
            }
            Err(e) => {
                tracing::error!(log = self.name(), error = %e, "write log {} cannot load its last number; retrying", self.name());
                ctx.run_later(std::time::Duration::from_millis(200), |act, ctx| {
                    act.load(ctx)
                });
            }
        }
    }
}

impl<W: SequencedWrite> Handler<Flushed<W>> for WriteLog<W> {
    type Result = ();
    fn handle(&mut self, msg: Flushed<W>, ctx: &mut Self::Context) {
        // The rest of a poisoned group goes first, whichever life it came from; a previous
        // life's last number is not this life's (it reloads it after that group).
        for entry in msg.again.into_iter().rev() {
            self.pending.push_front(entry);
        }
        if msg.generation != self.generation {
            return;
        }
        self.flushing = false;
        match msg.last_seq {
            Some(last) => {
                self.last_seq = Some(last);
                self.stats.last_seq = Some(last);
                self.maybe_flush(ctx);
            }
            None => self.load(ctx),
        }
    }
}

impl<W: SequencedWrite> Handler<Subscribe<W::Applied>> for WriteLog<W> {
    type Result = ();
    fn handle(&mut self, Subscribe(subscriber): Subscribe<W::Applied>, _ctx: &mut Self::Context) {
        let mut list: Vec<_> = self
            .subscribers
            .iter()
            .filter(|s| s.connected() && **s != subscriber)
            .cloned()
            .collect();
        if list.len() >= self.limits.max_subscribers {
            tracing::error!(
                log = self.name(),
                max = self.limits.max_subscribers,
                "write log {} has too many subscribers; one more is refused",
                self.name()
            );
            return;
        }
        list.push(subscriber);
        self.subscribers = Arc::new(list);
    }
}

impl<W: SequencedWrite> Handler<DescribeLog> for WriteLog<W> {
    type Result = MessageResult<DescribeLog>;
    fn handle(&mut self, _: DescribeLog, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(LogStats {
            pending: self.pending.len(),
            subscribers: self.subscribers.len(),
            ..self.stats
        })
    }
}
