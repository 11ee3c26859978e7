//! One Obelix per database. The services keep state beside their tables that assumes they are
//! the database's only writer (the queue's brokers number offsets in memory, the write logs
//! their entries), so a second Obelix on the same database must be refused, not merely slowed.
//! A private cluster is also guarded by its data folder's lock; any database, private or named
//! by `DATABASE_URL`, is guarded here: a session-level advisory lock, held by one connection kept open for the
//! life of the process (PostgreSQL releases it when that connection ends, so also after a
//! `kill -9`). Advisory locks are per database: Obelixes on other databases of one server do not
//! meet. The lock is lost with its connection if the server itself restarts; the second
//! Obelix is then refused only until that happens.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

/// The advisory lock's key: "obelix" in ASCII.
const OBELIX_LOCK: i64 = 0x6f62_656c_6978;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseLockError {
    #[error(
        "another Obelix uses database {database} (backend pid {holder}); stop it first, or point this one at another database"
    )]
    Taken { database: String, holder: i32 },
    #[error("cannot connect to PostgreSQL to take the database's lock: {0}")]
    Sql(#[from] sqlx::Error),
}

/// The connection that holds the lock; closing or dropping it lets another Obelix in.
pub struct DatabaseLock {
    _holder: PgConnection,
}

impl DatabaseLock {
    /// Takes the lock, or says who holds it.
    pub async fn take(options: &PgConnectOptions) -> Result<Self, DatabaseLockError> {
        let mut conn = PgConnection::connect_with(options).await?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(OBELIX_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if taken {
            return Ok(Self { _holder: conn });
        }
        let holder = sqlx::query(
            "SELECT current_database() AS database, \
             (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                AND ((classid::bigint << 32) | objid::bigint) = $1 LIMIT 1) AS holder",
        )
        .bind(OBELIX_LOCK)
        .fetch_one(&mut conn)
        .await?;
        Err(DatabaseLockError::Taken {
            database: holder.get("database"),
            holder: holder.get::<Option<i32>, _>("holder").unwrap_or(0),
        })
    }
}
