//! `obelix cacofonix`: the reporter. Plays a plausible stream of score updates and medal awards
//! at a chosen rate, with its token; every write carries an idempotency key, and a failed one
//! is retried under the same key. Prints one readable line per update (`Curling: Gauls 3 –
//! Romans 1`) and a summary when it stops (its count reached, Ctrl-C or SIGTERM).
//!
//! The token comes from `--token`, else `OBELIX__OLYMPICS__REPORTER_TOKEN` (the server's own
//! setting), else the older `OBELIX_REPORTER_TOKEN`, else the development token. `--help`
//! never shows its value.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use crate::clients::{ClientError, expect_success, http_client};

#[derive(Debug, Clone, clap::Args)]
pub struct CacofonixArgs {
    /// The Obelix server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The reporter's bearer token [default: the development token; also read from
    /// OBELIX_REPORTER_TOKEN].
    #[arg(long, env = "OBELIX__OLYMPICS__REPORTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Updates per second.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Stop after this many updates (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
}

const RETRIES: u32 = 5;

/// The development token (config.toml's `olympics.reporter_token`).
const DEVELOPMENT_TOKEN: &str = "cacofonix-dev-token";

/// What was sent, for the summary.
#[derive(Default)]
struct Tally {
    scores: usize,
    medals: HashMap<String, usize>,
    retries: u32,
}

impl Tally {
    fn summary(&self, elapsed: Duration) -> String {
        let medals: usize = self.medals.values().sum();
        let kinds: Vec<String> = ["gold", "silver", "bronze"]
            .iter()
            .map(|m| format!("{} {m}", self.medals.get(*m).copied().unwrap_or(0)))
            .collect();
        format!(
            "Sent {} updates in {:.1} s: {} scores, {medals} medals ({}); {} retries.",
            self.scores + medals,
            elapsed.as_secs_f64(),
            self.scores,
            kinds.join(", "),
            self.retries
        )
    }
}

pub async fn run(mut args: CacofonixArgs) -> Result<(), ClientError> {
    args.token = args
        .token
        .take()
        .or_else(|| std::env::var("OBELIX_REPORTER_TOKEN").ok())
        .or_else(|| Some(DEVELOPMENT_TOKEN.to_owned()));
    let client = http_client();
    let names = crate::clients::names(&client, &args.server).await?;
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let outcome = tokio::select! {
        outcome = play(&client, &args, &names, &mut tally) => outcome,
        () = crate::clients::shutdown_signal() => Ok(()),
    };
    println!("{}", tally.summary(started.elapsed()));
    outcome
}

async fn play(
    client: &reqwest::Client,
    args: &CacofonixArgs,
    names: &HashMap<String, String>,
    tally: &mut Tally,
) -> Result<(), ClientError> {
    let slugs = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", args.server);
        async move {
            let list: Vec<Value> = expect_success(client.get(url).send().await?)
                .await?
                .json()
                .await?;
            Ok::<_, ClientError>(
                list.iter()
                    .filter_map(|v| v["slug"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let games = slugs("/olympics/games").await?;
    let teams = slugs("/olympics/teams").await?;
    let mut points: HashMap<(String, String), u32> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(0.01)));
    let mut sent = 0;
    while args.count == 0 || sent < args.count {
        ticker.tick().await;
        let (method, path, body, key) = {
            let mut rng = rand::rng();
            let team = teams.choose(&mut rng).cloned().unwrap_or_default();
            if rng.random_bool(0.2) {
                let medal = ["gold", "silver", "bronze"]
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("gold");
                let key = format!("cacofonix-{}", uuid::Uuid::new_v4());
                (
                    reqwest::Method::POST,
                    format!("/olympics/teams/{team}/medals"),
                    json!({ "medal": medal }),
                    Some(key),
                )
            } else {
                let game = games.choose(&mut rng).cloned().unwrap_or_default();
                let score = points.entry((game.clone(), team.clone())).or_insert(0);
                *score += rng.random_range(1..=3);
                (
                    reqwest::Method::PUT,
                    format!("/olympics/games/{game}/score"),
                    json!({ "scores": { team: *score } }),
                    Some(format!("cacofonix-{}", uuid::Uuid::new_v4())),
                )
            }
        };
        let medal = body["medal"].as_str().map(str::to_owned);
        let reply = write(client, args, method, &path, &body, key.as_deref(), tally).await?;
        let line = crate::clients::board::describe(&reply, names);
        match medal {
            Some(medal) => {
                println!("{} wins {medal}. {line}", name_of(names, &reply["team"]));
                *tally.medals.entry(medal).or_default() += 1;
            }
            None => {
                println!("{line}");
                tally.scores += 1;
            }
        }
        sent += 1;
    }
    Ok(())
}

/// One write, retried on connection errors and 5xx under its idempotency key (counted once).
async fn write(
    client: &reqwest::Client,
    args: &CacofonixArgs,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    idempotency_key: Option<&str>,
    tally: &mut Tally,
) -> Result<Value, ClientError> {
    let mut attempt = 0;
    loop {
        let mut request = client
            .request(method.clone(), format!("{}{path}", args.server))
            .bearer_auth(args.token.as_deref().unwrap_or(DEVELOPMENT_TOKEN))
            .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_server_error() && attempt < RETRIES => None,
            Ok(response) => Some(expect_success(response).await?.json().await?),
            Err(e) if attempt < RETRIES => {
                eprintln!("{path}: {e}; retrying");
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(reply) = outcome {
            return Ok(reply);
        }
        attempt += 1;
        tally.retries += 1;
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
}

fn name_of(names: &HashMap<String, String>, slug: &Value) -> String {
    let slug = slug.as_str().unwrap_or("?");
    names.get(slug).cloned().unwrap_or_else(|| slug.to_owned())
}
