//! The log of pushed updates (seed 001's server-push mode), free of actix: what the Publisher
//! actor appends to, replays from and fans out.
//!
//! Guarantees:
//! - Per topic (a game's scores, a team's tally) events are appended in increasing version
//!   order; an update whose version is not newer than the last one logged for its topic is
//!   dropped, since every event carries the topic's whole state.
//! - Event ids (`<epoch>-<seq>`) increase by one per event within an epoch. A subscriber that
//!   reconnects with the id of the last event it saw gets every later event still held
//!   ([`EventLog::since`]); if the id is from another epoch (the publisher restarted) or older
//!   than what is held, it is told so ([`Replay::Gap`]) and must be sent a snapshot instead.
//!
//! Not guaranteed: holding more than `capacity` events, or anything across a publisher restart.

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
    /// Every event after the one it saw, for its topics (possibly none).
    Events(Vec<Arc<Event>>),
    /// Its last event is not held any more: it needs a snapshot.
    Gap,
}

#[derive(Debug)]
pub struct EventLog {
    epoch: u64,
    /// The sequence number of the last event appended (0: none yet).
    last_seq: u64,
    capacity: usize,
    events: VecDeque<Arc<Event>>,
    versions: HashMap<Topic, i64>,
}

impl EventLog {
    pub fn new(epoch: u64, capacity: usize) -> Self {
        Self {
            epoch,
            last_seq: 0,
            capacity: capacity.max(1),
            events: VecDeque::new(),
            versions: HashMap::new(),
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
        if self.versions.get(&topic).is_some_and(|&v| v >= version) {
            return None;
        }
        self.versions.insert(topic.clone(), version);
        self.last_seq += 1;
        let event = Arc::new(Event::new(self.head(), topic, version, json));
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event.clone());
        Some(event)
    }

    /// The events after `last` that match `topics`, or [`Replay::Gap`] if some are gone.
    pub fn since(&self, last: EventId, topics: &Topics) -> Replay {
        if last.epoch != self.epoch || last.seq > self.last_seq {
            return Replay::Gap;
        }
        let oldest_held = self.events.front().map_or(self.last_seq + 1, |e| e.id.seq);
        if last.seq + 1 < oldest_held {
            return Replay::Gap;
        }
        Replay::Events(
            self.events
                .iter()
                .filter(|e| e.id.seq > last.seq && topics.matches(&e.topic))
                .cloned()
                .collect(),
        )
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
    fn events_no_longer_held_or_from_another_epoch_are_a_gap() {
        let mut log = EventLog::new(1, 3);
        for v in 1..=5 {
            log.append(game("curling"), v, "{}");
        }
        let all = Topics::default();
        // Held: 3, 4, 5. After 2 nothing is missing; after 1, event 2 is gone.
        assert_eq!(
            seqs(log.since(EventId { epoch: 1, seq: 2 }, &all)),
            vec![3, 4, 5]
        );
        assert_eq!(log.since(EventId { epoch: 1, seq: 1 }, &all), Replay::Gap);
        assert_eq!(log.since(EventId { epoch: 2, seq: 5 }, &all), Replay::Gap);
        assert_eq!(
            log.since(EventId { epoch: 1, seq: 9 }, &all),
            Replay::Gap,
            "from the future"
        );
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
