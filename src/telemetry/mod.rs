//! What Obelix reports: logs (`RUST_LOG` filters, default `info`; human-readable lines or JSON
//! lines, `[log] format`) and Prometheus metrics ([`metrics`], rendered at `GET /metrics`).
//!
//! Every request runs in a `request` span carrying its `request_id` (`web::request_id`), and
//! the actors that handle its messages enter that span (`actors::traced`), so each event they
//! log on its behalf names the request, in both formats.

pub mod metrics;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
        // One object per line: timestamp, level, fields, and the list of spans the event is in
        // (the request's, with its request_id, first).
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_target(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .try_init(),
    };
}

/// Reports panics as one tracing event (who, where, what) instead of a multi-line dump; the
/// supervisor logs the restart that follows.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), %location, "panic: {message}");
    }));
}
