//! The load loops shared by every system: a client is anything that can take one step (send one
//! message or one batch and await its acknowledgement, or take one batch), and these functions
//! run many clients at once, as separate tokio tasks, and time them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::Barrier;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// One client of a queue, with its own connection, producer or consumer.
pub trait Client: Send + 'static {
    /// Sends one message or one batch and awaits its acknowledgement, or takes one batch.
    /// Returns how many messages that moved; 0 from a reader means the queue is empty.
    fn step(&mut self) -> BoxFuture<'_, Result<usize>>;
}

pub type Clients = Vec<Box<dyn Client>>;

/// What a timed run moved, and in how long.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub messages: u64,
    pub elapsed: Duration,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// Every client steps for `warmup` (not counted), then all wait for each other and step for
/// `run` (counted). The clock runs from the first client's start to the last one's end, so the
/// steps still in flight at the deadline are counted and timed.
pub async fn timed(clients: Clients, warmup: Duration, run: Duration) -> Result<Measured> {
    let barrier = Arc::new(Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let warm_end = Instant::now() + warmup;
                let warmed = async {
                    while Instant::now() < warm_end {
                        client.step().await?;
                    }
                    Ok::<_, Error>(())
                }
                .await;
                // Everyone reaches the barrier, even after an error, so that no one waits forever.
                barrier.wait().await;
                warmed?;
                let start = Instant::now();
                let deadline = start + run;
                let mut messages = 0u64;
                while Instant::now() < deadline {
                    messages += client.step().await? as u64;
                }
                Ok::<_, Error>((start, Instant::now(), messages))
            })
        })
        .collect();
    gather(tasks).await
}

/// Readers first take `warm_steps` steps each (not counted), then all wait for each other and
/// read until the queue is empty for them. Returns the timed part, and every message read,
/// warm-up included, so that the caller can check that nothing was lost or read twice.
pub async fn drain(clients: Clients, warm_steps: usize) -> Result<(Measured, u64)> {
    let warm_read = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (barrier, warm_read) = (barrier.clone(), warm_read.clone());
            tokio::spawn(async move {
                let warmed = async {
                    for _ in 0..warm_steps {
                        warm_read.fetch_add(client.step().await?, Ordering::Relaxed);
                    }
                    Ok::<_, Error>(())
                }
                .await;
                barrier.wait().await;
                warmed?;
                let start = Instant::now();
                let mut messages = 0u64;
                loop {
                    match client.step().await? {
                        0 => break,
                        n => messages += n as u64,
                    }
                }
                Ok::<_, Error>((start, Instant::now(), messages))
            })
        })
        .collect();
    let measured = gather(tasks).await?;
    let total = measured.messages + warm_read.load(Ordering::Relaxed) as u64;
    Ok((measured, total))
}

/// Writers step until `total` messages are acknowledged (rounded up to whole steps); not timed.
pub async fn fill(clients: Clients, total: usize, per_step: usize) -> Result<()> {
    let claimed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let claimed = claimed.clone();
            tokio::spawn(async move {
                while claimed.fetch_add(per_step, Ordering::Relaxed) < total {
                    client.step().await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<(Instant, Instant, u64)>>>,
) -> Result<Measured> {
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    let mut messages = 0;
    let mut failure = None;
    for task in tasks {
        match task.await? {
            Ok((start, end, n)) => {
                first_start = Some(first_start.map_or(start, |s| s.min(start)));
                last_end = Some(last_end.map_or(end, |e| e.max(end)));
                messages += n;
            }
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    let (Some(start), Some(end)) = (first_start, last_end) else {
        return Err("no clients".into());
    };
    Ok(Measured {
        messages,
        elapsed: end - start,
    })
}
