//! A protocol 3 (pump) job's private root: a fresh `0700` directory under the daemon's
//! `TMPDIR` where every file the client sent is written at ROOT + its client path, and the
//! compile runs in ROOT + the client's working directory; removed when dropped, whatever
//! became of the job. Also the command line and dependency file of such a job: the client's
//! absolute paths moved into the root, and back.
//!
//! Confinement. distcc 3.4 writes whatever names it is sent, `..` and all. Here:
//! - A name is an absolute path of plain components: no `.` or `..` (the include server
//!   sends realpaths, so none of its names has them), no NUL.
//! - Every directory on the way is opened with `O_NOFOLLOW` from the root's descriptor, and
//!   created if missing; a symbolic link or a file in the way refuses the name, so nothing
//!   is ever written through a link sent earlier, and a file and a directory of one name
//!   are refused. The last component is created with `O_EXCL | O_NOFOLLOW`: a name sent
//!   twice is refused too.
//! - A link's target must resolve inside the root, by construction of the target alone: an
//!   absolute target (the include server's mirror links point at absolute realpaths) has
//!   plain components and becomes ROOT + target; a relative one is some `..`s then plain
//!   components, with no more `..`s than the link has directories above it in the root. The
//!   `..`s then climb real directories of the root (none of them can be a link), and the
//!   plain components descend from there, through links that obey the same rule.
//!   A `..` after a plain component is refused: that component could be a link, and `..`
//!   from where it leads could climb out.
//! - One escape is allowed, because 3.4's include server relies on it: a system directory
//!   `D` (`/usr/include`, gcc's own) is not sent but linked, `ROOT/D -> ../../..(20 + depth
//!   of D)/D`, so that `-I ROOT/usr/include/foo` reaches the host's headers. A relative link
//!   whose `..`s reach the file system's root (at least as many as the root's own depth plus
//!   the link's depth in it) and whose plain components then spell its own name `D` is
//!   allowed: it leads to exactly the host path the client meant, which the compiler could
//!   read anyway (a source may `#include` any absolute path). It can be written through
//!   never, like any link.
//! - The working directory is the one path that may go through links sent (a client that
//!   reached its directory through a symlink names it so, as its compiler does): they are
//!   followed only to directories of the root, and only to run the compiler there.
//!
//! The compiler reads what the daemon's user may read, as in 3.4: pump mode preprocesses on
//! the host. What it writes is ours: the object and dependency file go to job files outside
//! the root.

use std::collections::HashSet;
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cmdline::{self, table::Role};
use crate::wire::{Received, ReceivedFile};

/// The name of the empty files 3.4's include server sends so that a directory exists on
/// the host (for `#include "dir/../x.h"`).
pub const FORCING_FILE: &str = "forcing_technique_271828";

/// Why a name or link of the request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    pub name: String,
    pub why: &'static str,
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "file \"{}\" {}; refused",
            self.name.escape_debug(),
            self.why
        )
    }
}

/// A job's root directory, removed when dropped (or kept with [`JobRoot::keep`]).
pub struct JobRoot {
    dir: Option<tempfile::TempDir>,
    /// The root's canonical path: what the compiler's `getcwd` and paths start with.
    path: String,
    fd: OwnedFd,
    /// The files our client says carry an include server's line marker
    /// (`wire::LINE_MARKED`, which it sends first), written without it; `None` from a
    /// client that sends no such list (distcc 3.4's).
    marked: std::sync::Mutex<Option<HashSet<String>>>,
}

/// `name`'s components, if it is an absolute path of plain ones.
fn components(name: &str) -> Result<Vec<&str>, &'static str> {
    if !name.starts_with('/') {
        return Err("is not an absolute path");
    }
    if name.contains('\0') {
        return Err("holds a NUL byte");
    }
    let parts: Vec<&str> = name.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err("has a . or .. component");
    }
    Ok(parts)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cstr(s: &str) -> CString {
    // Callers have refused NUL bytes.
    CString::new(s).unwrap_or_default()
}

/// Why walking to a directory failed.
enum Walk {
    /// A link or a file is in the way.
    Blocked(&'static str),
    Io,
}

impl JobRoot {
    /// Creates a fresh root in `tmp_root`.
    pub fn create(tmp_root: &Path) -> io::Result<JobRoot> {
        // tempfile creates directories with mode 0700.
        let dir = tempfile::Builder::new()
            .prefix("distccd_")
            .tempdir_in(tmp_root)?;
        let path = dir.path().canonicalize()?;
        let path = path
            .to_str()
            .ok_or_else(|| io::Error::other("TMPDIR is not valid UTF-8"))?
            .to_string();
        let fd = open_dir(libc::AT_FDCWD, &path)?;
        Ok(JobRoot {
            dir: Some(dir),
            path,
            fd,
            marked: Default::default(),
        })
    }

    /// The root's canonical path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `client_path` (absolute) inside the root.
    pub fn inside(&self, client_path: &str) -> String {
        format!("{}{client_path}", self.path)
    }

    /// Keeps the root (`DISTCC_SAVE_TEMPS`) and returns its path.
    pub fn keep(mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }

    /// Opens directory `parts` below the root, creating what is missing, never following a
    /// link.
    fn walk(&self, parts: &[&str]) -> Result<OwnedFd, Walk> {
        let mut fd = dup(&self.fd).map_err(|_| Walk::Io)?;
        for part in parts {
            let c = cstr(part);
            let next = match open_dir(fd.as_raw_fd(), part) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // SAFETY: mkdirat with a valid descriptor and a NUL-terminated name.
                    if unsafe { libc::mkdirat(fd.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(Walk::Io);
                        }
                    }
                    open_dir(fd.as_raw_fd(), part)
                }
                other => other,
            };
            fd = next.map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Walk::Blocked("goes through a symbolic link"),
                Some(libc::ENOTDIR) => Walk::Blocked("goes through a file or a symbolic link"),
                _ => Walk::Io,
            })?;
        }
        Ok(fd)
    }

    /// Opens directory `parts` below the root as [`JobRoot::walk`] does, but follows the
    /// links sent on the way, as long as they lead to directories of the root: a client
    /// that works in a directory it reached through a symlink names it by that path
    /// (`$PWD`, as its compiler does), and the mirror sent the link. Nothing is written
    /// through a link; a missing directory is made where the links lead.
    fn walk_through_links(&self, parts: &[&str]) -> Result<(), Walk> {
        // The directories walked so far, physically, below the root.
        let mut here: Vec<String> = Vec::with_capacity(parts.len());
        for part in parts {
            here.push(part.to_string());
            let now: Vec<&str> = here.iter().map(String::as_str).collect();
            match self.walk(&now) {
                Err(Walk::Blocked(why)) => {
                    let real = std::fs::canonicalize(self.inside(&format!("/{}", now.join("/"))))
                        .map_err(|_| Walk::Blocked(why))?;
                    let below = (real.to_str())
                        .and_then(|r| r.strip_prefix(&self.path))
                        .filter(|r| r.starts_with('/'))
                        .ok_or(Walk::Blocked("goes through a link out of the job's root"))?;
                    here = below.split('/').skip(1).map(String::from).collect();
                    let now: Vec<&str> = here.iter().map(String::as_str).collect();
                    self.walk(&now)?;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    fn refuse(name: &str, why: &'static str) -> Unsafe {
        Unsafe {
            name: name.to_string(),
            why,
        }
    }

    /// Creates directory `client_dir` (absolute) in the root if it is missing, and returns
    /// its path: where a job whose client worked in `client_dir` compiles.
    pub fn dir(&self, client_dir: &str) -> Result<String, Unsafe> {
        let parts = components(client_dir).map_err(|why| Self::refuse(client_dir, why))?;
        match self.walk_through_links(&parts) {
            // Spelled as the client spelled it: a compiler names its directory by `PWD`.
            Ok(_) => Ok(format!("{}{client_dir}", self.path)),
            Err(Walk::Blocked(why)) => Err(Self::refuse(client_dir, why)),
            Err(Walk::Io) => Err(Self::refuse(client_dir, "cannot be created")),
        }
    }

    /// Writes one received file or link at ROOT + its name; our client's list of marked
    /// files is taken, not written.
    pub fn add(&self, file: &ReceivedFile) -> Result<(), Unsafe> {
        let name = &file.name;
        if let (crate::wire::LINE_MARKED, Received::File(list)) = (name.as_str(), &file.content) {
            return self.mark(list);
        }
        let parts = components(name).map_err(|why| Self::refuse(name, why))?;
        let Some((last, parents)) = parts.split_last() else {
            return Err(Self::refuse(name, "names the root itself"));
        };
        let dir = match self.walk(parents) {
            Ok(dir) => dir,
            // A forcing file only asks for its directory, which a link sent earlier
            // already stands for: nothing to write.
            Err(Walk::Blocked(_))
                if *last == FORCING_FILE
                    && matches!(&file.content, Received::File(d) if d.is_empty()) =>
            {
                return Ok(())
            }
            Err(Walk::Blocked(why)) => return Err(Self::refuse(name, why)),
            Err(Walk::Io) => return Err(Self::refuse(name, "cannot be written")),
        };
        let c = cstr(last);
        match &file.content {
            Received::File(data) => {
                // SAFETY: openat with a valid descriptor and a NUL-terminated name.
                let fd = unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        c.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(Self::refuse(name, exists_or("cannot be written")));
                }
                // SAFETY: a new descriptor that nothing else owns.
                let mut out = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let by_server = |marked: &str| match &*lock(&self.marked) {
                    Some(list) => list.contains(name.as_str()),
                    // 3.4's client does not say: a marker naming the file itself is
                    // taken for the include server's.
                    None => marked == name,
                };
                let body = match line_marker(data) {
                    Some((marked, len)) if by_server(marked) => &data[len..],
                    _ => data,
                };
                out.write_all(body)
                    .map_err(|_| Self::refuse(name, "cannot be written"))
            }
            Received::Link(target) => {
                let target = self
                    .link_target(parents, last, target)
                    .map_err(|why| Self::refuse(name, why))?;
                let t = cstr(&target);
                // SAFETY: symlinkat with NUL-terminated strings and a valid descriptor.
                if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) } != 0 {
                    return Err(Self::refuse(name, exists_or("cannot be created")));
                }
                Ok(())
            }
        }
    }

    /// Takes our client's list of the files that carry an include server's line marker
    /// (`wire::LINE_MARKED`), sent before them; longer than any closure's, it is refused.
    fn mark(&self, list: &[u8]) -> Result<(), Unsafe> {
        if list.len() > crate::wire::MAX_LIST {
            return Err(Self::refuse(crate::wire::LINE_MARKED, "is too long a list"));
        }
        let list = String::from_utf8_lossy(list);
        *lock(&self.marked) = Some(list.lines().map(String::from).collect());
        Ok(())
    }

    /// The target to give a link named `parents/last` (see the module's comment), or why
    /// it is refused.
    fn link_target(
        &self,
        parents: &[&str],
        last: &str,
        target: &str,
    ) -> Result<String, &'static str> {
        if target.is_empty() || target.contains('\0') {
            return Err("is a link with an empty or NUL-holding target");
        }
        if target.starts_with('/') {
            components(target).map_err(|_| "is a link whose absolute target has . or ..")?;
            return Ok(self.inside(target));
        }
        let words: Vec<&str> = target
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let ups = words.iter().take_while(|c| **c == "..").count();
        let rest = &words[ups..];
        if rest.contains(&"..") {
            return Err("is a link whose target has .. after a name");
        }
        if ups <= parents.len() {
            return Ok(target.to_string());
        }
        let own: Vec<&str> = parents.iter().copied().chain([last]).collect();
        let root_depth = self.path.split('/').filter(|c| !c.is_empty()).count();
        if rest == own.as_slice() && ups >= root_depth + parents.len() {
            return Ok(target.to_string());
        }
        Err("is a link whose target climbs out of the job's root")
    }
}

/// The reason for a failed exclusive create: the name exists already, or `other`.
fn exists_or(other: &'static str) -> &'static str {
    if io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
        "is sent twice, or is both a file and a directory"
    } else {
        other
    }
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

/// Opens directory `name` relative to `dir`, not following a link.
fn open_dir(dir: i32, name: &str) -> io::Result<OwnedFd> {
    let c = cstr(name);
    // SAFETY: openat with a NUL-terminated name; the result is checked.
    let fd = unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Options that a plain compile refuses because they read or write files the client
/// names on this machine, and that a pump compile runs: their files are the ones sent, in
/// the root, or the job's own dependency file.
const PUMP_ALLOWED: &[&str] = &["-include", "-imacros", "-MD", "-MMD", "-MF", "-MT", "-MQ"];

/// `argv` without the options of [`PUMP_ALLOWED`], for the daemon's policy check: the rest
/// is checked as for any job.
pub fn for_policy(argv: &[String]) -> Vec<String> {
    let Ok(items) = cmdline::scan(argv) else {
        return argv.to_vec();
    };
    let mut out = vec![argv[0].clone()];
    for item in items {
        if item.row().is_some_and(|r| PUMP_ALLOWED.contains(&r.name)) {
            continue;
        }
        out.extend_from_slice(item.span(argv));
    }
    out
}

/// Options that map paths in what gcc writes, whose absolute old prefix is moved into the
/// root so that they still apply.
const PREFIX_MAPS: &[&str] = &[
    "-fdebug-prefix-map=",
    "-ffile-prefix-map=",
    "-fmacro-prefix-map=",
];

/// The command a pump job runs, from the client's `argv` (with `-o` made explicit):
/// - the input and the absolute paths of [`cmdline::PATH_OPTIONS`] moved into the root, as distcc
///   3.4 does;
/// - `-o` to `output`; `-MF` to `deps`, with `-MMD` added when neither `-MD` nor `-MMD` is
///   given, and `-MQ <the client's output>` when no target is, which is the target gcc
///   gives by itself;
/// - `-fdebug-prefix-map=ROOT=` and `-fmacro-prefix-map=ROOT=` first, so that debug
///   information and `__FILE__` name the client's paths (gcc tries the maps given last
///   first, so the client's own maps, moved into the root, still win). gcc records neither
///   option in `DW_AT_producer`.
pub fn pump_argv(argv: &[String], root: &str, output: &str, deps: &str) -> Vec<String> {
    let Ok(items) = cmdline::scan(argv) else {
        return argv.to_vec();
    };
    let into_root = |value: &str| {
        if value.starts_with('/') {
            format!("{root}{value}")
        } else {
            value.to_string()
        }
    };
    let mut out = vec![
        argv[0].clone(),
        format!("-fdebug-prefix-map={root}="),
        format!("-fmacro-prefix-map={root}="),
    ];
    let (mut has_md, mut has_target, mut client_output) = (false, false, None);
    for item in &items {
        let arg = &argv[item.at()];
        let Some(row) = item.row() else {
            out.push(into_root(arg));
            continue;
        };
        if let Some(map) = PREFIX_MAPS.iter().find(|m| arg.starts_with(**m)) {
            if arg[map.len()..].starts_with('/') {
                out.push(format!("{map}{root}{}", &arg[map.len()..]));
                continue;
            }
        }
        match row.role {
            Role::Output => {
                client_output = Some(item.value(argv).to_string());
                out.push("-o".into());
                out.push(output.into());
            }
            Role::DepsFile => {}
            Role::DepsBesideOutput => {
                has_md = true;
                out.push(arg.clone());
            }
            Role::DepsTarget => {
                has_target = true;
                out.extend_from_slice(item.span(argv));
            }
            _ if cmdline::PATH_OPTIONS.contains(&row.name) => {
                out.extend(item.with_value(argv, &into_root(item.value(argv))))
            }
            _ => out.extend_from_slice(item.span(argv)),
        }
    }
    if !has_md {
        out.push("-MMD".into());
    }
    out.push("-MF".into());
    out.push(deps.into());
    if let (false, Some(target)) = (has_target, client_output) {
        out.push("-MQ".into());
        out.push(target);
    }
    out
}

/// The name in the `#line 1 "NAME"` line that an include server puts before a file found
/// through an absolute directory, and the line's length: so that `__FILE__` names the
/// client's path on a daemon that does not map the root away, as distcc 3.4's does not.
/// Ours maps it (`-fmacro-prefix-map`), and the marker would make clang describe the file
/// differently in its debug information than a local compile does (a directory and a base
/// name instead of the path, and under DWARF 5 no file checksums at all), and may name
/// another compile's path to the file. Without the marker, the next line is line 1 either
/// way, and the compiler names the file as the client's did, by the path it was found
/// through. It is dropped when it names the file itself (from any client) or when our
/// client says the include server put it there ([`JobRoot::mark`]).
fn line_marker(data: &[u8]) -> Option<(&str, usize)> {
    const START: &[u8] = b"#line 1 \"";
    let rest = data.strip_prefix(START)?;
    let end = memchr::memchr(b'\n', rest)?;
    let name = rest[..end].strip_suffix(b"\"")?;
    Some((std::str::from_utf8(name).ok()?, START.len() + end + 1))
}

/// What the compiler printed in the root, as it would have printed it on the client: the
/// root removed before every path that starts with it, so that a warning about a file
/// named by an absolute path (as CMake names every source) names the client's file, not
/// the job's directory. distcc 3.4 passes its root through; the root is a fresh random
/// name, so nothing else can contain it.
pub fn client_text(text: Vec<u8>, root: &str) -> Vec<u8> {
    let needle = format!("{root}/");
    if memchr::memmem::find(&text, needle.as_bytes()).is_none() {
        return text;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = &text[..];
    while let Some(at) = memchr::memmem::find(rest, needle.as_bytes()) {
        out.extend_from_slice(&rest[..at]);
        // The path's own leading slash stays.
        rest = &rest[at + needle.len() - 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// The widest line gcc writes in a dependency file (`deps_write` in libcpp).
const DEPS_COLUMNS: usize = 72;

/// The widest line clang writes (`DependencyFileGenerator::outputDependencyFile`).
const CLANG_DEPS_COLUMNS: usize = 75;

/// The dependency file the compiler wrote in the root, as the client's own compiler would
/// have written it: the root removed from every path (as distcc 3.4 does), then the first
/// rule wrapped again at the compiler's width, since the paths are now shorter (`clang`
/// wraps its own way). A file not shaped as expected keeps its lines.
pub fn client_deps(text: &[u8], root: &str, clang: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(text).replace(root, "");
    let Some((first, rest)) = split_first_rule(&text) else {
        return text.into_bytes();
    };
    let words = rule_words(first);
    let Some(colon) = words
        .iter()
        .position(|w| w.ends_with(':') && !w.ends_with("\\:"))
    else {
        return text.into_bytes();
    };
    let targets: Vec<&str> = (0..=colon)
        .map(|i| match i == colon {
            true => &words[i][..words[i].len() - 1],
            false => &words[i][..],
        })
        .collect();
    let files = &words[colon + 1..];
    let mut out = match clang {
        true => clang_rule(&targets, files),
        false => gcc_rule(&targets, files),
    };
    out.push('\n');
    out.push_str(rest);
    out.into_bytes()
}

/// libcpp's `make_write_name`: a blank before every word but the first, and a
/// continuation instead when the word would pass the width.
fn gcc_rule(targets: &[&str], files: &[String]) -> String {
    let mut out = String::new();
    let mut col = 0;
    let last = targets.len() - 1;
    let words = targets
        .iter()
        .copied()
        .chain(files.iter().map(String::as_str));
    for (i, w) in words.enumerate() {
        if col > 0 {
            if col + w.len() > DEPS_COLUMNS {
                out.push_str(" \\\n");
                col = 0;
            }
            col += 1;
            out.push(' ');
        }
        col += w.len();
        out.push_str(w);
        if i == last {
            out.push(':');
            col += 1;
        }
    }
    out
}

/// clang's: targets continued on lines indented by two, files by one, each break made
/// where the next word and a `" \\"` would pass the width (counting a file's name
/// unescaped, as clang does).
fn clang_rule(targets: &[&str], files: &[String]) -> String {
    let mut out = String::new();
    let mut col = 0;
    for t in targets {
        if col == 0 {
            col = t.len();
        } else if col + t.len() + 2 > CLANG_DEPS_COLUMNS {
            col = t.len() + 2;
            out.push_str(" \\\n  ");
        } else {
            col += t.len() + 1;
            out.push(' ');
        }
        out.push_str(t);
    }
    out.push(':');
    col += 1;
    for f in files {
        let n = unescape(f).len();
        if col + n + 1 + 2 > CLANG_DEPS_COLUMNS {
            out.push_str(" \\\n ");
            col = 2;
        }
        out.push(' ');
        out.push_str(f);
        col += n + 1;
    }
    out
}

/// A word of a dependency file as the name it stands for: escaped blanks, `\#` and `$$`
/// undone.
fn unescape(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(' ' | '\t' | '#')) | ('$', Some('$')) => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

/// The files a dependency file's first rule names after its targets, as gcc wrote them
/// (escaped blanks, `\#` and `$$` undone); `None` when it is not shaped as gcc writes it.
pub fn prerequisites(text: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(text).ok()?;
    let (first, _) = split_first_rule(text)?;
    let words = rule_words(first);
    let colon = words
        .iter()
        .position(|w| w.ends_with(':') && !w.ends_with("\\:"))?;
    Some(words[colon + 1..].iter().map(|w| unescape(w)).collect())
}

/// The first rule (its lines joined by their continuations) and what follows it.
fn split_first_rule(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' && (i == 0 || bytes[i - 1] != b'\\') {
            return Some((&text[..i], &text[i + 1..]));
        }
        i += 1;
    }
    None
}

/// The words of a rule: split at blanks and continuations, an escaped blank kept.
fn rule_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            '\\' if chars.peek().is_some_and(|n| *n == ' ' || *n == '\t') => {
                word.push(c);
                word.extend(chars.next());
            }
            ' ' | '\t' | '\n' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiler_text_names_the_clients_paths() {
        let root = "/tmp/distccd_Ab12";
        let said = b"/tmp/distccd_Ab12/src/a.c:3:1: warning: x\n  from /tmp/distccd_Ab12/i/b.h:1\n";
        assert_eq!(
            client_text(said.to_vec(), root),
            b"/src/a.c:3:1: warning: x\n  from /i/b.h:1\n".to_vec()
        );
        let plain = b"a.c:1:1: warning: /tmp/distccd_Ab12x is not the root\n".to_vec();
        assert_eq!(client_text(plain.clone(), root), plain);
    }

    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn prerequisites_are_read_as_gcc_escapes_them() {
        let d = b"a.o b.o: a.c /usr/include/x\\ y.h \\\n  in$$c\\#.h\nx.h:\n";
        assert_eq!(
            prerequisites(d).unwrap(),
            ["a.c", "/usr/include/x y.h", "in$c#.h"]
        );
        assert_eq!(prerequisites(b"no rule"), None);
    }

    #[test]
    fn argv_moves_paths_into_the_root() {
        let got = pump_argv(
            &v(
                "gcc -c /w/a.c -I/abs/inc -I rel -isystem /s -include /w/f.h -MD -MF x.d \
                -o a.o -fdebug-prefix-map=/w=. -DX=/y",
            ),
            "/R",
            "/t/out.o",
            "/t/out.d",
        );
        assert_eq!(
            got,
            v(
                "gcc -fdebug-prefix-map=/R= -fmacro-prefix-map=/R= -c /R/w/a.c -I/R/abs/inc \
               -I rel -isystem /R/s -include /R/w/f.h -MD -o /t/out.o \
               -fdebug-prefix-map=/R/w=. -DX=/y -MF /t/out.d -MQ a.o"
            )
        );
        let got = pump_argv(&v("gcc -c a.c -o a.o -MT t"), "/R", "/o", "/d");
        assert_eq!(
            got,
            v("gcc -fdebug-prefix-map=/R= -fmacro-prefix-map=/R= -c a.c -o /o -MT t -MMD -MF /d")
        );
    }

    #[test]
    fn policy_sees_all_but_the_pump_options() {
        assert_eq!(
            for_policy(&v(
                "gcc -include x.h -c a.c -MD -MF d -MTt -o -include -fplugin=p"
            )),
            v("gcc -c a.c -o -include -fplugin=p")
        );
    }

    #[test]
    fn deps_are_wrapped_again() {
        let h = "/tmp/pd/a_rather_long_directory_name/include_dir/header_number_";
        let local = format!(
            "t.o: t.c /usr/include/stdc-predef.h \\\n {h}1.h \\\n {h}2.h \\\n \
             /usr/include/features.h /usr/include/features-time64.h\n{h}1.h:\n"
        );
        let root = "/tmp/distccd_XXXXXX";
        let remote = format!(
            "t.o: t.c /usr/include/stdc-predef.h \\\n {root}{h}1.h \\\n {root}{h}2.h \\\n \
             /usr/include/features.h \\\n /usr/include/features-time64.h\n{root}{h}1.h:\n"
        );
        assert_eq!(
            String::from_utf8(client_deps(remote.as_bytes(), root, false)).unwrap(),
            local
        );
        assert_eq!(
            String::from_utf8(client_deps(local.as_bytes(), root, false)).unwrap(),
            local
        );
    }

    #[test]
    fn only_the_markers_our_client_names_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let file = |name: &str, data: &[u8]| ReceivedFile {
            name: name.into(),
            content: Received::File(data.to_vec()),
        };
        let body = |root: &JobRoot, name: &str| std::fs::read(root.inside(name)).unwrap();
        let own = b"#line 1 \"/w/own.c\"\nint a;\n";
        let other = b"#line 1 \"/w/link/b.h\"\nint b;\n";
        // From distcc 3.4's client (no list): a marker naming the file itself goes.
        let root = JobRoot::create(tmp.path()).unwrap();
        root.add(&file("/w/own.c", own)).unwrap();
        root.add(&file("/w/real/b.h", other)).unwrap();
        assert_eq!(body(&root, "/w/own.c"), b"int a;\n");
        assert_eq!(body(&root, "/w/real/b.h"), other);
        // From ours: those it names go, whatever they name, and no other.
        let root = JobRoot::create(tmp.path()).unwrap();
        root.add(&file(crate::wire::LINE_MARKED, b"/w/real/b.h\n"))
            .unwrap();
        root.add(&file("/w/own.c", own)).unwrap();
        root.add(&file("/w/real/b.h", other)).unwrap();
        assert_eq!(body(&root, "/w/own.c"), own);
        assert_eq!(body(&root, "/w/real/b.h"), b"int b;\n");
        assert!(!Path::new(&root.inside(crate::wire::LINE_MARKED)).exists());
        let long = vec![b'x'; crate::wire::MAX_LIST + 1];
        assert!(root.add(&file(crate::wire::LINE_MARKED, &long)).is_err());
    }

    #[test]
    fn line_markers_are_read_whole_or_not_at_all() {
        let own = b"#line 1 \"/w/inc/a.h\"\nint a;\n";
        assert_eq!(line_marker(own), Some(("/w/inc/a.h", own.len() - 7)));
        let generated = b"#line 1 \"parse.y\"\nint y;\n";
        assert_eq!(
            line_marker(generated),
            Some(("parse.y", generated.len() - 7))
        );
        for not in [
            &b"#line 2 \"a.h\"\n"[..],
            b"#line 1 \"a.h\n",
            b"#line 1 \"a.h\"",
        ] {
            assert_eq!(line_marker(not), None);
        }
    }

    #[test]
    fn clang_deps_are_wrapped_as_clang_wraps_them() {
        // What clang 14 writes for Lua's lapi.c.
        let local = "lapi.o: lapi.c lprefix.h lua.h luaconf.h lapi.h llimits.h lstate.h \\\n  \
                     lobject.h ltm.h lzio.h lmem.h ldebug.h ldo.h lfunc.h lgc.h lstring.h \\\n  \
                     ltable.h lundump.h lvm.h\n";
        assert_eq!(
            String::from_utf8(client_deps(local.as_bytes(), "/R", true)).unwrap(),
            local
        );
        // What it writes with three -MT, -MP and a long absolute name (the test's root
        // prepended to it in the daemon's copy).
        let h = "/tmp/pd/a_rather_long_directory_name/include_dir/header_number_";
        let local = format!(
            "a_long_object_name_for_the_first_target.o second_target.o \\\n  \
             third_target_with_a_longer_name.o: t.c \\\n  \
             a_rather_long_directory_name/include_dir/header_number_1.h \\\n  \
             {h}2.h\n\na_rather_long_directory_name/include_dir/header_number_1.h:\n\n{h}2.h:\n"
        );
        let root = "/tmp/distccd_XXXXXX";
        let remote = local.replace(h, &format!("{root}{h}"));
        assert_ne!(remote, local);
        assert_eq!(
            String::from_utf8(client_deps(remote.as_bytes(), root, true)).unwrap(),
            local
        );
    }

    #[test]
    fn names_are_confined() {
        let tmp = tempfile::tempdir().unwrap();
        let root = JobRoot::create(tmp.path()).unwrap();
        let file = |name: &str, data: &[u8]| ReceivedFile {
            name: name.into(),
            content: Received::File(data.to_vec()),
        };
        let link = |name: &str, target: &str| ReceivedFile {
            name: name.into(),
            content: Received::Link(target.into()),
        };
        let depth = root.path().split('/').filter(|c| !c.is_empty()).count();
        assert_eq!(root.add(&file("/w/a.c", b"int a;\n")), Ok(()));
        assert_eq!(root.add(&link("/w/b.h", "a.h")), Ok(()));
        assert_eq!(root.add(&link("/w/abs", "/w")), Ok(()));
        assert_eq!(root.add(&link("/w/up", "../w/a.c")), Ok(()));
        let sys = format!("{}usr/include", "../".repeat(20 + 2));
        assert_eq!(root.add(&link("/usr/include", &sys)), Ok(()));
        assert_eq!(root.add(&file("/w/forcing_technique_271828", b"")), Ok(()));
        assert_eq!(
            root.add(&file("/w/abs/forcing_technique_271828", b"")),
            Ok(())
        );
        for bad in [
            file("/w/../x", b""),
            file("w/x", b""),
            file("/", b""),
            file("/w/a.c", b"again"),
            file("/w/a.c/x", b""),
            file("/w", b""),
            file("/w/abs/x", b"through a link"),
            file("/usr/include/x.h", b"through the system link"),
            link("/w/esc", "../../etc"),
            link("/w/esc2", "/w/../../etc"),
            link("/w/esc3", "abs/../../../etc"),
            link("/w/esc4", &format!("{}etc", "../".repeat(depth + 1))),
            link(
                "/usr/lib",
                &format!("{}usr/include", "../".repeat(depth + 1)),
            ),
            link("/usr/short", &format!("{}usr/short", "../".repeat(depth))),
        ] {
            assert!(root.add(&bad).is_err(), "{bad:?}");
        }
        let p = root.path().to_string();
        assert_eq!(root.dir("/w/sub").unwrap(), format!("{p}/w/sub"));
        // Through a link sent, where it leads in the root (a missing directory made
        // there); never out of the root, nor into a file.
        assert_eq!(root.dir("/w/abs/new").unwrap(), format!("{p}/w/abs/new"));
        assert!(Path::new(&format!("{p}/w/new")).is_dir());
        assert!(root.dir("/usr/include/sys").is_err());
        assert!(root.dir("/w/up/x").is_err());
        assert!(root.dir("/w/a.c").is_err());
        drop(root);
        assert!(!Path::new(&p).exists());
    }
}
