//! The rooms' SQL: the catalogue, a server's snapshot, the log's entries for a gap, and the
//! write every request is (a [`SequencedWrite`] that always applies: its outcome is decided by
//! `INSERT … ON CONFLICT DO NOTHING` or `DELETE … RETURNING`, so the database alone decides who
//! gets a room).

use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use super::{Catalog, Decided, Outcome, Request, Reservation};
use crate::actors::write_log::{LogTable, SequencedWrite};

/// The rooms' request log.
pub const LOG: LogTable = LogTable {
    name: "rooms_request_log",
};

pub async fn load_catalog(pool: &PgPool) -> Result<Catalog, sqlx::Error> {
    let rooms = sqlx::query_scalar("SELECT name FROM rooms ORDER BY position")
        .fetch_all(pool)
        .await?;
    let timeslots = sqlx::query_scalar("SELECT label FROM timeslots ORDER BY position")
        .fetch_all(pool)
        .await?;
    let days = sqlx::query_scalar("SELECT name FROM days ORDER BY position")
        .fetch_all(pool)
        .await?;
    Ok(Catalog {
        rooms,
        timeslots,
        days,
    })
}

/// Every reservation and the log's last number, seen at one instant (one REPEATABLE READ
/// transaction: the log moves its head in the transaction that changes reservations).
pub async fn snapshot(pool: &PgPool) -> Result<(Vec<Reservation>, u64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let head: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM write_log_heads WHERE log = $1")
            .bind(LOG.name)
            .fetch_optional(&mut *tx)
            .await?;
    let reservations = all_reservations(&mut tx).await?;
    tx.commit().await?;
    Ok((reservations, head.unwrap_or(0) as u64))
}

pub async fn all_reservations(conn: &mut PgConnection) -> Result<Vec<Reservation>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT id, room, timeslot, day FROM room_reservations ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, room, timeslot, day)| Reservation {
            id,
            room,
            timeslot,
            day,
        })
        .collect())
}

/// The log's last number now (0 before the first request).
pub async fn log_head(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let head: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM write_log_heads WHERE log = $1")
            .bind(LOG.name)
            .fetch_optional(pool)
            .await?;
    Ok(head.unwrap_or(0) as u64)
}

/// Entries `from..=to` of the log (at most `limit`), in number order.
pub async fn log_entries(
    pool: &PgPool,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<Vec<(u64, Decided)>, sqlx::Error> {
    let rows: Vec<(i64, serde_json::Value)> = sqlx::query_as(
        "SELECT seq, detail FROM rooms_request_log WHERE seq BETWEEN $1 AND $2 ORDER BY seq LIMIT $3",
    )
    .bind(from as i64)
    .bind(to as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for (seq, detail) in rows {
        let decided: Decided =
            serde_json::from_value(detail).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        entries.push((seq as u64, decided));
    }
    Ok(entries)
}

/// One client request on its way through the log.
#[derive(Debug, Clone)]
pub struct RoomWrite {
    /// The client's Idempotency-Key, or a fresh UUID: the log's key and the reply board's.
    pub request_id: String,
    pub request: Request,
    /// The ingress it came through.
    pub entered_via: String,
}

/// Never refused: every request takes a number, whatever its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Never {}

impl SequencedWrite for RoomWrite {
    type Applied = Decided;
    type Rejected = Never;

    fn apply<'c>(
        &'c self,
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, Result<Result<Decided, Never>, sqlx::Error>> {
        Box::pin(async move {
            let outcome = match &self.request {
                Request::Reserve {
                    room,
                    timeslot,
                    day,
                } => {
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO room_reservations (room, timeslot, day, request_id) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (room, timeslot, day) DO NOTHING \
                         RETURNING id",
                    )
                    .bind(room)
                    .bind(timeslot)
                    .bind(day)
                    .bind(&self.request_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (room, timeslot, day) = (room.clone(), timeslot.clone(), day.clone());
                    match id {
                        Some(id) => Outcome::Confirmed(Reservation {
                            id,
                            room,
                            timeslot,
                            day,
                        }),
                        None => Outcome::Taken {
                            room,
                            timeslot,
                            day,
                        },
                    }
                }
                Request::Cancel { id } => {
                    let row: Option<(String, String, String)> = sqlx::query_as(
                        "DELETE FROM room_reservations WHERE id = $1 \
                         RETURNING room, timeslot, day",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        Some((room, timeslot, day)) => Outcome::Cancelled(Reservation {
                            id: *id,
                            room,
                            timeslot,
                            day,
                        }),
                        None => Outcome::NoSuchReservation { id: *id },
                    }
                }
            };
            Ok(Ok(Decided {
                request_id: self.request_id.clone(),
                outcome,
            }))
        })
    }

    fn describe(applied: &Decided) -> (&'static str, String) {
        match &applied.outcome {
            Outcome::Confirmed(r) => ("reserve", r.room.clone()),
            Outcome::Taken { room, .. } => ("reserve-taken", room.clone()),
            Outcome::Cancelled(r) => ("cancel", r.room.clone()),
            Outcome::NoSuchReservation { id } => ("cancel-unknown", id.to_string()),
        }
    }

    fn entered_via(&self) -> &str {
        &self.entered_via
    }

    fn idempotency_key(&self) -> Option<&str> {
        Some(&self.request_id)
    }

    fn fingerprint(&self) -> String {
        match &self.request {
            Request::Reserve {
                room,
                timeslot,
                day,
            } => format!("reserve:{room}:{timeslot}:{day}"),
            Request::Cancel { id } => format!("cancel:{id}"),
        }
    }
}
