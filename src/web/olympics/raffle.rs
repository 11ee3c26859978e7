//! `GET /olympics/raffle/winners`: the raffle's winners so far (seed 000), optionally of one
//! tablet (`?tablet=<id>`), and how many tablet requests have been counted.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::actors::Tree;
use crate::actors::olympics::database::{ReadRaffle, ask_database};
use crate::web::error::ApiError;
use crate::web::olympics::common::tablet_id_in_path;

#[derive(Debug, Deserialize)]
pub struct WinnersParams {
    tablet: Option<String>,
}

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
