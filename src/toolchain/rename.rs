//! Which compiler the server is asked for: distcc 3.4's renaming, so that a volunteer of
//! another architecture uses a compiler for ours. `gcc` is sent as `x86_64-linux-gnu-gcc`
//! when that exists here, `cc` as the compiler it really is, and `clang` gets `-target`.
//! `DISTCC_NO_REWRITE_CROSS` turns it off.
//!
//! Only what is sent is renamed: distcc 3.4 renames local compiles too, which changes what
//! build systems see when they ask the compiler about itself (`gcc -v`). This module looks
//! at PATH and the file system; it sends and runs nothing.

use std::path::{Path, PathBuf};

use super::{lookup, names};

/// The GNU triple of this machine as Debian and most distributions name their compilers
/// (`x86_64-linux-gnu`); a name that does not exist is simply not used.
fn gnu_triple() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

/// The compiler called `name` on PATH, masquerade links passed over.
fn find_on_path(name: &str) -> Option<PathBuf> {
    lookup::find_compiler(name, &std::env::var_os("PATH")?).ok()
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

/// gcc or g++ without a target prefix: the names that get this machine's.
fn is_gcc_name(name: &str) -> bool {
    names::driver(name).is_some_and(|d| d.is_gcc() && d.target.is_empty())
}

/// clang or clang++ without a target prefix, which are told their target instead.
fn is_clang_name(name: &str) -> bool {
    names::driver(name).is_some_and(|d| d.is_clang() && d.target.is_empty())
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
