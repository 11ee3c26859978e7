//! Totally ordered multicast on Lamport clocks (seed 000): every member delivers the same
//! messages in the same order.
//!
//! A member multicasting stamps the message `(lamport_time, sender_id)` and sends it to every
//! other member. Every member keeps the messages it knows of in a queue sorted by stamp, and on
//! receiving one acknowledges it to all the others. A message is delivered once it is at the
//! head of the queue and every current member has acknowledged it (the sender implicitly).
//! [`TotalOrderMember`] is one member's deterministic state machine; the driver sends the
//! [`Outgoing`] messages it returns and hands the [`Delivery`]s on, in order.
//!
//! Guarantees, provided every message between live members arrives exactly once, and in the
//! order sent on each sender-receiver pair (FIFO channels, as between two actix actors):
//! - every member delivers the same messages in the same order, that of their stamps;
//! - a member's own messages are delivered in the order it multicast them;
//! - every multicast of a member that stays in the group is delivered by every member that
//!   stays, once everyone has acknowledged it.
//!
//! Not guaranteed:
//! - progress while a member is silent: its acknowledgement is awaited until the driver calls
//!   [`TotalOrderMember::remove_member`] (on the failure detector's word);
//! - agreement across a crash: when a member crashes with its multicasts half sent, some members
//!   may hold a message the others never get. Its undelivered messages that this member
//!   holds are kept, and wait for everyone's acknowledgement, so the group may block rather than
//!   deliver in different orders. Making this safe needs a view-change (flush) protocol, which
//!   this module does not implement; it prefers blocking to disagreement;
//! - members joining: the group is fixed at construction, and only shrinks;
//! - tolerating duplicated or reordered channels: a stamp at or below the last delivered one is
//!   dropped, which protects the order here but may lose that message at this member.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A message's place in the total order: by Lamport time, ties broken by sender id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    // Field order matters: the derived `Ord` compares `time` first.
    pub time: u64,
    pub sender: u64,
}

/// What members say to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P> {
    /// A multicast message.
    Multicast { stamp: Stamp, payload: P },
    /// "I hold the message `stamp`", sent at Lamport time `time`.
    Ack { stamp: Stamp, time: u64 },
}

/// A message the driver must send for the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing<P> {
    pub to: u64,
    pub msg: Message<P>,
}

/// A message delivered in the total order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<P> {
    pub stamp: Stamp,
    pub payload: P,
}

/// What one event produced: messages to send, and messages now delivered (in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<P> {
    pub outgoing: Vec<Outgoing<P>>,
    pub delivered: Vec<Delivery<P>>,
}

impl<P> Default for Step<P> {
    fn default() -> Self {
        Step {
            outgoing: Vec::new(),
            delivered: Vec::new(),
        }
    }
}

/// A queued message. An ack can arrive before the message it acknowledges (from a third member,
/// on another channel), so the payload may still be missing.
#[derive(Debug, Clone)]
struct Entry<P> {
    payload: Option<P>,
    acked_by: BTreeSet<u64>,
}

impl<P> Default for Entry<P> {
    fn default() -> Self {
        Entry {
            payload: None,
            acked_by: BTreeSet::new(),
        }
    }
}

/// One member of a totally ordered multicast group.
#[derive(Debug, Clone)]
pub struct TotalOrderMember<P> {
    id: u64,
    members: BTreeSet<u64>,
    clock: u64,
    queue: BTreeMap<Stamp, Entry<P>>,
    last_delivered: Option<Stamp>,
}

impl<P: Clone> TotalOrderMember<P> {
    /// Member `my_id` of the group `members` (it is added if missing).
    pub fn new(my_id: u64, members: impl IntoIterator<Item = u64>) -> Self {
        TotalOrderMember {
            id: my_id,
            members: members.into_iter().chain([my_id]).collect(),
            clock: 0,
            queue: BTreeMap::new(),
            last_delivered: None,
        }
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current group, this member included.
    pub fn members(&self) -> &BTreeSet<u64> {
        &self.members
    }

    /// This member's Lamport clock.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// How many messages wait for delivery (or for their payload).
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Multicast `payload` to the group (this member included: it is delivered here too, in
    /// its turn).
    pub fn multicast(&mut self, payload: P) -> Step<P> {
        self.clock = self.clock.saturating_add(1);
        let stamp = Stamp {
            time: self.clock,
            sender: self.id,
        };
        let outgoing = self
            .others()
            .map(|to| Outgoing {
                to,
                msg: Message::Multicast {
                    stamp,
                    payload: payload.clone(),
                },
            })
            .collect();
        self.queue.insert(
            stamp,
            Entry {
                payload: Some(payload),
                acked_by: BTreeSet::from([self.id]),
            },
        );
        Step {
            outgoing,
            delivered: self.deliver_ready(),
        }
    }

    /// A message from member `from`. Messages from outside the group are ignored.
    pub fn on_message(&mut self, from: u64, msg: Message<P>) -> Step<P> {
        if !self.members.contains(&from) || from == self.id {
            return Step::default();
        }
        let mut outgoing = Vec::new();
        match msg {
            Message::Multicast { stamp, payload } => {
                self.observe(stamp.time);
                if stamp.sender != from || self.is_delivered(stamp) {
                    return Step::default();
                }
                let entry = self.queue.entry(stamp).or_default();
                if entry.payload.is_none() {
                    entry.payload = Some(payload);
                    entry.acked_by.extend([from, self.id]);
                    self.clock = self.clock.saturating_add(1);
                    let ack = Message::Ack {
                        stamp,
                        time: self.clock,
                    };
                    outgoing = self
                        .others()
                        .map(|to| Outgoing {
                            to,
                            msg: ack.clone(),
                        })
                        .collect();
                }
            }
            Message::Ack { stamp, time } => {
                self.observe(time);
                if !self.is_delivered(stamp) {
                    self.queue.entry(stamp).or_default().acked_by.insert(from);
                }
            }
        }
        Step {
            outgoing,
            delivered: self.deliver_ready(),
        }
    }

    /// `member` has left or crashed: stop awaiting its acks. Its messages this member already
    /// holds stay queued (see the module doc); those it only heard of through acks are dropped,
    /// since they will never arrive. Removing this member itself is ignored.
    pub fn remove_member(&mut self, member: u64) -> Step<P> {
        if member == self.id || !self.members.remove(&member) {
            return Step::default();
        }
        self.queue
            .retain(|stamp, entry| stamp.sender != member || entry.payload.is_some());
        Step {
            outgoing: Vec::new(),
            delivered: self.deliver_ready(),
        }
    }

    fn others(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().copied().filter(|&m| m != self.id)
    }

    /// Lamport's rule on receipt: move past the sender's time.
    fn observe(&mut self, time: u64) {
        self.clock = self.clock.max(time).saturating_add(1);
    }

    fn is_delivered(&self, stamp: Stamp) -> bool {
        self.last_delivered.is_some_and(|last| stamp <= last)
    }

    /// Pop every message at the head that has its payload and every member's ack.
    fn deliver_ready(&mut self) -> Vec<Delivery<P>> {
        let mut delivered = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            let acked_by_all = self
                .members
                .iter()
                .all(|m| entry.get().acked_by.contains(m));
            if !acked_by_all || entry.get().payload.is_none() {
                break;
            }
            let stamp = *entry.key();
            if let Some(payload) = entry.remove().payload {
                self.last_delivered = Some(stamp);
                delivered.push(Delivery { stamp, payload });
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::sim::{Out, Sim, SimNode};

    const TICK_MS: u64 = 10;

    /// A member that records what it delivers, as the driver would.
    struct Recorder {
        member: TotalOrderMember<String>,
        delivered: Vec<String>,
    }

    impl Recorder {
        fn new(id: u64, group: &[u64]) -> Self {
            Recorder {
                member: TotalOrderMember::new(id, group.iter().copied()),
                delivered: Vec::new(),
            }
        }

        fn take(&mut self, step: Step<String>) -> Vec<Out<Message<String>>> {
            self.delivered
                .extend(step.delivered.into_iter().map(|d| d.payload));
            step.outgoing
                .into_iter()
                .map(|o| Out::To(o.to, o.msg))
                .collect()
        }
    }

    impl SimNode for Recorder {
        type Msg = Message<String>;
        fn on_message(&mut self, from: u64, msg: Self::Msg, _now: u64) -> Vec<Out<Self::Msg>> {
            let step = self.member.on_message(from, msg);
            self.take(step)
        }
        fn on_tick(&mut self, _now: u64) -> Vec<Out<Self::Msg>> {
            Vec::new()
        }
        fn is_busy(&self) -> bool {
            self.member.pending() > 0
        }
    }

    fn group(ids: &[u64], jitter_ticks: u64, seed: u64) -> Sim<Recorder> {
        let mut sim = Sim::with_jitter(TICK_MS, jitter_ticks, seed);
        for &id in ids {
            sim.add(id, Recorder::new(id, ids));
        }
        sim
    }

    fn multicast(sim: &mut Sim<Recorder>, id: u64, payload: &str) {
        let payload = payload.to_string();
        sim.act(id, |r, _| {
            let step = r.member.multicast(payload);
            r.take(step)
        });
    }

    fn remove(sim: &mut Sim<Recorder>, at: u64, member: u64) {
        sim.act(at, |r, _| {
            let step = r.member.remove_member(member);
            r.take(step)
        });
    }

    fn deliveries(sim: &Sim<Recorder>) -> Vec<Vec<String>> {
        sim.nodes().map(|(_, r)| r.delivered.clone()).collect()
    }

    #[test]
    fn a_lone_member_delivers_its_own_message_at_once() {
        let mut m = TotalOrderMember::new(1, []);
        let step = m.multicast("a");
        assert!(step.outgoing.is_empty());
        assert_eq!(
            step.delivered,
            vec![Delivery {
                stamp: Stamp { time: 1, sender: 1 },
                payload: "a"
            }]
        );
    }

    #[test]
    fn stamps_order_by_time_then_sender() {
        let early = Stamp { time: 1, sender: 9 };
        let tie_low = Stamp { time: 2, sender: 1 };
        let tie_high = Stamp { time: 2, sender: 3 };
        assert!(early < tie_low && tie_low < tie_high);
    }

    #[test]
    fn a_message_waits_for_every_members_ack() {
        let mut m = TotalOrderMember::new(1, [1, 2, 3]);
        let step = m.multicast("a");
        assert_eq!(step.outgoing.len(), 2, "sent to 2 and 3");
        assert!(step.delivered.is_empty());
        let stamp = Stamp { time: 1, sender: 1 };
        assert!(
            m.on_message(2, Message::Ack { stamp, time: 3 })
                .delivered
                .is_empty()
        );
        let step = m.on_message(3, Message::Ack { stamp, time: 3 });
        assert_eq!(step.delivered.len(), 1);
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn receiving_a_multicast_acks_it_to_everyone_else_and_advances_the_clock() {
        let mut m = TotalOrderMember::new(2, [1, 2, 3]);
        let stamp = Stamp { time: 5, sender: 1 };
        let step = m.on_message(
            1,
            Message::Multicast {
                stamp,
                payload: "a",
            },
        );
        assert_eq!(m.clock(), 7, "max(0, 5) + 1 on receipt, + 1 for the ack");
        let ack = Message::Ack { stamp, time: 7 };
        assert_eq!(
            step.outgoing,
            vec![
                Outgoing {
                    to: 1,
                    msg: ack.clone()
                },
                Outgoing { to: 3, msg: ack }
            ]
        );
    }

    #[test]
    fn an_ack_arriving_before_its_message_holds_the_queue_until_the_message_comes() {
        let mut m = TotalOrderMember::new(2, [1, 2, 3]);
        let early = Stamp { time: 1, sender: 1 };
        let later = Stamp { time: 2, sender: 3 };
        m.on_message(
            3,
            Message::Ack {
                stamp: early,
                time: 2,
            },
        );
        m.on_message(
            3,
            Message::Multicast {
                stamp: later,
                payload: "later",
            },
        );
        m.on_message(
            1,
            Message::Ack {
                stamp: later,
                time: 3,
            },
        );
        assert_eq!(
            m.pending(),
            2,
            "'later' is acked by all but waits behind 'early'"
        );
        let step = m.on_message(
            1,
            Message::Multicast {
                stamp: early,
                payload: "early",
            },
        );
        let order: Vec<_> = step.delivered.iter().map(|d| d.payload).collect();
        assert_eq!(order, vec!["early", "later"]);
    }

    #[test]
    fn messages_from_outsiders_forgeries_and_duplicates_are_ignored() {
        let mut m = TotalOrderMember::new(1, [1, 2]);
        let stamp = Stamp { time: 1, sender: 2 };
        assert_eq!(
            m.on_message(
                9,
                Message::Multicast {
                    stamp: Stamp { time: 1, sender: 9 },
                    payload: "x"
                }
            ),
            Step::default(),
            "9 is not a member"
        );
        assert_eq!(
            m.on_message(
                2,
                Message::Multicast {
                    stamp: Stamp { time: 1, sender: 3 },
                    payload: "x"
                }
            ),
            Step::default(),
            "2 cannot multicast in 3's name"
        );
        let first = m.on_message(
            2,
            Message::Multicast {
                stamp,
                payload: "a",
            },
        );
        assert_eq!(first.delivered.len(), 1, "a group of two: acked by both");
        let again = m.on_message(
            2,
            Message::Multicast {
                stamp,
                payload: "a",
            },
        );
        assert_eq!(again, Step::default(), "already delivered");
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn removing_a_member_releases_messages_waiting_for_its_ack() {
        let mut m = TotalOrderMember::new(1, [1, 2, 3]);
        m.multicast("a");
        let stamp = Stamp { time: 1, sender: 1 };
        m.on_message(2, Message::Ack { stamp, time: 2 });
        // 3 has crashed; an ack-only trace of one of its messages can never complete.
        m.on_message(
            2,
            Message::Ack {
                stamp: Stamp { time: 1, sender: 3 },
                time: 3,
            },
        );
        let step = m.remove_member(3);
        assert_eq!(step.delivered.len(), 1);
        assert_eq!(m.pending(), 0);
        assert_eq!(m.members(), &BTreeSet::from([1, 2]));
        assert_eq!(
            m.remove_member(1),
            Step::default(),
            "a member cannot remove itself"
        );
        assert_eq!(
            m.on_message(3, Message::Ack { stamp, time: 9 }),
            Step::default(),
            "the removed member is no longer heard"
        );
    }

    #[test]
    fn concurrent_multicasts_from_everyone_are_delivered_in_one_order_everywhere() {
        let ids = [1, 2, 3, 4];
        for seed in 0..30 {
            let mut sim = group(&ids, 3, seed);
            let mut sent = 0;
            // 40 messages from random members at random ticks, while the network churns.
            while sent < 40 {
                if sim.random_below(2) == 0 {
                    let sender = ids[sim.random_below(ids.len() as u64) as usize];
                    multicast(&mut sim, sender, &format!("{sender}:{sent}"));
                    sent += 1;
                } else {
                    sim.step();
                }
            }
            assert!(sim.run_until_quiet(10_000), "seed {seed} settles");
            let all = deliveries(&sim);
            assert_eq!(all[0].len(), 40, "seed {seed}: everything delivered");
            assert!(all.iter().all(|d| *d == all[0]), "seed {seed}: {all:?}");
            for sender in ids {
                let own: Vec<usize> = all[0]
                    .iter()
                    .filter_map(|p| p.strip_prefix(&format!("{sender}:")))
                    .map(|n| n.parse().expect("a number"))
                    .collect();
                assert!(
                    own.is_sorted(),
                    "seed {seed}: {sender}'s messages in send order"
                );
            }
        }
    }

    #[test]
    fn simultaneous_multicasts_at_the_same_lamport_time_tie_break_by_sender() {
        let mut sim = group(&[1, 2, 3], 0, 7);
        for id in [3, 1, 2] {
            multicast(&mut sim, id, &format!("from {id}"));
        }
        assert!(sim.run_until_quiet(1_000));
        for d in deliveries(&sim) {
            assert_eq!(d, vec!["from 1", "from 2", "from 3"]);
        }
    }

    #[test]
    fn after_a_crashed_member_is_removed_the_rest_carry_on_in_one_order() {
        let mut sim = group(&[1, 2, 3], 2, 11);
        multicast(&mut sim, 1, "before");
        assert!(sim.run_until_quiet(1_000));
        sim.kill(3);
        multicast(&mut sim, 1, "stuck");
        multicast(&mut sim, 2, "also stuck");
        sim.run_for(500);
        assert_eq!(
            deliveries(&sim),
            vec![vec!["before"]; 2],
            "3's acks are awaited"
        );
        // The failure detector speaks: both survivors drop 3.
        remove(&mut sim, 1, 3);
        remove(&mut sim, 2, 3);
        multicast(&mut sim, 2, "after");
        assert!(sim.run_until_quiet(1_000));
        let all = deliveries(&sim);
        assert_eq!(all[0].len(), 4);
        assert_eq!(all[0], all[1]);
        assert_eq!(all[0][0], "before");
        assert_eq!(all[0][3], "after");
    }
}
