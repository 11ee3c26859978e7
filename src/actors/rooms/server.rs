//! A room server (seed 003): a full replica of the reservations, one member of the server group.
//!
//! Every server receives every request from the rooms' write log, in number order (a hold-back
//! queue delivers them strictly by number; a number missing for `rooms.gap_patience_ms` is read
//! from `rooms_request_log`), and applies each outcome to its replica. The group elects the
//! highest live id with the bully algorithm and watches it with heartbeats (the shared
//! [`GroupMember`]); only the leader replies, through the [`ReplyBoard`](super::replies), after
//! `rooms.reply_delay_ms`. A server that becomes leader answers every waiting request it has
//! applied (after one election-answer period, so a deposed leader still draining its mailbox is
//! not answered over), and reads go to the leader's replica.
//!
//! Life: at start a server loads a snapshot (reservations and the log's head, in one REPEATABLE
//! READ transaction), then reads the log up to its head; only then is it "ready to receive":
//! it joins elections, answers heartbeats and replies. A server restarted after a panic keeps
//! its replica (the supervisor keeps the actor value) and catches up from the log the same way
//! before it votes or replies again. Killed servers stay down.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use sqlx::PgPool;

use super::RoomsShared;
use crate::actors::clock::now_ms;
use crate::actors::server_group::{Duty, Election, GroupMember};
use crate::actors::supervisor::ActorCell;
use crate::actors::write_log::{Sequenced, Subscribe};
use crate::coordination::sequencer::HoldBack;
use crate::rooms::replica::Replica;
use crate::rooms::{Decided, Outcome, Reservation, store};

/// A heartbeat to the leader: `true` when it is up and taking part in the group.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct RoomHeartbeat;

/// What a client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Rooms,
    Timeslots,
    Days,
    Check(String),
}

/// A read's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReadAnswer {
    Rooms {
        rooms: Vec<String>,
    },
    Timeslots {
        timeslots: Vec<String>,
    },
    Days {
        days: Vec<String>,
    },
    Reservations {
        room: String,
        reservations: Vec<Reservation>,
    },
}

/// A reply and the server that sent it.
#[derive(Debug, Clone)]
pub struct Served<T> {
    pub by: String,
    pub value: T,
}

/// Why a server did not answer a read: ask the leader, or wait until it caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServing {
    NotLeader,
    Behind,
}

/// A read, answered by the leader once it has applied number `min_seq`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Served<ReadAnswer>, NotServing>")]
pub struct Read {
    pub query: Query,
    pub min_seq: u64,
}

/// A retried write the log answered from its first time (not multicast again): the leader
/// answers it on the board. `false` from a server that does not lead.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Reanswer {
    pub request_id: String,
    pub outcome: Outcome,
}

/// One server's view for `GET /rooms/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: u64,
    pub name: String,
    pub alive: bool,
    /// Caught up and taking part in the group.
    pub ready: bool,
    pub leader: Option<u64>,
    pub electing: bool,
    /// The number of the last request applied.
    pub applied: u64,
    pub reservations: usize,
    pub digest: String,
}

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ServerView")]
pub struct DescribeServer;

struct SnapshotLoaded(Result<(Vec<Reservation>, u64), sqlx::Error>);

impl Message for SnapshotLoaded {
    type Result = ();
}

/// Entries read from the log, in number order, and its head when read for a catch-up.
type LogRead = (Vec<(u64, Decided)>, Option<u64>);

struct Fetched(Result<LogRead, sqlx::Error>);

impl Message for Fetched {
    type Result = ();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Loading the snapshot.
    Loading,
    /// Reading the log up to its head.
    CatchingUp,
    Ready,
}

/// Outcomes by request id, the most recent `bound`.
#[derive(Debug, Default)]
struct RecentOutcomes {
    order: VecDeque<String>,
    by_id: HashMap<String, Outcome>,
}

impl RecentOutcomes {
    fn insert(&mut self, id: String, outcome: Outcome, bound: usize) {
        if self.by_id.insert(id.clone(), outcome).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > bound.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

pub struct RoomServer {
    id: u64,
    cell: Arc<ActorCell>,
    pool: PgPool,
    shared: Arc<RoomsShared>,
    group: GroupMember,
    phase: Phase,
    replica: Replica,
    holdback: HoldBack<Decided>,
    recent: RecentOutcomes,
    /// A read of the log is in flight.
    fetching: bool,
    /// Since when (ms) this server leads; `None` when it does not.
    leading_since: Option<u64>,
    /// Waiting requests were answered since it took over.
    took_over: bool,
}

impl RoomServer {
    pub fn new(id: u64, cell: Arc<ActorCell>, pool: PgPool, shared: Arc<RoomsShared>) -> Self {
        let group = GroupMember::new(id, "room-servers", shared.timing());
        Self {
            id,
            cell,
            pool,
            shared,
            group,
            phase: Phase::Loading,
            replica: Replica::default(),
            holdback: HoldBack::new(),
            recent: RecentOutcomes::default(),
            fetching: false,
            leading_since: None,
            took_over: false,
        }
    }

    fn name(&self) -> &str {
        self.cell.name()
    }

    fn applied(&self) -> u64 {
        self.holdback.last_delivered().unwrap_or(0)
    }

    /// Leads, caught up: the one that replies.
    fn serves(&self) -> bool {
        self.phase == Phase::Ready && self.group.leads()
    }

    fn slot_leads(&self, leads: bool) {
        if let Some(slot) = self.shared.servers().iter().find(|s| s.id == self.id) {
            slot.leads.store(leads, Ordering::Release);
        }
    }

    fn load_snapshot(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        ctx.spawn(
            async move { SnapshotLoaded(store::snapshot(&pool).await) }
                .into_actor(self)
                .map(|loaded, _, ctx| ctx.notify(loaded)),
        );
    }

    /// Reads the log after what is applied: up to its head when catching up (`to: None`), or
    /// a gap's range.
    fn fetch(&mut self, to: Option<u64>, ctx: &mut Context<Self>) {
        if self.fetching {
            return;
        }
        self.fetching = true;
        let (pool, from, batch) = (
            self.pool.clone(),
            self.applied() + 1,
            self.shared.settings.catch_up_batch.max(1),
        );
        ctx.spawn(
            async move {
                let read = async {
                    let head = match to {
                        Some(_) => None,
                        None => Some(store::log_head(&pool).await?),
                    };
                    let last = to.or(head).unwrap_or(0);
                    let entries = if last >= from {
                        store::log_entries(&pool, from, last, batch).await?
                    } else {
                        Vec::new()
                    };
                    Ok((entries, head))
                };
                Fetched(read.await)
            }
            .into_actor(self)
            .map(|fetched, act, ctx| {
                act.fetching = false;
                ctx.notify(fetched);
            }),
        );
    }

    /// Applies what the hold-back queue delivered, in number order; the leader answers.
    fn apply(&mut self, delivered: Vec<(u64, Decided)>, ctx: &mut Context<Self>) {
        let bound = self.shared.settings.recent_outcomes;
        for (_, decided) in delivered {
            self.replica.apply(&decided.outcome);
            if self.serves() {
                self.reply(decided.request_id.clone(), decided.outcome.clone(), ctx);
            }
            self.recent
                .insert(decided.request_id, decided.outcome, bound);
        }
    }

    /// Answers `request_id` on the board after the reply delay, if this server still leads.
    fn reply(&self, request_id: String, outcome: Outcome, ctx: &mut Context<Self>) {
        let delay = self.shared.settings.reply_delay_ms;
        if delay == 0 {
            self.shared.board.answer(&request_id, self.name(), &outcome);
            return;
        }
        ctx.run_later(Duration::from_millis(delay), move |act, _| {
            if act.serves() {
                act.shared.board.answer(&request_id, act.name(), &outcome);
            }
        });
    }

    /// Caught up: joins the group.
    fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        tracing::info!(
            server = self.name(),
            applied = self.applied(),
            "The server is ready to receive ({} has applied the requests up to #{})",
            self.name(),
            self.applied()
        );
        let shared = self.shared.clone();
        self.group.start(&*shared);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        if let Some(range) = self
            .holdback
            .missing(now, self.shared.settings.gap_patience_ms)
        {
            tracing::info!(
                server = self.name(),
                from = range.start(),
                to = range.end(),
                "{} reads requests #{}..=#{} from the log",
                self.name(),
                range.start(),
                range.end()
            );
            self.fetch(Some(*range.end()), ctx);
        }
        if self.phase != Phase::Ready {
            return;
        }
        let shared = self.shared.clone();
        let duty = self.group.tick(&*shared);
        let leads = self.group.leads();
        match (leads, self.leading_since) {
            (true, None) => {
                self.leading_since = Some(now);
                self.took_over = false;
            }
            (false, Some(_)) => {
                self.leading_since = None;
                self.slot_leads(false);
            }
            _ => {}
        }
        if let Some(since) = self.leading_since
            && !self.took_over
            && now.saturating_sub(since) >= self.shared.settings.election_answer_ms
        {
            self.take_over();
        }
        if let Duty::Heartbeat { leader, to } = duty {
            let ping = to
                .send(RoomHeartbeat)
                .timeout(self.group.heartbeat_timeout());
            ctx.spawn(ping.into_actor(self).map(move |answer, act, _| {
                let shared = act.shared.clone();
                act.group
                    .heartbeat_answered(leader, answer.unwrap_or(false), &*shared);
            }));
        }
    }

    /// A new leader answers the requests still waiting that it has applied (the rest it
    /// answers as it applies them), then takes the reads.
    fn take_over(&mut self) {
        self.took_over = true;
        let mut answered = 0;
        for request_id in self.shared.board.pending() {
            if let Some(outcome) = self.recent.by_id.get(&request_id)
                && self
                    .shared
                    .board
                    .answer_if_pending(&request_id, self.name(), outcome)
            {
                answered += 1;
            }
        }
        if answered > 0 {
            tracing::info!(
                server = self.name(),
                answered,
                "{} took over as leader and answered {answered} waiting requests",
                self.name()
            );
        }
        self.slot_leads(true);
    }
}

impl Actor for RoomServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            server = self.name(),
            id = self.id,
            "Server {} started",
            self.id
        );
        self.shared
            .log
            .do_send(Subscribe(ctx.address().recipient()));
        if self.holdback.last_delivered().is_none() {
            self.phase = Phase::Loading;
            self.load_snapshot(ctx);
        } else {
            self.phase = Phase::CatchingUp;
            self.fetch(None, ctx);
        }
        ctx.run_interval(self.group.tick_interval(), |act, ctx| act.tick(ctx));
    }
}

impl actix::Supervised for RoomServer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(
            server = self.name(),
            applied = self.applied(),
            "room server {} restarting; it catches up from the log before it votes or replies",
            self.name()
        );
        self.group.reset();
        self.slot_leads(false);
        self.leading_since = None;
        self.fetching = false;
    }
}

crate::supervised_actor_handlers!(RoomServer);

impl Handler<SnapshotLoaded> for RoomServer {
    type Result = ();
    fn handle(&mut self, SnapshotLoaded(result): SnapshotLoaded, ctx: &mut Self::Context) {
        match result {
            Ok((reservations, head)) => {
                self.replica = Replica::from_snapshot(reservations);
                let delivered = self.holdback.anchor(head, now_ms());
                self.apply(delivered, ctx);
                self.phase = Phase::CatchingUp;
                self.fetch(None, ctx);
            }
            Err(e) => {
                tracing::error!(server = self.name(), error = %e, "{} cannot load its snapshot; retrying", self.name());
                ctx.run_later(Duration::from_millis(200), |act, ctx| {
                    act.load_snapshot(ctx)
                });
            }
        }
    }
}

impl Handler<Fetched> for RoomServer {
    type Result = ();
    fn handle(&mut self, Fetched(result): Fetched, ctx: &mut Self::Context) {
        let (entries, head) = match result {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(server = self.name(), error = %e, "{} cannot read the request log; retrying", self.name());
                if self.phase == Phase::CatchingUp {
                    ctx.run_later(Duration::from_millis(200), |act, ctx| act.fetch(None, ctx));
                }
                return;
            }
        };
        let now = now_ms();
        for (seq, decided) in entries {
            let delivered = self.holdback.receive(seq, decided, now);
            self.apply(delivered, ctx);
        }
        if self.phase == Phase::CatchingUp {
            match head {
                Some(head) if self.applied() >= head => self.become_ready(),
                _ => self.fetch(None, ctx),
            }
        }
    }
}

impl Handler<Sequenced<Decided>> for RoomServer {
    type Result = ();
    fn handle(&mut self, entry: Sequenced<Decided>, ctx: &mut Self::Context) {
        let delivered = self.holdback.receive(entry.seq, entry.applied, now_ms());
        self.apply(delivered, ctx);
    }
}

impl Handler<Election> for RoomServer {
    type Result = ();
    fn handle(&mut self, msg: Election, _ctx: &mut Self::Context) {
        // Not caught up: it takes no part (it starts its own election once ready).
        if self.phase != Phase::Ready {
            return;
        }
        let shared = self.shared.clone();
        self.group.on_election(msg, &*shared);
    }
}

impl Handler<RoomHeartbeat> for RoomServer {
    type Result = bool;
    fn handle(&mut self, _: RoomHeartbeat, _ctx: &mut Self::Context) -> bool {
        self.phase == Phase::Ready
    }
}

crate::traced_handler!(RoomServer, Read);

impl Handler<Read> for RoomServer {
    type Result = ResponseFuture<Result<Served<ReadAnswer>, NotServing>>;

    fn handle(&mut self, read: Read, _ctx: &mut Self::Context) -> Self::Result {
        let answer = if !self.serves() {
            Err(NotServing::NotLeader)
        } else if self.applied() < read.min_seq {
            Err(NotServing::Behind)
        } else {
            let catalog = &self.shared.catalog;
            let value = match read.query {
                Query::Rooms => ReadAnswer::Rooms {
                    rooms: catalog.rooms.clone(),
                },
                Query::Timeslots => ReadAnswer::Timeslots {
                    timeslots: catalog.timeslots.clone(),
                },
                Query::Days => ReadAnswer::Days {
                    days: catalog.days.clone(),
                },
                Query::Check(room) => {
                    let mut reservations = self.replica.of_room(&room);
                    reservations.sort_by_key(|r| catalog.order_key(r));
                    ReadAnswer::Reservations { room, reservations }
                }
            };
            Ok(Served {
                by: self.name().to_owned(),
                value,
            })
        };
        let delay = Duration::from_millis(self.shared.settings.reply_delay_ms);
        Box::pin(async move {
            if answer.is_ok() && !delay.is_zero() {
                actix_rt::time::sleep(delay).await;
            }
            answer
        })
    }
}

impl Handler<Reanswer> for RoomServer {
    type Result = bool;
    fn handle(&mut self, msg: Reanswer, _ctx: &mut Self::Context) -> bool {
        if !self.serves() {
            return false;
        }
        // The retry may have been answered already by this leader's take-over.
        let (board, name) = (&self.shared.board, self.name());
        if !board.answer_if_pending(&msg.request_id, name, &msg.outcome) {
            tracing::debug!(request = %msg.request_id, "a retried request was answered already");
        }
        true
    }
}

impl Handler<DescribeServer> for RoomServer {
    type Result = MessageResult<DescribeServer>;
    fn handle(&mut self, _: DescribeServer, _ctx: &mut Self::Context) -> Self::Result {
        let view = self.group.view();
        MessageResult(ServerView {
            id: self.id,
            name: self.name().to_owned(),
            alive: true,
            ready: self.phase == Phase::Ready,
            leader: view.leader,
            electing: view.electing,
            applied: self.applied(),
            reservations: self.replica.len(),
            digest: self.replica.digest(),
        })
    }
}
