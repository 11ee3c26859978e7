//! One flush's group commit, and what it does when PostgreSQL refuses the group: the requests
//! are committed again one by one, so only the one that broke it fails. Without this, one
//! message PostgreSQL cannot store failed every request that shared its commit, and since those
//! get 503 + Retry-After, well-behaved clients retried the poison forever.
//!
//! Offsets stay dense: the requests that go through get their offsets again, in order, from the
//! group's first offset of each partition (no other flush runs meanwhile: one at a time).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::queue::store::{self, AppendError, AppendRows};
use crate::queue::{PartitionKey, QueueError};

/// One request's rows in the group: `rows[start..start + len]`, offsets from `first`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) key: PartitionKey,
    pub(super) first: i64,
    pub(super) start: usize,
    pub(super) len: usize,
}

/// What a group commit did.
pub(super) struct GroupOutcome {
    /// Each request's answer, in order: its first offset, or why it failed.
    pub(super) answers: Vec<Result<i64, QueueError>>,
    /// The rows now in PostgreSQL, with the offsets they got.
    pub(super) committed: AppendRows,
    /// Whether `committed` is all this flush wrote (false: some statement's outcome is unknown,
    /// or PostgreSQL refused for a reason that may be the broker's own state).
    pub(super) known: bool,
}

/// The answer for a request PostgreSQL cannot store (no database text in it).
fn unstorable() -> QueueError {
    QueueError::invalid(
        "messages",
        "PostgreSQL cannot store this message; nothing of this request was stored",
    )
}

fn answer_for(error: &AppendError) -> QueueError {
    match error {
        AppendError::Unstorable(_) => unstorable(),
        AppendError::Refused(e) | AppendError::Lost(e) => e.in_context("commit failed"),
    }
}

/// Commits `rows` in one statement; if PostgreSQL refuses it, each request on its own.
pub(super) async fn commit(
    pool: &PgPool,
    mut rows: AppendRows,
    spans: &[Span],
    produced_at: DateTime<Utc>,
    broker: &str,
) -> GroupOutcome {
    crate::telemetry::metrics::group_commit(broker, rows.offsets.len());
    let error = match store::append(pool, &rows, produced_at).await {
        Ok(()) => {
            return GroupOutcome {
                answers: spans.iter().map(|s| Ok(s.first)).collect(),
                committed: rows,
                known: true,
            };
        }
        Err(e) => e,
    };
    tracing::error!(broker, requests = spans.len(), messages = rows.offsets.len(), error = ?error, "broker {broker} could not commit a group of {} requests", spans.len());
    if spans.len() == 1 || matches!(error, AppendError::Lost(_)) {
        return GroupOutcome {
            answers: spans.iter().map(|_| Err(answer_for(&error))).collect(),
            committed: AppendRows::default(),
            known: matches!(error, AppendError::Unstorable(_)),
        };
    }
    // PostgreSQL refused the group and wrote nothing: find the requests to blame.
    let mut next: HashMap<PartitionKey, i64> = HashMap::new();
    for span in spans {
        next.entry(span.key).or_insert(span.first);
    }
    let mut outcome = GroupOutcome {
        answers: Vec::with_capacity(spans.len()),
        committed: AppendRows::default(),
        known: true,
    };
    let mut lost = None;
    for span in spans {
        if let Some(e) = &lost {
            outcome.answers.push(Err(answer_for(e)));
            continue;
        }
        let at = next[&span.key];
        let one = AppendRows {
            topic_ids: vec![span.key.topic_id; span.len],
            partitions: vec![span.key.partition; span.len],
            offsets: (at..at + span.len as i64).collect(),
            payloads: rows.payloads[span.start..span.start + span.len]
                .iter_mut()
                .map(std::mem::take)
                .collect(),
        };
        match store::append(pool, &one, produced_at).await {
            Ok(()) => {
                next.insert(span.key, at + span.len as i64);
                outcome.answers.push(Ok(at));
                let c = &mut outcome.committed;
                c.topic_ids.extend(one.topic_ids);
                c.partitions.extend(one.partitions);
                c.offsets.extend(one.offsets);
                c.payloads.extend(one.payloads);
            }
            Err(e) => {
                tracing::warn!(broker, partition = span.key.partition, messages = span.len, error = ?e, "broker {broker}: PostgreSQL refused one request of a failed group on its own");
                outcome.answers.push(Err(answer_for(&e)));
                match e {
                    AppendError::Unstorable(_) => {}
                    AppendError::Refused(_) => outcome.known = false,
                    AppendError::Lost(_) => {
                        outcome.known = false;
                        lost = Some(e);
                    }
                }
            }
        }
    }
    outcome
}
