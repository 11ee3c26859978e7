//! `/olympics/games`: the list of games, and each game's score (read by tablets, set by the
//! reporter).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::Tree;
use crate::actors::olympics::messages::{Command, Query};
use crate::olympics::ScoreUpdate;
use crate::web::auth::Reporter;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;
use crate::web::olympics::common::{idempotency_key, read_response, tablet_id, write_response};

/// `GET /olympics/games`
pub async fn list(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let served = tree.router.query(tablet_id(&req)?, Query::Games).await?;
    Ok(read_response(&req, served))
}

/// `GET /olympics/games/{game}/score`
pub async fn score(
    req: HttpRequest,
    tree: web::Data<Tree>,
    game: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::Score {
        game: game.into_inner(),
    };
    let served = tree.router.query(tablet_id(&req)?, query).await?;
    Ok(read_response(&req, served))
}

/// `PUT /olympics/games/{game}/score` with `{"scores": {"gauls": 3, "romans": 1}}` (reporter
/// only). A retry with the same `Idempotency-Key` header counts once.
pub async fn set_score(
    _reporter: Reporter,
    req: HttpRequest,
    tree: web::Data<Tree>,
    game: web::Path<String>,
    ValidJson(update): ValidJson<ScoreUpdate>,
) -> Result<HttpResponse, ApiError> {
    update.validate()?;
    let command = Command::set_scores(game.into_inner(), update, idempotency_key(&req)?);
    Ok(write_response(tree.router.command(command).await?))
}
