//! `obelix tablet`: a stone tablet (seeds 000, 001, 003). It registers with the dispatcher and
//! follows games and teams either by polling (periodically, and at once when Enter is pressed)
//! or by subscribing to pushes. Each result says where it came from: `(from server)`,
//! `(from cache)` when the server answered 304 to the tablet's cached copy, or `(pushed)`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::clients::sse::SseParser;
use crate::clients::{ClientError, expect_success, http_client};

#[derive(Debug, Clone, clap::Args)]
pub struct TabletArgs {
    /// The Obelix server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Games to follow, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "curling")]
    pub games: Vec<String>,
    /// Teams whose medals to follow, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "gauls,romans")]
    pub teams: Vec<String>,
    /// Subscribe to pushes instead of polling.
    #[arg(long)]
    pub push: bool,
    /// Seconds between polls.
    #[arg(long, default_value_t = 2.0)]
    pub every: f64,
    /// Stop after this many results (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
}

/// One cached reply: its ETag and body.
struct Cached {
    etag: String,
    body: Value,
}

pub async fn run(args: TabletArgs) -> Result<(), ClientError> {
    let client = http_client();
    let registered: Value = expect_success(
        client
            .post(format!("{}/olympics/tablets", args.server))
            .send()
            .await?,
    )
    .await?
    .json()
    .await?;
    let id = registered["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "tablet {id} registered, served by {}",
        registered["frontend"].as_str().unwrap_or("?")
    );
    let outcome = if args.push {
        follow_pushes(&client, &args, &id).await
    } else {
        poll(&client, &args, &id).await
    };
    let _ = client
        .delete(format!("{}/olympics/tablets/{id}", args.server))
        .send()
        .await;
    outcome
}

fn paths(args: &TabletArgs) -> Vec<String> {
    let games = args
        .games
        .iter()
        .map(|g| format!("/olympics/games/{g}/score"));
    let teams = args
        .teams
        .iter()
        .map(|t| format!("/olympics/teams/{t}/medals"));
    games.chain(teams).collect()
}

async fn poll(client: &reqwest::Client, args: &TabletArgs, id: &str) -> Result<(), ClientError> {
    let mut cache: HashMap<String, Cached> = HashMap::new();
    let mut printed = 0;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(args.every.max(0.05)));
    loop {
        // Periodic pull, or a forced one when the user presses Enter (seed 000's client).
        tokio::select! {
            _ = ticker.tick() => {}
            line = stdin.next_line(), if stdin_open => {
                if !matches!(line, Ok(Some(_))) { stdin_open = false; continue; }
            }
        }
        for path in paths(args) {
            let mut request = client
                .get(format!("{}{path}", args.server))
                .header("X-Tablet-Id", id);
            if let Some(cached) = cache.get(&path) {
                request = request.header("If-None-Match", &cached.etag);
            }
            let response = expect_success(request.send().await?).await?;
            if let Some(won) = response
                .headers()
                .get("X-Raffle-Won")
                .and_then(|v| v.to_str().ok())
            {
                println!("You won the raffle! (request #{won} across all servers)");
            }
            let source = if response.status() == reqwest::StatusCode::NOT_MODIFIED {
                "(from cache)"
            } else {
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = response.json().await?;
                cache.insert(path.clone(), Cached { etag, body });
                "(from server)"
            };
            println!("{} {source}", describe(&cache[&path].body));
            printed += 1;
            if args.count > 0 && printed >= args.count {
                return Ok(());
            }
        }
    }
}

async fn follow_pushes(
    client: &reqwest::Client,
    args: &TabletArgs,
    id: &str,
) -> Result<(), ClientError> {
    let mut last_event_id: Option<String> = None;
    let mut printed = 0;
    loop {
        let mut request = client.get(format!(
            "{}/olympics/tablets/{id}/events?games={}&teams={}",
            args.server,
            args.games.join(","),
            args.teams.join(",")
        ));
        if let Some(last) = &last_event_id {
            request = request.header("Last-Event-ID", last);
        }
        let response = expect_success(request.send().await?).await?;
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            for event in parser.push(&String::from_utf8_lossy(&chunk)) {
                last_event_id = event.id.clone().or(last_event_id);
                if let Ok(state) = serde_json::from_str::<Value>(&event.data) {
                    println!("{} (pushed)", describe(&state));
                    printed += 1;
                    if args.count > 0 && printed >= args.count {
                        return Ok(());
                    }
                }
            }
        }
        eprintln!("push stream ended; reconnecting from {last_event_id:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `curling: gauls 3, romans 1 (v4, 2026-11-24T10:00:00Z)` or `gauls: 2 gold, 0 silver, 1 bronze (…)`.
pub fn describe(state: &Value) -> String {
    let when = format!(
        "(v{}, {})",
        state["version"],
        state["updated_at"].as_str().unwrap_or("?")
    );
    if let Some(scores) = state["scores"].as_array() {
        let scores: Vec<String> = scores
            .iter()
            .map(|s| format!("{} {}", s["team"].as_str().unwrap_or("?"), s["points"]))
            .collect();
        format!(
            "{}: {} {when}",
            state["game"].as_str().unwrap_or("?"),
            scores.join(", ")
        )
    } else {
        format!(
            "{}: {} gold, {} silver, {} bronze {when}",
            state["team"].as_str().unwrap_or("?"),
            state["gold"],
            state["silver"],
            state["bronze"]
        )
    }
}
