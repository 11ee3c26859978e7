//! Berkeley clock synchronisation (seed 000), and a simulated drifting clock to test it with.
//!
//! One round: the master asks every member for its clock, notes the round-trip time and its own
//! clock when each reply arrives, and calls [`synchronise`]. Each member's offset from the master
//! is estimated as `reported + rtt/2 - master_at_receipt` (the reply is assumed to have spent
//! half the round trip in flight). Offsets further than `max_deviation_ms` from the median
//! offset are outliers: they do not count in the average, so one broken clock cannot drag the
//! group. Every clock, the master's and the outliers' included, is then told how far to move
//! to reach the average.
//!
//! Guarantees, at the instant of the round (drift during the round itself neglected):
//! - applying the adjustments puts every clock within `rtt/2 + 1 ms` of the average of the
//!   counted clocks, where `rtt` is that clock's round trip (exactly `1 ms` if the delays both
//!   ways are equal; the master's own error is the rounding alone), so any two clocks end within
//!   the sum of their two bounds;
//! - only clocks within `max_deviation_ms` of the median count; when more than half of the
//!   clocks lie within `max_deviation_ms` of one another the median is among them, so a minority
//!   of clocks, however wrong, cannot drag the average away from the majority;
//! - if every clock is an outlier (two clocks far apart, say), the master's clock is the
//!   reference, and the round still converges everyone onto it.
//!
//! Not guaranteed:
//! - monotonic clocks: a negative adjustment steps a clock backwards; a driver that needs
//!   monotonic time must slew (spread the adjustment out) instead of stepping;
//! - accuracy against real time (UTC): Berkeley gives agreement, not correctness;
//! - agreement between rounds: clocks drift apart again at the difference of their drift
//!   rates until the next round (seed 000 runs one every `delta / (2 * rho)` seconds for that).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One member's reply to the master's clock poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReport {
    pub member: u64,
    /// The member's clock when it replied, in milliseconds.
    pub reported_ms: i64,
    /// The master-measured round trip of the poll.
    pub rtt_ms: u64,
    /// The master's clock when the reply arrived (the master's reading for this member).
    pub master_at_receipt_ms: i64,
}

/// The result of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// How many milliseconds to add to each clock, the master's included, keyed by node id.
    pub adjustments: BTreeMap<u64, i64>,
    /// The members whose clocks were too far off to count in the average (they are adjusted
    /// all the same).
    pub outliers: BTreeSet<u64>,
    /// The agreed time as an offset from the master's clock.
    pub average_offset_ms: i64,
}

/// A round that could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BerkeleyError {
    /// Two reports for the same member, or a report for the master itself.
    DuplicateMember(u64),
}

impl fmt::Display for BerkeleyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BerkeleyError::DuplicateMember(id) => {
                write!(f, "clock of node {id} reported twice in one round")
            }
        }
    }
}

impl std::error::Error for BerkeleyError {}

/// Compute one Berkeley round: the adjustment of every clock, the master's included.
pub fn synchronise(
    master: u64,
    reports: &[ClockReport],
    max_deviation_ms: u64,
) -> Result<SyncOutcome, BerkeleyError> {
    // Offsets from the master in half milliseconds, so that rtt/2 loses nothing to rounding.
    let mut offsets: BTreeMap<u64, i128> = BTreeMap::new();
    offsets.insert(master, 0);
    for r in reports {
        let half_ms = 2 * i128::from(r.reported_ms) + i128::from(r.rtt_ms)
            - 2 * i128::from(r.master_at_receipt_ms);
        if offsets.insert(r.member, half_ms).is_some() {
            return Err(BerkeleyError::DuplicateMember(r.member));
        }
    }

    let median = median(offsets.values().copied());
    let bound = 2 * i128::from(max_deviation_ms);
    let (counted, outliers): (Vec<_>, Vec<_>) = offsets
        .iter()
        .partition(|(_, offset)| (**offset - median).abs() <= bound);
    let average = if counted.is_empty() {
        0 // Nobody agrees with anybody: the master's clock is the reference.
    } else {
        let sum: i128 = counted.iter().map(|(_, offset)| **offset).sum();
        round_div(sum, counted.len() as i128)
    };

    let adjustments = offsets
        .iter()
        .map(|(&id, &offset)| (id, to_ms(average - offset)))
        .collect();
    Ok(SyncOutcome {
        adjustments,
        outliers: outliers.into_iter().map(|(&id, _)| id).collect(),
        average_offset_ms: to_ms(average),
    })
}

/// The median (the mean of the middle two for an even count, rounded down); 0 if empty.
fn median(values: impl Iterator<Item = i128>) -> i128 {
    let mut sorted: Vec<i128> = values.collect();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    if sorted.is_empty() {
        0
    } else if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]).div_euclid(2)
    } else {
        sorted[mid]
    }
}

/// `n / d` rounded to the nearest integer (halves up), for `d > 0`.
fn round_div(n: i128, d: i128) -> i128 {
    (2 * n + d).div_euclid(2 * d)
}

/// Half milliseconds to whole milliseconds, rounded, saturating at the ends of `i64`.
fn to_ms(half_ms: i128) -> i64 {
    let ms = round_div(half_ms, 2);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// A clock that is off by `offset_ms` and runs fast (or slow, if negative) by `drift_ppm`
/// parts per million, over a base time the caller passes in: no system clock is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimulatedClock {
    pub offset_ms: i64,
    pub drift_ppm: i64,
}

impl SimulatedClock {
    pub fn new(offset_ms: i64, drift_ppm: i64) -> Self {
        SimulatedClock {
            offset_ms,
            drift_ppm,
        }
    }

    /// What this clock shows when the true time is `base_ms` (drift accrues from base 0).
    pub fn read(&self, base_ms: u64) -> i64 {
        let base = i128::from(base_ms);
        let drift = base * i128::from(self.drift_ppm) / 1_000_000;
        let shown = base + i128::from(self.offset_ms) + drift;
        i64::try_from(shown).unwrap_or(if shown < 0 { i64::MIN } else { i64::MAX })
    }

    /// Step the clock by `delta_ms` (what [`synchronise`] returned for it).
    pub fn adjust(&mut self, delta_ms: i64) {
        self.offset_ms = self.offset_ms.saturating_add(delta_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: u64 = 1;

    fn report(
        member: u64,
        reported_ms: i64,
        rtt_ms: u64,
        master_at_receipt_ms: i64,
    ) -> ClockReport {
        ClockReport {
            member,
            reported_ms,
            rtt_ms,
            master_at_receipt_ms,
        }
    }

    /// One round over simulated clocks at true time `base`: `delays[i]` is the one-way delay
    /// (out, back) of member `i`'s poll. Applies the adjustments and returns the outcome.
    fn run_round(
        master: &mut SimulatedClock,
        members: &mut BTreeMap<u64, (SimulatedClock, u64, u64)>,
        base: u64,
        bound_ms: u64,
    ) -> SyncOutcome {
        let reports: Vec<ClockReport> = members
            .iter()
            .map(|(&id, &(clock, out, back))| {
                let sent = master.read(base);
                let received = master.read(base + out + back);
                ClockReport {
                    member: id,
                    reported_ms: clock.read(base + out),
                    rtt_ms: u64::try_from(received - sent).expect("time runs forward"),
                    master_at_receipt_ms: received,
                }
            })
            .collect();
        let outcome = synchronise(MASTER, &reports, bound_ms).expect("distinct members");
        master.adjust(outcome.adjustments[&MASTER]);
        for (id, (clock, _, _)) in members.iter_mut() {
            clock.adjust(outcome.adjustments[id]);
        }
        outcome
    }

    fn spread(clocks: &[SimulatedClock], base: u64) -> i64 {
        let readings: Vec<i64> = clocks.iter().map(|c| c.read(base)).collect();
        readings.iter().max().unwrap() - readings.iter().min().unwrap()
    }

    #[test]
    fn the_offset_is_corrected_by_half_the_round_trip() {
        // The member showed 1_000 when it replied; the reply took 20 of the 40 ms round trip,
        // so it shows 1_020 when the master, at 1_010, receives it: 10 ms ahead.
        let outcome = synchronise(MASTER, &[report(2, 1_000, 40, 1_010)], 1_000).unwrap();
        assert_eq!(outcome.average_offset_ms, 5);
        assert_eq!(outcome.adjustments[&MASTER], 5);
        assert_eq!(outcome.adjustments[&2], -5);
        assert!(outcome.outliers.is_empty());
    }

    #[test]
    fn the_master_alone_needs_no_adjustment() {
        let outcome = synchronise(MASTER, &[], 10).unwrap();
        assert_eq!(outcome.adjustments, BTreeMap::from([(MASTER, 0)]));
    }

    #[test]
    fn every_clock_is_moved_to_the_average_master_included() {
        let reports = [report(2, 130, 0, 100), report(3, 70, 0, 100)];
        let outcome = synchronise(MASTER, &reports, 1_000).unwrap();
        // Offsets 0, +30, -30: the average is the master's own time.
        assert_eq!(
            outcome.adjustments,
            BTreeMap::from([(1, 0), (2, -30), (3, 30)])
        );
        let reports = [report(2, 160, 0, 100), report(3, 130, 0, 100)];
        let outcome = synchronise(MASTER, &reports, 1_000).unwrap();
        assert_eq!(
            outcome.adjustments,
            BTreeMap::from([(1, 30), (2, -30), (3, 0)])
        );
    }

    #[test]
    fn an_outlier_does_not_move_the_average_but_is_adjusted_too() {
        let honest = [
            report(2, 110, 4, 100),
            report(3, 95, 6, 100),
            report(4, 104, 2, 100),
        ];
        let without = synchronise(MASTER, &honest, 50).unwrap();
        let mut with_outlier = honest.to_vec();
        with_outlier.push(report(5, 3_600_100, 4, 100));
        let with = synchronise(MASTER, &with_outlier, 50).unwrap();
        assert_eq!(with.outliers, BTreeSet::from([5]));
        assert_eq!(with.average_offset_ms, without.average_offset_ms);
        for id in [1, 2, 3, 4] {
            assert_eq!(with.adjustments[&id], without.adjustments[&id]);
        }
        assert_eq!(with.adjustments[&5], without.average_offset_ms - 3_600_002);
    }

    #[test]
    fn a_master_far_from_the_majority_is_itself_the_outlier() {
        let reports = [
            report(2, 500, 0, 0),
            report(3, 510, 0, 0),
            report(4, 490, 0, 0),
        ];
        let outcome = synchronise(MASTER, &reports, 50).unwrap();
        assert_eq!(outcome.outliers, BTreeSet::from([MASTER]));
        assert_eq!(outcome.average_offset_ms, 500);
        assert_eq!(outcome.adjustments[&MASTER], 500);
    }

    #[test]
    fn when_nobody_agrees_the_master_is_the_reference() {
        let outcome = synchronise(MASTER, &[report(2, 10_000, 0, 0)], 50).unwrap();
        assert_eq!(outcome.outliers, BTreeSet::from([1, 2]));
        assert_eq!(outcome.adjustments, BTreeMap::from([(1, 0), (2, -10_000)]));
    }

    #[test]
    fn a_member_reported_twice_or_the_master_reported_is_an_error() {
        let twice = [report(2, 0, 0, 0), report(2, 5, 0, 0)];
        assert_eq!(
            synchronise(MASTER, &twice, 50),
            Err(BerkeleyError::DuplicateMember(2))
        );
        assert_eq!(
            synchronise(MASTER, &[report(MASTER, 0, 0, 0)], 50),
            Err(BerkeleyError::DuplicateMember(MASTER))
        );
    }

    #[test]
    fn extreme_readings_saturate_instead_of_overflowing() {
        let outcome =
            synchronise(MASTER, &[report(2, i64::MAX, u64::MAX, i64::MIN)], u64::MAX).unwrap();
        assert_eq!(outcome.adjustments[&2], i64::MIN);
    }

    #[test]
    fn a_simulated_clock_shows_its_offset_and_drift() {
        let mut clock = SimulatedClock::new(-250, 100);
        assert_eq!(clock.read(0), -250);
        assert_eq!(clock.read(10_000_000), 10_000_000 - 250 + 1_000);
        clock.adjust(250);
        assert_eq!(clock.read(0), 0);
        assert_eq!(SimulatedClock::default().read(42), 42);
    }

    #[test]
    fn skewed_drifting_clocks_stay_within_the_bound_over_many_rounds() {
        // Symmetric delays: right after a round the clocks agree within the rounding (2 ms
        // between two clocks) plus the drift accrued during the round trip (negligible here).
        const ROUND_EVERY_MS: u64 = 10_000;
        let mut master = SimulatedClock::new(0, 50);
        let mut members = BTreeMap::from([
            (2, (SimulatedClock::new(120, -80), 3, 3)),
            (3, (SimulatedClock::new(-75, 20), 7, 7)),
            (4, (SimulatedClock::new(40, 0), 12, 12)),
            (5, (SimulatedClock::new(3_600_000, 30), 5, 5)),
        ]);
        let clocks = |master: &SimulatedClock,
                      members: &BTreeMap<u64, (SimulatedClock, u64, u64)>| {
            let mut all = vec![*master];
            all.extend(members.values().map(|(c, _, _)| *c));
            all
        };
        assert!(spread(&clocks(&master, &members), 0) > 3_600_000);
        for round in 0..5 {
            let base = round * ROUND_EVERY_MS;
            let outcome = run_round(&mut master, &mut members, base, 200);
            let expected_outliers = if round == 0 {
                BTreeSet::from([5])
            } else {
                BTreeSet::new()
            };
            assert_eq!(outcome.outliers, expected_outliers, "round {round}");
            let after = base + 30;
            assert!(
                spread(&clocks(&master, &members), after) <= 2,
                "round {round}"
            );
            // Between rounds the clocks drift apart by at most 130 ppm of the interval (1.3 ms).
            let before_next = base + ROUND_EVERY_MS - 1;
            assert!(
                spread(&clocks(&master, &members), before_next) <= 4,
                "round {round}"
            );
        }
    }

    #[test]
    fn asymmetric_delays_leave_an_error_within_half_the_round_trip() {
        // Member 2's poll takes 2 ms out and 38 ms back: rtt/2 = 20 ms, true error 18 ms.
        let mut master = SimulatedClock::new(0, 0);
        let mut members = BTreeMap::from([(2, (SimulatedClock::new(500, 0), 2, 38))]);
        run_round(&mut master, &mut members, 1_000, 1_000);
        let error = (members[&2].0.read(2_000) - master.read(2_000)).abs();
        assert!(error <= 20 + 1, "error {error} ms");
        assert!(error > 0, "the asymmetry is real, and not corrected");
    }
}
