//! `obelix cacofonix`: the reporter. Plays a plausible stream of score updates and medal awards
//! at a chosen rate, with its token; every write carries an idempotency key, and a failed one
//! is retried under the same key.

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
    /// The reporter's bearer token.
    #[arg(
        long,
        env = "OBELIX_REPORTER_TOKEN",
        default_value = "cacofonix-dev-token"
    )]
    pub token: String,
    /// Updates per second.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Stop after this many updates (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
}

const RETRIES: u32 = 5;

pub async fn run(args: CacofonixArgs) -> Result<(), ClientError> {
    let client = http_client();
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
        let reply = write(&client, &args, method, &path, &body, key.as_deref()).await?;
        println!(
            "{path} {body} -> {}",
            crate::clients::tablet::describe(&reply)
        );
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
) -> Result<Value, ClientError> {
    let mut attempt = 0;
    loop {
        let mut request = client
            .request(method.clone(), format!("{}{path}", args.server))
            .bearer_auth(&args.token)
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
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
}
