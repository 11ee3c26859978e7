//! A deterministic in-memory network shared by the simulator tests of the coordination modules.
//!
//! Time moves in ticks of `tick_ms`. A message posted during a tick arrives one tick later, plus
//! a random extra delay when jitter is on. Channels are FIFO per (sender, receiver) pair, as actix
//! mailboxes are between two actors, but deliveries on different channels interleave in a random
//! (seeded, so repeatable) order. A killed node drops everything addressed to it.

use std::collections::BTreeMap;
use std::fmt::Debug;

/// Where a node wants a message to go.
#[derive(Debug, Clone)]
pub enum Out<M> {
    To(u64, M),
    /// Every live node but the sender.
    All(M),
}

/// A node of one of the coordination algorithms, seen by the simulator.
pub trait SimNode {
    type Msg: Clone + Debug;
    fn on_message(&mut self, from: u64, msg: Self::Msg, now: u64) -> Vec<Out<Self::Msg>>;
    /// Called once per tick so the node can fire its timeouts.
    fn on_tick(&mut self, now: u64) -> Vec<Out<Self::Msg>>;
    /// True while the node waits for something (an answer, an ack, a timeout).
    fn is_busy(&self) -> bool;
}

/// xorshift64: a tiny, seeded, repeatable PRNG, so the tests need no crate.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Packet<M> {
    seq: u64,
    from: u64,
    to: u64,
    deliver_at: u64,
    msg: M,
}

/// The network and the live nodes on it.
pub struct Sim<N: SimNode> {
    nodes: BTreeMap<u64, N>,
    in_flight: Vec<Packet<N::Msg>>,
    /// The latest arrival time scheduled on each channel, to keep channels FIFO under jitter.
    channel_tail: BTreeMap<(u64, u64), u64>,
    /// Every message ever posted, as (from, to, msg), for tests that count messages.
    pub log: Vec<(u64, u64, N::Msg)>,
    pub now: u64,
    tick_ms: u64,
    max_extra_ticks: u64,
    rng: XorShift,
    next_seq: u64,
}

impl<N: SimNode> Sim<N> {
    /// A network where every message takes exactly one tick.
    pub fn new(tick_ms: u64) -> Self {
        Self::with_jitter(tick_ms, 0, 1)
    }

    /// A network where a message takes 1 to `1 + max_extra_ticks` ticks, chosen by `seed`.
    pub fn with_jitter(tick_ms: u64, max_extra_ticks: u64, seed: u64) -> Self {
        Sim {
            nodes: BTreeMap::new(),
            in_flight: Vec::new(),
            channel_tail: BTreeMap::new(),
            log: Vec::new(),
            now: 0,
            tick_ms,
            max_extra_ticks,
            rng: XorShift::new(seed),
            next_seq: 0,
        }
    }

    pub fn add(&mut self, id: u64, node: N) {
        self.nodes.insert(id, node);
    }

    /// Crash a node: it stops, and messages still addressed to it are lost.
    pub fn kill(&mut self, id: u64) {
        self.nodes.remove(&id);
    }

    pub fn node(&self, id: u64) -> &N {
        &self.nodes[&id]
    }

    pub fn live_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&u64, &N)> {
        self.nodes.iter()
    }

    /// Feed an external event (a start, a suspicion) to one node and post what it sends.
    /// The event may return the module's own action type, if it converts into [`Out`].
    pub fn act<O: Into<Out<N::Msg>>>(
        &mut self,
        id: u64,
        event: impl FnOnce(&mut N, u64) -> Vec<O>,
    ) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let outs = event(node, now).into_iter().map(Into::into).collect();
        self.post(id, outs);
    }

    fn post(&mut self, from: u64, outs: Vec<Out<N::Msg>>) {
        for out in outs {
            match out {
                Out::To(to, msg) => self.post_one(from, to, msg),
                Out::All(msg) => {
                    for to in self.live_ids() {
                        if to != from {
                            self.post_one(from, to, msg.clone());
                        }
                    }
                }
            }
        }
    }

    fn post_one(&mut self, from: u64, to: u64, msg: N::Msg) {
        let extra = if self.max_extra_ticks == 0 {
            0
        } else {
            self.rng.below(self.max_extra_ticks + 1)
        };
        let tail = self.channel_tail.entry((from, to)).or_insert(0);
        let deliver_at = (self.now + self.tick_ms * (1 + extra)).max(*tail);
        *tail = deliver_at;
        self.log.push((from, to, msg.clone()));
        self.in_flight.push(Packet {
            seq: self.next_seq,
            from,
            to,
            deliver_at,
            msg,
        });
        self.next_seq += 1;
    }

    /// Advance one tick: deliver what is due, in a random order that keeps each channel FIFO,
    /// then let every node fire its timeouts.
    pub fn step(&mut self) {
        self.now += self.tick_ms;
        let now = self.now;
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| p.deliver_at <= now);
        self.in_flight = later;
        while !due.is_empty() {
            let picked = self.rng.below(due.len() as u64) as usize;
            let channel = (due[picked].from, due[picked].to);
            // The oldest packet on the picked channel goes first: FIFO per channel.
            let oldest = (0..due.len())
                .filter(|&i| (due[i].from, due[i].to) == channel)
                .min_by_key(|&i| due[i].seq)
                .unwrap_or(picked);
            let packet = due.swap_remove(oldest);
            if let Some(node) = self.nodes.get_mut(&packet.to) {
                let outs = node.on_message(packet.from, packet.msg, now);
                self.post(packet.to, outs);
            }
        }
        for id in self.live_ids() {
            if let Some(node) = self.nodes.get_mut(&id) {
                let outs = node.on_tick(now);
                self.post(id, outs);
            }
        }
    }

    /// Step until nothing is in flight and no node is busy. False if `max_ms` ran out first.
    pub fn run_until_quiet(&mut self, max_ms: u64) -> bool {
        let stop_at = self.now + max_ms;
        while self.now < stop_at {
            if self.in_flight.is_empty() && self.nodes.values().all(|n| !n.is_busy()) {
                return true;
            }
            self.step();
        }
        false
    }

    /// Step for `ms` milliseconds, whatever happens.
    pub fn run_for(&mut self, ms: u64) {
        let stop_at = self.now + ms;
        while self.now < stop_at {
            self.step();
        }
    }
}
