//! A queue broker (seed 004): owns some partitions and does every read and write for them.
//!
//! Writes: an [`Append`] waits in the broker's pending list. When no flush is in flight, the
//! broker starts one at once with *everything* pending, for all its partitions: it assigns the
//! offsets in memory (it is the single writer of its partitions, so offsets are dense), then one
//! detached task inserts the whole group with one statement (one transaction, one commit) and
//! only then acknowledges every request of the group. Appends that arrive meanwhile accumulate
//! for the next flush: under load, one commit carries many requests (group commit).
//!
//! Reads: a [`Fetch`] is a range `[position, position + max)` of committed offsets, served from
//! a bounded in-memory tail of recently committed messages, or by a range scan of the primary key
//! in PostgreSQL for older ones. Advancing a reader's position is a write: commits of concurrent
//! fetches are grouped into one upsert the same way, and a fetch is answered after its offset is
//! committed. [`Fetch`] with `advance: false` plus [`CommitOffset`] gives at-least-once.
//!
//! Failures: if PostgreSQL refuses a flush, its requests are committed again one by one so that
//! only the one it cannot store fails (422; `group_commit.rs`); if the outcome is unknown (the
//! connection failed), its requests get 503 and the broker reloads its state from PostgreSQL
//! before flushing again, so nothing uncommitted is acknowledged and no offset is skipped or
//! reused. After a crash the supervisor restarts the same actor: `restarting` drops
//! everything in flight (its senders see 503) and `started` reloads partitions, next offsets and
//! reader offsets from PostgreSQL, after waiting for a flush of the previous life to finish.
//! Long polls are woken through [`PartitionSignals`] after each commit.
//!
//! The broker's parts: `partition.rs` (one partition's state: its committed tail, read cache
//! and reader positions), `writes.rs` (group commit of appends and of offsets), `reads.rs`
//! (fetches, the read cache's loads and eviction), `tasks.rs` (its detached tasks report their
//! end, panic included, so that no flag they set outlives them). The offset upserts of all brokers go through
//! one [`OffsetCommitter`](crate::actors::queue::offset_committer::OffsetCommitter).

mod group_commit;
mod partition;
mod reads;
pub mod stats;
mod tasks;
mod writes;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{Mutex as AsyncMutex, oneshot, watch};

use crate::actors::queue::offset_committer::OffsetCommitter;
use crate::actors::supervisor::ActorCell;
use crate::queue::hooks::TestHooks;
use crate::queue::retention::{self, Retention};
use crate::queue::store::{self, PartitionRow};
use crate::queue::{PartitionKey, QueueError, Reader, StoredMessage};

use partition::{Block, CACHE_BLOCK, PartitionState, ReaderPosition};
use tasks::Task;
use writes::{PendingAppend, PendingCommit};

/// The committed end (next offset) of every partition, watched by long polls.
#[derive(Debug, Default)]
pub struct PartitionSignals {
    senders: RwLock<HashMap<PartitionKey, watch::Sender<i64>>>,
}

impl PartitionSignals {
    /// A receiver that wakes when the partition's committed end moves.
    pub fn subscribe(&self, key: PartitionKey) -> watch::Receiver<i64> {
        if let Some(sender) = self
            .senders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return sender.subscribe();
        }
        let mut senders = self.senders.write().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(key)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn publish(&self, key: PartitionKey, end: i64) {
        let senders = self.senders.read().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = senders.get(&key) {
            sender.send_replace(end);
        } else {
            drop(senders);
            self.senders
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_insert_with(|| watch::channel(end).0);
        }
    }
}

/// The broker's limits.
#[derive(Debug, Clone, Copy)]
pub struct BrokerLimits {
    pub tail_messages: usize,
    /// Bytes the tails of all its partitions hold together (each gets an equal share).
    pub tail_bytes: usize,
    /// Bytes of older messages (read from PostgreSQL) the broker keeps for other readers.
    pub read_cache_bytes: usize,
    pub max_pending_messages: usize,
    /// Bytes of appends waiting for their commit, or in the flush in flight.
    pub max_pending_bytes: usize,
    pub retention_interval: Duration,
}

/// One broker as the others see it.
#[derive(Debug)]
pub struct BrokerSlot {
    pub id: i32,
    pub addr: Addr<QueueBroker>,
    pub cell: Arc<ActorCell>,
}

type AppendReply = oneshot::Sender<Result<i64, QueueError>>;
type FetchReply = oneshot::Sender<Result<Vec<Arc<StoredMessage>>, QueueError>>;

/// Append messages to a partition. Answered on `reply` with the first message's offset (the
/// others follow densely) once committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append {
    pub key: PartitionKey,
    pub messages: Vec<String>,
    pub reply: AppendReply,
}

/// The next messages of a partition for `reader`, at most `max`. With `advance`, the reader's
/// offset moves past them and the answer comes once that is committed. With `at`, they are
/// read from that offset instead of the reader's position, which neither moves nor is created
/// (a Kafka v2 consumer instance keeps its own position; `advance` is then ignored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetch {
    pub key: PartitionKey,
    pub reader: Reader,
    pub max: usize,
    pub advance: bool,
    pub at: Option<i64>,
    pub reply: FetchReply,
}

/// Where a partition starts and ends, and `reader`'s committed offset in it (if it has one).
#[derive(Message)]
#[rtype(result = "Result<PartitionOffsets, QueueError>")]
pub struct GetOffsets {
    pub key: PartitionKey,
    pub reader: Option<Reader>,
}

/// A partition's first kept offset, its committed end (next offset), and a reader's committed
/// next offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub start: i64,
    pub end: i64,
    pub committed: Option<i64>,
}

/// Sets `reader`'s next offset in a partition (after a fetch without advance); answered once
/// committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitOffset {
    pub key: PartitionKey,
    pub reader: Reader,
    pub offset: i64,
    pub reply: oneshot::Sender<Result<(), QueueError>>,
}

/// How many committed messages `reader` has not read yet in a partition.
#[derive(Message)]
#[rtype(result = "Result<i64, QueueError>")]
pub struct Size {
    pub key: PartitionKey,
    pub reader: Reader,
}

/// A new partition for this broker (sent by the write manager after the topic is committed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignPartition(pub PartitionRow);

/// A health check: answered at once by a broker that is up and not stuck.
#[derive(Message)]
#[rtype(result = "BrokerHealth")]
pub struct HealthCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHealth {
    pub partitions: usize,
    pub pending: usize,
}

/// A flush (or offset commit) of a past life of the broker is ignored by its next life.
type Generation = u64;

#[derive(Message)]
#[rtype(result = "()")]
struct RetentionDone {
    generation: Generation,
    cuts: Vec<(PartitionKey, i64, u64)>,
}

pub struct QueueBroker {
    id: i32,
    cell: Arc<ActorCell>,
    pool: PgPool,
    limits: BrokerLimits,
    signals: Arc<PartitionSignals>,
    committer: Arc<OffsetCommitter>,
    hooks: TestHooks,
    /// Held by a flush in flight; recovery takes it, so it reads PostgreSQL after that flush.
    write_lock: Arc<AsyncMutex<()>>,
    /// The same for offset commits.
    offsets_lock: Arc<AsyncMutex<()>>,
    generation: Generation,
    partitions: HashMap<PartitionKey, PartitionState>,
    pending: Vec<PendingAppend>,
    pending_messages: usize,
    pending_bytes: usize,
    /// Bytes of the flush in flight (its task gives them back when it ends).
    in_flight_bytes: Arc<std::sync::atomic::AtomicUsize>,
    flushing: bool,
    pending_commits: Vec<PendingCommit>,
    committing: bool,
    retention_running: bool,
    recovering: bool,
    /// Bytes the read caches of all partitions hold, and their LRU clock.
    cache_used: usize,
    cache_clock: u64,
}

impl QueueBroker {
    pub fn new(
        id: i32,
        cell: Arc<ActorCell>,
        pool: PgPool,
        limits: BrokerLimits,
        signals: Arc<PartitionSignals>,
        committer: Arc<OffsetCommitter>,
        hooks: TestHooks,
    ) -> Self {
        Self {
            id,
            cell,
            pool,
            limits,
            signals,
            committer,
            hooks,
            write_lock: Arc::default(),
            offsets_lock: Arc::default(),
            generation: 0,
            partitions: HashMap::new(),
            pending: Vec::new(),
            pending_messages: 0,
            pending_bytes: 0,
            in_flight_bytes: Arc::default(),
            flushing: false,
            pending_commits: Vec::new(),
            committing: false,
            retention_running: false,
            recovering: false,
            cache_used: 0,
            cache_clock: 0,
        }
    }

    /// Each partition's share of `tail_bytes`.
    fn tail_share(&self) -> usize {
        self.limits.tail_bytes / self.partitions.len().max(1)
    }

    fn unavailable(&self, key: PartitionKey, reason: &str) -> QueueError {
        let topic = self.partitions.get(&key).map_or_else(
            || format!("topic {}", key.topic_id),
            |p| p.topic.to_string(),
        );
        QueueError::PartitionUnavailable {
            topic,
            partition: key.partition,
            reason: format!("{} {reason}", self.cell.name()),
        }
    }

    /// Reloads every partition and reader offset from PostgreSQL, holding the mailbox until
    /// done (requests wait in it), after any flush or commit of a previous life has finished.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.recovering = true;
        self.flushing = false;
        self.committing = false;
        // Positions they reserved are replaced by what PostgreSQL says: they cannot complete.
        for commit in self.pending_commits.drain(..) {
            commit.then.finish(Err(QueueError::Unavailable(
                "the broker is reloading its state".into(),
            )));
        }
        let (pool, id, name) = (self.pool.clone(), self.id, self.cell.name().to_owned());
        let (write_lock, offsets_lock) = (self.write_lock.clone(), self.offsets_lock.clone());
        let load = async move {
            let _w = write_lock.lock().await;
            let _o = offsets_lock.lock().await;
            let mut attempt = 0u32;
            loop {
                let loaded = async {
                    let partitions = store::load_partitions(&pool, id).await?;
                    let offsets = store::load_offsets(&pool, id).await?;
                    Ok::<_, QueueError>((partitions, offsets))
                }
                .await;
                match loaded {
                    Ok(loaded) => return loaded,
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!(broker = %name, attempt, error = ?e, "broker {name} cannot reload its partitions yet; retrying");
                        tokio::time::sleep(Duration::from_millis(100.min(10 * u64::from(attempt))))
                            .await;
                    }
                }
            }
        };
        ctx.wait(load.into_actor(self).map(|(rows, offsets), act, ctx| {
            let orphans = act.install(rows, offsets);
            act.recovering = false;
            // Fetches that waited for a block read of the previous state start over.
            for fetch in orphans {
                act.fetch(fetch, ctx);
            }
            act.maybe_flush(ctx);
            act.maybe_commit(ctx);
        }));
    }

    fn install(
        &mut self,
        rows: Vec<PartitionRow>,
        offsets: Vec<(Reader, PartitionKey, i64)>,
    ) -> Vec<Fetch> {
        let orphans: Vec<Fetch> = self
            .partitions
            .values_mut()
            .flat_map(|p| p.blocks.drain())
            .filter_map(|(_, block)| match block {
                Block::Loading(waiting) => Some(waiting),
                Block::Loaded { .. } => None,
            })
            .flatten()
            .collect();
        self.cache_used = 0;
        self.partitions = rows
            .into_iter()
            .map(|row| (row.key, PartitionState::new(row)))
            .collect();
        for (reader, key, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(&key) {
                p.readers.insert(
                    reader,
                    ReaderPosition {
                        position: offset,
                        committed: offset,
                    },
                );
            }
        }
        let summary: Vec<String> = {
            let mut keys: Vec<_> = self.partitions.iter().collect();
            keys.sort_by_key(|(k, _)| **k);
            keys.iter()
                .map(|(k, p)| format!("{}/{}@{}", p.topic, k.partition, p.end))
                .collect()
        };
        for (key, p) in &self.partitions {
            self.signals.publish(*key, p.end);
        }
        tracing::info!(
            broker = self.cell.name(),
            partitions = self.partitions.len(),
            "broker {} recovered from PostgreSQL: next offsets [{}]",
            self.cell.name(),
            summary.join(", ")
        );
        orphans
    }
}

impl QueueBroker {
    fn retention_tick(&mut self, ctx: &mut Context<Self>) {
        if self.retention_running || self.recovering {
            return;
        }
        let work: Vec<(PartitionKey, i64, i64, Retention)> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.retention.keeps_everything())
            .map(|(k, p)| (*k, p.start, p.end, p.retention))
            .collect();
        if work.is_empty() {
            return;
        }
        self.retention_running = true;
        let (pool, addr, generation) = (self.pool.clone(), ctx.address(), self.generation);
        self.spawn_task(ctx, Task::Retention, async move {
            let mut cuts = Vec::new();
            for (key, start, end, rules) in work {
                let result = async {
                    let first_young = match rules.max_age_ms {
                        Some(ms) => match retention::age_cutoff(Utc::now(), ms) {
                            Some(cutoff) => {
                                Some(store::first_young(&pool, key, start, end, cutoff).await?)
                            }
                            // Older than any clock: nothing is that old.
                            None => Some(start),
                        },
                        None => None,
                    };
                    match retention::cut(start, end, rules, first_young) {
                        Some(new_start) => {
                            let deleted = store::cut(&pool, key, new_start).await?;
                            Ok::<_, QueueError>(Some((key, new_start, deleted)))
                        }
                        None => Ok(None),
                    }
                }
                .await;
                match result {
                    Ok(Some(cut)) => cuts.push(cut),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = ?e, "retention of partition {}/{} failed; retrying next round", key.topic_id, key.partition)
                    }
                }
            }
            addr.do_send(RetentionDone { generation, cuts });
        });
    }
}

impl Actor for QueueBroker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            broker = self.cell.name(),
            "broker {} starting",
            self.cell.name()
        );
        self.recover(ctx);
        ctx.run_interval(self.limits.retention_interval, |act, ctx| {
            act.retention_tick(ctx)
        });
    }
}

impl actix::Supervised for QueueBroker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Whatever was waiting dies with this life: senders see their channel closed (503).
        let pending = self.pending.len() + self.pending_commits.len();
        self.pending.clear();
        self.pending_messages = 0;
        self.pending_bytes = 0;
        self.pending_commits.clear();
        self.partitions.clear();
        self.cache_used = 0;
        self.retention_running = false;
        tracing::warn!(
            broker = self.cell.name(),
            dropped_requests = pending,
            "broker {} restarting: dropped {pending} requests in flight; reloading from PostgreSQL",
            self.cell.name()
        );
    }
}

crate::supervised_actor_handlers!(QueueBroker);

impl Handler<Size> for QueueBroker {
    type Result = Result<i64, QueueError>;
    fn handle(&mut self, msg: Size, _ctx: &mut Self::Context) -> Self::Result {
        let Some(p) = self.partitions.get_mut(&msg.key) else {
            return Err(self.unavailable(msg.key, "does not own it"));
        };
        let (start, end) = (p.start, p.end);
        let position = p.reader(&msg.reader).position.max(start);
        Ok((end - position).max(0))
    }
}

impl Handler<GetOffsets> for QueueBroker {
    type Result = Result<PartitionOffsets, QueueError>;
    fn handle(&mut self, msg: GetOffsets, _ctx: &mut Self::Context) -> Self::Result {
        let Some(p) = self.partitions.get(&msg.key) else {
            return Err(self.unavailable(msg.key, "does not own it"));
        };
        let committed = msg
            .reader
            .and_then(|r| p.readers.get(&r).map(|position| position.committed));
        Ok(PartitionOffsets {
            start: p.start,
            end: p.end,
            committed,
        })
    }
}

impl Handler<AssignPartition> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: AssignPartition, _ctx: &mut Self::Context) {
        let key = msg.0.key;
        if self.partitions.contains_key(&key) {
            return;
        }
        tracing::info!(
            broker = self.cell.name(),
            "broker {} now owns {}/{}",
            self.cell.name(),
            msg.0.topic,
            key.partition
        );
        let state = PartitionState::new(msg.0);
        self.signals.publish(key, state.end);
        self.partitions.insert(key, state);
        // One more partition shares the tails' bytes: the others give up theirs.
        let (count, share) = (self.limits.tail_messages, self.tail_share());
        for p in self.partitions.values_mut() {
            p.trim_tail(count, share);
        }
    }
}

impl Handler<HealthCheck> for QueueBroker {
    type Result = MessageResult<HealthCheck>;
    fn handle(&mut self, _: HealthCheck, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(BrokerHealth {
            partitions: self.partitions.len(),
            pending: self.pending_messages,
        })
    }
}

impl Handler<RetentionDone> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: RetentionDone, _ctx: &mut Self::Context) {
        self.retention_running = false;
        if msg.generation != self.generation {
            return;
        }
        for (key, new_start, deleted) in msg.cuts {
            let Some(p) = self.partitions.get_mut(&key) else {
                continue;
            };
            p.start = p.start.max(new_start);
            while p.tail.front().is_some_and(|m| m.offset < p.start) {
                p.pop_tail_front();
            }
            let start = p.start;
            p.blocks.retain(|b, block| match block {
                Block::Loaded { bytes, .. } if (b + 1) * CACHE_BLOCK <= start => {
                    self.cache_used -= *bytes;
                    false
                }
                _ => true,
            });
            tracing::info!(
                broker = self.cell.name(),
                deleted,
                "retention deleted {deleted} messages of {}/{}; it now starts at offset {}",
                p.topic,
                key.partition,
                p.start
            );
        }
    }
}
