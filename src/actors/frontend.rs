//! A front-end server (seed 000's `FrontEndServer`): takes tablet reads and reporter writes from
//! the ingress and serves them through the Database actor.
//!
//! A front-end holds no state that PostgreSQL does not also hold, so a restart loses nothing.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MailboxError, Message, ResponseFuture};

use crate::actors::database::Database;
use crate::actors::messages::{Command, CommandReply, Crash, Query, QueryReply, crash_actor};
use crate::actors::supervisor::ActorCell;
use crate::olympics::OlympicsError;

/// How often a front-end retries the Database actor while that one is restarting.
const DATABASE_RETRIES: u32 = 20;
const DATABASE_RETRY_PAUSE: Duration = Duration::from_millis(25);

pub struct Frontend {
    db: Addr<Database>,
    cell: Arc<ActorCell>,
    timeout: Duration,
}

impl Frontend {
    pub fn new(db: Addr<Database>, cell: Arc<ActorCell>, timeout: Duration) -> Self {
        Self { db, cell, timeout }
    }
}

impl Actor for Frontend {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            "front-end server {} started",
            self.cell.name()
        );
    }
}

impl actix::Supervised for Frontend {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            "front-end server {} restarting",
            self.cell.name()
        );
    }
}

impl Handler<Crash> for Frontend {
    type Result = ();
    fn handle(&mut self, msg: Crash, ctx: &mut Self::Context) {
        crash_actor(&self.cell, msg, ctx);
    }
}

impl Handler<Query> for Frontend {
    type Result = ResponseFuture<Result<QueryReply, OlympicsError>>;

    fn handle(&mut self, query: Query, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(ask_database(self.db.clone(), query, self.timeout))
    }
}

impl Handler<Command> for Frontend {
    type Result = ResponseFuture<Result<CommandReply, OlympicsError>>;

    fn handle(&mut self, command: Command, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(ask_database(self.db.clone(), command, self.timeout))
    }
}

/// Sends to the Database actor, retrying while it restarts. Retrying is safe: reads are reads,
/// scores are set (not added) and medal awards carry an idempotency key.
async fn ask_database<M, R>(
    db: Addr<Database>,
    msg: M,
    timeout: Duration,
) -> Result<R, OlympicsError>
where
    M: Message<Result = Result<R, OlympicsError>> + Clone + Send + 'static,
    R: Send + 'static,
    Database: actix::Handler<M>,
{
    let mut attempt = 0;
    loop {
        match db.send(msg.clone()).timeout(timeout).await {
            Ok(reply) => return reply,
            Err(MailboxError::Closed) if attempt < DATABASE_RETRIES => {
                attempt += 1;
                tracing::warn!(attempt, "database actor unavailable; retrying");
                actix_rt::time::sleep(DATABASE_RETRY_PAUSE).await;
            }
            Err(e) => {
                return Err(OlympicsError::Unavailable(format!("database actor: {e}")));
            }
        }
    }
}
