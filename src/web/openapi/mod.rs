//! Obelix describes itself: an OpenAPI 3.1 document of every route at `GET /openapi.json`,
//! generated from the code (utoipa: `#[utoipa::path]` on each handler, `ToSchema` on the types
//! they read and write), and Swagger UI at `/docs/`, whose files are compiled into the binary
//! (`utoipa-swagger-ui`'s `vendored` feature: nothing is fetched at build or run time).
//!
//! `tests/api/openapi.rs` lists the routes actix really serves (from its resource map, then
//! asking each path every method) and fails when one is missing here, or when this document
//! names one that is not served: a new route cannot be added without its description.

pub mod schemas;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::web::{
    admin, bookstore, cluster, health, kafka, metrics, olympics, queue, resource, rooms,
};

/// Where the document is served, and where Swagger UI lives.
pub const DOCUMENT_PATH: &str = "/openapi.json";
pub const UI_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Obelix",
        description = "The distributed systems of the Obelix seeds (Olympic results, the \
            bookstore, room reservation, the log queue) as one supervised actor tree on \
            PostgreSQL. Every error is `{\"error\": ..., \"field\": ...}`; a `503` carries \
            `Retry-After`. Every GET route also answers `HEAD`.",
    ),
    paths(
        health::alive,
        health::ready,
        metrics::render,
        document,
        olympics::games::list,
        olympics::games::score,
        olympics::games::set_score,
        olympics::teams::list,
        olympics::teams::medals,
        olympics::teams::award,
        olympics::tablets::register,
        olympics::tablets::unregister,
        olympics::events::stream,
        olympics::raffle::winners,
        queue::topics::create,
        queue::topics::list,
        queue::producers::register,
        queue::producers::enqueue,
        queue::consumers::register,
        queue::consumers::leave,
        queue::consumers::dequeue,
        queue::consumers::size,
        queue::consumers::commit,
        bookstore::books::list,
        bookstore::books::lookup,
        bookstore::books::set_cost,
        bookstore::books::buy,
        bookstore::books::restock,
        bookstore::orders::get,
        bookstore::replicas::status,
        rooms::catalog::rooms,
        rooms::catalog::timeslots,
        rooms::catalog::days,
        rooms::reservations::check,
        rooms::reservations::reserve,
        rooms::reservations::cancel,
        rooms::servers::list,
        rooms::servers::add,
        rooms::servers::kill,
        cluster::members,
        cluster::updates,
        admin::add_frontend,
        admin::kill_frontend,
        admin::list,
        admin::crash,
        kafka::topics::list,
        kafka::topics::get,
        kafka::topics::partitions,
        kafka::topics::partition,
        kafka::topics::offsets,
        kafka::produce::to_topic,
        kafka::produce::to_partition,
        kafka::consumers::create,
        kafka::consumers::delete,
        kafka::consumers::subscribe,
        kafka::consumers::subscription,
        kafka::consumers::unsubscribe,
        kafka::consumers::assignments,
        kafka::records::records,
        kafka::records::commit,
        kafka::records::committed,
        kafka::records::seek,
        kafka::records::seek_beginning,
        kafka::records::seek_end,
    ),
    components(schemas(schemas::ErrorBody, crate::actors::lifecycle::CrashMode), responses(
        schemas::BadRequest,
        schemas::Unauthorized,
        schemas::Forbidden,
        schemas::NotFound,
        schemas::RequestTimeout,
        schemas::Conflict,
        schemas::PayloadTooLarge,
        schemas::UnsupportedMediaType,
        schemas::Unprocessable,
        schemas::Unavailable,
    )),
    modifiers(&BearerTokens, &OperationIds),
    tags(
        (name = "olympics", description = "Olympic results: games, teams, tablets, the raffle (seeds 000, 001)"),
        (name = "queue", description = "The log queue: topics, producers, consumers (seed 004)"),
        (name = "kafka", description = "The log queue in Kafka REST Proxy v2 (issue 16): the same topics, groups and offsets; v2's content types and errors `{\"error_code\",\"message\"}`; the queue's tokens as Bearer or as the password of Basic"),
        (name = "bookstore", description = "Pygmy.com: books, orders, replicas (seed 002)"),
        (name = "rooms", description = "Room reservation (seed 003)"),
        (name = "operations", description = "Health, readiness, the cluster, the document itself"),
        (name = "admin", description = "Start and crash actors (off unless admin.token is set)"),
    )
)]
pub struct ApiDoc;

/// The bearer tokens, one security scheme each (see `config.toml`).
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "reporter",
                "Cacofonix's token (olympics.reporter_token): Olympic writes",
            ),
            ("admin", "The admin token (admin.token): the admin API"),
            (
                "bookstore_manager",
                "The store manager's token (bookstore.manager_token): restock, cost",
            ),
            (
                "queue_admin",
                "The queue's topic administration token (queue.admin_token)",
            ),
            (
                "queue_producer",
                "The queue's producers' token (queue.producer_token)",
            ),
            (
                "queue_consumer",
                "The queue's consumers' token (queue.consumer_token)",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(description.to_owned());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// Operation ids from the method and the path (`get_olympics_games_game_score`): handlers'
/// names repeat from one resource to the next (`list`, `get`), and ids must be unique.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            for (method, operation) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(operation) = operation {
                    operation.operation_id = Some(format!("{method}_{}", words.join("_")));
                }
            }
        }
    }
}

/// The document, made once per process, as JSON.
pub fn openapi() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut json = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
        without_null_parameters(&mut json);
        for (name, schema) in schemas::JSON_SCHEMAS {
            json["components"]["schemas"][name] = schema();
        }
        json
    })
}

/// An optional header or query parameter is absent or a string, never JSON `null` (utoipa
/// writes `Option<T>` as "T or null"): `null` leaves the parameters' types.
fn without_null_parameters(json: &mut serde_json::Value) {
    let operations = json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let parameters = operation
            .get_mut("parameters")
            .and_then(|p| p.as_array_mut())
            .into_iter()
            .flatten();
        for parameter in parameters {
            let schema_type = &mut parameter["schema"]["type"];
            if let Some(types) = schema_type.as_array_mut() {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    *schema_type = types[0].clone();
                }
            }
        }
    }
}

/// The methods route `pattern` answers (`GET, HEAD, PUT`), for a 405's `Allow`.
pub fn allowed_methods(pattern: &str) -> Option<String> {
    let item = openapi()["paths"].get(pattern)?;
    let methods: Vec<&str> = [
        ("GET", "get"),
        ("HEAD", "get"),
        ("POST", "post"),
        ("PUT", "put"),
        ("PATCH", "patch"),
        ("DELETE", "delete"),
    ]
    .into_iter()
    .filter_map(|(method, key)| item.get(key).map(|_| method))
    .collect();
    Some(methods.join(", "))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}

/// Registers `/openapi.json`, and Swagger UI at `/docs/` (`/docs` redirects there).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(DOCUMENT_PATH).route(web::get().to(document)))
        .service(resource(UI_PATH).route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/docs/"))
                .finish()
        })))
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new([DOCUMENT_PATH])));
}
