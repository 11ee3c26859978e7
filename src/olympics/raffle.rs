//! The raffle (seed 000): every Nth request in the one global order wins.
//!
//! [`Raffle::observe`] is a pure function of a request's position in the global order (numbered
//! from 1): position `p` wins exactly when `p` is a multiple of `n`. Every member that sees the
//! same order therefore picks the same winners without talking to the others, and asking twice
//! about one position gives the same answer. [`Raffle::winners_among`] does the same for a batch
//! of consecutive positions (Obelix's front-ends report their requests in batches, and the
//! sequencer gives each batch the next run of positions).
//!
//! Guarantees: exactly one winner among each block of positions `k*n + 1 ..= (k+1)*n`, so
//! `p / n` winners among the first `p` requests; position 0 (not a position) never wins.
//!
//! Not guaranteed: anything about the order itself — if members number the requests
//! differently, they pick different winners. Nor that a winner is notified only once: a driver
//! that replays a position must remember it announced it.

use std::fmt;
use std::num::NonZeroU64;

/// A raffle with no winners at all was asked for (`n == 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroRaffleInterval;

impl fmt::Display for ZeroRaffleInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a raffle needs every Nth request to win with N at least 1")
    }
}

impl std::error::Error for ZeroRaffleInterval {}

/// Every `n`th request wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raffle {
    every: NonZeroU64,
}

impl Raffle {
    /// A raffle where every `n`th request wins; `n` must be at least 1.
    pub fn new(n: u64) -> Result<Self, ZeroRaffleInterval> {
        NonZeroU64::new(n)
            .map(|every| Raffle { every })
            .ok_or(ZeroRaffleInterval)
    }

    /// The `n` of "every `n`th request".
    pub fn every(&self) -> u64 {
        self.every.get()
    }

    /// Whether the request at `sequence_number` (1 for the first) in the global order wins.
    pub fn observe(&self, sequence_number: u64) -> bool {
        sequence_number != 0 && sequence_number % self.every == 0
    }

    /// How many of the first `sequence_number` requests won.
    pub fn winners_up_to(&self, sequence_number: u64) -> u64 {
        sequence_number / self.every
    }

    /// The winning positions among the `count` consecutive positions after `before` (that is
    /// `before + 1 ..= before + count`), in order.
    pub fn winners_among(&self, before: u64, count: u64) -> impl Iterator<Item = u64> + use<> {
        let every = self.every.get();
        let first = (before / every + 1).saturating_mul(every);
        let last = before.saturating_add(count);
        (0..)
            .map(move |k: u64| first.saturating_add(k.saturating_mul(every)))
            .take_while(move |&p| p <= last && p != 0)
            .take(count as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raffle(n: u64) -> Raffle {
        Raffle::new(n).expect("n > 0")
    }

    #[test]
    fn every_third_request_wins() {
        let r = raffle(3);
        let winners: Vec<u64> = (1..=10).filter(|&p| r.observe(p)).collect();
        assert_eq!(winners, vec![3, 6, 9]);
        assert_eq!(r.winners_up_to(10), 3);
        assert_eq!(r.every(), 3);
    }

    #[test]
    fn batches_of_consecutive_positions_find_the_same_winners_as_one_by_one() {
        let r = raffle(7);
        let batches = [3u64, 0, 11, 1, 6, 20, 7, 7];
        let mut before = 0;
        let mut from_batches = Vec::new();
        for count in batches {
            from_batches.extend(r.winners_among(before, count));
            before += count;
        }
        let one_by_one: Vec<u64> = (1..=before).filter(|&p| r.observe(p)).collect();
        assert_eq!(from_batches, one_by_one);
        assert_eq!(r.winners_among(6, 1).collect::<Vec<_>>(), vec![7]);
        assert_eq!(r.winners_among(7, 6).count(), 0);
    }

    #[test]
    fn with_n_of_one_every_request_wins() {
        let r = raffle(1);
        assert!((1..=100).all(|p| r.observe(p)));
        assert_eq!(r.winners_up_to(100), 100);
    }

    #[test]
    fn position_zero_never_wins() {
        assert!(!raffle(1).observe(0));
        assert!(!raffle(5).observe(0));
    }

    #[test]
    fn n_of_zero_is_refused() {
        assert_eq!(Raffle::new(0), Err(ZeroRaffleInterval));
        assert!(!ZeroRaffleInterval.to_string().is_empty());
    }

    #[test]
    fn exactly_one_winner_in_every_block_of_n_over_a_large_count() {
        let r = raffle(997);
        let total = 1_000_000u64;
        let mut winners_in_block = 0;
        let mut winners = 0;
        for p in 1..=total {
            if r.observe(p) {
                winners_in_block += 1;
                winners += 1;
            }
            if p % 997 == 0 {
                assert_eq!(winners_in_block, 1, "block ending at {p}");
                winners_in_block = 0;
            }
        }
        assert_eq!(winners, total / 997);
        assert_eq!(r.winners_up_to(total), winners);
    }

    #[test]
    fn the_answer_is_the_same_each_time_and_at_the_end_of_the_range() {
        let r = raffle(u64::MAX);
        assert!(!r.observe(u64::MAX - 1));
        assert!(r.observe(u64::MAX));
        assert!(r.observe(u64::MAX), "asking again changes nothing");
        assert!(raffle(2).observe(u64::MAX - 1));
    }
}
