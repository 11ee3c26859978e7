//! The broker's detached tasks (flush, offset commit, block read, retention) report their end
//! to the broker, panic included. Each sets a flag or leaves a placeholder when it starts
//! (`flushing`, `committing`, a `Block::Loading`, `retention_running`) that only its report
//! clears: a task that died without one would leave the broker stuck for good while it still
//! answers health checks. A panic is caught here and becomes a [`TaskPanicked`] message.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use actix::prelude::*;
use futures_util::FutureExt;

use super::partition::Block;
use super::{Generation, QueueBroker};
use crate::queue::hooks::BrokerTask;
use crate::queue::{PartitionKey, QueueError};

/// Which task panicked, with what the broker needs to clean up after it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Task {
    Flush,
    OffsetCommit,
    BlockRead { key: PartitionKey, block: i64 },
    Retention,
}

impl Task {
    pub(super) fn kind(self) -> BrokerTask {
        match self {
            Task::Flush => BrokerTask::Flush,
            Task::OffsetCommit => BrokerTask::OffsetCommit,
            Task::BlockRead { .. } => BrokerTask::BlockRead,
            Task::Retention => BrokerTask::Retention,
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct TaskPanicked {
    generation: Generation,
    task: Task,
    panic: String,
}

impl QueueBroker {
    /// Runs `work` on the arbiter, off the broker's mailbox; if it panics, the broker hears of it.
    /// (A task that ends normally reports with a message of its own.)
    pub(super) fn spawn_task(
        &self,
        ctx: &Context<Self>,
        task: Task,
        work: impl Future<Output = ()> + 'static,
    ) {
        let (addr, generation, hooks) = (ctx.address(), self.generation, self.hooks.clone());
        actix_rt::spawn(async move {
            let work = async move {
                hooks.maybe_panic(task.kind());
                work.await
            };
            if let Err(payload) = AssertUnwindSafe(work).catch_unwind().await {
                addr.do_send(TaskPanicked {
                    generation,
                    task,
                    panic: panic_message(payload.as_ref()),
                });
            }
        });
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

impl Handler<TaskPanicked> for QueueBroker {
    type Result = ();
    fn handle(&mut self, msg: TaskPanicked, ctx: &mut Self::Context) {
        let name = self.cell.name().to_owned();
        tracing::error!(broker = %name, task = ?msg.task, panic = %msg.panic, "a {:?} task of broker {name} panicked: {}", msg.task.kind(), msg.panic);
        if let Task::Retention = msg.task {
            // Like its normal report: the next round runs.
            self.retention_running = false;
            return;
        }
        if msg.generation != self.generation {
            // A life ago: the recovery since has rebuilt everything it touched.
            return;
        }
        match msg.task {
            Task::Flush | Task::OffsetCommit => {
                // Its requests saw their reply dropped (503). What reached PostgreSQL is
                // unknown: learn it before assigning offsets or positions again.
                self.recover(ctx);
            }
            Task::BlockRead { key, block } => {
                let Some(p) = self.partitions.get_mut(&key) else {
                    return;
                };
                if let Some(Block::Loading(waiting)) = p.blocks.remove(&block) {
                    for fetch in waiting {
                        let _ = fetch.reply.send(Err(QueueError::Unavailable(format!(
                            "{name} failed to read partition {}/{}; retry",
                            p.topic, key.partition
                        ))));
                    }
                }
            }
            Task::Retention => {}
        }
    }
}
