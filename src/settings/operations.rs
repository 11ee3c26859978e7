//! Settings of the operator's view: the log format (`[log]`) and the per-client rate limits of
//! the anonymous endpoints (`[rate_limit]`).

use serde::Deserialize;

use super::{Settings, SettingsError};

impl Settings {
    /// The checks of the sections kept in files of their own.
    pub(super) fn validate_sections(&self) -> Result<(), SettingsError> {
        self.rate_limit.check().map_err(SettingsError::Invalid)?;
        self.validate_bookstore()?;
        self.validate_rooms()?;
        self.validate_idle_expiry()
    }
}

/// How log events are written to stdout.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, with the fields of the event and of its spans (the request's
    /// `request_id` among them).
    Json,
}

/// `[log]`: `format = "json"` (or `OBELIX__LOG__FORMAT=json`). Levels stay with `RUST_LOG`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// `[rate_limit]`: per client address, on the anonymous endpoints (tablet registration and
/// reads, queue client registration). A client past its budget is answered 429 with
/// `Retry-After`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Requests per second each client may sustain…
    pub per_second: u32,
    /// …and how many it may send at once above that (the bucket's size).
    pub burst: u32,
    /// Clients on 127.0.0.1 / ::1 are not limited (local tools, benchmarks, the tests).
    pub exempt_loopback: bool,
    /// Client addresses remembered at most; the limiter forgets idle ones first.
    pub max_clients: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 100,
            burst: 200,
            exempt_loopback: true,
            max_clients: 100_000,
        }
    }
}

impl RateLimitSettings {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.enabled && (self.per_second == 0 || self.burst == 0 || self.max_clients == 0) {
            return Err(
                "rate_limit.per_second, rate_limit.burst and rate_limit.max_clients must be positive when rate_limit.enabled".to_owned(),
            );
        }
        Ok(())
    }
}
