//! The pages for people, served by the same ingress as the API: plain HTML, CSS and JavaScript
//! embedded in the binary (`include_bytes!`; no build step, nothing fetched from elsewhere).
//! The pages only call the public API from the browser, as any other client would.
//!
//! - `GET /`: the scoreboard (medal table, every game's score; a tablet following pushes);
//! - `GET /cluster` with `Accept: text/html`: every server group, live (programs still get JSON);
//! - `GET /shop`: the bookstore's storefront; `GET /reserve`: a week grid of rooms;
//! - `GET /assets/{file}`: their scripts and style sheet.
//!
//! Each file is answered with a strong `ETag` (a hash of its bytes) and `Cache-Control:
//! no-cache`, so a browser keeps its copy and revalidates it with a 304.

use std::sync::LazyLock;

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::web::error::ApiError;

/// One embedded file: its name under `/assets/` (or the page's path), type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

static ASSETS: &[Asset] = &[
    asset!("scoreboard.html", HTML),
    asset!("cluster.html", HTML),
    asset!("shop.html", HTML),
    asset!("reserve.html", HTML),
    asset!("common.js", JS),
    asset!("scoreboard.js", JS),
    asset!("cluster.js", JS),
    asset!("shop.js", JS),
    asset!("reserve.js", JS),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
];

/// Each asset's ETag, computed once (FNV-1a over its bytes).
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let hash = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("\"{hash:016x}\"")
        })
        .collect()
});

/// The pages' paths, and the file each serves.
pub const PAGES: &[(&str, &str)] = &[
    ("/", "scoreboard.html"),
    ("/shop", "shop.html"),
    ("/reserve", "reserve.html"),
];

/// Registers the pages and their assets (`/cluster`'s page is added beside its JSON in
/// [`crate::web::routes`], chosen by [`WantsHtml`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    for &(path, file) in PAGES {
        cfg.service(
            page_resource(path)
                .route(web::get().to(move |req: HttpRequest| async move { serve(&req, file) })),
        );
    }
    cfg.service(page_resource("/assets/{file}").route(web::get().to(asset)));
}

/// A page's resource: other methods get a JSON 405 with `Allow: GET, HEAD` (pages are not in
/// the OpenAPI document, where the API's 405s take their `Allow` from).
fn page_resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        use actix_web::ResponseError;
        let mut response = ApiError::MethodNotAllowed.error_response();
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        response
    }))
}

/// `GET /cluster` for a browser.
pub async fn cluster_page(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "cluster.html")
}

/// `GET /assets/{file}`
async fn asset(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &file)
}

fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Err(ApiError::NoRoute(req.path().to_owned()));
    };
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let not_modified = crate::web::if_none_match(req, etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if asset.content_type == HTML {
        // Nothing but our own files; no framing by other sites.
        response.insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ));
    }
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response.content_type(asset.content_type).body(asset.bytes))
}

/// A request from a browser: its `Accept` lists `text/html` before any JSON.
pub struct WantsHtml;

impl Guard for WantsHtml {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        wants_html(ctx.head().headers().get(header::ACCEPT))
    }
}

fn wants_html(accept: Option<&header::HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
        return false;
    };
    let position = |what: &str| accept.find(what);
    match (position("text/html"), position("application/json")) {
        (Some(html), Some(json)) => html < json,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_programs_json() {
        let check = |accept: Option<&str>| {
            wants_html(
                accept
                    .map(|a| header::HeaderValue::from_str(a).unwrap())
                    .as_ref(),
            )
        };
        // Chromium's and Firefox's navigation Accept headers.
        assert!(check(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
        )));
        assert!(!check(None), "curl and most programs send no Accept or */*");
        assert!(!check(Some("*/*")));
        assert!(!check(Some("application/json")));
        assert!(!check(Some("application/json, text/html")));
    }

    #[test]
    fn every_page_and_asset_is_embedded_once_with_a_type() {
        for (_, file) in PAGES {
            assert!(ASSETS.iter().any(|a| a.name == *file), "{file}");
        }
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.bytes.is_empty(), "{}", a.name);
            assert!([HTML, JS, CSS, SVG].contains(&a.content_type), "{}", a.name);
            assert_eq!(
                ASSETS.iter().position(|b| b.name == a.name),
                Some(i),
                "{}",
                a.name
            );
        }
    }
}
