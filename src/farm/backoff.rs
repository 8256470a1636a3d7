//! Backoff: a host that failed is skipped by every client of the user for
//! `DISTCC_BACKOFF_PERIOD` seconds (default 60, read in `client::config`). The record is distcc 3.4's: the mtime of
//! `$DISTCC_DIR/lock/backoff_<host>_0`, so 3.4 clients and ours honour each other's marks.
//!
//! This module reads and writes the marks; the client decides when a host has failed.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn stamp(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("backoff_{key}_0"))
}

/// True while the host named `key` is within `period` of its last failure.
pub fn is_backed_off(dir: &Path, key: &str, period: Duration) -> bool {
    let Ok(modified) = std::fs::metadata(stamp(dir, key)).and_then(|m| m.modified()) else {
        return false;
    };
    // A mark from the future (clock skew) counts as recent, as in distcc 3.4.
    SystemTime::now()
        .duration_since(modified)
        .map_or(true, |age| age < period)
}

/// Records a failure of the host named `key` now.
pub fn mark(dir: &Path, key: &str) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(stamp(dir, key))?;
    // Writing the byte is what moves the mtime.
    f.write_all_at(b"x", 0)
}

/// Forgets the failures of the host named `key`.
pub fn clear(dir: &Path, key: &str) {
    let _ = std::fs::remove_file(stamp(dir, key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_check_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = "tcp_a_3632";
        let period = Duration::from_secs(60);
        assert!(!is_backed_off(dir.path(), key, period));
        mark(dir.path(), key).unwrap();
        assert!(dir.path().join("backoff_tcp_a_3632_0").exists());
        assert!(is_backed_off(dir.path(), key, period));
        assert!(!is_backed_off(dir.path(), key, Duration::ZERO));
        clear(dir.path(), key);
        assert!(!is_backed_off(dir.path(), key, period));
    }
}
