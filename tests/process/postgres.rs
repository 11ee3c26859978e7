//! The private PostgreSQL cluster: what to install without it, its password and its closed
//! socket, one Obelix per data folder, a taken port, and restarts of the postmaster that never
//! block the actors' thread.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Obelix, await_ready, data_dir, eventually, postmaster_pid, run_until_exit_in};

#[tokio::test]
async fn without_server_binaries_it_says_what_to_install() {
    let (_guard, data) = data_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_obelix"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("OBELIX__DATABASE__DATA_DIR", &data)
        .env("OBELIX__SERVER__PORT", "0")
        .env("PATH", "/nonexistent")
        .env("OBELIX__DATABASE__SERVER_BIN_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apt-get install postgresql") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_private_postgres_wants_its_password_and_is_closed_to_other_users() {
    let (_guard, data) = data_dir();
    let obelix = Obelix::start(&data);

    // 1. The command Obelix logged opens its database, password included.
    let mut conn = PgConnection::connect_with(&obelix.connect_options())
        .await
        .expect("the logged psql command connects");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    let output = Command::new("sh")
        .args(["-c", &format!("{} -XAtc 'SELECT 40 + 2'", obelix.psql)])
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "42",
        "the logged command, as printed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // 2. Without the password, PostgreSQL refuses.
    let refused = PgConnection::connect_with(&obelix.connect_options_without_password()).await;
    assert!(refused.is_err(), "connected without a password");

    // 3. Another local user cannot even reach the socket, password or not.
    if unsafe { libc::geteuid() } == 0 {
        let password = obelix.password().expect("a password file");
        let psql = obelix.psql.split_once("psql").unwrap().1;
        let output = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!("psql {psql} -XAtc 'SELECT 1'"))
            .env("PGPASSWORD", password)
            .current_dir("/")
            .output()
            .expect("setpriv runs");
        assert!(
            !output.status.success(),
            "nobody reached the private PostgreSQL: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");
    }
}

#[test]
fn a_socket_folder_someone_else_made_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        return; // making a folder for another user needs root
    }
    let (guard, data) = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let socket_dir = obelix::storage::pg_cluster::socket_dir_for(&data.canonicalize().unwrap());
    let _ = std::fs::remove_dir_all(&socket_dir);
    std::fs::create_dir(&socket_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&socket_dir, Some(65534), Some(65534)).unwrap();
    let outcome = run_until_exit_in(&data, &[], Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&socket_dir);
    drop(guard);
    let Some((status, _, stderr)) = outcome else {
        panic!("obelix started with a socket folder that another user owns");
    };
    assert!(!status.success());
    assert!(
        stderr.contains(&socket_dir.display().to_string()),
        "{stderr}"
    );
}

/// The longest stretch for which `work` kept this (single) thread from running anything else.
async fn longest_stall<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let longest = std::cell::Cell::new(Duration::ZERO);
    let ticker = async {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            longest.set(longest.get().max(last.elapsed()));
            last = Instant::now();
        }
    };
    let result = tokio::select! {
        result = work => result,
        _ = ticker => unreachable!(),
    };
    (result, longest.get())
}

/// Kills the cluster's postmaster and waits until it is gone.
async fn kill_postmaster(data: &Path) {
    let pid = postmaster_pid(data).expect("a running postmaster");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually(
        Duration::from_secs(10),
        || unsafe { libc::kill(pid, 0) } != 0,
    )
    .await;
}

// A current-thread runtime, like the arbiter the keeper shares with every actor.
#[tokio::test(flavor = "current_thread")]
async fn restarting_the_private_postgres_never_blocks_the_actors_thread() {
    use obelix::storage::pg_cluster::{ClusterError, ClusterOptions, PrivateCluster};
    let (_guard, data) = data_dir();
    let options = ClusterOptions {
        durable: false,
        bin_dir: None,
    };
    let cluster = PrivateCluster::start(&data, options).await.unwrap();

    // 1. A restart whose file reads are slow (here its lock file is a pipe that answers after
    //    a second, as a stalled disk would): the thread goes on serving others meanwhile.
    kill_postmaster(&data).await;
    let lock = data.join("postmaster.pid");
    let _ = std::fs::remove_file(&lock);
    let path = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let slow_disk = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let writer = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
        std::fs::remove_file(&lock).unwrap();
        drop(writer); // the reader sees an empty file
    });
    let (restarted, stall) = longest_stall(cluster.ensure_running()).await;
    slow_disk.join().unwrap();
    assert!(restarted.unwrap(), "the postmaster was restarted");
    assert!(
        stall < Duration::from_millis(300),
        "the thread stalled for {stall:?}"
    );

    // 2. A restart that fails reports the lines of its own attempt only, without reading the
    //    whole log (here 8 MB of earlier runs, under the size at which it is rotated) on the thread.
    kill_postmaster(&data).await;
    let log = data.with_extension("log");
    let earlier = "LOG:  a line of an earlier run\n".repeat(8 * 1024 * 1024 / 31);
    std::fs::write(&log, earlier).unwrap();
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut conf, b"\nno_such_setting = 1\n").unwrap();
    let (failed, stall) = longest_stall(cluster.ensure_running()).await;
    match failed {
        Err(ClusterError::NotReady { log, .. }) => {
            assert!(log.contains("no_such_setting"), "{log}");
            assert!(!log.contains("earlier run"), "{log}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(
        stall < Duration::from_millis(300),
        "the thread stalled for {stall:?}"
    );
}

#[tokio::test]
async fn a_second_obelix_on_the_same_data_is_refused_at_once() {
    let (_guard, data) = data_dir();
    let first = Obelix::start(&data);
    // 1. The second says at once that the data folder is taken, in one line, and exits.
    let started = Instant::now();
    let outcome = run_until_exit_in(&data, &[], Duration::from_secs(15));
    let Some((status, stdout, stderr)) = outcome else {
        panic!("a second obelix on the same data did not exit");
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("another Obelix"), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("panic"),
        "{stdout}{stderr}"
    );
    // 2. The first one never noticed: it is (or becomes, once its groups' first elections are
    //    done) ready.
    await_ready(&first.base_url).await;
}

#[test]
fn a_taken_port_is_reported_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (_guard, data) = data_dir();
    let outcome = run_until_exit_in(
        &data,
        &[("OBELIX__SERVER__PORT", &port)],
        Duration::from_secs(15),
    );
    let Some((status, stdout, stderr)) = outcome else {
        panic!("obelix did not exit with its port taken");
    };
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("panic"),
        "{stdout}{stderr}"
    );
    // Nothing was started: no cluster was made, no actor ran.
    assert!(
        !data.exists(),
        "the private cluster was set up before the port was checked"
    );
    assert!(!stdout.contains("started"), "{stdout}");
}

#[tokio::test]
async fn a_second_obelix_on_the_same_database_url_is_refused_at_once() {
    let (_guard, data) = data_dir();
    let first = Obelix::start(&data);
    // 1. Another Obelix, with a data folder of its own but DATABASE_URL naming the first one's
    //    database, says so in one line and exits before it changes anything.
    let options = first.connect_options();
    let url = format!(
        "postgres://postgres:{}@localhost/obelix?host={}&port={}",
        first.password().unwrap_or_default(),
        options.get_host(),
        options.get_port()
    );
    let (_other_guard, other_data) = data_dir();
    let outcome = run_until_exit_in(
        &other_data,
        &[("DATABASE_URL", &url)],
        Duration::from_secs(15),
    );
    let Some((status, stdout, stderr)) = outcome else {
        panic!("a second obelix on the same database did not exit");
    };
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("another Obelix uses database obelix"),
        "{stderr}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains("panic"),
        "{stdout}{stderr}"
    );
    // 2. The first one never noticed: it is (or becomes, once its groups' first elections are
    //    done) ready.
    await_ready(&first.base_url).await;
}
