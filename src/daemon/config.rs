//! The daemon's whole configuration, built once at start-up from its command line (`Args`,
//! parsed by clap) and its environment (`Environment`, the only place in `daemon` that reads
//! environment variables). The rest of the daemon takes the resulting `Config` as a
//! parameter and never looks at the process environment again.
//!
//! This module also decides where log lines go and which compilers may run (a whitelist
//! directory, `DISTCC_CMDLIST`, the compilers found on the daemon's PATH, or any). It does
//! not listen, give up root or run jobs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

use super::access::{self, Allow};
use super::job::JobConfig;
use super::DaemonError;
use crate::cmdline::policy::Compilers;
use crate::envvars::Vars;
use crate::logging::{self, strerror};
use crate::toolchain::lookup;
use crate::wire::Limits;

/// The whitelist directory distcc 3.3 and later use, and ours by default.
pub const DEFAULT_WHITELIST_DIR: &str = "/usr/lib/distcc";

/// distccd's command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "distccd",
    // `--version` is ours: distcc 3.4's banner, whose second line tools parse.
    disable_version_flag = true,
    about = "distccd: the distcc volunteer daemon (distcc-rs, wire-compatible with distcc 3.4)"
)]
pub struct Args {
    /// Print the version banner and exit.
    #[arg(long)]
    pub version: bool,
    /// Run as a standalone TCP server (the default unless stdin is a socket).
    #[arg(long)]
    pub daemon: bool,
    /// Serve one job on stdin/stdout (from inetd or over SSH).
    #[arg(long)]
    pub inetd: bool,
    /// Stay in the foreground.
    #[arg(long)]
    pub no_detach: bool,
    /// TCP port to listen on.
    #[arg(short = 'p', long, default_value_t = 3632, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Address to listen on (default: all IPv4 addresses).
    #[arg(long)]
    pub listen: Option<String>,
    /// Allow clients from ADDR[/BITS]; repeatable. ADDR may be a host name, resolved at
    /// start-up (all its addresses). Required unless --allow-private.
    #[arg(short = 'a', long, value_name = "ADDR[/BITS]")]
    pub allow: Vec<String>,
    /// Allow clients from the private and loopback ranges.
    #[arg(long)]
    pub allow_private: bool,
    /// Most jobs to run at once (default: number of CPUs + 2).
    #[arg(short = 'j', long, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub jobs: Option<u32>,
    /// Write the daemon's process id to this file.
    #[arg(short = 'P', long)]
    pub pid_file: Option<PathBuf>,
    /// Append log lines to this file (default: syslog).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Log to stderr.
    #[arg(long)]
    pub log_stderr: bool,
    /// Log debug messages (same as --log-level debug).
    #[arg(long)]
    pub verbose: bool,
    /// Least severe messages logged: emerg, alert, crit, err, warning, notice, info, debug.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// When started as root, run as this user (default: distcc, else distccd, else nobody).
    /// A user that does not exist is an error.
    #[arg(long)]
    pub user: Option<String>,
    /// Niceness increment for the daemon and its compilers.
    #[arg(short = 'N', long, default_value_t = 5, allow_negative_numbers = true)]
    pub nice: i32,
    /// Directory whose entries name the compilers that may run (default: /usr/lib/distcc;
    /// when that is missing, the compilers on the daemon's PATH).
    #[arg(long, value_name = "DIR")]
    pub whitelist_dir: Option<PathBuf>,
    /// Serve a plain-text statistics page over HTTP.
    #[arg(long)]
    pub stats: bool,
    /// Port of the statistics page.
    #[arg(long, default_value_t = 3633, value_parser = clap::value_parser!(u16).range(1..))]
    pub stats_port: u16,
    /// Kill a compile that runs longer than this many seconds (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub job_lifetime: u64,
    /// Stop the daemon (as SIGTERM does) after this many seconds (0: never).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub lifetime: u64,
    /// Accept clients from anywhere and run any compiler path they name. Dangerous.
    #[arg(long, alias = "make-me-a-botnet")]
    pub enable_tcp_insecure: bool,
    /// For running under a debugger: --daemon --no-detach --log-stderr --verbose.
    #[arg(short = 'W', long)]
    pub wizard: bool,
    /// Accepted for distcc 3.4's scripts; does nothing (jobs already run inside the
    /// daemon's process, as threads).
    #[arg(long)]
    pub no_fork: bool,
    /// Accepted for distcc 3.4's scripts; does nothing (as in 3.4).
    #[arg(long)]
    pub no_fifo: bool,
    /// Announce the daemon over mDNS/DNS-SD (`_distcc._tcp`, as distcc 3.4), so that
    /// clients with `+zeroconf` in their host list find it.
    #[arg(long)]
    pub zeroconf: bool,
    /// Require GSS-API (Kerberos) authentication of every classic client, as distcc 3.4
    /// does; the daemon's principal is DISTCCD_PRINCIPAL.
    #[arg(long)]
    pub auth: bool,
    /// With --auth, refuse the principals FILE lists (one per line, without @REALM).
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<PathBuf>,
    /// With --auth, admit only the principals FILE lists (one per line, without @REALM).
    #[arg(long, value_name = "FILE")]
    pub whitelist: Option<PathBuf>,
    /// Show the GSS-API principal: not supported yet; the daemon refuses to start.
    #[arg(long)]
    pub show_principal: bool,
    /// Keep the results this daemon compiles in a cache in DIR, and answer a job asked
    /// again from it.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The cache's size limit (default 5G).
    #[arg(long, value_name = "SIZE", requires = "cache_dir")]
    pub cache_size: Option<String>,
    /// Make a key pair for TLS in FILE (default /etc/distcc/distccd_ed25519 as root,
    /// else ~/.distcc/distccd_ed25519) and FILE.pub, show its fingerprint, and exit.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub gen_key: Option<PathBuf>,
    /// Serve TLS connections with the private key in FILE, beside the classic protocol on
    /// the same port.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Admit only TLS clients whose keys FILE lists (read again on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub authorized_keys: Option<PathBuf>,
    /// Refuse classic (unencrypted) connections.
    #[arg(long)]
    pub tls_only: bool,
}

impl Args {
    /// The options that stand for others, expanded: `--wizard` is distcc 3.4's
    /// `--daemon --no-detach --log-stderr --verbose`.
    pub fn expanded(mut self) -> Args {
        if self.wizard {
            self.daemon = true;
            self.no_detach = true;
            self.log_stderr = true;
            self.verbose = true;
        }
        self
    }
}

/// Every environment variable the daemon reads, read once.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `DISTCC_CMDLIST`: a file naming exactly the compilers that may run.
    pub cmdlist: Option<PathBuf>,
    /// `DISTCC_CMDLIST_NUMWORDS`: how many trailing path components must match (default 1).
    pub cmdlist_words: usize,
    /// `TMPDIR`: where job files go (default `/tmp`).
    pub tmp_dir: PathBuf,
    /// `DISTCCD_STOP_GRACE`: how long a stopping daemon lets jobs run (seconds, default 30).
    pub stop_grace: Duration,
    /// `DISTCCD_PATH`: replaces `PATH` for compilers.
    pub distccd_path: Option<OsString>,
    /// `PATH`.
    pub path: OsString,
    /// `DISTCC_IO_TIMEOUT`: how long a request may take to arrive (seconds, default 300),
    /// and the timeout of each write.
    pub io_timeout: Duration,
    /// `DISTCC_TCP_DEFER_ACCEPT`: 0 turns TCP_DEFER_ACCEPT off.
    pub tcp_defer_accept: bool,
    /// `DISTCC_SAVE_TEMPS`: 1 keeps each job's files.
    pub save_temps: bool,
    /// `DISTCCD_PRINCIPAL`: the daemon's GSS-API principal, for `--auth`.
    pub principal: Option<String>,
    /// `_DISTCCD_TEST_DEFAULT_WHITELIST`: for the test suite only, where the default
    /// whitelist directory is looked for (this machine's /usr/lib/distcc may well exist).
    pub default_whitelist: Option<PathBuf>,
}

impl Environment {
    /// Reads the process environment; a malformed value is an error, not a silent default.
    pub fn from_process() -> Result<Environment, DaemonError> {
        Environment::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Result<Environment, DaemonError> {
        let vars = Vars(get);
        let number = |name, default, min| {
            vars.number(name, default, min)
                .map_err(DaemonError::BadEnvironment)
        };
        Ok(Environment {
            cmdlist: vars.os("DISTCC_CMDLIST").map(PathBuf::from),
            cmdlist_words: number("DISTCC_CMDLIST_NUMWORDS", 1, 1)? as usize,
            tmp_dir: vars
                .os("TMPDIR")
                .filter(|t| !t.is_empty())
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from),
            stop_grace: Duration::from_secs(number("DISTCCD_STOP_GRACE", 30, 0)?),
            distccd_path: vars.os("DISTCCD_PATH"),
            path: vars
                .os("PATH")
                .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            io_timeout: Duration::from_secs(number("DISTCC_IO_TIMEOUT", 300, 1)?),
            tcp_defer_accept: vars.flag("DISTCC_TCP_DEFER_ACCEPT", true),
            save_temps: vars.flag("DISTCC_SAVE_TEMPS", false),
            principal: vars.text("DISTCCD_PRINCIPAL"),
            default_whitelist: vars
                .os("_DISTCCD_TEST_DEFAULT_WHITELIST")
                .map(PathBuf::from),
        })
    }

    /// Where compilers are looked up: `DISTCCD_PATH`, else `PATH`.
    pub fn compiler_search_path(&self) -> &std::ffi::OsStr {
        self.distccd_path.as_deref().unwrap_or(&self.path)
    }
}

/// How the daemon runs, everything decided.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// `--listen`: the address to bind, all IPv4 addresses when absent.
    pub listen: Option<String>,
    pub allow: Vec<Allow>,
    pub jobs: usize,
    /// `--inetd` (or stdin is a socket): serve one job on stdin/stdout.
    pub inetd: bool,
    /// Stay in the foreground (`--no-detach`).
    pub no_detach: bool,
    pub pid_file: Option<PathBuf>,
    /// `--log-file`, when log lines go to a file.
    pub log_file: Option<PathBuf>,
    /// `--user`: whom to run as when started as root.
    pub user: Option<String>,
    /// `--nice`: the niceness increment applied at start.
    pub nice: i32,
    /// `--stats`: serve the statistics page on this port.
    pub stats_port: Option<u16>,
    /// How long a stopping daemon lets running jobs go on.
    pub stop_grace: Duration,
    /// How long a whole request may take to arrive; also each write's timeout.
    pub io_timeout: Duration,
    /// `--lifetime`: stop by itself after this long.
    pub lifetime: Option<Duration>,
    /// Set TCP_DEFER_ACCEPT on the listening socket.
    pub tcp_defer_accept: bool,
    /// `--key` and its company: the TLS served beside the classic protocol.
    pub tls: Option<super::tls::Tls>,
    /// `--auth` and its lists: GSS-API authentication of classic clients.
    pub gss: Option<std::sync::Arc<super::gss::Gss>>,
    /// `--zeroconf`: announce the daemon over mDNS/DNS-SD.
    pub zeroconf: bool,
    pub job: JobConfig,
}

/// Sets up logging as `args` ask: stderr, a file (syslog when it cannot be opened, as distcc
/// 3.4 does, with 3.4's message), or syslog; at the level asked.
pub fn init_logging(args: &Args) {
    let mut open_failed = None;
    let sink = if args.log_stderr {
        logging::Sink::Stderr
    } else if let Some(path) = &args.log_file {
        logging::open_file(path).unwrap_or_else(|e| {
            // distcc 3.4's words, which scripts look for.
            let msg = format!(
                "failed to open {}: {}; logging to syslog instead",
                path.display(),
                strerror(&e)
            );
            eprintln!("distccd: ERROR: {msg}");
            open_failed = Some(msg);
            logging::Sink::Syslog
        })
    } else {
        logging::Sink::Syslog
    };
    let parsed = args.log_level.as_deref().map(logging::parse_level);
    let level = match parsed {
        _ if args.verbose => LevelFilter::Debug,
        Some(Some(level)) => level,
        _ => LevelFilter::Info,
    };
    logging::init("distccd", sink, level);
    if let Some(msg) = open_failed {
        log::error!("{msg}");
    }
    if let (Some(None), Some(name)) = (parsed, &args.log_level) {
        log::warn!("unknown --log-level {name:?} ignored");
    }
}

/// Who may connect. Without `--allow`, only a daemon whose keys admit its clients
/// (`--tls-only --authorized-keys`) or one started with `--enable-tcp-insecure` serves any
/// address; under inetd, inetd decided.
fn allow_list(args: &Args, inetd: bool) -> Result<Vec<Allow>, DaemonError> {
    let mut allow = Vec::new();
    for spec in &args.allow {
        let entries = access::resolve(spec).map_err(DaemonError::BadAllow)?;
        if spec.parse::<Allow>().is_err() {
            let list: Vec<String> = entries.iter().map(|a| a.to_string()).collect();
            log::info!("--allow {spec}: allowing {}", list.join(" "));
        }
        allow.extend(entries);
    }
    if args.allow_private {
        allow.extend(
            access::PRIVATE
                .iter()
                .filter_map(|a| a.parse::<Allow>().ok()),
        );
    }
    if allow.is_empty() {
        let keys_admit = args.tls_only && args.authorized_keys.is_some();
        if args.enable_tcp_insecure || keys_admit {
            allow.push("0.0.0.0/0".parse().expect("valid literal"));
            allow.push("::/0".parse().expect("valid literal"));
        } else if !inetd {
            return Err(DaemonError::NoAllow);
        }
    }
    Ok(allow)
}

/// Which compilers may run: any (`--enable-tcp-insecure`), those of `DISTCC_CMDLIST`, those
/// linked in the whitelist directory, or, when the default directory is missing, those
/// found on the daemon's PATH (what a masquerade directory made here would list).
fn compilers(args: &Args, env: &Environment) -> Result<Compilers, DaemonError> {
    if args.enable_tcp_insecure {
        return Ok(Compilers::Any);
    }
    if let Some(file) = &env.cmdlist {
        let list = Compilers::from_cmdlist(file, env.cmdlist_words);
        if let Compilers::Unreadable { file, error } = &list {
            log::error!(
                "DISTCC_CMDLIST file {} cannot be read ({error}): every job will be refused",
                file.display()
            );
        }
        return Ok(list);
    }
    let (dir, explicit) = match &args.whitelist_dir {
        Some(dir) => (dir.clone(), true),
        None => (
            env.default_whitelist
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WHITELIST_DIR)),
            false,
        ),
    };
    if dir.is_dir() {
        return Ok(Compilers::Whitelist(dir));
    }
    if explicit {
        return Err(DaemonError::WhitelistMissing(dir));
    }
    Ok(compilers_on_path(&dir, env.compiler_search_path()))
}

fn compilers_on_path(dir: &Path, search_path: &std::ffi::OsStr) -> Compilers {
    let paths: Vec<String> = lookup::compilers_on(search_path)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if paths.is_empty() {
        log::warn!(
            "{} not found, and no compiler found on PATH {}: every job will be refused",
            dir.display(),
            search_path.to_string_lossy()
        );
    } else {
        log::info!(
            "{} not found: allowing the compilers on PATH instead: {}",
            dir.display(),
            paths.join(" ")
        );
    }
    Compilers::List { paths, words: 1 }
}

impl Config {
    /// Builds the configuration from the command line and the environment. `stdin_is_socket`
    /// chooses inetd mode when neither `--daemon` nor `--inetd` was given.
    pub fn build(
        args: &Args,
        env: &Environment,
        stdin_is_socket: bool,
    ) -> Result<Config, DaemonError> {
        let inetd = args.inetd || (!args.daemon && stdin_is_socket);
        let tls = super::tls::from_args(
            args.key.as_ref(),
            args.authorized_keys.as_ref(),
            args.tls_only,
        )?;
        if inetd && tls.is_some() {
            return Err(DaemonError::Tls(
                "TLS is served by the standalone daemon only, not under inetd or SSH".into(),
            ));
        }
        let gss = super::gss::Gss::from_args(
            args.auth,
            args.whitelist.as_deref(),
            args.blacklist.as_deref(),
            env.principal.as_deref(),
        )?
        .map(std::sync::Arc::new);
        if gss.is_some() && tls.as_ref().is_some_and(|t| t.authorized.is_none()) {
            return Err(DaemonError::GssOptions(
                "--auth with --key needs --authorized-keys: TLS clients, which do not \
                 authenticate with GSS-API, would otherwise come in with any key"
                    .into(),
            ));
        }
        if inetd && gss.is_some() {
            return Err(DaemonError::Gss(
                "--auth is served by the standalone daemon only, not under inetd".into(),
            ));
        }
        let allow = allow_list(args, inetd)?;
        let compilers = compilers(args, env)?;
        let cache = match &args.cache_dir {
            None => None,
            Some(dir) => {
                let limit = match &args.cache_size {
                    None => crate::cache::DEFAULT_SIZE,
                    Some(s) => crate::cache::parse_size(s)
                        .ok_or_else(|| DaemonError::BadCacheSize(s.clone()))?,
                };
                Some(crate::cache::Cache::new(dir.clone(), limit))
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Ok(Config {
            port: args.port,
            listen: args.listen.clone(),
            allow,
            jobs: args.jobs.map_or(cpus + 2, |j| j as usize),
            inetd,
            no_detach: args.no_detach,
            pid_file: args.pid_file.clone(),
            log_file: args.log_file.clone().filter(|_| !args.log_stderr),
            user: args.user.clone(),
            nice: args.nice,
            stats_port: args.stats.then_some(args.stats_port),
            stop_grace: env.stop_grace,
            io_timeout: env.io_timeout,
            lifetime: secs(args.lifetime),
            tcp_defer_accept: env.tcp_defer_accept,
            tls,
            gss,
            zeroconf: args.zeroconf,
            job: JobConfig {
                limits: Limits::default(),
                tmp_root: env.tmp_dir.clone(),
                compilers,
                compiler_path: env.distccd_path.clone(),
                search_path: env.compiler_search_path().to_os_string(),
                save_temps: env.save_temps,
                stop_by: Default::default(),
                job_lifetime: secs(args.job_lifetime),
                cache,
                load: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Environment, DaemonError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn environment_defaults_and_bad_values() {
        let e = env(&[]).unwrap();
        assert_eq!(e.cmdlist_words, 1);
        assert_eq!(e.stop_grace, Duration::from_secs(30));
        assert_eq!(e.io_timeout, Duration::from_secs(300));
        assert_eq!(e.tmp_dir, PathBuf::from("/tmp"));
        assert!(e.tcp_defer_accept && !e.save_temps);
        let e = env(&[("DISTCC_TCP_DEFER_ACCEPT", "0"), ("TMPDIR", "/var/tmp")]).unwrap();
        assert!(!e.tcp_defer_accept);
        assert_eq!(e.tmp_dir, PathBuf::from("/var/tmp"));
        for (name, bad) in [
            ("DISTCC_CMDLIST_NUMWORDS", "two"),
            ("DISTCC_CMDLIST_NUMWORDS", "0"),
            ("DISTCCD_STOP_GRACE", "-1"),
            ("DISTCC_IO_TIMEOUT", "0"),
            ("DISTCC_IO_TIMEOUT", "soon"),
        ] {
            let err = env(&[(name, bad)]).unwrap_err();
            assert_eq!(
                crate::exitcode::Fatal::exit_code(&err),
                crate::exitcode::BAD_ARGUMENTS
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
