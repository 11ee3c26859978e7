//! Obelix: the distributed systems of the seeds as one supervised actix actor tree on PostgreSQL.
//!
//! A map of the house, by service: every service has a folder of the same name in [`actors`]
//! (its actors, one per file, and its `boot`), in [`web`] (its routes, one resource per file)
//! and, for its domain types and plain logic, at the top (`olympics`, `queue`, `rooms`).
//!
//! | service | actors | routes | domain and logic |
//! |---|---|---|---|
//! | Olympic results (seeds 000, 001) | `actors::olympics` | `web::olympics` | [`olympics`] |
//! | log queue (seed 004) | `actors::queue` | `web::queue`, and `web::kafka` (its Kafka REST Proxy v2 dialect) | [`queue`] (`queue::kafka`: v2 formats and consumer instances) |
//! | Pygmy.com bookstore (seed 002) | `actors::bookstore` | `web::bookstore` | [`bookstore`] |
//! | room reservation (seed 003) | `actors::rooms` | `web::rooms` | [`rooms`] |
//!
//! Shared machinery, once:
//! - [`startup`]: builds the tree (PostgreSQL, actors, HTTP) and runs it until a signal.
//! - [`settings`]: `config.toml` then `OBELIX__…` environment variables.
//! - [`storage`]: the configured PostgreSQL, or a private cluster of our own.
//! - [`actors`]: the tree's boot, the supervisor that restarts actors after a stop or a panic,
//!   the registry of actors by name, the server group (election, heartbeats) that the Olympic
//!   front-ends, the queue managers and the room servers embed, and the sequenced write log
//!   with group commit (`actors::write_log`) that the Olympic updates, the bookstore and the
//!   rooms write through.
//! - [`web`]: the HTTP ingress; errors mapped to HTTP in `web::error`; the OpenAPI document and
//!   `/docs` (`web::openapi`), `/metrics`, request ids and rate limits; the pages for people
//!   (`web::pages`, embedded in the binary).
//! - [`coordination`]: plain algorithms, free of actix and unit-tested: elections (bully, ring),
//!   failure detection, Berkeley and vector clocks, the hold-back queue of a total order, load
//!   balancing.
//! - [`clients`]: `obelix tablet`, `obelix cacofonix`, `obelix queue`, `obelix books` and
//!   `obelix rooms`, REST clients of a running server.
//! - [`telemetry`]: logs (text or JSON lines) and Prometheus metrics.

pub mod actors;
pub mod bookstore;
pub mod clients;
pub mod coordination;
pub mod olympics;
pub mod queue;
pub mod rooms;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod web;
