//! Every error the HTTP API can answer, mapped to a status and a JSON body in one place:
//! `{"error": "...", "field": "..."}` (`field` when one input is to blame). Server errors are
//! logged with their detail; storage errors reach the client without it.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::actors::registry::UnknownActor;
use crate::bookstore::BookstoreError;
use crate::olympics::OlympicsError;
use crate::queue::QueueError;
use crate::queue::kafka::KafkaError;
use crate::rooms::RoomsError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Olympics(#[from] OlympicsError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Bookstore(#[from] BookstoreError),
    #[error(transparent)]
    Rooms(#[from] RoomsError),
    #[error(transparent)]
    UnknownActor(#[from] UnknownActor),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("{field}: {message}")]
    BadParameter {
        field: &'static str,
        message: String,
    },
    #[error("header {header}: {message}")]
    BadHeader {
        header: &'static str,
        message: String,
    },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body not received within {} ms", timeout.as_millis())]
    BodyTimeout { timeout: std::time::Duration },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the admin API is disabled; set admin.token to enable it")]
    AdminDisabled,
    #[error("no such resource: {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    #[error("too many requests from this client; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Each reason on its own (readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [String]>,
}

impl ApiError {
    /// What the client reads. A storage failure's own text (the database's error, the statement)
    /// stays in the log: it helps an attacker more than a client.
    fn public_message(&self) -> String {
        match self {
            ApiError::Olympics(OlympicsError::Storage(_))
            | ApiError::Queue(QueueError::Storage { .. }) => {
                "storage is unavailable; retry shortly".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidField { field, .. } => Some(field),
            ApiError::Olympics(OlympicsError::Invalid { field, .. }) => Some(field),
            ApiError::Queue(QueueError::Invalid { field, .. }) => Some(field),
            ApiError::Bookstore(BookstoreError::Invalid { field, .. }) => Some(field),
            ApiError::Rooms(RoomsError::Invalid { field, .. }) => Some(field),
            ApiError::BadHeader { header, .. } => Some(header),
            ApiError::BadParameter { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use OlympicsError as O;
        match self {
            ApiError::Olympics(e) => match e {
                O::Conflict(_) => StatusCode::CONFLICT,
                O::UnknownGame(_)
                | O::UnknownTeam(_)
                | O::UnknownTablet(_)
                | O::UnknownFrontend(_) => StatusCode::NOT_FOUND,
                O::Invalid { .. } | O::IdempotencyConflict(_) => StatusCode::UNPROCESSABLE_ENTITY,
                O::Unavailable(_) | O::Storage(_) | O::Full { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            ApiError::Queue(e) => match e {
                QueueError::UnknownTopic(_)
                | QueueError::UnknownPartition { .. }
                | QueueError::UnknownProducer(_)
                | QueueError::UnknownConsumer(_) => StatusCode::NOT_FOUND,
                QueueError::TopicExists(_) | QueueError::Fenced { .. } => StatusCode::CONFLICT,
                QueueError::NotRegistered { .. } => StatusCode::FORBIDDEN,
                QueueError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                QueueError::PartitionUnavailable { .. }
                | QueueError::Unavailable(_)
                | QueueError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Bookstore(e) => match e {
                BookstoreError::UnknownBook(_) | BookstoreError::UnknownOrder(_) => {
                    StatusCode::NOT_FOUND
                }
                BookstoreError::OutOfStock(_) => StatusCode::CONFLICT,
                BookstoreError::Invalid { .. } | BookstoreError::IdempotencyConflict(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                BookstoreError::Unavailable(_) | BookstoreError::Storage => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            ApiError::Rooms(e) => match e {
                RoomsError::UnknownRoom(_)
                | RoomsError::UnknownReservation(_)
                | RoomsError::UnknownServer(_) => StatusCode::NOT_FOUND,
                RoomsError::ServerExists(_) | RoomsError::Taken { .. } => StatusCode::CONFLICT,
                RoomsError::Invalid { .. } | RoomsError::IdempotencyConflict(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                RoomsError::NoServer | RoomsError::Unavailable(_) | RoomsError::Storage => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            ApiError::UnknownActor(_) | ApiError::AdminDisabled | ApiError::NoRoute(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MalformedJson(_)
            | ApiError::BadHeader { .. }
            | ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let ApiError::NotReady(_) = self {
            // A readiness probe answered "not yet" (at start, while the groups elect and the
            // replicas catch up; during a failover): expected, not a server error.
            tracing::info!(status = status.as_u16(), error = %self, "not ready");
        } else if status.is_server_error() {
            // The reply says what failed; the log also gets the database's own words.
            let detail = match self {
                ApiError::Queue(e) => e.detail(),
                _ => None,
            };
            tracing::error!(status = status.as_u16(), error = %self, detail, "request failed");
        }
        let mut response = HttpResponse::build(status);
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                if let ApiError::TooManyRequests { retry_after_secs } = self {
                    response
                        .insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
                }
            }
            StatusCode::UNAUTHORIZED => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // The rest of a late body may still be on its way: the connection goes too.
            StatusCode::REQUEST_TIMEOUT => {
                response.force_close();
            }
            _ => {}
        }
        let reasons = match self {
            ApiError::NotReady(reasons) => Some(reasons.as_slice()),
            _ => None,
        };
        response.json(ErrorBody {
            error: self.public_message(),
            field: self.field(),
            reasons,
        })
    }
}

/// Turns actix's own extractor errors (query strings, paths) into JSON 400s.
pub fn extractor_error(field: &'static str, err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::BadParameter {
        field,
        message: err.to_string(),
    }
    .into()
}

/// The Kafka REST Proxy v2 dialect's errors (`/kafka`), in v2's shape and with the status the
/// proxy gives: `{"error_code":40401,"message":"Topic not found"}`, the status being the first
/// three digits of a five-digit code (rest-utils' generic errors carry the status itself).
impl ResponseError for KafkaError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), error = %self, detail = self.detail(), "Kafka REST request failed");
        }
        let mut response = HttpResponse::build(status);
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            StatusCode::UNAUTHORIZED => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer, Basic realm=\"obelix-queue\""),
                ));
            }
            StatusCode::REQUEST_TIMEOUT => {
                response.force_close();
            }
            _ => {}
        }
        response
            .insert_header((header::CONTENT_TYPE, crate::queue::kafka::V2_JSON))
            .body(
                serde_json::json!({ "error_code": self.error_code(), "message": self.to_string() })
                    .to_string(),
            )
    }
}

/// The ingress's own errors (bodies, tokens, routes) in v2's words.
impl From<ApiError> for KafkaError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Queue(e) => e.into(),
            ApiError::Unauthorized => KafkaError::Unauthorized,
            ApiError::InvalidField { field, message } => {
                KafkaError::Invalid(format!("{field}: {message}"))
            }
            other => KafkaError::Http {
                status: other.status_code().as_u16(),
                message: other.public_message(),
            },
        }
    }
}
