//! A front-end's part in its group (seed 003): the bully election of the highest live id, and
//! heartbeats to the leader. The algorithms live in [`crate::coordination::bully`] and
//! [`crate::coordination::heartbeat`]; this file holds the messages front-ends exchange and each
//! member's state. The Frontend actor drives it (see `frontend.rs`).
//!
//! Logs follow seed 003's sample: "Server X started", "X is running an election initiated by
//! Y", "Election completed. Group Leader: Z", "Heartbeat to group leader Z failed".

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix::Message;
use serde::Serialize;

use crate::actors::frontend_order::AppliedSummary;

use crate::coordination::berkeley::SimulatedClock;
use crate::coordination::bully::{self, BullyNode, BullyTimeouts};
use crate::coordination::heartbeat::HeartbeatMonitor;
use crate::coordination::ring::{self, RingNode, RingTimeouts};
use crate::coordination::vector_clock::VectorClock;
use crate::settings::{ElectionAlgorithm, GroupSettings};

/// Milliseconds on one monotonic clock shared by every member of the process.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// An election message from front-end `from`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Election {
    pub from: u64,
    pub msg: ElectionMessage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionMessage {
    Bully(bully::Message),
    Ring(ring::Message),
}

/// Where an election message goes: one member, or every other member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: Option<u64>,
    pub msg: ElectionMessage,
}

/// The configured election algorithm behind one interface.
#[derive(Debug)]
pub enum ElectionNode {
    Bully(BullyNode),
    Ring {
        node: RingNode,
        /// The ring the node was built with; rebuilt when the group changes.
        members: Vec<u64>,
    },
}

impl ElectionNode {
    fn new(id: u64, settings: &GroupSettings, members: Vec<u64>) -> Self {
        match settings.election {
            ElectionAlgorithm::Bully => ElectionNode::Bully(BullyNode::with_timeouts(
                id,
                BullyTimeouts {
                    answer_ms: settings.election_answer_ms,
                    coordinator_ms: settings.election_coordinator_ms,
                },
            )),
            ElectionAlgorithm::Ring => ElectionNode::Ring {
                node: RingNode::with_timeouts(
                    id,
                    members.iter().copied().chain([id]),
                    RingTimeouts {
                        ack_ms: settings.election_answer_ms,
                        election_ms: settings.election_coordinator_ms,
                    },
                ),
                members,
            },
        }
    }

    pub fn leader(&self) -> Option<u64> {
        match self {
            ElectionNode::Bully(node) => node.leader(),
            ElectionNode::Ring { node, .. } => node.leader(),
        }
    }

    pub fn is_electing(&self) -> bool {
        match self {
            ElectionNode::Bully(node) => node.is_electing(),
            ElectionNode::Ring { node, .. } => node.is_electing(),
        }
    }

    pub fn start_election(&mut self, now: u64) -> Vec<Outgoing> {
        match self {
            ElectionNode::Bully(node) => from_bully(node.start_election(now)),
            ElectionNode::Ring { node, .. } => from_ring(node.start_election(now)),
        }
    }

    /// The failure detector suspects `leader`.
    pub fn leader_suspected(&mut self, leader: u64, now: u64) -> Vec<Outgoing> {
        match self {
            ElectionNode::Bully(node) => from_bully(node.leader_suspected(leader, now)),
            // The ring skips members that do not acknowledge, the dead leader among them.
            ElectionNode::Ring { node, .. } if node.leader() == Some(leader) => {
                from_ring(node.start_election(now))
            }
            ElectionNode::Ring { .. } => Vec::new(),
        }
    }

    pub fn on_message(&mut self, from: u64, msg: ElectionMessage, now: u64) -> Vec<Outgoing> {
        match (self, msg) {
            (ElectionNode::Bully(node), ElectionMessage::Bully(msg)) => {
                from_bully(node.on_message(from, msg, now))
            }
            (ElectionNode::Ring { node, .. }, ElectionMessage::Ring(msg)) => {
                from_ring(node.on_message(from, msg, now))
            }
            // A member configured with the other algorithm: nothing sensible to do.
            _ => Vec::new(),
        }
    }

    pub fn on_timeout(&mut self, now: u64) -> Vec<Outgoing> {
        match self {
            ElectionNode::Bully(node) => from_bully(node.on_timeout(now)),
            ElectionNode::Ring { node, .. } => from_ring(node.on_timeout(now)),
        }
    }
}

fn from_bully(actions: Vec<bully::Outgoing>) -> Vec<Outgoing> {
    actions
        .into_iter()
        .map(|action| match action {
            bully::Outgoing::Send { to, msg } => Outgoing {
                to: Some(to),
                msg: ElectionMessage::Bully(msg),
            },
            bully::Outgoing::Broadcast { msg } => Outgoing {
                to: None,
                msg: ElectionMessage::Bully(msg),
            },
        })
        .collect()
}

fn from_ring(actions: Vec<ring::Outgoing>) -> Vec<Outgoing> {
    actions
        .into_iter()
        .map(|action| Outgoing {
            to: Some(action.to),
            msg: ElectionMessage::Ring(action.msg),
        })
        .collect()
}

/// "Are you alive?", from a member to its leader, carrying the member's vector clock; the
/// leader merges it and answers with its own, so counts spread through the group.
#[derive(Debug, Clone, Message)]
#[rtype(result = "VectorClock")]
pub struct Heartbeat {
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

/// What a member says about itself for `GET /cluster`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MemberState")]
pub struct DescribeMember;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberState {
    /// The leader this member accepted, if any.
    pub leader: Option<u64>,
    pub electing: bool,
    /// How far its clock is from the process clock, in ms.
    pub clock_offset_ms: i64,
    /// Requests handled, by member, as far as this member knows (seed 001).
    pub vector_clock: VectorClock,
    /// The reporter updates it applied in the global order (filled in by the front-end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<AppliedSummary>,
    /// Tablet requests it served that the raffle has not counted yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raffle_uncounted: Option<usize>,
}

/// One member's election and failure-detection state.
#[derive(Debug)]
pub struct GroupMember {
    id: u64,
    settings: GroupSettings,
    pub election: ElectionNode,
    /// The leader being watched, and what the detector knows of it.
    pub leader_watch: Option<(u64, HeartbeatMonitor)>,
    /// A heartbeat is on its way; the next waits for its answer.
    pub heartbeat_in_flight: bool,
    /// This member's own (simulated, skewed, drifting) clock.
    pub clock: SimulatedClock,
    /// Requests handled per member (seed 001), merged through heartbeats.
    pub vector_clock: VectorClock,
    /// Leader only: when the next Berkeley round is due, and whether one is running.
    pub next_clock_sync: u64,
    pub clock_sync_in_flight: bool,
}

impl GroupMember {
    /// A member whose clock starts off by `clock` (see [`GroupMember::default_clock`]).
    pub fn new(id: u64, settings: GroupSettings, clock: SimulatedClock) -> Self {
        Self {
            id,
            election: ElectionNode::new(id, &settings, vec![id]),
            settings,
            leader_watch: None,
            heartbeat_in_flight: false,
            clock,
            vector_clock: VectorClock::new(),
            next_clock_sync: 0,
            clock_sync_in_flight: false,
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

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Whether the election needs the member list (the ring does; the bully broadcasts).
    pub fn follows_membership(&self) -> bool {
        matches!(self.election, ElectionNode::Ring { .. })
    }

    /// The ring election needs the current members; a change rebuilds it. `true` if it did
    /// (the member must then elect again). The bully needs no list.
    pub fn members_are(&mut self, ids: &[u64]) -> bool {
        let ElectionNode::Ring { members, .. } = &self.election else {
            return false;
        };
        if members == ids {
            return false;
        }
        self.election = ElectionNode::new(self.id, &self.settings, ids.to_vec());
        self.leader_watch = None;
        true
    }

    /// This member's clock now, and its offset from the process clock.
    pub fn clock_offset_ms(&self) -> i64 {
        let now = now_ms();
        self.clock.read(now) - now as i64
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.settings.tick_ms.max(1))
    }

    /// How long a heartbeat may take before it counts as failed.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.heartbeat_deadline_ms)
    }

    /// Forgets the election (a restart): the member will elect again. Its clock is hardware:
    /// it keeps running, adjusted or not.
    pub fn reset(&mut self) {
        let (clock, vector_clock) = (self.clock, self.vector_clock.clone());
        *self = GroupMember::new(self.id, self.settings.clone(), clock);
        self.vector_clock = vector_clock;
    }

    /// The watch on `leader`, begun now if it is a new leader.
    pub fn watch(&mut self, leader: u64, now: u64) -> &mut HeartbeatMonitor {
        if self.leader_watch.as_ref().map(|(l, _)| *l) != Some(leader) {
            let monitor = HeartbeatMonitor::new(
                self.settings.heartbeat_interval_ms,
                self.settings.heartbeat_deadline_ms,
                now,
            )
            .expect("heartbeat timing checked when settings load");
            self.leader_watch = Some((leader, monitor));
            self.heartbeat_in_flight = false;
        }
        &mut self.leader_watch.as_mut().expect("just set").1
    }

    pub fn state(&self) -> MemberState {
        MemberState {
            leader: self.election.leader(),
            electing: self.election.is_electing(),
            clock_offset_ms: self.clock_offset_ms(),
            vector_clock: self.vector_clock.clone(),
            updates: None,
            raffle_uncounted: None,
        }
    }
}
