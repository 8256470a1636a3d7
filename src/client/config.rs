//! The client's configuration: every `DISTCC_*` variable it obeys, read once at start into
//! typed fields, so that the rest of the client takes them as parameters and its tests do
//! not depend on the environment they run in.
//!
//! A bad value is an error with the variable's name in it; where distcc 3.4 silently
//! ignores one, we say so and keep the default. Reading the host list itself is
//! `farm::hosts`'s business; this module only keeps where it comes from.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::cmdline::DirectivesOnly;
pub use crate::envvars::BadValue;
use crate::envvars::Vars;
use crate::farm::hosts;

/// The environment variable that marks a process as started by distcc, with the nesting
/// level, so that a compiler which is itself distcc runs locally instead of looping.
pub const SAFEGUARD: &str = "_DISTCC_SAFEGUARD";

const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);

/// What the environment asks of the client.
#[derive(Debug, Clone)]
pub struct Config {
    /// `_DISTCC_SAFEGUARD`: how deep in nested distcc processes we are (0: not nested).
    pub nesting: u32,
    /// `DISTCC_HOSTS`, when set: the host list itself.
    pub hosts: Option<String>,
    /// `$DISTCC_DIR`, else `~/.distcc`: host file, locks, backoff marks, state files.
    pub top: Option<PathBuf>,
    /// `DISTCC_TRACE`: the file each job appends its record to (`crate::trace`).
    pub trace: Option<PathBuf>,
    /// `DISTCC_IO_TIMEOUT`: the per-wait network timeout; an error when it is no number,
    /// reported when a job would use it.
    pub io_timeout: Result<Duration, BadValue>,
    /// `DISTCC_BACKOFF_PERIOD`: how long a failed host is skipped; `None` when 0.
    pub backoff: Option<Duration>,
    /// `DISTCC_SAVE_TEMPS=1`: keep what is sent to the server.
    pub save_temps: bool,
    /// `DISTCC_SKIP_LOCAL_RETRY` set to anything but 0: no local retry of a failed compile.
    pub skip_local_retry: bool,
    /// `DISTCC_FALLBACK=0`: fail rather than compile here when distribution fails.
    pub fallback: bool,
    /// `DISTCC_DIRECTIVES_ONLY`: `1` always, `0` never, else for `-g` compiles.
    pub directives_only: DirectivesOnly,
    /// `DISTCC_NO_REWRITE_CROSS` unset: name the compiler for the host (`cc` to `gcc`,
    /// `gcc` to `x86_64-linux-gnu-gcc`, `-target` for clang).
    pub rewrite_cross: bool,
    /// `DISTCC_SSH`: the SSH program and its leading arguments, split on spaces.
    pub ssh: Vec<String>,
    /// `DISTCC_VERBOSE=1`.
    pub verbose: bool,
    /// `DISTCC_LOG`: where messages go instead of stderr.
    pub log: Option<PathBuf>,
    /// Pump mode's settings, which `pump` sets.
    pub pump: PumpConfig,
    /// The compile cache, when it is on.
    pub cache: Option<CacheConfig>,
    /// `PWD`: how the compiler names the working directory (see [`Config::working_dir`]).
    pub pwd: Option<OsString>,
    /// `SOURCE_DATE_EPOCH`: what `__DATE__` and `__TIME__` stand for, when set.
    pub source_date_epoch: Option<OsString>,
    /// `DISTCC_COMPILER_CHECK` not `off` (`0`, `no`, `false`, in any case): a result
    /// from a host whose compiler is not the one this machine would run is not used.
    pub compiler_check: bool,
    /// `DISTCC_PRINCIPAL`: the service a `,auth` host is authenticated as
    /// (`SERVICE@HOST`), instead of `host/HOST`.
    pub principal: Option<String>,
    /// `DISTCC_TLS`: which hosts are reached over TLS. A value that names no mode is
    /// reported when a host is reached, and taken as `require`, which never sends in the
    /// clear a text the user may have meant to protect.
    pub tls: Result<TlsMode, BadValue>,
}

/// Which hosts are reached over TLS (`DISTCC_TLS`), the others in the clear. A host's
/// keys are pinned in the known hosts files (`$DISTCC_DIR/known_hosts`,
/// `/etc/distcc/known_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `off`: none.
    Off,
    /// `pinned`, the default: the hosts with a pinned key.
    Pinned,
    /// `require`: every host, and a host without a pinned key is not used.
    Require,
    /// `tofu`: every host; a host without a pinned key is trusted on first use, and its key
    /// pinned.
    Tofu,
}

impl TlsMode {
    fn parse(value: Option<String>) -> Result<TlsMode, BadValue> {
        match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "pinned") => Ok(TlsMode::Pinned),
            Some("off" | "0" | "no" | "false") => Ok(TlsMode::Off),
            Some("require") => Ok(TlsMode::Require),
            Some("tofu") => Ok(TlsMode::Tofu),
            Some(_) => Err(BadValue {
                name: "DISTCC_TLS",
                value: value.unwrap_or_default(),
                expected: "off, pinned, require or tofu",
            }),
        }
    }
}

/// Where the compile cache is and how large it may grow.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `DISTCC_CACHE_DIR`; with `DISTCC_CACHE=1` alone, `$XDG_CACHE_HOME/distcc` or
    /// `~/.cache/distcc`.
    pub dir: PathBuf,
    /// `DISTCC_CACHE_SIZE` (default 5 GiB); an error when it is no size, reported when a
    /// job would use it.
    pub size: Result<u64, BadValue>,
    /// The variables that change a compile's result or messages, as set (see
    /// [`CACHE_ENV`]).
    pub env: Vec<(&'static str, Option<OsString>)>,
    /// The first variable set that keeps direct mode off: include directories the
    /// manifests do not see, or a dependency file a hit would not write.
    pub direct_off: Option<&'static str>,
}

/// Variables that have gcc write a dependency file without an option. They keep the
/// cache's direct mode off (see [`CacheConfig::direct_off`]), as
/// [`crate::toolchain::INCLUDE_PATH_VARIABLES`] do, and pump mode too.
const DEPS_VARIABLES: [&str; 2] = ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"];

/// Variables that change what a compiler writes: the language of its messages, and
/// gcc's self-check.
pub const CACHE_ENV: [&str; 5] = [
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "GCC_COMPARE_DEBUG",
];

/// What pump mode reads: where the include server listens, and when to give up on it.
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// `INCLUDE_SERVER_PORT`: the include server's socket; pump mode only when set.
    pub socket: Option<PathBuf>,
    /// `INCLUDE_SERVER_STUB`: the include server's answer, given (distcc 3.4's test hook).
    pub stub: Option<String>,
    /// `DISTCC_MAX_DISCREPANCY` (default 1): after this many jobs failed remotely and
    /// compiled here, the rest of the build uses plain mode. Reported when a job would use
    /// it, as distcc 3.4 does, when it is not a positive number.
    pub max_discrepancy: Result<u64, BadValue>,
    /// `DISTCC_TESTING_INCLUDE_SERVER=1`: an include-server failure is an error, not a
    /// quiet fallback to plain mode (as in distcc 3.4's tests).
    pub testing: bool,
    /// `CPATH`, `C_INCLUDE_PATH` or `CPLUS_INCLUDE_PATH` set: include directories the
    /// include server cannot see, so plain mode (as distcc 3.4).
    pub hidden_include_path: bool,
    /// `DEPENDENCIES_OUTPUT` or `SUNPRO_DEPENDENCIES` set: gcc appends to the file they
    /// name, which a host's dependency file cannot stand for, so plain mode. (distcc 3.4
    /// writes the host's `-MMD` file there instead, losing what was in it.)
    pub deps_variable: bool,
    /// `DISTCC_EXCLUDE_FRESH_FILES`: files that may change during the build without
    /// counting as a discrepancy.
    pub exclude_fresh: Option<String>,
}

impl Config {
    /// The working directory as the compiler here names it (gcc's `getpwd`, clang's
    /// `current_path`, in `DW_AT_comp_dir` and for relative names): `$PWD` when it is this
    /// directory by a path through links, else the physical one.
    pub fn working_dir(&self) -> Option<OsString> {
        use std::os::unix::fs::MetadataExt;
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if let Some(pwd) = self
            .pwd
            .as_ref()
            .filter(|p| p.as_encoded_bytes().starts_with(b"/"))
        {
            if let (Ok(p), Ok(here)) = (std::fs::metadata(pwd), std::fs::metadata(".")) {
                if same(&p, &here) {
                    return Some(pwd.clone());
                }
            }
        }
        std::env::current_dir().ok().map(|d| d.into_os_string())
    }

    /// Reads the process environment.
    pub fn from_env() -> Config {
        Config::from_vars(|name| std::env::var_os(name))
    }

    /// Reads the variables `get` gives (the environment, or a test's own).
    pub fn from_vars(get: impl Fn(&str) -> Option<OsString>) -> Config {
        let vars = Vars(get);
        Config {
            nesting: vars
                .text(SAFEGUARD)
                .map_or(0, |v| v.trim().parse().unwrap_or(1)),
            hosts: vars.text("DISTCC_HOSTS"),
            top: hosts::distcc_dir_from(vars.os("DISTCC_DIR"), vars.os("HOME")),
            trace: vars
                .os("DISTCC_TRACE")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            io_timeout: vars
                .number("DISTCC_IO_TIMEOUT", 300, 1)
                .map(Duration::from_secs),
            backoff: backoff_period(vars.text("DISTCC_BACKOFF_PERIOD")),
            save_temps: vars.flag("DISTCC_SAVE_TEMPS", false),
            skip_local_retry: vars
                .text("DISTCC_SKIP_LOCAL_RETRY")
                .is_some_and(|v| v != "0"),
            fallback: vars.flag("DISTCC_FALLBACK", true),
            directives_only: match vars.text("DISTCC_DIRECTIVES_ONLY").as_deref() {
                Some("1") => DirectivesOnly::Always,
                Some("0") => DirectivesOnly::Never,
                _ => DirectivesOnly::WithDebugInfo,
            },
            rewrite_cross: vars.os("DISTCC_NO_REWRITE_CROSS").is_none(),
            ssh: vars
                .text("DISTCC_SSH")
                .unwrap_or_default()
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect(),
            verbose: vars.flag("DISTCC_VERBOSE", false),
            log: vars
                .os("DISTCC_LOG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            pump: PumpConfig {
                socket: vars.os("INCLUDE_SERVER_PORT").map(PathBuf::from),
                stub: vars.text("INCLUDE_SERVER_STUB"),
                max_discrepancy: vars.number("DISTCC_MAX_DISCREPANCY", 1, 1),
                testing: vars.flag("DISTCC_TESTING_INCLUDE_SERVER", false),
                hidden_include_path: ["CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH"]
                    .iter()
                    .any(|name| vars.os(name).is_some()),
                deps_variable: DEPS_VARIABLES.iter().any(|name| vars.os(name).is_some()),
                exclude_fresh: vars.text("DISTCC_EXCLUDE_FRESH_FILES"),
            },
            cache: cache_config(&vars),
            pwd: vars.os("PWD"),
            source_date_epoch: vars.os("SOURCE_DATE_EPOCH"),
            compiler_check: !vars.text("DISTCC_COMPILER_CHECK").is_some_and(|v| {
                ["off", "0", "no", "false"].contains(&v.to_ascii_lowercase().as_str())
            }),
            tls: TlsMode::parse(vars.text("DISTCC_TLS")),
            principal: vars.text("DISTCC_PRINCIPAL").filter(|p| !p.is_empty()),
        }
    }
}

/// The cache's settings: on with `DISTCC_CACHE_DIR` or `DISTCC_CACHE=1`, off with
/// `DISTCC_CACHE=0` whatever else is set.
fn cache_config<F: Fn(&str) -> Option<OsString>>(vars: &Vars<F>) -> Option<CacheConfig> {
    let dir = match (
        vars.text("DISTCC_CACHE").as_deref(),
        vars.os("DISTCC_CACHE_DIR"),
    ) {
        (Some("0"), _) => return None,
        (_, Some(dir)) if !dir.is_empty() => PathBuf::from(dir),
        (Some("1"), _) => match (vars.os("XDG_CACHE_HOME"), vars.os("HOME")) {
            (Some(x), _) if !x.is_empty() => PathBuf::from(x).join("distcc"),
            (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".cache/distcc"),
            _ => return None,
        },
        _ => return None,
    };
    let size = match vars.text("DISTCC_CACHE_SIZE") {
        None => Ok(crate::cache::DEFAULT_SIZE),
        Some(v) => crate::cache::parse_size(&v).ok_or(BadValue {
            name: "DISTCC_CACHE_SIZE",
            value: v,
            expected: "a size such as 5G, 500M or 1000000",
        }),
    };
    Some(CacheConfig {
        dir,
        size,
        env: CACHE_ENV
            .iter()
            .map(|&name| (name, vars.os(name)))
            .collect(),
        direct_off: crate::toolchain::INCLUDE_PATH_VARIABLES
            .iter()
            .chain(&DEPS_VARIABLES)
            .copied()
            .find(|name| vars.os(name).is_some()),
    })
}

/// The backoff period, or `None` when `0` turns backoff off. A value that is not a number
/// keeps the default (distcc 3.4 silently turns backoff off).
fn backoff_period(value: Option<String>) -> Option<Duration> {
    let Some(v) = value else {
        return Some(DEFAULT_BACKOFF);
    };
    match v.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(s) => Some(Duration::from_secs(s)),
        Err(_) => {
            log::warn!("DISTCC_BACKOFF_PERIOD={v:?} is not a number of seconds; using 60");
            Some(DEFAULT_BACKOFF)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_vars(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults() {
        let c = config(&[]);
        assert_eq!(c.nesting, 0);
        assert_eq!(c.io_timeout, Ok(Duration::from_secs(300)));
        assert_eq!(c.backoff, Some(DEFAULT_BACKOFF));
        assert!(c.fallback && c.rewrite_cross && !c.save_temps && !c.skip_local_retry);
        assert_eq!(c.directives_only, DirectivesOnly::WithDebugInfo);
        assert_eq!(c.top, None);
        assert!(c.ssh.is_empty());
    }

    #[test]
    fn values_as_distcc_reads_them() {
        let c = config(&[
            ("DISTCC_IO_TIMEOUT", "5"),
            ("DISTCC_BACKOFF_PERIOD", "0"),
            ("DISTCC_FALLBACK", "0"),
            ("DISTCC_SKIP_LOCAL_RETRY", "yes"),
            ("DISTCC_DIRECTIVES_ONLY", "0"),
            ("DISTCC_NO_REWRITE_CROSS", ""),
            ("DISTCC_SSH", "ssh  -p 22"),
            ("HOME", "/home/u"),
            (SAFEGUARD, "2"),
        ]);
        assert_eq!(c.io_timeout, Ok(Duration::from_secs(5)));
        assert_eq!(c.backoff, None);
        assert!(!c.fallback && c.skip_local_retry && !c.rewrite_cross);
        assert_eq!(c.directives_only, DirectivesOnly::Never);
        assert_eq!(c.ssh, ["ssh", "-p", "22"]);
        assert_eq!(c.top, Some(PathBuf::from("/home/u/.distcc")));
        assert_eq!(c.nesting, 2);
        assert!(!config(&[("DISTCC_SKIP_LOCAL_RETRY", "0")]).skip_local_retry);
        assert_eq!(
            config(&[("DISTCC_BACKOFF_PERIOD", "abc")]).backoff,
            Some(DEFAULT_BACKOFF)
        );
    }

    #[test]
    fn the_cache_is_on_when_asked_for() {
        assert!(config(&[("HOME", "/h")]).cache.is_none());
        let c = config(&[("DISTCC_CACHE", "1"), ("HOME", "/h")])
            .cache
            .unwrap();
        assert_eq!(c.dir, PathBuf::from("/h/.cache/distcc"));
        assert_eq!(c.size, Ok(crate::cache::DEFAULT_SIZE));
        let c = config(&[
            ("DISTCC_CACHE", "1"),
            ("XDG_CACHE_HOME", "/x"),
            ("DISTCC_CACHE_SIZE", "1M"),
        ]);
        let c = c.cache.unwrap();
        assert_eq!((c.dir, c.size), (PathBuf::from("/x/distcc"), Ok(1 << 20)));
        let c = config(&[("DISTCC_CACHE_DIR", "/c"), ("DISTCC_CACHE_SIZE", "big")]);
        let c = c.cache.unwrap();
        assert_eq!(c.dir, PathBuf::from("/c"));
        assert!(c
            .size
            .unwrap_err()
            .to_string()
            .contains("DISTCC_CACHE_SIZE"));
        assert!(config(&[("DISTCC_CACHE_DIR", "/c"), ("DISTCC_CACHE", "0")])
            .cache
            .is_none());
    }

    #[test]
    fn a_bad_timeout_names_the_variable() {
        let e = config(&[("DISTCC_IO_TIMEOUT", "soon")])
            .io_timeout
            .unwrap_err();
        assert!(e.to_string().contains("DISTCC_IO_TIMEOUT"), "{e}");
    }
}
