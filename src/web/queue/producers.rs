//! `/queue/producers`: register a producer for topics (or one partition), and enqueue.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::actors::queue::router::EnqueueTarget;
use crate::web::error::ApiError;
use crate::web::queue::access::{Producing, QueueJson};

/// `{"topics":["logs","audit"]}` or `{"topic":"logs","partition":1}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProducer {
    topics: Option<Vec<String>>,
    topic: Option<String>,
    partition: Option<i32>,
}

/// The `(topic, partition)` pairs of a registration body, shared with consumers.
pub fn registrations(
    topics: Option<Vec<String>>,
    topic: Option<String>,
    partition: Option<i32>,
) -> Result<Vec<(String, Option<i32>)>, ApiError> {
    let invalid = |field: &str, message: &str| ApiError::InvalidField {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    match (topics, topic, partition) {
        (Some(_), Some(_), _) => Err(invalid(
            "topic",
            "give either `topics` or `topic`, not both",
        )),
        (Some(_), None, Some(_)) => Err(invalid(
            "partition",
            "a partition goes with a single `topic`",
        )),
        (Some(topics), None, None) => Ok(topics.into_iter().map(|t| (t, None)).collect()),
        (None, Some(topic), partition) => Ok(vec![(topic, partition)]),
        (None, None, _) => Err(invalid("topics", "name the topics to register for")),
    }
}

#[utoipa::path(
    post,
    path = "/queue/producers",
    tag = "queue",
    request_body = crate::web::openapi::schemas::ProducerRegistration,
    security(("queue_producer" = [])),
    responses(
        (status = 201, description = "Registered", body = crate::web::openapi::schemas::ProducerRegistered),
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
/// `POST /queue/producers` → 201 `{"producer_id": 1}`
pub async fn register(
    _producer: Producing,
    tree: web::Data<Tree>,
    QueueJson(new): QueueJson<NewProducer>,
) -> Result<HttpResponse, ApiError> {
    let wanted = registrations(new.topics, new.topic, new.partition)?;
    let id = tree.queue.register_producer(wanted).await?;
    Ok(HttpResponse::Created().json(json!({ "producer_id": id })))
}

/// `{"topic":"logs","message":"…"}` or `{"topic":"logs","messages":["…","…"]}`, with an
/// optional `"key"` (one key, one partition) or `"partition"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enqueue {
    topic: String,
    message: Option<String>,
    messages: Option<Vec<String>>,
    key: Option<String>,
    partition: Option<i32>,
}

#[utoipa::path(
    post,
    path = "/queue/producers/{id}/messages",
    tag = "queue",
    params(("id" = i64, Path, description = "The producer's id")),
    request_body = crate::web::openapi::schemas::EnqueueBody,
    security(("queue_producer" = [])),
    responses(
        (status = 200, description = "Committed: where each message went", body = crate::web::openapi::schemas::Enqueued),
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
/// `POST /queue/producers/{id}/messages` → `{"messages":[{"partition":0,"offset":41}],
/// "partition":0,"offset":41}` (the last two for a single message), once committed.
pub async fn enqueue(
    _producer: Producing,
    tree: web::Data<Tree>,
    id: web::Path<i64>,
    QueueJson(body): QueueJson<Enqueue>,
) -> Result<HttpResponse, ApiError> {
    let (messages, single) = match (body.message, body.messages) {
        (Some(m), None) => (vec![m], true),
        (None, Some(ms)) => (ms, false),
        _ => {
            return Err(ApiError::InvalidField {
                field: "message".into(),
                message: "give either `message` or `messages`".into(),
            });
        }
    };
    if body.key.is_some() && body.partition.is_some() {
        return Err(ApiError::InvalidField {
            field: "key".into(),
            message: "give either `key` or `partition`, not both".into(),
        });
    }
    let target = EnqueueTarget {
        partition: body.partition,
        key: body.key,
    };
    let placed = tree
        .queue
        .enqueue(id.into_inner(), &body.topic, messages, target)
        .await?;
    let reply = if single {
        json!({ "messages": placed, "partition": placed[0].partition, "offset": placed[0].offset })
    } else {
        json!({ "messages": placed })
    };
    Ok(HttpResponse::Ok().json(reply))
}
