//! The one monotonic clock of the process, in milliseconds, that every actor reads: election and
//! heartbeat deadlines, consumer-group sessions and leases, hold-back patience.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call, on one monotonic clock shared by the whole process.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
