//! What the daemon agrees to run: a compiler by name (never an arbitrary program), and no
//! option that loads code or reads or writes files the client chooses.
//!
//! distcc 3.4 refuses `-fplugin=` and `-specs=` only; `-wrapper`, `-B`, `@file`, `-MF` and
//! friends pass. This module decides; the daemon refuses and logs.

use std::fmt;

/// Why a job is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// argv[0] is not the name of a C/C++ compiler.
    NotACompiler(String),
    /// argv[0] is a path outside the system binary directories.
    AbsolutePath(String),
    /// An option that would load code or touch files the client chose.
    UnsafeOption(String),
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
            Refusal::UnsafeOption(o) => write!(
                f,
                "option \"{o}\" loads code or touches files chosen by the client; refused"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Compiler driver names, before an optional `-VERSION` suffix and after an optional
/// `TARGET-` prefix.
const DRIVERS: &[&str] = &["cc", "c++", "c89", "c99", "gcc", "g++", "clang", "clang++"];

fn is_compiler_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
    if name.is_empty() || !name.chars().all(ok_char) {
        return false;
    }
    // Drop a version suffix such as `-12` or `-14.0`.
    let unversioned = match name.rsplit_once('-') {
        Some((head, ver))
            if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            head
        }
        _ => name,
    };
    DRIVERS.iter().any(|d| {
        unversioned == *d
            || unversioned
                .strip_suffix(d)
                .is_some_and(|prefix| prefix.ends_with('-') && prefix.len() > 1)
    })
}

/// Options refused outright: (prefix, exact-only).
const UNSAFE: &[(&str, bool)] = &[
    ("-fplugin", false),
    ("-fpass-plugin", false),
    ("-specs", false),
    ("--specs", false),
    ("-wrapper", true),
    ("-B", false),
    ("--prefix", false),
    ("-MF", false),
    ("-aux-info", false),
    ("-dumpdir", false),
    ("-dumpbase", false),
    ("-save-temps", false),
    ("-fdump-", false),
    ("-include", false),
    ("-imacros", false),
    ("--sysroot", false),
    ("-isysroot", false),
    ("-iplugindir", false),
    ("--output", false),
    ("-fopt-info", false),
    ("-fprofile-note", false),
    ("-fprofile-dir", false),
    ("-fprofile-generate", false),
    ("-fprofile-use", false),
    ("-fauto-profile", false),
    ("-fsave-optimization-record", false),
    ("-Xassembler", true),
    ("-load", true),
    ("-plugin", true),
    ("-add-plugin", true),
];

/// `-Wa,...` options that make the assembler read or write files of the client's choosing:
/// listings (`-a...=FILE`), dependency files, other outputs, option files.
fn assembler_writes_files(arg: &str) -> bool {
    arg.strip_prefix("-Wa,").is_some_and(|opts| {
        opts.split(',').any(|o| {
            ["-a", "--MD", "-o", "@", "--listing", "-I"]
                .iter()
                .any(|p| o.starts_with(p))
        })
    })
}

/// Checks a received command line; `argv[0]` is the compiler.
pub fn check(argv: &[String]) -> Result<(), Refusal> {
    let compiler = argv.first().map(String::as_str).unwrap_or("");
    let name = if compiler.contains('/') {
        let name = compiler
            .strip_prefix("/usr/bin/")
            .or_else(|| compiler.strip_prefix("/bin/"))
            .filter(|n| !n.contains('/'))
            .ok_or_else(|| Refusal::AbsolutePath(compiler.to_string()))?;
        name
    } else {
        compiler
    };
    if !is_compiler_name(name) {
        return Err(Refusal::NotACompiler(compiler.to_string()));
    }
    for arg in &argv[1..] {
        let refused = arg.starts_with('@')
            || assembler_writes_files(arg)
            || UNSAFE.iter().any(
                |&(p, exact)| {
                    if exact {
                        arg == p
                    } else {
                        arg.starts_with(p)
                    }
                },
            );
        if refused {
            return Err(Refusal::UnsafeOption(arg.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn compilers() {
        for ok in [
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
        ] {
            assert_eq!(check(&v(&format!("{ok} -c a.c"))), Ok(()), "{ok}");
        }
        for bad in ["sh", "bash", "python3", "gccx", "-gcc", "x-gcc;rm", "make"] {
            assert!(
                matches!(
                    check(&v(&format!("{bad} -c a.c"))),
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
                    check(&v(&format!("{bad} -c a.c"))),
                    Err(Refusal::AbsolutePath(_))
                ),
                "{bad}"
            );
        }
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
            "-save-temps",
            "-fdump-tree-all",
            "-include",
            "-load",
            "--output=/etc/x",
            "-fopt-info-all=/tmp/x",
            "-Wa,-alh=/tmp/x.lst",
            "-Wa,--MD,/x",
            "-Xassembler",
            "-fprofile-note=/x",
        ] {
            let argv = v(&format!("gcc -c a.c {bad} x"));
            assert!(
                matches!(check(&argv), Err(Refusal::UnsafeOption(_))),
                "{bad}"
            );
        }
        assert_eq!(
            check(&v("gcc -O2 -g -Wall -std=c99 -fPIC -c a.c -o a.o")),
            Ok(())
        );
        assert_eq!(check(&v("gcc -Wa,--noexecstack -c a.c")), Ok(()));
    }
}
