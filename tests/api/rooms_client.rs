//! `obelix rooms`, driven through its prompt with piped input, as seed 003's sample session.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::spawn_app;

/// Runs `obelix rooms` against `server` with `input` piped in; its whole output.
async fn session(server: &str, input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .args(["rooms", "--server", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the obelix binary runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the client finished within 30 s")
        .unwrap();
    assert!(output.status.success(), "exit status {}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

/// The replies, one per command, without the prompts.
fn replies(output: &str) -> Vec<String> {
    output
        .split("Next command: ")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn the_seeds_client_session_marks_cache_and_servers() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    let output = session(
        &app.address,
        "rooms\ntimeslots\ncheck ME4326\nrooms\ndays\nreserve ME4326 8:30-9:30 Friday\ncheck ME4326\ndays\nreserve ME4326 8:30-9:30 Friday\nfrobnicate\nquit\n",
    )
    .await;
    let r = replies(&output);
    assert_eq!(r.len(), 11, "{output}");
    assert_eq!(
        r[0],
        "(From servers): SA318\nME4494\nSA314\nMC5050\nME4326\nSA412"
    );
    assert!(
        r[1].starts_with("(From servers): 8:30-9:30\n9:30-10:30"),
        "{}",
        r[1]
    );
    assert!(r[1].ends_with("19:30-21:00"), "{}", r[1]);
    assert_eq!(r[2], "(From servers): No room reservation found");
    assert_eq!(
        r[3],
        "(From cache): SA318\nME4494\nSA314\nMC5050\nME4326\nSA412"
    );
    assert_eq!(
        r[4],
        "(From servers): Monday\nTuesday\nWednesday\nThursday\nFriday"
    );
    assert!(
        r[5].starts_with("(From servers): Reservation confirmed (ME4326 8:30-9:30 Friday"),
        "{}",
        r[5]
    );
    // The reserve dropped the cached check: it goes to the servers and shows the reservation.
    assert!(
        r[6].starts_with("(From servers): ME4326 8:30-9:30 Friday"),
        "{}",
        r[6]
    );
    assert_eq!(
        r[7],
        "(From cache): Monday\nTuesday\nWednesday\nThursday\nFriday"
    );
    assert!(r[8].contains("already reserved"), "{}", r[8]);
    assert!(r[9].starts_with("commands:"), "{}", r[9]);
    assert_eq!(r[10], "bye");
}

#[actix_web::test]
async fn with_no_server_up_the_client_says_so_and_keeps_the_prompt() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    for id in [1, 2, 3] {
        assert_eq!(app.kill_room_server(id).await.status(), 204);
    }
    let output = session(&app.address, "rooms\ncheck SA318\nquit\n").await;
    let r = replies(&output);
    assert_eq!(r.len(), 3, "{output}");
    assert_eq!(r[0], "No room server is up; try again later.");
    assert_eq!(r[1], "No room server is up; try again later.");
    assert_eq!(r[2], "bye");
    // Nothing listening at all: the same message, and the prompt goes on until the input ends.
    let output = session("http://127.0.0.1:9", "rooms\ndays\n").await;
    let r = replies(&output);
    assert_eq!(r.len(), 2, "{output}");
    assert!(
        r.iter().all(|l| l.starts_with("No room server is up")),
        "{output}"
    );
}
