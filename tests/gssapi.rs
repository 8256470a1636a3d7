//! GSS-API (Kerberos) authentication as distcc 3.4 does it (`,auth` hosts, `distccd
//! --auth`), against a real MIT KDC on loopback with a throwaway realm: builds of the
//! example project through our daemon and 3.4's, from our client and 3.4's, give the local
//! objects; a principal the daemon's list refuses, a client without a ticket, and a client
//! that does not authenticate are each refused, said once, and built here.

mod common;

use std::process::Output;

use common::kdc::Kdc;
use common::*;

fn cc(client: &str) -> String {
    format!("CC={client} gcc")
}

/// A daemon (`program`) with `--auth` and `extra`, its credentials from the KDC.
fn daemon(kdc: &Kdc, program: &str, extra: &[&str]) -> Daemon {
    let env = kdc.daemon_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut args = vec!["--allow", "127.0.0.1", "--jobs", "4", "--auth"];
    if program == OUR_DISTCCD {
        args.push("--verbose");
    }
    args.extend_from_slice(extra);
    Daemon::start_with_env(program, &args, &env)
}

/// A build of `project` by `client` as `user`'s Kerberos identity (`env` for more).
fn build(project: &Project, client: &str, hosts: &str, env: &[(String, String)]) -> Output {
    let _ = project.make(&["clean"], &[]);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.push(("DISTCC_HOSTS", hosts));
    let out = project.make(&["-j4", &cc(client)], &all);
    assert!(out.status.success(), "{}", show(&out));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn authenticated_builds_with_our_daemon_and_34s_from_both_clients() {
    require_distcc_34();
    let kdc = Kdc::start();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let alice = kdc.client_env("alice");
    let ours = daemon(&kdc, OUR_DISTCCD, &[]);
    let theirs = daemon(&kdc, DISTCCD_34, &[]);
    let mut done = 0;
    for d in [&ours, &theirs] {
        let hosts = format!("{},auth", d.host());
        for client in [OUR_DISTCC, DISTCC_34] {
            let out = build(&project, client, &hosts, &alice);
            assert_same_outputs(&expected, &project.outputs());
            assert!(
                !stderr(&out).contains("locally"),
                "{client} on {}: {}",
                d.host(),
                show(&out)
            );
        }
        done += 1;
        assert_eq!(d.wait_compiled(10), 10, "{}", d.log_text());
    }
    assert_eq!(done, 2);
    let log = ours.log_text();
    assert_eq!(
        log.matches("authenticated as alice@DISTCC.TEST").count(),
        10,
        "{log}"
    );
}

#[test]
fn refused_principals_and_clients_without_auth_build_here_and_are_told_once() {
    require_distcc_34();
    let kdc = Kdc::start();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let list = kdc.write_list("whitelist", &["bob"]);
    let ours = daemon(&kdc, OUR_DISTCCD, &["--whitelist", list.to_str().unwrap()]);
    let theirs = daemon(&kdc, DISTCCD_34, &["--whitelist", list.to_str().unwrap()]);
    let alice = kdc.client_env("alice");
    for d in [&ours, &theirs] {
        let hosts = format!("{},auth", d.host());
        // Alice is not on the list: refused, said once.
        let out = build(&project, OUR_DISTCC, &hosts, &alice);
        assert_same_outputs(&expected, &project.outputs());
        assert_eq!(
            stderr(&out).matches("access denied").count(),
            1,
            "{}",
            show(&out)
        );
        // No ticket at all: the same, with the library's reason.
        let out = build(&project, OUR_DISTCC, &hosts, &kdc.no_credentials_env());
        assert_same_outputs(&expected, &project.outputs());
        assert_eq!(
            stderr(&out).matches("not using").count(),
            1,
            "{}",
            show(&out)
        );
        assert_eq!(d.compiled_ok(), 0, "{}", d.log_text());
    }
    // Bob is.
    let out = build(
        &project,
        OUR_DISTCC,
        &format!("{},auth", ours.host()),
        &kdc.client_env("bob"),
    );
    assert!(!stderr(&out).contains("locally"), "{}", show(&out));
    assert_eq!(ours.wait_compiled(5), 5);
    // A client that does not authenticate is told why, and builds here.
    let out = build(&project, OUR_DISTCC, &ours.host(), &alice);
    assert_same_outputs(&expected, &project.outputs());
    let said = stderr(&out);
    assert_eq!(
        said.matches("requires GSS-API authentication").count(),
        1,
        "{said}"
    );
    assert_eq!(ours.compiled_ok(), 5);
}

#[test]
fn the_daemon_needs_its_principal_and_shows_it() {
    let out = std::process::Command::new(OUR_DISTCCD)
        .args([
            "--daemon",
            "--no-detach",
            "--log-stderr",
            "--allow",
            "127.0.0.1",
            "--auth",
        ])
        .env_remove("DISTCCD_PRINCIPAL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(119), "{}", show(&out));
    assert!(stderr(&out).contains("DISTCCD_PRINCIPAL"), "{}", show(&out));
    // A keytab the daemon's user cannot read stops it at start, not at every job.
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        let kdc = Kdc::start();
        let keytab = kdc.server_keytab();
        std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = output_within(
            std::process::Command::new(OUR_DISTCCD)
                .args(["--daemon", "--no-detach", "--log-stderr", "--port", "1"])
                .args(["--allow", "127.0.0.1", "--auth"])
                .envs(kdc.daemon_env()),
            10,
        );
        assert_eq!(out.status.code(), Some(119), "{}", show(&out));
        assert!(
            stderr(&out).contains("as the user distccd runs as"),
            "{}",
            show(&out)
        );
    }
    for program in [OUR_DISTCCD, DISTCCD_34] {
        if program == DISTCCD_34 && !std::path::Path::new(DISTCCD_34).exists() {
            continue;
        }
        let shown = |env: Option<&str>| {
            let mut cmd = std::process::Command::new(program);
            cmd.arg("--show-principal");
            match env {
                Some(p) => cmd.env("DISTCCD_PRINCIPAL", p),
                None => cmd.env_remove("DISTCCD_PRINCIPAL"),
            };
            let out = cmd.output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        assert_eq!(
            shown(None),
            (Some(0), "Principal\t: Not Set\n".into()),
            "{program}"
        );
        assert_eq!(
            shown(Some("host/x")),
            (Some(0), "Principal is\t: host/x\n".into()),
            "{program}"
        );
    }
}

/// One end authenticates and the other does not: each job falls back here, fast, and
/// ours says why; a silent daemon (distcc 3.4's without --auth, which waits for the rest of
/// a request after the `*`) is given up on after a while and backed off, so that the next
/// jobs do not wait too.
#[test]
fn an_end_that_does_not_authenticate_is_told_apart() {
    require_distcc_34();
    let kdc = Kdc::start();
    let project = Project::example();
    let alice = kdc.client_env("alice");
    let compile = |client: &str, hosts: &str| {
        let mut cmd = std::process::Command::new(client);
        cmd.args(["gcc", "-c", "fib.c", "-o", "fib.o"])
            .current_dir(project.path())
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", hosts)
            .envs(alice.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let started = std::time::Instant::now();
        let out = output_within(&mut cmd, 60);
        assert!(out.status.success(), "{}", show(&out));
        (stderr(&out), started.elapsed())
    };
    // Our daemon without --auth says so to our client, and 3.4's client falls back at once.
    let plain = Daemon::ours(&["--verbose"]);
    let (said, took) = compile(OUR_DISTCC, &format!("{},auth", plain.host()));
    assert!(
        said.contains("does not do GSS-API authentication"),
        "{said}"
    );
    assert!(took.as_secs() < 5, "{took:?}");
    let (_, took) = compile(DISTCC_34, &format!("{},auth", plain.host()));
    assert!(took.as_secs() < 5, "{took:?}");
    assert_eq!(plain.compiled_ok(), 0);
    // 3.4's daemon without --auth says nothing: given up on, then backed off.
    let silent = Daemon::distcc_34();
    let hosts = format!("{},auth", silent.host());
    let (said, took) = compile(OUR_DISTCC, &hosts);
    assert!(said.contains("no GSS-API handshake"), "{said}");
    assert!(took.as_secs() < 30, "{took:?}");
    let (_, took) = compile(OUR_DISTCC, &hosts);
    assert!(took.as_secs() < 5, "backed off: {took:?}");
    // A daemon that serves only TLS refuses GSS-API in the clear too.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let made = std::process::Command::new(OUR_DISTCCD)
        .arg("--gen-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let keys = dir.path().join("authorized");
    std::fs::write(&keys, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (k, a) = (key.to_str().unwrap(), keys.to_str().unwrap());
    let only = daemon(
        &kdc,
        OUR_DISTCCD,
        &["--key", k, "--authorized-keys", a, "--tls-only"],
    );
    let (said, _) = compile(OUR_DISTCC, &format!("{},auth", only.host()));
    assert!(said.contains("serves only TLS"), "{said}");
    assert_eq!(only.compiled_ok(), 0);
    // And --auth with a key but no list of keys would let TLS clients in unasked.
    let env = kdc.daemon_env();
    let out = output_within(
        std::process::Command::new(OUR_DISTCCD)
            .args(["--daemon", "--no-detach", "--log-stderr", "--port", "1"])
            .args(["--allow", "127.0.0.1", "--auth", "--key", k])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        10,
    );
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    assert!(
        stderr(&out).contains("needs --authorized-keys"),
        "{}",
        show(&out)
    );
}
