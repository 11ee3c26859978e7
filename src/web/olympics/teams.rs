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

/// `GET /olympics/teams`
pub async fn list(req: HttpRequest, tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    let served = tree.router.query(tablet_id(&req)?, Query::Teams).await?;
    Ok(read_response(&req, served))
}

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
