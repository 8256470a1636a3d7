//! `distccmon-text` with a delay of 0 prints once, as distcc 3.4's does, instead of looping
//! without a pause; a positive delay paces the listings; a state directory not made yet is
//! an empty farm, as with 3.4.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const OUR_MONITOR: &str = env!("CARGO_BIN_EXE_distccmon-text");

/// A `DISTCC_DIR` with an empty state directory.
fn distcc_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    dir
}

/// `monitor` with `args`, on an empty state directory, expected to exit by itself.
fn once(monitor: &str, args: &[&str]) -> std::process::Output {
    let dir = distcc_dir();
    let mut cmd = Command::new(monitor);
    cmd.args(args).env("DISTCC_DIR", dir.path());
    output_within(&mut cmd, 10)
}

#[test]
fn delay_zero_prints_once_like_distcc_34() {
    let ours = once(OUR_MONITOR, &["0"]);
    assert!(ours.status.success(), "{}", show(&ours));
    assert_eq!(ours.stdout, b"\n", "{}", show(&ours));
    assert_eq!(ours.stdout, once(OUR_MONITOR, &[]).stdout);
    if std::path::Path::new(DISTCCMON_34).exists() {
        let theirs = once(DISTCCMON_34, &["0"]);
        assert_eq!(ours.stdout, theirs.stdout, "{}", show(&theirs));
        assert_eq!(ours.status.code(), theirs.status.code());
    }
    for bad in ["-1", "abc", "inf"] {
        assert_eq!(once(OUR_MONITOR, &[bad]).status.code(), Some(1), "{bad}");
    }
}

#[test]
fn a_positive_delay_paces_the_listings() {
    let dir = distcc_dir();
    let mut child = Command::new(OUR_MONITOR)
        .arg("0.1")
        .env("DISTCC_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if line.is_err() || tx.send(()).is_err() {
                break;
            }
        }
    });
    // Count the (empty) listings that arrive within one second.
    let end = Instant::now() + Duration::from_secs(1);
    let mut lines = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(()) => lines += 1,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!((3..=15).contains(&lines), "{lines} listings in a second");
}

/// `monitor` once, with `DISTCC_DIR` set to `dir`.
fn once_in(monitor: &str, dir: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(monitor);
    cmd.arg("0").env("DISTCC_DIR", dir);
    output_within(&mut cmd, 10)
}

#[test]
fn a_missing_state_directory_is_an_empty_farm() {
    let mut monitors = vec![OUR_MONITOR];
    if std::path::Path::new(DISTCCMON_34).exists() {
        monitors.push(DISTCCMON_34);
    }
    for monitor in monitors {
        // A DISTCC_DIR no distcc has used yet: the state directory is made, nothing runs.
        let dir = tempfile::tempdir().unwrap();
        let out = once_in(monitor, dir.path());
        assert_eq!(out.status.code(), Some(0), "{monitor}: {}", show(&out));
        assert_eq!(out.stdout, b"\n", "{monitor}: {}", show(&out));
        assert!(out.stderr.is_empty(), "{monitor}: {}", show(&out));
        assert!(dir.path().join("state").is_dir(), "{monitor}");
        // A DISTCC_DIR that is a file is an error, 107, for both.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let out = once_in(monitor, &file);
        assert_eq!(out.status.code(), Some(107), "{monitor}: {}", show(&out));
    }
    // A DISTCC_DIR that does not exist at all: distcc 3.4 fails (its mkdir is not -p);
    // ours makes it, as our client does.
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("new").join(".distcc");
    let out = once_in(OUR_MONITOR, &top);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stdout, b"\n", "{}", show(&out));
    assert!(top.join("state").is_dir());
}
