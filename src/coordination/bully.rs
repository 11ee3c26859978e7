//! Bully leader election (seed 003): the live node with the highest unique numeric id leads.
//!
//! [`BullyNode`] is the deterministic state machine of one node. Its driver (an actor) feeds it
//! events with the current time in milliseconds — [`BullyNode::start_election`],
//! [`BullyNode::on_message`], [`BullyNode::on_timeout`], [`BullyNode::leader_suspected`] — and
//! sends the [`Outgoing`] actions they return. Nothing here reads a clock or does I/O. A node
//! need not know who else is up (seed 003 forbids assuming it): `Election` and `Coordinator`
//! are broadcast, and only nodes with a higher id answer an `Election`.
//!
//! The rules: a node starting an election broadcasts `Election` and waits `answer_ms`. A node
//! with a higher id that hears it replies `Answer` and starts its own election. Without an
//! answer the starter declares itself leader and broadcasts `Coordinator`; with one it waits
//! `coordinator_ms` for the `Coordinator` and starts over if none comes. A `Coordinator` naming
//! a lower id than the receiver's is challenged with a new election, so a lower node never
//! keeps the leadership against a live higher one.
//!
//! Guarantees, provided ids are unique and every message between live nodes arrives within
//! `answer_ms` (seed 003's synchronous-LAN assumption):
//! - once no node crashes or joins for one election's time (about `answer_ms` plus two message
//!   delays), every live node that hears the broadcasts has the highest live id as
//!   [`BullyNode::leader`] and is no longer electing;
//! - concurrent elections, started by any number of nodes, end in that same single leader;
//! - a node never accepts a leader whose id is lower than its own.
//!
//! Not guaranteed:
//! - agreement *during* an election, or when messages are slower than the timeouts, or across a
//!   network partition: then two nodes may each believe they lead (each side of a partition
//!   elects its own highest id) until the next election that reaches both;
//! - noticing that the leader died: that is the failure detector's job
//!   ([`super::heartbeat`]), whose suspicion is fed in with [`BullyNode::leader_suspected`];
//! - that ids are unique: this is not checked, and two nodes with the same id could both lead;
//! - that a node which starts silently (without an election) learns the leader before the next
//!   `Coordinator` broadcast.

/// How long a node waits at each stage of an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BullyTimeouts {
    /// Waiting for an `Answer` after broadcasting `Election`; must exceed a message round trip.
    pub answer_ms: u64,
    /// Waiting for a `Coordinator` after a higher node answered; must exceed that node's own
    /// election (its `answer_ms` plus two message delays).
    pub coordinator_ms: u64,
}

impl Default for BullyTimeouts {
    /// Seed 003: "if you send a message to a server and do not get a reply within, say,
    /// 1 second, you can safely assume that the server has crashed".
    fn default() -> Self {
        BullyTimeouts {
            answer_ms: 1_000,
            coordinator_ms: 3_000,
        }
    }
}

/// What bully nodes say to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// "I am starting an election": every node with a higher id should answer.
    Election,
    /// "I am alive and have a higher id than you: I take over the election."
    Answer,
    /// "The election is over and `leader` leads."
    Coordinator { leader: u64 },
}

/// An action the driver must perform for the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Send {
        to: u64,
        msg: Message,
    },
    /// To every other node of the group, whoever is up.
    Broadcast {
        msg: Message,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Our `Election` is out; if no higher node answers by `deadline` we lead.
    AwaitingAnswers {
        deadline: u64,
    },
    /// A higher node answered; it should announce itself by `deadline`.
    AwaitingCoordinator {
        deadline: u64,
    },
}

/// One node's view of the bully election.
#[derive(Debug, Clone)]
pub struct BullyNode {
    id: u64,
    timeouts: BullyTimeouts,
    leader: Option<u64>,
    phase: Phase,
}

impl BullyNode {
    /// A node with the default timeouts that knows no leader yet.
    pub fn new(my_id: u64) -> Self {
        Self::with_timeouts(my_id, BullyTimeouts::default())
    }

    /// A node with the given timeouts that knows no leader yet.
    pub fn with_timeouts(my_id: u64, timeouts: BullyTimeouts) -> Self {
        BullyNode {
            id: my_id,
            timeouts,
            leader: None,
            phase: Phase::Idle,
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The last leader this node accepted (possibly itself); `None` before the first election
    /// ends or after the leader was suspected. During an election it is the previous leader.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// Whether this node is waiting for answers or for a coordinator.
    pub fn is_electing(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// When [`BullyNode::on_timeout`] next has something to do, if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::Idle => None,
            Phase::AwaitingAnswers { deadline } | Phase::AwaitingCoordinator { deadline } => {
                Some(deadline)
            }
        }
    }

    /// Start an election (at startup, or when asked). Does nothing if one is under way.
    pub fn start_election(&mut self, now: u64) -> Vec<Outgoing> {
        if self.is_electing() {
            return Vec::new();
        }
        self.phase = Phase::AwaitingAnswers {
            deadline: now.saturating_add(self.timeouts.answer_ms),
        };
        vec![Outgoing::Broadcast {
            msg: Message::Election,
        }]
    }

    /// The failure detector suspects `suspect`: if it is our leader, forget it and elect anew.
    /// A stale suspicion (of a node that no longer leads) is ignored.
    pub fn leader_suspected(&mut self, suspect: u64, now: u64) -> Vec<Outgoing> {
        if self.leader != Some(suspect) {
            return Vec::new();
        }
        self.leader = None;
        self.start_election(now)
    }

    /// A message from node `from`.
    pub fn on_message(&mut self, from: u64, msg: Message, now: u64) -> Vec<Outgoing> {
        if from == self.id {
            // Our own broadcast, looped back by the transport.
            return Vec::new();
        }
        match msg {
            Message::Election if from < self.id => {
                let mut out = vec![Outgoing::Send {
                    to: from,
                    msg: Message::Answer,
                }];
                out.extend(self.start_election(now));
                out
            }
            // A higher node's election: it, or someone above it, will announce the result.
            Message::Election => Vec::new(),
            Message::Answer => {
                if from > self.id && matches!(self.phase, Phase::AwaitingAnswers { .. }) {
                    self.phase = Phase::AwaitingCoordinator {
                        deadline: now.saturating_add(self.timeouts.coordinator_ms),
                    };
                }
                Vec::new()
            }
            // A lower node claims to lead while we are alive: bully it.
            Message::Coordinator { leader } if leader < self.id => self.start_election(now),
            Message::Coordinator { leader } => {
                self.leader = Some(leader);
                self.phase = Phase::Idle;
                Vec::new()
            }
        }
    }

    /// Fire the timeout that is due at `now` (deadlines are inclusive), if any.
    pub fn on_timeout(&mut self, now: u64) -> Vec<Outgoing> {
        match self.phase {
            Phase::AwaitingAnswers { deadline } if now >= deadline => {
                // Nobody higher answered: we are the highest live id.
                self.phase = Phase::Idle;
                self.leader = Some(self.id);
                vec![Outgoing::Broadcast {
                    msg: Message::Coordinator { leader: self.id },
                }]
            }
            Phase::AwaitingCoordinator { deadline } if now >= deadline => {
                // The node that answered died before announcing itself: start over.
                self.phase = Phase::Idle;
                self.start_election(now)
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::sim::{Out, Sim, SimNode};

    const TICK_MS: u64 = 10;
    const TIMEOUTS: BullyTimeouts = BullyTimeouts {
        answer_ms: 50,
        coordinator_ms: 150,
    };
    /// Long enough for several elections in a row.
    const SETTLE_MS: u64 = 5_000;

    impl SimNode for BullyNode {
        type Msg = Message;
        fn on_message(&mut self, from: u64, msg: Message, now: u64) -> Vec<Out<Message>> {
            to_sim(BullyNode::on_message(self, from, msg, now))
        }
        fn on_tick(&mut self, now: u64) -> Vec<Out<Message>> {
            to_sim(self.on_timeout(now))
        }
        fn is_busy(&self) -> bool {
            self.is_electing()
        }
    }

    impl From<Outgoing> for Out<Message> {
        fn from(action: Outgoing) -> Self {
            match action {
                Outgoing::Send { to, msg } => Out::To(to, msg),
                Outgoing::Broadcast { msg } => Out::All(msg),
            }
        }
    }

    fn to_sim(actions: Vec<Outgoing>) -> Vec<Out<Message>> {
        actions.into_iter().map(Into::into).collect()
    }

    fn node(id: u64) -> BullyNode {
        BullyNode::with_timeouts(id, TIMEOUTS)
    }

    /// Start `id` (it runs an election at startup, as in seed 003) and let the group settle.
    fn join(sim: &mut Sim<BullyNode>, id: u64) {
        sim.add(id, node(id));
        sim.act(id, |n, now| n.start_election(now));
        assert!(sim.run_until_quiet(SETTLE_MS), "the group settles");
    }

    fn leaders(sim: &Sim<BullyNode>) -> Vec<Option<u64>> {
        sim.nodes().map(|(_, n)| n.leader()).collect()
    }

    fn assert_everyone_follows(sim: &Sim<BullyNode>, leader: u64) {
        for (id, n) in sim.nodes() {
            assert_eq!(n.leader(), Some(leader), "node {id} follows {leader}");
            assert!(!n.is_electing(), "node {id} has finished electing");
        }
    }

    /// Seed 003's screenshot: 41220, then 9152, then 45000.
    fn seed_group() -> Sim<BullyNode> {
        let mut sim = Sim::new(TICK_MS);
        join(&mut sim, 41220);
        join(&mut sim, 9152);
        sim
    }

    #[test]
    fn a_lone_node_elects_itself_after_the_answer_timeout() {
        let mut n = node(7);
        let out = n.start_election(0);
        assert_eq!(
            out,
            vec![Outgoing::Broadcast {
                msg: Message::Election
            }]
        );
        assert!(n.is_electing());
        assert_eq!(n.next_timeout(), Some(50));
        assert!(n.on_timeout(49).is_empty(), "not before the deadline");
        assert_eq!(
            n.on_timeout(50),
            vec![Outgoing::Broadcast {
                msg: Message::Coordinator { leader: 7 }
            }]
        );
        assert_eq!(n.leader(), Some(7));
        assert!(!n.is_electing());
        assert_eq!(n.next_timeout(), None);
    }

    #[test]
    fn a_higher_node_answers_a_lower_ones_election_and_runs_its_own() {
        let mut n = node(5);
        let out = n.on_message(3, Message::Election, 0);
        assert_eq!(
            out,
            vec![
                Outgoing::Send {
                    to: 3,
                    msg: Message::Answer
                },
                Outgoing::Broadcast {
                    msg: Message::Election
                }
            ]
        );
        assert!(n.is_electing());
    }

    #[test]
    fn a_lower_node_ignores_a_higher_ones_election() {
        let mut n = node(3);
        assert!(n.on_message(5, Message::Election, 0).is_empty());
        assert!(!n.is_electing());
    }

    #[test]
    fn an_answer_makes_the_node_wait_for_a_coordinator_and_retry_if_none_comes() {
        let mut n = node(3);
        n.start_election(0);
        n.on_message(5, Message::Answer, 10);
        assert_eq!(n.next_timeout(), Some(160));
        assert!(n.on_timeout(50).is_empty(), "no longer waiting for answers");
        assert_eq!(
            n.on_timeout(160),
            vec![Outgoing::Broadcast {
                msg: Message::Election
            }],
            "the answering node died: elect again"
        );
    }

    #[test]
    fn a_coordinator_from_a_higher_node_is_accepted() {
        let mut n = node(3);
        n.start_election(0);
        assert!(
            n.on_message(5, Message::Coordinator { leader: 5 }, 20)
                .is_empty()
        );
        assert_eq!(n.leader(), Some(5));
        assert!(!n.is_electing());
    }

    #[test]
    fn a_coordinator_from_a_lower_node_is_challenged() {
        let mut n = node(5);
        let out = n.on_message(3, Message::Coordinator { leader: 3 }, 0);
        assert_eq!(
            out,
            vec![Outgoing::Broadcast {
                msg: Message::Election
            }]
        );
        assert_eq!(n.leader(), None, "the lower claim is not accepted");
    }

    #[test]
    fn starting_an_election_twice_sends_nothing_the_second_time() {
        let mut n = node(3);
        assert_eq!(n.start_election(0).len(), 1);
        assert!(n.start_election(5).is_empty());
        assert_eq!(n.next_timeout(), Some(50), "the first deadline stands");
    }

    #[test]
    fn only_a_suspicion_of_the_current_leader_starts_an_election() {
        let mut n = node(3);
        n.on_message(9, Message::Coordinator { leader: 9 }, 0);
        assert!(n.leader_suspected(8, 10).is_empty(), "8 is not our leader");
        assert_eq!(n.leader(), Some(9));
        assert_eq!(n.leader_suspected(9, 10).len(), 1);
        assert_eq!(n.leader(), None);
        assert!(n.is_electing());
    }

    #[test]
    fn its_own_looped_back_broadcast_is_ignored() {
        let mut n = node(3);
        n.start_election(0);
        assert!(n.on_message(3, Message::Election, 1).is_empty());
        assert!(
            n.on_message(3, Message::Coordinator { leader: 3 }, 1)
                .is_empty()
        );
        assert_eq!(n.leader(), None);
    }

    #[test]
    fn seed_003_a_new_node_with_a_lower_id_leaves_the_leader_unchanged() {
        let mut sim = seed_group();
        assert_everyone_follows(&sim, 41220);
        join(&mut sim, 100);
        assert_everyone_follows(&sim, 41220);
    }

    #[test]
    fn seed_003_a_new_node_with_the_highest_id_becomes_leader_everywhere() {
        let mut sim = seed_group();
        join(&mut sim, 45000);
        assert_everyone_follows(&sim, 45000);
    }

    #[test]
    fn seed_003_when_the_leader_dies_the_others_elect_the_next_highest() {
        let mut sim = seed_group();
        join(&mut sim, 45000);
        sim.kill(45000);
        // 41220's heartbeat to its leader fails first (seed 003's screenshot).
        sim.act(41220, |n, now| n.leader_suspected(45000, now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 41220);
    }

    #[test]
    fn when_the_lowest_node_notices_the_dead_leader_the_highest_survivor_still_wins() {
        let mut sim = Sim::new(TICK_MS);
        for id in [1, 2, 3, 4, 5] {
            join(&mut sim, id);
        }
        sim.kill(5);
        sim.act(1, |n, now| n.leader_suspected(5, now));
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 4);
    }

    #[test]
    fn a_node_that_answered_and_then_died_does_not_stall_the_election() {
        let mut sim = Sim::new(TICK_MS);
        for id in [1, 2, 3] {
            join(&mut sim, id);
        }
        sim.kill(3);
        sim.act(1, |n, now| n.leader_suspected(3, now));
        // Let 2 answer 1, then kill 2 before it can announce itself.
        sim.run_for(2 * TICK_MS);
        sim.kill(2);
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_everyone_follows(&sim, 1);
    }

    #[test]
    fn concurrent_elections_converge_on_one_leader_all_nodes_agree_on() {
        for seed in 0..20 {
            let mut sim = Sim::with_jitter(TICK_MS, 2, seed);
            let ids = [17, 4, 99, 23, 61, 8];
            for id in ids {
                sim.add(id, node(id));
            }
            for id in ids {
                sim.act(id, |n, now| n.start_election(now));
            }
            assert!(sim.run_until_quiet(SETTLE_MS), "seed {seed} settles");
            assert_everyone_follows(&sim, 99);
        }
    }

    #[test]
    fn concurrent_elections_after_the_leader_dies_converge_too() {
        let mut sim = Sim::with_jitter(TICK_MS, 1, 42);
        for id in [10, 20, 30, 40] {
            join(&mut sim, id);
        }
        sim.kill(40);
        for id in [10, 20, 30] {
            sim.act(id, |n, now| n.leader_suspected(40, now));
        }
        assert!(sim.run_until_quiet(SETTLE_MS));
        assert_eq!(leaders(&sim), vec![Some(30); 3]);
    }
}
