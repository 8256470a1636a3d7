//! The compiler identity check: our daemon says after each reply which compiler it ran,
//! and our client does not use a result from a compiler other than the one it would run
//! here. It tells the user once per build, the build's other jobs skip that host, every
//! object is still the local build's, and `DISTCC_COMPILER_CHECK=off` turns it off.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

/// What a host's user sees of a mismatch.
const TOLD: &str = "its compiler is not this machine's";

/// Whether a job said that its host's compiler is another.
fn told(out: &std::process::Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(TOLD)
}

/// This machine's gcc version, as `gcc -v` prints it.
fn gcc_version() -> String {
    let out = Command::new("gcc")
        .arg("-dumpfullversion")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A daemon whose `x86_64-linux-gnu-gcc` (the name our client sends for `gcc`) compiles
/// with this machine's gcc but says, asked with `-v`, that it is gcc `version`.
struct OtherHost {
    daemon: Daemon,
    _tools: tempfile::TempDir,
    _whitelist: tempfile::TempDir,
}

impl OtherHost {
    fn new(version: &str) -> OtherHost {
        OtherHost::serving(version, &[])
    }

    /// A host whose compiler says it is gcc `version`, started with `extra` options.
    fn serving(version: &str, extra: &[&str]) -> OtherHost {
        OtherHost::with_answer_and_options(
            &format!(
                "if [ \"$#\" = 1 ] && [ \"$1\" = -v ]; then\n\
             /usr/bin/x86_64-linux-gnu-gcc -v 2>&1 | \
             sed 's/^gcc version [0-9.]*/gcc version {version}/' >&2\n\
             exit 0\n\
             fi\n"
            ),
            extra,
        )
    }

    /// A host whose compiler runs `answer` (shell) before it compiles.
    fn with_answer(answer: &str) -> OtherHost {
        OtherHost::with_answer_and_options(answer, &[])
    }

    fn with_answer_and_options(answer: &str, extra: &[&str]) -> OtherHost {
        let tools = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake = tools.path().join("x86_64-linux-gnu-gcc");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\n{answer}exec /usr/bin/x86_64-linux-gnu-gcc \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let whitelist = whitelist_dir(&["gcc", "cc"]);
        std::os::unix::fs::symlink(&fake, whitelist.path().join("x86_64-linux-gnu-gcc")).unwrap();
        let path = format!("{}:/usr/bin:/bin", tools.path().display());
        let dir = whitelist.path().to_str().unwrap();
        let mut args = vec!["--allow", "127.0.0.1", "--verbose", "--whitelist-dir", dir];
        args.extend_from_slice(extra);
        let daemon = Daemon::start_with_env(OUR_DISTCCD, &args, &[("DISTCCD_PATH", &path)]);
        OtherHost {
            daemon,
            _tools: tools,
            _whitelist: whitelist,
        }
    }
}

#[test]
fn a_host_with_another_compiler_is_told_once_and_not_used() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let other = OtherHost::new("99.1.0");
    let hosts = other.daemon.host();
    let out = project.make(&["-j4", &cc()], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(TOLD).count(), 1, "{stderr}");
    // Both compilers are named.
    assert!(stderr.contains("gcc version 99.1.0"), "{stderr}");
    assert!(
        stderr.contains(&format!("gcc version {}", gcc_version())),
        "{stderr}"
    );
    // The jobs that learnt it threw their result away; the others did not go there.
    let there = other.daemon.compiled_ok();
    assert!((1..=4).contains(&there), "{there} jobs compiled there");

    // The next build skips the host from the start.
    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", &cc()], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TOLD));
    assert_eq!(other.daemon.compiled_ok(), there);

    // So do jobs that are each a process group of their own, as under ninja: the host
    // is skipped by this compiler's jobs for a while, whatever the build.
    for src in ["fib", "main"] {
        let out = Command::new(OUR_DISTCC)
            .args(["gcc", "-c", &format!("{src}.c"), "-o", &format!("{src}.o")])
            .current_dir(project.path())
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", &hosts)
            .process_group(0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert!(out.stderr.is_empty(), "{}", show(&out));
    }
    assert_eq!(other.daemon.compiled_ok(), there);

    // Without a fallback, the job fails and says why.
    let out = Command::new(OUR_DISTCC)
        .args(["gcc", "-c", "fib.c", "-o", "fib.o"])
        .current_dir(project.path())
        .env("DISTCC_DIR", tempfile::tempdir().unwrap().path())
        .env("DISTCC_HOSTS", &hosts)
        .env("DISTCC_FALLBACK", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(110), "{}", show(&out));
    assert!(told(&out), "{}", show(&out));
}

#[test]
fn the_check_can_be_turned_off() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let other = OtherHost::new("99.1.0");
    let env = [
        ("DISTCC_HOSTS", other.daemon.host()),
        ("DISTCC_COMPILER_CHECK", "off".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = project.make(&["-j4", &cc()], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TOLD));
    assert_eq!(other.daemon.wait_compiled(5), 5);
}

/// A result from another compiler, used because the check is off, is not kept in the
/// cache: its key names this machine's compiler.
#[test]
fn a_result_from_another_compiler_is_not_cached() {
    let project = Project::example();
    let other = OtherHost::new("99.1.0");
    let cache = tempfile::tempdir().unwrap();
    let compile = |check: &str| {
        Command::new(OUR_DISTCC)
            .args(["gcc", "-c", "fib.c", "-o", "fib.o"])
            .current_dir(project.path())
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", other.daemon.host())
            .env("DISTCC_CACHE_DIR", cache.path())
            .env("DISTCC_COMPILER_CHECK", check)
            .output()
            .unwrap()
    };
    let out = compile("OFF");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(other.daemon.wait_compiled(1), 1);
    let stats = Command::new(OUR_DISTCC)
        .arg("--cache-stats")
        .env("DISTCC_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("results stored") && l.ends_with(" 0")),
        "{stats}"
    );
    // With the check on, the job is not answered from the cache, and not sent there.
    let out = compile("on");
    assert!(out.status.success(), "{}", show(&out));
    assert!(told(&out), "{}", show(&out));
}

#[test]
fn the_same_compiler_passes() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let same = OtherHost::new(&gcc_version());
    let d = Daemon::ours(&[]);
    for daemon in [&same.daemon, &d] {
        let _ = project.make(&["clean"], &[]);
        let out = project.make(&["-j4", &cc()], &[("DISTCC_HOSTS", &daemon.host())]);
        assert!(out.status.success(), "{}", show(&out));
        assert_same_outputs(&expected, &project.outputs());
        assert!(!String::from_utf8_lossy(&out.stderr).contains(TOLD));
        assert_eq!(daemon.wait_compiled(5), 5);
    }
}

/// A compiler that never says what it is (`-v` and `-print-prog-name` hang) is given up on
/// after a while, said once, and not asked again for the next jobs; its results are used,
/// unchecked, as distcc 3.4's daemon's are.
#[test]
fn a_compiler_that_does_not_answer_is_not_asked_at_every_job() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let silent =
        OtherHost::with_answer("case \"$1\" in -v|-print-prog-name=*) exec sleep 60;; esac\n");
    let out = project.make(&["-j1", &cc()], &[("DISTCC_HOSTS", &silent.daemon.host())]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(silent.daemon.wait_compiled(5), 5);
    let log = silent.daemon.log_text();
    assert_eq!(
        log.matches("cannot identify the compiler").count(),
        1,
        "{log}"
    );
}

/// The check is the same over TLS, and earlier: a host reached with pinned keys and another
/// compiler is told once and not used, and compiles nothing.
#[test]
fn a_host_with_another_compiler_is_not_used_over_tls_either() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("host");
    let made = Command::new(OUR_DISTCCD)
        .arg("--gen-key")
        .arg(&key)
        .output()
        .unwrap();
    let made = String::from_utf8_lossy(&made.stdout).into_owned();
    let fingerprint = made
        .lines()
        .find_map(|l| l.strip_prefix("Its fingerprint is "))
        .expect("a fingerprint");
    let other = OtherHost::serving("99.1.0", &["--key", key.to_str().unwrap()]);
    let hosts = other.daemon.host();
    std::fs::write(
        project.distcc_dir().join("known_hosts"),
        format!("{hosts} {fingerprint}\n"),
    )
    .unwrap();
    let out = project.make(&["-j4", &cc()], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(TOLD).count(), 1, "{stderr}");
    // Under TLS the client says first which compiler it would run: nothing is compiled
    // there in vain.
    let log = other.daemon.log_text();
    assert!(log.contains("TLS client"), "{log}");
    assert!(log.contains("not compiling with"), "{log}");
    assert!(!log.contains("compiling:"), "{log}");
}
