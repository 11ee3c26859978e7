//! The ingress's consumer side of the queue, on [`QueueRouter`]: dequeue (fetches from the
//! brokers the read managers name, long polls on the partitions' commit signals), size, and
//! offset commits (a group member's fenced through a read manager).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::{Handler, Message};
use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::actors::queue::broker::{CommitOffset, Fetch, Size};
use crate::actors::queue::manager::{ManagerSlot, QueueManager};
use crate::actors::queue::read_routes::{FenceCommit, ReadRoute, RouteRead, plain_read_route};
use crate::actors::queue::router::{DequeueParams, QueueRouter};
use crate::actors::queue::table::{ConsumerRoute, TopicRoute};
use crate::queue::{QueueError, Reader, StoredMessage};

/// A consumer, a topic it reads, and the one partition it registered for (if not all).
type Resolved = (Arc<ConsumerRoute>, Arc<TopicRoute>, Option<i32>);

impl QueueRouter {
    pub(super) fn consumer_and_topic(
        &self,
        consumer: i64,
        topic_name: &str,
    ) -> Result<Resolved, QueueError> {
        let table = self.shared.table.load();
        let route = self
            .shared
            .clients
            .consumers
            .get(consumer)
            .ok_or(QueueError::UnknownConsumer(consumer))?;
        route.touch();
        let topic = self.topic(&table, topic_name)?;
        let registered = *route
            .topics
            .get(&topic.id)
            .ok_or_else(|| QueueError::NotRegistered {
                client: format!("consumer {consumer}"),
                what: format!("topic `{topic_name}`"),
            })?;
        Ok((route, topic, registered))
    }

    /// The next messages for `consumer` from one partition of `topic_name`, waiting up to
    /// `params.wait` for some to be committed.
    pub async fn dequeue(
        &self,
        consumer: i64,
        topic_name: &str,
        params: DequeueParams,
    ) -> Result<Vec<Arc<StoredMessage>>, QueueError> {
        let limits = &self.shared.settings;
        if params.max == 0 || params.max > limits.max_batch {
            return Err(QueueError::invalid(
                "max",
                format!("must be between 1 and {}", limits.max_batch),
            ));
        }
        if params.wait > Duration::from_millis(limits.max_wait_ms) {
            return Err(QueueError::invalid(
                "wait_ms",
                format!("at most {}", limits.max_wait_ms),
            ));
        }
        let (consumer_route, topic, _) = self.consumer_and_topic(consumer, topic_name)?;
        // Heard from again when the poll ends, however long it waited.
        let consumer_route = scopeguard_touch(consumer_route);
        let mut left = consumer_route.left.subscribe();
        let deadline = Instant::now() + params.wait;
        loop {
            if *left.borrow_and_update() {
                return Err(QueueError::UnknownConsumer(consumer));
            }
            let route = self.route_read(&consumer_route, &topic).await?;
            // Subscribed before fetching: a commit between the fetch and the wait still wakes us.
            let mut signals: Vec<_> = route
                .partitions
                .iter()
                .map(|&p| self.shared.signals.subscribe(topic.key(p)))
                .collect();
            let mut unavailable = None;
            for &p in &route.partitions {
                match self.fetch(&topic, p, &route.reader, params).await {
                    Ok(messages) if !messages.is_empty() => return Ok(messages),
                    Ok(_) => {}
                    Err(e) if e.is_unavailable() => unavailable = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = unavailable {
                return Err(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut remaining = deadline - now;
            if route.handing_over || route.partitions.is_empty() {
                // A group member waits for its partitions: look again soon.
                remaining = remaining.min(Duration::from_millis(50));
            }
            drop(route);
            let mut wakers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> =
                signals
                    .iter_mut()
                    .map(|rx| Box::pin(rx.changed().map(|_| ())) as _)
                    .collect();
            // A consumer that leaves meanwhile ends its poll at once.
            wakers.push(Box::pin(left.wait_for(|&gone| gone).map(|_| ())));
            let woken = futures_util::future::select_all(wakers);
            let _parked = self.shared.settings.hooks.parked();
            let _ = tokio::time::timeout(remaining, woken).await;
        }
    }

    async fn fetch(
        &self,
        topic: &TopicRoute,
        partition: usize,
        reader: &Reader,
        params: DequeueParams,
    ) -> Result<Vec<Arc<StoredMessage>>, QueueError> {
        let broker = self.live_broker(topic, partition)?;
        let (reply, answer) = oneshot::channel();
        let fetch = Fetch {
            key: topic.key(partition),
            reader: reader.clone(),
            max: params.max,
            advance: params.advance,
            at: None,
            reply,
        };
        self.deliver(topic, partition, broker, fetch)?;
        self.await_broker(topic, partition, broker, answer).await
    }

    /// Asks a read manager (round-robin over the live ones, then the write manager) where to read.
    pub(super) async fn route_read(
        &self,
        consumer: &Arc<ConsumerRoute>,
        topic: &Arc<TopicRoute>,
    ) -> Result<ReadRoute, QueueError> {
        let managers = self.shared.managers();
        // A consumer outside any group needs no manager's state: no round trip (as long as
        // some manager is up, so that availability is what it is through them).
        if managers.iter().any(|m| m.cell.is_alive())
            && let Some(route) = plain_read_route(consumer, topic)
        {
            return Ok(route);
        }
        self.ask_read_manager(|| RouteRead {
            consumer: consumer.clone(),
            topic: topic.clone(),
        })
        .await
    }

    /// Sends `make()` to a read manager (round-robin over the live ones, then the write
    /// manager), trying the next one when a manager fails.
    async fn ask_read_manager<M, R>(&self, make: impl Fn() -> M) -> Result<R, QueueError>
    where
        M: Message<Result = Result<R, QueueError>> + Send + 'static,
        R: Send + 'static,
        QueueManager: Handler<M>,
    {
        let managers = self.shared.managers();
        let leader = self.shared.leader.load(Ordering::Acquire);
        let mut candidates: Vec<&Arc<ManagerSlot>> = managers
            .iter()
            .filter(|m| m.id != leader && m.cell.is_alive())
            .collect();
        if !candidates.is_empty() {
            let start = self.next_read_manager.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(start);
        }
        candidates.extend(
            managers
                .iter()
                .filter(|m| m.id == leader && m.cell.is_alive()),
        );
        let mut last = String::from("no queue manager is up");
        for manager in candidates {
            match manager.addr.send(make()).timeout(self.timeout()).await {
                Ok(result) => return result,
                Err(e) => {
                    tracing::warn!(manager = manager.cell.name(), error = %e, "read manager {} failed a request; trying the next", manager.cell.name());
                    last = format!("{}: {e}", manager.cell.name());
                }
            }
        }
        Err(QueueError::Unavailable(last))
    }

    /// How many messages remain for `consumer` in `topic_name` (its partition, or all).
    pub async fn size(&self, consumer: i64, topic_name: &str) -> Result<i64, QueueError> {
        let (route, topic, registered) = self.consumer_and_topic(consumer, topic_name)?;
        let partitions: Vec<usize> = match registered {
            Some(p) => vec![p as usize],
            None => (0..topic.partitions()).collect(),
        };
        let reader = route.reader();
        let asks = partitions.iter().map(|&p| {
            let (topic, reader) = (topic.clone(), reader.clone());
            async move {
                let broker = self.live_broker(&topic, p)?;
                match broker
                    .addr
                    .send(Size {
                        key: topic.key(p),
                        reader,
                    })
                    .timeout(self.timeout())
                    .await
                {
                    Ok(result) => result,
                    Err(e) => Err(QueueError::PartitionUnavailable {
                        topic: topic.name.to_string(),
                        partition: p as i32,
                        reason: format!("{}: {e}", broker.cell.name()),
                    }),
                }
            }
        });
        let sizes = futures_util::future::join_all(asks).await;
        sizes.into_iter().sum()
    }

    /// Sets `consumer`'s next offset in one partition (after fetching with `commit=false`).
    pub async fn commit(
        &self,
        consumer: i64,
        topic_name: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), QueueError> {
        let (route, topic, registered) = self.consumer_and_topic(consumer, topic_name)?;
        if partition < 0 || partition as usize >= topic.partitions() {
            return Err(QueueError::UnknownPartition {
                topic: topic_name.to_owned(),
                partition,
            });
        }
        if registered.is_some_and(|mine| mine != partition) {
            return Err(QueueError::NotRegistered {
                client: format!("consumer {consumer}"),
                what: format!("partition {partition} of `{topic_name}`"),
            });
        }
        if offset < 0 {
            return Err(QueueError::invalid("offset", "must not be negative"));
        }
        let p = partition as usize;
        // A group member commits only a partition it owns, and holds it meanwhile (409 if not:
        // one whose session expired would rewind the new owner).
        let _lease = match route.group {
            Some(_) => Some(
                self.ask_read_manager(|| FenceCommit {
                    consumer: route.clone(),
                    topic: topic.clone(),
                    partition: p,
                })
                .await?,
            ),
            None => None,
        };
        let broker = self.live_broker(&topic, p)?;
        let (reply, answer) = oneshot::channel();
        let commit = CommitOffset {
            key: topic.key(p),
            reader: route.reader(),
            offset,
            reply,
        };
        self.deliver(&topic, p, broker, commit)?;
        self.await_broker(&topic, p, broker, answer).await
    }
}

/// A consumer's route that marks it heard from when dropped (at the end of a long poll).
struct TouchOnDrop(Arc<ConsumerRoute>);

impl std::ops::Deref for TouchOnDrop {
    type Target = Arc<ConsumerRoute>;
    fn deref(&self) -> &Arc<ConsumerRoute> {
        &self.0
    }
}

impl Drop for TouchOnDrop {
    fn drop(&mut self) {
        self.0.touch();
    }
}

fn scopeguard_touch(route: Arc<ConsumerRoute>) -> TouchOnDrop {
    TouchOnDrop(route)
}
