//! Pump mode on real trees: Lua 5.4 (the lua-src crate) with make, and LevelDB 1.22 (the
//! leveldb-sys crate) with its own CMakeLists.txt, Ninja and the compiler launcher (C++),
//! each built here and then under our `pump` through our client and our daemon. Every
//! object (and Lua's dependency files) must equal the local build's, and every translation
//! unit must have been compiled in pump mode: `DISTCC_TESTING_INCLUDE_SERVER=1` makes an
//! include-server failure an error, `DISTCC_FALLBACK=0` forbids local compiles, and the
//! daemon's log counts the jobs it compiled from the files sent.
//!
//! The sources come from crates.io as bench/bench.py gets them (cargo fetches the crate
//! when it is not in cargo's cache); the directory used is copied once below the target
//! directory, so that later runs need neither the network nor cargo.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const OUR_PUMP: &str = env!("CARGO_BIN_EXE_pump");

/// The target directory these binaries were built in.
fn target_dir() -> PathBuf {
    Path::new(OUR_DISTCC)
        .ancestors()
        .nth(2)
        .expect("target dir")
        .to_path_buf()
}

fn run(cmd: &mut Command, secs: u64) {
    let out = output_within(cmd, secs);
    assert!(out.status.success(), "{cmd:?}\n{}", show(&out));
}

/// `sub` (a glob-free path) inside crate `name`-`version` from crates.io, cached as
/// `target/tree-sources/<cache>`.
fn crate_source(name: &str, version: &str, sub: &str, cache: &str) -> PathBuf {
    let cached = target_dir().join("tree-sources").join(cache);
    if cached.join(".complete").exists() {
        return cached;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let find = || -> Option<PathBuf> {
        let registries = std::fs::read_dir(home.join("registry/src")).ok()?;
        registries
            .filter_map(|r| r.ok())
            .map(|r| r.path().join(format!("{name}-{version}")).join(sub))
            .find(|p| p.is_dir())
    };
    let src = find().unwrap_or_else(|| {
        let proj = tempfile::tempdir().unwrap();
        run(
            Command::new("cargo")
                .args(["init", "-q", "--name", "fetchsrc"])
                .arg(proj.path()),
            120,
        );
        run(
            Command::new("cargo")
                .args(["add", "-q", &format!("{name}@={version}")])
                .current_dir(proj.path()),
            300,
        );
        run(
            Command::new("cargo")
                .args(["fetch", "-q"])
                .current_dir(proj.path()),
            600,
        );
        find().unwrap_or_else(|| panic!("{name} {version} not found after cargo fetch"))
    });
    let _ = std::fs::remove_dir_all(&cached);
    std::fs::create_dir_all(&cached).unwrap();
    run(
        Command::new("cp")
            .arg("-R")
            .arg(format!("{}/.", src.display()))
            .arg(&cached),
        120,
    );
    std::fs::write(cached.join(".complete"), "").unwrap();
    cached
}

/// Every file below `dir` whose name ends with one of `exts`, by path relative to it.
fn files(dir: &Path, exts: &[&str]) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, exts: &[&str], out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                walk(base, &p, exts, out);
            } else if exts.iter().any(|x| name.ends_with(x)) {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, exts, &mut out);
    out
}

fn assert_same(what: &str, local: &BTreeMap<String, Vec<u8>>, pump: &BTreeMap<String, Vec<u8>>) {
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(local), names(pump), "{what}: different sets of files");
    let differ: Vec<&String> = local
        .iter()
        .filter(|(p, data)| pump.get(*p) != Some(data))
        .map(|(p, _)| p)
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} differ from the local build's: {differ:?}",
        differ.len(),
        local.len()
    );
}

/// `argv` run under our `pump` in `dir`, against our daemon `d` in pump mode only.
fn pump(dir: &Path, d: &Daemon, argv: &[&str], distcc_dir: &Path, secs: u64) {
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(dir)
        .args(argv)
        .env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_HOSTS", format!("{}/4,cpp,lzo", d.host()))
        .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    let out = output_within(&mut cmd, secs);
    assert!(
        out.status.success(),
        "pump {argv:?}: {}\ndaemon:\n{}",
        show(&out),
        d.log_text()
    );
}

/// How many jobs the daemon (started with `--verbose`) compiled in pump mode.
fn pumped(d: &Daemon) -> usize {
    d.log_text().matches(") compiling in ").count()
}

/// Lua's own flags (its src/Makefile, target linux), with `-g` (so that the debug
/// information of pump-mode objects is checked too) and `-MMD` (dependency files).
const LUA_MAKEFILE: &str = "\
CC ?= gcc
CFLAGS = -O2 -g -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -MMD
SRCS = $(wildcard *.c)
all: $(SRCS:.c=.o)
%.o: %.c
\t$(CC) $(CFLAGS) -c $< -o $@
clean:
\trm -f *.o *.d
";

#[test]
fn lua_pump_build_is_identical_and_every_unit_pumped() {
    let src = crate_source("lua-src", "547.1.0", "lua-5.4.7", "lua-5.4.7");
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("lua");
    std::fs::create_dir(&tree).unwrap();
    let mut units = 0;
    for e in std::fs::read_dir(&src).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".c") || name.ends_with(".h") {
            std::fs::copy(e.path(), tree.join(&name)).unwrap();
            units += usize::from(name.ends_with(".c"));
        }
    }
    assert!(units >= 30, "{units} C files in {}", src.display());
    std::fs::write(tree.join("Makefile"), LUA_MAKEFILE).unwrap();
    let distcc_dir = work.path().join(".distcc");

    run(Command::new("make").args(["-j2"]).current_dir(&tree), 600);
    let local = files(&tree, &[".o", ".d"]);
    assert_eq!(local.len(), 2 * units);
    run(Command::new("make").arg("clean").current_dir(&tree), 60);

    let d = Daemon::ours(&["--verbose"]);
    let cc = format!("CC={OUR_DISTCC} gcc");
    pump(&tree, &d, &["make", "-j4", &cc], &distcc_dir, 600);
    assert_same("lua", &local, &files(&tree, &[".o", ".d"]));
    assert_eq!(d.wait_compiled(units), units, "{}", d.log_text());
    assert_eq!(pumped(&d), units, "{}", d.log_text());
}

#[test]
fn leveldb_cmake_ninja_pump_build_is_identical_and_every_unit_pumped() {
    let src = crate_source("leveldb-sys", "2.0.9", "deps/leveldb-1.22", "leveldb-1.22");
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    let distcc_dir = work.path().join(".distcc");
    let d = Daemon::ours(&["--verbose"]);
    let mut results = Vec::new();
    // RelWithDebInfo: -O2 -g. Both builds use the same directory, which -g records.
    for launcher in [None, Some(OUR_DISTCC)] {
        let _ = std::fs::remove_dir_all(&build);
        std::fs::create_dir(&build).unwrap();
        let mut configure = Command::new("cmake");
        configure.current_dir(&build).args([
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DLEVELDB_BUILD_TESTS=OFF",
            "-DLEVELDB_BUILD_BENCHMARKS=OFF",
            "-DLEVELDB_INSTALL=OFF",
        ]);
        if let Some(l) = launcher {
            configure.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={l}"));
            configure.arg(format!("-DCMAKE_CXX_COMPILER_LAUNCHER={l}"));
        }
        configure.arg(&src);
        run(&mut configure, 300);
        match launcher {
            None => run(Command::new("ninja").arg("-j2").current_dir(&build), 1200),
            Some(_) => pump(&build, &d, &["ninja", "-j4"], &distcc_dir, 1200),
        }
        results.push(files(&build, &[".o"]));
    }
    let units = results[0].len();
    assert!(units >= 39, "{units} objects");
    assert_same("leveldb", &results[0], &results[1]);
    assert_eq!(d.wait_compiled(units), units, "{}", d.log_text());
    assert_eq!(pumped(&d), units, "{}", d.log_text());
}
