//! Builds the whole process tree: PostgreSQL, the actors, then the HTTP ingress.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use secrecy::ExposeSecret;

use crate::actors::postgres_keeper::PostgresKeeper;
use crate::actors::supervisor::{ActorCell, ShutdownSignal, start_supervised};
use crate::actors::{self, Tree};
use crate::queue::tokens;
use crate::settings::Settings;
use crate::storage::{self, Storage, StorageError};
use crate::web::auth::Tokens;
use crate::web::json::{BodyLimit, BodyTimeout};
use crate::web::queue::access::QueueTokens;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Boot(#[from] crate::actors::BootError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// The token `config.toml` ships with, for local use only.
const DEVELOPMENT_REPORTER_TOKEN: &str = "cacofonix-dev-token";

pub struct Application {
    port: u16,
    server: Server,
    tree: Tree,
    storage: Storage,
}

impl Application {
    /// Starts everything; the HTTP server runs once [`Application::run_until_stopped`] is awaited
    /// (or the returned server is spawned).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Again here: tests and embedders adjust settings after loading them.
        settings.validate()?;
        // The metrics recorder before any actor runs: the first elections count.
        crate::telemetry::metrics::start_upkeep();
        // The port first: when it is taken, say so before anything has started.
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listen_error = |source| StartupError::Listen {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();

        let storage = storage::connect(&settings.database).await?;
        let shutdown = ShutdownSignal::default();
        let booted = actors::boot(
            &settings,
            storage.pool.clone(),
            shutdown.clone(),
            storage.last_update_seq,
        )
        .await;
        let tree = match booted {
            Ok(tree) => tree,
            Err(e) => {
                storage.close().await;
                return Err(e.into());
            }
        };
        if let Some(cluster) = &storage.cluster {
            let cell = ActorCell::new("postgres-keeper");
            let (cluster, actor_cell) = (cluster.clone(), cell.clone());
            let keeper = start_supervised(
                cell.clone(),
                &settings.supervision,
                shutdown.clone(),
                move |_| PostgresKeeper::new(cluster, actor_cell, shutdown),
            );
            tree.registry.add(cell, keeper);
        }

        let tokens = Tokens {
            reporter: settings.olympics.reporter_token.clone(),
            admin: settings.admin.token.clone(),
            bookstore_manager: settings.bookstore.manager_token.clone(),
        };
        let queue_tokens = QueueTokens::from(&settings.queue);
        let body_limit = BodyLimit(settings.server.max_body_bytes);
        let body_timeout = BodyTimeout(settings.server.body_timeout());
        let data = web::Data::new(tree.clone());
        let metrics_sources = web::Data::new(crate::web::metrics::MetricsSources {
            pool: storage.pool.clone(),
        });
        let rate_limit = crate::web::rate_limit::RateLimit::new(&settings.rate_limit);
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let max_connections = connections_per_worker(&settings, workers);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(tokens.clone())
                .app_data(queue_tokens.clone())
                .app_data(body_limit)
                .app_data(body_timeout)
                .app_data(metrics_sources.clone())
                .wrap(crate::web::HeadAsGet)
                .wrap(crate::web::json::BodyGuard)
                .wrap(rate_limit.clone())
                .wrap(crate::web::metrics::RequestMetrics)
                .wrap(crate::web::request_id::RequestId)
                .configure(crate::web::routes)
                .default_service(web::to(crate::web::no_route))
        })
        .workers(workers)
        .max_connections(max_connections)
        .client_request_timeout(settings.server.head_timeout())
        .shutdown_timeout(10);
        let server = server.listen(listener).map_err(listen_error)?.run();

        tracing::info!(
            "Obelix is up: http://{}:{port}  (try: curl http://{}:{port}/olympics/games)",
            settings.server.host,
            settings.server.host
        );
        tracing::info!("inspect its database with: {}", storage.psql_command);
        if settings.olympics.reporter_token.expose_secret() == DEVELOPMENT_REPORTER_TOKEN {
            tracing::warn!(
                "the reporter token is the development one from config.toml; set OBELIX__OLYMPICS__REPORTER_TOKEN before anyone else can reach this server"
            );
        }
        if settings.bookstore.manager_token.expose_secret()
            == crate::settings::DEVELOPMENT_MANAGER_TOKEN
        {
            tracing::warn!(
                "the bookstore manager token is the development one from config.toml; set OBELIX__BOOKSTORE__MANAGER_TOKEN before anyone else can reach this server"
            );
        }
        for (key, token, development) in [
            (
                "ADMIN_TOKEN",
                &settings.queue.admin_token,
                tokens::DEVELOPMENT_ADMIN,
            ),
            (
                "PRODUCER_TOKEN",
                &settings.queue.producer_token,
                tokens::DEVELOPMENT_PRODUCER,
            ),
            (
                "CONSUMER_TOKEN",
                &settings.queue.consumer_token,
                tokens::DEVELOPMENT_CONSUMER,
            ),
        ] {
            if token.expose_secret() == development {
                tracing::warn!(
                    "the queue's {} is the development one from config.toml; set OBELIX__QUEUE__{key} before anyone else can reach this server",
                    key.to_lowercase()
                );
            }
        }
        if settings.admin.token.is_some() {
            tracing::info!("admin API enabled at /admin/actors");
        }
        Ok(Self {
            port,
            server,
            tree,
            storage,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn psql_command(&self) -> &str {
        &self.storage.psql_command
    }

    /// Stops the HTTP server gracefully when asked (tests; signals do this by themselves).
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or a stop through the handle): stop taking requests, finish
    /// those in flight, stop the actors, then the private PostgreSQL if we started one.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        tracing::info!("HTTP server stopped; shutting down the actor tree");
        self.tree.shutdown.begin();
        self.tree.registry.stop_all(Duration::from_secs(5)).await;
        self.storage.close().await;
        result
    }
}

/// Descriptors kept for everything but client connections: the pool's connections, the
/// private cluster's log, the listener, the runtime's own.
const RESERVED_DESCRIPTORS: u64 = 128;

/// `server.max_connections`, lowered if `workers` times it would not fit in the process's
/// descriptor limit (raised to its hard limit first).
fn connections_per_worker(settings: &Settings, workers: usize) -> usize {
    let limit = raise_descriptor_limit();
    let reserved = RESERVED_DESCRIPTORS + u64::from(settings.database.max_connections);
    let fits = fitting_connections(limit, reserved, workers);
    let wanted = settings.server.max_connections;
    if wanted > fits {
        tracing::info!(
            wanted,
            per_worker = fits,
            descriptor_limit = limit,
            "server.max_connections lowered to {fits} per worker to fit the descriptor limit of {limit}"
        );
        fits
    } else {
        wanted
    }
}

/// Client connections per worker that `limit` descriptors leave room for.
fn fitting_connections(limit: u64, reserved: u64, workers: usize) -> usize {
    let room = limit.saturating_sub(reserved).max(workers as u64);
    (room / workers.max(1) as u64) as usize
}

/// Raises the soft limit on open descriptors to the hard limit (allowed without privileges)
/// and returns the soft limit in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1_024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "descriptor limit raised from {} to {}",
                limit.rlim_cur,
                raised.rlim_cur
            );
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::fitting_connections;

    #[test]
    fn connections_fit_in_what_the_descriptors_leave() {
        assert_eq!(fitting_connections(20_000, 144, 2), 9_928);
        assert_eq!(fitting_connections(1_024, 144, 2), 440);
        // Never zero: a worker holds at least one connection.
        assert_eq!(fitting_connections(100, 144, 2), 1);
    }
}
