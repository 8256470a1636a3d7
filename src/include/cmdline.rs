//! What a compiler command line says about include search: the quote and angle chains
//! (`-iquote`, `-I`, `-isystem`, the built-in directories, `-idirafter`), the source file,
//! the `-include`/`-imacros` files, the language and the flags that change the compiler's
//! built-in list (`-nostdinc`, `--sysroot`, `-isysroot`, ...); or why the command is "not
//! covered" (`-I-`, `-imultilib`, `-Xpreprocessor`, `-Wp,` other than `-MD`/`-MMD`, not
//! exactly one source, an unknown source extension), as distcc 3.4's `parse_command.py`.
//!
//! Directories stay as written (made relative to the client's working directory later),
//! after 3.4's `SafeNormPath`: leading `./` and trailing `/` removed, `.` as "".
//! Environment variables such as `CPATH` are the client's business: distcc 3.4's client
//! does not ask the include server when they are set.

/// A command line's include model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The compiler, `argv[0]`.
    pub compiler: String,
    /// The flags passed to the compiler when asking for its built-in directories.
    pub probe_flags: Vec<String>,
    /// `c`, `c++`, `objective-c` or `objective-c++`.
    pub language: String,
    /// `-iquote` directories.
    pub quote: Vec<String>,
    /// `-I` directories, then `-isystem` ones (GCC's order: all `-I` before `-isystem`).
    pub before: Vec<String>,
    /// `-idirafter` directories, searched after the built-in ones.
    pub after: Vec<String>,
    /// `-include` and `-imacros` files, in order.
    pub include_files: Vec<String>,
    /// The source file.
    pub source: String,
    /// `-D` definitions, for computed includes.
    pub defines: Vec<super::macros::Define>,
}

/// Options whose value is the next argument (when not joined), and which matter to nobody
/// here except that their value is not a source file.
const SEPARATE_ARG: &[&str] = &[
    "-o",
    "-D",
    "-U",
    "-MF",
    "-MT",
    "-MQ",
    "-A",
    "-aux-info",
    "--param",
    "-Xlinker",
    "-Xassembler",
    "-Xclang",
    "-u",
    "-L",
    "-l",
    "-T",
    "-B",
    "-G",
    "-z",
    "-target",
    "-arch",
    "-imultiarch",
    "-MJ",
    "-dumpbase",
    "-dumpdir",
    "-dumpbase-ext",
];

/// Source extensions and their languages (3.4's `TRANSLATION_UNIT_MAP` with GCC's other
/// C++ spellings).
fn language_of(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    if ext.contains('/') {
        return None;
    }
    Some(match ext {
        "c" | "i" => "c",
        "cc" | "cpp" | "cxx" | "C" | "CXX" | "CPP" | "c++" | "cp" | "ii" => "c++",
        "m" | "mi" => "objective-c",
        "mm" | "M" | "mii" => "objective-c++",
        _ => return None,
    })
}

/// 3.4's `SafeNormPath`: leading `./` and trailing `/` removed, `.` becomes "".
pub fn safe_norm(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() && p.starts_with('/') {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Parses `argv` (the whole compiler command), or says why it is not covered.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let compiler = argv.first().ok_or("empty command line")?.clone();
    let mut cmd = Command {
        compiler,
        probe_flags: Vec::new(),
        language: String::new(),
        quote: Vec::new(),
        before: Vec::new(),
        after: Vec::new(),
        include_files: Vec::new(),
        source: String::new(),
        defines: Vec::new(),
    };
    let mut isystem = Vec::new();
    let mut sources = Vec::new();
    let mut forced_language: Option<String> = None;
    let mut iprefix = String::new();
    let mut i = 1;
    // The value of option `name` at argv[i]: joined (`-Ifoo`, or `--sysroot=foo` when
    // `eq`) or the next argument.
    while i < argv.len() {
        let arg = argv[i].as_str();
        let mut value_of = |name: &str, eq: bool| -> Result<Option<String>, String> {
            if arg == name {
                i += 1;
                return argv
                    .get(i)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| format!("{name} without a value"));
            }
            let joined = arg.strip_prefix(name).filter(|v| !v.is_empty());
            Ok(match joined {
                Some(v) if eq => v.strip_prefix('=').map(str::to_string),
                Some(v) => Some(v.to_string()),
                None => None,
            })
        };
        if !arg.starts_with('-') || arg == "-" {
            if arg.starts_with('@') {
                return Err(format!("response file {arg}"));
            }
            if language_of(arg).is_some() || forced_language.is_some() {
                sources.push((arg.to_string(), forced_language.clone()));
            }
            i += 1;
            continue;
        }
        if arg == "-I-" {
            return Err("-I- is not covered".into());
        }
        if arg.starts_with("-imultilib")
            || arg.starts_with("-Xpreprocessor")
            || arg.starts_with("-fmodule")
            || arg.starts_with("-ivfsoverlay")
            || arg == "-trigraphs"
            || arg.starts_with("-iframework")
            || arg.starts_with("-F")
        {
            return Err(format!("{arg} is not covered"));
        }
        if let Some(rest) = arg.strip_prefix("-Wp,") {
            let mut parts = rest.split(',');
            let first = parts.next().unwrap_or("");
            if !(first == "-MD" || first == "-MMD") || parts.count() > 1 {
                return Err(format!("{arg} is not covered"));
            }
            i += 1;
            continue;
        }
        if let Some(d) = value_of("-iquote", false)? {
            cmd.quote.push(dir(&d)?);
        } else if let Some(d) = value_of("-isystem", false)? {
            isystem.push(dir(&d)?);
        } else if let Some(d) = value_of("-idirafter", false)? {
            cmd.after.push(dir(&d)?);
        } else if let Some(d) = value_of("-iprefix", false)? {
            iprefix = d;
        } else if let Some(d) = value_of("-iwithprefixbefore", false)? {
            cmd.before.push(dir(&format!("{iprefix}{d}"))?);
        } else if let Some(d) = value_of("-iwithprefix", false)? {
            cmd.after.push(dir(&format!("{iprefix}{d}"))?);
        } else if let Some(f) = value_of("-include", false)? {
            cmd.include_files.push(f);
        } else if let Some(f) = value_of("-imacros", false)? {
            cmd.include_files.push(f);
        } else if let Some(s) = value_of("-isysroot", false)? {
            cmd.probe_flags.push("-isysroot".into());
            cmd.probe_flags.push(s);
        } else if let Some(s) = value_of("--sysroot", true)? {
            cmd.probe_flags.push(format!("--sysroot={s}"));
        } else if let Some(d) = value_of("-D", false)? {
            cmd.defines.extend(super::macros::Define::from_option(&d));
        } else if let Some(d) = value_of("-I", false)? {
            cmd.before.push(dir(&d)?);
        } else if let Some(x) = value_of("-x", false)? {
            forced_language = (x != "none").then_some(x);
        } else if arg == "-nostdinc"
            || arg == "-nostdinc++"
            || arg == "-undef"
            || arg.starts_with("-stdlib=")
            || arg.starts_with("--target=")
            || arg == "-m32"
            || arg == "-m64"
            || arg == "-mx32"
            || arg.starts_with("-specs=")
        {
            cmd.probe_flags.push(arg.to_string());
        } else if SEPARATE_ARG.contains(&arg) {
            i += 1;
        }
        i += 1;
    }
    cmd.before.extend(isystem);
    if sources.len() != 1 {
        return Err(format!(
            "expected exactly one source file, found {}",
            sources.len()
        ));
    }
    let (source, forced) = sources.remove(0);
    let language = match forced {
        Some(x) => match x.as_str() {
            "c" | "c++" | "objective-c" | "objective-c++" => x,
            "c-header" => "c".into(),
            "c++-header" => "c++".into(),
            other => return Err(format!("language {other} is not covered")),
        },
        None => language_of(&source)
            .ok_or_else(|| format!("unknown source extension: {source}"))?
            .to_string(),
    };
    cmd.language = language;
    cmd.source = source;
    Ok(cmd)
}

/// A search directory as 3.4 keeps it, or not covered for GCC's sysroot-relative forms.
fn dir(d: &str) -> Result<String, String> {
    if d.starts_with('=') || d.starts_with("$SYSROOT") {
        return Err(format!("sysroot-relative directory {d} is not covered"));
    }
    Ok(safe_norm(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, String> {
        parse(
            &line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn chains_and_files() {
        let c = p(
            "gcc -O2 -Iinc -I ./b/ -isystem sys -iquote q -idirafter /late \
                   -include pre.h -DX=1 -MD -MF x.d -o out.o -c src/a.c",
        )
        .unwrap();
        assert_eq!(c.compiler, "gcc");
        assert_eq!(c.before, ["inc", "b", "sys"]);
        assert_eq!(c.quote, ["q"]);
        assert_eq!(c.after, ["/late"]);
        assert_eq!(c.include_files, ["pre.h"]);
        assert_eq!(c.defines.len(), 1);
        assert_eq!(
            (c.defines[0].name.as_str(), c.defines[0].body.as_str()),
            ("X", "1")
        );
        assert_eq!(c.source, "src/a.c");
        assert_eq!(c.language, "c");
        let c = p("g++ -nostdinc --sysroot=/sr -I. -x c++ -c a.inl -Wp,-MMD,a.d").unwrap();
        assert_eq!(c.language, "c++");
        assert_eq!(c.before, [""]);
        assert_eq!(c.probe_flags, ["-nostdinc", "--sysroot=/sr"]);
    }

    #[test]
    fn not_covered() {
        for line in [
            "gcc -I- -c a.c",
            "gcc -imultilib x -c a.c",
            "gcc -Xpreprocessor -foo -c a.c",
            "gcc -Wp,-DX -c a.c",
            "gcc -c a.c b.c",
            "gcc -c a.S",
            "gcc -c",
            "gcc -I=inc -c a.c",
        ] {
            assert!(p(line).is_err(), "{line}");
        }
    }
}
