//! Reaching PostgreSQL: the configured server, or a private cluster of our own
//! ([`pg_cluster`]); then migrations. Every service's SQL reaches the database through the
//! pool made here.

mod database_lock;
pub mod pg_cluster;

use std::str::FromStr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::settings::DatabaseSettings;
use crate::storage::pg_cluster::{ClusterError, ClusterOptions, PrivateCluster};
use database_lock::{DatabaseLock, DatabaseLockError};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("database URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot read the update sequence: {0}")]
    Sequence(sqlx::Error),
    #[error(transparent)]
    InUse(#[from] DatabaseLockError),
}

/// A migrated pool, the private cluster behind it if we started one, and how a person opens it.
pub struct Storage {
    pub pool: PgPool,
    pub cluster: Option<Arc<PrivateCluster>>,
    pub psql_command: String,
    /// The number of the last committed reporter update when we started: the front-ends apply
    /// updates in the global order from the next one on.
    pub last_update_seq: u64,
    /// Held while this process uses the database: one Obelix per database.
    _database_lock: DatabaseLock,
}

impl Storage {
    /// Closes the pool, waiting for queries still running (writes whose actors are gone) to give
    /// back their connections, then stops the private PostgreSQL if we started one.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(cluster) = &self.cluster {
            cluster.stop().await;
            tracing::info!("private PostgreSQL stopped");
        }
    }
}

/// The configured server, or a private cluster (stopped again if what follows its start fails).
pub async fn connect(settings: &DatabaseSettings) -> Result<Storage, StorageError> {
    let (options, cluster, psql_command, database_lock) = match &settings.url {
        Some(url) => {
            let url = url.expose_secret();
            let options = PgConnectOptions::from_str(url).map_err(StorageError::Url)?;
            // Before the migrations: a second Obelix changes nothing.
            let lock = DatabaseLock::take(&options).await?;
            (
                options,
                None,
                format!("psql '{}'", redact_password(url)),
                lock,
            )
        }
        None => {
            let cluster = PrivateCluster::start(
                &settings.data_dir,
                ClusterOptions {
                    durable: true,
                    bin_dir: settings.server_bin_dir.clone(),
                },
            )
            .await?;
            if let Err(e) = cluster.ensure_database(&settings.name).await {
                cluster.stop().await;
                return Err(e.into());
            }
            tracing::info!(data_dir = %cluster.data_dir().display(), pid = cluster.pid(), "private PostgreSQL cluster running");
            let psql = cluster.psql_command(&settings.name);
            let options = cluster.connect_options(&settings.name);
            let lock = match DatabaseLock::take(&options).await {
                Ok(lock) => lock,
                Err(e) => {
                    cluster.stop().await;
                    return Err(e.into());
                }
            };
            (options, Some(Arc::new(cluster)), psql, lock)
        }
    };
    let connected = open_pool(settings, options).await;
    let (pool, last_update_seq) = match connected {
        Ok(opened) => opened,
        Err(e) => {
            if let Some(cluster) = &cluster {
                cluster.stop().await;
            }
            return Err(e);
        }
    };
    Ok(Storage {
        pool,
        cluster,
        psql_command,
        last_update_seq,
        _database_lock: database_lock,
    })
}

/// A pool on `options`, migrated, and the last update's number.
async fn open_pool(
    settings: &DatabaseSettings,
    options: PgConnectOptions,
) -> Result<(PgPool, u64), StorageError> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        // No ping (a round trip, and a wakeup of the backend) before every use of a pooled
        // connection: a broken one fails its statement instead, which every caller handles
        // (the queue answers 503 and its brokers reload), and the pool then drops it.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(StorageError::Connect)?;
    sqlx::migrate!().run(&pool).await?;
    // Where the front-ends join the one global order of Olympic updates: the log's head.
    let last_update_seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT last_seq FROM write_log_heads WHERE log = 'update_log'), \
         (SELECT max(seq) FROM update_log), 0)",
    )
    .fetch_one(&pool)
    .await
    .map_err(StorageError::Sequence)?;
    Ok((pool, last_update_seq as u64))
}

/// `postgres://user:secret@host/db?password=secret&sslmode=…` → `postgres://user@host/db?sslmode=…`,
/// for logs: the password goes, from the user part and from the query.
pub fn redact_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.find("://") {
        Some(scheme_end) => {
            let (scheme, rest) = base.split_at(scheme_end + 3);
            // Only an `@` of the authority separates credentials, not one further on.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rfind('@') {
                Some(at) => {
                    let user = authority[..at].split(':').next().unwrap_or("");
                    format!("{scheme}{user}{}{path}", &authority[at..])
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.is_empty() && !pair.starts_with("password="))
        .collect();
    if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_password("postgres://bob:hunter2@db:5432/obelix"),
            "postgres://bob@db:5432/obelix"
        );
        assert_eq!(
            redact_password("postgres://bob@db/obelix"),
            "postgres://bob@db/obelix"
        );
        assert_eq!(
            redact_password("postgres:///obelix?host=/tmp"),
            "postgres:///obelix?host=/tmp"
        );
    }

    #[test]
    fn passwords_in_the_query_never_reach_the_log() {
        assert_eq!(
            redact_password("postgres://bob@db/obelix?password=hunter2"),
            "postgres://bob@db/obelix"
        );
        assert_eq!(
            redact_password("postgres://bob@db/obelix?sslmode=disable&password=hunter2&host=/tmp"),
            "postgres://bob@db/obelix?sslmode=disable&host=/tmp"
        );
        assert_eq!(
            redact_password("postgres://bob:pw@db/obelix?password=hunter2&sslmode=disable"),
            "postgres://bob@db/obelix?sslmode=disable"
        );
    }
}
