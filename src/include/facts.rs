//! What a compiler said about itself (built-in directories, predefined macros, answers to
//! feature tests), kept on disk between builds, so that an include server does not run
//! the compiler again for what it already asked in an earlier build.
//!
//! One file per (compiler binary, flags, language) in a private directory (mode 0700,
//! owned by the user; anything else there is ignored). The compiler binary is named by
//! its realpath, size, mtime and inode, so an upgraded compiler is asked again. A file
//! is replaced whole (temporary file and rename), so concurrent servers never read half
//! of one; a file that does not parse, or whose first line does not name the same key,
//! is ignored.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const HEADER: &str = "distcc-rs compiler facts 2";

/// The store's directory in the distcc directory (`$DISTCC_DIR`).
pub const FACTS_DIR: &str = "pump-compilers";

/// The directory of kept facts.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// The facts about one compiler, flags and language.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Saved {
    pub dirs: Vec<String>,
    /// `#define` lines without the `#define `.
    pub defines: Vec<String>,
    pub features: Vec<(String, Option<i64>)>,
    /// The directories it would search that did not exist (`ignoring nonexistent
    /// directory`): one made since means the facts are out of date.
    pub missing: Vec<String>,
}

impl Store {
    /// The store in `dir`, made if missing; `None` when it cannot be made or is not a
    /// private directory of this user.
    pub fn open(dir: &Path) -> Option<Store> {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
        let me = nix::unistd::geteuid().as_raw();
        let meta = std::fs::symlink_metadata(dir).ok()?;
        let private = meta.is_dir() && meta.uid() == me && meta.permissions().mode() & 0o077 == 0;
        // Nobody else may rename it away either: its parent is ours, or not writable by
        // others, or sticky.
        let parent = std::fs::metadata(dir.parent()?).ok()?;
        let mode = parent.permissions().mode();
        let parent_safe = parent.uid() == me || mode & 0o022 == 0 || mode & 0o1000 != 0;
        (private && parent_safe).then(|| Store {
            dir: dir.to_path_buf(),
        })
    }

    /// What names `program` (the absolute path of the compiler that runs, as found on the
    /// `PATH` past masquerade links) with `flags` and `language`, run in `place` when the
    /// answers depend on the directory (else empty); `None` when it cannot be found.
    pub fn key(program: &str, flags: &[String], language: &str, place: &str) -> Option<String> {
        let real = std::fs::canonicalize(program).ok()?;
        let m = std::fs::metadata(&real).ok()?;
        let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        let mut key = format!(
            "{} {} {} {} {language} {}",
            real.display(),
            m.size(),
            mtime,
            m.ino(),
            place.replace('\\', "\\\\").replace(' ', "\\s")
        );
        for f in flags {
            key.push(' ');
            key.push_str(&f.replace('\\', "\\\\").replace(' ', "\\s"));
        }
        (!key.contains('\n')).then_some(key)
    }

    fn file(&self, key: &str) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.dir.join(format!("{:016x}", h.finish()))
    }

    /// The facts kept for `key`.
    pub fn load(&self, key: &str) -> Option<Saved> {
        let path = self.file(key);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER || lines.next()?.strip_prefix("key ")? != key {
            return None;
        }
        let mut saved = Saved::default();
        let mut complete = false;
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "dir" => saved.dirs.push(rest.to_string()),
                "define" => saved.defines.push(rest.to_string()),
                "missing" => saved.missing.push(rest.to_string()),
                "feature" => {
                    let (test, value) = rest.split_once(' ')?;
                    saved.features.push((test.to_string(), value.parse().ok()));
                }
                "end" => complete = true,
                _ => return None,
            }
        }
        complete.then_some(saved)
    }

    /// Keeps `saved` for `key` (best effort: a store that cannot be written is a store
    /// that does not help).
    pub fn save(&self, key: &str, saved: &Saved) {
        let mut text = format!("{HEADER}\nkey {key}\n");
        for d in &saved.dirs {
            text.push_str(&format!("dir {d}\n"));
        }
        for d in &saved.defines {
            text.push_str(&format!("define {d}\n"));
        }
        for d in &saved.missing {
            text.push_str(&format!("missing {d}\n"));
        }
        for (t, v) in &saved.features {
            let v = v.map_or("-".to_string(), |v| v.to_string());
            text.push_str(&format!("feature {t} {v}\n"));
        }
        text.push_str("end\n");
        let path = self.file(key);
        let Ok(mut tmp) = tempfile::NamedTempFile::new_in(&self.dir) else {
            return;
        };
        if tmp.write_all(text.as_bytes()).is_ok() {
            let _ = tmp.persist(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_facts_come_back_for_the_same_key_only() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("facts")).unwrap();
        let key = Store::key("/bin/sh", &["-O2".into(), "a b".into()], "c", "").unwrap();
        assert!(store.load(&key).is_none());
        let saved = Saved {
            dirs: vec!["/usr/include".into()],
            defines: vec!["__GNUC__ 12".into()],
            features: vec![
                ("__has_builtin(x)".into(), Some(1)),
                ("__has_y(z)".into(), None),
            ],
            missing: vec!["/usr/local/include/x86_64-linux-gnu".into()],
        };
        store.save(&key, &saved);
        assert_eq!(store.load(&key), Some(saved));
        let other = Store::key("/bin/sh", &[], "c", "").unwrap();
        assert!(store.load(&other).is_none());
        // A truncated file is not used.
        let file = store.file(&key);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &text[..text.len() - 4]).unwrap();
        assert!(store.load(&key).is_none());
        // Nor a store others can write to.
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Store::open(&open).is_none());
    }
}
