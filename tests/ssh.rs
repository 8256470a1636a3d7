//! The SSH transport: `user@host` and `@host` entries run `$DISTCC_SSH [-l user] host
//! distccd --inetd` and speak the protocol over its pipes. A stand-in for ssh runs the
//! command on this machine and records how it was called.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::*;

/// A stand-in for ssh: skips ssh's options and the host, runs the command here, and
/// appends its arguments to `log`.
fn fake_ssh(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let log = dir.join("ssh.log");
    let script = dir.join("fake-ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\n\
             while [ $# -gt 0 ]; do case \"$1\" in -l) shift 2;; -*) shift;; *) break;; esac; done\n\
             shift\nexec \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn build_over_ssh(client: &str, daemon: &str, host_options: &str) -> String {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let (ssh, log) = fake_ssh(project.path());
    let hosts = format!("bob@buildbox:{daemon}{host_options}");
    let cc = format!("CC={client} gcc");
    let out = project.make(
        &["-j4", &cc],
        &[
            ("DISTCC_HOSTS", hosts.as_str()),
            ("DISTCC_SSH", ssh.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("locally"), "a job fell back:\n{stderr}");
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("Hello, world"));
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn our_client_and_daemon_over_ssh() {
    for options in ["", ",lzo"] {
        let calls = build_over_ssh(OUR_DISTCC, OUR_DISTCCD, options);
        let expected = format!("-l bob buildbox {OUR_DISTCCD} --inetd --enable-tcp-insecure");
        assert_eq!(calls.lines().count(), 5, "{calls}");
        assert!(calls.lines().all(|l| l == expected), "{calls}");
    }
}

#[test]
fn our_client_with_distccd_34_over_ssh() {
    require_distcc_34();
    for options in ["", ",lzo"] {
        let calls = build_over_ssh(OUR_DISTCC, DISTCCD_34, options);
        assert_eq!(calls.lines().count(), 5, "{calls}");
    }
}

#[test]
fn distcc_34_client_with_our_distccd_over_ssh() {
    require_distcc_34();
    for options in ["", ",lzo"] {
        let calls = build_over_ssh(DISTCC_34, OUR_DISTCCD, options);
        assert_eq!(calls.lines().count(), 5, "{calls}");
    }
}

#[test]
fn ssh_that_fails_backs_the_host_off_and_compiles_locally() {
    let project = Project::example();
    let out = std::process::Command::new(OUR_DISTCC)
        .current_dir(project.path())
        .args(["gcc", "-c", "fib.c"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", "@nowhere")
        .env("DISTCC_SSH", "/nonexistent/ssh -o BatchMode=yes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running locally instead"));
    assert!(project.path().join("fib.o").exists());
    assert!(project
        .distcc_dir()
        .join("lock/backoff_ssh_nowhere_0")
        .exists());
}

/// An sshd of our own on a loopback port, stopped when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for key in ["hostkey", "userkey"] {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f", &p(key)])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    std::fs::copy(p("userkey.pub"), p("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {}\n",
        p("hostkey"),
        p("authorized_keys"),
        p("sshd.pid")
    );
    std::fs::write(p("sshd_config"), config).unwrap();
    let child = std::process::Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", &p("sshd_config")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Sshd { child, port, dir }
}

#[test]
fn over_a_real_sshd_on_loopback() {
    if !nix::unistd::Uid::effective().is_root() || !std::path::Path::new("/usr/sbin/sshd").exists()
    {
        // scripts/test.sh installs openssh-server when it runs as root, as CI does.
        eprintln!("not run: needs root and /usr/sbin/sshd to start an sshd of its own");
        return;
    }
    let sshd = start_sshd();
    let ssh = format!(
        "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o LogLevel=ERROR",
        sshd.port,
        sshd.dir.path().join("userkey").display()
    );
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let hosts = format!("root@127.0.0.1:{OUR_DISTCCD},lzo");
    let cc = format!("CC={OUR_DISTCC} gcc");
    let out = project.make(
        &["-j4", &cc],
        &[
            ("DISTCC_HOSTS", hosts.as_str()),
            ("DISTCC_SSH", ssh.as_str()),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("locally"), "a job fell back:\n{stderr}");
    assert_same_outputs(&expected, &project.outputs());
}

/// distcc 3.4's client closes the pipe once it has read the reply: our daemon's notes
/// after it (its cache, its compiler) go nowhere, and the job is still a success that the
/// daemon's cache keeps.
#[test]
fn distcc_34_client_over_ssh_is_served_from_our_daemons_cache() {
    require_distcc_34();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let (ssh, _) = fake_ssh(project.path());
    let state = tempfile::tempdir().unwrap();
    let (cache, log) = (state.path().join("cache"), state.path().join("distccd.log"));
    let daemon = state.path().join("distccd-cached");
    std::fs::write(
        &daemon,
        format!(
            "#!/bin/sh\nexec {OUR_DISTCCD} \"$@\" --cache-dir {} --log-file {} --verbose\n",
            cache.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&daemon, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hosts = format!("bob@buildbox:{}", daemon.display());
    let cc = format!("CC={DISTCC_34} gcc");
    let env = [
        ("DISTCC_HOSTS", hosts.as_str()),
        ("DISTCC_SSH", ssh.to_str().unwrap()),
    ];
    for _ in 0..2 {
        let _ = project.make(&["clean"], &[]);
        let out = project.make(&["-j4", &cc], &env);
        assert!(out.status.success(), "{}", show(&out));
        assert_same_outputs(&expected, &project.outputs());
    }
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(log.matches("answered from the cache").count(), 5, "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
