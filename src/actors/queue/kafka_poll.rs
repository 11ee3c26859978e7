//! A Kafka REST consumer instance's reads and commits, on [`KafkaGateway`].
//!
//! A poll (`GET …/records`): the instance's state from its actor ([`PlanPoll`]); for each
//! subscribed topic the partitions the group book gives its consumer now (with leases, as a
//! native member's dequeue); each read from the instance's position (or its seek, or the
//! group's committed offset for a partition newly assigned, or `auto.offset.reset`) with
//! [`Fetch`](crate::actors::queue::broker::Fetch)`{at}`; with `auto.commit.enable` the group's
//! offsets move past what is returned, committed before the reply (as `/queue` dequeues do);
//! then the new positions go back to the actor ([`FinishPoll`]). Nothing there: it waits on the
//! partitions' commit signals until `timeout`.
//!
//! Commits (`POST …/offsets`) are the group's offsets, fenced like a native member's (only
//! the partition's owner commits). v2 commits the offset of the last record consumed, so the
//! group's next offset is that plus one; `GET …/offsets` answers the next offset, as Kafka's
//! `committed()` does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;

use crate::actors::queue::kafka::KafkaGateway;
use crate::actors::queue::kafka_consumers::{
    FinishPoll, InstanceName, PlanPoll, Positions, SeekTo,
};
use crate::queue::Reader;
use crate::queue::kafka::KafkaError;
use crate::queue::kafka::formats::Format;
use crate::queue::kafka::instances::{Seek, TopicPartition};

/// A consumed record, as v2 answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumedRecord {
    pub topic: String,
    pub key: Value,
    pub value: Value,
    pub partition: i32,
    pub offset: i64,
}

/// How long a poll may wait, and how many bytes of values it may return.
#[derive(Debug, Clone, Copy)]
pub struct PollLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl KafkaGateway {
    /// The next records for an instance, in `format` (which must be the instance's; `None`:
    /// the instance's), with the format they are in.
    pub async fn records(
        &self,
        id: InstanceName,
        format: Option<Format>,
        limits: PollLimits,
    ) -> Result<(Format, Vec<ConsumedRecord>), KafkaError> {
        let mut plan = self
            .ask(PlanPoll {
                id: id.clone(),
                format,
            })
            .await?;
        let applied_seeks = plan.seeks.clone();
        let format = plan.config.format;
        let settings = self.queue.settings();
        let timeout = limits
            .timeout
            .min(Duration::from_millis(settings.max_wait_ms));
        let deadline = Instant::now() + timeout;
        let max_records = settings.max_batch;
        loop {
            let mut records = Vec::new();
            let mut bytes = 0usize;
            let mut positions: HashMap<TopicPartition, i64> = HashMap::new();
            let mut signals = Vec::new();
            let mut routes = Vec::new();
            let mut commits = Vec::new();
            let mut waiting_for_partitions = false;
            for topic_name in &plan.topics {
                let (topic, route) = self.queue.member_route(plan.consumer, topic_name).await?;
                waiting_for_partitions |= route.handing_over || route.partitions.is_empty();
                for &p in &route.partitions {
                    let tp: TopicPartition = (topic_name.clone(), p as i32);
                    signals.push(self.queue.shared.signals.subscribe(topic.key(p)));
                    let from = match (plan.seeks.get(&tp), plan.positions.get(&tp)) {
                        (None, Some(&position)) => position,
                        _ => {
                            let reader = Some(route.reader.clone());
                            let o = self.queue.partition_offsets(&topic, p, reader).await?;
                            plan.start_for(&tp, o.start, o.end, o.committed)?
                        }
                    };
                    let mut next = from;
                    let room = max_records - records.len();
                    if room > 0 && bytes < limits.max_bytes {
                        let fetched = self.queue.fetch_at(&topic, p, from, room).await?;
                        for m in fetched {
                            let size = m.message.len();
                            if !records.is_empty() && bytes + size > limits.max_bytes {
                                break;
                            }
                            bytes += size;
                            next = m.offset + 1;
                            records.push(ConsumedRecord {
                                topic: topic_name.clone(),
                                key: Value::Null,
                                value: format.text_to_value(&m.message),
                                partition: m.partition,
                                offset: m.offset,
                            });
                        }
                    }
                    if plan.config.auto_commit && next != from {
                        commits.push((topic.clone(), p, route.reader.clone(), next));
                    }
                    positions.insert(tp, next);
                }
                routes.push(route);
            }
            // Seeks are applied; the next round reads on from here.
            plan.seeks.clear();
            plan.positions = positions.clone();
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                // Committed while the poll's leases still hold the partitions.
                let done = commits
                    .into_iter()
                    .map(|(topic, p, reader, next)| async move {
                        self.queue.commit_leased(&topic, p, reader, next).await
                    });
                for result in futures_util::future::join_all(done).await {
                    result?;
                }
                drop(routes);
                self.ask(FinishPoll {
                    id,
                    consumer: plan.consumer,
                    seeks: applied_seeks,
                    positions,
                })
                .await?;
                return Ok((format, records));
            }
            drop(routes);
            let mut remaining = deadline - now;
            if waiting_for_partitions {
                remaining = remaining.min(Duration::from_millis(50));
            }
            let wakers: Vec<_> = signals
                .iter_mut()
                .map(|rx| Box::pin(rx.changed().map(|_| ())))
                .collect();
            if wakers.is_empty() {
                tokio::time::sleep(remaining).await;
            } else {
                let _ =
                    tokio::time::timeout(remaining, futures_util::future::select_all(wakers)).await;
            }
        }
    }

    /// Commits the group's offsets: the given ones (each the last record consumed), or, with
    /// none given, the instance's positions (everything it has been returned).
    pub async fn commit(
        &self,
        id: InstanceName,
        offsets: Option<Vec<(String, i32, i64)>>,
    ) -> Result<(), KafkaError> {
        let (consumer, positions) = self.ask(Positions(id)).await?;
        let consumer = consumer.ok_or_else(|| {
            KafkaError::IllegalState("Consumer is not subscribed to any topics".into())
        })?;
        let next_offsets: Vec<(String, i32, i64)> = match offsets {
            Some(offsets) => offsets
                .into_iter()
                .map(|(t, p, o)| {
                    if o < 0 {
                        return Err(KafkaError::invalid(
                            "offsets[].offset: must not be negative",
                        ));
                    }
                    Ok((t, p, o + 1))
                })
                .collect::<Result<_, _>>()?,
            None => positions.into_iter().map(|((t, p), o)| (t, p, o)).collect(),
        };
        for (topic, partition, next) in next_offsets {
            self.queue.commit(consumer, &topic, partition, next).await?;
        }
        Ok(())
    }

    /// The group's committed next offsets of `partitions` (`-1` where it has none).
    pub async fn committed(
        &self,
        id: InstanceName,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, i64)>, KafkaError> {
        self.ask(Positions(id.clone())).await?;
        let reader = Reader::Group(id.group.as_str().into());
        let mut out = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let route = self.queue.topic_route(&topic)?;
            let p = self.queue.partition_of(&route, partition)?;
            let offsets = self
                .queue
                .partition_offsets(&route, p, Some(reader.clone()))
                .await?;
            out.push((topic, partition, offsets.committed.unwrap_or(-1)));
        }
        Ok(out)
    }

    /// Seeks: each partition's next fetch reads from there.
    pub async fn seek(
        &self,
        id: InstanceName,
        seeks: Vec<(String, i32, Seek)>,
    ) -> Result<(), KafkaError> {
        let mut checked = Vec::with_capacity(seeks.len());
        for (topic, partition, seek) in seeks {
            let route = self.queue.topic_route(&topic)?;
            self.queue.partition_of(&route, partition)?;
            if let Seek::To(o) = seek
                && o < 0
            {
                return Err(KafkaError::invalid(
                    "offsets[].offset: must not be negative",
                ));
            }
            checked.push(((topic, partition), seek));
        }
        self.ask(SeekTo { id, seeks: checked }).await
    }
}
