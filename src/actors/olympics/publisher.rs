//! The Publisher: pushes every committed update to the tablets following its game or team, as
//! Server-Sent Events (seed 001's server-push mode).
//!
//! - The database actor tells it of each commit ([`Changed`]); it appends the new state to its
//!   [`EventLog`] and hands the event to each matching subscriber's bounded queue with
//!   `try_send`. A tablet whose queue is full is disconnected instead of slowing the others or
//!   growing memory; it reconnects with `Last-Event-ID` and is replayed what it missed.
//! - A new subscriber first gets a snapshot of the current state of its topics, read from
//!   PostgreSQL while the publisher handles nothing else, so that no update falls between the
//!   snapshot and the live stream. The snapshot may hold states whose updates are still queued
//!   behind the subscription: its newer states are appended to the log (and pushed to the other
//!   subscribers) before its frames take the head's id, so those queued updates are then
//!   dropped as old, and a reconnect from the snapshot's id never goes back behind it.
//! - A reconnecting subscriber (`Last-Event-ID`) gets what changed after its id, from the log
//!   (see [`EventLog::since`]): never a state it was sent already.
//! - At most `max_subscriptions` streams are open at once; past that a subscription is 503.
//! - A restart closes every stream but keeps the log and its epoch, so tablets resume where
//!   they were; it re-reads every topic's state first, in case the crash cost an update.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler, Message,
    WrapFuture,
};
use tokio::sync::mpsc;

use crate::actors::olympics::database::{Database, ask_database};
use crate::actors::olympics::messages::{Changed, Query, QueryReply};
use crate::actors::supervisor::ActorCell;
use crate::olympics::OlympicsError;
use crate::olympics::push_log::{Event, EventId, EventLog, Replay, Topic, Topics, sse_frame};

/// How long one snapshot read may take.
const SNAPSHOT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How often streams whose tablet went away are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

pub struct Publisher {
    /// Kept across restarts: tablets resume from it.
    log: EventLog,
    queue_capacity: usize,
    subscribers: HashMap<u64, Subscriber>,
    max_subscriptions: usize,
    next_subscriber: u64,
    db: Addr<Database>,
    cell: Arc<ActorCell>,
    /// Restarted: the log may lack the update being handled when it crashed.
    resync: bool,
}

struct Subscriber {
    /// Its tablet's label (the id is a secret, not for logs).
    tablet: Arc<str>,
    topics: Topics,
    queue: mpsc::Sender<Arc<Event>>,
    /// Versions its snapshot already showed: older or equal events are not sent again.
    floor: HashMap<Topic, i64>,
}

impl Publisher {
    pub fn new(
        db: Addr<Database>,
        cell: Arc<ActorCell>,
        settings: &crate::settings::PushSettings,
    ) -> Self {
        Self {
            log: EventLog::new(new_epoch(), settings.replay_events),
            queue_capacity: settings.queue_per_tablet.max(1),
            subscribers: HashMap::new(),
            max_subscriptions: settings.max_subscriptions,
            next_subscriber: 0,
            db,
            cell,
            resync: false,
        }
    }

    /// Appends each state newer than the log's and pushes it to the subscribers.
    fn take_states(&mut self, states: &[(Topic, i64, String)]) {
        for (topic, version, json) in states {
            if let Some(event) = self.log.append(topic.clone(), *version, json) {
                self.fan_out(&event);
            }
        }
    }

    /// Room for one more stream? Streams whose tablet went away are forgotten first.
    fn has_room(&mut self) -> bool {
        if self.subscribers.len() >= self.max_subscriptions {
            self.subscribers.retain(|_, s| !s.queue.is_closed());
        }
        self.subscribers.len() < self.max_subscriptions
    }

    fn fan_out(&mut self, event: &Arc<Event>) {
        let mut gone = Vec::new();
        for (&id, subscriber) in &self.subscribers {
            if !subscriber.topics.matches(&event.topic)
                || subscriber
                    .floor
                    .get(&event.topic)
                    .is_some_and(|&v| event.version <= v)
            {
                continue;
            }
            match subscriber.queue.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(tablet = %subscriber.tablet, queue = self.queue_capacity, "tablet {} is too slow ({} events queued); disconnected, it resumes with Last-Event-ID", subscriber.tablet, self.queue_capacity);
                    gone.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
            }
        }
        for id in gone {
            self.subscribers.remove(&id);
        }
    }

    fn register(
        &mut self,
        tablet: Arc<str>,
        topics: Topics,
        floor: HashMap<Topic, i64>,
    ) -> mpsc::Receiver<Arc<Event>> {
        let (queue, receiver) = mpsc::channel(self.queue_capacity);
        self.next_subscriber += 1;
        tracing::debug!(tablet = %tablet, subscribers = self.subscribers.len() + 1, "tablet {tablet} subscribed to pushes");
        self.subscribers.insert(
            self.next_subscriber,
            Subscriber {
                tablet,
                topics,
                queue,
                floor,
            },
        );
        receiver
    }
}

/// Epochs tell a reconnecting tablet whether its last event id means anything here.
fn new_epoch() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            epoch = self.log.head().epoch,
            "publisher started"
        );
        ctx.run_interval(SWEEP_INTERVAL, |act, _ctx| {
            act.subscribers.retain(|_, s| !s.queue.is_closed());
        });
        if self.resync {
            // Before any subscription: what the crash may have cost goes into the log.
            let read = read_snapshot(self.db.clone(), Topics::default());
            ctx.wait(read.into_actor(self).map(|states, act, _ctx| match states {
                Ok(states) => {
                    act.resync = false;
                    act.take_states(&states);
                }
                Err(e) => {
                    tracing::warn!(actor = act.cell.name(), error = %e, "publisher could not re-read the current states after its restart");
                }
            }));
        }
    }
}

impl actix::Supervised for Publisher {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = self.cell.name(),
            streams = self.subscribers.len(),
            "publisher restarting: every stream closed, its log kept"
        );
        self.subscribers.clear();
        self.resync = true;
    }
}

crate::supervised_actor_handlers!(Publisher);

impl Handler<Changed> for Publisher {
    type Result = ();

    fn handle(&mut self, Changed { applied: reply, .. }: Changed, _ctx: &mut Self::Context) {
        let (topic, version) = reply.topic();
        let json = serde_json::to_string(&reply).expect("replies serialize");
        if let Some(event) = self.log.append(topic, version, &json) {
            self.fan_out(&event);
        }
    }
}

/// A tablet's request for pushes.
#[derive(Debug, Message)]
#[rtype(result = "Result<Subscription, OlympicsError>")]
pub struct Subscribe {
    /// The tablet's label, for the logs.
    pub tablet: Arc<str>,
    pub topics: Topics,
    /// The last event it saw, when it reconnects.
    pub last_event: Option<EventId>,
}

/// What a subscriber sends first (a replay or a snapshot), then the live queue.
#[derive(Debug)]
pub struct Subscription {
    pub first: Vec<String>,
    pub live: mpsc::Receiver<Arc<Event>>,
}

impl Handler<Subscribe> for Publisher {
    // Atomic: no update is handled between the snapshot's reads and the registration.
    type Result = AtomicResponse<Self, Result<Subscription, OlympicsError>>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        if !self.has_room() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(OlympicsError::Full {
                what: "event streams",
                limit: self.max_subscriptions,
            }))));
        }
        if let Some(Replay::Events(missed)) =
            msg.last_event.map(|id| self.log.since(id, &msg.topics))
        {
            let first = missed.iter().map(|e| e.frame.clone()).collect();
            let live = self.register(msg.tablet, msg.topics, HashMap::new());
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(Subscription {
                first,
                live,
            }))));
        }
        let snapshot = read_snapshot(self.db.clone(), msg.topics.clone());
        AtomicResponse::new(Box::pin(snapshot.into_actor(self).map(
            move |states, act, _ctx| {
                let states = states?;
                // Its states go into the log first (updates still queued behind this
                // subscription are then older than the log, and dropped); then its frames carry
                // the head's id: a reconnect from there replays only what is newer.
                act.take_states(&states);
                let head = act.log.head();
                let mut floor = HashMap::new();
                let mut first = Vec::with_capacity(states.len());
                for (topic, version, json) in states {
                    first.push(sse_frame(Some(head), topic.kind(), &json));
                    floor.insert(topic, version);
                }
                let live = act.register(msg.tablet, msg.topics, floor);
                Ok(Subscription { first, live })
            },
        )))
    }
}

/// The current state of every topic in `topics` (all games and teams if it names none), each
/// as (topic, version, JSON). Unknown games or teams are errors.
async fn read_snapshot(
    db: Addr<Database>,
    topics: Topics,
) -> Result<Vec<(Topic, i64, String)>, OlympicsError> {
    let ask = |query: Query| ask_database(db.clone(), query, SNAPSHOT_READ_TIMEOUT);
    let (mut games, mut teams): (Vec<String>, Vec<String>) = (
        topics.games.iter().cloned().collect(),
        topics.teams.iter().cloned().collect(),
    );
    if topics.everything() {
        if let QueryReply::Games(all) = ask(Query::Games).await? {
            games = all.into_iter().map(|g| g.slug).collect();
        }
        if let QueryReply::Teams(all) = ask(Query::Teams).await? {
            teams = all.into_iter().map(|t| t.slug).collect();
        }
    }
    games.sort();
    teams.sort();
    let mut states = Vec::with_capacity(games.len() + teams.len());
    for game in games {
        if let QueryReply::Score(board) = ask(Query::Score { game }).await? {
            let json = serde_json::to_string(&board).expect("boards serialize");
            states.push((Topic::Game(board.game), board.version, json));
        }
    }
    for team in teams {
        if let QueryReply::Medals(tally) = ask(Query::Medals { team }).await? {
            let json = serde_json::to_string(&tally).expect("tallies serialize");
            states.push((Topic::Team(tally.team), tally.version, json));
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::olympics::messages::CommandReply;
    use crate::olympics::{ScoreBoard, TeamScore};
    use actix::Actor;

    fn board(version: i64) -> CommandReply {
        CommandReply::Score(ScoreBoard {
            game: "curling".into(),
            version,
            scores: vec![TeamScore {
                team: "gauls".into(),
                points: version,
            }],
            updated_at: chrono::Utc::now(),
        })
    }

    /// A publisher whose database is never asked (no snapshot is taken here).
    fn publisher(queue: usize) -> Publisher {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@localhost/never-used")
            .unwrap();
        let db = Database::new(pool, ActorCell::new("database")).start();
        let settings = crate::settings::PushSettings {
            replay_events: 100,
            queue_per_tablet: queue,
            max_subscriptions: 10,
        };
        Publisher::new(db, ActorCell::new("publisher"), &settings)
    }

    #[actix_web::test]
    async fn a_slow_tablet_is_disconnected_and_the_others_get_everything() {
        let mut publisher = publisher(4);
        let mut slow = publisher.register("tablet-1".into(), Topics::default(), HashMap::new());
        let mut fast = publisher.register("tablet-1".into(), Topics::default(), HashMap::new());
        let mut received = Vec::new();
        for version in 1..=10 {
            let (topic, v) = board(version).topic();
            let event = publisher.log.append(topic, v, "{}").unwrap();
            publisher.fan_out(&event);
            // The fast tablet keeps up; the slow one never reads.
            received.push(fast.recv().await.unwrap().version);
        }
        assert_eq!(received, (1..=10).collect::<Vec<_>>());
        assert_eq!(
            publisher.subscribers.len(),
            1,
            "the slow tablet was dropped"
        );
        // It gets what was queued before it fell behind, then the end of its stream.
        let mut queued = Vec::new();
        while let Some(event) = slow.recv().await {
            queued.push(event.version);
        }
        assert_eq!(queued, vec![1, 2, 3, 4]);
    }

    #[actix_web::test]
    async fn a_snapshot_floor_skips_updates_the_snapshot_already_showed() {
        let mut publisher = publisher(8);
        let floor = HashMap::from([(Topic::Game("curling".into()), 2)]);
        let mut tablet = publisher.register("tablet-1".into(), Topics::default(), floor);
        for version in 1..=3 {
            let (topic, v) = board(version).topic();
            let event = publisher.log.append(topic, v, "{}").unwrap();
            publisher.fan_out(&event);
        }
        assert_eq!(tablet.recv().await.unwrap().version, 3);
        assert!(tablet.try_recv().is_err());
    }
}
