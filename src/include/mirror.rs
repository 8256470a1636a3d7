//! The mirror tree ("client root") that distcc's client reads files from, written exactly
//! as distcc 3.4's include server writes it (`basics.py`, `mirror_path.py`,
//! `compress_files.py`, `compiler_defaults.py`):
//!
//! - the root is `TMP/tmpXXXXXXXX.include_server-<pid>-<generation>`, padded with
//!   `/padding` to exactly 3 components; TMP is `$DISTCC_CLIENT_TMP`, else `/dev/shm`,
//!   else `/tmp`;
//! - a file of the closure is `ROOT/<realpath>.lzo`, its content LZO1X-compressed; found
//!   through an absolute search directory, `ROOT/<realpath>.lzo.abs` with
//!   `#line 1 "<dir>/<name>"` before the content;
//! - every path component met that is a symlink is recreated at `ROOT/<realpath of its
//!   parent>/<name>`, pointing at its absolute realpath;
//! - every directory the mirror had to create outside system dirs gets an empty
//!   `forcing_technique_271828`, so that `dir/../x.h` works on the host;
//! - each system dir `D` is a link `ROOT/D -> ../`×(20+slashes(D)) + `D` (without its
//!   first `/`), so that the host finds its own copy; a longer system dir under a linked
//!   one gets no link of its own.
//!
//! Links and forced directories accumulate over a generation and go with every reply, as
//! in 3.4; a link whose target changed starts a new generation. Unlike 3.4, a file is
//! never shipped stale: each shipped file is stat'ed at every request, and when its (dev,
//! inode, size, mtime, ctime) differs from the compressed copy's and so does its content, a
//! new generation starts (a new root, every mirror record dropped); the same content
//! written again (a rebuild's generated file) keeps its copy. A file changed too recently
//! ([`recent`]) is also read again and compared by content, since two writes within one
//! timestamp tick can leave the same key. Old roots
//! stay until shutdown, because a client may still be reading them.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Mutex;

use super::closure::{dirname, Closure, ClosureFile, Contents, FileKey};
use super::search::recent;
use super::sysdirs::under;
use super::token::{FxMap, FxSet, Sym};
use super::FORCING_FILE;
use crate::wire::lzo;

/// distcc 3.4's bound on the components of a host's temporary root
/// (`MAX_COMPONENTS_IN_SERVER_ROOT`).
const MAX_COMPONENTS_IN_SERVER_ROOT: usize = 20;

/// The client roots of one server process.
pub struct Mirror {
    tmp: String,
    padding: usize,
    state: Mutex<Generation>,
    made: Mutex<Vec<String>>,
}

/// One generation's root and what has been written in it.
struct Generation {
    number: u32,
    root: String,
    /// Each file written, with the key of the version it was written from. Its content is
    /// the copy itself: compared with the file's only when the key changes.
    shipped: FxMap<String, FileKey>,
    /// Each path whose components were mirrored, with what its last one needs.
    levels: FxMap<String, Level>,
    /// How many replies were made in this generation (see [`Level::reply`]).
    replies: u64,
    dirs_known: FxSet<String>,
    links: Vec<String>,
    system_links: Vec<String>,
    /// Each symlink mirrored: its path, and the realpath it had.
    link_targets: Vec<(String, String)>,
    /// The system dirs linked, and the forcing files made, in this generation.
    system_dirs_done: FxSet<String>,
    forced: FxSet<String>,
    /// The realpath of each directory met on the way of a mirrored path: the files of one
    /// directory share it, and a directory whose realpath changed gives its files other
    /// realpaths, which ends the generation ([`Level::real`]).
    real_dirs: FxMap<String, Option<String>>,
}

/// What one component of a mirrored path needs on the host: the directory it is in (in
/// the root, unless a system one), and its link when it is one.
#[derive(Default)]
struct Level {
    dir: Option<String>,
    link: Option<String>,
    /// The path of the component above, when it was walked too.
    up: Option<String>,
    /// For a path of a closure: the realpath it had then. A directory on the way that
    /// became a link since (or a link a directory) leads elsewhere now.
    real: Option<Sym>,
    /// The last reply that took what this component needs: a reply's paths share most
    /// of their directories, which are taken once.
    reply: std::cell::Cell<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn components(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

/// The directory that holds the roots: `$DISTCC_CLIENT_TMP`, else `/dev/shm` when
/// writable, else `/tmp`.
fn client_tmp() -> Result<String, String> {
    if let Ok(t) = std::env::var("DISTCC_CLIENT_TMP") {
        let t = t.trim_end_matches('/').to_string();
        if !t.starts_with('/') || components(&t) > 2 {
            return Err(format!(
                "DISTCC_CLIENT_TMP must be an absolute path of at most 2 components: '{t}'"
            ));
        }
        return Ok(t);
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
        return Ok("/dev/shm".into());
    }
    Ok("/tmp".into())
}

fn realpath(p: &str) -> Option<String> {
    fs::canonicalize(p)
        .ok()
        .and_then(|r| r.into_os_string().into_string().ok())
}

fn is_dir(p: &str) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_dir())
}

fn is_link(p: &str) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Python's `os.path.split`.
fn split(p: &str) -> (String, String) {
    let tail = &p[p.rfind('/').map_or(0, |i| i + 1)..];
    (dirname(p), tail.to_string())
}

/// Removes the roots that mirrors of processes now gone left in `tmp`: a client killed
/// during its analysis (a build interrupted with ^C) or an include server killed with
/// `SIGKILL` cannot remove its own, and `/dev/shm` is memory. A root names its process
/// (`...include_server-<pid>-<generation>`); only this user's are looked at.
fn sweep_orphans(tmp: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let me = nix::unistd::getuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.starts_with("tmp"))
            .and_then(|n| n.split_once(".include_server-"))
            .and_then(|(_, rest)| rest.split_once('-'))
            .and_then(|(pid, generation)| {
                generation.parse::<u32>().ok()?;
                pid.parse::<i32>().ok()
            })
        else {
            continue;
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        let mine = e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if gone && mine && pid > 0 {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Mirror {
    /// Makes the first generation's root, after removing what dead processes left.
    pub fn new() -> Result<Mirror, String> {
        let tmp = client_tmp()?;
        sweep_orphans(&tmp);
        let padding = 2 - components(&tmp);
        let mirror = Mirror {
            tmp,
            padding,
            state: Mutex::new(Generation::empty(0, String::new())),
            made: Mutex::new(Vec::new()),
        };
        let first = mirror.make_root(1)?;
        *lock(&mirror.state) = Generation::empty(1, first);
        Ok(mirror)
    }

    /// The current generation's root.
    pub fn root(&self) -> String {
        lock(&self.state).root.clone()
    }

    /// The number of the current generation.
    pub fn generation(&self) -> u32 {
        lock(&self.state).number
    }

    fn make_root(&self, generation: u32) -> Result<String, String> {
        let dir = tempfile::Builder::new()
            .prefix("tmp")
            .suffix(&format!(
                ".include_server-{}-{generation}",
                std::process::id()
            ))
            .rand_bytes(8)
            .tempdir_in(&self.tmp)
            .map_err(|e| {
                format!(
                    "Could not create client root directory in {}: {e}",
                    self.tmp
                )
            })?
            .keep();
        let before = dir
            .into_os_string()
            .into_string()
            .map_err(|_| "client root is not UTF-8".to_string())?;
        lock(&self.made).push(before.clone());
        let root = format!("{before}{}", "/padding".repeat(self.padding));
        fs::create_dir_all(&root)
            .map_err(|e| format!("Could not create client root directory {root}: {e}"))?;
        Ok(root)
    }

    /// Removes every root this mirror made.
    pub fn clean_up(&self) {
        for d in lock(&self.made).drain(..) {
            let _ = fs::remove_dir_all(d);
        }
    }

    /// Writes what `closure` needs into the root and returns the reply's paths (files,
    /// system links, other links, forcing files) and the generation they are in. A file
    /// in `contents` (read by the analysis) is compressed from there.
    /// `system_dirs` are all the system dirs known (each gets its link), `is_system` says
    /// whether a realpath is under one.
    pub fn ship(
        &self,
        closure: &Closure,
        contents: &mut Contents,
        system_dirs: &[String],
        is_system: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<String>, u32), String> {
        // The versions the analysis read (it has just checked them); the others are looked
        // at before the mirror is locked: concurrent requests wait only for the writing.
        let mut keys = Vec::with_capacity(closure.files.len());
        for f in &closure.files {
            let key = match f.key {
                Some(k) => k,
                None => FileKey::stat(&f.realpath)
                    .map_err(|e| format!("cannot stat {}: {e}", f.realpath))?,
            };
            keys.push(key);
        }
        let mut g = lock(&self.state);
        let mirrored = |root: &str| -> Vec<String> {
            closure
                .files
                .iter()
                .map(|f| [root, &f.realpath, suffix(f)].concat())
                .collect()
        };
        let mut paths = mirrored(&g.root);
        // A file written again with the same content (a build's generated source or
        // header, made again by a rebuild) keeps its copy: only its key is new.
        let mut stale = false;
        let mut rekeyed = Vec::new();
        for ((f, key), path) in closure.files.iter().zip(&keys).zip(&paths) {
            stale = match g.shipped.get(path) {
                None => false,
                Some(k) if k != key => {
                    let same = holds_content(f, *key, path);
                    if same {
                        rekeyed.push((path, *key));
                    }
                    !same
                }
                Some(_) => recent(key.mtime_ns, key.ctime_ns) && !holds_content(f, *key, path),
            };
            if stale {
                break;
            }
        }
        // A symlink pointed elsewhere since it was mirrored (as in `ln -sfn v2 inc`): the
        // host must not follow the old link.
        let stale = stale
            || g.link_targets
                .iter()
                .any(|(link, target)| realpath(link).as_ref() != Some(target))
            || (closure.paths.iter()).any(|(p, real)| {
                (g.levels.get(p.as_str()).and_then(|l| l.real)).is_some_and(|was| was != *real)
            })
            // A system directory new to this generation where files were mirrored (the
            // project's for one compiler, the host's own for another): its link would
            // replace what earlier replies named.
            || (system_dirs.iter())
                .filter(|d| !g.system_dirs_done.contains(*d))
                .any(|d| {
                    let rooted = [g.root.as_str(), d].concat();
                    g.dirs_known.iter().any(|k| under(k, &rooted))
                });
        if stale {
            let number = g.number + 1;
            let root = self.make_root(number)?;
            *g = Generation::empty(number, root);
            paths = mirrored(&g.root);
        } else {
            for (path, key) in rekeyed {
                g.shipped.insert(path.clone(), key);
            }
        }
        for d in system_dirs {
            if !g.system_dirs_done.contains(d) {
                g.system_dirs_done.insert(d.clone());
                g.system_link(d)?;
            }
        }
        // Of the links and directories mirrored, those this closure's paths need, not
        // every one the generation made: the same closure then gets the same reply
        // whatever was asked before, which a cache keys. Each directory has its forcing
        // file, whether or not a file shipped before made it.
        let (mut links, mut dirs) = (BTreeSet::new(), BTreeSet::new());
        g.replies += 1;
        for (p, real) in &closure.paths {
            g.do_path(p.as_str(), Some(*real), is_system)?;
            g.needs(p.as_str(), &mut links, &mut dirs);
        }
        let mut reply = Vec::with_capacity(paths.len() + g.system_links.len() + g.links.len());
        for ((f, key), path) in closure.files.iter().zip(keys).zip(paths) {
            g.do_path(&f.realpath, None, is_system)?;
            g.needs(&f.realpath, &mut links, &mut dirs);
            if g.shipped.get(&path) != Some(&key) {
                // A file of this command under another compiler's system directory: that
                // directory is a link to the host's own in the root, and writing there
                // would write through it. (A file written before such a link came is in
                // an earlier generation: the link starts a new one.)
                if is_system(&f.realpath) {
                    return Err(format!(
                        "{} is under another compiler's system directory",
                        f.realpath
                    ));
                }
                let data = contents.remove(&f.realpath).filter(|(k, _)| *k == key);
                write_compressed(&f.realpath, &path, &line_prefix(f), key, data.map(|d| d.1))?;
                g.shipped.insert(path.clone(), key);
            }
            reply.push(path);
        }
        // The system links this command goes through, not every one the generation made
        // (other compilers' own directories, another `--sysroot`): the reply must not
        // depend on what the build asked before. In name order, which is the same
        // whatever order they were made in.
        let root_len = g.root.len();
        let mut system: Vec<String> = (g.system_links.iter())
            .filter(|l| {
                let d = &l[root_len..];
                (closure.system_dirs.iter().map(String::as_str))
                    .chain(closure.paths.iter().map(|(p, _)| p.as_str()))
                    .chain(closure.files.iter().map(|f| f.realpath.as_str()))
                    .any(|p| under(p, d))
            })
            .cloned()
            .collect();
        system.sort();
        reply.extend(system);
        reply.extend(links);
        for dir in dirs {
            let forcing = format!("{dir}/{FORCING_FILE}");
            if g.forced.insert(forcing.clone()) {
                fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&forcing)
                    .map_err(|e| format!("Could not create {forcing}: {e}"))?;
            }
            reply.push(forcing);
        }
        Ok((reply, g.number))
    }
}

/// The mirror name's ending for `f`.
fn suffix(f: &ClosureFile) -> &'static str {
    if f.abs_name.is_some() {
        ".lzo.abs"
    } else {
        ".lzo"
    }
}

/// What goes before `f`'s content in its copy: the `#line` of a `.lzo.abs`.
fn line_prefix(f: &ClosureFile) -> Vec<u8> {
    (f.abs_name.as_ref())
        .map(|n| format!("#line 1 \"{n}\"\n").into_bytes())
        .unwrap_or_default()
}

/// Whether `f`, read now as the version `key`, has the content its copy `copy` was
/// written from. Asked only when the key changed or is too recent to tell: the copy is
/// read back rather than every file's content hashed as it is written.
fn holds_content(f: &ClosureFile, key: FileKey, copy: &str) -> bool {
    let Ok((data, read)) = FileKey::read(&f.realpath, key.size) else {
        return false;
    };
    let written = [line_prefix(f), data].concat();
    let was = (fs::read(copy).ok()).and_then(|c| lzo::decompress(&c, written.len()).ok());
    read == key && was.as_deref() == Some(&written[..])
}

impl Drop for Mirror {
    /// A server that goes away takes its client roots with it.
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// Compresses `prefix` + the content of `real` into `dest`: `data` when given (read as
/// version `key`), else what is read now, which must still have `key`. Written in place: a path
/// is written once in its generation, under the mirror's lock, and named in a reply only
/// once written (a write that failed is written again before any reply names it).
fn write_compressed(
    real: &str,
    dest: &str,
    prefix: &[u8],
    key: FileKey,
    data: Option<Vec<u8>>,
) -> Result<(), String> {
    let data = match data {
        Some(d) => d,
        None => {
            let (data, read) = FileKey::read(real, key.size)
                .map_err(|e| format!("Could not open '{real}' for reading: {e}"))?;
            if read != key {
                return Err(format!("'{real}' changed while it was read"));
            }
            data
        }
    };
    let compressed = if prefix.is_empty() {
        lzo::compress(&data)
    } else {
        lzo::compress(&[prefix, &data].concat())
    };
    // Never through a link at that name (the mirror of a symlink named like this
    // copy): that would write over the file it points to.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .and_then(|mut f| f.write_all(&compressed))
        .map_err(|e| format!("Could not write to '{dest}': {e}"))
}

impl Generation {
    fn empty(number: u32, root: String) -> Generation {
        Generation {
            number,
            root,
            shipped: FxMap::default(),
            levels: FxMap::default(),
            replies: 0,
            dirs_known: FxSet::default(),
            links: Vec::new(),
            system_links: Vec::new(),
            link_targets: Vec::new(),
            system_dirs_done: FxSet::default(),
            forced: FxSet::default(),
            real_dirs: FxMap::default(),
        }
    }

    /// Mirrors the directories and symlinks of `filepath` (absolute, as spelled), from its
    /// end, as 3.4's `MirrorPath.DoPath`; a path of a closure with the realpath it has
    /// (`real`), kept the first time.
    fn do_path(
        &mut self,
        filepath: &str,
        mut real: Option<Sym>,
        is_system: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        // Every path of every reply comes here, and almost all were mirrored before.
        if let Some(level) = self.levels.get_mut(filepath) {
            level.real = level.real.or(real);
            return Ok(());
        }
        let mut fp = filepath.to_string();
        while !fp.is_empty() && fp != "/" {
            if self.levels.contains_key(&fp) {
                return Ok(());
            }
            let (prefix, suffix) = split(&fp);
            // The first level is the path's own.
            let mut level = Level {
                real: real.take(),
                ..Level::default()
            };
            let real = (self.real_dirs.entry(prefix.clone())).or_insert_with(|| realpath(&prefix));
            let Some(mut prefix_real) = real.clone() else {
                self.levels.insert(fp, level);
                return Ok(());
            };
            if prefix_real == "/" {
                prefix_real.clear();
            }
            let root_prefix_real = format!("{}{prefix_real}", self.root);
            let system = is_system(&prefix_real);
            if !self.dirs_known.contains(&root_prefix_real) {
                if !is_dir(&root_prefix_real) {
                    if system {
                        self.levels.insert(fp, level);
                        break;
                    }
                    fs::create_dir_all(&root_prefix_real).map_err(|e| {
                        format!("Could not make directory '{root_prefix_real}': {e}")
                    })?;
                }
                self.dirs_known.insert(root_prefix_real.clone());
            }
            // A link under a system directory is the host's own (its `ROOT/D` is a link
            // to the host's D): not made again, never listed, or it would be written there.
            if !system && is_link(&fp) {
                let link_name = format!("{root_prefix_real}/{suffix}");
                if fs::symlink_metadata(&link_name).is_err() {
                    if let Some(target) = realpath(&fp) {
                        symlink(&target, &link_name)
                            .map_err(|e| format!("Could not make link '{link_name}': {e}"))?;
                        self.links.push(link_name.clone());
                        self.link_targets.push((fp.clone(), target));
                    }
                }
                if fs::symlink_metadata(&link_name).is_ok_and(|m| m.is_symlink()) {
                    level.link = Some(link_name);
                }
            }
            // A system directory is the host's own, reached through its link: nothing is
            // written there.
            if !system && !prefix_real.is_empty() {
                level.dir = Some(root_prefix_real);
            }
            level.up = Some(prefix.clone());
            self.levels.insert(fp, level);
            fp = prefix;
        }
        Ok(())
    }

    /// The links and the directories (each to be kept by a forcing file) that mirroring
    /// `path` needed, from its last component up to one already taken for this reply (the
    /// files of a kernel unit share a few hundred directories).
    fn needs(&self, path: &str, links: &mut BTreeSet<String>, dirs: &mut BTreeSet<String>) {
        let mut at = Some(path);
        while let Some(level) = at.and_then(|p| self.levels.get(p)) {
            if level.reply.replace(self.replies) == self.replies {
                return;
            }
            links.extend(level.link.iter().cloned());
            dirs.extend(level.dir.iter().cloned());
            at = level.up.as_deref();
        }
    }

    /// Makes the link `ROOT/D -> ../…/D` for system dir `d`, unless a link above it
    /// exists; replaces the mirror's real directories at `D` (made for a longer system
    /// dir) by the link, as 3.4's `_MakeLinkFromMirrorToRealLocation`.
    fn system_link(&mut self, d: &str) -> Result<(), String> {
        if !d.starts_with('/') || d == "/" {
            return Ok(());
        }
        let rooted = format!("{}{d}", self.root);
        let parent = dirname(d);
        let (real_prefix, through_link) = self.real_prefix(d);
        if real_prefix == d {
            let _ = fs::remove_dir_all(&rooted);
            self.system_links.retain(|l| !under(l, &rooted));
        } else if real_prefix == parent {
            if fs::symlink_metadata(&rooted).is_ok() {
                return Ok(());
            }
        } else if !through_link {
            let rooted_parent = format!("{}{parent}", self.root);
            fs::create_dir_all(&rooted_parent)
                .map_err(|e| format!("Could not make directory '{rooted_parent}': {e}"))?;
        } else {
            return Ok(());
        }
        let depth = d.matches('/').count();
        let target = format!(
            "{}{}",
            "../".repeat(MAX_COMPONENTS_IN_SERVER_ROOT + depth),
            &d[1..]
        );
        symlink(&target, &rooted).map_err(|e| format!("Could not make link '{rooted}': {e}"))?;
        self.system_links.push(rooted);
        Ok(())
    }

    /// The longest prefix of `path` whose components are real directories under the root
    /// (not links), and whether the next component is a link.
    fn real_prefix(&self, path: &str) -> (String, bool) {
        let mut prefix = String::from("/");
        for part in path.split('/').filter(|c| !c.is_empty()) {
            let next = if prefix == "/" {
                format!("/{part}")
            } else {
                format!("{prefix}/{part}")
            };
            let rooted = format!("{}{next}", self.root);
            if is_link(&rooted) {
                return (prefix, true);
            }
            if !is_dir(&rooted) {
                return (prefix, false);
            }
            prefix = next;
        }
        (path.to_string(), false)
    }
}
