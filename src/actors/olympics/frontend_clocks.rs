//! The clocks of the front-end group, which only this group switches on: each front-end's own
//! (simulated, skewed, drifting) clock, kept in step by the group leader with the Berkeley
//! algorithm (seed 000), and the vector clocks counting the requests each front-end handled
//! (seed 001), merged through the heartbeats. The algorithms are in
//! [`crate::coordination::berkeley`] and [`crate::coordination::vector_clock`]; the election
//! and heartbeats are the shared [`crate::actors::server_group`].

use actix::{ActorFutureExt, AsyncContext, Context, Message, WrapFuture};
use serde::Serialize;

use crate::actors::clock::now_ms;
use crate::actors::olympics::frontend::Frontend;
use crate::actors::olympics::frontend_order::UpdateSummary;
use crate::actors::server_group::{GroupView, Members};
use crate::coordination::berkeley::{ClockReport, SimulatedClock, synchronise};
use crate::coordination::vector_clock::VectorClock;
use crate::settings::GroupSettings;

/// "Are you alive?", from a front-end to its leader, carrying the member's vector clock; the
/// leader merges it and answers with its own, so counts spread through the group.
#[derive(Debug, Clone, Message)]
#[rtype(result = "VectorClock")]
pub struct HeartbeatWithClock {
    pub from: u64,
    pub clock: VectorClock,
}

/// The leader's Berkeley poll: "what does your clock say?"
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "i64")]
pub struct ReadClock;

/// The leader's Berkeley verdict: move your clock by `delta_ms`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct AdjustClock {
    pub delta_ms: i64,
}

/// What a front-end says about itself for `GET /cluster`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MemberState")]
pub struct DescribeMember;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberState {
    /// Its view of the group: the leader it accepted, whether it is electing.
    #[serde(flatten)]
    pub group: GroupView,
    /// How far its clock is from the process clock, in ms.
    pub clock_offset_ms: i64,
    /// Requests handled, by member, as far as this member knows (seed 001).
    pub vector_clock: VectorClock,
    /// The reporter updates it applied in the global order.
    pub updates: UpdateSummary,
    /// Tablet requests it served that the raffle has not counted yet.
    pub raffle_uncounted: usize,
}

/// One front-end's clocks.
#[derive(Debug)]
pub struct FrontendClocks {
    /// This member's own (simulated, skewed, drifting) clock. Hardware: it keeps running,
    /// adjusted or not, across a restart of the actor.
    pub clock: SimulatedClock,
    /// Requests handled per member (seed 001), merged through heartbeats.
    pub vector_clock: VectorClock,
    /// Leader only: when the next Berkeley round is due, and whether one is running.
    pub next_sync: u64,
    pub sync_in_flight: bool,
    /// How often the leader runs a round, and the deviation past which a clock is an outlier.
    sync_interval_ms: u64,
    max_deviation_ms: u64,
}

impl FrontendClocks {
    pub fn new(clock: SimulatedClock, settings: &GroupSettings) -> Self {
        Self {
            clock,
            vector_clock: VectorClock::new(),
            next_sync: 0,
            sync_in_flight: false,
            sync_interval_ms: settings.clock_sync_interval_ms,
            max_deviation_ms: settings.clock_max_deviation_ms,
        }
    }

    /// A skew and drift derived from the id, within the configured bounds, so that every run
    /// of the same group starts with the same disagreement.
    pub fn default_clock(id: u64, settings: &GroupSettings) -> SimulatedClock {
        // splitmix64: a well-spread number from the id.
        let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let within = |bound: i64, bits: u64| {
            let span = 2 * bound.unsigned_abs() + 1;
            (bits % span) as i64 - bound.abs()
        };
        SimulatedClock::new(
            within(settings.clock_max_skew_ms, z),
            within(settings.clock_max_drift_ppm, z >> 32),
        )
    }

    /// This member's clock now, and its offset from the process clock.
    pub fn offset_ms(&self) -> i64 {
        let now = now_ms();
        self.clock.read(now) - now as i64
    }

    /// A restart: a round under way died with the old context.
    pub fn restarted(&mut self) {
        self.sync_in_flight = false;
        self.next_sync = 0;
    }

    /// Leader only: whether a Berkeley round is due.
    pub fn sync_due(&self) -> bool {
        !self.sync_in_flight && now_ms() >= self.next_sync
    }
}

impl Frontend {
    /// Leader only: one Berkeley round (seed 000). Polls every member's clock, noting each round
    /// trip and its own clock at each reply, then tells each member how far to move. This is
    /// all the front-end group's leader does as leader.
    pub(super) fn run_clock_sync(
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
}
