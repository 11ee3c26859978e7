//! The pages for people: embedded files with ETags, `/cluster` by `Accept`, JSON errors.

use reqwest::Method;

use crate::helpers::{error_body, spawn_app};

#[actix_web::test]
async fn pages_and_assets_are_served_from_the_binary_with_etags() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/shop", "text/html"),
        ("/reserve", "text/html"),
        ("/assets/scoreboard.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status(), 200, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        let etag = page.headers()["etag"].to_str().unwrap().to_owned();
        assert!(!page.text().await.unwrap().is_empty(), "{path}");
        // A browser's revalidation costs a 304 without a body.
        let again = app
            .request(Method::GET, path)
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("<title>Scoreboard"), "{home}");
    assert!(
        !home.contains("http://") && !home.contains("https://"),
        "nothing from elsewhere"
    );
    error_body(app.get("/assets/nothing.js").await, 404).await;
    let post = app.request(Method::POST, "/").send().await.unwrap();
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    error_body(post, 405).await;
}

#[actix_web::test]
async fn cluster_is_a_page_for_browsers_and_json_for_programs() {
    let app = spawn_app().await;
    let browser = app
        .request(Method::GET, "/cluster")
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 200);
    assert!(
        browser.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(browser.text().await.unwrap().contains("Olympic front-ends"));
    for accept in [None, Some("*/*"), Some("application/json")] {
        let mut request = app.request(Method::GET, "/cluster");
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let program = request.send().await.unwrap();
        assert!(
            program.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{accept:?}"
        );
        let body: serde_json::Value = program.json().await.unwrap();
        assert_eq!(body["members"].as_array().unwrap().len(), 3, "{accept:?}");
    }
}
