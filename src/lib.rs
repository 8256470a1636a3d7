//! distcc-rs: distcc, the distributed C/C++ compiler, wire-compatible with distcc 3.4.
//!
//! The `distcc` client classifies a compiler command line (`args`), picks a host and a
//! slot (`hosts`, `lock`, `backoff`), preprocesses locally, names the compiler for the
//! server (`compiler`), sends the job (`protocol`, `lzo`, `transport`) and writes the
//! result (`client`); it reports its progress to monitors (`state`) and can stand in for
//! compilers on PATH (`masquerade`). `-g` objects equal a local build's (`debuginfo`, `pragmas`). The `distccd` daemon accepts connections (`daemon`,
//! `access`), checks what it is asked to run (`policy`), compiles it (`serve`) and counts
//! it (`stats`). Both log in distcc's shape (`logging`) and exit with its codes
//! (`exitcode`).

pub mod access;
pub mod args;
pub mod backoff;
pub mod client;
pub mod compiler;
pub mod daemon;
pub mod debuginfo;
pub mod exitcode;
pub mod hosts;
pub mod lock;
pub mod logging;
pub mod lzo;
pub mod masquerade;
pub mod policy;
pub mod pragmas;
pub mod protocol;
pub mod serve;
pub mod state;
pub mod stats;
pub mod transport;

/// A boolean environment setting as distcc reads it: exactly `1` or `0`, else the default.
pub(crate) fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => default,
    }
}

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
