//! Queue managers (seed 004): one write manager and read managers, all of this one actor type.
//!
//! As in seed 004's third assignment, every manager is a read manager and the elected one also
//! plays the write manager: "we consider each of the managers as an RM and give one of them the
//! special privilege of WM using leader election". The managers form a server group
//! ([`crate::actors::server_group`]): they elect it with the bully algorithm (the highest live id
//! wins; the manager started as `queue-write-manager` has the highest id) and every other
//! manager sends it heartbeats. When the write manager dies and stays down, the next highest
//! read manager is elected and takes over its role; when it comes back it bullies its way back.
//!
//! - Write manager: creates topics and assigns their partitions to brokers (fewest partitions
//!   first), registers producers and consumers, publishes the routing table the ingress reads
//!   (enqueues then go straight to brokers), health-checks brokers (a [`HealthCheck`] with a deadline,
//!   logged when it fails and when it recovers), expires silent consumer-group members.
//! - Read managers: decide where each dequeue reads (`read_routes.rs`): seed 004's `(i + j) % n`
//!   rotation for consumers of a whole topic, or the member's leased share of its group.
//!
//! Everything a manager knows is in PostgreSQL or rebuilt from it: a manager that becomes the
//! write manager reloads the table first.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use sqlx::PgPool;

use crate::actors::clock::now_ms;
use crate::actors::queue::broker::{AssignPartition, BrokerSlot, HealthCheck, PartitionSignals};
use crate::actors::queue::table::{Clients, ConsumerRoute, QueueTable, Registrations, TopicRoute};
use crate::actors::server_group::{Duty, Election, GroupMember, GroupTiming, Members};
use crate::actors::supervisor::ActorCell;
use crate::queue::groups::{GroupBook, Rebalance};
use crate::queue::retention::Retention;
use crate::queue::store::{self, PartitionRow, Registration};
use crate::queue::{PartitionKey, QueueError, TopicInfo, routing};
use crate::settings::QueueSettings;

/// One manager as the ingress and its peers see it.
#[derive(Debug)]
pub struct ManagerSlot {
    pub id: u64,
    pub addr: Addr<QueueManager>,
    pub cell: Arc<ActorCell>,
}

/// Everything the queue's actors and the ingress share.
pub struct QueueShared {
    pub settings: QueueSettings,
    pub table: ArcSwap<QueueTable>,
    /// Producers and consumers (the write manager inserts, the ingress looks up).
    pub clients: Clients,
    pub brokers: Vec<Arc<BrokerSlot>>,
    /// Set once every manager has started.
    pub managers: OnceLock<Vec<Arc<ManagerSlot>>>,
    /// The manager id of the write manager, as the last one elected announced it.
    pub leader: AtomicU64,
    pub signals: Arc<PartitionSignals>,
    pub groups: Arc<Mutex<GroupBook>>,
}

impl QueueShared {
    pub fn broker(&self, id: i32) -> Option<&Arc<BrokerSlot>> {
        self.brokers.iter().find(|b| b.id == id)
    }

    pub fn managers(&self) -> &[Arc<ManagerSlot>] {
        self.managers.get().map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn groups(&self) -> MutexGuard<'_, GroupBook> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The managers' server group is the list of managers.
impl Members<QueueManager> for QueueShared {
    fn members(&self) -> Vec<(u64, Addr<QueueManager>)> {
        self.managers()
            .iter()
            .map(|m| (m.id, m.addr.clone()))
            .collect()
    }

    fn name(&self, id: u64) -> String {
        self.managers()
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("manager {id}"), |m| m.cell.name().to_owned())
    }
}

/// Why a manager did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerError {
    /// Only the write manager does that; ask the one elected.
    NotLeader,
    Queue(QueueError),
}

impl From<QueueError> for ManagerError {
    fn from(e: QueueError) -> Self {
        ManagerError::Queue(e)
    }
}

/// A heartbeat to the write manager; answered at once.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ManagerHeartbeat;

#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<TopicInfo, ManagerError>")]
pub struct CreateTopic {
    pub name: String,
    pub partitions: i32,
    pub retention: Retention,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<i64, ManagerError>")]
pub struct RegisterProducer {
    pub registrations: Vec<Registration>,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<i64, ManagerError>")]
pub struct RegisterConsumer {
    pub registrations: Vec<Registration>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ManagerError>")]
pub struct LeaveConsumer {
    pub id: i64,
}

pub struct QueueManager {
    id: u64,
    cell: Arc<ActorCell>,
    pool: PgPool,
    pub(super) shared: Arc<QueueShared>,
    /// Election of the write manager and heartbeats to it.
    group: GroupMember,
    was_leader: bool,
    next_health_check: u64,
    /// When the write manager next looks for consumers silent past their expiry.
    next_consumer_sweep: u64,
    /// Brokers whose last health check failed, and checks in flight.
    failing_brokers: HashSet<i32>,
    checks_in_flight: HashSet<i32>,
    /// Topics and partitions being created (not in the table yet).
    creating: (usize, usize),
}

impl QueueManager {
    pub fn new(id: u64, cell: Arc<ActorCell>, pool: PgPool, shared: Arc<QueueShared>) -> Self {
        let group = GroupMember::new(id, "queue-managers", GroupTiming::from(&shared.settings));
        Self {
            id,
            cell,
            pool,
            shared,
            group,
            was_leader: false,
            next_health_check: 0,
            next_consumer_sweep: 0,
            failing_brokers: HashSet::new(),
            checks_in_flight: HashSet::new(),
            creating: (0, 0),
        }
    }

    fn leads(&self) -> bool {
        self.group.leads()
    }

    fn name(&self) -> &str {
        self.cell.name()
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let duty = self.group.tick(&*shared);
        let leads = self.leads();
        if leads && !self.was_leader {
            self.became_write_manager(ctx);
        } else if !leads && self.was_leader {
            // Not a failure in itself: a lost write manager is logged as a failed heartbeat.
            tracing::info!(
                manager = self.name(),
                "{} is no longer the write manager",
                self.name()
            );
        }
        self.was_leader = leads;
        match duty {
            Duty::Lead => {
                let now = now_ms();
                if now >= self.next_health_check {
                    self.next_health_check = now + self.shared.settings.health_interval_ms;
                    self.check_brokers(ctx);
                    let rebalances = self.shared.groups().expire(now);
                    self.log_rebalances(rebalances, "a member stopped polling");
                }
                if now >= self.next_consumer_sweep {
                    self.expire_silent_consumers(now, ctx);
                }
            }
            Duty::Heartbeat { leader, to } => {
                let ping = to
                    .send(ManagerHeartbeat)
                    .timeout(self.group.heartbeat_timeout());
                ctx.spawn(ping.into_actor(self).map(move |answer, act, _| {
                    let shared = act.shared.clone();
                    act.group
                        .heartbeat_answered(leader, answer.is_ok(), &*shared);
                }));
            }
            Duty::Wait => {}
        }
    }

    /// Deletes the consumers silent past `queue.consumer_idle_expiry_ms`, as if each had left
    /// (a group member's partitions go to the others). Looked at four times per expiry period,
    /// at most once a second.
    fn expire_silent_consumers(&mut self, now: u64, ctx: &mut Context<Self>) {
        let expiry = self.shared.settings.consumer_idle_expiry_ms;
        if expiry == 0 {
            self.next_consumer_sweep = u64::MAX;
            return;
        }
        self.next_consumer_sweep = now + (expiry / 4).max(1_000);
        let cutoff = now.saturating_sub(expiry);
        let silent: Vec<i64> = self
            .shared
            .clients
            .consumers
            .values()
            .iter()
            .filter(|c| c.silent_since(cutoff))
            .map(|c| c.id)
            .collect();
        if silent.is_empty() {
            return;
        }
        tracing::info!(
            manager = self.name(),
            consumers = silent.len(),
            "{} expires {} consumers silent for {} ms",
            self.name(),
            silent.len(),
            expiry
        );
        for id in silent {
            ctx.address().do_send(LeaveConsumer { id });
        }
    }

    fn became_write_manager(&mut self, ctx: &mut Context<Self>) {
        self.shared.leader.store(self.id, Ordering::Release);
        tracing::info!(
            manager = self.name(),
            "Election completed: {} is the write manager",
            self.name()
        );
        // Whatever the previous write manager published last, PostgreSQL has it all.
        let (pool, shared, name) = (
            self.pool.clone(),
            self.shared.clone(),
            self.name().to_owned(),
        );
        ctx.spawn(
            async move {
                match QueueTable::load(&pool).await {
                    Ok(loaded) => {
                        let current = shared.table.load_full();
                        let table = loaded.fill(&shared.clients).merged_with(&current);
                        assign_all(&shared, &table);
                        shared.table.store(Arc::new(table));
                        tracing::info!(manager = %name, "write manager {name} reloaded the routing table");
                    }
                    Err(e) => tracing::error!(manager = %name, error = ?e, "write manager {name} could not reload the routing table"),
                }
            }
            .into_actor(self),
        );
    }

    fn check_brokers(&mut self, ctx: &mut Context<Self>) {
        let deadline = Duration::from_millis(self.shared.settings.health_deadline_ms);
        for broker in self.shared.brokers.clone() {
            if !self.checks_in_flight.insert(broker.id) {
                continue;
            }
            let ping = broker.addr.send(HealthCheck).timeout(deadline);
            ctx.spawn(ping.into_actor(self).map(move |result, act, _| {
                act.checks_in_flight.remove(&broker.id);
                let name = broker.cell.name();
                match result {
                    Ok(health) => {
                        if act.failing_brokers.remove(&broker.id) {
                            tracing::info!(manager = act.name(), broker = name, partitions = health.partitions, "health check: broker {name} answers again (checked by {})", act.name());
                        }
                    }
                    Err(e) => {
                        if act.failing_brokers.insert(broker.id) {
                            let why = match e {
                                MailboxError::Timeout => format!("no answer within {} ms", deadline.as_millis()),
                                MailboxError::Closed => "its mailbox is closed".to_owned(),
                            };
                            tracing::warn!(manager = act.name(), broker = name, "health check: broker {name} failed: {why} (checked by {}); its partitions answer 503 while it is down", act.name());
                        }
                    }
                }
            }));
        }
    }

    pub(super) fn log_rebalances(&self, rebalances: Vec<Rebalance>, why: &str) {
        for r in rebalances {
            let table = self.shared.table.load();
            let topic = table
                .topic_by_id(r.topic_id)
                .map_or_else(|| r.topic_id.to_string(), |t| t.name.to_string());
            let assignment: Vec<String> = r
                .assignment
                .iter()
                .enumerate()
                .map(|(p, m)| match m {
                    Some(m) => format!("{p}→{m}"),
                    None => format!("{p}→none"),
                })
                .collect();
            tracing::info!(
                manager = self.name(),
                group = %r.group,
                topic = %topic,
                generation = r.generation,
                "group {} rebalanced on {topic} ({why}): members {:?}, partitions [{}] (by {})",
                r.group,
                r.live,
                assignment.join(", "),
                self.name()
            );
        }
    }

    fn not_leader<T: 'static>() -> ResponseFuture<Result<T, ManagerError>> {
        Box::pin(async { Err(ManagerError::NotLeader) })
    }
}

/// Tells every broker which partitions it owns (idempotent: brokers ignore known ones).
fn assign_all(shared: &QueueShared, table: &QueueTable) {
    for topic in table.topics.values() {
        for (p, broker) in topic.brokers.iter().enumerate() {
            if let Some(slot) = shared.broker(*broker) {
                slot.addr
                    .do_send(AssignPartition(new_partition_row(topic, p)));
            }
        }
    }
}

fn new_partition_row(topic: &TopicRoute, partition: usize) -> PartitionRow {
    PartitionRow {
        key: PartitionKey {
            topic_id: topic.id,
            partition: partition as i32,
        },
        topic: topic.name.to_string(),
        start_offset: 0,
        next_offset: 0,
        retention: topic.retention,
    }
}

impl Actor for QueueManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            manager = self.name(),
            id = self.id,
            "queue manager {} started",
            self.name()
        );
        let shared = self.shared.clone();
        self.group.start(&*shared);
        ctx.run_interval(self.group.tick_interval(), |act, ctx| act.tick(ctx));
    }
}

impl actix::Supervised for QueueManager {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(
            manager = self.name(),
            "queue manager {} restarting; it joins the election anew",
            self.name()
        );
        self.group.reset();
        self.was_leader = false;
        self.checks_in_flight.clear();
        self.creating = (0, 0);
    }
}

crate::supervised_actor_handlers!(QueueManager);

impl Handler<Election> for QueueManager {
    type Result = ();
    fn handle(&mut self, msg: Election, _ctx: &mut Self::Context) {
        let shared = self.shared.clone();
        self.group.on_election(msg, &*shared);
    }
}

impl Handler<ManagerHeartbeat> for QueueManager {
    type Result = ();
    fn handle(&mut self, _: ManagerHeartbeat, _ctx: &mut Self::Context) {}
}

impl Handler<CreateTopic> for QueueManager {
    type Result = ResponseActFuture<Self, Result<TopicInfo, ManagerError>>;

    fn handle(&mut self, msg: CreateTopic, _ctx: &mut Self::Context) -> Self::Result {
        if !self.leads() {
            return Box::pin(fut::ready(Err(ManagerError::NotLeader)));
        }
        // Checked here, in the actor, with the creations still in flight: concurrent ones
        // cannot together go past the limits.
        let n = msg.partitions as usize;
        let room = self
            .shared
            .table
            .load()
            .check_room(&self.shared.settings, self.creating, n);
        if let Err(e) = room {
            return Box::pin(fut::ready(Err(e.into())));
        }
        self.creating = (self.creating.0 + 1, self.creating.1 + n);
        let (pool, shared) = (self.pool.clone(), self.shared.clone());
        let name = self.name().to_owned();
        let work = async move {
            let table = shared.table.load_full();
            let mut counts = vec![0usize; shared.brokers.len()];
            for topic in table.topics.values() {
                for broker in &topic.brokers {
                    if let Some(i) = shared.brokers.iter().position(|b| b.id == *broker) {
                        counts[i] += 1;
                    }
                }
            }
            let brokers: Vec<i32> = routing::spread(msg.partitions as usize, counts)
                .into_iter()
                .map(|i| shared.brokers[i].id)
                .collect();
            let row = match store::create_topic(&pool, &msg.name, msg.retention, &brokers).await {
                Ok(row) => row,
                Err(QueueError::TopicExists(topic)) => {
                    // Perhaps created by a write manager that died before publishing it.
                    if let Ok(loaded) = QueueTable::load(&pool).await {
                        let table = loaded
                            .fill(&shared.clients)
                            .merged_with(&shared.table.load_full());
                        assign_all(&shared, &table);
                        shared.table.store(Arc::new(table));
                    }
                    return Err(QueueError::TopicExists(topic).into());
                }
                Err(e) => return Err(e.into()),
            };
            let route = Arc::new(TopicRoute::from_row(&row));
            // Brokers first: a request can only reach them once the table names the topic.
            for (p, broker) in route.brokers.iter().enumerate() {
                if let Some(slot) = shared.broker(*broker) {
                    slot.addr
                        .do_send(AssignPartition(new_partition_row(&route, p)));
                }
            }
            shared.table.rcu(|t| {
                let mut t = QueueTable::clone(t);
                t.topics.insert(route.name.clone(), route.clone());
                t
            });
            tracing::info!(manager = %name, topic = %row.name, "write manager {name} created topic {} with partitions on brokers {:?}", row.name, row.brokers);
            Ok(route.info())
        };
        Box::pin(work.into_actor(self).map(move |result, act, _| {
            act.creating = (act.creating.0 - 1, act.creating.1 - n);
            result
        }))
    }
}

fn registrations_map(registrations: &[Registration]) -> Registrations {
    registrations
        .iter()
        .map(|r| (r.topic_id, r.partition))
        .collect()
}

impl Handler<RegisterProducer> for QueueManager {
    type Result = ResponseFuture<Result<i64, ManagerError>>;

    fn handle(&mut self, msg: RegisterProducer, _ctx: &mut Self::Context) -> Self::Result {
        if !self.leads() {
            return Self::not_leader();
        }
        let (pool, shared) = (self.pool.clone(), self.shared.clone());
        Box::pin(async move {
            let id = store::create_producer(&pool, &msg.registrations).await?;
            let registrations = Arc::new(registrations_map(&msg.registrations));
            shared.clients.producers.insert(id, registrations);
            Ok(id)
        })
    }
}

impl Handler<RegisterConsumer> for QueueManager {
    type Result = ResponseActFuture<Self, Result<i64, ManagerError>>;

    fn handle(&mut self, msg: RegisterConsumer, _ctx: &mut Self::Context) -> Self::Result {
        if !self.leads() {
            return Box::pin(fut::ready(Err(ManagerError::NotLeader)));
        }
        let (pool, shared) = (self.pool.clone(), self.shared.clone());
        let work = async move {
            let id =
                store::create_consumer(&pool, msg.group.as_deref(), &msg.registrations).await?;
            let route = Arc::new(ConsumerRoute::new(
                id,
                msg.group.map(Into::into),
                registrations_map(&msg.registrations),
            ));
            shared.clients.consumers.insert(id, route.clone());
            Ok::<_, QueueError>(route)
        };
        Box::pin(work.into_actor(self).map(|result, act, _| {
            let route = result?;
            if let Some(group) = &route.group {
                let table = act.shared.table.load();
                let mut rebalances = Vec::new();
                for (topic_id, partition) in &route.topics {
                    if let Some(topic) = table.topic_by_id(*topic_id) {
                        rebalances.extend(act.shared.groups().join(
                            group,
                            topic.id,
                            topic.partitions(),
                            route.id,
                            partition.map(|p| p as usize),
                            now_ms(),
                        ));
                    }
                }
                act.log_rebalances(rebalances, &format!("consumer {} joined", route.id));
            }
            Ok(route.id)
        }))
    }
}

impl Handler<LeaveConsumer> for QueueManager {
    type Result = ResponseActFuture<Self, Result<(), ManagerError>>;

    fn handle(&mut self, msg: LeaveConsumer, _ctx: &mut Self::Context) -> Self::Result {
        if !self.leads() {
            return Box::pin(fut::ready(Err(ManagerError::NotLeader)));
        }
        let (pool, shared, id) = (self.pool.clone(), self.shared.clone(), msg.id);
        let work = async move {
            if !store::leave_consumer(&pool, id).await? {
                return Err(QueueError::UnknownConsumer(id));
            }
            Ok(shared.clients.consumers.remove(id))
        };
        Box::pin(work.into_actor(self).map(move |result, act, _| {
            let gone = result?;
            if let Some(consumer) = &gone {
                consumer.left.send_replace(true);
            }
            if let Some(group) = gone.and_then(|c| c.group.clone()) {
                let rebalances = act.shared.groups().leave(&group, id, now_ms());
                act.log_rebalances(rebalances, &format!("consumer {id} left"));
            }
            Ok(())
        }))
    }
}
