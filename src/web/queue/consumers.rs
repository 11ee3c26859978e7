//! `/queue/consumers`: register a consumer (alone or in a group), dequeue (long poll), size,
//! commit offsets, leave.

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::actors::queue::router::DequeueParams;
use crate::web::error::ApiError;
use crate::web::queue::access::{Consuming, QueueJson};
use crate::web::queue::producers::registrations;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsumer {
    topics: Option<Vec<String>>,
    topic: Option<String>,
    partition: Option<i32>,
    /// Consumers of one group share the partitions and the offsets.
    group: Option<String>,
}

#[utoipa::path(
    post,
    path = "/queue/consumers",
    tag = "queue",
    request_body = crate::web::openapi::schemas::ConsumerRegistration,
    security(("queue_consumer" = [])),
    responses(
        (status = 201, description = "Registered", body = crate::web::openapi::schemas::ConsumerRegistered),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 415, response = crate::web::openapi::schemas::UnsupportedMediaType),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /queue/consumers` → 201 `{"consumer_id": 1}`
pub async fn register(
    _consumer: Consuming,
    tree: web::Data<Tree>,
    QueueJson(new): QueueJson<NewConsumer>,
) -> Result<HttpResponse, ApiError> {
    let wanted = registrations(new.topics, new.topic, new.partition)?;
    let id = tree.queue.register_consumer(wanted, new.group).await?;
    Ok(HttpResponse::Created().json(json!({ "consumer_id": id })))
}

#[utoipa::path(
    delete,
    path = "/queue/consumers/{id}",
    tag = "queue",
    params(("id" = i64, Path, description = "The consumer's id")),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "Left; a group member's partitions go to the others"),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `DELETE /queue/consumers/{id}` → 204; a group member's partitions go to the others.
pub async fn leave(
    _consumer: Consuming,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    tree.queue.leave(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DequeueQuery {
    #[param(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    topic: String,
    /// At most this many messages (default 1; at most `queue.max_batch`, 1000 by default).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default = "one")]
    max: usize,
    /// Wait this long for messages when there are none (default 0: answer at once; at most
    /// `queue.max_wait_ms`).
    #[param(maximum = 1000)]
    #[serde(default)]
    wait_ms: u64,
    /// `false`: fetch without moving the offset; commit with `POST …/offsets`.
    #[serde(default = "yes")]
    commit: bool,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

#[utoipa::path(
    get,
    path = "/queue/consumers/{id}/messages",
    tag = "queue",
    params(("id" = i64, Path, description = "The consumer's id"), DequeueQuery),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The next messages (none when `wait_ms` passed without any)", body = crate::web::openapi::schemas::Dequeued),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 403, response = crate::web::openapi::schemas::Forbidden),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /queue/consumers/{id}/messages?topic=logs&max=100&wait_ms=1000&commit=true` →
/// `{"messages":[{"partition":0,"offset":0,"message":"…","produced_at":"…"}]}`
pub async fn dequeue(
    _consumer: Consuming,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
    query: web::Query<DequeueQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let params = DequeueParams {
        max: query.max,
        wait: Duration::from_millis(query.wait_ms),
        advance: query.commit,
    };
    let messages = tree
        .queue
        .dequeue(id.into_inner(), &query.topic, params)
        .await?;
    // Each message's JSON is rendered once and shared by every reader that gets it.
    let len: usize = messages.iter().map(|m| m.json().len() + 1).sum();
    let mut body = BytesMut::with_capacity(len + 16);
    body.extend_from_slice(b"{\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b",");
        }
        body.extend_from_slice(m.json());
    }
    body.extend_from_slice(b"]}");
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body.freeze()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SizeQuery {
    #[param(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    topic: String,
}

#[utoipa::path(
    get,
    path = "/queue/consumers/{id}/size",
    tag = "queue",
    params(("id" = i64, Path, description = "The consumer's id"), SizeQuery),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Messages left for the consumer", body = crate::web::openapi::schemas::QueueSize),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 403, response = crate::web::openapi::schemas::Forbidden),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /queue/consumers/{id}/size?topic=logs` → `{"size": 12}`: messages left for it.
pub async fn size(
    _consumer: Consuming,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
    query: web::Query<SizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = tree.queue.size(id.into_inner(), &query.topic).await?;
    Ok(HttpResponse::Ok().json(json!({ "size": size })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    topic: String,
    #[schema(minimum = 0)]
    partition: i32,
    /// The next offset to read (one past the last message processed).
    #[schema(minimum = 0)]
    offset: i64,
}

#[utoipa::path(
    post,
    path = "/queue/consumers/{id}/offsets",
    tag = "queue",
    params(("id" = i64, Path, description = "The consumer's id")),
    request_body = Commit,
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Committed", body = crate::web::openapi::schemas::Committed),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 401, response = crate::web::openapi::schemas::Unauthorized),
        (status = 408, response = crate::web::openapi::schemas::RequestTimeout),
        (status = 413, response = crate::web::openapi::schemas::PayloadTooLarge),
        (status = 415, response = crate::web::openapi::schemas::UnsupportedMediaType),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 403, response = crate::web::openapi::schemas::Forbidden),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 409, response = crate::web::openapi::schemas::Conflict),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `POST /queue/consumers/{id}/offsets` `{"topic":"logs","partition":0,"offset":42}` → 200
/// once committed.
pub async fn commit(
    _consumer: Consuming,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
    QueueJson(body): QueueJson<Commit>,
) -> Result<HttpResponse, ApiError> {
    tree.queue
        .commit(id.into_inner(), &body.topic, body.partition, body.offset)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "topic": body.topic, "partition": body.partition, "offset": body.offset })))
}
