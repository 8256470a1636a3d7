//! What the client tells the user, and how it ends, where a script or a person depends on
//! it: the words distcc 3.4 uses, the host's own message when it cannot compile, once per
//! build, and the reasons verbose mode gives. Each is run against real daemons, and beside
//! distcc 3.4 where it has the same case.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// A directory with `a.c` and its preprocessed `a.i`, and a `.distcc` of its own.
fn sources() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.c"), "int f(void) { return 1; }\n").unwrap();
    std::fs::write(dir.path().join("a.i"), "int f(void) { return 1; }\n").unwrap();
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    dir
}

/// Runs `client` with `args` in `dir`, against `hosts`, with `env` on top.
fn run(client: &str, dir: &Path, hosts: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    output_within(
        Command::new(client)
            .current_dir(dir)
            .args(args)
            .env("DISTCC_HOSTS", hosts)
            .env("DISTCC_DIR", dir.join(".distcc"))
            .envs(env.iter().copied()),
        60,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `client` on `args` in fresh sources against `hosts`, and checks that it exits with
/// `code` and says each of `words` on stderr.
fn says(client: &str, hosts: &str, args: &[&str], env: &[(&str, &str)], code: i32, words: &[&str]) {
    let dir = sources();
    std::fs::write(dir.path().join("bad.c"), "int f(void) { return }\n").unwrap();
    let out = run(client, dir.path(), hosts, args, env);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{client}: {said}");
    for w in words {
        assert!(said.contains(w), "{client} does not say {w:?}: {said}");
    }
}

/// A compiler the host cannot find: with fallbacks disabled, the user reads the host's
/// "failed to exec" and gets its status (110), as from distcc 3.4; before, ours exited 110
/// without a word.
#[test]
fn fallback_disabled_shows_why_the_host_could_not_compile() {
    require_distcc_34();
    let insecure = ["--allow", "127.0.0.1", "--enable-tcp-insecure"];
    for (client, daemon) in [
        (OUR_DISTCC, Daemon::start(OUR_DISTCCD, &insecure)),
        (DISTCC_34, Daemon::start(DISTCCD_34, &insecure)),
    ] {
        let words = [
            "failed to exec nosuchcc",
            "failed to distribute and fallbacks are disabled",
        ];
        let fallback = [("DISTCC_FALLBACK", "0")];
        says(
            client,
            &daemon.host(),
            &["nosuchcc", "-c", "a.i"],
            &fallback,
            110,
            &words,
        );
    }
}

/// A host whose compiler is missing is no broken host: it is not backed off, so later
/// jobs still go there, and the user hears what it said once per build (the process group
/// a build runs in), not once per job.
#[test]
fn a_host_without_the_compiler_is_told_once_per_build_and_not_backed_off() {
    let daemon = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--enable-tcp-insecure"],
        &[("DISTCCD_PATH", "/nonexistent")],
    );
    let dir = sources();
    let compile = |own_group: bool| {
        let mut cmd = Command::new(OUR_DISTCC);
        cmd.current_dir(dir.path())
            .args(["gcc", "-c", "a.c", "-o", "a.o"])
            .env("DISTCC_HOSTS", daemon.host())
            .env("DISTCC_DIR", dir.path().join(".distcc"))
            .env("DISTCC_NO_REWRITE_CROSS", "1");
        if own_group {
            cmd.process_group(0);
        }
        let out = output_within(&mut cmd, 60);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(dir.path().join("a.o").exists());
        stderr(&out)
    };
    let first = compile(false);
    assert!(
        first.contains("cannot compile a.c") && first.contains("failed to exec gcc"),
        "{first}"
    );
    assert!(!first.contains("retrying locally"), "{first}");
    let second = compile(false);
    assert!(!second.contains("cannot compile"), "said twice: {second}");
    let other_build = compile(true);
    assert!(other_build.contains("cannot compile"), "{other_build}");
    let tried = daemon.log_text().matches("COMPILE_ERROR").count();
    assert_eq!(tried, 3, "the host was skipped:\n{}", daemon.log_text());
    let lock = std::fs::read_dir(dir.path().join(".distcc/lock")).unwrap();
    let marks: Vec<_> = lock
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("backoff"))
        .collect();
    assert!(marks.is_empty(), "backed off: {marks:?}");
}

/// An unusable DISTCC_LOG: 3.4's words, which scripts grep for, and the compile goes on.
#[test]
fn an_unusable_log_file_is_named_in_distcc_34_words() {
    require_distcc_34();
    for client in [OUR_DISTCC, DISTCC_34] {
        let log = [("DISTCC_LOG", "/nonexistent/dir/distcc.log")];
        let words = ["failed to open logfile /nonexistent/dir/distcc.log"];
        says(client, "localhost", &["gcc", "-c", "a.c"], &log, 0, &words);
    }
}

/// Verbose mode names the option that keeps a job here, and the file the hosts came from.
#[test]
fn verbose_mode_says_which_option_and_which_host_file() {
    let dir = sources();
    let hosts_file = dir.path().join(".distcc/hosts");
    std::fs::write(&hosts_file, "localhost\n").unwrap();
    let out = output_within(
        Command::new(OUR_DISTCC)
            .current_dir(dir.path())
            .args(["gcc", "-fstack-usage", "-c", "a.c"])
            .env_remove("DISTCC_HOSTS")
            .env("DISTCC_DIR", dir.path().join(".distcc"))
            .env("DISTCC_VERBOSE", "1"),
        60,
    );
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("(-fstack-usage)"), "{said}");
    assert!(said.contains(&hosts_file.display().to_string()), "{said}");
}

/// A compiler our daemon does not allow: the daemon says why instead of closing, and our
/// client tells the user once per build, compiles here, and keeps using the host; with
/// fallbacks disabled it fails with distcc's "access denied" (113) and the reason.
#[test]
fn a_refusal_is_told_once_and_not_held_against_the_host() {
    let whitelist = whitelist_dir(&["gcc", "x86_64-linux-gnu-gcc"]);
    let wl = whitelist.path().to_str().unwrap();
    let daemon = Daemon::start(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--whitelist-dir", wl],
    );
    let dir = sources();
    let compile = |compiler: &str, env: &[(&str, &str)]| {
        let out = run(
            OUR_DISTCC,
            dir.path(),
            &daemon.host(),
            &[compiler, "-c", "a.c", "-o", "a.o"],
            env,
        );
        (out.status.code(), stderr(&out))
    };
    // gcc-12 is sent as x86_64-linux-gnu-gcc-12, which the whitelist does not name.
    let wanted = "x86_64-linux-gnu-gcc-12 not in";
    let (code, said) = compile("gcc-12", &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(wanted), "{said}");
    let (_, again) = compile("gcc-12", &[]);
    assert!(!again.contains(wanted), "said twice: {again}");
    // Not backed off: the next job goes there and compiles.
    let before = daemon.compiled_ok();
    let (code, said) = compile("gcc", &[]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(daemon.wait_compiled(before + 1), before + 1);
    let (code, said) = compile("gcc-12", &[("DISTCC_FALLBACK", "0")]);
    assert_eq!(code, Some(113), "{said}");
    assert!(said.contains(wanted), "{said}");
}

/// Where a compile failed, in 3.4's words, which build-log readers look for: "compile a.c
/// on HOST failed" for the remote compile, and "on localhost failed" for the retry here.
#[test]
fn a_failed_compile_is_named_with_its_host_as_distcc_34_names_it() {
    require_distcc_34();
    let daemon = Daemon::ours(&[]);
    let remote = format!("ERROR: compile bad.c on {} failed", daemon.host());
    for client in [OUR_DISTCC, DISTCC_34] {
        let words = [remote.as_str(), "ERROR: compile bad.c on localhost failed"];
        says(
            client,
            &daemon.host(),
            &["gcc", "-c", "bad.c"],
            &[],
            1,
            &words,
        );
    }
}

/// A host that is not there: the address once, and the system's words without Rust's
/// "(os error N)".
#[test]
fn a_refused_connection_reads_as_the_system_says_it() {
    let dir = sources();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let out = run(OUR_DISTCC, dir.path(), &host, &["gcc", "-c", "a.c"], &[]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "failed to connect to {host}: Connection refused\n"
        )),
        "{said}"
    );
    assert!(!said.contains("os error"), "{said}");
}

/// `--scan-includes` belongs to pump mode: without a `,cpp` host, 3.4 says so and exits 100.
#[test]
fn scan_includes_without_pump_hosts_is_refused_as_distcc_34_refuses_it() {
    require_distcc_34();
    for client in [OUR_DISTCC, DISTCC_34] {
        let args = ["--scan-includes", "gcc", "-c", "a.c"];
        let words = ["'--scan_includes' specified, but distcc wouldn't have used include server"];
        says(client, "127.0.0.1:1", &args, &[], 100, &words);
    }
}
