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
use distcc_rs::protocol::{Limits, Reply, Version};

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

const DEBUG_CFLAGS: &str = "CFLAGS=-g -O2 -Wall";

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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.cc"),
        "#include <map>\n#include <string>\n#include <vector>\n#define TWICE(x) ((x) + (x))\n\
         template <class T> T twice(T v) { return TWICE(v); }\n\
         int f() { std::map<std::string, std::vector<int>> m; m[\"a\"].push_back(twice(2)); \
         return m[\"a\"][0]; }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    let d = Daemon::ours(&[]);
    for flags in [
        "-g -O2",
        "-g1 -Os -fPIC",
        "-ggdb -O0 -std=c++17 -pipe",
        "-gdwarf-4 -O2",
    ] {
        let compile = |distcc: bool, out: &str| {
            let mut cmd = if distcc {
                let mut c = Command::new(OUR_DISTCC);
                c.arg("g++");
                c
            } else {
                Command::new("g++")
            };
            cmd.current_dir(dir.path())
                .args(flags.split(' '))
                .args(["-c", "m.cc", "-o", out])
                .env("DISTCC_HOSTS", d.host())
                .env("DISTCC_DIR", dir.path().join(".distcc"));
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    // gcc -fdirectives-only refuses __COUNTER__ in a directive; a plain compile accepts it.
    std::fs::write(
        dir.path().join("c.c"),
        "#if __COUNTER__ == 0\nint first = __COUNTER__;\n#endif\n",
    )
    .unwrap();
    let d = Daemon::ours(&[]);
    let run = |program: &str, out: &str| {
        let mut cmd = Command::new(program);
        if program == OUR_DISTCC {
            cmd.arg("gcc");
        }
        cmd.current_dir(dir.path())
            .args(["-g", "-c", "c.c", "-o", out])
            .env("DISTCC_HOSTS", d.host())
            .env("DISTCC_DIR", dir.path().join(".distcc"));
        let o = output_within(&mut cmd, 60);
        assert!(o.status.success(), "{}", show(&o));
        assert!(o.stderr.is_empty(), "{}", show(&o));
        std::fs::read(dir.path().join(out)).unwrap()
    };
    assert!(run("gcc", "local.o") == run(OUR_DISTCC, "remote.o"));
    assert_eq!(d.compiled_ok(), 0, "{}", d.log_text());
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
