//! One job on stdin/stdout: distccd started by inetd (stdin is the client's socket) or over
//! SSH (stdin and stdout are pipes or a Unix socket pair). The whole request must arrive
//! within the I/O timeout, as over TCP, so that a stalled client cannot keep the process.
//!
//! Listening and workers are `listener`'s; the job itself is `job`'s.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::privileges;
use super::{access, job, Config, DaemonError, Deadline};
use crate::exitcode;

/// A private duplicate of a standard descriptor, read and written unbuffered (std's stdin
/// buffers, and a buffer the deadline's poll cannot see would stall it).
fn dup_std(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<File> {
    let owned: OwnedFd = fd.try_clone_to_owned()?;
    Ok(File::from(owned))
}

/// Serves one job on stdin/stdout. A network peer must pass the access list (distcc 3.4
/// accepts anyone when none was given); a pipe or a Unix socket is always accepted, its
/// other end having logged in already. Returns the process's exit status, distcc 3.4's:
/// that of the job (`exitcode::for_job`), 113 for a client the access list denies.
pub fn run(cfg: &Config) -> Result<i32, DaemonError> {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    if cfg.zeroconf {
        // As distcc 3.4: only a standalone daemon announces itself.
        log::warn!("--zeroconf is for a standalone daemon: nothing is announced under inetd");
    }
    privileges::apply_nice(cfg.nice);
    if let Some(persona) = privileges::persona(cfg.user.as_deref())? {
        if let Some(cache) = &cfg.job.cache {
            privileges::hand_over_cache(&cache.dir, &persona);
        }
        privileges::become_user(&persona)?;
    }
    super::listener::check_whitelist(cfg)?;
    super::listener::check_cache(cfg)?;
    if let Some(lifetime) = cfg.lifetime {
        // distcc 3.4's alarm ends an inetd job too: here the job is cut off as a stopping
        // daemon's would be, and still answered.
        let _ = cfg.job.stop_by.set(Instant::now() + lifetime);
    }
    let peer = getpeername::<SockaddrStorage>(0).ok();
    let ip = peer.as_ref().and_then(|addr| {
        addr.as_sockaddr_in()
            .map(|a| IpAddr::V4(a.ip()))
            .or_else(|| addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
    });
    let client = match (ip, &peer) {
        // A network peer must be allowed explicitly (distcc 3.4 serves anyone here).
        (Some(ip), Some(addr)) => {
            if !access::allowed(&cfg.allow, ip) {
                log::error!("connection from client '{addr}' denied by access list");
                return Ok(exitcode::ACCESS_DENIED);
            }
            addr.to_string()
        }
        // A pipe, or a Unix socket pair as distcc 3.4's client gives ssh: the far end
        // logged in through SSH.
        _ => "NOTSOCKET".to_string(),
    };
    let (input, output) = match (
        dup_std(std::io::stdin().as_fd()),
        dup_std(std::io::stdout().as_fd()),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            log::error!("cannot use stdin/stdout: {e}");
            return Ok(exitcode::DISTCC_FAILED);
        }
    };
    let mut stream = Deadline {
        input,
        output,
        deadline: Instant::now() + cfg.io_timeout,
        stop_by: &cfg.job.stop_by,
    };
    let outcome = job::serve(&mut stream, &cfg.job, &job::Arrived::default());
    outcome.log(&client);
    Ok(exitcode::for_job(outcome.result))
}
