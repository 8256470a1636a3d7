//! Zeroconf as distcc 3.4 does it: daemons announce `_distcc._tcp` over mDNS/DNS-SD
//! (`daemon::zeroconf`), and a `+zeroconf` entry in a host list stands for the daemons that
//! a background browser found.
//!
//! The browser is a process of its own (the client's program run again, detached), shared
//! by every client of the user through 3.4's files: it holds a lock on `$DISTCC_DIR/zeroconf/lock`, keeps `$DISTCC_DIR/zeroconf/hosts`
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
//! waits a second for a new one); a new browser reports when it has heard the farm (the
//! first daemons found, a quarter of a second for the rest) instead of a fixed one-second
//! sleep, and the clients that come meanwhile wait for it on the file's lock instead of
//! reading an empty list.
//!
//! This module owns the names, the browser and its file; the file's lines are parsed by
//! `hosts`, and the announcement is the daemon's.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};

use super::hosts::HostsError;
use super::lock::{fcntl_lock, lock_held, LockKind};

/// The DNS-SD service type of distcc daemons.
pub const SERVICE: &str = "_distcc._tcp";
/// How long the browser runs after the last client read its file (3.4's `MAX_IDLE_TIME`).
const IDLE: Duration = Duration::from_secs(20);
/// A host file this large is not read (3.4's limit).
const MAX_FILE: u64 = 100 * 1024;
/// How long a new browser may listen before the client that started it reads the file,
/// when no daemon answers sooner: long enough for its second query (a second after the
/// first), since a busy machine, or a responder that multicast the same records less than
/// a second before (RFC 6762, section 6), may leave the first unanswered.
const FIRST_WAIT: Duration = Duration::from_millis(2500);
/// How long a new browser waits for more daemons after the first one answered.
const SETTLE: Duration = Duration::from_millis(250);

/// The first word of `cc -dumpversion` and of `cc -dumpmachine`, which distcc 3.4 announces
/// and browses by (always `cc`, whatever compiler a build uses). Asked within a time limit:
/// a `cc` that hangs must not hold a daemon or a browser.
pub fn cc_identity() -> Option<(String, String)> {
    let ask = |flag: &str| {
        let mut cmd = Command::new("cc");
        cmd.arg(flag);
        let (stdout, _) = crate::toolchain::identity::run_bounded(cmd, None).ok()?;
        let text = String::from_utf8_lossy(&stdout);
        let word = text.split([' ', '\t', '\n', '\r']).next().unwrap_or("");
        // 3.4 reads it into 64 bytes.
        let word: String = word.chars().take(63).collect();
        (!word.is_empty()).then_some(word)
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
    // Asked without taking the lock (3.4's clients take and drop it): another client that
    // held it for that moment would pass for a browser, and this one would read an empty
    // file instead of starting one.
    let running = lock_held(&lock).map_err(|e| failed(&lock_path.display().to_string(), e))?;
    drop(lock);
    if !running {
        log::debug!("starting the zeroconf browser");
        start_browser(&dir).map_err(|e| failed("cannot start the zeroconf browser", e))?;
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
    let mut file = match File::open(path) {
        Ok(file) => file,
        // No browser could make it: no daemon known.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
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

/// The variable that makes one of our programs the browser (see [`serve_if_asked`]); its
/// value is the zeroconf directory.
const BROWSER_VAR: &str = "_DISTCC_ZEROCONF_BROWSER";

/// Where the browser finds the pipe to the client that started it.
const READY_FD: i32 = 3;

/// Starts the browser, this program run again with [`BROWSER_VAR`] set, in a session of
/// its own with `/dev/null` on 0-2 and the ready pipe on 3 (every other descriptor of ours
/// is close-on-exec), and waits until it has heard the farm, or gave up, or failed.
fn start_browser(dir: &Path) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let (ready_rx, ready_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let tx = ready_tx.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.env(BROWSER_VAR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let moved = match tx == READY_FD {
                true => libc::fcntl(tx, libc::F_SETFD, 0),
                false => libc::dup2(tx, READY_FD),
            };
            if moved < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::setsid();
            Ok(())
        });
    }
    let mut first = cmd.spawn()?;
    drop(ready_tx);
    // The browser's first process forks the browser and ends at once, so that no zombie
    // is left to a long-running caller (the farm view).
    first.wait()?;
    // Ends when the browser says it is ready, or closes the pipe by exiting.
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&ready_rx),
        nix::poll::PollFlags::POLLIN,
    )];
    let bound = (FIRST_WAIT + Duration::from_secs(1)).as_millis() as u16;
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(bound));
    Ok(())
}

/// When this process was started as the browser ([`start_browser`]), runs it and exits;
/// else returns at once. Called first thing by every program that reads host lists.
pub fn serve_if_asked() {
    let Some(dir) = std::env::var_os(BROWSER_VAR) else {
        return;
    };
    // Not for the compilers it asks.
    std::env::remove_var(BROWSER_VAR);
    // SAFETY: called before the program starts any thread, so the child is a whole copy.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {}
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Err(_) => std::process::exit(1),
    }
    // SAFETY: marks a descriptor this process owns; `cc` must not inherit the pipe.
    unsafe { libc::fcntl(READY_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // As distcc 3.4's browser: no terminal, so syslog.
    crate::logging::init(
        "distcc",
        crate::logging::Sink::Syslog,
        log::LevelFilter::Info,
    );
    let code = match browse(Path::new(&dir)) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("zeroconf browser: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Tells the client that started the browser that the file is ready to read.
fn signal_ready() {
    // SAFETY: writes one byte to, then closes, the descriptor the client gave us.
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
    // Never a loopback address: heard from another machine, it would send the jobs to
    // this one's own port (a daemon on this machine is heard on its other addresses too).
    let addr = service
        .get_addresses_v4()
        .into_iter()
        .filter(|a| !a.is_loopback())
        .min()
        .map(IpAddr::V4)
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

/// Replaces the host file's content; the caller holds the file's write lock.
fn write_locked(file: &File, found: &BTreeMap<String, String>) -> io::Result<()> {
    let text: String = found.values().map(String::as_str).collect();
    file.set_len(0)?;
    file.write_all_at(text.as_bytes(), 0)
}

/// Replaces the host file's content under a write lock, as distcc 3.4 writes it.
fn write_hosts(file: &File, found: &BTreeMap<String, String>) -> io::Result<()> {
    fcntl_lock(file, LockKind::Write, true)?;
    let written = write_locked(file, found);
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
///
/// Until it has heard the farm, a new browser holds the host file's write lock, so that the
/// clients that come meanwhile (a `make -j` starts many at once), 3.4's included, wait for
/// the daemons instead of reading an empty list. It takes that lock before the browser's
/// own: a browser started at the same moment by another client, which finds the browser's
/// lock taken, lets the file go only once the first browser has written it.
fn browse(dir: &Path) -> Result<(), String> {
    let path = dir.join("hosts");
    let file = open_rw(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    fcntl_lock(&file, LockKind::Write, true).map_err(|e| e.to_string())?;
    let lock = open_rw(&dir.join("lock")).map_err(|e| e.to_string())?;
    if !fcntl_lock(&lock, LockKind::Write, false).map_err(|e| e.to_string())? {
        // Another client started one first, which has written the file.
        let _ = fcntl_lock(&file, LockKind::Unlock, false);
        signal_ready();
        return Ok(());
    }
    let started = SystemTime::now();
    let mut found = BTreeMap::new();
    write_locked(&file, &found).map_err(|e| e.to_string())?;
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
            let written = match ready_by {
                Some(_) => write_locked(&file, &found),
                None => write_hosts(&file, &found),
            };
            if let Err(e) = written {
                log::error!("cannot write {}: {e}", path.display());
            }
        }
        if ready_by.is_some_and(|t| Instant::now() >= t) {
            ready_by = None;
            let _ = fcntl_lock(&file, LockKind::Unlock, false);
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
