//! Slot locks shared by every `distcc` process of a user: one file per host and slot in
//! `$DISTCC_DIR/lock/`, held with an `fcntl` write lock for as long as a job uses the slot.
//! The file names and lock type are distcc 3.4's, so 3.4 clients and ours share the slots.
//!
//! The kernel releases a lock when its process dies, so a killed client never leaves a slot
//! taken. This module takes and releases slots; which host to try first is the caller's.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::hosts::{HostSpec, Transport};

/// A held slot; dropping it releases the lock.
#[derive(Debug)]
pub struct Slot {
    _file: File,
    pub slot: u32,
}

/// The part of a lock file name that identifies a host, as distcc 3.4 writes it.
pub fn host_key(host: &HostSpec) -> String {
    match &host.transport {
        Transport::Local => "localhost".to_string(),
        Transport::Tcp { host, port } => format!("tcp_{host}_{port}"),
        Transport::Ssh { host, .. } => format!("ssh_{host}"),
    }
}

/// `$DISTCC_DIR/lock`, created when missing (distcc 3.4 silently stops distributing when
/// `DISTCC_DIR` does not exist).
pub fn lock_dir(top: &Path) -> io::Result<PathBuf> {
    let dir = top.join("lock");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Tries to take slot `slot` of the host named `key` without waiting.
pub fn try_lock(dir: &Path, key: &str, slot: u32) -> io::Result<Option<Slot>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(dir.join(format!("cpu_{key}_{slot}")))?;
    // SAFETY: a zeroed flock is a valid value; we set every field fcntl reads.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: the descriptor is open for the duration of the call and `fl` is initialised.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc == 0 {
        return Ok(Some(Slot { _file: file, slot }));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
        _ => Err(err),
    }
}

/// Takes the first free slot, breadth first across `hosts` in list order (slot 0 of every
/// host before slot 1 of any), as distcc 3.4 does. Returns the host's index and its slot.
pub fn pick(dir: &Path, hosts: &[HostSpec]) -> io::Result<Option<(usize, Slot)>> {
    let max = hosts.iter().map(|h| h.limit).max().unwrap_or(0);
    for slot in 0..max {
        for (i, host) in hosts.iter().enumerate() {
            if host.down || slot >= host.limit {
                continue;
            }
            if let Some(s) = try_lock(dir, &host_key(host), slot)? {
                return Ok(Some((i, s)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts;

    #[test]
    fn slots_fill_breadth_first_and_release_on_drop() {
        let top = tempfile::tempdir().unwrap();
        let dir = lock_dir(&top.path().join("new")).unwrap();
        let list = hosts::parse("a/2 b/1", "t").unwrap().hosts;
        // fcntl locks belong to the process, so a second lock in this process on the same
        // file would succeed: each pick here must go to a different file.
        let (h0, s0) = pick(&dir, &list).unwrap().unwrap();
        assert_eq!((h0, s0.slot), (0, 0));
        assert!(dir.join("cpu_tcp_a_3632_0").exists());
        assert_eq!(host_key(&list[1]), "tcp_b_3632");
    }
}
