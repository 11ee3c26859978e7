//! Bearer-token extractors: `Reporter` (Cacofonix, for writes), `Manager` (the bookstore's
//! store manager) and `Admin`; the queue's are in `web::queue::access`. Tokens are compared in
//! constant time and never logged.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::web::error::ApiError;

/// The configured tokens, registered as app data.
#[derive(Clone)]
pub struct Tokens {
    pub reporter: SecretString,
    pub admin: Option<SecretString>,
    pub bookstore_manager: SecretString,
}

/// Proof that the request carries the bookstore manager's token.
pub struct Manager;

impl FromRequest for Manager {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(if matches(bearer(req), &tokens(req).bookstore_manager) {
            Ok(Manager)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

/// Proof that the request carries the reporter's token.
pub struct Reporter;

/// Proof that the request carries the admin token (and that the admin API is on).
pub struct Admin;

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

pub(crate) fn matches(presented: Option<&str>, expected: &SecretString) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.expose_secret().as_bytes())))
}

fn tokens(req: &HttpRequest) -> &Tokens {
    req.app_data::<Tokens>()
        .expect("Tokens registered as app data")
}

impl FromRequest for Reporter {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(if matches(bearer(req), &tokens(req).reporter) {
            Ok(Reporter)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match &tokens(req).admin {
            None => Err(ApiError::AdminDisabled),
            Some(token) if matches(bearer(req), token) => Ok(Admin),
            Some(_) => Err(ApiError::Unauthorized),
        })
    }
}
