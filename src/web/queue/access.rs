//! Who may call the queue's routes: bearer tokens for topic administration, producers and
//! consumers (`queue.admin_token`, `queue.producer_token`, `queue.consumer_token`), and bodies
//! only as `application/json` (415 otherwise), so that a web page cannot post to the queue
//! cross-site: a browser sends a JSON content type only after a CORS preflight, which this
//! server does not answer, and never adds a bearer token by itself.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::settings::QueueSettings;
use crate::web::auth::{bearer, matches};
use crate::web::error::ApiError;
use crate::web::json::ValidJson;

/// The queue's tokens, registered as app data.
#[derive(Clone)]
pub struct QueueTokens {
    admin: SecretString,
    producer: SecretString,
    consumer: SecretString,
}

impl From<&QueueSettings> for QueueTokens {
    fn from(settings: &QueueSettings) -> Self {
        Self {
            admin: settings.admin_token.clone(),
            producer: settings.producer_token.clone(),
            consumer: settings.consumer_token.clone(),
        }
    }
}

/// Who a request must be, by the token it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    Producer,
    Consumer,
    /// Any of the queue's tokens (listing topics).
    Any,
}

impl QueueTokens {
    /// Whether `presented` is the token of `role` (used by the Kafka REST dialect too).
    pub fn admits(&self, role: QueueRole, presented: Option<&str>) -> bool {
        match role {
            QueueRole::Producer => matches(presented, &self.producer),
            QueueRole::Consumer => matches(presented, &self.consumer),
            QueueRole::Any => [&self.admin, &self.producer, &self.consumer]
                .into_iter()
                .any(|token| matches(presented, token)),
        }
    }
}

pub(crate) fn tokens(req: &HttpRequest) -> &QueueTokens {
    req.app_data::<QueueTokens>()
        .expect("QueueTokens registered as app data")
}

macro_rules! token_extractor {
    ($(#[$doc:meta])* $name:ident, |$t:ident, $presented:ident| $allowed:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let ($t, $presented) = (tokens(req), bearer(req));
                ready(if $allowed {
                    Ok($name)
                } else {
                    Err(ApiError::Unauthorized)
                })
            }
        }
    };
}

token_extractor!(
    /// The request carries the topic administration token.
    TopicAdmin,
    |t, presented| matches(presented, &t.admin)
);
token_extractor!(
    /// The request carries the producers' token.
    Producing,
    |t, presented| matches(presented, &t.producer)
);
token_extractor!(
    /// The request carries the consumers' token.
    Consuming,
    |t, presented| matches(presented, &t.consumer)
);
token_extractor!(
    /// The request carries one of the queue's tokens.
    AnyQueueToken,
    |t, presented| [&t.admin, &t.producer, &t.consumer]
        .into_iter()
        .any(|token| matches(presented, token))
);

/// A JSON body, and only one declared `application/json` (415 otherwise).
pub struct QueueJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for QueueJson<T> {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.essence_str() == "application/json");
        if !is_json {
            return Box::pin(async { Err(ApiError::UnsupportedMediaType) });
        }
        let body = ValidJson::<T>::from_request(req, payload);
        Box::pin(async move { body.await.map(|ValidJson(value)| QueueJson(value)) })
    }
}
