//! The Kafka REST (v2) consumer instances' actor: owns the [`InstanceBook`] (each instance's
//! format, subscription, positions and seeks) and expires idle instances.
//!
//! An instance that subscribes is a member of its group in the queue (a consumer registered
//! through the write manager, like `/queue/consumers` with a `group`), so the native group
//! book assigns it partitions beside the native members, and its commits are the group's
//! offsets. The requests' work with the brokers is done by `kafka::KafkaGateway`, which asks
//! this actor for the instance's state before a poll and gives it the new positions after.
//!
//! Failure: instances live in memory, as the proxy's do. A panic here restarts the actor with
//! the same book (the supervisor keeps the actor's value); a process restart forgets them, and
//! their consumers, still registered, stop counting as live members after the group's session
//! timeout (their partitions go to the others).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::clock::now_ms;
use crate::actors::queue::router::QueueRouter;
use crate::actors::supervisor::ActorCell;
use crate::queue::kafka::KafkaError;
use crate::queue::kafka::formats::Format;
use crate::queue::kafka::instances::{
    InstanceBook, InstanceConfig, PollPlan, Seek, TopicPartition,
};

/// How often idle instances are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

type Reply<T> = Result<T, KafkaError>;

/// Names a consumer instance.
#[derive(Debug, Clone)]
pub struct InstanceName {
    pub group: String,
    pub name: String,
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct CreateInstance {
    pub id: InstanceName,
    pub config: InstanceConfig,
}

/// The instance now reads `topics` as the queue's consumer `consumer`; answers the consumer it
/// replaces (which must leave).
#[derive(Message)]
#[rtype(result = "Reply<Option<i64>>")]
pub struct Subscribe {
    pub id: InstanceName,
    pub topics: Vec<String>,
    pub consumer: i64,
}

/// Drops the subscription; answers the consumer that must leave.
#[derive(Message)]
#[rtype(result = "Reply<Option<i64>>")]
pub struct Unsubscribe(pub InstanceName);

/// The instance's consumer and topics.
#[derive(Message)]
#[rtype(result = "Reply<(Option<i64>, Vec<String>)>")]
pub struct Describe(pub InstanceName);

#[derive(Message)]
#[rtype(result = "Reply<PollPlan>")]
pub struct PlanPoll {
    pub id: InstanceName,
    /// The format the request accepts; `None`: whichever the instance has.
    pub format: Option<Format>,
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct FinishPoll {
    pub id: InstanceName,
    pub consumer: i64,
    pub seeks: HashMap<TopicPartition, Seek>,
    pub positions: HashMap<TopicPartition, i64>,
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct SeekTo {
    pub id: InstanceName,
    pub seeks: Vec<(TopicPartition, Seek)>,
}

/// The instance's consumer and its current positions.
#[derive(Message)]
#[rtype(result = "Reply<(Option<i64>, Vec<(TopicPartition, i64)>)>")]
pub struct Positions(pub InstanceName);

/// Removes the instance; answers its consumer (which must leave).
#[derive(Message)]
#[rtype(result = "Reply<Option<i64>>")]
pub struct DeleteInstance(pub InstanceName);

pub struct KafkaConsumers {
    cell: Arc<ActorCell>,
    book: InstanceBook,
    /// To take expired instances' consumers out of their groups.
    queue: QueueRouter,
}

impl KafkaConsumers {
    pub fn new(cell: Arc<ActorCell>, queue: QueueRouter) -> Self {
        let settings = queue.settings();
        let book = InstanceBook::new(
            settings.kafka_instance_timeout_ms,
            settings.kafka_max_instances,
        );
        Self { cell, book, queue }
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        for (group, name, consumer) in self.book.expire(now_ms()) {
            tracing::info!(
                actor = self.cell.name(),
                group,
                instance = name,
                "Kafka consumer instance {name} of group {group} expired (idle); its partitions go to the group's other members"
            );
            if let Some(consumer) = consumer {
                let queue = self.queue.clone();
                ctx.spawn(
                    async move {
                        if let Err(e) = queue.leave(consumer).await {
                            tracing::info!(error = %e, "expired instance's consumer {consumer} did not leave: {e}");
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl Actor for KafkaConsumers {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(EXPIRY_TICK, |act, ctx| act.expire(ctx));
    }
}

impl actix::Supervised for KafkaConsumers {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(
            actor = self.cell.name(),
            instances = self.book.len(),
            "{} restarting with its {} consumer instances",
            self.cell.name(),
            self.book.len()
        );
    }
}

crate::supervised_actor_handlers!(KafkaConsumers);

impl Handler<CreateInstance> for KafkaConsumers {
    type Result = Reply<()>;
    fn handle(&mut self, msg: CreateInstance, _: &mut Self::Context) -> Self::Result {
        self.book
            .create(&msg.id.group, &msg.id.name, msg.config, now_ms())
    }
}

impl Handler<Subscribe> for KafkaConsumers {
    type Result = Reply<Option<i64>>;
    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Self::Result {
        let id = msg.id;
        self.book
            .subscribe(&id.group, &id.name, msg.topics, msg.consumer, now_ms())
    }
}

impl Handler<Unsubscribe> for KafkaConsumers {
    type Result = Reply<Option<i64>>;
    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) -> Self::Result {
        self.book.unsubscribe(&msg.0.group, &msg.0.name, now_ms())
    }
}

impl Handler<Describe> for KafkaConsumers {
    type Result = Reply<(Option<i64>, Vec<String>)>;
    fn handle(&mut self, msg: Describe, _: &mut Self::Context) -> Self::Result {
        let instance = self.book.touch(&msg.0.group, &msg.0.name, now_ms())?;
        Ok((instance.consumer, instance.topics.clone()))
    }
}

impl Handler<PlanPoll> for KafkaConsumers {
    type Result = Reply<PollPlan>;
    fn handle(&mut self, msg: PlanPoll, _: &mut Self::Context) -> Self::Result {
        self.book
            .plan_poll(&msg.id.group, &msg.id.name, msg.format, now_ms())
    }
}

impl Handler<FinishPoll> for KafkaConsumers {
    type Result = Reply<()>;
    fn handle(&mut self, msg: FinishPoll, _: &mut Self::Context) -> Self::Result {
        let id = msg.id;
        self.book.finish_poll(
            &id.group,
            &id.name,
            msg.consumer,
            &msg.seeks,
            msg.positions,
            now_ms(),
        )
    }
}

impl Handler<SeekTo> for KafkaConsumers {
    type Result = Reply<()>;
    fn handle(&mut self, msg: SeekTo, _: &mut Self::Context) -> Self::Result {
        self.book
            .seek(&msg.id.group, &msg.id.name, msg.seeks, now_ms())
    }
}

impl Handler<Positions> for KafkaConsumers {
    type Result = Reply<(Option<i64>, Vec<(TopicPartition, i64)>)>;
    fn handle(&mut self, msg: Positions, _: &mut Self::Context) -> Self::Result {
        self.book.positions(&msg.0.group, &msg.0.name, now_ms())
    }
}

impl Handler<DeleteInstance> for KafkaConsumers {
    type Result = Reply<Option<i64>>;
    fn handle(&mut self, msg: DeleteInstance, _: &mut Self::Context) -> Self::Result {
        let consumer = self.book.delete(&msg.0.group, &msg.0.name)?;
        tracing::info!(
            actor = self.cell.name(),
            "Kafka consumer instance {} of group {} deleted",
            msg.0.name,
            msg.0.group
        );
        Ok(consumer)
    }
}
