//! How long the server keeps clients it has not heard from. A tablet silent for
//! `olympics.tablet_idle_expiry_ms` (no read with its id, no open push stream) is unregistered;
//! a queue consumer silent for `queue.consumer_idle_expiry_ms` (no poll, size or commit) is
//! deleted as if it had left. 0 keeps them until they leave; otherwise the bounds below, so a
//! mistyped value can neither expire clients in their own long poll nor keep them for ever.

use std::time::Duration;

use super::{OlympicsSettings, Settings, SettingsError};

/// The bounds of `olympics.tablet_idle_expiry_ms` (when not 0): a second to a day.
pub const TABLET_IDLE_EXPIRY_MS: std::ops::RangeInclusive<u64> = 1_000..=86_400_000;

/// The longest `queue.consumer_idle_expiry_ms`: a day (the shortest is past `max_wait_ms`).
pub const MAX_CONSUMER_IDLE_EXPIRY_MS: u64 = 86_400_000;

/// Ten minutes.
pub(super) fn default_tablet_idle_expiry_ms() -> u64 {
    600_000
}

impl OlympicsSettings {
    /// How long a silent tablet stays registered (`None`: until it unregisters).
    pub fn tablet_idle_expiry(&self) -> Option<Duration> {
        (self.tablet_idle_expiry_ms > 0).then(|| Duration::from_millis(self.tablet_idle_expiry_ms))
    }
}

impl Settings {
    /// Both expiries within their bounds.
    pub(super) fn validate_idle_expiry(&self) -> Result<(), SettingsError> {
        let tablets = self.olympics.tablet_idle_expiry_ms;
        if tablets != 0 && !TABLET_IDLE_EXPIRY_MS.contains(&tablets) {
            return Err(SettingsError::Invalid(
                "olympics.tablet_idle_expiry_ms must be 0 (never) or from 1000 (a second) to 86400000 (a day)".into(),
            ));
        }
        let consumers = self.queue.consumer_idle_expiry_ms;
        if consumers != 0
            && (consumers <= self.queue.max_wait_ms || consumers > MAX_CONSUMER_IDLE_EXPIRY_MS)
        {
            return Err(SettingsError::Invalid(
                "queue.consumer_idle_expiry_ms must be 0 (never) or longer than queue.max_wait_ms and at most 86400000 (a day)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");

    fn load(key: &str, value: &str) -> Result<Settings, String> {
        let env = HashMap::from([(key.to_owned(), value.to_owned())]);
        Settings::load_from(SHIPPED, env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tablet_expiry_outside_its_bounds_is_refused() {
        for bad in ["10", "86400001"] {
            let message = load("OBELIX__OLYMPICS__TABLET_IDLE_EXPIRY_MS", bad).unwrap_err();
            assert!(
                message.contains("olympics.tablet_idle_expiry_ms"),
                "{message}"
            );
        }
        for good in ["0", "1000", "86400000"] {
            assert!(
                load("OBELIX__OLYMPICS__TABLET_IDLE_EXPIRY_MS", good).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn a_consumer_expiry_within_a_long_poll_is_refused() {
        // The shipped max_wait_ms is 30 s: a consumer in a 30 s long poll must not expire.
        let message = load("OBELIX__QUEUE__CONSUMER_IDLE_EXPIRY_MS", "30000").unwrap_err();
        assert!(
            message.contains("queue.consumer_idle_expiry_ms"),
            "{message}"
        );
        assert!(load("OBELIX__QUEUE__CONSUMER_IDLE_EXPIRY_MS", "30001").is_ok());
        assert!(load("OBELIX__QUEUE__CONSUMER_IDLE_EXPIRY_MS", "0").is_ok());
    }
}
