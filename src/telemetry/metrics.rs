//! Prometheus metrics through the `metrics` facade: the actors count with its macros (a counter
//! increment or a histogram sample, lock-free), and `GET /metrics` renders the exporter's
//! handle. Gauges that describe state (queue depth and lag, the database pool) are not kept up
//! to date on the hot paths: the route computes them from the actors' state when scraped.
//!
//! Every name is here, with its labels; each label takes values from a set bounded by the
//! configuration (routes as their templates, actors and groups by name, topics and partitions
//! within `queue.max_total_partitions`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `method`, `route` (the matched template, e.g.
/// `/olympics/games/{game}/score`; `unmatched` for paths no route has) and `status`.
pub const HTTP_REQUESTS: &str = "obelix_http_requests_total";
/// Time from the request's head to its response's head, by `method` and `route` (seconds).
pub const HTTP_DURATION: &str = "obelix_http_request_duration_seconds";
/// Requests answered 429 by the rate limiter (also in `HTTP_REQUESTS`), by `route`.
pub const RATE_LIMITED: &str = "obelix_rate_limited_total";
/// Cache lookups by `service` (`olympics`, `bookstore`, `queue`) and `result` (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "obelix_cache_lookups_total";
/// Elections a member of `group` ran (each member that takes part counts its own).
pub const ELECTIONS: &str = "obelix_elections_total";
/// Leaders that took office in `group` (counted once, by the new leader).
pub const LEADER_CHANGES: &str = "obelix_leader_changes_total";
/// Restarts by the supervisor, by `actor`.
pub const ACTOR_RESTARTS: &str = "obelix_actor_restarts_total";
/// Entries per group commit, by `log` (`queue-broker-N`, or a write log's name).
pub const GROUP_COMMIT_SIZE: &str = "obelix_group_commit_size";
/// Messages held by a partition (its end minus its start), by `topic` and `partition`.
pub const QUEUE_DEPTH: &str = "obelix_queue_depth_messages";
/// Committed messages the slowest reader (consumer or group) of a partition has not read, by
/// `topic` and `partition`.
pub const QUEUE_LAG: &str = "obelix_queue_consumer_lag_messages";
/// The database pool's connections by `state` (`in_use`, `idle`), and its ceiling.
pub const DB_POOL_CONNECTIONS: &str = "obelix_db_pool_connections";
pub const DB_POOL_MAX: &str = "obelix_db_pool_max_connections";

/// Latency buckets (seconds): 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Group-commit size buckets: 1 to 4,096 entries, doubling.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// How often samples waiting in histograms are folded into their buckets when nobody scrapes
/// (keeps their memory bounded).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (one per process: tests start many apps).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_SIZE.into()), SIZE_BUCKETS)
            })
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (an embedder's) keeps the macros; ours renders
        // what it sees, which is then nothing but the scrape-time gauges.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::info!("a metrics recorder was already installed; /metrics shows only gauges");
        }
        describe();
        handle.clone()
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 by the per-client rate limit"
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Cache lookups by service and result (hit, miss)"
    );
    describe_counter!(ELECTIONS, "Elections run by members of each server group");
    describe_counter!(
        LEADER_CHANGES,
        "New leaders that took office, by server group"
    );
    describe_counter!(ACTOR_RESTARTS, "Actor restarts by the supervisor, by actor");
    describe_histogram!(
        GROUP_COMMIT_SIZE,
        "Entries committed together, by log or broker"
    );
    describe_gauge!(QUEUE_DEPTH, "Messages held by each queue partition");
    describe_gauge!(
        QUEUE_LAG,
        "Messages the slowest reader of a partition has not read"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections by state");
    describe_gauge!(DB_POOL_MAX, "The database pool's ceiling");
}

/// Counts a cache lookup of `service`.
#[inline]
pub fn cache_lookup(service: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "service" => service, "result" => result).increment(1);
}

/// Records one group commit of `entries` by `log`.
#[inline]
pub fn group_commit(log: &str, entries: usize) {
    metrics::histogram!(GROUP_COMMIT_SIZE, "log" => log.to_owned()).record(entries as f64);
}

/// Folds histogram samples into their buckets every [`UPKEEP_INTERVAL`] so that they do not
/// pile up between scrapes: a thread of its own, once per process (tests start many Systems).
pub fn start_upkeep() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let handle = handle();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    handle.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the metrics upkeep thread");
        }
    });
}
