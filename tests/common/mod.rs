//! Test helpers: real daemons (ours or distcc 3.4's) on ephemeral loopback ports, copies of
//! the example project, and a few `/proc` readings. Every wait is bounded.

#![allow(dead_code)]

pub mod kdc;
pub mod oracle;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const OUR_DISTCC: &str = env!("CARGO_BIN_EXE_distcc");
pub const OUR_DISTCCD: &str = env!("CARGO_BIN_EXE_distccd");
pub const DISTCC_34: &str = "/usr/bin/distcc";
pub const DISTCCD_34: &str = "/usr/bin/distccd";
pub const DISTCCMON_34: &str = "/usr/bin/distccmon-text";

/// Fails with a clear message when distcc 3.4 is not installed: interop tests must not
/// pass silently without it.
pub fn require_distcc_34() {
    for p in [DISTCC_34, DISTCCD_34] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: install Debian's distcc package (scripts/test.sh does it as root)"
        );
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Waits until `cond` holds, for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A running daemon, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    _whitelist: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `program` (our distccd or 3.4's) in the foreground on a fresh loopback port.
    pub fn start(program: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(program, extra, &[])
    }

    /// Like `start`, with extra environment variables for the daemon.
    pub fn start_with_env(program: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        (0..5)
            .find_map(|_| Daemon::try_start(program, "127.0.0.1", free_port(), extra, env))
            .unwrap_or_else(|| panic!("{program} did not start listening"))
    }

    /// Starts `program` on `addr` (a loopback address) and `port`, or `None` when it does
    /// not listen there.
    pub fn try_start(
        program: &str,
        addr: &str,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Daemon> {
        let dir = tempfile::tempdir().expect("tempdir");
        // distcc 3.4's daemon, started as root, drops to its own user before it opens
        // the log file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod log dir");
        let log = dir.path().join("distccd.log");
        let mut cmd = Command::new(program);
        cmd.args(["--daemon", "--no-detach", "--listen", addr])
            .args(["--port", &port.to_string()])
            .args(["--log-file", log.to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if program == DISTCCD_34 {
            cmd.args(["--log-level", "info"]);
        }
        // Ours writes its pid file once it listens: readiness without a connection,
        // which would otherwise count among the daemon's jobs and open descriptors.
        // distcc 3.4 writes its pid file only after giving up root, so it is probed.
        let pid_file = match extra.iter().position(|a| *a == "--pid-file") {
            Some(i) => Some(PathBuf::from(extra[i + 1])),
            None if program == OUR_DISTCCD => {
                let p = dir.path().join("distccd.pid");
                cmd.args(["--pid-file", p.to_str().unwrap()]);
                Some(p)
            }
            None => None,
        };
        let mut child = cmd.spawn().expect("start distccd");
        let up = wait_for(Duration::from_secs(10), || {
            let ready = match &pid_file {
                Some(p) => std::fs::read_to_string(p).is_ok_and(|t| t.ends_with('\n')),
                None => TcpStream::connect((addr, port)).is_ok(),
            };
            ready || child.try_wait().ok().flatten().is_some()
        });
        if up && child.try_wait().ok().flatten().is_none() {
            return Some(Daemon {
                child,
                port,
                log,
                _dir: dir,
                _whitelist: None,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Our daemon, with a whitelist directory of its own that names the usual compilers.
    pub fn ours(extra: &[&str]) -> Daemon {
        let whitelist = whitelist_dir(USUAL_COMPILERS);
        let dir = whitelist.path().to_str().unwrap().to_string();
        let mut args = vec![
            "--allow",
            "127.0.0.1",
            "--jobs",
            "4",
            "--whitelist-dir",
            &dir,
        ];
        args.extend_from_slice(extra);
        let mut d = Daemon::start(OUR_DISTCCD, &args);
        d._whitelist = Some(whitelist);
        d
    }

    /// Our daemon logging at debug level, running the compilers `whitelist` names, with
    /// `env` on top of this environment.
    pub fn verbose_with(whitelist: &Path, env: &[(&str, &str)]) -> Daemon {
        let dir = whitelist.to_str().expect("a UTF-8 whitelist path");
        let args = ["--allow", "127.0.0.1", "--verbose", "--whitelist-dir", dir];
        Daemon::start_with_env(OUR_DISTCCD, &args, env)
    }

    pub fn distcc_34() -> Daemon {
        require_distcc_34();
        Daemon::start(DISTCCD_34, &["--allow", "127.0.0.1", "--jobs", "4"])
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many jobs this daemon has logged as compiled successfully.
    pub fn compiled_ok(&self) -> usize {
        self.log_text().matches("COMPILE_OK").count()
    }

    /// Waits (bounded) until the daemon has logged `n` successful jobs, and returns the
    /// count then: the summary line is written just after the reply is sent.
    pub fn wait_compiled(&self, n: usize) -> usize {
        wait_for(Duration::from_secs(10), || self.compiled_ok() >= n);
        self.compiled_ok()
    }

    /// Waits (bounded) until the daemon runs its `workers` worker threads, its door and
    /// its main thread: its pid file, our sign of readiness, is written just before they
    /// start.
    pub fn wait_for_workers(&self, workers: usize) {
        let pid = self.pid();
        assert!(
            wait_for(Duration::from_secs(10), || thread_count(pid) == workers + 2),
            "the daemon has {} threads, not {}",
            thread_count(pid),
            workers + 2
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // distcc 3.4's daemon leads a process group of preforked children, which outlive
        // a killed master; end the whole group. (Ours leads none: this finds nothing.)
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command that is expected to exit by itself, killing it if it has not after
/// `secs` seconds, so that a regression fails the test instead of hanging it.
pub fn output_within(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if !wait_for(Duration::from_secs(secs), || {
        child.try_wait().ok().flatten().is_some()
    }) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("wait")
}

/// The bytes of a request for `argv` (compiler first) with `doti` as the preprocessed
/// source.
pub fn request_bytes(argv: &[&str], doti: &[u8], version: distcc_rs::wire::Version) -> Vec<u8> {
    let req = distcc_rs::wire::Request {
        version,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        doti: doti.to_vec(),
    };
    let mut bytes = Vec::new();
    req.write(&mut bytes).expect("encode a request");
    bytes
}

/// C source that takes gcc -O2 a while: `n` chained functions named `<prefix>N`.
pub fn slow_source(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "int {prefix}{i}(int x) {{ return x * {i} + {prefix}{}(x - 1); }}\n",
                i.max(1) - 1
            )
        })
        .collect()
}

/// A directory of links named after `compilers` (each in /usr/bin), as
/// update-distcc-symlinks makes them.
/// The compilers [`Daemon::ours`] runs: the tests' gcc and clang by every name our client
/// sends them under.
pub const USUAL_COMPILERS: &[&str] = &[
    "cc",
    "c++",
    "gcc",
    "g++",
    "x86_64-linux-gnu-gcc",
    "x86_64-linux-gnu-g++",
    "x86_64-linux-gnu-gcc-12",
    "clang",
    "clang++",
];

pub fn whitelist_dir(compilers: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for c in compilers {
        std::os::unix::fs::symlink(format!("/usr/bin/{c}"), dir.path().join(c)).unwrap();
    }
    dir
}

/// Compilers that misbehave, for daemons: `x86_64-hang-gcc` never finishes and
/// `x86_64-crash-gcc` dies of SIGSEGV. Returns the directory holding them (put it first in
/// the daemon's `DISTCCD_PATH`) and a whitelist naming them and `gcc`.
pub fn misbehaving_compilers() -> (tempfile::TempDir, tempfile::TempDir) {
    let tools = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, body) in [
        ("x86_64-hang-gcc", "#!/bin/sh\nexec sleep 600\n"),
        ("x86_64-crash-gcc", "#!/bin/sh\nkill -SEGV $$\n"),
    ] {
        let p = tools.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let whitelist = whitelist_dir(&["gcc"]);
    for name in ["x86_64-hang-gcc", "x86_64-crash-gcc"] {
        std::os::unix::fs::symlink(tools.path().join(name), whitelist.path().join(name)).unwrap();
    }
    (tools, whitelist)
}

/// A private copy of the example project, with its own `DISTCC_DIR`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn example() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
        for entry in std::fs::read_dir(&src).expect("example dir") {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".c") || name.ends_with(".h") || name == "Makefile" {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        // distcc 3.4's client silently stops distributing when DISTCC_DIR does not exist.
        std::fs::create_dir(dir.path().join(".distcc")).expect("create DISTCC_DIR");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs gcc here with `args`, as a local build would, and expects it to succeed.
    pub fn gcc(&self, args: &[&str]) {
        let status = Command::new("gcc")
            .current_dir(self.path())
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "gcc {args:?} failed");
    }

    /// Adds `n` generated C files (`gen0.c` ...) that take a little while to compile.
    pub fn add_generated(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let name = format!("gen{i}.c");
                let mut text = String::from("#include <stdio.h>\n#include <string.h>\n");
                for f in 0..40 {
                    text.push_str(&format!(
                        "int gen{i}_f{f}(int x) {{ char b[64]; snprintf(b, sizeof b, \"%d\", x * {f}); \
                         return (int)strlen(b) + x % {m}; }}\n",
                        m = f + 3
                    ));
                }
                std::fs::write(self.path().join(&name), text).unwrap();
                name
            })
            .collect()
    }

    pub fn distcc_dir(&self) -> PathBuf {
        self.path().join(".distcc")
    }

    /// Runs `make` in the project with the given environment.
    pub fn make(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("make");
        cmd.current_dir(self.path())
            .args(args)
            .env("DISTCC_DIR", self.distcc_dir())
            .env_remove("DISTCC_HOSTS")
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run make")
    }

    /// Every `.o` and `.d` file of the project, by name.
    pub fn outputs(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".o") || n.ends_with(".d"))
            .map(|n| {
                let data = std::fs::read(self.path().join(&n)).unwrap();
                (n, data)
            })
            .collect();
        v.sort();
        v
    }

    /// Builds locally with `make`, keeps the outputs, and cleans up for the next build;
    /// then waits until the sources are old enough for a compile cache to trust them
    /// (changed more than a timestamp tick before a compile starts), so that what the
    /// next build caches does not depend on how fast this machine is.
    pub fn reference_build(&self, make_args: &[&str]) -> Vec<(String, Vec<u8>)> {
        let out = self.make(make_args, &[]);
        assert!(out.status.success(), "local build failed: {}", show(&out));
        let outputs = self.outputs();
        let out = self.make(&["clean"], &[]);
        assert!(out.status.success());
        self.settle();
        outputs
    }

    /// Waits until every file of the project last changed more than 150 ms ago.
    pub fn settle(&self) {
        use std::os::unix::fs::MetadataExt;
        let newest = std::fs::read_dir(self.path())
            .expect("project dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| {
                m.mtime().max(m.ctime()) as f64 + m.mtime_nsec().max(m.ctime_nsec()) as f64 * 1e-9
            })
            .fold(0.0, f64::max);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let wait = (newest + 0.15 - now).clamp(0.0, 1.0);
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

/// Asserts that two sets of build outputs are byte-identical.
pub fn assert_same_outputs(expected: &[(String, Vec<u8>)], actual: &[(String, Vec<u8>)]) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(expected), names(actual), "different sets of outputs");
    for ((name, a), (_, b)) in expected.iter().zip(actual) {
        assert!(a == b, "{name} differs from the local build's");
    }
}

pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the program a build made and returns what it printed.
pub fn run_program(path: &Path) -> String {
    let out = Command::new(path).output().expect("run built program");
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Open file descriptors of a process.
/// What jobs left in a daemon's `TMPDIR`: every entry but the daemon's memos of what its
/// compilers are and do (`distccd-probe-UID`, kept across jobs on purpose).
pub fn job_leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with("distccd-probe-"))
                .collect()
        })
        .unwrap_or_default()
}

pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of a process.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Child processes of a process (zombies included).
pub fn child_count(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the parenthesised command name: state, ppid, ...
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string))
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .count()
}

/// Reads everything a stream sends until it closes (bounded by its read timeout).
pub fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut v = Vec::new();
    let _ = stream.read_to_end(&mut v);
    v
}

/// What a daemon said when it refused a job: the text of our daemon's `EMSG` answer;
/// `None` for any other answer, or none.
pub fn refusal(answer: &[u8], version: distcc_rs::wire::Version) -> Option<String> {
    match distcc_rs::wire::Reply::read(&mut &answer[..], version, &Default::default()) {
        Err(distcc_rs::wire::ProtocolError::Refused(why)) => Some(why),
        _ => None,
    }
}
