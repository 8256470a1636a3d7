//! The daemon's set-up and surroundings: `--lifetime`, `--version`, `--user`, pid and log
//! files in root's directories, the whitelist fallback to the compilers on PATH, masquerade
//! links and unsearchable directories on the daemon's PATH, inetd's request deadline, a
//! compiler that exits 118, an unwritable `--log-file`, and the exit status of
//! `--inetd`. Real daemons on loopback, real
//! gcc; every wait is bounded and waits for an event.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use distcc_rs::wire::{Limits, Reply, Version};

fn job(compiler: &str) -> Vec<u8> {
    request_bytes(
        &[compiler, "-c", "t.c", "-o", "t.o"],
        b"int twice(int x) { return 2 * x; }\n",
        Version::Plain,
    )
}

/// Sends `bytes`, half-closes, and returns the reply, if any.
fn exchange(port: u16, bytes: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).ok()
}

fn is_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        println!("skipped: this test must run as root");
    }
    root
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

fn exited_within(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    wait_for(Duration::from_secs(secs), || {
        child.try_wait().ok().flatten().is_some()
    });
    child.try_wait().ok().flatten()
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[test]
fn lifetime_stops_the_daemon_by_itself() {
    // Both spellings, distcc 3.4's undocumented option.
    let mut daemons = [
        Daemon::ours(&["--lifetime", "2"]),
        Daemon::ours(&["--lifetime=2"]),
    ];
    let start = Instant::now();
    for d in &mut daemons {
        let status = exited_within(&mut d.child, 20).expect("the daemon outlived --lifetime");
        assert_eq!(status.code(), Some(0), "{}", d.log_text());
        assert!(
            d.log_text().contains("end of the --lifetime"),
            "{}",
            d.log_text()
        );
        assert!(d.log_text().contains("stopped"));
    }
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn version_has_distcc_34s_first_two_lines() {
    let out = output_within(Command::new(OUR_DISTCCD).arg("--version"), 10);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let first: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(first.len(), 3, "{text}");
    assert_eq!(first[0], "distccd");
    assert_eq!(first[1], env!("CARGO_PKG_VERSION"));
    assert!(first[2].contains("-linux-"), "{text}");
    assert_eq!(lines[1], "  (protocols 1, 2 and 3) (default port 3632)");
    if Path::new(DISTCCD_34).exists() {
        let theirs = output_within(Command::new(DISTCCD_34).arg("--version"), 10);
        let theirs = String::from_utf8_lossy(&theirs.stdout).to_string();
        assert_eq!(theirs.lines().nth(1), Some(lines[1]));
        assert_eq!(
            theirs.split(' ').nth(2).map(|p| p.lines().next()),
            Some(Some(first[2]))
        );
    }
}

#[test]
fn a_user_that_does_not_exist_is_an_error() {
    if !is_root() {
        return;
    }
    let port = free_port().to_string();
    for mode in [&["--daemon", "--no-detach"][..], &["--inetd"]] {
        let out = output_within(
            Command::new(OUR_DISTCCD)
                .args(mode)
                .args(["--allow", "127.0.0.1", "--listen", "127.0.0.1"])
                .args(["--port", &port, "--user", "nosuchuser"]),
            20,
        );
        assert_eq!(out.status.code(), Some(112), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no such user as \"nosuchuser\""),
            "{}",
            show(&out)
        );
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string))
                    .is_some_and(|ppid| ppid == pid.to_string())
            })
        })
        .collect()
}

#[test]
fn pid_and_log_files_in_roots_directories() {
    if !is_root() {
        return;
    }
    // Root-owned 0755 directories standing for /var/log and /run.
    let root = tempfile::tempdir().unwrap();
    let (var_log, run) = (root.path().join("log"), root.path().join("run"));
    for dir in [root.path(), &var_log, &run] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (log, pid_file) = (var_log.join("distccd.log"), run.join("distccd.pid"));
    let whitelist = whitelist_dir(&["gcc"]);
    let port = free_port();
    let mut child = Command::new(OUR_DISTCCD)
        .args(["--daemon", "--no-detach", "--listen", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--allow", "127.0.0.1"])
        .args(["--log-file", log.to_str().unwrap()])
        .args(["--pid-file", pid_file.to_str().unwrap()])
        .args(["--whitelist-dir", whitelist.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t == format!("{pid}\n"))
    }));
    let compiled_ok = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .matches("COMPILE_OK")
            .count()
    };
    assert_eq!(exchange(port, &job("gcc")).map(|r| r.status), Some(0));
    assert!(wait_for(Duration::from_secs(10), || compiled_ok(&log) == 1));
    // As logrotate does: move the log away, then SIGHUP.
    let rotated = var_log.join("distccd.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(pid, nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("reopened"))),
        "no new log at the original path"
    );
    assert_eq!(exchange(port, &job("gcc")).map(|r| r.status), Some(0));
    assert!(
        wait_for(Duration::from_secs(10), || compiled_ok(&log) == 1),
        "the new log did not get the next job"
    );
    assert_eq!(compiled_ok(&rotated), 1);
    // The new log is the daemon's user's, as the first one was made.
    let daemon_uid = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_ne!(daemon_uid, 0);
    assert_eq!(std::fs::metadata(&log).unwrap().uid(), daemon_uid);
    let keepers = children_of(pid);
    assert_eq!(keepers.len(), 1, "one keeper process");
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let status = exited_within(&mut child, 20).expect("the daemon did not stop");
    assert_eq!(status.code(), Some(0));
    assert!(!pid_file.exists(), "the pid file was left behind");
    assert!(
        wait_for(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{}",
            keepers[0]
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", keepers[0]))
                .is_ok_and(|s| s.contains(") Z"))),
        "the keeper outlived the daemon"
    );
}

/// Starts our daemon with the default whitelist directory pointed at a missing one.
fn start_without_whitelist(env: &[(&str, &str)]) -> Daemon {
    let mut all = vec![("_DISTCCD_TEST_DEFAULT_WHITELIST", "/nonexistent/distcc")];
    all.extend_from_slice(env);
    Daemon::start_with_env(OUR_DISTCCD, &["--allow", "127.0.0.1"], &all)
}

#[test]
fn without_a_whitelist_directory_the_compilers_on_path_are_allowed() {
    // Given explicitly, a missing directory is an error.
    let out = output_within(
        Command::new(OUR_DISTCCD)
            .args(["--daemon", "--no-detach", "--allow", "127.0.0.1"])
            .args(["--listen", "127.0.0.1", "--port", &free_port().to_string()])
            .args(["--whitelist-dir", "/nonexistent"]),
        20,
    );
    assert_eq!(out.status.code(), Some(110), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent not found"));
    // The default missing: the compilers on PATH, the first of each name, which runs.
    let tools = tempfile::tempdir().unwrap();
    // Writable by the user the daemon becomes, for the marker.
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = tools.path().join("ran");
    let gcc = tools.path().join("gcc");
    executable(
        &gcc,
        &format!(
            "#!/bin/sh\necho ran >> {}\nexec /usr/bin/gcc \"$@\"\n",
            marker.display()
        ),
    );
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let d = start_without_whitelist(&[("PATH", &path)]);
    let log = d.log_text();
    assert!(
        log.contains("/nonexistent/distcc not found: allowing the compilers on PATH instead:"),
        "{log}"
    );
    assert!(log.contains(&format!(" {} ", gcc.display())), "{log}");
    assert_eq!(exchange(d.port, &job("gcc")).map(|r| r.status), Some(0));
    assert!(marker.exists(), "the gcc found on PATH did not run");
    // Not on PATH: refused.
    assert!(exchange(d.port, &job("x86_64-nothere-gcc")).is_none());
    // DISTCCD_PATH, when set, is the PATH that counts.
    let d = start_without_whitelist(&[("DISTCCD_PATH", tools.path().to_str().unwrap())]);
    let log = d.log_text();
    assert!(
        log.contains(&format!("instead: {}\n", gcc.display())),
        "{log}"
    );
    assert!(exchange(d.port, &job("cc")).is_none());
}

#[test]
fn a_masquerade_directory_on_the_daemons_path_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    // Writable by the user the daemon becomes, for the client's log below.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let masq = dir.path().join("masq");
    // A real masquerade directory, as `distcc --make-symlinks` makes it.
    let out = output_within(
        Command::new(OUR_DISTCC)
            .args(["--make-symlinks", masq.to_str().unwrap()])
            .env("PATH", "/usr/bin:/bin"),
        20,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(std::fs::read_link(masq.join("gcc")).is_ok());
    std::fs::set_permissions(&masq, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Had our client run as the compiler, it would have logged here.
    let client_log = dir.path().join("client.log");
    let path = format!("{}:/usr/bin:/bin", masq.display());
    let whitelist = whitelist_dir(&["gcc"]);
    let d = Daemon::verbose_with(
        whitelist.path(),
        &[
            ("PATH", &path),
            ("DISTCC_LOG", client_log.to_str().unwrap()),
            ("DISTCC_VERBOSE", "1"),
            ("DISTCC_HOSTS", "127.0.0.1:1"),
        ],
    );
    let reply = exchange(d.port, &job("gcc")).expect("a reply");
    assert_eq!(
        reply.status,
        0,
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert_eq!(&reply.output[..4], b"\x7fELF");
    assert!(
        !client_log.exists(),
        "our client ran as the daemon's compiler"
    );
    assert!(
        d.log_text().contains("compiler gcc is /usr/bin/gcc"),
        "{}",
        d.log_text()
    );
    // A masquerade directory alone: the compiler is missing, and the reply says so.
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCCD_PATH", masq.to_str().unwrap())],
    );
    let reply =
        exchange(d.port, &job("gcc")).unwrap_or_else(|| panic!("no reply: {}", d.log_text()));
    assert_eq!(reply.status, 110 << 8);
    let stderr = String::from_utf8_lossy(&reply.stderr);
    assert!(stderr.contains("failed to exec gcc: "), "{stderr}");
    assert!(stderr.contains("skipped links to distcc"), "{stderr}");
    assert!(!client_log.exists());
}

#[test]
fn a_compiler_hidden_by_an_unsearchable_directory_is_not_found() {
    if !is_root() {
        return;
    }
    // Root's own directory, which the daemon cannot search once it has given up root.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = format!("{}:/nonexistent", private.path().display());
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCCD_PATH", &path)],
    );
    let reply = exchange(d.port, &job("gcc")).expect("a reply");
    assert_eq!(reply.status, 110 << 8);
    let stderr = String::from_utf8_lossy(&reply.stderr);
    assert!(stderr.contains("failed to exec gcc: "), "{stderr}");
    assert!(
        stderr.contains(&format!("not found on PATH {path}")),
        "{stderr}"
    );
    assert!(stderr.contains("could not be searched"), "{stderr}");
    assert!(!stderr.contains("Permission denied"), "{stderr}");
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("not found on PATH")));
}

#[test]
fn inetd_gives_up_on_a_request_that_stalls() {
    let mut child = Command::new(OUR_DISTCCD)
        .args(["--inetd", "--log-stderr"])
        .env("DISTCC_IO_TIMEOUT", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = job("gcc");
    // Half the request, then nothing, with the pipe held open.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&request[..request.len() / 2]).unwrap();
    let start = Instant::now();
    let status = exited_within(&mut child, 20);
    let took = start.elapsed();
    drop(stdin);
    let Some(status) = status else {
        let _ = child.kill();
        panic!("distccd --inetd waited for the rest of the request for 20 s");
    };
    // The request was cut short: distcc 3.4's 108 (it would have waited for ever).
    assert_eq!(status.code(), Some(108));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("IO timeout"), "{stderr}");
    assert!(stderr.contains("NOTSOCKET CLI_DISCONN"), "{stderr}");
}

fn stats_page(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    String::from_utf8_lossy(&read_all(&mut s)).to_string()
}

#[test]
fn a_compiler_that_exits_118_did_not_time_out() {
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let e118 = tools.path().join("x86_64-e118-gcc");
    executable(&e118, "#!/bin/sh\necho 'no luck' >&2\nexit 118\n");
    let whitelist = whitelist_dir(&["gcc"]);
    std::os::unix::fs::symlink(&e118, whitelist.path().join("x86_64-e118-gcc")).unwrap();
    let stats_port = free_port().to_string();
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--stats",
            "--stats-port",
            &stats_port,
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
        ],
        &[("DISTCCD_PATH", &path)],
    );
    let reply = exchange(d.port, &job("x86_64-e118-gcc")).expect("a reply");
    assert_eq!(reply.status, 118 << 8);
    assert!(String::from_utf8_lossy(&reply.stderr).contains("no luck"));
    assert!(wait_for(Duration::from_secs(10), || d
        .log_text()
        .contains("COMPILE_ERROR")));
    assert!(
        !d.log_text().contains("COMPILE_TIMEOUT"),
        "{}",
        d.log_text()
    );
    let page = stats_page(stats_port.parse().unwrap());
    assert!(page.contains("dcc_compile_error 1\n"), "{page}");
    assert!(page.contains("dcc_compile_timeout 0\n"), "{page}");
}

#[test]
fn an_unwritable_log_file_says_so_in_distcc_34s_words() {
    let missing = PathBuf::from("/nonexistent/dir/distccd.log");
    // No --allow: the daemon stops right after setting up its log.
    let out = output_within(
        Command::new(OUR_DISTCCD)
            .args(["--daemon", "--no-detach", "--port", "1"])
            .args(["--log-file", missing.to_str().unwrap()]),
        20,
    );
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // distcc 3.4: "(dcc_setup_real_log) ERROR: failed to open PATH: STRERROR".
    assert!(
        stderr.contains(&format!(
            "ERROR: failed to open {}: No such file or directory",
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_bad_environment_value_is_an_error() {
    for (name, value) in [
        ("DISTCC_IO_TIMEOUT", "soon"),
        ("DISTCCD_STOP_GRACE", "-3"),
        ("DISTCC_CMDLIST_NUMWORDS", "two"),
    ] {
        let out = output_within(
            Command::new(OUR_DISTCCD)
                .args(["--daemon", "--no-detach", "--allow", "127.0.0.1"])
                .args(["--listen", "127.0.0.1", "--port", &free_port().to_string()])
                .env(name, value),
            20,
        );
        assert_eq!(out.status.code(), Some(101), "{name}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("Bad {name} value \"{value}\"")),
            "{}",
            show(&out)
        );
    }
}

/// `distccd --inetd` (`program`) with `stdin` (and stdout to /dev/null): its exit status.
fn inetd_status(program: &str, stdin: Stdio) -> Option<i32> {
    let whitelist = whitelist_dir(&["gcc"]);
    let mut cmd = Command::new(program);
    cmd.args(["--inetd", "--log-file", "/dev/null"]);
    if program == OUR_DISTCCD {
        cmd.args(["--whitelist-dir", whitelist.path().to_str().unwrap()]);
    }
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = exited_within(&mut child, 20);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status.and_then(|s| s.code())
}

/// `stdin` for a daemon: a pipe holding `bytes`, then end of file.
fn pipe_of(bytes: &[u8]) -> Stdio {
    let (read, write) = nix::unistd::pipe().unwrap();
    std::fs::File::from(write).write_all(bytes).unwrap();
    Stdio::from(read)
}

/// Serves `request` through `distccd --inetd` (`program`) on a Unix socket pair, as ssh
/// does, without a half-close; returns the reply's compiler status and the exit status.
fn inetd_served(program: &str, request: &[u8]) -> (Option<u32>, Option<i32>) {
    use std::os::unix::net::UnixStream;
    let whitelist = whitelist_dir(&["gcc"]);
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut cmd = Command::new(program);
    cmd.args(["--inetd", "--log-file", "/dev/null"]);
    if program == OUR_DISTCCD {
        cmd.args(["--whitelist-dir", whitelist.path().to_str().unwrap()]);
    }
    let mut child = cmd
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(
            theirs.try_clone().unwrap(),
        )))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The command holds the parent's copies of the socket: closed, so that the daemon's
    // exit ends the reply.
    drop(cmd);
    ours.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    ours.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = ours.read_to_end(&mut answer);
    let status = exited_within(&mut child, 20);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let reply = Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).ok();
    (reply.map(|r| r.status), status.and_then(|s| s.code()))
}

#[test]
fn inetd_exit_status_tells_how_the_job_ended() {
    require_distcc_34();
    let request = job("gcc");
    let broken = request_bytes(
        &["gcc", "-c", "t.c", "-o", "t.o"],
        b"int twice(int x) { return 2 * ; }\n",
        Version::Plain,
    );
    for program in [OUR_DISTCCD, DISTCCD_34] {
        // Nothing at all: the request was cut short, 108.
        assert_eq!(inetd_status(program, Stdio::null()), Some(108), "{program}");
        // Not distcc's protocol: a bad request, 109.
        assert_eq!(
            inetd_status(program, pipe_of(b"XXXX00000001")),
            Some(109),
            "{program}"
        );
        // A job answered is 0, a failed compile included (the client has its status).
        assert_eq!(
            inetd_served(program, &request),
            (Some(0), Some(0)),
            "{program}"
        );
        let (status, code) = inetd_served(program, &broken);
        assert!(status.is_some_and(|s| s != 0), "{program}");
        assert_eq!(code, Some(0), "{program}");
    }
    // A request cut short in the arguments, through a pipe: 108 for both. (distcc 3.4's
    // status depends on where the cut falls: 108 here, 109 just after a token, 107 in the
    // source text, 105 in some argument texts; ours is 108 wherever the request ends.)
    // Inside the length of the third argument.
    let third = request
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"ARGV")
        .nth(2)
        .map(|(at, _)| at)
        .unwrap();
    let cut = third + 8;
    for program in [OUR_DISTCCD, DISTCCD_34] {
        let code = inetd_status(program, pipe_of(&request[..cut]));
        assert_eq!(code, Some(108), "{program}");
    }
}
