//! Load-aware host choice between our client and our daemons, on real daemons: a full
//! daemon turns an asking client away at once and the job goes to another host; a job
//! turned away everywhere waits at one; distcc 3.4's client still waits in the queue; and
//! a host on the board that does not answer the ask (distcc 3.4's daemon) is used as
//! before, without a backoff.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use distcc_rs::wire::Version;

/// Our daemon with one slot, whose whitelist names gcc and the compiler that never ends
/// (`x86_64-hang-gcc`), and whose jobs last at most `lifetime` seconds.
struct OneSlot {
    daemon: Daemon,
    _tools: tempfile::TempDir,
    _whitelist: tempfile::TempDir,
}

impl OneSlot {
    fn start(lifetime: &str) -> OneSlot {
        let (tools, whitelist) = misbehaving_compilers();
        let gcc = "x86_64-linux-gnu-gcc";
        std::os::unix::fs::symlink(format!("/usr/bin/{gcc}"), whitelist.path().join(gcc)).unwrap();
        let path = format!("{}:/usr/bin:/bin", tools.path().display());
        let dir = whitelist.path().to_str().unwrap();
        let daemon = Daemon::start_with_env(
            OUR_DISTCCD,
            &[
                "--allow",
                "127.0.0.1",
                "--jobs",
                "1",
                "--job-lifetime",
                lifetime,
                "--whitelist-dir",
                dir,
            ],
            &[("DISTCCD_PATH", &path), ("DISTCCD_STOP_GRACE", "0")],
        );
        OneSlot {
            daemon,
            _tools: tools,
            _whitelist: whitelist,
        }
    }

    /// Takes the daemon's slot with a compile that runs until its lifetime ends; the
    /// connection returned must stay open meanwhile.
    fn occupy(&self) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.daemon.port)).unwrap();
        let job = request_bytes(
            &["x86_64-hang-gcc", "-c", "h.c", "-o", "h.o"],
            b"int x;\n",
            Version::Plain,
        );
        s.write_all(&job).unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || child_count(self.daemon.pid())
                == 1),
            "the hanging compile did not start"
        );
        s
    }

    fn busy(&self) -> bool {
        child_count(self.daemon.pid()) == 1
    }
}

impl Drop for OneSlot {
    /// Stops the daemon as SIGTERM does, which kills a compile still running (the
    /// hanging one, in a process group of its own, would outlive a killed daemon).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.daemon.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        wait_for(Duration::from_secs(10), || {
            self.daemon.child.try_wait().ok().flatten().is_some()
        });
    }
}

/// Compiles `file` of the example project with our client and `hosts`, writing the trace
/// to `trace`.
fn compile(project: &Project, file: &str, hosts: &str, trace: &Path) -> Output {
    let object = file.replace(".c", ".o");
    output_within(
        Command::new(OUR_DISTCC)
            .current_dir(project.path())
            .args(["gcc", "-c", file, "-o", &object])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", hosts)
            .env("DISTCC_TRACE", trace)
            .env_remove("DISTCC_VERBOSE"),
        60,
    )
}

/// The trace's last record's host and hosts tried.
fn last_record(trace: &Path) -> (String, Vec<String>) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             r = json.loads(open(sys.argv[1]).read().splitlines()[-1])\n\
             print(r['host']); print(' '.join(r['tried']))",
        ])
        .arg(trace)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let host = lines.next().unwrap_or_default().to_string();
    let tried = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (host, tried)
}

fn board(project: &Project) -> String {
    std::fs::read_to_string(project.distcc_dir().join("load")).unwrap_or_default()
}

fn key(d: &Daemon) -> String {
    format!("tcp_127.0.0.1_{}", d.port)
}

/// Makes the board say that `daemons` were idle a moment ago, as it may say of hosts that
/// other clients have filled since.
fn say_idle(project: &Project, daemons: &[&Daemon]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let lines: String = daemons
        .iter()
        .map(|d| format!("{} 2 1 0 0 {now}\n", key(d)))
        .collect();
    std::fs::create_dir_all(project.distcc_dir()).unwrap();
    std::fs::write(project.distcc_dir().join("load"), lines).unwrap();
}

/// Compiles once on each of `daemons`, so that the board knows them.
fn meet(project: &Project, daemons: &[&Daemon], trace: &Path) {
    for d in daemons {
        let out = compile(project, "fib.c", &d.host(), trace);
        assert!(out.status.success(), "{}", show(&out));
        assert!(board(project).contains(&key(d)), "{}", board(project));
    }
}

#[test]
fn a_full_daemon_turns_our_client_away_at_once_and_distcc_34_still_waits_for_it() {
    require_distcc_34();
    let full = OneSlot::start("4");
    let free = Daemon::ours(&[]);
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    meet(&project, &[&full.daemon, &free], &trace);
    let _held = full.occupy();
    // The full host comes first in the list and was idle when last heard from.
    say_idle(&project, &[&full.daemon, &free]);
    let hosts = format!("{} {}", full.daemon.host(), free.host());
    let out = compile(&project, "greet.c", &hosts, &trace);
    assert!(out.status.success(), "{}", show(&out));
    let (host, tried) = last_record(&trace);
    assert_eq!(host, free.host());
    assert_eq!(tried, [full.daemon.host(), free.host()]);
    // Turned away while the full host's compile still ran: it did not wait for it.
    assert!(full.busy());
    // The board now knows the host is full.
    let line = board(&project)
        .lines()
        .find(|l| l.starts_with(&key(&full.daemon)))
        .map(str::to_string)
        .unwrap();
    assert!(line.starts_with(&format!("{} ", key(&full.daemon))));
    let figures: Vec<&str> = line.split(' ').skip(2).take(2).collect();
    assert_eq!(figures, ["1", "1"], "slots and jobs running: {line}");
    // distcc 3.4's client does not ask: it waits in the queue, and is served once the
    // hanging compile's lifetime is over.
    let before = full.daemon.compiled_ok();
    let dir = tempfile::tempdir().unwrap();
    let out = output_within(
        Command::new(DISTCC_34)
            .current_dir(project.path())
            .args(["gcc", "-c", "stats.c", "-o", "stats.o"])
            .env("DISTCC_DIR", dir.path())
            .env("DISTCC_HOSTS", full.daemon.host())
            .env_remove("DISTCC_VERBOSE"),
        60,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(full.daemon.wait_compiled(before + 1), before + 1);
    assert!(full.daemon.log_text().contains("COMPILE_TIMEOUT"));
}

#[test]
fn a_job_turned_away_by_every_host_waits_at_one_of_them() {
    let (a, b) = (OneSlot::start("3"), OneSlot::start("3"));
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    meet(&project, &[&a.daemon, &b.daemon], &trace);
    let _held = (a.occupy(), b.occupy());
    say_idle(&project, &[&a.daemon, &b.daemon]);
    let hosts = format!("{} {}", a.daemon.host(), b.daemon.host());
    let out = compile(&project, "greet.c", &hosts, &trace);
    assert!(out.status.success(), "{}", show(&out));
    let (host, tried) = last_record(&trace);
    // Three refusals, alternating, then a wait at one host, which compiled the job once
    // its hanging compile was over.
    assert_eq!(tried.len(), 4, "{tried:?}");
    assert_ne!(tried[0], tried[1]);
    assert_eq!(tried.last(), Some(&host));
    assert!(host == a.daemon.host() || host == b.daemon.host());
    let compiled = a.daemon.compiled_ok() + b.daemon.compiled_ok();
    assert_eq!(compiled, 3, "two meetings and the job");
}

#[test]
fn a_host_on_the_board_that_does_not_answer_the_ask_is_used_as_distcc_34s() {
    let d = Daemon::distcc_34();
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    // As if our daemon had run there before.
    say_idle(&project, &[&d]);
    let out = compile(&project, "greet.c", &d.host(), &trace);
    assert!(out.status.success(), "{}", show(&out));
    let (host, tried) = last_record(&trace);
    assert_eq!(host, d.host());
    assert_eq!(tried, [d.host(), d.host()]);
    assert_eq!(d.wait_compiled(1), 1);
    // On the board as not ours: not asked again.
    assert!(
        board(&project).contains(&format!("{} 0 0 0 0 ", key(&d))),
        "{}",
        board(&project)
    );
    // No backoff: the next job goes there at once.
    let backoff = project
        .distcc_dir()
        .join("lock")
        .join(format!("backoff_{}_0", key(&d)));
    assert!(!backoff.exists());
    let out = compile(&project, "stats.c", &d.host(), &trace);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(last_record(&trace), (d.host(), vec![d.host()]));
}

#[test]
fn a_one_slot_host_does_not_turn_away_a_job_for_the_one_before_it() {
    // Each job takes the client's one slot for the host as the job before lets it go,
    // and asks while the daemon's worker still closes that job's connection.
    let host = OneSlot::start("60");
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    meet(&project, &[&host.daemon], &trace);
    for made in [&trace, &project.path().join("fib.o")] {
        std::fs::remove_file(made).unwrap();
    }
    let hosts = format!("{}/1", host.daemon.host());
    let cc = format!("CC={OUR_DISTCC} gcc");
    let out = project.make(
        &["-j4", &cc],
        &[
            ("DISTCC_HOSTS", &hosts),
            ("DISTCC_TRACE", trace.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    let compiled = text
        .lines()
        .filter(|l| l.contains("\"mode\":\"remote\""))
        .count();
    assert_eq!(compiled, 5, "{text}");
    let turned_away: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("\"tried\":[\"{hosts}\",")))
        .collect();
    assert!(turned_away.is_empty(), "{turned_away:#?}");
}

#[test]
fn the_board_learns_a_host_without_the_compiler_check() {
    let d = Daemon::ours(&[]);
    let project = Project::example();
    let out = output_within(
        Command::new(OUR_DISTCC)
            .current_dir(project.path())
            .args(["gcc", "-c", "fib.c", "-o", "fib.o"])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", d.host())
            .env("DISTCC_COMPILER_CHECK", "off")
            .env_remove("DISTCC_VERBOSE"),
        60,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(d.wait_compiled(1), 1);
    assert!(board(&project).contains(&key(&d)), "{}", board(&project));
}

#[test]
fn a_host_that_turns_every_job_away_does_not_keep_it() {
    // Not our daemon, which lets a job that asks to wait wait: something that turns
    // every ask away, even that one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let over = done.clone();
    let asks = std::thread::spawn(move || {
        let answer = distcc_rs::wire::Answer {
            admitted: false,
            load: distcc_rs::wire::Load {
                cpus: 2,
                slots: 2,
                running: 2,
                queued: 0,
            },
        }
        .encode();
        let mut asked = 0;
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < until && !over.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut ask = [0u8; 12];
                    if std::io::Read::read_exact(&mut s, &mut ask).is_ok() {
                        asked += 1;
                        let _ = s.write_all(&answer);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        asked
    });
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    let host = format!("127.0.0.1:{port}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    std::fs::create_dir_all(project.distcc_dir()).unwrap();
    std::fs::write(
        project.distcc_dir().join("load"),
        format!("tcp_127.0.0.1_{port} 2 2 0 0 {now}\n"),
    )
    .unwrap();
    let out = compile(&project, "greet.c", &host, &trace);
    // Compiled here, after three refusals and an answer no daemon of ours gives.
    assert!(out.status.success(), "{}", show(&out));
    let (ran, tried) = last_record(&trace);
    assert_eq!(ran, "localhost");
    assert_eq!(tried.len(), 4, "{tried:?}");
    done.store(true, Ordering::SeqCst);
    assert_eq!(asks.join().unwrap(), 4);
}

#[test]
fn a_host_not_heard_from_is_asked_once_whether_it_is_ours() {
    require_distcc_34();
    // Ours, and full: the first job ever sent there learns so, and goes elsewhere.
    let full = OneSlot::start("60");
    let free = Daemon::ours(&[]);
    let theirs = Daemon::distcc_34();
    let project = Project::example();
    let trace = project.path().join("trace.jsonl");
    let _held = full.occupy();
    let hosts = format!("{} {}", full.daemon.host(), free.host());
    let out = compile(&project, "greet.c", &hosts, &trace);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        last_record(&trace),
        (free.host(), vec![full.daemon.host(), free.host()])
    );
    assert!(full.busy());
    // distcc 3.4's daemon is asked once, answers nothing, closes at once, and is used as
    // before; the next job does not ask it again.
    for file in ["fib.c", "stats.c"] {
        let out = compile(&project, file, &theirs.host(), &trace);
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(last_record(&trace), (theirs.host(), vec![theirs.host()]));
    }
    assert_eq!(theirs.wait_compiled(2), 2);
    let asked = theirs.log_text().matches("protocol derailment").count();
    assert_eq!(asked, 1, "{}", theirs.log_text());
    assert!(board(&project).contains(&format!("{} 0 0 0 0 ", key(&theirs))));
}
