//! `lsdistcc` against distcc 3.4's: the same hosts (our daemon on 127.0.0.1, distcc 3.4's
//! on 127.0.0.2, nothing on 127.0.0.3, all on one port) listed by both programs with the
//! same options give the same lines and the same exit code. Only loopback addresses are
//! used, and no name needs DNS: `-m30` ends the pattern at 127.0.0.4.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{free_port, require_distcc_34, whitelist_dir, Daemon, DISTCCD_34, OUR_DISTCCD};

const LSDISTCC_34: &str = "/usr/bin/lsdistcc";

/// Runs `program` with `args`: its output lines (a set: hosts are printed as their probes
/// end) and exit code.
fn run(program: &str, args: &[String]) -> (BTreeSet<String>, i32) {
    let out = common::output_within(Command::new(program).args(args), 30);
    let lines = String::from_utf8(out.stdout).unwrap();
    (
        lines.lines().map(String::from).collect(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn lists_the_same_hosts_as_3_4() {
    require_distcc_34();
    let whitelist = whitelist_dir(&["gcc", "cc"]);
    let allow = ["--allow", "127.0.0.0/8"];
    let (port, _ours, _theirs) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let dir = whitelist.path().to_str().unwrap();
            let ours = ["--whitelist-dir", dir, allow[0], allow[1]];
            let a = Daemon::try_start(OUR_DISTCCD, "127.0.0.1", port, &ours, &[])?;
            let b = Daemon::try_start(DISTCCD_34, "127.0.0.2", port, &allow, &[])?;
            Some((port, a, b))
        })
        .expect("two daemons on one port");
    let ours = env!("CARGO_BIN_EXE_lsdistcc");
    let r = format!("-r{port}");
    let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let case = |opts: &[&str], names: &[&str]| -> Vec<String> {
        std::iter::once(r.clone())
            .chain(opts.iter().map(|s| s.to_string()))
            .chain(names.iter().map(|s| s.to_string()))
            .collect()
    };
    // Each entry names the port, which is not the default.
    let set = |lines: &[&str]| {
        (lines.iter())
            .map(|l| match l.split_once(',') {
                Some((name, rest)) => format!("{name}:{port},{rest}"),
                None => format!("{l}:{port}"),
            })
            .collect::<BTreeSet<_>>()
    };
    let expected = [
        (case(&[], &hosts), set(&["127.0.0.1", "127.0.0.2"]), 0),
        (
            case(&["-x"], &hosts),
            set(&["127.0.0.1", "127.0.0.2", "127.0.0.3,down"]),
            0,
        ),
        (
            case(&["-pgcc", "-x"], &hosts),
            set(&["127.0.0.1", "127.0.0.2", "127.0.0.3,down"]),
            0,
        ),
        (
            case(&["-pgcc", "-P2"], &hosts),
            set(&["127.0.0.1,lzo", "127.0.0.2,lzo"]),
            0,
        ),
        (
            case(&["-pgcc", "-P3", "-x"], &hosts),
            set(&[
                "127.0.0.1,lzo,cpp",
                "127.0.0.2,lzo,cpp",
                "127.0.0.3,lzo,cpp,down",
            ]),
            0,
        ),
        // A compiler neither daemon runs: the test compile fails, so neither is listed.
        (case(&["-pno-such-cc"], &hosts[..2]), set(&[]), 0),
        (case(&["-n"], &["localhost"]), set(&["127.0.0.1"]), 0),
        // -c0: a name that resolves is taken as up without a connection.
        (case(&["-c0"], &["127.0.0.3"]), set(&["127.0.0.3"]), 0),
        // A pattern, ended by the first address outside 127.0.0.0/30.
        (
            case(&["-m30", "-x"], &["127.0.0.%d"]),
            set(&["127.0.0.1", "127.0.0.2", "127.0.0.3,down"]),
            0,
        ),
        // -t0: no time limit at all (3.4's alarm(0)).
        (case(&["-t0"], &hosts[..1]), set(&["127.0.0.1"]), 0),
        // No name resolves (an IPv6 address, where 3.4 looks for IPv4 only): exit 1.
        (case(&[], &["::1"]), set(&[]), 1),
    ];
    for (args, want, code) in expected {
        let theirs = run(LSDISTCC_34, &args);
        assert_eq!(
            theirs,
            (want.clone(), code),
            "distcc 3.4's lsdistcc {args:?}"
        );
        assert_eq!(run(ours, &args), theirs, "lsdistcc {args:?}");
    }

    // Latencies: a number of milliseconds after each name.
    let args = case(&["-l", "-pgcc"], &hosts);
    for program in [ours, LSDISTCC_34] {
        let (lines, code) = run(program, &args);
        assert_eq!(code, 0);
        let names: BTreeSet<String> = lines
            .iter()
            .map(|l| {
                let (name, ms) = l.split_once(' ').expect("a latency");
                assert!(ms.parse::<u64>().is_ok(), "{program}: {l}");
                name.to_string()
            })
            .collect();
        assert_eq!(names, set(&["127.0.0.1", "127.0.0.2"]), "{program}");
    }

    // A bad option: the usage on standard output, exit 1, from both.
    for program in [ours, LSDISTCC_34] {
        let out = common::output_within(Command::new(program).arg("-P9"), 10);
        assert_eq!(out.status.code(), Some(1), "{program}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("-PPROTOCOL"));
    }
}
