//! The offset committer shared by every broker (see its type's comment).

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::queue::QueueError;
use crate::queue::store::{self, OffsetRows};

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
    pub async fn commit(self: &Arc<Self>, rows: OffsetRows) -> Result<(), QueueError> {
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
        /// If this task is dropped or panics, the batches waiting are answered (their senders
        /// see the channel closed: 503) and the next batch starts another.
        struct Stopped<'a>(&'a OffsetCommitter, bool);
        impl Drop for Stopped<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.running = false;
                    state.waiting.clear();
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
