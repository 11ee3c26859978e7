//! Shapes the OpenAPI document names that have no Rust type of their own: the one error body
//! of [`crate::web::error`], the small replies handlers build with `json!`, and the reusable
//! responses (each error status with its headers). Everything else is described by the types
//! the handlers really serialize (`#[derive(ToSchema)]` where they are defined).
//!
//! These are descriptions only, never built: `tests/api/openapi.rs` and schemathesis
//! (`scripts/schemathesis.sh`) check the replies against them.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

use crate::actors::olympics::messages::SequencedUpdate;
use crate::actors::readiness::Readiness;
use crate::actors::supervisor::ActorStatus;
use crate::queue::StoredMessage;

/// Every error the API answers: `{"error": "...", "field": "..."}`, `field` when one input is
/// to blame (a body field, a parameter or a header), `reasons` on a `503` from `/readyz`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The body field, parameter or header at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Each reason on its own (readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
}

/// Malformed input: JSON that does not parse, a bad path or query parameter, a bad header.
#[derive(ToResponse)]
#[response(description = "Bad request: malformed JSON, parameter or header")]
pub struct BadRequest(ErrorBody);

/// The bearer token is missing or wrong.
#[derive(ToResponse)]
#[response(
    description = "Missing or wrong bearer token",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(ErrorBody);

/// The queue consumer or producer is not registered for that topic or partition.
#[derive(ToResponse)]
#[response(description = "Not registered for that topic or partition")]
pub struct Forbidden(ErrorBody);

/// No such game, team, tablet, book, order, room, reservation, server, topic, producer,
/// consumer or actor (or the admin API is off).
#[derive(ToResponse)]
#[response(description = "No such resource")]
pub struct NotFound(ErrorBody);

/// The request's path exists with other methods.
#[derive(ToResponse)]
#[response(description = "Method not allowed")]
pub struct MethodNotAllowed(ErrorBody);

/// The body did not arrive within `server.body_timeout_ms`; the connection is closed.
#[derive(ToResponse)]
#[response(description = "The request body did not arrive in time")]
pub struct RequestTimeout(ErrorBody);

/// A state that forbids the write (taken, out of stock, exists already, fenced).
#[derive(ToResponse)]
#[response(description = "Conflict with the current state")]
pub struct Conflict(ErrorBody);

/// The body is over `server.max_body_bytes`.
#[derive(ToResponse)]
#[response(description = "Request body too large")]
pub struct PayloadTooLarge(ErrorBody);

/// The queue takes bodies only as `application/json`.
#[derive(ToResponse)]
#[response(description = "The body must be application/json")]
pub struct UnsupportedMediaType(ErrorBody);

/// Well-formed JSON of the wrong shape, a value out of range, or an `Idempotency-Key` reused
/// for another request; `field` names the input.
#[derive(ToResponse)]
#[response(description = "Invalid input (the field is named)")]
pub struct Unprocessable(ErrorBody);

/// The service cannot answer now (an actor restarting, storage down, a bound reached).
#[derive(ToResponse)]
#[response(
    description = "Unavailable for now; retry after the given seconds",
    headers(("Retry-After" = String, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(ErrorBody);

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Alive {
    /// Always `alive`.
    #[schema(pattern = "^alive$")]
    pub status: String,
}

/// `GET /readyz` when every service can answer.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(pattern = "^ready$")]
    pub status: String,
    pub services: Readiness,
    pub actors: Vec<ActorStatus>,
}

/// `GET /cluster`: every Olympic front-end, alive or not, and its view of the group (leader,
/// election, clock offset, vector clock, updates applied; absent while it does not answer).
#[derive(Serialize, ToSchema)]
pub struct ClusterMembers {
    pub members: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `GET /cluster/members/{id}/updates`: the last updates a member applied, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MemberUpdates {
    #[schema(minimum = 0)]
    pub id: u64,
    pub updates: Vec<SequencedUpdate>,
}

/// A front-end or room server that joined.
#[derive(Serialize, ToSchema)]
pub struct Joined {
    #[schema(minimum = 0)]
    pub id: u64,
    pub name: String,
}

/// `POST /admin/actors/{name}/crash`: the crash was ordered.
#[derive(Serialize, ToSchema)]
pub struct CrashOrdered {
    pub actor: String,
    /// `panic` or `stop`.
    #[schema(pattern = "^(panic|stop)$")]
    pub crash: String,
}

/// `POST /queue/producers`.
#[derive(Serialize, ToSchema)]
pub struct ProducerRegistered {
    pub producer_id: i64,
}

/// `POST /queue/consumers`.
#[derive(Serialize, ToSchema)]
pub struct ConsumerRegistered {
    pub consumer_id: i64,
}

/// `POST /queue/producers/{id}/messages`: where each message went, once committed;
/// `partition` and `offset` of the only one when a single `message` was sent.
#[derive(Serialize, ToSchema)]
pub struct Enqueued {
    pub messages: Vec<crate::actors::queue::router::Placed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// `GET /queue/consumers/{id}/messages`.
#[derive(Serialize, ToSchema)]
pub struct Dequeued {
    pub messages: Vec<StoredMessage>,
}

/// `GET /queue/consumers/{id}/size`: messages left for the consumer.
#[derive(Serialize, ToSchema)]
pub struct QueueSize {
    pub size: i64,
}

/// `POST /queue/consumers/{id}/offsets`: the offset committed.
#[derive(Serialize, ToSchema)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A book after a manager's write, with the write's number in the log.
#[derive(Serialize, ToSchema)]
pub struct ManagedBook {
    #[serde(flatten)]
    pub book: crate::bookstore::BookView,
    #[schema(minimum = 0)]
    pub write_seq: u64,
}

/// `GET /rooms/rooms`.
#[derive(Serialize, ToSchema)]
pub struct RoomList {
    pub rooms: Vec<String>,
}

/// `GET /rooms/timeslots`.
#[derive(Serialize, ToSchema)]
pub struct TimeslotList {
    pub timeslots: Vec<String>,
}

/// `GET /rooms/days`.
#[derive(Serialize, ToSchema)]
pub struct DayList {
    pub days: Vec<String>,
}

/// `GET /rooms/rooms/{room}/reservations`.
#[derive(Serialize, ToSchema)]
pub struct RoomReservations {
    pub room: String,
    pub reservations: Vec<crate::rooms::Reservation>,
}

/// One event of `GET /olympics/tablets/{id}/events`: `id` to resume from, `event` (`score`,
/// `medals`, `snapshot`...), `data` (the JSON of the new state). Keep-alive comments carry none.
#[derive(Serialize, ToSchema)]
pub struct ServerSentEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A schema written as JSON Schema, for bodies whose rules (one field or the other) derives
/// cannot say, and utoipa's types cannot hold (`propertyNames`, `not`): utoipa names it (an
/// object placeholder), and [`JSON_SCHEMAS`] replaces the placeholder in the served document.
macro_rules! json_schema {
    ($(#[$doc:meta])* $name:ident, $schema:tt) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            pub fn json() -> serde_json::Value {
                serde_json::json!($schema)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::Object::new().into()
            }
        }

        impl ToSchema for $name {}
    };
}

/// The schemas written as JSON Schema, by name.
pub const JSON_SCHEMAS: [(&str, fn() -> serde_json::Value); 4] = [
    ("ScoreUpdateBody", ScoreUpdateBody::json),
    ("ProducerRegistration", ProducerRegistration::json),
    ("ConsumerRegistration", ConsumerRegistration::json),
    ("EnqueueBody", EnqueueBody::json),
];

json_schema!(
    /// `PUT /olympics/games/{game}/score`: the new points of some or all teams, by team slug.
    ScoreUpdateBody,
    {
        "type": "object",
        "additionalProperties": false,
        "required": ["scores"],
        "properties": {
            "scores": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": { "pattern": "^[a-z0-9-]{1,64}$" },
                "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64 }
            }
        }
    }
);

json_schema!(
    /// A producer's topics: `{"topics": [...]}`, or `{"topic": ..., "partition": n}` for one. A
    /// field given as `null` counts as absent.
    ProducerRegistration,
    {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["topics"],
                "properties": {
                    "topics": {
                        "type": "array", "minItems": 1, "maxItems": 16,
                        "items": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" }
                    },
                    "topic": { "type": "null" },
                    "partition": { "type": "null" }
                }
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["topic"],
                "properties": {
                    "topic": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" },
                    "partition": { "type": ["integer", "null"], "minimum": 0, "maximum": 255 },
                    "topics": { "type": "null" }
                }
            }
        ]
    }
);

json_schema!(
    /// A consumer's topics: `{"topics": [...]}`, or `{"topic": ..., "partition": n}` for one;
    /// consumers of one `group` share the partitions and the offsets. A field given as `null`
    /// counts as absent.
    ConsumerRegistration,
    {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["topics"],
                "properties": {
                    "topics": {
                        "type": "array", "minItems": 1, "maxItems": 16,
                        "items": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" }
                    },
                    "topic": { "type": "null" },
                    "partition": { "type": "null" },
                    "group": { "type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{1,128}$" }
                }
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["topic"],
                "properties": {
                    "topic": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" },
                    "partition": { "type": ["integer", "null"], "minimum": 0, "maximum": 255 },
                    "topics": { "type": "null" },
                    "group": { "type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{1,128}$" }
                }
            }
        ]
    }
);

json_schema!(
    /// `POST /queue/producers/{id}/messages`: `message` or `messages` (at most `queue.max_batch`,
    /// each at most `queue.max_message_bytes`, no NUL), with a `key` (one key, one partition) or
    /// a `partition`, not both.
    EnqueueBody,
    {
        "type": "object",
        "additionalProperties": false,
        "required": ["topic"],
        "properties": {
            "topic": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" },
            "message": { "type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[^\\x00]*$" },
            "messages": {
                "type": "array", "minItems": 1, "maxItems": 1000,
                "items": { "type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[^\\x00]*$" }
            },
            "key": { "type": "string", "maxLength": 1024, "pattern": "^[^\\x00]*$" },
            "partition": { "type": "integer", "minimum": 0, "maximum": 255 }
        },
        "oneOf": [ { "required": ["message"] }, { "required": ["messages"] } ],
        "not": { "required": ["key", "partition"] }
    }
);
