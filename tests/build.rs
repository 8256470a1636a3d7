//! Whole builds through our distcc and distccd: objects identical to a local build's,
//! jobs spread over several daemons, and local fallback when a daemon dies mid-build.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use common::*;

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

#[test]
fn make_j4_over_two_daemons_gives_identical_objects() {
    let project = Project::example();
    project.add_generated(8);
    let objs = "OBJS=main.o greet.o stats.o fib.o table.o";
    let expected = project.reference_build(&["-j4", "hello", objs]);
    let mut gens: Vec<String> = (0..8).map(|i| format!("gen{i}.o")).collect();
    let reference_gens =
        project.reference_build(&gens.iter().map(String::as_str).collect::<Vec<_>>());

    let a = Daemon::ours(&[]);
    let b = Daemon::ours(&["--allow", "127.0.0.1"]);
    let hosts = format!("{}/2 {}/2", a.host(), b.host());
    let env = [("DISTCC_HOSTS", hosts.as_str())];
    let out = project.make(&["-j4", &cc(), "hello", objs], &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("fib(50) = 12586269025"));

    let _ = project.make(&["clean"], &[]);
    let mut args = vec!["-j4".to_string(), cc()];
    args.append(&mut gens);
    let out = project.make(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&reference_gens, &project.outputs());

    // Every compile was remote, and both daemons took part.
    wait_for(Duration::from_secs(10), || {
        a.compiled_ok() + b.compiled_ok() >= 13
    });
    let (na, nb) = (a.compiled_ok(), b.compiled_ok());
    assert_eq!(
        na + nb,
        13,
        "daemon logs:\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
    assert!(na > 0 && nb > 0, "jobs were not spread: {na} and {nb}");
}

#[test]
fn lzo_build_gives_identical_objects() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let d = Daemon::ours(&[]);
    let hosts = format!("{},lzo", d.host());
    let out = project.make(&["-j4", &cc()], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(d.wait_compiled(5), 5);
}

#[test]
fn daemon_killed_mid_build_falls_back_locally() {
    let project = Project::example();
    let gens = project.add_generated(24);
    let targets: Vec<String> = gens.iter().map(|g| g.replace(".c", ".o")).collect();
    let mut args: Vec<&str> = vec!["-j2"];
    args.extend(targets.iter().map(String::as_str));
    let expected = project.reference_build(&args);

    let mut d = Daemon::ours(&[]);
    let hosts = d.host();
    let mut make = Command::new("make");
    make.current_dir(project.path())
        .args(&args)
        .arg(cc())
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", &hosts)
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_VERBOSE");
    let child = make
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || d.compiled_ok() >= 2),
        "no job reached the daemon: {}",
        d.log_text()
    );
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("running locally instead"),
        "no fallback warning:\n{stderr}"
    );
    assert_same_outputs(&expected, &project.outputs());
}

fn distcc(
    project: &Project,
    hosts: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(OUR_DISTCC);
    cmd.current_dir(project.path())
        .args(args)
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", hosts)
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn unreachable_host_compiles_locally_with_one_warning() {
    let project = Project::example();
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hosts = format!("127.0.0.1:{port}");
    let out = distcc(
        &project,
        &hosts,
        &["gcc", "-O2", "-c", "fib.c", "-o", "fib.o"],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("running locally instead").count(),
        1,
        "{stderr}"
    );
    project.gcc(&["-O2", "-c", "fib.c", "-o", "ref.o"]);
    assert_eq!(
        std::fs::read(project.path().join("fib.o")).unwrap(),
        std::fs::read(project.path().join("ref.o")).unwrap()
    );

    // With fallback disabled the failure is an error, and no object appears.
    std::fs::remove_file(project.path().join("fib.o")).unwrap();
    let out = distcc(
        &project,
        &hosts,
        &["gcc", "-c", "fib.c"],
        &[("DISTCC_FALLBACK", "0")],
    );
    assert_eq!(out.status.code(), Some(116), "{}", show(&out));
    assert!(!project.path().join("fib.o").exists());
}

#[test]
fn no_hosts_compiles_locally_and_implicit_compiler_is_cc() {
    let project = Project::example();
    let out = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["-c", "fib.c"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("HOME", project.path())
        .env_remove("DISTCC_HOSTS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(project.path().join("fib.o").exists());
}

#[test]
fn compile_errors_keep_gcc_status_and_message() {
    let project = Project::example();
    std::fs::write(
        project.path().join("bad.c"),
        "int main(void) { return x; }\n",
    )
    .unwrap();
    let gcc = Command::new("gcc")
        .current_dir(project.path())
        .args(["-c", "bad.c", "-o", "bad.o"])
        .output()
        .unwrap();
    let d = Daemon::ours(&[]);
    for env in [
        &[][..],
        &[("DISTCC_SKIP_LOCAL_RETRY", "1")][..],
        &[("DISTCC_SKIP_LOCAL_RETRY", "0")][..],
    ] {
        let out = distcc(
            &project,
            &d.host(),
            &["gcc", "-c", "bad.c", "-o", "bad.o"],
            env,
        );
        assert_eq!(out.status.code(), gcc.status.code(), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr
                .matches("undeclared (first use in this function)")
                .count(),
            1,
            "{stderr}"
        );
        assert!(!project.path().join("bad.o").exists());
    }
}

#[test]
fn remote_object_replaces_output_atomically() {
    let project = Project::example();
    let d = Daemon::ours(&[]);
    let obj = project.path().join("fib.o");
    std::fs::write(&obj, b"old contents").unwrap();
    // As with gcc's assembler, the old object is replaced, not rewritten: a reader that
    // has it open, and another name for it, keep the old contents whole.
    let mut reader = std::fs::File::open(&obj).unwrap();
    let link = project.path().join("fib.o.old");
    std::fs::hard_link(&obj, &link).unwrap();
    let out = distcc(&project, &d.host(), &["gcc", "-c", "fib.c"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let data = std::fs::read(&obj).unwrap();
    assert_eq!(&data[..4], b"\x7fELF");
    let mut old = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut old).unwrap();
    assert_eq!(old, b"old contents");
    assert_eq!(std::fs::read(&link).unwrap(), b"old contents");
    // No temporary files are left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(project.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".distcc-"))
        .collect();
    assert!(leftovers.is_empty());
    assert_eq!(d.wait_compiled(1), 1);
}

#[test]
fn remote_object_has_the_mode_of_a_local_one() {
    // gcc creates its output with 0666 less the umask; so do we, through the temporary file.
    use std::os::unix::fs::PermissionsExt;
    let project = Project::example();
    let d = Daemon::ours(&[]);
    let under_umask = |argv: &[&str]| {
        let out = Command::new("sh")
            .current_dir(project.path())
            .args(["-c", "umask 027; exec \"$@\"", "sh"])
            .args(argv)
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", d.host())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
    };
    under_umask(&["gcc", "-c", "fib.c", "-o", "local.o"]);
    under_umask(&[OUR_DISTCC, "gcc", "-c", "fib.c", "-o", "remote.o"]);
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
    let mode = |name: &str| {
        let meta = std::fs::metadata(project.path().join(name)).unwrap();
        meta.permissions().mode() & 0o7777
    };
    assert_eq!(mode("local.o"), 0o640);
    assert_eq!(mode("remote.o"), mode("local.o"));
}

#[test]
fn dependency_files_match_gcc() {
    let project = Project::example();
    std::fs::create_dir(project.path().join("out")).unwrap();
    let d = Daemon::ours(&[]);
    let args = ["-MD", "-c", "main.c", "-o", "out/main.o"];
    project.gcc(&args);
    let expected = std::fs::read(project.path().join("out/main.d")).unwrap();
    std::fs::remove_file(project.path().join("out/main.d")).unwrap();
    let mut full = vec!["gcc"];
    full.extend_from_slice(&args);
    let out = distcc(&project, &d.host(), &full, &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read(project.path().join("out/main.d")).unwrap(),
        expected
    );
    assert!(!project.path().join("main.d").exists());
    assert_eq!(d.wait_compiled(1), 1);
}

#[test]
fn failed_host_is_skipped_during_backoff_and_used_again_after() {
    let project = Project::example();
    let good = Daemon::ours(&[]);
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{dead_port}");
    let hosts = format!("{dead} {}", good.host());
    let mark = project
        .distcc_dir()
        .join(format!("lock/backoff_tcp_127.0.0.1_{dead_port}_0"));
    let compile = |env: &[(&str, &str)]| {
        // Once heard from, the good host would go first, having processors free (see
        // CHOOSING A HOST in distcc(1)): forgotten, the list's order decides, as it does
        // for distcc 3.4's hosts.
        let _ = std::fs::remove_file(project.distcc_dir().join("load"));
        let out = distcc(&project, &hosts, &["gcc", "-c", "fib.c"], env);
        assert!(out.status.success(), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !stderr.contains("locally"),
            "fell back to a local compile: {stderr}"
        );
        stderr.contains(&dead)
    };

    // The dead host comes first in the list: tried, marked, and the job goes on to the next.
    assert!(compile(&[]), "the dead host was not tried");
    assert!(mark.exists());
    assert_eq!(good.wait_compiled(1), 1);
    // Within the period every client skips it.
    assert!(!compile(&[]), "the dead host was tried during its backoff");
    assert_eq!(good.wait_compiled(2), 2);
    // Once the mark is older than the period, it is tried again.
    let aged = Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(&mark)
        .status()
        .unwrap();
    assert!(aged.success());
    assert!(
        compile(&[]),
        "the dead host was not retried after the period"
    );
    // DISTCC_BACKOFF_PERIOD=0 turns backoff off: tried every time, never marked.
    std::fs::remove_file(&mark).unwrap();
    assert!(compile(&[("DISTCC_BACKOFF_PERIOD", "0")]));
    assert!(compile(&[("DISTCC_BACKOFF_PERIOD", "0")]));
    assert!(!mark.exists());
    assert_eq!(good.wait_compiled(5), 5);
}

#[test]
fn masquerade_directory_first_on_path() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4", "CC=cc"]);
    // Made the way a user would: distcc --make-symlinks DIR.
    let masq = tempfile::tempdir().unwrap();
    let made = Command::new(OUR_DISTCC)
        .arg("--make-symlinks")
        .arg(masq.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", show(&made));
    for name in ["cc", "gcc", "g++"] {
        let link = std::fs::read_link(masq.path().join(name)).unwrap();
        assert_eq!(link, std::fs::canonicalize(OUR_DISTCC).unwrap(), "{name}");
    }
    let path = format!(
        "{}:{}",
        masq.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The same directory tells the daemon which compilers it may run.
    let d = Daemon::start(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            masq.path().to_str().unwrap(),
        ],
    );
    let out = project.make(
        &["-j4", "CC=cc"],
        &[("PATH", &path), ("DISTCC_HOSTS", &d.host())],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("Hello, world"));
    assert_eq!(d.wait_compiled(5), 5, "{}", d.log_text());
}

#[test]
fn bad_io_timeout_is_a_usage_error() {
    let project = Project::example();
    let d = Daemon::ours(&[]);
    for bad in ["0", "-5", "abc", ""] {
        let out = distcc(
            &project,
            &d.host(),
            &["gcc", "-c", "fib.c"],
            &[("DISTCC_IO_TIMEOUT", bad)],
        );
        assert_eq!(out.status.code(), Some(101), "{bad:?}: {}", show(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Bad DISTCC_IO_TIMEOUT value"));
    }
    let out = distcc(
        &project,
        &d.host(),
        &["gcc", "-c", "fib.c"],
        &[("DISTCC_IO_TIMEOUT", "30")],
    );
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn outputs_that_are_not_regular_files_are_written_through() {
    let project = Project::example();
    let d = Daemon::ours(&[]);
    // A symlink to an object elsewhere: gcc writes through it, and so do we.
    std::fs::create_dir(project.path().join("real")).unwrap();
    std::fs::write(project.path().join("real/fib.o"), b"old").unwrap();
    std::os::unix::fs::symlink("real/fib.o", project.path().join("fib.o")).unwrap();
    let out = distcc(
        &project,
        &d.host(),
        &["gcc", "-c", "fib.c", "-o", "fib.o"],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let link = std::fs::symlink_metadata(project.path().join("fib.o")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(
        &std::fs::read(project.path().join("real/fib.o")).unwrap()[..4],
        b"\x7fELF"
    );
    // A FIFO stays a FIFO (a device such as /dev/null would be replaced the same way).
    let fifo = project.path().join("out.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A non-blocking reader, so that a regression cannot hang the test.
    let reader = {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        std::thread::spawn(move || {
            let (mut text, mut buf) = (Vec::new(), [0u8; 4096]);
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                match f.read(&mut buf) {
                    Ok(0) if !text.is_empty() => break,
                    Ok(n) => text.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            text
        })
    };
    let out = distcc(
        &project,
        &d.host(),
        &["gcc", "-S", "fib.c", "-o", "out.fifo"],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
    let text = reader.join().unwrap();
    assert!(
        String::from_utf8_lossy(&text).contains("fib"),
        "read {} bytes",
        text.len()
    );
    assert_eq!(d.wait_compiled(2), 2);
}

#[test]
fn driver_queries_and_local_errors_do_not_touch_outputs_or_hosts() {
    let project = Project::example();
    let d = Daemon::ours(&[]);
    std::fs::write(project.path().join("keep.o"), b"precious").unwrap();
    for args in [
        &["gcc", "-###", "-c", "fib.c", "-o", "keep.o"][..],
        &["gcc", "--version", "-c", "fib.c", "-o", "keep.o"][..],
    ] {
        let out = distcc(&project, &d.host(), args, &[]);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        assert_eq!(
            std::fs::read(project.path().join("keep.o")).unwrap(),
            b"precious"
        );
    }
    // A missing input is the user's error: gcc's message and status, and no backoff.
    let out = distcc(&project, &d.host(), &["gcc", "-c", "missing.i"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.i"));
    let lock = project.distcc_dir().join("lock");
    let backoffs = std::fs::read_dir(&lock)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("backoff"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(backoffs, 0, "a local error backed off a healthy host");
}

#[test]
fn non_utf8_arguments_compile_locally_through_masquerade() {
    use std::os::unix::ffi::OsStrExt;
    let project = Project::example();
    let masq = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(OUR_DISTCC, masq.path().join("gcc")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"l\xe9.c");
    std::fs::copy(project.path().join("fib.c"), project.path().join(name)).unwrap();
    let path = format!(
        "{}:{}",
        masq.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let d = Daemon::ours(&[]);
    let out = Command::new(masq.path().join("gcc"))
        .current_dir(project.path())
        .arg("-c")
        .arg(name)
        .args(["-o", "l.o"])
        .env("PATH", &path)
        .env("DISTCC_HOSTS", d.host())
        .env("DISTCC_DIR", project.distcc_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        &std::fs::read(project.path().join("l.o")).unwrap()[..4],
        b"\x7fELF"
    );
}

#[test]
fn server_gets_the_target_qualified_compiler_name() {
    let project = Project::example();
    let d = Daemon::ours(&["--verbose"]);
    let qualified = format!("{}-linux-gnu-gcc", std::env::consts::ARCH);
    let exists = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .any(|dir| dir.join(&qualified).exists());
    let expected = if exists { qualified.as_str() } else { "gcc" };
    for (args, env, sent) in [
        (&["gcc", "-c", "fib.c"][..], &[][..], expected),
        (&["cc", "-c", "stats.c"][..], &[][..], expected),
        (
            &["gcc", "-c", "table.c"][..],
            &[("DISTCC_NO_REWRITE_CROSS", "1")][..],
            "gcc",
        ),
    ] {
        let out = distcc(&project, &d.host(), args, env);
        assert!(out.status.success(), "{}", show(&out));
        let input = args[2];
        let want = format!("{sent} {input}");
        assert!(
            wait_for(Duration::from_secs(10), || d.log_text().contains(&want)),
            "{args:?} was not sent as {sent}: {}",
            d.log_text()
        );
    }
}

#[test]
fn missing_cc_is_a_clear_error() {
    let project = Project::example();
    let out = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["-c", "fib.c"])
        .env("PATH", "/nonexistent")
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(110), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cc: not found on PATH"));
}

/// Files whose names start with `prefix` in `dir`.
fn named(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn save_temps_keeps_the_sent_source_on_both_sides() {
    let project = Project::example();
    let (client_tmp, daemon_tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::set_permissions(daemon_tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let daemon_tmp_s = daemon_tmp.path().to_str().unwrap();
    let env = [("DISTCC_SAVE_TEMPS", "1"), ("TMPDIR", daemon_tmp_s)];
    let d = Daemon::start_with_env(OUR_DISTCCD, &["--allow", "127.0.0.1"], &env);
    let client_tmp_s = client_tmp.path().to_str().unwrap();
    let compile = ["gcc", "-O2", "-c", "fib.c", "-o", "fib.o"];
    // Without DISTCC_SAVE_TEMPS the client writes no temporary file at all.
    let out = distcc(&project, &d.host(), &compile, &[("TMPDIR", client_tmp_s)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(named(client_tmp.path(), "distcc_").is_empty());
    let out = distcc(
        &project,
        &d.host(),
        &compile,
        &[("TMPDIR", client_tmp_s), ("DISTCC_SAVE_TEMPS", "1")],
    );
    assert!(out.status.success(), "{}", show(&out));
    let kept = named(client_tmp.path(), "distcc_");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(std::fs::read_to_string(&kept[0]).unwrap().contains("fib("));
    // The daemon kept both jobs' input and output.
    assert_eq!(d.wait_compiled(2), 2);
    let mut kept: Vec<String> = named(daemon_tmp.path(), "distccd_")
        .iter()
        .map(|p| p.extension().unwrap().to_string_lossy().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, ["i", "i", "o", "o"]);
}

/// A client stopped and continued while the host compiles (^Z, then `fg`) keeps its job
/// there: the read interrupted by the stop is taken up again, not taken for a failed host.
#[test]
fn a_client_stopped_and_continued_keeps_its_job_on_the_host() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let project = Project::example();
    let mut text = String::new();
    for f in 0..800 {
        text.push_str(&format!(
            "int f{f}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += i * {f} % {m}; \
             return s; }}\n",
            m = f + 7
        ));
    }
    std::fs::write(project.path().join("slow.c"), text).unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let child = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["gcc", "-O2", "-c", "slow.c"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", d.host())
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    assert!(
        wait_for(Duration::from_secs(30), || d
            .log_text()
            .contains("compiling: ")),
        "{}",
        d.log_text()
    );
    kill(pid, Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.compiled_ok(), 0, "the compile was over before the stop");
    kill(pid, Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
}
