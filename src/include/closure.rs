//! The include closure of one command: a walk over the directives of the source and of
//! every file it includes, in order, as the preprocessor goes, with the macro table of
//! that point (the compiler's predefined macros, then `-D`/`-U` in order, then the
//! `-include`/`-imacros` files, then the source), conditionals evaluated, guards and
//! `#pragma once` honoured, `#include_next` resuming after the directory where the current
//! file was found, computed includes expanded, and `__has_include` answered (a file it
//! finds is shipped: the host's preprocessor will look for it too).
//!
//! Where a condition cannot be decided ([`Truth::Unknown`]), every branch is walked and
//! the definitions made there become alternatives ([`Table`]); a computed include whose
//! macros have alternatives stands for each combination, up to [`MAX_COMBINATIONS`]. The
//! closure is then a superset: never a file short.
//!
//! Files under the compiler's built-in directories are walked (their macros matter, and
//! they may include project headers through `-I` dirs) but not shipped. An absolute
//! `#include` outside them, a computed include that cannot be expanded or names no header,
//! or more than the CPU limit, make the command "not covered": the client then
//! preprocesses locally.
//!
//! Directive lists are cached across requests by the file's (device, inode, size, mtime,
//! ctime), and not at all while the file is younger than
//! [`TOO_NEW`](super::search::TOO_NEW); each request stats each file it reads once.
//! Lookups go through [`Lookups`], and a search of the chain is remembered across requests
//! with the directories it looked into, and reused while none of them changed. The value
//! of an `#if` is remembered with the directives of the file version it is in, with the
//! macros it read ([`Conditions`]), and reused while they have the same definitions. A
//! closure records what it depended on ([`Facts`]: the version of every file read, and
//! every directory looked into with the names looked up there), so that the server can
//! answer the same command again from it while all of that holds.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::cmdline::{Command, MacroOption};
use super::expr::{self, Truth};
use super::lexer::{self, Directive, Mode};
use super::macros::{self, Macro, Table};
use super::search::{chain_holds, recent, Chain, DirId, FsCache, Lookups, Stamp};
use super::sysdirs::{under, Compiler, SystemDirs};
use super::token::{FxMap, FxSet, Kind, Sym, Tok};
use super::watch::{Vouched, Watcher};

/// How many combinations of alternatives a computed include may stand for before the
/// command is not covered.
pub const MAX_COMBINATIONS: usize = 256;

/// GCC's limit on nested includes.
const MAX_INCLUDE_DEPTH: u32 = 200;

/// What identifies one version of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    /// How many names the file has: one, and its directory's change notices are its own
    /// (`watch`).
    pub links: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            links: meta.nlink(),
        }
    }

    /// The key of `path` now (following symlinks).
    pub fn stat(path: &str) -> std::io::Result<FileKey> {
        std::fs::metadata(path).map(|m| FileKey::of(&m))
    }

    /// The content of `path` (about `size` bytes), and the key of the file read as it was
    /// once it had been read: the content is of version `k` when that key is `k`.
    pub fn read(path: &str, size: u64) -> std::io::Result<(Vec<u8>, FileKey)> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        // Into a buffer one byte longer than expected: a file of that size is read by one
        // `read`. (`read_to_end` asks the file's size and position first, or without them
        // reads in small steps.)
        let expected = usize::try_from(size).unwrap_or(0);
        let mut data = vec![0u8; expected.saturating_add(1)];
        let mut filled = 0;
        loop {
            match f.read(&mut data[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if filled == data.len() {
                // Longer than it was: the rest as it comes (the key will differ).
                f.read_to_end(&mut data)?;
                filled = data.len();
                break;
            }
            if filled == expected {
                // All that was expected: when the file is still that long, that is all
                // of it, and a `read` to see its end is not needed.
                let meta = f.metadata()?;
                if meta.size() == size {
                    data.truncate(filled);
                    return Ok((data, FileKey::of(&meta)));
                }
            }
        }
        data.truncate(filled);
        Ok((data, FileKey::of(&f.metadata()?)))
    }
}

/// One file's directives, and the values of its `#if`s remembered.
type Lexed = Arc<LexedFile>;

pub struct LexedFile {
    ds: Vec<Directive>,
    /// The tokens of its `#if`s and computed includes, by slot.
    toks: Vec<Vec<Tok>>,
    conditions: Conditions,
    /// This version's realpath and entry among the change notices' watches, once an
    /// analysis that read it was watched (`watch::Watcher::arm`): found by path once, not
    /// by every analysis that reads it.
    pub(super) watch_entry: OnceLock<(Sym, usize)>,
}

/// Two directive lists are the same when they are one read.
impl PartialEq for LexedFile {
    fn eq(&self, other: &LexedFile) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for LexedFile {}

impl std::fmt::Debug for LexedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LexedFile({} directives)", self.ds.len())
    }
}

impl std::ops::Deref for LexedFile {
    type Target = [Directive];
    fn deref(&self) -> &[Directive] {
        &self.ds
    }
}

/// Parsed directive lists, shared by all requests.
#[derive(Default)]
pub struct LexCache {
    map: Mutex<FxMap<(FileKey, Mode), Arc<Slot>>>,
    /// Each path's version as a `stat` last found it, once watched, with the batch of
    /// change notices read before that `stat`: while no later notice came for the file
    /// or a directory on its path, it is still that version and is not `stat`ed again
    /// (the `statx` of each file entered was most of a request's system calls).
    latest: Mutex<FxMap<Sym, Latest>>,
}

#[derive(Clone)]
struct Latest {
    key: FileKey,
    mode: Mode,
    lexed: Lexed,
    checked: u64,
    /// The version's entry among the watches, found for this path when it was kept.
    entry: usize,
}

/// One file version's directives, once read: the requests of a build that start
/// together (`make -j`) need the same headers at once, and one of them reads each while
/// the others wait for it.
type Slot = Mutex<Option<Lexed>>;

impl LexCache {
    /// The directives of `path` (a realpath), read again when its key changed; a file
    /// younger than `TOO_NEW` is read every time. An error when it cannot be read or keeps
    /// changing while it is read.
    fn directives(
        &self,
        real: Sym,
        mode: Mode,
        watcher: Option<(&Watcher, &mut Vouched)>,
    ) -> Result<(FileKey, Lexed, Option<Vec<u8>>), String> {
        let path = real.as_str();
        let Some((watcher, vouched)) = watcher else {
            return self.read(path, mode);
        };
        let latest = lock(&self.latest).get(&real).cloned();
        if let Some(l) = latest.filter(|l| l.mode == mode) {
            if watcher.holds(l.entry, &l.key, l.checked, vouched) {
                return Ok((l.key, l.lexed, None));
            }
        }
        let checked = watcher.batch();
        let (key, lexed, data) = self.read(path, mode)?;
        // Only a version already watched (under this path: a hard link shares it) can be
        // vouched for by notices; a recent one is read again each time (`TOO_NEW`),
        // notices or not.
        let entry = (lexed.watch_entry.get()).and_then(|(p, id)| (*p == real).then_some(*id));
        if let (Some(entry), false) = (entry, recent(key.mtime_ns, key.ctime_ns)) {
            let l = Latest {
                key,
                mode,
                lexed: lexed.clone(),
                checked,
                entry,
            };
            lock(&self.latest).insert(real, l);
        }
        Ok((key, lexed, data))
    }

    /// The directives of `path` as a `stat` finds it now, and its content when it was
    /// read for them.
    fn read(&self, path: &str, mode: Mode) -> Result<(FileKey, Lexed, Option<Vec<u8>>), String> {
        for _ in 0..3 {
            let key = FileKey::stat(path).map_err(|e| format!("cannot stat {path}: {e}"))?;
            let slot = (!recent(key.mtime_ns, key.ctime_ns))
                .then(|| lock(&self.map).entry((key, mode)).or_default().clone());
            let mut kept = slot.as_deref().map(lock);
            if let Some(found) = kept.as_deref().and_then(Option::as_ref) {
                return Ok((key, found.clone(), None));
            }
            let (data, read) =
                FileKey::read(path, key.size).map_err(|e| format!("cannot read {path}: {e}"))?;
            if read != key {
                continue;
            }
            let lexer::Directives { list, toks } = lexer::directives(&data, mode);
            let ds = Arc::new(LexedFile {
                conditions: Conditions::new(toks.len()),
                ds: list,
                toks,
                watch_entry: OnceLock::new(),
            });
            if let Some(kept) = kept.as_deref_mut() {
                *kept = Some(ds.clone());
            }
            return Ok((key, ds, Some(data)));
        }
        Err(format!("{path} keeps changing while it is read"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directive lists a walk has read, kept until it ends: its macro table refers to
/// their definitions without counting them.
#[derive(Default)]
struct Keep(std::cell::UnsafeCell<Vec<Lexed>>);

impl Keep {
    fn keep(&self, l: Lexed) -> &LexedFile {
        // SAFETY: the list is only ever pushed to, and never lent out, so each `Arc` in it
        // lives as long as `self`; the reference returned points into that `Arc`'s own
        // allocation, which stays where it is when a push moves the list's buffer. Keep
        // is not `Sync`: no other thread pushes meanwhile.
        unsafe {
            let list = &mut *self.0.get();
            let file = Arc::as_ptr(&l);
            list.push(l);
            &*file
        }
    }
}

/// What the include server keeps across the requests of a build.
#[derive(Default)]
pub struct Caches {
    pub lex: LexCache,
    pub fs: FsCache,
    pub compilers: SystemDirs,
    /// Chain searches: name → (context, from) → what was found.
    searches: Mutex<FxMap<Sym, Searches>>,
    /// The directory lists of those searches, each kept once: the searches of many
    /// names look into the same directories (every `<bits/...>` into the same few).
    /// With how many there were after the last pruning.
    stamped: Mutex<(FxSet<StampedDirs>, usize)>,
    /// How many macros the largest walk so far defined: a walk's table starts that large.
    table_size: std::sync::atomic::AtomicUsize,
    /// Change notices for what analyses depend on (`None` without inotify, or where
    /// nothing is asked again: then every file is checked by `stat`).
    pub watcher: Option<Watcher>,
    /// How many files and names the largest walk so far met: a walk's own maps start
    /// that large, rather than growing (and rehashing) through the same sizes each time.
    walk_size: std::sync::atomic::AtomicUsize,
}

/// The searches of one name: per (context, first chain index).
type Searches = FxMap<(u64, usize), Arc<Search>>;

impl Caches {
    /// Caches around what `compilers` knows.
    pub fn with_compilers(compilers: SystemDirs) -> Caches {
        Caches {
            compilers,
            ..Caches::default()
        }
    }

    /// The one kept copy of `dirs`. Copies no search uses any more (a directory's stamp
    /// changed, and its searches were made again) are let go whenever the set doubles.
    fn stamped(&self, dirs: Vec<(String, Option<Stamp>)>) -> StampedDirs {
        let mut stamped = lock(&self.stamped);
        let (set, pruned) = &mut *stamped;
        if let Some(kept) = set.get(&dirs[..]) {
            return kept.clone();
        }
        if set.len() >= 2 * (*pruned).max(64) {
            set.retain(|d| Arc::strong_count(d) > 1);
            *pruned = set.len();
        }
        let dirs: StampedDirs = dirs.into();
        set.insert(dirs.clone());
        dirs
    }
}

/// Directories with the stamps they had.
type StampedDirs = Arc<[(String, Option<Stamp>)]>;

/// A search of a chain: what it found, the directories it looked into with their
/// stamps, and each path it looked up (absolute) with whether a file was there.
struct Search {
    found: Option<Found>,
    /// These two shared with the analyses that use the search, not copied into each.
    dirs: StampedDirs,
    probes: Arc<[(String, bool)]>,
    /// Which of them found no file under the compiler's own directories (for
    /// [`Closure::absent_system`]; the same for every command of the search's context).
    system_misses: Box<[u32]>,
}

/// How many remembered values one `#if` may have beyond its first (one per different
/// set of definitions of the macros it reads, or per context).
const CONDITION_VARIANTS: usize = 4;

/// A file version's remembered `#if` values: per `#if` (its slot, [`Directive::If`]) and
/// walk context, the macros read with their definitions, and the value.
struct Conditions {
    /// The first value kept for each `#if`, read without a lock: the `#if`s of a build
    /// are mostly met in one context and with one set of definitions, and a walk between
    /// two compilers found a locked map, its hash and its lists out of cache.
    first: Box<[OnceLock<Condition>]>,
    /// The values kept after the first, per (slot, context).
    more: Mutex<FxMap<ConditionKey, Vec<Arc<Condition>>>>,
}

/// An `#if`'s slot in its file, and the walk's context.
type ConditionKey = (u32, u64);

struct Condition {
    context: u64,
    reads: Box<[(Sym, Option<Arc<Macro>>)]>,
    truth: Truth,
}

impl Condition {
    fn holds(&self, context: u64, table: &Table) -> Option<Truth> {
        (self.context == context && self.reads.iter().all(|(n, v)| table.is(*n, v)))
            .then_some(self.truth)
    }
}

impl Conditions {
    /// Room for the values of `slots` `#if`s.
    fn new(slots: usize) -> Conditions {
        Conditions {
            first: (0..slots).map(|_| OnceLock::new()).collect(),
            more: Mutex::default(),
        }
    }

    fn find(&self, (slot, context): ConditionKey, table: &Table) -> Option<Truth> {
        let first = self.first.get(slot as usize)?.get()?;
        if let Some(truth) = first.holds(context, table) {
            return Some(truth);
        }
        lock(&self.more)
            .get(&(slot, context))?
            .iter()
            .find_map(|c| c.holds(context, table))
    }

    fn keep(&self, (slot, context): ConditionKey, c: Condition) {
        let Some(first) = self.first.get(slot as usize) else {
            return;
        };
        let Err(c) = first.set(c) else {
            return;
        };
        let mut more = lock(&self.more);
        let v = more.entry((slot, context)).or_default();
        if v.len() >= CONDITION_VARIANTS {
            v.remove(0);
        }
        v.push(Arc::new(c));
    }
}

/// One file of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureFile {
    /// Its realpath.
    pub realpath: String,
    /// When it was found through an absolute search directory: that directory joined with
    /// the name, for the `#line` of its `.lzo.abs`.
    pub abs_name: Option<String>,
    /// The version of it the analysis read (`None` for a file only `__has_include` met).
    pub key: Option<FileKey>,
}

/// The analysis of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// The files outside system dirs that the preprocessor may read, source included.
    pub files: Vec<ClosureFile>,
    /// Every path found, absolute and as spelled (`/cwd/sub/../x.h`), in the order found,
    /// with its realpath.
    pub paths: Vec<(Sym, Sym)>,
    /// The system dirs of this command.
    pub system_dirs: Vec<String>,
    /// What the analysis depended on: every file it read (system headers too) in the
    /// version it read, and every directory it looked into, in the state it saw; `None`
    /// when something it used cannot be checked later (a file or directory changed too
    /// recently, a symlinked name).
    pub facts: Option<Facts>,
    /// Every file the walk entered, system headers too, each time it entered one, as the
    /// preprocessor spells it, with the index in this list of the file that included it
    /// (`None`: the source, or the command line); the source itself is not in it. The
    /// manifests of the compile cache are made of it (`crate::cache::manifest`).
    pub entered: Vec<(Sym, Option<usize>)>,
    /// The paths under the compiler's own directories that the walk looked for a file at
    /// and found none (`__has_include` too), sorted: a host that has one of them would
    /// read another header than this machine (see `wire::SYSTEM_HEADERS`).
    pub absent_system: Vec<String>,
    /// The source's realpath (in `files` after the `-include` files).
    pub source: String,
}

/// The files and directories an analysis depended on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The directories that made the search chain.
    pub chain: Vec<(String, Option<DirId>)>,
    /// Each file read: its realpath, the version read, and that version's directives.
    pub files: Vec<(Sym, FileKey, Lexed)>,
    /// Directories this analysis looked into, itself or through searches remembered
    /// from earlier requests, with their stamp then and whether it could be trusted.
    pub looked_into: Vec<(String, Option<Stamp>, bool)>,
    /// The paths it looked up, and whether each was a regular file.
    pub lookups: Vec<(String, bool)>,
    /// The same for the searches it took from earlier requests.
    pub remembered: Vec<Arc<[(String, bool)]>>,
    /// The compiler's own directories: their packages are not written to during a build,
    /// and their files are watched through their directories (`watch::State::cover`).
    pub system: Vec<String>,
}

impl Facts {
    /// Whether every file and directory is as it was. A directory the analysis looked
    /// into whose stamp changed (a build writes its objects next to the sources, Kbuild
    /// its generated headers' temporary files next to them) or was too recent to be
    /// trusted still holds when it is the same directory and every name looked up in it
    /// is found, or not, as it was.
    pub fn hold(&self, fs: &FsCache) -> bool {
        let mut look = Lookups::new(fs, None);
        let files = || {
            self.files
                .iter()
                .all(|(f, k, _)| FileKey::stat(f.as_str()).is_ok_and(|now| now == *k))
        };
        if !chain_holds(&self.chain) || !files() {
            return false;
        }
        let mut changed = FxSet::default();
        for (d, then, trusted_then) in &self.looked_into {
            let (trusted, now) = look.dir_state(d);
            if *trusted_then && trusted && now == *then {
                continue;
            }
            match (then, now) {
                (Some(a), Some(b)) if a.same_dir(&b) => {}
                _ => return false,
            }
            changed.insert(d.as_str());
        }
        let remembered = self.remembered.iter().flat_map(|r| r.iter());
        changed.is_empty()
            || self.lookups.iter().chain(remembered).all(|(p, file)| {
                !changed.contains(dirname_of(p)) || look.is_file(p) == (*file, false)
            })
    }
}

/// Python's `os.path.join` for two parts.
pub fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        [a, b].concat()
    } else {
        [a, "/", b].concat()
    }
}

/// Python's `os.path.dirname`.
pub fn dirname(p: &str) -> String {
    dirname_of(p).to_string()
}

/// [`dirname`], borrowed from `p`.
pub fn dirname_of(p: &str) -> &str {
    match p.rfind('/') {
        None => "",
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head
            } else {
                trimmed
            }
        }
    }
}

/// The last component of `p`, borrowed from it.
pub fn basename_of(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The CPU time this thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// How a file was found, for `#include_next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The source file: `#include_next` there is an `#include`.
    Source,
    /// In its includer's directory (or, for `-include`, the working directory):
    /// `#include_next` searches the whole chain (GCC) or is an `#include` (clang).
    Includer,
    /// In the chain's directory of this index.
    Chain(usize),
}

/// A file found.
#[derive(Debug, Clone)]
struct Found {
    /// Its path as the preprocessor spells it (search dir joined with the name), and its
    /// realpath: interned (kept for the server's life, as every spelling is), so that the
    /// maps of a walk, which meet each a few times per file entered, hash and compare a
    /// pointer rather than a path.
    spelled: Sym,
    real: Sym,
    /// The spelling made absolute (joined to the working directory), as the closure
    /// lists it.
    abs: Sym,
    origin: Origin,
    /// Whether it is under one of the compiler's system directories (not shipped).
    system: bool,
}

/// One `#if` group being walked.
#[derive(Default)]
struct Group {
    /// An earlier branch may have been taken.
    maybe: bool,
    /// The current branch is walked without knowing that it is taken.
    uncertain: bool,
    /// The current branch's condition is true: no later branch can be taken.
    decided: bool,
}

/// One walk's state.
struct Walk<'a> {
    cwd: &'a str,
    chain: Chain,
    compiler: Arc<Compiler>,
    table: Table<'a>,
    /// The directive lists this walk read, whose definitions `table` refers to.
    keep: &'a Keep,
    cplusplus: bool,
    mode: Mode,
    caches: &'a Caches,
    look: Lookups<'a>,
    closure: Closure,
    in_closure: FxMap<Sym, usize>,
    /// The paths opened, as spelled.
    seen_paths: FxSet<Sym>,
    /// The compiler's own directories (files under them are not shipped). Not every
    /// compiler's, as distcc 3.4 has it: a project header under another compiler's
    /// directory (`-I` into a `--sysroot` that other commands use) is this command's to
    /// ship, or the host lacks it.
    system: Vec<String>,
    /// Files that cannot be entered again (`#pragma once`, `#import`).
    once: FxSet<Sym>,
    /// Files certainly entered (for `#import`).
    entered: FxSet<Sym>,
    /// How many enclosing branches are walked without knowing they are taken.
    uncertain: u32,
    depth: u32,
    /// The index in `closure.entered` of each file being walked, outermost first.
    entering: Vec<Option<usize>>,
    /// Each file read in this request: its key and directives (also in `keep`).
    lexed: FxMap<Sym, (FileKey, Lexed, &'a LexedFile)>,
    /// The files outside system dirs read from disk for their directives.
    contents: Contents,
    /// The directories remembered searches looked into, each list once, and the paths
    /// they looked up (for [`Facts`]).
    dirs_remembered: Vec<StampedDirs>,
    /// Each such list met in this request (by address), and whether its directories
    /// have the stamps it says. A list that holds is kept in `dirs_remembered`, so its
    /// address names it for the whole request; one that does not may be freed and its
    /// address reused, and a list met there is then taken not to hold: searched afresh.
    stamps_found: FxMap<*const (String, Option<Stamp>), bool>,
    /// The searches taken from earlier requests.
    remembered: Vec<Arc<Search>>,
    /// The chain searches of this request: name → (from, what was found).
    searched: FxMap<Sym, Vec<(usize, Option<Found>)>>,
    /// The working directory, chain and compiler, as one value (part of the keys of
    /// what is remembered across requests).
    context: u64,
    started: std::time::Instant,
    start_cpu: Duration,
    limit: Duration,
    walks: u32,
}

/// The content of files the walk read from disk (outside the system dirs), by realpath,
/// with the version read: the mirror compresses them from here rather than reading them
/// again. Not part of the [`Closure`]: kept closures would hold it for the whole build.
pub type Contents = FxMap<String, (FileKey, Vec<u8>)>;

/// The closure of `cmd` run in `cwd` (absolute), and the contents the walk read. `Err` is
/// a "not covered" reason.
pub fn analyze(
    cmd: &Command,
    cwd: &str,
    caches: &Caches,
    limit: Duration,
) -> Result<(Closure, Contents), String> {
    let start_cpu = thread_cpu();
    let mut look = Lookups::new(&caches.fs, caches.watcher.as_ref());
    let compiler = (caches.compilers).get(
        &cmd.compiler,
        &cmd.probe_flags,
        &cmd.language,
        cwd,
        &mut |d| look.dir_id(d).is_some(),
    )?;
    if compiler.clang && (cmd.microsoft || compiler.msvc) {
        return Err("clang's Microsoft include rules (-fms-extensions) are not covered".into());
    }
    let mut chain = Chain::new(
        cwd,
        &cmd.quote,
        &cmd.bracket,
        &cmd.isystem,
        &compiler.dirs,
        &cmd.after,
        compiler.clang,
        &mut |d| look.dir_id(d),
    );
    // The compiler's directories that were missing when it was asked: the compilers run
    // once one is made search it (and it is asked again then), so what is kept of this
    // analysis holds only while they are missing.
    (chain.made_of).extend(compiler.missing.iter().map(|d| (d.clone(), None)));
    let mut table = Table::with_capacity(caches.table_size.load(Relaxed).max(2048));
    for m in &compiler.predefined {
        table.define(m.name, m, false);
    }
    for m in &cmd.macros {
        match m {
            MacroOption::Define(d) => {
                if let Some(m) = Macro::from_option(d) {
                    table.define_owned(Arc::new(m), false);
                }
            }
            MacroOption::Undef(u) => table.undef(super::token::sym(u), false),
        }
    }
    let context = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let probe = (&cmd.compiler, &cmd.probe_flags, &cmd.language);
        (cwd, &chain.dirs, chain.bracket, probe).hash(&mut h);
        h.finish()
    };
    let size = caches.walk_size.load(Relaxed);
    let keep = Keep::default();
    let mut w = Walk {
        cwd,
        chain,
        compiler: compiler.clone(),
        table,
        keep: &keep,
        cplusplus: cmd.cplusplus(),
        mode: cmd.lex_mode(compiler.clang),
        caches,
        look,
        closure: Closure {
            system_dirs: compiler.dirs.clone(),
            ..Closure::default()
        },
        in_closure: FxMap::with_capacity_and_hasher(size, Default::default()),
        seen_paths: FxSet::with_capacity_and_hasher(size, Default::default()),
        system: compiler.dirs.clone(),
        once: FxSet::default(),
        entered: FxSet::with_capacity_and_hasher(size, Default::default()),
        uncertain: 0,
        depth: 0,
        entering: Vec::new(),
        lexed: FxMap::with_capacity_and_hasher(size, Default::default()),
        contents: Contents::default(),
        searched: FxMap::with_capacity_and_hasher(size, Default::default()),
        dirs_remembered: Vec::new(),
        stamps_found: FxMap::default(),
        remembered: Vec::new(),
        context,
        started: std::time::Instant::now(),
        start_cpu,
        limit,
        walks: 0,
    };
    for f in &cmd.include_files {
        let found = w
            .command_line_file(f)
            .ok_or_else(|| format!("Could not find include file '{f}'."))?;
        w.walk(found)?;
    }
    let source = w
        .find("", &cmd.source, Origin::Source)
        .ok_or_else(|| format!("Could not find translation unit '{}'.", cmd.source))?;
    w.closure.source = source.real.as_str().to_string();
    w.walk(source)?;
    // This request's lookups, and those of the searches it took from earlier requests
    // (each of those found once): the same few hundred paths in every request.
    let remembered = (w.remembered.iter()).flat_map(|s| {
        s.system_misses
            .iter()
            .map(|&i| s.probes[i as usize].0.as_str())
    });
    let mut absent: Vec<&str> = (w.look.missing())
        .filter(|p| w.is_system(p))
        .chain(remembered)
        .collect();
    absent.sort_unstable();
    absent.dedup();
    w.closure.absent_system = absent.into_iter().map(String::from).collect();
    let met = (w.lexed.len())
        .max(w.seen_paths.len())
        .max(w.searched.len());
    caches.walk_size.fetch_max(met, Relaxed);
    w.closure.facts = w.facts();
    caches.table_size.fetch_max(w.table.len(), Relaxed);
    Ok((w.closure, w.contents))
}

impl<'a> Walk<'a> {
    /// What this walk depended on, when all of it can be checked later.
    fn facts(&mut self) -> Option<Facts> {
        // The walk is over: what it kept is moved, not copied.
        let mut files = Vec::with_capacity(self.lexed.len());
        for (real, (key, lexed, _)) in self.lexed.drain() {
            if recent(key.mtime_ns, key.ctime_ns) {
                return None;
            }
            files.push((real, key, lexed));
        }
        let (touched, lookups) = self.look.all_looked()?;
        let remembered = std::mem::take(&mut self.dirs_remembered);
        let mut seen: FxSet<&str> = FxSet::default();
        let mut looked_into = Vec::new();
        for d in &touched {
            if seen.insert(d) {
                let (trusted, stamp) = self.look.dir_state(d);
                looked_into.push((d.clone(), stamp, trusted));
            }
        }
        // A remembered search was made under these stamps, which this request found
        // again: trusted then.
        for (d, stamp) in remembered.iter().flat_map(|dirs| dirs.iter()) {
            if seen.insert(d) {
                looked_into.push((d.clone(), *stamp, true));
            }
        }
        Some(Facts {
            chain: self.chain.made_of.clone(),
            files,
            looked_into,
            lookups,
            remembered: (self.remembered.drain(..))
                .map(|s| s.probes.clone())
                .collect(),
            system: self.system.clone(),
        })
    }

    /// An `-include` file: in the working directory, then the quote chain.
    fn command_line_file(&mut self, name: &str) -> Option<Found> {
        if let Some(f) = self.find("", name, Origin::Includer) {
            return Some(f);
        }
        if name.starts_with('/') {
            return None;
        }
        self.search(super::token::sym(name), 0)
    }

    /// `name` in directory `dir` (as spelled), if it is a file there.
    fn find(&mut self, dir: &str, name: &str, origin: Origin) -> Option<Found> {
        let spelled = join(dir, name);
        let abs = join(self.cwd, &spelled);
        let real = self.look.realpath(&abs)?;
        Some(Found {
            spelled: super::token::sym(&spelled),
            system: self.is_system(&real),
            real: super::token::sym(&real),
            abs: super::token::sym(&abs),
            origin,
        })
    }

    /// `name` in the chain from index `from`: remembered for this request, and across
    /// requests while the directories it looked into are unchanged.
    fn search(&mut self, name: Sym, from: usize) -> Option<Found> {
        if let Some(done) = self.searched.get(&name) {
            if let Some((_, found)) = done.iter().find(|(k, _)| *k == from) {
                return found.clone();
            }
        }
        let remembered = lock(&self.caches.searches)
            .get(&name)
            .and_then(|m| m.get(&(self.context, from)))
            .cloned();
        let found = match remembered {
            Some(s) if self.stamps_hold(&s.dirs) => {
                let found = s.found.clone();
                self.remembered.push(s);
                found
            }
            _ => {
                self.look.start_touching();
                let mut found = None;
                let mut probes = Vec::new();
                for k in from..self.chain.dirs.len() {
                    let dir = self.chain.dirs[k].clone();
                    // The path `find` looks up.
                    let probe = join(self.cwd, &join(&dir, name.as_str()));
                    found = self.find(&dir, name.as_str(), Origin::Chain(k));
                    probes.push((probe, found.is_some()));
                    if found.is_some() {
                        break;
                    }
                }
                let (touched, untrusted) = self.look.touched_since_start();
                let dirs: Option<Vec<_>> = touched
                    .into_iter()
                    .map(|d| self.look.dir_stamp(&d).map(|st| (d, st)))
                    .collect();
                if let (Some(dirs), false) = (dirs, untrusted) {
                    let system_misses = (probes.iter().enumerate())
                        .filter(|(_, (p, file))| !file && self.is_system(p))
                        .map(|(i, _)| i as u32)
                        .collect();
                    let search = Arc::new(Search {
                        found: found.clone(),
                        dirs: self.caches.stamped(dirs),
                        probes: probes.into(),
                        system_misses,
                    });
                    lock(&self.caches.searches)
                        .entry(name)
                        .or_default()
                        .insert((self.context, from), search);
                }
                found
            }
        };
        self.searched
            .entry(name)
            .or_default()
            .push((from, found.clone()));
        found
    }

    /// Whether each directory of a remembered search's list has the stamp the list says,
    /// asked once per list in a request; a list that holds is one this request depends on.
    fn stamps_hold(&mut self, dirs: &StampedDirs) -> bool {
        if let Some(&holds) = self.stamps_found.get(&dirs.as_ptr()) {
            return holds;
        }
        let holds = (dirs.iter()).all(|(d, st)| self.look.dir_stamp(d) == Some(*st));
        self.stamps_found.insert(dirs.as_ptr(), holds);
        if holds {
            self.dirs_remembered.push(dirs.clone());
        }
        holds
    }

    /// Where `#include` (`next`: `#include_next`) of `name` in file `f` finds it. `Err`
    /// for an absolute name outside the system dirs (not covered).
    fn resolve(
        &mut self,
        angle: bool,
        name: Sym,
        next: bool,
        f: &Found,
    ) -> Result<Option<Found>, String> {
        if name.as_str().starts_with('/') {
            let found = self.find("", name.as_str(), Origin::Source);
            return match found {
                Some(found) if !found.system => {
                    let name = name.as_str();
                    Err(format!("Filepath must be relative but isn't: '{name}'."))
                }
                found => Ok(found),
            };
        }
        Ok(match (next, f.origin) {
            (true, Origin::Chain(k)) => self.search(name, k + 1),
            // clang takes it as an `#include` (and warns); GCC searches the whole chain.
            (true, Origin::Includer) if !self.compiler.clang => self.search(name, 0),
            _ if angle => self.search(name, self.chain.bracket),
            _ => {
                let dir = dirname(f.spelled.as_str());
                match self.find(&dir, name.as_str(), Origin::Includer) {
                    Some(found) => Some(found),
                    None => self.search(name, 0),
                }
            }
        })
    }

    /// Whether `real` is under one of the compiler's system directories (not shipped).
    fn is_system(&self, real: &str) -> bool {
        self.system.iter().any(|d| under(real, d))
    }

    /// Notes that the preprocessor opens `f`.
    fn record(&mut self, f: &Found) {
        if self.seen_paths.insert(f.spelled) {
            self.closure.paths.push((f.abs, f.real));
        }
        if f.system {
            return;
        }
        let spelled = f.spelled.as_str();
        let abs_name = spelled.starts_with('/').then(|| spelled.to_string());
        match self.in_closure.get(&f.real) {
            Some(&i) => {
                let file = &mut self.closure.files[i];
                if file.abs_name.is_none() {
                    file.abs_name = abs_name;
                }
                if file.key.is_none() {
                    file.key = self.lexed.get(&f.real).map(|(k, ..)| *k);
                }
            }
            None => {
                self.in_closure.insert(f.real, self.closure.files.len());
                let key = self.lexed.get(&f.real).map(|(k, ..)| *k);
                self.closure.files.push(ClosureFile {
                    realpath: f.real.as_str().to_string(),
                    abs_name,
                    key,
                });
            }
        }
    }

    /// The directives of `real` in the version this request reads (the first it read).
    fn directives(&mut self, real: Sym) -> Result<&'a LexedFile, String> {
        if let Some(&(.., found)) = self.lexed.get(&real) {
            return Ok(found);
        }
        let watcher = (self.caches.watcher.as_ref()).map(|w| (w, &mut self.look.vouched));
        let (key, lexed, data) = self.caches.lex.directives(real, self.mode, watcher)?;
        // Kept for the mirror, which would read a file it ships again (a source file is
        // read for the first time by its own request).
        if let Some(data) = data.filter(|_| !self.is_system(real.as_str())) {
            self.contents.insert(real.as_str().to_string(), (key, data));
        }
        let kept = self.keep.keep(lexed.clone());
        self.lexed.insert(real, (key, lexed, kept));
        Ok(kept)
    }

    /// Walks file `f`.
    fn walk(&mut self, f: Found) -> Result<(), String> {
        if self.once.contains(&f.real) {
            // Not read again, but found again: under this name too the host must find it
            // (a `#pragma once` header reached through a symlink, or by a name with `..`).
            self.record(&f);
            return Ok(());
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            // GCC stops with an error here; so will the host.
            self.record(&f);
            return Ok(());
        }
        let ds = self.directives(f.real)?;
        self.record(&f);
        if self.uncertain == 0 {
            self.entered.insert(f.real);
        }
        self.walks += 1;
        // The source is walked at the top; an absolute `#include` is found as a source.
        let index = match (&f.origin, self.depth) {
            (Origin::Source, 0) => None,
            _ => {
                let parent = self.entering.last().copied().flatten();
                self.closure.entered.push((f.spelled, parent));
                Some(self.closure.entered.len() - 1)
            }
        };
        // The thread's CPU clock costs a system call, the wall clock none: a thread has
        // not spent more CPU than the time that passed, so its clock is read only once
        // that is over the limit (and looked at every few files).
        if self.walks % 32 == 0
            && self.started.elapsed() > self.limit
            && thread_cpu().saturating_sub(self.start_cpu) > self.limit
        {
            return Err(format!(
                "Bailing out because include server spent more than {:.1}s user time \
                 handling request",
                self.limit.as_secs_f64()
            ));
        }
        self.depth += 1;
        self.entering.push(index);
        let r = self.run(&f, ds);
        self.entering.pop();
        self.depth -= 1;
        r
    }

    fn run(&mut self, f: &Found, ds: &'a LexedFile) -> Result<(), String> {
        let uncertain_before = self.uncertain;
        let mut groups: Vec<Group> = Vec::new();
        let n = ds.len();
        let mut i = 0;
        while i < n {
            match &ds[i] {
                Directive::If { elif: false, .. } | Directive::Ifdef { elif: false, .. } => {
                    groups.push(Group::default());
                    i = self.choose(f, ds, i, &mut groups);
                }
                Directive::If { .. } | Directive::Ifdef { .. } | Directive::Else { .. } => {
                    // The end of a branch that was walked.
                    let Some(g) = groups.last_mut() else {
                        i += 1;
                        continue;
                    };
                    if g.uncertain {
                        g.uncertain = false;
                        self.uncertain -= 1;
                    }
                    if g.decided {
                        i = to_endif(ds, i) + 1;
                        groups.pop();
                    } else {
                        i = self.choose(f, ds, i, &mut groups);
                    }
                }
                Directive::Endif => {
                    if groups.pop().is_some_and(|g| g.uncertain) {
                        self.uncertain -= 1;
                    }
                    i += 1;
                }
                Directive::Include {
                    next,
                    import,
                    angle,
                    name,
                } => {
                    self.include_name(f, *next, *import, *angle, *name)?;
                    i += 1;
                }
                Directive::Computed { next, import, slot } => {
                    self.computed_include(f, *next, *import, &ds.toks[*slot as usize])?;
                    i += 1;
                }
                Directive::Define { name, m } => {
                    self.table.define(*name, m, self.uncertain > 0);
                    i += 1;
                }
                Directive::Undef(name) => {
                    self.table.undef(*name, self.uncertain > 0);
                    i += 1;
                }
                Directive::Once => {
                    self.close(f.real);
                    i += 1;
                }
                Directive::PushMacro { name, maybe } => {
                    self.table.push(*name, *maybe || self.uncertain > 0);
                    i += 1;
                }
                Directive::PopMacro { name, maybe } => {
                    self.table.pop(*name, *maybe || self.uncertain > 0);
                    i += 1;
                }
                // The host looks the file up too, and stops when it is not there: shipped,
                // not walked.
                Directive::Dependency { angle, name } => {
                    if let Some(found) = self.resolve(*angle, *name, false, f)? {
                        self.record(&found);
                    }
                    i += 1;
                }
            }
        }
        // Conditionals the file left open (a GCC error).
        self.uncertain = uncertain_before;
        Ok(())
    }

    /// Makes `real` once-only (unless the walk may not really be here).
    fn close(&mut self, real: Sym) {
        if self.uncertain == 0 {
            self.once.insert(real);
        }
    }

    /// Picks the branch of the top group to walk, starting from the conditional at `i`
    /// (`#if`, `#elif`, `#else` or `#endif`); returns where the walk goes on.
    fn choose(&mut self, f: &Found, ds: &LexedFile, mut i: usize, groups: &mut [Group]) -> usize {
        loop {
            let Some(d) = ds.get(i) else {
                return ds.len();
            };
            let (truth, skip) = match d {
                Directive::Endif => {
                    // No branch taken: the caller's loop pops the group at `#endif`.
                    return i;
                }
                Directive::Else { .. } => (Truth::True, 0),
                Directive::If { skip, slot, .. } => (self.condition(f, ds, *slot), *skip),
                Directive::Ifdef {
                    name, negate, skip, ..
                } => (self.is_defined(*name, *negate), *skip),
                _ => unreachable!("choose starts at a conditional"),
            };
            let g = groups.last_mut().expect("a group is open");
            match truth {
                Truth::False => {
                    i = skip as usize;
                    continue;
                }
                Truth::True => g.decided = true,
                Truth::Unknown => {}
            }
            if g.maybe || truth == Truth::Unknown {
                g.uncertain = true;
                self.uncertain += 1;
            }
            g.maybe = true;
            return i + 1;
        }
    }

    fn is_defined(&self, name: Option<Sym>, negate: bool) -> Truth {
        let Some(name) = name else {
            return Truth::Unknown;
        };
        let Some(defined) = self.table.is_defined(name) else {
            return Truth::Unknown;
        };
        if defined != negate {
            Truth::True
        } else {
            Truth::False
        }
    }

    /// The truth of the `#if` condition in slot `slot` of file `f` (whose directives are
    /// `ds`, of the version read): remembered with that version, unless it asks
    /// `__has_include`.
    fn condition(&mut self, f: &Found, ds: &LexedFile, slot: u32) -> Truth {
        let ckey = (slot, self.context);
        if let Some(truth) = ds.conditions.find(ckey, &self.table) {
            return truth;
        }
        self.table.note_reads(true);
        let (truth, asked_files) = self.evaluate(&ds.toks[slot as usize], f, ds);
        let mut seen = FxSet::default();
        let reads: Option<Vec<_>> = self
            .table
            .take_reads()
            .into_iter()
            .filter(|n| seen.insert(*n))
            .map(|n| self.table.exact(n).map(|v| (n, v)))
            .collect();
        self.table.note_reads(false);
        // What `__has_include` found depends on the files, not on the macros: not kept,
        // however it was reached (directly or through a macro).
        if let (Some(reads), false) = (reads, asked_files) {
            let c = Condition {
                context: self.context,
                reads: reads.into(),
                truth,
            };
            ds.conditions.keep(ckey, c);
        }
        truth
    }

    /// The truth of an `#if` condition in file `f`, and whether it asked `__has_include`;
    /// the files `__has_include` finds are shipped.
    fn evaluate(&mut self, expr: &[Tok], f: &Found, ds: &LexedFile) -> (Truth, bool) {
        let table = std::mem::take(&mut self.table);
        let cplusplus = self.cplusplus;
        let mut ask = Ask {
            walk: self,
            file: f,
            directives: ds,
            table: &table,
            probed: Vec::new(),
            asked: false,
        };
        let truth = expr::evaluate(expr, &table, cplusplus, &mut ask);
        let (probed, asked) = (ask.probed, ask.asked);
        self.table = table;
        for p in probed {
            self.record(&p);
        }
        (truth, asked)
    }

    /// Walks the headers the computed include `toks` in `f` can name.
    fn computed_include(
        &mut self,
        f: &Found,
        next: bool,
        import: bool,
        toks: &[Tok],
    ) -> Result<(), String> {
        let (names, ambiguous) = (self.computed(toks, f.spelled.as_str()))
            .map_err(|e| format!("File: '{}': computed include: {e}", f.real.as_str()))?;
        // The one name of an include the walk is certain to reach, found nowhere: GCC
        // would stop there, but clang may have spelled it otherwise (its spaces in a
        // `<...>` made of macro arguments are not GCC's), so the preprocessor's own
        // answer is not known here.
        let certain = self.uncertain == 0 && !ambiguous;
        // Of several names, the preprocessor includes one: each is walked as a branch
        // that may not be taken (its definitions possibilities, not certainties).
        let several = u32::from(names.len() > 1);
        for (angle, name) in names {
            self.uncertain += several;
            let found = self.include_name(f, next, import, angle, super::token::sym(&name));
            self.uncertain -= several;
            if !found? && certain {
                let (open, close) = if angle { ('<', '>') } else { ('"', '"') };
                return Err(format!(
                    "File: '{}': computed include: {open}{name}{close} not found",
                    f.real.as_str()
                ));
            }
        }
        Ok(())
    }

    /// Walks the header `name` (`<name>` when `angle`) that `f` includes; whether it was
    /// found.
    fn include_name(
        &mut self,
        f: &Found,
        next: bool,
        import: bool,
        angle: bool,
        name: Sym,
    ) -> Result<bool, String> {
        // Not found: GCC stops with an error, and so will the host.
        let Some(found) = self.resolve(angle, name, next, f)? else {
            return Ok(false);
        };
        // `#import` of a file already entered does not enter it again.
        if import && self.entered.contains(&found.real) {
            return Ok(true);
        }
        let real = import.then_some(found.real);
        self.walk(found)?;
        if let Some(real) = real {
            self.close(real);
        }
        Ok(true)
    }

    /// The headers a computed include can name: one, or one per combination of the
    /// alternatives of the macros it uses (then `true`).
    fn computed(&self, toks: &[Tok], file: &str) -> Result<(Vec<(bool, String)>, bool), String> {
        let e = macros::expand_in(&self.table, toks, file);
        if e.failed {
            return Err(format!("cannot expand '{}'", super::token::spell(toks)));
        }
        if !e.ambiguous {
            // Not a header name (`#include __FILE__`, a macro left undefined): the
            // preprocessor's answer is not known here.
            return macros::header_name(&e.toks)
                .map(|h| (vec![h], false))
                .ok_or_else(|| format!("'{}' does not name a header", super::token::spell(toks)));
        }
        // The names with alternatives that the expansion can reach.
        let mut queue: Vec<Sym> = idents(toks).collect();
        let mut seen: FxSet<Sym> = queue.iter().copied().collect();
        let mut choices: Vec<(Sym, Vec<Option<Arc<Macro>>>)> = Vec::new();
        while let Some(name) = queue.pop() {
            let alts = self.table.alternatives(name);
            for m in alts.iter().flatten() {
                for id in idents(m.body()) {
                    if seen.insert(id) {
                        queue.push(id);
                    }
                }
            }
            if alts.len() > 1 {
                choices.push((name, alts));
            }
        }
        let combinations = choices
            .iter()
            .try_fold(1usize, |n, (_, a)| n.checked_mul(a.len()))
            .filter(|&n| n <= MAX_COMBINATIONS)
            .ok_or_else(|| {
                format!(
                    "'{}' has more than {MAX_COMBINATIONS} possible values",
                    super::token::spell(toks)
                )
            })?;
        let mut out = Vec::new();
        for mut c in 0..combinations {
            let mut table = self.table.clone();
            for (name, alts) in &choices {
                table.choose(*name, alts[c % alts.len()].clone());
                c /= alts.len();
            }
            let e = macros::expand_in(&table, toks, file);
            if let Some(h) = macros::header_name(&e.toks).filter(|_| !e.failed) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        Ok((out, true))
    }
}

/// What a condition in file `file` asks the walk and the compiler.
struct Ask<'w, 'a> {
    walk: &'w mut Walk<'a>,
    file: &'w Found,
    /// The file's directives: its other feature tests are asked at the same time.
    directives: &'w LexedFile,
    /// The macros of this point.
    table: &'w Table<'a>,
    /// The files `__has_include` found.
    probed: Vec<Found>,
    /// Whether `__has_include` was asked.
    asked: bool,
}

impl expr::Oracle for Ask<'_, '_> {
    fn has_include(&mut self, angle: bool, name: &str, next: bool) -> Option<bool> {
        self.asked = true;
        match (self.walk).resolve(angle, super::token::sym(name), next, self.file) {
            Ok(Some(found)) => {
                self.probed.push(found);
                Some(true)
            }
            Ok(None) => Some(false),
            Err(_) => None,
        }
    }

    fn feature(&mut self, test: &str) -> Option<i64> {
        let (ds, table) = (self.directives, self.table);
        // With the file's other tests, as its conditions expand now (glibc's tests come
        // through macros such as `__glibc_has_attribute`).
        self.walk.compiler.feature(test, || {
            ds.iter()
                .flat_map(|d| match d {
                    Directive::If { slot, .. } => {
                        let expr = &ds.toks[*slot as usize];
                        expr::feature_tests(&macros::expand(table, expr).toks)
                    }
                    _ => Vec::new(),
                })
                .collect()
        })
    }
}

fn idents(toks: &[Tok]) -> impl Iterator<Item = Sym> + '_ {
    toks.iter().filter(|t| t.kind == Kind::Ident).map(|t| t.sym)
}

/// The `#endif` of the group whose `#elif` or `#else` is at `i`.
fn to_endif(ds: &[Directive], mut i: usize) -> usize {
    while let Some(d) = ds.get(i) {
        i = match d {
            Directive::If { skip, .. }
            | Directive::Ifdef { skip, .. }
            | Directive::Else { skip } => *skip as usize,
            _ => return i,
        };
    }
    ds.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_list_is_kept_once_and_let_go_when_unused() {
        let caches = Caches::default();
        let list = |n: usize| vec![(format!("/d{n}"), None)];
        let a = caches.stamped(list(0));
        assert!(Arc::ptr_eq(&a, &caches.stamped(list(0))));
        // Lists nobody holds any more go when the set has doubled; held ones stay.
        for n in 1..1000 {
            caches.stamped(list(n));
        }
        let (set, _) = &*lock(&caches.stamped);
        assert!(set.len() < 200, "{} kept", set.len());
        assert!(set.contains(&a));
    }

    #[test]
    fn a_file_is_read_whole_whatever_size_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.h");
        let content: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let path = path.to_str().unwrap();
        for size in [0, 1, 99_999, 100_000, 100_001, 1 << 20] {
            let (data, key) = FileKey::read(path, size).unwrap();
            assert!(
                data == content,
                "expecting {size} bytes, read {}",
                data.len()
            );
            assert_eq!(key, FileKey::stat(path).unwrap());
        }
    }

    #[test]
    fn python_paths() {
        assert_eq!(join("", "a.h"), "a.h");
        assert_eq!(join("/x", "a.h"), "/x/a.h");
        assert_eq!(join("/x/", "a.h"), "/x/a.h");
        assert_eq!(join("/x", "/a.h"), "/a.h");
        assert_eq!(dirname("a.h"), "");
        assert_eq!(dirname("/a.h"), "/");
        assert_eq!(dirname("sub/../b.h"), "sub/..");
        assert_eq!(dirname("/x//y"), "/x");
    }
}
