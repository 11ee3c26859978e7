//! A Rust client of the log queue's REST API, mirroring seed 004's library: [`MyQueue`]
//! (create and list topics, create producers and consumers), [`Producer`] (enqueue) and
//! [`Consumer`] (dequeue, size, commit, leave), with the bearer tokens of [`QueueTokens`]. Also
//! `obelix queue …`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::clients::{ClientError, expect_success, http_client};
use crate::queue::{StoredMessage, TopicInfo, tokens};

/// A queue server.
#[derive(Debug, Clone)]
pub struct MyQueue {
    base: String,
    http: reqwest::Client,
    tokens: QueueTokens,
}

/// The bearer tokens a client sends: topic administration, producers, consumers. `None` sends
/// none (the server answers 401). The default is the development tokens `config.toml` ships.
#[derive(Clone)]
pub struct QueueTokens {
    pub admin: Option<String>,
    pub producer: Option<String>,
    pub consumer: Option<String>,
}

impl Default for QueueTokens {
    fn default() -> Self {
        Self {
            admin: Some(tokens::DEVELOPMENT_ADMIN.to_owned()),
            producer: Some(tokens::DEVELOPMENT_PRODUCER.to_owned()),
            consumer: Some(tokens::DEVELOPMENT_CONSUMER.to_owned()),
        }
    }
}

impl std::fmt::Debug for QueueTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueTokens(..)")
    }
}

/// Which token a request carries.
#[derive(Debug, Clone, Copy)]
enum Role {
    Admin,
    Producer,
    Consumer,
    /// Whichever is set (listing topics takes any).
    Any,
}

/// Where one enqueued message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Placed {
    pub partition: i32,
    pub offset: i64,
}

/// Topics (or one partition) a client registers for.
#[derive(Debug, Clone)]
pub enum Subscription {
    Topics(Vec<String>),
    Partition { topic: String, partition: i32 },
}

impl Subscription {
    fn body(&self) -> Value {
        match self {
            Subscription::Topics(topics) => json!({ "topics": topics }),
            Subscription::Partition { topic, partition } => {
                json!({ "topic": topic, "partition": partition })
            }
        }
    }
}

/// Optional retention of a new topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopicOptions {
    pub retention_ms: Option<u64>,
    pub retention_messages: Option<u64>,
}

impl MyQueue {
    pub fn new(base: impl Into<String>) -> Self {
        Self::with_client(base, http_client())
    }

    pub fn with_client(base: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
            tokens: QueueTokens::default(),
        }
    }

    /// The same server with these tokens.
    pub fn with_tokens(mut self, tokens: QueueTokens) -> Self {
        self.tokens = tokens;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized(&self, request: reqwest::RequestBuilder, role: Role) -> reqwest::RequestBuilder {
        let t = &self.tokens;
        let token = match role {
            Role::Admin => t.admin.as_ref(),
            Role::Producer => t.producer.as_ref(),
            Role::Consumer => t.consumer.as_ref(),
            Role::Any => t
                .admin
                .as_ref()
                .or(t.producer.as_ref())
                .or(t.consumer.as_ref()),
        };
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn post(&self, role: Role, path: &str, body: Value) -> Result<Value, ClientError> {
        let request = self.authorized(self.http.post(self.url(path)), role);
        let response = request.json(&body).send().await?;
        Ok(expect_success(response).await?.json().await?)
    }

    async fn get(
        &self,
        role: Role,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let request = self.authorized(self.http.get(self.url(path)), role);
        let response = request.query(query).send().await?;
        Ok(expect_success(response).await?.json().await?)
    }

    /// `createTopic`: a topic of `partitions` partitions.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<TopicInfo, ClientError> {
        self.create_topic_with(name, partitions, TopicOptions::default())
            .await
    }

    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        options: TopicOptions,
    ) -> Result<TopicInfo, ClientError> {
        let mut body = json!({ "name": name, "partitions": partitions });
        if let Some(ms) = options.retention_ms {
            body["retention_ms"] = json!(ms);
        }
        if let Some(n) = options.retention_messages {
            body["retention_messages"] = json!(n);
        }
        serde_json::from_value(self.post(Role::Admin, "/queue/topics", body).await?)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `get_all_topics`
    pub async fn topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        serde_json::from_value(self.get(Role::Any, "/queue/topics", &[]).await?)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `createProducer`: a producer for whole topics.
    pub async fn create_producer(&self, topics: &[&str]) -> Result<Producer, ClientError> {
        self.create_producer_for(Subscription::Topics(owned(topics)))
            .await
    }

    pub async fn create_producer_for(&self, what: Subscription) -> Result<Producer, ClientError> {
        let reply = self
            .post(Role::Producer, "/queue/producers", what.body())
            .await?;
        Ok(Producer {
            queue: self.clone(),
            id: id_of(&reply, "producer_id")?,
        })
    }

    /// `createConsumer`: a consumer of whole topics, with its own offsets.
    pub async fn create_consumer(&self, topics: &[&str]) -> Result<Consumer, ClientError> {
        self.create_consumer_for(Subscription::Topics(owned(topics)), None)
            .await
    }

    /// A consumer of `what`, alone (`group: None`) or sharing the work of a consumer group.
    pub async fn create_consumer_for(
        &self,
        what: Subscription,
        group: Option<&str>,
    ) -> Result<Consumer, ClientError> {
        let mut body = what.body();
        if let Some(group) = group {
            body["group"] = json!(group);
        }
        let reply = self.post(Role::Consumer, "/queue/consumers", body).await?;
        Ok(Consumer {
            queue: self.clone(),
            id: id_of(&reply, "consumer_id")?,
        })
    }
}

fn owned(topics: &[&str]) -> Vec<String> {
    topics.iter().map(|t| (*t).to_owned()).collect()
}

fn id_of(reply: &Value, field: &str) -> Result<i64, ClientError> {
    reply[field]
        .as_i64()
        .ok_or_else(|| ClientError::Decode(format!("no `{field}` in {reply}")))
}

#[derive(Deserialize)]
struct PlacedReply {
    messages: Vec<Placed>,
}

#[derive(Deserialize)]
struct MessagesReply {
    messages: Vec<StoredMessage>,
}

#[derive(Debug, Clone)]
pub struct Producer {
    queue: MyQueue,
    pub id: i64,
}

impl Producer {
    /// `enqueue`: one message; the queue picks the partition (round-robin).
    pub async fn enqueue(&self, topic: &str, message: &str) -> Result<Placed, ClientError> {
        let placed = self
            .send(json!({ "topic": topic, "message": message }))
            .await?;
        placed
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode("no placement".into()))
    }

    /// One message with a key: every message of one key goes to one partition, in order.
    pub async fn enqueue_keyed(
        &self,
        topic: &str,
        key: &str,
        message: &str,
    ) -> Result<Placed, ClientError> {
        let placed = self
            .send(json!({ "topic": topic, "key": key, "message": message }))
            .await?;
        placed
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode("no placement".into()))
    }

    /// A batch, committed together in one partition, in order.
    pub async fn enqueue_batch(
        &self,
        topic: &str,
        messages: &[String],
    ) -> Result<Vec<Placed>, ClientError> {
        self.send(json!({ "topic": topic, "messages": messages }))
            .await
    }

    /// One message to a chosen partition.
    pub async fn enqueue_to(
        &self,
        topic: &str,
        partition: i32,
        message: &str,
    ) -> Result<Placed, ClientError> {
        let placed = self
            .send(json!({ "topic": topic, "partition": partition, "message": message }))
            .await?;
        placed
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode("no placement".into()))
    }

    async fn send(&self, body: Value) -> Result<Vec<Placed>, ClientError> {
        let reply = self
            .queue
            .post(
                Role::Producer,
                &format!("/queue/producers/{}/messages", self.id),
                body,
            )
            .await?;
        let reply: PlacedReply =
            serde_json::from_value(reply).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(reply.messages)
    }
}

#[derive(Debug, Clone)]
pub struct Consumer {
    queue: MyQueue,
    pub id: i64,
}

impl Consumer {
    /// A consumer registered earlier (its id is kept in PostgreSQL, with its offsets).
    pub fn resume(queue: &MyQueue, id: i64) -> Consumer {
        Consumer {
            queue: queue.clone(),
            id,
        }
    }

    /// `dequeue`: the next message, if any (no waiting).
    pub async fn dequeue(&self, topic: &str) -> Result<Option<StoredMessage>, ClientError> {
        Ok(self
            .dequeue_many(topic, 1, Duration::ZERO)
            .await?
            .into_iter()
            .next())
    }

    /// Up to `max` next messages of one partition, waiting up to `wait` when there are none.
    pub async fn dequeue_many(
        &self,
        topic: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        self.messages(topic, max, wait, true).await
    }

    /// Like [`Consumer::dequeue_many`] without moving the offset: commit with
    /// [`Consumer::commit`] after processing (at-least-once).
    pub async fn fetch(
        &self,
        topic: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        self.messages(topic, max, wait, false).await
    }

    async fn messages(
        &self,
        topic: &str,
        max: usize,
        wait: Duration,
        commit: bool,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        let reply = self
            .queue
            .get(
                Role::Consumer,
                &format!("/queue/consumers/{}/messages", self.id),
                &[
                    ("topic", topic.to_owned()),
                    ("max", max.to_string()),
                    ("wait_ms", wait.as_millis().to_string()),
                    ("commit", commit.to_string()),
                ],
            )
            .await?;
        let reply: MessagesReply =
            serde_json::from_value(reply).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(reply.messages)
    }

    /// Sets the next offset to read in `partition` (one past the last message processed).
    pub async fn commit(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), ClientError> {
        self.queue
            .post(
                Role::Consumer,
                &format!("/queue/consumers/{}/offsets", self.id),
                json!({ "topic": topic, "partition": partition, "offset": offset }),
            )
            .await?;
        Ok(())
    }

    /// `getSize`: how many messages remain for this consumer.
    pub async fn size(&self, topic: &str) -> Result<i64, ClientError> {
        let reply = self
            .queue
            .get(
                Role::Consumer,
                &format!("/queue/consumers/{}/size", self.id),
                &[("topic", topic.to_owned())],
            )
            .await?;
        reply["size"]
            .as_i64()
            .ok_or_else(|| ClientError::Decode(format!("no size in {reply}")))
    }

    /// Leaves: a group member's partitions go to the other members.
    pub async fn leave(&self) -> Result<(), ClientError> {
        let url = self.queue.url(&format!("/queue/consumers/{}", self.id));
        let request = self
            .queue
            .authorized(self.queue.http.delete(url), Role::Consumer);
        let response = request.send().await?;
        expect_success(response).await?;
        Ok(())
    }
}

/// `obelix queue …`
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// The Obelix server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The topic administration token (create-topic).
    #[arg(long, global = true, env = "OBELIX_QUEUE_ADMIN_TOKEN", default_value = tokens::DEVELOPMENT_ADMIN)]
    pub admin_token: String,
    /// The producers' token (produce).
    #[arg(long, global = true, env = "OBELIX_QUEUE_PRODUCER_TOKEN", default_value = tokens::DEVELOPMENT_PRODUCER)]
    pub producer_token: String,
    /// The consumers' token (consume).
    #[arg(long, global = true, env = "OBELIX_QUEUE_CONSUMER_TOKEN", default_value = tokens::DEVELOPMENT_CONSUMER)]
    pub consumer_token: String,
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueueCommand {
    /// Create a topic.
    CreateTopic {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Delete messages older than this many ms.
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Keep at most this many messages per partition.
        #[arg(long)]
        retention_messages: Option<u64>,
    },
    /// List topics.
    Topics,
    /// Send messages: the arguments, or each line of standard input.
    Produce {
        #[arg(long)]
        topic: String,
        /// Messages with one key go to one partition, in order.
        #[arg(long)]
        key: Option<String>,
        messages: Vec<String>,
    },
    /// Print messages as they come (one JSON line each).
    Consume {
        #[arg(long)]
        topic: String,
        /// Share the work with the other consumers of this group.
        #[arg(long)]
        group: Option<String>,
        /// Keep waiting for new messages instead of stopping when none are left.
        #[arg(long)]
        follow: bool,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
}

pub async fn run(args: QueueArgs) -> Result<(), ClientError> {
    let queue = MyQueue::new(args.server).with_tokens(QueueTokens {
        admin: Some(args.admin_token),
        producer: Some(args.producer_token),
        consumer: Some(args.consumer_token),
    });
    match args.command {
        QueueCommand::CreateTopic {
            name,
            partitions,
            retention_ms,
            retention_messages,
        } => {
            let topic = queue
                .create_topic_with(
                    &name,
                    partitions,
                    TopicOptions {
                        retention_ms,
                        retention_messages,
                    },
                )
                .await?;
            println!("{}", json!(topic));
        }
        QueueCommand::Topics => {
            for topic in queue.topics().await? {
                println!("{}", json!(topic));
            }
        }
        QueueCommand::Produce {
            topic,
            key,
            messages,
        } => {
            let producer = queue.create_producer(&[&topic]).await?;
            let send = async |message: &str| -> Result<(), ClientError> {
                let placed = match &key {
                    Some(key) => producer.enqueue_keyed(&topic, key, message).await?,
                    None => producer.enqueue(&topic, message).await?,
                };
                println!(
                    "{}",
                    json!({ "partition": placed.partition, "offset": placed.offset })
                );
                Ok(())
            };
            if messages.is_empty() {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Some(line) = lines
                    .next_line()
                    .await
                    .map_err(|e| ClientError::Decode(e.to_string()))?
                {
                    if !line.is_empty() {
                        send(&line).await?;
                    }
                }
            } else {
                for message in &messages {
                    send(message).await?;
                }
            }
        }
        QueueCommand::Consume {
            topic,
            group,
            follow,
            count,
        } => {
            let consumer = queue
                .create_consumer_for(Subscription::Topics(vec![topic.clone()]), group.as_deref())
                .await?;
            // Whatever ends the loop (its count, no more messages, an error, Ctrl-C), the
            // consumer is deleted: a consumer left behind keeps showing lag nobody will read.
            let consumed = tokio::select! {
                outcome = consume(&consumer, &topic, follow, count) => outcome,
                () = crate::clients::shutdown_signal() => Ok(()),
            };
            let left = consumer.leave().await;
            consumed?;
            left?;
        }
    }
    Ok(())
}

/// Prints messages of `topic` (one JSON line each) until `count`, or until none are left unless
/// `follow`. A long poll waits on every partition the consumer reads: a message committed to any
/// of them answers it at once.
async fn consume(
    consumer: &Consumer,
    topic: &str,
    follow: bool,
    count: Option<usize>,
) -> Result<(), ClientError> {
    let mut seen = 0;
    loop {
        let wait = if follow {
            Duration::from_secs(10)
        } else {
            Duration::ZERO
        };
        // Never take more than will be printed: what is taken is committed.
        let max = count.map_or(100, |c| (c - seen).min(100));
        let messages = consumer.dequeue_many(topic, max, wait).await?;
        if messages.is_empty() && !follow {
            return Ok(());
        }
        for m in messages {
            println!("{}", json!(m));
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
