//! Interoperability with distcc 3.4 (Debian's `distcc` package): our client against its
//! daemon, and its client against our daemon, in protocols 1 and 2. Each direction builds
//! and links the example program, which must run, with objects identical to a local build.

mod common;

use common::*;

fn build_with(client: &str, daemon: &Daemon, lzo: bool) {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let hosts = format!("{}{}", daemon.host(), if lzo { ",lzo" } else { "" });
    let cc = format!("CC={client} gcc");
    let before = daemon.compiled_ok();
    let out = project.make(&["-j4", &cc], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("locally"),
        "a job fell back to a local compile:\n{stderr}"
    );
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("Hello, world"));
    assert_eq!(
        daemon.wait_compiled(before + 5),
        before + 5,
        "{}",
        daemon.log_text()
    );
}

#[test]
fn our_client_with_distccd_34_protocol_1() {
    let d = Daemon::distcc_34();
    build_with(OUR_DISTCC, &d, false);
}

#[test]
fn our_client_with_distccd_34_protocol_2() {
    let d = Daemon::distcc_34();
    build_with(OUR_DISTCC, &d, true);
}

#[test]
fn distcc_34_client_with_our_distccd_protocol_1() {
    require_distcc_34();
    let d = Daemon::ours(&[]);
    build_with(DISTCC_34, &d, false);
}

#[test]
fn distcc_34_client_with_our_distccd_protocol_2() {
    require_distcc_34();
    let d = Daemon::ours(&[]);
    build_with(DISTCC_34, &d, true);
}

/// What distcc 3.4's client prints and returns for `args` against `daemon`, with pids,
/// ports and temporary paths blanked so that two daemons' runs compare. Each run has a
/// fresh DISTCC_DIR, so no backoff carries over (DISTCC_BACKOFF_PERIOD=0 would make 3.4
/// reconnect for ever).
fn client_34_sees(daemon: &Daemon, args: &[&str]) -> (Option<i32>, String) {
    let project = Project::example();
    let out = std::process::Command::new(DISTCC_34)
        .current_dir(project.path())
        .args(args)
        .env("DISTCC_HOSTS", daemon.host())
        .env("DISTCC_DIR", project.distcc_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let blank = |s: &str| -> String {
        let mut out = String::new();
        let mut digits = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !digits {
                    out.push('N');
                }
                digits = true;
            } else {
                digits = false;
                out.push(c);
            }
        }
        out
    };
    let normal = text
        .lines()
        .map(|l| blank(&l.replace(&project.path().display().to_string(), "DIR")))
        .collect::<Vec<_>>()
        .join("\n");
    (out.status.code(), normal)
}

/// How distcc 3.4's client's words compare between the two daemons.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Words {
    /// The same, line for line.
    Same,
    /// The same fallback and last line; ours also gives the reason (`EMSG`), which 3.4's
    /// client prints as the "error context" of its derailment.
    Explained,
    /// Both reset the connection; whether the client meets it writing or reading is a race.
    Reset,
}

/// distcc 3.4's client meets refusals from both daemons and falls back the same way, with
/// the same exit code and last words.
#[test]
fn distcc_34_client_sees_the_same_refusals_from_both_daemons() {
    require_distcc_34();
    let cases: [(&str, &[&str], &[&str], Words); 3] = [
        // c99 has no entry in /usr/lib/distcc: both daemons read the request; 3.4's closes,
        // ours answers why.
        (
            "refused compiler",
            &[],
            &["c99", "-c", "fib.c", "-o", "fib.o"],
            Words::Explained,
        ),
        // The client's address is not allowed: both daemons reset the connection at once.
        (
            "refused address",
            &["--allow", "127.0.0.2"],
            &["gcc", "-c", "fib.c", "-o", "fib.o"],
            Words::Reset,
        ),
        // A plugin that does not exist: 3.4's client preprocesses with it here, which fails
        // before any daemon is asked, and the local retry fails the same way.
        (
            "plugin option",
            &[],
            &[
                "gcc",
                "-fplugin=/nonexistent/p.so",
                "-c",
                "fib.c",
                "-o",
                "fib.o",
            ],
            Words::Same,
        ),
    ];
    for (what, daemon_args, client_args, words) in cases {
        let mut ours_args = vec!["--allow", "127.0.0.1", "--jobs", "2"];
        let mut theirs_args = ours_args.clone();
        if !daemon_args.is_empty() {
            ours_args = daemon_args.to_vec();
            theirs_args = daemon_args.to_vec();
        }
        let ours = Daemon::start(OUR_DISTCCD, &ours_args);
        let theirs = Daemon::start(DISTCCD_34, &theirs_args);
        let (our_code, our_text) = client_34_sees(&ours, client_args);
        let (their_code, their_text) = client_34_sees(&theirs, client_args);
        assert_eq!(our_code, their_code, "{what}: exit codes differ");
        assert_eq!(
            our_text.lines().last(),
            their_text.lines().last(),
            "{what}: distcc 3.4's client ends otherwise for our daemon"
        );
        let both = [&our_text, &their_text];
        match words {
            Words::Same => assert_eq!(our_text, their_text, "{what}"),
            Words::Explained => {
                for text in both {
                    assert!(text.contains("server provided no answer"), "{what}: {text}");
                }
                assert!(
                    our_text.contains("error context: \"EMSG"),
                    "{what}: {our_text}"
                );
            }
            Words::Reset => {
                for text in both {
                    assert!(text.contains("Connection reset by peer"), "{what}: {text}");
                }
            }
        }
    }
}

/// What 3.4's client sends and our daemon will not run (an option that names another
/// compiler's directory, a command that is no compile for a host) is read whole and
/// answered with the reason, never cut off: the client prints the reason and compiles here.
#[test]
fn distcc_34_client_is_told_why_our_daemon_will_not_run_its_job() {
    require_distcc_34();
    let ours = Daemon::start(OUR_DISTCCD, &["--allow", "127.0.0.1"]);
    for (args, reason) in [
        (
            &["gcc", "-B/usr/bin/", "-c", "fib.c", "-o", "fib.o"][..],
            "-B/usr/bin/",
        ),
        (
            &["gcc", "-mcpu=native", "-c", "fib.c", "-o", "fib.o"][..],
            "-mcpu=native",
        ),
    ] {
        let (code, text) = client_34_sees(&ours, args);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        assert!(text.contains("error context: \"EMSG"), "{args:?}: {text}");
        assert!(text.contains(reason), "{args:?}: {text}");
        assert!(!text.contains("Broken pipe"), "{args:?}: {text}");
    }
}

#[test]
fn malformed_requests_get_the_same_answer_from_both_daemons() {
    use std::io::Write;
    use std::net::{Shutdown, TcpStream};
    require_distcc_34();
    let ours = Daemon::ours(&[]);
    let theirs = Daemon::distcc_34();
    let send = |port: u16, bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(Shutdown::Write);
        read_all(&mut s)
    };
    let cases: [(&str, &[u8]); 6] = [
        ("not distcc", b"GET / HTTP/1.0\r\n\r\n"),
        ("bad hex", b"DIST0000000zARGC00000001"),
        ("unknown version", b"DIST00000009"),
        ("truncated header", b"DIST00000001ARGC000000"),
        ("wrong token", b"DIST00000001ARGV00000003gcc"),
        (
            "missing body",
            b"DIST00000001ARGC00000003ARGV00000003gccARGV00000002-cARGV00000003x.cDOTI00000010int",
        ),
    ];
    for (what, bytes) in cases {
        let (a, b) = (send(ours.port, bytes), send(theirs.port, bytes));
        assert_eq!(a, b, "{what}: the daemons answer differently");
        assert!(a.is_empty(), "{what}: {a:?}");
    }
    // Both still serve.
    let project = Project::example();
    for d in [&ours, &theirs] {
        let out = project.make(
            &["fib.o", &format!("CC={OUR_DISTCC} gcc")],
            &[("DISTCC_HOSTS", &d.host())],
        );
        assert!(out.status.success(), "{}", show(&out));
        let _ = project.make(&["clean"], &[]);
    }
    assert_eq!(ours.wait_compiled(1), 1);
    assert_eq!(theirs.wait_compiled(1), 1);
}
