//! `/admin/actors`: see every supervised actor, and crash one on purpose. Off unless an admin
//! token is configured.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::actors::lifecycle::{Crash, CrashMode};
use crate::web::auth::Admin;
use crate::web::error::ApiError;
use crate::web::json::ValidJson;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFrontend {
    #[schema(minimum = 1, format = "uint64")]
    id: u64,
    /// Start its clock this far off (ms), to watch synchronisation.
    clock_skew_ms: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/admin/frontends",
    tag = "admin",
    request_body = NewFrontend,
    security(("admin" = [])),
    responses(
        (status = 201, description = "A new front-end joined the group", body = crate::web::openapi::schemas::Joined),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /admin/frontends` `{"id": 45000, "clock_skew_ms": 900}` → 201: a new front-end joins
/// the group (`clock_skew_ms` optional).
pub async fn add_frontend(
    _admin: Admin,
    tree: web::Data<Tree>,
    ValidJson(new): ValidJson<NewFrontend>,
) -> Result<HttpResponse, ApiError> {
    let name = tree.router.add_frontend(new.id, new.clock_skew_ms).await?;
    Ok(HttpResponse::Created().json(json!({ "id": new.id, "name": name })))
}

#[utoipa::path(
    delete,
    path = "/admin/frontends/{id}",
    tag = "admin",
    params(("id" = u64, Path, format = "uint64", description = "The front-end's id")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "The front-end crashed and is not restarted"),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `DELETE /admin/frontends/{id}` → 204: the front-end crashes and is not restarted.
pub async fn kill_frontend(
    _admin: Admin,
    tree: web::Data<Tree>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    tree.router.kill_frontend(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/admin/actors",
    tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, description = "Every supervised actor", body = Vec<crate::actors::supervisor::ActorStatus>),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
    ),
)]
/// `GET /admin/actors`
pub async fn list(_admin: Admin, tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(tree.registry.statuses())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CrashParams {
    /// `panic` (default), `stop`, or `after-commit` (a write log: after its next commit).
    #[serde(default = "default_mode")]
    mode: CrashMode,
    /// Keep the actor down this long before its restart (to watch failover).
    #[param(maximum = 60_000)]
    #[serde(default)]
    stay_down_ms: u64,
}

fn default_mode() -> CrashMode {
    CrashMode::Panic
}

/// The longest an actor may be kept down on request.
const MAX_STAY_DOWN: Duration = Duration::from_secs(60);

#[utoipa::path(
    post,
    path = "/admin/actors/{name}/crash",
    tag = "admin",
    params(("name" = String, Path, description = "The actor's name (see `GET /admin/actors`)"), CrashParams),
    security(("admin" = [])),
    responses(
        (status = 202, description = "The crash is ordered", body = crate::web::openapi::schemas::CrashOrdered),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
    ),
)]
/// `POST /admin/actors/{name}/crash?mode=panic|stop|after-commit&stay_down_ms=0` → 202
pub async fn crash(
    _admin: Admin,
    tree: web::Data<Tree>,
    name: web::Path<String>,
    params: web::Query<CrashParams>,
) -> Result<HttpResponse, ApiError> {
    let stay_down = Duration::from_millis(params.stay_down_ms);
    if stay_down > MAX_STAY_DOWN {
        return Err(ApiError::InvalidField {
            field: "stay_down_ms".into(),
            message: format!("at most {}", MAX_STAY_DOWN.as_millis()),
        });
    }
    tree.registry.crash(
        &name,
        Crash {
            mode: params.mode,
            stay_down,
        },
    )?;
    Ok(HttpResponse::Accepted().json(
        json!({ "actor": name.as_str(), "crash": format!("{:?}", params.mode).to_lowercase() }),
    ))
}
