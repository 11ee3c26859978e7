//! REST tests against the whole tree: real HTTP, real actors, real PostgreSQL.
mod admin;
mod bad_input;
mod bookstore;
mod bookstore_crashes;
mod cache;
mod clients;
mod cluster;
mod crashes;
mod helpers;
mod olympics;
mod order;
mod push;
mod queue;
mod queue_crashes;
mod raffle;
mod tablets;
mod write_log;
