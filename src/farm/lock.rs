//! Slot locks shared by every `distcc` process of a user: one file per host and slot in
//! `$DISTCC_DIR/lock/`, held with an `fcntl` write lock for as long as a job uses the slot.
//! The file names and lock type are distcc 3.4's, so 3.4 clients and ours share the slots.
//!
//! When every slot is taken, a client waits without polling: it keeps the slot files it
//! tried open and sleeps until a file in the lock directory is closed after writing
//! (inotify's `IN_CLOSE_WRITE`), which is what releasing a slot, or dying with one, does.
//! distcc 3.4 sleeps a fixed second between scans instead. Because the files stay open,
//! a failed attempt closes nothing and wakes no one.
//!
//! The kernel releases a lock when its process dies, so a killed client never leaves a slot
//! taken. This module takes and releases slots; which hosts to offer is the caller's.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::farm::hosts::{HostSpec, Transport};

/// How long a waiter sleeps at most between attempts, in case no close event comes (a
/// lock directory on a file system without inotify, say).
const SAFETY_WAKE_MS: u16 = 500;

/// A held slot; dropping it releases the lock.
#[derive(Debug)]
pub struct Slot {
    _file: File,
    pub slot: u32,
}

/// The part of a lock file name that identifies a host, as distcc 3.4 writes it.
pub fn host_key(host: &HostSpec) -> String {
    match &host.transport {
        Transport::Local => LOCAL.to_string(),
        Transport::Tcp { host, port } => format!("tcp_{host}_{port}"),
        Transport::Ssh { host, .. } => format!("ssh_{host}"),
    }
}

/// The name of the lock file of slot `slot` of the host or machine of lock key `key`.
pub fn slot_file(key: &str, slot: u32) -> String {
    format!("cpu_{key}_{slot}")
}

/// The key of this machine's compile slots: `localhost` hosts and local compiles share them,
/// as in distcc 3.4.
pub const LOCAL: &str = "localhost";

/// The key of this machine's preprocessor slots. distcc 3.4 counts them among the compile
/// slots (`cpu_localhost_N`), so that eight preprocessors can starve four local compiles;
/// ours are separate.
pub const LOCAL_CPP: &str = "localhost_cpp";

/// `$DISTCC_DIR/lock`, created when missing (distcc 3.4 silently stops distributing when
/// `DISTCC_DIR` does not exist).
pub fn lock_dir(top: &Path) -> io::Result<PathBuf> {
    let dir = top.join("lock");
    crate::ensure_dir(&dir)?;
    Ok(dir)
}

/// What an `fcntl` lock call asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockKind {
    Read,
    Write,
    Unlock,
}

/// An `fcntl` lock of `kind` over the whole of a file.
fn whole_file(kind: LockKind) -> libc::flock {
    // SAFETY: a zeroed flock is a valid value: start 0 and length 0 cover the whole file.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match kind {
        LockKind::Read => libc::F_RDLCK,
        LockKind::Write => libc::F_WRLCK,
        LockKind::Unlock => libc::F_UNLCK,
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Takes (or drops) an `fcntl` lock on the whole of `file`, the kind of lock distcc 3.4
/// takes on the same files; `wait` blocks until it is free. False when another process
/// holds it and `wait` is off.
pub(crate) fn fcntl_lock(file: &File, kind: LockKind, wait: bool) -> io::Result<bool> {
    let fl = whole_file(kind);
    let command = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    loop {
        // SAFETY: the descriptor is open for the duration of the call and `fl` is
        // initialised.
        if unsafe { libc::fcntl(file.as_raw_fd(), command, &fl) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Whether another process holds an `fcntl` lock on `file` that a write lock would wait
/// for; asked without taking one.
pub(crate) fn lock_held(file: &File) -> io::Result<bool> {
    let mut fl = whole_file(LockKind::Write);
    // SAFETY: the descriptor is open for the duration of the call; F_GETLK writes `fl`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// The slot files offered to one job, in the order they are tried: slot 0 of every host
/// before slot 1 of any (distcc 3.4's breadth-first order), hosts in list order.
pub struct SlotSet {
    dir: PathBuf,
    /// Slots not tried yet, the next one last: (owner's index in the caller's list, slot
    /// number, file name).
    slots: Vec<(usize, u32, String)>,
    /// The files tried so far, kept open (closing one would wake waiters for nothing).
    files: Vec<(usize, u32, File)>,
}

impl SlotSet {
    /// The slot files of `owners`, each given as (key, number of slots), in distcc 3.4's
    /// breadth-first order. Files are opened as they are tried, so that a free first slot
    /// costs one open.
    pub fn open(dir: &Path, owners: &[(String, u32)]) -> io::Result<SlotSet> {
        let max = owners.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let mut slots = Vec::new();
        for slot in 0..max {
            for (i, (key, limit)) in owners.iter().enumerate() {
                if slot < *limit {
                    slots.push((i, slot, slot_file(key, slot)));
                }
            }
        }
        Ok(SlotSet::ordered(dir, slots))
    }

    /// The slot files named in `slots`, (owner's index, slot number, file name), tried in
    /// that order.
    pub fn ordered(dir: &Path, mut slots: Vec<(usize, u32, String)>) -> SlotSet {
        slots.reverse();
        SlotSet {
            dir: dir.to_path_buf(),
            slots,
            files: Vec::new(),
        }
    }

    fn open_slot(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(self.dir.join(name))
    }

    /// Takes the first free slot without waiting: the files already open first, then the
    /// others, opening them one by one.
    pub fn try_take(&mut self) -> io::Result<Option<(usize, Slot)>> {
        for n in 0..self.files.len() {
            if fcntl_lock(&self.files[n].2, LockKind::Write, false)? {
                let (owner, slot, file) = self.files.swap_remove(n);
                return Ok(Some((owner, Slot { _file: file, slot })));
            }
        }
        while let Some((owner, slot, name)) = self.slots.pop() {
            let file = self.open_slot(&name)?;
            if fcntl_lock(&file, LockKind::Write, false)? {
                return Ok(Some((owner, Slot { _file: file, slot })));
            }
            self.files.push((owner, slot, file));
        }
        Ok(None)
    }

    /// Takes the first free slot, sleeping until some slot file is released while all are
    /// taken. Returns the owner's index and the slot.
    pub fn take(mut self) -> io::Result<(usize, Slot)> {
        if self.files.is_empty() && self.slots.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no slots offered",
            ));
        }
        if let Some(found) = self.try_take()? {
            return Ok(found);
        }
        // Watch first, then try again: a release between the try and the watch would
        // otherwise be missed.
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        inotify.add_watch(&self.dir, AddWatchFlags::IN_CLOSE_WRITE)?;
        loop {
            if let Some(found) = self.try_take()? {
                return Ok(found);
            }
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(SAFETY_WAKE_MS)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            // Drain the events: which file was closed does not matter, only that one was.
            while let Ok(events) = inotify.read_events() {
                if events.is_empty() {
                    break;
                }
            }
        }
    }
}

/// Takes one of this machine's `n` slots of kind `key` ([`LOCAL`] or [`LOCAL_CPP`]),
/// waiting while all are taken.
pub fn take_local(dir: &Path, key: &str, n: u32) -> io::Result<Slot> {
    SlotSet::open(dir, &[(key.to_string(), n)])?
        .take()
        .map(|(_, slot)| slot)
}

/// One of this machine's `n` slots of kind `key` if one is free now.
pub fn try_take_local(dir: &Path, key: &str, n: u32) -> io::Result<Option<Slot>> {
    Ok(SlotSet::open(dir, &[(key.to_string(), n)])?
        .try_take()?
        .map(|(_, slot)| slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::hosts;

    #[test]
    fn slots_are_offered_breadth_first() {
        let top = tempfile::tempdir().unwrap();
        let dir = lock_dir(&top.path().join("new")).unwrap();
        let list = hosts::parse("a/2 b/1", "t").unwrap().hosts;
        let owners: Vec<_> = list.iter().map(|h| (host_key(h), h.limit)).collect();
        let set = SlotSet::open(&dir, &owners).unwrap();
        let order: Vec<_> = set.slots.iter().rev().map(|(i, s, _)| (*i, *s)).collect();
        assert_eq!(order, [(0, 0), (1, 0), (0, 1)]);
        // fcntl locks belong to the process, so contention is tested across processes
        // (tests/hosts.rs); here the first offered slot is taken.
        let (owner, slot) = set.take().unwrap();
        assert_eq!((owner, slot.slot), (0, 0));
        // Only the file tried was opened (and so created).
        assert!(dir.join("cpu_tcp_a_3632_0").exists());
        assert!(!dir.join("cpu_tcp_b_3632_0").exists());
        assert_eq!(host_key(&list[1]), "tcp_b_3632");
    }
}
