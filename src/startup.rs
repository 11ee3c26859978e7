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
use crate::web::json::BodyLimit;
use crate::web::queue::access::QueueTokens;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot load the queue's routing table: {0}")]
    Queue(#[from] crate::queue::QueueError),
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
        let storage = storage::connect(&settings.database).await?;
        let shutdown = ShutdownSignal::default();
        let tree = actors::boot(
            &settings,
            storage.pool.clone(),
            shutdown.clone(),
            storage.last_update_seq,
        )
        .await?;
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

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listen_error = |source| StartupError::Listen {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();

        let tokens = Tokens {
            reporter: settings.olympics.reporter_token.clone(),
            admin: settings.admin.token.clone(),
        };
        let queue_tokens = QueueTokens::from(&settings.queue);
        let body_limit = BodyLimit(settings.server.max_body_bytes);
        let data = web::Data::new(tree.clone());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(tokens.clone())
                .app_data(queue_tokens.clone())
                .app_data(body_limit)
                .configure(crate::web::routes)
                .default_service(web::to(crate::web::no_route))
        })
        .shutdown_timeout(10);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
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
        // Waits for queries still running (writes whose actors are gone) to give back their connections.
        self.storage.pool.close().await;
        if let Some(cluster) = &self.storage.cluster {
            cluster.stop().await;
            tracing::info!("private PostgreSQL stopped");
        }
        result
    }
}
