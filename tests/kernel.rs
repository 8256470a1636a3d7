//! A Linux kernel `make ARCH=x86_64 tinyconfig` build (Debian's linux-source-6.1) through
//! `CC="distcc gcc"` and our daemon: every object identical to a local build's. Kbuild
//! passes `-g` to the real-mode setup code and `-Wp,-MMD,...` everywhere, checks the
//! compiler with `gcc -v` and many test compiles, and embeds nothing else that varies once
//! the `KBUILD_BUILD_*` stamps are fixed. distcc 3.4 gets 511 of its 534 objects right.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

/// Every object below `dir`, by path.
fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = Command::new("find")
        .arg(".")
        .args(["-name", "*.o"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|p| (p.to_string(), std::fs::read(dir.join(p)).unwrap()))
        .collect()
}

/// Configures the tree afresh and builds it, with `cc` as `CC` when given.
fn build(tree: &Path, cc: Option<&str>, env: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    for target in ["mrproper", "tinyconfig"] {
        let out = output_within(
            Command::new("make")
                .args(["ARCH=x86_64", target])
                .current_dir(tree),
            300,
        );
        assert!(out.status.success(), "make {target}: {}", show(&out));
    }
    let mut make = Command::new("make");
    make.args(["ARCH=x86_64", "-j3"]).current_dir(tree);
    if let Some(cc) = cc {
        make.arg(format!("CC={cc}"));
    }
    for (k, v) in [
        ("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:00:00 UTC 2026"),
        ("KBUILD_BUILD_USER", "builder"),
        ("KBUILD_BUILD_HOST", "host"),
        ("KBUILD_BUILD_VERSION", "1"),
    ]
    .iter()
    .chain(env)
    {
        make.env(k, v);
    }
    let out = output_within(&mut make, 1800);
    assert!(out.status.success(), "kernel build: {}", show(&out));
    assert!(tree.join("arch/x86/boot/bzImage").exists());
    objects(tree)
}

#[test]
fn kernel_tinyconfig_objects_identical_to_local_build() {
    assert!(
        Path::new(SOURCE).exists(),
        "{SOURCE} is missing: install Debian's linux-source-6.1, flex, bison, bc and \
         libelf-dev (scripts/test.sh does it as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = output_within(
        Command::new("tar")
            .args(["xf", SOURCE, "-C"])
            .arg(dir.path()),
        600,
    );
    assert!(out.status.success(), "{}", show(&out));
    let tree = dir.path().join("linux-source-6.1");
    let local = build(&tree, None, &[]);
    assert!(local.len() > 500, "{} objects", local.len());

    let d = Daemon::ours(&[]);
    let hosts = format!("{}/3", d.host());
    let distcc_dir = dir.path().join(".distcc");
    let distcc_dir = distcc_dir.to_str().unwrap();
    let cc = format!("{OUR_DISTCC} gcc");
    let remote = build(
        &tree,
        Some(&cc),
        &[("DISTCC_HOSTS", &hosts), ("DISTCC_DIR", distcc_dir)],
    );
    let differ: Vec<&String> = local
        .iter()
        .filter(|(path, data)| remote.get(*path) != Some(data))
        .map(|(path, _)| path)
        .collect();
    assert!(
        differ.is_empty() && local.len() == remote.len(),
        "{} of {} objects differ: {differ:?}",
        differ.len(),
        local.len()
    );
    // The kernel's C files went to the daemon: about 460 of the objects (its assembler
    // files, host programs and Kbuild's option checks are built here, as with 3.4).
    assert!(
        d.compiled_ok() > 440,
        "{} compiled remotely",
        d.compiled_ok()
    );
}
