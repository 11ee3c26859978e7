//! `obelix books list | search TOPIC | lookup ID | buy ID`: the Pygmy.com shopper's client.
//! Prints what a shopper wants to read: titles, prices, stock, and the order after a buy. A buy
//! carries an idempotency key and is retried with it, so a retry never buys twice.

use std::time::Duration;

use serde_json::Value;

use crate::clients::{ClientError, expect_success, http_client};

#[derive(Debug, Clone, clap::Args)]
pub struct BooksArgs {
    /// The Obelix server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[command(subcommand)]
    pub command: BooksCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BooksCommand {
    /// Every book in the store.
    List,
    /// The books of one topic, e.g. "distributed systems".
    Search { topic: String },
    /// One book: title, topic, cost and copies in stock.
    Lookup { id: String },
    /// Buy one copy of a book.
    Buy { id: String },
}

const RETRIES: u32 = 5;

pub async fn run(args: BooksArgs) -> Result<(), ClientError> {
    let client = http_client();
    let base = format!("{}/bookstore", args.server.trim_end_matches('/'));
    match args.command {
        BooksCommand::List => print_books(&fetch(&client, &format!("{base}/books"), &[]).await?),
        BooksCommand::Search { topic } => {
            let books = fetch(
                &client,
                &format!("{base}/books"),
                &[("topic", topic.as_str())],
            )
            .await?;
            if books.as_array().is_some_and(|b| b.is_empty()) {
                println!("no books on {topic:?}");
            }
            print_books(&books);
        }
        BooksCommand::Lookup { id } => {
            let book = fetch(&client, &format!("{base}/books/{id}"), &[]).await?;
            println!("{}", describe(&book));
            println!("  topic: {}", book["topic"].as_str().unwrap_or("?"));
        }
        BooksCommand::Buy { id } => {
            let order = buy(&client, &format!("{base}/books/{id}/buy")).await?;
            println!(
                "bought {:?} for {} (order {}, sold by {} at {})",
                order["title"].as_str().unwrap_or("?"),
                price(&order["price"]),
                order["id"],
                order["order_server"].as_str().unwrap_or("?"),
                order["ordered_at"].as_str().unwrap_or("?"),
            );
        }
    }
    Ok(())
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
) -> Result<Value, ClientError> {
    Ok(expect_success(client.get(url).query(query).send().await?)
        .await?
        .json()
        .await?)
}

/// Buys with one idempotency key, retrying on 503 and connection errors.
async fn buy(client: &reqwest::Client, url: &str) -> Result<Value, ClientError> {
    let key = format!("books-cli-{}", uuid::Uuid::new_v4());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .post(url)
            .header("Idempotency-Key", &key)
            .send()
            .await;
        let retry = match sent {
            Ok(response) if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                attempt < RETRIES
            }
            Ok(response) => return Ok(expect_success(response).await?.json().await?),
            Err(e) if attempt >= RETRIES => return Err(e.into()),
            Err(_) => true,
        };
        if !retry {
            return Err(ClientError::Decode("the store stayed unavailable".into()));
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
    }
}

fn price(value: &Value) -> String {
    value
        .as_f64()
        .map(|p| format!("${p:.2}"))
        .unwrap_or_else(|| "?".into())
}

fn describe(book: &Value) -> String {
    let stock = match book["quantity"].as_i64() {
        Some(0) => "out of stock".to_owned(),
        Some(n) => format!("{n} in stock"),
        None => "?".to_owned(),
    };
    format!(
        "#{} {:?}, {}, {stock}",
        book["id"],
        book["title"].as_str().unwrap_or("?"),
        price(&book["cost"])
    )
}

fn print_books(books: &Value) {
    for book in books.as_array().into_iter().flatten() {
        println!(
            "{}  [{}]",
            describe(book),
            book["topic"].as_str().unwrap_or("?")
        );
    }
}
