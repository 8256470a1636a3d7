//! Change notification for the files the include server has read, so that a request
//! need not stat every header again to know it is unchanged: a stat per file per request
//! was a fifth of a request's CPU.
//!
//! Each file kept is watched through inotify (its content and attributes), and so is
//! every directory on its path (names created, removed or renamed in it). A request
//! first takes the events queued so far ([`Watcher::drain`]); the kernel queues an event
//! before the write that causes it returns, so every change a build made before sending
//! a request is known when the request is answered. What a file's events change is a
//! count per path: a kept version is used without a stat while the count for its path
//! (and the global count that an overflowing queue, or a directory removed or renamed,
//! moves) is what it was before the version was read.
//!
//! inotify does not see changes made on another machine (network file systems) nor
//! through a shared memory map; files on a file system other than a local disk one are
//! therefore not watched, and are stat'ed at every request as before. A directory's
//! stamp is kept the same way, by the names created, removed or renamed in it (what it
//! holds stays [`search`](super::search)'s business).

use std::sync::{Arc, Mutex};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::closure::{dirname, join, lock};
use super::search::canonical;
use super::token::{FxMap, FxSet};

/// Where a file's version was taken from: the counts of the changes seen for its path (and
/// for the `levels - 1` directories above it, which did not exist) and for everything,
/// before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    global: u64,
    path: u64,
    levels: u32,
}

/// The inotify watches of a build.
pub struct Watcher {
    inotify: Option<Inotify>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The paths each watch is on (one inode may have several: hard links, `dir/.`),
    /// and whether each is a directory.
    watches: FxMap<WatchDescriptor, Vec<(Arc<str>, bool)>>,
    /// Paths (files and directories) watched, and directories known not to be on a local
    /// disk file system (not watched).
    watched: FxSet<Arc<str>>,
    unwatchable: FxSet<Arc<str>>,
    /// Changes seen per file path, and for everything.
    changes: FxMap<Arc<str>, u64>,
    global: u64,
}

/// What is watched on a file: anything that changes its content or its stat.
const FILE_EVENTS: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF);

/// What is watched on a directory: names appearing, going, or renamed (a file replaced by
/// a rename into place, as editors and package managers do); not the writes to the files
/// in it, which a build makes all the time to its objects.
const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// Local disk and memory file systems, whose changes inotify reports whoever makes them
/// on this machine (statfs's f_type).
const LOCAL_FILE_SYSTEMS: [i64; 5] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0xF2F5_2010, // f2fs
];

impl Default for Watcher {
    fn default() -> Watcher {
        Watcher {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok(),
            state: Mutex::default(),
        }
    }
}

impl Watcher {
    /// Takes the events queued so far. Called when a request starts.
    pub fn drain(&self) {
        let Some(inotify) = &self.inotify else { return };
        let mut state = lock(&self.state);
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                state.note(e.wd, e.mask, e.name.as_deref());
            }
        }
    }

    /// Watches `path` (a file's realpath) and the directories above it, when they are on
    /// a local disk file system; the mark to keep with the version read next. `None`
    /// when it is not watched: the file must be stat'ed at each request.
    pub fn watch(&self, path: &str) -> Option<Mark> {
        let inotify = self.inotify.as_ref()?;
        let mut state = lock(&self.state);
        if !state.watched.contains(path) {
            state.watch_dir(inotify, &dirname(path))?;
            let p: Arc<str> = path.into();
            let wd = inotify.add_watch(path, FILE_EVENTS).ok()?;
            state
                .watches
                .entry(wd)
                .or_default()
                .push((p.clone(), false));
            state.watched.insert(p);
        }
        Some(state.mark(path))
    }

    /// Watches directory `dir` (absolute) and those above it, as [`Watcher::watch`] does
    /// a file: the mark to keep with what a stat of it says next. Only a path without
    /// symlinks or `..` is watched: a link changed higher up would lead it elsewhere
    /// without an event on its own name.
    pub fn watch_dir(&self, dir: &str) -> Option<Mark> {
        let inotify = self.inotify.as_ref()?;
        let mut state = lock(&self.state);
        state.watch_dir(inotify, dir)?;
        Some(state.mark(dir))
    }

    /// Watches the directory that would hold `path` (absolute), which does not exist,
    /// for its name to appear: the mark to keep with that absence.
    pub fn watch_absent(&self, path: &str) -> Option<Mark> {
        let inotify = self.inotify.as_ref()?;
        let mut state = lock(&self.state);
        // Up to the first directory that exists (`bits/types` where there is no `bits`):
        // any of the missing names appearing changes the mark.
        let mut missing = vec![path.to_string()];
        loop {
            let parent = dirname(missing.last()?);
            if parent.is_empty() || parent == "/" && missing.len() > 1 {
                return None;
            }
            match std::fs::symlink_metadata(&parent) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(parent),
                Err(_) => return None,
                Ok(_) => {
                    state.watch_dir(inotify, &parent)?;
                    break;
                }
            }
        }
        Some(state.mark_levels(path, missing.len() as u32))
    }

    /// Whether nothing was seen to change `path` since `mark` was taken.
    pub fn unchanged(&self, path: &str, mark: Mark) -> bool {
        self.inotify.is_some() && lock(&self.state).mark_levels(path, mark.levels) == mark
    }
}

impl State {
    /// Watches `dir` and the directories above it; `None` when one of them cannot be.
    fn watch_dir(&mut self, inotify: &Inotify, dir: &str) -> Option<()> {
        if self.unwatchable.contains(dir) {
            return None;
        }
        if self.watched.contains(dir) {
            return Some(());
        }
        if !plain(dir) {
            let r = self.watch_winding(inotify, dir);
            // One that does not exist yet may be watched once it does.
            if r.is_none() && std::fs::metadata(dir).is_ok() {
                self.unwatchable.insert(dir.into());
            }
            return r;
        }
        let mut dir = dir.to_string();
        let mut dirs = Vec::new();
        while !dir.is_empty() && !self.watched.contains(dir.as_str()) {
            if self.unwatchable.contains(dir.as_str()) {
                return None;
            }
            dirs.push(dir.clone());
            if dir == "/" {
                break;
            }
            dir = dirname(&dir);
        }
        // From the top down, each directory before what it holds.
        for d in dirs.into_iter().rev() {
            let d: Arc<str> = d.into();
            if !local(&d) {
                self.unwatchable.insert(d);
                return None;
            }
            let wd = inotify.add_watch(&*d, DIR_EVENTS).ok()?;
            self.watches.entry(wd).or_default().push((d.clone(), true));
            self.watched.insert(d);
        }
        Some(())
    }

    /// Watches a directory spelled with `..` (GCC's built-in directories are) and no
    /// symlink: every directory its spelling passes through is watched, so that one of
    /// them removed or renamed is seen, and its own events count for it as for its
    /// realpath.
    fn watch_winding(&mut self, inotify: &Inotify, dir: &str) -> Option<()> {
        let mut prefix = String::new();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(c);
            if c == "." || c == ".." {
                continue;
            }
            let m = std::fs::symlink_metadata(&prefix).ok()?;
            if !m.is_dir() {
                return None;
            }
            let real = canonical(&prefix)?;
            self.watch_dir(inotify, &real)?;
        }
        let real = canonical(dir)?;
        self.watch_dir(inotify, &real)?;
        let wd = inotify.add_watch(real.as_str(), DIR_EVENTS).ok()?;
        let d: Arc<str> = dir.into();
        self.watches.entry(wd).or_default().push((d.clone(), true));
        self.watched.insert(d);
        Some(())
    }

    fn mark(&self, path: &str) -> Mark {
        self.mark_levels(path, 1)
    }

    /// The mark of `path` with the changes of the `levels - 1` directories above it.
    fn mark_levels(&self, path: &str, levels: u32) -> Mark {
        let mut p = path;
        let mut sum = 0;
        for _ in 0..levels {
            sum += self.changes.get(p).copied().unwrap_or(0);
            // The directory above: paths here are absolute, without a trailing `/`.
            p = &p[..p.rfind('/').unwrap_or(0).max(1)];
        }
        Mark {
            global: self.global,
            path: sum,
            levels,
        }
    }

    fn changed(&mut self, path: &Arc<str>) {
        *self.changes.entry(path.clone()).or_default() += 1;
    }

    fn note(&mut self, wd: WatchDescriptor, mask: AddWatchFlags, name: Option<&std::ffi::OsStr>) {
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost: nothing kept can be trusted.
            self.global += 1;
            return;
        }
        let paths = self.watches.get(&wd).cloned().unwrap_or_default();
        let went = mask.intersects(
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED,
        );
        for (p, dir) in &paths {
            if !dir {
                self.changed(p);
            } else if went
                || (mask.contains(AddWatchFlags::IN_ISDIR)
                    && !mask.contains(AddWatchFlags::IN_CREATE))
            {
                // A directory removed or renamed: every path below it may now lead
                // elsewhere.
                self.global += 1;
            } else if let Some(name) = name.and_then(|n| n.to_str()) {
                // The name, and what the directory holds.
                self.changed(&join(p, name).into());
                self.changed(p);
            }
        }
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // The watch is gone (its file removed): watched again when read again.
            self.watches.remove(&wd);
            for (p, _) in paths {
                self.changed(&p);
                self.watched.remove(&p);
            }
        }
    }
}

/// Whether `dir` leads where it says: no symlink on the way, no `..` (`.` is allowed).
fn plain(dir: &str) -> bool {
    let spelled: Vec<&str> = dir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if spelled.contains(&"..") {
        return false;
    }
    canonical(dir).is_some_and(|real| {
        let real: Vec<&str> = real.split('/').filter(|c| !c.is_empty()).collect();
        real == spelled
    })
}

/// Whether `dir` is on a local disk or memory file system.
// f_type's width depends on the target (a long on 64-bit glibc, an int elsewhere).
#[allow(clippy::unnecessary_cast)]
fn local(dir: &str) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| LOCAL_FILE_SYSTEMS.contains(&(s.filesystem_type().0 as i64)))
}
