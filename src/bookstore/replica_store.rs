//! A catalog replica's own tables, in its own PostgreSQL (the main one by default):
//! `bookstore_catalog_<n>` (the books, each with the number of the write that last changed it)
//! and `bookstore_catalog_<n>_applied` (one row: the last write number applied).
//!
//! Applying is monotonic: a book row only moves to a higher version and the applied number only
//! rises, so a batch replayed twice, or a late batch of a previous life, changes nothing.
//! Replica commits skip the fsync (`synchronous_commit = off`): the log is the durable copy,
//! and a replica that lost its last commits replays them from there.

use std::collections::BTreeMap;

use sqlx::{PgPool, Postgres, Transaction};

use crate::bookstore::Book;
use crate::bookstore::writes::{STORE_LOG, StoreEntry};

/// Where one replica keeps its copy.
#[derive(Debug, Clone)]
pub struct ReplicaStore {
    pub pool: PgPool,
    /// `bookstore_catalog_<n>`.
    pub table: String,
}

type Row = (i64, String, String, i64, i64, i64);

fn book((id, title, topic, cost_cents, quantity, version): Row) -> Book {
    Book {
        id,
        title,
        topic,
        cost_cents,
        quantity,
        version: version as u64,
    }
}

impl ReplicaStore {
    pub fn new(pool: PgPool, number: usize) -> Self {
        Self {
            pool,
            table: format!("bookstore_catalog_{number}"),
        }
    }

    fn applied_table(&self) -> String {
        format!("{}_applied", self.table)
    }

    /// Creates the tables if missing, and returns the last number applied (`None` for a new
    /// replica, which starts from a snapshot of the authority).
    pub async fn open(&self) -> Result<Option<u64>, sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (id bigint PRIMARY KEY, title text NOT NULL, \
             topic text NOT NULL, cost_cents bigint NOT NULL, quantity bigint NOT NULL, \
             version bigint NOT NULL);
             CREATE INDEX IF NOT EXISTS {t}_topic ON {t} (topic);
             CREATE TABLE IF NOT EXISTS {a} (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), \
             last_applied bigint NOT NULL);",
            t = self.table,
            a = self.applied_table()
        )))
        .execute(&self.pool)
        .await?;
        let last: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT last_applied FROM {}",
            self.applied_table()
        )))
        .fetch_optional(&self.pool)
        .await?;
        Ok(last.map(|l| l as u64))
    }

    /// A new replica's start: the authority's books and the log's last number, read in one
    /// snapshot (every group commits both together), written as this replica's copy.
    pub async fn bootstrap(&self, authority: &PgPool) -> Result<u64, sqlx::Error> {
        let mut tx = authority.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT last_seq FROM write_log_heads WHERE log = $1), 0)",
        )
        .bind(STORE_LOG.name)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, title, topic, cost_cents, quantity FROM bookstore_stock ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let books: Vec<Book> = rows
            .into_iter()
            .map(|(id, title, topic, cost_cents, quantity)| Book {
                id,
                title,
                topic,
                cost_cents,
                quantity,
                version: last as u64,
            })
            .collect();
        self.apply(&books, last as u64).await?;
        Ok(last as u64)
    }

    /// Applies entries (any order, duplicates allowed) up to `last`, in one transaction.
    pub async fn apply_entries(&self, entries: &[(u64, StoreEntry)]) -> Result<u64, sqlx::Error> {
        let mut newest: BTreeMap<i64, Book> = BTreeMap::new();
        let mut last = 0;
        for (seq, entry) in entries {
            last = last.max(*seq);
            let mut book = entry.book().clone();
            book.version = *seq;
            match newest.get(&book.id) {
                Some(held) if held.version >= book.version => {}
                _ => {
                    newest.insert(book.id, book);
                }
            }
        }
        let books: Vec<Book> = newest.into_values().collect();
        self.apply(&books, last).await?;
        Ok(last)
    }

    async fn apply(&self, books: &[Book], last: u64) -> Result<(), sqlx::Error> {
        let mut tx: Transaction<'_, Postgres> = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        if !books.is_empty() {
            let ids: Vec<i64> = books.iter().map(|b| b.id).collect();
            let titles: Vec<&str> = books.iter().map(|b| b.title.as_str()).collect();
            let topics: Vec<&str> = books.iter().map(|b| b.topic.as_str()).collect();
            let costs: Vec<i64> = books.iter().map(|b| b.cost_cents).collect();
            let quantities: Vec<i64> = books.iter().map(|b| b.quantity).collect();
            let versions: Vec<i64> = books.iter().map(|b| b.version as i64).collect();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {t} (id, title, topic, cost_cents, quantity, version) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, topic = excluded.topic, \
                 cost_cents = excluded.cost_cents, quantity = excluded.quantity, version = excluded.version \
                 WHERE {t}.version < excluded.version",
                t = self.table
            )))
            .bind(&ids)
            .bind(&titles)
            .bind(&topics)
            .bind(&costs)
            .bind(&quantities)
            .bind(&versions)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {a} (only_row, last_applied) VALUES (true, $1) ON CONFLICT (only_row) \
             DO UPDATE SET last_applied = GREATEST({a}.last_applied, excluded.last_applied)",
            a = self.applied_table()
        )))
        .bind(last as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub async fn lookup(&self, id: i64) -> Result<Option<Book>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, title, topic, cost_cents, quantity, version FROM {} WHERE id = $1",
            self.table
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(book))
    }

    /// Every book, or those of one topic, by id.
    pub async fn list(&self, topic: Option<&str>) -> Result<Vec<Book>, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, title, topic, cost_cents, quantity, version FROM {} \
             WHERE $1::text IS NULL OR topic = $1 ORDER BY id",
            self.table
        )))
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(book).collect())
    }

    /// A digest of the whole copy (ids, titles, topics, costs, quantities): equal digests, equal
    /// catalogs.
    pub async fn digest(&self) -> Result<String, sqlx::Error> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(COALESCE(string_agg(id || '|' || title || '|' || topic || '|' || cost_cents \
             || '|' || quantity, E'\\n' ORDER BY id), '')) FROM {}",
            self.table
        )))
        .fetch_one(&self.pool)
        .await
    }
}

/// Log entries after `after`, at most `limit`, from the authority's log table.
pub async fn read_log(
    authority: &PgPool,
    after: u64,
    limit: i64,
) -> Result<Vec<(u64, StoreEntry)>, sqlx::Error> {
    let rows: Vec<(i64, serde_json::Value)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT seq, detail FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
        STORE_LOG.name
    )))
    .bind(after as i64)
    .bind(limit)
    .fetch_all(authority)
    .await?;
    rows.into_iter()
        .map(|(seq, detail)| {
            serde_json::from_value(detail)
                .map(|entry| (seq as u64, entry))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}
