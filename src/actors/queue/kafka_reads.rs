//! What the Kafka REST dialect needs of the brokers beyond the native paths, on
//! [`QueueRouter`]: a partition's offsets, a fetch from an explicit offset (an instance keeps
//! its own position), a group member's partitions for one poll (the read managers' group book,
//! as a native member's dequeue gets them) and a commit of the group's offset under that poll's
//! leases.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::actors::queue::broker::{CommitOffset, Fetch, GetOffsets, PartitionOffsets};
use crate::actors::queue::read_routes::ReadRoute;
use crate::actors::queue::router::QueueRouter;
use crate::actors::queue::table::TopicRoute;
use crate::queue::{QueueError, Reader, StoredMessage};

impl QueueRouter {
    /// A topic's route by name.
    pub fn topic_route(&self, name: &str) -> Result<Arc<TopicRoute>, QueueError> {
        let table = self.shared.table.load();
        self.topic(&table, name)
    }

    /// A topic's partition, checked.
    pub fn partition_of(&self, topic: &TopicRoute, partition: i32) -> Result<usize, QueueError> {
        if partition < 0 || partition as usize >= topic.partitions() {
            return Err(QueueError::UnknownPartition {
                topic: topic.name.to_string(),
                partition,
            });
        }
        Ok(partition as usize)
    }

    /// Where a partition starts and ends, and `reader`'s committed offset in it.
    pub async fn partition_offsets(
        &self,
        topic: &TopicRoute,
        partition: usize,
        reader: Option<Reader>,
    ) -> Result<PartitionOffsets, QueueError> {
        let broker = self.live_broker(topic, partition)?;
        let ask = GetOffsets {
            key: topic.key(partition),
            reader,
        };
        match broker.addr.send(ask).timeout(self.timeout()).await {
            Ok(result) => result,
            Err(e) => Err(QueueError::PartitionUnavailable {
                topic: topic.name.to_string(),
                partition: partition as i32,
                reason: format!("{}: {e}", broker.cell.name()),
            }),
        }
    }

    /// At most `max` committed messages of a partition from offset `from` (no position moves).
    pub async fn fetch_at(
        &self,
        topic: &TopicRoute,
        partition: usize,
        from: i64,
        max: usize,
    ) -> Result<Vec<Arc<StoredMessage>>, QueueError> {
        let broker = self.live_broker(topic, partition)?;
        let (reply, answer) = oneshot::channel();
        let fetch = Fetch {
            key: topic.key(partition),
            reader: Reader::Consumer(0),
            max,
            advance: false,
            at: Some(from),
            reply,
        };
        self.deliver(topic, partition, broker, fetch)?;
        self.await_broker(topic, partition, broker, answer).await
    }

    /// The partitions of `topic_name` that group member `consumer` reads in this poll, with
    /// leases on them (held until the route is dropped: no handover meanwhile).
    pub async fn member_route(
        &self,
        consumer: i64,
        topic_name: &str,
    ) -> Result<(Arc<TopicRoute>, ReadRoute), QueueError> {
        let (route, topic, _) = self.consumer_and_topic(consumer, topic_name)?;
        let read = self.route_read(&route, &topic).await?;
        Ok((topic, read))
    }

    /// Commits `reader`'s next offset in a partition the caller holds a lease on (a poll's).
    pub async fn commit_leased(
        &self,
        topic: &TopicRoute,
        partition: usize,
        reader: Reader,
        offset: i64,
    ) -> Result<(), QueueError> {
        let broker = self.live_broker(topic, partition)?;
        let (reply, answer) = oneshot::channel();
        let commit = CommitOffset {
            key: topic.key(partition),
            reader,
            offset,
            reply,
        };
        self.deliver(topic, partition, broker, commit)?;
        self.await_broker(topic, partition, broker, answer).await
    }

    /// The partitions of a topic the group book assigns to `consumer` now.
    pub fn assigned(&self, group: &Arc<str>, topic: &TopicRoute, consumer: i64) -> Vec<usize> {
        self.shared
            .groups()
            .assignment(group, topic.id)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, owner)| **owner == Some(consumer))
            .map(|(p, _)| p)
            .collect()
    }

    /// The group of a registered consumer.
    pub fn consumer_group(&self, consumer: i64) -> Result<Arc<str>, QueueError> {
        self.shared
            .clients
            .consumers
            .get(consumer)
            .and_then(|c| c.group.clone())
            .ok_or(QueueError::UnknownConsumer(consumer))
    }
}
