//! What a compiler command line says about preprocessing: the search lists (`-iquote`,
//! `-I`, `-isystem`, `-idirafter`, `-iprefix`/`-iwithprefix`, `=` and `$SYSROOT` prefixes),
//! the source file and its language, the `-D`/`-U` options in order, the `-include` and
//! `-imacros` files, and the flags to give the compiler when asking for its built-in
//! directories and predefined macros (every flag that may change them: `-std`, `-O`,
//! `-m*`, `-f*`, `--sysroot`, `-nostdinc`, ...). Or why the command is "not covered"
//! (`-I-`, `-imultilib`, `-Xpreprocessor`, `-Wp,` other than `-MD`/`-MMD`, not exactly one
//! source, an unknown language), which sends the client to plain mode.
//!
//! Directories stay as written (made relative to the client's working directory later),
//! after 3.4's `SafeNormPath`: leading `./` and trailing `/` removed, `.` as "".
//! Environment variables such as `CPATH` are the client's business: distcc 3.4's client
//! does not ask the include server when they are set.

use super::lexer::Mode;

/// A command line's preprocessing model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The compiler, `argv[0]`.
    pub compiler: String,
    /// The flags to pass when asking the compiler for its built-in directories and
    /// predefined macros.
    pub probe_flags: Vec<String>,
    /// `c`, `c++`, `objective-c`, `objective-c++` or `assembler-with-cpp`.
    pub language: String,
    /// `-iquote` directories.
    pub quote: Vec<String>,
    /// `-I` (and `-iwithprefixbefore`) directories.
    pub bracket: Vec<String>,
    /// `-isystem` directories, searched before the built-in ones.
    pub isystem: Vec<String>,
    /// `-idirafter` (and `-iwithprefix`) directories, searched after the built-in ones.
    pub after: Vec<String>,
    /// `-imacros` files, then `-include` files, each in order (GCC reads every
    /// `-imacros` file first).
    pub include_files: Vec<String>,
    /// The source file.
    pub source: String,
    /// `-D` and `-U`, in order.
    pub macros: Vec<MacroOption>,
    /// The last `-std=` (`-ansi` as the oldest ISO standard).
    pub std: Option<String>,
    /// `-trigraphs`.
    pub trigraphs: bool,
    /// `-fms-extensions` or `-fms-compatibility` (the last of each with its `-fno-`, or
    /// through `-Xclang`): clang then searches every includer's directory and honours
    /// `#pragma include_alias`, which the analysis does not model. (A Windows target
    /// does the same: its `_MSC_VER` shows it.)
    pub microsoft: bool,
}

/// A `-D` or `-U` option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacroOption {
    Define(String),
    Undef(String),
}

impl Command {
    /// Whether `true` and `false` are keywords in `#if`.
    pub fn cplusplus(&self) -> bool {
        self.language.ends_with("c++")
    }

    /// How the language mode changes the lexing (GCC's `lang_defaults`): raw strings in
    /// C++11 and later and in GNU C99 and later; trigraphs in the strict ISO modes before
    /// C++17, or with `-trigraphs`. `clang` differs: raw strings in C++11 and later only,
    /// and `#elifdef` in every mode (clang 14 takes it everywhere, with a warning).
    pub fn lex_mode(&self, clang: bool) -> Mode {
        let cxx = self.cplusplus();
        let std = self.std.as_deref();
        let old_cxx = |s: &str| matches!(s, "c++98" | "c++03" | "gnu++98" | "gnu++03");
        let raw_strings = match std {
            _ if self.language == "assembler-with-cpp" => false,
            None => !clang || cxx,
            Some(s) if cxx => !old_cxx(s),
            Some(_) if clang => false,
            Some(s) => s.starts_with("gnu") && !matches!(s, "gnu89" | "gnu90"),
        };
        let strict = std.is_some_and(|s| !s.starts_with("gnu"));
        let trigraphs_removed = |s: &str| {
            cxx && !matches!(s, "c++98" | "c++03" | "c++0x" | "c++11" | "c++1y" | "c++14")
        };
        let new_enough = |s: &str| {
            matches!(
                s,
                "c2x" | "c23" | "iso9899:2024" | "c++2b" | "c++23" | "c++2c" | "c++26"
            )
        };
        let digit_separators = match std {
            _ if self.language == "assembler-with-cpp" => false,
            None => cxx,
            Some(s) if cxx => {
                !old_cxx(s) && !matches!(s, "c++0x" | "gnu++0x" | "c++11" | "gnu++11")
            }
            Some(s) => matches!(s, "c2x" | "gnu2x" | "c23" | "gnu23" | "iso9899:2024"),
        };
        Mode {
            raw_strings,
            trigraphs: self.trigraphs || (strict && !std.is_some_and(trigraphs_removed)),
            digit_separators,
            splice_nul: !clang,
            elifdef: clang || !strict || std.is_some_and(new_enough),
        }
    }
}

/// The warning options that change predefined macros (`__DEPRECATED`, and g++'s
/// `__cpp_runtime_arrays`): probed, unlike the others.
const MACRO_WARNINGS: &[&str] = &[
    "-Wdeprecated",
    "-Wno-deprecated",
    "-Wpedantic",
    "-Wno-pedantic",
];

/// Options whose value is the next argument (when not joined) and that do not change the
/// compiler's built-in directories or macros: left out of the probe, with their value.
const UNPROBED_WITH_VALUE: &[&str] = &[
    "-o",
    "-MF",
    "-MT",
    "-MQ",
    "-MJ",
    "-aux-info",
    "-Xlinker",
    "-Xassembler",
    "-u",
    "-L",
    "-l",
    "-T",
    "-z",
    "-dumpbase",
    "-dumpdir",
    "-dumpbase-ext",
];

/// Options kept for the probe whose value is the next argument when not joined.
const PROBED_WITH_VALUE: &[&str] = &[
    "--param",
    "-Xclang",
    "-target",
    "-arch",
    "-imultiarch",
    "-B",
    "-G",
    "-A",
];

/// Options without a value that do not change the built-in directories or macros.
const UNPROBED: &[&str] = &["-c", "-S", "-MD", "-MMD", "-MP", "-MG", "-pipe", "-v"];

/// Source extensions and their languages (3.4's `TRANSLATION_UNIT_MAP` with GCC's other
/// C++ spellings and preprocessed assembler).
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
        "S" | "sx" => "assembler-with-cpp",
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

/// Which list a search directory goes to.
#[derive(Clone, Copy)]
enum List {
    Quote,
    Bracket,
    System,
    After,
}

/// Parses `argv` (the whole compiler command), or says why it is not covered.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let compiler = argv.first().ok_or("empty command line")?.clone();
    let mut cmd = Command {
        compiler,
        probe_flags: Vec::new(),
        language: String::new(),
        quote: Vec::new(),
        bracket: Vec::new(),
        isystem: Vec::new(),
        after: Vec::new(),
        include_files: Vec::new(),
        source: String::new(),
        macros: Vec::new(),
        std: None,
        trigraphs: false,
        microsoft: false,
    };
    // `-fms-extensions`, `-fms-compatibility`: the last of each.
    let mut ms = [false; 2];
    let mut dirs: Vec<(List, String)> = Vec::new();
    let mut imacros = Vec::new();
    let mut sources = Vec::new();
    let mut forced_language: Option<String> = None;
    let mut iprefix = String::new();
    let mut sysroot = String::new();
    let mut isysroot: Option<String> = None;
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].as_str();
        // The value of option `name` at argv[i]: joined (`-Ifoo`, or `--sysroot=foo` when
        // `eq`) or the next argument.
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
            || arg.starts_with("-iframework")
            || arg.starts_with("-F")
            || arg == "-traditional"
            || arg == "-traditional-cpp"
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
            dirs.push((List::Quote, d));
        } else if let Some(d) = value_of("-isystem", false)? {
            dirs.push((List::System, d));
        } else if let Some(d) = value_of("-idirafter", false)? {
            dirs.push((List::After, d));
        } else if let Some(d) = value_of("-iprefix", false)? {
            iprefix = d;
        } else if let Some(d) = value_of("-iwithprefixbefore", false)? {
            dirs.push((List::Bracket, format!("{iprefix}{d}")));
        } else if let Some(d) = value_of("-iwithprefix", false)? {
            dirs.push((List::After, format!("{iprefix}{d}")));
        } else if let Some(f) = value_of("-include", false)? {
            cmd.include_files.push(f);
        } else if let Some(f) = value_of("-imacros", false)? {
            imacros.push(f);
        } else if let Some(s) = value_of("-isysroot", false)? {
            cmd.probe_flags.push("-isysroot".into());
            cmd.probe_flags.push(s.clone());
            isysroot = Some(s);
        } else if let Some(s) = value_of("--sysroot", true)? {
            cmd.probe_flags.push(format!("--sysroot={s}"));
            sysroot = s;
        } else if let Some(d) = value_of("-D", false)? {
            cmd.macros.push(MacroOption::Define(d));
        } else if let Some(u) = value_of("-U", false)? {
            cmd.macros.push(MacroOption::Undef(u));
        } else if let Some(d) = value_of("-I", false)? {
            dirs.push((List::Bracket, d));
        } else if let Some(x) = value_of("-x", false)? {
            forced_language = (x != "none").then_some(x);
        } else if UNPROBED_WITH_VALUE.contains(&arg) || arg == "--output" {
            i += 1;
        } else if arg.starts_with("-o") || arg.starts_with("--output=") {
            // The output, joined (`-o$@`): the probe must not write there.
        } else if let Some(std) = arg
            .strip_prefix("-std=")
            .or_else(|| arg.strip_prefix("--std="))
        {
            cmd.std = Some(std.to_string());
            cmd.probe_flags.push(format!("-std={std}"));
        } else if arg == "--std" {
            i += 1;
            let std = argv.get(i).ok_or("--std without a value")?;
            cmd.std = Some(std.clone());
            cmd.probe_flags.push(format!("-std={std}"));
        } else if arg == "-ansi" {
            let cxx = forced_language
                .as_deref()
                .is_some_and(|l| l.ends_with("c++"))
                || argv.iter().any(|a| language_of(a) == Some("c++"));
            cmd.std = Some(if cxx { "c++98" } else { "c90" }.to_string());
            cmd.probe_flags.push(arg.to_string());
        } else if arg == "-trigraphs" {
            cmd.trigraphs = true;
            cmd.probe_flags.push(arg.to_string());
        } else if let Some((which, on, n)) = microsoft_option(argv, i) {
            ms[which] = on;
            cmd.probe_flags.extend(argv[i..i + n].iter().cloned());
            i += n - 1;
        } else if UNPROBED.contains(&arg)
            || arg.starts_with("-M")
            || (arg.starts_with("-W") && !MACRO_WARNINGS.contains(&arg))
            || arg.starts_with("-g")
        {
            // Dependency output, warnings and debugging change no macro or directory.
        } else if PROBED_WITH_VALUE.contains(&arg) {
            cmd.probe_flags.push(arg.to_string());
            if let Some(v) = argv.get(i + 1) {
                cmd.probe_flags.push(v.clone());
            }
            i += 1;
        } else {
            cmd.probe_flags.push(arg.to_string());
        }
        i += 1;
    }
    imacros.append(&mut cmd.include_files);
    cmd.include_files = imacros;
    let header_root = isysroot.unwrap_or(sysroot);
    for (list, d) in dirs {
        let d = dir(&d, &header_root);
        match list {
            List::Quote => cmd.quote.push(d),
            List::Bracket => cmd.bracket.push(d),
            List::System => cmd.isystem.push(d),
            List::After => cmd.after.push(d),
        }
    }
    if sources.len() != 1 {
        return Err(format!(
            "expected exactly one source file, found {}",
            sources.len()
        ));
    }
    let (source, forced) = sources.remove(0);
    let language = match forced {
        Some(x) => match x.as_str() {
            "c" | "c++" | "objective-c" | "objective-c++" | "assembler-with-cpp" => x,
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
    cmd.microsoft = ms[0] || ms[1];
    Ok(cmd)
}

/// `-fms-extensions` (0) or `-fms-compatibility` (1) at `argv[i]`, or its `-fno-` form,
/// by itself or after `-Xclang` (then no predefined macro shows it): which, whether on,
/// and how many arguments it takes.
fn microsoft_option(argv: &[String], i: usize) -> Option<(usize, bool, usize)> {
    let (arg, n) = match argv[i].as_str() {
        "-Xclang" => (argv.get(i + 1)?.as_str(), 2),
        a => (a, 1),
    };
    let off = arg.strip_prefix("-fno-");
    let which = match off.or_else(|| arg.strip_prefix("-f"))? {
        "ms-extensions" => 0,
        "ms-compatibility" => 1,
        _ => return None,
    };
    Some((which, off.is_none(), n))
}

/// A search directory as 3.4 keeps it, with GCC's `=` and `$SYSROOT` prefixes replaced by
/// the sysroot.
fn dir(d: &str, sysroot: &str) -> String {
    let d = if let Some(rest) = d.strip_prefix('=') {
        format!("{sysroot}{rest}")
    } else if let Some(rest) = d.strip_prefix("$SYSROOT") {
        format!("{sysroot}{rest}")
    } else {
        d.to_string()
    };
    safe_norm(&d)
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
                   -include pre.h -imacros m.h -DX=1 -UY -MD -MF x.d -Wall -g -o out.o -c src/a.c",
        )
        .unwrap();
        assert_eq!(c.compiler, "gcc");
        assert_eq!(c.bracket, ["inc", "b"]);
        assert_eq!(c.isystem, ["sys"]);
        assert_eq!(c.quote, ["q"]);
        assert_eq!(c.after, ["/late"]);
        assert_eq!(c.include_files, ["m.h", "pre.h"]);
        assert_eq!(
            c.macros,
            [
                MacroOption::Define("X=1".into()),
                MacroOption::Undef("Y".into())
            ]
        );
        assert_eq!(c.probe_flags, ["-O2"]);
        assert_eq!(c.source, "src/a.c");
        assert_eq!(c.language, "c");
        let c = p("g++ -nostdinc --sysroot=/sr -I. -I=/inc -x c++ -c a.inl -Wp,-MMD,a.d").unwrap();
        assert_eq!(c.language, "c++");
        assert!(c.cplusplus());
        assert_eq!(c.bracket, ["", "/sr/inc"]);
        assert_eq!(c.probe_flags, ["-nostdinc", "--sysroot=/sr"]);
        let c = p("gcc -m32 -std=c99 -fPIC --param x=1 -c a.S").unwrap();
        assert_eq!(c.language, "assembler-with-cpp");
        assert_eq!(
            c.probe_flags,
            ["-m32", "-std=c99", "-fPIC", "--param", "x=1"]
        );
        let c = p("gcc -O2 -c a.c -oa.o --output=b.o --std c11").unwrap();
        assert_eq!(c.probe_flags, ["-O2", "-std=c11"]);
        assert!(c.lex_mode(false).trigraphs);
        let mode = |line: &str| {
            let m = p(line).unwrap().lex_mode(false);
            (m.raw_strings, m.trigraphs)
        };
        // Digit separators: C++14 and later (GCC's default C++ is gnu++17), C2X.
        let separators = |line: &str| p(line).unwrap().lex_mode(false).digit_separators;
        assert!(!separators("gcc -c a.c"));
        assert!(separators("gcc -std=gnu2x -c a.c"));
        assert!(separators("g++ -c a.cc"));
        assert!(separators("g++ -std=c++1y -c a.cc"));
        assert!(!separators("g++ -std=gnu++11 -c a.cc"));
        assert!(!separators("g++ -std=c++98 -c a.cc"));
        assert!(!separators("g++ -x assembler-with-cpp -c a.S"));
        assert_eq!(mode("gcc -c a.c"), (true, false));
        assert_eq!(mode("gcc -std=c11 -c a.c"), (false, true));
        assert_eq!(mode("gcc -ansi -c a.c"), (false, true));
        assert_eq!(mode("gcc -std=gnu89 -trigraphs -c a.c"), (false, true));
        assert_eq!(mode("g++ -std=c++14 -c a.cc"), (true, true));
        assert_eq!(mode("g++ -std=c++17 -c a.cc"), (true, false));
        assert_eq!(mode("g++ -std=gnu++98 -c a.cc"), (false, false));
        // clang: raw strings in C++11 and later only; `#elifdef` everywhere.
        let clang = |line: &str| {
            let m = p(line).unwrap().lex_mode(true);
            (m.raw_strings, m.trigraphs, m.elifdef)
        };
        assert_eq!(clang("clang -c a.c"), (false, false, true));
        assert_eq!(clang("clang -std=gnu11 -c a.c"), (false, false, true));
        assert_eq!(clang("clang -std=c11 -c a.c"), (false, true, true));
        assert_eq!(clang("clang++ -c a.cc"), (true, false, true));
        assert_eq!(clang("clang++ -std=c++03 -c a.cc"), (false, true, true));
    }

    #[test]
    fn not_covered() {
        for line in [
            "gcc -I- -c a.c",
            "gcc -imultilib x -c a.c",
            "gcc -Xpreprocessor -foo -c a.c",
            "gcc -Wp,-DX -c a.c",
            "gcc -c a.c b.c",
            "gcc -c a.s",
            "gcc -c",
            "gcc -traditional-cpp -c a.c",
            "gcc -c a.s",
        ] {
            assert!(p(line).is_err(), "{line}");
        }
    }
}
