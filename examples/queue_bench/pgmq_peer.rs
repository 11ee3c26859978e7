//! pgmq, the Postgres message queue, as plain SQL in a database of its own on the server Obelix
//! uses. Its SQL is installed from the copy embedded in the `pgmq` crate
//! (`install_sql_from_embedded`, feature `install-sql-embedded`), and every call goes through the
//! crate's `PGMQueueExt`, as its users write it. Queues are ordinary logged tables, so every
//! call is one durable commit (`synchronous_commit` as the server has it).
//!
//! The crate's own URL parser needs a TCP host and a password; the pool is built here instead
//! (sqlx 0.8, the crate's version), so that a Unix socket (`?host=/path`) works too.

use std::str::FromStr;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pgmq::PGMQueueExt;
use sqlx08::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx08::{Connection, PgConnection};

use crate::drive::{Client, Clients, Result};

/// How long a read message stays invisible to other readers; deleted long before.
const VISIBILITY_TIMEOUT_S: i32 = 30;

pub struct Pgmq {
    options: PgConnectOptions,
}

impl Pgmq {
    /// Creates `database` on the server `server_url` points to (any database there will do for
    /// the connection), and installs pgmq's SQL into it.
    pub async fn connect(server_url: &str, database: &str) -> Result<Self> {
        let server = PgConnectOptions::from_str(server_url)?;
        let mut admin = PgConnection::connect_with(&server).await?;
        let exists: bool =
            sqlx08::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            sqlx08::query(&format!("CREATE DATABASE \"{database}\""))
                .execute(&mut admin)
                .await?;
        }
        admin.close().await?;
        let pgmq = Self {
            options: server.database(database),
        };
        let queue = pgmq.pool(1).await?;
        // Installs, or upgrades to, the crate's version; a no-op when it is there already.
        queue.install_sql_from_embedded().await?;
        queue.connection.close().await;
        Ok(pgmq)
    }

    /// The installed pgmq version and the server's durability settings, for the report.
    pub async fn describe(&self) -> Result<Described> {
        let queue = self.pool(1).await?;
        let version = queue.installed_version().await?;
        let setting = |name: &'static str| {
            sqlx08::query_scalar::<_, String>("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&queue.connection)
        };
        let described = Described {
            pgmq_version: version.map_or_else(|| "?".into(), |v| v.to_string()),
            server_version: setting("server_version").await?,
            fsync: setting("fsync").await?,
            synchronous_commit: setting("synchronous_commit").await?,
        };
        queue.connection.close().await;
        Ok(described)
    }

    /// An empty queue `name` (dropped first if a previous run left it).
    pub async fn fresh_queue(&self, name: &str) -> Result<()> {
        let queue = self.pool(1).await?;
        self.drop_queue_with(&queue, name).await?;
        queue.create(name).await?;
        queue.connection.close().await;
        Ok(())
    }

    pub async fn drop_queue(&self, name: &str) -> Result<()> {
        let queue = self.pool(1).await?;
        self.drop_queue_with(&queue, name).await?;
        queue.connection.close().await;
        Ok(())
    }

    async fn drop_queue_with(&self, queue: &PGMQueueExt, name: &str) -> Result<()> {
        let existing = queue.list_queues().await?.unwrap_or_default();
        if existing.iter().any(|q| q.queue_name == name) {
            queue.drop_queue(name).await?;
        }
        Ok(())
    }

    /// `clients` writers on a pool of as many connections: `send` when `batch` is 1,
    /// `send_batch` otherwise.
    pub async fn writers(
        &self,
        queue: &str,
        clients: usize,
        batch: usize,
        payload: &str,
    ) -> Result<Clients> {
        let pgmq = Arc::new(self.pool(clients as u32).await?);
        Ok((0..clients)
            .map(|_| {
                Box::new(Writer {
                    pgmq: pgmq.clone(),
                    queue: queue.to_owned(),
                    messages: vec![payload.to_owned(); batch],
                }) as Box<dyn Client>
            })
            .collect())
    }

    /// `clients` readers of one queue on a pool of as many connections; each step is `read` of
    /// up to `batch` messages, then `delete` of their ids (two statements, two commits).
    pub async fn readers(&self, queue: &str, clients: usize, batch: usize) -> Result<Clients> {
        let pgmq = Arc::new(self.pool(clients as u32).await?);
        Ok((0..clients)
            .map(|_| {
                Box::new(Reader {
                    pgmq: pgmq.clone(),
                    queue: queue.to_owned(),
                    batch: batch as i32,
                }) as Box<dyn Client>
            })
            .collect())
    }

    async fn pool(&self, connections: u32) -> Result<PGMQueueExt> {
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(self.options.clone())
            .await?;
        Ok(PGMQueueExt::new_with_pool(pool).await)
    }
}

pub struct Described {
    pub pgmq_version: String,
    server_version: String,
    fsync: String,
    synchronous_commit: String,
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PostgreSQL {}, fsync {}, synchronous_commit {}",
            self.server_version, self.fsync, self.synchronous_commit
        )
    }
}

struct Writer {
    pgmq: Arc<PGMQueueExt>,
    queue: String,
    messages: Vec<String>,
}

impl Client for Writer {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            if let [message] = self.messages.as_slice() {
                self.pgmq.send(&self.queue, message).await?;
                Ok(1)
            } else {
                let ids = self.pgmq.send_batch(&self.queue, &self.messages).await?;
                Ok(ids.len())
            }
        }
        .boxed()
    }
}

struct Reader {
    pgmq: Arc<PGMQueueExt>,
    queue: String,
    batch: i32,
}

impl Client for Reader {
    fn step(&mut self) -> BoxFuture<'_, Result<usize>> {
        async move {
            let read = self
                .pgmq
                .read_batch::<String>(&self.queue, VISIBILITY_TIMEOUT_S, self.batch)
                .await?;
            if read.is_empty() {
                return Ok(0);
            }
            let ids: Vec<i64> = read.iter().map(|m| m.msg_id).collect();
            let deleted = self.pgmq.delete_batch(&self.queue, &ids).await?;
            if deleted != ids.len() {
                return Err(format!("read {} messages, deleted {deleted}", ids.len()).into());
            }
            Ok(ids.len())
        }
        .boxed()
    }
}
