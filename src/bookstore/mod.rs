//! The Pygmy.com bookstore domain (seed 002, issue 12): books, orders, the store's writes and
//! their validation, free of actix and HTTP.
//!
//! - [`writes`]: the writes (buy, restock, cost change) as the write log applies them to the
//!   authority table `bookstore_stock`: alone in one conditional statement each, a group in
//!   four statements worked out by [`group_plan`].
//! - [`replica_store`]: a catalog replica's own tables and their SQL.
//! - [`cache`]: the front end's bounded lookup cache, with its guard against stale refills.
//!
//! The service's actors are in `actors::bookstore`, its routes in `web::bookstore`.

pub mod cache;
pub mod group_plan;
pub mod replica_store;
pub mod writes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What can go wrong with a bookstore request. Mapped to HTTP in `web::error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BookstoreError {
    #[error("unknown book `{0}`")]
    UnknownBook(String),
    #[error("unknown order `{0}`")]
    UnknownOrder(String),
    #[error("book {0} is out of stock")]
    OutOfStock(i64),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("idempotency key `{0}` was already used for a different request")]
    IdempotencyConflict(String),
    /// No server could take the request now: retry shortly (503).
    #[error("the bookstore is unavailable: {0}")]
    Unavailable(String),
    /// The database failed; the detail is logged, not answered (503).
    #[error("the bookstore could not reach its storage")]
    Storage,
}

impl BookstoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What a write does to a book (see [`writes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    Buy,
    Restock { copies: i64 },
    SetCost { cents: i64 },
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRefusal {
    UnknownBook(i64),
    OutOfStock(i64),
}

/// A book's id as it comes in a path: anything but a positive integer is an unknown book.
pub fn parse_book_id(raw: &str) -> Result<i64, BookstoreError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| BookstoreError::UnknownBook(raw.chars().take(64).collect()))
}

/// A searched topic: 1 to 200 characters, not blank.
pub fn parse_topic(topic: Option<String>) -> Result<Option<String>, BookstoreError> {
    match topic {
        Some(t) if t.trim().is_empty() || t.len() > 200 || t.contains('\0') => {
            Err(BookstoreError::invalid(
                "topic",
                "expected a topic such as `distributed systems` (1 to 200 characters)",
            ))
        }
        topic => Ok(topic),
    }
}

/// A book as a catalog holds it. `version` is the number of the last write that changed it
/// (or of the snapshot a replica started from): a copy with a lower version is older.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    pub id: i64,
    pub title: String,
    pub topic: String,
    pub cost_cents: i64,
    pub quantity: i64,
    #[serde(default)]
    pub version: u64,
}

/// A book as shoppers read it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BookView {
    pub id: i64,
    pub title: String,
    pub topic: String,
    pub cost: f64,
    pub quantity: i64,
}

impl From<&Book> for BookView {
    fn from(b: &Book) -> Self {
        Self {
            id: b.id,
            title: b.title.clone(),
            topic: b.topic.clone(),
            cost: cents_to_amount(b.cost_cents),
            quantity: b.quantity,
        }
    }
}

/// A book rendered once for shoppers, as the front end's cache keeps it: a hit is answered
/// without serializing or hashing anything.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedBook {
    pub book: Book,
    /// The [`BookView`] as JSON.
    pub json: bytes::Bytes,
    /// A strong ETag of `json`.
    pub etag: String,
}

impl RenderedBook {
    pub fn new(book: Book) -> std::sync::Arc<Self> {
        let json = serde_json::to_vec(&BookView::from(&book)).expect("a book serializes");
        let etag = etag_of(&json);
        std::sync::Arc::new(Self {
            book,
            json: json.into(),
            etag,
        })
    }
}

/// A strong ETag for a body: a hash of its bytes, quoted.
pub fn etag_of(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// A recorded order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub book_id: i64,
    pub title: String,
    pub price_cents: i64,
    /// The order server that sold it.
    pub order_server: String,
    pub ordered_at: DateTime<Utc>,
}

/// An order as shoppers read it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: i64,
    pub book_id: i64,
    pub title: String,
    pub price: f64,
    pub order_server: String,
    pub ordered_at: DateTime<Utc>,
    /// Its number in the store's write log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_seq: Option<u64>,
}

impl OrderView {
    pub fn new(order: &Order, write_seq: Option<u64>) -> Self {
        Self {
            id: order.id,
            book_id: order.book_id,
            title: order.title.clone(),
            price: cents_to_amount(order.price_cents),
            order_server: order.order_server.clone(),
            ordered_at: order.ordered_at,
            write_seq,
        }
    }
}

pub fn cents_to_amount(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// The most a book may cost, and the most copies one restock may add.
pub const MAX_COST_CENTS: i64 = 10_000_000;
pub const MAX_RESTOCK: i64 = 1_000_000;

/// `POST /bookstore/books/{id}/restock` `{"quantity": 10}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

impl RestockRequest {
    /// The copies to add: a positive whole number.
    pub fn copies(&self) -> Result<i64, BookstoreError> {
        if self.quantity <= 0 || self.quantity > MAX_RESTOCK {
            return Err(BookstoreError::invalid(
                "quantity",
                format!("expected a whole number of copies from 1 to {MAX_RESTOCK}"),
            ));
        }
        Ok(self.quantity)
    }
}

/// `PATCH /bookstore/books/{id}` `{"cost": 12.5}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostRequest {
    /// In the currency's units, at most two decimals.
    #[schema(exclusive_minimum = 0, maximum = 100_000, multiple_of = 0.01)]
    pub cost: f64,
}

impl CostRequest {
    /// The cost in cents: a positive amount with at most two decimals.
    pub fn cents(&self) -> Result<i64, BookstoreError> {
        let invalid = || {
            BookstoreError::invalid(
                "cost",
                format!(
                    "expected a positive amount with at most two decimals, up to {}",
                    cents_to_amount(MAX_COST_CENTS)
                ),
            )
        };
        if !self.cost.is_finite() || self.cost <= 0.0 {
            return Err(invalid());
        }
        let scaled = self.cost * 100.0;
        let cents = scaled.round();
        if (scaled - cents).abs() > 1e-6 || cents < 1.0 || cents > MAX_COST_CENTS as f64 {
            return Err(invalid());
        }
        Ok(cents as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_positive_amounts_in_cents() {
        let cents = |cost| CostRequest { cost }.cents();
        assert_eq!(cents(12.5), Ok(1250));
        assert_eq!(cents(0.01), Ok(1));
        assert_eq!(cents(19.99), Ok(1999));
        for bad in [0.0, -1.0, 0.001, 12.345, f64::NAN, f64::INFINITY, 1e12] {
            assert!(cents(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn restocks_add_at_least_one_copy() {
        assert_eq!(RestockRequest { quantity: 10 }.copies(), Ok(10));
        for bad in [0, -3, MAX_RESTOCK + 1] {
            assert!(RestockRequest { quantity: bad }.copies().is_err());
        }
    }

    #[test]
    fn book_ids_are_positive_integers() {
        assert_eq!(parse_book_id("7"), Ok(7));
        for bad in ["0", "-1", "abc", "1.5", ""] {
            assert!(matches!(
                parse_book_id(bad),
                Err(BookstoreError::UnknownBook(_))
            ));
        }
    }
}
