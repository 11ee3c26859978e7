//! Who may reach the private cluster: its socket folder (private, refused if someone else made
//! it), the superuser's password (generated once, kept 0600 in the data folder, given to the
//! server through single-user mode) and the `postgres` user's ownership of what it runs on.

use super::*;

/// Creates the socket folder with mode 0700, or accepts an existing one only if it is a real
/// folder of ours (or, as root, of the `postgres` user who runs the server).
pub(super) fn prepare_socket_dir(dir: &Path, as_root: bool) -> Result<(), ClusterError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let io_err = |what: &str| {
        let (dir, what) = (dir.to_path_buf(), what.to_owned());
        move |source| ClusterError::Io { dir, what, source }
    };
    let foreign = |why: String| ClusterError::ForeignSocketDir {
        dir: dir.to_path_buf(),
        why,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta =
                std::fs::symlink_metadata(dir).map_err(io_err("inspect the socket folder"))?;
            if !meta.file_type().is_dir() {
                return Err(foreign("not a folder".into()));
            }
            let ours = unsafe { libc::geteuid() };
            let server_user = postgres_user_ids().map(|(uid, _)| uid);
            if meta.uid() != ours && !(as_root && Some(meta.uid()) == server_user) {
                return Err(foreign(format!("owned by uid {}", meta.uid())));
            }
        }
        Err(e) => return Err(io_err("create the socket folder")(e)),
    }
    if as_root {
        chown_to_postgres(dir).map_err(io_err("hand the socket folder to postgres"))?;
    }
    set_mode(dir, 0o700).map_err(io_err("restrict the socket folder"))
}

/// The superuser's password: read from the data folder's `pgpass` file, or (first start, or a
/// cluster made before passwords) generated and set in single-user mode, with no server
/// listening meanwhile. Rewrites `pg_hba.conf` and the `pgpass` line (the socket folder is part
/// of it) either way.
pub(super) fn ensure_password(
    bin_dir: &Path,
    data_dir: &Path,
    socket_dir: &Path,
    as_root: bool,
) -> Result<SecretString, ClusterError> {
    let file = data_dir.join(PASSWORD_FILE);
    let io_err = |what: &str| {
        let (dir, what) = (data_dir.to_path_buf(), what.to_owned());
        move |source| ClusterError::Io { dir, what, source }
    };
    let known = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| Some(text.trim().rsplit(':').next()?.to_owned()))
        .filter(|p| !p.is_empty());
    let password = match known {
        Some(password) => password,
        None => {
            use rand::Rng;
            let password: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            set_superuser_password(bin_dir, data_dir, &password, as_root)?;
            password
        }
    };
    let line = format!(
        "{}:{PORT}:*:{SUPERUSER}:{password}\n",
        pgpass_escape(&socket_dir.to_string_lossy())
    );
    write_private(&file, &line).map_err(io_err("write the password file"))?;
    std::fs::write(data_dir.join("pg_hba.conf"), PG_HBA).map_err(io_err("write pg_hba.conf"))?;
    Ok(SecretString::from(password))
}

/// `ALTER ROLE … PASSWORD` through `postgres --single`: the password goes on its stdin, never
/// on a command line.
pub(super) fn set_superuser_password(
    bin_dir: &Path,
    data_dir: &Path,
    password: &str,
    as_root: bool,
) -> Result<(), ClusterError> {
    use std::io::Write;
    let postgres = bin_dir.join("postgres");
    let mut cmd = if as_root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(postgres);
        cmd
    } else {
        Command::new(postgres)
    };
    cmd.arg("--single")
        .arg("-D")
        .arg(data_dir)
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let failed = |log: String| ClusterError::Password {
        dir: data_dir.to_path_buf(),
        log,
    };
    let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
    let statement = format!("ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(statement.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.contains("ERROR") {
        return Err(failed(one_line(&stderr)));
    }
    Ok(())
}

/// `:` and `\` are escaped in `pgpass` fields.
pub(super) fn pgpass_escape(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

/// Writes `text` to `path` with mode 0600 (a fresh file renamed over the old one).
pub(super) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

pub(super) fn postgres_user_ids() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(SUPERUSER).ok()?;
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

pub(super) fn chown_to_postgres(path: &Path) -> std::io::Result<()> {
    let (uid, gid) =
        postgres_user_ids().ok_or_else(|| std::io::Error::other("no postgres user"))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

pub(super) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
