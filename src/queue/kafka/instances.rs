//! Kafka v2 consumer instances: what each one is (group, name, format, `auto.offset.reset`,
//! `auto.commit.enable`), what it subscribed to (a native group member of the queue, one
//! consumer id), where it reads each partition it owns, the seeks waiting for its next poll,
//! and when it was last used (idle instances expire, as `consumer.instance.timeout.ms` does).
//! Plain state on plain millisecond times; the actor `actors::queue::kafka_consumers` owns one.
//!
//! Positions follow Kafka: a partition newly assigned to an instance starts at the group's
//! committed offset (or where `auto.offset.reset` says when the group has none); a fetch moves
//! the instance's position, not the group's offset, unless `auto.commit.enable`; a partition
//! taken away forgets its position (its next owner starts from the committed offset).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::KafkaError;
use super::formats::Format;

/// Where a consumer without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    Earliest,
    Latest,
    /// No committed offset is an error.
    None,
}

impl Reset {
    pub fn parse(value: &str) -> Result<Reset, KafkaError> {
        match value {
            "earliest" | "smallest" => Ok(Reset::Earliest),
            "latest" | "largest" => Ok(Reset::Latest),
            "none" => Ok(Reset::None),
            other => Err(KafkaError::InvalidConsumerConfig(format!(
                "auto.offset.reset: `{other}` is not one of earliest, latest, none"
            ))),
        }
    }
}

/// A consumer instance's settings, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceConfig {
    pub format: Format,
    pub reset: Reset,
    pub auto_commit: bool,
}

/// A partition of a topic, by name.
pub type TopicPartition = (String, i32);

/// A seek waiting for the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    To(i64),
    Beginning,
    End,
}

/// One consumer instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub config: InstanceConfig,
    /// The queue's consumer (a member of the group) while subscribed.
    pub consumer: Option<i64>,
    pub topics: Vec<String>,
    /// The next offset to fetch, per partition it owned at its last poll.
    positions: HashMap<TopicPartition, i64>,
    seeks: HashMap<TopicPartition, Seek>,
    owned: BTreeSet<TopicPartition>,
    last_seen: u64,
}

/// What a poll starts from: the instance's state at that moment.
#[derive(Debug, Clone)]
pub struct PollPlan {
    pub consumer: i64,
    pub topics: Vec<String>,
    pub config: InstanceConfig,
    pub positions: HashMap<TopicPartition, i64>,
    pub seeks: HashMap<TopicPartition, Seek>,
}

impl PollPlan {
    /// Where the poll reads `tp` from, given the partition's `[start, end)` and the group's
    /// committed offset: a seek first, else the instance's own position, else the committed
    /// offset, else `auto.offset.reset`. Always within `[start, end]`.
    pub fn start_for(
        &self,
        tp: &TopicPartition,
        start: i64,
        end: i64,
        committed: Option<i64>,
    ) -> Result<i64, KafkaError> {
        let wanted = match (self.seeks.get(tp), self.positions.get(tp), committed) {
            (Some(Seek::To(o)), _, _) => *o,
            (Some(Seek::Beginning), _, _) => start,
            (Some(Seek::End), _, _) => end,
            (None, Some(p), _) => *p,
            (None, None, Some(c)) => c,
            (None, None, None) => match self.config.reset {
                Reset::Earliest => start,
                Reset::Latest => end,
                Reset::None => {
                    return Err(KafkaError::IllegalState(format!(
                        "no committed offset for partition {} of `{}` and auto.offset.reset is none",
                        tp.1, tp.0
                    )));
                }
            },
        };
        Ok(wanted.clamp(start, end))
    }
}

/// Every consumer instance, by group and name.
#[derive(Debug)]
pub struct InstanceBook {
    instances: HashMap<(Arc<str>, String), Instance>,
    timeout_ms: u64,
    max_instances: usize,
}

impl InstanceBook {
    pub fn new(timeout_ms: u64, max_instances: usize) -> Self {
        Self {
            instances: HashMap::new(),
            timeout_ms,
            max_instances,
        }
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub fn create(
        &mut self,
        group: &str,
        name: &str,
        config: InstanceConfig,
        now: u64,
    ) -> Result<(), KafkaError> {
        let key = (Arc::from(group), name.to_owned());
        if self.instances.contains_key(&key) {
            return Err(KafkaError::InstanceExists);
        }
        if self.instances.len() >= self.max_instances {
            return Err(KafkaError::Unavailable(format!(
                "{} consumer instances exist, the most this queue keeps (queue.kafka_max_instances)",
                self.max_instances
            )));
        }
        self.instances.insert(
            key,
            Instance {
                config,
                consumer: None,
                topics: Vec::new(),
                positions: HashMap::new(),
                seeks: HashMap::new(),
                owned: BTreeSet::new(),
                last_seen: now,
            },
        );
        Ok(())
    }

    /// The instance, marked as used at `now`.
    pub fn touch(
        &mut self,
        group: &str,
        name: &str,
        now: u64,
    ) -> Result<&mut Instance, KafkaError> {
        let instance = self
            .instances
            .get_mut(&(Arc::from(group), name.to_owned()))
            .ok_or(KafkaError::InstanceNotFound)?;
        instance.last_seen = now;
        Ok(instance)
    }

    /// Subscribes to `topics` as the queue's consumer `consumer`; the consumer it replaces.
    pub fn subscribe(
        &mut self,
        group: &str,
        name: &str,
        topics: Vec<String>,
        consumer: i64,
        now: u64,
    ) -> Result<Option<i64>, KafkaError> {
        let instance = self.touch(group, name, now)?;
        let previous = instance.consumer.replace(consumer);
        instance.topics = topics;
        instance.positions.clear();
        instance.seeks.clear();
        instance.owned.clear();
        Ok(previous)
    }

    /// Drops the subscription; the consumer that leaves.
    pub fn unsubscribe(
        &mut self,
        group: &str,
        name: &str,
        now: u64,
    ) -> Result<Option<i64>, KafkaError> {
        let instance = self.touch(group, name, now)?;
        instance.topics.clear();
        instance.positions.clear();
        instance.seeks.clear();
        instance.owned.clear();
        Ok(instance.consumer.take())
    }

    /// The start of a poll for records in `format` (or the instance's).
    pub fn plan_poll(
        &mut self,
        group: &str,
        name: &str,
        format: Option<Format>,
        now: u64,
    ) -> Result<PollPlan, KafkaError> {
        let instance = self.touch(group, name, now)?;
        if format.is_some_and(|f| f != instance.config.format) {
            return Err(KafkaError::FormatMismatch);
        }
        let consumer = instance.consumer.ok_or_else(|| {
            KafkaError::IllegalState("Consumer is not subscribed to any topics".into())
        })?;
        Ok(PollPlan {
            consumer,
            topics: instance.topics.clone(),
            config: instance.config,
            positions: instance.positions.clone(),
            seeks: instance.seeks.clone(),
        })
    }

    /// The end of a poll by `consumer`: the partitions it owns now and where it reads each
    /// next; the seeks it applied are done. Ignored if the instance subscribed anew meanwhile.
    pub fn finish_poll(
        &mut self,
        group: &str,
        name: &str,
        consumer: i64,
        plan_seeks: &HashMap<TopicPartition, Seek>,
        positions: HashMap<TopicPartition, i64>,
        now: u64,
    ) -> Result<(), KafkaError> {
        let instance = self.touch(group, name, now)?;
        if instance.consumer != Some(consumer) {
            return Ok(());
        }
        for (tp, seek) in plan_seeks {
            if instance.seeks.get(tp) == Some(seek) {
                instance.seeks.remove(tp);
            }
        }
        instance.owned = positions.keys().cloned().collect();
        instance.positions = positions;
        Ok(())
    }

    /// Seeks that apply at the next poll (to a partition of a subscribed topic).
    pub fn seek(
        &mut self,
        group: &str,
        name: &str,
        seeks: Vec<(TopicPartition, Seek)>,
        now: u64,
    ) -> Result<(), KafkaError> {
        let instance = self.touch(group, name, now)?;
        for ((topic, _), _) in &seeks {
            if !instance.topics.contains(topic) {
                return Err(KafkaError::IllegalState(format!(
                    "No current assignment for a partition of `{topic}`: subscribe to it first"
                )));
            }
        }
        instance.seeks.extend(seeks);
        Ok(())
    }

    /// The instance's consumer and its positions (what `POST offsets` without a body commits).
    pub fn positions(
        &mut self,
        group: &str,
        name: &str,
        now: u64,
    ) -> Result<(Option<i64>, Vec<(TopicPartition, i64)>), KafkaError> {
        let instance = self.touch(group, name, now)?;
        let mut positions: Vec<_> = instance
            .positions
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        positions.sort();
        Ok((instance.consumer, positions))
    }

    /// Removes an instance; its consumer, which must leave the group.
    pub fn delete(&mut self, group: &str, name: &str) -> Result<Option<i64>, KafkaError> {
        self.instances
            .remove(&(Arc::from(group), name.to_owned()))
            .map(|i| i.consumer)
            .ok_or(KafkaError::InstanceNotFound)
    }

    /// Removes the instances idle for longer than the timeout: their names and consumers.
    pub fn expire(&mut self, now: u64) -> Vec<(String, String, Option<i64>)> {
        let timeout = self.timeout_ms;
        let idle: Vec<_> = self
            .instances
            .iter()
            .filter(|(_, i)| now.saturating_sub(i.last_seen) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        idle.into_iter()
            .filter_map(|key| {
                let instance = self.instances.remove(&key)?;
                Some((key.0.to_string(), key.1, instance.consumer))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: InstanceConfig = InstanceConfig {
        format: Format::Json,
        reset: Reset::Earliest,
        auto_commit: false,
    };

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn names_are_unique_within_a_group() {
        let mut book = InstanceBook::new(1_000, 10);
        book.create("g", "a", JSON, 0).unwrap();
        assert_eq!(
            book.create("g", "a", JSON, 0),
            Err(KafkaError::InstanceExists)
        );
        book.create("h", "a", JSON, 0).unwrap();
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = InstanceBook::new(1_000, 1);
        book.create("g", "a", JSON, 0).unwrap();
        assert_eq!(book.create("g", "b", JSON, 0).unwrap_err().status(), 503);
    }

    #[test]
    fn a_poll_needs_a_subscription_and_the_instance_format() {
        let mut book = InstanceBook::new(1_000, 10);
        book.create("g", "a", JSON, 0).unwrap();
        assert_eq!(
            book.plan_poll("g", "a", Some(Format::Json), 1)
                .unwrap_err()
                .error_code(),
            40903
        );
        assert_eq!(book.subscribe("g", "a", vec!["t".into()], 7, 1), Ok(None));
        assert_eq!(
            book.plan_poll("g", "a", Some(Format::Binary), 2)
                .unwrap_err(),
            KafkaError::FormatMismatch
        );
        assert_eq!(
            book.plan_poll("g", "a", Some(Format::Json), 2)
                .unwrap()
                .consumer,
            7
        );
        assert_eq!(
            book.subscribe("g", "a", vec!["t".into()], 8, 3),
            Ok(Some(7))
        );
    }

    #[test]
    fn a_poll_starts_at_the_seek_then_the_position_then_the_committed_offset() {
        let mut book = InstanceBook::new(1_000, 10);
        book.create("g", "a", JSON, 0).unwrap();
        book.subscribe("g", "a", vec!["t".into()], 7, 0).unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 0).unwrap();
        // Newly assigned: the committed offset, else the reset policy.
        assert_eq!(plan.start_for(&tp(0), 0, 10, Some(4)), Ok(4));
        assert_eq!(plan.start_for(&tp(0), 2, 10, None), Ok(2));
        let positions = HashMap::from([(tp(0), 6)]);
        book.finish_poll("g", "a", 7, &plan.seeks, positions, 1)
            .unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 2).unwrap();
        assert_eq!(plan.start_for(&tp(0), 0, 10, Some(4)), Ok(6));
        book.seek("g", "a", vec![(tp(0), Seek::To(1)), (tp(1), Seek::End)], 3)
            .unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 4).unwrap();
        assert_eq!(plan.start_for(&tp(0), 0, 10, Some(4)), Ok(1));
        assert_eq!(plan.start_for(&tp(1), 0, 10, Some(4)), Ok(10));
        // Seeks past the end are clamped into the partition.
        book.seek("g", "a", vec![(tp(0), Seek::To(99))], 5).unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 6).unwrap();
        assert_eq!(plan.start_for(&tp(0), 0, 10, None), Ok(10));
        book.finish_poll("g", "a", 7, &plan.seeks, HashMap::from([(tp(0), 10)]), 7)
            .unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 8).unwrap();
        assert!(plan.seeks.is_empty(), "applied seeks are done");
        assert!(
            book.seek("g", "a", vec![(("other".into(), 0), Seek::Beginning)], 9)
                .is_err()
        );
    }

    #[test]
    fn a_latest_or_none_reset_without_a_committed_offset() {
        let mut book = InstanceBook::new(1_000, 10);
        let latest = InstanceConfig {
            reset: Reset::Latest,
            ..JSON
        };
        let none = InstanceConfig {
            reset: Reset::None,
            ..JSON
        };
        book.create("g", "l", latest, 0).unwrap();
        book.create("g", "n", none, 0).unwrap();
        for name in ["l", "n"] {
            book.subscribe("g", name, vec!["t".into()], 1, 0).unwrap();
        }
        let plan = book.plan_poll("g", "l", Some(Format::Json), 0).unwrap();
        assert_eq!(plan.start_for(&tp(0), 3, 9, None), Ok(9));
        let plan = book.plan_poll("g", "n", Some(Format::Json), 0).unwrap();
        assert!(plan.start_for(&tp(0), 3, 9, None).is_err());
        assert_eq!(plan.start_for(&tp(0), 3, 9, Some(5)), Ok(5));
    }

    #[test]
    fn idle_instances_expire_and_give_back_their_consumer() {
        let mut book = InstanceBook::new(1_000, 10);
        book.create("g", "a", JSON, 0).unwrap();
        book.create("g", "b", JSON, 0).unwrap();
        book.subscribe("g", "a", vec!["t".into()], 7, 0).unwrap();
        book.touch("g", "b", 900).unwrap();
        assert!(book.expire(1_000).is_empty());
        let expired = book.expire(1_001);
        assert_eq!(expired, vec![("g".to_owned(), "a".to_owned(), Some(7))]);
        assert_eq!(
            book.touch("g", "a", 1_002).unwrap_err(),
            KafkaError::InstanceNotFound
        );
        assert_eq!(book.delete("g", "b"), Ok(None));
        assert!(book.is_empty());
    }

    #[test]
    fn a_poll_of_an_old_subscription_changes_nothing() {
        let mut book = InstanceBook::new(1_000, 10);
        book.create("g", "a", JSON, 0).unwrap();
        book.subscribe("g", "a", vec!["t".into()], 7, 0).unwrap();
        let plan = book.plan_poll("g", "a", Some(Format::Json), 0).unwrap();
        book.subscribe("g", "a", vec!["t".into()], 8, 1).unwrap();
        book.finish_poll("g", "a", 7, &plan.seeks, HashMap::from([(tp(0), 5)]), 2)
            .unwrap();
        assert!(book.positions("g", "a", 3).unwrap().1.is_empty());
    }
}
