//! `-g` compiles: gcc preprocesses with `-fdirectives-only` so that macros keep their
//! columns, and our daemon makes the DWARF producer a local compile's, so that `-g`
//! objects are byte for byte a local build's (distcc 3.4's are not). Also: the daemon
//! refuses directives it would obey on its own files, and a source that gcc cannot
//! preprocess in that mode is compiled locally without a word.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use distcc_rs::wire::{Limits, Reply, Version};

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

const DEBUG_CFLAGS: &str = "CFLAGS=-g -O2 -Wall";

/// A directory holding the source `name`, and `.distcc` for the client's locks.
fn source_dir(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    dir
}

/// `compiler` run in `dir`, through our client to `d` when `distcc`.
fn compiler_in(dir: &std::path::Path, d: &Daemon, distcc: bool, compiler: &str) -> Command {
    let mut cmd = if distcc {
        let mut c = Command::new(OUR_DISTCC);
        c.arg(compiler);
        c
    } else {
        Command::new(compiler)
    };
    cmd.current_dir(dir)
        .env("DISTCC_HOSTS", d.host())
        .env("DISTCC_DIR", dir.join(".distcc"));
    cmd
}

#[test]
fn g_build_gives_identical_objects() {
    let project = Project::example();
    project.add_generated(4);
    let targets = ["hello", "gen0.o", "gen1.o", "gen2.o", "gen3.o"];
    let mut args = vec!["-j4", DEBUG_CFLAGS];
    args.extend(targets);
    let expected = project.reference_build(&args);

    let d = Daemon::ours(&["--verbose"]);
    let host = d.host();
    let mut args = vec!["-j4", DEBUG_CFLAGS];
    let cc = cc();
    args.push(&cc);
    args.extend(targets);
    let out = project.make(&args, &[("DISTCC_HOSTS", &host)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(d.wait_compiled(9), 9, "{}", d.log_text());
    // The producer fix is learnt once for the one command line the build uses, or by
    // each of the first jobs that run at once.
    let learnt = d.log_text().matches("producer fix").count();
    assert!((1..=4).contains(&learnt), "{}", d.log_text());
}

#[test]
fn g_cxx_objects_are_identical_with_every_debug_level() {
    let dir = source_dir(
        "m.cc",
        "#include <map>\n#include <string>\n#include <vector>\n#define TWICE(x) ((x) + (x))\n\
         template <class T> T twice(T v) { return TWICE(v); }\n\
         int f() { std::map<std::string, std::vector<int>> m; m[\"a\"].push_back(twice(2)); \
         return m[\"a\"][0]; }\n",
    );
    let d = Daemon::ours(&[]);
    for flags in [
        "-g -O2",
        "-g1 -Os -fPIC",
        "-ggdb -O0 -std=c++17 -pipe",
        "-gdwarf-4 -O2",
    ] {
        let compile = |distcc: bool, out: &str| {
            let mut cmd = compiler_in(dir.path(), &d, distcc, "g++");
            cmd.args(flags.split(' ')).args(["-c", "m.cc", "-o", out]);
            let o = output_within(&mut cmd, 120);
            assert!(o.status.success(), "{flags}: {}", show(&o));
            assert!(o.stderr.is_empty(), "{flags}: {}", show(&o));
            std::fs::read(dir.path().join(out)).unwrap()
        };
        let local = compile(false, "local.o");
        let remote = compile(true, "remote.o");
        assert!(local == remote, "{flags}: objects differ");
    }
    assert_eq!(d.wait_compiled(4), 4, "{}", d.log_text());
}

#[test]
fn g_build_through_distcc_34_daemon_runs() {
    require_distcc_34();
    // distcc 3.4's daemon compiles the directives-only text as any gcc does; only the
    // producer string then names -fdirectives-only.
    let project = Project::example();
    let d = Daemon::distcc_34();
    let host = d.host();
    let out = project.make(&["-j4", DEBUG_CFLAGS, &cc()], &[("DISTCC_HOSTS", &host)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(run_program(&project.path().join("hello")).contains("fib(50) = 12586269025"));
    let info = Command::new("readelf")
        .args(["--debug-dump=info", "main.o"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("-fdirectives-only"),
        "main.o was not compiled remotely"
    );
}

#[test]
fn source_gcc_refuses_in_directives_only_mode_compiles_locally() {
    // gcc -fdirectives-only refuses __COUNTER__ in a directive; a plain compile accepts it.
    let dir = source_dir(
        "c.c",
        "#if __COUNTER__ == 0\nint first = __COUNTER__;\n#endif\n",
    );
    let d = Daemon::ours(&[]);
    let run = |program: &str, out: &str| {
        let mut cmd = compiler_in(dir.path(), &d, program == OUR_DISTCC, "gcc");
        cmd.args(["-g", "-c", "c.c", "-o", out]);
        let o = output_within(&mut cmd, 60);
        assert!(o.status.success(), "{}", show(&o));
        assert!(o.stderr.is_empty(), "{}", show(&o));
        std::fs::read(dir.path().join(out)).unwrap()
    };
    assert!(run("gcc", "local.o") == run(OUR_DISTCC, "remote.o"));
    assert_eq!(d.compiled_ok(), 0, "{}", d.log_text());
}

#[test]
fn pragmas_that_directives_only_drops_still_take_effect() {
    // gcc -E -fdirectives-only obeys these pragmas and writes nothing in their place, and
    // drops OpenMP's: such sources are preprocessed in full, their pragmas sent along.
    let dir = source_dir(
        "p.h",
        "#define LEVEL 1\n#pragma push_macro(\"LEVEL\")\n#undef LEVEL\n#define LEVEL 2\n\
         int inner = LEVEL;\n#pragma pop_macro(\"LEVEL\")\n\
         #pragma redefine_extname old_name new_name\nextern int old_name(void);\n\
         #pragma message \"p.h says hello\"\n",
    );
    std::fs::write(
        dir.path().join("p.c"),
        "#include \"p.h\"\nint outer = LEVEL;\nint call(void) { return old_name(); }\n\
         void fill(int *a, int n) {\n#pragma omp parallel for\n\
         for (int i = 0; i < n; i++) a[i] = i;\n}\n",
    )
    .unwrap();
    let d = Daemon::ours(&[]);
    let run = |program: &str, flags: &[&str], out: &str| {
        let mut cmd = compiler_in(dir.path(), &d, program == OUR_DISTCC, "gcc");
        cmd.args(flags).args(["-c", "p.c", "-o", out]);
        let o = output_within(&mut cmd, 60);
        assert!(o.status.success(), "{}", show(&o));
        let symbols = Command::new("nm").arg(out).current_dir(dir.path()).output();
        let data = Command::new("objdump")
            .args(["-s", "-j", ".data", out])
            .current_dir(dir.path())
            .output();
        let data = String::from_utf8_lossy(&data.unwrap().stdout).into_owned();
        let data: Vec<&str> = data.lines().filter(|l| l.starts_with(' ')).collect();
        (
            String::from_utf8_lossy(&o.stderr).into_owned(),
            String::from_utf8_lossy(&symbols.unwrap().stdout).into_owned(),
            data.join("\n"),
        )
    };
    // Without the source lines under each message: the daemon has no p.h to quote.
    let quiet = "-fno-diagnostics-show-caret";
    for flags in [&["-g", "-O2", quiet][..], &["-g", "-O2", quiet, "-fopenmp"]] {
        let (local_err, local_syms, local_data) = run("gcc", flags, "local.o");
        let (err, syms, data) = run(OUR_DISTCC, flags, "remote.o");
        assert!(local_err.contains("p.h says hello"), "{local_err}");
        assert_eq!(err, local_err, "{flags:?}");
        assert_eq!(syms, local_syms, "{flags:?}");
        assert_eq!(data, local_data, "{flags:?}");
        assert!(
            syms.contains("new_name") && !syms.contains("old_name"),
            "{syms}"
        );
        assert_eq!(syms.contains("GOMP_parallel"), flags.contains(&"-fopenmp"));
    }
    assert_eq!(d.wait_compiled(2), 2, "{}", d.log_text());
}

#[test]
fn directives_only_setting_chooses_the_text() {
    // A comment that tells gcc a case falls through is lost with the comments of full
    // preprocessing (distcc 3.4 then warns where a local compile does not); directives-only
    // text keeps it.
    let dir = source_dir(
        "f.c",
        "int f(int x) {\n  switch (x) {\n  case 1:\n    x++;\n    /* fall through */\n  \
         case 2:\n    return x;\n  }\n  return 0;\n}\n",
    );
    let d = Daemon::ours(&[]);
    let run = |program: &str, setting: Option<&str>, flags: &[&str], out: &str| {
        let mut cmd = compiler_in(dir.path(), &d, program == OUR_DISTCC, "gcc");
        cmd.args(flags)
            .args(["-Wimplicit-fallthrough", "-c", "f.c", "-o", out])
            .env("DISTCC_VERBOSE", "1")
            .env_remove("DISTCC_DIRECTIVES_ONLY");
        if let Some(v) = setting {
            cmd.env("DISTCC_DIRECTIVES_ONLY", v);
        }
        let o = output_within(&mut cmd, 60);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let sent = err
            .lines()
            .find(|l| l.contains("sending to"))
            .map(|l| l.contains("-fdirectives-only"));
        let warned = err.contains("may fall through");
        (sent, warned, std::fs::read(dir.path().join(out)).unwrap())
    };
    let (_, local_warned, local) = run("gcc", None, &["-O2"], "local.o");
    assert!(!local_warned);
    // Unset: as distcc 3.4 without -g, directives-only with it.
    let (sent, warned, _) = run(OUR_DISTCC, None, &["-O2"], "a.o");
    assert_eq!((sent, warned), (Some(false), true));
    assert_eq!(run(OUR_DISTCC, None, &["-O2", "-g"], "b.o").0, Some(true));
    let (sent, warned, object) = run(OUR_DISTCC, Some("1"), &["-O2"], "c.o");
    assert_eq!((sent, warned), (Some(true), false));
    assert!(object == local, "objects differ");
    assert_eq!(
        run(OUR_DISTCC, Some("0"), &["-O2", "-g"], "d.o").0,
        Some(false)
    );
    assert_eq!(d.wait_compiled(4), 4, "{}", d.log_text());
}

/// Sends a directives-only request and returns the daemon's reply, if any.
fn directives_only_request(port: u16, input: &str, text: &str) -> Option<Reply> {
    let compiler = if input.ends_with(".ii") { "g++" } else { "gcc" };
    let bytes = request_bytes(
        &[
            compiler,
            "-g",
            "-c",
            input,
            "-o",
            "x.o",
            "-fdirectives-only",
        ],
        text.as_bytes(),
        Version::Plain,
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&bytes).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).ok()
}

#[test]
fn directives_that_read_server_files_are_refused() {
    // A file the daemon could read, to be sure that the refusal is what protects it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret.h");
    std::fs::write(&secret, "the_secret_word_4711\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = secret.display();
    let d = Daemon::ours(&[]);
    let port = d.port;

    // What gcc -E -fdirectives-only writes compiles.
    let fine = directives_only_request(
        port,
        "x.i",
        "# 0 \"x.c\"\n#define TWICE(x) ((x)+(x))\n/*\n#include \"old.h\"\n*/\nint t = TWICE(2);\n",
    )
    .expect("a valid request gets a reply");
    assert_eq!(fine.status, 0, "{}", String::from_utf8_lossy(&fine.stderr));

    for text in [
        format!("# 0 \"x.c\"\n#include \"{path}\"\n"),
        format!("# 0 \"x.c\"\n  %:  include_next \"{path}\"\n"),
        format!("# 0 \"x.c\"\n/* a\n */ #include \"{path}\"\n"),
        format!("# 0 \"x.c\"\n#if __has_include(\"{path}\")\n#endif\n"),
    ] {
        assert!(
            directives_only_request(port, "x.i", &text).is_none(),
            "{text:?} was compiled"
        );
    }
    // C++ text crafted so that our scan, which knows no raw strings, thinks the include is
    // in a comment: the include is blanked out, and gcc never reads the file.
    let hidden = format!("# 0 \"x.cc\"\nauto s = R\"x( \" /* )x\";\n#include \"{path}\"\n// */\n");
    if let Some(reply) = directives_only_request(port, "x.ii", &hidden) {
        assert_ne!(reply.status, 0);
        let stderr = String::from_utf8_lossy(&reply.stderr);
        assert!(!stderr.contains("the_secret_word"), "{stderr}");
    }
    assert!(d.log_text().contains("which gcc does not write there"));
    assert!(!d.log_text().contains("the_secret_word"));
}
