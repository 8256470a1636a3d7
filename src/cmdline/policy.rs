//! What the daemon agrees to run: a compiler by name (never an arbitrary program), and no
//! option that the option table (`table`) marks as refused: those that load code, read or
//! write files the client names, or hand raw options to an inner tool.
//!
//! distcc 3.4 refuses `-fplugin=` and `-specs=` only; `-wrapper`, `-B`, `@file`, `-MF` and
//! friends pass. This module decides; the daemon refuses and logs. The client asks the same
//! question before it sends a job (`classify`), so our client never sends what we refuse.

use std::fmt;
use std::path::{Path, PathBuf};

use super::classify::scan;
use super::table::{self, Danger, LocalReason, OnServer, Role};
use crate::toolchain::names::is_compiler_name;

/// Why a job is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// argv[0] is not the name of a C/C++ compiler.
    NotACompiler(String),
    /// argv[0] is a path outside the system binary directories.
    AbsolutePath(String),
    /// An option that would load code or touch files the client chose, and why.
    UnsafeOption { arg: String, why: Danger },
    /// The compiler has no entry in the whitelist directory.
    NotWhitelisted { name: String, dir: PathBuf },
    /// The compiler is not in `DISTCC_CMDLIST`.
    NotInCmdList(String),
    /// `DISTCC_CMDLIST` cannot be read, so nothing runs.
    CmdListUnreadable { file: PathBuf, error: String },
    /// Directives-only text with a directive gcc would obey on the server (`#include`).
    Directive(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotACompiler(c) => write!(
                f,
                "\"{c}\" is not a compiler this distccd runs (gcc, g++, cc, c++, clang and their \
                 versioned or target-prefixed names)"
            ),
            Refusal::AbsolutePath(c) => write!(
                f,
                "compiler name {c} cannot be an absolute path outside /usr/bin and /bin"
            ),
            Refusal::NotWhitelisted { name, dir } => write!(
                f,
                "{name} not in {} whitelist (add a link there, as update-distcc-symlinks does)",
                dir.display()
            ),
            Refusal::NotInCmdList(c) => write!(f, "lookup of {c} in DISTCC_CMDLIST failed"),
            Refusal::CmdListUnreadable { file, error } => write!(
                f,
                "DISTCC_CMDLIST file {} cannot be read ({error}): refusing every job",
                file.display()
            ),
            Refusal::Directive(line) => write!(
                f,
                "directives-only text holds \"{line}\", which gcc does not write there and \
                 would obey on this machine; refused"
            ),
            Refusal::UnsafeOption { arg, why } => write!(f, "option \"{arg}\" {why}; refused"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Which compilers the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compilers {
    /// Programs named like compilers that have an entry in this directory (a link such as
    /// `/usr/lib/distcc/gcc`, whose target must exist), as distcc 3.3 and later require.
    Whitelist(PathBuf),
    /// `DISTCC_CMDLIST`: exactly these programs, matched on their last `words` path
    /// components; the listed path is what runs.
    List { paths: Vec<String>, words: usize },
    /// `DISTCC_CMDLIST` names a file that cannot be read: nothing runs (distcc 3.4 then
    /// runs anything).
    Unreadable { file: PathBuf, error: String },
    /// `--enable-tcp-insecure`: whatever the client names.
    Any,
}

impl Compilers {
    /// Reads a `DISTCC_CMDLIST` file: one compiler path per line.
    pub fn from_cmdlist(file: &Path, words: usize) -> Compilers {
        match std::fs::read_to_string(file) {
            Ok(text) => Compilers::List {
                paths: text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
                words: words.max(1),
            },
            Err(e) => Compilers::Unreadable {
                file: file.to_path_buf(),
                error: e.to_string(),
            },
        }
    }
}

/// The last `n` `/`-separated components of `path`.
fn last_words(path: &str, n: usize) -> Vec<&str> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    parts[parts.len().saturating_sub(n)..].to_vec()
}

/// Checks the compiler a client named; returns the path to run instead, if any.
fn check_compiler(compiler: &str, compilers: &Compilers) -> Result<Option<String>, Refusal> {
    match compilers {
        Compilers::Any => Ok(None),
        Compilers::Unreadable { file, error } => Err(Refusal::CmdListUnreadable {
            file: file.clone(),
            error: error.clone(),
        }),
        Compilers::List { paths, words } => {
            let wanted = last_words(compiler, *words);
            paths
                .iter()
                .find(|p| last_words(p, *words) == wanted)
                .map(|p| Some(p.clone()))
                .ok_or_else(|| Refusal::NotInCmdList(compiler.to_string()))
        }
        Compilers::Whitelist(dir) => {
            let name = if compiler.contains('/') {
                compiler
                    .strip_prefix("/usr/bin/")
                    .or_else(|| compiler.strip_prefix("/bin/"))
                    .filter(|n| !n.contains('/'))
                    .ok_or_else(|| Refusal::AbsolutePath(compiler.to_string()))?
            } else {
                compiler
            };
            if !is_compiler_name(name) {
                return Err(Refusal::NotACompiler(compiler.to_string()));
            }
            // `exists` follows the link: a dangling entry does not count.
            if !dir.join(name).exists() {
                return Err(Refusal::NotWhitelisted {
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                });
            }
            Ok(None)
        }
    }
}

impl Refusal {
    /// The argument refused, for an option refusal; the compiler's name otherwise.
    pub fn arg(&self) -> &str {
        match self {
            Refusal::UnsafeOption { arg, .. } => arg,
            Refusal::NotACompiler(c) | Refusal::AbsolutePath(c) | Refusal::NotInCmdList(c) => c,
            Refusal::NotWhitelisted { name, .. } => name,
            Refusal::CmdListUnreadable { .. } | Refusal::Directive(_) => "",
        }
    }
}

/// Checks the options of a command line (`argv[0]` is the compiler) against the table:
/// every option whose row is refused, and assembler options that name files. A separate
/// value is the option's, never checked as an option of its own (`--param -fplugin` is a
/// parameter's name, harmless).
pub fn check_options(argv: &[String]) -> Result<(), Refusal> {
    let refuse = |arg: &str, why| {
        Err(Refusal::UnsafeOption {
            arg: arg.to_string(),
            why,
        })
    };
    let items = match scan(argv) {
        Ok(items) => items,
        // `@file`: more arguments, read from a file the client names.
        Err(local) if local.reason == LocalReason::ResponseFile => {
            return refuse(local.arg.as_deref().unwrap_or("@"), Danger::NamesFiles)
        }
        // A value missing at the end: no compile to check, which the caller finds out.
        Err(_) => return Ok(()),
    };
    for (item, row) in items.iter().filter_map(|i| Some((i, i.row()?))) {
        let arg = &argv[item.at()];
        match row.server {
            OnServer::Refused(why) => return refuse(arg, why),
            OnServer::Runs
                if row.role == Role::Assembler
                    && table::assembler_names_files(item.value(argv)) =>
            {
                return refuse(arg, Danger::NamesFiles)
            }
            OnServer::Runs => {}
        }
    }
    Ok(())
}

/// Checks a received command line (`argv[0]` is the compiler). Returns the compiler path
/// to run in place of `argv[0]` when `DISTCC_CMDLIST` maps it. The option checks apply
/// whatever `compilers` says.
pub fn check(argv: &[String], compilers: &Compilers) -> Result<Option<String>, Refusal> {
    let compiler = argv.first().map(String::as_str).unwrap_or("");
    let replacement = check_compiler(compiler, compilers)?;
    check_options(argv)?;
    Ok(replacement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// A whitelist directory naming `names`, all pointing at a program that exists.
    fn whitelist(names: &[&str]) -> (tempfile::TempDir, Compilers) {
        let dir = tempfile::tempdir().unwrap();
        for n in names {
            let _ = std::os::unix::fs::symlink("/bin/sh", dir.path().join(n));
        }
        let c = Compilers::Whitelist(dir.path().to_path_buf());
        (dir, c)
    }

    #[test]
    fn compilers() {
        let oks = [
            "gcc",
            "g++",
            "cc",
            "c++",
            "clang",
            "clang++",
            "gcc-12",
            "clang-14",
            "x86_64-linux-gnu-gcc",
            "x86_64-linux-gnu-g++-12",
            "arm-none-eabi-gcc",
            "/usr/bin/gcc",
            "/bin/cc",
            "clang++-17",
        ];
        let names: Vec<&str> = oks.iter().map(|c| c.rsplit('/').next().unwrap()).collect();
        let (_dir, wl) = whitelist(&names);
        for ok in oks {
            assert_eq!(check(&v(&format!("{ok} -c a.c")), &wl), Ok(None), "{ok}");
        }
        for bad in ["sh", "bash", "python3", "gccx", "-gcc", "x-gcc;rm", "make"] {
            assert!(
                matches!(
                    check(&v(&format!("{bad} -c a.c")), &wl),
                    Err(Refusal::NotACompiler(_))
                ),
                "{bad}"
            );
        }
        for bad in [
            "/tmp/gcc",
            "/usr/local/bin/gcc",
            "./gcc",
            "/usr/bin/../bin/gcc",
        ] {
            assert!(
                matches!(
                    check(&v(&format!("{bad} -c a.c")), &wl),
                    Err(Refusal::AbsolutePath(_))
                ),
                "{bad}"
            );
        }
    }

    /// What our client sends must be what our server runs: a refusal looks like a broken
    /// host to the client, which then backs it off for every job.
    #[test]
    fn server_accepts_what_the_client_sends() {
        use crate::cmdline::{classify, Decision, DirectivesOnly};
        for line in [
            "gcc -c hello.c",
            "gcc -O2 -g -Wall -MD -MF out/.a.d -MT out/a.o -c src/a.c -o out/a.o",
            "gcc -Wp,-MD,dir/.a.o.d -nostdinc -isystem /usr/lib/gcc/include -I./include \
             -include ./include/linux/kconfig.h -D__KERNEL__ -DKBUILD_BASENAME='\"a\"' \
             -Wa,--noexecstack -fno-PIE -mcmodel=kernel -c -o dir/a.o dir/a.c",
            "cc -DHAVE_CONFIG_H -I. -I.. -g -O2 -MT lib.lo -MD -MP -MF .deps/lib.Tpo -c lib.c -fPIC -DPIC -o .libs/lib.o",
            "/usr/bin/c++ -DFOO -isystem /opt/include -O3 -DNDEBUG -std=gnu++17 -MD -MT x.o -MF x.o.d -o x.o -c x.cpp",
            "g++ --param=ssp-buffer-size=4 -fstack-protector-strong -Wformat -Werror=format-security -c a.cc",
            "gcc --sysroot=/opt/sdk -c a.c --output=a.o",
            "gcc --sysroot /opt/sdk --language=c -c weird.txt -o w.o",
            "clang --target=aarch64-linux-gnu -c a.c -o a.o",
            "gcc -x c -c a.txt -o a.o",
            "gcc -S a.c",
            "gcc -Xassembler --noexecstack -c a.c",
            "gcc -Wa,-I. -c a.c",
            "gcc -fprofile-update=atomic -c a.c",
            "gcc --param=ssp-buffer-size=4 -c a.c",
        ] {
            let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
            let Decision::Remote(job) = classify(&argv, DirectivesOnly::WithDebugInfo) else {
                panic!("{line}: not distributed");
            };
            let sent = job.server_argv();
            assert_eq!(check(&sent, &Compilers::Any), Ok(None), "{line}\nsends {sent:?}");
            assert!(
                crate::cmdline::parse_received(&sent).is_ok(),
                "{line}: the server would not compile {sent:?}"
            );
        }
    }

    #[test]
    fn whitelist_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/usr/bin/gcc", dir.path().join("gcc")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/cc", dir.path().join("cc")).unwrap();
        let wl = Compilers::Whitelist(dir.path().to_path_buf());
        assert_eq!(check(&v("gcc -c a.c"), &wl), Ok(None));
        assert_eq!(check(&v("/usr/bin/gcc -c a.c"), &wl), Ok(None));
        for bad in ["g++ -c a.cc", "cc -c a.c", "clang -c a.c"] {
            assert!(
                matches!(check(&v(bad), &wl), Err(Refusal::NotWhitelisted { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn cmdlist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cmdlist");
        std::fs::write(&file, "/usr/bin/gcc\n# comment\n/opt/cross/bin/arm-gcc\n").unwrap();
        let one = Compilers::from_cmdlist(&file, 1);
        assert_eq!(
            check(&v("gcc -c a.c"), &one),
            Ok(Some("/usr/bin/gcc".into()))
        );
        assert_eq!(
            check(&v("/usr/local/bin/arm-gcc -c a.c"), &one),
            Ok(Some("/opt/cross/bin/arm-gcc".into()))
        );
        assert!(matches!(
            check(&v("g++ -c a.c"), &one),
            Err(Refusal::NotInCmdList(_))
        ));
        // Two words must both match.
        let two = Compilers::from_cmdlist(&file, 2);
        assert_eq!(
            check(&v("bin/gcc -c a.c"), &two),
            Ok(Some("/usr/bin/gcc".into()))
        );
        assert!(check(&v("gcc -c a.c"), &two).is_err());
        // Unreadable: nothing runs (distcc 3.4 runs anything).
        let gone = Compilers::from_cmdlist(&dir.path().join("missing"), 1);
        assert!(matches!(
            check(&v("gcc -c a.c"), &gone),
            Err(Refusal::CmdListUnreadable { .. })
        ));
        // The option checks still apply.
        assert!(matches!(
            check(&v("gcc -c a.c -fplugin=x.so"), &one),
            Err(Refusal::UnsafeOption { .. })
        ));
    }

    #[test]
    fn unsafe_options() {
        for bad in [
            "-fplugin=/tmp/x.so",
            "-specs=/tmp/s",
            "-wrapper",
            "-B/tmp",
            "@/etc/passwd",
            "-MF/etc/x",
            "-MD",
            "-MJ/tmp/x",
            "-save-temps",
            "-fdump-tree-all",
            "-include",
            "-load",
            "--write-dependencies",
            "--include=x",
            "-fopt-info-all=/tmp/x",
            "-Wa,-alh=/tmp/x.lst",
            "-Wa,--MD,/x",
            "-Wp,-MD,/x",
            "-Xpreprocessor",
            "-Xclang",
            "-fprofile-note=/x",
            "-fprofile-generate",
            "-Xassembler -alh=x",
            "-fstack-usage",
            "-gsplit-dwarf",
            "-fno-preprocessed",
            "-fmodules-ts",
            "-ftime-trace=/x",
        ] {
            let argv = v(&format!("gcc -c a.c {bad} x"));
            assert!(
                matches!(
                    check(&argv, &Compilers::Any),
                    Err(Refusal::UnsafeOption { .. })
                ),
                "{bad}"
            );
        }
        for ok in [
            "gcc -O2 -g -Wall -std=c99 -fPIC -c a.c -o a.o",
            "gcc -Wa,--noexecstack -c a.c",
            "gcc --param=ssp-buffer-size=4 --param max-inline-insns-single=10 -c a.c",
            "gcc --sysroot=/opt/sdk -c a.c -o a.o",
            "clang --target=aarch64-linux-gnu -c a.c",
            "gcc -iquote . -I inc -DX=1 -c a.c",
            "gcc -Wa,-I. -Xassembler --noexecstack -fprofile-update=atomic -c a.c",
            "gcc --param -fplugin=x -c a.c",
            "gcc -c a.c --output=x.o --language=c",
        ] {
            assert_eq!(check(&v(ok), &Compilers::Any), Ok(None), "{ok}");
        }
    }
}
