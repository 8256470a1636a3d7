//! The `distcc` client: one compiler invocation, from its command line to the object
//! written as a local compile would have left it.
//!
//! `main` reads the configuration once (`config`) and answers distcc's own options; a
//! command line that cannot be distributed runs here (`local`); one that can goes on the
//! journey of `build`: a host and a slot (`farm::pick`), the text (`preprocess`), one
//! attempt per host (`remote`), and the result written (`outputs`). Every failure of the
//! network or of a host turns into a local compile with one warning.

pub mod config;

mod build;
mod cache;
mod compiler;
mod local;
mod outputs;
mod preprocess;
pub mod pump;
mod remote;
mod secure;

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::cmdline::{self, Decision};
use crate::exitcode;
use crate::farm::hosts;
use crate::farm::pick::{self, Farm};
use crate::farm::state::{Phase, StateFile};
use crate::toolchain::masquerade;
use crate::trace::recorder::Recorder;
use config::{Config, SAFEGUARD};
pub use local::run_local;

/// What is told of this job as it goes: the monitor's state file, when there is
/// somewhere to write it, and the build's trace (`DISTCC_TRACE`).
pub(crate) struct Progress {
    state: Option<StateFile>,
    trace: Option<Recorder>,
    /// The job compiles on this machine (the last host told was this one).
    here: bool,
}

impl Progress {
    fn new(top: Option<&Path>, input: &str, trace: Option<Recorder>) -> Progress {
        Progress {
            state: top.and_then(|top| StateFile::new(top, input)),
            trace,
            here: false,
        }
    }

    /// Tells the monitor and the trace which phase the job is in.
    fn note(&mut self, phase: Phase) {
        if let Some(st) = &mut self.state {
            st.set(phase);
        }
        let name = match phase {
            Phase::Startup => "start",
            Phase::Blocked => "slot",
            Phase::Connect => "connect",
            Phase::Preprocess => "preprocess",
            Phase::Send => "send",
            Phase::Compile if self.here => "local",
            Phase::Compile => "compile",
            Phase::Receive => "receive",
            Phase::Done => return,
        };
        self.step(name);
    }

    /// A phase the monitor does not show (see `trace::PHASES`).
    fn step(&mut self, name: &'static str) {
        if let Some(t) = &mut self.trace {
            t.enter(name);
        }
    }

    /// Tells the monitor where the job runs: `here` when on this machine.
    fn host(&mut self, name: &str, slot: u32, here: bool) {
        self.here = here;
        if let Some(st) = &mut self.state {
            st.set_host(name, slot);
        }
    }

    /// The job's result came from `host`, in `mode` (`remote`, `pump`, `cache`).
    fn ran_on(&mut self, host: &str, mode: &str) {
        if let Some(t) = &mut self.trace {
            t.ran_on(host, mode);
        }
    }

    /// What our daemon said the job cost there.
    fn host_times(&mut self, times: crate::wire::JobTimes) {
        if let Some(t) = &mut self.trace {
            t.host_times(times);
        }
    }

    /// The job goes to `host` (before it knows whether the host's result will do).
    fn try_host(&mut self, host: &str) {
        if let Some(t) = &mut self.trace {
            t.tried(host);
        }
    }

    /// The job compiles here, because `why`.
    fn local(&mut self, why: &str) {
        if let Some(t) = &mut self.trace {
            t.local(why);
        }
    }

    /// What the job's connection moved, when it can say; asked of the kernel only for
    /// a trace.
    fn traffic(&mut self, conn: &crate::net::Connection) {
        if let Some(t) = &mut self.trace {
            if let Some((sent, received, rtt)) = conn.traffic() {
                t.traffic(sent, received, rtt);
            }
        }
    }

    /// The job is over: the trace gets its record.
    fn finish(&mut self, exit: i32) {
        if let Some(t) = self.trace.take() {
            t.finish(exit);
        }
    }
}

/// Runs one compiler command line (compiler first) and returns the exit code.
fn compile(argv: &[String], cfg: &Config) -> i32 {
    if cfg.nesting > 0 {
        // We were started by distcc itself (a compiler that is distcc): run it for real.
        return run_local(argv);
    }
    let recorder = |input: &str, output: &str| {
        (cfg.trace.clone()).map(|path| Recorder::new(path, input, output))
    };
    let (code, mut progress) = match cmdline::classify(argv, cfg.directives_only) {
        Decision::Local(why) => {
            log::debug!("{why}; running locally");
            let farm = Farm::load(cfg.hosts.as_deref(), cfg.top.as_deref(), cfg.backoff);
            // A link or another command with no one source: named by what it makes.
            let made = argv
                .iter()
                .position(|a| a == "-o")
                .and_then(|i| argv.get(i + 1))
                .or(argv.last())
                .map_or("", String::as_str);
            let mut progress = Progress::new(None, "", recorder(made, made));
            progress.local(&why.reason.to_string());
            (
                local::compile_here(argv, None, &farm, &mut progress),
                progress,
            )
        }
        Decision::Remote(job) => {
            let trace = recorder(job.input(), job.output());
            let mut progress = Progress::new(cfg.top.as_deref(), job.input(), trace);
            (build::build_somewhere(&job, cfg, &mut progress), progress)
        }
    };
    progress.finish(code);
    code
}

/// `--help` after the version, in distcc 3.4's order and columns, less what we do not
/// have (pump mode, GSS-API) and plus what we add.
const USAGE: &str = "Usage:
   distcc [COMPILER] [compile options] -o OBJECT -c SOURCE
   distcc [--help|--version|--show-hosts|-j]
   distcc [--cache-stats|--cache-clear]
   distcc [--trace-report|--trace-chrome] FILE
   distcc --gen-key [FILE]
   distcc --make-symlinks DIR

Options:
   COMPILER                   Defaults to \"cc\".
   --help                     Explain usage, and exit.
   --version                  Show version, and exit.
   --show-hosts               Show host list, and exit.
   -j                         Show the concurrency level, as calculated from
                              the host list, and exit.
   --make-symlinks DIR        Link the compilers found on PATH to distcc in
                              DIR (a masquerade directory), and exit.
   --cache-stats              Show the compile cache's counters, and exit.
   --cache-clear              Empty the compile cache, and exit.
   --trace-report FILE        Sum up a build's trace (DISTCC_TRACE), and exit.
   --trace-chrome FILE        Print a build's trace in the Chrome trace
                              format (Perfetto opens it), and exit.
   --gen-key [FILE]           Make your key for TLS (default
                              ~/.distcc/id_ed25519), show it, and exit.

Environment variables:
   See the manual page for a complete list.
   DISTCC_VERBOSE=1           Give debug messages.
   DISTCC_LOG                 Send messages to file, not stderr.
   DISTCC_SSH                 Command to run to open SSH connections.
   DISTCC_DIR                 Directory for host list and locks.
   DISTCC_FALLBACK=0          Fail instead of compiling locally.
   DISTCC_COMPILER_CHECK=off  Use hosts whose compiler differs from ours.
   DISTCC_CACHE_DIR           Keep results in this compile cache.
   DISTCC_CACHE=1             Keep results in ~/.cache/distcc.
   DISTCC_CACHE_SIZE          The cache's size limit (default 5G).
   DISTCC_TRACE               Append each job's phases to this file.
   DISTCC_TLS                 Which hosts get TLS: off, pinned (the
                              default: those in ~/.distcc/known_hosts),
                              require, tofu.

Server specification:
A list of servers is taken from the environment variable $DISTCC_HOSTS, or
$DISTCC_DIR/hosts, or ~/.distcc/hosts, or /etc/distcc/hosts.
Each host can be given in any of these forms, see the manual for details:

   localhost                  Run in place.
   HOST                       TCP connection, port 3632.
   HOST:PORT                  TCP connection, specified port.
   @HOST                      SSH connection to specified host.
   USER@HOST                  SSH connection to specified username at host.
   HOSTSPEC/LIMIT             Run at most LIMIT jobs there at once.
   HOSTSPEC,lzo               Enable compression.
   --randomize                Randomize the server list before execution.

distcc distributes compilation jobs across volunteer machines running
distccd.  Jobs that cannot be distributed, such as linking, are run locally.
distcc should be used with make's -jN option to execute in parallel on
several machines.
";

/// Answers distcc's own options (`--help`, `--version`, `--show-hosts`, `-j`), which are
/// recognised only as the first argument; `None` when `first` is none of them.
fn own_option(first: &str, rest: &[OsString], cfg: &Config) -> Option<i32> {
    match first {
        "--help" => {
            print!("{}\n{USAGE}", crate::version_banner("distcc"));
            Some(0)
        }
        "--version" => {
            print!("{}", crate::version_banner("distcc"));
            Some(0)
        }
        "--scan-includes" => Some(pump::scan_includes(rest, cfg)),
        "--cache-stats" => Some(cache::stats_main(cfg)),
        "--trace-report" | "--trace-chrome" => Some(trace_main(first, rest)),
        "--cache-clear" => Some(cache::clear_main(cfg)),
        "--make-symlinks" => Some(masquerade::make_symlinks_main(rest)),
        "--gen-key" => {
            let path = match (rest.first(), &cfg.top) {
                (Some(file), _) => std::path::PathBuf::from(file),
                (None, Some(top)) => secure::user_key_file(top),
                (None, None) => {
                    eprintln!("distcc: --gen-key: no FILE, and no DISTCC_DIR or HOME");
                    return Some(exitcode::BAD_ARGUMENTS);
                }
            };
            Some(crate::net::keys::gen_key_main("distcc", &path))
        }
        "--show-hosts" | "-j" => {
            let mut list = match hosts::load(cfg.hosts.as_deref(), cfg.top.as_deref()) {
                Ok(l) => l,
                Err(e) => return Some(exitcode::report(&e)),
            };
            if list.randomize {
                pick::shuffle(&mut list.hosts);
            }
            if first == "-j" {
                println!("{}", list.hosts.iter().map(|h| h.limit).sum::<u32>());
            } else {
                for h in &list.hosts {
                    println!("{}", h.spec);
                }
            }
            Some(0)
        }
        _ => None,
    }
}

/// `--trace-report FILE` and `--trace-chrome FILE`: a build's trace summed up, or in the
/// Chrome trace format, on standard output.
fn trace_main(option: &str, rest: &[OsString]) -> i32 {
    let [file] = rest else {
        eprintln!("distcc: {option} takes one argument: the trace file (DISTCC_TRACE)");
        return exitcode::BAD_ARGUMENTS;
    };
    match crate::trace::read(Path::new(file)) {
        Ok((records, bad)) => {
            // Read past: a line cut short (a full disk) must not hide the build.
            for why in &bad {
                eprintln!("distcc: skipped {why}");
            }
            let text = if option == "--trace-report" {
                crate::trace::report::report(&records)
            } else {
                crate::trace::chrome::chrome(&records)
            };
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("distcc: {e}");
            exitcode::BAD_ARGUMENTS
        }
    }
}

/// What std's runtime does before `main` that the client needs, for a `distcc` that starts
/// without it. A closed standard descriptor gets `/dev/null`, or the first file we open
/// would take its place (and a compiler's output meant for stdout would land in it).
/// SIGPIPE is ignored, so that a reader gone away is an error to handle, not our death;
/// std's `Command` restores the default in the processes we start.
pub fn bare_start() {
    for fd in 0..3 {
        // SAFETY: asks about a descriptor number; touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // Opened at the lowest free number, which is `fd`; kept open for ever.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                std::mem::forget(null);
            }
        }
    }
    // SAFETY: sets a disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The `distcc` program: `argv` is its whole command line, `cfg` its environment.
pub fn main(argv: Vec<OsString>, cfg: &Config) -> i32 {
    // Every process we start inherits the next level. Set once here rather than on each
    // Command: a Command with its own environment copies the whole of ours first.
    std::env::set_var(SAFEGUARD, (cfg.nesting + 1).to_string());
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(OsStr::to_os_string)
        .unwrap_or_default();
    let cmd: Vec<OsString> = if !name.is_empty() && !name.to_string_lossy().contains("distcc") {
        // Masquerade: invoked as `gcc` through a link to distcc.
        masquerade::trim_path(&name);
        std::iter::once(name)
            .chain(argv[1..].iter().cloned())
            .collect()
    } else {
        let Some(first) = argv.get(1) else {
            eprint!("{USAGE}");
            return exitcode::BAD_ARGUMENTS;
        };
        let first = first.to_string_lossy();
        if let Some(code) = own_option(&first, &argv[2..], cfg) {
            return code;
        }
        if first.starts_with('-') || first.ends_with(".o") || cmdline::is_source(&first) {
            std::iter::once(OsString::from("cc"))
                .chain(argv[1..].iter().cloned())
                .collect()
        } else {
            argv[1..].to_vec()
        }
    };
    match cmd
        .iter()
        .map(|a| a.to_str().map(String::from))
        .collect::<Option<Vec<String>>>()
    {
        Some(cmd) => compile(&cmd, cfg),
        None => {
            // Rare, and gcc copes: run the command here exactly as given.
            log::warn!("an argument is not valid UTF-8; compiling locally");
            run_local(&cmd)
        }
    }
}
