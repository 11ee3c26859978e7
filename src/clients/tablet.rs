//! `obelix tablet`: a stone tablet (seeds 000, 001, 003). It registers with the dispatcher and
//! follows games and teams either by polling (periodically, and at once when Enter is pressed)
//! or by subscribing to pushes, and draws them as a small scoreboard ([`Board`]): names, when
//! each last changed, a `*` on what the latest refresh changed. It redraws only when something
//! changed; every refresh says once where its data came from: `(from server)`, `(from cache)`
//! when the server answered 304 to every cached copy, or `(pushed)`. Ctrl-C (or SIGTERM)
//! unregisters the tablet before it exits, so it does not skew the dispatcher's balancing.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::clients::board::Board;
use crate::clients::sse::events;
use crate::clients::{ClientError, expect_success, http_client, names, shutdown_signal};

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
    /// Stop after this many refreshes (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
}

/// One cached reply: its ETag and body.
struct Cached {
    etag: String,
    body: Value,
}

/// Draws the board: in place on a terminal, as a block of lines otherwise.
struct Screen {
    board: Board,
    tty: bool,
    refreshes: usize,
}

impl Screen {
    /// Ends a refresh: redraws the board if `changed`, and says where the data came from.
    fn refreshed(&mut self, changed: bool, source: &str) {
        let now = chrono::Utc::now();
        let stamp = now.with_timezone(&chrono::Local).format("%H:%M:%S");
        if changed {
            let mut text = String::new();
            if self.tty {
                text.push_str("\x1b[H\x1b[2J"); // home, clear
            }
            for line in self.board.render(now) {
                text.push_str(&line);
                text.push('\n');
            }
            text.push_str(&format!("({source}) at {stamp}"));
            if !self.tty {
                text.push('\n');
            }
            print!("{text}");
        } else if self.tty {
            print!("\r\x1b[K({source}) at {stamp}, nothing changed");
        } else {
            println!("({source}) at {stamp}, nothing changed");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        self.refreshes += 1;
    }
}

pub async fn run(args: TabletArgs) -> Result<(), ClientError> {
    let client = http_client();
    let names = names(&client, &args.server).await?;
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
        "Tablet {} registered, served by {}. Ctrl-C to leave.",
        registered["label"].as_str().unwrap_or(&id),
        registered["frontend"].as_str().unwrap_or("?")
    );
    let mut screen = Screen {
        board: Board::new(names),
        tty: std::io::stdout().is_terminal(),
        refreshes: 0,
    };
    let outcome = tokio::select! {
        outcome = async {
            if args.push {
                follow_pushes(&client, &args, &id, &mut screen).await
            } else {
                poll(&client, &args, &id, &mut screen).await
            }
        } => outcome,
        () = shutdown_signal() => Ok(()),
    };
    if screen.tty {
        println!();
    }
    let left = client
        .delete(format!("{}/olympics/tablets/{id}", args.server))
        .send()
        .await;
    match left {
        Ok(response) if response.status().is_success() => println!("Tablet unregistered."),
        Ok(response) => eprintln!("could not unregister the tablet: {}", response.status()),
        Err(e) => eprintln!("could not unregister the tablet: {e}"),
    }
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

async fn poll(
    client: &reqwest::Client,
    args: &TabletArgs,
    id: &str,
    screen: &mut Screen,
) -> Result<(), ClientError> {
    let mut cache: HashMap<String, Cached> = HashMap::new();
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
        screen.board.begin_refresh();
        let (mut changed, mut from_server) = (false, false);
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
            if response.status() != reqwest::StatusCode::NOT_MODIFIED {
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = response.json().await?;
                cache.insert(path.clone(), Cached { etag, body });
                from_server = true;
            }
            changed |= screen.board.apply(&cache[&path].body);
        }
        let source = if from_server {
            "from server"
        } else {
            "from cache"
        };
        screen.refreshed(changed, source);
        if args.count > 0 && screen.refreshes >= args.count {
            return Ok(());
        }
    }
}

async fn follow_pushes(
    client: &reqwest::Client,
    args: &TabletArgs,
    id: &str,
    screen: &mut Screen,
) -> Result<(), ClientError> {
    let mut last_event_id: Option<String> = None;
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
        let mut stream = Box::pin(events(response.bytes_stream()));
        while let Some(Ok(first)) = stream.next().await {
            // One refresh takes every event already received (a snapshot comes as several).
            screen.board.begin_refresh();
            let mut changed = false;
            let mut event = Some(first);
            while let Some(e) = event {
                last_event_id = e.id.clone().or(last_event_id);
                if let Ok(state) = serde_json::from_str::<Value>(&e.data) {
                    changed |= screen.board.apply(&state);
                }
                event = match stream.next().now_or_never() {
                    Some(Some(Ok(next))) => Some(next),
                    _ => None,
                };
            }
            screen.refreshed(changed, "pushed");
            if args.count > 0 && screen.refreshes >= args.count {
                return Ok(());
            }
        }
        eprintln!(
            "The push stream ended; reconnecting from event {}",
            last_event_id.as_deref().unwrap_or("(none)")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
