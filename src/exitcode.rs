//! distcc's exit codes (`src/exitcode.h` of distcc 3.4), so that scripts that test for them
//! keep working. A compiler's own exit status is passed through unchanged and is not listed
//! here; a compiler killed by signal N gives 128 + N.

pub const DISTCC_FAILED: i32 = 100;
pub const BAD_ARGUMENTS: i32 = 101;
pub const BIND_FAILED: i32 = 102;
pub const CONNECT_FAILED: i32 = 103;
pub const OUT_OF_MEMORY: i32 = 105;
pub const BAD_HOSTSPEC: i32 = 106;
pub const IO_ERROR: i32 = 107;
pub const TRUNCATED: i32 = 108;
pub const PROTOCOL_ERROR: i32 = 109;
pub const COMPILER_MISSING: i32 = 110;
pub const RECURSION: i32 = 111;
pub const SETUID_FAILED: i32 = 112;
pub const ACCESS_DENIED: i32 = 113;
pub const NO_HOSTS: i32 = 116;
pub const TIMEOUT: i32 = 118;
pub const GSSAPI_FAILED: i32 = 119;

/// An error that ends a program, and the exit code it ends with. Every error type that can
/// end `distcc` or `distccd` is mapped here, in one place, so that the codes scripts test
/// for stay distcc's.
pub trait Fatal: std::fmt::Display {
    fn exit_code(&self) -> i32;
}

impl Fatal for crate::envvars::BadValue {
    fn exit_code(&self) -> i32 {
        BAD_ARGUMENTS
    }
}

impl Fatal for crate::daemon::DaemonError {
    fn exit_code(&self) -> i32 {
        use crate::daemon::DaemonError as E;
        match self {
            E::BadEnvironment(_)
            | E::NoAllow
            | E::BadAllow(_)
            | E::BadCacheSize(_)
            | E::Tls(_)
            | E::GssOptions(_) => BAD_ARGUMENTS,
            E::CacheDir { .. } => IO_ERROR,
            E::Gss(_) => GSSAPI_FAILED,
            E::Resolve { .. } | E::Bind { .. } => BIND_FAILED,
            E::Detach(_) | E::PidFile { .. } | E::Keeper(_) => DISTCC_FAILED,
            E::NoSuchUser(_) | E::SetUid(_) => SETUID_FAILED,
            E::WhitelistMissing(_) | E::Whitelist { .. } => COMPILER_MISSING,
        }
    }
}

/// The exit status of `distccd --inetd` for the one job it served, as distcc 3.4's: 0 for
/// a job answered (a failed or timed-out compile included: the client has its status),
/// 108 for a request cut short, 109 for a bad request, 100 for any other failure.
pub fn for_job(result: crate::daemon::job::JobResult) -> i32 {
    use crate::daemon::job::JobResult as R;
    match result {
        R::CompileOk | R::CompileError | R::CompileTimeout => 0,
        R::ClientDisconnected => TRUNCATED,
        R::BadRequest => PROTOCOL_ERROR,
        R::Other => DISTCC_FAILED,
    }
}

impl Fatal for crate::farm::hosts::HostsError {
    fn exit_code(&self) -> i32 {
        BAD_HOSTSPEC
    }
}

/// Logs `error` and returns its exit code.
pub fn report(error: &impl Fatal) -> i32 {
    log::error!("{error}");
    error.exit_code()
}

/// The exit code a shell would report for a process that ended with `status`: its exit
/// code, or 128 + the signal that killed it.
pub fn from_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => DISTCC_FAILED,
    }
}

/// A POSIX wait status as carried in a `STAT` packet, read apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus {
    /// The exit code, when no signal ended the process.
    pub exit: u32,
    /// The signal that ended it, or 0.
    pub signal: u32,
    /// Whether it dumped core.
    pub core: bool,
}

impl WaitStatus {
    pub fn decode(status: u32) -> WaitStatus {
        WaitStatus {
            exit: (status >> 8) & 0xff,
            signal: status & 0x7f,
            core: status & 0x80 != 0,
        }
    }
}

/// The exit code for a POSIX wait status as carried in a `STAT` packet.
pub fn from_wait_status(status: u32) -> i32 {
    let w = WaitStatus::decode(status);
    if w.signal == 0 {
        w.exit as i32
    } else {
        128 + w.signal as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(from_wait_status(0), 0);
        assert_eq!(from_wait_status(1 << 8), 1);
        assert_eq!(from_wait_status(0x6e00), COMPILER_MISSING);
        assert_eq!(from_wait_status(11 | 0x80), 139);
        assert_eq!(from_wait_status(9), 137);
    }
}
