//! The per-job trace (`DISTCC_TRACE`): a `make -j` build of the example project through
//! two of our daemons writes one well-formed line per job, phases in order and without
//! gaps; a job that falls back here says why; `--trace-report` sums it up; and
//! `--trace-chrome` gives JSON (read by Python's own parser) with one event per job and per
//! phase. Many clients at once never mix their lines.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The names a phase may have, in the order they may come (`trace::PHASES`).
const PHASES: [&str; 12] = [
    "start",
    "cache",
    "slot",
    "include",
    "preprocess",
    "connect",
    "send",
    "compile",
    "receive",
    "notes",
    "write",
    "local",
];

/// The trace's lines, each read by Python's JSON parser and printed back as
/// `input|mode|host|exit|why_local|sent|start:end|phase:start:end,...|tried,...|host_cpu_us`.
fn lines_of(trace: &Path) -> Vec<String> {
    let script = r#"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["v"] == 1, r
    phases = ",".join("%s:%d:%d" % (n, a, b) for n, a, b in r["phases"])
    print("%s|%s|%s|%d|%s|%s|%d:%d|%s|%s|%s" % (r["input"], r["mode"], r["host"], r["exit"],
          r["why_local"], r["sent"], r["start"], r["end"], phases, ",".join(r["tried"]),
          r["host_cpu_us"]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Checks one line of `lines_of`: the phases are known names, follow each other without a
/// gap from the record's start to its end, and never go back in time.
fn check_phases(line: &str) -> Vec<String> {
    let fields: Vec<&str> = line.split('|').collect();
    let (start, end) = fields[6].split_once(':').unwrap();
    let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
    let mut at = start;
    let mut names = Vec::new();
    for p in fields[7].split(',') {
        let v: Vec<&str> = p.split(':').collect();
        let (a, b): (u64, u64) = (v[1].parse().unwrap(), v[2].parse().unwrap());
        assert!(PHASES.contains(&v[0]), "unknown phase in {line}");
        assert_eq!(a, at, "a gap before {} in {line}", v[0]);
        assert!(b >= a, "{line}");
        at = b;
        names.push(v[0].to_string());
    }
    assert_eq!(at, end, "{line}");
    names
}

#[test]
fn a_build_writes_one_record_per_job_with_its_phases_and_why_it_ran_here() {
    let project = Project::example();
    let trace = project.path().join("build.trace");
    let (a, b) = (Daemon::ours(&[]), Daemon::ours(&[]));
    let hosts = format!("{}/2 {}/2", a.host(), b.host());
    let cc = format!("CC={OUR_DISTCC} gcc");
    let out = project.make(
        &["-j4", &cc],
        &[
            ("DISTCC_HOSTS", &hosts),
            ("DISTCC_TRACE", trace.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    // A job whose only host is gone compiles here, and says why.
    let closed = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(OUR_DISTCC);
    cmd.current_dir(project.path())
        .args(["gcc", "-c", "fib.c", "-o", "again.o"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", &closed)
        .env("DISTCC_TRACE", &trace)
        .env_remove("DISTCC_VERBOSE");
    let out = output_within(&mut cmd, 60);
    assert!(out.status.success(), "{}", show(&out));

    let lines = lines_of(&trace);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let mut compiled: Vec<&str> = Vec::new();
    for line in &lines {
        let names = check_phases(line);
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[3], "0", "{line}");
        match f[1] {
            "remote" => {
                compiled.push(f[0]);
                assert!([a.host(), b.host()]
                    .iter()
                    .any(|h| f[2].starts_with(h.as_str())));
                // Plain mode, in this order (the text is made while connecting).
                let order: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| {
                        ["slot", "send", "compile", "receive", "notes", "write"].contains(n)
                    })
                    .collect();
                assert_eq!(
                    order,
                    ["slot", "send", "compile", "receive", "notes", "write"],
                    "{line}"
                );
                assert!(f[5].parse::<u64>().unwrap() > 0, "no bytes sent: {line}");
                // Our daemon says what the compile cost there.
                assert!(f[9].parse::<u64>().unwrap() > 0, "no compile CPU: {line}");
            }
            "local" if f[0] == "fib.c" => {
                assert_eq!(f[4], "no host could be reached", "{line}");
                assert_eq!(names.last().map(String::as_str), Some("local"), "{line}");
            }
            // The link, which distcc runs here.
            // The link, which distcc runs here, named by what it makes.
            "local" => {
                assert_eq!(f[0], "hello", "{line}");
                assert_eq!(f[4], "more than one input file", "{line}");
            }
            _ => panic!("{line}"),
        }
    }
    compiled.sort();
    assert_eq!(
        compiled,
        ["fib.c", "greet.c", "main.c", "stats.c", "table.c"]
    );

    let report = Command::new(OUR_DISTCC)
        .args(["--trace-report"])
        .arg(&trace)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{}", show(&report));
    assert!(
        text.contains(
            "jobs: 7 (remote 5, pump 0, from the cache 0, here 2, ended before compiling 0)"
        ),
        "{text}"
    );
    assert!(text.contains("the host compiling"), "{text}");
    assert!(text.contains("critical path:"), "{text}");
    assert!(text.contains("1  no host could be reached"), "{text}");
    // Each daemon's line has its compilers' CPU, as the daemon told it.
    let hosts = [format!("{}/2", a.host()), format!("{}/2", b.host())];
    let cpu: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 8 && hosts.iter().any(|h| h == f[0])).then(|| f[5].parse().unwrap())
        })
        .collect();
    assert!(cpu.len() == 2 && cpu.iter().all(|&c| c > 0.0), "{text}");

    let chrome = Command::new(OUR_DISTCC)
        .args(["--trace-chrome"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(chrome.status.success(), "{}", show(&chrome));
    let json = project.path().join("trace.json");
    std::fs::write(&json, &chrome.stdout).unwrap();
    let check = Command::new("python3")
        .args([
            "-c",
            r#"
import json, sys
t = json.load(open(sys.argv[1]))
ev = t["traceEvents"]
jobs = [e for e in ev if e.get("cat") == "job"]
phases = [e for e in ev if e.get("cat") == "phase"]
hosts = sorted(e["args"]["name"] for e in ev if e["ph"] == "M")
assert all(e["ph"] == "X" and e["dur"] >= 0 and e["ts"] >= 0 for e in jobs + phases)
print(len(jobs), len(phases), len(hosts), sorted(e["name"] for e in jobs if e["name"]))
"#,
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", show(&check));
    let said = String::from_utf8_lossy(&check.stdout);
    let phase_count: usize = lines.iter().map(|l| check_phases(l).len()).sum();
    assert_eq!(
        said.trim(),
        format!("7 {phase_count} 3 ['fib.c', 'fib.c', 'greet.c', 'hello', 'main.c', 'stats.c', 'table.c']")
    );

    let bad = Command::new(OUR_DISTCC)
        .args(["--trace-report", "/nonexistent/trace"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(101), "{}", show(&bad));
}

/// Forty clients at once append to one trace: forty whole lines.
#[test]
fn many_clients_at_once_never_mix_their_lines() {
    let project = Project::example();
    let trace = project.path().join("many.trace");
    let d = Daemon::ours(&[]);
    let mut children = Vec::new();
    for i in 0..40 {
        let child = Command::new(OUR_DISTCC)
            .current_dir(project.path())
            .args(["gcc", "-c", "table.c", "-o", &format!("t{i}.o")])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", format!("{}/4", d.host()))
            .env("DISTCC_TRACE", &trace)
            .env_remove("DISTCC_VERBOSE")
            .spawn()
            .unwrap();
        children.push(child);
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let lines = lines_of(&trace);
    assert_eq!(lines.len(), 40);
    for line in &lines {
        check_phases(line);
        assert!(line.starts_with("table.c|remote|"), "{line}");
    }
}

/// Every other way a job ends is recorded as it happened: in pump mode, from the cache, a
/// preprocessor failure here, a host named `localhost:PORT` (a daemon, not this machine),
/// and a compile that fails on the host and is retried here. A damaged line is skipped by
/// the report, which says so.
#[test]
fn every_way_a_job_ends_is_recorded() {
    let project = Project::example();
    let dir = project.path();
    let trace = dir.join("ways.trace");
    let d = Daemon::ours(&[]);
    let run = |program: &str, args: &[&str], env: &[(&str, String)]| {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .args(args)
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_TRACE", &trace)
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)));
        output_within(&mut cmd, 120)
    };
    let plain = vec![("DISTCC_HOSTS", format!("{}/2", d.host()))];
    // Pump mode.
    let pump = vec![("DISTCC_HOSTS", format!("{}/2,cpp,lzo", d.host()))];
    let out = run(
        env!("CARGO_BIN_EXE_pump"),
        &[OUR_DISTCC, "gcc", "-c", "fib.c", "-o", "p.o"],
        &pump,
    );
    assert!(out.status.success(), "{}", show(&out));
    // The cache: a miss, then a hit.
    let cache = dir.join("cache");
    let mut cached = plain.clone();
    cached.push(("DISTCC_CACHE_DIR", cache.to_string_lossy().into_owned()));
    for _ in 0..2 {
        let out = run(OUR_DISTCC, &["gcc", "-c", "stats.c", "-o", "c.o"], &cached);
        assert!(out.status.success(), "{}", show(&out));
    }
    // The preprocessor fails here.
    std::fs::write(dir.join("nope.c"), "#include \"nope.h\"\n").unwrap();
    let out = run(OUR_DISTCC, &["gcc", "-c", "nope.c"], &plain);
    assert!(!out.status.success());
    // A daemon reached as localhost:PORT.
    let port = d.host().rsplit_once(':').unwrap().1.to_string();
    let named = vec![("DISTCC_HOSTS", format!("localhost:{port}/2"))];
    let out = run(OUR_DISTCC, &["gcc", "-c", "table.c", "-o", "l.o"], &named);
    assert!(out.status.success(), "{}", show(&out));
    // A compile error: on the host, then here.
    std::fs::write(dir.join("bad.c"), "int f(void) { return x; }\n").unwrap();
    let out = run(OUR_DISTCC, &["gcc", "-c", "bad.c"], &plain);
    assert!(!out.status.success());

    let lines = lines_of(&trace);
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('|').collect()).collect();
    let summary: Vec<String> = fields
        .iter()
        .map(|f| format!("{} {} {}", f[0], f[1], f[4]))
        .collect();
    assert_eq!(
        summary,
        [
            "fib.c pump None",
            "stats.c remote None",
            "stats.c cache None",
            "nope.c failed None",
            "table.c remote None",
            "bad.c local the compile failed on the host: retried here",
        ],
        "{lines:#?}"
    );
    let names: Vec<Vec<String>> = lines.iter().map(|l| check_phases(l)).collect();
    let has = |i: usize, p: &str| names[i].iter().any(|n| n == p);
    assert!(has(0, "include"), "{}", lines[0]);
    assert!(has(2, "cache") && fields[2][2].is_empty(), "{}", lines[2]);
    assert!(has(4, "compile") && !has(4, "local"), "{}", lines[4]);
    assert_eq!(fields[5][8], format!("{}/2", d.host()), "{}", lines[5]);
    assert!(has(5, "compile") && has(5, "local"), "{}", lines[5]);

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&trace)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"v\":1,\"pid\":12\n").unwrap();
    let report = Command::new(OUR_DISTCC)
        .arg("--trace-report")
        .arg(&trace)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", show(&report));
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(
            "jobs: 6 (remote 2, pump 1, from the cache 1, here 1, ended before compiling 1); \
             2 failed"
        ),
        "{text}"
    );
    assert!(
        text.contains("(cache)") && text.contains("(nowhere)"),
        "{text}"
    );
    let said = String::from_utf8_lossy(&report.stderr);
    assert!(said.contains("ways.trace:7: "), "{}", show(&report));
}
