//! The Database actor: the only part of the Olympic service that talks to PostgreSQL.
//!
//! Each handler runs its SQL in a future of its own, so queries proceed concurrently over the
//! pool while the actor's mailbox keeps flowing. A write is answered only after its transaction
//! has committed, so an acknowledged write survives any crash of ours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MailboxError, Message, Recipient, ResponseFuture};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::actors::olympics::messages::{
    Changed, Command, CommandReply, Query, QueryReply, SequencedUpdate, Write,
};
use crate::actors::supervisor::ActorCell;
use crate::olympics::raffle::Raffle;
use crate::olympics::{
    Game, Medal, MedalTally, OlympicsError, ScoreBoard, Team, TeamScore, is_slug,
};

pub struct Database {
    pool: PgPool,
    cell: Arc<ActorCell>,
    /// Told of each committed write (front-end caches, the publisher). Kept across restarts.
    watchers: Watchers,
}

impl Database {
    pub fn new(pool: PgPool, cell: Arc<ActorCell>) -> Self {
        Self {
            pool,
            cell,
            watchers: Watchers::default(),
        }
    }
}

/// Who is told of committed writes, by name. A front-end started again under its name replaces
/// its old entry, and entries whose actor is gone are dropped, so the list holds at most the
/// live front-ends and the publisher. Shared with the writes under way, which read it when
/// they commit: a watcher added meanwhile hears of them too.
#[derive(Clone, Default)]
struct Watchers(Arc<std::sync::Mutex<Vec<(String, Recipient<Changed>)>>>);

impl Watchers {
    fn watch(&self, name: String, recipient: Recipient<Changed>) {
        let mut list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.retain(|(watcher, r)| *watcher != name && r.connected());
        list.push((name, recipient));
    }

    fn tell(&self, changed: &Changed) {
        let list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, watcher) in list.iter() {
            watcher.do_send(changed.clone());
        }
    }

    fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// Register a watcher (by name: `frontend-3`, `publisher`) to be told of every committed write.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub name: String,
    pub recipient: Recipient<Changed>,
}

impl Watch {
    pub fn new(name: impl Into<String>, recipient: Recipient<Changed>) -> Self {
        Self {
            name: name.into(),
            recipient,
        }
    }
}

impl Handler<Watch> for Database {
    type Result = ();
    fn handle(&mut self, msg: Watch, _ctx: &mut Self::Context) {
        self.watchers.watch(msg.name, msg.recipient);
        tracing::debug!(
            actor = self.cell.name(),
            watchers = self.watchers.len(),
            "database actor watched"
        );
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

impl Handler<Write> for Database {
    type Result = ResponseFuture<Result<CommandReply, OlympicsError>>;

    fn handle(&mut self, write: Write, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let watchers = self.watchers.clone();
        let Write {
            command,
            entered_via,
        } = write;
        Box::pin(async move {
            let (reply, seq) = apply_once(&pool, command, &entered_via).await?;
            // Queued in every front-end's mailbox before the writer hears OK: any read sent after
            // the acknowledgement is handled after the invalidation (mailboxes are FIFO).
            watchers.tell(&Changed {
                seq,
                reply: reply.clone(),
                entered_via: entered_via.clone(),
            });
            Ok(reply)
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

#[derive(Debug, Clone, Serialize)]
pub struct RaffleStanding {
    /// Tablet requests counted so far, across all front-ends.
    pub requests_counted: i64,
    pub winners: Vec<RaffleWinner>,
}

/// A winner as everyone may see it: the tablet by its label (its id is its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

/// Every registered tablet and its front-end, for the dispatcher's (re)start.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(Uuid, String)>, OlympicsError>")]
pub struct LoadTablets;

impl Handler<LoadTablets> for Database {
    type Result = ResponseFuture<Result<Vec<(Uuid, String)>, OlympicsError>>;
    fn handle(&mut self, _: LoadTablets, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            Ok(
                sqlx::query_as("SELECT id, frontend FROM tablets ORDER BY registered_at, id")
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

/// Applies `command` once: a delivery whose idempotency key the log holds already (a retry, or
/// the ingress sending it again) changes nothing and is answered the state the first left.
/// `seq` is `None` for those.
async fn apply_once(
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
struct ScoreRow {
    version: i64,
    team: String,
    points: i64,
    updated_at: chrono::DateTime<chrono::Utc>,
}

fn board_from_rows(game: &str, rows: Vec<ScoreRow>) -> Option<ScoreBoard> {
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
const SELECT_BOARD: &str = "SELECT g.version, s.team, s.points, s.updated_at \
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

const SELECT_TALLY: &str =
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

/// How often callers retry the Database actor while it restarts.
const DATABASE_RETRIES: u32 = 20;
const DATABASE_RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Sends to the Database actor, retrying while it restarts, all within `timeout`. Retrying is
/// safe: reads are reads, and every write carries an idempotency key it is applied once under.
pub async fn ask_database<M, R>(
    db: Addr<Database>,
    msg: M,
    timeout: Duration,
) -> Result<R, OlympicsError>
where
    M: Message<Result = Result<R, OlympicsError>> + Clone + Send + 'static,
    R: Send + 'static,
    Database: actix::Handler<M>,
{
    let deadline = std::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match db.send(msg.clone()).timeout(left).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher that ignores what it is told.
    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Changed> for Sink {
        type Result = ();
        fn handle(&mut self, _: Changed, _ctx: &mut Self::Context) {}
    }

    #[actix_web::test]
    async fn a_front_end_started_again_replaces_its_watcher_entry() {
        let watchers = Watchers::default();
        watchers.watch("publisher".into(), Sink.start().recipient());
        // Front-end 3 is started, killed and started again, a hundred times.
        for _ in 0..100 {
            watchers.watch("frontend-3".into(), Sink.start().recipient());
        }
        assert_eq!(watchers.len(), 2);
        watchers.watch("frontend-4".into(), Sink.start().recipient());
        assert_eq!(watchers.len(), 3);
    }
}
