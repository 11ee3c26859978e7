//! The Kafka REST Proxy v2 dialect of the queue, for the ingress ([`KafkaGateway`]): topics,
//! produce, and consumer instances, over the same brokers, groups and offsets as `/queue`.
//!
//! - Produce: a request's records are grouped by partition (explicit, by key as `/queue`'s
//!   `key`, else one round-robin partition for the request's unkeyed records) and each group is
//!   one `Append` to its broker, answered once committed (the same group commit). A group that
//!   fails gives its records an `error_code` (v2's per-record errors); the others keep theirs.
//! - Consumers: instances are kept by the [`KafkaConsumers`] actor; subscribing registers the
//!   instance as a member of its group (`kafka_poll.rs` reads and commits for it).

use std::collections::BTreeMap;

use actix::Addr;
use serde::Serialize;
use serde_json::Value;

use crate::actors::queue::kafka_consumers::{
    CreateInstance, DeleteInstance, Describe, InstanceName, KafkaConsumers, Subscribe, Unsubscribe,
};
use crate::actors::queue::router::{EnqueueTarget, QueueRouter};
use crate::queue::kafka::KafkaError;
use crate::queue::kafka::formats::Format;
use crate::queue::kafka::instances::InstanceConfig;

/// One record of a produce request.
#[derive(Debug, Clone)]
pub struct ProduceRecord {
    pub key: Value,
    pub value: Value,
    pub partition: Option<i32>,
}

/// Where one produced record went, or why it did not (v2's `offsets[]` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordOffset {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_code: Option<u32>,
    pub error: Option<String>,
}

/// A partition as v2 describes it, with its offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<ReplicaInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaInfo {
    pub broker: i32,
    pub leader: bool,
    pub in_sync: bool,
}

#[derive(Clone)]
pub struct KafkaGateway {
    pub(super) queue: QueueRouter,
    pub(super) consumers: Addr<KafkaConsumers>,
}

impl KafkaGateway {
    pub fn new(queue: QueueRouter, consumers: Addr<KafkaConsumers>) -> Self {
        Self { queue, consumers }
    }

    pub fn queue(&self) -> &QueueRouter {
        &self.queue
    }

    /// Asks the instances' actor; a crash or a full mailbox is a retriable 503.
    pub(super) async fn ask<M, R>(&self, msg: M) -> Result<R, KafkaError>
    where
        M: actix::Message<Result = Result<R, KafkaError>> + Send + 'static,
        R: Send + 'static,
        KafkaConsumers: actix::Handler<M>,
    {
        match self
            .consumers
            .send(msg)
            .timeout(self.queue.settings().request_timeout())
            .await
        {
            Ok(reply) => reply,
            Err(e) => Err(KafkaError::Unavailable(format!(
                "the consumer instances' actor did not answer: {e}"
            ))),
        }
    }

    /// Topic names, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.queue
            .list_topics()
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    /// A topic's partitions (each partition's broker is its leader and only replica).
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>, KafkaError> {
        let route = self.queue.topic_route(topic)?;
        Ok(route
            .brokers
            .iter()
            .enumerate()
            .map(|(p, &broker)| PartitionInfo {
                partition: p as i32,
                leader: broker,
                replicas: vec![ReplicaInfo {
                    broker,
                    leader: true,
                    in_sync: true,
                }],
            })
            .collect())
    }

    /// One partition, with its beginning and end offsets.
    pub async fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(PartitionInfo, i64, i64), KafkaError> {
        let route = self.queue.topic_route(topic)?;
        let p = self.queue.partition_of(&route, partition)?;
        let info = self.partitions(topic)?.swap_remove(p);
        let offsets = self.queue.partition_offsets(&route, p, None).await?;
        Ok((info, offsets.start, offsets.end))
    }

    /// Produces `records` to `topic` (all to `partition` when given), answered once committed.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        format: Format,
        records: Vec<ProduceRecord>,
    ) -> Result<Vec<RecordOffset>, KafkaError> {
        let route = self.queue.topic_route(topic)?;
        if records.is_empty() {
            return Err(KafkaError::invalid("records: send at least one record"));
        }
        let max = self.queue.settings().max_batch;
        if records.len() > max {
            return Err(KafkaError::invalid(format!(
                "records: at most {max} records per request"
            )));
        }
        // Group by target: an explicit partition, a key, or the request's one round-robin pick.
        let mut groups: BTreeMap<(Option<i32>, Option<String>), Vec<(usize, String)>> =
            BTreeMap::new();
        for (i, record) in records.into_iter().enumerate() {
            let target = partition.or(record.partition);
            if let Some(p) = target {
                self.queue.partition_of(&route, p)?;
            }
            let key = match target {
                Some(_) => None,
                None => format.key_to_route(&record.key)?,
            };
            let text = format
                .value_to_text(&record.value)
                .map_err(|e| KafkaError::invalid(format!("records[{i}].{e}")))?;
            groups.entry((target, key)).or_default().push((i, text));
        }
        let count = groups.values().map(Vec::len).sum::<usize>();
        let appends = groups.into_iter().map(|((partition, key), records)| {
            let (indices, messages): (Vec<usize>, Vec<String>) = records.into_iter().unzip();
            let target = EnqueueTarget { partition, key };
            async move {
                let placed = self.queue.append(topic, messages, target).await;
                (indices, placed)
            }
        });
        let results = futures_util::future::join_all(appends).await;
        let mut offsets = vec![None; count];
        let mut failures = 0;
        let mut first_error = None;
        for (indices, placed) in results {
            match placed {
                Ok(placed) => {
                    for (i, place) in indices.into_iter().zip(placed) {
                        offsets[i] = Some(RecordOffset {
                            partition: Some(place.partition),
                            offset: Some(place.offset),
                            error_code: None,
                            error: None,
                        });
                    }
                }
                Err(e) => {
                    let e = KafkaError::from(e);
                    if let Some(detail) = e.detail() {
                        tracing::error!(detail, "produce to `{topic}` failed: {e}");
                    }
                    failures += indices.len();
                    for i in indices {
                        offsets[i] = Some(RecordOffset {
                            partition: None,
                            offset: None,
                            error_code: Some(e.produce_error_code()),
                            error: Some(e.to_string()),
                        });
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        // Nothing written: the request as a whole failed (a 4xx says what was wrong with it).
        if failures == count
            && let Some(e) = first_error
        {
            return Err(e);
        }
        Ok(offsets.into_iter().flatten().collect())
    }

    /// Creates a consumer instance; its name (given, or made up).
    pub async fn create_instance(
        &self,
        group: String,
        name: Option<String>,
        config: InstanceConfig,
    ) -> Result<InstanceName, KafkaError> {
        crate::queue::validate_name("group", &group)?;
        let name =
            name.unwrap_or_else(|| format!("rest-consumer-{}", uuid::Uuid::new_v4().simple()));
        crate::queue::validate_name("name", &name)
            .map_err(|e| KafkaError::InvalidConsumerConfig(e.to_string()))?;
        let id = InstanceName { group, name };
        self.ask(CreateInstance {
            id: id.clone(),
            config,
        })
        .await?;
        Ok(id)
    }

    /// Subscribes an instance to `topics`: it joins its group in the queue for them.
    pub async fn subscribe(&self, id: InstanceName, topics: Vec<String>) -> Result<(), KafkaError> {
        if topics.is_empty() {
            return Err(KafkaError::invalid("topics: name at least one topic"));
        }
        // The instance must exist before a consumer is registered for it.
        self.ask(Describe(id.clone())).await?;
        let wanted = topics.iter().map(|t| (t.clone(), None)).collect();
        let consumer = self
            .queue
            .register_consumer(wanted, Some(id.group.clone()))
            .await?;
        let replaced = self
            .ask(Subscribe {
                id,
                topics,
                consumer,
            })
            .await;
        match replaced {
            Ok(previous) => {
                self.leave(previous).await;
                Ok(())
            }
            Err(e) => {
                // Deleted meanwhile: the new member goes too.
                self.leave(Some(consumer)).await;
                Err(e)
            }
        }
    }

    pub async fn subscription(&self, id: InstanceName) -> Result<Vec<String>, KafkaError> {
        Ok(self.ask(Describe(id)).await?.1)
    }

    pub async fn unsubscribe(&self, id: InstanceName) -> Result<(), KafkaError> {
        let previous = self.ask(Unsubscribe(id)).await?;
        self.leave(previous).await;
        Ok(())
    }

    /// The partitions the group assigns to the instance now (none before it joined).
    pub async fn assignments(&self, id: InstanceName) -> Result<Vec<(String, i32)>, KafkaError> {
        let (consumer, topics) = self.ask(Describe(id)).await?;
        let Some(consumer) = consumer else {
            return Ok(Vec::new());
        };
        let group = self.queue.consumer_group(consumer)?;
        let mut out = Vec::new();
        for topic in topics {
            if let Ok(route) = self.queue.topic_route(&topic) {
                for p in self.queue.assigned(&group, &route, consumer) {
                    out.push((topic.clone(), p as i32));
                }
            }
        }
        Ok(out)
    }

    /// Deletes an instance: its partitions go to the group's other members at once.
    pub async fn delete(&self, id: InstanceName) -> Result<(), KafkaError> {
        let consumer = self.ask(DeleteInstance(id)).await?;
        self.leave(consumer).await;
        Ok(())
    }

    async fn leave(&self, consumer: Option<i64>) {
        if let Some(consumer) = consumer
            && let Err(e) = self.queue.leave(consumer).await
        {
            tracing::info!(error = %e, "consumer {consumer} of a Kafka instance did not leave its group: {e}");
        }
    }
}
