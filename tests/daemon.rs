//! The daemon against bad and unusual clients: garbage, truncated requests, absurd lengths,
//! refused addresses and compilers, half-closed sockets, and inetd mode over a pipe. It must
//! keep serving, and come back to its idle number of threads, child processes, open file
//! descriptors and temporary directories.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use distcc_rs::wire::{self, Limits, Reply, Version};

fn valid_request(version: Version) -> Vec<u8> {
    request_bytes(
        &["gcc", "-O2", "-c", "t.c", "-o", "t.o"],
        b"int twice(int x) { return 2 * x; }\n",
        version,
    )
}

/// Sends `bytes`, half-closes, and returns everything the daemon answers.
fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    read_all(&mut s)
}

fn assert_compiles(port: u16, version: Version) {
    let answer = exchange(port, &valid_request(version));
    let reply = Reply::read(&mut &answer[..], version, &Limits::default()).unwrap_or_else(|e| {
        panic!(
            "no valid reply ({e}): {:?}",
            String::from_utf8_lossy(&answer)
        )
    });
    assert_eq!(
        reply.status,
        0,
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert_eq!(&reply.output[..4], b"\x7fELF");
}

fn job_dirs(tmp: &std::path::Path) -> usize {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("distccd_"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn bad_clients_do_not_hurt_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    // Started as root, the daemon works as an unprivileged user.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let tmp_s = tmp.path().to_str().unwrap().to_string();
    let mut d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--jobs", "2"],
        &[("TMPDIR", &tmp_s)],
    );
    let port = d.port;
    assert_compiles(port, Version::Plain);

    let pid = d.pid();
    let settle = || {
        wait_for(Duration::from_secs(10), || {
            child_count(pid) == 0 && job_dirs(tmp.path()) == 0
        });
    };
    d.wait_for_workers(2);
    settle();
    let idle = (fd_count(pid), thread_count(pid), child_count(pid));

    let valid = valid_request(Version::Plain);
    let mut bad: Vec<(String, Vec<u8>)> = vec![
        ("garbage".into(), b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        (
            "binary garbage".into(),
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("empty".into(), Vec::new()),
        ("bad hex".into(), b"DIST0000000zARGC00000001".to_vec()),
        ("version 3".into(), wire::header(wire::DIST, 3).to_vec()),
        ("version 0".into(), wire::header(wire::DIST, 0).to_vec()),
    ];
    let mut huge = wire::header(wire::DIST, 1).to_vec();
    huge.extend_from_slice(&wire::header(wire::ARGC, u32::MAX));
    bad.push(("2^32-1 arguments".into(), huge));
    let mut huge = wire::header(wire::DIST, 1).to_vec();
    huge.extend_from_slice(&wire::header(wire::ARGC, 1));
    huge.extend_from_slice(&wire::header(wire::ARGV, u32::MAX));
    bad.push(("2^32-1 argument length".into(), huge));
    let mut huge = valid[..valid.len() - 35 - 12].to_vec();
    huge.extend_from_slice(&wire::header(wire::DOTI, u32::MAX));
    huge.extend_from_slice(b"int x;");
    bad.push(("2^32-1 file length".into(), huge));
    for cut in [1, 12, 30, 60, valid.len() - 10] {
        bad.push((format!("truncated at {cut}"), valid[..cut].to_vec()));
    }
    bad.push((
        "not a compiler".into(),
        request_bytes(&["sh", "-c", "x.c", "-o", "x.o"], b"", Version::Plain),
    ));
    bad.push((
        "plugin".into(),
        request_bytes(
            &["gcc", "-fplugin=/tmp/p.so", "-c", "x.c"],
            b"",
            Version::Plain,
        ),
    ));
    bad.push((
        "link".into(),
        request_bytes(&["gcc", "x.c", "-o", "x"], b"", Version::Plain),
    ));
    // A review found this write: `--language` (an -x alias) made the server preprocess,
    // and -Wp,-MD wrote a file of the client's choosing.
    let pwned = tmp.path().join("PWNED");
    let pwned_arg = format!("-Wp,-MD,{}", pwned.display());
    bad.push((
        "file write through --language and -Wp".into(),
        request_bytes(
            &["gcc", "--language=c", "-c", "a.c", &pwned_arg, "-o", "a.o"],
            b"int x;\n",
            Version::Plain,
        ),
    ));
    bad.push(("corrupt lzo".into(), {
        let mut v = request_bytes(&["gcc", "-c", "x.c"], b"", Version::Lzo);
        v.truncate(v.len() - 12);
        v.extend_from_slice(&wire::header(wire::DOTI, 3));
        v.extend_from_slice(&[0x11, 0x04, 0x00]);
        v
    }));

    for (what, bytes) in &bad {
        let answer = exchange(port, bytes);
        // Nothing, or the reason of a refusal: never a compile.
        let refused = refusal(&answer, Version::Plain).is_some();
        assert!(
            answer.is_empty() || refused,
            "{what}: the daemon answered {answer:?}"
        );
        // The daemon still serves a valid client after each bad one.
        assert_compiles(port, Version::Lzo);
    }
    // Clients that vanish without a word, in the middle of a request.
    for cut in [0, 5, 40] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&valid[..cut]).unwrap();
        drop(s);
    }
    assert_compiles(port, Version::Plain);
    settle();
    let after = (fd_count(pid), thread_count(pid), child_count(pid));
    println!(
        "bad requests: {}, daemon fds/threads/children idle {idle:?}, after {after:?}",
        bad.len()
    );
    assert!(
        wait_for(Duration::from_secs(10), || (
            fd_count(pid),
            thread_count(pid),
            child_count(pid)
        ) == idle),
        "daemon did not return to idle: {idle:?} then {:?}",
        (fd_count(pid), thread_count(pid), child_count(pid))
    );
    assert_eq!(job_dirs(tmp.path()), 0, "job directories were left behind");
    assert!(!pwned.exists(), "a client wrote a file of its choosing");
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon died");
    let log = d.log_text();
    assert!(log.contains("protocol derailment"), "{log}");
    assert!(log.contains("not a compiler this distccd runs"), "{log}");
}

#[test]
fn refuses_to_start_without_allow() {
    let out = output_within(
        Command::new(OUR_DISTCCD).args(["--daemon", "--no-detach", "--port", "1"]),
        20,
    );
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow"));
}

#[test]
fn bad_options_exit_101() {
    for args in [
        &["--bogus"][..],
        &["--jobs", "0"],
        &["--jobs", "201"],
        &["--allow", "1.2.3.4/40"],
    ] {
        let out = output_within(Command::new(OUR_DISTCCD).args(args), 20);
        assert_eq!(out.status.code(), Some(101), "{args:?}: {}", show(&out));
    }
    let out = output_within(Command::new(OUR_DISTCCD).arg("--version"), 20);
    assert!(out.status.success());
}

#[test]
fn clients_outside_the_allow_list_are_closed() {
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.2"]);
    let answer = exchange(d.port, &valid_request(Version::Plain));
    assert!(answer.is_empty());
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("denied by access list")));
}

#[test]
fn half_closed_client_still_gets_its_object() {
    // distcc 3.4's daemon kills such a job; ours answers.
    let d = Daemon::ours(&[]);
    assert_compiles(d.port, Version::Plain);
    assert_compiles(d.port, Version::Lzo);
}

#[test]
fn compile_errors_come_back_as_status_and_stderr() {
    let d = Daemon::ours(&[]);
    let answer = exchange(
        d.port,
        &request_bytes(
            &["gcc", "-c", "e.c", "-o", "e.o"],
            b"int f( {\n",
            Version::Plain,
        ),
    );
    let reply = Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).unwrap();
    assert_eq!(reply.status >> 8, 1);
    assert!(String::from_utf8_lossy(&reply.stderr).contains("error"));
    assert!(reply.output.is_empty());
}

#[test]
fn inetd_mode_serves_one_job_over_a_pipe() {
    for version in [Version::Plain, Version::Lzo] {
        let mut child = Command::new(OUR_DISTCCD)
            .args(["--inetd", "--log-stderr"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&valid_request(version))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        let reply = Reply::read(&mut &out.stdout[..], version, &Limits::default()).unwrap();
        assert_eq!(reply.status, 0);
        assert_eq!(&reply.output[..4], b"\x7fELF");
        assert!(String::from_utf8_lossy(&out.stderr).contains("NOTSOCKET COMPILE_OK"));
    }
}

#[test]
fn jobs_limit_bounds_concurrent_connections() {
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.1", "--jobs", "1"]);
    let valid = valid_request(Version::Plain);
    // The first client sends half a request and stalls, holding the only worker.
    let mut stalled = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    stalled.write_all(&valid[..30]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The second waits in the listen backlog: no answer while the first is served.
    let mut waiting = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    waiting.write_all(&valid).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut waiting, &mut byte);
    assert!(
        early.is_err(),
        "second job was served while the only worker was busy"
    );
    drop(stalled);
    let answer = read_all(&mut waiting);
    let reply = Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).unwrap();
    assert_eq!(reply.status, 0);
}

#[test]
fn daemon_detaches_and_writes_its_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("distccd.pid");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let status = Command::new(OUR_DISTCCD)
        .args(["--daemon", "--listen", "127.0.0.1", "--allow", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ])
        .args(["--log-file", dir.path().join("log").to_str().unwrap()])
        .status()
        .unwrap();
    // The command returns at once; the daemon lives on in the background.
    assert!(status.success());
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    }));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let result = std::panic::catch_unwind(|| assert_compiles(port, Version::Lzo));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(result.is_ok(), "the detached daemon did not serve");
    // Gone, or a zombie waiting for whoever adopted it to reap it.
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
        })
    }));
}

/// Sends `job` to a `--verbose` daemon, stops the daemon with SIGTERM once the job is
/// compiling, and returns the answer the job gets.
fn stop_while_compiling(d: &Daemon, job: &[u8], version: Version) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(job).unwrap();
    assert!(wait_for(Duration::from_secs(10), || d
        .log_text()
        .contains("compiling:")));
    signal(d.pid(), nix::sys::signal::Signal::SIGTERM);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], version, &Limits::default()).unwrap()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
fn sigterm_lets_running_jobs_finish_and_removes_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    // The daemon that removes its pid file has given up root: let it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pid_file = dir.path().join("pid");
    let mut d = Daemon::start(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--verbose",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    // The port listens a moment before the pid file is written.
    assert!(wait_for(Duration::from_secs(10), || pid_file.exists()));
    // A job that takes the compiler a moment.
    let req = request_bytes(
        &["gcc", "-O2", "-c", "slow.c", "-o", "slow.o"],
        slow_source(3000, "f").as_bytes(),
        Version::Lzo,
    );
    let reply = stop_while_compiling(&d, &req, Version::Lzo);
    assert_eq!(
        reply.status,
        0,
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert_eq!(&reply.output[..4], b"\x7fELF");
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(!pid_file.exists(), "the pid file was left behind");
    let log = d.log_text();
    let (stop, done) = (log.find("stopping on"), log.find("COMPILE_OK"));
    assert!(
        matches!((stop, done), (Some(a), Some(b)) if a < b),
        "the job was not running when the signal came:\n{log}"
    );
    assert!(TcpStream::connect(("127.0.0.1", d.port)).is_err());
}

#[test]
fn sighup_reopens_the_log_file() {
    let d = Daemon::ours(&[]);
    assert_compiles(d.port, Version::Plain);
    assert!(wait_for(Duration::from_secs(10), || d.compiled_ok() == 1));
    let rotated = d.log.with_extension("old");
    std::fs::rename(&d.log, &rotated).unwrap();
    signal(d.pid(), nix::sys::signal::Signal::SIGHUP);
    assert!(wait_for(Duration::from_secs(10), || d.log.exists()));
    assert_compiles(d.port, Version::Plain);
    assert_eq!(
        d.wait_compiled(1),
        1,
        "the new log did not get the next job"
    );
}

#[test]
fn a_trickling_client_cannot_hold_a_worker() {
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--jobs", "1"],
        &[("DISTCC_IO_TIMEOUT", "2")],
    );
    let valid = valid_request(Version::Plain);
    // One byte every 300 ms: each read is quick, the whole request never arrives.
    let port = d.port;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for b in valid.iter().take(40) {
            if s.write_all(&[*b]).is_err() {
                return true; // closed by the daemon
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    });
    std::thread::sleep(Duration::from_millis(200));
    // The only worker is taken; this client is served once the slow one is cut off.
    assert_compiles(d.port, Version::Plain);
    assert!(
        slow.join().unwrap(),
        "the trickling client was never cut off"
    );
    assert!(wait_for(Duration::from_secs(10), || d
        .log_text()
        .contains("IO timeout")));
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn daemon_gives_up_root() {
    let d = Daemon::ours(&[]);
    assert_compiles(d.port, Version::Plain);
    let me = nix::unistd::Uid::effective();
    if !me.is_root() {
        // Nothing to give up: the daemon runs as whoever started it.
        assert_eq!(uid_of(d.pid()), me.as_raw());
        return;
    }
    assert_ne!(uid_of(d.pid()), 0, "the daemon still runs as root");
    // So a client cannot have root's files assembled into its object.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"root only").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let source = format!("asm(\".incbin \\\"{}\\\"\");\n", secret.display());
    let job = request_bytes(
        &["gcc", "-c", "x.c", "-o", "x.o"],
        source.as_bytes(),
        Version::Plain,
    );
    let status_with_mode = |mode| {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let answer = exchange(d.port, &job);
        Reply::read(&mut &answer[..], Version::Plain, &Limits::default())
            .unwrap()
            .status
    };
    // Readable by all: the path is right and the job works...
    assert_eq!(status_with_mode(0o644), 0);
    // ...readable by root only: the daemon's user cannot read it.
    assert_ne!(status_with_mode(0o600), 0, "root's file was read");
    // A whitelist the daemon's user cannot read would refuse every job: no start.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = start_with_whitelist(private.path().to_str().unwrap());
    assert_eq!(out.status.code(), Some(110), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the compiler whitelist"));
    // Compiling as root is refused outright.
    let out = output_within(
        Command::new(OUR_DISTCCD).args([
            "--daemon",
            "--no-detach",
            "--allow",
            "127.0.0.1",
            "--port",
            &free_port(),
            "--user",
            "root",
        ]),
        20,
    );
    assert_eq!(out.status.code(), Some(112), "{}", show(&out));
}

#[test]
fn job_lifetime_kills_a_long_compile() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let tmp_s = tmp.path().to_str().unwrap().to_string();
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--job-lifetime", "1"],
        &[("TMPDIR", &tmp_s)],
    );
    // Several seconds of work at -O2.
    let source = slow_source(8000, "f");
    let answer = exchange(
        d.port,
        &request_bytes(
            &["gcc", "-O2", "-c", "slow.c", "-o", "slow.o"],
            source.as_bytes(),
            Version::Lzo,
        ),
    );
    let reply = Reply::read(&mut &answer[..], Version::Lzo, &Limits::default()).unwrap();
    assert_eq!(reply.status, 118 << 8);
    assert!(String::from_utf8_lossy(&reply.stderr).contains("--job-lifetime"));
    assert!(reply.output.is_empty());
    assert!(wait_for(Duration::from_secs(10), || d
        .log_text()
        .contains("COMPILE_TIMEOUT")));
    // The compiler and its children are gone, and so is the job's directory.
    let leftovers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&tmp_s))
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(10), || leftovers() == 0),
        "compiler processes survived"
    );
    assert!(wait_for(Duration::from_secs(10), || job_dirs(tmp.path()) == 0));
    // A quick job still works.
    assert_compiles(d.port, Version::Plain);
}

#[test]
fn only_whitelisted_compilers_run() {
    let wl = whitelist_dir(&["gcc"]);
    let dir = wl.path().to_str().unwrap();
    let d = Daemon::start(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--whitelist-dir", dir],
    );
    assert_compiles(d.port, Version::Plain);
    for compiler in ["g++", "cc", "x86_64-linux-gnu-gcc"] {
        let job = request_bytes(
            &[compiler, "-c", "t.c", "-o", "t.o"],
            b"int x;\n",
            Version::Plain,
        );
        let said = refusal(&exchange(d.port, &job), Version::Plain);
        assert!(
            said.as_ref().is_some_and(|s| s.contains("not in")),
            "{compiler} ran: {said:?}"
        );
    }
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("g++ not in")));
    // Without the directory the daemon does not start.
    let out = start_with_whitelist("/nonexistent/distcc");
    assert_eq!(out.status.code(), Some(110), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/distcc not found"));
}

/// Starts a daemon with `whitelist` as its whitelist directory, expecting it to refuse to
/// start (bounded wait).
fn start_with_whitelist(whitelist: &str) -> std::process::Output {
    output_within(
        Command::new(OUR_DISTCCD)
            .args(["--daemon", "--no-detach", "--allow", "127.0.0.1"])
            .args(["--port", &free_port(), "--whitelist-dir", whitelist]),
        20,
    )
}

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port().to_string())
        .unwrap()
}

#[test]
fn a_stopping_daemon_waits_for_jobs_only_so_long() {
    let (tools, whitelist) = misbehaving_compilers();
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let mut d = Daemon::verbose_with(
        whitelist.path(),
        &[("DISTCCD_PATH", &path), ("DISTCCD_STOP_GRACE", "1")],
    );
    let job = request_bytes(
        &["x86_64-hang-gcc", "-c", "h.c", "-o", "h.o"],
        b"int x;\n",
        Version::Plain,
    );
    // The hanging compile is killed after the grace period and the client is told.
    let reply = stop_while_compiling(&d, &job, Version::Plain);
    assert_eq!(reply.status, 118 << 8);
    assert!(String::from_utf8_lossy(&reply.stderr).contains("the daemon is stopping"));
    assert!(wait_for(Duration::from_secs(10), || d
        .child
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
    assert_eq!(d.child.wait().unwrap().code(), Some(0));
}
