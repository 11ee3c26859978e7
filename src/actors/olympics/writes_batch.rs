//! A group of reporter updates applied together: a constant number of statements whatever the
//! group's size, instead of one per update ([`crate::actors::write_log::SequencedWrite::apply_batch`]).
//!
//! 1. Read once: the current rows of the games and teams the group names (and which teams and
//!    award keys exist), in at most three statements.
//! 2. Apply the updates in memory, in order ([`GroupState`], no SQL): each one checked first and
//!    refused alone (unknown game or team), each applied one bumping its game's or team's
//!    version by one and answered the board or tally as it stands after it.
//! 3. Write the final state back: games' versions, the scores changed, the tallies and the new
//!    `medal_awards` rows, in one statement.
//!
//! What it answers is exactly what the one-statement-per-update path (`writes.rs`) answers for
//! the same updates one after another.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::actors::olympics::messages::{Command, CommandReply, Write};
use crate::olympics::{Medal, MedalTally, OlympicsError, ScoreBoard, TeamScore};

/// The teams the group names or that hold a score in a game it names, in the database's order
/// of slugs (a board lists its teams so); the award keys already used; the transaction's time
/// (`now()`, what the one-by-one path stamps).
const READ_NAMES: &str = "\
SELECT now(),
    ARRAY(SELECT slug FROM teams
          WHERE slug = ANY($1::text[]) OR slug IN (SELECT team FROM scores WHERE game = ANY($2::text[]))
          ORDER BY slug),
    ARRAY(SELECT idempotency_key FROM medal_awards WHERE idempotency_key = ANY($3::text[]))";

/// The games named and their scores. The games' rows are locked as the one-by-one path's
/// `UPDATE games` locks them: the log is their only writer and its head's compare-and-set
/// already refuses a second log writer, but the lock makes a second writer (another process on
/// the same data, or someone in psql) wait here instead of computing from rows it is about to
/// overwrite. It costs a few row locks per group.
const READ_BOARDS: &str = "\
SELECT g.slug, g.version, s.team, s.points, s.updated_at
FROM games g LEFT JOIN scores s ON s.game = g.slug
WHERE g.slug = ANY($1::text[])
FOR UPDATE OF g";

/// The tallies of the teams named, locked for the same reason as the games.
const READ_TALLIES: &str = "\
SELECT team, gold, silver, bronze, version, updated_at FROM medal_tallies
WHERE team = ANY($1::text[])
FOR UPDATE";

/// The group's final state, in one statement (each part is a no-op on empty arrays). Every
/// (game, team) and every team comes once: a command may not change a row twice.
const WRITE_STATE: &str = "\
WITH versions AS (
    UPDATE games g SET version = u.version
    FROM unnest($1::text[], $2::bigint[]) AS u(slug, version)
    WHERE g.slug = u.slug
), points AS (
    INSERT INTO scores (game, team, points, updated_at)
    SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
    ON CONFLICT (game, team) DO UPDATE SET points = excluded.points, updated_at = excluded.updated_at
), tallies AS (
    UPDATE medal_tallies t SET gold = u.gold, silver = u.silver, bronze = u.bronze,
        version = u.version, updated_at = u.updated_at
    FROM unnest($7::text[], $8::int[], $9::int[], $10::int[], $11::bigint[], $12::timestamptz[])
        AS u(team, gold, silver, bronze, version, updated_at)
    WHERE t.team = u.team
)
INSERT INTO medal_awards (team, medal, idempotency_key)
SELECT team, medal, key
FROM unnest($13::text[], $14::text[], $15::text[]) WITH ORDINALITY AS u(team, medal, key, n)
ORDER BY n";

/// Applies `writes` (no idempotency key twice) in the group's transaction.
pub(super) async fn apply_batch(
    writes: &[&Write],
    tx: &mut PgConnection,
) -> Result<Vec<Result<CommandReply, OlympicsError>>, sqlx::Error> {
    // 1. What the group names (names that cannot be slugs never reach a statement).
    let mut games: BTreeSet<&str> = BTreeSet::new();
    let mut teams: BTreeSet<&str> = BTreeSet::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut awarded: BTreeSet<&str> = BTreeSet::new();
    for write in writes {
        if write.command.check_names().is_err() {
            continue;
        }
        match &write.command {
            Command::SetScores { game, update, .. } => {
                games.insert(game);
                teams.extend(update.scores.keys().map(String::as_str));
            }
            Command::AwardMedal {
                team,
                idempotency_key,
                ..
            } => {
                teams.insert(team);
                awarded.insert(team);
                keys.push(idempotency_key);
            }
        }
    }
    let games: Vec<&str> = games.into_iter().collect();
    let teams: Vec<&str> = teams.into_iter().collect();
    let (now, known_teams, used_keys): (DateTime<Utc>, Vec<String>, Vec<String>) =
        sqlx::query_as(READ_NAMES)
            .bind(&teams)
            .bind(&games)
            .bind(&keys)
            .fetch_one(&mut *tx)
            .await?;
    let mut state = GroupState::new(now, known_teams, used_keys);
    if !games.is_empty() {
        let rows: Vec<BoardRow> = sqlx::query_as(READ_BOARDS)
            .bind(&games)
            .fetch_all(&mut *tx)
            .await?;
        state.load_boards(rows);
    }
    if !awarded.is_empty() {
        let awarded: Vec<&str> = awarded.into_iter().collect();
        let tallies: Vec<MedalTally> = sqlx::query_as(READ_TALLIES)
            .bind(&awarded)
            .fetch_all(&mut *tx)
            .await?;
        state.load_tallies(tallies);
    }

    // 2. In memory, in order.
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        results.push(state.apply(&write.command)?);
    }

    // 3. The final state, once.
    let out = state.into_writes();
    sqlx::query(WRITE_STATE)
        .bind(&out.game_slugs)
        .bind(&out.game_versions)
        .bind(&out.score_games)
        .bind(&out.score_teams)
        .bind(&out.score_points)
        .bind(&out.score_times)
        .bind(&out.tally_teams)
        .bind(&out.tally_gold)
        .bind(&out.tally_silver)
        .bind(&out.tally_bronze)
        .bind(&out.tally_versions)
        .bind(&out.tally_times)
        .bind(&out.award_teams)
        .bind(&out.award_medals)
        .bind(&out.award_keys)
        .execute(&mut *tx)
        .await?;
    Ok(results)
}

/// A row of [`READ_BOARDS`]: a game, and one of its scores (none for a game without any).
type BoardRow = (
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<DateTime<Utc>>,
);

/// A game as the group leaves it.
#[derive(Debug, Clone)]
struct GameState {
    version: i64,
    /// Team → (points, updated_at).
    scores: HashMap<String, (i64, DateTime<Utc>)>,
    changed: bool,
}

/// The rows a group touches, as its updates leave them, one after another.
#[derive(Debug)]
struct GroupState {
    now: DateTime<Utc>,
    /// Known teams, by their place in the database's order of slugs.
    team_rank: HashMap<String, usize>,
    used_keys: HashSet<String>,
    games: HashMap<String, GameState>,
    tallies: HashMap<String, (MedalTally, bool)>,
    /// (game, team) whose score changed.
    changed_scores: BTreeSet<(String, String)>,
    /// Awards to record, in order: team, medal, key.
    awards: Vec<(String, &'static str, String)>,
}

/// The columns of [`WRITE_STATE`].
#[derive(Debug, Default)]
struct StateWrites {
    game_slugs: Vec<String>,
    game_versions: Vec<i64>,
    score_games: Vec<String>,
    score_teams: Vec<String>,
    score_points: Vec<i64>,
    score_times: Vec<DateTime<Utc>>,
    tally_teams: Vec<String>,
    tally_gold: Vec<i32>,
    tally_silver: Vec<i32>,
    tally_bronze: Vec<i32>,
    tally_versions: Vec<i64>,
    tally_times: Vec<DateTime<Utc>>,
    award_teams: Vec<String>,
    award_medals: Vec<&'static str>,
    award_keys: Vec<String>,
}

impl GroupState {
    fn new(now: DateTime<Utc>, known_teams: Vec<String>, used_keys: Vec<String>) -> Self {
        Self {
            now,
            team_rank: known_teams
                .into_iter()
                .enumerate()
                .map(|(rank, slug)| (slug, rank))
                .collect(),
            used_keys: used_keys.into_iter().collect(),
            games: HashMap::new(),
            tallies: HashMap::new(),
            changed_scores: BTreeSet::new(),
            awards: Vec::new(),
        }
    }

    fn load_boards(&mut self, rows: Vec<BoardRow>) {
        for (game, version, team, points, updated_at) in rows {
            let state = self.games.entry(game).or_insert_with(|| GameState {
                version,
                scores: HashMap::new(),
                changed: false,
            });
            if let (Some(team), Some(points), Some(updated_at)) = (team, points, updated_at) {
                state.scores.insert(team, (points, updated_at));
            }
        }
    }

    fn load_tallies(&mut self, tallies: Vec<MedalTally>) {
        for tally in tallies {
            self.tallies.insert(tally.team.clone(), (tally, false));
        }
    }

    /// One update, as the one-by-one path would apply it here. An error: the state cannot be
    /// written (a count past its column); the log finds the update to blame one by one.
    fn apply(
        &mut self,
        command: &Command,
    ) -> Result<Result<CommandReply, OlympicsError>, sqlx::Error> {
        if let Err(refused) = command.check_names() {
            return Ok(Err(refused));
        }
        match command {
            Command::SetScores { game, update, .. } => {
                let Some(state) = self.games.get_mut(game.as_str()) else {
                    return Ok(Err(OlympicsError::UnknownGame(game.clone())));
                };
                if let Some(unknown) = update
                    .scores
                    .keys()
                    .find(|t| !self.team_rank.contains_key(*t))
                {
                    return Ok(Err(OlympicsError::UnknownTeam(unknown.clone())));
                }
                if state.scores.is_empty() && update.scores.is_empty() {
                    // No board to answer: the one-by-one path finds no row and blames no team.
                    return Ok(Err(OlympicsError::UnknownTeam(String::new())));
                }
                for (team, &points) in &update.scores {
                    state
                        .scores
                        .insert(team.clone(), (i64::from(points), self.now));
                    self.changed_scores.insert((game.clone(), team.clone()));
                }
                state.version += 1;
                state.changed = true;
                Ok(Ok(CommandReply::Score(board(game, state, &self.team_rank))))
            }
            Command::AwardMedal {
                team,
                medal,
                idempotency_key,
            } => {
                if !self.team_rank.contains_key(team) {
                    return Ok(Err(OlympicsError::UnknownTeam(team.clone())));
                }
                // A key kept in `medal_awards` by an award older than the write log.
                if self.used_keys.contains(idempotency_key) {
                    return Ok(Err(OlympicsError::IdempotencyConflict(
                        idempotency_key.clone(),
                    )));
                }
                let Some((tally, changed)) = self.tallies.get_mut(team) else {
                    // Every team has its tally row (migrations); without one, no award.
                    return Ok(Err(OlympicsError::UnknownTeam(team.clone())));
                };
                let count = match medal {
                    Medal::Gold => &mut tally.gold,
                    Medal::Silver => &mut tally.silver,
                    Medal::Bronze => &mut tally.bronze,
                };
                *count = count.checked_add(1).ok_or_else(|| {
                    sqlx::Error::Protocol(format!("the {} count of {team} is full", medal.as_str()))
                })?;
                tally.version += 1;
                tally.updated_at = self.now;
                *changed = true;
                self.used_keys.insert(idempotency_key.clone());
                self.awards
                    .push((team.clone(), medal.as_str(), idempotency_key.clone()));
                Ok(Ok(CommandReply::Medals(tally.clone())))
            }
        }
    }

    fn into_writes(self) -> StateWrites {
        let mut out = StateWrites::default();
        for (slug, game) in &self.games {
            if game.changed {
                out.game_slugs.push(slug.clone());
                out.game_versions.push(game.version);
            }
        }
        for (game, team) in self.changed_scores {
            let (points, updated_at) = self.games[&game].scores[&team];
            out.score_games.push(game);
            out.score_teams.push(team);
            out.score_points.push(points);
            out.score_times.push(updated_at);
        }
        for (team, (tally, changed)) in self.tallies {
            if changed {
                out.tally_teams.push(team);
                out.tally_gold.push(tally.gold);
                out.tally_silver.push(tally.silver);
                out.tally_bronze.push(tally.bronze);
                out.tally_versions.push(tally.version);
                out.tally_times.push(tally.updated_at);
            }
        }
        for (team, medal, key) in self.awards {
            out.award_teams.push(team);
            out.award_medals.push(medal);
            out.award_keys.push(key);
        }
        out
    }
}

/// A game's board as it stands: its teams in the database's order, updated when any score was.
fn board(game: &str, state: &GameState, team_rank: &HashMap<String, usize>) -> ScoreBoard {
    let mut scores: Vec<(&String, &(i64, DateTime<Utc>))> = state.scores.iter().collect();
    scores.sort_by_key(|(team, _)| team_rank.get(*team).copied().unwrap_or(usize::MAX));
    let updated_at = scores
        .iter()
        .map(|(_, (_, at))| *at)
        .max()
        .expect("a board has a score");
    ScoreBoard {
        game: game.to_owned(),
        version: state.version,
        scores: scores
            .into_iter()
            .map(|(team, (points, _))| TeamScore {
                team: team.clone(),
                points: *points,
            })
            .collect(),
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::olympics::ScoreUpdate;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn state() -> GroupState {
        let mut state = GroupState::new(
            at(100),
            vec!["gauls".into(), "romans".into()],
            vec!["old-key".into()],
        );
        state.load_boards(vec![
            (
                "curling".into(),
                7,
                Some("romans".into()),
                Some(2),
                Some(at(10)),
            ),
            (
                "curling".into(),
                7,
                Some("gauls".into()),
                Some(1),
                Some(at(20)),
            ),
        ]);
        state.load_tallies(vec![MedalTally {
            team: "gauls".into(),
            gold: 1,
            silver: 0,
            bronze: 0,
            version: 3,
            updated_at: at(5),
        }]);
        state
    }

    fn score(game: &str, scores: &[(&str, u32)]) -> Command {
        Command::set_scores(
            game.into(),
            ScoreUpdate {
                scores: scores.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect(),
            },
            None,
        )
    }

    fn board_of(reply: Result<CommandReply, OlympicsError>) -> ScoreBoard {
        match reply {
            Ok(CommandReply::Score(board)) => board,
            other => panic!("not a board: {other:?}"),
        }
    }

    #[test]
    fn updates_of_one_game_bump_its_version_once_each_and_see_the_previous_ones() {
        let mut s = state();
        let first = board_of(s.apply(&score("curling", &[("gauls", 5)])).unwrap());
        let second = board_of(s.apply(&score("curling", &[("romans", 9)])).unwrap());
        assert_eq!(first.version, 8);
        assert_eq!(second.version, 9);
        let points = |b: &ScoreBoard| {
            b.scores
                .iter()
                .map(|t| (t.team.clone(), t.points))
                .collect::<Vec<_>>()
        };
        assert_eq!(points(&first), [("gauls".into(), 5), ("romans".into(), 2)]);
        assert_eq!(points(&second), [("gauls".into(), 5), ("romans".into(), 9)]);
        assert_eq!(second.updated_at, at(100));
        let out = s.into_writes();
        assert_eq!(
            (out.game_slugs, out.game_versions),
            (vec!["curling".to_owned()], vec![9])
        );
        assert_eq!(
            out.score_teams,
            ["gauls", "romans"],
            "each changed score written once"
        );
        assert_eq!(out.score_points, [5, 9]);
    }

    #[test]
    fn an_unknown_game_or_team_is_refused_alone_and_changes_nothing() {
        let mut s = state();
        assert!(matches!(
            s.apply(&score("chess", &[("gauls", 1)])).unwrap(),
            Err(OlympicsError::UnknownGame(g)) if g == "chess"
        ));
        assert!(matches!(
            s.apply(&score("curling", &[("gauls", 1), ("huns", 1)])).unwrap(),
            Err(OlympicsError::UnknownTeam(t)) if t == "huns"
        ));
        let award = |team: &str, key: &str| {
            Command::award_medal(team.into(), Medal::Gold, Some(key.into()))
        };
        assert!(matches!(
            s.apply(&award("huns", "k1")).unwrap(),
            Err(OlympicsError::UnknownTeam(_))
        ));
        assert!(matches!(
            s.apply(&award("gauls", "old-key")).unwrap(),
            Err(OlympicsError::IdempotencyConflict(_))
        ));
        let out = s.into_writes();
        assert!(out.game_slugs.is_empty() && out.score_teams.is_empty());
        assert!(out.tally_teams.is_empty() && out.award_keys.is_empty());
    }

    #[test]
    fn awards_count_in_order_and_are_recorded_once_each() {
        let mut s = state();
        let award =
            |key: &str, medal| Command::award_medal("gauls".into(), medal, Some(key.into()));
        let tallies: Vec<MedalTally> = [("a", Medal::Gold), ("b", Medal::Bronze)]
            .into_iter()
            .map(|(key, medal)| match s.apply(&award(key, medal)).unwrap() {
                Ok(CommandReply::Medals(tally)) => tally,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            (tallies[0].gold, tallies[0].bronze, tallies[0].version),
            (2, 0, 4)
        );
        assert_eq!(
            (tallies[1].gold, tallies[1].bronze, tallies[1].version),
            (2, 1, 5)
        );
        let out = s.into_writes();
        assert_eq!(out.tally_versions, [5]);
        assert_eq!(out.award_keys, ["a", "b"]);
        assert_eq!(out.award_medals, ["gold", "bronze"]);
    }
}
