//! `/kafka/topics`: topic names, a topic, its partitions, a partition with its beginning and
//! end offsets. Topics are created through `/queue/topics` (v2 has no way to).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::actors::Tree;
use crate::queue::kafka::KafkaError;
use crate::web::kafka::access::{KafkaReader, accepts_v2, partition_param, v2_reply};

#[utoipa::path(
    get,
    path = "/kafka/topics",
    tag = "kafka",
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Topic names", body = Vec<String>, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET /kafka/topics` → `["logs","audit"]`
pub async fn list(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    Ok(v2_reply(StatusCode::OK, &tree.kafka.topics()))
}

#[utoipa::path(
    get,
    path = "/kafka/topics/{topic}",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The topic", body = crate::web::kafka::doc::Topic, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET /kafka/topics/{topic}` → `{"name","configs","partitions":[…]}`
pub async fn get(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
    topic: web::Path<String>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let partitions = tree.kafka.partitions(&topic)?;
    let info = tree
        .queue
        .list_topics()
        .into_iter()
        .find(|t| t.name == *topic)
        .ok_or(KafkaError::TopicNotFound)?;
    let mut configs = serde_json::Map::new();
    if let Some(ms) = info.retention_ms {
        configs.insert("retention.ms".into(), json!(ms.to_string()));
    }
    if let Some(n) = info.retention_messages {
        configs.insert("retention.messages".into(), json!(n.to_string()));
    }
    let body = json!({ "name": info.name, "configs": configs, "partitions": partitions });
    Ok(v2_reply(StatusCode::OK, &body))
}

#[utoipa::path(
    get,
    path = "/kafka/topics/{topic}/partitions",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Its partitions", body = Vec<crate::web::kafka::doc::Partition>, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET /kafka/topics/{topic}/partitions` → `[{"partition","leader","replicas"}]`
pub async fn partitions(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
    topic: web::Path<String>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    Ok(v2_reply(StatusCode::OK, &tree.kafka.partitions(&topic)?))
}

#[utoipa::path(
    get,
    path = "/kafka/topics/{topic}/partitions/{partition}",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic"), ("partition" = i32, Path, description = "The partition")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The partition, with its beginning and end offsets", body = crate::web::kafka::doc::PartitionWithOffsets, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET /kafka/topics/{topic}/partitions/{p}` → `{"partition","leader","replicas",
/// "beginning_offset","end_offset"}`
pub async fn partition(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let (topic, p) = path.into_inner();
    let (info, beginning, end) = tree.kafka.partition(&topic, partition_param(&p)?).await?;
    let mut body = serde_json::to_value(info).unwrap_or_default();
    body["beginning_offset"] = json!(beginning);
    body["end_offset"] = json!(end);
    Ok(v2_reply(StatusCode::OK, &body))
}

#[utoipa::path(
    get,
    path = "/kafka/topics/{topic}/partitions/{partition}/offsets",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic"), ("partition" = i32, Path, description = "The partition")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Its beginning and end offsets", body = crate::web::kafka::doc::PartitionOffsets, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET /kafka/topics/{topic}/partitions/{p}/offsets` → `{"beginning_offset","end_offset"}`
pub async fn offsets(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let (topic, p) = path.into_inner();
    let (_, beginning, end) = tree.kafka.partition(&topic, partition_param(&p)?).await?;
    let body = json!({ "beginning_offset": beginning, "end_offset": end });
    Ok(v2_reply(StatusCode::OK, &body))
}
