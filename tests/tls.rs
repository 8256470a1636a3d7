//! TLS between our client and our daemon, with pinned keys: builds of the example project
//! give the local build's objects; a client whose key is not authorised, a host whose key
//! changed, a host that serves only TLS to a classic client, are each refused before any
//! compile, said once, and the build goes on here; the authorised keys are read again on
//! SIGHUP; distcc 3.4's client still uses a daemon that also serves TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Makes a key pair in `path` with `program --gen-key` and returns its fingerprint.
fn gen_key(program: &str, path: &Path) -> String {
    let out = Command::new(program)
        .arg("--gen-key")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("Its fingerprint is "))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"));
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    fingerprint.to_string()
}

/// A daemon's key, and the file of the client keys it admits.
struct Farm {
    dir: tempfile::TempDir,
    key: PathBuf,
    fingerprint: String,
    authorized: PathBuf,
}

impl Farm {
    fn new() -> Farm {
        let dir = tempfile::tempdir().unwrap();
        // The daemon reads its authorised keys again as the user it runs as.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.path().join("distccd_ed25519");
        let fingerprint = gen_key(OUR_DISTCCD, &key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, "").unwrap();
        Farm {
            dir,
            key,
            fingerprint,
            authorized,
        }
    }

    /// Our daemon serving TLS with this key, to the clients listed, plus `extra`.
    fn daemon(&self, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--verbose",
            "--key",
            self.key.to_str().unwrap(),
            "--authorized-keys",
            self.authorized.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Daemon::ours(&args)
    }

    /// Lets the client whose public key is in `public` in (the file is read at start-up
    /// and on SIGHUP).
    fn authorize(&self, public: &Path) {
        let line = std::fs::read_to_string(public).unwrap();
        let mut list = std::fs::read_to_string(&self.authorized).unwrap();
        list.push_str(&line);
        std::fs::write(&self.authorized, list).unwrap();
    }
}

/// A user of the project: makes their key, pins the daemon's key for `daemon`'s host.
fn pin(project: &Project, daemon: &Daemon, fingerprint: &str) {
    let line = format!("{} {fingerprint}\n", daemon.host());
    std::fs::write(project.distcc_dir().join("known_hosts"), line).unwrap();
}

fn user_key(project: &Project) -> PathBuf {
    let key = project.distcc_dir().join("id_ed25519");
    gen_key(OUR_DISTCC, &key);
    project.distcc_dir().join("id_ed25519.pub")
}

fn cc() -> String {
    format!("CC={OUR_DISTCC} gcc")
}

fn build(project: &Project, daemon: &Daemon, env: &[(&str, &str)]) -> Output {
    let _ = project.make(&["clean"], &[]);
    let hosts = daemon.host();
    let mut all = vec![("DISTCC_HOSTS", hosts.as_str())];
    all.extend_from_slice(env);
    let out = project.make(&["-j4", &cc()], &all);
    assert!(out.status.success(), "{}", show(&out));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How many TLS connections the daemon admitted.
fn tls_clients(daemon: &Daemon) -> usize {
    daemon.log_text().matches(": key SHA256:").count()
}

#[test]
fn a_tls_build_gives_the_local_objects() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    farm.authorize(&user_key(&project));
    let daemon = farm.daemon(&[]);
    pin(&project, &daemon, &farm.fingerprint);
    let out = build(&project, &daemon, &[]);
    assert_same_outputs(&expected, &project.outputs());
    assert!(stderr(&out).is_empty(), "{}", show(&out));
    assert_eq!(daemon.wait_compiled(5), 5);
    assert_eq!(tls_clients(&daemon), 5, "{}", daemon.log_text());

    // The same in pump mode, whose requests carry the source and its headers.
    let _ = project.make(&["clean"], &[]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pump"));
    cmd.current_dir(project.path())
        .args(["make", "-j4", &cc()])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{},cpp,lzo", daemon.host()))
        .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    let out = output_within(&mut cmd, 300);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(10), 10);
    assert_eq!(tls_clients(&daemon), 10);
    assert_eq!(daemon.log_text().matches(") compiling in ").count(), 5);
}

#[test]
fn a_client_whose_key_is_not_listed_is_refused_before_any_compile() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    user_key(&project);
    let daemon = farm.daemon(&[]);
    pin(&project, &daemon, &farm.fingerprint);
    let out = build(&project, &daemon, &[]);
    assert_same_outputs(&expected, &project.outputs());
    let said = stderr(&out);
    assert_eq!(
        said.matches("is not authorised on this host").count(),
        1,
        "{said}"
    );
    let log = daemon.log_text();
    // Refused before its request was even read.
    assert!(
        !log.contains("got request") && !log.contains("compiling:"),
        "{log}"
    );
    assert!(log.contains("refused job from"), "{log}");
    assert_eq!(daemon.compiled_ok(), 0);

    // Listed and read again on SIGHUP: the next build goes there.
    farm.authorize(&project.distcc_dir().join("id_ed25519.pub"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(10), || daemon
        .log_text()
        .contains("authorized keys read again")));
    let out = build(&project, &daemon, &[]);
    assert!(stderr(&out).is_empty(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(daemon.wait_compiled(5), 5);
}

#[test]
fn a_host_whose_key_changed_is_refused() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    farm.authorize(&user_key(&project));
    let daemon = farm.daemon(&[]);
    // The pin is of another key.
    let other = gen_key(OUR_DISTCCD, &farm.dir.path().join("other"));
    pin(&project, &daemon, &other);
    let out = build(&project, &daemon, &[]);
    assert_same_outputs(&expected, &project.outputs());
    let said = stderr(&out);
    assert_eq!(said.matches("has changed").count(), 1, "{said}");
    assert!(
        said.contains(&farm.fingerprint) && said.contains(&other),
        "{said}"
    );
    let log = daemon.log_text();
    assert!(
        !log.contains(": key SHA256:") && !log.contains("compiling:"),
        "{log}"
    );
    assert!(log.contains("does not trust this daemon's key"), "{log}");
}

#[test]
fn trust_on_first_use_pins_the_key_and_require_needs_a_pin() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    // The client makes its key itself; the daemon admits any key.
    let daemon = Daemon::ours(&["--verbose", "--key", farm.key.to_str().unwrap()]);
    let known = project.distcc_dir().join("known_hosts");

    // Without a pin, `require` does not even connect.
    let out = build(&project, &daemon, &[("DISTCC_TLS", "require")]);
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(
        stderr(&out).matches("no key is pinned").count(),
        1,
        "{}",
        show(&out)
    );
    let log = daemon.log_text();
    let connections = log
        .lines()
        .filter(|l| l.contains("127.0.0.1:") && !l.contains("listening on"));
    assert_eq!(connections.count(), 0, "{log}");

    let out = build(&project, &daemon, &[("DISTCC_TLS", "tofu")]);
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(
        stderr(&out).matches("on first use").count(),
        1,
        "{}",
        show(&out)
    );
    let pins = std::fs::read_to_string(&known).unwrap();
    assert_eq!(pins, format!("{} {}\n", daemon.host(), farm.fingerprint));
    assert!(project.distcc_dir().join("id_ed25519").exists());
    assert_eq!(daemon.wait_compiled(5), 5);
    assert_eq!(tls_clients(&daemon), 5);

    // Pinned now: the default mode uses TLS with it, and says nothing.
    let out = build(&project, &daemon, &[]);
    assert!(stderr(&out).is_empty(), "{}", show(&out));
    assert_eq!(daemon.wait_compiled(10), 10);
    assert_eq!(tls_clients(&daemon), 10);
}

#[test]
fn a_tls_only_daemon_refuses_classic_clients_and_34_uses_a_daemon_that_also_serves_tls() {
    require_distcc_34();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    let only = farm.daemon(&["--tls-only"]);
    // Our client with no pin: a classic connection, refused with the reason, said once.
    let out = build(&project, &only, &[]);
    assert_same_outputs(&expected, &project.outputs());
    let said = stderr(&out);
    assert_eq!(said.matches("serves only TLS").count(), 1, "{said}");
    assert!(
        !only.log_text().contains("got request"),
        "{}",
        only.log_text()
    );
    // distcc 3.4's client: refused too; it builds here.
    let cc34 = format!("CC={DISTCC_34} gcc");
    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", &cc34], &[("DISTCC_HOSTS", &only.host())]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(only.compiled_ok(), 0, "{}", only.log_text());

    // A daemon with a key but not --tls-only serves 3.4's client as before.
    let both = farm.daemon(&[]);
    let _ = project.make(&["clean"], &[]);
    let out = project.make(&["-j4", &cc34], &[("DISTCC_HOSTS", &both.host())]);
    assert!(out.status.success(), "{}", show(&out));
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(both.wait_compiled(5), 5);
}

#[test]
fn a_pinned_host_that_does_not_serve_tls_is_not_used_in_the_clear() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let farm = Farm::new();
    user_key(&project);
    let plain = Daemon::ours(&["--verbose"]);
    pin(&project, &plain, &farm.fingerprint);
    let out = build(&project, &plain, &[]);
    assert_same_outputs(&expected, &project.outputs());
    assert!(
        stderr(&out).contains("TLS handshake with"),
        "{}",
        show(&out)
    );
    assert_eq!(plain.compiled_ok(), 0);
    assert!(
        plain.log_text().contains("has no key"),
        "{}",
        plain.log_text()
    );
}

/// A known hosts file that cannot be read, or a line of it, never lets a host that it may
/// pin be used in the clear.
#[test]
fn a_damaged_pin_keeps_its_host_from_getting_jobs_in_the_clear() {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let plain = Daemon::ours(&["--verbose"]);
    let known = project.distcc_dir().join("known_hosts");
    for damaged in [
        format!("{} SHA256:cut-short\n", plain.host()),
        format!("other SHA256:x\n{}:port SHA256:y\n", plain.host()),
    ] {
        std::fs::write(&known, damaged).unwrap();
        let out = build(&project, &plain, &[]);
        assert_same_outputs(&expected, &project.outputs());
        assert_eq!(
            stderr(&out).matches("not using").count(),
            1,
            "{}",
            show(&out)
        );
        assert!(stderr(&out).contains("known_hosts:"), "{}", show(&out));
        assert_eq!(plain.compiled_ok(), 0, "{}", plain.log_text());
    }
}

#[test]
fn the_daemon_refuses_options_it_cannot_honour() {
    let farm = Farm::new();
    let start = |args: &[&str]| {
        output_within(
            Command::new(OUR_DISTCCD)
                .args(["--no-detach", "--log-stderr", "--port", "1"])
                .args(args),
            10,
        )
    };
    // A key others can read.
    use std::os::unix::fs::PermissionsExt;
    let exposed = farm.dir.path().join("exposed");
    std::fs::copy(&farm.key, &exposed).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Authorised keys the daemon's user could not read again on SIGHUP (as root, the
    // daemon gives root up; a private directory keeps them from its user).
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden = private.path().join("authorized_keys");
    std::fs::write(&hidden, "").unwrap();
    let as_root = nix::unistd::geteuid().is_root();
    let key = farm.key.to_str().unwrap();
    let unreadable = [
        "--daemon",
        "--allow",
        "127.0.0.1",
        "--key",
        key,
        "--authorized-keys",
        hidden.to_str().unwrap(),
    ];
    if as_root {
        let out = start(&unreadable);
        assert_eq!(out.status.code(), Some(101), "{}", show(&out));
        assert!(
            stderr(&out).contains("which SIGHUP needs"),
            "{}",
            show(&out)
        );
    }
    for (args, says) in [
        (
            vec!["--daemon", "--allow", "127.0.0.1", "--tls-only"],
            "need the daemon's key",
        ),
        (
            vec![
                "--daemon",
                "--allow",
                "127.0.0.1",
                "--key",
                exposed.to_str().unwrap(),
            ],
            "can be read by other users",
        ),
        (
            vec!["--inetd", "--key", farm.key.to_str().unwrap()],
            "standalone daemon only",
        ),
        (
            vec![
                "--daemon",
                "--tls-only",
                "--key",
                farm.key.to_str().unwrap(),
            ],
            "no --allow option given",
        ),
    ] {
        let out = start(&args);
        assert_eq!(out.status.code(), Some(101), "{args:?}: {}", show(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", show(&out));
    }
    // `--gen-key` never writes over a key.
    let out = Command::new(OUR_DISTCCD)
        .arg("--gen-key")
        .arg(&farm.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    assert!(stderr(&out).contains(&farm.fingerprint), "{}", show(&out));
}
