//! Which compiler the server is asked for: distcc 3.4's renaming, so that a volunteer of
//! another architecture uses a compiler for ours. `gcc` is sent as `x86_64-linux-gnu-gcc`
//! when that exists here, `cc` as the compiler it really is, and `clang` gets `-target`.
//! `DISTCC_NO_REWRITE_CROSS` turns it off.
//!
//! Only what is sent is renamed: distcc 3.4 renames local compiles too, which changes what
//! build systems see when they ask the compiler about itself (`gcc -v`). This module looks
//! at PATH and the file system; it sends and runs nothing.

use std::path::{Path, PathBuf};

/// The GNU triple of this machine as Debian and most distributions name their compilers
/// (`x86_64-linux-gnu`); a name that does not exist is simply not used.
fn gnu_triple() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

/// The first executable called `name` on PATH.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// What `cc` or `c++` on PATH really is: the name its link points to, through one
/// `/etc/alternatives` hop (as distcc 3.4 looks), when that is gcc or clang.
fn resolve_generic(name: &str) -> Option<String> {
    let wanted: &[&str] = if name == "cc" {
        &["gcc", "clang"]
    } else {
        &["g++", "clang++"]
    };
    let mut target = std::fs::read_link(find_on_path(name)?).ok()?;
    if target.starts_with("/etc/alternatives") {
        target = std::fs::read_link(&target).ok()?;
    }
    let real = file_name(&target)?;
    wanted.contains(&real.as_str()).then_some(real)
}

fn is_gcc_name(name: &str) -> bool {
    ["gcc", "g++"].iter().any(|base| {
        name == *base
            || name
                .strip_prefix(base)
                .and_then(|v| v.strip_prefix('-'))
                .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

fn is_clang_name(name: &str) -> bool {
    name == "clang"
        || name == "clang++"
        || name.starts_with("clang-")
        || name.starts_with("clang++-")
}

/// Renames the compiler of a command line about to be sent, in place (unless the user
/// said `DISTCC_NO_REWRITE_CROSS`, which the caller knows).
pub fn rewrite_for_server(argv: &mut Vec<String>) {
    if argv.is_empty() {
        return;
    }
    if argv[0] == "cc" || argv[0] == "c++" {
        if let Some(real) = resolve_generic(&argv[0]) {
            argv[0] = real;
        }
    }
    let name = argv[0].clone();
    if is_gcc_name(&name) {
        let qualified = format!("{}-{name}", gnu_triple());
        if find_on_path(&qualified).is_some() {
            argv[0] = qualified;
        }
    } else if is_clang_name(&name) {
        let has_target = argv
            .iter()
            .any(|a| a == "-target" || a.starts_with("--target="));
        if !has_target {
            argv.insert(1, format!("{}-pc-linux-gnu", std::env::consts::ARCH));
            argv.insert(1, "-target".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for gcc in ["gcc", "g++", "gcc-12", "g++-12", "gcc-4.9"] {
            assert!(is_gcc_name(gcc), "{gcc}");
        }
        for not in ["gccx", "gcc-", "gcc-x", "x86_64-linux-gnu-gcc", "cc"] {
            assert!(!is_gcc_name(not), "{not}");
        }
        assert!(is_clang_name("clang++-14"));
        assert!(!is_clang_name("clangd"));
    }

    #[test]
    fn clang_gets_a_target_once() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let mut argv = v("clang -c a.c");
        rewrite_for_server(&mut argv);
        assert_eq!(argv[1], "-target");
        let mut argv = v("clang --target=aarch64-linux-gnu -c a.c");
        rewrite_for_server(&mut argv);
        assert_eq!(argv, v("clang --target=aarch64-linux-gnu -c a.c"));
    }
}
