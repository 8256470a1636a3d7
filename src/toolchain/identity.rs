//! What a compiler says it is: the version, target and configuration lines of its `-v`
//! output. Our daemon tells our client the identity of the compiler it ran, and the client
//! does not use a result whose compiler is not the one it would have run (distcc 3.4 never
//! checks: its FAQ answers "Shouldn't distcc check gcc versions?" with no, and a mismatch
//! silently gives objects that a local build would not).
//!
//! An identity is asked once per version of the compiler and kept on disk, under the name
//! of the compiler's own identity (`cache::key::compiler_identity`: the driver's content and
//! the programs it runs), so that a wrapper whose compiler changes under it is asked again.
//!
//! What is not here: when the client checks and what it does about a mismatch
//! (`client::build`), and how the daemon sends it (`wire::reply`).

use std::ffi::OsStr;
use std::io;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// How long a compiler has to answer `-v` (gcc takes a few milliseconds).
const ASK_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The lines of `-v` that say what the compiler is, in the order printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(String);

impl Identity {
    /// The identity in `-v` output (gcc and clang print it on stderr); `None` without a
    /// version line, when the program did not answer as a compiler. The configure line
    /// loses its `--build=` and `--host=`: the machine a compiler runs on does not change
    /// the code it makes for its target.
    pub fn parse(verbose: &str) -> Option<Identity> {
        let kept: Vec<String> = verbose
            .lines()
            .map(str::trim_end)
            .filter(|l| is_version(l) || SAID.iter().any(|p| l.starts_with(p)))
            .map(|l| match l.strip_prefix(CONFIGURED) {
                Some(words) => {
                    let words = words
                        .split(' ')
                        .filter(|w| !(w.starts_with("--build=") || w.starts_with("--host=")));
                    format!("{CONFIGURED}{}", words.collect::<Vec<_>>().join(" "))
                }
                None => l.to_string(),
            })
            .collect();
        kept.iter()
            .any(|l| is_version(l))
            .then(|| Identity(kept.join("\n")))
    }

    /// What goes on the wire.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The compiler at `path`, asked now with `path_var` as its `PATH` (a wrapper finds
    /// its compiler there) and in the C locale (a translated `-v` would differ between two
    /// hosts with the same compiler).
    pub fn ask(path: &Path, path_var: Option<&OsStr>) -> io::Result<Identity> {
        let mut cmd = Command::new(path);
        cmd.arg("-v").env("LC_ALL", "C");
        let (_, stderr) = run_bounded(cmd, path_var)?;
        Identity::parse(&String::from_utf8_lossy(&stderr))
            .ok_or_else(|| io::Error::other(format!("{} -v printed no version", path.display())))
    }

    /// One line for a message: the version line and the target.
    pub fn summary(&self) -> String {
        let version = self.0.lines().find(|l| is_version(l)).unwrap_or("");
        match self.0.lines().find_map(|l| l.strip_prefix("Target: ")) {
            Some(target) => format!("{version}, target {target}"),
            None => version.to_string(),
        }
    }

    /// How this identity (a host's) differs from `ours`, for the user.
    pub fn against(&self, ours: &Identity) -> String {
        let (there, here) = (self.summary(), ours.summary());
        if there == here {
            format!("{there}, configured differently there")
        } else {
            format!("{there} there, {here} here")
        }
    }
}

const CONFIGURED: &str = "Configured with: ";

/// The line prefixes kept besides the version line.
const SAID: [&str; 3] = ["Target: ", CONFIGURED, "Thread model: "];

/// Runs `cmd` (a compiler asked about itself) with `path_var` as its `PATH`, and returns
/// what it printed on stdout and stderr, within [`ASK_LIMIT`]: the program is one a
/// whitelist allows, not one known to answer. It runs in a process group of its own, which
/// goes whole if it does not answer in time.
pub fn run_bounded(mut cmd: Command, path_var: Option<&OsStr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(p) = path_var {
        cmd.env("PATH", p);
    }
    let mut child = cmd.spawn()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [Box<dyn io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped")),
        Box::new(child.stderr.take().expect("piped")),
    ];
    for (k, mut pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send((k, text));
        });
    }
    let deadline = std::time::Instant::now() + ASK_LIMIT;
    let mut out = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((k, text)) => out[k] = text,
            Err(_) => {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                let name = cmd.get_program().to_string_lossy().into_owned();
                return Err(io::Error::other(format!("{name} did not answer in time")));
            }
        }
    }
    child.wait()?;
    let [stdout, stderr] = out;
    Ok((stdout, stderr))
}

/// gcc's `gcc version 12.2.0 (Debian 12.2.0-14)`, clang's `Debian clang version 14.0.6`.
fn is_version(line: &str) -> bool {
    !line.contains('=')
        && line
            .split_once(" version ")
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// The identity of the compiler at `path`, kept in `dir/compilers/` (made once, by one
/// process at a time, per version of the compiler and `PATH`: see the module's comment),
/// or asked each time without a `dir`. `None` when it cannot be asked, which is said once
/// and kept for [`FAILURE_KEPT`] too: every job waiting for a compiler that does not
/// answer would cost more than the check.
pub fn of_compiler(path: &Path, dir: Option<&Path>, path_var: Option<&OsStr>) -> Option<Identity> {
    let warn = |e: io::Error| log::warn!("cannot identify the compiler {}: {e}", path.display());
    let Some(dir) = dir else {
        return Identity::ask(path, path_var).map_err(warn).ok();
    };
    // A compiler that could not say lately is not asked: whether it answers at all is
    // known before its version is (which itself asks it about its programs).
    let failed = failure_mark(dir, path, path_var);
    if failed.as_ref().is_some_and(|f| marked_lately(f)) {
        return None;
    }
    let mark = || {
        if let Some(f) = &failed {
            let _ = std::fs::write(f, "");
        }
    };
    let version = match crate::cache::key::compiler_identity(dir, path, path_var) {
        Ok(v) => v,
        Err(e) => {
            warn(e);
            mark();
            return None;
        }
    };
    let name = format!("{}.id", crate::cache::key::hex(&version));
    let kept = crate::cache::key::memoized(
        dir,
        &name,
        |k| match std::str::from_utf8(k) {
            Ok(t) => failed_lately(t) || Identity::parse(t).is_some(),
            Err(_) => false,
        },
        || match Identity::ask(path, path_var) {
            Ok(id) => Ok(id.0.into_bytes()),
            Err(e) => {
                warn(e);
                Ok(format!("{FAILED}{}", now_secs()).into_bytes())
            }
        },
    )
    .map_err(warn)
    .ok()?;
    let id = Identity::parse(std::str::from_utf8(&kept).ok()?);
    if id.is_none() {
        mark();
    }
    id
}

/// Where a failure to identify the compiler at `path` is marked (by the file's time).
fn failure_mark(dir: &Path, path: &Path, path_var: Option<&OsStr>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let mut h = blake3::Hasher::new();
    h.update(path.as_os_str().as_encoded_bytes());
    for n in [
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.ctime() as u64,
    ] {
        h.update(&n.to_le_bytes());
    }
    h.update(path_var.unwrap_or_default().as_encoded_bytes());
    Some(
        dir.join("compilers")
            .join(format!("{}.failed", h.finalize().to_hex())),
    )
}

/// Whether the mark `f` was made in the last [`FAILURE_KEPT`] seconds.
fn marked_lately(f: &Path) -> bool {
    std::fs::metadata(f)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < FAILURE_KEPT))
}

/// How long a compiler that could not say what it is is not asked again.
const FAILURE_KEPT: u64 = 600;

/// A kept failure: this, then when (seconds since the epoch).
const FAILED: &str = "failed at ";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `kept` is a failure recorded in the last [`FAILURE_KEPT`] seconds.
fn failed_lately(kept: &str) -> bool {
    kept.strip_prefix(FAILED)
        .and_then(|t| t.trim().parse::<u64>().ok())
        .is_some_and(|at| now_secs().saturating_sub(at) < FAILURE_KEPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCC: &str = "Using built-in specs.\nCOLLECT_GCC=gcc\n\
        COLLECT_LTO_WRAPPER=/usr/libexec/gcc/x86_64-linux-gnu/12/lto-wrapper\n\
        Target: x86_64-linux-gnu\n\
        Configured with: ../src/configure -v --with-pkgversion='Debian 12.2.0-14'\n\
        Thread model: posix\nSupported LTO compression algorithms: zlib zstd\n\
        gcc version 12.2.0 (Debian 12.2.0-14) \n";

    #[test]
    fn keeps_what_the_compiler_is_and_not_how_it_was_called() {
        let id = Identity::parse(GCC).unwrap();
        assert_eq!(
            id.text(),
            "Target: x86_64-linux-gnu\n\
             Configured with: ../src/configure -v --with-pkgversion='Debian 12.2.0-14'\n\
             Thread model: posix\ngcc version 12.2.0 (Debian 12.2.0-14)"
        );
        let other = GCC.replace("COLLECT_GCC=gcc", "COLLECT_GCC=x86_64-linux-gnu-g++");
        assert_eq!(Identity::parse(&other), Some(id.clone()));
        assert_eq!(
            id.summary(),
            "gcc version 12.2.0 (Debian 12.2.0-14), target x86_64-linux-gnu"
        );
        let clang = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n\
                     Thread model: posix\nInstalledDir: /usr/bin\n";
        assert_eq!(
            Identity::parse(clang).unwrap().summary(),
            "Debian clang version 14.0.6, target x86_64-pc-linux-gnu"
        );
        assert_eq!(Identity::parse("cc: fatal error: no input files\n"), None);
    }

    #[test]
    fn a_difference_is_named() {
        let ours = Identity::parse(GCC).unwrap();
        let newer = Identity::parse(&GCC.replace("12.2.0 (", "12.3.0 (")).unwrap();
        assert_eq!(
            newer.against(&ours),
            "gcc version 12.3.0 (Debian 12.2.0-14), target x86_64-linux-gnu there, \
             gcc version 12.2.0 (Debian 12.2.0-14), target x86_64-linux-gnu here"
        );
        let configured = Identity::parse(&GCC.replace("-v --with", "--with")).unwrap();
        assert!(configured
            .against(&ours)
            .ends_with(", configured differently there"));
    }
}
