//! The compile cache (`DISTCC_CACHE_DIR`): a rebuild comes from it with the objects and
//! dependency files of a local build; everything that changes an object makes a miss that
//! gives the right object; builds at once share it; a full, unwritable or damaged cache
//! costs hits, never a wrong object.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

/// The cache's counters, as `distcc --cache-stats` prints them.
fn stats(cache: &Path) -> Vec<(String, String)> {
    let out = Command::new(OUR_DISTCC)
        .arg("--cache-stats")
        .env("DISTCC_CACHE_DIR", cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_at(l.len().min(24));
            (!v.is_empty()).then(|| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn stat(cache: &Path, name: &str) -> u64 {
    let all = stats(cache);
    let v = &all.iter().find(|(k, _)| k == name).unwrap().1;
    v.parse().unwrap_or_else(|_| panic!("{name} = {v}"))
}

/// Hits of every kind in the cache itself.
fn hits(cache: &Path) -> u64 {
    ["hits, direct", "hits, preprocessed", "hits, pump request"]
        .iter()
        .map(|k| stat(cache, k))
        .sum()
}

#[test]
fn a_rebuild_after_make_clean_comes_from_the_cache() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::ours(&[]);
    let host = daemon.host();
    let env = [
        ("DISTCC_HOSTS", host.as_str()),
        ("DISTCC_CACHE_DIR", cache.path().to_str().unwrap()),
    ];
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(5), 5);
    assert_eq!(stat(cache.path(), "misses"), 5);
    // A result and a manifest (direct mode) each.
    assert_eq!(stat(cache.path(), "entries"), 10);

    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    // Objects and dependency files as a local build leaves them, with no host asked.
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("fib(50) = 12586269025"));
    assert_eq!(stat(cache.path(), "hits, direct"), 5);
    assert_eq!(daemon.compiled_ok(), 5, "{}", daemon.log_text());

    // Emptied, it misses again.
    let out = Command::new(OUR_DISTCC)
        .arg("--cache-clear")
        .env("DISTCC_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Removed 10 entries"));
    assert_eq!(stat(cache.path(), "entries"), 0);
    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(10), 10);
}

/// A job the host list sends to this machine (`localhost`) is kept as a host's result is,
/// its messages included: the second build compiles nothing.
#[test]
fn a_job_compiled_here_is_kept_too() {
    let project = Project::example();
    // Two warnings in one file.
    let cflags = "CFLAGS=-O2 -Wall -Wextra -Wconversion";
    let expected = project.reference_build(&["-j4", cflags]);
    let cache = tempfile::tempdir().unwrap();
    let env = [
        ("DISTCC_HOSTS", "localhost"),
        ("DISTCC_CACHE_DIR", cache.path().to_str().unwrap()),
    ];
    // Sources written just now are not trusted to be as they were read (`settle`).
    settle();
    let first = project.make(&["-j4", &cc(), cflags], &env);
    assert!(first.status.success(), "{}", show(&first));
    assert_eq!(stat(cache.path(), "misses"), 5);
    assert_eq!(stat(cache.path(), "entries"), 10);

    let _ = project.make(&["clean"], &[]);
    let again = project.make(&["-j4", &cc(), cflags], &env);
    assert!(again.status.success(), "{}", show(&again));
    assert_eq!(stat(cache.path(), "hits, direct"), 5);
    assert_eq!(stat(cache.path(), "misses"), 5);
    // The compiler's warnings, said again by the hits.
    let warnings = |o: &Output| {
        let mut w: Vec<_> = String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter(|l| l.contains("warning:"))
            .map(str::to_string)
            .collect();
        w.sort();
        w
    };
    assert_eq!(warnings(&first).len(), 2, "{}", show(&first));
    assert_eq!(warnings(&again), warnings(&first));
    assert_same_outputs(&expected, &project.outputs());
}

/// A job compiled here reads its files again after the key was made of them: when one
/// changed in between (here the compiler itself edits a header), the result is not kept
/// under a key that does not describe it.
#[test]
fn a_job_compiled_here_is_not_kept_when_its_files_changed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("h.h"), "#define H 1\n").unwrap();
    std::fs::write(
        d.join("t.c"),
        "#include \"h.h\"\nint h(void) { return H; }\n",
    )
    .unwrap();
    let cc = d.join("editing-cc");
    std::fs::write(
        &cc,
        "#!/bin/sh\ncase \" $* \" in *\" -c \"*) echo '#define H 2' > h.h ;; esac\nexec gcc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    settle();
    let out = Command::new(OUR_DISTCC)
        .current_dir(d)
        .args([cc.to_str().unwrap(), "-O2", "-c", "t.c", "-o", "t.o"])
        .env("DISTCC_HOSTS", "localhost")
        .env("DISTCC_DIR", d)
        .env("DISTCC_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("h.h")).unwrap(),
        "#define H 2\n"
    );
    assert_eq!(stat(cache.path(), "misses"), 1);
    assert_eq!(stat(cache.path(), "results stored"), 0);
}

/// The same under `pump`: the first build fills the cache from what the include server
/// found, the second asks neither it nor a host.
#[test]
fn a_pump_rebuild_after_make_clean_comes_from_the_cache() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::ours(&["--verbose"]);
    let hosts = format!("{},cpp,lzo", daemon.host());
    let pump_make = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pump"));
        cmd.current_dir(project.path())
            .args(["make", "-j4", &cc()])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", &hosts)
            .env("DISTCC_CACHE_DIR", cache.path())
            .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
            .env("DISTCC_FALLBACK", "0")
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG");
        let out = output_within(&mut cmd, 300);
        assert!(out.status.success(), "{}", show(&out));
    };
    pump_make();
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(5), 5);
    assert_eq!(daemon.log_text().matches(") compiling in ").count(), 5);
    assert_eq!(stat(cache.path(), "misses"), 5);
    let _ = project.make(&["clean"], &[]);
    pump_make();
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(stat(cache.path(), "hits, direct"), 5);
    assert_eq!(daemon.compiled_ok(), 5, "{}", daemon.log_text());
}

/// A place to compile single files, through a daemon that also knows the compiler
/// `x86_64-test-gcc` (a script in `tools`).
struct Bench {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    tools: tempfile::TempDir,
    daemon: Daemon,
    _whitelist: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let tools = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let whitelist = whitelist_dir(&["gcc", "x86_64-linux-gnu-gcc", "clang"]);
        for name in ["x86_64-test-gcc", "x86_64-test-clang"] {
            let wrapper = tools.path().join(name);
            std::os::unix::fs::symlink(&wrapper, whitelist.path().join(name)).unwrap();
        }
        let path = format!("{}:/usr/bin:/bin", tools.path().display());
        let daemon = Daemon::verbose_with(whitelist.path(), &[("DISTCCD_PATH", &path)]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".distcc")).unwrap();
        Bench {
            dir,
            cache: tempfile::tempdir().unwrap(),
            tools,
            daemon,
            _whitelist: whitelist,
        }
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A compiler `x86_64-test-gcc` that runs gcc with `flags` first.
    fn wrapper(&self, flags: &str) {
        self.wrapper_of("gcc", flags);
    }

    /// A compiler `x86_64-test-COMPILER` that runs `compiler` with `flags` first.
    fn wrapper_of(&self, compiler: &str, flags: &str) {
        let p = self.tools.path().join(format!("x86_64-test-{compiler}"));
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, format!("#!/bin/sh\nexec {compiler} {flags} \"$@\"\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.tools.path().display(),
            std::env::var("PATH").unwrap()
        )
    }

    /// Compiles `args` (without `-o`) in `cwd` through distcc to `out.o`, and here to
    /// `ref.o`; returns both objects.
    fn compile_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
        self.compile_via(cwd, args, env, false)
    }

    /// As [`Bench::compile_in`], in pump mode with `pump`; when `args` name a dependency
    /// file (`-MF`), it must be the same both times.
    fn compile_via(
        &self,
        cwd: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        pump: bool,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut cmd = match pump {
            true => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_pump"));
                c.arg(OUR_DISTCC)
                    .env("DISTCC_HOSTS", format!("{},cpp,lzo", self.daemon.host()))
                    .env("DISTCC_TESTING_INCLUDE_SERVER", "1");
                c
            }
            false => {
                let mut c = Command::new(OUR_DISTCC);
                c.env("DISTCC_HOSTS", self.daemon.host());
                c
            }
        };
        cmd.current_dir(cwd)
            .args(args)
            .args(["-o", "out.o"])
            .env("PATH", self.path_var())
            .env("DISTCC_DIR", self.dir.path().join(".distcc"))
            .env("DISTCC_CACHE_DIR", self.cache.path())
            .env("DISTCC_FALLBACK", "0")
            .env_remove("SOURCE_DATE_EPOCH")
            .envs(env.iter().copied());
        let out: Output = output_within(&mut cmd, 60);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        let deps = args
            .iter()
            .position(|a| *a == "-MF")
            .map(|i| cwd.join(args[i + 1]));
        let remote_deps = deps.as_ref().map(|d| std::fs::read(d).unwrap());
        let mut local = Command::new(args[0]);
        local
            .current_dir(cwd)
            .args(&args[1..])
            .args(["-o", "ref.o"])
            .env("PATH", self.path_var())
            .env_remove("SOURCE_DATE_EPOCH")
            .envs(env.iter().copied());
        let out = local.output().unwrap();
        assert!(out.status.success(), "local {args:?}: {}", show(&out));
        if let Some(d) = &deps {
            assert_eq!(remote_deps, Some(std::fs::read(d).unwrap()), "{args:?}");
        }
        let read = |n: &str| std::fs::read(cwd.join(n)).unwrap();
        (read("out.o"), read("ref.o"))
    }

    fn compile(&self, args: &[&str], env: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
        self.compile_in(self.dir.path(), args, env)
    }

    fn counts(&self) -> (u64, u64, u64) {
        (
            stat(self.cache.path(), "hits, direct"),
            stat(self.cache.path(), "hits, preprocessed"),
            stat(self.cache.path(), "misses"),
        )
    }
}

/// Each change is a miss, and the object is the one the changed inputs give; asked again
/// unchanged, a hit. `want` is (direct hits, preprocessed hits, misses) so far.
#[track_caller]
fn expect(bench: &Bench, args: &[&str], env: &[(&str, &str)], want: (u64, u64, u64), what: &str) {
    let (ours, reference) = bench.compile(args, env);
    assert!(
        ours == reference,
        "{what}: not the object a local compile gives"
    );
    assert_eq!(
        bench.counts(),
        want,
        "{what}: (direct, preprocessed, misses)"
    );
}

/// Direct mode records a compile's headers only when none changed within a timestamp
/// tick before its preprocessor started (its race guard, see `cache::manifest`): the
/// files a test has just written are let age past it.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// A source and its header in a fresh bench, compiled by `cc` (`gcc` or `clang`): the first
/// compile, again, a changed header, a new header earlier on the path, a changed `-D` and
/// back. Leaves the counts at (2, 0, 4).
fn headers_and_defines(cc: &str) -> Bench {
    let b = Bench::new();
    b.write(
        "a.c",
        "#include \"h.h\"\nint f(void) { return H * 100 + VAL; }\n",
    );
    b.write("inc2/h.h", "#define H 1\n");
    std::fs::create_dir(b.dir.path().join("inc1")).unwrap();
    settle();
    let args = [cc, "-O2", "-Iinc1", "-Iinc2", "-DVAL=1", "-c", "a.c"];
    expect(&b, &args, &[], (0, 0, 1), "first");
    expect(&b, &args, &[], (1, 0, 1), "again");
    b.write("inc2/h.h", "#define H 2\n");
    settle();
    expect(&b, &args, &[], (1, 0, 2), "a changed header");
    b.write("inc1/h.h", "#define H 3\n");
    settle();
    expect(
        &b,
        &args,
        &[],
        (1, 0, 3),
        "a new header earlier on the path",
    );
    let args2 = [cc, "-O2", "-Iinc1", "-Iinc2", "-DVAL=2", "-c", "a.c"];
    expect(&b, &args2, &[], (1, 0, 4), "a changed -D");
    expect(&b, &args, &[], (2, 0, 4), "back to the first -D");
    b
}

#[test]
fn every_change_that_matters_is_a_miss_with_the_right_object() {
    let b = headers_and_defines("gcc");

    // The same name, another compiler: the text is the same, the object is not.
    let wrapped = [
        "x86_64-test-gcc",
        "-Iinc1",
        "-Iinc2",
        "-DVAL=1",
        "-c",
        "a.c",
    ];
    b.wrapper("-O0");
    expect(&b, &wrapped, &[], (2, 0, 5), "a wrapper");
    b.wrapper("-O2");
    let other = "another compiler under the same name";
    expect(&b, &wrapped, &[], (2, 0, 6), other);
    expect(&b, &wrapped, &[], (3, 0, 6), "that compiler again");

    // `-g` names the directory: the same files elsewhere are another object.
    let g = [
        "gcc", "-g", "-O2", "-Iinc1", "-Iinc2", "-DVAL=1", "-c", "a.c",
    ];
    expect(&b, &g, &[], (3, 0, 7), "-g");
    let copy = tempfile::tempdir().unwrap();
    for f in ["a.c", "inc1/h.h", "inc2/h.h"] {
        std::fs::create_dir_all(copy.path().join(f).parent().unwrap()).unwrap();
        std::fs::copy(b.dir.path().join(f), copy.path().join(f)).unwrap();
    }
    let (ours, reference) = b.compile_in(copy.path(), &g, &[]);
    assert!(ours == reference, "-g elsewhere: not the local object");
    assert_eq!(b.counts(), (3, 0, 8), "-g from another directory");

    // __DATE__ with and without -g (whose text keeps it unexpanded for the host); never
    // in direct mode.
    b.write("d.c", "const char *d = __DATE__;\n");
    settle();
    let day0 = [("SOURCE_DATE_EPOCH", "0")];
    let day400 = [("SOURCE_DATE_EPOCH", "34560000")];
    let plain = ["gcc", "-O2", "-c", "d.c"];
    expect(&b, &plain, &day0, (3, 0, 9), "__DATE__");
    expect(&b, &plain, &day400, (3, 0, 10), "another date");
    expect(&b, &plain, &day0, (3, 1, 10), "the first date again");
    // With -g the text keeps __DATE__ for the host to expand: with SOURCE_DATE_EPOCH set
    // the job is compiled here, and without it not cached.
    let g = ["gcc", "-g", "-O2", "-c", "d.c"];
    let stored = stat(b.cache.path(), "results stored");
    expect(&b, &g, &day0, (3, 1, 10), "__DATE__ with -g");
    expect(&b, &g, &day400, (3, 1, 10), "another date with -g");
    expect(
        &b,
        &g,
        &[],
        (3, 1, 10),
        "__DATE__ with -g, the date not fixed",
    );
    assert_eq!(stat(b.cache.path(), "results stored"), stored);

    // What `__has_include` probes, and a search directory that does not exist yet.
    b.write(
        "p.c",
        "#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define OPT 0\n#endif\n\
         int o(void) { return OPT; }\n",
    );
    settle();
    let p = ["gcc", "-O2", "-c", "p.c"];
    expect(&b, &p, &[], (3, 1, 11), "__has_include");
    expect(&b, &p, &[], (4, 1, 11), "__has_include again");
    b.write("opt.h", "#define OPT 7\n");
    settle();
    expect(
        &b,
        &p,
        &[],
        (4, 1, 12),
        "what __has_include looks for, created",
    );
    let gen = ["gcc", "-O2", "-Igen", "-Iinc2", "-DVAL=1", "-c", "a.c"];
    // The text is that of "a changed header".
    expect(&b, &gen, &[], (4, 2, 12), "a search directory missing");
    expect(&b, &gen, &[], (5, 2, 12), "still missing");
    b.write("gen/h.h", "#define H 9\n");
    settle();
    expect(
        &b,
        &gen,
        &[],
        (5, 2, 13),
        "the directory made, with a header",
    );
}

/// The keys know clang as they know gcc: its identity, its options, the headers it finds.
#[test]
fn clang_is_cached_as_gcc_is() {
    let b = headers_and_defines("clang");
    let gcc = ["gcc", "-O2", "-Iinc1", "-Iinc2", "-DVAL=1", "-c", "a.c"];
    expect(&b, &gcc, &[], (2, 0, 5), "gcc with the same options");
    // The same name, another clang.
    let wrapped = [
        "x86_64-test-clang",
        "-Iinc1",
        "-Iinc2",
        "-DVAL=1",
        "-c",
        "a.c",
    ];
    b.wrapper_of("clang", "-O0");
    expect(&b, &wrapped, &[], (2, 0, 6), "a wrapper");
    b.wrapper_of("clang", "-O2");
    expect(
        &b,
        &wrapped,
        &[],
        (2, 0, 7),
        "another clang under the same name",
    );
    expect(&b, &wrapped, &[], (3, 0, 7), "that clang again");
    // -g, sent as the files it reads (plain mode, our daemon): the directory is in the
    // object, so a copy elsewhere is a miss; and so is a header changed only in a comment,
    // whose checksum the object records (DWARF 5).
    let g = [
        "clang", "-g", "-O2", "-Iinc1", "-Iinc2", "-DVAL=1", "-c", "a.c",
    ];
    let (ours, reference) = b.compile_via(b.dir.path(), &g, &[], false);
    assert!(ours == reference, "-g: not the local object");
    let misses = b.counts().2;
    let (ours, reference) = b.compile_via(b.dir.path(), &g, &[], false);
    assert!(ours == reference, "-g again: not the local object");
    assert_eq!(b.counts().2, misses, "-g again: a miss");
    b.write(
        "inc1/h.h",
        "#define H 3 /* the same text, another checksum */\n",
    );
    settle();
    let (ours, reference) = b.compile_via(b.dir.path(), &g, &[], false);
    assert!(
        ours == reference,
        "-g, a comment changed: not the local object"
    );
    assert_eq!(
        b.counts().2,
        misses + 1,
        "-g, a comment changed: not a miss"
    );
    let misses = misses + 1;
    // Sent as text (here because CPATH is set, which also keeps direct mode off), clang -g
    // is not cached: one text stands for objects with other checksums.
    let before = b.counts();
    for _ in 0..2 {
        b.compile_via(b.dir.path(), &g, &[("CPATH", "/nonexistent")], false);
    }
    assert_eq!(b.counts(), before, "-g sent as text: cached");
    let copy = tempfile::tempdir().unwrap();
    for f in ["a.c", "inc1/h.h", "inc2/h.h"] {
        std::fs::create_dir_all(copy.path().join(f).parent().unwrap()).unwrap();
        std::fs::copy(b.dir.path().join(f), copy.path().join(f)).unwrap();
    }
    settle();
    let (ours, reference) = b.compile_via(copy.path(), &g, &[], true);
    assert!(
        ours == reference,
        "-g elsewhere (pump): not the local object"
    );
    assert_eq!(b.counts().2, misses + 1, "-g from another directory");
}

#[test]
fn two_builds_at_once_share_one_cache() {
    let projects = [Project::example(), Project::example()];
    for p in &projects {
        p.add_generated(6);
    }
    let targets: Vec<String> = ["hello".to_string()]
        .into_iter()
        .chain((0..6).map(|i| format!("gen{i}.o")))
        .collect();
    let mut args: Vec<&str> = vec!["-j4"];
    args.extend(targets.iter().map(String::as_str));
    let expected = projects[0].reference_build(&args);
    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::ours(&[]);
    let host = daemon.host();
    let cc = cc();
    let mut with_cc = args.clone();
    with_cc.push(&cc);
    let env = [
        ("DISTCC_HOSTS", host.as_str()),
        ("DISTCC_CACHE_DIR", cache.path().to_str().unwrap()),
    ];
    std::thread::scope(|s| {
        for p in &projects {
            let (with_cc, env) = (&with_cc, &env);
            s.spawn(move || {
                let out = p.make(with_cc, env);
                assert!(out.status.success(), "{}", show(&out));
            });
        }
    });
    for p in &projects {
        assert_same_outputs(&expected, &p.outputs());
    }
    // Both stored the same keys: one entry each, whichever came last.
    // One result each, whichever came last; a manifest each per tree (the working
    // directory is in direct mode's key).
    assert_eq!(stat(cache.path(), "entries"), 11 + 22);
    // Every miss was compiled by the host, and nothing else.
    let (hit, misses) = (hits(cache.path()), stat(cache.path(), "misses"));
    assert_eq!(hit + misses, 22);
    assert_eq!(daemon.wait_compiled(misses as usize), misses as usize);
    let _ = projects[1].make(&["clean"], &[]);
    let out = projects[1].make(&with_cc, &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &projects[1].outputs());
    assert_eq!(hits(cache.path()), hit + 11);
    assert_eq!(
        daemon.compiled_ok(),
        misses as usize,
        "the rebuild went to the host"
    );
}

/// Builds the example with the cache at `cache` (and `size`), cleans, builds again: both
/// give a local build's outputs.
fn build_twice(cache: &Path, size: &str) -> Project {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let daemon = Daemon::ours(&[]);
    let host = daemon.host();
    let env = [
        ("DISTCC_HOSTS", host.as_str()),
        ("DISTCC_CACHE_DIR", cache.to_str().unwrap()),
        ("DISTCC_CACHE_SIZE", size),
    ];
    for round in 0..2 {
        let out = project.make(&["-j4", &cc()], &env);
        assert!(out.status.success(), "round {round}: {}", show(&out));
        assert_same_outputs(&expected, &project.outputs());
        let _ = project.make(&["clean"], &[]);
    }
    project
}

#[test]
fn a_full_unwritable_or_damaged_cache_costs_hits_not_objects() {
    // Full: a limit smaller than one entry; each is evicted as it is stored.
    let full = tempfile::tempdir().unwrap();
    build_twice(full.path(), "1K");
    assert_eq!(hits(full.path()), 0);
    assert!(stat(full.path(), "evicted") >= 5);
    assert_eq!(stat(full.path(), "entries"), 0);

    // Unwritable: the cache directory is below a regular file.
    let file = tempfile::NamedTempFile::new().unwrap();
    build_twice(&file.path().join("cache"), "5G");

    // Damaged: every entry cut, flipped or replaced, and junk beside them.
    let cache = tempfile::tempdir().unwrap();
    build_twice(cache.path(), "5G");
    assert_eq!(hits(cache.path()), 5);
    let mut entries: Vec<PathBuf> = Vec::new();
    for top in std::fs::read_dir(cache.path()).unwrap().flatten() {
        let name = top.file_name().to_string_lossy().to_string();
        if name.len() == 2 && top.path().is_dir() {
            for e in std::fs::read_dir(top.path()).unwrap().flatten() {
                entries.push(e.path());
            }
        }
    }
    entries.retain(|p| p.file_name().unwrap().len() == 64);
    assert_eq!(entries.len(), 10);
    for (i, e) in entries.iter().enumerate() {
        let mut data = std::fs::read(e).unwrap();
        match i % 3 {
            0 => data.truncate(data.len() / 2),
            1 => {
                let mid = data.len() / 2;
                data[mid] ^= 0x20;
            }
            _ => data = b"not an entry at all".to_vec(),
        }
        std::fs::write(e, data).unwrap();
    }
    std::fs::write(cache.path().join("junk"), "x").unwrap();
    std::fs::create_dir_all(cache.path().join("00/zz")).unwrap();
    std::fs::write(cache.path().join("00/stats"), "misses lots\n\0\0").unwrap();
    let project = build_twice(cache.path(), "5G");
    // The results (the manifests are of the first tree's directory, not looked up).
    assert_eq!(stat(cache.path(), "damaged, removed"), 5);
    // Stored again after the damaged ones went, and hit in the second round.
    assert_eq!(hits(cache.path()), 10);
    drop(project);
}

fn stats_page(port: u16) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    String::from_utf8_lossy(&read_all(&mut s)).to_string()
}

fn page_value(page: &str, key: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {key} in {page}"))
        .parse()
        .unwrap()
}

/// `distccd --cache-dir`: the daemon keys what it received and compiled itself; any client
/// (distcc 3.4's too) then gets a second build from it, and a failed compile is not kept.
#[test]
fn a_daemon_cache_serves_every_client_and_keeps_only_what_it_compiled() {
    require_distcc_34();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = Daemon::ours(&[
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--stats",
        "--stats-port",
        &port.to_string(),
    ]);
    let host = daemon.host();
    let env = [("DISTCC_HOSTS", host.as_str())];
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(5), 5);
    let page = stats_page(port);
    assert_eq!(page_value(&page, "dcc_cache_misses"), 5, "{page}");
    assert_eq!(page_value(&page, "dcc_cache_stored"), 5, "{page}");

    // Another client, with no cache of its own: distcc 3.4's.
    let _ = project.make(&["clean"], &[]);
    let theirs = format!("CC={DISTCC_34} gcc");
    let out = project.make(&["-j4", &theirs], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(10), 10);
    let page = stats_page(port);
    assert_eq!(page_value(&page, "dcc_cache_hits"), 5, "{page}");
    assert!(daemon
        .log_text()
        .contains("main.c: answered from the cache"));

    // Ours, with an empty cache of its own: its misses are the daemon's hits, which the
    // daemon's note tells it.
    let _ = project.make(&["clean"], &[]);
    let local = tempfile::tempdir().unwrap();
    let env = [
        ("DISTCC_HOSTS", host.as_str()),
        ("DISTCC_CACHE_DIR", local.path().to_str().unwrap()),
    ];
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(15), 15);
    assert_eq!(stat(local.path(), "misses"), 5);
    assert_eq!(stat(local.path(), "hits, on a daemon"), 5);
    assert_eq!(page_value(&stats_page(port), "dcc_cache_hits"), 10);

    // A compile that fails is answered, and not kept.
    std::fs::write(project.path().join("bad.c"), "int f(void) { return x; }\n").unwrap();
    let out = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["gcc", "-c", "bad.c", "-o", "bad.o"])
        .env("DISTCC_HOSTS", &host)
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_SKIP_LOCAL_RETRY", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("undeclared"));
    let page = stats_page(port);
    assert_eq!(page_value(&page, "dcc_cache_misses"), 6, "{page}");
    assert_eq!(page_value(&page, "dcc_cache_stored"), 5, "{page}");
    assert_eq!(page_value(&page, "dcc_cache_entries"), 5, "{page}");
}

/// `distccd --cache-dir` under `pump`: the daemon keys what it received, and the
/// compiler's own headers by what its compile read of them and by the shape of their
/// trees. A second build from another client comes from the daemon's cache; a system
/// header changed in place, or a new one that shadows another, is a miss with the right
/// object.
#[test]
fn a_daemon_cache_keeps_pump_jobs_by_the_system_headers_they_read() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = Daemon::ours(&[
        "--verbose",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--stats",
        "--stats-port",
        &port.to_string(),
    ]);
    let hosts = format!("{},cpp,lzo", daemon.host());
    let pump = |dir: &Path, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pump"));
        cmd.current_dir(dir)
            .args(args)
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", &hosts)
            .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
            .env("DISTCC_FALLBACK", "0")
            .env_remove("DISTCC_CACHE_DIR")
            .env_remove("DISTCC_CACHE")
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG");
        let out = output_within(&mut cmd, 300);
        assert!(out.status.success(), "{}", show(&out));
    };
    // The example's Makefile asks for -MD: every header is named.
    pump(project.path(), &["make", "-j4", &cc()]);
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(5), 5);
    let page = stats_page(port);
    assert_eq!(
        page_value(&page, "dcc_cache_stored"),
        5,
        "{}",
        daemon.log_text()
    );
    let _ = project.make(&["clean"], &[]);
    pump(project.path(), &["make", "-j4", &cc()]);
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(10), 10);
    assert_eq!(page_value(&stats_page(port), "dcc_cache_hits"), 5);

    // A compiler whose own directories are a test's: a --sysroot, whose headers the
    // include server leaves to the host as it leaves the compiler's.
    let dir = project.path();
    let sys = dir.join("sr/usr/include");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(dir.join("sr/usr/local/include")).unwrap();
    std::fs::write(sys.join("sysdef.h"), "#define V 1\n").unwrap();
    std::fs::write(
        dir.join("t.c"),
        "#include <sysdef.h>\nint v(void) { return V; }\n",
    )
    .unwrap();
    let sysroot = format!("--sysroot={}", dir.join("sr").display());
    // Through the client and locally: the same flags, `source` to `source.o`.
    let compile = |flags: &[&str], source: &str, ours: bool| {
        let object = if ours {
            format!("{source}.o")
        } else {
            "local.o".into()
        };
        let mut argv: Vec<&str> = if ours {
            vec![OUR_DISTCC, "gcc"]
        } else {
            vec!["gcc"]
        };
        argv.extend([sysroot.as_str(), "-O2"]);
        argv.extend(flags);
        argv.extend(["-c", source, "-o", &object]);
        if ours {
            // No dependency file asked: our client has the host name every header all
            // the same, so that the daemon can keep the job.
            pump(dir, &argv);
        } else {
            let out = Command::new("gcc")
                .current_dir(dir)
                .args(&argv[1..])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", show(&out));
        }
        std::fs::read(dir.join(&object)).unwrap()
    };
    let mut compiled = 10;
    let mut hits = 5;
    let mut step = |what: &str, flags: &[&str], source: &str, hit: bool| {
        settle();
        let ours = compile(flags, source, true);
        hits += u64::from(hit);
        compiled += 1;
        assert_eq!(daemon.wait_compiled(compiled), compiled, "{what}");
        let page = stats_page(port);
        let log = daemon.log_text();
        assert_eq!(page_value(&page, "dcc_cache_hits"), hits, "{what}: {log}");
        assert!(
            ours == compile(flags, source, false),
            "{what}: wrong object"
        );
    };
    step("first", &[], "t.c", false);
    step("again", &[], "t.c", true);
    std::fs::write(sys.join("sysdef.h"), "#define V 2\n").unwrap();
    step("a system header changed in place", &[], "t.c", false);
    step("again after the change", &[], "t.c", true);
    std::fs::write(dir.join("sr/usr/local/include/sysdef.h"), "#define V 3\n").unwrap();
    step("a system header shadowed", &[], "t.c", false);
    step("again after the shadow", &[], "t.c", true);
    assert!(daemon.log_text().contains("t.c: answered from the cache"));

    // A system directory named by -I: the request's link to it is in the root, the
    // header it leads to is the host's, and is keyed as one.
    let foo = sys.join("foo");
    std::fs::create_dir(&foo).unwrap();
    std::fs::write(foo.join("x.h"), "#define X 1\n").unwrap();
    std::fs::write(
        dir.join("u.c"),
        "#include <x.h>\nint x(void) { return X; }\n",
    )
    .unwrap();
    let inc = format!("-I{}", foo.display());
    step("-I into the sysroot", &[&inc], "u.c", false);
    step("-I into the sysroot, again", &[&inc], "u.c", true);
    std::fs::write(foo.join("x.h"), "#define X 7\n").unwrap();
    step("a header under -I changed in place", &[&inc], "u.c", false);

    // A system header that is a link (as Debian's curses.h): the host's own, through
    // the root's link to its directory; nothing is written there.
    std::os::unix::fs::symlink("sysdef.h", sys.join("alias.h")).unwrap();
    std::fs::write(
        dir.join("v.c"),
        "#include <alias.h>\nint v(void) { return V; }\n",
    )
    .unwrap();
    step("a linked system header", &[], "v.c", false);
    step("a linked system header, again", &[], "v.c", true);

    // What the time macros give is of the moment: never kept.
    std::fs::write(dir.join("w.c"), "const char *w = __TIME__;\n").unwrap();
    for what in ["__TIME__", "__TIME__ again"] {
        settle();
        compile(&[], "w.c", true);
        compiled += 1;
        assert_eq!(daemon.wait_compiled(compiled), compiled, "{what}");
        assert_eq!(
            page_value(&stats_page(port), "dcc_cache_hits"),
            hits,
            "{what}"
        );
    }
}

#[test]
fn a_daemon_whose_cache_cannot_be_written_does_not_start() {
    // What the daemon says when it will not start with `dir` as its cache.
    let refused = |dir: &Path| {
        let out = Command::new(OUR_DISTCCD)
            .args([
                "--daemon",
                "--no-detach",
                "--log-stderr",
                "--allow",
                "127.0.0.1",
            ])
            .args(["--port", &free_port().to_string()])
            .args(["--cache-dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = refused(&file.path().join("cache"));
    assert!(err.contains("cannot use the cache directory"), "{err}");
    // One that others may write to: they could plant objects.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = refused(open.path());
    assert!(err.contains("writable by other users"), "{err}");
    let out = Command::new(OUR_DISTCCD)
        .args(["--daemon", "--no-detach", "--allow", "127.0.0.1"])
        .args(["--cache-dir", "/tmp", "--cache-size", "lots"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad --cache-size"));
}

/// Direct mode where headers hide in the includer's directory, behind `./` in `-I`,
/// behind a guard, and where the preprocessor speaks.
#[test]
fn direct_mode_sees_every_header_that_could_be_found() {
    let b = Bench::new();
    // `-I.` with the header beside the source, as autotools' config.h.
    b.write(
        "m.c",
        "#include \"config.h\"\nint m(void) { return CFG; }\n",
    );
    b.write("config.h", "#define CFG 1\n");
    settle();
    let m = ["gcc", "-O2", "-I.", "-c", "m.c"];
    expect(&b, &m, &[], (0, 0, 1), "config.h");
    expect(&b, &m, &[], (1, 0, 1), "config.h again");
    b.write("config.h", "#define CFG 2\n");
    settle();
    expect(&b, &m, &[], (1, 0, 2), "config.h changed");

    // `-I./dir`: gcc writes `./dir/h.h` in its markers.
    b.write("n.c", "#include <h.h>\nint n(void) { return H; }\n");
    b.write("d2/h.h", "#define H 1\n");
    std::fs::create_dir(b.dir.path().join("d1")).unwrap();
    settle();
    let n = ["gcc", "-O2", "-I./d1", "-I./d2", "-c", "n.c"];
    expect(&b, &n, &[], (1, 0, 3), "-I./d2");
    expect(&b, &n, &[], (2, 0, 3), "-I./d2 again");
    b.write("d1/h.h", "#define H 2\n");
    settle();
    expect(&b, &n, &[], (2, 0, 4), "a header created in -I./d1");

    // A guarded header included again from another directory: no marker says where it
    // was looked for the second time.
    b.write(
        "g.c",
        "#include \"x/a.h\"\n#include \"y/b.h\"\nint g(void) { return C; }\n",
    );
    b.write("x/a.h", "#include \"common.h\"\n");
    b.write(
        "x/common.h",
        "#ifndef COMMON\n#define COMMON\n#define C 1\n#endif\n",
    );
    b.write("y/b.h", "#include \"common.h\"\n");
    settle();
    let g = ["gcc", "-O2", "-Ix", "-c", "g.c"];
    expect(&b, &g, &[], (2, 0, 5), "a guarded header");
    expect(&b, &g, &[], (3, 0, 5), "a guarded header again");
    b.write("y/common.h", "#undef C\n#define C 2\n");
    settle();
    expect(
        &b,
        &g,
        &[],
        (3, 0, 6),
        "a header beside the second includer",
    );

    // What __has_include found, changed.
    b.write(
        "p.c",
        "#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#endif\nint o(void) { return OPT; }\n",
    );
    b.write("opt.h", "#define OPT 7\n");
    settle();
    let p = ["gcc", "-O2", "-c", "p.c"];
    expect(&b, &p, &[], (3, 0, 7), "__has_include");
    expect(&b, &p, &[], (4, 0, 7), "__has_include again");
    b.write("opt.h", "#define OPT 8\n");
    settle();
    expect(&b, &p, &[], (4, 0, 8), "what __has_include found, changed");

    // An include whose name a macro makes (the kernel's trace events): every name the
    // file found could have had is looked for everywhere.
    b.write(
        "t.c",
        "#define STR(x) #x\n#define HDR(x) STR(x.h)\n#include HDR(ev)\nint t(void) { return EV; }\n",
    );
    b.write("tb/ev.h", "#define EV 1\n");
    std::fs::create_dir(b.dir.path().join("ta")).unwrap();
    settle();
    let t = ["gcc", "-O2", "-Ita", "-Itb", "-c", "t.c"];
    expect(&b, &t, &[], (4, 0, 9), "a computed include");
    expect(&b, &t, &[], (5, 0, 9), "a computed include again");
    b.write("ta/ev.h", "#define EV 2\n");
    settle();
    expect(
        &b,
        &t,
        &[],
        (5, 0, 10),
        "a header created where it is looked for first",
    );

    // A copy that `#pragma once` skipped (same content and mtime as one read) stays a
    // copy, or the preprocessor reads it.
    let same_mtime = |from: &str, to: &str| {
        let t = std::fs::metadata(b.dir.path().join(from))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(b.dir.path().join(to))
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    b.write(
        "o.c",
        "#include \"ox/a.h\"\n#include \"oy/a.h\"\nint o(void) { return A; }\n",
    );
    b.write("ox/a.h", "#pragma once\n#define A 1\n");
    b.write("oy/a.h", "#pragma once\n#define A 1\n");
    same_mtime("ox/a.h", "oy/a.h");
    settle();
    let o = ["gcc", "-O2", "-c", "o.c"];
    expect(&b, &o, &[], (5, 0, 11), "a #pragma once copy");
    expect(&b, &o, &[], (6, 0, 11), "a #pragma once copy again");
    b.write("oy/a.h", "#pragma once\n#define A 2\n");
    same_mtime("ox/a.h", "oy/a.h");
    settle();
    expect(&b, &o, &[], (6, 0, 12), "the copy changed");

    // A preprocessor that speaks is never skipped: its messages come at every build.
    b.write("w.c", "#warning careful\nint w;\n");
    settle();
    let w = ["gcc", "-O2", "-c", "w.c"];
    expect(&b, &w, &[], (6, 0, 13), "#warning");
    expect(&b, &w, &[], (6, 1, 13), "#warning again, preprocessed");

    // Where nothing was found, a directory stands for its names while it is unchanged:
    // one created on the way (`-Iqa`, `qa/sub`, missing), or beside them, is seen.
    b.write("q.c", "#include <sub/q.h>\nint q(void) { return Q; }\n");
    b.write("qb/sub/q.h", "#define Q 1\n");
    settle();
    let q = ["gcc", "-O2", "-Iqa", "-Iqb", "-c", "q.c"];
    expect(&b, &q, &[], (6, 1, 14), "-Iqa missing");
    expect(&b, &q, &[], (7, 1, 14), "-Iqa missing, again");
    b.write("qa/sub/q.h", "#define Q 2\n");
    settle();
    expect(&b, &q, &[], (7, 1, 15), "qa/sub/q.h created");
    expect(&b, &q, &[], (8, 1, 15), "qa/sub/q.h, again");
    std::fs::remove_file(b.dir.path().join("qa/sub/q.h")).unwrap();
    settle();
    // The first state again: its candidate holds.
    expect(&b, &q, &[], (9, 1, 15), "qa/sub/q.h removed");
    b.write("qa/sub/other.h", "");
    settle();
    expect(&b, &q, &[], (10, 1, 15), "a name nobody looks for, created");
    b.write("qa/sub/q.h", "#define Q 3\n");
    settle();
    expect(&b, &q, &[], (10, 1, 16), "qa/sub/q.h created again");

    // A directory that stood for the names not in it, replaced by a file that is looked
    // up as a name itself.
    b.write(
        "r.c",
        "#include <sub/x.h>\n#include <sub>\nint r(void) { return X + S; }\n",
    );
    b.write("rb/sub/x.h", "#define X 1\n");
    b.write("rc/sub", "#define S 1\n");
    std::fs::create_dir_all(b.dir.path().join("ra/sub")).unwrap();
    settle();
    let r = ["gcc", "-O2", "-Ira", "-Irb", "-Irc", "-c", "r.c"];
    expect(&b, &r, &[], (10, 1, 17), "ra/sub a directory");
    expect(&b, &r, &[], (11, 1, 17), "ra/sub a directory, again");
    std::fs::remove_dir(b.dir.path().join("ra/sub")).unwrap();
    b.write("ra/sub", "#define S 2\n");
    settle();
    expect(&b, &r, &[], (11, 1, 18), "ra/sub a file");

    // A macro defined on the command line as a time macro: the compiler expands it, so
    // nothing is kept (the objects are not compared: the date may turn meanwhile).
    b.write("d.c", "const char *d = STAMP;\n");
    settle();
    for _ in 0..2 {
        b.compile(&["gcc", "-O2", "-DSTAMP=__DATE__", "-c", "d.c"], &[]);
        assert_eq!(b.counts(), (11, 1, 18), "-DSTAMP=__DATE__");
    }
}

/// Pump mode: the include server's walk makes direct mode's manifest, and what the
/// request would send makes the key; the host is asked only on a miss.
/// An angled name is looked up only as far as the compiler's search goes: not stopped
/// by an `-iquote` directory, which `<x.h>` skips, nor by an `-I` directory that is also
/// a system one, which the compiler searches at the system one's place. A header created
/// where the compiler would now find it first is a miss in both.
#[test]
fn an_angled_name_is_looked_for_as_far_as_the_compiler_searches() {
    let b = Bench::new();
    b.write("q.c", "#include <config.h>\nint q(void) { return CFG; }\n");
    b.write("src/config.h", "#define CFG 1\n");
    b.write("include/config.h", "#define CFG 2\n");
    std::fs::create_dir(b.dir.path().join("gen")).unwrap();
    settle();
    let q = [
        "gcc",
        "-O2",
        "-iquote",
        "src",
        "-Igen",
        "-Iinclude",
        "-c",
        "q.c",
    ];
    expect(&b, &q, &[], (0, 0, 1), "<config.h> beside an -iquote copy");
    expect(&b, &q, &[], (1, 0, 1), "that again");
    b.write("gen/config.h", "#define CFG 3\n");
    settle();
    expect(
        &b,
        &q,
        &[],
        (1, 0, 2),
        "config.h created in the -I before include",
    );

    // `-Ia` is dropped for `-isystem a`: gcc searches b first.
    b.write("s.c", "#include <h.h>\nint s(void) { return H; }\n");
    b.write("a/h.h", "#define H 1\n");
    std::fs::create_dir(b.dir.path().join("b")).unwrap();
    settle();
    let s = ["gcc", "-O2", "-Ia", "-Ib", "-isystem", "a", "-c", "s.c"];
    expect(
        &b,
        &s,
        &[],
        (1, 0, 3),
        "h.h in a directory both -I and -isystem",
    );
    expect(&b, &s, &[], (2, 0, 3), "that again");
    b.write("b/h.h", "#define H 2\n");
    settle();
    expect(
        &b,
        &s,
        &[],
        (2, 0, 4),
        "h.h created in b, which gcc searches first",
    );
    expect(&b, &s, &[], (3, 0, 4), "and again");
}

#[test]
fn pump_mode_is_cached_by_what_it_would_send() {
    let b = Bench::new();
    b.write(
        "m.c",
        "#include \"a.h\"\n#if 0\n#include \"never.h\"\n#endif\nint m(void) { return A; }\n",
    );
    b.write("inc/a.h", "#define A 1\n");
    settle();
    let m = [
        "gcc", "-O2", "-Iinc", "-MD", "-MF", "m.d", "-MT", "m.o", "-c", "m.c",
    ];
    let c = b.cache.path();
    // Compiles `args` in pump mode: the local object; (direct hits, pump-request hits,
    // misses) so far; jobs the daemon compiled so far.
    let run = |args: &[&str], what: &str, want: (u64, u64, u64), sent: usize| {
        let (out, reference) = b.compile_via(b.dir.path(), args, &[], true);
        let counts = (
            stat(c, "hits, direct"),
            stat(c, "hits, pump request"),
            stat(c, "misses"),
        );
        assert!(out == reference, "{what}: not the local object {counts:?}");
        assert_eq!(counts, want, "{what}");
        let log = b.daemon.log_text();
        assert_eq!(
            log.matches(") compiling in ").count(),
            sent,
            "{what}: {log}"
        );
    };
    let step = |what: &str, want: (u64, u64, u64), sent: usize| run(&m, what, want, sent);
    step("the first compile", (0, 0, 1), 1);
    step("the same again", (1, 0, 1), 1);
    // Found beside the source, where it is looked for first: direct mode cannot tell
    // that the include is never taken; the include server can.
    b.write("never.h", "#error never\n");
    settle();
    step("a header the walk does not enter", (1, 1, 1), 1);
    step("that again", (2, 1, 1), 1);
    b.write("inc/a.h", "#define A 2\n");
    settle();
    step("a header changed", (2, 1, 2), 2);
    b.write("a.h", "#define A 3\n");
    settle();
    step("a header earlier on the path", (2, 1, 3), 3);
    step("that again", (3, 1, 3), 3);

    // A header the compiler's own directories gain, which `__has_include` probes: the
    // host has it too (pump mode takes its system headers to be this machine's).
    let sysroot = b.dir.path().join("sr");
    std::fs::create_dir_all(sysroot.join("usr/include")).unwrap();
    b.wrapper(&format!("--sysroot={}", sysroot.display()));
    b.write(
        "v.c",
        "#if __has_include(<vg.h>)\n#define V 1\n#else\n#define V 0\n#endif\nint v(void) { return V; }\n",
    );
    settle();
    let v = ["x86_64-test-gcc", "-O2", "-c", "v.c"];
    let step = |what: &str, want: (u64, u64, u64), sent: usize| run(&v, what, want, sent);
    step("no vg.h", (3, 1, 4), 4);
    step("no vg.h, again", (4, 1, 4), 4);
    b.write("sr/usr/include/vg.h", "");
    settle();
    step("vg.h installed", (4, 1, 5), 5);
}
