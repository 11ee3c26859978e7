//! The Database actor's writes that take a place in a global order, as plain SQL over the
//! pool (no actix here): reporter updates, each applied once under its idempotency key and
//! numbered in `update_log`, and the raffle's batches of tablet requests, each counted once.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::actors::olympics::database::{
    RaffleWin, RecordRequests, SELECT_BOARD, SELECT_TALLY, ScoreRow, board_from_rows,
};
use crate::actors::olympics::messages::{Command, CommandReply};
use crate::olympics::{Medal, MedalTally, OlympicsError, ScoreBoard, is_slug};

/// Applies `command` once: a delivery whose idempotency key the log holds already (a retry, or
/// the ingress sending it again) changes nothing and is answered the state the first left.
/// `seq` is `None` for those.
pub(super) async fn apply_once(
    pool: &PgPool,
    command: Command,
    entered_via: &str,
) -> Result<(CommandReply, Option<u64>), OlympicsError> {
    command.check_names()?;
    let key = command.idempotency_key().to_owned();
    let request = command.request_json();
    if let Some(reply) = recorded(pool, &key, &request).await? {
        tracing::info!(idempotency_key = %key, "update {key} delivered again; answered as the first time");
        return Ok((reply, None));
    }
    let logged = LogEntry {
        key: &key,
        request: &request,
        entered_via,
    };
    let applied = match &command {
        Command::SetScores { game, update, .. } => {
            let teams: Vec<String> = update.scores.keys().cloned().collect();
            let points: Vec<i64> = update.scores.values().map(|&p| p as i64).collect();
            set_scores(pool, game, &teams, &points, &logged)
                .await?
                .map(|(board, seq)| (CommandReply::Score(board), Some(seq)))
        }
        Command::AwardMedal { team, medal, .. } => award_medal(pool, team, *medal, &logged)
            .await?
            .map(|(tally, seq)| (CommandReply::Medals(tally), seq)),
    };
    match applied {
        Some((reply, Some(seq))) => Ok((reply, Some(seq))),
        // Another delivery of the same update committed first (we waited on its key).
        other => match recorded(pool, &key, &request).await? {
            Some(reply) => {
                tracing::info!(idempotency_key = %key, "update {key} delivered twice at once; applied once");
                Ok((reply, None))
            }
            // A medal awarded under this key before the log recorded keys.
            None => other.ok_or_else(|| OlympicsError::Storage(format!("update {key} vanished"))),
        },
    }
}

/// The outcome the log recorded for the update with `key`, if any; a conflict if the key came
/// with another update.
async fn recorded(
    pool: &PgPool,
    key: &str,
    request: &str,
) -> Result<Option<CommandReply>, OlympicsError> {
    let row: Option<(bool, String, String)> = sqlx::query_as(
        "SELECT request IS NOT DISTINCT FROM $2::jsonb, kind, detail::text \
         FROM update_log WHERE idempotency_key = $1",
    )
    .bind(key)
    .bind(request)
    .fetch_optional(pool)
    .await?;
    let Some((same, kind, detail)) = row else {
        return Ok(None);
    };
    if !same {
        return Err(OlympicsError::IdempotencyConflict(key.to_owned()));
    }
    let broken = |e: serde_json::Error| OlympicsError::Storage(format!("update_log detail: {e}"));
    Ok(Some(if kind == "score" {
        CommandReply::Score(serde_json::from_str(&detail).map_err(broken)?)
    } else {
        CommandReply::Medals(serde_json::from_str(&detail).map_err(broken)?)
    }))
}

/// What `update_log` records of an update besides its outcome.
struct LogEntry<'a> {
    key: &'a str,
    request: &'a str,
    entered_via: &'a str,
}

/// `None` when another delivery of the same update committed first.
#[tracing::instrument(skip(pool, points, logged))]
async fn set_scores(
    pool: &PgPool,
    game: &str,
    teams: &[String],
    points: &[i64],
    logged: &LogEntry<'_>,
) -> Result<Option<(ScoreBoard, u64)>, OlympicsError> {
    if !is_slug(game) {
        return Err(OlympicsError::UnknownGame(game.to_owned()));
    }
    if let Some(bad) = teams.iter().find(|t| !is_slug(t)) {
        return Err(OlympicsError::UnknownTeam(bad.clone()));
    }
    let mut tx = pool.begin().await?;
    // Bumping the version locks the game's row: writers of one game commit one at a time.
    let bumped = sqlx::query("UPDATE games SET version = version + 1 WHERE slug = $1")
        .bind(game)
        .execute(&mut *tx)
        .await?;
    if bumped.rows_affected() == 0 {
        return Err(OlympicsError::UnknownGame(game.to_owned()));
    }
    let known: Vec<String> = sqlx::query_scalar("SELECT slug FROM teams WHERE slug = ANY($1)")
        .bind(teams)
        .fetch_all(&mut *tx)
        .await?;
    if let Some(unknown) = teams.iter().find(|t| !known.contains(t)) {
        return Err(OlympicsError::UnknownTeam(unknown.clone()));
    }
    sqlx::query(
        "INSERT INTO scores (game, team, points, updated_at) \
         SELECT $1, team, points, now() FROM unnest($2::text[], $3::bigint[]) AS u(team, points) \
         ON CONFLICT (game, team) DO UPDATE SET points = excluded.points, updated_at = excluded.updated_at",
    )
    .bind(game)
    .bind(teams)
    .bind(points)
    .execute(&mut *tx)
    .await?;
    let rows: Vec<ScoreRow> = sqlx::query_as(SELECT_BOARD)
        .bind(game)
        .fetch_all(&mut *tx)
        .await?;
    let board =
        board_from_rows(game, rows).ok_or_else(|| OlympicsError::UnknownGame(game.to_owned()))?;
    let Some(seq) = log_update(&mut tx, &CommandReply::Score(board.clone()), logged).await? else {
        return Ok(None);
    };
    tx.commit().await?;
    Ok(Some((board, seq)))
}

/// Takes the next number of the global order for this update and logs it under that number.
/// Last in its transaction: the counter's row stays locked until the commit, so updates commit
/// in number order and the numbers have no gaps (a rollback gives its number back). `None`
/// when the update's key is logged already (a concurrent delivery of it committed first): the
/// caller rolls back.
async fn log_update(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    reply: &CommandReply,
    logged: &LogEntry<'_>,
) -> Result<Option<u64>, OlympicsError> {
    let (kind, subject) = reply.kind_and_subject();
    let detail = serde_json::to_string(reply).expect("replies serialize");
    let seq: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "WITH next AS (UPDATE update_sequence SET last_seq = last_seq + 1 RETURNING last_seq) \
         INSERT INTO update_log (seq, kind, subject, entered_via, detail, idempotency_key, request) \
         SELECT last_seq, $1, $2, $3, $4::jsonb, $5, $6::jsonb FROM next RETURNING seq",
    )
    .bind(kind)
    .bind(subject)
    .bind(logged.entered_via)
    .bind(detail)
    .bind(logged.key)
    .bind(logged.request)
    .fetch_one(&mut **tx)
    .await;
    match seq {
        Ok(seq) => Ok(Some(seq as u64)),
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("update_log_idempotency_key_key") =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// One transaction per batch: take the next run of positions and record its winners, or, for
/// a batch counted already (its reply was lost, and the front-end sends it again), answer the
/// wins it had.
#[tracing::instrument(skip(pool, msg), fields(frontend = %msg.frontend, batch = msg.batch, requests = msg.tablets.len()))]
pub(super) async fn record_requests(
    pool: PgPool,
    msg: RecordRequests,
) -> Result<Vec<RaffleWin>, OlympicsError> {
    let mut tx = pool.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO raffle_reports (reporter, last_batch) VALUES ($1, $2) \
         ON CONFLICT (reporter) DO UPDATE SET last_batch = excluded.last_batch, reported_at = now() \
         WHERE raffle_reports.last_batch < excluded.last_batch",
    )
    .bind(&msg.reporter)
    .bind(msg.batch as i64)
    .execute(&mut *tx)
    .await?;
    if fresh.rows_affected() == 0 {
        let wins = counted_wins(&mut tx, &msg.reporter, msg.batch).await?;
        tracing::info!(reporter = %msg.reporter, batch = msg.batch, wins = wins.len(), "raffle batch already counted; not counted again, its wins told again");
        return Ok(wins);
    }
    let count = msg.tablets.len() as i64;
    let before: i64 = sqlx::query_scalar(
        "UPDATE raffle_counter SET requests = requests + $1 RETURNING requests - $1",
    )
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE raffle_reports SET first_position = $2, last_position = $3 WHERE reporter = $1",
    )
    .bind(&msg.reporter)
    .bind(before + 1)
    .bind(before + count)
    .execute(&mut *tx)
    .await?;
    let wins: Vec<RaffleWin> = msg
        .raffle
        .winners_among(before as u64, count as u64)
        .map(|position| RaffleWin {
            position,
            tablet: msg.tablets[(position - before as u64 - 1) as usize],
        })
        .collect();
    let mut labels: HashMap<i64, String> = HashMap::new();
    if !wins.is_empty() {
        let positions: Vec<i64> = wins.iter().map(|w| w.position as i64).collect();
        let tablets: Vec<Uuid> = wins.iter().map(|w| w.tablet).collect();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO raffle_winners (position, tablet_id, tablet_label, frontend, every) \
             SELECT w.position, w.tablet_id, t.label, $3, $4 \
             FROM unnest($1::bigint[], $2::uuid[]) AS w(position, tablet_id) \
             LEFT JOIN tablets t ON t.id = w.tablet_id \
             RETURNING position, coalesce(tablet_label, 'unlabelled')",
        )
        .bind(&positions)
        .bind(&tablets)
        .bind(&msg.frontend)
        .bind(msg.raffle.every() as i64)
        .fetch_all(&mut *tx)
        .await?;
        labels.extend(rows);
    }
    tx.commit().await?;
    for win in &wins {
        let label = labels
            .get(&(win.position as i64))
            .map_or("?", String::as_str);
        tracing::info!(
            position = win.position,
            tablet = %label,
            frontend = %msg.frontend,
            "raffle: request #{} (tablet {label}, served by {}) wins",
            win.position,
            msg.frontend
        );
    }
    Ok(wins)
}

/// The wins of `reporter`'s batch `batch`, counted already: its positions are recorded beside
/// the reporter's last batch (none for an older batch, which is never sent again).
async fn counted_wins(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    reporter: &str,
    batch: u64,
) -> Result<Vec<RaffleWin>, OlympicsError> {
    let rows: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT w.position, w.tablet_id FROM raffle_reports r \
         JOIN raffle_winners w ON w.position BETWEEN r.first_position AND r.last_position \
         WHERE r.reporter = $1 AND r.last_batch = $2 ORDER BY w.position",
    )
    .bind(reporter)
    .bind(batch as i64)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(position, tablet)| RaffleWin {
            position: position as u64,
            tablet,
        })
        .collect())
}

/// `Some((tally, None))` for an award under a key counted already; `None` when another delivery
/// of the same award committed first.
#[tracing::instrument(skip(pool, logged))]
async fn award_medal(
    pool: &PgPool,
    team: &str,
    medal: Medal,
    logged: &LogEntry<'_>,
) -> Result<Option<(MedalTally, Option<u64>)>, OlympicsError> {
    if !is_slug(team) {
        return Err(OlympicsError::UnknownTeam(team.to_owned()));
    }
    let idempotency_key = logged.key;
    let mut tx = pool.begin().await?;
    let team_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM teams WHERE slug = $1)")
            .bind(team)
            .fetch_one(&mut *tx)
            .await?;
    if !team_exists {
        return Err(OlympicsError::UnknownTeam(team.to_owned()));
    }
    // A concurrent award with the same key waits here on the unique index until the first commits.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO medal_awards (team, medal, idempotency_key) VALUES ($1, $2, $3) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(team)
    .bind(medal.as_str())
    .bind(idempotency_key)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        let (first_team, first_medal): (String, String) =
            sqlx::query_as("SELECT team, medal FROM medal_awards WHERE idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(&mut *tx)
                .await?;
        if first_team != team || first_medal != medal.as_str() {
            return Err(OlympicsError::IdempotencyConflict(
                idempotency_key.to_owned(),
            ));
        }
        tracing::info!(
            team,
            medal = medal.as_str(),
            idempotency_key,
            "medal award retried; counted once"
        );
        let tally = sqlx::query_as(SELECT_TALLY)
            .bind(team)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Some((tally, None)));
    }
    let tally: MedalTally = sqlx::query_as(
        "UPDATE medal_tallies SET \
            gold = gold + ($2 = 'gold')::int, \
            silver = silver + ($2 = 'silver')::int, \
            bronze = bronze + ($2 = 'bronze')::int, \
            version = version + 1, \
            updated_at = now() \
         WHERE team = $1 RETURNING team, gold, silver, bronze, version, updated_at",
    )
    .bind(team)
    .bind(medal.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let Some(seq) = log_update(&mut tx, &CommandReply::Medals(tally.clone()), logged).await? else {
        return Ok(None);
    };
    tx.commit().await?;
    Ok(Some((tally, Some(seq))))
}
