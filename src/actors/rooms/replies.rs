//! The reply board the ingress and the room servers share: the requests waiting for their answer
//! (request id → the waiting HTTP handlers), and the ids answered lately.
//!
//! Only the leader answers; a request that gets a second answer is a bug (two servers both
//! believed they led, or a leader answered an entry twice). The board delivers the first answer
//! only, logs the second as seed 003's client check asks ("more than one reply"), and counts it
//! for `GET /rooms/servers`. A new leader taking over answers with
//! [`ReplyBoard::answer_if_pending`], which is silent about requests already answered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::rooms::{Outcome, RoomsError};

/// An answer, and the server that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub by: String,
    pub outcome: Outcome,
}

#[derive(Default)]
struct BoardState {
    pending: HashMap<String, Vec<oneshot::Sender<Answered>>>,
    /// Ids answered lately, oldest first (bounded), to recognise a second answer.
    answered: VecDeque<String>,
    answered_set: HashSet<String>,
}

pub struct ReplyBoard {
    state: Mutex<BoardState>,
    /// Requests waiting at most; past it a request is refused at once (503).
    max_pending: usize,
    duplicates: AtomicU64,
}

impl ReplyBoard {
    pub fn new(max_pending: usize) -> Self {
        Self {
            state: Mutex::default(),
            max_pending: max_pending.max(1),
            duplicates: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the answer to `request_id` (several handlers may wait for one id: retries).
    pub fn register(&self, request_id: &str) -> Result<oneshot::Receiver<Answered>, RoomsError> {
        let mut state = self.state();
        if state.pending.len() >= self.max_pending && !state.pending.contains_key(request_id) {
            return Err(RoomsError::Unavailable(format!(
                "{} requests are waiting for their reply",
                state.pending.len()
            )));
        }
        let (tx, rx) = oneshot::channel();
        // A retry of an answered id waits for its new answer: it is not a second answer.
        if state.answered_set.remove(request_id) {
            state.answered.retain(|id| id != request_id);
        }
        state
            .pending
            .entry(request_id.to_owned())
            .or_default()
            .push(tx);
        Ok(rx)
    }

    /// A handler gave up on `request_id` (its receiver is dropped): forget its place.
    pub fn forget(&self, request_id: &str) {
        let mut state = self.state();
        if let Some(waiters) = state.pending.get_mut(request_id) {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                state.pending.remove(request_id);
            }
        }
    }

    /// The ids waiting for an answer.
    pub fn pending(&self) -> Vec<String> {
        self.state().pending.keys().cloned().collect()
    }

    /// The leader's answer to `request_id`. A second answer is logged as an error and counted;
    /// an id nobody waits for (its handler gave up) is ignored.
    pub fn answer(&self, request_id: &str, by: &str, outcome: &Outcome) {
        let mut state = self.state();
        if Self::deliver(&mut state, self.max_pending, request_id, by, outcome) {
            return;
        }
        if state.answered_set.contains(request_id) {
            drop(state);
            let n = self.duplicates.fetch_add(1, Ordering::AcqRel) + 1;
            tracing::error!(
                request = request_id,
                server = by,
                duplicates = n,
                "request {request_id} received more than one reply (the second from {by})"
            );
        }
    }

    /// A new leader's answer to a request it found waiting; nothing if it was answered already.
    pub fn answer_if_pending(&self, request_id: &str, by: &str, outcome: &Outcome) -> bool {
        let mut state = self.state();
        Self::deliver(&mut state, self.max_pending, request_id, by, outcome)
    }

    fn deliver(
        state: &mut BoardState,
        bound: usize,
        request_id: &str,
        by: &str,
        outcome: &Outcome,
    ) -> bool {
        let Some(waiters) = state.pending.remove(request_id) else {
            return false;
        };
        for waiter in waiters {
            let _ = waiter.send(Answered {
                by: by.to_owned(),
                outcome: outcome.clone(),
            });
        }
        state.answered.push_back(request_id.to_owned());
        state.answered_set.insert(request_id.to_owned());
        while state.answered.len() > bound {
            if let Some(old) = state.answered.pop_front() {
                state.answered_set.remove(&old);
            }
        }
        true
    }

    /// Second answers seen since the process started.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome::NoSuchReservation { id: 1 }
    }

    #[test]
    fn the_first_answer_reaches_every_waiter_and_a_second_is_counted() {
        let board = ReplyBoard::new(10);
        let mut a = board.register("r1").unwrap();
        let mut b = board.register("r1").unwrap();
        board.answer("r1", "room-server-3", &outcome());
        assert_eq!(a.try_recv().unwrap().by, "room-server-3");
        assert_eq!(b.try_recv().unwrap().by, "room-server-3");
        assert_eq!(board.duplicates(), 0);
        board.answer("r1", "room-server-2", &outcome());
        assert_eq!(board.duplicates(), 1);
        assert!(!board.answer_if_pending("r1", "room-server-2", &outcome()));
        assert_eq!(board.duplicates(), 1);
    }

    #[test]
    fn answers_nobody_waits_for_are_ignored_and_the_board_is_bounded() {
        let board = ReplyBoard::new(1);
        board.answer("ghost", "room-server-1", &outcome());
        assert_eq!(board.duplicates(), 0);
        let _a = board.register("r1").unwrap();
        assert!(board.register("r2").is_err());
        drop(_a);
        board.forget("r1");
        assert!(board.pending().is_empty());
        assert!(board.register("r2").is_ok());
    }
}
