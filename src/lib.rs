//! distcc-rs: distcc, the distributed C/C++ compiler, wire-compatible with distcc 3.4.
//!
//! The parts, each a folder:
//! - `cmdline`: the gcc/clang option table, shared by the client (what may be distributed)
//!   and the daemon (what it agrees to run);
//! - `wire`: distcc's packets, requests and replies, with LZO;
//! - `net`: reaching a host over TCP or SSH;
//! - `toolchain`: compiler names, masquerade links, and `-g` objects equal to a local build's;
//! - `farm`: the host list, slot locks, backoff and the monitor's state files;
//! - `client`: one `distcc` invocation, from the command line to the written object;
//! - `cache`: the compile cache's keys, entries and counters;
//! - `daemon`: `distccd`, from the listening socket to one compiled job;
//! - `trace`: the per-job trace of a build (`DISTCC_TRACE`), its report and Chrome export;
//! - `json`: just enough JSON for the trace and the daemons' state documents.
//!
//! Both programs log in distcc's shape (`logging`) and exit with its codes (`exitcode`).

pub mod cache;
pub mod client;
pub mod cmdline;
pub mod daemon;
pub mod envvars;
pub mod exitcode;
pub mod farm;
pub mod include;
pub mod json;
pub mod logging;
pub mod net;
pub mod toolchain;
pub mod trace;
pub mod wire;

/// Makes `dir` (and its parents) unless it exists. It nearly always does: asking first
/// costs one system call, where `create_dir_all` alone tries `mkdir` and then asks.
pub(crate) fn ensure_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
}

/// Takes an exclusive `flock` on `f`; closing `f` lets it go.
pub(crate) fn lock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: locks a descriptor that `f` holds open.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Everything written to `file` (a child's output file, the child finished), whatever the
/// file's position.
pub(crate) fn read_whole(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    read_first(file, file.metadata()?.len())
}

/// The first `len` bytes of `file`, in one read at offset 0 (no seeks).
pub(crate) fn read_first(file: &std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut data = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut data, 0)?;
    Ok(data)
}

/// The GNU triple of the platform these programs were built for, as distcc 3.4 names it in
/// its banner and its zeroconf records (`x86_64-pc-linux-gnu`).
pub fn gnu_host() -> String {
    match std::env::consts::OS {
        "linux" if cfg!(target_arch = "x86_64") => "x86_64-pc-linux-gnu".to_string(),
        "linux" => format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        os => format!("{}-unknown-{os}", std::env::consts::ARCH),
    }
}

/// The `--version` banner of `program` (`distcc` or `distccd`). Its first two lines have
/// distcc 3.4's shape, because tools (monitors, cluster scripts) parse them: `PROGRAM
/// VERSION PLATFORM`, then the protocols line. That line stays 3.4's word for word, "and 3"
/// included, although this version speaks protocols 1 and 2 only so far (a protocol 3
/// request gets a refusal, and the client compiles locally); the third line says so.
pub fn version_banner(program: &str) -> String {
    let platform = gnu_host();
    format!(
        "{program} {version} {platform}\n  (protocols 1, 2 and 3) (default port 3632)\n  \
         distcc-rs {version}, wire-compatible with distcc 3.4 (protocols 1 and 2 served)\n\
         Copyright (C) 2002, 2003, 2004 by Martin Pool.\n\
         Portions Copyright (C) 2007-2008 Google.\n\
         Copyright (C) 2026 the distcc-rs authors.\n\n\
         distcc comes with ABSOLUTELY NO WARRANTY.  distcc is free software, and\n\
         you may use, modify and redistribute it under the terms of the GNU\n\
         General Public License version 2 or later.\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}
