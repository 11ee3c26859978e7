//! Obelix's queue through its Kafka REST Proxy v2 dialect (`/kafka`), beside the native API:
//! the same topics (created through `/queue/topics`), produced to with
//! `POST /kafka/topics/{topic}` (`application/vnd.kafka.json.v2+json`,
//! `{"records":[{"value":…},…]}`) → `{"offsets":[…]}`, once durable. Records without key or
//! partition: each request's go to one partition, round-robin over requests, as the native
//! batches do.

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::drive::{Client, Clients, Result};

pub struct ObelixKafka {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct Produced {
    offsets: Vec<IgnoredAny>,
}

impl ObelixKafka {
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .build()?;
        let token = std::env::var("OBELIX_QUEUE_PRODUCER_TOKEN")
            .unwrap_or_else(|_| ::obelix::queue::tokens::DEVELOPMENT_PRODUCER.into());
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `clients` producers, each posting `batch` records per request.
    pub fn writers(&self, topic: &str, clients: usize, batch: usize, payload: &str) -> Clients {
        let records: Vec<_> = (0..batch).map(|_| json!({ "value": payload })).collect();
        let body = Bytes::from(json!({ "records": records }).to_string());
        (0..clients)
            .map(|_| {
                Box::new(KafkaWriter {
                    http: self.http.clone(),
                    token: self.token.clone(),
                    url: format!("{}/kafka/topics/{topic}", self.base),
                    body: body.clone(),
                    batch,
                }) as Box<dyn Client>
            })
            .collect()
    }
}

struct KafkaWriter {
    http: reqwest::Client,
    token: String,
    url: String,
    body: Bytes,
    batch: usize,
}

impl Client for KafkaWriter {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let response = self
                .http
                .post(&self.url)
                .bearer_auth(&self.token)
                .header("content-type", "application/vnd.kafka.json.v2+json")
                .header("accept", "application/vnd.kafka.v2+json")
                .body(self.body.clone())
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("produce: {status} {}", response.text().await?).into());
            }
            let produced: Produced = response.json().await?;
            if produced.offsets.len() != self.batch {
                return Err(format!(
                    "produce of {} acknowledged {} records",
                    self.batch,
                    produced.offsets.len()
                )
                .into());
            }
            Ok(self.batch)
        }
        .boxed()
    }
}
