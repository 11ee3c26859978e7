//! The Database actor: the Olympic service's reads of PostgreSQL (scores, tallies, the update
//! log for front-ends that missed updates), its tablets and its raffle. The reporter's updates
//! go through the service's write log instead (`writes.rs`, [`crate::actors::write_log`]).
//!
//! Each handler runs its SQL in a future of its own, so queries proceed concurrently over the
//! pool while the actor's mailbox keeps flowing. A write is answered only after its transaction
//! has committed, so an acknowledged write survives any crash of ours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MailboxError, Message, ResponseFuture};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::actors::olympics::messages::{Query, QueryReply, SequencedUpdate};
use crate::actors::supervisor::ActorCell;
use crate::olympics::raffle::Raffle;
use crate::olympics::{Game, MedalTally, OlympicsError, ScoreBoard, Team, TeamScore, is_slug};

pub struct Database {
    pool: PgPool,
    cell: Arc<ActorCell>,
}

impl Database {
    pub fn new(pool: PgPool, cell: Arc<ActorCell>) -> Self {
        Self { pool, cell }
    }
}

impl Actor for Database {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = self.cell.name(), "database actor started");
    }
}

impl actix::Supervised for Database {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Its only state is the pool, which lives outside the actor and survives the crash.
        tracing::info!(actor = self.cell.name(), "database actor restarting");
    }
}

crate::supervised_actor_handlers!(Database);

crate::traced_handler!(Database, Query);
crate::traced_handler!(Database, LoadUpdates);
crate::traced_handler!(Database, RecordRequests);
crate::traced_handler!(Database, ReadRaffle);

impl Handler<Query> for Database {
    type Result = ResponseFuture<Result<QueryReply, OlympicsError>>;

    fn handle(&mut self, query: Query, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            Ok(match query {
                Query::Games => QueryReply::Games(list_games(&pool).await?),
                Query::Teams => QueryReply::Teams(list_teams(&pool).await?),
                Query::Score { game } => QueryReply::Score(score_board(&pool, &game).await?),
                Query::Medals { team } => QueryReply::Medals(medal_tally(&pool, &team).await?),
            })
        })
    }
}

/// Logged updates `first ..= last`, for a front-end that missed them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<SequencedUpdate>, OlympicsError>")]
pub struct LoadUpdates {
    pub first: u64,
    pub last: u64,
}

impl Handler<LoadUpdates> for Database {
    type Result = ResponseFuture<Result<Vec<SequencedUpdate>, OlympicsError>>;
    fn handle(&mut self, msg: LoadUpdates, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            Ok(sqlx::query_as(
                "SELECT seq, kind, subject, entered_via FROM update_log \
                 WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
            )
            .bind(msg.first as i64)
            .bind(msg.last as i64)
            .fetch_all(&pool)
            .await?)
        })
    }
}

/// A front-end's report of the tablet requests it served since its last report, in its order.
/// The batch takes the next run of raffle positions; the answer is the positions it won.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<RaffleWin>, OlympicsError>")]
pub struct RecordRequests {
    /// The reporting front-end in this process run; with `batch`, makes a retry count once.
    pub reporter: String,
    pub batch: u64,
    pub frontend: String,
    pub tablets: Vec<Uuid>,
    pub raffle: Raffle,
}

/// A winning request: its position in the global order and the tablet that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaffleWin {
    pub position: u64,
    pub tablet: Uuid,
}

impl Handler<RecordRequests> for Database {
    type Result = ResponseFuture<Result<Vec<RaffleWin>, OlympicsError>>;
    fn handle(&mut self, msg: RecordRequests, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(record_requests(pool, msg))
    }
}

/// The raffle so far, for `GET /olympics/raffle/winners`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RaffleStanding, OlympicsError>")]
pub struct ReadRaffle {
    pub tablet: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RaffleStanding {
    /// Tablet requests counted so far, across all front-ends.
    pub requests_counted: i64,
    pub winners: Vec<RaffleWinner>,
}

/// A winner as everyone may see it: the tablet by its label (its id is its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RaffleWinner {
    pub position: i64,
    pub tablet: String,
    pub frontend: String,
    pub every: i64,
    pub won_at: chrono::DateTime<chrono::Utc>,
}

impl Handler<ReadRaffle> for Database {
    type Result = ResponseFuture<Result<RaffleStanding, OlympicsError>>;
    fn handle(&mut self, msg: ReadRaffle, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let requests_counted = sqlx::query_scalar("SELECT requests FROM raffle_counter")
                .fetch_one(&mut *tx)
                .await?;
            let winners = sqlx::query_as(
                "SELECT position, coalesce(tablet_label, 'unlabelled') AS tablet, frontend, \
                 every, won_at FROM raffle_winners \
                 WHERE $1::uuid IS NULL OR tablet_id = $1 ORDER BY position",
            )
            .bind(msg.tablet)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(RaffleStanding {
                requests_counted,
                winners,
            })
        })
    }
}

/// Is PostgreSQL reachable? (`/readyz`)
#[derive(Debug, Message)]
#[rtype(result = "Result<(), OlympicsError>")]
pub struct DatabaseCheck;

impl Handler<DatabaseCheck> for Database {
    type Result = ResponseFuture<Result<(), OlympicsError>>;
    fn handle(&mut self, _: DatabaseCheck, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&pool).await?;
            Ok(())
        })
    }
}

/// Every registered tablet, its front-end and its label, for the dispatcher's (re)start.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(Uuid, String, String)>, OlympicsError>")]
pub struct LoadTablets;

impl Handler<LoadTablets> for Database {
    type Result = ResponseFuture<Result<Vec<(Uuid, String, String)>, OlympicsError>>;
    fn handle(&mut self, _: LoadTablets, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            Ok(
                sqlx::query_as(
                    "SELECT id, frontend, label FROM tablets ORDER BY registered_at, id",
                )
                .fetch_all(&pool)
                .await?,
            )
        })
    }
}

/// Saves a tablet's front-end (a new tablet, or one moved); answers its public label.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, OlympicsError>")]
pub struct SaveTablet {
    pub id: Uuid,
    pub frontend: String,
}

impl Handler<SaveTablet> for Database {
    type Result = ResponseFuture<Result<String, OlympicsError>>;
    fn handle(&mut self, msg: SaveTablet, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "INSERT INTO tablets (id, frontend) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET frontend = excluded.frontend RETURNING label",
            )
            .bind(msg.id)
            .bind(&msg.frontend)
            .fetch_one(&pool)
            .await?)
        })
    }
}

/// Saves new tablets and their front-ends in one statement; answers their labels.
#[derive(Debug, Message)]
#[rtype(result = "Result<HashMap<Uuid, String>, OlympicsError>")]
pub struct SaveTablets {
    pub rows: Vec<(Uuid, String)>,
}

impl Handler<SaveTablets> for Database {
    type Result = ResponseFuture<Result<HashMap<Uuid, String>, OlympicsError>>;
    fn handle(&mut self, msg: SaveTablets, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let (ids, frontends): (Vec<Uuid>, Vec<String>) = msg.rows.into_iter().unzip();
        Box::pin(async move {
            let labels: Vec<(Uuid, String)> = sqlx::query_as(
                "INSERT INTO tablets (id, frontend) \
                 SELECT * FROM unnest($1::uuid[], $2::text[]) RETURNING id, label",
            )
            .bind(&ids)
            .bind(&frontends)
            .fetch_all(&pool)
            .await?;
            Ok(labels.into_iter().collect())
        })
    }
}

/// Removes a tablet; answers whether it existed.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, OlympicsError>")]
pub struct DeleteTablet {
    pub id: Uuid,
}

impl Handler<DeleteTablet> for Database {
    type Result = ResponseFuture<Result<bool, OlympicsError>>;
    fn handle(&mut self, msg: DeleteTablet, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tablets WHERE id = $1")
                .bind(msg.id)
                .execute(&pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

#[tracing::instrument(skip(pool))]
async fn list_games(pool: &PgPool) -> Result<Vec<Game>, OlympicsError> {
    Ok(sqlx::query_as("SELECT slug, name FROM games ORDER BY slug")
        .fetch_all(pool)
        .await?)
}

#[tracing::instrument(skip(pool))]
async fn list_teams(pool: &PgPool) -> Result<Vec<Team>, OlympicsError> {
    Ok(sqlx::query_as("SELECT slug, name FROM teams ORDER BY slug")
        .fetch_all(pool)
        .await?)
}

#[derive(sqlx::FromRow)]
pub(super) struct ScoreRow {
    version: i64,
    team: String,
    points: i64,
    updated_at: chrono::DateTime<chrono::Utc>,
}

pub(super) fn board_from_rows(game: &str, rows: Vec<ScoreRow>) -> Option<ScoreBoard> {
    let updated_at = rows.iter().map(|r| r.updated_at).max()?;
    Some(ScoreBoard {
        game: game.to_owned(),
        version: rows[0].version,
        scores: rows
            .into_iter()
            .map(|r| TeamScore {
                team: r.team,
                points: r.points,
            })
            .collect(),
        updated_at,
    })
}

/// One statement, so the version and the points come from one snapshot.
pub(super) const SELECT_BOARD: &str = "SELECT g.version, s.team, s.points, s.updated_at \
     FROM games g JOIN scores s ON s.game = g.slug WHERE g.slug = $1 ORDER BY s.team";

#[tracing::instrument(skip(pool))]
async fn score_board(pool: &PgPool, game: &str) -> Result<ScoreBoard, OlympicsError> {
    if !is_slug(game) {
        return Err(OlympicsError::UnknownGame(game.to_owned()));
    }
    let rows: Vec<ScoreRow> = sqlx::query_as(SELECT_BOARD)
        .bind(game)
        .fetch_all(pool)
        .await?;
    board_from_rows(game, rows).ok_or_else(|| OlympicsError::UnknownGame(game.to_owned()))
}

pub(super) const SELECT_TALLY: &str =
    "SELECT team, gold, silver, bronze, version, updated_at FROM medal_tallies WHERE team = $1";

#[tracing::instrument(skip(pool))]
async fn medal_tally(pool: &PgPool, team: &str) -> Result<MedalTally, OlympicsError> {
    if !is_slug(team) {
        return Err(OlympicsError::UnknownTeam(team.to_owned()));
    }
    sqlx::query_as(SELECT_TALLY)
        .bind(team)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| OlympicsError::UnknownTeam(team.to_owned()))
}

/// One transaction per batch: take the next run of positions and record its winners, or, for
/// a batch counted already (its reply was lost, and the front-end sends it again), answer the
/// wins it had.
#[tracing::instrument(skip(pool, msg), fields(frontend = %msg.frontend, batch = msg.batch, requests = msg.tablets.len()))]
async fn record_requests(
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

/// How often callers retry the Database actor while it restarts.
const DATABASE_RETRIES: u32 = 20;
const DATABASE_RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Sends to the Database actor, retrying while it restarts, all within `timeout`. Retrying is
/// safe: reads are reads, the raffle's batches and the tablets' rows are written once whatever
/// the retries.
pub async fn ask_database<M, R>(
    db: Addr<Database>,
    msg: M,
    timeout: Duration,
) -> Result<R, OlympicsError>
where
    M: Message<Result = Result<R, OlympicsError>> + Clone + Send + 'static,
    R: Send + 'static,
    Database: actix::Handler<crate::actors::traced::Traced<M>>,
{
    let deadline = std::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let traced = crate::actors::traced::Traced::new(msg.clone());
        match db.send(traced).timeout(left).await {
            Ok(reply) => return reply,
            Err(MailboxError::Closed) if attempt < DATABASE_RETRIES => {
                attempt += 1;
                tracing::warn!(attempt, "database actor unavailable; retrying");
                actix_rt::time::sleep(DATABASE_RETRY_PAUSE).await;
            }
            Err(e) => {
                return Err(OlympicsError::Unavailable(format!("database actor: {e}")));
            }
        }
    }
}
