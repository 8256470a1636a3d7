//! Zeroconf as distcc 3.4 does it: daemons announce `_distcc._tcp` over mDNS/DNS-SD
//! (`daemon::zeroconf`), and a `+zeroconf` entry in a host list stands for the daemons that
//! a background browser found.
//!
//! The browser is a process of its own, shared by every client of the user through 3.4's
//! files: it holds a lock on `$DISTCC_DIR/zeroconf/lock`, keeps `$DISTCC_DIR/zeroconf/hosts`
//! up to date (lines `IP:PORT/JOBS`, written under an `fcntl` lock), and stops when no client
//! has read the file for 20 seconds. So 3.4's clients use our browser's file and ours use
//! 3.4's. It keeps only the daemons whose `cc` has this machine's `cc` target and version,
//! so a farm of mixed compilers is split as 3.4 splits it. 3.4 browses for the DNS-SD
//! subtype named after them; we browse for every `_distcc._tcp` daemon and compare the
//! subtype its TXT records name (the same records 3.4's daemons announce), because the mDNS
//! responder we use puts the base type's record, not the subtype's, in the answer to a
//! subtype query, and a subtype browser would not take it.
//!
//! Fixed on purpose: a client tells the browser it read the file by setting the file's
//! access time, where 3.4 counts on the read doing so (with `relatime` mounts it does not,
//! and 3.4's browser stops about every 25 seconds during a build; the next client then
//! waits a second for a new one); a new browser reports when it has heard the farm (the first
//! daemons found, a quarter of a second for the rest) instead of a fixed one-second sleep.
//!
//! This module owns the names, the browser and its file; the file's lines are parsed by
//! `hosts`, and the announcement is the daemon's.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};

use super::hosts::HostsError;
use super::lock::{fcntl_lock, LockKind};

/// The DNS-SD service type of distcc daemons.
pub const SERVICE: &str = "_distcc._tcp";
/// How long the browser runs after the last client read its file (3.4's `MAX_IDLE_TIME`).
const IDLE: Duration = Duration::from_secs(20);
/// A host file this large is not read (3.4's limit).
const MAX_FILE: u64 = 100 * 1024;
/// How long a new browser may listen before the client that started it reads the file.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// How long a new browser waits for more daemons after the first one answered.
const SETTLE: Duration = Duration::from_millis(250);

/// The first word of `cc -dumpversion` and of `cc -dumpmachine`, which distcc 3.4 announces
/// and browses by (always `cc`, whatever compiler a build uses).
pub fn cc_identity() -> Option<(String, String)> {
    let ask = |flag: &str| {
        let out = Command::new("cc")
            .arg(flag)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let word = text.split([' ', '\t', '\n', '\r']).next().unwrap_or("");
        // 3.4 reads it into 64 bytes.
        let word: String = word.chars().take(63).collect();
        (out.status.success() && !word.is_empty()).then_some(word)
    };
    Some((ask("-dumpversion")?, ask("-dumpmachine")?))
}

/// The DNS-SD subtype of the daemons whose `cc` is `version` for `machine`, as distcc 3.4
/// names it: `_MACHINE--VERSION._sub._distcc._tcp`, in lower case, with every byte that is
/// not a letter or a digit made a `-`.
pub fn subtype(version: &str, machine: &str) -> String {
    let clean = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'0'..=b'9' => b as char,
                b'A'..=b'Z' => b.to_ascii_lowercase() as char,
                _ => '-',
            })
            .collect()
    };
    format!("_{}--{}._sub.{SERVICE}", clean(machine), clean(version))
}

/// The zeroconf host file under `top` (the distcc directory), with the browser started
/// first when none runs. Returns the file's text and its path.
pub fn host_file(top: &Path) -> Result<(String, PathBuf), HostsError> {
    let dir = top.join("zeroconf");
    let path = dir.join("hosts");
    let failed = |what: &str, e: io::Error| {
        HostsError::Zeroconf(format!("{what}: {}", crate::logging::strerror(&e)))
    };
    crate::ensure_dir(&dir).map_err(|e| failed(&format!("cannot create {}", dir.display()), e))?;
    let lock_path = dir.join("lock");
    let lock = open_rw(&lock_path).map_err(|e| failed(&lock_path.display().to_string(), e))?;
    let free = fcntl_lock(&lock, LockKind::Write, false)
        .map_err(|e| failed(&lock_path.display().to_string(), e))?;
    if free {
        // No browser holds the lock: start one, which takes it.
        let _ = fcntl_lock(&lock, LockKind::Unlock, false);
        drop(lock);
        log::debug!("starting the zeroconf browser");
        start_browser(&dir).map_err(|e| failed("cannot start the zeroconf browser", e))?;
    } else {
        drop(lock);
    }
    let unreadable = |e: io::Error| HostsError::Unreadable {
        path: path.clone(),
        error: crate::logging::strerror(&e),
    };
    let text = read_host_file(&path).map_err(unreadable)?;
    Ok((text, path))
}

/// Reads the host file under a read lock, as distcc 3.4 does, and marks it read.
fn read_host_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    fcntl_lock(&file, LockKind::Read, true)?;
    let size = file.metadata()?.len();
    let mut text = String::new();
    let read = if size >= MAX_FILE {
        Err(io::Error::other("file too large"))
    } else {
        file.read_to_string(&mut text).map(drop)
    };
    let _ = fcntl_lock(&file, LockKind::Unlock, false);
    read?;
    // The browser's sign that a client still uses it (a read's own atime update is not).
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    let keep = nix::sys::time::TimeSpec::UTIME_OMIT;
    if let Err(e) = nix::sys::stat::futimens(&file, &now, &keep) {
        log::debug!("cannot mark {} as read: {e}", path.display());
    }
    Ok(text)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path)
}

/// Starts the browser as a detached grandchild and waits until it has heard the farm (or
/// gave up, or failed). The caller is single-threaded: the child goes on in Rust after
/// `fork`, and only one thread survives a fork.
fn start_browser(dir: &Path) -> io::Result<()> {
    use nix::unistd::{fork, ForkResult};
    let (ready_rx, ready_tx) = nix::unistd::pipe()?;
    // SAFETY: the client is single-threaded when it reads its host list; the child runs
    // nothing that a lock held by another thread could block.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(ready_rx);
            // SAFETY: as above, for the grandchild.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                detach(ready_tx);
                let code = match browse(dir) {
                    Ok(()) => 0,
                    Err(e) => {
                        log::error!("zeroconf browser: {e}");
                        1
                    }
                };
                std::process::exit(code);
            }
            // SAFETY: ends the intermediate child without running the parent's exit work.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_tx);
            let _ = nix::sys::wait::waitpid(child, None);
            // Ends when the browser says it is ready, or closes the pipe by exiting.
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&ready_rx),
                nix::poll::PollFlags::POLLIN,
            )];
            let bound = (FIRST_WAIT + Duration::from_secs(1)).as_millis() as u16;
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(bound));
            Ok(())
        }
    }
}

/// Makes the grandchild a daemon: a session of its own, `/` as its directory, no blocked
/// signal, `/dev/null` on 0-2, the ready pipe on 3, and every other descriptor the client had closed (a make
/// reading the client's output would otherwise wait for the browser).
fn detach(ready: OwnedFd) {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    // A client may block signals around its work; the browser stops on any of them.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    // SAFETY: plain descriptor calls on numbers this process owns; nothing in the process
    // uses the descriptors closed (the browser opens its own files after this).
    unsafe {
        libc::dup2(ready.as_raw_fd(), READY_FD);
        libc::syscall(libc::SYS_close_range, READY_FD + 1, u32::MAX, 0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
    }
    std::mem::forget(ready);
}

/// Where the browser finds the pipe to its client.
const READY_FD: i32 = 3;

/// Tells the client that started the browser that the file is ready to read.
fn signal_ready() {
    // SAFETY: writes one byte to, then closes, the descriptor `detach` put there.
    unsafe {
        libc::write(READY_FD, b"r".as_ptr().cast(), 1);
        libc::close(READY_FD);
    }
}

/// A daemon found, as its host file line says it; `None` when it has no usable address or
/// its `cc` is not `wanted` (a subtype, when this machine's `cc` answered).
fn line(service: &ResolvedService, wanted: Option<&str>) -> Option<String> {
    if let Some(wanted) = wanted {
        let version = service.get_property_val_str("cc_version")?;
        let machine = service.get_property_val_str("cc_machine")?;
        if subtype(version, machine) != wanted {
            return None;
        }
    }
    let v4 = service.get_addresses_v4();
    // A routable address first; a loopback one only when it is all there is.
    let addr = v4
        .iter()
        .min_by_key(|a| (a.is_loopback(), **a))
        .map(|a| IpAddr::V4(*a))
        .or_else(|| {
            // IPv6 only when it needs no scope (a link-local address is no use in a host
            // list); 3.4's daemons announce IPv4 only.
            service
                .get_addresses()
                .iter()
                .map(|s| s.to_ip_addr())
                .filter(|a| matches!(a, IpAddr::V6(v6) if !v6.is_unicast_link_local()))
                .min()
        })?;
    let number = |key: &str| -> Option<i64> {
        let value = service.get_property_val_str(key)?;
        // atoi(): the leading digits.
        let digits: String = value
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let cpus = number("cpus").filter(|&n| n > 0).unwrap_or(1);
    let jobs = number("jobs").filter(|&n| n > 0).unwrap_or(cpus + 2);
    let port = service.get_port();
    Some(match addr {
        IpAddr::V4(a) => format!("{a}:{port}/{jobs}\n"),
        IpAddr::V6(a) => format!("[{a}]:{port}/{jobs}\n"),
    })
}

/// Replaces the host file's content, under a write lock as distcc 3.4 writes it.
fn write_hosts(file: &File, found: &BTreeMap<String, String>) -> io::Result<()> {
    let text: String = found.values().map(String::as_str).collect();
    fcntl_lock(file, LockKind::Write, true)?;
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all_at(text.as_bytes(), 0));
    let _ = fcntl_lock(file, LockKind::Unlock, false);
    written
}

/// Whether no client has read the host file for [`IDLE`] since `started`.
fn idle(path: &Path, started: SystemTime) -> bool {
    let read = std::fs::metadata(path)
        .and_then(|m| m.accessed())
        .unwrap_or(started)
        .max(started);
    read.elapsed().is_ok_and(|d| d > IDLE)
}

/// The browser: holds the lock, browses, keeps the host file, and returns when idle.
fn browse(dir: &Path) -> Result<(), String> {
    let lock = open_rw(&dir.join("lock")).map_err(|e| e.to_string())?;
    if !fcntl_lock(&lock, LockKind::Write, false).map_err(|e| e.to_string())? {
        // Another client started one first.
        signal_ready();
        return Ok(());
    }
    let path = dir.join("hosts");
    let file = open_rw(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let started = SystemTime::now();
    let mut found = BTreeMap::new();
    write_hosts(&file, &found).map_err(|e| e.to_string())?;
    let wanted = match cc_identity() {
        Some((version, machine)) => Some(subtype(&version, &machine)),
        None => {
            log::warn!("cannot ask cc for its version and target; keeping every daemon");
            None
        }
    };
    let mdns = ServiceDaemon::new().map_err(|e| e.to_string())?;
    let events = mdns
        .browse(&format!("{SERVICE}.local."))
        .map_err(|e| e.to_string())?;
    log::info!("browsing for {}", wanted.as_deref().unwrap_or(SERVICE));
    let first_deadline = Instant::now() + FIRST_WAIT;
    let mut ready_by = Some(first_deadline);
    loop {
        let wait = match ready_by {
            Some(t) => t.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(5),
        };
        let changed = match events.recv_timeout(wait) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                let entry = line(&service, wanted.as_deref());
                if entry.is_some() && ready_by == Some(first_deadline) {
                    ready_by = Some((Instant::now() + SETTLE).min(first_deadline));
                }
                let name = service.get_fullname().to_string();
                match entry {
                    Some(l) => found.insert(name, l.clone()) != Some(l),
                    None => found.remove(&name).is_some(),
                }
            }
            Ok(ServiceEvent::ServiceRemoved(_, name)) => found.remove(&name).is_some(),
            Ok(_) => false,
            Err(mdns_sd::RecvTimeoutError::Timeout) => false,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
        };
        if changed {
            if let Err(e) = write_hosts(&file, &found) {
                log::error!("cannot write {}: {e}", path.display());
            }
        }
        if ready_by.is_some_and(|t| Instant::now() >= t) {
            ready_by = None;
            signal_ready();
        }
        if idle(&path, started) {
            break;
        }
    }
    let _ = mdns.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtypes_are_named_as_distcc_3_4_names_them() {
        assert_eq!(
            subtype("12", "x86_64-linux-gnu"),
            "_x86-64-linux-gnu--12._sub._distcc._tcp"
        );
        assert_eq!(
            subtype("4.2.4", "I686-Pc-Linux"),
            "_i686-pc-linux--4-2-4._sub._distcc._tcp"
        );
        assert_eq!(subtype("é", "a"), "_a----._sub._distcc._tcp");
    }
}
