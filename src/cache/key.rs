//! Cache keys: BLAKE3 over tagged, length-prefixed fields, so that no two different sets of
//! inputs can be spelled the same; and the identity of a compiler, which every key holds.
//!
//! Which fields a kind of key holds (the text sent, the command line, the environment
//! that matters) is the caller's: it knows the job. This file owns how they are hashed,
//! and what identifies a compiler: the content of its driver and of the compilers proper
//! (`cc1`, `cc1plus`) the driver runs, so that a new compiler under the same name, or a
//! wrapper script in front of another one, makes other keys. Hashing a compiler takes a
//! run of it and a few MB read; the result is kept in the cache directory per (path,
//! device, inode, size, mtime, ctime) of the driver, so a job pays one stat and one small
//! read for it.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Bumped whenever what a key covers, or what an entry holds, changes meaning: entries of
/// older versions are then never found.
const KEY_CONTEXT: &str = "distcc-rs 2026-12 compile cache key v1";
const COMPILER_CONTEXT: &str = "distcc-rs 2026-12 compiler identity v1";

/// A cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The key in hexadecimal, as entries are named.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Builds a key from named fields.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    /// A key of `kind` (the mode that makes it: the text sent, a manifest...).
    pub fn new(kind: &str) -> KeyHasher {
        let mut h = KeyHasher(blake3::Hasher::new_derive_key(KEY_CONTEXT));
        h.field("kind", kind.as_bytes());
        h
    }

    /// Adds one field: its name, then its value, each with its length first.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut KeyHasher {
        self.0.update(&(name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// Adds a list of words (a command line) as one field.
    pub fn words(&mut self, name: &str, words: &[String]) -> &mut KeyHasher {
        self.0.update(&(name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(&(words.len() as u64).to_le_bytes());
        for w in words {
            self.0.update(&(w.len() as u64).to_le_bytes());
            self.0.update(w.as_bytes());
        }
        self
    }

    pub fn finish(&self) -> Key {
        Key(*self.0.finalize().as_bytes())
    }
}

/// Where a command's compiler `name` is: as given when it has a `/`, else the first
/// executable of that name on `PATH`, as `execvp` finds it.
pub fn locate(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::X_OK).is_ok())
}

/// The identity of the compiler at `path` (see the module's comment), kept in
/// `dir/compilers/`.
pub fn compiler_identity(dir: &Path, path: &Path) -> io::Result<[u8; 32]> {
    let m = std::fs::metadata(path)?;
    let mut memo = blake3::Hasher::new();
    memo.update(path.as_os_str().as_encoded_bytes());
    for n in [m.dev(), m.ino(), m.size()] {
        memo.update(&n.to_le_bytes());
    }
    for n in [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()] {
        memo.update(&n.to_le_bytes());
    }
    let memo = dir
        .join("compilers")
        .join(memo.finalize().to_hex().as_str());
    if let Ok(kept) = std::fs::read(&memo) {
        if let Ok(id) = <[u8; 32]>::try_from(kept.as_slice()) {
            return Ok(id);
        }
    }
    let id = identify(path)?;
    // Kept when the directory can be written; the identity holds either way.
    let _ = keep(&memo, &id);
    Ok(id)
}

/// Hashes the driver at `path` and the compilers proper it names.
fn identify(path: &Path) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(COMPILER_CONTEXT);
    let add_file = |h: &mut blake3::Hasher, p: &Path| -> io::Result<()> {
        let data = std::fs::read(p)?;
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(&data);
        Ok(())
    };
    add_file(&mut h, path)?;
    for prog in ["cc1", "cc1plus"] {
        // gcc answers with the full path of the one it would run; clang (whose compiler
        // proper is itself) and gcc without it answer the bare name.
        let out = Command::new(path)
            .arg(format!("-print-prog-name={prog}"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let named = String::from_utf8_lossy(&out.stdout).trim().to_string();
        h.update(&(named.len() as u64).to_le_bytes());
        h.update(named.as_bytes());
        if named.starts_with('/') {
            let _ = add_file(&mut h, Path::new(&named));
        }
    }
    Ok(*h.finalize().as_bytes())
}

/// The include directories built into the compiler at `path` (identity `identity`) for
/// `flags` (those that may change them) and `language`, as it spells them: its `-v`
/// search list. Asked with only `PATH` in its environment (no `CPATH`, and messages in
/// English), and kept beside the compiler's identity.
pub fn builtin_dirs(
    dir: &Path,
    path: &Path,
    identity: &[u8; 32],
    flags: &[String],
    language: &str,
) -> io::Result<Vec<String>> {
    let mut memo = blake3::Hasher::new();
    memo.update(identity);
    for f in flags.iter().map(String::as_str).chain([language]) {
        memo.update(&(f.len() as u64).to_le_bytes());
        memo.update(f.as_bytes());
    }
    let memo = dir
        .join("compilers")
        .join(format!("{}.dirs", memo.finalize().to_hex()));
    if let Ok(kept) = std::fs::read_to_string(&memo) {
        return Ok(kept.lines().map(String::from).collect());
    }
    let out = Command::new(path)
        .args(flags)
        .args(["-x", language, "-E", "-v", "/dev/null"])
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let dirs = crate::include::sysdirs::parse_search_list(&text)
        .ok_or_else(|| io::Error::other("no search list in its -v output"))?;
    let mut kept = String::new();
    for d in &dirs {
        kept.push_str(d);
        kept.push('\n');
    }
    let _ = keep(&memo, kept.as_bytes());
    Ok(dirs.into_iter().map(String::from).collect())
}

/// Writes `data` to `path` whole, through a temporary file renamed into place.
pub(super) fn keep(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::ensure_dir(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_run_into_each_other() {
        let a = KeyHasher::new("t")
            .field("x", b"ab")
            .field("y", b"c")
            .finish();
        let b = KeyHasher::new("t")
            .field("x", b"a")
            .field("y", b"bc")
            .finish();
        assert_ne!(a, b);
        let a = KeyHasher::new("t")
            .words("argv", &["-c".into(), "x".into()])
            .finish();
        let b = KeyHasher::new("t").words("argv", &["-cx".into()]).finish();
        assert_ne!(a, b);
        assert_eq!(a.hex().len(), 64);
    }
}
