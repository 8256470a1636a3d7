//! Log lines in distcc's own shape, `prog[pid] (module) ERROR: text`, written to stderr or
//! appended to a file, through the `log` crate's macros.
//!
//! distcc's users grep for these lines, so the severity tags are distcc's (`ERROR: `,
//! `Warning: `, none for info and debug). This module owns only the format and the
//! destination; each binary decides the level and where lines go.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log lines go.
pub enum Sink {
    Stderr,
    /// An appended file, and its path so that it can be reopened after log rotation.
    File(File, PathBuf),
    /// The daemon facility of syslog, distccd's default.
    Syslog,
}

struct Logger {
    prog: &'static str,
    sink: Mutex<Sink>,
}

fn tag(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR: ",
        Level::Warn => "Warning: ",
        _ => "",
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // The mDNS crate's debug lines (every packet) would drown a daemon's debug log.
        let max = match metadata.target().starts_with("mdns_sd") {
            true => log::max_level().min(log::LevelFilter::Warn),
            false => log::max_level(),
        };
        metadata.level() <= max
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // distcc names the C function; the Rust module path is our equivalent.
        let module = record
            .module_path()
            .and_then(|m| m.rsplit("::").next())
            .unwrap_or("main");
        if let Sink::Syslog = &*self.lock_sink() {
            syslog(
                record.level(),
                &format!("{}{}", tag(record.level()), record.args()),
            );
            return;
        }
        let line = format!(
            "{}[{}] ({}) {}{}\n",
            self.prog,
            std::process::id(),
            module,
            tag(record.level()),
            record.args()
        );
        // A log line that cannot be written is dropped: logging must never fail a job.
        let _ = match &mut *self.lock_sink() {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File(f, _) => f.write_all(line.as_bytes()),
            Sink::Syslog => Ok(()),
        };
    }

    fn flush(&self) {}
}

impl Logger {
    fn lock_sink(&self) -> std::sync::MutexGuard<'_, Sink> {
        match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn syslog(level: Level, text: &str) {
    let priority = match level {
        Level::Error => libc::LOG_ERR,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_NOTICE,
        Level::Debug | Level::Trace => libc::LOG_DEBUG,
    };
    let Ok(msg) = std::ffi::CString::new(text.replace('\0', " ")) else {
        return;
    };
    // SAFETY: both strings are NUL-terminated and live across the call; "%s" makes syslog
    // treat the message as data, never as a format.
    unsafe { libc::syslog(libc::LOG_DAEMON | priority, c"%s".as_ptr(), msg.as_ptr()) };
}

/// Opens `path` for appending log lines, as distcc does with `DISTCC_LOG` and `--log-file`.
pub fn open_file(path: &Path) -> std::io::Result<Sink> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|f| Sink::File(f, path.to_path_buf()))
}

/// The installed logger, for `reopen`.
static LOGGER: std::sync::OnceLock<&'static Logger> = std::sync::OnceLock::new();

/// Reopens the log file (after `logrotate` moved it away); other sinks are unaffected.
pub fn reopen() -> std::io::Result<()> {
    let Some(logger) = LOGGER.get() else {
        return Ok(());
    };
    let mut sink = logger.lock_sink();
    if let Sink::File(_, path) = &*sink {
        *sink = open_file(&path.clone())?;
    }
    Ok(())
}

/// Installs the logger for this process; later calls are ignored.
pub fn init(prog: &'static str, sink: Sink, level: LevelFilter) {
    if let Sink::Syslog = sink {
        // SAFETY: the ident is a static NUL-terminated string, as openlog requires.
        unsafe { libc::openlog(c"distccd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    }
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        prog,
        sink: Mutex::new(sink),
    }));
    if log::set_logger(logger).is_ok() {
        let _ = LOGGER.set(logger);
        log::set_max_level(level);
    }
}

/// distcc's `--log-level` names, as syslog's severities. The `log` crate has fewer
/// levels: everything from `err` up is an error, and `notice` (distccd's default, which
/// includes the job summaries) shares `info`.
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "emerg" | "emergency" | "alert" | "crit" | "critical" | "err" | "error" => {
            LevelFilter::Error
        }
        "warn" | "warning" => LevelFilter::Warn,
        "note" | "notice" | "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        _ => return None,
    })
}

/// Renders an argv the way distcc's logs do: words joined by spaces, a word quoted when it
/// is empty or holds blanks or quotes.
/// An I/O error as `strerror` says it (`Connection refused`), without Rust's
/// ` (os error 111)`: the words of distcc 3.4's messages, which scripts look for.
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

pub fn argv_to_string<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.as_ref();
            if a.is_empty() || a.contains([' ', '\t', '\n', '"', '\'', ';']) {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
