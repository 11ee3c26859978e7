//! A front-end's part in the one global order: the updates it applied, and the tablet requests
//! it reports to the raffle. Plain state that the `Frontend` actor drives (no actix here).
//!
//! - [`UpdateOrder`]: the reporter updates, delivered in sequence order through a
//!   [`HoldBack`] queue; a gap that lasts is filled from `update_log`. Every front-end of the
//!   process is anchored at the sequence number the process started with, so all of them
//!   (including ones started later, which catch up from the log) apply the same sequence.
//! - [`RaffleReport`]: the tablet requests served since the last report, in the order served.
//!   The actor sends them to the database actor in batches, off the requests' path; the batch
//!   takes the next run of positions in the global request order, and the positions won come
//!   back here until the winning tablet's next reply.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::RangeInclusive;

use serde::Serialize;
use uuid::Uuid;

use crate::actors::olympics::messages::SequencedUpdate;
use crate::coordination::sequencer::HoldBack;
use crate::olympics::OlympicsError;

/// How many applied updates a front-end keeps to show (`GET /cluster/members/{id}/updates`).
pub const RECENT_UPDATES: usize = 1000;
/// The most updates fetched from the log at once when filling a gap.
pub const FILL_BATCH: u64 = 1000;

/// The reporter updates this front-end applied, in the global order.
#[derive(Debug)]
pub struct UpdateOrder {
    queue: HoldBack<SequencedUpdate>,
    count: u64,
    digest: u64,
    recent: VecDeque<SequencedUpdate>,
    /// A fetch from the log is under way.
    pub filling: bool,
}

/// What `GET /cluster` shows of a member's applied updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateSummary {
    /// Updates applied since this front-end started.
    pub count: u64,
    /// The number of the last one applied.
    pub last_seq: Option<u64>,
    /// A hash of the whole applied sequence: equal digests, equal sequences.
    pub digest: String,
    /// Updates received ahead of a gap, waiting.
    pub held: usize,
}

impl UpdateOrder {
    /// Applies updates from number `after + 1` on.
    pub fn anchored_after(after: u64) -> Self {
        let mut queue = HoldBack::new();
        queue.anchor(after, 0);
        Self {
            queue,
            count: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            recent: VecDeque::with_capacity(RECENT_UPDATES),
            filling: false,
        }
    }

    /// Takes an update (from the database actor's multicast or the log); returns those now
    /// applied, in order.
    pub fn receive(&mut self, update: SequencedUpdate, now_ms: u64) -> Vec<SequencedUpdate> {
        let seq = update.seq as u64;
        let applied: Vec<SequencedUpdate> = self
            .queue
            .receive(seq, update, now_ms)
            .into_iter()
            .map(|(_, update)| update)
            .collect();
        for update in &applied {
            self.record(update.clone());
        }
        applied
    }

    fn record(&mut self, update: SequencedUpdate) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.digest, &update).hash(&mut hasher);
        self.digest = hasher.finish();
        self.count += 1;
        if self.recent.len() == RECENT_UPDATES {
            self.recent.pop_front();
        }
        self.recent.push_back(update);
    }

    /// The number this front-end applies next.
    pub fn next_seq(&self) -> u64 {
        self.queue.last_delivered().map_or(1, |last| last + 1)
    }

    /// The numbers to fetch from the log: missing for `patience_ms` while later ones wait.
    pub fn to_fetch(&self, now_ms: u64, patience_ms: u64) -> Option<RangeInclusive<u64>> {
        let missing = self.queue.missing(now_ms, patience_ms)?;
        let first = *missing.start();
        Some(first..=(*missing.end()).min(first + FILL_BATCH - 1))
    }

    pub fn summary(&self) -> UpdateSummary {
        UpdateSummary {
            count: self.count,
            last_seq: self.queue.last_delivered(),
            digest: format!("{:016x}", self.digest),
            held: self.queue.held(),
        }
    }

    /// The last [`RECENT_UPDATES`] applied, oldest first.
    pub fn recent(&self) -> Vec<SequencedUpdate> {
        self.recent.iter().cloned().collect()
    }
}

/// Tablet requests waiting to be reported to the raffle, and the wins to tell tablets. Both
/// are bounded: past `max_uncounted` requests a new one is refused (the reports are failing or
/// lagging), and past `max_untold` wins the oldest is forgotten here (it stays in
/// `raffle_winners`, where its tablet can still read it).
#[derive(Debug)]
pub struct RaffleReport {
    /// Served since the last report, in order.
    pending: Vec<Uuid>,
    /// Reported, outcome not known yet: sent again (same batch number) if the report failed.
    in_flight: Option<(u64, Vec<Uuid>)>,
    last_batch: u64,
    /// A report is under way.
    reporting: bool,
    /// Positions won, per tablet, until its next reply…
    wins: HashMap<Uuid, Vec<u64>>,
    /// …and the same by position, oldest first, to forget the oldest.
    untold: BTreeMap<u64, Uuid>,
    max_uncounted: usize,
    max_untold: usize,
}

impl RaffleReport {
    pub fn new(max_uncounted: usize, max_untold: usize) -> Self {
        Self {
            pending: Vec::new(),
            in_flight: None,
            last_batch: 0,
            reporting: false,
            wins: HashMap::new(),
            untold: BTreeMap::new(),
            max_uncounted: max_uncounted.max(1),
            max_untold,
        }
    }

    /// A request of `tablet` is answered; refused when too many wait to be counted.
    pub fn served(&mut self, tablet: Uuid) -> Result<(), OlympicsError> {
        if self.uncounted() >= self.max_uncounted {
            return Err(OlympicsError::Full {
                what: "tablet requests waiting for the raffle",
                limit: self.max_uncounted,
            });
        }
        self.pending.push(tablet);
        Ok(())
    }

    /// The next batch to report: the one whose outcome is unknown, else the requests served
    /// since. `None` when a report is under way or there is nothing to report.
    pub fn next_batch(&mut self) -> Option<(u64, Vec<Uuid>)> {
        if self.reporting {
            return None;
        }
        if self.in_flight.is_none() {
            if self.pending.is_empty() {
                return None;
            }
            self.last_batch += 1;
            self.in_flight = Some((self.last_batch, std::mem::take(&mut self.pending)));
        }
        self.reporting = true;
        self.in_flight.clone()
    }

    /// The report of the batch under way failed (or was lost in a restart): its outcome is
    /// unknown, so the same batch goes again.
    pub fn report_failed(&mut self) {
        self.reporting = false;
    }

    /// The database counted batch `batch`; `wins` are its winning positions (also when it had
    /// counted it before: a retry is answered the same wins, told once here).
    pub fn counted(&mut self, batch: u64, wins: impl IntoIterator<Item = (Uuid, u64)>) {
        if self.in_flight.as_ref().is_some_and(|(b, _)| *b == batch) {
            self.in_flight = None;
            self.reporting = false;
        }
        for (tablet, position) in wins {
            if self.max_untold == 0 || self.untold.insert(position, tablet).is_some() {
                continue;
            }
            self.wins.entry(tablet).or_default().push(position);
            if self.untold.len() > self.max_untold {
                self.forget_oldest_win();
            }
        }
    }

    fn forget_oldest_win(&mut self) {
        let Some((position, tablet)) = self.untold.pop_first() else {
            return;
        };
        if let Some(positions) = self.wins.get_mut(&tablet) {
            positions.retain(|&p| p != position);
            if positions.is_empty() {
                self.wins.remove(&tablet);
            }
        }
        tracing::info!(
            position,
            untold = self.max_untold,
            "raffle win #{position} not told in a reply: {} untold wins held already (it stays in GET /olympics/raffle/winners)",
            self.max_untold
        );
    }

    /// The positions `tablet` won that it has not been told of.
    pub fn take_wins(&mut self, tablet: Uuid) -> Vec<u64> {
        if self.wins.is_empty() {
            return Vec::new();
        }
        let positions = self.wins.remove(&tablet).unwrap_or_default();
        for position in &positions {
            self.untold.remove(position);
        }
        positions
    }

    /// Requests served and not yet counted.
    pub fn uncounted(&self) -> usize {
        self.pending.len() + self.in_flight.as_ref().map_or(0, |(_, b)| b.len())
    }

    /// Wins held for tablets that have not read since.
    pub fn untold(&self) -> usize {
        self.untold.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(seq: i64) -> SequencedUpdate {
        SequencedUpdate {
            seq,
            kind: "score".into(),
            subject: "curling".into(),
            entered_via: format!("frontend-{}", seq % 3),
        }
    }

    #[test]
    fn members_receiving_in_different_orders_apply_the_same_sequence_and_digest() {
        let mut a = UpdateOrder::anchored_after(0);
        let mut b = UpdateOrder::anchored_after(0);
        for seq in [1, 2, 3, 4] {
            a.receive(update(seq), 0);
        }
        for seq in [3, 1, 4, 2] {
            b.receive(update(seq), 0);
        }
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.summary().count, 4);
        assert_eq!(a.recent(), b.recent());
        let mut c = UpdateOrder::anchored_after(0);
        for seq in [1, 2, 4] {
            c.receive(update(seq), 0);
        }
        assert_ne!(a.summary().digest, c.summary().digest);
        assert_eq!(c.summary().held, 1);
    }

    #[test]
    fn a_long_gap_is_fetched_in_bounded_batches() {
        let mut member = UpdateOrder::anchored_after(0);
        member.receive(update(5000), 10);
        assert_eq!(member.to_fetch(20, 100), None);
        assert_eq!(member.to_fetch(110, 100), Some(1..=FILL_BATCH));
    }

    #[test]
    fn a_failed_report_is_sent_again_under_the_same_batch_number() {
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut report = RaffleReport::new(100, 100);
        assert_eq!(report.next_batch(), None);
        report.served(t1).unwrap();
        report.served(t2).unwrap();
        let first = report.next_batch().expect("a batch");
        assert_eq!(first, (1, vec![t1, t2]));
        report.served(t1).unwrap();
        // Under way: nothing more to send. Then it fails, its outcome unknown: the same batch
        // goes again, not the newer request.
        assert_eq!(report.next_batch(), None);
        report.report_failed();
        assert_eq!(report.next_batch(), Some(first));
        assert_eq!(report.uncounted(), 3);
        report.counted(1, [(t2, 100)]);
        assert_eq!(report.next_batch(), Some((2, vec![t1])));
        assert_eq!(report.take_wins(t2), vec![100]);
        assert!(report.take_wins(t2).is_empty());
    }

    #[test]
    fn uncounted_requests_and_untold_wins_are_bounded() {
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut report = RaffleReport::new(3, 2);
        for _ in 0..3 {
            report.served(t1).unwrap();
        }
        assert!(matches!(
            report.served(t1),
            Err(OlympicsError::Full { limit: 3, .. })
        ));
        let (batch, _) = report.next_batch().unwrap();
        report.counted(batch, [(t1, 7), (t2, 8), (t1, 9)]);
        assert_eq!(report.untold(), 2, "the oldest (7) was forgotten");
        assert_eq!(report.take_wins(t1), vec![9]);
        assert_eq!(report.take_wins(t2), vec![8]);
        // The same win given twice while untold is held once.
        report.counted(batch, [(t2, 10), (t2, 10)]);
        assert_eq!(report.untold(), 1);
        assert_eq!(report.take_wins(t2), vec![10]);
        report.served(t1).unwrap();
    }
}
