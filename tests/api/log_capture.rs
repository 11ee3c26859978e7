//! The test binary's tracing subscriber: it keeps every event logged inside a request span
//! whose id starts with [`PREFIX`] (a test's own requests), with the target (the module of the
//! actor that logged it) and its message; with `TEST_LOG=1` it also prints everything.

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Request ids that start with this are captured.
pub const PREFIX: &str = "capture-";

/// One event logged in a captured request's span.
#[derive(Debug, Clone)]
pub struct Captured {
    pub request_id: String,
    pub target: String,
    pub message: String,
}

static CAPTURED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// The events logged for `request_id` so far.
pub fn events_of(request_id: &str) -> Vec<Captured> {
    CAPTURED
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.request_id == request_id)
        .cloned()
        .collect()
}

/// Installs the subscriber (once per process; later calls do nothing).
pub fn install() {
    let capture = Capture.with_filter(Targets::new().with_target("obelix", Level::TRACE));
    let print = std::env::var("TEST_LOG").is_ok().then(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_filter(filter)
    });
    let _ = tracing_subscriber::registry()
        .with(capture)
        .with(print)
        .try_init();
}

struct Capture;

/// The id a captured request's span holds.
struct CapturedId(String);

#[derive(Default)]
struct Fields {
    request_id: Option<String>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" => self.request_id = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "request_id" => self.request_id = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(request_id) = fields.request_id.filter(|r| r.starts_with(PREFIX))
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(CapturedId(request_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(request_id) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<CapturedId>().map(|c| c.0.clone()))
        else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        CAPTURED.lock().unwrap().push(Captured {
            request_id,
            target: event.metadata().target().to_owned(),
            message: fields.message.unwrap_or_default(),
        });
    }
}
