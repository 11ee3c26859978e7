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

use crate::coordination::bully::Message as BullyMessage;
use crate::coordination::bully::{BullyNode, BullyTimeouts};
use crate::coordination::heartbeat::HeartbeatMonitor;
use crate::settings::GroupSettings;

/// Milliseconds on one monotonic clock shared by every member of the process.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A bully election message from front-end `from`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Election {
    pub from: u64,
    pub msg: BullyMessage,
}

/// "Are you alive?", from a member to its leader; answered with the leader's id.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "u64")]
pub struct Heartbeat {
    pub from: u64,
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
}

/// One member's election and failure-detection state.
#[derive(Debug)]
pub struct GroupMember {
    id: u64,
    settings: GroupSettings,
    pub bully: BullyNode,
    /// The leader being watched, and what the detector knows of it.
    pub leader_watch: Option<(u64, HeartbeatMonitor)>,
    /// A heartbeat is on its way; the next waits for its answer.
    pub heartbeat_in_flight: bool,
}

impl GroupMember {
    pub fn new(id: u64, settings: GroupSettings) -> Self {
        Self {
            id,
            bully: BullyNode::with_timeouts(id, timeouts(&settings)),
            settings,
            leader_watch: None,
            heartbeat_in_flight: false,
        }
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

    /// Forgets everything (a restart): the member will elect again.
    pub fn reset(&mut self) {
        *self = GroupMember::new(self.id, self.settings.clone());
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
            leader: self.bully.leader(),
            electing: self.bully.is_electing(),
        }
    }
}

fn timeouts(settings: &GroupSettings) -> BullyTimeouts {
    BullyTimeouts {
        answer_ms: settings.election_answer_ms,
        coordinator_ms: settings.election_coordinator_ms,
    }
}
