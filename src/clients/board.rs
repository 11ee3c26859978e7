//! What a terminal tablet shows: the followed games' scores and teams' medals by name, when each
//! last changed, and a mark on what the latest refresh changed. Pure: fed JSON states, asked for
//! text; `obelix tablet` decides when to draw it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Local, Utc};
use serde_json::Value;

/// One followed game or team as last seen.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    version: i64,
    /// `Gauls 3 – Romans 1`, or `2 gold  0 silver  1 bronze`.
    text: String,
    updated_at: Option<DateTime<Utc>>,
    /// Changed by the latest refresh.
    fresh: bool,
}

/// The followed games and teams, keyed by slug, shown by name.
#[derive(Debug, Default)]
pub struct Board {
    /// Slug → display name, for games and teams alike.
    names: HashMap<String, String>,
    games: BTreeMap<String, Row>,
    teams: BTreeMap<String, Row>,
}

impl Board {
    /// A board that shows `names` (slug → name) in place of slugs; unknown slugs show as given.
    pub fn new(names: HashMap<String, String>) -> Board {
        Board {
            names,
            ..Board::default()
        }
    }

    fn name<'a>(&'a self, slug: &'a str) -> &'a str {
        self.names.get(slug).map_or(slug, String::as_str)
    }

    /// Starts a refresh: nothing is marked fresh until [`Board::apply`] changes it.
    pub fn begin_refresh(&mut self) {
        for row in self.games.values_mut().chain(self.teams.values_mut()) {
            row.fresh = false;
        }
    }

    /// Takes a game's score (`{"game", "version", "scores", "updated_at"}`) or a team's medals
    /// (`{"team", "gold", "silver", "bronze", "version", "updated_at"}`). True when it changed
    /// what the board shows; an older or equal version changes nothing.
    pub fn apply(&mut self, state: &Value) -> bool {
        let version = state["version"].as_i64().unwrap_or(0);
        let updated_at = state["updated_at"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok());
        let (slug, text, rows) = if let Some(scores) = state["scores"].as_array() {
            let Some(game) = state["game"].as_str() else {
                return false;
            };
            (game.to_owned(), self.score_line(scores), &mut self.games)
        } else if let Some(team) = state["team"].as_str() {
            let text = format!(
                "{} gold  {} silver  {} bronze",
                state["gold"], state["silver"], state["bronze"]
            );
            (team.to_owned(), text, &mut self.teams)
        } else {
            return false;
        };
        if rows.get(&slug).is_some_and(|row| row.version >= version) {
            return false;
        }
        rows.insert(
            slug,
            Row {
                version,
                text,
                updated_at,
                fresh: true,
            },
        );
        true
    }

    fn score_line(&self, scores: &[Value]) -> String {
        let parts: Vec<String> = scores
            .iter()
            .map(|s| {
                let team = s["team"].as_str().unwrap_or("?");
                format!("{} {}", self.name(team), s["points"])
            })
            .collect();
        if parts.is_empty() {
            "no score yet".to_owned()
        } else {
            parts.join(" – ")
        }
    }

    /// The board as lines: games, then medals; `*` marks what the latest refresh changed.
    pub fn render(&self, now: DateTime<Utc>) -> Vec<String> {
        let width = self
            .games
            .keys()
            .chain(self.teams.keys())
            .map(|slug| self.name(slug).chars().count())
            .max()
            .unwrap_or(0);
        let mut lines = Vec::new();
        for (title, rows) in [("Games", &self.games), ("Medals", &self.teams)] {
            if rows.is_empty() {
                continue;
            }
            lines.push(title.to_owned());
            for (slug, row) in rows {
                let mark = if row.fresh { '*' } else { ' ' };
                let when = row
                    .updated_at
                    .map(|t| format!("  {}", when(t, now)))
                    .unwrap_or_default();
                lines.push(format!(
                    "{mark} {:<width$}  {}{when}",
                    self.name(slug),
                    row.text
                ));
            }
        }
        lines
    }
}

/// `14:03:22, 5 s ago` (local time), `14:03:22, 3 min ago`, or a date for older ones.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Local);
    let seconds = (now - t).num_seconds().max(0);
    let ago = match seconds {
        0..=1 => "just now".to_owned(),
        2..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => return local.format("%Y-%m-%d %H:%M").to_string(),
    };
    format!("{}, {ago}", local.format("%H:%M:%S"))
}

/// One readable line for a state: `Curling: Gauls 3 – Romans 1` or
/// `Gauls: 2 gold, 0 silver, 1 bronze` (names from `names`, slugs when unknown).
pub fn describe(state: &Value, names: &HashMap<String, String>) -> String {
    let name = |slug: &str| names.get(slug).cloned().unwrap_or_else(|| slug.to_owned());
    if let Some(scores) = state["scores"].as_array() {
        let parts: Vec<String> = scores
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    name(s["team"].as_str().unwrap_or("?")),
                    s["points"]
                )
            })
            .collect();
        format!(
            "{}: {}",
            name(state["game"].as_str().unwrap_or("?")),
            parts.join(" – ")
        )
    } else {
        format!(
            "{}: {} gold, {} silver, {} bronze",
            name(state["team"].as_str().unwrap_or("?")),
            state["gold"],
            state["silver"],
            state["bronze"]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> HashMap<String, String> {
        [
            ("curling", "Curling"),
            ("gauls", "Gauls"),
            ("romans", "Romans"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    }

    fn score(version: i64, gauls: i64, romans: i64) -> Value {
        json!({"game": "curling", "version": version, "updated_at": "2026-12-06T10:00:00Z",
               "scores": [{"team": "gauls", "points": gauls}, {"team": "romans", "points": romans}]})
    }

    #[test]
    fn a_score_reads_with_names_and_a_dash() {
        assert_eq!(
            describe(&score(1, 3, 1), &names()),
            "Curling: Gauls 3 – Romans 1"
        );
        let medals = json!({"team": "gauls", "gold": 2, "silver": 0, "bronze": 1});
        assert_eq!(
            describe(&medals, &names()),
            "Gauls: 2 gold, 0 silver, 1 bronze"
        );
    }

    #[test]
    fn only_a_newer_version_changes_the_board_and_it_is_marked() {
        let mut board = Board::new(names());
        let now = "2026-12-06T10:00:05Z".parse().unwrap();
        assert!(board.apply(&score(2, 3, 1)));
        let lines = board.render(now);
        assert_eq!(lines[0], "Games");
        assert!(
            lines[1].starts_with("* Curling  Gauls 3 – Romans 1"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("5 s ago"), "{lines:?}");
        board.begin_refresh();
        assert!(!board.apply(&score(2, 3, 1)), "same version: no change");
        assert!(!board.apply(&score(1, 0, 0)), "older version: no change");
        assert!(
            board.render(now)[1].starts_with("  Curling"),
            "no longer marked"
        );
        assert!(board.apply(&score(3, 4, 1)));
        assert!(board.render(now)[1].starts_with("* Curling  Gauls 4"));
    }

    #[test]
    fn times_read_as_people_say_them() {
        let t: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let at = |s: i64| when(t, t + chrono::Duration::seconds(s));
        assert!(at(0).ends_with("just now"));
        assert!(at(3).ends_with(", 3 s ago"));
        assert!(at(180).ends_with(", 3 min ago"));
        assert!(at(7200).ends_with(", 2 h ago"));
        assert!(!at(200_000).contains("ago"));
    }
}
