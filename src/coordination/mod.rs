//! Pure algorithms shared by the services' server groups, free of actix, tokio and I/O.
//!
//! Each is a deterministic state machine or function: events and the current time (plain
//! milliseconds) go in, the messages to send come out, and actors do the sending. Each module's
//! own doc comment states what it guarantees and what it does not.
//! - [`bully`]: bully leader election, the highest live id leads (seed 003).
//! - [`ring`]: ring leader election without a central lock, the alternative of seed 000.
//! - [`heartbeat`]: a failure detector that suspects a peer silent past a deadline.
//! - [`berkeley`]: Berkeley clock synchronisation and a simulated drifting clock (seed 000).
//! - [`vector_clock`]: vector clocks counting the requests each server handles (seed 001).
//! - [`sequencer`]: totally ordered multicast through a sequencer: the hold-back queue.
//! - [`balance`]: load balancing (round-robin, least loaded) over live servers.

pub mod balance;
pub mod berkeley;
pub mod bully;
pub mod heartbeat;
pub mod ring;
pub mod sequencer;
pub mod vector_clock;

#[cfg(test)]
mod sim;
