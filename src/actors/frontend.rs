//! A front-end server (seed 000's `FrontEndServer`): takes tablet reads and reporter writes from
//! the ingress and serves them through the Database actor.
//!
//! Each front-end caches what tablets read (bounded, by moka). In push mode the database actor
//! sends every front-end an [`Changed`] after each committed write, before the writer is
//! answered; in pull mode the front-end re-reads its entries on an interval. A front-end holds no state that PostgreSQL does not also hold, so a
//! restart loses nothing; it starts with an empty cache.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MailboxError, Message,
    ResponseActFuture, ResponseFuture, WrapFuture,
};
use moka::sync::Cache;

use crate::actors::database::Database;
use crate::actors::messages::{Answer, Changed, Command, CommandReply, Query, QueryReply, Read};
use crate::actors::supervisor::ActorCell;
use crate::olympics::OlympicsError;

/// How often a front-end retries the Database actor while that one is restarting.
const DATABASE_RETRIES: u32 = 20;
const DATABASE_RETRY_PAUSE: Duration = Duration::from_millis(25);

pub struct Frontend {
    db: Addr<Database>,
    cell: Arc<ActorCell>,
    timeout: Duration,
    /// `None` when caching is off (`olympics.cache_capacity = 0`).
    cache: Option<Cache<Query, QueryReply>>,
    /// Bumped by every invalidation. A database read that started before an invalidation may
    /// carry the old value, so its result is only cached if the generation did not move.
    generation: u64,
    /// Pull mode: re-read every cached entry this often.
    pull_interval: Option<Duration>,
    /// A pull refresh is under way; ticks meanwhile are skipped.
    refreshing: bool,
}

impl Frontend {
    pub fn new(
        db: Addr<Database>,
        cell: Arc<ActorCell>,
        timeout: Duration,
        cache_capacity: u64,
        pull_interval: Option<Duration>,
    ) -> Self {
        Self {
            db,
            cell,
            timeout,
            cache: (cache_capacity > 0).then(|| Cache::new(cache_capacity)),
            generation: 0,
            pull_interval,
            refreshing: false,
        }
    }

    /// Pull mode: re-reads every cached entry from the database.
    fn refresh_cache(&mut self, ctx: &mut Context<Self>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if self.refreshing || cache.iter().next().is_none() {
            return;
        }
        self.refreshing = true;
        let keys: Vec<Query> = cache.iter().map(|(key, _)| (*key).clone()).collect();
        let (db, timeout) = (self.db.clone(), self.timeout);
        let reads = keys.into_iter().map(move |key| {
            let db = db.clone();
            async move {
                let fresh = ask_database(db, key.clone(), timeout).await;
                (key, fresh)
            }
        });
        ctx.spawn(futures_util::future::join_all(reads).into_actor(self).map(
            move |results, act, _ctx| {
                act.refreshing = false;
                let mut changed = 0;
                for (key, fresh) in results {
                    match fresh {
                        Ok(reply) => {
                            if cache.get(&key).as_ref() != Some(&reply) {
                                changed += 1;
                            }
                            cache.insert(key, reply);
                        }
                        // Better no entry than one we could not check.
                        Err(_) => cache.invalidate(&key),
                    }
                }
                tracing::debug!(
                    frontend = act.cell.name(),
                    changed,
                    "pull refresh at {}: {changed} entries changed",
                    act.cell.name()
                );
            },
        ));
    }
}

impl Actor for Frontend {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            "front-end server {} started",
            self.cell.name()
        );
        if let Some(interval) = self.pull_interval {
            ctx.run_interval(interval, |act, ctx| act.refresh_cache(ctx));
        }
    }
}

impl actix::Supervised for Frontend {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            "front-end server {} restarting with an empty cache",
            self.cell.name()
        );
        // The crash may have cost an invalidation: start cold.
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
        self.generation += 1;
        self.refreshing = false;
    }
}

crate::supervised_actor_handlers!(Frontend);

impl Handler<Read> for Frontend {
    type Result = ResponseActFuture<Self, Result<Answer, OlympicsError>>;

    fn handle(&mut self, Read(query): Read, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(reply) = self.cache.as_ref().and_then(|c| c.get(&query)) {
            tracing::debug!(
                frontend = self.cell.name(),
                ?query,
                "cache hit at {}",
                self.cell.name()
            );
            return Box::pin(actix::fut::ready(Ok(Answer {
                reply,
                from_cache: true,
            })));
        }
        tracing::debug!(
            frontend = self.cell.name(),
            ?query,
            "cache miss at {}",
            self.cell.name()
        );
        let generation = self.generation;
        let fetch = ask_database(self.db.clone(), query.clone(), self.timeout);
        Box::pin(fetch.into_actor(self).map(move |fetched, act, _ctx| {
            let reply = fetched?;
            if let Some(cache) = &act.cache
                && act.generation == generation
            {
                cache.insert(query, reply.clone());
            }
            Ok(Answer {
                reply,
                from_cache: false,
            })
        }))
    }
}

impl Handler<Changed> for Frontend {
    type Result = ();

    fn handle(&mut self, Changed(reply): Changed, _ctx: &mut Self::Context) {
        let query = reply.cache_key();
        self.generation += 1;
        if let Some(cache) = &self.cache {
            cache.invalidate(&query);
            tracing::debug!(
                frontend = self.cell.name(),
                ?query,
                "cache entry invalidated at {}",
                self.cell.name()
            );
        }
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
