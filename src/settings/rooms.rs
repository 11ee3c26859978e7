//! Room reservation's settings (`[rooms]`) and the checks its keys must pass together.

use std::time::Duration;

use serde::Deserialize;

use super::{Settings, SettingsError};

/// Room reservation (seed 003): the server group, its timing (milliseconds) and its bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RoomsSettings {
    /// Room servers started with the process, with ids 1..=servers…
    pub servers: usize,
    /// …or these ids (seed 003's third argument), when given.
    pub server_ids: Vec<u64>,
    /// The most room servers at once (started ones included).
    pub max_servers: usize,
    /// How long the leader waits before it sends each reply (seed 003's heavy compute and long
    /// network latency).
    pub reply_delay_ms: u64,
    /// How long a request waits for its reply before answering 503.
    pub request_timeout_ms: u64,
    /// Requests waiting for their reply at most; past it a request is refused with 503.
    pub max_pending_requests: usize,
    /// Outcomes each server remembers by request id (a new leader answers waiting requests
    /// from them).
    pub recent_outcomes: usize,
    /// Requests waiting for the write log's next commit at most.
    pub max_log_pending: usize,
    /// Requests in one commit of the write log at most.
    pub max_group: usize,
    /// How long a server waits for a missing number before it fetches it from the log table.
    pub gap_patience_ms: u64,
    /// Log entries fetched in one query while a server catches up.
    pub catch_up_batch: usize,
    /// Election (bully, highest id) and heartbeats to the leader.
    pub tick_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_deadline_ms: u64,
    pub election_answer_ms: u64,
    pub election_coordinator_ms: u64,
}

impl Default for RoomsSettings {
    fn default() -> Self {
        Self {
            servers: 3,
            server_ids: Vec::new(),
            max_servers: 16,
            reply_delay_ms: 0,
            request_timeout_ms: 5_000,
            max_pending_requests: 10_000,
            recent_outcomes: 10_000,
            max_log_pending: 10_000,
            max_group: 256,
            gap_patience_ms: 20,
            catch_up_batch: 1_000,
            tick_ms: 10,
            heartbeat_interval_ms: 50,
            heartbeat_deadline_ms: 150,
            election_answer_ms: 60,
            election_coordinator_ms: 250,
        }
    }
}

impl RoomsSettings {
    /// The ids of the room servers to start.
    pub fn server_ids(&self) -> Vec<u64> {
        if self.server_ids.is_empty() {
            (1..=self.servers as u64).collect()
        } else {
            self.server_ids.clone()
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl Settings {
    /// The room servers' keys together.
    pub(super) fn validate_rooms(&self) -> Result<(), SettingsError> {
        let rooms = &self.rooms;
        let room_ids = rooms.server_ids();
        let unique: std::collections::BTreeSet<_> = room_ids.iter().collect();
        if unique.len() != room_ids.len() || room_ids.contains(&0) {
            return Err(SettingsError::Invalid(
                "rooms.server_ids must be unique and positive".into(),
            ));
        }
        if room_ids.is_empty()
            || room_ids.len() > rooms.max_servers
            || rooms.tick_ms == 0
            || rooms.heartbeat_interval_ms == 0
            || rooms.heartbeat_deadline_ms < rooms.heartbeat_interval_ms
        {
            return Err(SettingsError::Invalid(
                "rooms.servers (or rooms.server_ids) must be 1..=rooms.max_servers, rooms.tick_ms and rooms.heartbeat_interval_ms positive, rooms.heartbeat_deadline_ms at least rooms.heartbeat_interval_ms".into(),
            ));
        }
        Ok(())
    }
}
