//! The path of every bookstore write, shared by the order servers (buys) and the front end
//! (restocks, cost changes): number and apply it through the store's write log (one
//! transaction on `bookstore_stock` per group of writes), drop the book from the front end's
//! cache, then wait until every live catalog replica has applied that number. Only then is the
//! writer answered, so any surviving replica holds every acknowledged write.
//!
//! A replica that does not apply the number within `ack_timeout` is taken out of reads at once
//! and asked to resync from the log; the write is acknowledged without it. A dead replica is
//! not waited for: it replays the log when it is back, before it serves again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::Addr;
use futures_util::future::join_all;

use crate::actors::bookstore::messages::ReplicaSlot;
use crate::actors::write_log::{Sequenced, Submit, WriteError, WriteLog};
use crate::bookstore::BookstoreError;
use crate::bookstore::cache::BookCache;
use crate::bookstore::writes::{StoreEntry, StoreRefusal, StoreWrite};

pub type StoreLog = WriteLog<StoreWrite>;

/// How often a waiting write looks again at a replica that has not acknowledged yet (it also
/// wakes at once when the replica applies something).
const ACK_RECHECK: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct WritePath {
    pub log: Addr<StoreLog>,
    pub replicas: Arc<Vec<Arc<ReplicaSlot>>>,
    pub cache: Arc<BookCache>,
    pub ack_timeout: Duration,
    /// How long the log may take to answer.
    pub timeout: Duration,
}

impl WritePath {
    /// Commits `write`; answered once every live replica applied it.
    pub async fn commit(&self, write: StoreWrite) -> Result<Sequenced<StoreEntry>, BookstoreError> {
        let book = write.book;
        let submit = crate::actors::traced::Traced::new(Submit(write));
        let sequenced = match self.log.send(submit).timeout(self.timeout).await {
            Ok(Ok(sequenced)) => sequenced,
            Ok(Err(error)) => return Err(refusal(error)),
            Err(_) => {
                return Err(BookstoreError::Unavailable(
                    "the write log did not answer".into(),
                ));
            }
        };
        self.cache.invalidate(book, sequenced.seq);
        self.await_replicas(sequenced.seq).await;
        Ok(sequenced)
    }

    async fn await_replicas(&self, seq: u64) {
        join_all(
            self.replicas
                .iter()
                .map(|slot| await_replica(slot, seq, self.ack_timeout)),
        )
        .await;
    }
}

async fn await_replica(slot: &ReplicaSlot, seq: u64, ack_timeout: Duration) {
    let deadline = Instant::now() + ack_timeout;
    let mut applied = slot.applied.subscribe();
    loop {
        if *applied.borrow_and_update() >= seq || !slot.cell.is_alive() {
            return;
        }
        if Instant::now() >= deadline {
            slot.serving.store(false, Ordering::Release);
            slot.resync_requested.store(true, Ordering::Release);
            tracing::warn!(
                replica = slot.name(),
                seq,
                applied = slot.last_applied(),
                "{} did not apply write #{seq} within {} ms; it leaves reads until it resyncs",
                slot.name(),
                ack_timeout.as_millis()
            );
            return;
        }
        let _ = tokio::time::timeout(ACK_RECHECK, applied.changed()).await;
    }
}

fn refusal(error: WriteError<StoreRefusal>) -> BookstoreError {
    match error {
        WriteError::Rejected(StoreRefusal::UnknownBook(id)) => {
            BookstoreError::UnknownBook(id.to_string())
        }
        WriteError::Rejected(StoreRefusal::OutOfStock(id)) => BookstoreError::OutOfStock(id),
        WriteError::IdempotencyConflict(key) => {
            BookstoreError::IdempotencyConflict(public_key(&key).to_owned())
        }
        WriteError::Overloaded(waiting) => {
            BookstoreError::Unavailable(format!("{waiting} writes are waiting"))
        }
        WriteError::Storage => BookstoreError::Storage,
    }
}

/// The prefix the front end puts on clients' keys, to keep them apart from its own.
pub const CLIENT_KEY_PREFIX: &str = "client:";

/// A key as its client sent it.
pub fn public_key(key: &str) -> &str {
    key.strip_prefix(CLIENT_KEY_PREFIX).unwrap_or(key)
}
