//! The shape of the compiler's own include directories, for a key that stands for what a
//! compile could have found in them: the identity of every directory beneath them. A name
//! created, removed or renamed anywhere in those trees changes its directory's identity,
//! so a header that would now shadow another, or a `__has_include` that would now find
//! one, changes the shape. What a file holds is not part of it: the caller keys the files
//! a compile read by their own identities.
//!
//! Walking a tree of a thousand directories for every job would cost more than the rest
//! of a daemon's hit, so the list of directories is kept beside the cache's other memos
//! (`compilers/`) and checked by identity alone: while every directory on it is as it was,
//! no directory can have appeared beneath them, and the list is whole. This module does
//! not say which directories are the compiler's ([`super::key::builtin_dirs`] does).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::key::{hex, keep};
use super::manifest::{now_ns, Ident};

/// The first line of a memo of directories.
const HEADER: &str = "directory tree 1\n";

/// The shape of the trees under `roots`: a sum of the identity of every directory in
/// them (a root that is missing, as missing), with the list kept in the cache at `dir`.
/// `None` while a directory changed too recently for its identity to show a change made
/// within the same tick of the clock (a name added just after the walk saw it).
pub fn shape(dir: &Path, roots: &[String]) -> io::Result<Option<[u8; 32]>> {
    let mut name = blake3::Hasher::new();
    for r in roots {
        name.update(&(r.len() as u64).to_le_bytes());
        name.update(r.as_bytes());
    }
    let memo = dir
        .join("compilers")
        .join(format!("{}.tree", name.finalize().to_hex()));
    if let Some(kept) = fs::read_to_string(&memo).ok().filter(|k| still(k)) {
        return Ok(Some(*blake3::hash(kept.as_bytes()).as_bytes()));
    }
    let Some(listed) = list(roots) else {
        return Ok(None);
    };
    // Kept when the cache can be written; the shape holds either way.
    let _ = keep(&memo, listed.as_bytes());
    Ok(Some(*blake3::hash(listed.as_bytes()).as_bytes()))
}

/// A line of the memo: the directory's identity (or `-` for a missing root), its path.
fn line(path: &str, m: Option<&fs::Metadata>) -> String {
    let ident = m.map_or("-".to_string(), |m| hex(&Ident::of(m).bytes()));
    format!("{ident} {path}\n")
}

/// Whether every directory of the memo `kept` is as it was then.
fn still(kept: &str) -> bool {
    let Some(lines) = kept.strip_prefix(HEADER) else {
        return false;
    };
    lines.lines().all(|l| {
        let Some((_, path)) = l.split_once(' ') else {
            return false;
        };
        let now = fs::metadata(path).ok().filter(|m| m.is_dir());
        line(path, now.as_ref()).trim_end() == l
    })
}

/// Walks the trees under `roots`, through links to directories, each directory once:
/// the memo's text. A directory's identity is taken before it is read, so that a name
/// added meanwhile shows as a change the next time.
fn list(roots: &[String]) -> Option<String> {
    let started_ns = now_ns();
    let mut text = HEADER.to_string();
    let mut seen = HashSet::new();
    for root in roots {
        if !fs::metadata(root).is_ok_and(|m| m.is_dir()) {
            text.push_str(&line(root, None));
            continue;
        }
        let mut todo = vec![root.clone()];
        while let Some(path) = todo.pop() {
            let Some(m) = fs::metadata(&path).ok().filter(|m| m.is_dir()) else {
                continue;
            };
            if !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            if Ident::of(&m).recent(started_ns) {
                return None;
            }
            text.push_str(&line(&path, Some(&m)));
            let Ok(entries) = fs::read_dir(&path) else {
                continue;
            };
            let mut subdirs: Vec<String> = entries
                .flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| {
                        t.is_dir()
                            || (t.is_symlink() && fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
                    })
                })
                .filter_map(|e| e.path().into_os_string().into_string().ok())
                .collect();
            subdirs.sort_unstable_by(|a, b| b.cmp(a));
            todo.extend(subdirs);
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape, once the directories are old enough to have one.
    fn settled(cache: &Path, roots: &[String]) -> [u8; 32] {
        for _ in 0..100 {
            if let Some(s) = shape(cache, roots).unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no shape");
    }

    #[test]
    fn a_name_created_anywhere_below_changes_the_shape() {
        let cache = tempfile::tempdir().unwrap();
        let top = tempfile::tempdir().unwrap();
        let t = top.path();
        let shape = |c: &Path, r: &[String]| -> io::Result<[u8; 32]> { Ok(settled(c, r)) };
        fs::create_dir_all(t.join("a/b/c")).unwrap();
        fs::write(t.join("a/b/c/h.h"), "x").unwrap();
        let roots = [
            t.join("a").to_string_lossy().into_owned(),
            t.join("missing").to_string_lossy().into_owned(),
        ];
        let first = shape(cache.path(), &roots).unwrap();
        assert_eq!(shape(cache.path(), &roots).unwrap(), first);
        // A file written in place is not the shape's business.
        fs::write(t.join("a/b/c/h.h"), "y").unwrap();
        assert_eq!(shape(cache.path(), &roots).unwrap(), first);
        // A new name deep down is.
        fs::write(t.join("a/b/c/new.h"), "").unwrap();
        let second = shape(cache.path(), &roots).unwrap();
        assert_ne!(second, first);
        // So is a new directory, and the memo then lists it.
        fs::create_dir(t.join("a/b/c/d")).unwrap();
        let third = shape(cache.path(), &roots).unwrap();
        assert_ne!(third, second);
        fs::write(t.join("a/b/c/d/deeper.h"), "").unwrap();
        assert_ne!(shape(cache.path(), &roots).unwrap(), third);
        // A root that appears.
        let before = shape(cache.path(), &roots).unwrap();
        fs::create_dir(t.join("missing")).unwrap();
        assert_ne!(shape(cache.path(), &roots).unwrap(), before);
    }

    #[test]
    fn a_directory_changed_just_now_has_no_shape_yet() {
        let cache = tempfile::tempdir().unwrap();
        let top = tempfile::tempdir().unwrap();
        let roots = [top.path().to_string_lossy().into_owned()];
        fs::write(top.path().join("new.h"), "").unwrap();
        assert_eq!(super::shape(cache.path(), &roots).unwrap(), None);
        // Nor kept as a memo that a later name in the same tick would not change.
        assert!(!cache.path().join("compilers").exists());
    }
}
