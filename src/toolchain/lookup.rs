//! Finding a real compiler on a search path, past masquerade links: a `gcc -> distcc` link
//! (as `distcc --make-symlinks` or `update-distcc-symlinks` make them) is distcc itself, and
//! a program that runs it as its compiler only gets the job sent back out.
//!
//! This module answers "which file is compiler NAME on this PATH" and "which compilers does
//! this PATH offer"; it neither reads the environment nor runs anything. The client's own
//! PATH trimming stays in `masquerade`.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::names::is_compiler_name;

/// True when `file` is distcc standing in for a compiler: a link whose target is named
/// `distcc`, or anything that resolves to a program named `distcc`.
pub fn is_masquerade_link(file: &Path) -> bool {
    let named_distcc = |p: &Path| p.file_name() == Some(OsStr::new("distcc"));
    if std::fs::read_link(file).is_ok_and(|target| named_distcc(&target)) {
        return true;
    }
    std::fs::canonicalize(file).is_ok_and(|real| named_distcc(&real))
}

pub(crate) fn executable_file(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why a compiler was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// The search path, as given.
    pub path: String,
    /// Directories that could not be searched (permission denied: a home directory of
    /// root's, say, once the daemon runs as another user).
    pub unsearchable: Vec<PathBuf>,
    /// Masquerade links that were passed over.
    pub skipped: Vec<PathBuf>,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not found on PATH {}", self.path)?;
        if !self.unsearchable.is_empty() {
            let dirs: Vec<_> = self
                .unsearchable
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            write!(f, " ({} could not be searched)", dirs.join(", "))?;
        }
        if !self.skipped.is_empty() {
            let links: Vec<_> = self
                .skipped
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            write!(f, " (skipped links to distcc: {})", links.join(", "))?;
        }
        Ok(())
    }
}

/// The file that runs as compiler `name` (no `/`) from `search_path`: the first executable
/// `DIR/name` that is not a masquerade link. Empty entries mean the current directory, as
/// for `execvp`.
pub fn find_compiler(name: &str, search_path: &OsStr) -> Result<PathBuf, NotFound> {
    let mut not_found = NotFound {
        path: search_path.to_string_lossy().into_owned(),
        unsearchable: Vec::new(),
        skipped: Vec::new(),
    };
    for dir in std::env::split_paths(search_path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                not_found.unsearchable.push(dir);
                continue;
            }
            Err(_) => continue,
        }
        if !executable_file(&candidate) {
            continue;
        }
        if is_masquerade_link(&candidate) {
            not_found.skipped.push(candidate);
            continue;
        }
        return Ok(candidate);
    }
    Err(not_found)
}

/// The compilers `search_path` offers: for each name that looks like a compiler's, the first
/// executable file of that name that is not a masquerade link, sorted by name.
pub fn compilers_on(search_path: &OsStr) -> Vec<PathBuf> {
    let mut found = std::collections::BTreeMap::new();
    for dir in std::env::split_paths(search_path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if found.contains_key(&name) || !is_compiler_name(&name) {
                continue;
            }
            let file = entry.path();
            if executable_file(&file) && !is_masquerade_link(&file) {
                found.insert(name, file);
            }
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_links_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let (masq, real) = (dir.path().join("masq"), dir.path().join("real"));
        std::fs::create_dir(&masq).unwrap();
        std::fs::create_dir(&real).unwrap();
        let gcc = real.join("gcc");
        std::fs::write(&gcc, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/some/where/distcc", masq.join("gcc")).unwrap();
        // A chain: a link to a link named distcc.
        let distcc = real.join("distcc");
        std::fs::write(&distcc, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&distcc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&distcc, masq.join("cc")).unwrap();
        let path = std::env::join_paths([&masq, &real]).unwrap();
        assert_eq!(find_compiler("gcc", &path), Ok(gcc.clone()));
        let missing = find_compiler("cc", &path).unwrap_err();
        assert_eq!(missing.skipped, vec![masq.join("cc")]);
        assert_eq!(compilers_on(&path), vec![gcc]);
    }
}
