use reqwest::Method;

use crate::helpers::{ADMIN_TOKEN, error_body, spawn_app, spawn_app_with};

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
