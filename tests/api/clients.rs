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
    // One readable line per update, by name ("Curling: Gauls 3 – Romans 1", "Gauls wins gold.
    // Gauls: 1 gold, 0 silver, 0 bronze"), then the summary.
    assert_eq!(lines.len(), 13, "{lines:?}");
    let named = ["Gauls", "Romans"];
    for line in &lines[..12] {
        assert!(
            named.iter().any(|n| line.contains(n)) && !line.contains('{') && !line.contains('/'),
            "not a readable line: {line}"
        );
    }
    assert!(lines[12].starts_with("Sent 12 updates in "), "{lines:?}");
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
    // Its only line is the summary: nothing sent.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().count() == 1 && stdout.starts_with("Sent 0 updates"),
        "it printed an update it did not make: {stdout}"
    );
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT sum(version) FROM games)::bigint + (SELECT count(*) FROM medal_awards)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(written, 0);
}

/// A client's next line on standard output, within 10 s.
async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10 s")
        .unwrap()
        .expect("the client is still printing")
}

/// Lines up to and including the first that contains `needle`.
async fn until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = next(lines).await;
        let done = line.contains(needle);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// Ctrl-C, as a user at the terminal would press it.
fn interrupt(child: &Child) {
    let pid = child.id().expect("still running") as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

async fn registered_tablets(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tablets")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_polling_tablet_draws_a_scoreboard_by_name_then_says_nothing_changed() {
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
        "3",
    ]);
    let lines = output_of(child).await;
    assert!(
        lines[0].starts_with("Tablet ") && lines[0].contains("registered"),
        "{lines:?}"
    );
    // The board, drawn once: names, a mark on what changed, when; where it came from.
    assert_eq!(lines[1], "Games", "{lines:?}");
    assert!(
        lines[2].starts_with("* Curling  Gauls 0 – Romans 0"),
        "{lines:?}"
    );
    assert_eq!(lines[3], "Medals", "{lines:?}");
    assert!(
        lines[4].starts_with("* Gauls    0 gold  0 silver  0 bronze"),
        "{lines:?}"
    );
    assert!(lines[5].starts_with("(from server) at "), "{lines:?}");
    // Then refreshes answered 304: no redraw, one line each.
    assert!(
        lines[6].starts_with("(from cache) at ") && lines[6].ends_with("nothing changed"),
        "{lines:?}"
    );
    assert!(lines[7].starts_with("(from cache) at "), "{lines:?}");
    assert_eq!(lines[8], "Tablet unregistered.", "{lines:?}");
    assert_eq!(registered_tablets(&app).await, 0);
}

#[actix_web::test]
async fn a_push_tablet_redraws_what_changed_and_unregisters_on_ctrl_c() {
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
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(next(&mut lines).await.contains("registered"));
    let snapshot = until(&mut lines, "(pushed)").await;
    assert!(
        snapshot
            .iter()
            .any(|l| l.starts_with("* Curling  Gauls 0 – Romans 0")),
        "{snapshot:?}"
    );
    assert_eq!(registered_tablets(&app).await, 1);
    app.put_score("curling", json!({ "scores": { "gauls": 4 } }))
        .await;
    let mut board = until(&mut lines, "(pushed)").await;
    while !board.iter().any(|l| l.contains("Gauls 4")) {
        // The snapshot's medals may come as a refresh of their own.
        board = until(&mut lines, "(pushed)").await;
    }
    assert!(
        board
            .iter()
            .any(|l| l.starts_with("* Curling  Gauls 4 – Romans 0")),
        "the change is marked: {board:?}"
    );
    assert!(
        board.iter().any(|l| l.starts_with("  Gauls ")),
        "what did not change is not marked: {board:?}"
    );
    interrupt(&child);
    assert_eq!(
        until(&mut lines, "unregistered").await.last().unwrap(),
        "Tablet unregistered."
    );
    assert!(child.wait().await.unwrap().success());
    assert_eq!(registered_tablets(&app).await, 0, "Ctrl-C unregistered it");
}

#[actix_web::test]
async fn a_client_without_a_server_says_so_and_how_to_start_one() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["tablet", "--server", &server, "--count", "1"],
        vec!["cacofonix", "--server", &server, "--count", "1"],
        vec!["queue", "--server", &server, "topics"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("cannot reach the Obelix server at {server}"))
                && stderr.contains("obelix serve"),
            "{args:?}: {stderr}"
        );
    }
}

#[actix_web::test]
async fn cacofonix_reads_the_servers_token_variable_and_help_never_shows_it() {
    let app = spawn_app().await;
    let help = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args(["cacofonix", "--help"])
        .env("OBELIX__OLYMPICS__REPORTER_TOKEN", REPORTER_TOKEN)
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("OBELIX__OLYMPICS__REPORTER_TOKEN"), "{help}");
    assert!(
        !help.contains(REPORTER_TOKEN),
        "--help printed the token: {help}"
    );
    // The server's variable is the reporter's token: the writes are accepted.
    let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args([
            "cacofonix",
            "--server",
            &app.address,
            "--rate",
            "100",
            "--count",
            "2",
        ])
        .env("OBELIX__OLYMPICS__REPORTER_TOKEN", REPORTER_TOKEN)
        .env_remove("OBELIX_REPORTER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // And the older variable still works.
    let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args([
            "cacofonix",
            "--server",
            &app.address,
            "--rate",
            "100",
            "--count",
            "1",
        ])
        .env_remove("OBELIX__OLYMPICS__REPORTER_TOKEN")
        .env("OBELIX_REPORTER_TOKEN", REPORTER_TOKEN)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
}

#[actix_web::test]
async fn queue_consume_follow_prints_every_partitions_messages_and_leaves_on_ctrl_c() {
    let app = spawn_app().await;
    let queue = app.queue();
    queue.create_topic("logs", 3).await.unwrap();
    let mut child = obelix(&[
        "queue",
        "--server",
        &app.address,
        "consume",
        "--topic",
        "logs",
        "--follow",
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let consumers = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM queue_consumers WHERE left_at IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    crate::helpers::eventually(Duration::from_secs(10), || async { consumers().await == 1 }).await;
    let producer = queue.create_producer(&["logs"]).await.unwrap();
    // One message to each partition in turn, each sent once the one before was printed: the
    // follower's long poll waits on all three partitions, so each comes at once, well inside
    // the 10 s a poll of one partition would have taken.
    for partition in [2, 0, 1] {
        let text = format!("to partition {partition}");
        producer.enqueue_to("logs", partition, &text).await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("printed within 5 s")
            .unwrap()
            .unwrap();
        let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(printed["message"], text.as_str());
        assert_eq!(printed["partition"], partition);
    }
    interrupt(&child);
    assert!(child.wait().await.unwrap().success());
    assert_eq!(
        consumers().await,
        0,
        "the consumer was deleted on the way out"
    );
}
