//! Direct mode's manifests: what a compile read, so that the same command can later be
//! answered without running the preprocessor.
//!
//! A manifest is kept under a key of the command line, the working directory and the
//! source. It holds a few candidates, newest first, each the state of the files that
//! decided one preprocessed text, with the key of that text's result:
//!
//! - every file the preprocessor read (the source, and the files its line markers
//!   entered), by the sum of its content, or by its identity under the compiler's own
//!   directories;
//! - every name each of those files may look for (`#include`, `#include_next`,
//!   `#import`, `__has_include`, taken or not, and the `-include` files), in every place
//!   it may look: beside the file when quoted, then each directory of the search chain,
//!   existing or not. An angled name stops at the first directory that has the file,
//!   where the compiler's search stops too (not an `-iquote` one, which `<x.h>` skips, nor
//!   one the compiler searches later in the chain, see [`Recorder::stops`]); a quoted name,
//!   and one some file asks for with `#include_next` (which may search from any place on),
//!   go through every directory. Each place is known by whether a file is there (a file there that
//!   was not read, and may be a copy `#pragma once` skipped, by its content too);
//!   under the compiler's own directories, by the identity of the directory. A header
//!   created earlier on the path (which ccache and sccache do not see), in a search
//!   directory that did not exist, or where a guarded header was found before, changes
//!   one of these, and the candidate no longer holds.
//!
//! A candidate is not made when the text has no line markers (`-P`), a name is made by a
//! macro, a file uses `#embed` or the time macros, or one changed after the preprocessor
//! started.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::key::{hex, Key};
use super::scans::{Scan, Scans};
use super::sums::{self, Sums};
use crate::include::token::{FxMap, FxSet};

/// The most candidates a manifest keeps (a header that flips between two versions, a
/// file generated anew each build).
const MAX_CANDIDATES: usize = 8;
const HEADER: &str = "distcc-rs manifest 1";

/// One state of the files that decided a preprocessed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What must still be true of each path.
    pub facts: Vec<(String, Fact)>,
    /// The key of the result.
    pub result: Key,
    /// The dependency file the command wrote, if any.
    pub deps: Option<Vec<u8>>,
}

/// What a candidate needs of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// A file read: the BLAKE3 sum of its content.
    Content([u8; 32]),
    /// A file read under one of the compiler's own directories: its identity. Such a file
    /// changes with a package, which gives it a new inode or times; reading and hashing
    /// hundreds of them for every hit would cost more than the rest of it.
    Stat(Ident),
    /// A path looked up, and whether a file was there.
    Exists(bool),
    /// A directory of the compiler's own whose names decided lookups: its identity, which
    /// changes when a name is created or removed in it.
    Dir(Ident),
    /// Another directory, where names looked up were not: its identity then. Not a
    /// condition itself; while it holds, those names are still not there.
    Listed(Ident),
    /// A path looked up where nothing was: the name, or a directory on its way, was not
    /// in the directory of the fact of this index (a [`Fact::Listed`]). When that
    /// directory changed (a build writes objects beside its sources), the path is looked
    /// up again.
    Under(usize),
}

/// As a manifest writes it, before the path.
impl std::fmt::Display for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ident = |f: &mut std::fmt::Formatter<'_>, name: &str, i: &Ident| {
            let [a, b, c, d, e] = i.0;
            write!(f, "{name} {a} {b} {c} {d} {e}")
        };
        match self {
            Fact::Content(sum) => write!(f, "content {}", hex(sum)),
            Fact::Stat(i) => ident(f, "stat", i),
            Fact::Exists(there) => write!(f, "exists {}", u8::from(*there)),
            Fact::Dir(i) => ident(f, "dir", i),
            Fact::Listed(i) => ident(f, "listed", i),
            Fact::Under(k) => write!(f, "under {k}"),
        }
    }
}

/// A file's or directory's device, inode, size, mtime and ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident([i128; 5]);

impl Ident {
    pub fn of(m: &fs::Metadata) -> Ident {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ident([
            i128::from(m.dev()),
            i128::from(m.ino()),
            i128::from(m.size()),
            ns(m.mtime(), m.mtime_nsec()),
            ns(m.ctime(), m.ctime_nsec()),
        ])
    }

    /// As bytes, for keys.
    pub fn bytes(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        for (o, n) in out.chunks_mut(16).zip(self.0) {
            o.copy_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// The last change, and whether it is recent next to `started_ns`.
    pub fn recent(&self, started_ns: i128) -> bool {
        let [.., mtime, ctime] = self.0;
        mtime.max(ctime) >= started_ns - margin(mtime, ctime)
    }
}

/// The candidates of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub candidates: Vec<Candidate>,
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn unhex_vec(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl Manifest {
    /// As text: one line per fact, paths last (they contain no newline: see
    /// [`Recorder::candidate`]).
    pub fn encode(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut out = format!("{HEADER}\n");
        // Writing to a `String` cannot fail.
        for c in &self.candidates {
            let _ = writeln!(out, "result {}", c.result.hex());
            for (path, fact) in &c.facts {
                let _ = writeln!(out, "{fact} {path}");
            }
            if let Some(deps) = &c.deps {
                let _ = writeln!(out, "deps {}", hex(deps));
            }
        }
        out.into_bytes()
    }

    pub fn decode(data: &[u8]) -> Option<Manifest> {
        // Read at every direct look-up, thousands of lines: bytes, split with memchr.
        let first = memchr::memchr(b'\n', data)?;
        if &data[..first] != HEADER.as_bytes() {
            return None;
        }
        let mut m = Manifest::default();
        let mut at = first + 1;
        while at < data.len() {
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |n| at + n);
            let line = &data[at..end];
            at = end + 1;
            let space = memchr::memchr(b' ', line)?;
            let (what, rest) = (&line[..space], &line[space + 1..]);
            if what == b"result" {
                m.candidates.push(Candidate {
                    facts: Vec::new(),
                    result: Key(unhex::<32>(rest)?),
                    deps: None,
                });
                continue;
            }
            let c = m.candidates.last_mut()?;
            if what == b"deps" {
                c.deps = Some(unhex_vec(rest)?);
                continue;
            }
            let words = if matches!(what, b"stat" | b"dir" | b"listed") {
                5
            } else {
                1
            };
            let mut rest = rest;
            let mut values = [&b""[..]; 5];
            for v in values.iter_mut().take(words) {
                let space = memchr::memchr(b' ', rest)?;
                *v = &rest[..space];
                rest = &rest[space + 1..];
            }
            let path = String::from_utf8(rest.to_vec()).ok()?;
            let number = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<i128>().ok();
            let ident = || -> Option<Ident> {
                let mut n = [0i128; 5];
                for (o, v) in n.iter_mut().zip(&values) {
                    *o = number(v)?;
                }
                Some(Ident(n))
            };
            let fact = match what {
                b"content" => Fact::Content(unhex::<32>(values[0])?),
                b"stat" => Fact::Stat(ident()?),
                b"exists" => Fact::Exists(values[0] == b"1"),
                b"dir" => Fact::Dir(ident()?),
                b"listed" => Fact::Listed(ident()?),
                b"under" => Fact::Under(usize::try_from(number(values[0])?).ok()?),
                _ => return None,
            };
            c.facts.push((path, fact));
        }
        Some(m)
    }

    /// The first candidate that holds now; `known` has the sums of files that did not
    /// change.
    pub fn find(&self, known: &Sums) -> Option<&Candidate> {
        let mut sums = FxMap::default();
        self.candidates.iter().find(|c| c.holds(&mut sums, known))
    }

    /// Puts `c` first, dropping an older candidate with the same result and the oldest
    /// beyond the limit.
    pub fn add(&mut self, c: Candidate) {
        self.candidates.retain(|old| old.result != c.result);
        self.candidates.insert(0, c);
        self.candidates.truncate(MAX_CANDIDATES);
    }
}

impl Candidate {
    /// Whether every fact is still true, the cheap ones checked first; `sums` keeps the
    /// files' sums across candidates.
    fn holds<'a>(&'a self, sums: &mut FxMap<&'a str, Option<[u8; 32]>>, known: &Sums) -> bool {
        let ident = |p: &str| fs::metadata(p).ok().map(|m| Ident::of(&m));
        // Whether each listed directory is as it was, and whether it is a file now, once
        // asked.
        let mut seen: FxMap<usize, (bool, bool)> = FxMap::default();
        let mut listed = |k: usize| {
            *seen.entry(k).or_insert_with(|| match self.facts.get(k) {
                Some((d, Fact::Listed(i))) => {
                    let m = fs::metadata(d).ok();
                    let now = m.as_ref().map(Ident::of);
                    (now == Some(*i), m.is_some_and(|m| m.is_file()))
                }
                _ => (false, false),
            })
        };
        self.facts
            .iter()
            .enumerate()
            .all(|(k, (p, fact))| match fact {
                Fact::Exists(there) => is_file(p) == *there,
                Fact::Stat(i) | Fact::Dir(i) => ident(p) == Some(*i),
                Fact::Under(k) => listed(*k).0 || !is_file(p),
                // It may have been looked up as a name too, where it was no file.
                Fact::Listed(_) => !listed(k).1,
                Fact::Content(_) => true,
            })
            && self.facts.iter().all(|(p, fact)| match fact {
                Fact::Content(sum) => {
                    let now = sums.entry(p.as_str()).or_insert_with(|| known.sum(p));
                    now.as_ref() == Some(sum)
                }
                _ => true,
            })
    }
}

/// Whether `path` is a file the preprocessor would open (through links).
pub fn is_file(path: &str) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// A file a preprocessed text entered, and the index (in the same list) of the one that
/// included it (`None`: the source, or the command line).
pub type Entered = Vec<(String, Option<usize>)>;

/// The files a preprocessed text entered (line markers with flag 1, nested by those with
/// flag 2), in order; `None` when the text has no marker at all (`-P`), or one that
/// cannot be read: then what the preprocessor read is not known.
pub fn entered(text: &[u8]) -> Option<Entered> {
    let mut out = Vec::new();
    // What is being read, innermost last: an entered file, or `None` for clang's
    // `<built-in>` and `<command line>`, which it enters and leaves as files (what they
    // include comes from the command line).
    let mut stack: Vec<Option<usize>> = Vec::new();
    let mut markers = 0;
    // Where lines starting with `# ` start: the markers are among them.
    let starts = text
        .starts_with(b"# ")
        .then_some(0)
        .into_iter()
        .chain(memchr::memmem::find_iter(text, b"\n# ").map(|at| at + 1));
    for at in starts {
        let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |n| at + n);
        let line = &text[at..end];
        let digits = line[2..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            continue;
        }
        let (path, flags) = marker(line)?;
        markers += 1;
        if flags.contains(&1) {
            if path.starts_with('<') && path.ends_with('>') {
                stack.push(None);
            } else {
                out.push((path, stack.last().copied().flatten()));
                stack.push(Some(out.len() - 1));
            }
        } else if flags.contains(&2) {
            stack.pop();
        }
    }
    (markers > 0).then_some(out)
}

/// A line marker `# LINE "PATH" FLAGS...`: its path and flags.
fn marker(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let rest = line.strip_prefix(b"# ")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(b" \"")?;
    // The path with gcc's escapes (`\\`, `\"`) undone; any other is not gcc's.
    let mut path = Vec::new();
    let mut i = 0;
    loop {
        match *rest.get(i)? {
            b'"' => break,
            b'\\' => {
                let c = *rest.get(i + 1)?;
                if c != b'\\' && c != b'"' {
                    return None;
                }
                path.push(c);
                i += 2;
            }
            c => {
                path.push(c);
                i += 1;
            }
        }
    }
    let mut flags = Vec::new();
    for f in rest[i + 1..]
        .split(|c| *c == b' ')
        .filter(|f| !f.is_empty())
    {
        flags.push(std::str::from_utf8(f).ok()?.parse().ok()?);
    }
    Some((String::from_utf8(path).ok()?, flags))
}

/// How a file names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// `"x.h"`: beside the file first, then the search chain.
    Quoted,
    /// `<x.h>`: the search chain.
    Angled,
    /// `#include_next <x.h>` and `__has_include_next(<x.h>)`: the chain after the place
    /// the file asking was found in, which may be any place. (A quoted one is taken as
    /// [`Named::Quoted`], which looks in every place too: in a file not found along the
    /// chain, GCC takes `#include_next "x.h"` as `#include "x.h"`.)
    Next,
}

/// Every name a file may look for: its `#include`, `#include_next` and `#import`
/// directives and its `__has_include`/`__has_include_next` probes, whether or not their
/// `#if` is taken (more names than it looks for cost a miss at worst, never a wrong hit);
/// and whether it has an `#include` whose name a macro makes (`#include
/// TRACE_INCLUDE(x)`, in the kernel). `None` when a probe's name is made by a macro, or
/// the file uses `#embed` (gcc 15), whose file no line marker names.
pub fn names(content: &[u8]) -> Option<(Vec<(String, Named)>, bool)> {
    let mut out = Vec::new();
    let mut computed = false;
    let blank = |s: &[u8]| s.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    for at in memchr::memchr_iter(b'#', content) {
        // A directive: the `#` first on its line.
        let line_start = content[..at]
            .iter()
            .rposition(|c| *c == b'\n')
            .map_or(0, |n| n + 1);
        if blank(&content[line_start..]) != at - line_start {
            continue;
        }
        let mut rest = &content[at + 1..];
        rest = &rest[blank(rest)..];
        let word_len = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let next = match &rest[..word_len] {
            b"include" | b"import" => false,
            b"include_next" => true,
            b"embed" => return None,
            _ => continue,
        };
        rest = &rest[word_len..];
        rest = &rest[blank(rest)..];
        let Some((name, quoted)) = operand(rest) else {
            computed = true;
            continue;
        };
        out.push((name, kind(quoted, next)));
    }
    if finder(HAS_EMBED).find(content).is_some() {
        return None;
    }
    for at in finder(HAS_INCLUDE).find_iter(content) {
        let mut rest = &content[at + b"__has_include".len()..];
        let next = rest.starts_with(b"_next");
        if next {
            rest = &rest[5..];
        }
        let trim = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_whitespace()).count();
        rest = &rest[trim(rest)..];
        // `#ifdef __has_include`, `defined(__has_include)`: no probe.
        let Some(r) = rest.strip_prefix(b"(") else {
            continue;
        };
        let (name, quoted) = operand(&r[trim(r)..])?;
        out.push((name, kind(quoted, next)));
    }
    Some((out, computed))
}

fn kind(quoted: bool, next: bool) -> Named {
    match (quoted, next) {
        (true, _) => Named::Quoted,
        (false, true) => Named::Next,
        (false, false) => Named::Angled,
    }
}

/// A header name at the start of `s`: `"x.h"` or `<x.h>`, and whether it is quoted.
fn operand(s: &[u8]) -> Option<(String, bool)> {
    let (close, quoted) = match s.first() {
        Some(b'<') => (b'>', false),
        Some(b'"') => (b'"', true),
        _ => return None,
    };
    let len = s[1..].iter().position(|c| *c == close || *c == b'\n')?;
    if s[1 + len] != close {
        return None;
    }
    Some((String::from_utf8(s[1..1 + len].to_vec()).ok()?, quoted))
}

const HAS_EMBED: usize = 0;
const HAS_INCLUDE: usize = 1;
const PRAGMA_ONCE: usize = 2;
const IMPORT: usize = 3;

/// The searcher for one of the words every header read is searched for, made once per
/// process: a kernel unit reads hundreds of headers.
fn finder(which: usize) -> &'static memchr::memmem::Finder<'static> {
    use memchr::memmem::Finder;
    static FINDERS: std::sync::LazyLock<[Finder<'static>; 4]> = std::sync::LazyLock::new(|| {
        ["__has_embed", "__has_include", "pragma once", "import"].map(Finder::new)
    });
    &FINDERS[which]
}

/// `path` without its `.` components, which name the same file lexically.
fn without_dots(path: &str) -> String {
    let rooted = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| *p != "." && !p.is_empty())
        .collect();
    format!("{}{}", if rooted { "/" } else { "" }, parts.join("/"))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Whether `path` is under one of `dirs`.
pub fn under_any(dirs: &[String], path: &str) -> bool {
    dirs.iter().any(|d| {
        let d = d.trim_end_matches('/');
        !d.is_empty() && path.starts_with(d) && path[d.len()..].starts_with('/')
    })
}

/// Makes a candidate out of what the preprocessor entered and the search chain (every
/// directory in order: `-iquote`, `-I`, `-isystem`, the compiler's, `-idirafter`, as
/// written, existing or not).
pub struct Recorder<'a> {
    /// The search chain as the command line gives it: `-iquote`, `-I`, `-isystem`, the
    /// compiler's own, `-idirafter` directories.
    pub chain: &'a [String],
    /// How many of `chain`'s first directories are `-iquote` ones, which `<x.h>` does not
    /// search.
    pub quoted: usize,
    /// The compiler's own directories (also in `chain`): what is under them is known by
    /// its identity (see [`Fact`]).
    pub system: &'a [String],
    /// When the preprocessor started (ns since the epoch): a file changed since is not
    /// recorded, its content may not be what was read.
    pub started_ns: i128,
    /// The sum of the source as the key of the manifest has it.
    pub source_sum: [u8; 32],
    /// The `-include` and `-imacros` names: looked for in the working directory first,
    /// then the chain.
    pub forced: &'a [String],
    /// Where the sums of the files read are remembered, for the next check.
    pub sums: &'a Sums,
    /// Where what each file read names is remembered, for the next candidate.
    pub scans: &'a Scans,
}

/// The facts of a candidate being made, each path once.
#[derive(Default)]
struct Facts {
    list: Vec<(String, Fact)>,
    /// Index in `list` of each path's fact.
    at: FxMap<String, usize>,
    /// Directories found missing, walking up from a lookup.
    missing: FxSet<String>,
    /// Set when a fact cannot be trusted: no candidate then.
    broken: bool,
}

impl Recorder<'_> {
    /// The candidate for a text whose preprocessor entered `entered` from `source`;
    /// `None` when a direct hit could not be trusted (see the module comment).
    ///
    /// Every file read is known by its content (or identity), and every name each of them
    /// may look for, in every place it may look (beside it when quoted, then each
    /// directory of the chain, up to the compiler's choice for an angled name), by
    /// whether a file is there now; a file there that was not
    /// read is known by its content too when it may be a copy that `#pragma once` skipped.
    pub fn candidate(
        &self,
        source: &str,
        entered: &[(String, Option<usize>)],
        result: Key,
        deps: Option<Vec<u8>>,
    ) -> Option<Candidate> {
        let mut facts = Facts::default();
        let mut content = Vec::new();
        let mut to_read: Vec<String> = vec![source.to_string()];
        to_read.extend(entered.iter().map(|(p, _)| p.clone()));
        // What each file entered (the source's: from the source or the command line),
        // for includes whose names macros make.
        let mut children: FxMap<&str, Vec<&str>> = FxMap::default();
        for (path, parent) in entered {
            let parent = parent.map_or(source, |i| entered[i].0.as_str());
            children.entry(parent).or_default().push(path);
        }
        for name in self.forced {
            let places =
                std::iter::once(name.clone()).chain(self.chain.iter().map(|d| join(d, name)));
            for place in places {
                if let Some(found) = self.look(place, &mut facts) {
                    to_read.push(found);
                }
            }
        }
        let mut found_only = Vec::new();
        // Names already looked for along the chain, and whether in all of its places:
        // those places depend on the name alone, and a kernel unit names `linux/types.h`
        // in hundreds of headers.
        let mut chained: FxMap<String, bool> = FxMap::default();
        let stops = self.stops();
        let mut once_sizes = FxSet::default();
        let mut k = 0;
        while k < to_read.len() {
            let path = to_read[k].clone();
            k += 1;
            if facts
                .at
                .get(&path)
                .is_some_and(|&i| !matches!(facts.list[i].1, Fact::Exists(_) | Fact::Under(_)))
            {
                continue;
            }
            let (fact, scan, size) = self.read(&path, &mut content)?;
            if k == 1 && fact != Fact::Content(self.source_sum) {
                // Not the source the manifest's key was made of.
                return None;
            }
            facts.set(path.clone(), fact);
            if scan.once {
                once_sizes.insert(size);
            }
            let Scan {
                names: mut named,
                computed,
                ..
            } = scan;
            if computed {
                // The name is not known, but the file it found is among those this one
                // entered: every name it could have been (each tail of its path), in
                // every place, quoted.
                for child in children.get(path.as_str()).into_iter().flatten() {
                    let parts: Vec<&str> = child.split('/').collect();
                    for k in 0..parts.len() {
                        named.push((parts[k..].join("/"), Named::Quoted));
                    }
                }
            }
            for (name, named) in named {
                if named == Named::Quoted {
                    self.look_for(join(dir_of(&path), &name), &mut facts, &mut found_only);
                }
                // A quoted name is searched for along the chain even when it is found
                // beside the file: the chain's places then do not depend on a header
                // created beside a source, and neither does the key of a pump job, which
                // holds the facts of the compiler's own directories (`look_up_pump`).
                let all = named != Named::Angled;
                match chained.get(&name) {
                    Some(&done_all) if done_all || !all => continue,
                    _ => chained.insert(name.clone(), all),
                };
                for (dir, &stop) in self.chain.iter().zip(&stops) {
                    let there = self.look_for(join(dir, &name), &mut facts, &mut found_only);
                    if there && stop && !all {
                        break;
                    }
                }
            }
        }
        // Files found that the preprocessor did not enter (an `#if` not taken, or a copy
        // of one read that `#pragma once` or `#import` skipped): what they include does
        // not matter, but a possible copy must stay one. A copy has the size of a file
        // that was read once-only.
        // Most found files were read, often under another spelling (`./include/x.h`
        // entered, `include/x.h` found): those are known by their content already.
        let read: FxSet<String> = match once_sizes.is_empty() {
            true => Default::default(),
            false => (facts.list.iter())
                .filter(|(_, f)| matches!(f, Fact::Content(_) | Fact::Stat(_)))
                .map(|(p, _)| without_dots(p))
                .collect(),
        };
        for path in found_only {
            if once_sizes.is_empty() || read.contains(&without_dots(&path)) {
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX);
            if once_sizes.contains(&size) {
                let (fact, ..) = self.read(&path, &mut content)?;
                facts.set(path, fact);
            }
        }
        if facts.broken || facts.list.iter().any(|(p, _)| p.contains('\n')) {
            return None;
        }
        Some(Candidate {
            facts: facts.list,
            result,
            deps,
        })
    }

    /// The fact of a file read (its identity under the compiler's own directories, else
    /// the sum of its content), what it names, and its size. `None` when it cannot be
    /// read, changed since the preprocessor started, uses the time macros, or names what
    /// no manifest can hold ([`names`]).
    ///
    /// A version an earlier job read is known from the tables without reading it: the
    /// `stat` asked first is all it costs. Otherwise the file is read (`content` holds it
    /// then), and its sum and scan are remembered.
    fn read(&self, path: &str, content: &mut Vec<u8>) -> Option<(Fact, Scan, u64)> {
        if let Ok(m) = fs::metadata(path) {
            let ident = Ident::of(&m);
            let key = sums::file_key(path, &ident);
            let scan = (!ident.recent(self.started_ns))
                .then(|| self.scans.get(&key))
                .flatten();
            if let Some(scan) = scan {
                let fact = match self.under_system(path) {
                    true => Some(Fact::Stat(ident)),
                    false => self.sums.find(&key).map(Fact::Content),
                };
                if let Some(fact) = fact {
                    return Some((fact, scan, m.len()));
                }
            }
        }
        let file = fs::File::open(path).ok()?;
        content.clear();
        // Through `take`, as `pragmas::loses_pragma` reads: a `File` would ask for its size
        // first, two calls more per header; the identity is asked after the read, so a
        // change made meanwhile shows as recent.
        (&file).take(u64::MAX).read_to_end(content).ok()?;
        let ident = Ident::of(&file.metadata().ok()?);
        if ident.recent(self.started_ns) || crate::toolchain::pragmas::uses_time_macros(content) {
            return None;
        }
        let (names, computed) = names(content)?;
        let once =
            finder(PRAGMA_ONCE).find(content).is_some() || finder(IMPORT).find(content).is_some();
        let scan = Scan {
            names,
            computed,
            once,
        };
        let key = sums::file_key(path, &ident);
        let fact = if self.under_system(path) {
            Fact::Stat(ident)
        } else if let Some(sum) = self.sums.find(&key) {
            // Hashed by an earlier job of the build: the same version.
            Fact::Content(sum)
        } else {
            let sum = *blake3::hash(content).as_bytes();
            self.sums.remember(path, &ident, &sum);
            Fact::Content(sum)
        };
        if !ident.recent(now_ns()) {
            self.scans.put(&key, &scan);
        }
        Some((fact, scan, content.len() as u64))
    }

    fn under_system(&self, path: &str) -> bool {
        under_any(self.system, path)
    }

    /// For each directory of the chain, whether an angled name found there is found
    /// there by the compiler too, so that the places after it need not be looked at:
    /// not in an `-iquote` directory (`<x.h>` skips those), nor in one that comes again
    /// later in the chain (GCC searches an `-I` directory that is also a system one at
    /// the system one's place, and tells directories apart by device and inode).
    fn stops(&self) -> Vec<bool> {
        let ids: Vec<Option<(u64, u64)>> = (self.chain.iter())
            .map(|d| fs::metadata(d).ok().map(|m| (m.dev(), m.ino())))
            .collect();
        let same = |j: usize, k: usize| match (ids[j], ids[k]) {
            (Some(a), Some(b)) => a == b,
            _ => self.chain[j] == self.chain[k],
        };
        (0..self.chain.len())
            .map(|k| k >= self.quoted && !(k + 1..self.chain.len()).any(|j| same(j, k)))
            .collect()
    }

    /// Whether a file is at `place`, as looked up before or now ([`Recorder::look`]); one
    /// found now is added to `found`.
    fn look_for(&self, place: String, facts: &mut Facts, found: &mut Vec<String>) -> bool {
        if let Some(&i) = facts.at.get(&place) {
            return matches!(
                facts.list[i].1,
                Fact::Exists(true) | Fact::Content(_) | Fact::Stat(_)
            );
        }
        match self.look(place, facts) {
            Some(file) => {
                found.push(file);
                true
            }
            None => false,
        }
    }

    /// A lookup of `path`: whether a file is there (a file found is returned, to be read
    /// and known by its content), or, under the compiler's own directories, the identity
    /// of the nearest directory that exists on its way (a name created below changes it).
    fn look(&self, path: String, facts: &mut Facts) -> Option<String> {
        if !self.under_system(&path) {
            if facts.at.contains_key(&path) {
                return None;
            }
            // Under a directory already found missing nothing is there, and what stands for
            // the name is that directory's nearest existing ancestor: no call needed (most
            // of a kernel unit's lookups are in the `-I` directories that lack `linux/`).
            if facts.missing.contains(dir_of(&path)) {
                let fact = self
                    .absent_in(&path, facts)
                    .map_or(Fact::Exists(false), Fact::Under);
                facts.set(path, fact);
                return None;
            }
            // Mostly nothing is there: `lstat` says so in one call.
            let fact = match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self
                    .absent_in(&path, facts)
                    .map_or(Fact::Exists(false), Fact::Under),
                looked => {
                    // A symlink (or a name `lstat` could not answer for): what it leads to.
                    let m = (looked.ok())
                        .filter(|m| !m.file_type().is_symlink())
                        .or_else(|| fs::metadata(&path).ok())
                        .filter(|m| m.is_file());
                    // One created while the preprocessor ran may not be what it saw.
                    facts.broken |= m
                        .as_ref()
                        .is_some_and(|m| Ident::of(m).recent(self.started_ns));
                    Fact::Exists(m.is_some())
                }
            };
            let there = fact == Fact::Exists(true);
            facts.set(path.clone(), fact);
            return there.then_some(path);
        }
        let parent = dir_of(&path).to_string();
        let mut dir = parent.clone();
        loop {
            if let Some(&i) = facts.at.get(&dir) {
                if matches!(facts.list[i].1, Fact::Listed(_)) {
                    // Known as another kind of directory, whose change is no miss.
                    facts.broken = true;
                    return None;
                }
                // Known: a directory, by its identity, or a file in the way.
                let is_dir = matches!(facts.list[i].1, Fact::Dir(_));
                return (is_dir && dir == parent && is_file(&path)).then_some(path);
            }
            if facts.missing.contains(&dir) {
                dir = dir_of(&dir).to_string();
                continue;
            }
            match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {
                    let ident = Ident::of(&m);
                    facts.broken |= ident.recent(self.started_ns);
                    facts.set(dir.clone(), Fact::Dir(ident));
                }
                // A file where a directory would be: the lookup fails while it stays.
                Ok(_) => facts.set(dir.clone(), Fact::Exists(true)),
                Err(_) if dir.len() > 1 && dir.contains('/') => {
                    let up = dir_of(&dir).to_string();
                    facts.missing.insert(dir);
                    dir = up;
                }
                Err(_) => {
                    facts.broken = true;
                    return None;
                }
            }
        }
    }
}

impl Recorder<'_> {
    /// For `path`, which has no entry: the index of the [`Fact::Listed`] of the nearest
    /// directory on its way that exists, which has no entry for the next name on the way.
    /// `None` when that directory changed too recently to stand for its names.
    fn absent_in(&self, path: &str, facts: &mut Facts) -> Option<usize> {
        let mut child = path.to_string();
        loop {
            let dir = match dir_of(&child) {
                "" if child.starts_with('/') => "/".to_string(),
                "" => ".".to_string(),
                d => d.to_string(),
            };
            if let Some(&k) = facts.at.get(&dir) {
                return matches!(facts.list[k].1, Fact::Listed(_)).then_some(k);
            }
            if facts.missing.contains(&dir) {
                child = dir;
                continue;
            }
            match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {
                    let ident = Ident::of(&m);
                    if ident.recent(self.started_ns) {
                        return None;
                    }
                    facts.set(dir, Fact::Listed(ident));
                    return Some(facts.list.len() - 1);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != child => {
                    // Gone too: its own parent says so, unless it is a dangling link.
                    if fs::symlink_metadata(&dir).is_ok() {
                        return None;
                    }
                    facts.missing.insert(dir.clone());
                    child = dir;
                }
                _ => return None,
            }
        }
    }
}

impl Facts {
    /// Sets the fact of `path`: a file read replaces a lookup's "a file is there".
    fn set(&mut self, path: String, fact: Fact) {
        match self.at.get(&path) {
            Some(&i) => {
                if matches!(self.list[i].1, Fact::Exists(_) | Fact::Under(_)) {
                    self.list[i].1 = fact;
                }
            }
            None => {
                self.at.insert(path.clone(), self.list.len());
                self.list.push((path, fact));
            }
        }
    }
}

/// How long before the preprocessor started a file must have last changed for its
/// content to be trusted: a timestamp tick, or a second where stamps are whole seconds.
fn margin(mtime_ns: i128, ctime_ns: i128) -> i128 {
    const NS: i128 = 1_000_000_000;
    if mtime_ns % NS == 0 && ctime_ns % NS == 0 {
        2 * NS
    } else {
        NS / 10
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_markers_give_the_files_entered() {
        let text = b"# 0 \"m.c\"\n# 0 \"<built-in>\"\n# 0 \"<command-line>\"\n\
# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n# 0 \"<command-line>\" 2\n# 1 \"m.c\"\n\
# 1 \"./inc/a.h\" 1\n# 1 \"./inc/c.h\" 1\nint c;\n# 2 \"./inc/a.h\" 2\n# 2 \"m.c\" 2\n\
# 1 \"sub/b\\\\q.h\" 1\n# 3 \"m.c\" 2\n";
        let want = [
            ("/usr/include/stdc-predef.h", None),
            ("./inc/a.h", None),
            ("./inc/c.h", Some(1)),
            ("sub/b\\q.h", None),
        ];
        let want = want.map(|(p, i)| (p.to_string(), i)).to_vec();
        assert_eq!(entered(text), Some(want));
        // clang enters and leaves `<built-in>` and `<command line>` as files.
        let clang = b"# 1 \"m.c\"\n# 1 \"<built-in>\" 1\n# 1 \"<built-in>\" 3\n\
# 361 \"<built-in>\" 3\n# 1 \"<command line>\" 1\n# 1 \"<built-in>\" 2\n\
# 1 \"/w/f.h\" 1\n# 1 \"/w/g.h\" 1\n# 2 \"/w/f.h\" 2\n# 2 \"<built-in>\" 2\n\
# 1 \"m.c\" 2\n# 1 \"/usr/include/stdio.h\" 1 3 4\n# 2 \"m.c\" 2\n";
        let want = [
            ("/w/f.h", None),
            ("/w/g.h", Some(0)),
            ("/usr/include/stdio.h", None),
        ];
        let want = want.map(|(p, i)| (p.to_string(), i)).to_vec();
        assert_eq!(entered(clang), Some(want));
        // `-P`: no markers, nothing known.
        assert_eq!(entered(b"int x;\n"), None);
        // An escape gcc does not write.
        assert_eq!(entered(b"# 1 \"a\\001.h\" 1\n"), None);
    }

    #[test]
    fn every_name_a_file_may_look_for() {
        let text = b"#include \"a.h\"\n  #  include_next <b.h>\n#import <c.h>\n\
/* #include \"d.h\" */\nint x; // #include \"e.h\"\n#if defined __has_include\n\
#if __has_include (<sys/x.h>) && __has_include_next(\"y.h\")\n#endif\n#ifdef __has_include\n";
        let (got, computed) = names(text).unwrap();
        assert!(!computed);
        let want = [
            ("a.h", Named::Quoted),
            ("b.h", Named::Next),
            ("c.h", Named::Angled),
            ("sys/x.h", Named::Angled),
            ("y.h", Named::Quoted),
        ];
        assert_eq!(got, want.map(|(n, k)| (n.to_string(), k)).to_vec());
        assert_eq!(names(b"#include HEADER\n"), Some((Vec::new(), true)));
        assert_eq!(names(b"#if __has_include(HEADER)\n"), None);
        assert_eq!(names(b"#embed \"data.bin\"\n"), None);
    }

    #[test]
    fn a_manifest_survives_a_round_trip() {
        let id = Ident([
            1,
            2,
            3,
            1_700_000_000_123_456_789,
            1_700_000_000_123_456_789,
        ]);
        let m = Manifest {
            candidates: vec![Candidate {
                facts: vec![
                    ("a b.h".into(), Fact::Content([7; 32])),
                    ("/usr/include/stdio.h".into(), Fact::Stat(id)),
                    ("inc/x.h".into(), Fact::Exists(false)),
                    ("y.h".into(), Fact::Exists(true)),
                    ("/usr/local/include".into(), Fact::Dir(id)),
                    ("inc".into(), Fact::Listed(id)),
                    ("inc/z.h".into(), Fact::Under(6)),
                ],
                result: Key([3; 32]),
                deps: Some(b"m.o: m.c a\\ b.h\n".to_vec()),
            }],
        };
        assert_eq!(Manifest::decode(&m.encode()), Some(m));
        assert_eq!(Manifest::decode(b"garbage"), None);
    }
}
