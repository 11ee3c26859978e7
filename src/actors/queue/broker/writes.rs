//! The broker's writes: appends wait in the pending list and go in one flush (one statement,
//! one commit) with everything that arrived while the previous flush was in flight; reader
//! offsets are grouped the same way through the shared offset committer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::oneshot;

use super::group_commit::{self, Span};
use super::tasks::Task;
use super::{Append, AppendReply, CommitOffset, FetchReply, Generation, QueueBroker};
use crate::queue::store::{AppendRows, OffsetRows};
use crate::queue::{PartitionKey, QueueError, Reader, StoredMessage};

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Flushed {
    pub(super) generation: Generation,
    pub(super) ok: bool,
    pub(super) rows: AppendRows,
    pub(super) produced_at: DateTime<Utc>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct OffsetsCommitted {
    pub(super) generation: Generation,
    pub(super) ok: bool,
    pub(super) entries: Vec<(Reader, PartitionKey, i64)>,
}

/// What a message waiting for its commit is accounted for (payload, its row's other columns).
fn pending_bytes(message: &str) -> usize {
    message.len() + 64
}

/// Bytes of a flush in flight, counted in the broker's `in_flight_bytes` while this lives.
pub(super) struct InFlight(Arc<AtomicUsize>, usize);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>, bytes: usize) -> Self {
        counter.fetch_add(bytes, Ordering::AcqRel);
        Self(counter.clone(), bytes)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

pub(super) struct PendingAppend {
    pub(super) key: PartitionKey,
    pub(super) messages: Vec<String>,
    pub(super) reply: AppendReply,
}

pub(super) enum AfterCommit {
    Deliver(Vec<Arc<StoredMessage>>, FetchReply),
    Ack(oneshot::Sender<Result<(), QueueError>>),
}

impl AfterCommit {
    pub(super) fn finish(self, result: Result<(), QueueError>) {
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

pub(super) struct PendingCommit {
    pub(super) reader: Reader,
    pub(super) key: PartitionKey,
    pub(super) offset: i64,
    pub(super) then: AfterCommit,
}

impl QueueBroker {
    /// Starts a flush of everything pending unless one is in flight.
    pub(super) fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.recovering || self.pending.is_empty() {
            return;
        }
        let Ok(guard) = self.write_lock.clone().try_lock_owned() else {
            // A flush of a past life still runs; recovery is waiting for it.
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        self.pending_messages = 0;
        // Counted until the flush's task ends, however it ends.
        let in_flight = InFlight::new(
            &self.in_flight_bytes,
            std::mem::take(&mut self.pending_bytes),
        );
        let total: usize = pending.iter().map(|p| p.messages.len()).sum();
        let mut rows = AppendRows {
            topic_ids: Vec::with_capacity(total),
            partitions: Vec::with_capacity(total),
            offsets: Vec::with_capacity(total),
            payloads: Vec::with_capacity(total),
        };
        let mut spans = Vec::with_capacity(pending.len());
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
            spans.push(Span {
                key: append.key,
                first,
                start: rows.offsets.len(),
                len: append.messages.len(),
            });
            for (i, message) in append.messages.into_iter().enumerate() {
                rows.topic_ids.push(append.key.topic_id);
                rows.partitions.push(append.key.partition);
                rows.offsets.push(first + i as i64);
                rows.payloads.push(message);
            }
            replies.push(append.reply);
        }
        if replies.is_empty() {
            return;
        }
        self.flushing = true;
        let (pool, addr, generation) = (self.pool.clone(), ctx.address(), self.generation);
        let name = self.cell.name().to_owned();
        let held = self.hooks.flushes_released();
        self.spawn_task(ctx, Task::Flush, async move {
            let (_guard, _in_flight) = (guard, in_flight);
            held.await;
            let produced_at = Utc::now().trunc_subsecs(6);
            let began = std::time::Instant::now();
            let messages = rows.offsets.len();
            let outcome = group_commit::commit(&pool, rows, &spans, produced_at, &name).await;
            tracing::debug!(broker = %name, messages, requests = replies.len(), micros = began.elapsed().as_micros() as u64, "flush committed");
            // Told before anyone is acknowledged: a read sent after an acknowledgement is
            // handled after this (mailboxes are FIFO) and sees the messages.
            addr.do_send(Flushed {
                generation,
                ok: outcome.known,
                rows: outcome.committed,
                produced_at,
            });
            for (reply, answer) in replies.into_iter().zip(outcome.answers) {
                let _ = reply.send(answer);
            }
        });
    }

    /// Starts an offset commit of everything pending unless one is in flight.
    pub(super) fn maybe_commit(&mut self, ctx: &mut Context<Self>) {
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
        self.spawn_task(ctx, Task::OffsetCommit, async move {
            let _guard = guard;
            let result = committer.commit(rows).await;
            if let Err(e) = &result {
                tracing::error!(broker = %name, error = ?e, "broker {name} failed to commit offsets; those reads get 503");
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
                        .map_err(|e| e.in_context("offset commit failed")),
                );
            }
        });
    }
}

crate::traced_handler!(QueueBroker, Append);
crate::traced_handler!(QueueBroker, CommitOffset);

impl Handler<Append> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) {
        if self.hooks.mailboxes_held() {
            // A test fills the mailbox: nothing more is taken from it until released.
            ctx.wait(self.hooks.mailboxes_released().into_actor(self));
        }
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
        let bytes: usize = msg.messages.iter().map(|m| pending_bytes(m)).sum();
        let held = self.pending_bytes + self.in_flight_bytes.load(Ordering::Acquire);
        if held > 0 && held + bytes > self.limits.max_pending_bytes {
            let e = self.unavailable(msg.key, "has too many bytes waiting for their commit");
            let _ = msg.reply.send(Err(e));
            return;
        }
        self.pending_messages += msg.messages.len();
        self.pending_bytes += bytes;
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
        let (tail_cap, share) = (self.limits.tail_messages, self.tail_share());
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
                let m = StoredMessage::new(partition, offset, message, msg.produced_at);
                p.push_tail(m, tail_cap, share);
            }
            if touched.last() != Some(&key) {
                touched.push(key);
            }
        }
        // Every offset this flush assigned is settled: what was not committed (a request
        // PostgreSQL refused) is assigned again by the next flush.
        for p in self.partitions.values_mut() {
            p.next = p.end;
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
