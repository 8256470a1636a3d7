//! The daemon's cache of pump (protocol 3) jobs. A pump job brings its source and headers,
//! but not the compiler's own headers, which are this machine's: the key must stand for
//! those too, and no request says which of them a compile reads.
//!
//! So the key is in two steps, as direct mode's on the client. The first ([`look_up`])
//! holds what was received (every file and link by name and content, in name order), the
//! command line and working directory, this daemon's compiler and version, and the shape
//! of the compiler's own include trees ([`crate::cache::tree`]): a header created or
//! removed anywhere under them is a miss. It names a manifest whose candidates each list
//! the compiler's own headers a compile read, by identity, taken from the dependency file
//! gcc wrote ([`Pending::store`]); a candidate whose headers are all as they were gives
//! the result.
//!
//! That needs a dependency file that names every header, which gcc writes with `-MD`.
//! With `-MMD`, which the daemon also asks for when the client asked for no dependency
//! file (as distcc 3.4's daemon does: its client writes that file to
//! `DEPENDENCIES_OUTPUT`, whose headers are `-MMD`'s), gcc leaves out the system headers.
//! Such a job is kept only when the compiler has no directories of its own (`-nostdinc`,
//! as the kernel builds) and nothing received makes system headers of its own
//! (`-isystem` and the like, `#pragma GCC system_header`, line markers): then every header
//! is named. A file read from outside the root and outside the compiler's trees would not
//! be keyed: such a job is not kept. Nor is a result whose headers changed while it
//! compiled.
//!
//! The store itself is `crate::cache`'s; the plain jobs' key is `job`'s.

use std::path::Path;

use crate::cache::manifest::{self, Candidate, Fact, Ident};
use crate::cache::sums::Sums;
use crate::cache::{key, tree, Cache, Counter, Entry, Key, KeyHasher};
use crate::wire::{Received as Content, ReceivedFile};

/// What a pump request brought, held and summed as it is received.
#[derive(Default)]
pub(super) struct Received {
    /// The files and links, to be written into the job's root on a miss.
    pub files: Vec<ReceivedFile>,
    /// Each file or link: its name, kind and the sum of its content or target.
    sums: Vec<(String, u8, [u8; 32])>,
    /// A file holds `#pragma GCC system_header` or a line marker, either of which makes
    /// what it includes a system header that `-MMD` leaves out.
    pub marked: bool,
}

impl Received {
    pub(super) fn add(&mut self, file: ReceivedFile) {
        let (kind, bytes): (u8, &[u8]) = match &file.content {
            Content::File(data) => {
                self.marked = self.marked || makes_system_headers(data);
                (b'f', data)
            }
            Content::Link(target) => (b'l', target.as_bytes()),
        };
        let sum = *blake3::hash(bytes).as_bytes();
        self.sums.push((file.name.clone(), kind, sum));
        self.files.push(file);
    }
}

/// Whether `text` holds `#pragma GCC system_header`, or a line marker (`# 12 "f.h" 3`),
/// which may say that a system header follows.
fn makes_system_headers(text: &[u8]) -> bool {
    if memchr::memmem::find(text, b"system_header").is_some() {
        return true;
    }
    memchr::memchr_iter(b'#', text).any(|at| {
        let before = &text[..at];
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |n| n + 1);
        let blank = |c: &u8| *c == b' ' || *c == b'\t';
        before[line_start..].iter().all(blank)
            && text[at + 1..]
                .iter()
                .find(|c| !blank(c))
                .is_some_and(u8::is_ascii_digit)
    })
}

/// The request of a pump job, as the cache needs it.
pub(super) struct Job<'a> {
    /// The client's command line and working directory.
    pub argv: &'a [String],
    pub cwd: &'a str,
    /// The root it runs in.
    pub root: String,
    /// The compiler it runs.
    pub compiler: &'a Path,
}

/// A job looked up and missed: what storing its result needs.
pub(super) struct Pending<'a> {
    cache: &'a Cache,
    key: Key,
    /// The compiler's own directories, by their spellings and real paths.
    own: Vec<String>,
    shape: [u8; 32],
    /// The dependency file names only the files outside the system headers (`-MMD`).
    user_only: bool,
    started_ns: i128,
}

/// What looking a pump job up came to.
pub(super) enum Looked<'a> {
    Hit(Entry),
    Miss(Option<Pending<'a>>),
}

/// Looks `job` up in `cache`, received as `received`.
pub(super) fn look_up<'a>(cache: &'a Cache, job: &Job, received: &mut Received) -> Looked<'a> {
    let Some(pending) = first_key(cache, job, received) else {
        return Looked::Miss(None);
    };
    let found = cache
        .get_manifest(&pending.key)
        .and_then(|m| Some(m.find(&Sums::open(&cache.dir))?.result))
        .and_then(|result| Some((result, cache.get(&result)?)));
    match found {
        Some((result, entry)) => {
            cache.count(&result, Counter::HitDaemon);
            Looked::Hit(entry)
        }
        None => {
            cache.count(&pending.key, Counter::Miss);
            Looked::Miss(Some(pending))
        }
    }
}

/// The first step of the key, or `None` for a job that cannot be kept.
fn first_key<'a>(cache: &'a Cache, job: &Job, received: &mut Received) -> Option<Pending<'a>> {
    let started_ns = manifest::now_ns();
    let why_not = |why: &str| log::debug!("pump job not cached: {why}");
    let identity = key::compiler_identity(&cache.dir, job.compiler)
        .map_err(|e| why_not(&format!("cannot identify {}: {e}", job.compiler.display())))
        .ok()?;
    let model = crate::include::cmdline::parse(job.argv).ok()?;
    if key::relative_sysroot(&model.probe_flags) {
        // The compiler's directories would be those of the job's directory, per job.
        why_not("a relative sysroot");
        return None;
    }
    let builtin = key::builtin_dirs(
        &cache.dir,
        job.compiler,
        &identity,
        &model.probe_flags,
        &model.language,
    )
    .map_err(|e| why_not(&format!("no search list: {e}")))
    .ok()?;
    let user_only = !lists_every_header(job.argv);
    if user_only {
        if !builtin.spelled.is_empty() {
            why_not("-MMD leaves out the compiler's own headers");
            return None;
        }
        if received.marked || job.argv.iter().any(|a| makes_system_dirs(a)) {
            why_not("-MMD leaves out headers made system headers");
            return None;
        }
    }
    let shape = tree::shape(&cache.dir, &builtin.own)
        .map_err(|e| why_not(&e.to_string()))
        .ok()?;
    received.sums.sort_unstable();
    let mut h = KeyHasher::new("daemon pump");
    h.field("compiler", &identity)
        .field("distccd", env!("CARGO_PKG_VERSION").as_bytes())
        .words("argv", job.argv)
        .field("cwd", job.cwd.as_bytes())
        .words("builtin", &builtin.spelled)
        .field("shape", &shape);
    for (name, kind, sum) in &received.sums {
        h.field(name, &[*kind]).field("sum", sum);
    }
    Some(Pending {
        cache,
        key: h.finish(),
        own: builtin.own,
        shape,
        user_only,
        started_ns,
    })
}

/// Whether the dependency file the daemon has gcc write for the client's `argv` names
/// every header: `-MD`, not `-MMD` (which it adds when neither is given).
fn lists_every_header(cmd: &[String]) -> bool {
    let asks = |opt: &str| {
        cmd.iter().any(|a| {
            a == opt
                || a.strip_prefix("-Wp,")
                    .is_some_and(|w| w.split(',').any(|p| p == opt))
        })
    };
    asks("-MD") && !asks("-MMD")
}

/// Options that make system directories of the job's own, whose headers `-MMD` leaves
/// out.
fn makes_system_dirs(arg: &str) -> bool {
    [
        "-isystem",
        "-idirafter",
        "-iwithprefix",
        "-isysroot",
        "--sysroot",
        "-imultilib",
    ]
    .iter()
    .any(|o| arg.starts_with(o))
}

impl Pending<'_> {
    /// Keeps a successful result whose dependency file, as gcc wrote it in `root`, is
    /// `deps`; `entry` is what was sent back.
    pub(super) fn store(self, job: &Job, deps: &[u8], entry: Entry) {
        let Some(facts) = self.facts(job, deps) else {
            return;
        };
        // The trees may have changed while it compiled.
        if tree::shape(&self.cache.dir, &self.own).ok() != Some(self.shape) {
            log::debug!("pump job not cached: the compiler's directories changed");
            return;
        }
        let mut h = KeyHasher::new("daemon pump result");
        h.field("first", &self.key.0);
        for (path, fact) in &facts {
            h.field(path, fact.to_string().as_bytes());
        }
        let result = h.finish();
        if let Err(e) = self.cache.put(&result, &entry) {
            log::warn!(
                "cannot store in the cache at {}: {e}",
                self.cache.dir.display()
            );
            return;
        }
        let mut m = self.cache.get_manifest(&self.key).unwrap_or_default();
        m.add(Candidate {
            facts,
            result,
            deps: None,
        });
        if let Err(e) = self.cache.put_manifest(&self.key, &m) {
            log::warn!("cannot store a manifest in the cache: {e}");
        }
    }

    /// The identity of each file outside the root that the dependency file names; `None`
    /// when one is not under the compiler's own directories, or changed since the job
    /// started, or the file is not gcc's.
    fn facts(&self, job: &Job, deps: &[u8]) -> Option<Vec<(String, Fact)>> {
        let why_not = |why: String| log::debug!("pump job not cached: {why}");
        let Some(files) = super::jobroot::prerequisites(deps) else {
            why_not("no dependency file".into());
            return None;
        };
        let cwd = format!("{}{}", job.root, job.cwd);
        let mut facts = Vec::new();
        for f in files {
            let path = normal(&if f.starts_with('/') {
                f
            } else {
                format!("{cwd}/{f}")
            });
            if path.starts_with(&job.root) && path[job.root.len()..].starts_with('/') {
                continue;
            }
            if self.user_only || !manifest::under_any(&self.own, &path) {
                why_not(format!(
                    "it read {path}, outside the compiler's directories"
                ));
                return None;
            }
            let ident = std::fs::metadata(&path).ok().map(|m| Ident::of(&m));
            match ident {
                Some(i) if !i.recent(self.started_ns) => facts.push((path, Fact::Stat(i))),
                _ => {
                    why_not(format!("{path} changed while it compiled"));
                    return None;
                }
            }
        }
        Some(facts)
    }
}

/// `path` with `.` and `..` taken away by its spelling, as gcc took its lookups.
fn normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_makes_system_headers_is_seen() {
        assert!(makes_system_headers(b"int a;\n#pragma GCC system_header\n"));
        assert!(makes_system_headers(b"int a;\n  #  12 \"x.h\" 3\n"));
        assert!(makes_system_headers(b"# 1 \"x.h\"\n"));
        assert!(!makes_system_headers(b"#include <a.h>\n#define X 1 # 2\n"));
        assert!(!makes_system_headers(b"int a; # 2\n#line 4 \"y.c\"\n"));
    }

    #[test]
    fn every_header_is_listed_with_md_only() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(lists_every_header(&v("gcc -c a.c -MD -MF x")));
        assert!(lists_every_header(&v("gcc -c a.c -Wp,-MD,x.d")));
        assert!(!lists_every_header(&v("gcc -c a.c -MMD -MF x")));
        assert!(!lists_every_header(&v("gcc -c a.c -Wp,-MMD,x.d")));
        assert!(!lists_every_header(&v("gcc -c a.c")));
    }

    #[test]
    fn paths_are_normalised_by_spelling() {
        assert_eq!(normal("/r/w/./a/../b.h"), "/r/w/b.h");
        assert_eq!(normal("/r/../../x"), "/x");
    }
}
