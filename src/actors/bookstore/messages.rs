//! The messages the bookstore's actors share, and what each server publishes about itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use actix::Message;
use tokio::sync::watch;

use crate::actors::supervisor::ActorCell;
use crate::bookstore::replica_store::ReplicaStore;
use crate::bookstore::{Book, BookstoreError, Order};

/// Which back-end server a heartbeat comes from: its index among the replicas or order servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackEnd {
    Replica(usize),
    OrderServer(usize),
}

/// "I am alive", from a back-end server to the front end, every heartbeat interval.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Heartbeat(pub BackEnd);

/// A read a catalog replica answers from its own tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogRead {
    Lookup(i64),
    /// Every book, or one topic's (search).
    List(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogAnswer {
    Book(Option<Book>),
    Books(Vec<Book>),
}

/// Why a replica did not answer a read; the front end tries another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaRefusal {
    /// It is catching up from the log.
    NotServing,
    Storage,
}

impl Message for CatalogRead {
    type Result = Result<CatalogAnswer, ReplicaRefusal>;
}

/// Buy one copy of `book` (order servers). `key` makes retries count once.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Sold, BookstoreError>")]
pub struct PlaceOrder {
    pub book: i64,
    pub key: String,
}

/// A buy's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sold {
    pub order: Order,
    /// Its number in the write log.
    pub seq: u64,
    /// A retry answered from the log: the order was placed once, earlier.
    pub replayed: bool,
}

/// Read a recorded order (order servers).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Order, BookstoreError>")]
pub struct ReadOrder(pub i64);

/// What one catalog replica shows the others: shared by the replica (which sets `serving` and
/// `applied`), the front end (which sets `heartbeat_ok` and counts reads in flight) and the
/// write path (which waits on `applied`, and takes a late replica out of reads).
#[derive(Debug)]
pub struct ReplicaSlot {
    pub cell: Arc<ActorCell>,
    pub store: ReplicaStore,
    /// Caught up and answering reads (false while it resyncs).
    pub serving: AtomicBool,
    /// Set by a write it did not apply in time: resync at the next tick.
    pub resync_requested: AtomicBool,
    /// The last write number applied (and committed) to its tables.
    pub applied: watch::Sender<u64>,
    /// Its heartbeats reach the front end.
    pub heartbeat_ok: AtomicBool,
    pub in_flight: AtomicUsize,
    /// Resyncs started (the first one at start included).
    pub resyncs: AtomicU64,
}

impl ReplicaSlot {
    pub fn new(name: String, store: ReplicaStore) -> Arc<Self> {
        Arc::new(Self {
            cell: ActorCell::new(name),
            store,
            serving: AtomicBool::new(false),
            resync_requested: AtomicBool::new(false),
            applied: watch::Sender::new(0),
            heartbeat_ok: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            resyncs: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        self.cell.name()
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Alive, heard from, and caught up: may answer reads.
    pub fn can_read(&self) -> bool {
        self.cell.is_alive() && self.heartbeat_ok.load(Ordering::Acquire) && self.is_serving()
    }

    pub fn last_applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Records `last` as applied, never moving back.
    pub fn applied_up_to(&self, last: u64) {
        self.applied.send_if_modified(|v| {
            let moved = last > *v;
            if moved {
                *v = last;
            }
            moved
        });
    }
}

/// What one order server shows the front end.
#[derive(Debug)]
pub struct OrderSlot {
    pub cell: Arc<ActorCell>,
    pub heartbeat_ok: AtomicBool,
    pub in_flight: AtomicUsize,
}

impl OrderSlot {
    pub fn new(name: String) -> Arc<Self> {
        Arc::new(Self {
            cell: ActorCell::new(name),
            heartbeat_ok: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
        })
    }

    pub fn is_up(&self) -> bool {
        self.cell.is_alive() && self.heartbeat_ok.load(Ordering::Acquire)
    }
}
