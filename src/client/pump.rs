//! Pump mode on the client (protocol 3): instead of preprocessing here, the client asks the
//! include server (started by `pump`, found through `INCLUDE_SERVER_PORT`) which files the
//! compile reads, and sends them with the whole command line to a `,cpp,lzo` host, which
//! preprocesses and compiles. As in distcc 3.4, a job goes in plain mode instead when the
//! include server gives up, when the input is already preprocessed, when `CPATH` and
//! friends hide include directories, when a sanitizer would record the host's job
//! directory (unlike 3.4, which sends it), and, for the rest of the build, once
//! `DISTCC_MAX_DISCREPANCY` jobs have failed remotely and then compiled here.
//!
//! The include server's protocol and mirror tree are `include`'s (see its module comment):
//! each path in the answer names a file here (`include::client_root_name_to_real`); a file
//! is already LZO-compressed and sent as it is, a symlink as its target. An empty answer
//! means the server could not be sure of the list.
//!
//! Outside pump mode, a clang `-g` compile goes to our daemon in protocol 3 too
//! ([`files_wanted`]), with the files named by the same analysis run in this process
//! ([`Via::Here`]): only the files themselves make its object a local compile's.
//!
//! Sending the job is `remote`'s business; what the host does with it, the daemon's.

use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::Config;
use crate::cache::manifest::Entered;
use crate::cmdline::{Compile, DirectivesOnly};
use crate::farm::hosts::HostSpec;
use crate::include::facts::{Store, FACTS_DIR};
use crate::include::server::{self, IncludeServer};
use crate::include::{client_root_name_to_real, FORCING_FILE};
use crate::wire::{Content, Limits, PumpFile};

/// A job that goes in pump mode: the command line the host runs, the dependency file the
/// client writes from the host's answer, and the files to send.
pub(super) struct Plan {
    pub argv: Vec<String>,
    pub deps: Option<String>,
    pub cwd: String,
    pub files: Vec<PumpFile>,
    /// Every file the include server's walk entered, system headers too, with its
    /// includer (see `include::closure::Closure::entered`); `None` from a server that
    /// does not say (distcc 3.4's).
    pub entered: Option<Entered>,
}

/// Why a job that could go in pump mode does not.
#[derive(Debug)]
pub(super) enum NotPumped {
    /// The include server could not be asked, or gave up.
    IncludeServer(String),
    /// A file it named could not be read.
    Mirror(std::io::Error),
}

impl std::fmt::Display for NotPumped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotPumped::IncludeServer(why) => write!(f, "{why}"),
            NotPumped::Mirror(e) => write!(f, "failed to read the include server's files: {e}"),
        }
    }
}

/// Whether `job` goes to `host` in pump mode, as distcc 3.4 decides: a `,cpp` host under
/// `pump`, for a source not yet preprocessed, without `CPATH` and friends (nor, unlike
/// 3.4, the dependency file variables), before the
/// build has been demoted. `None` means plain mode, with the reason logged.
pub(super) fn wanted<'a>(job: &Compile, host: &HostSpec, cfg: &'a Config) -> Option<&'a Path> {
    let pump = &cfg.pump;
    let socket = pump.socket.as_deref().filter(|_| host.cpp)?;
    if job.preprocessed {
        log::warn!(
            "cannot use distcc_pump on already preprocessed file (such as emitted by ccache)"
        );
        return None;
    }
    if pump.hidden_include_path {
        log::warn!(
            "cannot use distcc_pump with any of environment variables CPATH, C_INCLUDE_PATH \
             or CPLUS_INCLUDE_PATH set, preprocessing locally"
        );
        return None;
    }
    if pump.deps_variable {
        log::warn!(
            "cannot use distcc_pump with DEPENDENCIES_OUTPUT or SUNPRO_DEPENDENCIES set, \
             preprocessing locally"
        );
        return None;
    }
    if job.records_root() {
        log::info!("{ROOT_WOULD_SHOW}, preprocessing locally");
        return None;
    }
    let max = *pump.max_discrepancy.as_ref().ok()?;
    if Discrepancies::of(socket).count() >= max {
        log::debug!("pump mode was demoted to plain mode for this build");
        return None;
    }
    Some(socket)
}

/// Why a job that [`Compile::records_root`] says of goes as preprocessed text.
const ROOT_WOULD_SHOW: &str =
    "a sanitizer would record the host's job directory in the object (an absolute path)";

/// Whether `job`, outside pump mode, goes to `host` with the files it reads rather than as
/// preprocessed text, should `host` be our daemon: a clang compile with `-g` or a macro
/// path map ([`maps_macro_paths`]), or any clang compile with `DISTCC_DIRECTIVES_ONLY=1`,
/// which `toolchain::debuginfo` cannot make identical from text. clang has no
/// directives-only mode, and under DWARF 5 (clang 14's default) a `-g` object records a
/// checksum of every file read, which no preprocessed text carries; from the files
/// themselves our daemon's compile is a local one's, byte for byte.
/// distcc 3.4's daemon would name its job directory in the object instead, so it gets the
/// text, as from 3.4's client. The same conditions as pump mode's keep it off: variables
/// that move include directories or ask the local preprocessor for a dependency file, and a
/// sanitizer that would name the host's job directory.
pub(super) fn files_wanted(job: &Compile, cfg: &Config) -> bool {
    let wanted = match cfg.directives_only {
        DirectivesOnly::Always => true,
        DirectivesOnly::Never => false,
        DirectivesOnly::WithDebugInfo => {
            crate::cmdline::debug_info(job.argv()) || maps_macro_paths(job.argv())
        }
    };
    if !wanted || !crate::toolchain::names::is_clang(&job.argv()[0]) || job.preprocessed {
        return false;
    }
    let kept_as_text = if cfg.pump.hidden_include_path {
        "CPATH, C_INCLUDE_PATH or CPLUS_INCLUDE_PATH is set"
    } else if cfg.pump.deps_variable {
        "DEPENDENCIES_OUTPUT or SUNPRO_DEPENDENCIES is set"
    } else if job.records_root() {
        ROOT_WOULD_SHOW
    } else {
        return true;
    };
    log::info!("not sending the files the job reads ({kept_as_text}): sending preprocessed text");
    false
}

/// Whether `argv` maps the paths that `__FILE__` and `__builtin_FILE()` give: clang maps
/// `__builtin_FILE()` (C++20's `std::source_location`) only when it preprocesses, so from
/// text its object names the unmapped path (and it warns that the option went unused),
/// where gcc maps both either way. Debian's `-ffile-prefix-map` makes this every package's
/// case.
fn maps_macro_paths(argv: &[String]) -> bool {
    (argv.iter())
        .any(|a| a.starts_with("-fmacro-prefix-map=") || a.starts_with("-ffile-prefix-map="))
}

/// Where the files of a protocol-3 job are named.
#[derive(Debug, Clone, Copy)]
pub(super) enum Via<'a> {
    /// `pump`'s include server, at this socket.
    Server(&'a Path),
    /// An analysis made in this process, for a job [`files_wanted`] sends as files outside
    /// pump mode (its facts about compilers kept with the include server's).
    Here,
}

/// Has the files `job` reads named (by the include server, or by an analysis here) and
/// reads them.
pub(super) fn plan(
    job: &Compile,
    via: Via<'_>,
    cfg: &Config,
    cwd: String,
) -> Result<Plan, NotPumped> {
    let Some((argv, deps)) = job.pump_argv() else {
        return Err(NotPumped::IncludeServer(
            "a raw preprocessor option is not for pump mode".into(),
        ));
    };
    // Alive until the files are read: its client root goes with it.
    let mut here = None;
    // What the host must not have in its own directories, when the analysis says.
    let mut absent = Vec::new();
    let (paths, entered) = match (via, &cfg.pump.stub) {
        (Via::Server(_), Some(stub)) => {
            log::warn!("INCLUDE_SERVER_STUB is set to '{stub}'; ignoring include server");
            (stub.split_whitespace().map(String::from).collect(), None)
        }
        (Via::Server(socket), None) => {
            let answer = ask(socket, &tidy(&cwd), job.argv()).map_err(NotPumped::IncludeServer)?;
            absent = answer.absent;
            (answer.paths, answer.entered)
        }
        (Via::Here, _) => {
            let facts = (cfg.top.as_deref()).and_then(|t| Store::open(&t.join(FACTS_DIR)));
            let server = here
                .insert(IncludeServer::for_one_request(facts).map_err(NotPumped::IncludeServer)?);
            let (paths, closure) = (server.answer_with_closure(&tidy(&cwd), job.argv()))
                .map_err(NotPumped::IncludeServer)?;
            absent.clone_from(&closure.absent_system);
            let entered = (closure.entered.iter()).map(|(p, i)| (p.as_str().to_string(), *i));
            (paths, Some(entered.collect()))
        }
    };
    if paths.is_empty() {
        return Err(NotPumped::IncludeServer(
            "include server gave up analyzing".into(),
        ));
    }
    let mut files = files(&paths).map_err(NotPumped::Mirror)?;
    if let Some(entered) = &entered {
        files.extend(system_headers(entered, &absent, &files));
    }
    Ok(Plan {
        argv,
        deps,
        cwd,
        files,
        entered,
    })
}

/// The working directory a protocol-3 job names, `None` when there is none. To our daemon
/// (`ours` says, asked only when it matters), as the compiler here names it: `$PWD` when
/// that reaches this directory through a link ([`Config::working_dir`]), so that the
/// host's compiler, run at that name in its root, where the mirror made the same link,
/// names it so in its debug information too. To distcc 3.4's, the physical directory, as
/// 3.4's client names it: its daemon makes the working directory before the links arrive,
/// and then fails to make the link. Spelled as `$PWD` spells it (a final or doubled `/`
/// stays in `DW_AT_comp_dir`), unless it has `.` or `..` components, which no host takes
/// (`..` could climb out of its job's root): then the physical directory.
pub(super) fn working_dir(cfg: &Config, ours: impl FnOnce() -> bool) -> Option<String> {
    let physical = std::env::current_dir().ok()?.into_os_string();
    let plain =
        |n: &std::ffi::OsString| !(n.to_string_lossy().split('/')).any(|c| c == "." || c == "..");
    let named = cfg
        .working_dir()
        .filter(|n| *n != physical && plain(n) && ours());
    Some(named.unwrap_or(physical).to_string_lossy().into_owned())
}

/// `cwd` without doubled or final slashes, as the include analysis names paths.
fn tidy(cwd: &str) -> String {
    let parts: Vec<&str> = cwd.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// The longest wait for the include server's answer: its own limit per request is a few
/// seconds; past this it is gone.
const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// An include server's answer: the mirror's paths and, when it says (ours does), what its
/// walk entered and where in the compiler's directories it found no header.
struct Answer {
    paths: Vec<String>,
    entered: Option<Entered>,
    absent: Vec<String>,
}

/// The include server's answer for the command `argv` run in `cwd`.
fn ask(socket: &Path, cwd: &str, argv: &[String]) -> Result<Answer, String> {
    let failed = |e: &dyn std::fmt::Display| {
        format!(
            "failed to talk to include server '{}': {e}",
            socket.display()
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| failed(&e))?;
    stream
        .set_read_timeout(Some(ASK_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(ASK_TIMEOUT)))
        .and_then(|()| server::write_request(&mut stream, cwd, argv))
        .map_err(|e| failed(&e))?;
    let mut r = BufReader::new(stream);
    let limits = Limits::default();
    let paths = server::read_reply(&mut r, &limits).map_err(|e| failed(&e))?;
    // Nothing more comes with an empty reply: the analysis was not made.
    let entered = (!paths.is_empty())
        .then(|| server::read_entered(&mut r, &limits))
        .flatten();
    let absent = (entered.is_some())
        .then(|| server::read_absent(&mut r, &limits))
        .flatten()
        .unwrap_or_default();
    Ok(Answer {
        paths,
        entered,
        absent,
    })
}

/// `distcc --scan-includes COMPILER ARGS...`: what the include server would have the job
/// send, one line per file as distcc 3.4 prints it: `FILE`, `SYMLINK`, `DIRECTORY` (a
/// directory that must exist) or `SYSTEMDIR` (a system directory, reached on the host as
/// its own), then the name here. Needs a `,cpp` host and `pump`, as 3.4 does.
pub(super) fn scan_includes(args: &[std::ffi::OsString], cfg: &Config) -> i32 {
    use crate::exitcode;
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let pump_hosts = crate::farm::hosts::load(cfg.hosts.as_deref(), cfg.top.as_deref())
        .is_ok_and(|list| list.hosts.iter().any(|h| h.cpp && !h.down));
    let (true, Some(socket)) = (pump_hosts, &cfg.pump.socket) else {
        log::error!(
            "'--scan_includes' specified, but distcc wouldn't have used include server \
             (make sure hosts list includes ',cpp' option?)"
        );
        return exitcode::DISTCC_FAILED;
    };
    let cwd = std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
    let paths = match ask(socket, &cwd, &argv) {
        Ok(answer) if !answer.paths.is_empty() => answer.paths,
        Ok(_) | Err(_) => {
            log::error!("failed to get includes from include server");
            return exitcode::DISTCC_FAILED;
        }
    };
    for path in paths {
        let Some(name) = client_root_name_to_real(&path) else {
            continue;
        };
        let link = fs::read_link(&path).ok();
        let forced = name
            .strip_suffix(FORCING_FILE)
            .and_then(|d| d.strip_suffix('/'));
        let (kind, name) = match (&link, forced) {
            (Some(target), _) if is_system_link(&target.to_string_lossy(), &name) => {
                ("SYSTEMDIR", name.as_str())
            }
            (_, Some(dir)) => ("DIRECTORY", dir),
            (Some(_), None) => ("SYMLINK", name.as_str()),
            (None, None) => ("FILE", name.as_str()),
        };
        println!("{kind:<9} {name}");
    }
    0
}

/// Whether a mirror link to `target` at `name` is a system directory's: `../` repeated more
/// times than `name` has components, then `name` itself.
fn is_system_link(target: &str, name: &str) -> bool {
    let mut rest = target;
    let mut ups = 0;
    while let Some(r) = rest.strip_prefix("../") {
        rest = r;
        ups += 1;
    }
    ups > name.matches('/').count() && format!("/{rest}") == name
}

/// The list of the system headers the walk entered (those under a directory the host
/// reaches as its own), and of the paths there it found no file at (`absent`), for the
/// host to check its own against ([`crate::wire::SYSTEM_HEADERS`]); none when the walk
/// entered none. distcc 3.4's include server says neither.
fn system_headers(entered: &Entered, absent: &[String], files: &[PumpFile]) -> Option<PumpFile> {
    let system_dirs: Vec<&str> = (files.iter())
        .filter_map(|f| match &f.content {
            Content::Link(target) if is_system_link(target, &f.name) => Some(f.name.as_str()),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let headers = (entered.iter())
        .map(|(path, _)| path.as_str())
        .filter(|p| {
            system_dirs
                .iter()
                .any(|d| crate::include::sysdirs::under(p, d))
        })
        .filter(|p| seen.insert(*p));
    let list = crate::wire::system_headers_list(headers, absent);
    (!list.is_empty()).then(|| PumpFile {
        name: crate::wire::SYSTEM_HEADERS.into(),
        content: Content::File(crate::wire::lzo::compress(&list)),
    })
}

/// The files to send: each mirror file's compressed bytes as they are, or a symlink's
/// target, under its name here.
///
/// First, the list of those that have the include server's line marker (`.lzo.abs`),
/// empty or not ([`crate::wire::LINE_MARKED`]).
fn files(paths: &[String]) -> std::io::Result<Vec<PumpFile>> {
    let mut marked = String::new();
    let mut files = paths
        .iter()
        .map(|path| {
            let name = client_root_name_to_real(path).ok_or_else(|| {
                std::io::Error::other(format!("{path} is not in the include server's tree"))
            })?;
            let content = match fs::symlink_metadata(path)?.file_type().is_symlink() {
                true => Content::Link(fs::read_link(path)?.to_string_lossy().into_owned()),
                false => Content::File(fs::read(path)?),
            };
            if path.ends_with(".abs") && !name.contains('\n') {
                marked.push_str(&name);
                marked.push('\n');
            }
            Ok(PumpFile { name, content })
        })
        .collect::<std::io::Result<Vec<PumpFile>>>()?;
    // Empty too: it says the other files' markers are only those it names.
    let list = match marked.is_empty() {
        true => Vec::new(),
        false => crate::wire::lzo::compress(marked.as_bytes()),
    };
    let list = PumpFile {
        name: crate::wire::LINE_MARKED.into(),
        content: Content::File(list),
    };
    files.insert(0, list);
    Ok(files)
}

/// The build's count of discrepancies: jobs that failed remotely in pump mode and then
/// compiled here, one byte each in `discrepancy_counter` beside the include server's
/// socket (distcc 3.4's file, which `pump` reports at the end).
pub(super) struct Discrepancies(Option<PathBuf>);

impl Discrepancies {
    pub(super) fn of(socket: &Path) -> Discrepancies {
        Discrepancies(
            (socket.file_name() == Some("socket".as_ref()))
                .then(|| socket.with_file_name("discrepancy_counter")),
        )
    }

    fn count(&self) -> u64 {
        self.0
            .as_ref()
            .and_then(|p| fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Counts one more; says so when this one demotes the build to plain mode.
    pub(super) fn note(&self, max: u64) {
        let Some(path) = &self.0 else {
            return;
        };
        let counted = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(b"@")?;
                f.metadata()
            });
        match counted {
            // One appender sees each length, so exactly one says it.
            Ok(m) if m.len() == max => log::warn!(
                "now using plain distcc, possibly due to inconsistent file system changes \
                 during build"
            ),
            Ok(_) => {}
            Err(e) => log::error!(
                "failed to count a discrepancy in {}: {}",
                path.display(),
                crate::logging::strerror(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_links_are_told_from_other_links() {
        let up = "../".repeat(22);
        assert!(is_system_link(&format!("{up}usr/include"), "/usr/include"));
        assert!(!is_system_link("../usr/include", "/usr/include"));
        assert!(!is_system_link(&format!("{up}usr/lib"), "/usr/include"));
        assert!(!is_system_link("/home/u/real.h", "/home/u/link.h"));
    }

    #[test]
    fn discrepancies_count_beside_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let d = Discrepancies::of(&dir.path().join("socket"));
        assert_eq!(d.count(), 0);
        d.note(2);
        d.note(2);
        assert_eq!(d.count(), 2);
        assert!(Discrepancies::of(&dir.path().join("elsewhere")).0.is_none());
    }
}
