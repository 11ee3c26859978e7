//! A front-end server (seed 000's `FrontEndServer`): takes tablet reads and reporter writes from
//! the ingress and serves them through the Database actor.
//!
//! Each front-end caches what tablets read (bounded, by moka). In push mode the database actor
//! sends every front-end an [`Changed`] after each committed write, before the writer is
//! answered; in pull mode the front-end re-reads its entries on an interval. A front-end holds
//! no state that PostgreSQL does not also hold, so a restart loses nothing; it starts with an
//! empty cache and a new election.
//!
//! Front-ends form a group (seed 003): each has a numeric id, they elect the highest live id as
//! leader with the bully algorithm and ping their leader; see `group.rs`. Peers are found in the
//! routing table the Dispatcher publishes.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MailboxError, Message,
    ResponseActFuture, ResponseFuture, WrapFuture,
};
use moka::sync::Cache;

use arc_swap::ArcSwap;

use crate::actors::database::{Database, Watch};
use crate::actors::group::{DescribeMember, Election, GroupMember, Heartbeat, now_ms};
use crate::actors::messages::{Answer, Changed, Command, CommandReply, Query, QueryReply, Read};
use crate::actors::registry::Registry;
use crate::actors::router::{FrontendSlot, RoutingTable};
use crate::actors::supervisor::ActorCell;
use crate::actors::supervisor::{ShutdownSignal, start_supervised};
use crate::coordination::bully::Outgoing;
use crate::olympics::OlympicsError;
use crate::settings::{GroupSettings, SupervisionSettings};

/// How often a front-end retries the Database actor while that one is restarting.
const DATABASE_RETRIES: u32 = 20;
const DATABASE_RETRY_PAUSE: Duration = Duration::from_millis(25);

pub struct Frontend {
    /// Peers, via the Dispatcher's routing table.
    table: Arc<ArcSwap<RoutingTable>>,
    group: GroupMember,
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

/// Everything a new front-end needs; the Dispatcher keeps one to start front-ends at runtime.
#[derive(Clone)]
pub struct FrontendFactory {
    pub db: Addr<Database>,
    pub table: Arc<ArcSwap<RoutingTable>>,
    pub timeout: Duration,
    pub cache_capacity: u64,
    pub pull_interval: Option<Duration>,
    pub group: GroupSettings,
    pub supervision: SupervisionSettings,
    pub shutdown: ShutdownSignal,
    pub registry: Registry,
}

impl FrontendFactory {
    /// Starts front-end `id` under supervision (named `frontend-<id>`) and registers it.
    pub fn spawn(&self, id: u64) -> Arc<FrontendSlot> {
        let cell = ActorCell::new(format!("frontend-{id}"));
        let factory = self.clone();
        let actor_cell = cell.clone();
        let addr = start_supervised(
            cell.clone(),
            &self.supervision,
            self.shutdown.clone(),
            move |_| Frontend {
                table: factory.table,
                group: GroupMember::new(id, factory.group),
                db: factory.db,
                cell: actor_cell,
                timeout: factory.timeout,
                cache: (factory.cache_capacity > 0).then(|| Cache::new(factory.cache_capacity)),
                generation: 0,
                pull_interval: factory.pull_interval,
                refreshing: false,
            },
        );
        if self.pull_interval.is_none() {
            self.db.do_send(Watch(addr.clone().recipient()));
        }
        self.registry.add(cell.clone(), addr.clone());
        Arc::new(FrontendSlot {
            id,
            addr,
            cell,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

impl Frontend {
    /// Feeds a bully event's actions to the peers and logs what changed.
    fn after_election_step(&mut self, leader_before: Option<u64>, actions: Vec<Outgoing>) {
        let id = self.group.id();
        let table = self.table.load();
        for action in actions {
            match action {
                Outgoing::Broadcast { msg } => {
                    for peer in table.frontends().iter().filter(|p| p.id != id) {
                        peer.addr.do_send(Election { from: id, msg });
                    }
                }
                Outgoing::Send { to, msg } => {
                    if let Some(peer) = table.frontend(to) {
                        peer.addr.do_send(Election { from: id, msg });
                    }
                }
            }
        }
        let leader = self.group.bully.leader();
        if leader != leader_before
            && !self.group.bully.is_electing()
            && let Some(leader) = leader
        {
            tracing::info!(
                member = id,
                leader,
                "Election completed. Group Leader: {leader} (seen by {id})"
            );
        }
    }

    fn start_election(&mut self, initiator: u64) {
        let before = self.group.bully.leader();
        let actions = self.group.bully.start_election(now_ms());
        if !actions.is_empty() {
            tracing::info!(
                member = self.group.id(),
                initiator,
                "{} is running an election initiated by {initiator}",
                self.group.id()
            );
        }
        self.after_election_step(before, actions);
    }

    /// Every tick: election timeouts, then the heartbeat to the leader.
    fn group_tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let before = self.group.bully.leader();
        let actions = self.group.bully.on_timeout(now);
        self.after_election_step(before, actions);

        let id = self.group.id();
        let Some(leader) = self.group.bully.leader() else {
            if !self.group.bully.is_electing() {
                self.start_election(id);
            }
            return;
        };
        if leader == id {
            self.group.leader_watch = None;
            return;
        }
        let in_flight = self.group.heartbeat_in_flight;
        let watch = self.group.watch(leader, now);
        if watch.is_suspect(now) {
            self.leader_failed(leader);
            return;
        }
        if in_flight || now < watch.next_ping_at() {
            return;
        }
        watch.ping_sent(now);
        let Some(peer) = self.table.load().frontend(leader).cloned() else {
            self.leader_failed(leader);
            return;
        };
        self.group.heartbeat_in_flight = true;
        let ping = peer
            .addr
            .send(Heartbeat { from: id })
            .timeout(self.group.heartbeat_timeout());
        ctx.spawn(ping.into_actor(self).map(move |answer, act, _ctx| {
            act.group.heartbeat_in_flight = false;
            match answer {
                Ok(_) => {
                    if let Some((watched, monitor)) = act.group.leader_watch.as_mut()
                        && *watched == leader
                    {
                        monitor.record(now_ms());
                    }
                }
                Err(_) => act.leader_failed(leader),
            }
        }));
    }

    fn leader_failed(&mut self, leader: u64) {
        let id = self.group.id();
        if self.group.bully.leader() != Some(leader) {
            return; // a stale answer about a former leader
        }
        tracing::warn!(
            member = id,
            leader,
            "Heartbeat to group leader {leader} failed (from {id})"
        );
        self.group.leader_watch = None;
        let before = self.group.bully.leader();
        let actions = self.group.bully.leader_suspected(leader, now_ms());
        if !actions.is_empty() {
            tracing::info!(
                member = id,
                initiator = id,
                "{id} is running an election initiated by {id}"
            );
        }
        self.after_election_step(before, actions);
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
        tracing::info!(
            member = self.group.id(),
            "Server {} started",
            self.group.id()
        );
        // Seed 003: a server that starts runs an election (a lower one learns it is not leader).
        self.start_election(self.group.id());
        ctx.run_interval(self.group.tick(), |act, ctx| act.group_tick(ctx));
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
        self.group.reset();
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

impl Handler<Election> for Frontend {
    type Result = ();

    fn handle(&mut self, msg: Election, _ctx: &mut Self::Context) {
        let id = self.group.id();
        let before = self.group.bully.leader();
        let was_electing = self.group.bully.is_electing();
        let actions = self.group.bully.on_message(msg.from, msg.msg, now_ms());
        if !was_electing && self.group.bully.is_electing() {
            tracing::info!(
                member = id,
                initiator = msg.from,
                "{id} is running an election initiated by {}",
                msg.from
            );
        }
        self.after_election_step(before, actions);
    }
}

impl Handler<Heartbeat> for Frontend {
    type Result = u64;

    fn handle(&mut self, msg: Heartbeat, _ctx: &mut Self::Context) -> u64 {
        tracing::trace!(member = self.group.id(), from = msg.from, "heartbeat");
        self.group.id()
    }
}

impl Handler<DescribeMember> for Frontend {
    type Result = actix::MessageResult<DescribeMember>;

    fn handle(&mut self, _: DescribeMember, _ctx: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.group.state())
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
