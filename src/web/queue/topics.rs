//! `/queue/topics`: create a topic of partitions (the write manager spreads them over brokers),
//! list topics.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::actors::Tree;
use crate::queue::retention::Retention;
use crate::web::error::ApiError;
use crate::web::queue::access::{AnyQueueToken, QueueJson, TopicAdmin};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    name: String,
    /// 1 to `queue.max_partitions` (256 by default).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 256)]
    partitions: i32,
    /// Delete messages older than this (ms); absent keeps them.
    #[schema(minimum = 1, maximum = 315_360_000_000_u64)]
    retention_ms: Option<u64>,
    /// Keep at most this many messages per partition; absent keeps them all.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    retention_messages: Option<u64>,
}

fn one() -> i32 {
    1
}

fn positive(field: &str, value: Option<u64>) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v > 0 && v <= i64::MAX as u64 => Ok(Some(v as i64)),
        Some(_) => Err(ApiError::InvalidField {
            field: field.to_owned(),
            message: "must be positive".into(),
        }),
    }
}

#[utoipa::path(
    post,
    path = "/queue/topics",
    tag = "queue",
    request_body = NewTopic,
    security(("queue_admin" = [])),
    responses(
        (status = 201, description = "Created, its partitions spread over the brokers", body = crate::queue::TopicInfo),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 415, response = crate::web::openapi::schemas::UnsupportedMediaType),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /queue/topics` `{"name":"logs","partitions":3,"retention_ms":60000}` → 201, or 409.
pub async fn create(
    _admin: TopicAdmin,
    tree: web::Data<Tree>,
    QueueJson(new): QueueJson<NewTopic>,
) -> Result<HttpResponse, ApiError> {
    let retention = Retention {
        max_age_ms: positive("retention_ms", new.retention_ms)?,
        max_messages: positive("retention_messages", new.retention_messages)?,
    };
    let topic = tree
        .queue
        .create_topic(new.name, new.partitions, retention)
        .await?;
    Ok(HttpResponse::Created().json(topic))
}

#[utoipa::path(
    get,
    path = "/queue/topics",
    tag = "queue",
    security(("queue_admin" = []), ("queue_producer" = []), ("queue_consumer" = [])),
    responses(
        (status = 200, description = "Every topic with its partitions' brokers", body = Vec<crate::queue::TopicInfo>),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
    ),
)]
/// `GET /queue/topics` → every topic with its partitions' brokers.
pub async fn list(_token: AnyQueueToken, tree: web::Data<Tree>) -> HttpResponse {
    HttpResponse::Ok().json(tree.queue.list_topics())
}
