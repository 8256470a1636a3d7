//! Giving up root, and what a daemon started as root still needs root for afterwards.
//!
//! Started as root, the daemon becomes `--user` (default `distcc`, then Debian's `distccd`,
//! then `nobody`, then uid 65534): no supplementary groups, and no way back to privilege
//! through set-uid programs. Compiling as root is never an option, and neither is a `--user`
//! that does not exist (distcc 3.4 then quietly runs as nobody). `--nice` is applied here too.
//!
//! A pid file in a root-owned directory such as /run cannot be removed, and a rotated log
//! in one such as /var/log cannot be created again, by the user the daemon becomes. For
//! those two paths only, a `Keeper` is forked while still root: a tiny process that keeps
//! root, holds no socket or file of the daemon's, and on request creates the log file anew
//! (owned by the daemon's user, which then opens it itself) or removes the pid file, and
//! removes the pid file when the daemon goes away, however it ends. This was chosen over
//! chowning the files, which cannot work (removing or creating a file needs write access
//! to its directory, not to the file), and over keeping capabilities in the daemon, which
//! would keep them in every compile too. The keeper is only forked when needed: with both
//! directories writable by the daemon's user, the daemon manages the files itself.
//!
//! Which user, and where the files are, is the configuration's business.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use super::DaemonError;

/// The user a root-started daemon becomes.
#[derive(Debug, Clone)]
pub struct Persona {
    pub uid: Uid,
    pub gid: Gid,
    pub name: String,
}

/// Applies `--nice` to this process (and so to the compilers it starts).
pub fn apply_nice(increment: i32) {
    // SAFETY: nice() only changes this process's scheduling priority.
    unsafe { libc::nice(increment) };
}

/// Whom to become: `None` when not started as root (nothing to give up). A `--user` that
/// does not exist, or that is root, is an error.
pub fn persona(user: Option<&str>) -> Result<Option<Persona>, DaemonError> {
    if !Uid::effective().is_root() {
        if let Some(user) = user {
            log::warn!("--user {user} ignored: distccd was not started as root");
        }
        return Ok(None);
    }
    let lookup = |name: &str| User::from_name(name).ok().flatten();
    let found = match user {
        Some(name) => Some(lookup(name).ok_or_else(|| DaemonError::NoSuchUser(name.into()))?),
        None => ["distcc", "distccd", "nobody"]
            .iter()
            .find_map(|name| lookup(name)),
    };
    let persona = match found {
        Some(u) => Persona {
            uid: u.uid,
            gid: u.gid,
            name: u.name,
        },
        None => Persona {
            uid: Uid::from_raw(65534),
            gid: Gid::from_raw(65534),
            name: "65534".into(),
        },
    };
    if persona.uid.is_root() {
        return Err(DaemonError::SetUid(format!(
            "user {} is root",
            persona.name
        )));
    }
    Ok(Some(persona))
}

/// Becomes `persona` for good.
pub fn become_user(persona: &Persona) -> Result<(), DaemonError> {
    use nix::unistd::{setgid, setgroups, setuid};
    let fail = |what: &str, e: nix::Error| DaemonError::SetUid(format!("{what}: {e}"));
    setgroups(&[persona.gid]).map_err(|e| fail("setgroups", e))?;
    setgid(persona.gid).map_err(|e| fail("setgid", e))?;
    setuid(persona.uid).map_err(|e| fail("setuid", e))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(DaemonError::SetUid("root could be regained".into()));
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    log::info!(
        "running as user {} (uid {}, gid {})",
        persona.name,
        persona.uid,
        persona.gid
    );
    Ok(())
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `persona` may create and remove entries of `dir` (supplementary groups are
/// dropped, so only the primary group counts); `sticky_counts` also asks that the sticky
/// bit not stop it removing root's files.
fn dir_writable_by(dir: &Path, persona: &Persona, sticky_counts: bool) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = meta.mode();
    if sticky_counts && mode & 0o1000 != 0 {
        return false;
    }
    let bits = if meta.uid() == persona.uid.as_raw() {
        mode >> 6
    } else if meta.gid() == persona.gid.as_raw() {
        mode >> 3
    } else {
        mode
    };
    bits & 0o3 == 0o3
}

/// Makes the log file the daemon's user's, as it would be had the user created it (as
/// distcc 3.4 does, opening its log after giving up root), so that it can be reopened.
pub fn hand_over_log(log_file: &Path, persona: &Persona) {
    match nix::unistd::chown(log_file, Some(persona.uid), Some(persona.gid)) {
        // Not opened: already reported, and syslog is used.
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => log::warn!(
            "cannot give the log file {} to user {}: {e}",
            log_file.display(),
            persona.name
        ),
    }
}

/// Makes the cache directory (made here if need be) the daemon's user's when root owns
/// it, so that the daemon can write it once it has given root up. Only the directory
/// itself: what is in it was written by the daemon, as that user.
pub fn hand_over_cache(dir: &Path, persona: &Persona) {
    if let Err(e) = crate::ensure_dir(dir) {
        // Reported by the check made as the daemon's user.
        log::debug!("cannot make {}: {e}", dir.display());
        return;
    }
    let root_owned = std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0);
    if root_owned && !dir_writable_by(dir, persona, false) {
        if let Err(e) = nix::unistd::chown(dir, Some(persona.uid), Some(persona.gid)) {
            log::warn!(
                "cannot give the cache directory {} to user {}: {e}",
                dir.display(),
                persona.name
            );
        }
    }
}

/// The root-owned helper process described above, seen from the daemon.
pub struct Keeper {
    conn: UnixStream,
}

/// Requests to the keeper, one byte each, answered with one byte (0: done, else errno).
const REOPEN_LOG: u8 = b'L';
const REMOVE_PID_FILE: u8 = b'P';

impl Keeper {
    /// Forks the keeper if the daemon, once `persona`, could not manage `pid_file` or
    /// `log_file` itself. Must run while root and before any thread is started.
    pub fn start_if_needed(
        persona: &Persona,
        pid_file: Option<&Path>,
        log_file: Option<&Path>,
    ) -> Result<Option<Keeper>, DaemonError> {
        let pid_needs = pid_file.is_some_and(|p| !dir_writable_by(&parent_dir(p), persona, true));
        let log_needs = log_file.is_some_and(|l| !dir_writable_by(&parent_dir(l), persona, false));
        if !pid_needs && !log_needs {
            return Ok(None);
        }
        let (ours, theirs) = UnixStream::pair().map_err(DaemonError::Keeper)?;
        let daemon_pid = std::process::id();
        // SAFETY: no other thread exists yet, so the child may run arbitrary code.
        match unsafe { nix::unistd::fork() }.map_err(|e| DaemonError::Keeper(e.into()))? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                keep(
                    theirs,
                    daemon_pid,
                    pid_file.filter(|_| pid_needs),
                    log_file.filter(|_| log_needs),
                    persona,
                );
            }
            nix::unistd::ForkResult::Parent { child } => {
                log::debug!("keeper process {child} looks after the pid and log files");
                Ok(Some(Keeper { conn: ours }))
            }
        }
    }

    fn ask(&mut self, request: u8) -> std::io::Result<()> {
        self.conn.write_all(&[request])?;
        let mut answer = [0u8];
        self.conn.read_exact(&mut answer)?;
        match answer[0] {
            0 => Ok(()),
            errno => Err(std::io::Error::from_raw_os_error(i32::from(errno))),
        }
    }

    /// Has the log file created again at its path (after a rotation), owned by the daemon's
    /// user; the caller then reopens it.
    pub fn recreate_log(&mut self) -> std::io::Result<()> {
        self.ask(REOPEN_LOG)
    }

    /// Has the pid file removed, and waits until it is.
    pub fn remove_pid_file(&mut self) -> std::io::Result<()> {
        self.ask(REMOVE_PID_FILE)
    }
}

/// Closes every descriptor but the standard ones and `keep`.
fn close_other_fds(keep: i32) {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        if fd > 2 && fd != keep {
            // SAFETY: closing descriptors in a freshly forked single-threaded child that
            // uses none of them.
            unsafe { libc::close(fd) };
        }
    }
}

/// The keeper's life: answers requests until the daemon's end of the connection closes,
/// then removes the pid file (if it is still the daemon's) and exits.
fn keep(
    mut conn: UnixStream,
    daemon_pid: u32,
    pid_file: Option<&Path>,
    log_file: Option<&Path>,
    persona: &Persona,
) -> ! {
    close_other_fds(conn.as_raw_fd());
    // The daemon's stop signals (sent to the whole group by a terminal or by systemd) are
    // for the daemon: the keeper ends when the daemon does.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // SAFETY: prctl with PR_SET_NAME takes a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"distccd-keeper".as_ptr(), 0, 0, 0) };
    let remove_pid_file = || -> std::io::Result<()> {
        let Some(path) = pid_file else { return Ok(()) };
        // Only our daemon's: a new daemon may have written its own since.
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim() == daemon_pid.to_string() => std::fs::remove_file(path),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    };
    let recreate_log = || -> std::io::Result<()> {
        let Some(path) = log_file else { return Ok(()) };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            // Not through a link someone made in the log directory.
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        nix::unistd::fchown(&file, Some(persona.uid), Some(persona.gid))?;
        Ok(())
    };
    let mut request = [0u8];
    while conn.read_exact(&mut request).is_ok() {
        let result = match request[0] {
            REOPEN_LOG => recreate_log(),
            REMOVE_PID_FILE => remove_pid_file(),
            _ => Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let answer = match result {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO).clamp(1, 255) as u8,
        };
        if conn.write_all(&[answer]).is_err() {
            break;
        }
    }
    let _ = remove_pid_file();
    // SAFETY: ends this process at once, running nothing of the daemon's.
    unsafe { libc::_exit(0) }
}
