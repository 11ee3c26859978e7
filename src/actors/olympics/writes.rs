//! The reporter's updates as the shared write log applies them ([`crate::actors::write_log`]):
//! a group of them together in a constant number of statements ([`super::writes_batch`]); one
//! alone, or each of a group whose batch failed, in one statement of its own, checks first, so
//! a refused update changes nothing and the rest of its group goes on.
//!
//! - A score update bumps the game's version and upserts the points in one statement, which
//!   also returns the whole board (the other teams' rows as they were, the updated ones as they
//!   are): unknown game or team, no row, nothing changed.
//! - A medal award records the award and counts it in the tally in one statement: unknown team,
//!   no row, nothing changed. Its idempotency key is the log's (a retry is answered from the
//!   log); it is also kept in `medal_awards` beside the award.

use std::time::Duration;

use actix::{Addr, MailboxError};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;

use crate::actors::olympics::database::{ScoreRow, board_from_rows};
use crate::actors::olympics::messages::{Command, CommandReply, Write};
use crate::actors::write_log::{
    BatchResult, LogTable, SequencedWrite, Submit, WriteError, WriteLog,
};
use crate::olympics::{MedalTally, OlympicsError};

/// The Olympic service's log: the one global order of reporter updates, readable in psql.
pub const UPDATE_LOG: LogTable = LogTable { name: "update_log" };

/// The score update, in one statement: the version is bumped (and the game's row locked) only
/// when every team is known; the board comes back whole.
const SET_SCORES: &str = "\
WITH known AS (
    SELECT count(*) = cardinality($2::text[]) AS ok FROM teams WHERE slug = ANY($2::text[])
), bumped AS (
    UPDATE games SET version = version + 1
    WHERE slug = $1 AND (SELECT ok FROM known) RETURNING version
), set AS (
    INSERT INTO scores (game, team, points, updated_at)
    SELECT $1, team, points, now()
    FROM unnest($2::text[], $3::bigint[]) AS u(team, points)
    WHERE EXISTS (SELECT 1 FROM bumped)
    ON CONFLICT (game, team) DO UPDATE SET points = excluded.points, updated_at = excluded.updated_at
    RETURNING team, points, updated_at
)
SELECT bumped.version, board.team, board.points, board.updated_at
FROM bumped, (
    SELECT team, points, updated_at FROM set
    UNION ALL
    SELECT team, points, updated_at FROM scores WHERE game = $1 AND team <> ALL($2::text[])
) AS board
ORDER BY board.team";

/// The medal award, in one statement: recorded and counted only for a known team.
const AWARD_MEDAL: &str = "\
WITH awarded AS (
    INSERT INTO medal_awards (team, medal, idempotency_key)
    SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM teams WHERE slug = $1)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
UPDATE medal_tallies SET
    gold = gold + ($2 = 'gold')::int,
    silver = silver + ($2 = 'silver')::int,
    bronze = bronze + ($2 = 'bronze')::int,
    version = version + 1,
    updated_at = now()
WHERE team = $1 AND EXISTS (SELECT 1 FROM awarded)
RETURNING team, gold, silver, bronze, version, updated_at";

impl SequencedWrite for Write {
    type Applied = CommandReply;
    type Rejected = OlympicsError;

    fn apply<'c>(
        &'c self,
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, Result<Result<CommandReply, OlympicsError>, sqlx::Error>> {
        Box::pin(async move {
            // Names that cannot be slugs (NUL above all) never reach a statement.
            if let Err(refused) = self.command.check_names() {
                return Ok(Err(refused));
            }
            match &self.command {
                Command::SetScores { game, update, .. } => {
                    let teams: Vec<&str> = update.scores.keys().map(String::as_str).collect();
                    let points: Vec<i64> = update.scores.values().map(|&p| p as i64).collect();
                    let rows: Vec<ScoreRow> = sqlx::query_as(SET_SCORES)
                        .bind(game)
                        .bind(&teams)
                        .bind(&points)
                        .fetch_all(&mut *tx)
                        .await?;
                    if rows.is_empty() {
                        return Ok(Err(why_not_scored(tx, game, &teams).await?));
                    }
                    let board = board_from_rows(game, rows).expect("rows");
                    Ok(Ok(CommandReply::Score(board)))
                }
                Command::AwardMedal {
                    team,
                    medal,
                    idempotency_key,
                } => {
                    let tally: Option<MedalTally> = sqlx::query_as(AWARD_MEDAL)
                        .bind(team)
                        .bind(medal.as_str())
                        .bind(idempotency_key)
                        .fetch_optional(&mut *tx)
                        .await?;
                    Ok(match tally {
                        Some(tally) => Ok(CommandReply::Medals(tally)),
                        None => Err(why_not_awarded(tx, team, idempotency_key).await?),
                    })
                }
            }
        })
    }

    /// A group of updates in a constant number of statements ([`super::writes_batch`]); one
    /// update alone in its one statement above (the latency of a lone writer).
    fn apply_batch<'c>(
        writes: &'c [&'c Self],
        tx: &'c mut PgConnection,
    ) -> BoxFuture<'c, BatchResult<Self>> {
        Box::pin(async move {
            match writes {
                [one] => Ok(vec![one.apply(tx).await?]),
                _ => super::writes_batch::apply_batch(writes, tx).await,
            }
        })
    }

    fn describe(applied: &CommandReply) -> (&'static str, String) {
        let (kind, subject) = applied.kind_and_subject();
        (kind, subject.to_owned())
    }

    fn entered_via(&self) -> &str {
        &self.entered_via
    }

    /// Every update has one: the client's, or one the ingress gave it.
    fn idempotency_key(&self) -> Option<&str> {
        Some(self.command.idempotency_key())
    }

    fn fingerprint(&self) -> String {
        self.command.request_json()
    }
}

/// Why a score update changed nothing: the game, or one of the teams, is unknown.
async fn why_not_scored(
    tx: &mut PgConnection,
    game: &str,
    teams: &[&str],
) -> Result<OlympicsError, sqlx::Error> {
    let known: Vec<String> = sqlx::query_scalar("SELECT slug FROM teams WHERE slug = ANY($1)")
        .bind(teams)
        .fetch_all(&mut *tx)
        .await?;
    let game_known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM games WHERE slug = $1)")
            .bind(game)
            .fetch_one(&mut *tx)
            .await?;
    Ok(if !game_known {
        OlympicsError::UnknownGame(game.to_owned())
    } else {
        let unknown = teams.iter().find(|t| !known.iter().any(|k| k == *t));
        OlympicsError::UnknownTeam(unknown.map_or_else(String::new, |t| (*t).to_owned()))
    })
}

/// Why a medal award changed nothing: the team is unknown, or the key was used before the
/// log kept keys (an award older than the write log).
async fn why_not_awarded(
    tx: &mut PgConnection,
    team: &str,
    idempotency_key: &str,
) -> Result<OlympicsError, sqlx::Error> {
    let team_known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM teams WHERE slug = $1)")
            .bind(team)
            .fetch_one(&mut *tx)
            .await?;
    Ok(if team_known {
        OlympicsError::IdempotencyConflict(idempotency_key.to_owned())
    } else {
        OlympicsError::UnknownTeam(team.to_owned())
    })
}

/// The Olympic service's write log actor.
pub type UpdateLog = WriteLog<Write>;

/// How often a keyed update is sent again while the log restarts, and the pause between.
const LOG_RETRIES: u32 = 20;
const LOG_RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Sends an update through the log and waits for its commit. An update is sent again after the
/// log's mailbox failed (it may have been applied before the crash: its key makes the retry
/// count once).
pub async fn submit_update(
    log: &Addr<UpdateLog>,
    write: Write,
    timeout: Duration,
) -> Result<CommandReply, OlympicsError> {
    let mut attempt = 0;
    loop {
        let traced = crate::actors::traced::Traced::new(Submit(write.clone()));
        match log.send(traced).timeout(timeout).await {
            Ok(answer) => {
                return answer
                    .map(|sequenced| sequenced.applied)
                    .map_err(into_olympics);
            }
            Err(MailboxError::Closed)
                if write.idempotency_key().is_some() && attempt < LOG_RETRIES =>
            {
                attempt += 1;
                tracing::info!(
                    attempt,
                    "the update log is restarting; sending a keyed update again"
                );
                actix_rt::time::sleep(LOG_RETRY_PAUSE).await;
            }
            Err(e) => {
                return Err(OlympicsError::Unavailable(format!("update log: {e}")));
            }
        }
    }
}

fn into_olympics(e: WriteError<OlympicsError>) -> OlympicsError {
    match e {
        WriteError::Rejected(e) => e,
        WriteError::IdempotencyConflict(key) => OlympicsError::IdempotencyConflict(key),
        WriteError::Overloaded(waiting) => {
            OlympicsError::Unavailable(format!("{waiting} updates are waiting; retry shortly"))
        }
        WriteError::Storage => OlympicsError::Storage("the update could not be stored".into()),
    }
}
