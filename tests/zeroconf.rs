//! Zeroconf: `+zeroconf` in the host list and `distccd --zeroconf`, with distcc 3.4 at the
//! other end both ways.
//!
//! The first test needs no network: another process holds the browser's lock, as a running
//! browser does, and both clients read the host file it keeps. The others run in two network
//! namespaces joined by a veth pair (10.77.x.1 and 10.77.x.2, no other address), each with
//! its own mount and UTS namespace, host name, D-Bus system bus and Avahi daemon (distcc
//! 3.4 publishes and browses through Avahi over D-Bus); they need root, and every process
//! they start is in those namespaces, killed with them.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{output_within, require_distcc_34, show, DISTCC_34, OUR_DISTCC};

/// Holds the zeroconf lock under `dir` from another process (fcntl locks are per process),
/// as a running browser does, until killed.
fn hold_browser_lock(dir: &Path) -> Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\n\
             f=open(sys.argv[1],'r+'); fcntl.lockf(f,fcntl.LOCK_EX)\n\
             print('locked',flush=True); time.sleep(60)",
        ])
        .arg(dir.join("zeroconf/lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    child
}

fn show_hosts(program: &str, dir: &Path, list: &str) -> (String, i32) {
    let out = output_within(
        Command::new(program)
            .arg("--show-hosts")
            .env("DISTCC_DIR", dir)
            .env("DISTCC_HOSTS", list),
        30,
    );
    let code = out.status.code().unwrap_or(-1);
    (String::from_utf8(out.stdout).unwrap(), code)
}

#[test]
fn a_browsers_host_file_is_read_as_3_4_reads_it() {
    require_distcc_34();
    let dir = tempfile::tempdir().unwrap();
    let zc = dir.path().join("zeroconf");
    std::fs::create_dir(&zc).unwrap();
    std::fs::write(zc.join("lock"), "").unwrap();
    let hosts = zc.join("hosts");
    std::fs::write(&hosts, "10.1.1.1:3632/5\n[fd00::5]:4000/2\n").unwrap();
    let mut browser = hold_browser_lock(dir.path());
    // An access time from long ago: the read must mark the file.
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&hosts)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_accessed(old))
        .unwrap();
    for list in ["a +zeroconf b", "+zeroconf", "+zeroconf localhost/3"] {
        let ours = show_hosts(OUR_DISTCC, dir.path(), list);
        assert_eq!(ours, show_hosts(DISTCC_34, dir.path(), list), "{list}");
        assert!(
            ours.0.contains("10.1.1.1:3632/5\n[fd00::5]:4000/2\n"),
            "{ours:?}"
        );
    }
    let read = std::fs::metadata(&hosts).unwrap().accessed().unwrap();
    assert!(
        read > old + Duration::from_secs(3000),
        "the file was not marked read"
    );
    // No daemon found: the other hosts are used; with none, the list is refused.
    std::fs::write(&hosts, "").unwrap();
    assert_eq!(
        show_hosts(OUR_DISTCC, dir.path(), "a +zeroconf b"),
        ("a\nb\n".to_string(), 0)
    );
    let out = output_within(
        Command::new(OUR_DISTCC)
            .arg("--show-hosts")
            .env("DISTCC_DIR", dir.path())
            .env("DISTCC_HOSTS", "+zeroconf"),
        30,
    );
    assert_eq!(out.status.code(), Some(106), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zeroconf/hosts contained no hosts; can't distribute work"),
        "{err}"
    );
    browser.kill().unwrap();
    browser.wait().unwrap();
}
