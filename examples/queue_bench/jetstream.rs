//! NATS JetStream through `async-nats`, one connection shared by every client as its users do
//! (the protocol multiplexes), a file-stored stream per workload.
//!
//! - Writers publish and await the server's ack (`PubAck`: stored in the stream); a batch is
//!   that many publishes in flight, then their acks awaited.
//! - Readers are durable pull consumers, each of its own, so each reads every message, as each
//!   Obelix consumer does. `fetch` (no wait) of up to a batch, ack policy `All`, and one ack of
//!   the batch's last message, which acknowledges the batch: the nearest thing to moving an
//!   offset past it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

use crate::drive::{Client, Clients, Result};

pub struct JetStream {
    context: jetstream::Context,
}

impl JetStream {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        Ok(Self {
            context: jetstream::new(client),
        })
    }

    /// The server's version, for the report.
    pub fn server_version(&self) -> String {
        self.context.client().server_info().version
    }

    /// An empty file-stored stream `name` taking subject `name` (deleted first if a previous run
    /// left it).
    pub async fn fresh_stream(&self, name: &str) -> Result<()> {
        self.delete_stream(name).await;
        self.context
            .create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![name.to_owned()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    pub async fn delete_stream(&self, name: &str) {
        // Missing is fine.
        let _ = self.context.delete_stream(name).await;
    }

    /// `clients` publishers to `subject`, `batch` publishes in flight per step.
    pub fn writers(&self, subject: &str, clients: usize, batch: usize, payload: &str) -> Clients {
        let payload = Bytes::copy_from_slice(payload.as_bytes());
        (0..clients)
            .map(|_| {
                Box::new(Writer {
                    context: self.context.clone(),
                    subject: subject.to_owned().into(),
                    payload: payload.clone(),
                    batch,
                }) as Box<dyn Client>
            })
            .collect()
    }

    /// `clients` durable pull consumers of `stream`, each reading it all from the start.
    pub async fn readers(&self, stream: &str, clients: usize, batch: usize) -> Result<Clients> {
        let stream = self.context.get_stream(stream).await?;
        let mut readers: Clients = Vec::with_capacity(clients);
        for i in 0..clients {
            let name = format!("reader{i}");
            let consumer = stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(name),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::All,
                    ..Default::default()
                })
                .await?;
            readers.push(Box::new(Reader { consumer, batch }));
        }
        Ok(readers)
    }
}

struct Writer {
    context: jetstream::Context,
    subject: async_nats::Subject,
    payload: Bytes,
    batch: usize,
}

impl Client for Writer {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let mut acks = Vec::with_capacity(self.batch);
            for _ in 0..self.batch {
                acks.push(
                    self.context
                        .publish(self.subject.clone(), self.payload.clone())
                        .await?,
                );
            }
            for ack in acks {
                ack.await?;
            }
            Ok(self.batch)
        }
        .boxed()
    }
}

struct Reader {
    consumer: consumer::PullConsumer,
    batch: usize,
}

impl Client for Reader {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let mut messages = self
                .consumer
                .fetch()
                .max_messages(self.batch)
                .messages()
                .await?;
            let mut read = 0;
            let mut last = None;
            while let Some(message) = messages.next().await {
                last = Some(message?);
                read += 1;
            }
            if let Some(last) = last {
                last.ack().await?;
            }
            Ok(read)
        }
        .boxed()
    }
}
