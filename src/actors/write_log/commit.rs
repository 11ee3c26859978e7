//! One group's transaction: idempotency look-ups, the writes applied in order, their log rows
//! in one statement, the head's compare-and-set, the commit.

use std::collections::HashMap;

use sqlx::PgPool;

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

pub(super) async fn commit_group<W: SequencedWrite>(
    pool: &PgPool,
    table: LogTable,
    start: u64,
    writes: &[W],
) -> GroupOutcome<W::Applied, W::Rejected> {
    match try_commit(pool, table, start, writes).await {
        Ok(outcome) => outcome,
        Err(e) => GroupOutcome::Failed(e.to_string()),
    }
}

async fn try_commit<W: SequencedWrite>(
    pool: &PgPool,
    table: LogTable,
    start: u64,
    writes: &[W],
) -> Result<GroupOutcome<W::Applied, W::Rejected>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let known = known_keys(&mut tx, table, writes).await?;
    // A key seen earlier in this group: the index of that write's result.
    let mut first_in_group: HashMap<&str, usize> = HashMap::new();
    let mut results: Vec<Result<Sequenced<W::Applied>, WriteError<W::Rejected>>> =
        Vec::with_capacity(writes.len());
    let mut rows = Rows::default();
    let mut next = start;
    for (index, write) in writes.iter().enumerate() {
        let key = write.idempotency_key();
        if let Some(key) = key {
            if let Some(first) = known.get(key) {
                results.push(replay(key, first, write));
                continue;
            }
            // Applied earlier in this group (a refused write leaves no trace: its retry is
            // checked again like any write).
            if let Some(&earlier) = first_in_group.get(key)
                && let Ok(first) = &results[earlier]
            {
                let same = writes[earlier].fingerprint() == write.fingerprint();
                results.push(if same {
                    Ok(Sequenced {
                        replayed: true,
                        ..first.clone()
                    })
                } else {
                    Err(WriteError::IdempotencyConflict(key.to_owned()))
                });
                continue;
            }
        }
        let applied = match write.apply(&mut tx).await {
            Ok(Ok(applied)) => applied,
            Ok(Err(rejected)) => {
                results.push(Err(WriteError::Rejected(rejected)));
                continue;
            }
            Err(error @ sqlx::Error::Database(_)) => {
                return Ok(GroupOutcome::Poisoned { index, error });
            }
            Err(e) => return Err(e),
        };
        next += 1;
        let (kind, subject) = W::describe(&applied);
        let detail = serde_json::to_value(&applied).expect("applied writes serialize");
        rows.seq.push(next as i64);
        rows.kind.push(kind);
        rows.subject.push(subject);
        rows.entered_via.push(write.entered_via().to_owned());
        rows.detail.push(detail);
        rows.key.push(key.map(str::to_owned));
        rows.fingerprint.push(key.map(|_| write.fingerprint()));
        if let Some(key) = key {
            first_in_group.insert(key, index);
        }
        results.push(Ok(Sequenced {
            seq: next,
            applied,
            entered_via: write.entered_via().to_owned(),
            replayed: false,
        }));
    }
    if !rows.seq.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (seq, kind, subject, entered_via, detail, idempotency_key, fingerprint) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[])",
            table.name
        )))
        .bind(&rows.seq)
        .bind(&rows.kind)
        .bind(&rows.subject)
        .bind(&rows.entered_via)
        .bind(&rows.detail)
        .bind(&rows.key)
        .bind(&rows.fingerprint)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE write_log_heads SET last_seq = $3 WHERE log = $1 AND last_seq = $2",
        )
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
        results,
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
