//! Vector clocks keyed by node id (seed 001: each server counts the requests it handles).
//!
//! Entry `n` of a [`VectorClock`] counts the events (requests handled) of node `n` that the
//! holder has seen, directly or through a merged clock. A missing entry means zero, and zero
//! entries are never stored, so two clocks that compare [`Causality::Equal`] are also `==` and
//! serialise identically. In JSON a clock is an object from node id to count: `{"1":3,"7":1}`.
//!
//! Guarantees: [`VectorClock::compare`] is the causal partial order — `Before` exactly when every
//! entry is `<=` the other's and one is `<`, `Concurrent` when each has an entry above the
//! other's; [`VectorClock::merge`] is the entry-wise maximum (commutative, associative,
//! idempotent); counts saturate at `u64::MAX` rather than overflow.
//!
//! Not guaranteed: that ids are unique or that a node increments only its own entry; a clock
//! says which events happened before which, not when, and orders nothing it has not seen (use
//! [`super::sequencer`] for one global order).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How two vector clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Causality {
    /// Every event of `self` is known to `other`, which knows more.
    Before,
    /// `self` knows every event of `other`, and more.
    After,
    Equal,
    /// Each knows an event the other does not.
    Concurrent,
}

/// A vector clock: node id to the number of that node's events seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<u64, u64>", into = "BTreeMap<u64, u64>")]
pub struct VectorClock {
    /// Only non-zero counts.
    counts: BTreeMap<u64, u64>,
}

impl From<BTreeMap<u64, u64>> for VectorClock {
    /// Drops zero entries, so that equal clocks are `==`.
    fn from(mut counts: BTreeMap<u64, u64>) -> Self {
        counts.retain(|_, count| *count > 0);
        VectorClock { counts }
    }
}

impl From<VectorClock> for BTreeMap<u64, u64> {
    fn from(clock: VectorClock) -> Self {
        clock.counts
    }
}

impl VectorClock {
    /// The clock that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many of `node`'s events this clock has seen.
    pub fn get(&self, node: u64) -> u64 {
        self.counts.get(&node).copied().unwrap_or(0)
    }

    /// Count one more event of `node` (a request it handled); returns its new count.
    pub fn increment(&mut self, node: u64) -> u64 {
        let count = self.counts.entry(node).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Take in everything `other` has seen: the entry-wise maximum.
    pub fn merge(&mut self, other: &VectorClock) {
        for (&node, &count) in &other.counts {
            let mine = self.counts.entry(node).or_insert(0);
            *mine = (*mine).max(count);
        }
    }

    /// How `self` relates to `other` in causal order.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let nodes = self.counts.keys().chain(other.counts.keys());
        let (mut some_less, mut some_greater) = (false, false);
        for &node in nodes {
            let (mine, theirs) = (self.get(node), other.get(node));
            some_less |= mine < theirs;
            some_greater |= mine > theirs;
        }
        match (some_less, some_greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether `self` happened strictly before `other`.
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == Causality::Before
    }

    /// The total number of events seen, over all nodes (saturating).
    pub fn total(&self) -> u64 {
        self.counts
            .values()
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// The non-zero entries, by ascending node id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts.iter().map(|(&node, &count)| (node, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(entries: &[(u64, u64)]) -> VectorClock {
        VectorClock::from(entries.iter().copied().collect::<BTreeMap<_, _>>())
    }

    #[test]
    fn a_new_clock_has_seen_nothing() {
        let c = VectorClock::new();
        assert_eq!(c.get(1), 0);
        assert_eq!(c.total(), 0);
        assert_eq!(c.compare(&VectorClock::default()), Causality::Equal);
    }

    #[test]
    fn increment_counts_one_node_s_events() {
        let mut c = VectorClock::new();
        assert_eq!(c.increment(7), 1);
        assert_eq!(c.increment(7), 2);
        c.increment(3);
        assert_eq!((c.get(7), c.get(3), c.get(1)), (2, 1, 0));
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![(3, 1), (7, 2)]);
    }

    #[test]
    fn increment_saturates_instead_of_overflowing() {
        let mut c = clock(&[(1, u64::MAX)]);
        assert_eq!(c.increment(1), u64::MAX);
        c.increment(2);
        assert_eq!(c.total(), u64::MAX);
    }

    #[test]
    fn merge_takes_the_entry_wise_maximum() {
        let mut a = clock(&[(1, 3), (2, 1)]);
        a.merge(&clock(&[(2, 4), (3, 2)]));
        assert_eq!(a, clock(&[(1, 3), (2, 4), (3, 2)]));
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent() {
        let (a, b, c) = (
            clock(&[(1, 3), (2, 1)]),
            clock(&[(2, 4)]),
            clock(&[(1, 1), (3, 9)]),
        );
        let merged = |x: &VectorClock, y: &VectorClock| {
            let mut m = x.clone();
            m.merge(y);
            m
        };
        assert_eq!(merged(&a, &b), merged(&b, &a));
        assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        assert_eq!(merged(&a, &a), a);
    }

    #[test]
    fn compare_finds_before_after_equal_and_concurrent() {
        let a = clock(&[(1, 1)]);
        let b = clock(&[(1, 2), (2, 1)]);
        let c = clock(&[(2, 5)]);
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert_eq!(a.compare(&c), Causality::Concurrent);
        assert_eq!(c.compare(&a), Causality::Concurrent);
        assert!(a.happened_before(&b));
        assert!(!b.happened_before(&a));
        assert!(!a.happened_before(&c));
    }

    #[test]
    fn a_missing_entry_counts_as_zero_in_comparisons() {
        assert_eq!(
            clock(&[(1, 0), (2, 3)]).compare(&clock(&[(2, 3)])),
            Causality::Equal
        );
        assert_eq!(clock(&[(1, 0), (2, 3)]), clock(&[(2, 3)]));
    }

    #[test]
    fn a_message_exchange_orders_sender_before_receiver() {
        // Server 1 handles a request, then tells server 2, which merges and handles one.
        let mut one = VectorClock::new();
        one.increment(1);
        let sent = one.clone();
        let mut two = VectorClock::new();
        two.increment(2);
        assert_eq!(sent.compare(&two), Causality::Concurrent);
        two.merge(&sent);
        two.increment(2);
        assert!(sent.happened_before(&two));
        one.increment(1);
        assert_eq!(one.compare(&two), Causality::Concurrent);
    }

    #[test]
    fn it_shows_in_json_as_an_object_of_counts_and_reads_back() {
        let c = clock(&[(7, 1), (1, 3)]);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"1":3,"7":1}"#);
        let back: VectorClock = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let with_zero: VectorClock = serde_json::from_str(r#"{"1":3,"7":1,"9":0}"#).unwrap();
        assert_eq!(with_zero, c, "zero entries are dropped on the way in");
        assert_eq!(
            serde_json::to_string(&Causality::Concurrent).unwrap(),
            r#""concurrent""#
        );
    }
}
