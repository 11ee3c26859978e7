//! The messages every supervised actor answers, whatever its service: [`Crash`] (a deliberate
//! panic or stop, from the admin API and tests) and [`Stop`] (for good, at shutdown), with the
//! macro that implements both for an actor that has a `cell: Arc<ActorCell>`.

use std::time::Duration;

use actix::{Actor, ActorContext, Context, Message};
use serde::Deserialize;

use crate::actors::supervisor::ActorCell;

/// How a deliberate crash happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CrashMode {
    /// A panic inside the actor's handler.
    Panic,
    /// The actor stops itself (`ctx.stop()`).
    Stop,
}

/// Crash the receiving actor on purpose (the admin API, and tests).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash {
    pub mode: CrashMode,
    /// How long the supervisor keeps the actor down before restarting it.
    pub stay_down: Duration,
}

/// Stop the receiving actor for good: sent to every actor at shutdown, after the shutdown signal
/// is set, so its supervisor does not restart it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Implements `Handler<Crash>` and `Handler<Stop>` for an actor with a `cell: Arc<ActorCell>`.
#[macro_export]
macro_rules! supervised_actor_handlers {
    ($actor:ty) => {
        impl actix::Handler<$crate::actors::lifecycle::Crash> for $actor {
            type Result = ();
            fn handle(&mut self, msg: $crate::actors::lifecycle::Crash, ctx: &mut Self::Context) {
                $crate::actors::lifecycle::crash_actor(&self.cell, msg, ctx);
            }
        }
        impl actix::Handler<$crate::actors::lifecycle::Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actors::lifecycle::Stop, ctx: &mut Self::Context) {
                tracing::info!(
                    actor = self.cell.name(),
                    "actor {} stops for shutdown",
                    self.cell.name()
                );
                actix::ActorContext::stop(ctx);
            }
        }
    };
}

/// The one body of every actor's `Handler<Crash>`.
pub fn crash_actor<A>(cell: &ActorCell, crash: Crash, ctx: &mut Context<A>)
where
    A: Actor<Context = Context<A>>,
{
    tracing::warn!(actor = cell.name(), mode = ?crash.mode, "actor {} crashes on request", cell.name());
    cell.stay_down_for(crash.stay_down);
    match crash.mode {
        CrashMode::Panic => panic!("{} crashed on purpose", cell.name()),
        CrashMode::Stop => ctx.stop(),
    }
}
