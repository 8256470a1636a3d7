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
//! - `daemon`: `distccd`, from the listening socket to one compiled job.
//!
//! Both programs log in distcc's shape (`logging`) and exit with its codes (`exitcode`).

pub mod client;
pub mod cmdline;
pub mod daemon;
pub mod envvars;
pub mod exitcode;
pub mod farm;
pub mod logging;
pub mod net;
pub mod toolchain;
pub mod wire;

/// Makes `dir` (and its parents) unless it exists. It nearly always does: asking first
/// costs one system call, where `create_dir_all` alone tries `mkdir` and then asks.
pub(crate) fn ensure_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
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
