//! Shapes of the Kafka REST Proxy v2 dialect for the OpenAPI document (`/openapi.json`): v2's
//! bodies and replies as the `/kafka` handlers read and write them (most are built with
//! `json!` or read into private types). Descriptions only, never built.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// v2's error: `{"error_code":40401,"message":"Topic not found"}`; the HTTP status is the
/// code's first three digits (or the code itself when it has three).
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaError)]
pub struct KafkaErrorBody {
    pub error_code: u32,
    pub message: String,
}

/// A replica of a partition (here the partition's broker, its only replica and leader).
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaReplica)]
pub struct Replica {
    pub broker: i32,
    pub leader: bool,
    pub in_sync: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaPartition)]
pub struct Partition {
    pub partition: i32,
    /// The broker that owns it.
    pub leader: i32,
    pub replicas: Vec<Replica>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaPartitionWithOffsets)]
pub struct PartitionWithOffsets {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<Replica>,
    /// The first offset kept (retention moves it).
    pub beginning_offset: i64,
    /// The next offset to be written.
    pub end_offset: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaPartitionOffsets)]
pub struct PartitionOffsets {
    pub beginning_offset: i64,
    pub end_offset: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaTopic)]
pub struct Topic {
    pub name: String,
    /// `retention.ms`, `retention.messages` when the topic has them (as strings).
    pub configs: Value,
    pub partitions: Vec<Partition>,
}

/// A record to produce: `value` is JSON (json format) or base64 (binary); `key` routes as
/// `/queue`'s `key`; `partition` names one (not with the partition's own path). A record
/// without `value` carries `null`, as the proxy's do.
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaProduceRecord)]
pub struct ProduceRecord {
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub partition: Option<i32>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaProduceRequest)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
}

/// Where a record went, or its `error_code` and `error`.
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaRecordOffset)]
pub struct RecordOffset {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_code: Option<u32>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaProduced)]
pub struct Produced {
    pub offsets: Vec<RecordOffset>,
    /// Always null: json and binary need no schema.
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
}

/// A new consumer instance: `format` `json` or `binary` (default), `auto.offset.reset`
/// `earliest`, `latest` (default) or `none`, `auto.commit.enable` `"true"` (default) or
/// `"false"`.
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaNewInstance)]
pub struct NewInstance {
    pub name: Option<String>,
    pub format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    pub auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    pub auto_commit_enable: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaInstanceCreated)]
pub struct Created {
    pub instance_id: String,
    /// This instance's URL, for the requests that follow.
    pub base_uri: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaTopics)]
pub struct Topics {
    pub topics: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaTopicPartition)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaPartitionList)]
pub struct PartitionList {
    pub partitions: Vec<TopicPartition>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaOffset)]
pub struct Offset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaOffsetList)]
pub struct OffsetList {
    pub offsets: Vec<Offset>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaCommitted)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = KafkaCommittedList)]
pub struct CommittedList {
    pub offsets: Vec<Committed>,
}

/// A consumed record (`key` is always null: keys route but are not stored).
#[derive(Serialize, ToSchema)]
#[schema(as = KafkaRecord)]
pub struct Record {
    pub topic: String,
    pub key: Option<Value>,
    pub value: Value,
    pub partition: i32,
    pub offset: i64,
}
