//! The broker's reads: a fetch is served from the partition's tail, from the read cache, or by
//! loading the block that holds it from PostgreSQL (once, for every reader waiting on it); the
//! cache is bounded by bytes and evicts the least recently used blocks.

use std::sync::Arc;

use actix::prelude::*;

use super::partition::{Block, CACHE_BLOCK, cached_bytes};
use super::tasks::Task;
use super::writes::{AfterCommit, PendingCommit};
use super::{Fetch, Generation, QueueBroker};
use crate::queue::store;
use crate::queue::{PartitionKey, QueueError, StoredMessage};

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct BlockRead {
    pub(super) generation: Generation,
    pub(super) key: PartitionKey,
    pub(super) block: i64,
    pub(super) result: Result<Vec<StoredMessage>, QueueError>,
}

impl QueueBroker {
    pub(super) fn fetch(&mut self, fetch: Fetch, ctx: &mut Context<Self>) {
        self.cache_clock += 1;
        let clock = self.cache_clock;
        let Some(p) = self.partitions.get_mut(&fetch.key) else {
            let e = self.unavailable(fetch.key, "does not own it");
            let _ = fetch.reply.send(Err(e));
            return;
        };
        let (start, end) = (p.start, p.end);
        let from = match fetch.at {
            Some(at) => at,
            None => p.reader(&fetch.reader).position,
        }
        .max(start);
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
                    crate::telemetry::metrics::cache_lookup("queue", false);
                    self.read_block(fetch, from, ctx);
                    return;
                }
            },
        };
        crate::telemetry::metrics::cache_lookup("queue", true);
        let Some(last) = messages.last() else {
            let _ = fetch.reply.send(Ok(messages));
            return;
        };
        let to = last.offset + 1;
        if fetch.advance && fetch.at.is_none() {
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
    pub(super) fn read_block(&mut self, fetch: Fetch, from: i64, ctx: &mut Context<Self>) {
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
        let hooks = self.hooks.clone();
        self.spawn_task(ctx, Task::BlockRead { key, block }, async move {
            hooks.count_block_read();
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
    pub(super) fn evict(&mut self) {
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
}

crate::traced_handler!(QueueBroker, Fetch);

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
                    let _ = fetch.reply.send(Err(e.in_context("read failed")));
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
