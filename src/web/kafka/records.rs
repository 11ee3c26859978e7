//! `/kafka/consumers/{group}/instances/{instance}/…`: records (long poll), offsets (commit and
//! committed), positions (seek).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::actors::queue::kafka_poll::PollLimits;
use crate::queue::kafka::KafkaError;
use crate::queue::kafka::instances::Seek;
use crate::web::kafka::access::{
    KafkaConsumer, MaybeV2Json, V2Json, accepts_v2, records_format, v2_reply,
};
use crate::web::kafka::consumers::instance;

/// How long a poll waits when the request does not say (the proxy's default).
const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// The most bytes of values a poll returns when the request does not say.
const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

fn query_number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, KafkaError> {
    query
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| KafkaError::invalid(format!("{name}: not a non-negative number")))
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/kafka/consumers/{group}/instances/{instance}/records",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance"), ("timeout" = Option<u64>, Query, description = "Wait up to this many ms for records (default 1000)"), ("max_bytes" = Option<u64>, Query, description = "At most this many bytes of values")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The next records (Accept: application/vnd.kafka.json.v2+json or binary)", body = Vec<crate::web::kafka::doc::Record>, content_type = "application/vnd.kafka.json.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET …/records?timeout=&max_bytes=` with `Accept: application/vnd.kafka.json.v2+json` (or
/// binary) → `[{"topic","key","value","partition","offset"}]`
pub async fn records(
    _consumer: KafkaConsumer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    let format = records_format(&req)?;
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| KafkaError::invalid(format!("query: {e}")))?;
    let timeout = query_number::<u64>(&query, "timeout")?.unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_bytes = query_number::<usize>(&query, "max_bytes")?.unwrap_or(DEFAULT_MAX_BYTES);
    let limits = PollLimits {
        timeout: Duration::from_millis(timeout),
        max_bytes,
    };
    let (format, records) = tree.kafka.records(instance(path), format, limits).await?;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .body(serde_json::to_string(&records).unwrap_or_else(|_| "[]".into())))
}

#[derive(Debug, Deserialize)]
pub struct OffsetBody {
    topic: String,
    partition: i32,
    offset: i64,
    /// Accepted, not kept.
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<String>,
}

/// `{"offsets":[{"topic","partition","offset"}]}`; unknown fields are ignored as the proxy
/// does, so a body without `offsets` commits everything returned, like no body.
#[derive(Debug, Deserialize)]
pub struct Offsets {
    offsets: Option<Vec<OffsetBody>>,
}

fn triples(offsets: Vec<OffsetBody>) -> Vec<(String, i32, i64)> {
    offsets
        .into_iter()
        .map(|o| (o.topic, o.partition, o.offset))
        .collect()
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}/instances/{instance}/offsets",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::OffsetList, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Committed: the group's next offsets are these plus one (no body: everything returned)"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST …/offsets` → 200: the group's offsets move past the offsets given (each the last
/// record consumed), or past everything returned to the instance when none are given.
pub async fn commit(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    MaybeV2Json(body): MaybeV2Json<Offsets>,
) -> Result<HttpResponse, KafkaError> {
    let offsets = body.and_then(|b| b.offsets).map(triples);
    tree.kafka.commit(instance(path), offsets).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBody {
    topic: String,
    partition: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    partitions: Vec<PartitionBody>,
}

#[utoipa::path(
    get,
    path = "/kafka/consumers/{group}/instances/{instance}/offsets",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::PartitionList, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The group's committed next offsets (-1: none)", body = crate::web::kafka::doc::CommittedList, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET …/offsets` with `{"partitions":[{"topic","partition"}]}` →
/// `{"offsets":[{"topic","partition","offset","metadata":""}]}` (the next offset to read;
/// `-1` where the group has committed none).
pub async fn committed(
    _consumer: KafkaConsumer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    V2Json(body): V2Json<Partitions>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let wanted = body
        .partitions
        .into_iter()
        .map(|p| (p.topic, p.partition))
        .collect();
    let offsets: Vec<_> = tree
        .kafka
        .committed(instance(path), wanted)
        .await?
        .into_iter()
        .map(|(topic, partition, offset)| {
            json!({ "topic": topic, "partition": partition, "offset": offset, "metadata": "" })
        })
        .collect();
    Ok(v2_reply(StatusCode::OK, &json!({ "offsets": offsets })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeekOffsets {
    offsets: Vec<OffsetBody>,
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}/instances/{instance}/positions",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::OffsetList, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "The next poll reads from these offsets"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST …/positions` with `{"offsets":[{"topic","partition","offset"}]}` → 204: the next
/// poll reads each from there.
pub async fn seek(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    V2Json(body): V2Json<SeekOffsets>,
) -> Result<HttpResponse, KafkaError> {
    let seeks = body
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.partition, Seek::To(o.offset)))
        .collect();
    tree.kafka.seek(instance(path), seeks).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn seek_all(
    tree: &Tree,
    path: web::Path<(String, String)>,
    body: Partitions,
    seek: Seek,
) -> Result<HttpResponse, KafkaError> {
    let seeks = body
        .partitions
        .into_iter()
        .map(|p| (p.topic, p.partition, seek))
        .collect();
    tree.kafka.seek(instance(path), seeks).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}/instances/{instance}/positions/beginning",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::PartitionList, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "The next poll reads these partitions from their beginning"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST …/positions/beginning` with `{"partitions":[{"topic","partition"}]}` → 204
pub async fn seek_beginning(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    V2Json(body): V2Json<Partitions>,
) -> Result<HttpResponse, KafkaError> {
    seek_all(&tree, path, body, Seek::Beginning).await
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}/instances/{instance}/positions/end",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::PartitionList, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "The next poll reads these partitions from their end"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST …/positions/end` with `{"partitions":[{"topic","partition"}]}` → 204
pub async fn seek_end(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    V2Json(body): V2Json<Partitions>,
) -> Result<HttpResponse, KafkaError> {
    seek_all(&tree, path, body, Seek::End).await
}
