use std::time::Duration;

use reqwest::Method;

use crate::helpers::{ADMIN_TOKEN, error_body, eventually, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_admin_api_is_off_without_a_token() {
    let app = spawn_app_with(|s| s.admin.token = None).await;
    let response = app
        .request(Method::POST, "/admin/actors/frontend-1/crash")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    error_body(response, 404).await;
    // Nothing crashed.
    await_readiness(&app, 200, "").await;
    let ready: serde_json::Value = app.get_json("/readyz").await;
    assert!(
        ready["actors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["restarts"] == 0)
    );
}

#[actix_web::test]
async fn the_admin_api_wants_its_token() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/admin/actors/frontend-1/crash")
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    error_body(response, 401).await;
    error_body(
        app.request(Method::GET, "/admin/actors")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[actix_web::test]
async fn crash_requests_are_checked() {
    let app = spawn_app().await;
    error_body(app.crash("frontend-9", "").await, 404).await;
    let error = error_body(app.crash("frontend-1", "mode=explode").await, 400).await;
    assert_eq!(error["field"], "query");
    let error = error_body(app.crash("frontend-1", "stay_down_ms=999999999").await, 422).await;
    assert_eq!(error["field"], "stay_down_ms");
    assert_eq!(app.actor_status("frontend-1").await["restarts"], 0);
}

/// `GET /readyz` as JSON: its status and body.
async fn readiness(app: &crate::helpers::TestApp) -> (u16, serde_json::Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[actix_web::test]
async fn readiness_fails_when_every_front_end_is_gone() {
    let app = spawn_app().await;
    // 1. Everything up (once the room servers' first election is done): ready, service by
    //    service.
    await_readiness(&app, 200, "").await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["services"]["olympics"]["ready"], true, "{ready}");
    assert_eq!(ready["services"]["queue"]["ready"], true, "{ready}");
    // 2. One front-end left: still ready.
    app.kill_frontend(1).await;
    app.kill_frontend(2).await;
    assert_eq!(readiness(&app).await.0, 200);
    // 3. None left: the Olympic service cannot answer, and readiness says so; liveness holds.
    app.kill_frontend(3).await;
    let body = error_body(app.get("/readyz").await, 503).await;
    let reasons = body["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("olympics: ")),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[actix_web::test]
async fn queue_readiness_follows_its_brokers_and_its_write_manager() {
    let app = spawn_app().await;
    // 1. A broker down: the queue is not ready, naming it.
    let crashed = app
        .crash("queue-broker-2", "mode=panic&stay_down_ms=1500")
        .await;
    assert_eq!(crashed.status(), 202);
    eventually(Duration::from_secs(5), || async {
        let (status, body) = readiness(&app).await;
        status == 503
            && body["reasons"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r.as_str().unwrap().contains("queue-broker-2"))
            })
    })
    .await;
    // 2. Back after its restart.
    eventually(Duration::from_secs(10), || async {
        readiness(&app).await.0 == 200
    })
    .await;
    // 3. The write manager down: a read manager is elected in its place and the queue is ready
    //    again while the old one is still down.
    let crashed = app
        .crash("queue-write-manager", "mode=panic&stay_down_ms=5000")
        .await;
    assert_eq!(crashed.status(), 202);
    eventually(Duration::from_secs(5), || async {
        app.actor_status("queue-write-manager").await["alive"] == false
    })
    .await;
    eventually(Duration::from_secs(4), || async {
        readiness(&app).await.0 == 200
    })
    .await;
    assert_eq!(
        app.actor_status("queue-write-manager").await["alive"],
        false
    );
}

/// Waits until `/readyz` answers `status` with a reason that starts with `prefix` (or, for 200,
/// any body).
async fn await_readiness(app: &crate::helpers::TestApp, status: u16, prefix: &str) {
    eventually(Duration::from_secs(10), || async {
        let (got, body) = readiness(app).await;
        got == status
            && (status == 200
                || body["reasons"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|r| r.as_str().is_some_and(|r| r.starts_with(prefix)))
                }))
    })
    .await;
}

#[actix_web::test]
async fn bookstore_readiness_follows_its_front_end_replicas_and_order_servers() {
    let app = spawn_app().await;
    // 1. Everything up (once the room servers' first election is done): the bookstore is ready.
    await_readiness(&app, 200, "").await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["services"]["bookstore"]["ready"], true, "{ready}");
    // 2. One catalog replica down: the other serves, still ready.
    app.crash("bookstore-catalog-1", "mode=panic&stay_down_ms=1500")
        .await;
    eventually(Duration::from_secs(5), || async {
        app.actor_status("bookstore-catalog-1").await["alive"] == false
    })
    .await;
    assert_eq!(readiness(&app).await.0, 200);
    // 3. Both down: not ready, saying why; ready again once one is back and caught up.
    app.crash("bookstore-catalog-2", "mode=panic&stay_down_ms=1500")
        .await;
    await_readiness(
        &app,
        503,
        "bookstore: no catalog replica is alive and caught up",
    )
    .await;
    await_readiness(&app, 200, "").await;
    // 4. Both order servers down: no buys, not ready.
    for server in ["bookstore-order-1", "bookstore-order-2"] {
        app.crash(server, "mode=panic&stay_down_ms=1500").await;
    }
    await_readiness(&app, 503, "bookstore: no order server is alive").await;
    await_readiness(&app, 200, "").await;
    // 5. The front end down: not ready, naming it.
    app.crash("bookstore-frontend", "mode=panic&stay_down_ms=1500")
        .await;
    await_readiness(&app, 503, "bookstore: bookstore-frontend is down").await;
    await_readiness(&app, 200, "").await;
}

#[actix_web::test]
async fn rooms_readiness_wants_a_leader_elected_and_ready() {
    let app = spawn_app().await;
    app.await_room_leader(3).await;
    // 1. A leader (caught up, as every other service's parts): ready.
    await_readiness(&app, 200, "").await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["services"]["rooms"]["ready"], true, "{ready}");
    // 2. Every server killed: not ready, saying why.
    for id in [1, 2, 3] {
        assert_eq!(app.kill_room_server(id).await.status(), 204);
    }
    let body = error_body(app.get("/readyz").await, 503).await;
    assert!(
        body["reasons"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("rooms: no room server is alive")),
        "{body}"
    );
    // 3. A new server elects itself and catches up: ready again.
    assert_eq!(app.add_room_server(7).await.status(), 201);
    app.await_room_leader(7).await;
    await_readiness(&app, 200, "").await;
}
