//! `pump` and its include server as real processes: `pump --startup`, requests over the
//! socket built with `wire::header`, a header rewritten between two requests, a computed
//! include, `pump make` on a copy of the example with an unreachable `,cpp` host,
//! `--shutdown` leaving nothing behind, the refusal without a `,cpp` host, and what a
//! compiler says about itself kept for the next server.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use distcc_rs::include::client_root_name_to_real;
use distcc_rs::wire::{header, lzo, read_header, ARGC, ARGV, CDIR};

const PUMP: &str = env!("CARGO_BIN_EXE_pump");
const HOSTS: &str = "127.0.0.1:1,cpp,lzo";

fn pump() -> Command {
    let mut c = Command::new(PUMP);
    c.env_remove("DISTCC_POTENTIAL_HOSTS")
        .env_remove("INCLUDE_SERVER_PORT")
        .env("DISTCC_HOSTS", HOSTS)
        .env(
            "DISTCC_DIR",
            std::env::temp_dir().join("distcc-rs-pump-test-dir"),
        );
    c
}

/// A running server started with `pump --startup`; shut down when dropped.
struct Server {
    vars: Vec<(String, String)>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server started with `env` on top of [`pump`]'s.
    fn start_with(env: &[(&str, &str)]) -> Server {
        let out = pump()
            .arg("--startup")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let vars = text
            .lines()
            .map(|l| {
                let (k, v) = l.strip_prefix("export ").unwrap().split_once('=').unwrap();
                (k.to_string(), v.trim_matches('\'').to_string())
            })
            .collect::<Vec<_>>();
        let names: Vec<_> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "INCLUDE_SERVER_PID",
                "INCLUDE_SERVER_DIR",
                "INCLUDE_SERVER_PORT",
                "DISTCC_HOSTS",
                "PATH"
            ]
        );
        Server { vars }
    }

    fn var(&self, name: &str) -> &str {
        &self.vars.iter().find(|(k, _)| k == name).unwrap().1
    }

    fn ask(&self, cwd: &Path, argv: &str) -> Vec<String> {
        let mut s = UnixStream::connect(self.var("INCLUDE_SERVER_PORT")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let cwd = cwd.to_str().unwrap();
        let argv: Vec<&str> = argv.split_whitespace().collect();
        let mut req = header(CDIR, cwd.len() as u32).to_vec();
        req.extend_from_slice(cwd.as_bytes());
        req.extend_from_slice(&header(ARGC, argv.len() as u32));
        for a in &argv {
            req.extend_from_slice(&header(ARGV, a.len() as u32));
            req.extend_from_slice(a.as_bytes());
        }
        use std::io::{Read, Write};
        s.write_all(&req).unwrap();
        let k = read_header(&mut s, ARGC).unwrap();
        (0..k)
            .map(|_| {
                let len = read_header(&mut s, ARGV).unwrap();
                let mut buf = vec![0; len as usize];
                s.read_exact(&mut buf).unwrap();
                String::from_utf8(buf).unwrap()
            })
            .collect()
    }

    fn shutdown(&mut self) {
        if self.vars.is_empty() {
            return;
        }
        let out = pump()
            .arg("--shutdown")
            .env("INCLUDE_SERVER_PID", self.var("INCLUDE_SERVER_PID"))
            .env("INCLUDE_SERVER_DIR", self.var("INCLUDE_SERVER_DIR"))
            .output()
            .unwrap();
        assert!(out.status.success());
        self.vars.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.vars.is_empty() {
            self.shutdown();
        }
    }
}

fn alive(pid: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    !stat
        .rsplit_once(')')
        .unwrap()
        .1
        .trim_start()
        .starts_with('Z')
}

fn copy_example() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ex = fs::canonicalize(dir.path()).unwrap().join("example");
    fs::create_dir(&ex).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), ex.join(e.file_name())).unwrap();
    }
    (dir, ex)
}

/// The headers `gcc -M` names for `src` in `cwd`, as realpaths, outside /usr.
fn gcc_deps(cwd: &Path, src: &str) -> Vec<String> {
    let out = Command::new("gcc")
        .args(["-M", src])
        .current_dir(cwd)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap().replace("\\\n", " ");
    text.split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .filter(|p| !p.starts_with("/usr/"))
        .map(|p| {
            fs::canonicalize(cwd.join(p))
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn startup_request_fresh_headers_and_shutdown() {
    let (_dir, ex) = copy_example();
    let mut server = Server::start();
    let pid = server.var("INCLUDE_SERVER_PID").to_string();
    let sdir = server.var("INCLUDE_SERVER_DIR").to_string();
    assert!(alive(&pid));

    let reply = server.ask(&ex, "gcc -O2 -Wall -MD -c main.c -o main.o");
    assert!(!reply.is_empty());
    let mut roots = Vec::new();
    for p in &reply {
        let parts: Vec<&str> = p.split('/').collect();
        roots.push(parts[..4].join("/"));
        assert!(parts[3].starts_with("tmp") || parts[3] == "padding", "{p}");
        assert!(fs::symlink_metadata(p).is_ok(), "{p} missing");
        let real = client_root_name_to_real(p).unwrap();
        if p.ends_with(".lzo") {
            let content = lzo::decompress(&fs::read(p).unwrap(), 1 << 24).unwrap();
            assert_eq!(content, fs::read(&real).unwrap(), "{p}");
        }
    }
    roots.dedup();
    assert_eq!(roots.len(), 1, "one root of 3 components: {roots:?}");
    let reals: Vec<String> = reply
        .iter()
        .map(|p| client_root_name_to_real(p).unwrap())
        .collect();
    for dep in gcc_deps(&ex, "main.c") {
        assert!(reals.contains(&dep), "{dep} not shipped: {reals:?}");
    }

    // A header rewritten between two requests is shipped as it is now.
    let greet = ex.join("greet.h");
    let mut text = fs::read_to_string(&greet).unwrap();
    text.push_str("\n/* rewritten */\n");
    fs::write(&greet, &text).unwrap();
    let reply = server.ask(&ex, "gcc -O2 -Wall -MD -c main.c -o main.o");
    let shipped = reply.iter().find(|p| p.ends_with("/greet.h.lzo")).unwrap();
    let content = lzo::decompress(&fs::read(shipped).unwrap(), 1 << 24).unwrap();
    assert_eq!(String::from_utf8(content).unwrap(), text);

    // A computed include is expanded with the macros of that point; one that names an
    // absolute path outside the system dirs is not covered (the host would read its own).
    fs::write(ex.join("computed.c"), "#define H \"fib.h\"\n#include H\n").unwrap();
    let reply = server.ask(&ex, "gcc -c computed.c");
    assert!(reply.iter().any(|p| p.ends_with("/fib.h.lzo")), "{reply:?}");
    fs::write(
        ex.join("absolute.c"),
        format!("#define H \"{}\"\n#include H\n", ex.join("fib.h").display()),
    )
    .unwrap();
    assert!(server.ask(&ex, "gcc -c absolute.c").is_empty());

    let root = roots[0].clone();
    server.shutdown();
    assert!(!alive(&pid), "the server still runs");
    assert!(!Path::new(&sdir).exists(), "{sdir} left behind");
    let before_padding: String = root.split('/').take(4).collect::<Vec<_>>().join("/");
    assert!(
        !Path::new(&before_padding).exists(),
        "{before_padding} left behind"
    );
}

#[test]
fn pump_make_builds_with_an_unreachable_host_and_stops_the_server() {
    let (_dir, ex) = copy_example();
    let distcc = Path::new(PUMP).with_file_name("distcc");
    let out = pump()
        .arg("make")
        .arg("-C")
        .arg(&ex)
        .arg(format!("CC={} gcc", distcc.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ex.join("hello").exists());
    assert!(
        stdout.contains("__________Using distcc-pump from"),
        "{stdout}"
    );
    assert!(stdout.contains("__________Shutting down distcc-pump include server"));
    // Its exit status is the command's, and no server is left behind.
    let out = pump()
        .args(["sh", "-c", "echo PID=$INCLUDE_SERVER_PID; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pid = text.split("PID=").nth(1).unwrap().lines().next().unwrap();
    assert!(!pid.is_empty(), "{text}");
    assert!(!alive(pid), "server {pid} still runs");
}

#[test]
fn pump_refuses_without_a_cpp_host() {
    let out = pump()
        .env("DISTCC_HOSTS", "127.0.0.1:1,lzo")
        .args(["true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not contain any hosts with ',cpp' option"),
        "{err}"
    );
    let out = pump()
        .arg("--startup")
        .env("DISTCC_HOSTS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let out = pump()
        .env("DISTCC_MAX_DISCREPANCY", "0")
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Bad DISTCC_MAX_DISCREPANCY"));
}

/// The second server of a build directory does not run the compiler to learn its
/// directories and macros again: they were kept in `$DISTCC_DIR/pump-compilers`. Both
/// servers write their statistics (DISTCC_INCLUDE_SERVER_STATS).
#[test]
fn compiler_facts_are_kept_for_the_next_server() {
    let (_t, ex) = copy_example();
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let log = work.path().join("gcc.log");
    let gcc = bin.join("gcc");
    fs::write(
        &gcc,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec /usr/bin/gcc \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&gcc, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let distcc_dir = work.path().join("distcc");
    let stats = work.path().join("stats");
    let env = [
        ("PATH", path.as_str()),
        ("DISTCC_DIR", distcc_dir.to_str().unwrap()),
        ("DISTCC_INCLUDE_SERVER_STATS", stats.to_str().unwrap()),
    ];
    for _ in 0..2 {
        let mut server = Server::start_with(&env);
        let reply = server.ask(&ex, "gcc -O2 -Wall -c main.c -o main.o");
        assert!(
            reply.iter().any(|p| p.ends_with("/greet.h.lzo")),
            "{reply:?}"
        );
        server.shutdown();
    }
    let runs = fs::read_to_string(&log).unwrap();
    assert_eq!(
        runs.lines().filter(|l| l.contains("-dM")).count(),
        1,
        "the compiler was asked twice: {runs}"
    );
    assert!(
        fs::read_dir(distcc_dir.join("pump-compilers"))
            .unwrap()
            .count()
            > 0
    );
    let stats = fs::read_to_string(&stats).unwrap();
    let requests: Vec<&str> = stats
        .lines()
        .filter(|l| l.starts_with("request "))
        .collect();
    assert_eq!(requests.len(), 2, "{stats}");
    for r in requests {
        // Each server saw the request once: a new analysis, in its first generation.
        let fields: Vec<&str> = r.splitn(8, ' ').skip(1).collect();
        assert_eq!(fields.len(), 7, "{r}");
        let numbers: Vec<u64> = fields[..4].iter().map(|f| f.parse().unwrap()).collect();
        assert!(numbers[2] > 0 && numbers[3] == 1, "{r}");
        assert_eq!(fields[4..6], ["new", "1"], "{r}");
        assert!(fields[6].ends_with("/main.c"), "{r}");
    }
    assert_eq!(
        stats.lines().filter(|l| l.starts_with("server ")).count(),
        2,
        "{stats}"
    );
}
