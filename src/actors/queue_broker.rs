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
//! Failures: if a flush fails, its requests get 503 and the broker reloads its state from
//! PostgreSQL before flushing again, so nothing uncommitted is acknowledged and no offset is
//! skipped or reused. After a crash the supervisor restarts the same actor: `restarting` drops
//! everything in flight (its senders see 503) and `started` reloads partitions, next offsets and
//! reader offsets from PostgreSQL, after waiting for a flush of the previous life to finish.
//! Long polls are woken through [`PartitionSignals`] after each commit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use tokio::sync::{Mutex as AsyncMutex, oneshot, watch};

use crate::actors::supervisor::ActorCell;
use crate::queue::retention::{self, Retention};
use crate::queue::store::{self, AppendRows, OffsetRows, PartitionRow};
use crate::queue::{PartitionKey, QueueError, Reader, StoredMessage};

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

/// Offset commits of every broker, grouped: while one upsert is in flight, the batches brokers
/// submit wait, and the next upsert carries them all (one statement, one commit, one fsync for
/// all brokers instead of one per broker). Each batch is answered with the outcome of the
/// statement that carried it. Brokers own disjoint partitions and a broker has at most one batch
/// submitted at a time (its `offsets_lock`), so no row appears twice in one statement.
pub struct OffsetCommitter {
    pool: PgPool,
    state: std::sync::Mutex<CommitterState>,
}

#[derive(Default)]
struct CommitterState {
    waiting: Vec<(OffsetRows, oneshot::Sender<Result<(), QueueError>>)>,
    running: bool,
}

impl OffsetCommitter {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            state: Default::default(),
        })
    }

    /// Upserts `rows`, with whatever other brokers submit meanwhile; resolves once committed.
    async fn commit(self: &Arc<Self>, rows: OffsetRows) -> Result<(), QueueError> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.waiting.push((rows, done));
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let this = self.clone();
            actix_rt::spawn(async move { this.run().await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(QueueError::Unavailable("offset committer stopped".into())))
    }

    async fn run(&self) {
        /// If this task is dropped (its arbiter stopping), the next batch starts another.
        struct Stopped<'a>(&'a OffsetCommitter, bool);
        impl Drop for Stopped<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.running = false;
                }
            }
        }
        let mut stopped = Stopped(self, true);
        loop {
            let batches = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.waiting.is_empty() {
                    state.running = false;
                    stopped.1 = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let mut rows = OffsetRows::default();
            let mut replies = Vec::with_capacity(batches.len());
            for (batch, reply) in batches {
                rows.readers.extend(batch.readers);
                rows.topic_ids.extend(batch.topic_ids);
                rows.partitions.extend(batch.partitions);
                rows.offsets.extend(batch.offsets);
                replies.push(reply);
            }
            let result = store::commit_offsets(&self.pool, &rows).await;
            for reply in replies {
                let _ = reply.send(result.clone());
            }
        }
    }
}

/// The broker's limits.
#[derive(Debug, Clone, Copy)]
pub struct BrokerLimits {
    pub tail_messages: usize,
    /// Bytes of older messages (read from PostgreSQL) the broker keeps for other readers.
    pub read_cache_bytes: usize,
    pub max_pending_messages: usize,
    pub retention_interval: Duration,
}

/// A consumer's (or group's) place in one partition.
#[derive(Debug, Clone, Copy)]
struct ReaderPosition {
    /// The next offset to hand out (ahead of `committed` while a commit is in flight).
    position: i64,
    /// The next offset as committed in PostgreSQL.
    committed: i64,
}

struct PartitionState {
    topic: Arc<str>,
    start: i64,
    /// One past the last committed message.
    end: i64,
    /// The next offset to assign (`end` plus what a flush in flight carries).
    next: i64,
    retention: Retention,
    tail: VecDeque<Arc<StoredMessage>>,
    /// Blocks of older messages read from PostgreSQL, by block index (`offset / CACHE_BLOCK`).
    blocks: HashMap<i64, Block>,
    readers: HashMap<Reader, ReaderPosition>,
}

/// Offsets per block of the read cache.
const CACHE_BLOCK: i64 = 1024;

/// A block of the read cache: like a page cache, older messages read once from PostgreSQL
/// serve every reader that comes by. Committed messages never change, and nothing below the
/// partition's start is served (fetches begin at `start` or later), so a block is never stale;
/// it lives in the partition's state, which a recovery rebuilds from scratch.
enum Block {
    /// Contiguous messages (the first may be past the block's start: retention, or the start).
    Loaded {
        messages: Arc<[Arc<StoredMessage>]>,
        bytes: usize,
        used: u64,
    },
    /// Being read; these fetches run again when it is there.
    Loading(Vec<Fetch>),
}

/// What a cached message is accounted for (payload, its JSON, the struct, pointers).
fn cached_bytes(m: &StoredMessage) -> usize {
    2 * m.message.len() + 192
}

impl PartitionState {
    fn new(row: PartitionRow) -> Self {
        Self {
            topic: row.topic.into(),
            start: row.start_offset,
            end: row.next_offset,
            next: row.next_offset,
            retention: row.retention,
            tail: VecDeque::new(),
            blocks: HashMap::new(),
            readers: HashMap::new(),
        }
    }

    fn reader(&mut self, reader: &Reader) -> &mut ReaderPosition {
        let start = self.start;
        self.readers
            .entry(reader.clone())
            .or_insert(ReaderPosition {
                position: start,
                committed: start,
            })
    }

    /// Messages `[from, to)` if the tail holds them all.
    fn tail_range(&self, from: i64, to: i64) -> Option<Vec<Arc<StoredMessage>>> {
        let first = self.tail.front()?.offset;
        if from < first {
            return None;
        }
        let skip = (from - first) as usize;
        Some(
            self.tail
                .iter()
                .skip(skip)
                .take((to - from) as usize)
                .cloned()
                .collect(),
        )
    }

    /// Messages of `[from, to)` from the read cache, as far as consecutive loaded blocks go;
    /// `None` when the block holding `from` is not there.
    fn cached_range(&mut self, from: i64, to: i64, clock: u64) -> Option<Vec<Arc<StoredMessage>>> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let Some(Block::Loaded { messages, used, .. }) =
                self.blocks.get_mut(&(at / CACHE_BLOCK))
            else {
                break;
            };
            let first = messages.first()?.offset;
            let last = first + messages.len() as i64;
            if at >= last {
                // A block read before the end moved on: read it again.
                break;
            }
            *used = clock;
            if to <= first {
                // Deleted by retention meanwhile (the broker learns its new start soon).
                return Some(out);
            }
            // Below `first`: deleted by retention meanwhile (a range scan skips them too).
            let skip = (at - first).max(0) as usize;
            let upto = to.min(last);
            let take = (upto - at.max(first)) as usize;
            out.extend(messages[skip..skip + take].iter().cloned());
            at = upto;
        }
        if out.is_empty() { None } else { Some(out) }
    }
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
/// offset moves past them and the answer comes once that is committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetch {
    pub key: PartitionKey,
    pub reader: Reader,
    pub max: usize,
    pub advance: bool,
    pub reply: FetchReply,
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
pub struct Ping;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHealth {
    pub partitions: usize,
    pub pending: usize,
}

/// A flush (or offset commit) of a past life of the broker is ignored by its next life.
type Generation = u64;

#[derive(Message)]
#[rtype(result = "()")]
struct Flushed {
    generation: Generation,
    ok: bool,
    rows: AppendRows,
    produced_at: DateTime<Utc>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct OffsetsCommitted {
    generation: Generation,
    ok: bool,
    entries: Vec<(Reader, PartitionKey, i64)>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct BlockRead {
    generation: Generation,
    key: PartitionKey,
    block: i64,
    result: Result<Vec<StoredMessage>, QueueError>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct RetentionDone {
    generation: Generation,
    cuts: Vec<(PartitionKey, i64, u64)>,
}

struct PendingAppend {
    key: PartitionKey,
    messages: Vec<String>,
    reply: AppendReply,
}

enum AfterCommit {
    Deliver(Vec<Arc<StoredMessage>>, FetchReply),
    Ack(oneshot::Sender<Result<(), QueueError>>),
}

impl AfterCommit {
    fn finish(self, result: Result<(), QueueError>) {
        match (self, result) {
            (AfterCommit::Deliver(messages, reply), Ok(())) => {
                let _ = reply.send(Ok(messages));
            }
            (AfterCommit::Deliver(_, reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (AfterCommit::Ack(reply), result) => {
                let _ = reply.send(result);
            }
        }
    }
}

struct PendingCommit {
    reader: Reader,
    key: PartitionKey,
    offset: i64,
    then: AfterCommit,
}

pub struct QueueBroker {
    id: i32,
    cell: Arc<ActorCell>,
    pool: PgPool,
    limits: BrokerLimits,
    signals: Arc<PartitionSignals>,
    committer: Arc<OffsetCommitter>,
    /// Held by a flush in flight; recovery takes it, so it reads PostgreSQL after that flush.
    write_lock: Arc<AsyncMutex<()>>,
    /// The same for offset commits.
    offsets_lock: Arc<AsyncMutex<()>>,
    generation: Generation,
    partitions: HashMap<PartitionKey, PartitionState>,
    pending: Vec<PendingAppend>,
    pending_messages: usize,
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
    ) -> Self {
        Self {
            id,
            cell,
            pool,
            limits,
            signals,
            committer,
            write_lock: Arc::default(),
            offsets_lock: Arc::default(),
            generation: 0,
            partitions: HashMap::new(),
            pending: Vec::new(),
            pending_messages: 0,
            flushing: false,
            pending_commits: Vec::new(),
            committing: false,
            retention_running: false,
            recovering: false,
            cache_used: 0,
            cache_clock: 0,
        }
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
                        tracing::warn!(broker = %name, attempt, error = %e, "broker {name} cannot reload its partitions yet; retrying");
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

    /// Starts a flush of everything pending unless one is in flight.
    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.recovering || self.pending.is_empty() {
            return;
        }
        let Ok(guard) = self.write_lock.clone().try_lock_owned() else {
            // A flush of a past life still runs; recovery is waiting for it.
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        self.pending_messages = 0;
        let total: usize = pending.iter().map(|p| p.messages.len()).sum();
        let mut rows = AppendRows {
            topic_ids: Vec::with_capacity(total),
            partitions: Vec::with_capacity(total),
            offsets: Vec::with_capacity(total),
            payloads: Vec::with_capacity(total),
        };
        let mut replies = Vec::with_capacity(pending.len());
        for append in pending {
            let Some(p) = self.partitions.get_mut(&append.key) else {
                let _ = append
                    .reply
                    .send(Err(self.unavailable(append.key, "does not own it")));
                continue;
            };
            let first = p.next;
            p.next += append.messages.len() as i64;
            for (i, message) in append.messages.into_iter().enumerate() {
                rows.topic_ids.push(append.key.topic_id);
                rows.partitions.push(append.key.partition);
                rows.offsets.push(first + i as i64);
                rows.payloads.push(message);
            }
            replies.push((append.reply, first));
        }
        if replies.is_empty() {
            return;
        }
        self.flushing = true;
        let (pool, addr, generation) = (self.pool.clone(), ctx.address(), self.generation);
        let name = self.cell.name().to_owned();
        actix_rt::spawn(async move {
            let _guard = guard;
            let produced_at = Utc::now().trunc_subsecs(6);
            let began = std::time::Instant::now();
            let result = store::append(&pool, &rows, produced_at).await;
            tracing::debug!(broker = %name, messages = rows.offsets.len(), requests = replies.len(), micros = began.elapsed().as_micros() as u64, "flush committed");
            if let Err(e) = &result {
                tracing::error!(broker = %name, messages = rows.offsets.len(), error = %e, "broker {name} failed to commit a flush; its requests get 503");
            }
            let ok = result.is_ok();
            // Told before anyone is acknowledged: a read sent after an acknowledgement is
            // handled after this (mailboxes are FIFO) and sees the messages.
            addr.do_send(Flushed {
                generation,
                ok,
                rows,
                produced_at,
            });
            for (reply, first) in replies {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(first),
                    Err(e) => Err(QueueError::Unavailable(format!("commit failed: {e}"))),
                });
            }
        });
    }

    /// Starts an offset commit of everything pending unless one is in flight.
    fn maybe_commit(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.recovering || self.pending_commits.is_empty() {
            return;
        }
        let Ok(guard) = self.offsets_lock.clone().try_lock_owned() else {
            return;
        };
        let pending = std::mem::take(&mut self.pending_commits);
        // The last offset of each (reader, partition) wins: one row each.
        let mut latest: HashMap<(Reader, PartitionKey), i64> = HashMap::new();
        let mut afters = Vec::with_capacity(pending.len());
        for commit in pending {
            latest.insert((commit.reader, commit.key), commit.offset);
            afters.push(commit.then);
        }
        let mut rows = OffsetRows::default();
        let mut entries = Vec::with_capacity(latest.len());
        for ((reader, key), offset) in latest {
            rows.readers.push(reader.key());
            rows.topic_ids.push(key.topic_id);
            rows.partitions.push(key.partition);
            rows.offsets.push(offset);
            entries.push((reader, key, offset));
        }
        self.committing = true;
        let (committer, addr, generation) =
            (self.committer.clone(), ctx.address(), self.generation);
        let name = self.cell.name().to_owned();
        actix_rt::spawn(async move {
            let _guard = guard;
            let result = committer.commit(rows).await;
            if let Err(e) = &result {
                tracing::error!(broker = %name, error = %e, "broker {name} failed to commit offsets; those reads get 503");
            }
            addr.do_send(OffsetsCommitted {
                generation,
                ok: result.is_ok(),
                entries,
            });
            for after in afters {
                after.finish(
                    result
                        .clone()
                        .map_err(|e| QueueError::Unavailable(format!("offset commit failed: {e}"))),
                );
            }
        });
    }

    fn fetch(&mut self, fetch: Fetch, ctx: &mut Context<Self>) {
        self.cache_clock += 1;
        let clock = self.cache_clock;
        let Some(p) = self.partitions.get_mut(&fetch.key) else {
            let e = self.unavailable(fetch.key, "does not own it");
            let _ = fetch.reply.send(Err(e));
            return;
        };
        let (start, end) = (p.start, p.end);
        let reader = p.reader(&fetch.reader);
        let from = reader.position.max(start);
        let to = (from + fetch.max as i64).min(end);
        if to <= from {
            let _ = fetch.reply.send(Ok(Vec::new()));
            return;
        }
        // The tail, else the read cache, else a range scan of the block (and back here).
        let messages = match p.tail_range(from, to) {
            Some(messages) => messages,
            None => match p.cached_range(from, to, clock) {
                Some(messages) => messages,
                None => {
                    self.read_block(fetch, from, ctx);
                    return;
                }
            },
        };
        let Some(last) = messages.last() else {
            let _ = fetch.reply.send(Ok(messages));
            return;
        };
        let to = last.offset + 1;
        if fetch.advance {
            p.reader(&fetch.reader).position = to;
            self.pending_commits.push(PendingCommit {
                reader: fetch.reader,
                key: fetch.key,
                offset: to,
                then: AfterCommit::Deliver(messages, fetch.reply),
            });
            self.maybe_commit(ctx);
        } else {
            let _ = fetch.reply.send(Ok(messages));
        }
    }

    /// Reads the cache block holding `from` (one range scan for every reader that needs it);
    /// `fetch` runs again once it is there.
    fn read_block(&mut self, fetch: Fetch, from: i64, ctx: &mut Context<Self>) {
        let key = fetch.key;
        let Some(p) = self.partitions.get_mut(&key) else {
            return;
        };
        let block = from / CACHE_BLOCK;
        match p.blocks.get_mut(&block) {
            Some(Block::Loading(waiting)) => {
                waiting.push(fetch);
                return;
            }
            Some(Block::Loaded { bytes, .. }) => {
                // Read before the end moved past it: read again, whole.
                self.cache_used -= *bytes;
            }
            None => {}
        }
        let lo = (block * CACHE_BLOCK).max(p.start);
        let hi = ((block + 1) * CACHE_BLOCK).min(p.end);
        p.blocks.insert(block, Block::Loading(vec![fetch]));
        let (pool, addr, generation) = (self.pool.clone(), ctx.address(), self.generation);
        actix_rt::spawn(async move {
            let result = store::read_range(&pool, key, lo, hi).await;
            addr.do_send(BlockRead {
                generation,
                key,
                block,
                result,
            });
        });
    }

    /// Drops the least recently used blocks until the read cache fits its budget.
    fn evict(&mut self) {
        while self.cache_used > self.limits.read_cache_bytes {
            let victim = self
                .partitions
                .iter()
                .flat_map(|(key, p)| {
                    p.blocks.iter().filter_map(move |(b, block)| match block {
                        Block::Loaded { used, .. } => Some((*used, *key, *b)),
                        Block::Loading(_) => None,
                    })
                })
                .min();
            let Some((_, key, b)) = victim else {
                break;
            };
            if let Some(Block::Loaded { bytes, .. }) = self
                .partitions
                .get_mut(&key)
                .and_then(|p| p.blocks.remove(&b))
            {
                self.cache_used -= bytes;
            }
        }
    }

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
        actix_rt::spawn(async move {
            let mut cuts = Vec::new();
            for (key, start, end, rules) in work {
                let result = async {
                    let first_young = match rules.max_age_ms {
                        Some(ms) => {
                            let cutoff = Utc::now() - chrono::Duration::milliseconds(ms);
                            Some(store::first_young(&pool, key, start, end, cutoff).await?)
                        }
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
                        tracing::warn!(error = %e, "retention of partition {}/{} failed; retrying next round", key.topic_id, key.partition)
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

impl Handler<Append> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) {
        if !self.partitions.contains_key(&msg.key) {
            let e = self.unavailable(msg.key, "does not own it");
            let _ = msg.reply.send(Err(e));
            return;
        }
        if self.pending_messages + msg.messages.len() > self.limits.max_pending_messages {
            let e = self.unavailable(msg.key, "has too many messages waiting for their commit");
            let _ = msg.reply.send(Err(e));
            return;
        }
        self.pending_messages += msg.messages.len();
        self.pending.push(PendingAppend {
            key: msg.key,
            messages: msg.messages,
            reply: msg.reply,
        });
        self.maybe_flush(ctx);
    }
}

impl Handler<Flushed> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: Flushed, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        self.flushing = false;
        if !msg.ok {
            // The outcome in PostgreSQL is unknown: learn it before assigning offsets again.
            self.recover(ctx);
            return;
        }
        let tail_cap = self.limits.tail_messages;
        let mut touched: Vec<PartitionKey> = Vec::new();
        let rows = msg.rows;
        for (((topic_id, partition), offset), message) in rows
            .topic_ids
            .into_iter()
            .zip(rows.partitions)
            .zip(rows.offsets)
            .zip(rows.payloads)
        {
            let key = PartitionKey {
                topic_id,
                partition,
            };
            let Some(p) = self.partitions.get_mut(&key) else {
                continue;
            };
            p.end = offset + 1;
            if tail_cap > 0 {
                if p.tail.back().is_some_and(|last| last.offset + 1 != offset) {
                    p.tail.clear();
                }
                p.tail.push_back(Arc::new(StoredMessage::new(
                    partition,
                    offset,
                    message,
                    msg.produced_at,
                )));
                while p.tail.len() > tail_cap {
                    p.tail.pop_front();
                }
            }
            if touched.last() != Some(&key) {
                touched.push(key);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            if let Some(p) = self.partitions.get(&key) {
                self.signals.publish(key, p.end);
            }
        }
        self.maybe_flush(ctx);
    }
}

impl Handler<Fetch> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: Fetch, ctx: &mut Self::Context) {
        self.fetch(msg, ctx);
    }
}

impl Handler<BlockRead> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: BlockRead, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            // A life ago: its waiting fetches were started over by the recovery.
            return;
        }
        let Some(p) = self.partitions.get_mut(&msg.key) else {
            return;
        };
        let Some(Block::Loading(waiting)) = p.blocks.remove(&msg.block) else {
            return;
        };
        let rows = match msg.result {
            Ok(rows) => rows,
            Err(e) => {
                for fetch in waiting {
                    let _ = fetch
                        .reply
                        .send(Err(QueueError::Unavailable(format!("read failed: {e}"))));
                }
                return;
            }
        };
        if rows.is_empty() {
            // Deleted by retention meanwhile: nothing to give until the new start is known.
            for fetch in waiting {
                let _ = fetch.reply.send(Ok(Vec::new()));
            }
            return;
        }
        let bytes = rows.iter().map(cached_bytes).sum();
        let messages: Arc<[Arc<StoredMessage>]> = rows.into_iter().map(Arc::new).collect();
        self.cache_clock += 1;
        p.blocks.insert(
            msg.block,
            Block::Loaded {
                messages,
                bytes,
                used: self.cache_clock,
            },
        );
        self.cache_used += bytes;
        for fetch in waiting {
            self.fetch(fetch, ctx);
        }
        self.evict();
    }
}

impl Handler<OffsetsCommitted> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: OffsetsCommitted, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        self.committing = false;
        if msg.ok {
            for (reader, key, offset) in msg.entries {
                if let Some(p) = self.partitions.get_mut(&key) {
                    p.reader(&reader).committed = offset;
                }
            }
        } else {
            // Positions handed out but not committed go back, for this commit and every one
            // queued after it (they would skip the failed range otherwise).
            for commit in self.pending_commits.drain(..) {
                commit.then.finish(Err(QueueError::Unavailable(
                    "an earlier offset commit failed".into(),
                )));
            }
            for p in self.partitions.values_mut() {
                for r in p.readers.values_mut() {
                    r.position = r.committed;
                }
            }
        }
        self.maybe_commit(ctx);
    }
}

impl Handler<CommitOffset> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: CommitOffset, ctx: &mut Self::Context) {
        let Some(p) = self.partitions.get_mut(&msg.key) else {
            let e = self.unavailable(msg.key, "does not own it");
            let _ = msg.reply.send(Err(e));
            return;
        };
        if msg.offset < 0 || msg.offset > p.end {
            let _ = msg.reply.send(Err(QueueError::invalid(
                "offset",
                format!(
                    "must be between 0 and the partition's end offset {} (the next offset to read)",
                    p.end
                ),
            )));
            return;
        }
        p.reader(&msg.reader).position = msg.offset;
        self.pending_commits.push(PendingCommit {
            reader: msg.reader,
            key: msg.key,
            offset: msg.offset,
            then: AfterCommit::Ack(msg.reply),
        });
        self.maybe_commit(ctx);
    }
}

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
    }
}

impl Handler<Ping> for QueueBroker {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _ctx: &mut Self::Context) -> Self::Result {
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
                p.tail.pop_front();
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
