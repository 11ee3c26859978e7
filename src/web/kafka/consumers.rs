//! `/kafka/consumers/{group}`: consumer instances: create, delete, subscription, assignments.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::actors::Tree;
use crate::actors::queue::kafka_consumers::InstanceName;
use crate::queue::kafka::KafkaError;
use crate::queue::kafka::formats::Format;
use crate::queue::kafka::instances::{InstanceConfig, Reset};
use crate::web::kafka::access::{KafkaConsumer, V2Json, accepts_v2, v2_reply};

/// `{"name":"c1","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInstance {
    name: Option<String>,
    format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    auto_commit_enable: Option<String>,
}

impl NewInstance {
    fn config(&self) -> Result<InstanceConfig, KafkaError> {
        let auto_commit = match self.auto_commit_enable.as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(KafkaError::InvalidConsumerConfig(format!(
                    "auto.commit.enable: `{other}` is not true or false"
                )));
            }
        };
        Ok(InstanceConfig {
            format: Format::parse(self.format.as_deref().unwrap_or("binary"))?,
            reset: Reset::parse(self.auto_offset_reset.as_deref().unwrap_or("latest"))?,
            auto_commit,
        })
    }
}

/// An instance named by its path.
pub fn instance(path: web::Path<(String, String)>) -> InstanceName {
    let (group, name) = path.into_inner();
    InstanceName { group, name }
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group")),
    request_body(content = crate::web::kafka::doc::NewInstance, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The instance", body = crate::web::kafka::doc::Created, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST /kafka/consumers/{group}` → `{"instance_id","base_uri"}`
pub async fn create(
    _consumer: KafkaConsumer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    group: web::Path<String>,
    V2Json(new): V2Json<NewInstance>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let config = new.config()?;
    let id = tree
        .kafka
        .create_instance(group.into_inner(), new.name, config)
        .await?;
    let info = req.connection_info();
    let base_uri = format!(
        "{}://{}/kafka/consumers/{}/instances/{}",
        info.scheme(),
        info.host(),
        id.group,
        id.name
    );
    let body = json!({ "instance_id": id.name, "base_uri": base_uri });
    Ok(v2_reply(StatusCode::OK, &body))
}

#[utoipa::path(
    delete,
    path = "/kafka/consumers/{group}/instances/{instance}",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "Deleted; its partitions go to the group's other members"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `DELETE /kafka/consumers/{group}/instances/{instance}` → 204; its partitions go to the
/// group's other members.
pub async fn delete(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    tree.kafka.delete(instance(path)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `{"topics":["logs"]}` (a `topic_pattern` is not served).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    topics: Option<Vec<String>>,
    topic_pattern: Option<String>,
}

#[utoipa::path(
    post,
    path = "/kafka/consumers/{group}/instances/{instance}/subscription",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    request_body(content = crate::web::kafka::doc::Topics, content_type = "application/vnd.kafka.v2+json"),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "Subscribed: a member of its group for these topics"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `POST …/subscription` → 204
pub async fn subscribe(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
    V2Json(body): V2Json<Subscription>,
) -> Result<HttpResponse, KafkaError> {
    let topics = match (body.topics, body.topic_pattern) {
        (Some(topics), None) => topics,
        (None, Some(_)) => {
            return Err(KafkaError::invalid(
                "topic_pattern: subscriptions by pattern are not served; name the topics",
            ));
        }
        _ => {
            return Err(KafkaError::invalid(
                "topics: name the topics to subscribe to",
            ));
        }
    };
    tree.kafka.subscribe(instance(path), topics).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/kafka/consumers/{group}/instances/{instance}/subscription",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "Its topics", body = crate::web::kafka::doc::Topics, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET …/subscription` → `{"topics":[…]}`
pub async fn subscription(
    _consumer: KafkaConsumer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let topics = tree.kafka.subscription(instance(path)).await?;
    Ok(v2_reply(StatusCode::OK, &json!({ "topics": topics })))
}

#[utoipa::path(
    delete,
    path = "/kafka/consumers/{group}/instances/{instance}/subscription",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    security(("queue_consumer" = [])),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `DELETE …/subscription` → 204
pub async fn unsubscribe(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    tree.kafka.unsubscribe(instance(path)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/kafka/consumers/{group}/instances/{instance}/assignments",
    tag = "kafka",
    params(("group" = String, Path, description = "The consumer group"), ("instance" = String, Path, description = "The consumer instance")),
    security(("queue_consumer" = [])),
    responses(
        (status = 200, description = "The partitions its group assigns it now", body = crate::web::kafka::doc::PartitionList, content_type = "application/vnd.kafka.v2+json"),
        (status = "4XX", description = "A v2 error (`error_code` 40101 token, 40401 topic, 40402 partition, 40403 instance, 40601 format, 406, 40902, 40903, 415, 422, 42204)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
        (status = "5XX", description = "A v2 error (50302 a broker down or overloaded, with `Retry-After`; 50002 storage)", body = crate::web::kafka::doc::KafkaErrorBody, content_type = "application/vnd.kafka.v2+json"),
    ),
)]
/// `GET …/assignments` → `{"partitions":[{"topic","partition"}]}`
pub async fn assignments(
    _consumer: KafkaConsumer,
    req: HttpRequest,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    accepts_v2(&req)?;
    let assigned = tree.kafka.assignments(instance(path)).await?;
    let partitions: Vec<_> = assigned
        .into_iter()
        .map(|(topic, partition)| json!({ "topic": topic, "partition": partition }))
        .collect();
    Ok(v2_reply(
        StatusCode::OK,
        &json!({ "partitions": partitions }),
    ))
}
