//! `GET /olympics/tablets/{id}/events?games=curling,skating&teams=gauls`: pushes to a tablet as
//! Server-Sent Events. Reconnect with the `Last-Event-ID` header (or `last_event_id=`) to resume.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::actors::Tree;
use crate::actors::olympics::publisher::Subscribe;
use crate::olympics::OlympicsError;
use crate::olympics::push_log::{Event, EventId, Topics};
use crate::web::error::ApiError;
use crate::web::olympics::common::tablet_id_in_path;

/// A comment line now and then keeps proxies and clients from timing out an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Keep-alives come often enough to keep the stream's tablet from expiring: at least three
/// per expiry period.
fn keepalive_every(expiry: Option<Duration>) -> Duration {
    expiry.map_or(KEEPALIVE, |e| KEEPALIVE.min(e / 3))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Comma-separated game slugs.
    games: Option<String>,
    /// Comma-separated team slugs.
    teams: Option<String>,
    /// For clients that cannot set the `Last-Event-ID` header.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,19}$")]
    last_event_id: Option<String>,
}

fn slugs(list: &Option<String>) -> std::collections::HashSet<String> {
    list.iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[utoipa::path(
    get,
    path = "/olympics/tablets/{id}/events",
    tag = "olympics",
    params(
        ("id" = uuid::Uuid, Path, description = "The tablet's id"),
        EventsParams,
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,19}-[0-9]{1,19}$", description = "The last event received: resume after it"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: the replay or a snapshot first, then live updates, with keep-alive comments", content_type = "text/event-stream", body = crate::web::openapi::schemas::ServerSentEvent,
            headers(("Cache-Control" = String, description = "`no-cache`"))),
        (status = 400, response = crate::web::openapi::schemas::BadRequest),
        (status = 404, response = crate::web::openapi::schemas::NotFound),
        (status = 422, response = crate::web::openapi::schemas::Unprocessable),
        (status = 503, response = crate::web::openapi::schemas::Unavailable),
    ),
)]
/// `GET /olympics/tablets/{id}/events`
pub async fn stream(
    req: HttpRequest,
    tree: web::Data<Tree>,
    id: web::Path<String>,
    params: web::Query<EventsParams>,
) -> Result<HttpResponse, ApiError> {
    let tablet = tablet_id_in_path(&id)?;
    let label = tree.router.tablet_label(tablet)?;
    // The query's id is checked even when the header is there (the header wins).
    let from_query = params
        .last_event_id
        .as_deref()
        .map(str::parse::<EventId>)
        .transpose()
        .map_err(|message| ApiError::BadHeader {
            header: "last_event_id",
            message,
        })?;
    let last_event = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        // Empty: no event seen yet (an EventSource's empty last event id), as when absent.
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
        .map(|id| id.parse::<EventId>())
        .transpose()
        .map_err(|message| ApiError::BadHeader {
            header: "Last-Event-ID",
            message,
        })?
        .or(from_query);
    let topics = Topics {
        games: slugs(&params.games),
        teams: slugs(&params.teams),
    };
    let subscription = tree
        .publisher
        .send(Subscribe {
            tablet: label,
            topics,
            last_event,
        })
        .await
        .map_err(|e| OlympicsError::Unavailable(format!("publisher: {e}")))??;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames(
            subscription.first,
            subscription.live,
            keepalive_every(tree.tablet_idle_expiry),
            {
                // An open stream keeps its tablet registered: every keep-alive says it is here.
                let router = tree.router.clone();
                move || {
                    let _ = router.tablet_label(tablet);
                }
            },
        )))
}

/// The first frames (replay or snapshot), then live events, with keep-alive comments between.
fn frames(
    first: Vec<String>,
    live: mpsc::Receiver<Arc<Event>>,
    every: Duration,
    alive: impl Fn() + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let state = (live, keepalive, alive);
    let tail = stream::unfold(state, |(mut live, mut keepalive, alive)| async move {
        let frame = tokio::select! {
            event = live.recv() => Bytes::from(event?.frame.clone()),
            _ = keepalive.tick() => {
                alive();
                Bytes::from_static(b": keep-alive\n\n")
            }
        };
        Some((Ok(frame), (live, keepalive, alive)))
    });
    stream::iter(first.into_iter().map(|f| Ok(Bytes::from(f)))).chain(tail)
}
