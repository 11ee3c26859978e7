//! The OpenAPI document (`GET /openapi.json`) against the routes actix really serves.
//!
//! The served routes come from the app, not from the document: the paths from actix's own
//! resource map of the routes `obelix::web::routes` registers (the one place every route is
//! registered), then each path asked every method on the running app (a method the path does
//! not have is answered 405, or 404 "no such resource" behind a guard). A route added without
//! its `#[utoipa::path]` fails here, as does a description of a route that is gone.

use std::collections::BTreeSet;

use actix_web::{App, HttpRequest, HttpResponse, test, web};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// Served, but not API: Swagger UI's page and files; the pages for people and their files
/// (`obelix::web::pages`; `GET /cluster`'s page shares the path of its documented JSON). The
/// resource map writes the scoreboard's `/` as an empty pattern.
const NOT_API: [&str; 7] = [
    "/docs",
    "/docs/{_:.*}",
    "",
    "/",
    "/shop",
    "/reserve",
    "/assets/{file}",
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Every path pattern registered by `obelix::web::routes`, read from actix's resource map (its
/// `Debug` form: the map has no other public way to list its patterns).
async fn registered_patterns() -> BTreeSet<String> {
    let app = test::init_service(App::new().configure(obelix::web::routes).default_service(
        web::to(|req: HttpRequest| async move {
            HttpResponse::Ok().body(format!("{:?}", req.resource_map()))
        }),
    ))
    .await;
    let request = test::TestRequest::get()
        .uri("/no/route/has/this/path")
        .to_request();
    let map = String::from_utf8(test::call_and_read_body(&app, request).await.to_vec()).unwrap();
    let patterns = full_patterns(&map);
    assert!(
        patterns.contains("/healthz") && patterns.contains("/openapi.json"),
        "the resource map's patterns were read: {patterns:?}"
    );
    patterns
}

/// The full patterns of the resources in a resource map's `Debug` text. A scope's resources
/// are written relative to it (a map nested in the scope's `nodes`), so each map's own pattern
/// (its first `patterns: Single("…")`) is prefixed with those of the maps it is nested in;
/// braces inside quoted patterns do not count as nesting.
fn full_patterns(map: &str) -> BTreeSet<String> {
    const MAP: &str = "ResourceMap {";
    const PATTERN: &str = "patterns: Single(\"";
    let mut patterns = BTreeSet::new();
    // The open maps: the brace depth each opened at, and its pattern once read.
    let mut open: Vec<(usize, Option<String>)> = Vec::new();
    let (mut depth, mut at, bytes) = (0usize, 0usize, map.as_bytes());
    while at < bytes.len() {
        let rest = &map[at..];
        if rest.starts_with(MAP) {
            open.push((depth, None));
            depth += 1;
            at += MAP.len();
        } else if rest.starts_with(PATTERN) {
            let body = &rest[PATTERN.len()..];
            let end = body.find("\")").expect("a pattern ends");
            let own = body[..end].replace("\\\\", "\\");
            if let Some((_, mine @ None)) = open.last_mut() {
                *mine = Some(own);
            }
            at += PATTERN.len() + end + 2;
        } else if rest.starts_with('"') {
            // Skip a quoted string, escapes included.
            let mut i = 1;
            while i < rest.len() && rest.as_bytes()[i] != b'"' {
                i += if rest.as_bytes()[i] == b'\\' { 2 } else { 1 };
            }
            at += i + 1;
        } else {
            match bytes[at] {
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => {
                    depth -= 1;
                    if open.last().is_some_and(|(opened, _)| *opened == depth) {
                        let (_, own) = open.pop().unwrap();
                        let prefix: String =
                            open.iter().filter_map(|(_, p)| p.as_deref()).collect();
                        patterns.insert(format!("{prefix}{}", own.unwrap_or_default()));
                    }
                }
                _ => {}
            }
            at += 1;
        }
    }
    patterns
}

/// A concrete path for a pattern: every `{name}` or `{name:regex}` becomes `1`.
fn concrete(pattern: &str) -> String {
    let mut path = String::new();
    let mut depth = 0;
    for c in pattern.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    path.push('1');
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => path.push(c),
            _ => {}
        }
    }
    path
}

/// `{name:regex}` → `{name}`, as OpenAPI writes path parameters.
fn template(pattern: &str) -> String {
    let (mut out, mut in_param, mut skipping) = (String::new(), false, false);
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => (in_param, skipping) = (false, false),
            ':' if in_param => skipping = true,
            _ => {}
        }
        if !skipping || c == '}' {
            out.push(c);
        }
    }
    out
}

#[actix_web::test]
async fn every_served_route_is_in_the_document_and_every_documented_one_is_served() {
    // 1. The document, as clients get it.
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                documented.insert(format!("{method} {path}"));
            }
        }
    }

    // 2. The routes actix serves: each registered path, asked every method, with no token
    //    (nothing is changed: writes need one, or fail on the `1` of their path).
    let mut served = BTreeSet::new();
    for pattern in registered_patterns().await {
        if NOT_API.contains(&pattern.as_str()) {
            continue;
        }
        let path = concrete(&pattern);
        for method in METHODS {
            let response = app
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &path)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            let absent = status == 405 || (status == 404 && body.contains("no such resource"));
            assert!(status < 500, "{method} {path}: {status} {body}");
            if !absent {
                served.insert(format!("{method} {}", template(&pattern)));
            }
        }
    }

    // 3. The same routes on both sides.
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but missing from /openapi.json: {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "in /openapi.json but not served: {not_served:?}"
    );
    assert!(served.len() >= 40, "every service's routes: {served:?}");
}

#[actix_web::test]
async fn the_document_describes_errors_headers_and_tokens() {
    let app = spawn_app().await;
    let document: Value = app.get_json("/openapi.json").await;

    // One error shape, referenced by the error responses.
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let unavailable = &document["components"]["responses"]["Unavailable"];
    assert!(unavailable["headers"]["Retry-After"].is_object());
    assert_eq!(
        unavailable["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );

    // The headers that matter, where they matter.
    let score = &document["paths"]["/olympics/games/{game}/score"];
    let names = |operation: &Value| -> Vec<String> {
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names(&score["get"]).contains(&"If-None-Match".to_owned()));
    assert!(names(&score["get"]).contains(&"X-Tablet-Id".to_owned()));
    assert!(names(&score["put"]).contains(&"Idempotency-Key".to_owned()));
    let ok = &score["get"]["responses"]["200"]["headers"];
    for header in ["ETag", "X-Served-By", "X-Cache"] {
        assert!(ok[header].is_object(), "{header} on a score read");
    }
    assert!(score["get"]["responses"]["304"].is_object());

    // Every bearer token is a scheme, and the writes ask for theirs.
    for scheme in [
        "reporter",
        "admin",
        "bookstore_manager",
        "queue_admin",
        "queue_producer",
        "queue_consumer",
    ] {
        assert_eq!(
            document["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    assert_eq!(
        score["put"]["security"],
        serde_json::json!([{ "reporter": [] }])
    );

    // Operation ids are unique.
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operation id {id} twice");
        }
    }

    // Swagger UI is served from the binary, and `/docs` leads to it.
    let response = app.get("/docs/").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("swagger-ui"));
    let config = app.get("/docs/swagger-initializer.js").await;
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let redirect = client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");
}

#[actix_web::test]
async fn a_method_a_route_does_not_have_is_answered_405_with_the_methods_it_has() {
    // RFC 9110: a 405 names the methods the resource supports, in `Allow`.
    let app = spawn_app().await;
    for (method, path, allowed) in [
        ("PUT", "/olympics/games", "GET, HEAD"),
        ("TRACE", "/olympics/games/curling/score", "GET, HEAD, PUT"),
        ("DELETE", "/queue/topics", "GET, HEAD, POST"),
        ("GET", "/olympics/tablets", "POST"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ] {
        let response = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allowed),
            "{method} {path}"
        );
        crate::helpers::error_body(response, 405).await;
    }
}
