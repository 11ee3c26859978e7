//! One member's part in a server group (seed 003), for any group of actors: the election of a
//! leader (the algorithm chosen in configuration: bully by default, ring optional), the
//! heartbeats a member sends its leader and what it does when they fail, membership changes,
//! and seed 003's log lines. What the leader *does* is the service's business.
//!
//! An actor embeds a [`GroupMember`] and drives it: from its tick ([`GroupMember::tick`], which
//! says whether to lead, to send a heartbeat now, or nothing), from its [`Election`] handler
//! ([`GroupMember::on_election`]) and from the answer to each heartbeat
//! ([`GroupMember::heartbeat_answered`]). It tells the member who the group is through
//! [`Members`], so the same code serves the Olympic front-ends, the queue managers, and any
//! group to come. The heartbeat message itself is the actor's own (the front-ends carry their
//! vector clocks in it), so the member only says when to send it and to whom.
//!
//! The algorithms are plain state machines in [`crate::coordination::bully`],
//! [`crate::coordination::ring`] and [`crate::coordination::heartbeat`].
//!
//! Logs follow seed 003's sample: "Server X started" (the actor's), "X is running an election
//! initiated by Y", "Election completed. Group Leader: Z", "Heartbeat to group leader Z failed".

use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use serde::Serialize;

use crate::actors::clock::now_ms;
use crate::coordination::bully::{self, BullyNode, BullyTimeouts};
use crate::coordination::heartbeat::HeartbeatMonitor;
use crate::coordination::ring::{self, RingNode, RingTimeouts};
use crate::settings::{ElectionAlgorithm, GroupSettings, QueueSettings};

/// An election message from member `from`.
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

/// Who is in a group and how to reach them, as one member sees it.
pub trait Members<A: Actor> {
    /// Every member now, this one included, by id.
    fn members(&self) -> Vec<(u64, Addr<A>)>;

    /// Member `id`, if it is in the group.
    fn member(&self, id: u64) -> Option<Addr<A>> {
        self.members()
            .into_iter()
            .find_map(|(m, addr)| (m == id).then_some(addr))
    }

    /// How logs call member `id`.
    fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

/// The group's timing and algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    pub election: ElectionAlgorithm,
    /// How often the member's actor ticks.
    pub tick_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// A leader silent this long is suspected; also a heartbeat's own timeout.
    pub heartbeat_deadline_ms: u64,
    pub election_answer_ms: u64,
    pub election_coordinator_ms: u64,
}

impl From<&GroupSettings> for GroupTiming {
    fn from(s: &GroupSettings) -> Self {
        Self {
            election: s.election,
            tick_ms: s.tick_ms,
            heartbeat_interval_ms: s.heartbeat_interval_ms,
            heartbeat_deadline_ms: s.heartbeat_deadline_ms,
            election_answer_ms: s.election_answer_ms,
            election_coordinator_ms: s.election_coordinator_ms,
        }
    }
}

impl From<&QueueSettings> for GroupTiming {
    /// The queue managers elect with the bully algorithm (seed 004).
    fn from(s: &QueueSettings) -> Self {
        Self {
            election: ElectionAlgorithm::Bully,
            tick_ms: s.tick_ms,
            heartbeat_interval_ms: s.heartbeat_interval_ms,
            heartbeat_deadline_ms: s.heartbeat_deadline_ms,
            election_answer_ms: s.election_answer_ms,
            election_coordinator_ms: s.election_coordinator_ms,
        }
    }
}

/// What a member's tick asks of its actor.
#[derive(Debug)]
pub enum Duty<A: Actor> {
    /// This member leads: do the leader's work.
    Lead,
    /// Send a heartbeat to `leader` now and report its answer with
    /// [`GroupMember::heartbeat_answered`], within [`GroupMember::heartbeat_timeout`].
    Heartbeat { leader: u64, to: Addr<A> },
    /// Nothing to do this tick.
    Wait,
}

/// What a member says about the group for `GET /cluster`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The leader this member accepted, if any.
    pub leader: Option<u64>,
    pub electing: bool,
}

/// One member's election and failure-detection state.
#[derive(Debug)]
pub struct GroupMember {
    id: u64,
    /// The group's name in log fields (`frontends`, `queue-managers`).
    group: &'static str,
    timing: GroupTiming,
    election: ElectionNode,
    /// The leader being watched, and what the detector knows of it.
    leader_watch: Option<(u64, HeartbeatMonitor)>,
    /// A heartbeat is on its way; the next waits for its answer.
    heartbeat_in_flight: bool,
}

impl GroupMember {
    pub fn new(id: u64, group: &'static str, timing: GroupTiming) -> Self {
        Self {
            id,
            group,
            election: ElectionNode::new(id, &timing, vec![id]),
            timing,
            leader_watch: None,
            heartbeat_in_flight: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn leader(&self) -> Option<u64> {
        self.election.leader()
    }

    pub fn leads(&self) -> bool {
        self.leader() == Some(self.id)
    }

    pub fn is_electing(&self) -> bool {
        self.election.is_electing()
    }

    pub fn view(&self) -> GroupView {
        GroupView {
            leader: self.leader(),
            electing: self.is_electing(),
        }
    }

    /// How often the actor should call [`GroupMember::tick`].
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.timing.tick_ms.max(1))
    }

    /// How long a heartbeat may take before it counts as failed.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.timing.heartbeat_deadline_ms)
    }

    /// Forgets the election (a restart): the member will elect again.
    pub fn reset(&mut self) {
        *self = GroupMember::new(self.id, self.group, self.timing);
    }

    /// Starts an election (seed 003: a server that starts runs one; a lower one learns it is
    /// not the leader).
    pub fn start<A>(&mut self, members: &(impl Members<A> + ?Sized))
    where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        self.start_election(self.id, members);
    }

    /// An election message from a peer.
    pub fn on_election<A>(&mut self, msg: Election, members: &(impl Members<A> + ?Sized))
    where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        let before = self.leader();
        let was_electing = self.is_electing();
        let actions = self.election.on_message(msg.from, msg.msg, now_ms());
        if !was_electing && self.is_electing() {
            self.log_election(msg.from, members);
        }
        self.send(before, actions, members);
    }

    /// Every tick: election timeouts, membership changes, then the watch on the leader.
    pub fn tick<A>(&mut self, members: &(impl Members<A> + ?Sized)) -> Duty<A>
    where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        let now = now_ms();
        if let ElectionNode::Ring { members: ring, .. } = &self.election {
            let ids: Vec<u64> = members.members().into_iter().map(|(id, _)| id).collect();
            if !ids.is_empty() && *ring != ids {
                // The ring is built from the members: a change rebuilds it and elects again.
                self.election = ElectionNode::new(self.id, &self.timing, ids);
                self.leader_watch = None;
                self.start_election(self.id, members);
            }
        }
        let before = self.leader();
        let actions = self.election.on_timeout(now);
        self.send(before, actions, members);

        let Some(leader) = self.leader() else {
            if !self.is_electing() {
                self.start_election(self.id, members);
            }
            return Duty::Wait;
        };
        if leader == self.id {
            self.leader_watch = None;
            return Duty::Lead;
        }
        let in_flight = self.heartbeat_in_flight;
        let watch = self.watch(leader, now);
        if watch.is_suspect(now) {
            self.leader_failed(leader, members);
            return Duty::Wait;
        }
        if in_flight || now < watch.next_ping_at() {
            return Duty::Wait;
        }
        watch.ping_sent(now);
        let Some(to) = members.member(leader) else {
            self.leader_failed(leader, members);
            return Duty::Wait;
        };
        self.heartbeat_in_flight = true;
        Duty::Heartbeat { leader, to }
    }

    /// The answer (or the failure) of the heartbeat [`Duty::Heartbeat`] asked for.
    pub fn heartbeat_answered<A>(
        &mut self,
        leader: u64,
        answered: bool,
        members: &(impl Members<A> + ?Sized),
    ) where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        self.heartbeat_in_flight = false;
        if !answered {
            self.leader_failed(leader, members);
            return;
        }
        if let Some((watched, monitor)) = self.leader_watch.as_mut()
            && *watched == leader
        {
            monitor.record(now_ms());
        }
    }

    fn start_election<A>(&mut self, initiator: u64, members: &(impl Members<A> + ?Sized))
    where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        let before = self.leader();
        let actions = self.election.start_election(now_ms());
        if !actions.is_empty() {
            self.log_election(initiator, members);
        }
        self.send(before, actions, members);
    }

    fn leader_failed<A>(&mut self, leader: u64, members: &(impl Members<A> + ?Sized))
    where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        if self.leader() != Some(leader) {
            return; // a stale answer about a former leader
        }
        let (me, them) = (members.name(self.id), members.name(leader));
        tracing::warn!(
            group = self.group,
            member = self.id,
            leader,
            "Heartbeat to group leader {them} failed (from {me})"
        );
        self.leader_watch = None;
        let before = self.leader();
        let actions = self.election.leader_suspected(leader, now_ms());
        if !actions.is_empty() {
            self.log_election(self.id, members);
        }
        self.send(before, actions, members);
    }

    /// The watch on `leader`, begun now if it is a new leader.
    fn watch(&mut self, leader: u64, now: u64) -> &mut HeartbeatMonitor {
        if self.leader_watch.as_ref().map(|(l, _)| *l) != Some(leader) {
            let monitor = HeartbeatMonitor::new(
                self.timing.heartbeat_interval_ms,
                self.timing.heartbeat_deadline_ms,
                now,
            )
            .expect("heartbeat timing checked when settings load");
            self.leader_watch = Some((leader, monitor));
            self.heartbeat_in_flight = false;
        }
        &mut self.leader_watch.as_mut().expect("just set").1
    }

    /// Seed 003's line: "X is running an election initiated by Y".
    fn log_election<A: Actor>(&self, initiator: u64, members: &(impl Members<A> + ?Sized)) {
        let (me, by) = (members.name(self.id), members.name(initiator));
        metrics::counter!(crate::telemetry::metrics::ELECTIONS, "group" => self.group).increment(1);
        tracing::info!(
            group = self.group,
            member = self.id,
            initiator,
            "{me} is running an election initiated by {by}"
        );
    }

    /// Sends an election step's messages to the peers and logs a new leader.
    fn send<A>(
        &self,
        leader_before: Option<u64>,
        actions: Vec<Outgoing>,
        members: &(impl Members<A> + ?Sized),
    ) where
        A: Actor + Handler<Election>,
        A::Context: ToEnvelope<A, Election>,
    {
        if !actions.is_empty() {
            let peers = members.members();
            for Outgoing { to, msg } in actions {
                for (id, addr) in &peers {
                    if *id != self.id && to.is_none_or(|to| to == *id) {
                        addr.do_send(Election {
                            from: self.id,
                            msg: msg.clone(),
                        });
                    }
                }
            }
        }
        let leader = self.leader();
        if leader != leader_before
            && !self.is_electing()
            && let Some(leader) = leader
        {
            let (me, them) = (members.name(self.id), members.name(leader));
            if leader == self.id {
                let name = crate::telemetry::metrics::LEADER_CHANGES;
                metrics::counter!(name, "group" => self.group).increment(1);
            }
            tracing::info!(
                group = self.group,
                member = self.id,
                leader,
                "Election completed. Group Leader: {them} (seen by {me})"
            );
        }
    }
}

/// Where an election message goes: one member, or every other member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outgoing {
    to: Option<u64>,
    msg: ElectionMessage,
}

/// The configured election algorithm behind one interface.
#[derive(Debug)]
enum ElectionNode {
    Bully(BullyNode),
    Ring {
        node: RingNode,
        /// The ring the node was built with; rebuilt when the group changes.
        members: Vec<u64>,
    },
}

impl ElectionNode {
    fn new(id: u64, timing: &GroupTiming, members: Vec<u64>) -> Self {
        match timing.election {
            ElectionAlgorithm::Bully => ElectionNode::Bully(BullyNode::with_timeouts(
                id,
                BullyTimeouts {
                    answer_ms: timing.election_answer_ms,
                    coordinator_ms: timing.election_coordinator_ms,
                },
            )),
            ElectionAlgorithm::Ring => ElectionNode::Ring {
                node: RingNode::with_timeouts(
                    id,
                    members.iter().copied().chain([id]),
                    RingTimeouts {
                        ack_ms: timing.election_answer_ms,
                        election_ms: timing.election_coordinator_ms,
                    },
                ),
                members,
            },
        }
    }

    fn leader(&self) -> Option<u64> {
        match self {
            ElectionNode::Bully(node) => node.leader(),
            ElectionNode::Ring { node, .. } => node.leader(),
        }
    }

    fn is_electing(&self) -> bool {
        match self {
            ElectionNode::Bully(node) => node.is_electing(),
            ElectionNode::Ring { node, .. } => node.is_electing(),
        }
    }

    fn start_election(&mut self, now: u64) -> Vec<Outgoing> {
        match self {
            ElectionNode::Bully(node) => from_bully(node.start_election(now)),
            ElectionNode::Ring { node, .. } => from_ring(node.start_election(now)),
        }
    }

    /// The failure detector suspects `leader`.
    fn leader_suspected(&mut self, leader: u64, now: u64) -> Vec<Outgoing> {
        match self {
            ElectionNode::Bully(node) => from_bully(node.leader_suspected(leader, now)),
            // The ring skips members that do not acknowledge, the dead leader among them.
            ElectionNode::Ring { node, .. } if node.leader() == Some(leader) => {
                from_ring(node.start_election(now))
            }
            ElectionNode::Ring { .. } => Vec::new(),
        }
    }

    fn on_message(&mut self, from: u64, msg: ElectionMessage, now: u64) -> Vec<Outgoing> {
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

    fn on_timeout(&mut self, now: u64) -> Vec<Outgoing> {
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

#[cfg(test)]
#[path = "server_group_tests.rs"]
mod tests;
