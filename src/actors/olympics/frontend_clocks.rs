//! The clocks of the front-end group, which only this group switches on: each front-end's own
//! (simulated, skewed, drifting) clock, kept in step by the group leader with the Berkeley
//! algorithm (seed 000), and the vector clocks counting the requests each front-end handled
//! (seed 001), merged through the heartbeats. The algorithms are in
//! [`crate::coordination::berkeley`] and [`crate::coordination::vector_clock`]; the election
//! and heartbeats are the shared [`crate::actors::server_group`].

use actix::Message;
use serde::Serialize;

use crate::actors::clock::now_ms;
use crate::actors::olympics::frontend_order::UpdateSummary;
use crate::actors::server_group::GroupView;
use crate::coordination::berkeley::SimulatedClock;
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
    /// Wins it holds for tablets that have not read since.
    pub raffle_untold_wins: usize,
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
    pub sync_interval_ms: u64,
    pub max_deviation_ms: u64,
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
