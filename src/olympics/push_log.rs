//! The log of pushed updates (seed 001's server-push mode), free of actix: what the Publisher
//! actor appends to, replays from and fans out.
//!
//! Guarantees:
//! - Per topic (a game's scores, a team's tally) events are appended in increasing version
//!   order; an update whose version is not newer than the last one logged for its topic is
//!   dropped, since every event carries the topic's whole state.
//! - Event ids (`<epoch>-<seq>`) increase by one per event within an epoch. A subscriber that
//!   reconnects with the id of the last event it saw gets every later event of its topics
//!   still held ([`EventLog::since`]); if some are no longer held, it gets instead the latest
//!   event of each of its topics that changed after its id. Either way nothing it was sent
//!   already, nor anything older: per topic, events after an id are newer than any at or
//!   before it. A snapshot must therefore be appended (its states newer than the log's) before
//!   its frames take the head's id.
//! - An id from another epoch (another process) or from the future is a [`Replay::Gap`]: the
//!   subscriber needs a snapshot.
//!
//! Not guaranteed: every intermediate state once more than `capacity` events came after an id
//! (only the latest of each topic then); anything across epochs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Game(String),
    Team(String),
}

impl Topic {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::Game(_) => "score",
            Topic::Team(_) => "medals",
        }
    }
}

/// `<epoch>-<seq>`, the SSE `id` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub epoch: u64,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

impl std::str::FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (epoch, seq) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("expected <epoch>-<seq>, got `{s}`"))?;
        Ok(EventId {
            epoch: epoch.parse().map_err(|_| format!("bad epoch in `{s}`"))?,
            seq: seq
                .parse()
                .map_err(|_| format!("bad sequence number in `{s}`"))?,
        })
    }
}

/// One pushed update: a topic's whole state at `version`, framed once as a Server-Sent Event so
/// that fanning it out to a thousand tablets copies a pointer, not a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub topic: Topic,
    pub version: i64,
    /// `id: …\nevent: …\ndata: …\n\n`
    pub frame: String,
}

impl Event {
    pub fn new(id: EventId, topic: Topic, version: i64, json: &str) -> Self {
        let frame = sse_frame(Some(id), topic.kind(), json);
        Self {
            id,
            topic,
            version,
            frame,
        }
    }
}

/// One Server-Sent Event. `json` holds no newline (serde_json's compact output never does).
pub fn sse_frame(id: Option<EventId>, kind: &str, json: &str) -> String {
    debug_assert!(!json.contains('\n'));
    match id {
        Some(id) => format!("id: {id}\nevent: {kind}\ndata: {json}\n\n"),
        None => format!("event: {kind}\ndata: {json}\n\n"),
    }
}

/// The games and teams a tablet follows; both empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    pub games: HashSet<String>,
    pub teams: HashSet<String>,
}

impl Topics {
    pub fn everything(&self) -> bool {
        self.games.is_empty() && self.teams.is_empty()
    }

    pub fn matches(&self, topic: &Topic) -> bool {
        self.everything()
            || match topic {
                Topic::Game(game) => self.games.contains(game),
                Topic::Team(team) => self.teams.contains(team),
            }
    }
}

/// What a reconnecting subscriber gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// What changed after the event it saw, for its topics (possibly nothing), in id order.
    Events(Vec<Arc<Event>>),
    /// Its id means nothing here (another epoch): it needs a snapshot.
    Gap,
}

#[derive(Debug)]
pub struct EventLog {
    epoch: u64,
    /// The sequence number of the last event appended (0: none yet).
    last_seq: u64,
    capacity: usize,
    events: VecDeque<Arc<Event>>,
    /// The last event of every topic ever appended (as many as there are games and teams).
    latest: HashMap<Topic, Arc<Event>>,
}

impl EventLog {
    pub fn new(epoch: u64, capacity: usize) -> Self {
        Self {
            epoch,
            last_seq: 0,
            capacity: capacity.max(1),
            events: VecDeque::new(),
            latest: HashMap::new(),
        }
    }

    /// The id of the last event appended (seq 0 before any): where a fresh subscriber starts.
    pub fn head(&self) -> EventId {
        EventId {
            epoch: self.epoch,
            seq: self.last_seq,
        }
    }

    /// Appends the topic's state at `version`, unless a newer or equal one is logged already.
    pub fn append(&mut self, topic: Topic, version: i64, json: &str) -> Option<Arc<Event>> {
        if self.version(&topic).is_some_and(|v| v >= version) {
            return None;
        }
        self.last_seq += 1;
        let event = Arc::new(Event::new(self.head(), topic.clone(), version, json));
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event.clone());
        self.latest.insert(topic, event.clone());
        Some(event)
    }

    /// The version of `topic` last appended.
    pub fn version(&self, topic: &Topic) -> Option<i64> {
        self.latest.get(topic).map(|e| e.version)
    }

    /// What changed after `last` for `topics`: every event still held, or, when some after
    /// `last` are gone, the latest event of each topic changed since; [`Replay::Gap`] for an id
    /// of another epoch or from the future.
    pub fn since(&self, last: EventId, topics: &Topics) -> Replay {
        if last.epoch != self.epoch || last.seq > self.last_seq {
            return Replay::Gap;
        }
        let oldest_held = self.events.front().map_or(self.last_seq + 1, |e| e.id.seq);
        if last.seq + 1 >= oldest_held {
            return Replay::Events(
                self.events
                    .iter()
                    .filter(|e| e.id.seq > last.seq && topics.matches(&e.topic))
                    .cloned()
                    .collect(),
            );
        }
        let mut latest: Vec<Arc<Event>> = self
            .latest
            .values()
            .filter(|e| e.id.seq > last.seq && topics.matches(&e.topic))
            .cloned()
            .collect();
        latest.sort_by_key(|e| e.id.seq);
        Replay::Events(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(g: &str) -> Topic {
        Topic::Game(g.into())
    }

    fn seqs(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Events(events) => events.iter().map(|e| e.id.seq).collect(),
            Replay::Gap => panic!("unexpected gap"),
        }
    }

    #[test]
    fn ids_count_up_from_one_and_round_trip_through_text() {
        let mut log = EventLog::new(7, 10);
        assert_eq!(log.head(), EventId { epoch: 7, seq: 0 });
        let event = log.append(game("curling"), 1, "{}").unwrap();
        assert_eq!(event.id.to_string(), "7-1");
        assert_eq!("7-1".parse::<EventId>().unwrap(), event.id);
        assert!("7".parse::<EventId>().is_err());
        assert!("x-1".parse::<EventId>().is_err());
    }

    #[test]
    fn an_older_or_equal_version_of_a_topic_is_dropped() {
        let mut log = EventLog::new(1, 10);
        assert!(log.append(game("curling"), 5, "{}").is_some());
        assert!(log.append(game("curling"), 4, "{}").is_none());
        assert!(log.append(game("curling"), 5, "{}").is_none());
        assert!(
            log.append(game("skating"), 1, "{}").is_some(),
            "other topics are independent"
        );
        assert!(log.append(game("curling"), 6, "{}").is_some());
        assert_eq!(log.head().seq, 3);
    }

    #[test]
    fn a_reconnecting_subscriber_gets_everything_after_its_last_event() {
        let mut log = EventLog::new(1, 10);
        for v in 1..=5 {
            log.append(game("curling"), v, "{}");
        }
        let all = Topics::default();
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 2 }, &all)),
            vec![3, 4, 5]
        );
        assert_eq!(seqs(log.since(log.head(), &all)), Vec::<u64>::new());
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 0 }, &all)),
            vec![1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn replays_keep_only_the_subscriber_s_topics() {
        let mut log = EventLog::new(1, 10);
        log.append(game("curling"), 1, "{}");
        log.append(Topic::Team("gauls".into()), 1, "{}");
        log.append(game("skating"), 1, "{}");
        let topics = Topics {
            games: ["skating".to_owned()].into(),
            teams: ["gauls".to_owned()].into(),
        };
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 0 }, &topics)),
            vec![2, 3]
        );
    }

    #[test]
    fn an_id_from_another_epoch_or_the_future_is_a_gap() {
        let mut log = EventLog::new(1, 3);
        for v in 1..=5 {
            log.append(game("curling"), v, "{}");
        }
        let all = Topics::default();
        // Held: 3, 4, 5. After 2 nothing is missing.
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 2 }, &all)),
            vec![3, 4, 5]
        );
        assert_eq!(log.since(EventId { epoch: 2, seq: 5 }, &all), Replay::Gap);
        assert_eq!(
            log.since(EventId { epoch: 1, seq: 9 }, &all),
            Replay::Gap,
            "from the future"
        );
    }

    #[test]
    fn past_what_is_held_the_latest_state_of_each_changed_topic_is_replayed() {
        let mut log = EventLog::new(1, 3);
        log.append(game("skiing"), 1, "{}"); // 1
        log.append(game("curling"), 1, "{}"); // 2
        for v in 2..=5 {
            log.append(game("curling"), v, "{}"); // 3, 4, 5, 6
        }
        let all = Topics::default();
        // Held: 4, 5, 6. After 1, event 2 is gone: curling's latest (6) only; skiing (1) did
        // not change after 1.
        let Replay::Events(events) = log.since(EventId { epoch: 1, seq: 1 }, &all) else {
            panic!("a replay")
        };
        assert_eq!(
            events
                .iter()
                .map(|e| (e.id.seq, e.version))
                .collect::<Vec<_>>(),
            vec![(6, 5)]
        );
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 0 }, &all)),
            vec![1, 6]
        );
        assert_eq!(log.version(&game("curling")), Some(5));
    }

    #[test]
    fn frames_are_server_sent_events() {
        let event = Event::new(
            EventId { epoch: 3, seq: 4 },
            game("curling"),
            1,
            r#"{"a":1}"#,
        );
        assert_eq!(event.frame, "id: 3-4\nevent: score\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn empty_topics_follow_everything() {
        let all = Topics::default();
        assert!(all.matches(&game("anything")));
        let some = Topics {
            games: ["curling".to_owned()].into(),
            teams: HashSet::new(),
        };
        assert!(some.matches(&game("curling")));
        assert!(!some.matches(&game("skating")));
        assert!(!some.matches(&Topic::Team("gauls".into())));
    }
}
