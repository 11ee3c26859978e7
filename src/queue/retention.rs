//! Retention: where a partition's log is cut.
//!
//! A topic may keep messages by age (`retention_ms`), by count per partition
//! (`retention_messages`), both, or neither (the default: keep everything). The cut is an
//! offset: every message below it is deleted, and the partition's `start_offset` moves to it.
//!
//! Guarantees: the cut never moves backwards (never below the current start) nor past the end
//! of the log (so offsets are never reused: the next offset after a restart is at least the
//! start); with both rules, a message goes as soon as either rule says so; a partition keeps at
//! least `retention_messages` messages when only the count rule applies.
//!
//! Not guaranteed: that a message is deleted the instant it expires (the broker cuts every
//! `queue.retention_interval_ms`), nor that consumers read a message before it is cut (a reader
//! behind the start resumes at the start, as Kafka's `auto.offset.reset = earliest`).

use chrono::{DateTime, TimeDelta, Utc};

use crate::queue::QueueError;

/// The longest age limit accepted: 3,650 days. Past it, `now - limit` is not a date.
pub const MAX_AGE_MS: i64 = 3_650 * 86_400_000;

/// Messages produced before this are older than `max_age_ms` at `now`; `None` when no date is
/// that far back (then nothing is that old). Never panics, whatever is stored.
pub fn age_cutoff(now: DateTime<Utc>, max_age_ms: i64) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(TimeDelta::try_milliseconds(max_age_ms)?)
}

/// A topic's retention rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: Option<i64>,
    pub max_messages: Option<i64>,
}

impl Retention {
    pub fn keeps_everything(&self) -> bool {
        self.max_age_ms.is_none() && self.max_messages.is_none()
    }

    /// Positive limits, the age at most [`MAX_AGE_MS`].
    pub fn validate(&self) -> Result<(), QueueError> {
        if let Some(ms) = self.max_age_ms
            && !(1..=MAX_AGE_MS).contains(&ms)
        {
            return Err(QueueError::invalid(
                "retention_ms",
                format!("must be between 1 and {MAX_AGE_MS} (3,650 days)"),
            ));
        }
        if self.max_messages.is_some_and(|n| n < 1) {
            return Err(QueueError::invalid(
                "retention_messages",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// The new start offset of a partition holding `[start, end)`, given `first_young`: the first
/// offset whose message is younger than the age limit (`end` if none is, `None` without an age
/// rule). `None` when nothing is to be cut.
pub fn cut(start: i64, end: i64, rules: Retention, first_young: Option<i64>) -> Option<i64> {
    let by_count = rules.max_messages.map(|keep| end.saturating_sub(keep));
    let by_age = rules.max_age_ms.and(first_young);
    let cut = by_count.into_iter().chain(by_age).max()?.min(end);
    (cut > start).then_some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNT: Retention = Retention {
        max_age_ms: None,
        max_messages: Some(10),
    };
    const AGE: Retention = Retention {
        max_age_ms: Some(60_000),
        max_messages: None,
    };

    #[test]
    fn an_age_past_any_clock_cuts_nothing_and_does_not_panic() {
        let now = Utc::now();
        assert_eq!(age_cutoff(now, i64::MAX), None);
        assert_eq!(age_cutoff(now, 10_000_000_000_000_000), None);
        assert_eq!(
            age_cutoff(now, 1_000),
            Some(now - TimeDelta::milliseconds(1_000))
        );
        let huge = Retention {
            max_age_ms: Some(10_000_000_000_000_000),
            max_messages: None,
        };
        assert!(huge.validate().is_err());
        assert!(AGE.validate().is_ok());
    }

    #[test]
    fn the_default_keeps_everything() {
        assert!(Retention::default().keeps_everything());
        assert_eq!(cut(0, 1_000, Retention::default(), None), None);
    }

    #[test]
    fn by_count_keeps_the_newest() {
        assert_eq!(cut(0, 25, COUNT, None), Some(15));
        assert_eq!(cut(0, 10, COUNT, None), None);
        assert_eq!(cut(15, 25, COUNT, None), None, "already cut");
        assert_eq!(cut(20, 25, COUNT, None), None, "never backwards");
    }

    #[test]
    fn by_age_cuts_before_the_first_young_message() {
        assert_eq!(cut(0, 25, AGE, Some(7)), Some(7));
        assert_eq!(cut(0, 25, AGE, Some(25)), Some(25), "everything expired");
        assert_eq!(cut(0, 25, AGE, Some(0)), None);
        assert_eq!(cut(0, 25, AGE, Some(40)), Some(25), "never past the end");
    }

    #[test]
    fn with_both_rules_either_one_cuts() {
        let both = Retention {
            max_age_ms: Some(1),
            max_messages: Some(10),
        };
        assert_eq!(cut(0, 25, both, Some(3)), Some(15));
        assert_eq!(cut(0, 25, both, Some(20)), Some(20));
    }
}
