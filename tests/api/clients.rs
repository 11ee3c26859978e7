//! The `obelix tablet` and `obelix cacofonix` clients, run as a user would, against the tree.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{REPORTER_TOKEN, spawn_app};

fn obelix(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the obelix binary runs")
}

async fn output_of(child: Child) -> Vec<String> {
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the client finished within 30 s")
        .unwrap();
    assert!(output.status.success(), "exit status {}", output.status);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn cacofonix_plays_updates_that_the_server_keeps() {
    let app = spawn_app().await;
    let child = obelix(&[
        "cacofonix",
        "--server",
        &app.address,
        "--token",
        REPORTER_TOKEN,
        "--rate",
        "100",
        "--count",
        "12",
    ]);
    let lines = output_of(child).await;
    assert_eq!(lines.len(), 12, "{lines:?}");
    let score_updates: i64 = sqlx::query_scalar("SELECT sum(version)::bigint FROM games")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let medals: i64 = sqlx::query_scalar("SELECT count(*) FROM medal_awards")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        score_updates + medals,
        12,
        "every update the reporter printed is stored"
    );
}

#[actix_web::test]
async fn cacofonix_without_the_token_fails_loudly() {
    let app = spawn_app().await;
    let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args([
            "cacofonix",
            "--server",
            &app.address,
            "--token",
            "wrong",
            "--count",
            "1",
        ])
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("cacofonix gave up within 30 s")
        .unwrap();
    assert!(!output.status.success());
    // It failed because the server refused the token, and said so; and it wrote nothing.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("bearer token"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "it printed an update it did not make"
    );
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT sum(version) FROM games)::bigint + (SELECT count(*) FROM medal_awards)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(written, 0);
}

#[actix_web::test]
async fn a_polling_tablet_shows_server_then_cached_results() {
    let app = spawn_app().await;
    let child = obelix(&[
        "tablet",
        "--server",
        &app.address,
        "--games",
        "curling",
        "--teams",
        "gauls",
        "--every",
        "0.05",
        "--count",
        "4",
    ]);
    let lines = output_of(child).await;
    assert!(
        lines[0].starts_with("tablet ") && lines[0].contains("registered"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("curling: gauls 0, romans 0") && lines[1].ends_with("(from server)"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("gauls: 0 gold") && lines[2].ends_with("(from server)"),
        "{lines:?}"
    );
    assert!(
        lines[3].ends_with("(from cache)") && lines[4].ends_with("(from cache)"),
        "{lines:?}"
    );
    // It unregistered on its way out.
    let tablets: i64 = sqlx::query_scalar("SELECT count(*) FROM tablets")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tablets, 0);
}

#[actix_web::test]
async fn a_push_tablet_prints_each_update_as_it_happens() {
    let app = spawn_app().await;
    let mut child = obelix(&[
        "tablet",
        "--push",
        "--server",
        &app.address,
        "--games",
        "curling",
        "--teams",
        "gauls",
        "--count",
        "3",
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the tablet is still printing")
    }
    assert!(next(&mut lines).await.contains("registered"));
    assert!(
        next(&mut lines).await.starts_with("curling: gauls 0"),
        "snapshot first"
    );
    assert!(
        next(&mut lines).await.starts_with("gauls: 0 gold"),
        "snapshot first"
    );
    app.put_score("curling", json!({ "scores": { "gauls": 4 } }))
        .await;
    let pushed = next(&mut lines).await;
    assert!(
        pushed.starts_with("curling: gauls 4") && pushed.ends_with("(pushed)"),
        "{pushed}"
    );
    assert!(child.wait().await.unwrap().success());
}
