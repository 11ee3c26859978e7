//! Obelix's queue over its REST API, through reqwest (HTTP/1.1, keep-alive, one connection per
//! client since each client has at most one request in flight).
//!
//! - `POST /queue/topics` `{"name", "partitions"}` → 201 (409 if it exists)
//! - `POST /queue/producers` / `POST /queue/consumers` `{"topics": [..]}` → `{"producer_id"}` /
//!   `{"consumer_id"}`
//! - `POST /queue/producers/{id}/messages` `{"topic", "message"}` or `{"topic", "messages"}` →
//!   `{"messages": [{"partition", "offset"}, ..]}`, once durable
//! - `GET /queue/consumers/{id}/messages?topic=&max=&wait_ms=0` → `{"messages": [..]}`, and the
//!   consumer's offsets move past them

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::drive::{Client, Clients, Result};

pub struct Obelix {
    http: reqwest::Client,
    base: String,
    tokens: Tokens,
}

/// The queue's bearer tokens: `OBELIX_QUEUE_{ADMIN,PRODUCER,CONSUMER}_TOKEN`, as the CLI reads
/// them, else the development ones of `config.toml`.
#[derive(Clone)]
struct Tokens {
    admin: String,
    producer: String,
    consumer: String,
}

impl Tokens {
    fn from_env() -> Self {
        use ::obelix::queue::tokens;
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            admin: var("OBELIX_QUEUE_ADMIN_TOKEN", tokens::DEVELOPMENT_ADMIN),
            producer: var("OBELIX_QUEUE_PRODUCER_TOKEN", tokens::DEVELOPMENT_PRODUCER),
            consumer: var("OBELIX_QUEUE_CONSUMER_TOKEN", tokens::DEVELOPMENT_CONSUMER),
        }
    }
}

/// Why the Obelix rows are missing from a run.
pub enum Unavailable {
    /// Nothing answers at the URL.
    NoServer(String),
    /// A server answers, but without the queue API (404): the queue has not landed in it.
    NoQueueApi,
}

#[derive(Deserialize)]
struct ProducerCreated {
    producer_id: u64,
}

#[derive(Deserialize)]
struct ConsumerCreated {
    consumer_id: u64,
}

/// The acknowledgement of an enqueue; only the count matters here.
#[derive(Deserialize)]
struct Appended {
    messages: Vec<IgnoredAny>,
}

/// A dequeued batch, parsed as a consumer would.
#[derive(Deserialize)]
struct Fetched {
    messages: Vec<Delivered>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // parsed as a consumer would, not read
struct Delivered {
    partition: u32,
    offset: u64,
    message: String,
}

impl Obelix {
    /// Checks that `base` serves the queue API, by creating the run's first topic.
    pub async fn connect(
        base: &str,
        first_topic: &str,
        partitions: u32,
    ) -> std::result::Result<Self, Unavailable> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| Unavailable::NoServer(e.to_string()))?;
        let obelix = Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens: Tokens::from_env(),
        };
        match obelix.create_topic(first_topic, partitions).await {
            Ok(()) => Ok(obelix),
            Err(TopicError::NotFound) => Err(Unavailable::NoQueueApi),
            Err(TopicError::Other(e)) => Err(Unavailable::NoServer(e.to_string())),
        }
    }

    /// A new topic; 409 (it exists already) is fine, the run's topic names are its own.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
    ) -> std::result::Result<(), TopicError> {
        let response = self
            .http
            .post(format!("{}/queue/topics", self.base))
            .bearer_auth(&self.tokens.admin)
            .json(&json!({ "name": name, "partitions": partitions }))
            .send()
            .await
            .map_err(|e| TopicError::Other(e.into()))?;
        match response.status().as_u16() {
            200..=299 | 409 => Ok(()),
            404 => Err(TopicError::NotFound),
            status => Err(TopicError::Other(
                format!(
                    "POST /queue/topics: {status} {}",
                    response.text().await.unwrap_or_default()
                )
                .into(),
            )),
        }
    }

    /// `clients` producers of `topic`, each sending `batch` messages per request (1: the
    /// single-message body).
    pub async fn writers(
        &self,
        topic: &str,
        clients: usize,
        batch: usize,
        payload: &str,
    ) -> Result<Clients> {
        let body = if batch == 1 {
            json!({ "topic": topic, "message": payload })
        } else {
            json!({ "topic": topic, "messages": vec![payload; batch] })
        };
        let body = Bytes::from(serde_json::to_vec(&body)?);
        let mut writers: Clients = Vec::with_capacity(clients);
        for _ in 0..clients {
            let created: ProducerCreated = self
                .post_json(
                    "/queue/producers",
                    &self.tokens.producer,
                    &json!({ "topics": [topic] }),
                )
                .await?;
            writers.push(Box::new(Writer {
                http: self.http.clone(),
                token: self.tokens.producer.clone(),
                url: format!(
                    "{}/queue/producers/{}/messages",
                    self.base, created.producer_id
                ),
                body: body.clone(),
                batch,
            }));
        }
        Ok(writers)
    }

    /// `clients` consumers of `topic`, each with its own id, so each reads every message.
    pub async fn readers(&self, topic: &str, clients: usize, batch: usize) -> Result<Clients> {
        let mut readers: Clients = Vec::with_capacity(clients);
        for _ in 0..clients {
            let created: ConsumerCreated = self
                .post_json(
                    "/queue/consumers",
                    &self.tokens.consumer,
                    &json!({ "topics": [topic] }),
                )
                .await?;
            readers.push(Box::new(Reader {
                http: self.http.clone(),
                token: self.tokens.consumer.clone(),
                url: format!(
                    "{}/queue/consumers/{}/messages?topic={topic}&max={batch}&wait_ms=0",
                    self.base, created.consumer_id
                ),
            }));
        }
        Ok(readers)
    }

    async fn post_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("POST {path}: {status} {}", response.text().await?).into());
        }
        Ok(response.json().await?)
    }
}

pub enum TopicError {
    NotFound,
    Other(crate::drive::Error),
}

struct Writer {
    http: reqwest::Client,
    token: String,
    url: String,
    /// The request body, serialised once: the load generator shares the cores with the servers.
    body: Bytes,
    batch: usize,
}

impl Client for Writer {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let response = self
                .http
                .post(&self.url)
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(self.body.clone())
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("enqueue: {status} {}", response.text().await?).into());
            }
            let appended: Appended = response.json().await?;
            if appended.messages.len() != self.batch {
                return Err(format!(
                    "enqueue of {} acknowledged {} messages",
                    self.batch,
                    appended.messages.len()
                )
                .into());
            }
            Ok(self.batch)
        }
        .boxed()
    }
}

struct Reader {
    http: reqwest::Client,
    token: String,
    url: String,
}

impl Client for Reader {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let response = self
                .http
                .get(&self.url)
                .bearer_auth(&self.token)
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("dequeue: {status} {}", response.text().await?).into());
            }
            let fetched: Fetched = response.json().await?;
            Ok(fetched.messages.len())
        }
        .boxed()
    }
}
