//! Messages shared by several actors.

use std::sync::{Arc, OnceLock};

use actix::Message;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::olympics::push_log::Topic;
use crate::olympics::{
    Game, Medal, MedalTally, OlympicsError, ScoreBoard, ScoreUpdate, Team, is_slug,
};

/// A read of Olympic results, as the database actor answers it. Also the front-end caches' key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Message)]
#[rtype(result = "Result<QueryReply, OlympicsError>")]
pub enum Query {
    Games,
    Teams,
    Score { game: String },
    Medals { team: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum QueryReply {
    Games(Vec<Game>),
    Teams(Vec<Team>),
    Score(ScoreBoard),
    Medals(MedalTally),
}

/// A tablet's read, sent to a front-end: answered from its cache or through the database actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Answer, OlympicsError>")]
pub struct Read {
    pub query: Query,
    /// The registered tablet asking, if any: its requests take part in the raffle.
    pub tablet: Option<Uuid>,
}

/// A front-end's answer to a [`Read`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// Shared with the cache: a hit copies a pointer, and renders nothing again.
    pub reply: Arc<SharedReply>,
    /// `X-Cache: hit` or `miss`.
    pub from_cache: bool,
    /// Raffle positions this tablet won since its last reply (the raffle is drawn after the
    /// reply that won, off the request's path, so the winner hears of it on its next one).
    pub raffle_wins: Vec<u64>,
}

/// A reply as front-end caches hold it, with its JSON rendering made once, on first use.
#[derive(Debug)]
pub struct SharedReply {
    pub reply: QueryReply,
    rendering: OnceLock<Rendering>,
}

/// A reply's JSON and a fingerprint of it (the ingress makes its ETag from it).
#[derive(Debug)]
pub struct Rendering {
    pub json: bytes::Bytes,
    pub fingerprint: u64,
}

impl SharedReply {
    pub fn new(reply: QueryReply) -> Arc<Self> {
        Arc::new(Self {
            reply,
            rendering: OnceLock::new(),
        })
    }

    pub fn rendering(&self) -> &Rendering {
        self.rendering.get_or_init(|| {
            use std::hash::{Hash, Hasher};
            let json = serde_json::to_vec(&self.reply).expect("replies serialize");
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            json.hash(&mut hasher);
            Rendering {
                fingerprint: hasher.finish(),
                json: json.into(),
            }
        })
    }
}

/// A committed update and the state it left, numbered in the one global order. The write log
/// sends it to every subscriber (the front-ends, the publisher) after the commit and before the
/// writer is answered, so no front-end serves the old value after the acknowledgement.
pub type Changed = crate::actors::write_log::Sequenced<CommandReply>;

/// A reporter's update as the write log takes it: the command and where it entered.
#[derive(Debug, Clone)]
pub struct Write {
    pub command: Command,
    pub entered_via: String,
}

/// An update as front-ends apply it in the global order (and as `update_log` records it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SequencedUpdate {
    pub seq: i64,
    /// `score` or `medal`.
    pub kind: String,
    /// The game or team it changed.
    pub subject: String,
    pub entered_via: String,
}

impl SequencedUpdate {
    /// The cache entry the update makes stale.
    pub fn cache_key(&self) -> Query {
        if self.kind == "score" {
            Query::Score {
                game: self.subject.clone(),
            }
        } else {
            Query::Medals {
                team: self.subject.clone(),
            }
        }
    }
}

/// A reporter's update. Committed to PostgreSQL before it is answered. `idempotency_key` is
/// its identity (the client's, or one made per request): every delivery of it, however often
/// the ingress or a front-end sends it again, is applied once.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CommandReply, OlympicsError>")]
pub enum Command {
    SetScores {
        game: String,
        update: ScoreUpdate,
        idempotency_key: String,
    },
    AwardMedal {
        team: String,
        medal: Medal,
        idempotency_key: String,
    },
}

/// A key for a write whose client gave none.
fn fresh_idempotency_key() -> String {
    format!("obelix-{}", uuid::Uuid::new_v4())
}

/// Also the `detail` of its entry in `update_log`, from which a retried update is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandReply {
    Score(ScoreBoard),
    Medals(MedalTally),
}

impl Command {
    /// A score update, under the client's key or a fresh one.
    pub fn set_scores(game: String, update: ScoreUpdate, idempotency_key: Option<String>) -> Self {
        Command::SetScores {
            game,
            update,
            idempotency_key: idempotency_key.unwrap_or_else(fresh_idempotency_key),
        }
    }

    /// A medal award, under the client's key or a fresh one.
    pub fn award_medal(team: String, medal: Medal, idempotency_key: Option<String>) -> Self {
        Command::AwardMedal {
            team,
            medal,
            idempotency_key: idempotency_key.unwrap_or_else(fresh_idempotency_key),
        }
    }

    pub fn idempotency_key(&self) -> &str {
        match self {
            Command::SetScores {
                idempotency_key, ..
            }
            | Command::AwardMedal {
                idempotency_key, ..
            } => idempotency_key,
        }
    }

    /// Every game and team it names is a slug, or it names none that exists: checked before
    /// any statement (PostgreSQL text and jsonb cannot even hold a NUL).
    pub fn check_names(&self) -> Result<(), OlympicsError> {
        match self {
            Command::SetScores { game, update, .. } => {
                if !is_slug(game) {
                    return Err(OlympicsError::UnknownGame(game.clone()));
                }
                match update.scores.keys().find(|team| !is_slug(team)) {
                    Some(team) => Err(OlympicsError::UnknownTeam(team.clone())),
                    None => Ok(()),
                }
            }
            Command::AwardMedal { team, .. } if !is_slug(team) => {
                Err(OlympicsError::UnknownTeam(team.clone()))
            }
            Command::AwardMedal { .. } => Ok(()),
        }
    }

    /// The update itself, as JSON (`update_log.request`): a key reused for another update is
    /// told from a retry by it.
    pub fn request_json(&self) -> String {
        let request = match self {
            Command::SetScores { game, update, .. } => {
                serde_json::json!({ "game": game, "scores": update.scores })
            }
            Command::AwardMedal { team, medal, .. } => {
                serde_json::json!({ "team": team, "medal": medal.as_str() })
            }
        };
        request.to_string()
    }
}

impl CommandReply {
    /// The cached read this write's state replaces.
    pub fn cache_key(&self) -> Query {
        match self {
            CommandReply::Score(board) => Query::Score {
                game: board.game.clone(),
            },
            CommandReply::Medals(tally) => Query::Medals {
                team: tally.team.clone(),
            },
        }
    }

    /// `update_log`'s kind and subject: `("score", game)` or `("medal", team)`.
    pub fn kind_and_subject(&self) -> (&'static str, &str) {
        match self {
            CommandReply::Score(board) => ("score", &board.game),
            CommandReply::Medals(tally) => ("medal", &tally.team),
        }
    }

    /// What tablets follow to hear of it, and the state's version.
    pub fn topic(&self) -> (Topic, i64) {
        match self {
            CommandReply::Score(board) => (Topic::Game(board.game.clone()), board.version),
            CommandReply::Medals(tally) => (Topic::Team(tally.team.clone()), tally.version),
        }
    }
}
