//! The Pygmy.com bookstore (issue 12) through its REST API: reads with ETags, buys (exactly as
//! many as in stock, whatever the concurrency), idempotent retries, the manager's writes, no
//! stale lookup through the cache, the replicas' status, and bad input.

use std::collections::HashSet;

use futures_util::future::join_all;
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, spawn_app_with};

pub const MANAGER_TOKEN: &str = "test-manager-token";

pub async fn spawn_store() -> TestApp {
    spawn_app_with(|s| s.bookstore.manager_token = SecretString::from(MANAGER_TOKEN)).await
}

pub async fn buy(app: &TestApp, book: i64, key: Option<&str>) -> Response {
    let mut request = app.request(Method::POST, &format!("/bookstore/books/{book}/buy"));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("POST buy")
}

pub async fn restock(app: &TestApp, book: i64, quantity: i64) -> Response {
    app.request(Method::POST, &format!("/bookstore/books/{book}/restock"))
        .bearer_auth(MANAGER_TOKEN)
        .json(&json!({ "quantity": quantity }))
        .send()
        .await
        .expect("POST restock")
}

pub async fn set_cost(app: &TestApp, book: i64, body: Value) -> Response {
    app.request(Method::PATCH, &format!("/bookstore/books/{book}"))
        .bearer_auth(MANAGER_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("PATCH book")
}

pub async fn lookup(app: &TestApp, book: i64) -> Value {
    app.get_json(&format!("/bookstore/books/{book}")).await
}

pub async fn quantity(app: &TestApp, book: i64) -> i64 {
    lookup(app, book).await["quantity"].as_i64().unwrap()
}

/// The authority's stock, straight from PostgreSQL.
pub async fn stock(app: &TestApp, book: i64) -> i64 {
    sqlx::query_scalar("SELECT quantity FROM bookstore_stock WHERE id = $1")
        .bind(book)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[actix_web::test]
async fn the_catalog_lists_searches_and_looks_up_with_etags() {
    let app = spawn_store().await;
    // 1. The seeded catalog, in two topics.
    let all: Vec<Value> = app.get_json("/bookstore/books").await;
    assert_eq!(all.len(), 7);
    let topics: HashSet<&str> = all.iter().map(|b| b["topic"].as_str().unwrap()).collect();
    assert_eq!(
        topics,
        HashSet::from(["distributed systems", "graduate school"])
    );
    // 2. Search by topic.
    let found: Vec<Value> = app
        .get_json("/bookstore/books?topic=distributed%20systems")
        .await;
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|b| b["topic"] == "distributed systems"));
    let none: Vec<Value> = app.get_json("/bookstore/books?topic=cooking").await;
    assert!(none.is_empty());
    // 3. Lookup: title, topic, cost, quantity; a miss first, then a hit from the front end.
    let first = app.get("/bookstore/books/2").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "miss");
    assert!(
        first.headers()["x-served-by"]
            .to_str()
            .unwrap()
            .starts_with("bookstore-catalog-")
    );
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let book: Value = first.json().await.unwrap();
    assert_eq!(book["title"], "RPCs for Dummies");
    assert_eq!(book["cost"], 24.5);
    assert_eq!(book["quantity"], 100);
    let second = app.get("/bookstore/books/2").await;
    assert_eq!(second.headers()["x-cache"], "hit");
    assert_eq!(second.headers()["x-served-by"], "bookstore-frontend");
    // 4. If-None-Match with the current ETag: 304, without a body.
    let not_modified = app
        .request(Method::GET, "/bookstore/books/2")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.bytes().await.unwrap().is_empty());
    // 5. Reads are spread over both replicas (round-robin).
    let mut served_by = HashSet::new();
    for _ in 0..6 {
        let response = app.get("/bookstore/books").await;
        served_by.insert(
            response.headers()["x-served-by"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(served_by.len(), 2, "both replicas served: {served_by:?}");
}

#[actix_web::test]
async fn a_write_is_never_answered_304_whatever_its_if_none_match() {
    let app = spawn_store().await;
    let before = stock(&app, 3).await;
    // A buy, a restock and a cost change sent with `If-None-Match: *`: each done and answered
    // with its body, never a 304.
    let bought = app
        .request(Method::POST, "/bookstore/books/3/buy")
        .header("If-None-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(bought.status(), 201);
    assert_eq!(bought.json::<Value>().await.unwrap()["book_id"], 3);
    let restocked = app
        .request(Method::POST, "/bookstore/books/3/restock")
        .bearer_auth(MANAGER_TOKEN)
        .header("If-None-Match", "*")
        .json(&json!({ "quantity": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(restocked.status(), 200);
    let changed = app
        .request(Method::PATCH, "/bookstore/books/3")
        .bearer_auth(MANAGER_TOKEN)
        .header("If-None-Match", "*")
        .json(&json!({ "cost": 12.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.json::<Value>().await.unwrap()["cost"], 12.5);
    assert_eq!(stock(&app, 3).await, before - 1 + 5);
}

#[actix_web::test]
async fn a_buy_records_an_order_and_the_next_lookup_sees_it() {
    let app = spawn_store().await;
    assert_eq!(quantity(&app, 3).await, 100, "cached before the buy");
    // 1. Buy: 201 with the order (book, price paid, order server, time).
    let response = buy(&app, 3, None).await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["book_id"], 3);
    assert_eq!(order["price"], 15.0);
    assert!(
        order["order_server"]
            .as_str()
            .unwrap()
            .starts_with("bookstore-order-")
    );
    assert!(order["ordered_at"].is_string());
    // 2. The order is readable.
    let read: Value = app
        .get_json(&format!("/bookstore/orders/{}", order["id"]))
        .await;
    assert_eq!(read["id"], order["id"]);
    assert_eq!(read["order_server"], order["order_server"]);
    // 3. The cached entry was dropped before the answer: the lookup sees 99.
    assert_eq!(quantity(&app, 3).await, 99);
    assert_eq!(stock(&app, 3).await, 99);
}

#[actix_web::test]
async fn with_ten_in_stock_exactly_ten_of_a_hundred_concurrent_buyers_succeed() {
    let app = spawn_store().await;
    // 1. Book 7 starts with 50: sell 40 to leave 10.
    let warmup = join_all((0..40).map(|_| buy(&app, 7, None))).await;
    assert!(warmup.iter().all(|r| r.status() == 201));
    assert_eq!(quantity(&app, 7).await, 10);
    // 2. 100 buyers at once, through both order servers.
    let answers = join_all((0..100).map(|_| buy(&app, 7, None))).await;
    let mut sold = 0;
    let mut servers = HashSet::new();
    for response in answers {
        match response.status().as_u16() {
            201 => {
                sold += 1;
                let order: Value = response.json().await.unwrap();
                servers.insert(order["order_server"].as_str().unwrap().to_owned());
            }
            409 => {
                let body = error_body(response, 409).await;
                assert!(body["error"].as_str().unwrap().contains("out of stock"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(sold, 10, "exactly the stock was sold");
    assert!(!servers.is_empty());
    // 3. Nothing oversold anywhere: the authority, the orders, the lookup.
    assert_eq!(stock(&app, 7).await, 0);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM bookstore_orders WHERE book_id = 7")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 50);
    let sellers: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT order_server) FROM bookstore_orders WHERE book_id = 7",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(sellers, 2, "buys went through both order servers");
    assert_eq!(quantity(&app, 7).await, 0);
    error_body(buy(&app, 7, None).await, 409).await;
}

#[actix_web::test]
async fn a_retried_buy_with_its_idempotency_key_counts_once() {
    let app = spawn_store().await;
    // 1. The same key five times, at once and again later.
    let answers = join_all((0..5).map(|_| buy(&app, 1, Some("shopper-42-cart-1")))).await;
    let mut ids = HashSet::new();
    for response in answers {
        assert_eq!(response.status(), 201);
        let order: Value = response.json().await.unwrap();
        ids.insert(order["id"].as_i64().unwrap());
    }
    let later: Value = buy(&app, 1, Some("shopper-42-cart-1"))
        .await
        .json()
        .await
        .unwrap();
    ids.insert(later["id"].as_i64().unwrap());
    assert_eq!(ids.len(), 1, "one order: {ids:?}");
    assert_eq!(stock(&app, 1).await, 99);
    assert_eq!(quantity(&app, 1).await, 99);
    // 2. The same key for another book is refused.
    let body = error_body(buy(&app, 2, Some("shopper-42-cart-1")).await, 422).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("shopper-42-cart-1")
    );
    assert_eq!(stock(&app, 2).await, 100);
}

#[actix_web::test]
async fn the_manager_restocks_and_changes_costs_with_the_token() {
    let app = spawn_store().await;
    assert_eq!(lookup(&app, 4).await["cost"], 12.5);
    // 1. Without the token: 401, nothing changes.
    let anonymous = app
        .request(Method::POST, "/bookstore/books/4/restock")
        .json(&json!({ "quantity": 10 }))
        .send()
        .await
        .unwrap();
    error_body(anonymous, 401).await;
    let wrong = app
        .request(Method::PATCH, "/bookstore/books/4")
        .bearer_auth("not-the-token")
        .json(&json!({ "cost": 1.0 }))
        .send()
        .await
        .unwrap();
    error_body(wrong, 401).await;
    // 2. With it: the answer and the next lookup show the new values.
    let restocked = restock(&app, 4, 10).await;
    assert_eq!(restocked.status(), 200);
    let body: Value = restocked.json().await.unwrap();
    assert_eq!(body["quantity"], 110);
    let changed = set_cost(&app, 4, json!({ "cost": 9.99 })).await;
    assert_eq!(changed.status(), 200);
    let book = lookup(&app, 4).await;
    assert_eq!(
        (book["quantity"].as_i64(), book["cost"].as_f64()),
        (Some(110), Some(9.99))
    );
    // 3. A buy pays the new price.
    let order: Value = buy(&app, 4, None).await.json().await.unwrap();
    assert_eq!(order["price"], 9.99);
}

#[actix_web::test]
async fn no_lookup_after_an_acknowledged_write_sees_the_old_value() {
    let app = spawn_store().await;
    let books = [1i64, 2, 3];
    // 1. Readers keep every book's cache entry hot (and refilling) meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = (0..6).map(|i| {
        let (app, stop) = (&app, stop.clone());
        async move {
            let book = books[i % books.len()];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = app.get(&format!("/bookstore/books/{book}")).await;
            }
        }
    });
    // 2. One writer per book, alternating buys and restocks; after each acknowledged write its
    //    lookup must show exactly the writer's expected quantity.
    let writers = books.iter().map(|&book| {
        let app = &app;
        async move {
            let mut expected = 100;
            for step in 0..15 {
                if step % 3 == 2 {
                    assert_eq!(restock(app, book, 2).await.status(), 200);
                    expected += 2;
                } else {
                    assert_eq!(buy(app, book, None).await.status(), 201);
                    expected -= 1;
                }
                assert_eq!(
                    quantity(app, book).await,
                    expected,
                    "book {book} after step {step}"
                );
            }
        }
    });
    let writing = async {
        join_all(writers).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(writing, join_all(readers));
}

#[actix_web::test]
async fn the_replicas_show_their_state_and_equal_digests() {
    let app = spawn_store().await;
    for book in [1, 2, 5] {
        assert_eq!(buy(&app, book, None).await.status(), 201);
    }
    assert_eq!(restock(&app, 6, 5).await.status(), 200);
    let status: Value = app.get_json("/bookstore/replicas").await;
    let replicas = status["replicas"].as_array().unwrap();
    let names: Vec<&str> = replicas
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bookstore-catalog-1", "bookstore-catalog-2"]);
    for replica in replicas {
        assert_eq!(replica["alive"], true);
        assert_eq!(replica["state"], "serving");
        assert_eq!(replica["last_applied"], 4, "applied every write: {replica}");
        assert_eq!(replica["digest"], replicas[0]["digest"]);
    }
    let servers: Vec<&str> = status["order_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["alive"], true);
            s["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(servers, ["bookstore-order-1", "bookstore-order-2"]);
    // psql shows the copies apart: one table per replica, both with the new stock.
    for table in ["bookstore_catalog_1", "bookstore_catalog_2"] {
        let quantity: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT quantity FROM {table} WHERE id = 6"
        )))
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(quantity, 55, "{table}");
    }
}

#[actix_web::test]
async fn bad_input_gets_a_clear_json_4xx() {
    let app = spawn_store().await;
    // Unknown books and orders: 404.
    for path in [
        "/bookstore/books/999",
        "/bookstore/books/abc",
        "/bookstore/orders/12345",
    ] {
        error_body(app.get(path).await, 404).await;
    }
    error_body(buy(&app, 999, None).await, 404).await;
    error_body(restock(&app, 999, 1).await, 404).await;
    error_body(set_cost(&app, 999, json!({ "cost": 1.0 })).await, 404).await;
    // Quantities and costs: 422 naming the field.
    for quantity in [0, -5] {
        let body = error_body(restock(&app, 1, quantity).await, 422).await;
        assert_eq!(body["field"], "quantity");
    }
    for cost in [json!(0), json!(-1.5), json!(12.345), json!("cheap")] {
        let body = error_body(set_cost(&app, 1, json!({ "cost": cost })).await, 422).await;
        assert_eq!(body["field"], "cost", "cost {cost}");
    }
    let body = error_body(
        set_cost(&app, 1, json!({ "cost": 5, "title": "x" })).await,
        422,
    )
    .await;
    assert_eq!(body["field"], "title");
    let body = error_body(set_cost(&app, 1, json!({})).await, 422).await;
    assert_eq!(body["field"], "cost");
    // Malformed JSON: 400.
    let malformed = app
        .request(Method::POST, "/bookstore/books/1/restock")
        .bearer_auth(MANAGER_TOKEN)
        .header("content-type", "application/json")
        .body("{\"quantity\": ")
        .send()
        .await
        .unwrap();
    error_body(malformed, 400).await;
    // A blank topic, an unknown parameter, an empty idempotency key.
    let body = error_body(app.get("/bookstore/books?topic=").await, 422).await;
    assert_eq!(body["field"], "topic");
    error_body(app.get("/bookstore/books?colour=red").await, 400).await;
    let blank_key = app
        .request(Method::POST, "/bookstore/books/1/buy")
        .header("Idempotency-Key", "")
        .send()
        .await
        .unwrap();
    error_body(blank_key, 400).await;
    // Wrong methods: 405. Nothing was changed by any of it.
    let delete = app
        .request(Method::DELETE, "/bookstore/books/1")
        .send()
        .await
        .unwrap();
    error_body(delete, 405).await;
    assert_eq!(stock(&app, 1).await, 100);
}

/// Runs `obelix books …` against the app and returns its output lines.
async fn books_cli(app: &TestApp, args: &[&str]) -> Vec<String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_obelix"))
        .arg("books")
        .arg("--server")
        .arg(&app.address)
        .args(args)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), output)
        .await
        .expect("the client finished within 30 s")
        .unwrap();
    assert!(
        output.status.success(),
        "obelix books {args:?}: {}",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn the_books_client_lists_searches_looks_up_and_buys() {
    let app = spawn_store().await;
    let list = books_cli(&app, &["list"]).await;
    assert_eq!(list.len(), 7, "{list:?}");
    assert!(
        list[1].contains("RPCs for Dummies") && list[1].contains("$24.50"),
        "{list:?}"
    );
    let search = books_cli(&app, &["search", "distributed systems"]).await;
    assert_eq!(search.len(), 2, "{search:?}");
    let bought = books_cli(&app, &["buy", "2"]).await;
    assert!(
        bought[0].starts_with("bought \"RPCs for Dummies\" for $24.50"),
        "{bought:?}"
    );
    let lookup = books_cli(&app, &["lookup", "2"]).await;
    assert!(lookup[0].contains("99 in stock"), "{lookup:?}");
    assert_eq!(stock(&app, 2).await, 99);
}
