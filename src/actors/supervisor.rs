//! Supervision: every actor of the tree runs inside a `SupervisedActor` future that restarts it
//! when it stops *or panics*.
//!
//! Why not `actix::Supervisor`: it restarts an actor that stops itself, but a panic in a handler
//! unwinds through the supervisor's own future (the actor's context future *is* the task), so the
//! task dies with the actor. The arbiter thread and every other actor carry on, and every later
//! `send` to the dead actor fails with `MailboxError::Closed`.
//!
//! What we do instead: poll the actor's `ContextFut` inside `catch_unwind`. On a panic or a stop
//! we call `ContextFut::restart` (public since actix 0.13.2), which keeps the *same mailbox and
//! `Addr`*, clears the actor's pending futures and calls `Supervised::restarting`; `started` runs
//! again on the next poll, and actors reload their state from PostgreSQL there. Messages queued in
//! the mailbox survive the crash; only the message being handled is lost, and its sender sees a
//! `MailboxError` (the ingress retries elsewhere or answers 503).
//!
//! Requires `panic = "unwind"` (set in `Cargo.toml` for every profile).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::dev::ContextFut;
use actix::{Actor, Addr, AsyncContext, Context};
use serde::Serialize;

use crate::settings::SupervisionSettings;

/// What the outside world knows about one supervised actor: shared between the supervisor, the
/// actor, the router and the admin API.
#[derive(Debug)]
pub struct ActorCell {
    name: String,
    alive: AtomicBool,
    restarts: AtomicU64,
    /// Set by a deliberate crash that asks to stay down for a while (failover tests).
    stay_down_ms: AtomicU64,
    /// Set before a crash that must not be followed by a restart (a front-end killed on purpose).
    killed: AtomicBool,
}

impl ActorCell {
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            alive: AtomicBool::new(true),
            restarts: AtomicU64::new(0),
            stay_down_ms: AtomicU64::new(0),
            killed: AtomicBool::new(false),
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }
    /// Ask the supervisor to wait this long before the next restart.
    pub fn stay_down_for(&self, duration: Duration) {
        self.stay_down_ms
            .store(duration.as_millis() as u64, Ordering::Release);
    }
    /// The next crash or stop is final: the supervisor lets the actor die.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
    }
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
    fn take_stay_down(&self) -> Duration {
        Duration::from_millis(self.stay_down_ms.swap(0, Ordering::AcqRel))
    }
    pub fn status(&self) -> ActorStatus {
        ActorStatus {
            name: self.name.clone(),
            alive: self.is_alive(),
            restarts: self.restarts(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ActorStatus {
    pub name: String,
    pub alive: bool,
    pub restarts: u64,
}

/// How often an actor may crash before the supervisor waits between restarts. Plain logic, no
/// actix: a sliding window of recent restarts; past the limit, the delay doubles up to a cap.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max_restarts: usize,
    window: Duration,
    max_backoff: Duration,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(settings: &SupervisionSettings) -> Self {
        Self {
            max_restarts: settings.max_restarts as usize,
            window: Duration::from_millis(settings.window_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            recent: VecDeque::new(),
        }
    }

    /// Records a crash at `now` and says how long to wait before restarting.
    pub fn delay_after_crash(&mut self, now: Instant) -> Duration {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let excess = self.recent.len().saturating_sub(self.max_restarts);
        if excess == 0 {
            return Duration::ZERO;
        }
        let doubled = Duration::from_millis(10).saturating_mul(1u32 << excess.min(16));
        doubled.min(self.max_backoff)
    }
}

/// A switch the tree flips on shutdown so that actors stopping then are not restarted.
#[derive(Debug, Clone, Default)]
pub struct ShutdownSignal(Arc<AtomicBool>);

impl ShutdownSignal {
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Starts `make`'s actor on the current arbiter under supervision and returns its address, which
/// stays valid across restarts.
pub fn start_supervised<A, F>(
    cell: Arc<ActorCell>,
    settings: &SupervisionSettings,
    shutdown: ShutdownSignal,
    make: F,
) -> Addr<A>
where
    A: Actor<Context = Context<A>> + actix::Supervised,
    F: FnOnce(&mut Context<A>) -> A,
{
    let mut ctx = Context::new();
    let actor = make(&mut ctx);
    let addr = ctx.address();
    let fut = ctx.into_future(actor);
    actix_rt::spawn(SupervisedActor {
        fut,
        cell,
        budget: RestartBudget::new(settings),
        shutdown,
        waiting: None,
    });
    addr
}

/// The future that owns an actor and restarts it. See the module comment.
struct SupervisedActor<A>
where
    A: Actor<Context = Context<A>> + actix::Supervised,
{
    fut: ContextFut<A, Context<A>>,
    cell: Arc<ActorCell>,
    budget: RestartBudget,
    shutdown: ShutdownSignal,
    /// Set while the actor is down and waiting for its restart.
    waiting: Option<Pin<Box<actix_rt::time::Sleep>>>,
}

enum Exit {
    Stopped,
    Panicked(String),
}

impl<A> SupervisedActor<A>
where
    A: Actor<Context = Context<A>> + actix::Supervised,
{
    /// Restarts the actor now. `false` when nobody holds its address any more.
    fn restart(&mut self) -> bool {
        if !self.fut.restart() {
            tracing::info!(actor = %self.cell.name, "actor has no more addresses; not restarting");
            return false;
        }
        let n = self.cell.restarts.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::counter!(crate::telemetry::metrics::ACTOR_RESTARTS, "actor" => self.cell.name.clone())
            .increment(1);
        self.cell.alive.store(true, Ordering::Release);
        tracing::warn!(actor = %self.cell.name, restarts = n, "supervisor restarted actor {}", self.cell.name);
        true
    }
}

impl<A> Future for SupervisedActor<A>
where
    A: Actor<Context = Context<A>> + actix::Supervised,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = this.waiting.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.waiting = None;
                if !this.restart() {
                    return Poll::Ready(());
                }
            }

            let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
            let exit = match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => Exit::Stopped,
                Err(payload) => Exit::Panicked(panic_message(payload.as_ref())),
            };
            this.cell.alive.store(false, Ordering::Release);
            if this.cell.is_killed() {
                tracing::warn!(actor = %this.cell.name, "actor {} was killed; not restarting it", this.cell.name);
                return Poll::Ready(());
            }
            if this.shutdown.is_set() {
                tracing::info!(actor = %this.cell.name, "actor {} stopped during shutdown", this.cell.name);
                return Poll::Ready(());
            }
            match &exit {
                Exit::Stopped => {
                    tracing::error!(actor = %this.cell.name, "actor {} stopped unexpectedly", this.cell.name)
                }
                Exit::Panicked(message) => {
                    tracing::error!(actor = %this.cell.name, panic = %message, "actor {} panicked", this.cell.name)
                }
            }
            let delay = this
                .budget
                .delay_after_crash(Instant::now())
                .max(this.cell.take_stay_down());
            if delay.is_zero() {
                if !this.restart() {
                    return Poll::Ready(());
                }
            } else {
                tracing::warn!(actor = %this.cell.name, delay_ms = delay.as_millis() as u64, "actor {} stays down before its restart", this.cell.name);
                this.waiting = Some(Box::pin(actix_rt::time::sleep(delay)));
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> RestartBudget {
        RestartBudget::new(&SupervisionSettings {
            max_restarts: 2,
            window_ms: 1_000,
            max_backoff_ms: 100,
        })
    }

    #[test]
    fn restarts_within_budget_are_immediate() {
        let mut b = budget();
        let t = Instant::now();
        assert_eq!(b.delay_after_crash(t), Duration::ZERO);
        assert_eq!(b.delay_after_crash(t), Duration::ZERO);
    }

    #[test]
    fn a_crash_loop_backs_off_up_to_the_cap() {
        let mut b = budget();
        let t = Instant::now();
        b.delay_after_crash(t);
        b.delay_after_crash(t);
        assert_eq!(b.delay_after_crash(t), Duration::from_millis(20));
        assert_eq!(b.delay_after_crash(t), Duration::from_millis(40));
        for _ in 0..10 {
            b.delay_after_crash(t);
        }
        assert_eq!(b.delay_after_crash(t), Duration::from_millis(100));
    }

    #[test]
    fn old_crashes_leave_the_window() {
        let mut b = budget();
        let t = Instant::now();
        b.delay_after_crash(t);
        b.delay_after_crash(t);
        let later = t + Duration::from_millis(1_500);
        assert_eq!(b.delay_after_crash(later), Duration::ZERO);
    }
}
