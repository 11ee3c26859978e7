//! Ring leader election (seed 000's alternative to the bully), without a central lock.
//!
//! The configured members form a ring in ascending id order, wrapping around. An initiator sends
//! `Election { initiator, ids: [itself] }` to its successor; each node appends its id and passes
//! it on. Every hop is acknowledged: a successor that does not `Ack` within `ack_ms` is
//! suspected, removed from the collected ids, and skipped in favour of the next one. When the
//! message comes back to a node already in `ids` (normally the initiator) the circle is closed:
//! that node announces the highest collected id with `Coordinator` sent to every collected id.
//!
//! Seed 000 serialised elections with a lock held by the dispatcher, a single point of failure.
//! Here simultaneous elections are resolved by the ring itself (Chang and Roberts' extinction):
//! a node that has passed on the election of a higher initiator swallows (acks, but does not
//! forward) the election of a lower one, so only the highest initiator's message goes round.
//!
//! Guarantees, provided ids are unique and every live node acks within `ack_ms`:
//! - an election started by any live node ends with every live member following the highest
//!   id that was alive when the message passed it, dead members being skipped;
//! - with several simultaneous initiators, exactly one election message completes the circle,
//!   so every live member hears one announcement and all agree;
//! - if the initiator dies mid-election, the first node to see the message twice announces in
//!   its place; if the message is lost with a dying node, participants retry after
//!   `election_ms`.
//!
//! Not guaranteed:
//! - that the announced leader is still alive: a node that dies after passing the message on is
//!   still in `ids`; the failure detector ([`super::heartbeat`]) must notice and the driver
//!   start a new election;
//! - agreement if a node is slower than `ack_ms`: it is wrongly skipped, the message may be
//!   duplicated and two announcements may differ until the next election;
//! - membership changes: the ring is fixed at construction; a skipped node that comes back is
//!   used again as soon as any message from it arrives, but new ids cannot join.

use std::collections::BTreeSet;

/// How long a ring node waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingTimeouts {
    /// For the successor's `Ack`; must exceed a message round trip.
    pub ack_ms: u64,
    /// For the announcement after taking part in an election; must exceed a trip round the
    /// whole ring, including an `ack_ms` for each dead member skipped.
    pub election_ms: u64,
}

impl Default for RingTimeouts {
    fn default() -> Self {
        RingTimeouts {
            ack_ms: 1_000,
            election_ms: 30_000,
        }
    }
}

/// What ring nodes say to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The election of `initiator`, with the ids of the live nodes it has passed so far.
    Election { initiator: u64, ids: Vec<u64> },
    /// "I received the election of `initiator`": the hop succeeded.
    Ack { initiator: u64 },
    /// "The election is over and `leader` leads."
    Coordinator { leader: u64 },
}

/// A message the driver must send for the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: u64,
    pub msg: Message,
}

/// An election message handed to the successor, kept until it is acked.
#[derive(Debug, Clone)]
struct AwaitingAck {
    to: u64,
    initiator: u64,
    ids: Vec<u64>,
    deadline: u64,
}

/// The election this node last passed on, until its announcement arrives.
#[derive(Debug, Clone, Copy)]
struct Participation {
    initiator: u64,
    deadline: u64,
}

/// One node's view of the ring election.
#[derive(Debug, Clone)]
pub struct RingNode {
    id: u64,
    /// Every configured member, this node included, sorted and without duplicates.
    ring: Vec<u64>,
    timeouts: RingTimeouts,
    leader: Option<u64>,
    participation: Option<Participation>,
    awaiting_ack: Vec<AwaitingAck>,
    /// Members that failed to ack; skipped until we hear from them again.
    suspected: BTreeSet<u64>,
}

impl RingNode {
    /// A node of the ring made of `members` (this node is added if missing), default timeouts.
    pub fn new(my_id: u64, members: impl IntoIterator<Item = u64>) -> Self {
        Self::with_timeouts(my_id, members, RingTimeouts::default())
    }

    /// A node of the ring made of `members` (this node is added if missing).
    pub fn with_timeouts(
        my_id: u64,
        members: impl IntoIterator<Item = u64>,
        timeouts: RingTimeouts,
    ) -> Self {
        let ring: BTreeSet<u64> = members.into_iter().chain([my_id]).collect();
        RingNode {
            id: my_id,
            ring: ring.into_iter().collect(),
            timeouts,
            leader: None,
            participation: None,
            awaiting_ack: Vec::new(),
            suspected: BTreeSet::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The last announced leader; `None` before the first announcement.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// Whether this node has passed on an election whose announcement it awaits, or awaits an
    /// ack from its successor.
    pub fn is_electing(&self) -> bool {
        self.participation.is_some() || !self.awaiting_ack.is_empty()
    }

    /// Members currently skipped because they did not ack.
    pub fn suspected(&self) -> &BTreeSet<u64> {
        &self.suspected
    }

    /// When [`RingNode::on_timeout`] next has something to do, if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        let acks = self.awaiting_ack.iter().map(|a| a.deadline);
        let election = self.participation.map(|p| p.deadline);
        acks.chain(election).min()
    }

    /// Start an election. Does nothing if this node already passed on one from an initiator
    /// at least as high, which will announce a leader anyway.
    pub fn start_election(&mut self, now: u64) -> Vec<Outgoing> {
        if self
            .participation
            .is_some_and(|p| p.initiator >= self.id && now < p.deadline)
        {
            return Vec::new();
        }
        self.participate(self.id, now);
        self.forward(self.id, vec![self.id], now)
    }

    /// A message from node `from`.
    pub fn on_message(&mut self, from: u64, msg: Message, now: u64) -> Vec<Outgoing> {
        // It is alive after all.
        self.suspected.remove(&from);
        match msg {
            Message::Election { initiator, mut ids } => {
                let mut out = vec![Outgoing {
                    to: from,
                    msg: Message::Ack { initiator },
                }];
                if initiator == self.id || ids.contains(&self.id) {
                    // Round the circle (if the initiator died, we close it in its place).
                    out.extend(self.announce(ids));
                } else if self
                    .participation
                    .is_some_and(|p| p.initiator > initiator && now < p.deadline)
                {
                    // Extinction: a higher initiator's election is already going round.
                } else {
                    self.participate(initiator, now);
                    ids.push(self.id);
                    out.extend(self.forward(initiator, ids, now));
                }
                out
            }
            Message::Ack { initiator } => {
                self.awaiting_ack
                    .retain(|a| !(a.to == from && a.initiator == initiator));
                Vec::new()
            }
            Message::Coordinator { leader } => {
                self.leader = Some(leader);
                self.participation = None;
                Vec::new()
            }
        }
    }

    /// Fire the timeouts due at `now` (deadlines are inclusive): skip successors that did not
    /// ack, and retry an election whose announcement never came.
    pub fn on_timeout(&mut self, now: u64) -> Vec<Outgoing> {
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_ack)
            .into_iter()
            .partition(|a| now >= a.deadline);
        self.awaiting_ack = waiting;
        let mut out = Vec::new();
        for mut lost in expired {
            self.suspected.insert(lost.to);
            lost.ids.retain(|&id| id != lost.to);
            out.extend(self.forward(lost.initiator, lost.ids, now));
        }
        if self.participation.is_some_and(|p| now >= p.deadline) {
            self.participation = None;
            out.extend(self.start_election(now));
        }
        out
    }

    fn participate(&mut self, initiator: u64, now: u64) {
        self.participation = Some(Participation {
            initiator,
            deadline: now.saturating_add(self.timeouts.election_ms),
        });
    }

    /// The next member after us round the ring that is not suspected, if any.
    fn successor(&self) -> Option<u64> {
        let after = self.ring.partition_point(|&id| id <= self.id);
        let (before, rest) = self.ring.split_at(after);
        rest.iter()
            .chain(before)
            .copied()
            .find(|&id| id != self.id && !self.suspected.contains(&id))
    }

    fn forward(&mut self, initiator: u64, ids: Vec<u64>, now: u64) -> Vec<Outgoing> {
        let Some(to) = self.successor() else {
            // Everyone else is suspected: the circle is just us.
            return self.announce(ids);
        };
        self.awaiting_ack.push(AwaitingAck {
            to,
            initiator,
            ids: ids.clone(),
            deadline: now.saturating_add(self.timeouts.ack_ms),
        });
        vec![Outgoing {
            to,
            msg: Message::Election { initiator, ids },
        }]
    }

    /// Close the circle: the highest collected id leads; tell every collected node.
    fn announce(&mut self, mut ids: Vec<u64>) -> Vec<Outgoing> {
        if !ids.contains(&self.id) {
            ids.push(self.id);
        }
        let leader = ids.iter().copied().max().unwrap_or(self.id);
        self.leader = Some(leader);
        self.participation = None;
        ids.into_iter()
            .filter(|&id| id != self.id)
            .map(|to| Outgoing {
                to,
                msg: Message::Coordinator { leader },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::sim::{Out, Sim, SimNode};

    const TICK_MS: u64 = 10;
    /// `ack_ms` exceeds the simulator's longest round trip (two hops of up to two ticks).
    const TIMEOUTS: RingTimeouts = RingTimeouts {
        ack_ms: 50,
        election_ms: 1_000,
    };
    const SETTLE_MS: u64 = 10_000;

    impl From<Outgoing> for Out<Message> {
        fn from(o: Outgoing) -> Self {
            Out::To(o.to, o.msg)
        }
    }

    impl SimNode for RingNode {
        type Msg = Message;
        fn on_message(&mut self, from: u64, msg: Message, now: u64) -> Vec<Out<Message>> {
            let out = RingNode::on_message(self, from, msg, now);
            out.into_iter().map(Into::into).collect()
        }
        fn on_tick(&mut self, now: u64) -> Vec<Out<Message>> {
            self.on_timeout(now).into_iter().map(Into::into).collect()
        }
        fn is_busy(&self) -> bool {
            self.is_electing()
        }
    }

    fn ring(ids: &[u64]) -> Sim<RingNode> {
        let mut sim = Sim::new(TICK_MS);
        for &id in ids {
            sim.add(
                id,
                RingNode::with_timeouts(id, ids.iter().copied(), TIMEOUTS),
            );
        }
        sim
    }

    fn assert_everyone_follows(sim: &Sim<RingNode>, leader: u64) {
        for (id, n) in sim.nodes() {
            assert_eq!(n.leader(), Some(leader), "node {id} follows {leader}");
            assert!(!n.is_electing(), "node {id} has finished electing");
        }
    }

    fn announcements(sim: &Sim<RingNode>) -> usize {
        sim.log
            .iter()
            .filter(|(_, _, m)| matches!(m, Message::Coordinator { .. }))
            .count()
    }

    #[test]
    fn the_election_goes_to_the_next_id_and_wraps_round() {
        let mut n = RingNode::with_timeouts(5, [1, 3, 5], TIMEOUTS);
        let out = n.start_election(0);
        assert_eq!(
            out,
            vec![Outgoing {
                to: 1,
                msg: Message::Election {
                    initiator: 5,
                    ids: vec![5]
                }
            }]
        );
        let mut n = RingNode::with_timeouts(1, [1, 3, 5], TIMEOUTS);
        assert_eq!(n.start_election(0)[0].to, 3);
    }

    #[test]
    fn a_lone_node_elects_itself_at_once() {
        let mut n = RingNode::with_timeouts(4, [], TIMEOUTS);
        assert!(n.start_election(0).is_empty());
        assert_eq!(n.leader(), Some(4));
        assert!(!n.is_electing());
    }

    #[test]
    fn each_hop_is_acked_and_the_node_adds_its_id() {
        let mut n = RingNode::with_timeouts(3, [1, 3, 5], TIMEOUTS);
        let out = n.on_message(
            1,
            Message::Election {
                initiator: 1,
                ids: vec![1],
            },
            0,
        );
        assert_eq!(
            out,
            vec![
                Outgoing {
                    to: 1,
                    msg: Message::Ack { initiator: 1 }
                },
                Outgoing {
                    to: 5,
                    msg: Message::Election {
                        initiator: 1,
                        ids: vec![1, 3]
                    }
                }
            ]
        );
    }

    #[test]
    fn a_silent_successor_is_skipped_and_dropped_from_the_ids() {
        let mut n = RingNode::with_timeouts(3, [1, 3, 5, 7], TIMEOUTS);
        n.start_election(0);
        assert_eq!(n.next_timeout(), Some(50));
        assert!(n.on_timeout(49).is_empty());
        let out = n.on_timeout(50);
        assert_eq!(
            out,
            vec![Outgoing {
                to: 7,
                msg: Message::Election {
                    initiator: 3,
                    ids: vec![3]
                }
            }]
        );
        assert!(n.suspected().contains(&5));
        n.on_message(5, Message::Ack { initiator: 3 }, 40);
        assert!(n.suspected().is_empty(), "a late word from 5 revives it");
    }

    #[test]
    fn the_initiator_announces_the_highest_id_when_its_message_returns() {
        let mut n = RingNode::with_timeouts(3, [1, 3, 5], TIMEOUTS);
        n.start_election(0);
        let out = n.on_message(
            1,
            Message::Election {
                initiator: 3,
                ids: vec![3, 5, 1],
            },
            20,
        );
        let mut announced: Vec<_> = out
            .iter()
            .filter(|o| o.msg == Message::Coordinator { leader: 5 })
            .map(|o| o.to)
            .collect();
        announced.sort();
        assert_eq!(announced, vec![1, 5]);
        assert_eq!(n.leader(), Some(5));
    }

    #[test]
    fn all_alive_everyone_follows_the_highest_id() {
        let mut sim = ring(&[1, 2, 3, 4, 5]);
        sim.act(2, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 5);
        assert_eq!(
            announcements(&sim),
            4,
            "one announcement to each other node"
        );
    }

    #[test]
    fn a_dead_node_in_the_ring_is_skipped() {
        let mut sim = ring(&[1, 2, 3, 4, 5]);
        sim.kill(3);
        sim.act(2, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 5);
        assert!(sim.node(2).suspected().contains(&3));
    }

    #[test]
    fn a_dead_highest_node_leaves_the_next_highest_leading() {
        let mut sim = ring(&[1, 2, 3, 4, 5]);
        sim.kill(5);
        sim.act(1, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 4);
    }

    #[test]
    fn if_the_initiator_dies_mid_election_another_node_closes_the_circle() {
        let mut sim = ring(&[1, 2, 3, 4, 5]);
        sim.act(5, |n, now| n.start_election(now));
        sim.run_for(TICK_MS);
        sim.kill(5);
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 4);
    }

    #[test]
    fn two_simultaneous_initiators_agree_with_one_announcement() {
        let mut sim = ring(&[1, 2, 3, 4, 5, 6]);
        sim.act(2, |n, now| n.start_election(now));
        sim.act(5, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 6);
        assert_eq!(
            announcements(&sim),
            5,
            "the lower initiator's message was swallowed"
        );
    }

    #[test]
    fn every_node_starting_at_once_still_agrees_under_jitter() {
        for seed in 0..20 {
            let ids = [3, 14, 15, 92, 65, 35];
            let mut sim: Sim<RingNode> = Sim::with_jitter(TICK_MS, 1, seed);
            for id in ids {
                sim.add(id, RingNode::with_timeouts(id, ids, TIMEOUTS));
            }
            for id in ids {
                sim.act(id, |n, now| n.start_election(now));
            }
            assert!(sim.run_until_quiet(SETTLE_MS), "seed {seed} settles");
            assert_everyone_follows(&sim, 92);
        }
    }

    #[test]
    fn a_dead_node_and_two_initiators_together() {
        let mut sim = ring(&[1, 2, 3, 4, 5]);
        sim.kill(4);
        sim.act(1, |n, now| n.start_election(now));
        sim.act(3, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 5);
    }
}
