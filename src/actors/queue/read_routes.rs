//! The read managers' job (seed 004): where each dequeue reads. A consumer of a whole topic
//! visits its partitions in seed 004's `(i + j) % n` rotation; a member of a consumer group
//! reads the partitions its group book leases to it, and commits the group's offset of a
//! partition only while it owns it ([`FenceCommit`]). Any manager answers [`RouteRead`], the
//! write manager too; outside groups the ingress computes the route itself
//! ([`plain_read_route`]), without a round trip.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::{Handler, Message};

use crate::actors::clock::now_ms;
use crate::actors::queue::manager::QueueManager;
use crate::actors::queue::table::{ConsumerRoute, TopicRoute};
use crate::queue::groups::{Fenced, Leases};
use crate::queue::{QueueError, Reader, routing};

/// What a read manager decides for one dequeue.
#[derive(Debug)]
pub struct ReadRoute {
    pub reader: Reader,
    /// Partitions to visit, in order.
    pub partitions: Vec<usize>,
    /// A group member's leases on them, released when the dequeue ends.
    pub leases: Option<Leases>,
    /// A group member waiting for partitions being handed over to it.
    pub handing_over: bool,
}

/// Where a consumer's dequeue reads (a read manager's job).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ReadRoute, QueueError>")]
pub struct RouteRead {
    pub consumer: Arc<ConsumerRoute>,
    pub topic: Arc<TopicRoute>,
}

/// May this group member commit the group's offset of `partition`? The answer is a lease on it,
/// held until the commit is done (no handover meanwhile), or `Fenced` (409).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Leases, QueueError>")]
pub struct FenceCommit {
    pub consumer: Arc<ConsumerRoute>,
    pub topic: Arc<TopicRoute>,
    pub partition: usize,
}

/// Where a consumer that is in no group reads: its registered partition, or every partition in
/// its rotation. Pure (the rotation's counter is an atomic of the topic's route), so the ingress
/// computes it itself without a round trip to a read manager; `None` for a group member (the
/// read manager's group book decides).
pub fn plain_read_route(consumer: &ConsumerRoute, topic: &TopicRoute) -> Option<ReadRoute> {
    if consumer.group.is_some() {
        return None;
    }
    let partitions = match consumer.topics.get(&topic.id).copied().flatten() {
        Some(p) => vec![p as usize],
        None => {
            let j = topic.next_read.fetch_add(1, Ordering::Relaxed);
            routing::rotation(consumer.id as u64, j, topic.partitions()).collect()
        }
    };
    Some(ReadRoute {
        reader: Reader::Consumer(consumer.id),
        partitions,
        leases: None,
        handing_over: false,
    })
}

impl Handler<RouteRead> for QueueManager {
    type Result = Result<ReadRoute, QueueError>;

    fn handle(&mut self, msg: RouteRead, _ctx: &mut Self::Context) -> Self::Result {
        let RouteRead { consumer, topic } = msg;
        if let Some(route) = plain_read_route(&consumer, &topic) {
            return Ok(route);
        }
        let n = topic.partitions();
        let registered = consumer.topics.get(&topic.id).copied().flatten();
        let Some(group) = consumer.group.clone() else {
            unreachable!("a consumer without a group has a plain route");
        };
        let now = now_ms();
        let acquired = {
            let mut book = self.shared.groups();
            match book.acquire(&group, topic.id, consumer.id, now) {
                Ok(acquired) => Ok(acquired),
                Err(_) => {
                    // Registered (the table says so) but unknown to the book: a member from
                    // before a restart. It joins now.
                    let partition = registered.map(|p| p as usize);
                    let joined = book.join(&group, topic.id, n, consumer.id, partition, now);
                    book.acquire(&group, topic.id, consumer.id, now)
                        .map(|(grant, r)| (grant, r.or(joined)))
                }
            }
        };
        let Ok((mut grant, rebalance)) = acquired else {
            return Err(QueueError::Unavailable(format!(
                "consumer {} could not join group {group}",
                consumer.id
            )));
        };
        self.log_rebalances(
            rebalance.into_iter().collect(),
            &format!("consumer {} polled", consumer.id),
        );
        let leases = Leases::new(
            self.shared.groups.clone(),
            group.clone(),
            topic.id,
            consumer.id,
            grant.partitions.clone(),
        );
        if let Some(p) = registered {
            grant.partitions.retain(|&q| q == p as usize);
        }
        Ok(ReadRoute {
            reader: Reader::Group(group),
            partitions: grant.partitions,
            leases: Some(leases),
            handing_over: !grant.handing_over.is_empty(),
        })
    }
}

impl Handler<FenceCommit> for QueueManager {
    type Result = Result<Leases, QueueError>;

    fn handle(&mut self, msg: FenceCommit, _ctx: &mut Self::Context) -> Self::Result {
        let FenceCommit {
            consumer,
            topic,
            partition,
        } = msg;
        let Some(group) = consumer.group.clone() else {
            return Err(QueueError::Unavailable(format!(
                "consumer {} is in no group",
                consumer.id
            )));
        };
        let now = now_ms();
        let leased = {
            let mut book = self.shared.groups();
            match book.lease_for_commit(&group, topic.id, consumer.id, partition, now) {
                Err(Fenced::NotAMember) => {
                    // Registered (the table says so) but unknown to the book: a member from
                    // before a restart. It joins now.
                    let registered = consumer.topics.get(&topic.id).copied().flatten();
                    let registered = registered.map(|p| p as usize);
                    let n = topic.partitions();
                    book.join(&group, topic.id, n, consumer.id, registered, now);
                    book.lease_for_commit(&group, topic.id, consumer.id, partition, now)
                }
                other => other,
            }
        };
        match leased {
            Ok((_, rebalance)) => {
                let why = format!("consumer {} committed", consumer.id);
                self.log_rebalances(rebalance.into_iter().collect(), &why);
                Ok(Leases::new(
                    self.shared.groups.clone(),
                    group,
                    topic.id,
                    consumer.id,
                    vec![partition],
                ))
            }
            Err(fenced) => Err(QueueError::Fenced {
                consumer: consumer.id,
                group: group.to_string(),
                topic: topic.name.to_string(),
                partition: partition as i32,
                generation: match fenced {
                    Fenced::NotOwner { generation } => generation,
                    Fenced::NotAMember => 0,
                },
            }),
        }
    }
}
