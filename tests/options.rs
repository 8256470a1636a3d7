//! Each distccd option, tested by starting a real daemon with it (the options that shape
//! whole behaviours, such as --jobs, --job-lifetime, --user or --pid-file, are tested in
//! tests/daemon.rs).

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use distcc_rs::wire::{Limits, Reply, Version};

fn job() -> Vec<u8> {
    request_bytes(
        &["gcc", "-c", "t.c", "-o", "t.o"],
        b"int twice(int x) { return 2 * x; }\n",
        Version::Plain,
    )
}

fn exchange_with(addr: (&str, u16)) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.write_all(&job()).ok()?;
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).ok()
}

fn compiles(port: u16) -> bool {
    exchange_with(("127.0.0.1", port)).is_some_and(|r| r.status == 0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn log_level_filters_the_log() {
    let d = Daemon::start(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--log-level", "warning"],
    );
    assert!(compiles(d.port));
    // Refusals are warnings and errors; summaries are notices.
    let refused = job_with("sh");
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(&refused).unwrap();
    let _ = read_all(&mut s);
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("refused job")));
    assert!(!d.log_text().contains("COMPILE_OK"), "{}", d.log_text());

    let d = Daemon::start(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1", "--log-level", "loud"],
    );
    assert!(compiles(d.port));
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("COMPILE_OK")));
    assert!(d
        .log_text()
        .contains("unknown --log-level \"loud\" ignored"));
}

#[test]
fn distccd_path_is_where_compilers_are_found() {
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCCD_PATH", "/nonexistent")],
    );
    let reply = exchange_with(("127.0.0.1", d.port)).expect("a reply");
    assert_eq!(reply.status, 110 << 8);
    assert!(String::from_utf8_lossy(&reply.stderr).contains("failed to exec gcc"));
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCCD_PATH", "/usr/bin")],
    );
    assert!(compiles(d.port));
}

/// Plays inetd: accepts one connection and hands it to `distccd --inetd` as stdin/stdout.
/// A job served by `distccd --inetd` on a TCP socket: the reply, and the exit status.
fn inetd_job(args: &[&str]) -> (Option<Reply>, Option<i32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = std::thread::spawn(move || exchange_with(("127.0.0.1", port)));
    let (conn, _) = listener.accept().unwrap();
    let stdin = OwnedFd::from(conn.try_clone().unwrap());
    let stdout = OwnedFd::from(conn);
    let mut daemon = Command::new(OUR_DISTCCD)
        .arg("--inetd")
        .args(args)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let done = wait_for(Duration::from_secs(30), || {
        daemon.try_wait().ok().flatten().is_some()
    });
    if !done {
        let _ = daemon.kill();
    }
    let code = daemon.wait().unwrap().code();
    (client.join().unwrap(), code)
}

#[test]
fn inetd_on_a_socket_checks_the_access_list() {
    let (reply, code) = inetd_job(&["--allow", "127.0.0.1"]);
    assert!(reply.is_some_and(|r| r.status == 0));
    assert_eq!(code, Some(0));
    // Denied: no answer, and distcc 3.4's exit status 113.
    assert_eq!(inetd_job(&["--allow", "127.0.0.2"]), (None, Some(113)));
    // distcc 3.4 serves anyone here when no --allow is given; we do not.
    assert_eq!(inetd_job(&[]), (None, Some(113)));
    let (reply, code) = inetd_job(&["--enable-tcp-insecure"]);
    assert!(reply.is_some_and(|r| r.status == 0));
    assert_eq!(code, Some(0));
}

fn nice_of(pid: u32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Field 19 of stat; the list starts at field 3.
    fields[16].parse().unwrap()
}

#[test]
fn nice_lowers_the_daemons_priority() {
    let mine = nice_of(std::process::id());
    // The niceness is applied just after the pid file, our sign of readiness, is written.
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.1"]);
    let want = (mine + 5).min(19);
    assert!(
        wait_for(Duration::from_secs(10), || nice_of(d.pid()) == want),
        "default --nice is 5: {} instead of {want}",
        nice_of(d.pid())
    );
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.1", "--nice", "2"]);
    let want = (mine + 2).min(19);
    assert!(wait_for(Duration::from_secs(10), || nice_of(d.pid()) == want));
    assert!(compiles(d.port));
}

#[test]
fn allow_private_covers_loopback_of_both_families() {
    let d = Daemon::start(OUR_DISTCCD, &["--allow-private"]);
    assert!(compiles(d.port));
    // The same over IPv6: distcc 3.4 leaves ::1 out of --allow-private.
    let port = free_port();
    let mut v6 = Command::new(OUR_DISTCCD)
        .args([
            "--daemon",
            "--no-detach",
            "--listen",
            "::1",
            "--allow-private",
        ])
        .args(["--port", &port.to_string(), "--log-stderr"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || TcpStream::connect((
        "::1", port
    ))
    .is_ok()));
    let reply = exchange_with(("::1", port));
    let _ = v6.kill();
    let _ = v6.wait();
    assert!(reply.is_some_and(|r| r.status == 0), "::1 was not allowed");
}

#[test]
fn listen_binds_only_the_given_address() {
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.0/8"]);
    assert!(compiles(d.port));
    assert!(TcpStream::connect(("127.0.0.2", d.port)).is_err());
}

#[test]
fn default_jobs_is_cpus_plus_two() {
    let d = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.1", "--verbose"]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    let expected = format!("allowing up to {} active jobs", cpus + 2);
    assert!(
        wait_for(Duration::from_secs(5), || d.log_text().contains(&expected)),
        "{}",
        d.log_text()
    );
}

#[test]
fn help_and_version() {
    let out = output_within(Command::new(OUR_DISTCCD).arg("--help"), 10);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--daemon",
        "--inetd",
        "--no-detach",
        "--port",
        "--listen",
        "--allow",
        "--allow-private",
        "--jobs",
        "--nice",
        "--user",
        "--pid-file",
        "--log-file",
        "--log-level",
        "--log-stderr",
        "--verbose",
        "--job-lifetime",
        "--whitelist-dir",
        "--enable-tcp-insecure",
        "--wizard",
        "--no-fork",
        "--no-fifo",
        "--zeroconf",
        "--auth",
        "--blacklist",
        "--whitelist",
        "--show-principal",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}");
    }
    // The users tried when --user is not given, in the order privileges.rs tries them.
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("default: distcc, else distccd, else nobody"),
        "{help}"
    );
    let out = output_within(Command::new(OUR_DISTCCD).arg("--version"), 10);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

fn job_with(compiler: &str) -> Vec<u8> {
    request_bytes(
        &[compiler, "-c", "t.c", "-o", "t.o"],
        b"int x;\n",
        Version::Plain,
    )
}

/// Whether the daemon ran the compile (a refusal is answered too, with status 113).
fn answered(port: u16, compiler: &str) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&job_with(compiler)).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    !answer.is_empty() && refusal(&answer, Version::Plain).is_none()
}

#[test]
fn distcc_cmdlist_names_exactly_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let list = dir.path().join("cmdlist");
    std::fs::write(&list, "/usr/bin/gcc\n").unwrap();
    std::fs::set_permissions(&list, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCC_CMDLIST", list.to_str().unwrap())],
    );
    assert!(answered(d.port, "gcc"));
    assert!(
        answered(d.port, "/usr/local/bin/gcc"),
        "mapped to the listed /usr/bin/gcc"
    );
    assert!(!answered(d.port, "cc"));
    assert!(wait_for(Duration::from_secs(5), || d
        .log_text()
        .contains("lookup of cc in DISTCC_CMDLIST failed")));
    // A list that cannot be read refuses every job (distcc 3.4 then runs anything).
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCC_CMDLIST", "/nonexistent/cmdlist")],
    );
    assert!(!answered(d.port, "gcc"));
    assert!(d.log_text().contains("cannot be read"));
}

fn fetch_page(port: u16, from: &str) -> String {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(
        &format!("{from}:0")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if sock.connect(&addr.into()).is_err() {
        return String::new();
    }
    let mut s: TcpStream = sock.into();
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    String::from_utf8_lossy(&read_all(&mut s)).to_string()
}

fn keys_values(page: &str, key: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn keys(page: &str) -> Vec<String> {
    page.lines()
        .skip_while(|l| *l != "<distccstats>")
        .skip(1)
        .take_while(|l| *l != "</distccstats>")
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn stats_page_matches_distcc_34() {
    let port = free_port();
    let d = Daemon::start(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--stats",
            "--stats-port",
            &port.to_string(),
        ],
    );
    assert!(compiles(d.port));
    assert!(compiles(d.port));
    assert!(!answered(d.port, "sh"));
    let page = fetch_page(port, "127.0.0.1");
    assert!(page.starts_with("HTTP/1.0 200 OK\n"), "{page}");
    // Besides two compiles and a refusal, the test helper's probe of the port (a client
    // that says nothing) counts as accepted and disconnected once the kernel hands it over.
    let accepted = keys_values(&page, "dcc_tcp_accept");
    assert!((3..=4).contains(&accepted), "{page}");
    for want in [
        "dcc_compile_ok 2\n",
        "dcc_other 1\n",
        "dcc_longest_job t.c\n",
    ] {
        assert!(page.contains(want), "{want:?} not in\n{page}");
    }
    // Same access list as the jobs.
    assert_eq!(fetch_page(port, "127.0.0.2"), "");

    // distcc 3.4's page has the same figures in the same order.
    require_distcc_34();
    let port34 = free_port();
    let _d34 = Daemon::start(
        DISTCCD_34,
        &[
            "--allow",
            "127.0.0.1",
            "--stats",
            "--stats-port",
            &port34.to_string(),
        ],
    );
    assert!(wait_for(Duration::from_secs(10), || !fetch_page(
        port34,
        "127.0.0.1"
    )
    .is_empty()));
    let page34 = fetch_page(port34, "127.0.0.1");
    assert_eq!(keys(&page), keys(&page34), "ours:\n{page}\n3.4:\n{page34}");
    let head = |p: &str| p.lines().take(5).map(String::from).collect::<Vec<_>>();
    assert_eq!(head(&page), head(&page34));
}

fn stdout_of(program: &str, args: &[&str], hosts: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .env("DISTCC_HOSTS", hosts)
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn client_help_version_and_host_listing_have_distcc_34s_shape() {
    require_distcc_34();
    // --version: name, version and target triple, then protocols and port.
    let (ours, theirs) = (
        stdout_of(OUR_DISTCC, &["--version"], ""),
        stdout_of(DISTCC_34, &["--version"], ""),
    );
    let triple = |text: &str| {
        text.lines()
            .next()
            .unwrap()
            .split(' ')
            .nth(2)
            .map(String::from)
    };
    assert_eq!(triple(&ours), triple(&theirs), "{ours}");
    // The protocols line is 3.4's word for word: tools parse it (see version_banner).
    assert_eq!(ours.lines().nth(1), theirs.lines().nth(1));
    // --help: every line of 3.4's after its banner, in order, but for what we lack.
    let lacking = [
        "--scan-includes",
        "remote machine, and exit.  (Pump mode only.)",
        "--show-principal",
        "DISTCC_PRINCIPAL",
        ",cpp,lzo",
        ",auth",
    ];
    let ours = stdout_of(OUR_DISTCC, &["--help"], "");
    let theirs = stdout_of(DISTCC_34, &["--help"], "");
    let mut our_lines = ours.lines();
    for line in theirs.lines().skip_while(|l| *l != "Usage:") {
        if lacking.iter().any(|l| line.contains(l)) {
            continue;
        }
        assert!(
            our_lines.any(|l| l.trim_end() == line.trim_end()),
            "{line:?} is missing or out of order in:\n{ours}"
        );
    }
    // --show-hosts and -j print what 3.4 prints.
    for hosts in [
        "a b/3 c,lzo",
        "--randomize x",
        "localhost/2 @ssh-host u@h:/bin/distccd",
    ] {
        for opt in ["--show-hosts", "-j"] {
            if hosts.starts_with("--randomize") && opt == "--show-hosts" {
                assert_eq!(stdout_of(OUR_DISTCC, &[opt], hosts), "x\n");
                continue;
            }
            assert_eq!(
                stdout_of(OUR_DISTCC, &[opt], hosts),
                stdout_of(DISTCC_34, &[opt], hosts),
                "{opt} with {hosts:?}"
            );
        }
    }
}

/// A daemon started with `extra`, our whitelist and `--allow` given by the caller.
fn ours_with(extra: &[&str]) -> (Daemon, tempfile::TempDir) {
    let whitelist = whitelist_dir(&["gcc"]);
    let dir = whitelist.path().to_str().unwrap().to_string();
    let mut args = vec!["--whitelist-dir", dir.as_str()];
    args.extend_from_slice(extra);
    (Daemon::start(OUR_DISTCCD, &args), whitelist)
}

#[test]
fn options_of_distcc_34s_init_scripts_start_the_daemon() {
    // Accepted and run, as by distcc 3.4. (--zeroconf on a loopback address announces
    // nothing, and says why: no mDNS leaves this machine. tests/zeroconf.rs announces.)
    for opt in ["--no-fork", "--no-fifo", "--zeroconf"] {
        let (d, _w) = ours_with(&["--allow", "127.0.0.1", opt]);
        assert!(compiles(d.port), "{opt}");
        if opt == "--zeroconf" {
            assert!(
                d.log_text()
                    .contains("which no other machine can reach (nothing announced)"),
                "{}",
                d.log_text()
            );
        }
    }
    require_distcc_34();
    for opt in ["--no-fork", "--no-fifo", "--wizard"] {
        let d = Daemon::start(DISTCCD_34, &["--allow", "127.0.0.1", opt]);
        assert!(compiles_from(d.port, "127.0.0.1"), "distcc 3.4 with {opt}");
    }
}

/// Runs a daemon that stops by itself after a second, and returns its output.
fn run_briefly(program: &str, extra: &[&str]) -> std::process::Output {
    let whitelist = whitelist_dir(&["gcc"]);
    let port = free_port().to_string();
    let mut cmd = Command::new(program);
    cmd.args(["--listen", "127.0.0.1", "--port", &port, "--lifetime", "1"])
        .args(["--whitelist-dir", whitelist.path().to_str().unwrap()])
        .args(extra);
    output_within(&mut cmd, 20)
}

#[test]
fn wizard_runs_in_the_foreground_logging_debug_to_stderr() {
    // distcc 3.4's --wizard: --daemon --no-detach --log-stderr at the debug level. The
    // daemon stays in the foreground (the process run is the one that serves, until its
    // --lifetime), and its debug lines reach stderr.
    let out = run_briefly(OUR_DISTCCD, &["--allow", "127.0.0.1", "--wizard"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allowing up to"), "{err}");
    assert!(err.contains("listening on 127.0.0.1"), "{err}");
}

/// GSS-API options as distcc 3.4 takes them (119 without a principal, 101 for both lists),
/// and a list without `--auth` refused where 3.4 ignores it: it would admit everyone.
#[test]
fn gss_api_options_that_cannot_be_honoured_refuse_to_start() {
    for (opts, code, says) in [
        (&["--auth"][..], 119, "DISTCCD_PRINCIPAL"),
        (&["--whitelist=/etc/hosts"][..], 101, "need --auth"),
        (
            &["--auth", "--whitelist=/etc/hosts", "--blacklist=/etc/hosts"][..],
            101,
            "both --whitelist and --blacklist",
        ),
    ] {
        let mut args = vec!["--allow", "127.0.0.1"];
        args.extend_from_slice(opts);
        let out = run_briefly(OUR_DISTCCD, &args);
        assert_eq!(out.status.code(), Some(code), "{opts:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{opts:?}: {err}");
    }
}

#[test]
fn a_fatal_error_is_said_once_on_stderr() {
    // Logging to stderr: the log line is the message. Logging elsewhere: stderr gets it too.
    for extra in [&["--log-stderr"][..], &["--log-file", "/dev/null"][..]] {
        let out = run_briefly(OUR_DISTCCD, extra);
        assert_eq!(out.status.code(), Some(101), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("no --allow option given").count(),
            1,
            "{extra:?}: {err}"
        );
    }
}

/// Whether a job sent from `from` (a loopback address) to `port` is compiled. The request
/// is not followed by a half-close, which distcc 3.4's daemon takes for a disconnection.
fn compiles_from(port: u16, from: &str) -> bool {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if sock.connect(&addr.into()).is_err() {
        return false;
    }
    let mut s: TcpStream = sock.into();
    if s.write_all(&job()).is_err() {
        return false;
    }
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Plain, &Limits::default()).is_ok_and(|r| r.status == 0)
}

#[test]
fn allow_takes_a_host_name() {
    // localhost is 127.0.0.1 (and maybe ::1): 127.0.0.2 is not allowed, but is with /8.
    let (d, _w) = ours_with(&["--allow", "localhost"]);
    assert!(compiles_from(d.port, "127.0.0.1"));
    assert!(!compiles_from(d.port, "127.0.0.2"));
    assert!(d
        .log_text()
        .contains("--allow localhost: allowing 127.0.0.1/32"));
    let (d, _w) = ours_with(&["--allow", "localhost/8"]);
    assert!(compiles_from(d.port, "127.0.0.2"));
    // A name that does not resolve stops the daemon at start, with the name.
    let out = run_briefly(OUR_DISTCCD, &["--allow", "no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-host.invalid"));

    // distcc 3.4 alike.
    require_distcc_34();
    let d = Daemon::start(DISTCCD_34, &["--allow", "localhost"]);
    assert!(compiles_from(d.port, "127.0.0.1"));
    assert!(!compiles_from(d.port, "127.0.0.2"));
    let out = run_briefly(
        DISTCCD_34,
        &["--allow", "no-such-host.invalid", "--no-detach"],
    );
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
}

/// The processes the kernel counts in `/proc/loadavg` (its `R/TOTAL` field's TOTAL).
fn total_processes() -> u64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let field = text.split_whitespace().nth(3).unwrap();
    field.split_once('/').unwrap().1.parse().unwrap()
}

#[test]
fn stats_keys_mean_what_distcc_34s_mean() {
    // distcc 3.4: dcc_max_kids is the job limit (--jobs), dcc_current_load the machine's
    // running processes (the R of /proc/loadavg's R/TOTAL), whatever the daemon is doing.
    require_distcc_34();
    let port = free_port();
    let d = Daemon::ours(&["--stats", "--stats-port", &port.to_string()]);
    assert!(compiles(d.port));
    let port34 = free_port();
    let d34 = Daemon::start(
        DISTCCD_34,
        &[
            "--allow",
            "127.0.0.1",
            "--jobs",
            "4",
            "--stats",
            "--stats-port",
            &port34.to_string(),
        ],
    );
    assert!(compiles_from(d34.port, "127.0.0.1"));
    assert!(wait_for(Duration::from_secs(10), || {
        keys_values(&fetch_page(port34, "127.0.0.1"), "dcc_compile_ok") == 1
    }));
    for (who, page) in [
        ("ours", fetch_page(port, "127.0.0.1")),
        ("3.4", fetch_page(port34, "127.0.0.1")),
    ] {
        assert_eq!(keys_values(&page, "dcc_compile_ok"), 1, "{who}:\n{page}");
        assert_eq!(keys_values(&page, "dcc_max_kids"), 4, "{who}:\n{page}");
        // At least the process that read /proc/loadavg was running; at most all of them.
        let load = keys_values(&page, "dcc_current_load");
        assert!(
            (1..=total_processes() + 50).contains(&load),
            "{who}:\n{page}"
        );
    }
    // Without --jobs, the limit is the default one: CPUs + 2.
    let port = free_port();
    let whitelist = whitelist_dir(&["gcc"]);
    let d = Daemon::start(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
            "--stats",
            "--stats-port",
            &port.to_string(),
        ],
    );
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let page = fetch_page(port, "127.0.0.1");
    assert_eq!(keys_values(&page, "dcc_max_kids"), cpus + 2, "{page}");
    drop(d);
}
