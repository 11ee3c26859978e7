//! The queue's SQL, shared by its actors. Tables are described in
//! `migrations/20261124000004_queue.sql`. Every write is one statement or one transaction, and
//! the hot ones (appends, offset commits) carry a whole group of requests as arrays.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::queue::retention::Retention;
use crate::queue::{PartitionKey, QueueError, Reader, StoredMessage};

/// A topic and where its partitions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRow {
    pub id: i32,
    pub name: String,
    pub partitions: i32,
    pub retention: Retention,
    /// The broker of each partition, in partition order.
    pub brokers: Vec<i32>,
}

/// Creates a topic and its partitions (partition `p` on `brokers[p]`) in one transaction.
pub async fn create_topic(
    pool: &PgPool,
    name: &str,
    retention: Retention,
    brokers: &[i32],
) -> Result<TopicRow, QueueError> {
    let mut tx = pool.begin().await?;
    let id: Option<i32> = sqlx::query_scalar(
        "INSERT INTO queue_topics (name, partitions, retention_ms, retention_messages) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(brokers.len() as i32)
    .bind(retention.max_age_ms)
    .bind(retention.max_messages)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Err(QueueError::TopicExists(name.to_owned()));
    };
    let partitions: Vec<i32> = (0..brokers.len() as i32).collect();
    sqlx::query(
        "INSERT INTO queue_partitions (topic_id, partition, broker_id) \
         SELECT $1, p, b FROM unnest($2::int[], $3::int[]) AS u(p, b)",
    )
    .bind(id)
    .bind(&partitions)
    .bind(brokers)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(TopicRow {
        id,
        name: name.to_owned(),
        partitions: brokers.len() as i32,
        retention,
        brokers: brokers.to_vec(),
    })
}

/// `(id, name, partitions, retention_ms, retention_messages, brokers)`
type TopicTuple = (i32, String, i32, Option<i64>, Option<i64>, Vec<i32>);

pub async fn load_topics(pool: &PgPool) -> Result<Vec<TopicRow>, QueueError> {
    let rows: Vec<TopicTuple> = sqlx::query_as(
        "SELECT t.id, t.name, t.partitions, t.retention_ms, t.retention_messages, \
                array_agg(p.broker_id ORDER BY p.partition) \
         FROM queue_topics t JOIN queue_partitions p ON p.topic_id = t.id \
         GROUP BY t.id ORDER BY t.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, partitions, ms, messages, brokers)| TopicRow {
            id,
            name,
            partitions,
            retention: Retention {
                max_age_ms: ms,
                max_messages: messages,
            },
            brokers,
        })
        .collect())
}

/// What a producer or consumer is registered for: a topic, or one partition of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub topic_id: i32,
    pub partition: Option<i32>,
}

fn split(registrations: &[Registration]) -> (Vec<i32>, Vec<Option<i32>>) {
    registrations
        .iter()
        .map(|r| (r.topic_id, r.partition))
        .unzip()
}

pub async fn create_producer(
    pool: &PgPool,
    registrations: &[Registration],
) -> Result<i64, QueueError> {
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar("INSERT INTO queue_producers DEFAULT VALUES RETURNING id")
        .fetch_one(&mut *tx)
        .await?;
    let (topics, partitions) = split(registrations);
    sqlx::query(
        "INSERT INTO queue_producer_topics (producer_id, topic_id, partition) \
         SELECT $1, t, p FROM unnest($2::int[], $3::int[]) AS u(t, p)",
    )
    .bind(id)
    .bind(&topics)
    .bind(&partitions)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn create_consumer(
    pool: &PgPool,
    group: Option<&str>,
    registrations: &[Registration],
) -> Result<i64, QueueError> {
    let mut tx = pool.begin().await?;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO queue_consumers (group_name) VALUES ($1) RETURNING id")
            .bind(group)
            .fetch_one(&mut *tx)
            .await?;
    let (topics, partitions) = split(registrations);
    sqlx::query(
        "INSERT INTO queue_consumer_topics (consumer_id, topic_id, partition) \
         SELECT $1, t, p FROM unnest($2::int[], $3::int[]) AS u(t, p)",
    )
    .bind(id)
    .bind(&topics)
    .bind(&partitions)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Marks a consumer as gone; `false` if it was unknown or had already left.
pub async fn leave_consumer(pool: &PgPool, id: i64) -> Result<bool, QueueError> {
    let done =
        sqlx::query("UPDATE queue_consumers SET left_at = now() WHERE id = $1 AND left_at IS NULL")
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Every producer's registrations: (producer, topic, partition).
pub async fn load_producers(pool: &PgPool) -> Result<Vec<(i64, i32, Option<i32>)>, QueueError> {
    Ok(sqlx::query_as(
        "SELECT producer_id, topic_id, partition FROM queue_producer_topics ORDER BY producer_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Every present consumer's registrations: (consumer, group, topic, partition).
pub async fn load_consumers(
    pool: &PgPool,
) -> Result<Vec<(i64, Option<String>, i32, Option<i32>)>, QueueError> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.group_name, r.topic_id, r.partition \
         FROM queue_consumers c JOIN queue_consumer_topics r ON r.consumer_id = c.id \
         WHERE c.left_at IS NULL ORDER BY c.id",
    )
    .fetch_all(pool)
    .await?)
}

/// A partition as its broker recovers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    pub key: PartitionKey,
    pub topic: String,
    pub start_offset: i64,
    /// The next offset to assign: one past the last stored message, and never below the start.
    pub next_offset: i64,
    pub retention: Retention,
}

/// `(topic_id, partition, topic, start_offset, last offset, retention_ms, retention_messages)`
type PartitionTuple = (i32, i32, String, i64, Option<i64>, Option<i64>, Option<i64>);

/// The partitions broker `broker_id` owns.
pub async fn load_partitions(
    pool: &PgPool,
    broker_id: i32,
) -> Result<Vec<PartitionRow>, QueueError> {
    let rows: Vec<PartitionTuple> = sqlx::query_as(
        "SELECT p.topic_id, p.partition, t.name, p.start_offset, \
                    (SELECT m.\"offset\" FROM queue_messages m \
                      WHERE m.topic_id = p.topic_id AND m.partition = p.partition \
                      ORDER BY m.\"offset\" DESC LIMIT 1), \
                    t.retention_ms, t.retention_messages \
             FROM queue_partitions p JOIN queue_topics t ON t.id = p.topic_id \
             WHERE p.broker_id = $1 ORDER BY p.topic_id, p.partition",
    )
    .bind(broker_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(topic_id, partition, topic, start, last, ms, messages)| PartitionRow {
                key: PartitionKey {
                    topic_id,
                    partition,
                },
                topic,
                start_offset: start,
                next_offset: last.map_or(start, |l| (l + 1).max(start)),
                retention: Retention {
                    max_age_ms: ms,
                    max_messages: messages,
                },
            },
        )
        .collect())
}

/// The committed offsets of every reader of the partitions of `broker_id`.
pub async fn load_offsets(
    pool: &PgPool,
    broker_id: i32,
) -> Result<Vec<(Reader, PartitionKey, i64)>, QueueError> {
    let rows: Vec<(String, i32, i32, i64)> = sqlx::query_as(
        "SELECT o.reader, o.topic_id, o.partition, o.next_offset \
         FROM queue_offsets o JOIN queue_partitions p \
           ON p.topic_id = o.topic_id AND p.partition = o.partition \
         WHERE p.broker_id = $1",
    )
    .bind(broker_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(reader, topic_id, partition, next)| {
            Some((
                Reader::parse(&reader)?,
                PartitionKey {
                    topic_id,
                    partition,
                },
                next,
            ))
        })
        .collect())
}

/// Rows of one append: parallel arrays, one entry per message.
#[derive(Debug, Default, Clone)]
pub struct AppendRows {
    pub topic_ids: Vec<i32>,
    pub partitions: Vec<i32>,
    pub offsets: Vec<i64>,
    pub payloads: Vec<String>,
}

/// Why an append failed, as far as that tells what reached PostgreSQL.
#[derive(Debug)]
pub enum AppendError {
    /// PostgreSQL refused the data of a row (SQLSTATE class 22, e.g. a NUL in text): nothing
    /// was written, and the rows are to blame.
    Unstorable(QueueError),
    /// PostgreSQL refused the statement for another reason: nothing was written.
    Refused(QueueError),
    /// The connection failed: what reached PostgreSQL is unknown.
    Lost(QueueError),
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                AppendError::Unstorable(e.into())
            }
            sqlx::Error::Database(_) => AppendError::Refused(e.into()),
            _ => AppendError::Lost(e.into()),
        }
    }
}

/// Inserts a whole group of messages, of any partitions, in one statement (one transaction,
/// one commit). `produced_at` is the same for all: the time of the flush, to the microsecond.
pub async fn append(
    pool: &PgPool,
    rows: &AppendRows,
    produced_at: DateTime<Utc>,
) -> Result<(), AppendError> {
    sqlx::query(
        "INSERT INTO queue_messages (topic_id, partition, \"offset\", payload, produced_at) \
         SELECT t, p, o, m, $5 FROM unnest($1::int[], $2::int[], $3::bigint[], $4::text[]) \
           AS u(t, p, o, m)",
    )
    .bind(&rows.topic_ids)
    .bind(&rows.partitions)
    .bind(&rows.offsets)
    .bind(&rows.payloads)
    .bind(produced_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Rows of one offset commit: parallel arrays, one entry per (reader, partition).
#[derive(Debug, Default)]
pub struct OffsetRows {
    pub readers: Vec<String>,
    pub topic_ids: Vec<i32>,
    pub partitions: Vec<i32>,
    pub offsets: Vec<i64>,
}

/// Upserts a whole group of offsets in one statement.
pub async fn commit_offsets(pool: &PgPool, rows: &OffsetRows) -> Result<(), QueueError> {
    sqlx::query(
        "INSERT INTO queue_offsets (reader, topic_id, partition, next_offset, updated_at) \
         SELECT r, t, p, o, now() FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[]) \
           AS u(r, t, p, o) \
         ON CONFLICT (reader, topic_id, partition) \
         DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
    )
    .bind(&rows.readers)
    .bind(&rows.topic_ids)
    .bind(&rows.partitions)
    .bind(&rows.offsets)
    .execute(pool)
    .await?;
    Ok(())
}

/// Messages `[from, to)` of a partition: a range scan of the primary key.
pub async fn read_range(
    pool: &PgPool,
    key: PartitionKey,
    from: i64,
    to: i64,
) -> Result<Vec<StoredMessage>, QueueError> {
    let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT \"offset\", payload, produced_at FROM queue_messages \
         WHERE topic_id = $1 AND partition = $2 AND \"offset\" >= $3 AND \"offset\" < $4 \
         ORDER BY \"offset\"",
    )
    .bind(key.topic_id)
    .bind(key.partition)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(offset, message, produced_at)| {
            StoredMessage::new(key.partition, offset, message, produced_at)
        })
        .collect())
}

/// The first offset at or after `start` produced at or after `cutoff` (`end` if none): an
/// index scan in offset order that stops at the first young message.
pub async fn first_young(
    pool: &PgPool,
    key: PartitionKey,
    start: i64,
    end: i64,
    cutoff: DateTime<Utc>,
) -> Result<i64, QueueError> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT \"offset\" FROM queue_messages \
         WHERE topic_id = $1 AND partition = $2 AND \"offset\" >= $3 AND produced_at >= $4 \
         ORDER BY \"offset\" LIMIT 1",
    )
    .bind(key.topic_id)
    .bind(key.partition)
    .bind(start)
    .bind(cutoff)
    .fetch_optional(pool)
    .await?;
    Ok(first.unwrap_or(end))
}

/// How many rows one retention DELETE removes at most, so that no statement runs for long.
const DELETE_CHUNK: i64 = 20_000;

/// Moves the partition's start to `new_start`, then deletes every message below it, in chunks.
/// Producers are not blocked: they insert above the end, these rows are below the start.
/// Returns how many messages were deleted.
pub async fn cut(pool: &PgPool, key: PartitionKey, new_start: i64) -> Result<u64, QueueError> {
    sqlx::query(
        "UPDATE queue_partitions SET start_offset = greatest(start_offset, $3) \
         WHERE topic_id = $1 AND partition = $2",
    )
    .bind(key.topic_id)
    .bind(key.partition)
    .bind(new_start)
    .execute(pool)
    .await?;
    let lowest: Option<i64> = sqlx::query_scalar(
        "SELECT min(\"offset\") FROM queue_messages WHERE topic_id = $1 AND partition = $2",
    )
    .bind(key.topic_id)
    .bind(key.partition)
    .fetch_one(pool)
    .await?;
    let mut deleted = 0;
    let mut from = lowest.unwrap_or(new_start);
    while from < new_start {
        let to = (from + DELETE_CHUNK).min(new_start);
        deleted += sqlx::query(
            "DELETE FROM queue_messages \
             WHERE topic_id = $1 AND partition = $2 AND \"offset\" >= $3 AND \"offset\" < $4",
        )
        .bind(key.topic_id)
        .bind(key.partition)
        .bind(from)
        .bind(to)
        .execute(pool)
        .await?
        .rows_affected();
        from = to;
    }
    Ok(deleted)
}
