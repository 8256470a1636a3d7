//! Cache keys: BLAKE3 over tagged, length-prefixed fields, so that no two different sets of
//! inputs can be spelled the same; and the identity of a compiler, which every key holds.
//!
//! Which fields a kind of key holds (the text sent, the command line, the environment
//! that matters) is the caller's: it knows the job. This file owns how they are hashed,
//! and what identifies a compiler: the content of its driver, and the identity (device,
//! inode, size, times) of the compilers proper (`cc1`, `cc1plus`) the driver runs, so
//! that a new compiler under the same name, or a wrapper script in front of another one,
//! makes other keys. Identifying a compiler takes two runs of it; the result is kept in
//! the cache directory per (path, device, inode, size, mtime, ctime) of the driver, so a
//! job pays one stat and one small read for it.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
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
        hex(&self.0)
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
/// executable of that name on `PATH` that is not a masquerade link to distcc, as the
/// preprocessor the client runs finds it.
pub fn locate(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    crate::toolchain::lookup::find_compiler(name, &path).ok()
}

/// The identity of the compiler at `path` (see the module's comment), kept in
/// `dir/compilers/`.
pub fn compiler_identity(
    dir: &Path,
    path: &Path,
    path_var: Option<&OsStr>,
) -> io::Result<[u8; 32]> {
    let m = std::fs::metadata(path)?;
    let mut memo = blake3::Hasher::new();
    memo.update(path.as_os_str().as_encoded_bytes());
    memo.update(&file_ident(&m));
    if let Some(p) = path_var {
        // A wrapper may find another compiler on another `PATH`.
        memo.update(b"\0PATH=");
        memo.update(p.as_encoded_bytes());
    }
    let name = memo.finalize().to_hex().to_string();
    let id = memoized(dir, &name, still_same, || identify(path, path_var))?;
    <[u8; 32]>::try_from(&id[..32]).map_err(io::Error::other)
}

/// Whether a kept identity still holds: the programs it lists after the 32 bytes of the
/// identity, one `IDENT_HEX PATH` line each, are still those files (a wrapper script, or
/// a driver, may stay as it is while the compiler proper under it changes).
fn still_same(kept: &[u8]) -> bool {
    kept.len() >= 32
        && std::str::from_utf8(&kept[32..]).is_ok_and(|text| {
            text.lines().all(|line| {
                line.split_once(' ').is_some_and(|(ident, path)| {
                    std::fs::metadata(path).is_ok_and(|m| hex(&file_ident(&m)) == ident)
                })
            })
        })
}

/// `bytes` in lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    // A manifest holds hundreds of sums: no formatting machinery per byte.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A file's device, inode, size, mtime and ctime, as bytes.
fn file_ident(m: &std::fs::Metadata) -> Vec<u8> {
    super::manifest::Ident::of(m).bytes().to_vec()
}

/// The memo `name` of `dir/compilers/`, made by `make` when it is missing (or not
/// `valid`), by one process at a time: the jobs a build starts together would otherwise
/// all run and read the compiler at once, the first time.
pub fn memoized(
    dir: &Path,
    name: &str,
    valid: impl Fn(&[u8]) -> bool,
    make: impl FnOnce() -> io::Result<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    let memos = dir.join("compilers");
    let path = memos.join(name);
    let kept = || std::fs::read(&path).ok().filter(|k| valid(k));
    if let Some(k) = kept() {
        return Ok(k);
    }
    let lock = crate::ensure_dir(&memos).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(memos.join(".lock"))
    });
    // Without the lock (a cache that cannot be written), each makes its own.
    let _held = lock.ok().filter(|f| crate::lock_exclusive(f).is_ok());
    if let Some(k) = kept() {
        return Ok(k);
    }
    let made = make()?;
    // Kept when the directory can be written; the answer holds either way.
    let _ = keep(&path, &made);
    Ok(made)
}

/// Identifies the driver at `path` by its content, and the programs it runs (`cc1`,
/// `cc1plus`, `as`), tens of MB each, by their identity, which their package sets: the
/// 32 bytes of the identity, then a line per program found (see [`still_same`]).
fn identify(path: &Path, path_var: Option<&OsStr>) -> io::Result<Vec<u8>> {
    let mut h = blake3::Hasher::new_derive_key(COMPILER_CONTEXT);
    let data = std::fs::read(path)?;
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(&data);
    let mut programs = String::new();
    for prog in ["cc1", "cc1plus", "as"] {
        // gcc answers with the full path of the one it would run, or the bare name of
        // one it runs from PATH (`as`); clang, whose compiler proper is itself, answers
        // the bare name.
        let mut cmd = Command::new(path);
        cmd.arg(format!("-print-prog-name={prog}"));
        let (stdout, _) = crate::toolchain::identity::run_bounded(cmd, path_var)?;
        let named = String::from_utf8_lossy(&stdout).trim().to_string();
        h.update(&(named.len() as u64).to_le_bytes());
        h.update(named.as_bytes());
        let found = if named.contains('/') {
            Some(PathBuf::from(&named))
        } else {
            let search = path_var
                .map(OsStr::to_os_string)
                .or_else(|| std::env::var_os("PATH"));
            search.and_then(|s| crate::toolchain::lookup::find_compiler(&named, &s).ok())
        };
        let Some(found) = found.filter(|p| p.is_absolute() && !p.as_os_str().is_empty()) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(&found) {
            let ident = file_ident(&m);
            h.update(&ident);
            if let Some(p) = found.to_str().filter(|p| !p.contains('\n')) {
                programs.push_str(&format!("{} {p}\n", hex(&ident)));
            }
        }
    }
    let mut out = h.finalize().as_bytes().to_vec();
    out.extend_from_slice(programs.as_bytes());
    Ok(out)
}

/// The include directories built into the compiler at `path` (identity `identity`) for
/// `flags` (those that may change them) and `language`.
pub struct BuiltinDirs {
    /// As it spells them: its `-v` search list, the chain the preprocessor searches.
    pub spelled: Vec<String>,
    /// The same and, after them, the real paths of those that differ (the include
    /// server's spelling): what is under any of them is the compiler's own.
    pub own: Vec<String>,
}

/// The [`BuiltinDirs`] of the compiler at `path`, asked with only `PATH` in its
/// environment (no `CPATH`, and messages in English), and kept beside the compiler's
/// identity.
pub fn builtin_dirs(
    dir: &Path,
    path: &Path,
    identity: &[u8; 32],
    flags: &[String],
    language: &str,
) -> io::Result<BuiltinDirs> {
    let mut memo = blake3::Hasher::new();
    memo.update(identity);
    // A relative sysroot is the working directory's: so is the answer.
    let cwd = relative_sysroot(flags)
        .then(std::env::current_dir)
        .transpose()?
        .map(|d| d.into_os_string().into_encoded_bytes());
    for f in flags
        .iter()
        .map(String::as_bytes)
        .chain([language.as_bytes()])
        .chain(cwd.as_deref())
    {
        memo.update(&(f.len() as u64).to_le_bytes());
        memo.update(f);
    }
    let name = format!("{}.dirs", memo.finalize().to_hex());
    let kept = memoized(
        dir,
        &name,
        |k| k.starts_with(DIRS_HEADER),
        || {
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
            // One per line after a header (with `-nostdinc` the list is empty), then a
            // line `= REALPATH` for each that differs.
            let mut text = String::from_utf8_lossy(DIRS_HEADER).into_owned();
            for d in &dirs {
                text.push_str(&format!("{d}\n"));
            }
            for d in &dirs {
                let real = std::fs::canonicalize(d)
                    .ok()
                    .and_then(|r| r.into_os_string().into_string().ok());
                if let Some(real) = real.filter(|r| !dirs.contains(&r.as_str())) {
                    text.push_str(&format!("= {real}\n"));
                }
            }
            Ok(text.into_bytes())
        },
    )?;
    let mut dirs = BuiltinDirs {
        spelled: Vec::new(),
        own: Vec::new(),
    };
    for line in String::from_utf8_lossy(&kept[DIRS_HEADER.len()..]).lines() {
        match line.strip_prefix("= ") {
            Some(real) => dirs.own.push(real.to_string()),
            None => {
                dirs.spelled.push(line.to_string());
                dirs.own.push(line.to_string());
            }
        }
    }
    Ok(dirs)
}

/// Whether the probe flags of [`crate::include::cmdline`] (`--sysroot=DIR`, `-isysroot
/// DIR`) name a sysroot relative to the working directory.
pub fn relative_sysroot(flags: &[String]) -> bool {
    flags.iter().enumerate().any(|(i, f)| {
        let dir = match f.strip_prefix("--sysroot=") {
            Some(d) => Some(d),
            None if f == "-isysroot" => flags.get(i + 1).map(String::as_str),
            None => None,
        };
        dir.is_some_and(|d| !d.starts_with('/'))
    })
}

/// The first line of a memo of built-in directories.
const DIRS_HEADER: &[u8] = b"search list 2\n";

/// Writes `data` to `path` whole, through a temporary file renamed into place.
pub(super) fn keep(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::ensure_dir(dir)?;
    // Readable as the umask allows, as the entries: a cache shared by users.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)?;
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

    #[test]
    fn a_relative_sysroot_is_seen() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(relative_sysroot(&v("--sysroot=sr")));
        assert!(relative_sysroot(&v("-std=c11 -isysroot sr")));
        assert!(!relative_sysroot(&v("--sysroot=/sr -isysroot /x")));
        assert!(!relative_sysroot(&v("-std=c11")));
    }

    #[test]
    fn built_in_directories_are_asked_once_even_when_there_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let gcc = locate("gcc").unwrap();
        let flags = ["-nostdinc".to_string()];
        let ask = || builtin_dirs(dir.path(), &gcc, &[1; 32], &flags, "c").unwrap();
        assert_eq!(ask().spelled, Vec::<String>::new());
        // The next answer is the memo's: changed here, it shows.
        let memos: Vec<_> = std::fs::read_dir(dir.path().join("compilers"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".dirs"))
            .collect();
        assert_eq!(memos.len(), 1);
        std::fs::write(memos[0].path(), "search list 2\n/kept\n= /real\n").unwrap();
        assert_eq!(ask().spelled, ["/kept"]);
        assert_eq!(ask().own, ["/kept", "/real"]);
    }
}
