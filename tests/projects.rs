//! Real build systems through distcc, each compared object by object with a local build:
//! CMake with Ninja and the compiler launcher (C++), autoconf's `./configure && make`, and
//! ccache with `CCACHE_PREFIX=distcc`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Copies a fixture from tests/fixtures into a fresh directory.
fn fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        dir.path(),
    );
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    dir
}

/// Every `.o` below `dir`, by path relative to it.
fn objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "o") {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}\n{}", show(&out));
}

fn distcc_env(cmd: &mut Command, dir: &Path, d: &Daemon) -> PathBuf {
    let distcc_dir = dir.join(".distcc");
    cmd.env("DISTCC_DIR", &distcc_dir)
        .env("DISTCC_HOSTS", d.host())
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    distcc_dir
}

#[test]
fn cmake_ninja_cxx_with_compiler_launcher() {
    let src = fixture("cmake-cxx");
    let d = Daemon::ours(&[]);
    let build = src.path().join("build");
    let mut results = Vec::new();
    // RelWithDebInfo: -O2 -g. Both builds use the same directory, which -g records.
    for launcher in [None, Some(OUR_DISTCC)] {
        let _ = std::fs::remove_dir_all(&build);
        let mut configure = Command::new("cmake");
        configure.current_dir(src.path()).args([
            "-S",
            ".",
            "-B",
            "build",
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        ]);
        if let Some(l) = launcher {
            configure.arg(format!("-DCMAKE_CXX_COMPILER_LAUNCHER={l}"));
        }
        run(&mut configure);
        let mut make = Command::new("cmake");
        make.current_dir(src.path())
            .args(["--build", "build", "-j", "4"]);
        distcc_env(&mut make, src.path(), &d);
        run(&mut make);
        results.push(objects(&build));
    }
    assert_eq!(results[0].len(), 4);
    assert_same_outputs(&results[0], &results[1]);
    assert_eq!(d.wait_compiled(4), 4, "{}", d.log_text());
    let out = Command::new(build.join("shapes-demo")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("total"));
}

#[test]
fn autoconf_configure_and_make() {
    let src = fixture("autoconf-c");
    let d = Daemon::ours(&[]);
    run(Command::new("autoheader").current_dir(src.path()));
    run(Command::new("autoconf").current_dir(src.path()));
    let mut results = Vec::new();
    for cc in ["gcc".to_string(), format!("{OUR_DISTCC} gcc")] {
        // autoconf's default CFLAGS, -g -O2.
        let mut configure = Command::new("./configure");
        configure.current_dir(src.path()).arg(format!("CC={cc}"));
        distcc_env(&mut configure, src.path(), &d);
        run(&mut configure);
        let mut make = Command::new("make");
        make.current_dir(src.path()).args(["-j4", "wordstat"]);
        distcc_env(&mut make, src.path(), &d);
        run(&mut make);
        results.push(objects(src.path()));
        let out = Command::new(src.path().join("wordstat")).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("4 words"));
        run(Command::new("make").current_dir(src.path()).arg("clean"));
    }
    assert_eq!(results[0].len(), 2);
    assert_same_outputs(&results[0], &results[1]);
    // configure's test programs ran locally; the two sources went to the daemon.
    assert_eq!(d.wait_compiled(2), 2, "{}", d.log_text());
}

#[test]
fn ccache_with_distcc_as_prefix() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let d = Daemon::ours(&[]);
    let cache = tempfile::tempdir().unwrap();
    let env = [
        ("DISTCC_HOSTS", d.host()),
        ("CCACHE_DIR", cache.path().display().to_string()),
        ("CCACHE_PREFIX", OUR_DISTCC.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Cold cache: every compile goes through distcc to the daemon.
    let out = project.make(&["-j4", "CC=ccache gcc"], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(d.wait_compiled(5), 5, "{}", d.log_text());
    // Warm cache: nothing is compiled again.
    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", "CC=ccache gcc"], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(d.compiled_ok(), 5);
}

/// The example project built with clang through our daemon, every object and dependency
/// file compared with a local clang build's: in plain mode at -O2, and in pump mode with
/// `-g` too. (In plain mode clang's `-g` objects differ from a local build's, as distcc
/// 3.4's do; the client says so in its verbose log, which is checked here.)
#[test]
fn example_project_with_clang_in_plain_and_pump_mode() {
    let d = Daemon::ours(&["--verbose"]);
    let project = Project::example();
    let cc = format!("CC={OUR_DISTCC} clang");
    let builds = [
        ("CFLAGS=-O2 -Wall", false),
        ("CFLAGS=-O2 -g -Wall", false),
        ("CFLAGS=-O2 -g -Wall", true),
    ];
    for (cflags, pump) in builds {
        let reference = project.reference_build(&["CC=clang", cflags]);
        let out = if pump {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_pump"));
            cmd.current_dir(project.path())
                .args(["make", "-j4", &cc, cflags])
                .env("DISTCC_DIR", project.distcc_dir())
                .env("DISTCC_HOSTS", format!("{}/4,cpp,lzo", d.host()))
                .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
                .env("DISTCC_FALLBACK", "0");
            output_within(&mut cmd, 300)
        } else {
            let host = d.host();
            project.make(
                &["-j4", &cc, cflags],
                &[("DISTCC_HOSTS", host.as_str()), ("DISTCC_FALLBACK", "0")],
            )
        };
        assert!(out.status.success(), "{cflags}: {}", show(&out));
        assert_same_outputs(&reference, &project.outputs());
        assert!(project.make(&["clean"], &[]).status.success());
    }
    assert_eq!(d.wait_compiled(15), 15, "{}", d.log_text());
    // In plain mode too, the -g jobs went to our daemon as the files they read.
    assert_eq!(d.log_text().matches(") compiling in ").count(), 10);

    // To distcc 3.4's daemon, which would name its job directory in the object, a
    // plain-mode clang -g job goes as -E text, as from 3.4's client, with a word in the
    // verbose log.
    let theirs = Daemon::distcc_34();
    let out = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["clang", "-g", "-c", "fib.c", "-o", "fib.o"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{},cpp,lzo", theirs.host()))
        .env("DISTCC_VERBOSE", "1")
        .env("DISTCC_FALLBACK", "0")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        said.contains("clang -g sent as preprocessed text"),
        "{said}"
    );
    let sent = format!("sending to {},cpp,lzo: clang", theirs.host());
    assert!(said.contains(&sent), "{said}");
    assert_eq!(theirs.wait_compiled(1), 1, "{}", theirs.log_text());
    // DISTCC_DIRECTIVES_ONLY=0 asks for the text 3.4 sends, to our daemon too.
    let out = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["clang", "-g", "-c", "fib.c", "-o", "fib.o"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", d.host())
        .env("DISTCC_DIRECTIVES_ONLY", "0")
        .env("DISTCC_FALLBACK", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(d.wait_compiled(16), 16);
    assert_eq!(d.log_text().matches(") compiling in ").count(), 10);
}
