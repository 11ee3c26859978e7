//! Obelix: the distributed systems of the seeds as one supervised actix actor tree on PostgreSQL.
//!
//! A map of the house:
//! - [`startup`]: builds the tree (PostgreSQL, actors, HTTP) and runs it until a signal.
//! - [`settings`]: `config.toml` then `OBELIX__…` environment variables.
//! - [`storage`] and [`pg_cluster`]: the configured PostgreSQL, or a private cluster of our own.
//! - [`actors`]: one actor per file (Dispatcher, Frontend, Database, Publisher, ClusterKeeper),
//!   the supervisor that restarts them after a stop or a panic, and the router the ingress uses.
//! - [`web`]: the HTTP ingress, one resource per file, errors mapped to HTTP in `web::error`.
//! - Plain algorithms, free of actix and unit-tested: [`balance`] (load balancing),
//!   [`push_log`] (the replayable log of updates pushed to tablets), [`coordination`] (the
//!   front-end group's election, failure detection, clocks, total order and raffle).
//! - [`queue`]: the log queue of seed 004 (topics, partitions, consumer groups, retention): its
//!   domain types, its plain logic and its SQL; its actors are `actors::queue_*`.
//! - [`olympics`]: the domain types of the Olympic results service.
//! - [`clients`]: `obelix tablet` and `obelix cacofonix`, REST clients of a running server.

pub mod actors;
pub mod balance;
pub mod clients;
pub mod coordination;
pub mod olympics;
pub mod pg_cluster;
pub mod push_log;
pub mod queue;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod web;
