//! The bookstore under crashes, each through `POST /admin/actors/{name}/crash`, mid-traffic: a
//! catalog replica (buys go on; back, it replays the log and every copy is equal), an order
//! server (buys go to the other; none fails, none doubles), and the front end.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::bookstore::{buy, quantity, restock, spawn_store, stock};
use crate::helpers::{TestApp, eventually};

/// `buyers` shoppers each buying `rounds` times in a row (books 1 and 2), and the manager
/// restocking book 1 now and then, while `disturb` runs. Returns (buys acknowledged per book,
/// copies restocked); asserts that no request failed.
async fn traffic(
    app: &TestApp,
    buyers: usize,
    rounds: usize,
    disturb: impl std::future::Future<Output = ()>,
) -> ([i64; 2], i64) {
    let shoppers = (0..buyers).map(|b| async move {
        let mut bought = [0i64; 2];
        for round in 0..rounds {
            let book = 1 + ((b + round) % 2) as i64;
            let response = buy(app, book, None).await;
            assert_eq!(response.status(), 201, "buy {round} of shopper {b}");
            bought[(book - 1) as usize] += 1;
        }
        bought
    });
    let manager = async {
        let mut restocked = 0;
        for _ in 0..5 {
            assert_eq!(restock(app, 1, 3).await.status(), 200);
            restocked += 3;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        restocked
    };
    let (bought, restocked, ()) = tokio::join!(join_all(shoppers), manager, disturb);
    let totals = bought
        .iter()
        .fold([0, 0], |acc, b| [acc[0] + b[0], acc[1] + b[1]]);
    (totals, restocked)
}

async fn replicas(app: &TestApp) -> Vec<Value> {
    let status: Value = app.get_json("/bookstore/replicas").await;
    status["replicas"].as_array().unwrap().clone()
}

/// Waits until every replica serves and has applied the log's last write, then checks that
/// their digests are equal.
async fn assert_replicas_converged(app: &TestApp) {
    let head: i64 = sqlx::query_scalar(
        "SELECT last_seq FROM write_log_heads WHERE log = 'bookstore_write_log'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    eventually(Duration::from_secs(10), || async {
        replicas(app)
            .await
            .iter()
            .all(|r| r["alive"] == true && r["state"] == "serving" && r["last_applied"] == head)
    })
    .await;
    let all = replicas(app).await;
    assert!(all[0]["digest"].is_string());
    assert!(
        all.iter().all(|r| r["digest"] == all[0]["digest"]),
        "equal copies: {all:?}"
    );
}

#[actix_web::test]
async fn a_replica_crash_mid_traffic_loses_nothing_and_it_catches_up_by_replaying_the_log() {
    let app = spawn_store().await;
    // 1. Shoppers and the manager write while bookstore-catalog-1 panics and stays down 400 ms.
    let crash = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = app
            .crash("bookstore-catalog-1", "mode=panic&stay_down_ms=400")
            .await;
        assert_eq!(response.status(), 202);
    };
    let (bought, restocked) = traffic(&app, 6, 20, crash).await;
    // 2. It was restarted, replayed what it missed, and serves again; the copies are equal.
    app.await_restart("bookstore-catalog-1", 1).await;
    assert_replicas_converged(&app).await;
    // 3. The stock is the initial stock minus the acknowledged buys plus the restocks, in the
    //    authority, in every replica's own table, and through the front end.
    let expected = [100 - bought[0] + restocked, 100 - bought[1]];
    for (i, book) in [1i64, 2].into_iter().enumerate() {
        assert_eq!(
            stock(&app, book).await,
            expected[i],
            "authority, book {book}"
        );
        for table in ["bookstore_catalog_1", "bookstore_catalog_2"] {
            let copy: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT quantity FROM {table} WHERE id = $1"
            )))
            .bind(book)
            .fetch_one(&app.db)
            .await
            .unwrap();
            assert_eq!(copy, expected[i], "{table}, book {book}");
        }
        assert_eq!(quantity(&app, book).await, expected[i]);
    }
}

#[actix_web::test]
async fn an_order_server_crash_mid_traffic_fails_no_buy_and_doubles_none() {
    let app = spawn_store().await;
    // 1. bookstore-order-1 panics and stays down 400 ms while six shoppers buy.
    let crash = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = app
            .crash("bookstore-order-1", "mode=panic&stay_down_ms=400")
            .await;
        assert_eq!(response.status(), 202);
        // While it is down, the status says so and buys go to the other one.
        eventually(Duration::from_secs(2), || async {
            let status: Value = app.get_json("/bookstore/replicas").await;
            status["order_servers"][0]["alive"] == false
        })
        .await;
    };
    let (bought, _) = traffic(&app, 6, 20, crash).await;
    app.await_restart("bookstore-order-1", 1).await;
    // 2. Every acknowledged buy is one order: no more, no fewer.
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM bookstore_orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, bought[0] + bought[1]);
    assert_eq!(stock(&app, 2).await, 100 - bought[1]);
    assert_replicas_converged(&app).await;
}

#[actix_web::test]
async fn a_front_end_crash_mid_traffic_fails_no_request() {
    let app = spawn_store().await;
    // 1. Lookups of books 3..7 go on beside the buys while the front end panics (down 300 ms).
    let lookups = async {
        for round in 0..60 {
            let book = 3 + round % 5;
            let response = app.get(&format!("/bookstore/books/{book}")).await;
            assert_eq!(response.status(), 200, "lookup {round}");
        }
    };
    let crash = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = app
            .crash("bookstore-frontend", "mode=panic&stay_down_ms=300")
            .await;
        assert_eq!(response.status(), 202);
    };
    let disturb = async {
        tokio::join!(lookups, crash);
    };
    let (bought, restocked) = traffic(&app, 4, 15, disturb).await;
    app.await_restart("bookstore-frontend", 1).await;
    // 2. Every write counted once; the restarted front end reads fresh values.
    assert_eq!(stock(&app, 1).await, 100 - bought[0] + restocked);
    assert_eq!(quantity(&app, 1).await, 100 - bought[0] + restocked);
    assert_eq!(quantity(&app, 2).await, 100 - bought[1]);
}

#[actix_web::test]
async fn a_write_log_crash_mid_traffic_fails_no_buy_and_doubles_none() {
    let app = spawn_store().await;
    // 1. The store's write log panics (down 200 ms) while shoppers buy: the writes it was
    //    holding are answered 503 inside, and the front end retries them with their keys.
    let crash = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = app
            .crash("bookstore-write-log", "mode=panic&stay_down_ms=200")
            .await;
        assert_eq!(response.status(), 202);
    };
    let (bought, restocked) = traffic(&app, 6, 15, crash).await;
    app.await_restart("bookstore-write-log", 1).await;
    // 2. Each acknowledged buy is one order; the stock and every copy agree.
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM bookstore_orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, bought[0] + bought[1]);
    assert_eq!(stock(&app, 1).await, 100 - bought[0] + restocked);
    assert_replicas_converged(&app).await;
}

#[actix_web::test]
async fn a_replica_that_misses_the_ack_deadline_leaves_reads_resyncs_and_serves_nothing_stale() {
    // 1. An ack deadline of 1 ms: writes routinely give up on a replica, which must then leave
    //    reads at once and catch up from the log.
    let app = crate::helpers::spawn_app_with(|s| {
        s.bookstore.manager_token = secrecy::SecretString::from(crate::bookstore::MANAGER_TOKEN);
        s.bookstore.ack_timeout_ms = 1;
    })
    .await;
    // 2. Readers keep the cache hot while one writer checks its lookup after every write.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = (0..4).map(|_| {
        let (app, stop) = (&app, stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(app.get("/bookstore/books/5").await.status(), 200);
            }
        }
    });
    let writer = async {
        let mut expected = 50;
        for step in 0..30 {
            if step % 5 == 4 {
                assert_eq!(restock(&app, 5, 3).await.status(), 200);
                expected += 3;
            } else {
                assert_eq!(buy(&app, 5, None).await.status(), 201);
                expected -= 1;
            }
            assert_eq!(quantity(&app, 5).await, expected, "after step {step}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        expected
    };
    let (expected, _) = tokio::join!(writer, join_all(readers));
    // 3. Replicas resynced (beyond the one at start), and all agree with the authority.
    assert_replicas_converged(&app).await;
    let resyncs: u64 = replicas(&app)
        .await
        .iter()
        .map(|r| r["resyncs"].as_u64().unwrap())
        .sum();
    assert!(resyncs > 2, "late replicas resynced ({resyncs} resyncs)");
    assert_eq!(stock(&app, 5).await, expected);
}

#[actix_web::test]
async fn a_replica_can_keep_its_copy_in_another_database() {
    // 1. bookstore-catalog-1's copy lives in a database of its own.
    let elsewhere = crate::helpers::fresh_database().await;
    let url = elsewhere.clone();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.bookstore.manager_token = secrecy::SecretString::from(crate::bookstore::MANAGER_TOKEN);
        s.bookstore.replica_urls = vec![secrecy::SecretString::from(url)];
    })
    .await;
    for book in [1, 2, 3] {
        assert_eq!(buy(&app, book, None).await.status(), 201);
    }
    assert_replicas_converged(&app).await;
    // 2. psql shows it there, and only replica 2's copy in the main database.
    let other = sqlx::PgPool::connect(&elsewhere).await.unwrap();
    let there: i64 = sqlx::query_scalar("SELECT quantity FROM bookstore_catalog_1 WHERE id = 3")
        .fetch_one(&other)
        .await
        .unwrap();
    assert_eq!(there, 99);
    let main_tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'bookstore_catalog_%' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        main_tables,
        ["bookstore_catalog_2", "bookstore_catalog_2_applied"]
    );
}
