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
        _ => return Err(KafkaError::invalid("topics: name the topics to subscribe to")),
    };
    tree.kafka.subscribe(instance(path), topics).await?;
    Ok(HttpResponse::NoContent().finish())
}

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

/// `DELETE …/subscription` → 204
pub async fn unsubscribe(
    _consumer: KafkaConsumer,
    tree: web::Data<Tree>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, KafkaError> {
    tree.kafka.unsubscribe(instance(path)).await?;
    Ok(HttpResponse::NoContent().finish())
}

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
    Ok(v2_reply(StatusCode::OK, &json!({ "partitions": partitions })))
}
