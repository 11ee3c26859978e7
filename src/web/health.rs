//! `/healthz` (the process answers) and `/readyz` (PostgreSQL reachable, every actor up).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::Tree;
use crate::actors::olympics::database::DatabaseCheck;
use crate::web::error::ApiError;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

/// `GET /readyz`
pub async fn ready(tree: web::Data<Tree>) -> Result<HttpResponse, ApiError> {
    match tree
        .database
        .send(DatabaseCheck)
        .timeout(PING_TIMEOUT)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ApiError::NotReady(format!("database: {e}"))),
        Err(e) => return Err(ApiError::NotReady(format!("database actor: {e}"))),
    }
    if !tree.registry.all_alive() {
        return Err(ApiError::NotReady("an actor is restarting".into()));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "actors": tree.registry.statuses() })))
}
