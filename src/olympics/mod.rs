//! The Olympic results domain (seeds 000, 001): games, teams, scores, medal tallies, tablets.
//! Plain data and validation, free of actix and HTTP.
//!
//! - [`push_log`]: the replayable log of updates pushed to tablets.
//! - [`raffle`]: every Nth request of the global order wins (seed 000).
//!
//! The service's actors are in `actors::olympics`, its routes in `web::olympics`.

pub mod push_log;
pub mod raffle;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can go wrong with an Olympic request. Mapped to HTTP in `web::error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OlympicsError {
    #[error("unknown game `{0}`")]
    UnknownGame(String),
    #[error("unknown team `{0}`")]
    UnknownTeam(String),
    #[error("unknown tablet `{0}`")]
    UnknownTablet(Uuid),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("idempotency key `{0}` was already used for a different update")]
    IdempotencyConflict(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unknown front-end {0}")]
    UnknownFrontend(u64),
    #[error("no front-end server could take the request: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(String),
    /// A bound on memory (see config.toml) is reached; the client should retry later.
    #[error("too many {what} (at most {limit}); retry later")]
    Full { what: &'static str, limit: usize },
}

impl OlympicsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for OlympicsError {
    fn from(e: sqlx::Error) -> Self {
        OlympicsError::Storage(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Medal {
    Gold,
    Silver,
    Bronze,
}

impl Medal {
    pub fn as_str(self) -> &'static str {
        match self {
            Medal::Gold => "gold",
            Medal::Silver => "silver",
            Medal::Bronze => "bronze",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Game {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TeamScore {
    pub team: String,
    pub points: i64,
}

/// The score of every team in one game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreBoard {
    pub game: String,
    /// Bumped by every score update of this game: later versions are later states.
    pub version: i64,
    pub scores: Vec<TeamScore>,
    /// When any score of this game last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MedalTally {
    pub team: String,
    pub gold: i32,
    pub silver: i32,
    pub bronze: i32,
    /// Bumped by every medal awarded to this team.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// Body of `PUT /olympics/games/{game}/score`: the new points of some or all teams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreUpdate {
    pub scores: BTreeMap<String, u32>,
}

impl ScoreUpdate {
    pub fn validate(&self) -> Result<(), OlympicsError> {
        if self.scores.is_empty() {
            return Err(OlympicsError::invalid(
                "scores",
                "name at least one team and its points",
            ));
        }
        if let Some(bad) = self.scores.keys().find(|team| !is_slug(team)) {
            return Err(OlympicsError::invalid(
                "scores",
                format!("{bad:?} is not a team (lowercase letters, digits and dashes)"),
            ));
        }
        Ok(())
    }
}

/// The longest game or team slug accepted.
pub const MAX_SLUG_LEN: usize = 64;

/// Is `s` a possible game or team slug (`^[a-z0-9-]+$`, as the tables' checks say)? Anything
/// else names no game or team, and never reaches a statement (PostgreSQL text cannot even hold
/// a NUL).
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Body of `POST /olympics/teams/{team}/medals`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MedalAward {
    pub medal: Medal,
}

/// The longest idempotency key accepted; longer ones are a client mistake.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Where the dispatcher placed a tablet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TabletAssignment {
    /// Secret: whoever holds it acts as the tablet.
    pub id: Uuid,
    pub frontend: String,
    /// Public: how lists (the raffle's winners) name the tablet.
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_score_update_is_invalid() {
        let update = ScoreUpdate {
            scores: BTreeMap::new(),
        };
        assert_eq!(
            update.validate(),
            Err(OlympicsError::invalid(
                "scores",
                "name at least one team and its points"
            ))
        );
    }

    #[test]
    fn medals_parse_from_lowercase_names_only() {
        let award: MedalAward = serde_json::from_str(r#"{"medal":"silver"}"#).unwrap();
        assert_eq!(award.medal, Medal::Silver);
        assert!(serde_json::from_str::<MedalAward>(r#"{"medal":"platinum"}"#).is_err());
        assert!(serde_json::from_str::<MedalAward>(r#"{"medal":"Gold"}"#).is_err());
    }

    #[test]
    fn slugs_are_lowercase_letters_digits_and_dashes() {
        assert!(is_slug("boar-hunting") && is_slug("team2"));
        for bad in [
            "",
            "Curling",
            "cur ling",
            "cur\0ling",
            "\0",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad:?}");
        }
        let update = ScoreUpdate {
            scores: BTreeMap::from([("gauls\0".to_owned(), 1)]),
        };
        assert!(
            matches!(update.validate(), Err(OlympicsError::Invalid { field, .. }) if field == "scores")
        );
    }

    #[test]
    fn negative_points_do_not_parse() {
        assert!(serde_json::from_str::<ScoreUpdate>(r#"{"scores":{"gauls":-1}}"#).is_err());
    }
}
