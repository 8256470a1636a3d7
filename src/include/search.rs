//! GCC's include search: the chain of directories of one command with GCC's duplicate
//! removal (`incpath.c`), and the file-system lookups behind it, cached for the whole
//! build and revalidated so that a header created, removed or renamed during the build is
//! seen by the next request.
//!
//! The chain is `-iquote` dirs, then the bracket chain: `-I` dirs, then `-isystem` dirs,
//! the compiler's built-in dirs and `-idirafter` dirs. A quoted name is looked up first in
//! its includer's directory, then from the start of the chain; an angled one from the
//! start of the bracket chain; `#include_next` from the directory after the one where the
//! current file was found. Nonexistent dirs are dropped, so are later duplicates (by
//! device and inode), an `-I` or `-iquote` dir that is also a system-chain dir, and the
//! last dir of a chain when it repeats the first of the next, as GCC does. clang removes
//! the `-iquote` dirs' duplicates among themselves only.
//!
//! What a directory holds is cached per directory with its (inode, mtime, ctime): creating,
//! removing or renaming a name in it changes its mtime, and each request stats each
//! directory it uses once before trusting the cache, unless the change notices vouch that
//! the directory, its names and the path to it are unchanged since its last `stat`. A
//! directory changed within the last [`TOO_NEW`] is not trusted (timestamps are coarser
//! than the time between two writes), and names that are symlinks are not cached (their
//! target may change without the directory changing). Content is the lexer cache's
//! business.

use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::closure::{dirname, join};
use super::token::FxMap;
use super::watch::{lexical, Vouched, Watcher};

/// How recent a change must be for a cached answer not to be trusted, on a filesystem
/// with sub-second timestamps. Linux stamps a change with a clock that moves once per
/// tick (1 to 10 ms), so a second write within the tick of the first can leave the same
/// stamp; after ten slow ticks, any further write gets a later one.
pub const TOO_NEW: Duration = Duration::from_millis(100);

/// The same where timestamps are whole seconds (FAT's are 2 s): seen as both the
/// modification and the change time having no fraction of a second, which a fine
/// filesystem gives one stamp in a billion (that file is then trusted later than it
/// could be, never earlier).
pub const TOO_NEW_COARSE: Duration = Duration::from_secs(2);

/// Whether a file or directory last modified at `mtime_ns` and changed at `ctime_ns`
/// (since the epoch) changed too recently for a cached answer to be trusted.
pub fn recent(mtime_ns: i128, ctime_ns: i128) -> bool {
    const NS: i128 = 1_000_000_000;
    let margin = if mtime_ns % NS == 0 && ctime_ns % NS == 0 {
        TOO_NEW_COARSE
    } else {
        TOO_NEW
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as i128 - mtime_ns.max(ctime_ns) < margin.as_nanos() as i128
}

/// The search directories of one command, as spelled (relative to its working
/// directory, or absolute), after duplicate removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub dirs: Vec<String>,
    /// Where the bracket chain starts (after the `-iquote` dirs).
    pub bracket: usize,
    /// Every directory the command names, as found when the chain was made: which of
    /// them exist, and which are the same directory, decide what the chain is.
    pub made_of: Vec<(String, Option<DirId>)>,
}

/// A directory's device and inode: what GCC's duplicate removal compares.
pub type DirId = (u64, u64);

/// The id of directory `path`; `None` when it is not one.
pub fn dir_id(path: &str) -> Option<DirId> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Whether the chain made of `made_of` would be made the same now.
pub fn chain_holds(made_of: &[(String, Option<DirId>)]) -> bool {
    made_of.iter().all(|(d, id)| dir_id(d) == *id)
}

impl Chain {
    /// GCC's chain from the four lists of the command line and the built-in dirs; or
    /// `clang`'s, which removes duplicates from the `-iquote` dirs among themselves only.
    /// `id` says what each directory is now ([`dir_id`], or [`Lookups::dir_id`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cwd: &str,
        quote: &[String],
        bracket: &[String],
        isystem: &[String],
        builtin: &[String],
        after: &[String],
        clang: bool,
        id: &mut dyn FnMut(&str) -> Option<DirId>,
    ) -> Chain {
        let mut made_of = Vec::new();
        let mut with_ids = |dirs: Vec<&String>| -> Vec<(String, DirId)> {
            dirs.into_iter()
                .filter_map(|d| {
                    let path = join(cwd, d);
                    let id = id(&path);
                    made_of.push((path, id));
                    id.map(|i| (d.clone(), i))
                })
                .collect()
        };
        let system_all: Vec<&String> = isystem.iter().chain(builtin).chain(after).collect();
        let system = dedup(with_ids(system_all), &[], None);
        let bracket = dedup(
            with_ids(bracket.iter().collect()),
            &system,
            system.first().map(|s| s.1),
        );
        let quote = match clang {
            true => dedup(with_ids(quote.iter().collect()), &[], None),
            false => {
                let join_quote = bracket.first().or(system.first()).map(|s| s.1);
                dedup(with_ids(quote.iter().collect()), &system, join_quote)
            }
        };
        let n = quote.len();
        Chain {
            dirs: quote
                .into_iter()
                .chain(bracket)
                .chain(system)
                .map(|(d, _)| d)
                .collect(),
            bracket: n,
            made_of,
        }
    }
}

/// GCC's `remove_duplicates`: drops the dirs of `head` that are in `system`, that repeat
/// an earlier one, or that are last and repeat `join`.
fn dedup(
    head: Vec<(String, DirId)>,
    system: &[(String, DirId)],
    join: Option<DirId>,
) -> Vec<(String, DirId)> {
    let mut out: Vec<(String, DirId)> = Vec::with_capacity(head.len());
    let last = head.len().saturating_sub(1);
    for (k, (d, id)) in head.into_iter().enumerate() {
        let drop = system.iter().any(|s| s.1 == id)
            || out.iter().any(|o| o.1 == id)
            || (k == last && join == Some(id));
        if !drop {
            out.push((d, id));
        }
    }
    out
}

/// What identifies one state of a directory's list of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    id: DirId,
    mtime_ns: i128,
    ctime_ns: i128,
    /// Whether it is a directory (a search directory that is a file is none).
    dir: bool,
}

impl Stamp {
    /// The directory's device and inode.
    pub fn id(&self) -> DirId {
        self.id
    }

    /// Whether `other` is a state of the same directory (not one put in its place, or
    /// reached through a link that now points elsewhere, or mounted over).
    pub fn same_dir(&self, other: &Stamp) -> bool {
        self.id == other.id
    }
}

/// What a directory was found to hold (`None` stamp: it did not exist).
#[derive(Default)]
struct DirFacts {
    stamp: Option<Stamp>,
    /// The batch of change notices read before the `stat` that last found `stamp`: while
    /// the watches vouch for the directory since then, it is not `stat`ed again.
    checked: u64,
    /// Name → whether it is a regular file.
    names: FxMap<String, bool>,
    /// For a directory that did not exist: its parent's stamp (`None`: the parent was
    /// missing too), taken before it was found missing. Creating it would have changed
    /// that stamp, so while the parent keeps it the directory is still missing, and needs
    /// no `stat` to say so (a search of `sys/x.h` along a chain of a dozen directories
    /// meets a dozen missing `sys`).
    parent: Option<Option<Stamp>>,
}

/// The lookups of a build, shared by all its requests.
#[derive(Default)]
pub struct FsCache {
    dirs: Mutex<FxMap<String, DirFacts>>,
    /// Path → whether a regular file was there, and the batch of change notices read
    /// before the `lstat` that said so: while its directory's watch has no later notice
    /// about the name (nor the path to it), the answer holds whatever else changed there.
    /// A build writes its objects next to its sources, which changes their directory's
    /// stamp (and forgets its [`DirFacts`]) between every two requests.
    names: Mutex<FxMap<String, (bool, u64)>>,
}

impl FsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, FxMap<String, DirFacts>> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn names(&self) -> std::sync::MutexGuard<'_, FxMap<String, (bool, u64)>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lookups of one request: what was checked during it, over the shared cache.
pub struct Lookups<'a> {
    shared: &'a FsCache,
    /// The change notices that vouch for directories' stamps between requests (a later
    /// request of a build otherwise `stat`s a dozen directories again).
    watcher: Option<&'a Watcher>,
    /// What this request found of the paths the notices vouched for (its files' too).
    pub vouched: Vouched,
    /// Directories checked in this request: whether the shared facts can be trusted for
    /// them, and their stamp.
    checked: FxMap<String, (bool, Option<Stamp>)>,
    /// Absolute path → (is a regular file, is a symlink), this request.
    memo: FxMap<String, (bool, bool)>,
    /// Directory realpaths, this request.
    real_dirs: FxMap<String, Option<String>>,
    /// The directories looked into since the caller last took them, and whether a lookup
    /// could not be cached (a recent directory, a symlinked name).
    touched: Vec<String>,
    untrusted: bool,
    /// Where the current [`Lookups::start_touching`] began in `touched`, and whether it
    /// met a lookup that could not be cached.
    mark: (usize, bool),
    /// Whether a lookup of this request met a symlinked name: its target may change
    /// without any stamp showing it, so nothing that depends on it can be checked later.
    tainted: bool,
}

/// The directories some lookups looked into, and whether one could not be cached.
pub type Touched = (Vec<String>, bool);

/// The directories a request looked into, and the paths it looked up with whether each
/// was a regular file.
pub type Looked = (Vec<String>, Vec<(String, bool)>);

fn ns(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// The stamp of `dir` now; `None` when it cannot be `stat`ed.
fn stamp_of(dir: &str) -> Option<Stamp> {
    std::fs::metadata(dir).ok().map(|m| Stamp {
        id: (m.dev(), m.ino()),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        dir: m.is_dir(),
    })
}

impl<'a> Lookups<'a> {
    pub fn new(shared: &'a FsCache, watcher: Option<&'a Watcher>) -> Lookups<'a> {
        Lookups {
            shared,
            watcher,
            vouched: Vouched::default(),
            checked: FxMap::default(),
            memo: FxMap::default(),
            real_dirs: FxMap::default(),
            touched: Vec::new(),
            untrusted: false,
            mark: (0, false),
            tainted: false,
        }
    }

    /// Whether the shared facts about `dir` (absolute) can be used in this request, and
    /// its stamp.
    fn check(&mut self, dir: &str) -> (bool, Option<Stamp>) {
        if let Some(&c) = self.checked.get(dir) {
            return c;
        }
        let parent = Some(dirname(dir)).filter(|p| p != dir && !p.is_empty());
        let kept = (self.shared.lock().get(dir)).map(|f| (f.stamp, f.checked, f.parent));
        match kept {
            // Missing while its parent keeps the stamp it had then.
            Some((None, _, Some(then)))
                if (parent.as_ref()).is_some_and(|p| self.check(p) == (true, then)) =>
            {
                self.checked.insert(dir.to_string(), (true, None));
                return (true, None);
            }
            // Unchanged since its last `stat`, by the change notices.
            Some((Some(stamp), checked, _))
                if (self.watcher)
                    .is_some_and(|w| w.dir_holds(dir, stamp.id(), checked, &mut self.vouched)) =>
            {
                let trusted = !recent(stamp.mtime_ns, stamp.ctime_ns);
                self.checked.insert(dir.to_string(), (trusted, Some(stamp)));
                // Its notices are trusted only when no symbolic link led to it as it was
                // watched, and nothing on its path changed since: it is its own realpath
                // (a `canonicalize` would `readlink` each directory above it).
                self.real_dirs.insert(dir.to_string(), Some(lexical(dir)));
                return (trusted, Some(stamp));
            }
            _ => {}
        }
        let batch = self.watcher.map_or(0, Watcher::batch);
        // The parent's stamp must come from before the `stat` that finds this missing.
        let trusted_state = |&(trusted, s): &(bool, Option<Stamp>)| trusted.then_some(s);
        let parent_before = parent.as_ref().and_then(|p| self.checked.get(p.as_str()));
        let mut parent_state = parent_before.and_then(trusted_state);
        let mut stamp = stamp_of(dir);
        if let (None, None, Some(p)) = (stamp, parent_before, &parent) {
            parent_state = trusted_state(&self.check(p));
            stamp = stamp_of(dir);
        }
        // A name made in it before this `stat` has its notice queued now: read, so that a
        // name's kept answer older than the stamp recorded here is not taken
        // ([`Watcher::name_holds`]).
        if let Some(w) = self.watcher {
            w.now();
        }
        let trusted = stamp.is_none_or(|s| !recent(s.mtime_ns, s.ctime_ns));
        if trusted {
            let mut dirs = self.shared.lock();
            let facts = dirs.entry(dir.to_string()).or_default();
            if facts.stamp != stamp || stamp.is_none() {
                *facts = DirFacts {
                    stamp,
                    checked: batch,
                    names: FxMap::default(),
                    parent: parent_state.filter(|_| stamp.is_none()),
                };
            } else {
                facts.checked = facts.checked.max(batch);
            }
        }
        self.checked.insert(dir.to_string(), (trusted, stamp));
        (trusted, stamp)
    }

    /// The stamp of `dir` now, when it is old enough to be trusted.
    pub fn dir_stamp(&mut self, dir: &str) -> Option<Option<Stamp>> {
        let (trusted, stamp) = self.check(dir);
        trusted.then_some(stamp)
    }

    /// The device and inode of directory `path` now; `None` when it is not one. Asked of
    /// the same directories by every request (its search chain, its compiler's missing
    /// ones), and answered by the change notices without a `stat` while they vouch for it.
    pub fn dir_id(&mut self, path: &str) -> Option<DirId> {
        self.check(path).1.filter(|s| s.dir).map(|s| s.id)
    }

    /// The stamp of `dir` now (`None`: it does not exist), and whether it is old enough
    /// to be trusted.
    pub fn dir_state(&mut self, dir: &str) -> (bool, Option<Stamp>) {
        self.check(dir)
    }

    /// The paths this request looked up and found no regular file at.
    pub fn missing(&self) -> impl Iterator<Item = &str> {
        (self.memo.iter())
            .filter(|(_, (file, _))| !file)
            .map(|(p, _)| p.as_str())
    }

    /// Every directory this request looked into, every path it looked up with whether it
    /// was a regular file; `None` when a lookup met a symlinked name. The request's
    /// lookups end here.
    pub fn all_looked(&mut self) -> Option<Looked> {
        if self.tainted {
            return None;
        }
        let paths = std::mem::take(&mut self.memo).into_iter();
        let paths = paths.map(|(p, (file, _))| (p, file)).collect();
        Some((std::mem::take(&mut self.touched), paths))
    }

    /// Starts a group of lookups whose directories [`Lookups::touched_since_start`] gives.
    pub fn start_touching(&mut self) {
        self.mark = (self.touched.len(), self.untrusted);
        self.untrusted = false;
    }

    /// The directories looked into since [`Lookups::start_touching`].
    pub fn touched_since_start(&mut self) -> Touched {
        let (at, before) = self.mark;
        let dirs = self.touched[at.min(self.touched.len())..].to_vec();
        let untrusted = self.untrusted;
        self.untrusted |= before;
        (dirs, untrusted)
    }

    /// Whether `path` (absolute) is a regular file, through symlinks, as GCC opens it;
    /// and whether its last component is a symlink.
    pub fn is_file(&mut self, path: &str) -> (bool, bool) {
        let (dir, name) = match path.rfind('/') {
            Some(i) => (dirname(path), &path[i + 1..]),
            None => (String::new(), path),
        };
        if self.touched.len() <= self.mark.0 || self.touched.last() != Some(&dir) {
            self.touched.push(dir.clone());
        }
        let (trusted, stamp) = self.check(&dir);
        self.untrusted |= !trusted;
        if let Some(&r) = self.memo.get(path) {
            self.untrusted |= r.1;
            self.tainted |= r.1;
            return r;
        }
        if trusted {
            let dirs = self.shared.lock();
            let known = dirs.get(&dir).and_then(|f| {
                if f.stamp.is_none() {
                    Some(false)
                } else {
                    f.names.get(name).copied()
                }
            });
            if let Some(file) = known {
                drop(dirs);
                self.memo.insert(path.to_string(), (file, false));
                return (file, false);
            }
        }
        if let (Some(w), Some(id)) = (self.watcher, stamp.map(|s| s.id)) {
            let kept = self.shared.names().get(path).copied();
            if let Some((file, checked)) = kept {
                if w.name_holds((&dir, name), id, checked, &mut self.vouched) {
                    self.memo.insert(path.to_string(), (file, false));
                    return (file, false);
                }
            }
        }
        let batch = self.watcher.map(Watcher::batch);
        let link = std::fs::symlink_metadata(path);
        let is_link = link.as_ref().is_ok_and(|m| m.file_type().is_symlink());
        let file = match &link {
            Ok(m) if !is_link => m.is_file(),
            Ok(_) => std::fs::metadata(path).is_ok_and(|m| m.is_file()),
            Err(_) => false,
        };
        self.untrusted |= is_link;
        self.tainted |= is_link;
        if let (Some(batch), false) = (batch, is_link) {
            self.shared.names().insert(path.to_string(), (file, batch));
        }
        if trusted && !is_link {
            let mut dirs = self.shared.lock();
            // Not into facts another request put in place since this one's stat: they
            // may be of a later state than the one this lookup saw.
            if let Some(f) = dirs.get_mut(&dir).filter(|f| f.stamp == stamp) {
                f.names.insert(name.to_string(), file);
            }
        }
        self.memo.insert(path.to_string(), (file, is_link));
        (file, is_link)
    }

    /// The realpath of `path` (absolute), a file this request found.
    pub fn realpath(&mut self, path: &str) -> Option<String> {
        let (file, link) = self.is_file(path);
        if !file {
            return None;
        }
        if link {
            return canonical(path);
        }
        let i = path.rfind('/')?;
        let dir = &path[..i.max(1)];
        let real_dir = match self.real_dirs.get(dir) {
            Some(r) => r.clone(),
            None => {
                let id = self.checked.get(dir).and_then(|(_, s)| *s).map(|s| s.id);
                let r = match (self.watcher, id) {
                    (Some(w), Some(id)) if w.own_realpath(dir, id, &mut self.vouched) => {
                        Some(lexical(dir))
                    }
                    _ => canonical(dir),
                };
                self.real_dirs.insert(dir.to_string(), r.clone());
                r
            }
        }?;
        let name = &path[i + 1..];
        Some(if real_dir == "/" {
            ["/", name].concat()
        } else {
            [real_dir.as_str(), "/", name].concat()
        })
    }
}

fn canonical(p: &str) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .and_then(|r| r.into_os_string().into_string().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn gcc_duplicate_removal() {
        let t = tempfile::tempdir().unwrap();
        let cwd = t.path().to_str().unwrap();
        for d in ["a", "b", "s", "q"] {
            fs::create_dir(t.path().join(d)).unwrap();
        }
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Chain::new(
            cwd,
            &v(&["q", "a", "missing"]),
            &v(&["a", "b", "./b/../a", "s", "b"]),
            &v(&["s"]),
            &v(&[]),
            &v(&["a"]),
            false,
            &mut dir_id,
        );
        // The system chain is s, then a (-idirafter): "a" goes from -iquote and -I, and
        // so do "./b/../a" (the same directory) and "s"; the second "b" repeats the first.
        assert_eq!(c.dirs, v(&["q", "b", "s", "a"]));
        assert_eq!(c.bracket, 1);
        // clang keeps the -iquote dirs that are in the system chain.
        let c = Chain::new(
            cwd,
            &v(&["q", "a", "missing", "q"]),
            &v(&["a", "b", "./b/../a", "s", "b"]),
            &v(&["s"]),
            &v(&[]),
            &v(&["a"]),
            true,
            &mut dir_id,
        );
        assert_eq!(c.dirs, v(&["q", "a", "b", "s", "a"]));
        assert_eq!(c.bracket, 2);
        let c = Chain::new(
            cwd,
            &v(&["q"]),
            &v(&["a", "b", "s"]),
            &v(&["s"]),
            &v(&[]),
            &v(&[]),
            false,
            &mut dir_id,
        );
        assert_eq!(c.dirs, v(&["q", "a", "b", "s"]));
    }

    #[test]
    fn lookups_see_new_files() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_str().unwrap();
        let f = format!("{dir}/x.h");
        let shared = FsCache::default();
        assert_eq!(Lookups::new(&shared, None).is_file(&f), (false, false));
        fs::write(&f, "").unwrap();
        assert_eq!(Lookups::new(&shared, None).is_file(&f), (true, false));
        std::os::unix::fs::symlink(&f, format!("{dir}/l.h")).unwrap();
        let mut l = Lookups::new(&shared, None);
        assert_eq!(l.is_file(&format!("{dir}/l.h")), (true, true));
        assert_eq!(l.realpath(&format!("{dir}/l.h")), canonical(&f));
        assert_eq!(l.is_file(&format!("{dir}/nodir/x.h")), (false, false));
    }

    /// Waits until `dir`'s last change is old enough for its stamp to be trusted.
    fn settle(dir: &str) {
        for _ in 0..300 {
            let s = stamp_of(dir).unwrap();
            if !recent(s.mtime_ns, s.ctime_ns) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{dir} stays too recent");
    }

    #[test]
    fn a_missing_directory_is_seen_once_created() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_str().unwrap();
        let shared = FsCache::default();
        let f = format!("{dir}/sub/x.h");
        let nested = format!("{dir}/a/b/y.h");
        settle(dir);
        // Found missing, then missing again from the parent's stamp alone.
        for _ in 0..2 {
            let mut l = Lookups::new(&shared, None);
            assert_eq!(l.is_file(&f), (false, false));
            assert_eq!(l.is_file(&nested), (false, false));
            assert_eq!(l.dir_state(&format!("{dir}/sub")), (true, None));
        }
        fs::create_dir_all(format!("{dir}/sub")).unwrap();
        fs::write(&f, "").unwrap();
        fs::create_dir_all(format!("{dir}/a/b")).unwrap();
        fs::write(&nested, "").unwrap();
        // While the parent is too recent to be trusted, and once it is not.
        assert_eq!(Lookups::new(&shared, None).is_file(&f), (true, false));
        assert_eq!(Lookups::new(&shared, None).is_file(&nested), (true, false));
        settle(dir);
        let mut l = Lookups::new(&shared, None);
        assert_eq!(l.is_file(&f), (true, false));
        assert_eq!(l.is_file(&nested), (true, false));
        assert!(l.dir_state(&format!("{dir}/sub")).1.is_some());
    }
}
