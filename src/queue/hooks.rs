//! Hooks for tests: faults to inject into the brokers, and counters a test waits on instead of
//! sleeping. Never set from configuration (`QueueSettings::hooks` is skipped by serde): a
//! production run has nothing armed, and the counters cost one atomic operation each.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The detached tasks a broker spawns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerTask {
    /// A group commit of appends.
    Flush,
    /// A group commit of reader offsets.
    OffsetCommit,
    /// A range scan that fills a block of the read cache.
    BlockRead,
    /// A retention round.
    Retention,
}

/// Shared by clones: a test keeps one and puts a clone in the settings of the app it starts.
#[derive(Debug, Clone, Default)]
pub struct TestHooks(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Each armed entry makes the next task of that kind panic, once.
    panics: Mutex<Vec<BrokerTask>>,
    /// Skip the check that messages hold no NUL, so that PostgreSQL itself refuses them.
    let_unstorable_through: AtomicBool,
    /// Dequeues parked in a long poll right now.
    parked_polls: AtomicUsize,
    /// Range scans the brokers ran to fill read-cache blocks.
    block_reads: AtomicU64,
    /// While true, a broker stops taking messages from its mailbox at its next append…
    mailboxes_held: Held,
    /// …and flushes wait before their statement.
    flushes_held: Held,
}

/// A switch tasks wait on.
#[derive(Debug)]
struct Held(watch::Sender<bool>);

impl Default for Held {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Held {
    fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    fn released(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|held| !held).await;
        }
    }
}

impl TestHooks {
    /// The next task of this kind panics.
    pub fn panic_next(&self, task: BrokerTask) {
        self.0
            .panics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Faults armed and not yet fired.
    pub fn armed(&self) -> usize {
        self.0
            .panics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Called by a task as it starts: panics if a test armed it.
    pub fn maybe_panic(&self, task: BrokerTask) {
        let armed = {
            let mut panics = self.0.panics.lock().unwrap_or_else(|p| p.into_inner());
            panics
                .iter()
                .position(|t| *t == task)
                .map(|i| panics.remove(i))
        };
        if armed.is_some() {
            panic!("test hook: a {task:?} task panics");
        }
    }

    pub fn let_unstorable_through(&self, yes: bool) {
        self.0.let_unstorable_through.store(yes, Ordering::Release);
    }

    pub fn lets_unstorable_through(&self) -> bool {
        self.0.let_unstorable_through.load(Ordering::Acquire)
    }

    /// Counts a dequeue as parked until the guard drops.
    pub fn parked(&self) -> ParkedPoll {
        self.0.parked_polls.fetch_add(1, Ordering::AcqRel);
        ParkedPoll(self.0.clone())
    }

    pub fn parked_polls(&self) -> usize {
        self.0.parked_polls.load(Ordering::Acquire)
    }

    /// Brokers stop reading their mailboxes (from their next append on) until released.
    pub fn hold_mailboxes(&self, held: bool) {
        self.0.mailboxes_held.0.send_replace(held);
    }

    pub fn mailboxes_held(&self) -> bool {
        self.0.mailboxes_held.is_set()
    }

    pub fn mailboxes_released(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.0.mailboxes_held.released()
    }

    /// Flushes wait before committing until released.
    pub fn hold_flushes(&self, held: bool) {
        self.0.flushes_held.0.send_replace(held);
    }

    pub fn flushes_released(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.0.flushes_held.released()
    }

    pub fn count_block_read(&self) {
        self.0.block_reads.fetch_add(1, Ordering::AcqRel);
    }

    pub fn block_reads(&self) -> u64 {
        self.0.block_reads.load(Ordering::Acquire)
    }
}

/// A long poll counted in [`TestHooks::parked_polls`] while it lives.
pub struct ParkedPoll(Arc<Inner>);

impl Drop for ParkedPoll {
    fn drop(&mut self) {
        self.0.parked_polls.fetch_sub(1, Ordering::AcqRel);
    }
}
