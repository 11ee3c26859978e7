//! One partition's state inside its broker: where it starts and ends, the tail of recently
//! committed messages, the read cache of older blocks, and every reader's position.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Fetch;
use crate::queue::retention::Retention;
use crate::queue::store::PartitionRow;
use crate::queue::{Reader, StoredMessage};

/// A consumer's (or group's) place in one partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReaderPosition {
    /// The next offset to hand out (ahead of `committed` while a commit is in flight).
    pub(super) position: i64,
    /// The next offset as committed in PostgreSQL.
    pub(super) committed: i64,
}

pub(super) struct PartitionState {
    pub(super) topic: Arc<str>,
    pub(super) start: i64,
    /// One past the last committed message.
    pub(super) end: i64,
    /// The next offset to assign (`end` plus what a flush in flight carries).
    pub(super) next: i64,
    pub(super) retention: Retention,
    pub(super) tail: VecDeque<Arc<StoredMessage>>,
    /// What the tail holds, as [`cached_bytes`] counts it.
    pub(super) tail_bytes: usize,
    /// Blocks of older messages read from PostgreSQL, by block index (`offset / CACHE_BLOCK`).
    pub(super) blocks: HashMap<i64, Block>,
    pub(super) readers: HashMap<Reader, ReaderPosition>,
}

/// Offsets per block of the read cache.
pub(super) const CACHE_BLOCK: i64 = 1024;

/// A block of the read cache: like a page cache, older messages read once from PostgreSQL
/// serve every reader that comes by. Committed messages never change, and nothing below the
/// partition's start is served (fetches begin at `start` or later), so a block is never stale;
/// it lives in the partition's state, which a recovery rebuilds from scratch.
pub(super) enum Block {
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
pub(super) fn cached_bytes(m: &StoredMessage) -> usize {
    2 * m.message.len() + 192
}

impl PartitionState {
    pub(super) fn new(row: PartitionRow) -> Self {
        Self {
            topic: row.topic.into(),
            start: row.start_offset,
            end: row.next_offset,
            next: row.next_offset,
            retention: row.retention,
            tail: VecDeque::new(),
            tail_bytes: 0,
            blocks: HashMap::new(),
            readers: HashMap::new(),
        }
    }

    /// Appends a just committed message to the tail (which restarts after a gap), then drops
    /// the oldest while the tail holds more than `max_messages` or `max_bytes`.
    pub(super) fn push_tail(&mut self, m: StoredMessage, max_messages: usize, max_bytes: usize) {
        if self
            .tail
            .back()
            .is_some_and(|last| last.offset + 1 != m.offset)
        {
            self.tail.clear();
            self.tail_bytes = 0;
        }
        self.tail_bytes += cached_bytes(&m);
        self.tail.push_back(Arc::new(m));
        self.trim_tail(max_messages, max_bytes);
    }

    pub(super) fn trim_tail(&mut self, max_messages: usize, max_bytes: usize) {
        while self.tail.len() > max_messages || self.tail_bytes > max_bytes {
            self.pop_tail_front();
        }
    }

    pub(super) fn pop_tail_front(&mut self) {
        if let Some(m) = self.tail.pop_front() {
            self.tail_bytes -= cached_bytes(&m);
        }
    }

    pub(super) fn reader(&mut self, reader: &Reader) -> &mut ReaderPosition {
        let start = self.start;
        self.readers
            .entry(reader.clone())
            .or_insert(ReaderPosition {
                position: start,
                committed: start,
            })
    }

    /// Messages `[from, to)` if the tail holds them all.
    pub(super) fn tail_range(&self, from: i64, to: i64) -> Option<Vec<Arc<StoredMessage>>> {
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
    pub(super) fn cached_range(
        &mut self,
        from: i64,
        to: i64,
        clock: u64,
    ) -> Option<Vec<Arc<StoredMessage>>> {
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
