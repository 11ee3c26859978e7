//! `/olympics/teams`: the list of teams, and each team's medal tally (read by tablets,
//! incremented by the reporter).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::Tree;
use crate::actors::olympics::messages::{Command, Query};
use crate::olympics::MedalAward;
use crate::web::auth::Reporter;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;
use crate::web::olympics::common::{idempotency_key, read_response, tablet_id, write_response};

#[utoipa::path(
    get,
    path = "/olympics/teams",
    tag = "olympics",
    params(
        ("X-Tablet-Id" = Option<uuid::Uuid>, Header, description = "A registered tablet's id (from `POST /olympics/tablets`): its reads take part in the raffle"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),
    ),
    responses(
        (status = 200, description = "Every team", body = Vec<crate::olympics::Team>, headers(
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
/// `GET /olympics/teams`
pub async fn list(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let served = tree.router.query(tablet_id(&req)?, Query::Teams).await?;
    Ok(read_response(&req, served))
}

#[utoipa::path(
    get,
    path = "/olympics/teams/{team}/medals",
    tag = "olympics",
    params(
        ("team" = String, Path, pattern = "^[a-z0-9-]{1,64}$", description = "A team slug"),
        ("X-Tablet-Id" = Option<uuid::Uuid>, Header, description = "A registered tablet's id (from `POST /olympics/tablets`): its reads take part in the raffle"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier reply: `304` while it is current"),
    ),
    responses(
        (status = 200, description = "The team's medal tally", body = crate::olympics::MedalTally, headers(
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
/// `GET /olympics/teams/{team}/medals`
pub async fn medals(
    req: HttpRequest,
    tree: web::Data<Tree>,
    team: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::Medals {
        team: team.into_inner(),
    };
    let served = tree.router.query(tablet_id(&req)?, query).await?;
    Ok(read_response(&req, served))
}

#[utoipa::path(
    post,
    path = "/olympics/teams/{team}/medals",
    tag = "olympics",
    params(
        ("team" = String, Path, pattern = "^[a-z0-9-]{1,64}$", description = "A team slug"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[\t -~]{1,200}$", description = "1 to 200 visible ASCII characters: a retry under the same key counts once"),
    ),
    request_body = crate::olympics::MedalAward,
    security(("reporter" = [])),
    responses(
        (status = 200, description = "The team's tally after the award", body = crate::olympics::MedalTally, headers(("X-Served-By" = String, description = "The front-end that sequenced the write"))),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /olympics/teams/{team}/medals` with `{"medal": "gold"}` (reporter only). A retry with
/// the same `Idempotency-Key` header counts once.
pub async fn award(
    _reporter: Reporter,
    req: HttpRequest,
    tree: web::Data<Tree>,
    team: web::Path<String>,
    ValidJson(award): ValidJson<MedalAward>,
) -> Result<HttpResponse, ApiError> {
    let command = Command::award_medal(team.into_inner(), award.medal, idempotency_key(&req)?);
    Ok(write_response(tree.router.command(command).await?))
}
