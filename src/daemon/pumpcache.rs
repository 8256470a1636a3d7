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
//! be keyed: such a job is not kept; where a file was read from is decided by its real
//! path, since the root's links to the compiler's directories lead out of it. Nor are kept:
//! a result whose headers changed while it compiled; a job whose files or command line use
//! the time macros (the compile expands them, here and now); a command line that searches
//! outside the root and the compiler's trees (`-I=DIR`, a directory climbing out of the
//! root); a daemon whose environment adds directories (`CPATH` and the like) or moves the
//! compiler's (`GCC_EXEC_PREFIX`, `COMPILER_PATH`). A request
//! too large to hold is written as it comes and not looked up.
//!
//! Out of the model: a quoted include or `__has_include` with an absolute name, or with
//! more `..` than the client's directory is deep, looks outside the root where nothing in
//! the key stands for it (on the client such a name means something else already).
//!
//! The store itself is `crate::cache`'s; the plain jobs' key is `job`'s.

use std::path::Path;

use crate::cache::manifest::{self, Candidate, Fact, Ident};
use crate::cache::sums::Sums;
use crate::cache::{key, tree, Cache, Counter, Entry, Key, KeyHasher};
use crate::toolchain::pragmas::uses_time_macros;
use crate::wire::{Received as Content, ReceivedFile};

/// The most a request's files may hold in memory (decompressed) to be looked up before
/// they are written; a larger request is written as it comes, and not cached.
pub(super) const HOLD_LIMIT: u64 = 64 << 20;

/// What a pump request brought, held and summed as it is received.
#[derive(Default)]
pub(super) struct Received {
    /// The files and links, to be written into the job's root on a miss.
    pub files: Vec<ReceivedFile>,
    /// Their bytes, against [`HOLD_LIMIT`].
    pub held: u64,
    /// Each file or link: its name, kind and the sum of its content or target.
    sums: Vec<(String, u8, [u8; 32])>,
    /// A file holds `#pragma GCC system_header` or a line marker, either of which makes
    /// what it includes a system header that `-MMD` leaves out.
    marked: bool,
    /// A file names `__DATE__`, `__TIME__` or `__TIMESTAMP__`, or has a line break in
    /// its name.
    timed: bool,
}

impl Received {
    pub(super) fn add(&mut self, file: ReceivedFile) {
        let (kind, bytes): (u8, &[u8]) = match &file.content {
            Content::File(data) => {
                self.marked = self.marked || makes_system_headers(data);
                self.timed = self.timed || uses_time_macros(data);
                (b'f', data)
            }
            Content::Link(target) => (b'l', target.as_bytes()),
        };
        // A name with a line break would break the dependency file's rule, as the
        // time macros break the key: either way, not kept.
        self.timed = self.timed || file.name.contains(['\n', '\r']);
        let sum = *blake3::hash(bytes).as_bytes();
        self.held += (bytes.len() + file.name.len()) as u64;
        self.sums.push((file.name.clone(), kind, sum));
        self.files.push(file);
    }
}

/// Whether `text` holds `#pragma GCC system_header`, or a line marker (`# 12 "f.h" 3`),
/// which may say that a system header follows. One pass over the lines.
fn makes_system_headers(text: &[u8]) -> bool {
    if memchr::memmem::find(text, b"system_header").is_some() {
        return true;
    }
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', text).map(|n| n + 1));
    starts.into_iter().any(|start| {
        let mut rest = text[start..].iter().skip_while(|c| blank(c));
        rest.next() == Some(&b'#') && rest.find(|c| !blank(c)).is_some_and(u8::is_ascii_digit)
    })
}

/// The request of a pump job, as the cache needs it.
pub(super) struct Job<'a> {
    /// The client's command line and working directory.
    pub argv: &'a [String],
    pub cwd: &'a str,
    /// The root it runs in.
    pub root: String,
    /// The compiler it runs, and the `PATH` it runs with (`DISTCCD_PATH`).
    pub compiler: &'a Path,
    pub path_var: Option<&'a std::ffi::OsStr>,
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
    let identity = key::compiler_identity(&cache.dir, job.compiler, job.path_var)
        .map_err(|e| why_not(&format!("cannot identify {}: {e}", job.compiler.display())))
        .ok()?;
    // Each new set of flags that move the compiler's directories costs a memo and a run
    // of the compiler, which clients choose: bounded, the oldest going first, so that one
    // client cannot fill the directory and leave every later job uncached.
    prune_memos(&cache.dir.join("compilers"));
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
    if received.timed || job.argv.iter().any(|a| uses_time_macros(a.as_bytes())) {
        why_not("the time macros");
        return None;
    }
    // A target or output name with a line break would hide the rule gcc writes.
    if job
        .argv
        .iter()
        .any(|a| a.bytes().any(|c| c == b'\n' || c == b'\r'))
    {
        why_not("a line break in the command line");
        return None;
    }
    // Those that add directories, and those that choose the compiler's own programs and
    // directories, which its probe (run with a clean environment) would not see.
    let variables = crate::toolchain::INCLUDE_PATH_VARIABLES;
    let moving = ["GCC_EXEC_PREFIX", "COMPILER_PATH"];
    if let Some(v) = variables
        .iter()
        .chain(&moving)
        .find(|v| std::env::var_os(v).is_some())
    {
        why_not(&format!("{v} is set"));
        return None;
    }
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
    let shape = match tree::shape(&cache.dir, &builtin.own) {
        Ok(Some(shape)) => shape,
        Ok(None) => {
            why_not("the compiler's directories are changing");
            return None;
        }
        Err(e) => {
            why_not(&e.to_string());
            return None;
        }
    };
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

/// The most memos of compilers (`compilers/` in the cache) kept: past it, the older half
/// goes ([`prune_memos`]).
const MAX_MEMOS: usize = 4096;

/// Removes the older half of the memos in `dir` when it holds more than [`MAX_MEMOS`]
/// (a memo removed is made again when asked for).
fn prune_memos(dir: &std::path::Path) {
    // Counted first: names alone, without a `stat` each.
    if std::fs::read_dir(dir).map_or(0, Iterator::count) <= MAX_MEMOS {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut memos: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .flatten()
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    memos.sort();
    let old = memos.len() / 2;
    log::info!(
        "removing the {old} oldest of {} compiler memos",
        memos.len()
    );
    for (_, path) in &memos[..old] {
        let _ = std::fs::remove_file(path);
    }
}

/// A directory the job's command line has gcc search outside the root and the
/// compiler's own trees (`own`), if any: one the sysroot prefixes (`=DIR`, `$SYSROOT`),
/// or one whose real path (or, missing, its spelling) leaves the root. Absolute ones are
/// in the root, as the daemon runs them; relative ones, from its working directory there.
fn searched_outside(
    job: &Job,
    model: &crate::include::cmdline::Command,
    root_cwd: &str,
    own: &[String],
) -> Option<String> {
    let argv = job.argv;
    for (i, a) in argv.iter().enumerate() {
        // The options with a directory (the others of distcc 3.4's list name files).
        for o in crate::cmdline::PATH_OPTIONS
            .iter()
            .filter(|o| !o.starts_with("-im") && **o != "-include")
        {
            let value = if a == o {
                argv.get(i + 1).map(String::as_str)
            } else {
                a.strip_prefix(*o)
            };
            if let Some(v) = value.filter(|v| v.starts_with('=') || v.contains("$SYSROOT")) {
                return Some(v.to_string());
            }
        }
    }
    let dirs = [&model.quote, &model.bracket, &model.isystem, &model.after];
    for d in dirs.into_iter().flatten() {
        let there = if d.starts_with('/') {
            format!("{}{d}", job.root)
        } else {
            format!("{root_cwd}/{d}")
        };
        // A missing directory is as the nearest one above it that exists: a name created
        // there would make it.
        let mut path = there.as_str();
        let real = loop {
            if let Ok(real) = std::fs::canonicalize(path) {
                break real.into_os_string().into_string().ok();
            }
            match path.rsplit_once('/') {
                Some((up, _)) if !up.is_empty() => path = up,
                _ => break None,
            }
        };
        if !real.is_some_and(|r| inside(&r, &job.root) || manifest::under_any(own, &r)) {
            return Some(d.clone());
        }
    }
    None
}

/// Whether `path` is `root` or under it.
fn inside(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
    /// Keeps a successful result, `entry` (what was sent back), whose compile read
    /// `facts` ([`Pending::facts`]).
    pub(super) fn store(self, facts: Vec<(String, Fact)>, entry: Entry) {
        // The trees may have changed while it compiled.
        if tree::shape(&self.cache.dir, &self.own).ok().flatten() != Some(self.shape) {
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

    /// The identity of each file outside the root that the dependency file names, by its
    /// real path; `None` when one is not under the compiler's own directories, or changed
    /// since the job started, or uses the time macros, or the file is not gcc's.
    /// Made while the job's root is still there.
    pub(super) fn facts(&self, job: &Job, deps: &[u8]) -> Option<Vec<(String, Fact)>> {
        let why_not = |why: String| log::debug!("pump job not cached: {why}");
        let Some(files) = super::jobroot::prerequisites(deps) else {
            why_not("no dependency file".into());
            return None;
        };
        let cwd = format!("{}{}", job.root, job.cwd);
        // Asked now that the root holds what was received.
        let model = crate::include::cmdline::parse(job.argv).ok()?;
        if let Some(d) = searched_outside(job, &model, &cwd, &self.own) {
            why_not(format!("it searches {d}"));
            return None;
        }
        let mut facts = Vec::new();
        for f in files {
            // As gcc opened it: `..` after a link is the link target's parent.
            let spelled = if f.starts_with('/') {
                f
            } else {
                format!("{cwd}/{f}")
            };
            let real = std::fs::canonicalize(&spelled)
                .ok()
                .and_then(|p| p.into_os_string().into_string().ok());
            let Some(real) = real else {
                why_not(format!("{spelled} is gone"));
                return None;
            };
            if inside(&real, &job.root) {
                continue;
            }
            if self.user_only || !manifest::under_any(&self.own, &real) {
                why_not(format!(
                    "it read {real}, outside the compiler's directories"
                ));
                return None;
            }
            let ident = std::fs::metadata(&real).ok().map(|m| Ident::of(&m));
            match ident {
                Some(i) if !i.recent(self.started_ns) => facts.push((real, Fact::Stat(i))),
                _ => {
                    why_not(format!("{real} changed while it compiled"));
                    return None;
                }
            }
        }
        // Read once, when stored: a header that names the time macros makes an object
        // of the moment. Its identity then stands for its content.
        for (path, _) in &facts {
            if std::fs::read(path).map_or(true, |text| uses_time_macros(&text)) {
                why_not(format!("{path} uses the time macros"));
                return None;
            }
        }
        Some(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_memos_lose_their_older_half() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for i in 0..MAX_MEMOS - 1 {
            let path = dir.path().join(format!("m{i}"));
            std::fs::write(&path, "").unwrap();
            if i % 2 == 0 {
                let f = std::fs::File::options().write(true).open(&path).unwrap();
                f.set_modified(old).unwrap();
            }
        }
        std::fs::write(dir.path().join(".lock"), "").unwrap();
        let count = || std::fs::read_dir(dir.path()).unwrap().count();
        prune_memos(dir.path());
        assert_eq!(count(), MAX_MEMOS);
        std::fs::write(dir.path().join("one more"), "").unwrap();
        prune_memos(dir.path());
        // The older half went: the files made an hour ago, and the lock stayed.
        assert_eq!(count(), MAX_MEMOS / 2 + 1);
        assert!(dir.path().join(".lock").exists());
        assert!(dir.path().join("m1").exists() && !dir.path().join("m0").exists());
    }

    #[test]
    fn what_makes_system_headers_is_seen() {
        assert!(makes_system_headers(b"int a;\n#pragma GCC system_header\n"));
        assert!(makes_system_headers(b"int a;\n  #  12 \"x.h\" 3\n"));
        assert!(makes_system_headers(b"# 1 \"x.h\"\n"));
        assert!(!makes_system_headers(b"#include <a.h>\n#define X 1 # 2\n"));
        assert!(!makes_system_headers(b"int a; # 2\n#line 4 \"y.c\"\n"));
        // One pass: a long line of `#` (quadratic, this took minutes).
        assert!(!makes_system_headers(&vec![b'#'; 4 << 20]));
    }

    #[test]
    fn inside_is_by_whole_components() {
        assert!(inside("/r/a", "/r"));
        assert!(inside("/r", "/r"));
        assert!(!inside("/rx/a", "/r"));
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
}
