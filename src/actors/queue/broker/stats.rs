//! What a broker says about its partitions when `/metrics` is scraped: depth and the slowest
//! reader's lag, computed from the state it keeps anyway (nothing is counted per message).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{BrokerSlot, QueueBroker};

/// One partition's figures.
#[derive(Debug, Clone)]
pub struct PartitionStat {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Messages held: committed end minus start (retention moves the start).
    pub depth: i64,
    /// Committed messages the slowest reader has not committed past (0 without readers).
    pub lag: i64,
}

/// Every partition of a broker, with its figures.
#[derive(Message)]
#[rtype(result = "Vec<PartitionStat>")]
pub struct PartitionStats;

impl Handler<PartitionStats> for QueueBroker {
    type Result = MessageResult<PartitionStats>;

    fn handle(&mut self, _: PartitionStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.partitions
                .iter()
                .map(|(key, p)| PartitionStat {
                    topic: p.topic.clone(),
                    partition: key.partition,
                    depth: (p.end - p.start).max(0),
                    lag: p
                        .readers
                        .values()
                        .map(|r| p.end - r.committed.max(p.start))
                        .max()
                        .unwrap_or(0)
                        .max(0),
                })
                .collect(),
        )
    }
}

/// Asks every broker at once; one that does not answer within `wait` is left out.
pub async fn collect(brokers: &[Arc<BrokerSlot>], wait: Duration) -> Vec<PartitionStat> {
    let asks = brokers
        .iter()
        .map(|b| b.addr.send(PartitionStats).timeout(wait));
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .collect()
}
