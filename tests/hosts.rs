//! The host list and choosing hosts across processes: the grammar against a table checked
//! with distcc 3.4's own parser, slots shared by concurrent clients, the local slots, and
//! waiting for a slot without spinning.

mod common;

use std::process::Command;

use common::*;
use distcc_rs::farm::hosts::{self, HostsError};

/// What a host list parses to: (hosts, sum of their job limits), or an error at an entry.
#[derive(Debug, PartialEq)]
enum Parsed {
    Hosts(usize, u32),
    BadEntry(usize),
    NoHosts,
}

use Parsed::*;

/// (host list, expected result, whether distcc 3.4 agrees; where it does not, the row says
/// why we differ on purpose)
#[rustfmt::skip]
const TABLE: &[(&str, Parsed, bool)] = &[
    ("localhost", Hosts(1, 2), true),
    ("localhost/3", Hosts(1, 3), true),
    ("localhost/10", Hosts(1, 10), true),
    ("a", Hosts(1, 4), true),
    ("a b c", Hosts(3, 12), true),
    ("a/8 localhost", Hosts(2, 10), true),
    ("a:4000/3,lzo", Hosts(1, 3), true),
    ("a/3:4000,lzo", Hosts(1, 3), true),
    ("a/2/3", Hosts(1, 3), true),
    ("u@b/6:/opt/distccd,lzo", Hosts(1, 6), true),
    ("[::1]:4000/2", Hosts(1, 2), true),
    ("[::1]/3", Hosts(1, 3), true),
    ("[fe80::1]", Hosts(1, 4), true),
    ("localhost:3632", Hosts(1, 4), true),
    ("localhost,lzo", Hosts(1, 4), true),
    ("localhost=3", Hosts(1, 4), true),
    ("x=5", Hosts(1, 4), true),
    ("@b", Hosts(1, 4), true),
    ("@b=3", Hosts(1, 4), true),
    ("@h:distccd", Hosts(1, 4), true),
    ("u@h", Hosts(1, 4), true),
    ("u@h:/usr/bin/distccd", Hosts(1, 4), true),
    ("u@h/2,lzo", Hosts(1, 2), true),
    ("a # comment b\nc", Hosts(2, 8), true),
    ("#only a comment\na", Hosts(1, 4), true),
    ("a#b", Hosts(1, 4), true),
    ("a\tb\tc", Hosts(3, 12), true),
    ("  a  \n\n b  ", Hosts(2, 8), true),
    ("a\r\nb", Hosts(2, 8), true),
    ("--localslots=7 --localslots_cpp=3 a", Hosts(1, 4), true),
    ("--localslots/2 a", Hosts(1, 4), true),
    ("--randomize a b", Hosts(2, 8), true),
    ("10.0.0.1", Hosts(1, 4), true),
    ("10.0.0.1:3632/16", Hosts(1, 16), true),
    ("1.2.3.4:5/6,lzo", Hosts(1, 6), true),
    ("host.example.com:1", Hosts(1, 4), true),
    ("a:65535", Hosts(1, 4), true),
    ("a:3632,lzo", Hosts(1, 4), true),
    ("a,lzo,down b", Hosts(2, 8), true),
    ("a,down", Hosts(1, 4), true),
    ("a,cpp,lzo", Hosts(1, 4), true),
    ("a,lzo,cpp", Hosts(1, 4), true),
    ("a/1 b/1 c/1", Hosts(3, 3), true),
    ("localhost/1 a/2", Hosts(2, 3), true),
    ("a b localhost", Hosts(3, 10), true),
    ("a b/0", BadEntry(2), true),
    ("a/x", BadEntry(1), true),
    ("localhost/0", BadEntry(1), true),
    ("a:3632/0", BadEntry(1), true),
    ("a:x", BadEntry(1), true),
    // distcc 3.4 takes an empty port, port 0 and 99999 (which it truncates to 16 bits,
    // 34463) and then connects there; we name the entry instead.
    ("a: b", BadEntry(1), false),
    ("a:3632=5", BadEntry(1), true),
    ("a,bogus", BadEntry(1), true),
    ("a b,lzo,zz c", BadEntry(2), true),
    ("a,cpp", BadEntry(1), true),
    ("x [::1", BadEntry(2), true),
    ("/4", BadEntry(1), true),
    ("u@", BadEntry(1), true),
    ("a:99999", BadEntry(1), false),
    ("a:0", BadEntry(1), false),
    ("", NoHosts, true),
    ("  # nothing", NoHosts, true),
    ("--localslots=2", NoHosts, true),
        ("a,auth", Hosts(1, 4), true),
    ("a,lzo,auth,cpp", Hosts(1, 4), true),
    ("a:3632/2,auth=build1.example.com", Hosts(1, 2), true),
];

fn ours(text: &str) -> Parsed {
    match hosts::parse(text, "test") {
        Ok(l) => Hosts(l.hosts.len(), l.hosts.iter().map(|h| h.limit).sum()),
        Err(HostsError::BadEntry { position, .. }) => BadEntry(position),
        Err(HostsError::NoHosts { .. }) => NoHosts,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

/// distcc 3.4's view: `Some(jobs)` when it parses the list, `None` when it reports an error.
fn distcc_34(text: &str) -> Option<u32> {
    let out = Command::new(DISTCC_34)
        .arg("-j")
        .env("DISTCC_HOSTS", text)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ERROR") || stderr.contains("CRITICAL") || stderr.contains("Warning") {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn host_list_table() {
    require_distcc_34();
    assert!(TABLE.len() >= 60);
    let mut disagreements = Vec::new();
    for (text, expected, agrees_with_34) in TABLE {
        assert_eq!(&ours(text), expected, "{text:?}");
        let theirs = distcc_34(text);
        let same = match (expected, theirs) {
            (Hosts(_, jobs), Some(j)) => *jobs == j,
            (BadEntry(_) | NoHosts, None) => true,
            _ => false,
        };
        if same != *agrees_with_34 {
            disagreements.push(format!(
                "{text:?}: ours {expected:?}, distcc 3.4 {theirs:?}"
            ));
        }
        // Our client prints the same as the library says.
        let out = Command::new(OUR_DISTCC)
            .arg("-j")
            .env("DISTCC_HOSTS", text)
            .output()
            .unwrap();
        match expected {
            Hosts(_, jobs) => {
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    jobs.to_string()
                )
            }
            _ => assert!(!out.status.success(), "{text:?}: {}", show(&out)),
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The most compiles a daemon ran at once, from its debug log. A compile starts
/// ("compiling:") after the request has arrived and ends ("compiled:") before the answer is
/// sent, and a client gives its slot back only after the answer: so two compiles overlap in
/// the log exactly when two clients used the host at once.
fn most_compiles_at_once(log: &str) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for line in log.lines() {
        if line.contains(") compiling:") {
            now += 1;
            most = most.max(now);
        } else if line.contains(") compiled:") {
            now = now.saturating_sub(1);
        }
    }
    most
}

#[test]
fn make_j12_over_three_one_slot_hosts_never_doubles_up() {
    let project = Project::example();
    let gens = project.add_generated(24);
    let targets: Vec<String> = gens.iter().map(|g| g.replace(".c", ".o")).collect();
    let mut args: Vec<&str> = vec!["-j12"];
    args.extend(targets.iter().map(String::as_str));
    let expected = project.reference_build(&args);

    // Daemons that would take four jobs each: only the clients' slots keep it to one.
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::ours(&["--verbose"])).collect();
    let hosts: Vec<String> = daemons.iter().map(|d| format!("{}/1", d.host())).collect();
    let cc = format!("CC={OUR_DISTCC} gcc");
    args.push(&cc);
    let out = project.make(&args, &[("DISTCC_HOSTS", &hosts.join(" "))]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    wait_for(std::time::Duration::from_secs(10), || {
        daemons.iter().map(Daemon::compiled_ok).sum::<usize>() >= 24
    });
    for d in &daemons {
        let log = d.log_text();
        assert_eq!(most_compiles_at_once(&log), 1, "{log}");
    }
    let total: usize = daemons.iter().map(Daemon::compiled_ok).sum();
    assert_eq!(total, 24, "every file was compiled remotely");
}

/// Waits for `child` and returns its exit code and the CPU time it used.
fn wait_with_cpu(child: std::process::Child) -> (i32, std::time::Duration) {
    let pid = child.id() as libc::pid_t;
    std::mem::forget(child);
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not waited for yet.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    (
        libc::WEXITSTATUS(status),
        tv(usage.ru_utime) + tv(usage.ru_stime),
    )
}

/// Takes the only slot of `d` (listed as `host/1`) in the project's lock directory, as
/// another client would.
fn hold_only_slot(project: &Project, d: &Daemon) -> distcc_rs::farm::lock::Slot {
    let dir = distcc_rs::farm::lock::lock_dir(&project.distcc_dir()).unwrap();
    let key = format!("tcp_127.0.0.1_{}", d.port);
    distcc_rs::farm::lock::SlotSet::open(&dir, &[(key, 1)])
        .unwrap()
        .take()
        .unwrap()
        .1
}

#[test]
fn waiting_for_a_busy_slot_does_not_spin() {
    let project = Project::example();
    let d = Daemon::ours(&[]);
    let held = hold_only_slot(&project, &d);
    let child = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["gcc", "-c", "fib.c"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{}/1", d.host()))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !project.path().join("fib.o").exists(),
        "compiled without the slot"
    );
    drop(held);
    let (code, cpu) = wait_with_cpu(child);
    assert_eq!(code, 0);
    assert_eq!(
        d.wait_compiled(1),
        1,
        "the job went to the host once the slot was free"
    );
    // Polling every few milliseconds for 1.5 s would cost far more.
    println!("client CPU while waiting 1.5 s for a slot and compiling: {cpu:?}");
    assert!(cpu < std::time::Duration::from_millis(150), "{cpu:?}");
}

#[test]
fn preprocesses_while_every_slot_is_busy() {
    // distcc 3.4 takes a host slot, then preprocesses while holding it; we preprocess
    // while we wait for one, so the host does not wait for our preprocessor.
    let project = Project::example();
    project.gcc(&["-O2", "-c", "fib.c", "-o", "local.o"]);
    let d = Daemon::ours(&[]);
    let held = hold_only_slot(&project, &d);
    let child = Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["gcc", "-O2", "-c", "fib.c", "-o", "fib.o"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{}/1", d.host()))
        .env("DISTCC_VERBOSE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    let early = log.find("preprocessing while waiting").expect(&log);
    let picked = log.find("picked").expect(&log);
    assert!(early < picked, "{log}");
    // It was not preprocessed a second time.
    assert_eq!(log.matches("running preprocessor").count(), 1, "{log}");
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
    let read = |name: &str| std::fs::read(project.path().join(name)).unwrap();
    assert!(read("fib.o") == read("local.o"), "objects differ");
}

#[test]
fn local_slots_limit_local_jobs() {
    let project = Project::example();
    let log = project.path().join("log");
    let script = project.path().join("job.sh");
    std::fs::write(
        &script,
        format!(
            "echo start >> {0}; sleep 0.3; echo end >> {0}\n",
            log.display()
        ),
    )
    .unwrap();
    // `sh job.sh` is not a compile: it runs here, under one of --localslots.
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(OUR_DISTCC)
                .current_dir(project.path())
                .args(["sh", "job.sh"])
                .env("DISTCC_DIR", project.distcc_dir())
                .env("DISTCC_HOSTS", "--localslots=1 127.0.0.1:1")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "start\nend\n".repeat(3), "local jobs overlapped");
}

#[test]
fn randomize_shuffles_per_process() {
    let orders: std::collections::BTreeSet<String> = (0..20)
        .map(|_| {
            let out = Command::new(OUR_DISTCC)
                .arg("--show-hosts")
                .env("DISTCC_HOSTS", "--randomize a b c d e")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        })
        .collect();
    assert!(orders.len() > 1, "always {orders:?}");
    let plain = Command::new(OUR_DISTCC)
        .arg("--show-hosts")
        .env("DISTCC_HOSTS", "a b c d e")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "a\nb\nc\nd\ne\n");
}

fn monitor(program: &str, distcc_dir: &std::path::Path) -> String {
    let out = Command::new(program)
        .env("DISTCC_DIR", distcc_dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn monitor_shows_running_jobs_and_distcc_34_reads_them() {
    require_distcc_34();
    let our_monitor = env!("CARGO_BIN_EXE_distccmon-text");
    let project = Project::example();
    // Two files that take the compiler a while.
    for name in ["slow1.c", "slow2.c"] {
        let text = slow_source(6000, &name[..5]);
        std::fs::write(project.path().join(name), text).unwrap();
    }
    let d = Daemon::ours(&[]);
    let clients: Vec<_> = ["slow1.c", "slow2.c"]
        .iter()
        .map(|f| {
            Command::new(OUR_DISTCC)
                .current_dir(project.path())
                .args(["gcc", "-O2", "-c", f])
                .env("DISTCC_DIR", project.distcc_dir())
                .env("DISTCC_HOSTS", format!("{}/2", d.host()))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut seen = String::new();
    let both_compiling = wait_for(std::time::Duration::from_secs(30), || {
        seen = monitor(our_monitor, &project.distcc_dir());
        seen.lines().filter(|l| l.contains(" Compile ")).count() == 2
    });
    assert!(both_compiling, "the monitor showed:\n{seen}");
    // Sorted by host and slot; which job took slot 0 is a race.
    for file in ["slow1.c", "slow2.c"] {
        assert!(
            seen.lines()
                .any(|l| l.contains(file) && l.contains("127.0.0.1[")),
            "{file} missing:\n{seen}"
        );
    }
    // With a delay it lists again and again, each listing ending with an empty line.
    {
        use std::io::BufRead;
        let mut repeating = Command::new(our_monitor)
            .arg("0.2")
            .env("DISTCC_DIR", project.distcc_dir())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = repeating.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut listings = Vec::new();
            let mut current = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.is_empty() {
                    listings.push(std::mem::take(&mut current));
                    if listings.len() == 2 {
                        break;
                    }
                } else {
                    current.push(line);
                }
            }
            listings
        });
        assert!(wait_for(std::time::Duration::from_secs(10), || reader.is_finished()));
        let _ = repeating.kill();
        let _ = repeating.wait();
        let listings = reader.join().unwrap();
        assert_eq!(listings.len(), 2);
        assert!(listings.iter().all(|l| !l.is_empty()), "{listings:?}");
    }
    // distcc 3.4's monitor reads the same files the same way (the phase may move on).
    let theirs = monitor(DISTCCMON_34, &project.distcc_dir());
    let ours_now = monitor(our_monitor, &project.distcc_dir());
    assert!(
        theirs == seen || theirs == ours_now,
        "ours:\n{seen}\n3.4:\n{theirs}"
    );
    for mut c in clients {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(
        monitor(our_monitor, &project.distcc_dir()),
        "\n",
        "state files left behind"
    );
}
