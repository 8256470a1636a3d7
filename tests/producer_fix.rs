//! The daemon's `-g` producer fix where it cannot be trusted: checked on a probe per
//! compiler (and off, with a warning, where it does not give a local compile's object),
//! kept in a cache file that `--inetd` daemons share, and robust to the distccd file being
//! replaced or removed while the daemon runs. Every job must compile regardless.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use distcc_rs::wire::{Limits, Reply, Version};

/// A directory anyone may write to, as a daemon that gives up root needs its `TMPDIR`.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// `gcc -E -fdirectives-only` of `source` with `flags`, as our client preprocesses a `-g`
/// compile.
fn directives_only_text(dir: &Path, name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join(name), source).unwrap();
    let out = Command::new("gcc")
        .args(flags)
        .args(["-E", "-fdirectives-only", name])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    out.stdout
}

/// Sends a request and returns the reply, if any.
fn send(port: u16, argv: &[&str], text: &[u8]) -> Option<Reply> {
    let bytes = request_bytes(argv, text, Version::Plain);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&bytes).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).ok()
}

/// The DWARF producer strings of an object.
fn producers(object: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.o"), object).unwrap();
    let out = Command::new("readelf")
        .args(["--debug-dump=info", "x.o"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("DW_AT_producer"))
        .collect::<Vec<_>>()
        .join("\n")
}

const SOURCE: &str = "#define SQUARE(x) ((x) * (x))\nint area(int side) { return SQUARE(side); }\n";

#[test]
fn a_fix_that_the_probe_finds_wrong_is_turned_off_and_jobs_still_compile() {
    // A compiler that, given directives-only text to compile, leaves out the .comment
    // section: the fix cannot make its objects a direct compile's.
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let odd = tools.path().join("x86_64-odd-gcc");
    std::fs::write(
        &odd,
        "#!/bin/sh\ncase \" $* \" in\n  *\" -E \"*) ;;\n  \
         *\" -fdirectives-only \"*) exec gcc -fno-ident \"$@\" ;;\nesac\nexec gcc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let whitelist = whitelist_dir(&["gcc"]);
    std::os::unix::fs::symlink(&odd, whitelist.path().join("x86_64-odd-gcc")).unwrap();
    let tmp = open_dir();
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let d = Daemon::verbose_with(
        whitelist.path(),
        &[
            ("DISTCCD_PATH", &path),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ],
    );
    let src = tempfile::tempdir().unwrap();
    let text = directives_only_text(src.path(), "a.c", SOURCE, &["-g", "-O2"]);
    for (compiler, fixed) in [("x86_64-odd-gcc", false), ("gcc", true)] {
        for _ in 0..2 {
            let argv = [compiler, "-g", "-O2", "-c", "a.i", "-o", "a.o"];
            let mut argv = argv.to_vec();
            argv.push("-fdirectives-only");
            let reply = send(d.port, &argv, &text).expect("a reply");
            assert_eq!(
                reply.status,
                0,
                "{}",
                String::from_utf8_lossy(&reply.stderr)
            );
            assert!(reply.output.starts_with(b"\x7fELF"));
            let producer = producers(&reply.output);
            assert_eq!(
                !producer.contains("-fdirectives-only"),
                fixed,
                "{compiler}: {producer}"
            );
        }
    }
    assert_eq!(d.wait_compiled(4), 4, "{}", d.log_text());
    let log = d.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("producer fix does not give the objects"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("x86_64-odd-gcc"), "{log}");
    assert!(warnings[0].contains("Warning"), "{log}");
    // Probed once per compiler: the second job of each is remembered.
    assert_eq!(log.matches(", probed").count(), 2, "{log}");
}

#[test]
fn jobs_compile_with_the_fix_after_the_distccd_file_is_removed_or_replaced() {
    // Our daemon, run from a copy that is then taken away.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = bin.path().join("distccd");
    std::fs::copy(OUR_DISTCCD, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let whitelist = whitelist_dir(&["gcc", "x86_64-linux-gnu-gcc"]);
    let tmp = open_dir();
    let pid_file = tmp.path().join("distccd.pid");
    let d = Daemon::start_with_env(
        copy.to_str().unwrap(),
        &[
            "--allow",
            "127.0.0.1",
            "--verbose",
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join(".distcc")).unwrap();
    std::fs::write(src.path().join("a.c"), SOURCE).unwrap();
    let compile = |distcc: bool, flags: &[&str], out: &str| {
        let mut cmd = if distcc {
            let mut c = Command::new(OUR_DISTCC);
            c.arg("gcc");
            c
        } else {
            Command::new("gcc")
        };
        cmd.args(flags)
            .args(["-c", "a.c", "-o", out])
            .current_dir(src.path())
            .env("DISTCC_HOSTS", d.host())
            .env("DISTCC_DIR", src.path().join(".distcc"))
            .env("DISTCC_FALLBACK", "0");
        let o = output_within(&mut cmd, 60);
        assert!(
            o.status.success(),
            "{flags:?}: {}\n{}",
            show(&o),
            d.log_text()
        );
        std::fs::read(src.path().join(out)).unwrap()
    };
    // Removed; then replaced by a program that is no distccd; each time with flags the
    // daemon has not seen, so that it probes too.
    std::fs::remove_file(&copy).unwrap();
    let flags: &[&str] = &["-g", "-O2"];
    assert!(compile(false, flags, "l1.o") == compile(true, flags, "r1.o"));
    std::fs::write(&copy, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let flags: &[&str] = &["-g", "-O1", "-fPIC"];
    assert!(compile(false, flags, "l2.o") == compile(true, flags, "r2.o"));
    assert_eq!(d.wait_compiled(2), 2, "{}", d.log_text());
    assert!(!d.log_text().contains("no longer"), "{}", d.log_text());
}

/// Serves one request with `distccd --inetd` over pipes; returns the reply and the log.
fn inetd(request: &[u8], tmp: &Path, whitelist: &Path) -> (Reply, String) {
    let mut child = Command::new(OUR_DISTCCD)
        .args(["--inetd", "--log-stderr", "--verbose", "--whitelist-dir"])
        .arg(whitelist)
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let finished = wait_for(Duration::from_secs(60), || waiter.is_finished());
    if !finished {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let reply = Reply::read(&mut &out.stdout[..], Version::Plain, &Limits::default()).unwrap();
    (reply, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn inetd_daemons_share_the_probe_through_the_cache_file() {
    let tmp = open_dir();
    let whitelist = whitelist_dir(&["gcc"]);
    let src = tempfile::tempdir().unwrap();
    let text = directives_only_text(src.path(), "b.c", SOURCE, &["-g", "-Os"]);
    let request = request_bytes(
        &[
            "gcc",
            "-g",
            "-Os",
            "-c",
            "b.i",
            "-o",
            "b.o",
            "-fdirectives-only",
        ],
        &text,
        Version::Plain,
    );
    let local = {
        let o = Command::new("gcc")
            .args(["-g", "-Os", "-c", "b.c", "-o", "b.o"])
            .current_dir(src.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        std::fs::read(src.path().join("b.o")).unwrap()
    };
    let (first, log) = inetd(&request, tmp.path(), whitelist.path());
    assert_eq!(first.status, 0, "{log}");
    assert!(log.contains(", probed"), "{log}");
    let (second, log) = inetd(&request, tmp.path(), whitelist.path());
    assert_eq!(second.status, 0, "{log}");
    assert!(!log.contains(", probed"), "{log}");
    assert!(log.contains(", read from"), "{log}");
    assert!(first.output == local, "not a local compile's object");
    assert!(second.output == local, "not a local compile's object");

    // A corrupt cache file is probed again, and rewritten.
    let cache = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("distccd-probe-")
        })
        .expect("the cache directory")
        .path();
    // The probe's file (beside `compilers/`, what the daemon's compilers say they are).
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(&files[0], "distccd producer fix 1\ngarbage").unwrap();
    let (third, log) = inetd(&request, tmp.path(), whitelist.path());
    assert_eq!(third.status, 0, "{log}");
    assert!(log.contains(", probed"), "{log}");
    let rewritten = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !rewritten.contains("garbage") && rewritten.contains("\nfix marker "),
        "{rewritten}"
    );
    assert!(third.output == local, "not a local compile's object");
    let (_, log) = inetd(&request, tmp.path(), whitelist.path());
    assert!(log.contains(", read from"), "{log}");
}
