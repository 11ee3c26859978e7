//! A private PostgreSQL cluster, run from the server binaries installed on the machine, for when
//! no `DATABASE_URL` names an existing server.
//!
//! - `initdb` runs once into the data folder; later starts reuse it, so data outlives the process.
//! - The server listens on a Unix socket only, in a folder of its own, so it never collides with a
//!   system PostgreSQL on port 5432. That folder is private (0700, ours or the `postgres`
//!   user's): its name is predictable, so one that someone else made first is refused rather
//!   than used.
//! - Connections authenticate: the superuser has a generated password (scram-sha-256), kept in
//!   a `pgpass` file (0600) in the data folder, which `psql` reads through `PGPASSFILE`.
//!   `pg_hba.conf` is ours and rewritten at every start.
//! - `initdb` and `postgres` refuse to run as root: as root they run as the `postgres` user
//!   through `setpriv`.
//! - Nothing here blocks the thread of its caller once the cluster runs: the keeper actor shares
//!   its arbiter with every other actor, so restarts read files through `tokio::fs` or
//!   `spawn_blocking`, wait for the forking thread on a oneshot channel, and read only the part
//!   of the server log that the attempt wrote (at most [`LOG_TAIL_BYTES`]).
//! - One Obelix per data folder: a lock (`flock` on `<data_dir>.lock`, released by the kernel
//!   when the process dies, even by `kill -9`) is taken before anything else, so a second one
//!   is told at once; a postmaster still running in the folder is waited for only while it is
//!   shutting down (the leftover of a killed Obelix), not when it is someone else's.
//! - The postmaster gets SIGINT (fast shutdown) when the thread that started it dies, so a
//!   `kill -9` of Obelix does not leave an orphan server holding the data folder. That thread is a
//!   dedicated one that lives as long as the server, because the kernel's parent-death signal
//!   follows the *thread* that forked, not the process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

mod access;
mod server_log;

use access::*;
pub use server_log::LOG_TAIL_BYTES;
use server_log::{SERVER_LOG_MAX_BYTES, log_tail, rotate_if_over};

const SUPERUSER: &str = "postgres";
/// The superuser's password, in `pgpass` format, inside the data folder.
const PASSWORD_FILE: &str = "obelix.pgpass";
/// Who may connect: the superuser with its password, over the private socket only (the server
/// listens on no TCP port).
const PG_HBA: &str = "# Written by Obelix at every start (see src/storage/pg_cluster/).\n\
                      local all all scram-sha-256\n";
const PORT: u16 = 5432;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STALE_POSTMASTER_TIMEOUT: Duration = Duration::from_secs(20);
/// A postmaster found running in our data folder that does not report "stopping" within this
/// is not a leftover of ours on its way out.
const NOT_STOPPING_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found in database.server_bin_dir, PATH or \
         /usr/lib/postgresql/*/bin. Install them (Debian: `apt-get install postgresql`) or set \
         DATABASE_URL to an existing server."
    )]
    NoServerBinaries,
    #[error(
        "running as root, but there is no `postgres` user to run the private cluster as; create one or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error("private PostgreSQL cluster in {dir}: {what}")]
    Io {
        dir: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb failed for {dir}: {}", one_line(log))]
    Initdb { dir: PathBuf, log: String },
    #[error(
        "the data folder {dir} is in use by another Obelix{}; stop it first, or give this one \
         another database.data_dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    HeldByAnotherObelix { dir: PathBuf, pid: Option<u32> },
    #[error(
        "the socket folder {dir} of the private PostgreSQL is not ours ({why}); another user may \
         have made it to reach our database: remove it, or choose another database.data_dir"
    )]
    ForeignSocketDir { dir: PathBuf, why: String },
    #[error("could not set the superuser's password in {dir}: {log}")]
    Password { dir: PathBuf, log: String },
    #[error(
        "the data folder {dir} is held by a running postgres (pid {pid}) that is not shutting \
         down; stop it first"
    )]
    InUse { dir: PathBuf, pid: i32 },
    #[error(
        "the private PostgreSQL did not become ready in {dir}; the end of its log: {}",
        one_line(log)
    )]
    NotReady { dir: PathBuf, log: String },
    #[error("private PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Server settings for the private cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `false` trades crash safety of the *server* for speed (tests only): a crash of Obelix
    /// itself still loses nothing, since the server shuts down cleanly.
    pub durable: bool,
    /// Where `initdb` and `postgres` are; `None` searches PATH, then `/usr/lib/postgresql/*/bin`.
    pub bin_dir: Option<PathBuf>,
}

/// A running private cluster. Dropping it does not stop the server; call [`PrivateCluster::stop`].
#[derive(Debug)]
pub struct PrivateCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    /// The superuser's password (also in the data folder's `pgpass` file).
    password: SecretString,
    options: ClusterOptions,
    server: std::sync::Mutex<Arc<ServerProcess>>,
    /// Held while this process uses the data folder (see the module comment).
    _lock: std::fs::File,
}

/// One run of the postmaster, watched by its own thread.
#[derive(Debug)]
struct ServerProcess {
    pid: AtomicI32,
    exited: AtomicBool,
    /// The server log's length when this run started: what it wrote comes after.
    log_start: u64,
}

impl PrivateCluster {
    /// Initialises the data folder if needed, starts the server and waits until it accepts
    /// connections.
    pub async fn start(data_dir: &Path, options: ClusterOptions) -> Result<Self, ClusterError> {
        let bin_dir = find_server_binaries(options.bin_dir.as_deref())
            .ok_or(ClusterError::NoServerBinaries)?;
        let as_root = unsafe { libc::geteuid() } == 0;
        if as_root && postgres_user_ids().is_none() {
            return Err(ClusterError::NoPostgresUser);
        }
        let io_err = |what: &str| {
            let dir = data_dir.to_path_buf();
            let what = what.to_owned();
            move |source| ClusterError::Io { dir, what, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io_err("create the data folder"))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(io_err("resolve the data folder"))?;
        // Before anything that changes the folder: another Obelix may be running in it.
        let lock = lock_data_dir(&data_dir)?;
        let socket_dir = socket_dir_for(&data_dir);
        prepare_socket_dir(&socket_dir, as_root)?;
        let log_file = data_dir.with_extension("log");
        if as_root {
            chown_to_postgres(&data_dir).map_err(io_err("hand the data folder to postgres"))?;
        }
        set_mode(&data_dir, 0o700).map_err(io_err("restrict the data folder"))?;

        if !data_dir.join("PG_VERSION").exists() {
            run_initdb(&bin_dir, &data_dir, as_root)?;
        }
        wait_for_stale_postmaster(&data_dir).await?;
        let password = ensure_password(&bin_dir, &data_dir, &socket_dir, as_root)?;

        let cluster = PrivateCluster {
            server: std::sync::Mutex::new(Arc::new(ServerProcess {
                pid: AtomicI32::new(0),
                exited: AtomicBool::new(true),
                log_start: 0,
            })),
            bin_dir,
            data_dir,
            socket_dir,
            log_file,
            password,
            options,
            _lock: lock,
        };
        cluster.launch().await?;
        cluster.wait_until_ready().await?;
        Ok(cluster)
    }

    /// Starts the postmaster again if it has died (the keeper actor calls this).
    /// Returns `true` when it had to restart it.
    pub async fn ensure_running(&self) -> Result<bool, ClusterError> {
        if !self.current().exited.load(Ordering::Acquire) {
            return Ok(false);
        }
        wait_for_stale_postmaster(&self.data_dir).await?;
        self.launch().await?;
        self.wait_until_ready().await?;
        Ok(true)
    }

    /// Fast shutdown: SIGINT to the postmaster, then wait for it to exit.
    pub async fn stop(&self) {
        let server = self.current();
        let pid = server.pid.load(Ordering::Acquire);
        if pid > 0 && !server.exited.load(Ordering::Acquire) {
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.exited.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connection options for a database of this cluster.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.socket_dir.to_string_lossy())
            .port(PORT)
            .username(SUPERUSER)
            .password(self.password.expose_secret())
            .database(database)
    }

    /// The superuser's password, for URLs of this cluster (tests).
    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// The exact `psql` command that opens `database` in this cluster: the password comes from
    /// the data folder's `pgpass` file, so it appears in no log and no process list.
    pub fn psql_command(&self, database: &str) -> String {
        format!(
            "PGPASSFILE={} psql -h {} -p {PORT} -U {SUPERUSER} -d {database}",
            self.data_dir.join(PASSWORD_FILE).display(),
            self.socket_dir.display()
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the running postmaster (0 if none).
    pub fn pid(&self) -> i32 {
        self.current().pid.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<ServerProcess> {
        self.server.lock().expect("cluster lock").clone()
    }

    async fn launch(&self) -> Result<(), ClusterError> {
        let mut cmd = server_command(&self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir.display()
            ))
            .args(["-c", "max_connections=200"]);
        if !self.options.durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        let io_err = |what: String| {
            let dir = self.data_dir.clone();
            move |source| ClusterError::Io { dir, what, source }
        };
        // Bounded across runs: a long log is moved aside before this run appends to it.
        rotate_if_over(&self.log_file, SERVER_LOG_MAX_BYTES)
            .await
            .map_err(io_err("rotate the server log".into()))?;
        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .await
            .map_err(io_err(format!(
                "open the server log {}",
                self.log_file.display()
            )))?;
        let log_start = log
            .metadata()
            .await
            .map_err(io_err("measure the server log".into()))?
            .len();
        let log = log.into_std().await;
        let log_err = log
            .try_clone()
            .map_err(io_err("duplicate the log handle".into()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));

        let server = Arc::new(ServerProcess {
            pid: AtomicI32::new(0),
            exited: AtomicBool::new(false),
            log_start,
        });
        *self.server.lock().expect("cluster lock") = server.clone();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let data_dir = self.data_dir.clone();
        // The thread that forks must outlive the server: see the module comment.
        std::thread::Builder::new()
            .name("postgres-keeper".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    server.pid.store(child.id() as i32, Ordering::Release);
                    let _ = started_tx.send(Ok(()));
                    let status = child.wait();
                    server.exited.store(true, Ordering::Release);
                    tracing::info!(data_dir = %data_dir.display(), ?status, "private postgres exited");
                }
                Err(e) => {
                    server.exited.store(true, Ordering::Release);
                    let _ = started_tx.send(Err(e));
                }
            })
            .map_err(io_err("spawn the keeper thread".into()))?;
        match started_rx.await {
            Ok(started) => started.map_err(io_err("start postgres".into())),
            Err(_) => Err(io_err("start postgres".into())(std::io::Error::other(
                "the keeper thread ended before forking",
            ))),
        }
    }

    async fn wait_until_ready(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let options = self.connect_options("postgres");
        loop {
            match PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                // A wrong password will not come right by waiting.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("28P01" | "28000")) =>
                {
                    return Err(ClusterError::Sql(sqlx::Error::Database(e)));
                }
                Err(_)
                    if Instant::now() < deadline
                        && !self.current().exited.load(Ordering::Acquire) =>
                {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(_) => {
                    return Err(ClusterError::NotReady {
                        dir: self.data_dir.clone(),
                        log: log_tail(&self.log_file, self.current().log_start).await,
                    });
                }
            }
        }
    }

    /// Creates `database` unless it exists.
    pub async fn ensure_database(&self, database: &str) -> Result<(), ClusterError> {
        let mut conn = PgConnection::connect_with(&self.connect_options("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // Identifiers cannot be bound; the name is quoted with embedded quotes doubled.
            let create = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        Ok(())
    }
}

/// A command that runs `program` as the `postgres` user when we are root, and that gets SIGINT
/// when the forking thread dies.
fn server_command(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--pdeathsig",
            "SIGINT",
        ])
        .arg(program);
        cmd
    } else {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        cmd
    }
}

fn run_initdb(bin_dir: &Path, data_dir: &Path, as_root: bool) -> Result<(), ClusterError> {
    let mut cmd = if as_root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(bin_dir.join("initdb"));
        cmd
    } else {
        Command::new(bin_dir.join("initdb"))
    };
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
        .stdin(Stdio::null());
    let output = cmd.output().map_err(|source| ClusterError::Io {
        dir: data_dir.to_path_buf(),
        what: "run initdb".into(),
        source,
    })?;
    if !output.status.success() {
        return Err(ClusterError::Initdb {
            dir: data_dir.to_path_buf(),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Several lines of a log as one, for a one-line error.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Takes the data folder's lock, or says which Obelix holds it.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, ClusterError> {
    use std::io::{Seek, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.with_extension("lock");
    let io_err = |what: &str| {
        let (dir, what) = (data_dir.to_path_buf(), what.to_owned());
        move |source| ClusterError::Io { dir, what, source }
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open the lock file"))?;
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err("lock the data folder")(error));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(ClusterError::HeldByAnotherObelix {
            dir: data_dir.to_path_buf(),
            pid: holder.trim().parse().ok(),
        });
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_err("write the lock file"))?;
    Ok(file)
}

/// After a `kill -9` of Obelix, its postmaster gets SIGINT and needs a moment to shut down;
/// wait for it rather than fail on postgres's own lock file. A postmaster that is not shutting
/// down is someone else's: say so at once.
async fn wait_for_stale_postmaster(data_dir: &Path) -> Result<(), ClusterError> {
    let started = Instant::now();
    let mut told = false;
    loop {
        let Some((pid, status)) = postmaster_status(data_dir).await else {
            return Ok(());
        };
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Ok(()); // a stale lock file; postgres removes it itself
        }
        let waited = started.elapsed();
        let stopping = status == "stopping";
        if waited >= STALE_POSTMASTER_TIMEOUT || (!stopping && waited >= NOT_STOPPING_GRACE) {
            return Err(ClusterError::InUse {
                dir: data_dir.to_path_buf(),
                pid,
            });
        }
        if stopping && !told {
            tracing::info!(pid, data_dir = %data_dir.display(), "waiting for the postgres (pid {pid}) of an earlier run to shut down");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid and status ("starting", "ready", "stopping"…) in postgres's `postmaster.pid`.
async fn postmaster_status(data_dir: &Path) -> Option<(i32, String)> {
    let text = tokio::fs::read_to_string(data_dir.join("postmaster.pid"))
        .await
        .ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = lines.nth(6).unwrap_or("").trim().to_owned();
    Some((pid, status))
}

/// The configured folder if given; otherwise `initdb` from PATH, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_server_binaries(configured: Option<&Path>) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = configured {
        return has_both(dir).then(|| dir.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if let Ok(initdb) = dir.join("initdb").canonicalize()
                && let Some(real_dir) = initdb.parent()
                && has_both(real_dir)
            {
                return Some(real_dir.to_path_buf());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// A short socket folder under the temp dir: Unix socket paths are limited to ~107 bytes.
pub fn socket_dir_for(data_dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    std::env::temp_dir().join(format!("obelix-pg-{:016x}", hasher.finish()))
}
