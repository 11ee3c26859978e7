//! `obelix rooms`: seed 003's caching client of the room reservation service, an interactive
//! prompt (`Next command:`) that also reads commands from a pipe.
//!
//! Caching: every reply of a read is kept with its ETag; asking again sends `If-None-Match`, and
//! a `304 Not Modified` is shown from the cache, marked `(From cache)`; anything the servers sent
//! is marked `(From servers)`. So a cached reply is never stale: the servers confirm it, with a
//! reply that carries no body. A reserve drops the cached check of its room, a cancel every
//! cached check (a cancel names no room), so the next check goes to the servers. With no server
//! up the client says so and keeps the prompt.

use std::collections::HashMap;
use std::io::Write;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::clients::{ClientError, http_client};

#[derive(Debug, Clone, clap::Args)]
pub struct RoomsArgs {
    /// The Obelix server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
}

const HELP: &str =
    "commands: rooms, timeslots, days, check ROOM, reserve ROOM TIMESLOT DAY, cancel ID, quit";
const NO_SERVER: &str = "No room server is up; try again later.";

/// One cached reply: its ETag and body.
struct Cached {
    etag: String,
    body: Value,
}

struct Client {
    http: reqwest::Client,
    server: String,
    cache: HashMap<String, Cached>,
}

pub async fn run(args: RoomsArgs) -> Result<(), ClientError> {
    let mut client = Client {
        http: http_client(),
        server: args.server.trim_end_matches('/').to_owned(),
        cache: HashMap::new(),
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("Next command: ");
        let _ = std::io::stdout().flush();
        let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| ClientError::Decode(format!("stdin: {e}")))?
        else {
            println!();
            return Ok(());
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["quit"] | ["exit"] => {
                println!("bye");
                return Ok(());
            }
            ["rooms"] => client.read("/rooms/rooms", "rooms").await,
            ["timeslots"] => client.read("/rooms/timeslots", "timeslots").await,
            ["days"] => client.read("/rooms/days", "days").await,
            ["check", room] => client.check(room).await,
            ["reserve", room, timeslot, day] => client.reserve(room, timeslot, day).await,
            ["cancel", id] => match id.parse::<i64>() {
                Ok(id) => client.cancel(id).await,
                Err(_) => Ok(format!("not a reservation id: {id}")),
            },
            _ => Ok(HELP.to_owned()),
        };
        match reply {
            Ok(text) => println!("{text}"),
            Err(e) if is_unreachable(&e) => println!("{NO_SERVER} ({e})"),
            Err(e) => println!("error: {e}"),
        }
    }
}

fn is_unreachable(e: &ClientError) -> bool {
    matches!(e, ClientError::Http(e) if e.is_connect() || e.is_timeout())
}

impl Client {
    /// A GET through the cache: the body and where it came from.
    async fn get(
        &mut self,
        path: &str,
    ) -> Result<Result<(&'static str, Value), String>, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.server));
        if let Some(cached) = self.cache.get(path) {
            request = request.header(IF_NONE_MATCH, &cached.etag);
        }
        let response = request.send().await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && let Some(cached) = self.cache.get(path)
        {
            return Ok(Ok(("(From cache)", cached.body.clone())));
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Ok(Err(refusal(status, &body)));
        }
        if let Some(etag) = etag {
            self.cache.insert(
                path.to_owned(),
                Cached {
                    etag,
                    body: body.clone(),
                },
            );
        }
        Ok(Ok(("(From servers)", body)))
    }

    /// `rooms`, `timeslots`, `days`: one item a line.
    async fn read(&mut self, path: &str, field: &str) -> Result<String, ClientError> {
        Ok(match self.get(path).await? {
            Ok((mark, body)) => {
                let items: Vec<&str> = body[field]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                format!("{mark}: {}", items.join("\n"))
            }
            Err(refused) => refused,
        })
    }

    async fn check(&mut self, room: &str) -> Result<String, ClientError> {
        Ok(match self.get(&check_path(room)).await? {
            Ok((mark, body)) => {
                let lines: Vec<String> = body["reservations"]
                    .as_array()
                    .map(|a| a.iter().map(describe).collect())
                    .unwrap_or_default();
                if lines.is_empty() {
                    format!("{mark}: No room reservation found")
                } else {
                    format!("{mark}: {}", lines.join("\n"))
                }
            }
            Err(refused) => refused,
        })
    }

    async fn reserve(
        &mut self,
        room: &str,
        timeslot: &str,
        day: &str,
    ) -> Result<String, ClientError> {
        let response = self
            .http
            .post(format!("{}{}", self.server, check_path(room)))
            .json(&json!({ "timeslot": timeslot, "day": day }))
            .send()
            .await?;
        // Whatever the answer, what was cached about this room may be stale now.
        self.cache.remove(&check_path(room));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(if status == StatusCode::CREATED {
            format!(
                "(From servers): Reservation confirmed ({})",
                describe(&body)
            )
        } else {
            refusal(status, &body)
        })
    }

    async fn cancel(&mut self, id: i64) -> Result<String, ClientError> {
        let response = self
            .http
            .delete(format!("{}/rooms/reservations/{id}", self.server))
            .send()
            .await?;
        self.cache
            .retain(|path, _| !path.ends_with("/reservations"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(if status.is_success() {
            format!(
                "(From servers): Reservation cancelled ({})",
                describe(&body)
            )
        } else {
            refusal(status, &body)
        })
    }
}

fn check_path(room: &str) -> String {
    format!("/rooms/rooms/{room}/reservations")
}

/// `ME4326 8:30-9:30 Friday (id 7)`
fn describe(r: &Value) -> String {
    format!(
        "{} {} {} (id {})",
        r["room"].as_str().unwrap_or("?"),
        r["timeslot"].as_str().unwrap_or("?"),
        r["day"].as_str().unwrap_or("?"),
        r["id"]
    )
}

/// What the servers said no with.
fn refusal(status: StatusCode, body: &Value) -> String {
    let error = body["error"].as_str().unwrap_or("no details");
    match status {
        StatusCode::SERVICE_UNAVAILABLE if error == "no room server is up" => NO_SERVER.to_owned(),
        StatusCode::SERVICE_UNAVAILABLE => {
            format!("The servers did not answer in time ({error}); try again.")
        }
        _ => format!("(From servers): {error}"),
    }
}
