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

    /// As another end sent it.
    pub fn from_wire(text: String) -> Identity {
        Identity(text)
    }

    /// What goes on the wire.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The compiler at `path`, asked now with `path_var` as its `PATH` (a wrapper finds
    /// its compiler there) and in the C locale (a translated `-v` would differ between two
    /// hosts with the same compiler), for at most [`ASK_LIMIT`]: the program is one a
    /// whitelist allows, not one known to answer. It runs in a process group of its own,
    /// which goes whole if it does not answer in time.
    pub fn ask(path: &Path, path_var: Option<&OsStr>) -> io::Result<Identity> {
        let mut cmd = Command::new(path);
        cmd.arg("-v")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(p) = path_var {
            cmd.env("PATH", p);
        }
        let mut child = cmd.spawn()?;
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = io::Read::read_to_end(&mut stderr, &mut text);
            let _ = tx.send(text);
        });
        let text = rx.recv_timeout(ASK_LIMIT);
        if text.is_err() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.wait();
        let text = text.map_err(|_| {
            io::Error::other(format!("{} -v did not answer in time", path.display()))
        })?;
        Identity::parse(&String::from_utf8_lossy(&text))
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

/// gcc's `gcc version 12.2.0 (Debian 12.2.0-14)`, clang's `Debian clang version 14.0.6`.
fn is_version(line: &str) -> bool {
    !line.contains('=')
        && line
            .split_once(" version ")
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// The identity of the compiler at `path`, kept in `dir/compilers/` (made once, by one
/// process at a time, per version of the compiler: see the module's comment), or asked
/// each time without a `dir`. `None`, and a warning, when it cannot be asked; that is not
/// kept, and asked again next time.
pub fn of_compiler(path: &Path, dir: Option<&Path>, path_var: Option<&OsStr>) -> Option<Identity> {
    let warn = |e: io::Error| log::warn!("cannot identify the compiler {}: {e}", path.display());
    let Some(dir) = dir else {
        return Identity::ask(path, path_var).map_err(warn).ok();
    };
    let version = crate::cache::key::compiler_identity(dir, path)
        .map_err(warn)
        .ok()?;
    let name = format!("{}.id", crate::cache::key::hex(&version));
    let kept = crate::cache::key::memoized(
        dir,
        &name,
        |k| std::str::from_utf8(k).is_ok_and(|t| Identity::parse(t).is_some()),
        || Identity::ask(path, path_var).map(|id| id.0.into_bytes()),
    )
    .map_err(warn)
    .ok()?;
    Identity::parse(std::str::from_utf8(&kept).ok()?)
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
