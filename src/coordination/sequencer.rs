//! Totally ordered multicast through a sequencer: every member delivers the same updates in the
//! same order, the order of their sequence numbers.
//!
//! A sequencer numbers each update 1, 2, 3, … with no gaps and multicasts it with its number.
//! Members may receive numbers out of order (the sequencer's sends race each other) or miss some
//! (a member that joins late, or one the sequencer's send never reached). [`HoldBack`] is one
//! member's delivery queue: it delivers strictly in number order, holds back a number until all
//! smaller ones are delivered, drops duplicates, and says which numbers have been missing for
//! too long, so the driver can fetch them from the sequencer's log.
//!
//! In Obelix the sequencer is the database actor: each update's transaction takes the next
//! number of a counter row (its lock serialises the writers, so commit order is number order)
//! and logs the update under that number in the same transaction. The numbers are therefore
//! gap-free and durable, and survive any crash that the updates themselves survive. This is
//! why Obelix uses a sequencer rather than seed 000's Lamport-clock algorithm: an acknowledged
//! update must be committed anyway, the commit order is the only order that survives a crash,
//! and Lamport's algorithm waits for every member's acknowledgement, so it stalls while one is
//! down and does not admit members joining at run time.
//!
//! Guarantees, given a gap-free numbering and a log that can replay any number:
//! - a member delivers each number at most once, in increasing order, without skipping any
//!   number after the one it was anchored at;
//! - so any two members deliver the same sequence on the numbers both deliver, and members that
//!   start at the same anchor deliver identical sequences.
//!
//! Not guaranteed: progress if the log cannot replay a missing number (delivery stops at the
//! gap and [`HoldBack::missing`] keeps reporting it); and nothing before the anchor: a member
//! anchored at `n` never delivers `n` or below.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// One member's hold-back queue.
#[derive(Debug, Clone)]
pub struct HoldBack<T> {
    /// The number to deliver next; `None` until [`HoldBack::anchor`].
    next: Option<u64>,
    /// Received, not yet deliverable.
    held: BTreeMap<u64, T>,
    /// Since when (ms) the number `next` has been missing while later ones wait.
    gap_since_ms: Option<u64>,
}

impl<T> Default for HoldBack<T> {
    fn default() -> Self {
        Self {
            next: None,
            held: BTreeMap::new(),
            gap_since_ms: None,
        }
    }
}

impl<T> HoldBack<T> {
    /// An unanchored queue: it holds everything until [`HoldBack::anchor`] says where to start.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts delivery after `last_delivered` (the sequencer's last number when this member
    /// joined; 0 for "from the beginning"). Held numbers at or below it are dropped; returns what
    /// is deliverable now. Anchoring again is ignored: a member's place in the order never moves.
    pub fn anchor(&mut self, last_delivered: u64, now_ms: u64) -> Vec<(u64, T)> {
        if self.next.is_some() {
            return Vec::new();
        }
        self.next = Some(last_delivered + 1);
        self.held = self.held.split_off(&(last_delivered + 1));
        self.release(now_ms)
    }

    /// Takes number `seq` and returns every update now deliverable, in order.
    pub fn receive(&mut self, seq: u64, item: T, now_ms: u64) -> Vec<(u64, T)> {
        if self.next.is_some_and(|next| seq < next) {
            return Vec::new(); // delivered already
        }
        self.held.entry(seq).or_insert(item);
        self.release(now_ms)
    }

    fn release(&mut self, now_ms: u64) -> Vec<(u64, T)> {
        let Some(next) = self.next.as_mut() else {
            return Vec::new();
        };
        let mut delivered = Vec::new();
        while let Some(item) = self.held.remove(next) {
            delivered.push((*next, item));
            *next += 1;
        }
        if self.held.is_empty() {
            self.gap_since_ms = None;
        } else if !delivered.is_empty() || self.gap_since_ms.is_none() {
            // A new gap (or the first one): give the racing send a moment before fetching.
            self.gap_since_ms = Some(now_ms);
        }
        delivered
    }

    /// The numbers missing for at least `patience_ms` while later ones wait: fetch them from the
    /// log and [`HoldBack::receive`] them.
    pub fn missing(&self, now_ms: u64, patience_ms: u64) -> Option<RangeInclusive<u64>> {
        let next = self.next?;
        let since = self.gap_since_ms?;
        let (&first_held, _) = self.held.first_key_value()?;
        (now_ms.saturating_sub(since) >= patience_ms).then_some(next..=first_held - 1)
    }

    /// The number delivered last, once anchored.
    pub fn last_delivered(&self) -> Option<u64> {
        self.next.map(|next| next - 1)
    }

    /// How many numbers wait behind a gap.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(delivered: Vec<(u64, &str)>) -> Vec<u64> {
        delivered.into_iter().map(|(seq, _)| seq).collect()
    }

    #[test]
    fn delivers_in_order_whatever_the_arrival_order() {
        let mut queue = HoldBack::new();
        assert!(queue.anchor(0, 0).is_empty());
        assert!(queue.receive(2, "b", 0).is_empty());
        assert!(queue.receive(3, "c", 0).is_empty());
        assert_eq!(numbers(queue.receive(1, "a", 0)), vec![1, 2, 3]);
        assert_eq!(queue.last_delivered(), Some(3));
        assert_eq!(queue.held(), 0);
    }

    #[test]
    fn duplicates_and_old_numbers_are_dropped() {
        let mut queue = HoldBack::new();
        queue.anchor(0, 0);
        assert_eq!(numbers(queue.receive(1, "a", 0)), vec![1]);
        assert!(queue.receive(1, "a again", 0).is_empty());
        assert!(queue.receive(3, "c", 0).is_empty());
        assert!(queue.receive(3, "c again", 0).is_empty());
        let delivered = queue.receive(2, "b", 0);
        assert_eq!(delivered, vec![(2, "b"), (3, "c")]);
    }

    #[test]
    fn holds_everything_until_anchored_then_drops_what_came_before_the_anchor() {
        let mut queue = HoldBack::new();
        assert!(queue.receive(5, "e", 0).is_empty());
        assert!(queue.receive(7, "g", 0).is_empty());
        assert!(queue.receive(6, "f", 0).is_empty());
        assert_eq!(queue.last_delivered(), None);
        assert_eq!(numbers(queue.anchor(5, 0)), vec![6, 7]);
        // A second anchor does not move the member's place in the order.
        assert!(queue.anchor(100, 0).is_empty());
        assert_eq!(numbers(queue.receive(8, "h", 0)), vec![8]);
    }

    #[test]
    fn a_gap_is_reported_only_after_the_patience() {
        let mut queue = HoldBack::new();
        queue.anchor(0, 0);
        queue.receive(1, "a", 0);
        queue.receive(4, "d", 100);
        queue.receive(5, "e", 120);
        assert_eq!(queue.missing(150, 100), None);
        assert_eq!(queue.missing(200, 100), Some(2..=3));
        // Filling part of it delivers that part; what is still missing is a new gap.
        assert_eq!(numbers(queue.receive(2, "b", 210)), vec![2]);
        assert_eq!(queue.missing(250, 100), None);
        assert_eq!(queue.missing(310, 100), Some(3..=3));
        assert_eq!(numbers(queue.receive(3, "c", 320)), vec![3, 4, 5]);
        assert_eq!(queue.missing(10_000, 100), None);
    }

    #[test]
    fn members_fed_the_same_numbers_in_different_orders_deliver_the_same_sequence() {
        let arrivals: [&[u64]; 3] = [
            &[1, 2, 3, 4, 5, 6],
            &[6, 5, 4, 3, 2, 1],
            &[2, 4, 6, 1, 3, 5],
        ];
        let sequences: Vec<Vec<u64>> = arrivals
            .iter()
            .map(|order| {
                let mut queue = HoldBack::new();
                queue.anchor(0, 0);
                order
                    .iter()
                    .flat_map(|&seq| queue.receive(seq, seq * 10, 0))
                    .map(|(seq, item)| {
                        assert_eq!(item, seq * 10);
                        seq
                    })
                    .collect()
            })
            .collect();
        assert!(sequences.iter().all(|s| s == &[1, 2, 3, 4, 5, 6]));
    }
}
