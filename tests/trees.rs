//! Pump mode on real trees: Lua 5.4 (the lua-src crate) with make, and LevelDB 1.22 (the
//! leveldb-sys crate) with its own CMakeLists.txt, Ninja and the compiler launcher (C++),
//! each built here and then under our `pump` through our client and our daemon (with
//! clang, in plain mode too, where its `-g` compiles go as files all the same). Every
//! object (and Lua's dependency files) must equal the local build's, and every translation
//! unit must have been compiled from the files sent: `DISTCC_TESTING_INCLUDE_SERVER=1`
//! makes an include-server failure an error, `DISTCC_FALLBACK=0` forbids local compiles,
//! and the daemon's log counts the jobs it compiled from the files sent.
//!
//! The same trees, and the example project, also check the include server against gcc -M
//! on every unit, with the commands of their builds (`make -n`, CMake's
//! `compile_commands.json`): see tests/common/oracle.rs.
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
    // Tests run in parallel and several may want the same tree: each copies into a
    // directory of its own and renames it into place, so none sees another's half copy.
    let parent = cached.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let staging = tempfile::tempdir_in(parent).unwrap();
    run(
        Command::new("cp")
            .arg("-R")
            .arg(format!("{}/.", src.display()))
            .arg(staging.path()),
        120,
    );
    std::fs::write(staging.path().join(".complete"), "").unwrap();
    if !cached.join(".complete").exists() {
        let _ = std::fs::remove_dir_all(&cached);
        // Losing the race to another test's rename is fine: its copy is as good.
        if std::fs::rename(staging.path(), &cached).is_ok() {
            let _ = staging.keep();
        }
    }
    assert!(
        cached.join(".complete").exists(),
        "{} not in place",
        cached.display()
    );
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

/// How a build goes through our client and daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Under our `pump`, to a `,cpp` host, every unit in pump mode
    /// (`DISTCC_TESTING_INCLUDE_SERVER=1` makes an include-server failure an error).
    Pump,
    /// Without `pump`, to a host that does not say `,cpp`: clang's `-g` compiles go to
    /// our daemon as the files they read all the same (`client::pump::files_wanted`).
    Plain,
}

/// `argv` run in `dir` through our client, against our daemon `d` only, in `mode`.
fn distributed(dir: &Path, d: &Daemon, argv: &[&str], distcc_dir: &Path, mode: Mode, secs: u64) {
    let mut cmd = match mode {
        Mode::Pump => {
            let mut cmd = Command::new(OUR_PUMP);
            cmd.args(argv)
                .env("DISTCC_HOSTS", format!("{}/4,cpp,lzo", d.host()))
                .env("DISTCC_TESTING_INCLUDE_SERVER", "1");
            cmd
        }
        Mode::Plain => {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..])
                .env("DISTCC_HOSTS", format!("{}/4,lzo", d.host()));
            cmd
        }
    };
    cmd.current_dir(dir)
        .env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    let out = output_within(&mut cmd, secs);
    assert!(
        out.status.success(),
        "{mode:?} {argv:?}: {}\ndaemon:\n{}",
        show(&out),
        d.log_text()
    );
}

/// How many jobs the daemon (started with `--verbose`) compiled from the files sent (pump
/// mode, or clang's `-g` compiles in plain mode).
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

/// Lua's sources with [`LUA_MAKEFILE`] in `work/lua`, and how many C files it has.
fn lua_tree(work: &Path) -> (PathBuf, usize) {
    let src = crate_source("lua-src", "547.1.0", "lua-5.4.7", "lua-5.4.7");
    let tree = work.join("lua");
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
    (tree, units)
}

/// Lua built here with `compiler`, then through our client and daemon in each of `modes`,
/// every unit from the files sent.
fn lua_builds(compiler: &str, modes: &[Mode]) {
    let work = tempfile::tempdir().unwrap();
    let (tree, units) = lua_tree(work.path());
    let distcc_dir = work.path().join(".distcc");

    let local_cc = format!("CC={compiler}");
    run(
        Command::new("make")
            .args(["-j2", &local_cc])
            .current_dir(&tree),
        600,
    );
    let local = files(&tree, &[".o", ".d"]);
    assert_eq!(local.len(), 2 * units);

    let d = Daemon::ours(&["--verbose"]);
    let cc = format!("CC={OUR_DISTCC} {compiler}");
    for (n, &mode) in (1..).zip(modes) {
        run(Command::new("make").arg("clean").current_dir(&tree), 60);
        distributed(&tree, &d, &["make", "-j4", &cc], &distcc_dir, mode, 600);
        assert_same(
            &format!("lua {mode:?}"),
            &local,
            &files(&tree, &[".o", ".d"]),
        );
        assert_eq!(d.wait_compiled(n * units), n * units, "{}", d.log_text());
        assert_eq!(pumped(&d), n * units, "{mode:?}: {}", d.log_text());
    }
}

#[test]
fn lua_pump_build_is_identical_and_every_unit_pumped() {
    lua_builds("gcc", &[Mode::Pump]);
}

#[test]
fn lua_clang_builds_in_pump_and_plain_mode_are_identical_and_every_unit_sent_as_files() {
    lua_builds("clang", &[Mode::Pump, Mode::Plain]);
}

fn leveldb_source() -> PathBuf {
    crate_source("leveldb-sys", "2.0.9", "deps/leveldb-1.22", "leveldb-1.22")
}

/// LevelDB's build configured in `build` (made afresh) from `src`, for Ninja with
/// RelWithDebInfo (-O2 -g), without tests, benchmarks or install rules; `launcher` as
/// the compiler launcher when given; `extra` CMake options.
fn leveldb_configure(build: &Path, src: &Path, launcher: Option<&str>, extra: &[&str]) {
    let _ = std::fs::remove_dir_all(build);
    std::fs::create_dir(build).unwrap();
    let mut configure = Command::new("cmake");
    configure.current_dir(build).args([
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
    configure.args(extra).arg(src);
    run(&mut configure, 300);
}

/// The CMake options that make LevelDB's build use clang and clang++.
const CLANG: &[&str] = &["-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++"];

/// LevelDB built here (`compilers`: CMake options naming them, none for its default of
/// gcc), then through our client and daemon in each of `modes`, every unit from the files
/// sent.
fn leveldb_builds(compilers: &[&str], modes: &[Mode]) {
    let src = leveldb_source();
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    let distcc_dir = work.path().join(".distcc");
    let d = Daemon::ours(&["--verbose"]);
    // RelWithDebInfo: -O2 -g. Every build uses the same directory, which -g records.
    leveldb_configure(&build, &src, None, compilers);
    run(Command::new("ninja").arg("-j2").current_dir(&build), 1200);
    let local = files(&build, &[".o"]);
    let units = local.len();
    assert!(units >= 39, "{units} objects");
    for (n, &mode) in (1..).zip(modes) {
        leveldb_configure(&build, &src, Some(OUR_DISTCC), compilers);
        distributed(&build, &d, &["ninja", "-j4"], &distcc_dir, mode, 1200);
        assert_same(
            &format!("leveldb {mode:?}"),
            &local,
            &files(&build, &[".o"]),
        );
        assert_eq!(d.wait_compiled(n * units), n * units, "{}", d.log_text());
        assert_eq!(pumped(&d), n * units, "{mode:?}: {}", d.log_text());
    }
}

#[test]
fn leveldb_cmake_ninja_pump_build_is_identical_and_every_unit_pumped() {
    leveldb_builds(&[], &[Mode::Pump]);
}

#[test]
fn leveldb_clang_builds_in_pump_and_plain_mode_are_identical_and_every_unit_sent_as_files() {
    leveldb_builds(CLANG, &[Mode::Pump, Mode::Plain]);
}

// The include server against gcc -M (tests/common/oracle.rs) on every unit of each tree,
// with the commands its build runs: missing nothing, and shipping at most 10% more bytes
// than gcc reads outside the system directories (issue 15). Two threads: this machine's
// cores.

/// The surplus allowed, as a fraction of the bytes gcc lists.
const MAX_SURPLUS: f64 = 0.10;

/// Prints `report` and asserts that every unit was covered, nothing missing and the
/// surplus at most [`MAX_SURPLUS`].
fn assert_oracle(tree: &str, report: &oracle::Report, units: usize) {
    println!("{}", report.summary(tree));
    assert_eq!(report.tally.units + report.not_covered.len(), units);
    // The pump builds above compile every unit of these trees in pump mode.
    assert!(
        report.not_covered.is_empty(),
        "{tree}: not covered: {:#?}",
        report.not_covered
    );
    report.tally.check(tree, MAX_SURPLUS);
}

/// The example project's units, the commands its build runs with `CC=cc` (the client
/// sends `gcc ...` when the build says `CC="distcc gcc"`), against `cc -M`.
fn example_closures(cc: &str) {
    let project = Project::example();
    let units = oracle::make_units(project.path(), &[&format!("CC={cc}")]);
    assert_eq!(units.len(), 5, "{units:?}");
    let report = oracle::compare_units(&units, 2);
    assert_oracle(&format!("example ({cc})"), &report, units.len());
}

#[test]
fn example_project_closures_match_gcc_on_every_unit() {
    example_closures("gcc");
}

#[test]
fn example_project_closures_match_clang_on_every_unit() {
    example_closures("clang");
}

fn lua_closures(cc: &str) {
    let work = tempfile::tempdir().unwrap();
    let (tree, count) = lua_tree(work.path());
    let units = oracle::make_units(&tree, &[&format!("CC={cc}")]);
    assert_eq!(units.len(), count, "{units:?}");
    let report = oracle::compare_units(&units, 2);
    assert_oracle(&format!("lua ({cc})"), &report, units.len());
}

#[test]
fn lua_closures_match_gcc_on_every_unit() {
    lua_closures("gcc");
}

#[test]
fn lua_closures_match_clang_on_every_unit() {
    lua_closures("clang");
}

#[test]
fn leveldb_closures_match_gcc_on_every_unit() {
    leveldb_closures(&[]);
}

#[test]
fn leveldb_closures_match_clang_on_every_unit() {
    leveldb_closures(CLANG);
}

fn leveldb_closures(compilers: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    // Configuring is enough: CMake writes the one generated header (port_config.h) then,
    // and the commands are those the Ninja build of the pump test runs.
    let mut options = vec!["-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"];
    options.extend_from_slice(compilers);
    leveldb_configure(&build, &leveldb_source(), None, &options);
    let units = oracle::compile_commands(&build.join("compile_commands.json"));
    assert!(units.len() >= 39, "{} units", units.len());
    assert!(
        units.iter().all(|u| oracle::is_compile(&u.argv)),
        "{units:?}"
    );
    let report = oracle::compare_units(&units, 2);
    let tree = if compilers.is_empty() {
        "leveldb"
    } else {
        "leveldb (clang)"
    };
    assert_oracle(tree, &report, units.len());
}

/// The shell-word splitter the oracle reads build commands with splits as `sh` does, on
/// the quoting Kbuild and CMake write (`-DKBUILD_MODNAME='"core"'`, `\"`, `''`, a `;`
/// before objtool), and refuses what needs expansion.
#[test]
fn oracle_shell_commands_split_as_sh_does() {
    let lines = [
        r#"gcc -DKBUILD_MODNAME='"core"' -D__KBUILD_MODNAME=kmod_core -c -o a.o a.c"#,
        r#"c++ -DX=\"a\ b\" "-DY=\"q\"\\" '' -I"dir with space"/x -c x.cc"#,
        "gcc -fmacro-prefix-map=./= -Wp,-MMD,init/.main.o.d -c init/main.c   ",
        "gcc a\\\nb 'it'\\''s' \"tab\there\" -c",
    ];
    for line in lines {
        let ours = oracle::shell_commands(line).unwrap();
        assert_eq!(ours.len(), 1, "{line}: {ours:?}");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {}", show(&out));
        let sh: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect();
        assert_eq!(ours[0], sh, "{line}");
    }
    let two = oracle::shell_commands("gcc -c a.c ; ./tools/objtool/objtool x a.o && true").unwrap();
    assert_eq!(two.len(), 3);
    assert_eq!(two[0], ["gcc", "-c", "a.c"]);
    for needs_shell in [
        "gcc $(CFLAGS) -c a.c",
        "gcc \"$X\"",
        "gcc `x`",
        "gcc *.c",
        "a > b",
    ] {
        assert!(
            oracle::shell_commands(needs_shell).is_err(),
            "{needs_shell}"
        );
    }
}

/// The JSON reader takes compile_commands.json's shape with every escape JSON has.
#[test]
fn oracle_json_reader_reads_compile_commands() {
    let text = r#" [ {"directory": "/t/b", "command": "/usr/bin/c++ -DA=\"x\\\\y\" -o o.o -c /t/a.cc",
        "file": "/t/a.cc", "n": -1.5e3, "ok": true, "none": null},
      {"directory":"/t","arguments":["gcc","-c","\u00e9\ud83d\ude00\/\t.c"],"file":"x"} ] "#;
    let json = oracle::Json::parse(text).unwrap();
    let oracle::Json::Array(entries) = &json else {
        panic!("{json:?}")
    };
    assert_eq!(
        entries[0].get("n"),
        Some(&oracle::Json::Number("-1.5e3".into()))
    );
    assert_eq!(entries[0].get("none"), Some(&oracle::Json::Null));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compile_commands.json");
    std::fs::write(&path, text).unwrap();
    let units = oracle::compile_commands(&path);
    assert_eq!(
        units[0].argv,
        ["/usr/bin/c++", "-DA=x\\y", "-o", "o.o", "-c", "/t/a.cc"]
    );
    assert_eq!(units[0].name, "o.o");
    assert_eq!(units[0].cwd, Path::new("/t/b"));
    assert_eq!(units[1].argv, ["gcc", "-c", "é😀/\t.c"]);
    for bad in ["[", "{\"a\" 1}", "[1,]", "\"\\x\"", "[] x"] {
        assert!(oracle::Json::parse(bad).is_err(), "{bad}");
    }
}
