//! `POST /kafka/topics/{topic}` and `POST /kafka/topics/{topic}/partitions/{p}`: produce
//! records (JSON or base64 binary values), answered once they are committed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actors::Tree;
use crate::actors::queue::kafka::ProduceRecord;
use crate::queue::kafka::KafkaError;
use crate::web::kafka::access::{
    KafkaProducer, ProduceJson, accepts_v2, partition_param, v2_reply,
};

/// `{"records":[{"key":…,"value":…,"partition":…}]}` (schemas are not served: json and
/// binary need none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    records: Vec<RecordBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    #[serde(default)]
    key: Value,
    #[serde(default)]
    value: Value,
    partition: Option<i32>,
}

async fn produce(
    tree: &Tree,
    req: &HttpRequest,
    topic: &str,
    partition: Option<i32>,
    ProduceJson(format, body): ProduceJson<ProduceBody>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(req)?;
    if partition.is_some() && body.records.iter().any(|r| r.partition.is_some()) {
        return Err(KafkaError::invalid(
            "records[].partition: the path names the partition",
        ));
    }
    let records = body
        .records
        .into_iter()
        .map(|r| ProduceRecord {
            key: r.key,
            value: r.value,
            partition: r.partition,
        })
        .collect();
    let offsets = tree
        .kafka
        .produce(topic, partition, format, records)
        .await?;
    let reply = json!({ "offsets": offsets, "key_schema_id": null, "value_schema_id": null });
    Ok(v2_reply(StatusCode::OK, &reply))
}

#[utoipa::path(
    post,
    path = "/kafka/topics/{topic}",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic")),
    request_body(content = crate::web::kafka::doc::ProduceRequest, content_type = "application/vnd.kafka.json.v2+json"),
    security(("queue_producer" = [])),
    responses(
        (status = 200, description = "Where each record went, once committed", body = crate::web::kafka::doc::Produced, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST /kafka/topics/{topic}` → `{"offsets":[{"partition","offset","error_code","error"}],
/// "key_schema_id":null,"value_schema_id":null}`
pub async fn to_topic(
    _producer: KafkaProducer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    topic: web::Path<String>,
    body: ProduceJson<ProduceBody>,
) -> Result<HttpResponse, KafkaError> {
    produce(&tree, &req, &topic, None, body).await
}

#[utoipa::path(
    post,
    path = "/kafka/topics/{topic}/partitions/{partition}",
    tag = "kafka",
    params(("topic" = String, Path, description = "The topic"), ("partition" = i32, Path, description = "The partition")),
    request_body(content = crate::web::kafka::doc::ProduceRequest, content_type = "application/vnd.kafka.binary.v2+json"),
    security(("queue_producer" = [])),
    responses(
        (status = 200, description = "Where each record went, once committed", body = crate::web::kafka::doc::Produced, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST /kafka/topics/{topic}/partitions/{p}`: the same, every record to partition `p`.
pub async fn to_partition(
    _producer: KafkaProducer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    body: ProduceJson<ProduceBody>,
) -> Result<HttpResponse, KafkaError> {
    let (topic, p) = path.into_inner();
    let partition = partition_param(&p)?;
    produce(&tree, &req, &topic, Some(partition), body).await
}
