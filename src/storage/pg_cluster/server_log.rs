//! The private server's log (`<data_dir>.log`): what a failed start quotes from it, and a
//! bound on its size across runs.
//!
//! The postmaster appends its stderr to the log for as long as it runs. Before each start the
//! log is rotated once it has passed [`SERVER_LOG_MAX_BYTES`]: it becomes `<data_dir>.log.1`
//! (replacing the one before), so the two together never hold much more than twice that, however
//! often Obelix starts. (The server writes little at the settings Obelix gives it: start-up,
//! shutdown, errors.)

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of the server log an error quotes, from its end.
pub const LOG_TAIL_BYTES: u64 = 4 * 1024;
/// The most lines of it.
const LOG_TAIL_LINES: usize = 15;
/// A log longer than this at a start is rotated.
pub const SERVER_LOG_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// `<log>.1`: where a rotated log goes.
fn rotated(log_file: &Path) -> PathBuf {
    let mut name = log_file.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Moves the log aside when it is longer than `max` (through `tokio::fs`: the caller shares its
/// thread with every actor). Returns whether it did.
pub async fn rotate_if_over(log_file: &Path, max: u64) -> std::io::Result<bool> {
    match tokio::fs::metadata(log_file).await {
        Ok(meta) if meta.len() > max => {
            tokio::fs::rename(log_file, rotated(log_file)).await?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The last lines the server wrote to its log since `from` (its length when this run started),
/// reading at most [`LOG_TAIL_BYTES`], off the caller's thread.
pub async fn log_tail(log_file: &Path, from: u64) -> String {
    let log_file = log_file.to_path_buf();
    tokio::task::spawn_blocking(move || read_tail(&log_file, from, LOG_TAIL_BYTES))
        .await
        .unwrap_or_default()
}

fn read_tail(log_file: &Path, from: u64, max: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log_file) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(max));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.take(max).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    // A cut at `start` may split the first line: keep whole lines only.
    let whole = if start > from {
        &lines[1.min(lines.len())..]
    } else {
        &lines[..]
    };
    whole[whole.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_is_what_this_run_wrote_and_no_more_than_asked() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(&log, "earlier 1\nearlier 2\n").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("FATAL: this run\nLOG: shut down\n");
        std::fs::write(&log, &text).unwrap();
        assert_eq!(
            read_tail(&log, from, 4096),
            "FATAL: this run\nLOG: shut down"
        );
        // From a cut in the middle of a line, that line is left out.
        assert_eq!(read_tail(&log, 0, 16), "LOG: shut down");
    }

    #[tokio::test]
    async fn a_log_past_its_bound_is_moved_aside_replacing_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pgdata.log");
        // No log yet, or a short one: left alone.
        assert!(!rotate_if_over(&log, 10).await.unwrap());
        std::fs::write(&log, "short").unwrap();
        assert!(!rotate_if_over(&log, 10).await.unwrap());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "short");
        // Past the bound: it becomes .log.1, twice over, and the newer one wins.
        std::fs::write(&log, "a run that logged a lot").unwrap();
        assert!(rotate_if_over(&log, 10).await.unwrap());
        assert!(!log.exists());
        std::fs::write(&log, "another long run's log").unwrap();
        assert!(rotate_if_over(&log, 10).await.unwrap());
        let aside = dir.path().join("pgdata.log.1");
        assert_eq!(
            std::fs::read_to_string(aside).unwrap(),
            "another long run's log"
        );
    }
}
