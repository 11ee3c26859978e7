//! `GET /olympics/raffle/winners`: the raffle's winners so far (seed 000), optionally of one
//! tablet (`?tablet=<id>`), and how many tablet requests have been counted.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::actors::Tree;
use crate::actors::olympics::database::{ReadRaffle, ask_database};
use crate::web::error::ApiError;
use crate::web::olympics::common::tablet_id_in_path;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WinnersParams {
    /// Only this tablet's wins (its id).
    #[param(value_type = uuid::Uuid, required = false)]
    tablet: Option<String>,
}

#[utoipa::path(
    get,
    path = "/olympics/raffle/winners",
    tag = "olympics",
    params(WinnersParams),
    responses(
        (status = 200, description = "The raffle's winners so far", body = crate::actors::olympics::database::RaffleStanding),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /olympics/raffle/winners[?tablet=<id>]`
pub async fn winners(
    tree: web::Data<Tree>,
    params: web::Query<WinnersParams>,
) -> Result<HttpResponse, ApiError> {
    let tablet = params
        .tablet
        .as_deref()
        .map(tablet_id_in_path)
        .transpose()?;
    let standing = ask_database(tree.database.clone(), ReadRaffle { tablet }, tree.timeout).await?;
    Ok(HttpResponse::Ok().json(standing))
}
