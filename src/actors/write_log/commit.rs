//! One group's transaction: idempotency look-ups, the writes applied in order (together, through
//! the service's `apply_batch`; write by write when a batch failed, to find the guilty write),
//! their log rows and the head's compare-and-set in one statement, the commit.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool};

use super::{LogTable, Sequenced, SequencedWrite, WriteError};

/// What became of a group.
pub(super) enum GroupOutcome<A, R> {
    /// Committed: one result per write, in order.
    Committed {
        results: Vec<Result<Sequenced<A>, WriteError<R>>>,
        last_seq: u64,
    },
    /// Write `index`'s SQL failed; the transaction was rolled back.
    Poisoned { index: usize, error: sqlx::Error },
    /// The transaction or the commit failed (or another writer moved the head).
    Failed(String),
}

/// The last number of `table`: its head, or its highest entry if the head is behind (a log
/// written before heads existed); the head is created or moved up to it.
pub(super) async fn load_last_seq(pool: &PgPool, table: LogTable) -> Result<u64, sqlx::Error> {
    let highest: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(max(seq), 0) FROM {}",
        table.name
    )))
    .fetch_one(pool)
    .await?;
    let head: i64 = sqlx::query_scalar(
        "INSERT INTO write_log_heads (log, last_seq) VALUES ($1, $2) \
         ON CONFLICT (log) DO UPDATE SET last_seq = GREATEST(write_log_heads.last_seq, excluded.last_seq) \
         RETURNING last_seq",
    )
    .bind(table.name)
    .bind(highest)
    .fetch_one(pool)
    .await?;
    Ok(head as u64)
}

/// A key's first write, as the log holds it.
struct Known {
    seq: u64,
    fingerprint: Option<String>,
    detail: serde_json::Value,
    entered_via: String,
}

/// The log rows of a group, column by column (one `INSERT … SELECT FROM unnest`).
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    subject: Vec<String>,
    entered_via: Vec<String>,
    detail: Vec<serde_json::Value>,
    key: Vec<Option<String>>,
    fingerprint: Vec<Option<String>>,
}

/// How a group's writes are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Through [`SequencedWrite::apply_batch`]: as few statements as the service can.
    Batched,
    /// One [`SequencedWrite::apply`] per write: an SQL error names its write.
    OneByOne,
}

/// Why an attempt at a group stopped short.
enum Failure {
    /// A batch failed: which write is guilty is not known.
    Batch(sqlx::Error),
    /// The transaction or the commit failed.
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Sql(e)
    }
}

pub(super) async fn commit_group<W: SequencedWrite>(
    pool: &PgPool,
    table: LogTable,
    start: u64,
    writes: &[W],
) -> GroupOutcome<W::Applied, W::Rejected> {
    match try_commit(pool, table, start, writes, Mode::Batched).await {
        Ok(outcome) => outcome,
        Err(Failure::Batch(error)) => {
            // Rolled back (the transaction is dropped). Again, write by write: the guilty write
            // is found (`Poisoned`) and the others go again without it.
            tracing::warn!(log = table.name, seq_after = start, writes = writes.len(), error = %error, "write log {}: a batch failed; its group goes again write by write", table.name);
            match try_commit(pool, table, start, writes, Mode::OneByOne).await {
                Ok(outcome) => outcome,
                Err(Failure::Batch(e) | Failure::Sql(e)) => GroupOutcome::Failed(e.to_string()),
            }
        }
        Err(Failure::Sql(e)) => GroupOutcome::Failed(e.to_string()),
    }
}

/// A group's results so far, and its log rows.
struct Group<'w, W: SequencedWrite> {
    writes: &'w [W],
    /// One per write, filled in order.
    results: Vec<Option<Result<Sequenced<W::Applied>, WriteError<W::Rejected>>>>,
    /// A key applied earlier in this group: the index of that write.
    first_in_group: HashMap<&'w str, usize>,
    rows: Rows,
    /// The last number given.
    next: u64,
}

impl<'w, W: SequencedWrite> Group<'w, W> {
    /// Records what applying write `index` gave, numbering it if it was applied.
    fn applied(&mut self, index: usize, result: Result<W::Applied, W::Rejected>) {
        let write = &self.writes[index];
        let applied = match result {
            Ok(applied) => applied,
            Err(rejected) => {
                self.results[index] = Some(Err(WriteError::Rejected(rejected)));
                return;
            }
        };
        self.next += 1;
        let key = write.idempotency_key();
        let (kind, subject) = W::describe(&applied);
        let detail = serde_json::to_value(&applied).expect("applied writes serialize");
        let rows = &mut self.rows;
        rows.seq.push(self.next as i64);
        rows.kind.push(kind);
        rows.subject.push(subject);
        rows.entered_via.push(write.entered_via().to_owned());
        rows.detail.push(detail);
        rows.key.push(key.map(str::to_owned));
        rows.fingerprint.push(key.map(|_| write.fingerprint()));
        if let Some(key) = key {
            self.first_in_group.insert(key, index);
        }
        self.results[index] = Some(Ok(Sequenced {
            seq: self.next,
            applied,
            entered_via: write.entered_via().to_owned(),
            replayed: false,
        }));
    }

    /// The answer to write `index` when its key was applied earlier in this group.
    fn replayed_in_group(
        &self,
        index: usize,
        key: &str,
    ) -> Option<Result<Sequenced<W::Applied>, WriteError<W::Rejected>>> {
        let earlier = *self.first_in_group.get(key)?;
        let Some(Ok(first)) = &self.results[earlier] else {
            return None;
        };
        let same = self.writes[earlier].fingerprint() == self.writes[index].fingerprint();
        Some(if same {
            Ok(Sequenced {
                replayed: true,
                ..first.clone()
            })
        } else {
            Err(WriteError::IdempotencyConflict(key.to_owned()))
        })
    }

    /// Applies the writes `segment` (no key twice among them), in order.
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        segment: &[usize],
        mode: Mode,
    ) -> Result<Option<GroupOutcome<W::Applied, W::Rejected>>, Failure> {
        match mode {
            Mode::Batched => {
                let refs: Vec<&W> = segment.iter().map(|&i| &self.writes[i]).collect();
                let results = W::apply_batch(&refs, &mut *tx)
                    .await
                    .map_err(Failure::Batch)?;
                if results.len() != segment.len() {
                    return Err(Failure::Batch(sqlx::Error::Protocol(format!(
                        "apply_batch answered {} results for {} writes",
                        results.len(),
                        segment.len()
                    ))));
                }
                for (&index, result) in segment.iter().zip(results) {
                    self.applied(index, result);
                }
            }
            Mode::OneByOne => {
                for &index in segment {
                    match self.writes[index].apply(&mut *tx).await {
                        Ok(result) => self.applied(index, result),
                        Err(error @ sqlx::Error::Database(_)) => {
                            return Ok(Some(GroupOutcome::Poisoned { index, error }));
                        }
                        Err(e) => return Err(Failure::Sql(e)),
                    }
                }
            }
        }
        Ok(None)
    }
}

async fn try_commit<W: SequencedWrite>(
    pool: &PgPool,
    table: LogTable,
    start: u64,
    writes: &[W],
    mode: Mode,
) -> Result<GroupOutcome<W::Applied, W::Rejected>, Failure> {
    let mut tx = pool.begin().await?;
    let known = known_keys(&mut tx, table, writes).await?;
    let mut group = Group {
        writes,
        results: (0..writes.len()).map(|_| None).collect(),
        first_in_group: HashMap::new(),
        rows: Rows::default(),
        next: start,
    };
    // Writes to apply together; a key that comes again in it closes it first, so that the
    // second is answered from the first's result (or applied, if the first was refused).
    let mut segment: Vec<usize> = Vec::new();
    let mut segment_keys: HashSet<&str> = HashSet::new();
    let mut index = 0;
    while index < writes.len() {
        let write = &writes[index];
        if let Some(key) = write.idempotency_key() {
            if let Some(first) = known.get(key) {
                group.results[index] = Some(replay(key, first, write));
                index += 1;
                continue;
            }
            if segment_keys.contains(key) {
                if let Some(poisoned) = group.apply(&mut tx, &segment, mode).await? {
                    return Ok(poisoned);
                }
                segment.clear();
                segment_keys.clear();
                continue;
            }
            // Applied earlier in this group (a refused write leaves no trace: its retry is
            // checked again like any write).
            if let Some(answer) = group.replayed_in_group(index, key) {
                group.results[index] = Some(answer);
                index += 1;
                continue;
            }
            segment_keys.insert(key);
        }
        segment.push(index);
        index += 1;
    }
    if !segment.is_empty()
        && let Some(poisoned) = group.apply(&mut tx, &segment, mode).await?
    {
        return Ok(poisoned);
    }
    let Group {
        results,
        rows,
        next,
        ..
    } = group;
    if !rows.seq.is_empty() {
        // The log rows and the head's compare-and-set in one statement.
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH logged AS ( \
                 INSERT INTO {} (seq, kind, subject, entered_via, detail, idempotency_key, fingerprint) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[])) \
             UPDATE write_log_heads SET last_seq = $10 WHERE log = $8 AND last_seq = $9",
            table.name
        )))
        .bind(&rows.seq)
        .bind(&rows.kind)
        .bind(&rows.subject)
        .bind(&rows.entered_via)
        .bind(&rows.detail)
        .bind(&rows.key)
        .bind(&rows.fingerprint)
        .bind(table.name)
        .bind(start as i64)
        .bind(next as i64)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(GroupOutcome::Failed(format!(
                "the head of {} moved past #{start}: another writer uses this log",
                table.name
            )));
        }
    }
    tx.commit().await?;
    Ok(GroupOutcome::Committed {
        results: results
            .into_iter()
            .map(|r| r.expect("every write of a group has its result"))
            .collect(),
        last_seq: next,
    })
}

/// The entries of the group's keys that are already in the log.
async fn known_keys<W: SequencedWrite>(
    tx: &mut sqlx::PgConnection,
    table: LogTable,
    writes: &[W],
) -> Result<HashMap<String, Known>, sqlx::Error> {
    let keys: Vec<&str> = writes.iter().filter_map(|w| w.idempotency_key()).collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, Option<String>, serde_json::Value, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT idempotency_key, seq, fingerprint, detail, entered_via FROM {} \
             WHERE idempotency_key = ANY($1)",
            table.name
        )))
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, seq, fingerprint, detail, entered_via)| {
            (
                key,
                Known {
                    seq: seq as u64,
                    fingerprint,
                    detail,
                    entered_via,
                },
            )
        })
        .collect())
}

/// The answer to a retry of a write already in the log.
fn replay<W: SequencedWrite>(
    key: &str,
    first: &Known,
    write: &W,
) -> Result<Sequenced<W::Applied>, WriteError<W::Rejected>> {
    if first.fingerprint.as_deref() != Some(write.fingerprint().as_str()) {
        return Err(WriteError::IdempotencyConflict(key.to_owned()));
    }
    match serde_json::from_value(first.detail.clone()) {
        Ok(applied) => Ok(Sequenced {
            seq: first.seq,
            applied,
            entered_via: first.entered_via.clone(),
            replayed: true,
        }),
        Err(e) => {
            tracing::error!(key, seq = first.seq, error = %e, "a logged write no longer reads back");
            Err(WriteError::Storage)
        }
    }
}
