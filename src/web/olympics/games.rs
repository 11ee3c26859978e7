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

#[utoipa::path(
    get,
    path = "/olympics/games",
    tag = "olympics",
    params(
        ("X-Tablet-Id" = Option<uuid::Uuid>, Header, description = "A registered tablet's id (from `POST /olympics/tablets`): its reads take part in the raffle"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),
    ),
    responses(
        (status = 200, description = "Every game", body = Vec<crate::olympics::Game>, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The front-end that answered"),
            ("X-Cache" = String, description = "`hit` or `miss` in that front-end's cache"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
            ("X-Raffle-Won" = String, description = "Raffle positions this tablet won since its previous reply, comma-separated (only when it won)"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(
            ("ETag" = String), ("X-Served-By" = String), ("X-Cache" = String),
        )),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /olympics/games`
pub async fn list(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let served = tree.router.query(tablet_id(&req)?, Query::Games).await?;
    Ok(read_response(&req, served))
}

#[utoipa::path(
    get,
    path = "/olympics/games/{game}/score",
    tag = "olympics",
    params(
        ("game" = String, Path, pattern = "^[a-z0-9-]{1,64}$", description = "A game slug"),
        ("X-Tablet-Id" = Option<uuid::Uuid>, Header, description = "A registered tablet's id (from `POST /olympics/tablets`): its reads take part in the raffle"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),
    ),
    responses(
        (status = 200, description = "The game's score board", body = crate::olympics::ScoreBoard, headers(
            ("ETag" = String, description = "Strong tag of the body; send it back in `If-None-Match`"),
            ("X-Served-By" = String, description = "The front-end that answered"),
            ("X-Cache" = String, description = "`hit` or `miss` in that front-end's cache"),
            ("Cache-Control" = String, description = "`no-cache`: keep, but revalidate"),
            ("X-Raffle-Won" = String, description = "Raffle positions this tablet won since its previous reply, comma-separated (only when it won)"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(
            ("ETag" = String), ("X-Served-By" = String), ("X-Cache" = String),
        )),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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

#[utoipa::path(
    put,
    path = "/olympics/games/{game}/score",
    tag = "olympics",
    params(
        ("game" = String, Path, pattern = "^[a-z0-9-]{1,64}$", description = "A game slug"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[\t -~]{1,200}$", description = "1 to 200 visible ASCII characters: a retry under the same key counts once"),
    ),
    request_body = crate::web::openapi::schemas::ScoreUpdateBody,
    security(("reporter" = [])),
    responses(
        (status = 200, description = "The game's score board after the update", body = crate::olympics::ScoreBoard, headers(("X-Served-By" = String, description = "The front-end that sequenced the write"))),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
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
