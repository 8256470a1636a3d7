//! Writing what a host sent back as a local compile would have left it: the object through
//! a temporary file beside it, so that it is either complete or untouched, and the text
//! sent kept on request (`DISTCC_SAVE_TEMPS`).

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Keeps what is sent to the server in `$TMPDIR/distcc_XXXXXX.ext` (`DISTCC_SAVE_TEMPS=1`;
/// distcc 3.4 keeps its temporary `.i` file, which we never write otherwise).
pub(super) fn save_temp(text: &[u8], ext: &str) {
    let kept = tempfile::Builder::new()
        .prefix("distcc_")
        .suffix(&format!(".{ext}"))
        .tempfile()
        .and_then(|mut f| f.write_all(text).map(|()| f))
        .and_then(|f| f.keep().map_err(|e| e.error));
    match kept {
        Ok((_, path)) => log::info!("kept the preprocessed source in {}", path.display()),
        Err(e) => log::warn!("failed to keep the preprocessed source: {e}"),
    }
}

/// Writes the result to `path` as gcc would, but safely: through a temporary file in the
/// same directory, renamed into place (exchanged with an existing object, see
/// [`exchange`]), so that `path` is either the complete result or untouched (distcc 3.4
/// writes in place). What is not a regular file (`/dev/null`, a FIFO, a
/// symlink) is written through in place, as gcc does, never replaced.
pub(super) fn write_output(path: &Path, data: &[u8]) -> io::Result<()> {
    let replacing = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)?
                .write_all(data);
        }
        Ok(_) => true,
        Err(_) => false,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created with the mode a compiler creates its output with: 0666, less the umask.
    let mut tmp = tempfile::Builder::new()
        .prefix(".distcc-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    if replacing && exchange(tmp.path(), path).is_ok() {
        // The temporary name now holds the previous output; dropping it unlinks it.
        return Ok(());
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Swaps two names atomically. A rename over an existing file makes ext4 (`auto_da_alloc`)
/// and btrfs start writing the new file out at once, in the client's time: a disk write
/// per object of every rebuild, which neither gcc's assembler nor distcc 3.4 pays (both
/// unlink an old output, then create a new one). Exchanging and then unlinking keeps the
/// output whole at every moment without it. Fails where the filesystem cannot exchange;
/// the caller then renames.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> nix::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> nix::Result<()> {
    Err(nix::errno::Errno::ENOSYS)
}
