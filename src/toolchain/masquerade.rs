//! Masquerading: `distcc` installed under compiler names (`gcc -> distcc`) in a directory
//! early on PATH, so that builds use it without being told.
//!
//! This module owns the two sides of that: taking the masquerade directory out of PATH
//! when distcc runs under a compiler's name (so that the compiler it starts is the real
//! one), and making such a directory for the compilers present, as Debian's
//! `update-distcc-symlinks` does. The same directory serves distccd as its list of allowed
//! compilers (`--whitelist-dir`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::lookup;
use crate::exitcode;

fn this_program() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    Some(std::fs::canonicalize(&me).unwrap_or(me))
}

/// Removes from `PATH` every directory whose `name` is this very program (a masquerade
/// directory), so that the compiler we start is the real one.
pub fn trim_path(name: &OsStr) {
    let (Some(me), Some(path)) = (this_program(), std::env::var_os("PATH")) else {
        return;
    };
    let kept: Vec<_> = std::env::split_paths(&path)
        .filter(|dir| std::fs::canonicalize(dir.join(name)).map_or(true, |p| p != me))
        .collect();
    if let Ok(joined) = std::env::join_paths(kept) {
        std::env::set_var("PATH", joined);
    }
}

/// The compilers on PATH that are not this program: their names, first occurrence only.
fn compilers_on_path(me: &Path) -> Vec<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    lookup::compilers_on(&path)
        .into_iter()
        .filter(|file| std::fs::canonicalize(file).map_or(true, |real| real != me))
        .filter_map(|file| Some(file.file_name()?.to_string_lossy().into_owned()))
        .collect()
}

/// Fills `dir` with links named after the compilers on PATH, pointing to this program.
/// Existing links are replaced; returns the names linked.
pub fn make_symlinks(dir: &Path) -> std::io::Result<Vec<String>> {
    let me = this_program().ok_or_else(|| std::io::Error::other("cannot find this program"))?;
    std::fs::create_dir_all(dir)?;
    let names = compilers_on_path(&me);
    for name in &names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&link)?;
        }
        std::os::unix::fs::symlink(&me, &link)?;
    }
    Ok(names)
}

/// `distcc --make-symlinks DIR`.
pub fn make_symlinks_main(args: &[OsString]) -> i32 {
    let [dir] = args else {
        eprintln!("usage: distcc --make-symlinks DIR");
        return exitcode::BAD_ARGUMENTS;
    };
    match make_symlinks(Path::new(dir)) {
        Ok(names) => {
            println!("{}", names.join(" "));
            0
        }
        Err(e) => {
            eprintln!(
                "distcc: ERROR: cannot make links in {}: {e}",
                Path::new(dir).display()
            );
            exitcode::IO_ERROR
        }
    }
}
