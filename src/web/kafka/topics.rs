//! `/kafka/topics`: topic names, a topic, its partitions, a partition with its beginning and
//! end offsets. Topics are created through `/queue/topics` (v2 has no way to).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::actors::Tree;
use crate::queue::kafka::KafkaError;
use crate::web::kafka::access::{KafkaReader, accepts_v2, partition_param, v2_reply};

/// `GET /kafka/topics` → `["logs","audit"]`
pub async fn list(
    _reader: KafkaReader,
    req: HttpRequest,
    tree: web::Data<Tree>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    Ok(v2_reply(StatusCode::OK, &tree.kafka.topics()))
}

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
