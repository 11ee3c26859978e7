//! Settings Obelix refuses at start, a normal start that logs no warning, and JSON logs that
//! name the request in the actors' events.

use std::time::Duration;

use crate::{Obelix, REPORTER_TOKEN, await_ready, client, data_dir, eventually, run_until_exit};

/// Asserts that obelix refused to start at once, with one line on stderr containing `expected`.
fn assert_refused(env: &[(&str, &str)], expected: &[&str]) {
    let Some((status, stdout, stderr)) = run_until_exit(env, Duration::from_secs(10)) else {
        panic!("obelix started with {env:?} instead of refusing");
    };
    assert!(!status.success(), "exit status {status} for {env:?}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line for {env:?}: {stderr}"
    );
    for word in expected {
        assert!(
            stderr.contains(word),
            "{word} in the error for {env:?}: {stderr}"
        );
    }
    assert!(
        !stdout.contains("panic") && !stderr.contains("panic"),
        "no panic: {stdout}{stderr}"
    );
}

#[test]
fn a_misspelled_setting_stops_the_start_and_names_the_key() {
    // From the environment…
    assert_refused(
        &[("OBELIX__SERVER__MAX_BODY_BYTE", "1000")],
        &["max_body_byte"],
    );
    assert_refused(&[("OBELIX__QUEUE__MAXBATCH", "5")], &["maxbatch"]);
    // …and from the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obelix.toml");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .unwrap()
        .replace("cache_capacity = 10000", "cache_capacty = 10000");
    std::fs::write(&file, shipped).unwrap();
    assert_refused(
        &[("OBELIX_CONFIG", file.to_str().unwrap())],
        &["cache_capacty"],
    );
}

#[test]
fn contradicting_settings_stop_the_start() {
    // A message the body limit never lets through.
    assert_refused(
        &[("OBELIX__QUEUE__MAX_MESSAGE_BYTES", "100000")],
        &["queue.max_message_bytes", "server.max_body_bytes"],
    );
}

/// Warnings that a normal start still logs from service code (reported to the lead; not this
/// branch's files). Remove each once its service no longer warns for normal operation.
const KNOWN_START_WARNINGS_IN_SERVICE_CODE: &[&str] = &[
    // src/startup.rs: a token left at its development value from config.toml is worth a
    // warning at every start (the tests run with the shipped queue and bookstore tokens).
    "is the development one from config.toml",
    // src/actors/queue/manager.rs: on a loaded machine the brokers' first health check can miss
    // its 500 ms deadline while they load their partitions.
    "health check: broker",
];

#[tokio::test]
async fn a_normal_start_logs_no_warning() {
    let (_guard, data) = data_dir();
    let obelix = Obelix::start(&data);
    // Up, ready, and a moment for the groups' first elections and health checks.
    eventually(Duration::from_secs(30), || {
        obelix
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Election completed"))
    })
    .await;
    await_ready(&obelix.base_url).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = obelix.log.lock().unwrap().clone();
    let warnings: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| {
            !KNOWN_START_WARNINGS_IN_SERVICE_CODE
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    assert!(warnings.is_empty(), "a normal start warned: {warnings:#?}");
}

#[tokio::test]
async fn json_logs_name_the_request_in_the_actors_events() {
    // 1. JSON lines, with the actors' hops logged (trace).
    let (_guard, data) = data_dir();
    let obelix = Obelix::start_with(
        &data,
        &[
            ("OBELIX__LOG__FORMAT", "json"),
            ("RUST_LOG", "info,obelix=trace"),
        ],
    );
    // 2. A reporter write with an id of the client's.
    let response = client()
        .put(format!("{}/olympics/games/curling/score", obelix.base_url))
        .bearer_auth(REPORTER_TOKEN)
        .header("X-Request-Id", "process-json-1")
        .json(&serde_json::json!({"scores": {"gauls": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "process-json-1");
    // 3. Every line is a JSON object, and the front-end's and the update log's events for
    //    the write name the request in their span list.
    let touched = |target: &str| {
        obelix.log.lock().unwrap().iter().any(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            event["target"].as_str().is_some_and(|t| t.contains(target))
                && event["spans"][0]["request_id"] == "process-json-1"
        })
    };
    eventually(Duration::from_secs(10), || {
        touched("actors::olympics::frontend") && touched("actors::write_log")
    })
    .await;
}
