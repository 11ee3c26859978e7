//! REST tests against the whole tree: real HTTP, real actors, real PostgreSQL.
mod admin;
mod bad_input;
mod cache;
mod clients;
mod cluster;
mod crashes;
mod fuzz;
mod helpers;
mod olympics;
mod order;
mod push;
mod queue;
mod queue_crashes;
mod raffle;
mod tablets;
