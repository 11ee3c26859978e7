//! A front-end server (seed 000's `FrontEndServer`): takes tablet reads and reporter writes from
//! the ingress and serves them through the Database actor.
//!
//! Each front-end caches what tablets read (bounded, by moka). In push mode the database actor
//! sends every front-end an [`Changed`] after each committed write, before the writer is
//! answered; in pull mode the front-end re-reads its entries on an interval. A front-end holds
//! no state that PostgreSQL does not also hold, so a restart loses nothing; it starts with an
//! empty cache and a new election.
//!
//! Front-ends form a server group (seed 003, [`crate::actors::server_group`]): each has a
//! numeric id, they elect the highest live id as leader (bully by default) and send their leader
//! heartbeats. The leader's only duty is the Berkeley clock sync (`frontend_clocks.rs`). Peers
//! are found in the routing table the Dispatcher publishes.
//!
//! Every front-end applies the reporter updates in the one global order (the database actor
//! numbers them), and reports the tablet requests it served to the raffle in batches, off the
//! requests' path; see `frontend_order.rs`.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, ActorResponse, Addr, AsyncContext, Context, Handler, ResponseFuture,
    WrapFuture,
};
use moka::sync::Cache;

use crate::actors::clock::now_ms;
use crate::actors::olympics::database::{Database, LoadUpdates, RecordRequests, ask_database};
use crate::actors::olympics::frontend_clocks::{
    AdjustClock, DescribeMember, FrontendClocks, HeartbeatWithClock, MemberState, ReadClock,
};
use crate::actors::olympics::frontend_order::{FILL_BATCH, RaffleReport, UpdateOrder};
use crate::actors::olympics::messages::{
    Answer, Changed, Command, CommandReply, Query, Read, SequencedUpdate, SharedReply, Write,
};
use crate::actors::olympics::writes::{UpdateLog, submit_update};
use crate::actors::registry::Registry;
use crate::actors::server_group::{Duty, Election, GroupMember, GroupTiming, Members};
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::actors::write_log::Subscribe;
use crate::coordination::berkeley::{ClockReport, SimulatedClock, synchronise};
use crate::olympics::OlympicsError;
use crate::olympics::raffle::Raffle;
use crate::settings::{GroupSettings, RaffleSettings, SupervisionSettings};

/// The other front-ends, as the routing table the Dispatcher publishes lists them.
pub type Peers = Arc<dyn Members<Frontend> + Send + Sync>;

/// How long a gap in the update sequence may last before the missing updates are fetched from
/// the log (a gap is usually two of the database actor's sends racing, and closes at once).
const UPDATE_GAP_PATIENCE_MS: u64 = 100;

pub struct Frontend {
    /// Peers, via the Dispatcher's routing table.
    peers: Peers,
    /// Election and heartbeats (the shared server group), and the clocks only front-ends keep.
    group: GroupMember,
    clocks: FrontendClocks,
    db: Addr<Database>,
    /// Where the reporter's updates go: the one global order.
    updates_log: Addr<UpdateLog>,
    cell: Arc<ActorCell>,
    timeout: Duration,
    /// `None` when caching is off (`olympics.cache_capacity = 0`).
    cache: Option<Cache<Query, Arc<SharedReply>>>,
    /// Bumped by every invalidation. A database read that started before an invalidation may
    /// carry the old value, so its result is only cached if the generation did not move.
    generation: u64,
    /// Pull mode: re-read every cached entry this often.
    pull_interval: Option<Duration>,
    /// A pull refresh is under way; ticks meanwhile are skipped.
    refreshing: bool,
    /// The reporter updates applied, in the global order. Kept across restarts.
    updates: UpdateOrder,
    /// Tablet requests to report to the raffle, and wins to tell. Kept across restarts.
    raffle_report: RaffleReport,
    raffle: Raffle,
    /// How often the served tablet requests are reported to the raffle.
    report_interval: Duration,
    /// This front-end since it was started, for the raffle's once-only counting of batches.
    reporter: String,
}

/// Everything a new front-end needs; the Dispatcher keeps one to start front-ends at runtime.
#[derive(Clone)]
pub struct FrontendFactory {
    pub db: Addr<Database>,
    pub updates_log: Addr<UpdateLog>,
    pub peers: Peers,
    pub timeout: Duration,
    pub cache_capacity: u64,
    pub pull_interval: Option<Duration>,
    pub group: GroupSettings,
    pub supervision: SupervisionSettings,
    pub shutdown: ShutdownSignal,
    pub registry: Registry,
    /// The last update number when the process started: every front-end applies from the next.
    pub update_anchor: u64,
    pub raffle: RaffleSettings,
}

impl FrontendFactory {
    /// Starts front-end `id` under supervision (named `frontend-<id>`) and registers it. Its
    /// clock is `clock`, or one with a skew and drift derived from its id.
    pub fn spawn(
        &self,
        id: u64,
        clock: Option<SimulatedClock>,
    ) -> (Addr<Frontend>, Arc<ActorCell>) {
        let clock = clock.unwrap_or_else(|| FrontendClocks::default_clock(id, &self.group));
        let cell = ActorCell::new(format!("frontend-{id}"));
        let factory = self.clone();
        let actor_cell = cell.clone();
        let addr = start_supervised(
            cell.clone(),
            &self.supervision,
            self.shutdown.clone(),
            move |_| Frontend {
                peers: factory.peers,
                group: GroupMember::new(id, "frontends", GroupTiming::from(&factory.group)),
                clocks: FrontendClocks::new(clock, &factory.group),
                db: factory.db,
                updates_log: factory.updates_log.clone(),
                cell: actor_cell,
                timeout: factory.timeout,
                cache: (factory.cache_capacity > 0).then(|| Cache::new(factory.cache_capacity)),
                generation: 0,
                pull_interval: factory.pull_interval,
                refreshing: false,
                updates: UpdateOrder::anchored_after(factory.update_anchor),
                raffle_report: RaffleReport::new(
                    factory.raffle.max_uncounted_requests,
                    factory.raffle.max_untold_wins,
                ),
                raffle: factory.raffle.raffle(),
                report_interval: factory.raffle.report_interval(),
                // A new name per start: a front-end started again with the same id (or after a
                // process restart) numbers its batches from 1 again.
                reporter: format!("frontend-{id}@{}", uuid::Uuid::new_v4()),
            },
        );
        self.updates_log
            .do_send(Subscribe(addr.clone().recipient()));
        self.registry.add(cell.clone(), addr.clone());
        (addr, cell)
    }
}

impl Frontend {
    /// A read of `tablet` is answered: it counts in the raffle; returns its wins to tell. Past
    /// the bound of uncounted requests the read is refused instead (503).
    fn answered(&mut self, tablet: Option<uuid::Uuid>) -> Result<Vec<u64>, OlympicsError> {
        let Some(tablet) = tablet else {
            return Ok(Vec::new());
        };
        self.raffle_report.served(tablet)?;
        Ok(self.raffle_report.take_wins(tablet))
    }

    fn peers(&self) -> Peers {
        self.peers.clone()
    }

    /// Every tick: missed updates, then the group's election timeouts and the heartbeat to the
    /// leader (or, as leader, the clock sync).
    fn group_tick(&mut self, ctx: &mut Context<Self>) {
        self.fetch_missed_updates(ctx, now_ms());
        let peers = self.peers();
        match self.group.tick(&*peers) {
            Duty::Lead => {
                if self.clocks.sync_due() {
                    self.run_clock_sync(&*peers, ctx);
                }
            }
            Duty::Heartbeat { leader, to } => {
                let heartbeat = HeartbeatWithClock {
                    from: self.group.id(),
                    clock: self.clocks.vector_clock.clone(),
                };
                let ping = to.send(heartbeat).timeout(self.group.heartbeat_timeout());
                ctx.spawn(ping.into_actor(self).map(move |answer, act, _ctx| {
                    if let Ok(leader_clock) = &answer {
                        act.clocks.vector_clock.merge(leader_clock);
                    }
                    let peers = act.peers();
                    act.group
                        .heartbeat_answered(leader, answer.is_ok(), &*peers);
                }));
            }
            Duty::Wait => {}
        }
    }

    /// Leader only: one Berkeley round (seed 000). Polls every member's clock, noting each round
    /// trip and its own clock at each reply, then tells each member how far to move. This is
    /// all the front-end group's leader does as leader.
    fn run_clock_sync(
        &mut self,
        peers: &(impl Members<Frontend> + ?Sized),
        ctx: &mut Context<Self>,
    ) {
        let id = self.group.id();
        let max_deviation = self.clocks.max_deviation_ms;
        self.clocks.sync_in_flight = true;
        self.clocks.next_sync = now_ms() + self.clocks.sync_interval_ms;
        // The master's clock cannot move during its own round, so a copy reads the same.
        let master_clock = self.clocks.clock;
        let timeout = self.group.heartbeat_timeout();
        let polls = peers
            .members()
            .into_iter()
            .filter(|(member, _)| *member != id)
            .map(|(member, addr)| async move {
                let sent = now_ms();
                let reported = addr.send(ReadClock).timeout(timeout).await.ok()?;
                let received = now_ms();
                Some(ClockReport {
                    member,
                    reported_ms: reported,
                    rtt_ms: received - sent,
                    master_at_receipt_ms: master_clock.read(received),
                })
            });
        ctx.spawn(futures_util::future::join_all(polls).into_actor(self).map(
            move |replies, act, _ctx| {
                act.clocks.sync_in_flight = false;
                let reports: Vec<ClockReport> = replies.into_iter().flatten().collect();
                let outcome = match synchronise(id, &reports, max_deviation) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::warn!(member = id, error = %e, "clock sync round by {id} failed");
                        return;
                    }
                };
                let peers = act.peers();
                for (&member, &delta) in &outcome.adjustments {
                    if member == id {
                        act.clocks.clock.adjust(delta);
                    } else if let Some(peer) = peers.member(member) {
                        peer.do_send(AdjustClock { delta_ms: delta });
                    }
                }
                tracing::debug!(member = id, clocks = reports.len() + 1, outliers = ?outcome.outliers, "clock sync round by leader {id}: adjustments {:?}", outcome.adjustments);
            },
        ));
    }

    /// Applies updates in the global order; in push mode, invalidates what they make stale.
    fn take_update(&mut self, update: SequencedUpdate) {
        let applied = self.updates.receive(update, now_ms());
        for update in applied {
            tracing::debug!(
                frontend = self.cell.name(),
                seq = update.seq,
                "update #{} ({} {}, via {}) applied at {}",
                update.seq,
                update.kind,
                update.subject,
                update.entered_via,
                self.cell.name()
            );
        }
    }

    fn invalidate(&mut self, query: &Query) {
        if self.pull_interval.is_some() {
            return; // pull mode: entries are re-read on the interval instead
        }
        self.generation += 1;
        if let Some(cache) = &self.cache {
            cache.invalidate(query);
            tracing::debug!(
                frontend = self.cell.name(),
                ?query,
                "cache entry invalidated at {}",
                self.cell.name()
            );
        }
    }

    /// A gap in the update sequence that did not close by itself: fetch the missing updates
    /// from the log (a send never reached this front-end).
    fn fetch_missed_updates(&mut self, ctx: &mut Context<Self>, now: u64) {
        if self.updates.filling {
            return;
        }
        let Some(missing) = self.updates.to_fetch(now, UPDATE_GAP_PATIENCE_MS) else {
            return;
        };
        self.load_from_log(ctx, *missing.start(), *missing.end(), false);
    }

    /// At every start: whatever was committed after this front-end's place in the order (it
    /// was added later, or a crash cost it an update) is loaded from the log at once, rather
    /// than when the next update reveals the gap.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        if self.updates.filling {
            return;
        }
        let first = self.updates.next_seq();
        self.load_from_log(ctx, first, first + FILL_BATCH - 1, true);
    }

    /// Loads updates `first ..= last` from the log and applies them; `more`: a full batch is
    /// followed by the next one.
    fn load_from_log(&mut self, ctx: &mut Context<Self>, first: u64, last: u64, more: bool) {
        self.updates.filling = true;
        let load = ask_database(self.db.clone(), LoadUpdates { first, last }, self.timeout);
        ctx.spawn(load.into_actor(self).map(move |loaded, act, ctx| {
            act.updates.filling = false;
            match loaded {
                Ok(updates) => {
                    let full = updates.len() as u64 == last - first + 1;
                    if !updates.is_empty() {
                        tracing::info!(
                            frontend = act.cell.name(),
                            first,
                            last,
                            found = updates.len(),
                            "{} loaded updates #{first}..#{last} from the log",
                            act.cell.name()
                        );
                    }
                    for update in updates {
                        // Its invalidation was missed too.
                        act.invalidate(&update.cache_key());
                        act.take_update(update);
                    }
                    if more && full {
                        act.catch_up(ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(frontend = act.cell.name(), error = %e, "{} could not load updates from the log", act.cell.name());
                }
            }
        }));
    }

    /// Reports the tablet requests served since the last report to the raffle.
    fn report_to_raffle(&mut self, ctx: &mut Context<Self>) {
        let Some((batch, tablets)) = self.raffle_report.next_batch() else {
            return;
        };
        let report = RecordRequests {
            reporter: self.reporter.clone(),
            batch,
            frontend: self.cell.name().to_owned(),
            tablets,
            raffle: self.raffle,
        };
        let ask = ask_database(self.db.clone(), report, self.timeout);
        ctx.spawn(ask.into_actor(self).map(move |counted, act, _ctx| match counted {
            Ok(wins) => act
                .raffle_report
                .counted(batch, wins.into_iter().map(|w| (w.tablet, w.position))),
            Err(e) => {
                tracing::warn!(frontend = act.cell.name(), batch, error = %e, "{} could not report raffle batch {batch}; will retry", act.cell.name());
                act.raffle_report.report_failed();
            }
        }));
    }

    /// Pull mode: re-reads every cached entry from the database.
    fn refresh_cache(&mut self, ctx: &mut Context<Self>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if self.refreshing {
            return;
        }
        let keys: Vec<Query> = cache.iter().map(|(key, _)| (*key).clone()).collect();
        if keys.is_empty() {
            return;
        }
        self.refreshing = true;
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
                            if cache.get(&key).is_none_or(|cached| cached.reply != reply) {
                                changed += 1;
                            }
                            cache.insert(key, SharedReply::new(reply));
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
        if let Some(interval) = self.pull_interval {
            ctx.run_interval(interval, |act, ctx| act.refresh_cache(ctx));
        }
        ctx.run_interval(self.report_interval, |act, ctx| act.report_to_raffle(ctx));
        tracing::info!(
            actor = self.cell.name(),
            member = self.group.id(),
            "Server {} started",
            self.group.id()
        );
        let peers = self.peers();
        self.group.start(&*peers);
        ctx.run_interval(self.group.tick_interval(), |act, ctx| act.group_tick(ctx));
        self.catch_up(ctx);
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
        self.clocks.restarted();
        // Their futures died with the old context; the applied updates and the raffle's
        // requests are kept (the actor value survives), and a report under way goes again.
        self.updates.filling = false;
        self.raffle_report.report_failed();
    }
}

crate::supervised_actor_handlers!(Frontend);
crate::traced_handler!(Frontend, Read);
crate::traced_handler!(Frontend, Command);

impl Handler<Read> for Frontend {
    /// A hit is answered within the handler; a miss when the database answers. Either way the
    /// request counts in the raffle only as its answer is sent, so a request cut off by a
    /// crash (and retried elsewhere by the router) counts once.
    type Result = ActorResponse<Self, Result<Answer, OlympicsError>>;

    fn handle(&mut self, Read { query, tablet }: Read, _ctx: &mut Self::Context) -> Self::Result {
        self.clocks.vector_clock.increment(self.group.id());
        if let Some(reply) = self.cache.as_ref().and_then(|c| c.get(&query)) {
            crate::telemetry::metrics::cache_lookup("olympics", true);
            tracing::debug!(
                frontend = self.cell.name(),
                ?query,
                "cache hit at {}",
                self.cell.name()
            );
            return ActorResponse::reply(self.answered(tablet).map(|raffle_wins| Answer {
                reply,
                from_cache: true,
                raffle_wins,
            }));
        }
        if self.cache.is_some() {
            crate::telemetry::metrics::cache_lookup("olympics", false);
        }
        tracing::debug!(
            frontend = self.cell.name(),
            ?query,
            "cache miss at {}",
            self.cell.name()
        );
        let generation = self.generation;
        let fetch = ask_database(self.db.clone(), query.clone(), self.timeout);
        let fetched = fetch.into_actor(self).map(move |fetched, act, _ctx| {
            let reply = SharedReply::new(fetched?);
            if let Some(cache) = &act.cache
                && act.generation == generation
            {
                cache.insert(query, reply.clone());
            }
            Ok(Answer {
                reply,
                from_cache: false,
                raffle_wins: act.answered(tablet)?,
            })
        });
        ActorResponse::r#async(crate::actors::traced::in_current_span(fetched))
    }
}

impl Handler<Changed> for Frontend {
    type Result = ();

    /// Invalidates at once (invalidations commute, and the writer's OK is queued right behind
    /// this message), and applies the update in the global order.
    fn handle(&mut self, changed: Changed, _ctx: &mut Self::Context) {
        self.invalidate(&changed.applied.cache_key());
        let (kind, subject) = changed.applied.kind_and_subject();
        self.take_update(SequencedUpdate {
            seq: changed.seq as i64,
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            entered_via: changed.entered_via,
        });
    }
}

/// The updates a front-end applied, most recent last (`GET /cluster/members/{id}/updates`).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Vec<SequencedUpdate>")]
pub struct RecentUpdates;

impl Handler<RecentUpdates> for Frontend {
    type Result = actix::MessageResult<RecentUpdates>;

    fn handle(&mut self, _: RecentUpdates, _ctx: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.updates.recent())
    }
}

impl Handler<Election> for Frontend {
    type Result = ();

    fn handle(&mut self, msg: Election, _ctx: &mut Self::Context) {
        let peers = self.peers();
        self.group.on_election(msg, &*peers);
    }
}

impl Handler<HeartbeatWithClock> for Frontend {
    type Result = actix::MessageResult<HeartbeatWithClock>;

    fn handle(&mut self, msg: HeartbeatWithClock, _ctx: &mut Self::Context) -> Self::Result {
        tracing::trace!(member = self.group.id(), from = msg.from, "heartbeat");
        self.clocks.vector_clock.merge(&msg.clock);
        actix::MessageResult(self.clocks.vector_clock.clone())
    }
}

impl Handler<ReadClock> for Frontend {
    type Result = i64;

    fn handle(&mut self, _: ReadClock, _ctx: &mut Self::Context) -> i64 {
        self.clocks.clock.read(now_ms())
    }
}

impl Handler<AdjustClock> for Frontend {
    type Result = ();

    fn handle(&mut self, msg: AdjustClock, _ctx: &mut Self::Context) {
        self.clocks.clock.adjust(msg.delta_ms);
    }
}

impl Handler<DescribeMember> for Frontend {
    type Result = actix::MessageResult<DescribeMember>;

    fn handle(&mut self, _: DescribeMember, _ctx: &mut Self::Context) -> Self::Result {
        actix::MessageResult(MemberState {
            group: self.group.view(),
            clock_offset_ms: self.clocks.offset_ms(),
            vector_clock: self.clocks.vector_clock.clone(),
            updates: self.updates.summary(),
            raffle_uncounted: self.raffle_report.uncounted(),
            raffle_untold_wins: self.raffle_report.untold(),
        })
    }
}

impl Handler<Command> for Frontend {
    type Result = ResponseFuture<Result<CommandReply, OlympicsError>>;

    fn handle(&mut self, command: Command, _ctx: &mut Self::Context) -> Self::Result {
        self.clocks.vector_clock.increment(self.group.id());
        let write = Write {
            command,
            entered_via: self.cell.name().to_owned(),
        };
        let log = self.updates_log.clone();
        let timeout = self.timeout;
        Box::pin(async move { submit_update(&log, write, timeout).await })
    }
}
