//! `distccd`, the volunteer daemon: from its configuration to served jobs.
//!
//! The rooms: `config` (the command line and the environment, read once, into a `Config`),
//! `listener` (the standalone TCP daemon: listening socket, workers, stats page, signals),
//! `inetd` (one job on stdin/stdout, for inetd and SSH), `privileges` (giving up root),
//! `access` (who may connect), `job` (one compile), `stats` and `metrics` (the figures, as
//! distcc 3.4's page and for Prometheus), `live` (the jobs now, for the live page and the
//! farm view). This file holds what they
//! share: the daemon's errors, with the one place mapping them to distcc's exit codes, the
//! deadline by which a request must have arrived, and `main`, the daemon's start.

pub mod access;
pub mod config;
mod door;
pub mod gss;
pub mod inetd;
pub mod job;
pub mod jobroot;
pub mod listener;
mod live;
mod metrics;
pub mod privileges;
mod pumpcache;
pub mod stats;
pub mod tls;
mod zeroconf;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::envvars::BadValue;
use crate::exitcode;
pub use config::{Args, Config, Environment};
use job::StopBy;

/// Why the daemon could not start (or go on).
#[derive(Debug)]
pub enum DaemonError {
    /// An environment variable with a value the daemon cannot use.
    BadEnvironment(BadValue),
    /// Neither `--allow`, `--allow-private` nor `--enable-tcp-insecure` was given.
    NoAllow,
    /// An `--allow` value that is neither an address nor a name that resolves.
    BadAllow(access::BadAllow),

    Resolve {
        listen: String,
        error: String,
    },
    Bind {
        addr: SocketAddr,
        error: io::Error,
    },
    Detach(nix::Error),
    PidFile {
        path: PathBuf,
        error: io::Error,
    },
    /// The root-owned helper for the pid and log files could not be started.
    Keeper(io::Error),
    /// `--user` names no user.
    NoSuchUser(String),
    /// Root could not be given up.
    SetUid(String),
    /// `--whitelist-dir` names a directory that does not exist.
    WhitelistMissing(PathBuf),
    /// The whitelist directory cannot be read by the user the daemon runs as.
    Whitelist {
        dir: PathBuf,
        error: io::Error,
    },
    /// `--cache-size` is no size.
    BadCacheSize(String),
    /// The cache directory cannot be made, or written by the user the daemon runs as.
    CacheDir {
        dir: PathBuf,
        error: io::Error,
    },
    /// The TLS options cannot be honoured: why.
    Tls(String),
    /// GSS-API authentication cannot be set up: why.
    Gss(String),
    /// GSS-API options that go against each other: why.
    GssOptions(String),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::BadEnvironment(bad) => write!(f, "{bad}"),
            DaemonError::NoAllow => write!(
                f,
                "no --allow option given: refusing to accept compile jobs from everyone. \
                 Add --allow ADDR[/BITS] (or --allow-private), or --enable-tcp-insecure to \
                 accept any client; see distccd --help"
            ),
            DaemonError::BadAllow(bad) => write!(f, "{bad}"),
            DaemonError::Resolve { listen, error } => {
                write!(f, "cannot resolve --listen address \"{listen}\": {error}")
            }
            DaemonError::Bind { addr, error } => write!(
                f,
                "failed to listen on {addr}: {error} (is another distccd using the port? see --port)"
            ),
            DaemonError::Detach(e) => write!(f, "failed to detach into the background: {e}"),
            DaemonError::PidFile { path, error } => {
                write!(f, "failed to write pid file {}: {error}", path.display())
            }
            DaemonError::Keeper(e) => write!(
                f,
                "failed to start the helper that removes the pid file and recreates the log \
                 file: {e}"
            ),
            DaemonError::NoSuchUser(name) => write!(
                f,
                "no such user as \"{name}\" (--user): refusing to run as another user; create \
                 the user or name an existing one"
            ),
            DaemonError::SetUid(why) => write!(
                f,
                "refusing to compile as root: {why} (start distccd as an unprivileged user, or \
                 give --user NAME)"
            ),
            DaemonError::WhitelistMissing(dir) => write!(
                f,
                "{} not found: create it with links named after the compilers this machine \
                 may run (update-distcc-symlinks does it), give another with --whitelist-dir, \
                 or use --enable-tcp-insecure",
                dir.display()
            ),
            DaemonError::Whitelist { dir, error } => write!(
                f,
                "cannot read the compiler whitelist {} as the user distccd runs as: {error}; \
                 every job would be refused",
                dir.display()
            ),
            DaemonError::BadCacheSize(s) => write!(
                f,
                "bad --cache-size {s:?}: expected a size such as 5G, 500M or 1000000"
            ),
            DaemonError::CacheDir { dir, error } => write!(
                f,
                "cannot use the cache directory {} as the user distccd runs as: {error}",
                dir.display()
            ),
                        DaemonError::Tls(why) | DaemonError::Gss(why) | DaemonError::GssOptions(why) => {
                write!(f, "{why}")
            }
        }
    }
}

impl std::error::Error for DaemonError {}

/// A client connection (a socket, or inetd's stdin) whose reads must all be done by one
/// deadline, so that a client that sends a byte now and then cannot hold a worker longer
/// than the I/O timeout (distcc 3.4's reads have no timeout at all). Writes go to `output`.
pub(crate) struct Deadline<'a, R, W> {
    pub input: R,
    pub output: W,
    pub deadline: Instant,
    /// A stopping daemon's own deadline, which may come first.
    pub stop_by: &'a StopBy,
}

impl<R: Read + AsFd, W> Read for Deadline<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = match self.stop_by.get() {
            Some(stop) => self.deadline.min(*stop),
            None => self.deadline,
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request took too long to arrive",
                ));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.input.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                // Readable, closed or in error: the read says which.
                Ok(n) if n > 0 => return self.input.read(buf),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<R, W: Write> Write for Deadline<'_, R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Where `--gen-key` writes: the file named, else root's in `/etc/distcc`, another user's
/// in their distcc directory.
fn gen_key_path(named: &std::path::Path) -> PathBuf {
    if !named.as_os_str().is_empty() {
        return named.to_path_buf();
    }
    let dir = if nix::unistd::geteuid().is_root() {
        Some(PathBuf::from("/etc/distcc"))
    } else {
        crate::farm::hosts::distcc_dir_from(
            std::env::var_os("DISTCC_DIR"),
            std::env::var_os("HOME"),
        )
    };
    dir.unwrap_or_default().join("distccd_ed25519")
}

/// The daemon's start, after the command line was parsed: reads the environment, sets up
/// logging, builds the configuration and serves, standalone or inetd. Returns the exit code.
pub fn main(args: Args) -> i32 {
    if args.version {
        print!("{}", crate::version_banner("distccd"));
        return 0;
    }
    if args.show_principal {
        // distcc 3.4's words and tab.
        match std::env::var("DISTCCD_PRINCIPAL") {
            Ok(p) => println!("Principal is\t: {p}"),
            Err(_) => println!("Principal\t: Not Set"),
        }
        return 0;
    }
    if let Some(path) = &args.gen_key {
        return crate::net::keys::gen_key_main("distccd", &gen_key_path(path));
    }
    let args = args.expanded();
    config::init_logging(&args);
    let stdin_is_socket =
        nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(0).is_ok();
    let result = Environment::from_process()
        .and_then(|env| Config::build(&args, &env, stdin_is_socket))
        .and_then(|cfg| {
            if cfg.inetd {
                inetd::run(&cfg)
            } else {
                listener::run(cfg).map(|()| 0)
            }
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            // Said on stderr too, unless the log already goes there.
            if !args.log_stderr {
                eprintln!("distccd: ERROR: {e}");
            }
            exitcode::Fatal::exit_code(&e)
        }
    }
}
