//! `distccd`: the volunteer daemon that compiles jobs sent by `distcc` clients.

use std::path::PathBuf;

use clap::Parser;
use distcc_rs::cmdline::policy::Compilers;
use distcc_rs::daemon::access::{self, Allow};
use distcc_rs::daemon::job::JobConfig;
use distcc_rs::daemon::{self, Options};
use distcc_rs::toolchain::debuginfo;
use distcc_rs::{exitcode, logging, net, wire::Limits};
use log::LevelFilter;

#[derive(Parser, Debug)]
#[command(
    name = "distccd",
    version,
    about = "distccd: the distcc volunteer daemon (distcc-rs, wire-compatible with distcc 3.4)"
)]
struct Cli {
    /// Run as a standalone TCP server (the default unless stdin is a socket).
    #[arg(long)]
    daemon: bool,
    /// Serve one job on stdin/stdout (from inetd or over SSH).
    #[arg(long)]
    inetd: bool,
    /// Stay in the foreground.
    #[arg(long)]
    no_detach: bool,
    /// TCP port to listen on.
    #[arg(short = 'p', long, default_value_t = 3632, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Address to listen on (default: all IPv4 addresses).
    #[arg(long)]
    listen: Option<String>,
    /// Allow clients from ADDR[/BITS]; repeatable. Required unless --allow-private.
    #[arg(short = 'a', long, value_name = "ADDR[/BITS]")]
    allow: Vec<Allow>,
    /// Allow clients from the private and loopback ranges.
    #[arg(long)]
    allow_private: bool,
    /// Most jobs to run at once (default: number of CPUs + 2).
    #[arg(short = 'j', long, value_parser = clap::value_parser!(u32).range(1..=200))]
    jobs: Option<u32>,
    /// Write the daemon's process id to this file.
    #[arg(short = 'P', long)]
    pid_file: Option<PathBuf>,
    /// Append log lines to this file (default: syslog).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Log to stderr.
    #[arg(long)]
    log_stderr: bool,
    /// Log debug messages (same as --log-level debug).
    #[arg(long)]
    verbose: bool,
    /// Least severe messages logged: emerg, alert, crit, err, warning, notice, info, debug.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// When started as root, run as this user (default: distcc, else nobody).
    #[arg(long)]
    user: Option<String>,
    /// Niceness increment for the daemon and its compilers.
    #[arg(short = 'N', long, default_value_t = 5, allow_negative_numbers = true)]
    nice: i32,
    /// Directory whose entries name the compilers that may run.
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/distcc")]
    whitelist_dir: PathBuf,
    /// Serve a plain-text statistics page over HTTP.
    #[arg(long)]
    stats: bool,
    /// Port of the statistics page.
    #[arg(long, default_value_t = 3633, value_parser = clap::value_parser!(u16).range(1..))]
    stats_port: u16,
    /// Kill a compile that runs longer than this many seconds (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    job_lifetime: u64,
    /// Accept clients from anywhere and run any compiler path they name. Dangerous.
    #[arg(long, alias = "make-me-a-botnet")]
    enable_tcp_insecure: bool,
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == debuginfo::HOOK_ARG) {
        // gcc runs us as its `-wrapper` in a directives-only compile.
        std::process::exit(debuginfo::hook(&args[2..]));
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exitcode::BAD_ARGUMENTS
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let sink = if cli.log_stderr {
        logging::Sink::Stderr
    } else if let Some(path) = &cli.log_file {
        logging::open_file(path).unwrap_or_else(|e| {
            eprintln!(
                "distccd: ERROR: failed to open log file {}: {e}",
                path.display()
            );
            logging::Sink::Syslog
        })
    } else {
        logging::Sink::Syslog
    };
    let parsed = cli.log_level.as_deref().map(logging::parse_level);
    let level = match parsed {
        _ if cli.verbose => LevelFilter::Debug,
        Some(Some(level)) => level,
        _ => LevelFilter::Info,
    };
    logging::init("distccd", sink, level);
    if let (Some(None), Some(name)) = (parsed, &cli.log_level) {
        log::warn!("unknown --log-level {name:?} ignored");
    }

    let mut allow = cli.allow.clone();
    if cli.allow_private {
        allow.extend(
            access::PRIVATE
                .iter()
                .filter_map(|a| a.parse::<Allow>().ok()),
        );
    }
    let inetd = cli.inetd
        || (!cli.daemon
            && nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(0).is_ok());
    if allow.is_empty() {
        if cli.enable_tcp_insecure {
            allow.push("0.0.0.0/0".parse().expect("valid literal"));
            allow.push("::/0".parse().expect("valid literal"));
        } else if !inetd {
            log::error!(
                "no --allow option given: refusing to accept compile jobs from everyone. \
                 Add --allow ADDR[/BITS] (or --allow-private), or --enable-tcp-insecure to accept any client."
            );
            eprintln!("distccd: ERROR: no --allow option given; see distccd --help");
            std::process::exit(exitcode::BAD_ARGUMENTS);
        }
    }
    let compilers = if cli.enable_tcp_insecure {
        Compilers::Any
    } else if let Some(file) = std::env::var_os("DISTCC_CMDLIST") {
        let words = std::env::var("DISTCC_CMDLIST_NUMWORDS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(1);
        let list = Compilers::from_cmdlist(file.as_ref(), words);
        if let Compilers::Unreadable { file, error } = &list {
            log::error!(
                "DISTCC_CMDLIST file {} cannot be read ({error}): every job will be refused",
                file.display()
            );
        }
        list
    } else if cli.whitelist_dir.is_dir() {
        Compilers::Whitelist(cli.whitelist_dir.clone())
    } else {
        let msg = format!(
            "{} not found: create it with links named after the compilers this machine may \
             run (update-distcc-symlinks does it), give another with --whitelist-dir, or use \
             --enable-tcp-insecure",
            cli.whitelist_dir.display()
        );
        log::error!("{msg}");
        eprintln!("distccd: ERROR: {msg}");
        std::process::exit(exitcode::COMPILER_MISSING);
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp_root = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let opts = Options {
        port: cli.port,
        listen: cli.listen.clone(),
        allow,
        jobs: cli.jobs.map_or(cpus + 2, |j| j as usize),
        inetd,
        no_detach: cli.no_detach,
        pid_file: cli.pid_file.clone(),
        user: cli.user.clone(),
        stats_port: cli.stats.then_some(cli.stats_port),
        stop_grace: std::time::Duration::from_secs(
            std::env::var("DISTCCD_STOP_GRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
        ),
        nice: cli.nice,
        io_timeout: match net::io_timeout() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("distccd: ERROR: {e}");
                std::process::exit(exitcode::BAD_ARGUMENTS);
            }
        },
        job: JobConfig {
            limits: Limits::default(),
            tmp_root,
            compilers,
            compiler_path: std::env::var_os("DISTCCD_PATH"),
            stop_by: Default::default(),
            job_lifetime: (cli.job_lifetime > 0)
                .then(|| std::time::Duration::from_secs(cli.job_lifetime)),
            hook: std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(String::from)),
        },
    };
    let result = if opts.inetd {
        daemon::run_inetd(&opts)
    } else {
        daemon::run_daemon(opts)
    };
    if let Err(e) = result {
        log::error!("{e}");
        eprintln!("distccd: ERROR: {e}");
        std::process::exit(e.exit_code());
    }
}
