//! The daemon's Prometheus metrics (`/metrics` on the `--stats` port): after real jobs
//! through our client (compiled, failed, refused), the page passes `promtool check
//! metrics` (Debian's `prometheus` package) and counts what happened; any other path still
//! gets distcc 3.4's page.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The body of `GET path` on the stats port, with its header block.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let text = String::from_utf8(read_all(&mut s)).unwrap();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_string(), body.to_string()),
        None => (String::new(), text),
    }
}

/// The value of the sample `name` (with its labels, as written) in `metrics`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{metrics}"))
}

#[test]
fn metrics_pass_promtool_and_count_the_jobs() {
    let stats_port = free_port();
    let d = Daemon::ours(&["--stats", "--stats-port", &stats_port.to_string()]);
    let p = Project::example();
    p.gcc(&["-c", "table.c", "-o", "/dev/null"]);
    let run = |args: &[&str]| {
        let out = output_within(
            Command::new(OUR_DISTCC)
                .args(args)
                .current_dir(p.path())
                .env("DISTCC_HOSTS", d.host())
                .env("DISTCC_DIR", p.distcc_dir())
                .env("DISTCC_FALLBACK", "1"),
            60,
        );
        out.status.code()
    };
    // Two compiled, one that fails to compile, one refused (a compiler the daemon does
    // not run; the client then compiles it here).
    assert_eq!(run(&["gcc", "-c", "fib.c", "-o", "fib.o"]), Some(0));
    assert_eq!(run(&["gcc", "-c", "stats.c", "-o", "stats.o"]), Some(0));
    std::fs::write(p.path().join("bad.c"), "int f( { return 0; }\n").unwrap();
    assert_eq!(run(&["gcc", "-c", "bad.c", "-o", "bad.o"]), Some(1));
    let tool = tempfile::tempdir().unwrap();
    let cc = tool.path().join("x86_64-linux-gnu-gcc-unlisted");
    std::os::unix::fs::symlink("/usr/bin/gcc", &cc).unwrap();
    assert_eq!(
        run(&[cc.to_str().unwrap(), "-c", "greet.c", "-o", "greet.o"]),
        Some(0)
    );
    d.wait_compiled(2);
    assert!(wait_for(Duration::from_secs(10), || d
        .log_text()
        .contains("COMPILE_ERROR")));

    let (head, metrics) = get(stats_port, "/metrics");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(sample(&metrics, "distccd_jobs_total{result=\"ok\"}"), 2.0);
    assert_eq!(
        sample(&metrics, "distccd_jobs_total{result=\"compile_error\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "distccd_refusals_total{reason=\"policy\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "distccd_refusals_total{reason=\"busy\"}"),
        0.0
    );
    assert_eq!(
        sample(&metrics, "distccd_compile_duration_seconds_count"),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            "distccd_compile_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        3.0
    );
    assert_eq!(sample(&metrics, "distccd_job_slots"), 4.0);
    assert_eq!(sample(&metrics, "distccd_jobs_running"), 0.0);
    assert_eq!(sample(&metrics, "distccd_jobs_queued"), 0.0);
    assert!(sample(&metrics, "distccd_connections_total") >= 4.0);

    // Prometheus's own check of the format and its naming rules.
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Debian's prometheus (scripts/test.sh does)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}\n{metrics}",
        show(&out)
    );

    // Any other path: distcc 3.4's page (LF line ends, so all of it is the "body"), as
    // 3.4 answers whatever is asked.
    let (_, page) = get(stats_port, "/");
    assert!(page.contains("dcc_compile_ok 2\n"), "{page}");
}
