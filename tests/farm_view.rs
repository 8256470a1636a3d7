//! Seeing the farm while it builds: two daemons of ours, each compiling a job that waits
//! at a gate the test opens at the end; meanwhile the terminal view (`distccmon-text
//! --hosts`, in a tmux pane) shows both hosts with their jobs (and distcc 3.4's daemon
//! and a port where nothing listens for what they are), and the live page of one
//! daemon, loaded in headless Chromium, shows its job (the rendered DOM is checked, and a
//! screenshot taken). Then the jobs finish and the objects are written.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A compiler that, except when preprocessing, waits (at most 60 s) for `gate` to exist,
/// then runs gcc.
fn gated_compiler(dir: &Path, gate: &Path) {
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" -E \"*) exec gcc \"$@\";; esac\n\
         i=0\nwhile [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n\
         exec gcc \"$@\"\n",
        gate.display()
    );
    let path = dir.join("x86_64-gated-gcc");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A tmux server of this test's own, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux is missing: install Debian's tmux (scripts/test.sh does)")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn the_farm_view_and_the_live_page_show_the_jobs_of_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tools = top.join("tools");
    std::fs::create_dir(&tools).unwrap();
    let gate = top.join("gate");
    gated_compiler(&tools, &gate);
    let whitelist = whitelist_dir(&["gcc"]);
    std::os::unix::fs::symlink(
        tools.join("x86_64-gated-gcc"),
        whitelist.path().join("x86_64-gated-gcc"),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let stats_port = free_port();
    let daemon = |stats: &[&str]| {
        let mut args = vec![
            "--allow",
            "127.0.0.1",
            "--jobs",
            "2",
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
        ];
        args.extend_from_slice(stats);
        Daemon::start_with_env(OUR_DISTCCD, &args, &[("DISTCCD_PATH", &path)])
    };
    let port = stats_port.to_string();
    let (a, b) = (daemon(&["--stats", "--stats-port", &port]), daemon(&[]));

    // One job to each host, from two clients.
    let src = top.join("src");
    std::fs::create_dir(&src).unwrap();
    let client = |name: &str, host: &Daemon| -> Child {
        std::fs::write(
            src.join(format!("{name}.c")),
            format!("int {name}(void) {{ return 1; }}\n"),
        )
        .unwrap();
        Command::new(OUR_DISTCC)
            .args([
                "x86_64-gated-gcc",
                "-c",
                &format!("{name}.c"),
                "-o",
                &format!("{name}.o"),
            ])
            .current_dir(&src)
            .env("PATH", &path)
            .env("DISTCC_HOSTS", host.host())
            .env("DISTCC_DIR", top.join(format!("dd-{name}")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let clients = [client("alpha", &a), client("bravo", &b)];
    let opened = scopeguard(&gate);

    // The terminal view, in a pane 160 columns wide, redrawn every 0.3 s.
    let tmux = Tmux(format!("distcc-rs-test-{}", std::process::id()));
    // Beside them, distcc 3.4's daemon and a port where nothing listens.
    let theirs = Daemon::distcc_34();
    let nobody = format!("127.0.0.1:{}", free_port());
    let hosts = format!("{} {} {} {nobody}", a.host(), b.host(), theirs.host());
    let view = format!(
        "env DISTCC_HOSTS='{hosts}' {} --hosts 0.3",
        env!("CARGO_BIN_EXE_distccmon-text")
    );
    let started = tmux.run(&["new-session", "-d", "-x", "160", "-y", "40", &view]);
    assert!(started.status.success(), "{}", show(&started));
    let mut screen = String::new();
    let shown = wait_for(Duration::from_secs(30), || {
        screen = String::from_utf8_lossy(&tmux.run(&["capture-pane", "-p"]).stdout).into();
        [a.host(), b.host()]
            .iter()
            .all(|h| screen.contains(h.as_str()))
            && screen.contains("alpha.c")
            && screen.contains("bravo.c")
    });
    assert!(
        shown,
        "the view does not show both hosts with their jobs:\n{screen}"
    );
    let line_of = |h: &str| {
        screen
            .lines()
            .find(|l| l.starts_with(h))
            .unwrap_or("")
            .to_string()
    };
    assert!(line_of(&a.host()).contains("1/2 slots busy"), "{screen}");
    assert!(line_of(&b.host()).contains("1/2 slots busy"), "{screen}");
    assert!(
        screen.contains("2 of 4 hosts answering, 2 of 4 slots busy"),
        "{screen}"
    );
    assert!(line_of(&theirs.host()).contains("up, no state"), "{screen}");
    assert!(line_of(&nobody).contains("down"), "{screen}");

    // The live page of the first host, rendered by a browser.
    let url = format!("http://127.0.0.1:{stats_port}/live");
    let shot = top.join("live.png");
    let chromium = |extra: &[&str]| {
        output_within(
            Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    // A container's /dev/shm is often too small for it.
                    "--disable-dev-shm-usage",
                ])
                .args(["--virtual-time-budget=4000", "--window-size=1000,700"])
                .arg(format!(
                    "--user-data-dir={}",
                    top.join("chromium").display()
                ))
                .args(extra)
                .arg(&url),
            60,
        )
    };
    let dom = chromium(&["--dump-dom"]);
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains("alpha.c") && text.contains("1 of 2 slots busy") && !text.contains("bravo.c"),
        "the live page does not show the running job:\n{text}\n{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&[&shot_arg]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    // The gate opens: both jobs finish, on their hosts, and the view lists them as ended.
    drop(opened);
    for mut c in clients {
        let out = c.wait().unwrap();
        assert!(out.success());
    }
    for name in ["alpha", "bravo"] {
        assert!(src.join(format!("{name}.o")).exists());
    }
    assert_eq!((a.wait_compiled(1), b.wait_compiled(1)), (1, 1));
}

/// Opens the gate when dropped, so that a failing test does not leave jobs waiting.
fn scopeguard(gate: &Path) -> impl Drop + '_ {
    struct Gate<'a>(&'a Path);
    impl Drop for Gate<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, "");
        }
    }
    Gate(gate)
}

/// A state ask that reaches the daemon after its door stopped waiting for a first packet
/// (no deferred accept, the ask sent late) is answered by the worker the connection went
/// to, with the state all the same.
#[test]
fn a_late_state_ask_gets_the_state() {
    use std::io::Write;
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &["--allow", "127.0.0.1"],
        &[("DISTCC_TCP_DEFER_ACCEPT", "0")],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&state_ask()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (answer, text) = distcc_rs::wire::read_state(&mut s).expect("the state");
    assert!(answer.admitted);
    let doc = distcc_rs::json::parse(&text).unwrap();
    assert!(
        doc.get("jobs").and_then(|j| j.as_array()).is_some(),
        "{text}"
    );
}

fn state_ask() -> [u8; 12] {
    distcc_rs::wire::load_ask(distcc_rs::wire::Ask::State)
}
