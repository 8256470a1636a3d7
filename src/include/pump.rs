//! `pump`, a drop-in for distcc 3.4's `pump` script (`pump.in`): it starts the include
//! server on `$TMPDIR/distcc-pump.XXXXXX/socket`, runs a build with `INCLUDE_SERVER_PORT`
//! set and the distcc directory first on `PATH`, then stops the server and reports the
//! discrepancies counted by the clients. `pump --startup` and `pump --shutdown` split the
//! two halves, with the variables printed as shell `export` lines. The server is this
//! process forked (no Python), named `pump --serve`; it tells the starting `pump` that it
//! listens by writing a newline to a pipe. `pump --serve SOCKET` runs one by itself (the
//! descriptor of that pipe, if any, in `DISTCC_RS_PUMP_READY_FD`).

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "Usage:
    pump COMMAND [ARG...]
or
    pump --startup
    pump --shutdown

Description:
  Pump, also known as distcc-pump, accelerates remote compilation with
  distcc by also distributing preprocessing to the servers.

  The simplest usage is the form \"pump COMMAND [ARG...]\".
  This will start an include server for distcc-pump; set some environment
  variables; change PATH to use the distcc-pump \"distcc\" client; execute
  COMMAND with the specified ARG(s); and then shutdown the include server.
  The COMMAND is typically a parallel build command, such as
  \"make -j80\", that will do many concurrent invocations of distcc.

  An alternative way of invoking pump is to explicitly invoke \"pump --startup\"
  to start the include server and \"pump --shutdown\" to stop the include server.
  The \"pump --startup\" command will start up the include server, and will print
  out some environment variable settings.  These environment variables are used
  to communicate between the distcc-pump \"distcc\" client and the include
  server, and to communicate between \"pump --startup\" and \"pump --shutdown\".
  The caller of \"pump --startup\" is responsible for setting those environment
  variables before invoking \"distcc\" or \"pump --shutdown\".  For example:

      eval `pump --startup`
      make -j80
      pump --shutdown

  This include server (distcc-rs) re-reads and re-sends a source file that
  changes during the build, so files generated or rewritten while it runs are
  sent as they are when each compilation starts.

Environment variables (all optional):

  DISTCC_LOCATION        The directory of the distcc client to use; by default
                         the directory of this program.

  DISTCC_POTENTIAL_HOSTS The distcc servers that will be queried by lsdistcc
                         in order to produce a value for DISTCC_HOSTS.
                         This value may be unset or null. In such
                         cases, use DISTCC_HOSTS.

  DISTCC_HOSTS           This variable is passed through to distcc but only if
                         DISTCC_POTENTIAL_HOSTS is not set.

  LSDISTCC_ARGS          Extra arguments to lsdistcc.

  INCLUDE_SERVER_ARGS    Extra arguments to the include server. distcc 3.4's
                         options are accepted and ignored.

  DISTCC_MAX_DISCREPANCY The number of pump-mode failures before distcc
                         demotes the rest of the build to plain mode (1 or
                         more; default 1).

Example:
  pump make
";

/// The include server's options of distcc 3.4 that take a value in the next argument.
const IGNORED_WITH_VALUE: &[&str] = &[
    "-d",
    "--debug_pattern",
    "-e",
    "--email",
    "-s",
    "-t",
    "-w",
    "-x",
];

/// The name of the include server a `pump` forks (its `comm`; its command line is the
/// pump's).
const SERVER_NAME: &std::ffi::CStr = c"pump --serve";

/// The state of one `pump` run.
struct Pump {
    program: String,
    location: PathBuf,
    verbose: bool,
    redirect_io: bool,
    max_discrepancies: u64,
    socket_dir: Option<PathBuf>,
    server_pid: Option<i32>,
    /// Whether the server is this process's child (started here, not by `--startup`).
    child: bool,
}

/// Runs `pump` with `args` (without the program name); returns the exit code.
pub fn main(program: &str, args: &[OsString]) -> i32 {
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    if first == "--serve" {
        return serve_main(args.get(1));
    }
    if args.is_empty() || first == "-h" || first == "--help" {
        print!("{USAGE}");
        return 0;
    }
    let mut max_discrepancies = 1;
    if let Some(v) = std::env::var_os("DISTCC_MAX_DISCREPANCY").filter(|v| !v.is_empty()) {
        match v.to_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(n) if n > 0 => max_discrepancies = n as u64,
            _ => {
                eprintln!(
                    "{program}: Bad DISTCC_MAX_DISCREPANCY value: \"{}\". Needs to be 1 or greater.",
                    v.to_string_lossy()
                );
                return 1;
            }
        }
    }
    check_server_args();
    let location = match std::env::var_os("DISTCC_LOCATION").filter(|v| !v.is_empty()) {
        Some(l) => PathBuf::from(l),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    if !is_executable(&location.join("distcc")) {
        eprintln!(
            "{program}: error: can't find distcc (looked in {})",
            location.display()
        );
        return 1;
    }
    let mut pump = Pump {
        program: program.to_string(),
        location,
        verbose: true,
        redirect_io: false,
        max_discrepancies,
        socket_dir: None,
        server_pid: None,
        child: false,
    };
    let joined: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    match joined.join(" ").as_str() {
        "--startup" => {
            pump.verbose = false;
            pump.redirect_io = true;
            match pump.start_server_and_hosts() {
                Ok(()) => {
                    pump.dump_environment();
                    0
                }
                Err(code) => {
                    pump.shut_down();
                    code
                }
            }
        }
        "--shutdown" => {
            pump.server_pid = std::env::var("INCLUDE_SERVER_PID")
                .ok()
                .and_then(|p| p.trim().parse().ok());
            pump.socket_dir = std::env::var_os("INCLUDE_SERVER_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from);
            pump.shut_down();
            0
        }
        _ => {
            println!(
                "__________Using distcc-pump from {}",
                pump.location.display()
            );
            if let Err(code) = pump.start_server_and_hosts() {
                pump.shut_down();
                return code;
            }
            let code = pump.run(args);
            pump.shut_down();
            code
        }
    }
}

/// Accepts distcc 3.4's include-server options in `INCLUDE_SERVER_ARGS` and ignores them;
/// warns about others.
fn check_server_args() {
    let Ok(text) = std::env::var("INCLUDE_SERVER_ARGS") else {
        return;
    };
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let name = w.split('=').next().unwrap_or(w);
        if IGNORED_WITH_VALUE.contains(&w) {
            words.next();
        } else if IGNORED_WITH_VALUE.contains(&name)
            || (w.starts_with("-d") || w.starts_with("-e") || w.starts_with("-s"))
            || (w.starts_with("-t") || w.starts_with("-w") || w.starts_with("-x"))
            || w == "-v"
            || name.starts_with("--email")
            || name == "--stat_reset_triggers"
            || name == "--unsafe_absolute_includes"
            || name == "--no_force_dirs"
            || name == "--path_observation_re"
            || name == "--verify"
            || name == "--write_include_closure"
            || name == "--statistics"
            || name == "--time"
            || name == "--exact_analysis"
        {
        } else {
            eprintln!("__________Warning: include server option '{w}' is not known; ignored");
        }
    }
}

fn is_executable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file()
}

impl Pump {
    /// distcc 3.4's `StartIncludeServerAndDetermineHosts`; `Err` holds the exit code.
    fn start_server_and_hosts(&mut self) -> Result<(), i32> {
        let potential = std::env::var("DISTCC_POTENTIAL_HOSTS").unwrap_or_default();
        if !potential.is_empty() {
            let lsdistcc = self.location.join("lsdistcc");
            if !is_executable(&lsdistcc) {
                eprintln!(
                    "{}: error: can't find lsdistcc (looked in {})",
                    self.program,
                    self.location.display()
                );
                return Err(1);
            }
            let mut cmd = Command::new(&lsdistcc);
            cmd.arg("-c150");
            let extra = std::env::var("LSDISTCC_ARGS").unwrap_or_default();
            cmd.args(extra.split_whitespace())
                .args(potential.split_whitespace());
            let found = cmd.stderr(Stdio::inherit()).output().map_err(|_| 1)?;
            let ok = self.start_server().is_ok();
            let opts = if ok { ",cpp,lzo" } else { ",lzo" };
            if !ok {
                eprintln!("__________Warning: distcc-pump include server failed; running unpumped");
            }
            let text = String::from_utf8_lossy(&found.stdout);
            let hosts: Vec<String> = text.lines().map(|h| format!("{h}{opts}")).collect();
            std::env::set_var("DISTCC_HOSTS", format!("--randomize {}", hosts.join(" ")));
            if self.verbose {
                println!("__________Found {} available distcc servers", hosts.len());
            }
            return if ok { Ok(()) } else { Err(1) };
        }
        let has = |p: Option<PathBuf>| p.is_some_and(|p| p.is_file());
        let env_path = |var: &str, rest: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(|v| PathBuf::from(v).join(rest))
        };
        if std::env::var_os("DISTCC_HOSTS").is_none_or(|h| h.is_empty())
            && !has(env_path("DISTCC_DIR", "hosts"))
            && !has(env_path("HOME", ".distcc/hosts"))
            && !Path::new("/etc/distcc/hosts").is_file()
        {
            eprintln!(
                "{}: expected environment variables \"DISTCC_HOSTS\" or \"DISTCC_POTENTIAL_HOSTS\" \
                 to be set, or to find a distcc hosts file in \"$DISTCC_DIR/hosts\", \
                 \"$HOME/.distcc/hosts\", or \"/etc/distcc/hosts\".",
                self.program
            );
            return Err(1);
        }
        let out = Command::new(self.location.join("distcc"))
            .arg("--show-hosts")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| {
                eprintln!(
                    "{}: error: cannot run distcc --show-hosts: {e}",
                    self.program
                );
                1
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hosts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let pump_hosts = hosts.iter().filter(|h| h.contains(",cpp")).count();
        if hosts.is_empty() {
            eprintln!("{}: error: distcc hosts list is empty!", self.program);
            return Err(1);
        }
        if pump_hosts == 0 {
            eprintln!(
                "{}: error: pump mode requested, but distcc hosts list does not contain any \
                 hosts with ',cpp' option",
                self.program
            );
            return Err(1);
        }
        if self.verbose {
            let word = if hosts.len() == 1 {
                "server"
            } else {
                "servers"
            };
            if hosts.len() == pump_hosts {
                println!("__________Using {} distcc {word} in pump mode", hosts.len());
            } else {
                println!(
                    "__________Using {} distcc {word}, of which only {pump_hosts} support(s) pump mode",
                    hosts.len()
                );
            }
        }
        self.start_server().map_err(|_| 1)
    }

    /// distcc 3.4's `StartIncludeServer`: a temporary directory, the server on its
    /// `socket`, `INCLUDE_SERVER_PORT` exported once it listens.
    fn start_server(&mut self) -> Result<(), ()> {
        let tmp = std::env::var_os("TMPDIR").unwrap_or_else(|| "/tmp".into());
        let dir = match tempfile::Builder::new()
            .prefix("distcc-pump.")
            .rand_bytes(6)
            .tempdir_in(&tmp)
        {
            Ok(d) => d.keep(),
            Err(e) => {
                eprintln!("{}: Could not make temp \"distcc-pump\": {e}", self.program);
                return Err(());
            }
        };
        self.socket_dir = Some(dir.clone());
        let socket = dir.join("socket");
        let failed = |verbose: bool| {
            if verbose {
                eprintln!("__________Could not start distcc-pump include server");
            }
        };
        let (read_end, write_end) = match nix::unistd::pipe() {
            Ok(p) => p,
            Err(_) => {
                failed(self.verbose);
                return Err(());
            }
        };
        // Where the server's output goes, opened before the fork so that failing to open
        // it is this process's error to report.
        let output = if self.redirect_io {
            let out = std::fs::File::create(dir.join("stdout"));
            let err = std::fs::File::create(dir.join("stderr"));
            match (out, err) {
                (Ok(o), Ok(e)) => Some((o, e)),
                _ => {
                    failed(self.verbose);
                    return Err(());
                }
            }
        } else {
            None
        };
        let Ok(null) = std::fs::File::open("/dev/null") else {
            failed(self.verbose);
            return Err(());
        };
        // Whatever this process printed so far is not the server's to print again.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // The server is this process forked, not this program started again: a fresh
        // start (the loader linking it, the C library asking the processor about its
        // caches, which a virtual machine answers slowly) cost more CPU than a small
        // build's first request. Nothing else runs in this process yet: one thread.
        // SAFETY: the process is single-threaded here, and the child only calls
        // `serve`, then exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(read_end);
                // Its command line is this pump's: its name says what it is (`ps -o comm`).
                // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
                unsafe { libc::prctl(libc::PR_SET_NAME, SERVER_NAME.as_ptr()) };
                let mut std_fds = vec![(null.as_raw_fd(), 0)];
                if let Some((out, err)) = &output {
                    std_fds.extend([(out.as_raw_fd(), 1), (err.as_raw_fd(), 2)]);
                }
                for (from, to) in std_fds {
                    // SAFETY: both are open descriptors of this process.
                    unsafe { libc::dup2(from, to) };
                }
                drop((null, output));
                std::process::exit(serve(&socket, Some(write_end)));
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(write_end);
                self.server_pid = Some(child.as_raw());
                self.child = true;
            }
            Err(e) => {
                eprintln!("{}: cannot start the include server: {e}", self.program);
                failed(self.verbose);
                return Err(());
            }
        }
        // The server writes a newline once it listens, or exits (closing the pipe).
        let mut ready = [0u8; 1];
        let mut pipe = std::fs::File::from(read_end);
        let got = pipe.read(&mut ready).unwrap_or(0);
        let is_socket = std::fs::symlink_metadata(&socket).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        });
        if got == 0 || !is_socket {
            eprintln!("__________Expected a socket at '{}'", socket.display());
            failed(self.verbose);
            return Err(());
        }
        if self.verbose {
            println!("__________Started distcc-pump include server");
        }
        std::env::set_var("INCLUDE_SERVER_PORT", &socket);
        std::env::set_var("INCLUDE_SERVER_DIR", &dir);
        std::env::set_var("INCLUDE_SERVER_PID", child_pid_text(self.server_pid));
        Ok(())
    }

    /// distcc 3.4's `DumpEnvironmentVariables`.
    fn dump_environment(&self) {
        let var = |n: &str| std::env::var(n).unwrap_or_default();
        println!(
            "export INCLUDE_SERVER_PID='{}'",
            child_pid_text(self.server_pid)
        );
        println!(
            "export INCLUDE_SERVER_DIR='{}'",
            self.socket_dir
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
        println!(
            "export INCLUDE_SERVER_PORT='{}'",
            var("INCLUDE_SERVER_PORT")
        );
        let hosts = var("DISTCC_HOSTS");
        if !hosts.is_empty() {
            println!("export DISTCC_HOSTS='{hosts}'");
        }
        println!("export PATH='{}:{}'", self.location.display(), var("PATH"));
    }

    /// Runs the build command with the distcc directory first on `PATH`; its exit code.
    fn run(&mut self, args: &[OsString]) -> i32 {
        let mut path = OsString::from(self.location.as_os_str());
        if let Some(p) = std::env::var_os("PATH") {
            path.push(":");
            path.push(p);
        }
        // Like a shell running a foreground job: ^C goes to the build, and pump then
        // shuts the server down.
        let ignore =
            |s| unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigIgn) };
        let _ = ignore(nix::sys::signal::Signal::SIGINT);
        let _ = ignore(nix::sys::signal::Signal::SIGQUIT);
        let status = Command::new(&args[0])
            .args(&args[1..])
            .env("PATH", path)
            .status();
        match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
            }
            Err(e) => {
                eprintln!("{}: {}: {e}", self.program, args[0].to_string_lossy());
                127
            }
        }
    }

    /// distcc 3.4's `ReportDiscrepancies`.
    fn report_discrepancies(&self) {
        let Some(dir) = &self.socket_dir else {
            return;
        };
        let n = std::fs::metadata(dir.join("discrepancy_counter")).map_or(0, |m| m.len());
        if n == 0 {
            return;
        }
        eprintln!(
            "__________Warning: {n} pump-mode compilation(s) failed on server, but succeeded locally."
        );
        if n >= self.max_discrepancies {
            eprintln!("__________Distcc-pump was demoted to plain mode.");
        }
        eprintln!("See the Distcc Discrepancy Symptoms section in the include_server(1) man page.");
    }

    /// distcc 3.4's `ShutDown`: report, stop the server and wait until it is gone, print
    /// its saved output, remove the directory.
    fn shut_down(&mut self) {
        self.report_discrepancies();
        if let Some(pid) = self.server_pid.filter(|&p| p > 0) {
            if alive(pid, self.child) {
                println!("__________Shutting down distcc-pump include server");
                let target = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
                let start = Instant::now();
                loop {
                    if self.child {
                        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
                        let waited = waitpid(target, Some(WaitPidFlag::WNOHANG));
                        if !matches!(waited, Ok(WaitStatus::StillAlive)) {
                            break;
                        }
                    } else if !alive(pid, false) {
                        break;
                    }
                    if start.elapsed() > Duration::from_secs(10) {
                        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if let Some(dir) = &self.socket_dir {
            if let Ok(out) = std::fs::read(dir.join("stdout")) {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&out);
            }
            if let Ok(err) = std::fs::read(dir.join("stderr")) {
                use std::io::Write;
                let _ = std::io::stderr().write_all(&err);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn child_pid_text(pid: Option<i32>) -> String {
    pid.map(|p| p.to_string()).unwrap_or_default()
}

/// Whether process `pid` still runs (a zombie, which nobody may reap in a container, does
/// not count unless it is our child).
fn alive(pid: i32, own_child: bool) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    if own_child {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// `pump --serve SOCKET`: the include server, in its own session.
fn serve_main(socket: Option<&OsString>) -> i32 {
    let Some(socket) = socket else {
        eprintln!("pump: --serve needs a socket path");
        return 1;
    };
    let ready_fd = std::env::var("DISTCC_RS_PUMP_READY_FD")
        .ok()
        .and_then(|f| f.parse::<i32>().ok());
    std::env::remove_var("DISTCC_RS_PUMP_READY_FD");
    // SAFETY: the descriptor was inherited for this use only, and nothing else in this
    // process owns it.
    let ready = ready_fd.map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    serve(Path::new(socket), ready)
}

/// The include server on `socket`, in its own session; writes a newline to `ready` once
/// it listens. Returns the exit code.
fn serve(socket: &Path, ready: Option<std::os::fd::OwnedFd>) -> i32 {
    let _ = nix::unistd::setsid();
    let stats = std::env::var_os("DISTCC_INCLUDE_SERVER_STATS").filter(|v| !v.is_empty());
    // What compilers say about themselves is kept in the distcc directory between builds.
    let facts = crate::farm::hosts::distcc_dir_from(
        std::env::var_os("DISTCC_DIR"),
        std::env::var_os("HOME"),
    )
    .map(|d| d.join(super::facts::FACTS_DIR));
    let result = super::server::serve(socket, stats.as_deref(), facts.as_deref(), || {
        if let Some(fd) = ready {
            use std::io::Write;
            let _ = std::fs::File::from(fd).write_all(b"\n");
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("include server: {e}");
            1
        }
    }
}
