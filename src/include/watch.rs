//! Change notices (inotify) for what kept analyses depend on, so that a request asked
//! again is checked against the changes that came since it was last checked, instead of
//! stat-ing each of its files and directories again (a kernel unit: about a thousand
//! `statx` calls).
//!
//! Every directory an analysis looked into or found a file in, every directory above
//! them, and every file it read, is watched; except a sticky, world-writable directory
//! above them (`/tmp`), which is checked by identity instead: watching it would cost the
//! kernel a walk of every name ever looked up in it. A notice about a name in a directory
//! (created, removed, renamed, its attributes changed) is kept by name with the number of
//! the batch of notices it came in; a notice about a file or directory itself (written,
//! its attributes changed, moved, deleted) is kept for it. An analysis checked when batch
//! `t` was the last read holds while nothing it depends on has a later notice. When the
//! kernel's queue overflowed, everything is checked again.
//!
//! What notices cannot see is never trusted to them: a directory reached through a
//! symbolic link (the link's target can change without a notice where we watch), one on a
//! file system that does not send notices for changes made by other machines (NFS, SMB,
//! FUSE, ...), and anything the watch limits ([`MAX_WATCHES`], the system's) left
//! unwatched. An analysis that depends on
//! such a path is checked by `stat` as before (`closure::Facts::hold`). A file written
//! through a shared memory mapping sends no notice; neither would it change its mtime
//! reliably for `stat`. Nor does mounting a file system over a watched directory: a
//! mount or unmount in the server's namespace (`/proc/self/mountinfo` is marked at each)
//! has everything watched and checked again, as a lost notice does.
//!
//! A header in the compiler's own directories that has no other name is watched through
//! its directory, whose watch (unlike a project directory's) also reports writes to its
//! files by name ([`State::cover`]). Giving such a header a second name during a build and
//! writing it through that name is not seen; a project's headers keep watches of their
//! own, which see it.
//!
//! The same notices vouch for single files between analyses: a file that an earlier
//! analysis read and had watched is not `stat`ed again by the next command that reads it
//! while neither it nor a directory on its path had a notice since the last `stat`
//! ([`Watcher::holds`]).
//!
//! This module keeps the notices and says whether an analysis's paths, or a file's, have
//! any; which paths those are is the analysis's business.

use super::token::{FxMap, FxSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Mutex, MutexGuard};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::closure::{basename_of, dirname_of, Facts, FileKey};
use super::search::{dir_id, DirId};
use super::sysdirs::under;

/// What a directory's watch reports: its names coming and going or changing attributes,
/// and itself moved or deleted.
fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// What a file's watch reports: any write, attribute change, move or deletion, through
/// whichever of its names (a hard link elsewhere included).
fn file_mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

/// What a watch is put on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    /// A directory under the compiler's own, whose watch also reports writes to its
    /// files ([`State::cover`]).
    SystemDir,
}

impl Kind {
    fn mask(self) -> AddWatchFlags {
        match self {
            Kind::File => file_mask(),
            Kind::Dir => dir_mask(),
            Kind::SystemDir => {
                dir_mask() | AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE
            }
        }
    }
}

/// The most watches one server adds: each keeps its inode in the kernel's memory (about a
/// kilobyte), so a tree of a few hundred thousand headers is checked by `stat` past this.
const MAX_WATCHES: usize = 100_000;

/// The most names with notices remembered for one directory.
const MAX_NAMES: usize = 20_000;

/// File systems whose changes all pass through this machine's kernel, so that a change
/// always sends a notice: ext2/3/4, XFS, Btrfs, tmpfs, ramfs, F2FS, ZFS, bcachefs,
/// overlayfs (its upper layer).
const LOCAL_FILE_SYSTEMS: [i64; 9] = [
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0x8584_58f6,
    0xF2F5_2010,
    0x2FC1_2FC1,
    0xca45_1a4e,
    0x794c_7630,
];

/// One path watched.
struct Entry {
    path: Box<str>,
    wd: Option<WatchDescriptor>,
    /// It did not exist when it was to be watched: its parent's notices stand for it.
    absent: bool,
    /// A file with no other name than this one, whose directory's watch reports every
    /// change to it by name: it has no watch of its own ([`State::cover`]).
    covered: bool,
    /// A directory whose watch reports writes to its files too.
    writes: bool,
    /// Notices can be trusted for it (see the [module](self) comment).
    usable: bool,
    /// The batch of the last notice about itself, about any of its names coming, going
    /// or changing attributes (what changes a directory's stamp), and about any file in
    /// it written to.
    itself: u64,
    any_name: u64,
    any_write: u64,
    /// The batch of the last notice about each name.
    names: FxMap<Box<str>, u64>,
    /// The batch number its watch was added under (`arm` takes a number of its own), or
    /// it was last found missing under.
    since: u64,
    /// The device and inode the watch was added for: a watch follows its inode, so the
    /// path is watched again when it names another.
    ident: Option<DirId>,
    /// The entry of the directory it is in (`None` for `/`).
    parent: Option<usize>,
    /// For a directory: whether it is sticky and writable by all (`/tmp`), once asked,
    /// and what it was then.
    sticky: Option<(bool, Option<DirId>)>,
}

struct State {
    inotify: Inotify,
    /// The number of the last batch of notices read.
    batch: u64,
    /// Analyses checked before this batch are checked again (the queue overflowed).
    floor: u64,
    entries: Vec<Entry>,
    by_path: FxMap<String, usize>,
    by_wd: FxMap<WatchDescriptor, Vec<usize>>,
    /// `/proc/self/mountinfo`, which the kernel marks at each mount or unmount.
    mounts: Option<std::fs::File>,
}

/// The notices of one include server.
pub struct Watcher {
    state: Mutex<State>,
}

/// What one analysis depends on, as watched paths.
#[derive(Debug, Default)]
pub struct Plan {
    dirs: Vec<usize>,
    files: Vec<usize>,
    /// Directories above the others that are not watched but checked by identity: the
    /// sticky, world-writable ones (`/tmp`), where a watch costs the kernel a walk of
    /// every name ever looked up there, and whose own names this analysis does not use.
    identities: Vec<(Box<str>, Option<DirId>)>,
    /// (directory, directory in it) for each watched directory whose parent is watched
    /// too.
    children: Vec<(usize, usize)>,
    /// Every path could be watched and trusted.
    pub usable: bool,
}

/// What one request found of the files it entered and the directories on their paths:
/// for each by entry, the last batch with a notice on its path ([`State::path_batch`]).
/// Notices read later by other requests came after this one began, as a change after a
/// `stat` would.
#[derive(Default)]
pub struct Vouched(FxMap<usize, Option<u64>>);

/// `path` with `.` and `..` resolved by their spelling.
pub(super) fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether notices can be trusted for `path` (which exists): reached without a
/// symbolic link, on a local file system.
fn trustworthy(path: &str) -> bool {
    let real = std::fs::canonicalize(path).ok();
    if real.as_ref().and_then(|r| r.to_str()) != Some(lexical(path).as_str()) {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given, for a valid C string.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
        return false;
    }
    LOCAL_FILE_SYSTEMS.contains(&(fs.f_type as i64))
}

/// Whether `path` is a regular file, not through a symbolic link (kept analyses met none).
fn regular_file(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// Reads the notices queued, as one batch.
    fn drain(&mut self) {
        if self.mounts_changed() {
            self.start_over();
            return;
        }
        let mut first = true;
        let written = AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            if first {
                self.batch += 1;
                first = false;
            }
            let batch = self.batch;
            for e in events {
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    self.start_over();
                    return;
                }
                // A watch follows its inode: once that inode is moved or deleted, the
                // path is no longer watched, and is watched (and checked) afresh.
                let gone = e.mask.intersects(
                    AddWatchFlags::IN_IGNORED
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_DELETE_SELF,
                );
                let ids = if gone {
                    let _ = self.inotify.rm_watch(e.wd);
                    self.by_wd.remove(&e.wd).unwrap_or_default()
                } else {
                    self.by_wd.get(&e.wd).cloned().unwrap_or_default()
                };
                for id in ids {
                    let entry = &mut self.entries[id];
                    match e.name.as_ref().and_then(|n| n.to_str()) {
                        Some(name) if !gone => {
                            // A write to a file leaves its directory's stamp as it was.
                            if written.contains(e.mask) {
                                entry.any_write = batch;
                            } else {
                                entry.any_name = batch;
                            }
                            entry.names.insert(name.into(), batch);
                            // A directory where a long build makes ever new names (its
                            // temporaries) is not remembered name by name for ever: the
                            // names are forgotten, and what depends on it checked again.
                            if entry.names.len() > MAX_NAMES {
                                entry.names.clear();
                                entry.itself = batch;
                            }
                        }
                        _ => entry.itself = batch,
                    }
                    if gone {
                        entry.wd = None;
                    }
                }
            }
        }
    }

    /// Whether a file system was mounted or unmounted since last asked: a mount over a
    /// watched directory sends no notice, and the paths below it name other files.
    fn mounts_changed(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let Some(mounts) = &self.mounts else {
            return false;
        };
        let mut fds = [PollFd::new(mounts.as_fd(), PollFlags::POLLPRI)];
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR))
    }

    /// After notices were lost (the kernel's queue overflowed) or a mount changed what
    /// paths name: forgets every watch, so that each path is watched again and checked
    /// by `stat` when next needed, and checks everything again.
    fn start_over(&mut self) {
        if let Ok(fresh) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            self.inotify = fresh;
            for e in &mut self.entries {
                e.wd = None;
                e.absent = false;
                e.covered = false;
            }
        } else {
            // No new instance: nothing is trusted to notices any more.
            for e in &mut self.entries {
                e.wd = None;
                e.covered = false;
                e.usable = false;
            }
        }
        self.by_wd.clear();
        self.batch += 1;
        self.floor = self.batch;
    }

    /// The entry of `path` (absolute), made if new, with those of the directories above.
    fn entry(&mut self, path: &str) -> usize {
        if let Some(&id) = self.by_path.get(path) {
            return id;
        }
        let parent = Some(dirname_of(path))
            .filter(|p| *p != path && !p.is_empty())
            .map(|p| self.entry(p));
        self.entries.push(Entry {
            path: path.into(),
            wd: None,
            absent: false,
            covered: false,
            writes: false,
            usable: true,
            itself: 0,
            any_name: 0,
            any_write: 0,
            names: FxMap::default(),
            since: 0,
            ident: None,
            parent,
            sticky: None,
        });
        let id = self.entries.len() - 1;
        self.by_path.insert(path.to_string(), id);
        id
    }

    /// Whether directory entry `id` is sticky and writable by all (`/tmp`), remembered.
    fn is_sticky(&mut self, id: usize) -> bool {
        if let Some((sticky, _)) = self.entries[id].sticky {
            return sticky;
        }
        let meta = std::fs::metadata(&*self.entries[id].path).ok();
        let sticky = meta
            .as_ref()
            .is_some_and(|m| m.is_dir() && m.permissions().mode() & 0o1002 == 0o1002);
        let ident = meta.map(|m| (m.dev(), m.ino()));
        self.entries[id].sticky = Some((sticky, ident));
        sticky
    }

    /// The last batch with a notice about entry `id` or a directory above it, or about
    /// the names leading from one to the next, counting each watch's start as one;
    /// `None` when one of them is not watched or not to be trusted. A sticky
    /// directory (`/tmp`) is not watched: the directory in it reports its own move or
    /// deletion, and the sticky one must be the directory it was when first met. Kept
    /// for the rest of the request in `vouched`.
    fn path_batch(&self, id: usize, vouched: &mut Vouched) -> Option<u64> {
        if let Some(&b) = vouched.0.get(&id) {
            return b;
        }
        let e = &self.entries[id];
        let b = if !self.watched(id) {
            match e.sticky {
                Some((true, then)) => (then.is_some() && dir_id(&e.path) == then).then_some(0),
                _ => None,
            }
        } else if !e.usable {
            None
        } else {
            let own = e.since.max(e.itself);
            match e.parent {
                None => Some(own),
                Some(p) => {
                    let name = self.entries[p].names.get(basename_of(&e.path)).copied();
                    let above = self.path_batch(p, vouched);
                    above.map(|a| a.max(own).max(name.unwrap_or(0)))
                }
            }
        };
        vouched.0.insert(id, b);
        b
    }

    /// Whether entry `id` was found missing, and its parent, watched since before then,
    /// has had no notice about it or its name since.
    fn still_absent(&self, id: usize) -> bool {
        let e = &self.entries[id];
        let quiet = |p: &Entry| {
            p.wd.is_some()
                && p.usable
                && p.since < e.since
                && p.itself <= e.since
                && (p.names.get(basename_of(&e.path))).is_none_or(|&b| b <= e.since)
        };
        e.absent
            && e.wd.is_none()
            && self.floor <= e.since
            && e.parent.is_some_and(|p| quiet(&self.entries[p]))
    }

    /// Whether entry `id` has a watch of its own, or is a file covered by its directory's
    /// watch, which still reports writes (its directory may have been watched again since,
    /// by a request with other system directories: without them).
    fn watched(&self, id: usize) -> bool {
        let e = &self.entries[id];
        e.wd.is_some()
            || (e.covered
                && (e.parent.map(|p| &self.entries[p])).is_some_and(|p| p.wd.is_some() && p.writes))
    }

    /// Removes the watch of entry `id` when it was put on another file or directory than
    /// `ident`, which the path names now.
    fn unwatch_other(&mut self, id: usize, ident: Option<DirId>) {
        let e = &self.entries[id];
        if let (Some(wd), true) = (e.wd, e.ident != ident) {
            if let Some(ids) = self.by_wd.get_mut(&wd) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.by_wd.remove(&wd);
                    let _ = self.inotify.rm_watch(wd);
                }
            }
            self.entries[id].wd = None;
        }
    }

    /// Watches file entry `id`, read as `key`: through its directory's watch when that
    /// directory is one of the compiler's own (a [`Kind::SystemDir`] watch, in place and
    /// trusted) and the file has no other name, else with a watch of its own
    /// ([`State::watch`]). A watch of its own costs a file four system calls and the
    /// kernel's memory for its inode; a C or C++ unit reads more system headers than its
    /// own (Lua: about 110 and 60).
    ///
    /// A write through another name notifies that name's directory, not this one, and a
    /// hard link made later sends its directory's notice alone. A project's header may get
    /// a second name during a build and be written through it, so it keeps its own watch;
    /// a system header is put in place by its package manager, by rename.
    ///
    /// Returns what [`State::watch`] does: the key of what a new watch of its own found.
    fn cover(&mut self, id: usize, key: &FileKey) -> Option<FileKey> {
        let ident = Some((key.dev, key.ino));
        let parent = self.entries[id].parent.map(|p| &self.entries[p]);
        if key.links == 1 && parent.is_some_and(|p| p.wd.is_some() && p.usable && p.writes) {
            self.unwatch_other(id, ident);
            let since = self.batch;
            let e = &mut self.entries[id];
            if e.wd.is_none() && !(e.covered && e.ident == ident) {
                e.covered = true;
                e.ident = ident;
                e.since = since;
                e.absent = false;
                e.usable = true;
            }
            return None;
        }
        self.entries[id].covered = false;
        self.watch(id, Kind::File, ident)
    }

    /// Watches entry `id` (which the caller knows as `ident`) unless it is watched for that
    /// identity already, or known absent, or known not to be trusted.
    ///
    /// Returns the key of what a new watch was put on, found once the watch was in place
    /// (so that a change after it sends a notice), when it could be read.
    fn watch(&mut self, id: usize, kind: Kind, ident: Option<DirId>) -> Option<FileKey> {
        self.unwatch_other(id, ident);
        let e = &self.entries[id];
        if e.wd.is_some() || !e.usable {
            return None;
        }
        if self.by_wd.len() >= MAX_WATCHES {
            self.entries[id].usable = false;
            return None;
        }
        let dir = kind != Kind::File;
        let path = &*self.entries[id].path;
        // Watched through a descriptor of what the path names now, and recorded as that:
        // what the caller knew may have been replaced since, and a watch recorded as one
        // inode but put on another would vouch for the first when its path names it
        // again ([`Watcher::holds`]).
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path);
        let target = match &opened {
            Ok(f) => format!("/proc/self/fd/{}", f.as_raw_fd()),
            Err(_) => path.to_string(),
        };
        // Added to what a watch already on the same inode reports (one inode has one watch
        // in an instance, and a plain add replaces its mask): another path may lead to a
        // system directory (a link, `lib/../include`), whose watch must go on reporting
        // writes to the files it covers.
        let mask = kind.mask() | AddWatchFlags::from_bits_retain(libc::IN_MASK_ADD);
        let added = self.inotify.add_watch(target.as_str(), mask);
        let found = opened
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| FileKey::of(&m));
        let ident = ident.filter(|_| found.map(|k| (k.dev, k.ino)) == ident);
        match added {
            Ok(wd) => {
                // A file is watched by its realpath; its directory's trust stands for it.
                let usable = !dir || trustworthy(path);
                let since = self.batch;
                let e = &mut self.entries[id];
                e.wd = Some(wd);
                e.absent = false;
                e.usable = usable;
                e.since = since;
                e.ident = ident;
                e.writes = kind == Kind::SystemDir;
                self.by_wd.entry(wd).or_default().push(id);
                found
            }
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
                // Its parent's notices stand for it: it is checked again when they come.
                let since = self.batch;
                let e = &mut self.entries[id];
                e.absent = true;
                e.since = since;
                None
            }
            Err(_) => {
                // The watch limit, a permission: never trusted.
                self.entries[id].usable = false;
                None
            }
        }
    }
}

impl Watcher {
    /// A watcher, or `None` where inotify cannot be had.
    pub fn new() -> Option<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        Some(Watcher {
            state: Mutex::new(State {
                inotify,
                batch: 0,
                floor: 0,
                entries: Vec::new(),
                by_path: FxMap::default(),
                by_wd: FxMap::default(),
                mounts: std::fs::File::open("/proc/self/mountinfo").ok(),
            }),
        })
    }

    /// Reads the notices so far; returns the number of the last batch. What is checked
    /// after this call, and found as an analysis says, holds as of this batch.
    pub fn now(&self) -> u64 {
        let mut s = lock(&self.state);
        s.drain();
        s.batch
    }

    /// Watches what `facts` depend on, and checks by `stat` what was not watched during
    /// the whole analysis, which began at batch `started` (by any thread: another
    /// request's analysis may have added a watch after this one read the file): each such
    /// file's version, each name looked up in such a directory, each such directory of the
    /// search chain. Returns the plan, and whether the facts held for those.
    ///
    /// A kernel unit reads some 1500 files in a few dozen directories, most of them read
    /// by the units before it: each file's entry is found once per version through its
    /// directives' slot ([`LexedFile::watch_entry`](super::closure::LexedFile)), and the
    /// directories above are walked by entry, not by path.
    pub fn arm(&self, facts: &Facts, started: u64) -> (Plan, bool) {
        let mut s = lock(&self.state);
        // The watches added now are younger than any analysis begun so far.
        s.batch += 1;
        let mut plan = Plan {
            usable: true,
            ..Plan::default()
        };
        // The directories the analysis used itself, with what it found each to be when
        // it looked (`None`: missing) or, for those it only found files in, nothing.
        let mut direct: FxMap<usize, Option<Option<DirId>>> = FxMap::default();
        for (d, stamp, _) in &facts.looked_into {
            let id = s.entry(d);
            direct.insert(id, Some(stamp.map(|s| s.id())));
        }
        for (d, dir) in &facts.chain {
            let id = s.entry(d);
            direct.insert(id, Some(*dir));
        }
        let mut files = Vec::with_capacity(facts.files.len());
        for (f, key, lexed) in &facts.files {
            let id = match lexed.watch_entry.get() {
                Some((path, id)) if path == f => *id,
                _ => {
                    let id = s.entry(f.as_str());
                    let _ = lexed.watch_entry.set((*f, id));
                    id
                }
            };
            if let Some(dir) = s.entries[id].parent {
                direct.entry(dir).or_insert(None);
            }
            files.push((id, f, key));
        }
        // And every directory above them.
        let mut all: Vec<usize> = direct.keys().copied().collect();
        let mut seen: FxSet<usize> = all.iter().copied().collect();
        let mut i = 0;
        while i < all.len() {
            if let Some(p) = s.entries[all[i]].parent.filter(|p| seen.insert(*p)) {
                all.push(p);
            }
            i += 1;
        }
        let mut in_plan = FxSet::default();
        let mut new_dirs = FxSet::default();
        for id in all {
            let used = direct.get(&id).copied();
            if used.is_none() && s.is_sticky(id) {
                let path = s.entries[id].path.clone();
                let now = dir_id(&path);
                plan.identities.push((path, now));
                continue;
            }
            let e = &s.entries[id];
            // Whichever request watches a directory first decides what its watch reports.
            let kind = match facts.system.iter().any(|d| under(&e.path, d)) {
                true => Kind::SystemDir,
                false => Kind::Dir,
            };
            match used.flatten() {
                // Missing then and before: its parent's notices stand for it.
                Some(None) if e.absent && e.wd.is_none() => {}
                Some(now) => {
                    s.watch(id, kind, now);
                }
                // Watched: its move or deletion sends a notice, and so does a name
                // replaced in its parent, so it is not `stat`ed again.
                None if e.wd.is_some() => {}
                // A directory above a missing one, missing too (a compiler's
                // `lib/gcc/T/V/../../../../T` without its `include`): not looked for
                // again while its parent says it was not made.
                None if s.still_absent(id) => {}
                None => {
                    let now = dir_id(&e.path);
                    s.watch(id, kind, now);
                }
            }
            let e = &s.entries[id];
            if e.wd.is_some() && e.since > started {
                new_dirs.insert(e.path.to_string());
            }
            plan.usable &= e.usable;
            in_plan.insert(id);
            plan.dirs.push(id);
        }
        for &id in &plan.dirs {
            match s.entries[id].parent {
                Some(p) if in_plan.contains(&p) => plan.children.push((p, id)),
                // Under a directory checked by identity, a directory that did not exist
                // could come without a notice.
                Some(_) if s.entries[id].absent => plan.usable = false,
                _ => {}
            }
        }
        let mut holds = true;
        for (id, f, key) in files {
            let watched = s.cover(id, key);
            let e = &s.entries[id];
            // Watched since before the walk read it (for a covered file: its directory),
            // a change after the read has a notice; else the file is checked now.
            let watched_since = match (e.covered, e.parent) {
                (true, Some(p)) => s.entries[p].since,
                _ => e.since,
            };
            if watched_since > started {
                // Still the version read, now that a change would send a notice: as the
                // new watch's descriptor found it, else as the path names it.
                let now = watched.or_else(|| FileKey::stat(f.as_str()).ok());
                holds &= now == Some(*key);
            }
            let e = &s.entries[id];
            plan.usable &= e.usable && s.watched(id);
            plan.files.push(id);
        }
        drop(s);
        if !new_dirs.is_empty() {
            let in_new = |p: &str| new_dirs.contains(dirname_of(p));
            let remembered = facts.remembered.iter().flat_map(|r| r.iter());
            holds &= (facts.lookups.iter().chain(remembered))
                .filter(|(p, _)| in_new(p))
                .all(|(p, file)| regular_file(p) == *file);
            holds &= (facts.chain.iter())
                .filter(|(d, _)| new_dirs.contains(d.as_str()))
                .all(|(d, id)| dir_id(d) == *id);
        }
        (plan, holds)
    }

    /// The number of the last batch of notices read, without reading more: a file found
    /// by `stat` after this call, and watched then, has its changes in later batches.
    pub fn batch(&self) -> u64 {
        lock(&self.state).batch
    }

    /// Whether directory `path` still has the stamp whose `stat` found it to be `ident`
    /// after batch `checked` was read: it is watched as that directory, and neither it,
    /// nor a name in it, nor a directory on its path had a notice since (creating,
    /// removing or renaming a name, or changing its attributes, is what changes a
    /// directory's stamp). Reads no notices: the request read them when it began.
    pub fn dir_holds(&self, path: &str, ident: DirId, checked: u64, vouched: &mut Vouched) -> bool {
        self.entry_holds(path, |s, id, e| {
            s.floor <= checked
                && e.wd.is_some()
                && e.ident == Some(ident)
                && e.any_name <= checked
                && s.path_batch(id, vouched).is_some_and(|b| b <= checked)
        })
    }

    /// `holds` of the state, and the entry of `path` with its number; false for a path
    /// that has none.
    fn entry_holds(&self, path: &str, holds: impl FnOnce(&State, usize, &Entry) -> bool) -> bool {
        let s = lock(&self.state);
        (s.by_path.get(path)).is_some_and(|&id| holds(&s, id, &s.entries[id]))
    }

    /// Whether directory `dir`, found by `stat` to be `ident`, is still its own realpath,
    /// as it was when watched (its watch is trusted only then: no symbolic link on its
    /// way), by the notices: its watch is on that directory, and no directory on its path,
    /// nor the name of one in the next, changed since. Names made in it (a build's
    /// objects) do not change where it is.
    pub fn own_realpath(&self, dir: &str, ident: DirId, vouched: &mut Vouched) -> bool {
        self.entry_holds(dir, |s, id, e| {
            e.wd.is_some()
                && e.ident == Some(ident)
                && e.usable
                && s.floor <= e.since
                && s.path_batch(id, vouched).is_some_and(|b| b <= e.since)
        })
    }

    /// Whether name `name` in directory `dir`, found by `stat` to be `ident`, is still what
    /// an `lstat` made after batch `checked` was read found there (a regular file,
    /// something else, or nothing): the directory's watch is on that directory and was
    /// there by then, and neither it, nor the name, nor a directory on its path had a
    /// notice since. Other names in it may have come and gone. The caller has read the
    /// notices queued before its `stat` of the directory.
    pub fn name_holds(
        &self,
        (dir, name): (&str, &str),
        ident: DirId,
        checked: u64,
        vouched: &mut Vouched,
    ) -> bool {
        self.entry_holds(dir, |s, id, e| {
            s.floor <= checked
                && e.wd.is_some()
                && e.ident == Some(ident)
                && (e.names.get(name)).is_none_or(|&b| b <= checked)
                && s.path_batch(id, vouched).is_some_and(|b| b <= checked)
        })
    }

    /// Whether the file watched as entry `id` is still, at its path, what a `stat` found
    /// (`key`) after batch `checked` was read: its watch is on that inode, and it and each
    /// directory on its path were watched by then and have had no notice since, about
    /// themselves or about the name that leads to the next ([`State::path_batch`]). Reads
    /// no notices: the request read them when it began.
    pub fn holds(&self, id: usize, key: &FileKey, checked: u64, vouched: &mut Vouched) -> bool {
        let s = lock(&self.state);
        s.floor <= checked
            && s.entries[id].ident == Some((key.dev, key.ino))
            && s.path_batch(id, vouched).is_some_and(|b| b <= checked)
    }

    /// Whether nothing `facts` (watched as `plan`) depend on had a notice after batch
    /// `checked`. Reads the notices first.
    pub fn unchanged(&self, plan: &Plan, facts: &Facts, checked: u64) -> bool {
        if !plan.usable {
            return false;
        }
        if !(plan.identities.iter()).all(|(d, id)| dir_id(d) == *id) {
            return false;
        }
        let mut s = lock(&self.state);
        s.drain();
        if s.floor > checked {
            return false;
        }
        let mut changed = Vec::new();
        for &id in &plan.dirs {
            let e = &s.entries[id];
            if (e.wd.is_none() && !e.absent) || e.itself > checked {
                return false;
            }
            if e.any_name.max(e.any_write) > checked {
                changed.push(id);
            }
        }
        for &id in &plan.files {
            let e = &s.entries[id];
            if !s.watched(id) || e.itself > checked {
                return false;
            }
        }
        if changed.is_empty() {
            return true;
        }
        // A directory had notices: only the names the analysis depends on matter.
        let by_path: FxMap<&str, usize> = (changed.iter())
            .map(|&id| (&*s.entries[id].path, id))
            .collect();
        let later =
            |dir: usize, name: &str| s.entries[dir].names.get(name).is_some_and(|&b| b > checked);
        let named = |path: &str| {
            by_path
                .get(dirname_of(path))
                .is_some_and(|&d| later(d, basename_of(path)))
        };
        let remembered = facts.remembered.iter().flat_map(|r| r.iter());
        let touched = (facts.lookups.iter().chain(remembered)).any(|(p, _)| named(p))
            || facts.files.iter().any(|(f, _, _)| named(f.as_str()))
            || (plan.children.iter())
                .any(|&(p, c)| changed.contains(&p) && later(p, basename_of(&s.entries[c].path)));
        !touched
    }
}
