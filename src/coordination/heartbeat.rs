//! A failure detector for one peer (seed 003: "monitor the group leader"), free of clocks.
//!
//! [`HeartbeatMonitor`] remembers when the peer was last heard from ([`HeartbeatMonitor::record`])
//! and suspects it once it has been silent for longer than the deadline. The interval says how
//! often the driver should ping the peer (or expects it to beat); the deadline is the silence
//! tolerated, normally a few intervals so that one lost beat is not a death sentence. Times are
//! milliseconds on a monotonic clock of the caller's choosing, passed in.
//!
//! Guarantees:
//! - a peer heard from at `t` is not suspected at any time up to and including
//!   `t + deadline` ([`HeartbeatMonitor::next_deadline`]), and is suspected at every time after
//!   it until it is heard from again;
//! - a fresh monitor counts its creation as a beat, so a peer is not suspected before it had a
//!   chance to answer;
//! - a beat recorded with an older timestamp than the last one (a reordered report) never moves
//!   the deadline backwards.
//!
//! Not guaranteed: that a suspected peer is dead (it may be slow, or the network may be), nor
//! that a dead peer is suspected sooner than `deadline` after its last beat. Under seed 003's
//! assumption of bounded message delay, choosing `deadline` above interval plus round trip makes
//! suspicion accurate; in general it is only a hint to start an election.

use std::fmt;

/// The deadline was shorter than the interval, or the interval was zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHeartbeatTiming {
    pub interval_ms: u64,
    pub deadline_ms: u64,
}

impl fmt::Display for InvalidHeartbeatTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heartbeat interval {} ms must be positive and no longer than the deadline {} ms",
            self.interval_ms, self.deadline_ms
        )
    }
}

impl std::error::Error for InvalidHeartbeatTiming {}

/// What one node knows about the liveness of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatMonitor {
    interval_ms: u64,
    deadline_ms: u64,
    /// When the peer was last heard from (or when monitoring began).
    last_heard: u64,
    /// When we last pinged the peer (or when monitoring began).
    last_ping: u64,
}

impl HeartbeatMonitor {
    /// Start monitoring at `now`. A deadline shorter than the interval would suspect a healthy
    /// peer between every two beats, so it is refused, as is a zero interval.
    pub fn new(
        interval_ms: u64,
        deadline_ms: u64,
        now: u64,
    ) -> Result<Self, InvalidHeartbeatTiming> {
        if interval_ms == 0 || deadline_ms < interval_ms {
            return Err(InvalidHeartbeatTiming {
                interval_ms,
                deadline_ms,
            });
        }
        Ok(HeartbeatMonitor {
            interval_ms,
            deadline_ms,
            last_heard: now,
            last_ping: now,
        })
    }

    /// The peer was heard from at `now` (a heartbeat, a ping reply, or any message).
    pub fn record(&mut self, now: u64) {
        self.last_heard = self.last_heard.max(now);
    }

    /// When the peer was last heard from.
    pub fn last_heard(&self) -> u64 {
        self.last_heard
    }

    /// The last instant at which the peer is still trusted without a new beat.
    pub fn next_deadline(&self) -> u64 {
        self.last_heard.saturating_add(self.deadline_ms)
    }

    /// Whether the peer has been silent past its deadline.
    pub fn is_suspect(&self, now: u64) -> bool {
        now > self.next_deadline()
    }

    /// How many whole intervals have passed since the peer was last heard from.
    pub fn missed_beats(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_heard) / self.interval_ms
    }

    /// We pinged the peer at `now`.
    pub fn ping_sent(&mut self, now: u64) {
        self.last_ping = self.last_ping.max(now);
    }

    /// When the next ping is due.
    pub fn next_ping_at(&self) -> u64 {
        self.last_ping.saturating_add(self.interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(now: u64) -> HeartbeatMonitor {
        HeartbeatMonitor::new(100, 300, now).expect("valid timing")
    }

    #[test]
    fn a_fresh_monitor_trusts_the_peer_until_the_first_deadline() {
        let m = monitor(1_000);
        assert_eq!(m.next_deadline(), 1_300);
        assert!(!m.is_suspect(1_000));
        assert!(!m.is_suspect(1_300), "the deadline itself is still on time");
        assert!(m.is_suspect(1_301), "one millisecond late is suspect");
    }

    #[test]
    fn a_beat_moves_the_deadline_and_clears_suspicion() {
        let mut m = monitor(0);
        assert!(m.is_suspect(400));
        m.record(400);
        assert!(!m.is_suspect(400));
        assert_eq!(m.next_deadline(), 700);
        assert!(!m.is_suspect(700));
        assert!(m.is_suspect(701));
    }

    #[test]
    fn a_late_reported_older_beat_does_not_move_the_deadline_back() {
        let mut m = monitor(0);
        m.record(250);
        m.record(120);
        assert_eq!(m.last_heard(), 250);
        assert_eq!(m.next_deadline(), 550);
    }

    #[test]
    fn missed_beats_count_whole_intervals_of_silence() {
        let m = monitor(0);
        assert_eq!(m.missed_beats(0), 0);
        assert_eq!(m.missed_beats(99), 0);
        assert_eq!(m.missed_beats(100), 1);
        assert_eq!(m.missed_beats(299), 2);
        assert_eq!(m.missed_beats(301), 3);
    }

    #[test]
    fn a_time_before_the_last_beat_is_neither_suspect_nor_missed() {
        let m = monitor(500);
        assert!(!m.is_suspect(10));
        assert_eq!(m.missed_beats(10), 0);
    }

    #[test]
    fn pings_are_due_one_interval_after_the_last() {
        let mut m = monitor(0);
        assert_eq!(m.next_ping_at(), 100);
        m.ping_sent(100);
        assert_eq!(m.next_ping_at(), 200);
        m.ping_sent(50);
        assert_eq!(m.next_ping_at(), 200, "an older ping changes nothing");
    }

    #[test]
    fn timing_that_would_always_suspect_is_refused() {
        assert!(HeartbeatMonitor::new(0, 10, 0).is_err());
        let err = HeartbeatMonitor::new(200, 100, 0).unwrap_err();
        assert_eq!(
            err,
            InvalidHeartbeatTiming {
                interval_ms: 200,
                deadline_ms: 100
            }
        );
        assert!(err.to_string().contains("200 ms"));
        assert!(
            HeartbeatMonitor::new(100, 100, 0).is_ok(),
            "equal is allowed"
        );
    }

    #[test]
    fn times_near_the_end_of_the_clock_do_not_overflow() {
        let mut m = monitor(u64::MAX - 10);
        assert_eq!(m.next_deadline(), u64::MAX);
        assert!(!m.is_suspect(u64::MAX));
        m.ping_sent(u64::MAX);
        assert_eq!(m.next_ping_at(), u64::MAX);
    }

    #[test]
    fn a_dead_peer_is_suspected_right_after_its_deadline_in_a_simulated_run() {
        // The peer beats every 100 ms until it dies at 1_000; we check every 10 ms.
        let mut m = monitor(0);
        let mut first_suspicion = None;
        for now in (0..=2_000).step_by(10) {
            if now % 100 == 0 && now <= 1_000 {
                m.record(now);
            }
            if first_suspicion.is_none() && m.is_suspect(now) {
                first_suspicion = Some(now);
            }
        }
        assert_eq!(first_suspicion, Some(1_310));
    }
}
