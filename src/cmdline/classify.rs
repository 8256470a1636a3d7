//! Classification of a gcc/clang command line: may it be compiled remotely, and if so, what
//! runs locally as the preprocessor and what is sent to the server.
//!
//! Flag knowledge is data: [`OPTIONS`] has one row per option, saying how it takes its value
//! and what it means for distribution. The scanner walks the argv once with that table and
//! records each argument's role, so that an option's separate value is never mistaken for an
//! input or output file (a distcc 3.4 misjudgement). The same classifier serves the daemon,
//! which must find the input and output in what a client sent.
//!
//! This module runs nothing and touches no files.

use std::fmt;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// No value: matches the whole word only.
    Flag,
    /// Value joined to the option (`-DX`, `-std=c99`): matches as a prefix.
    Joined,
    /// Value in the next word only (`-include x.h`).
    Separate,
    /// Either form (`-I dir` or `-Idir`).
    Either,
}

/// What an option means for distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Affects compilation: sent to the server, and given to the preprocessor too.
    Both,
    /// Consumed by the local preprocessor; not sent.
    Cpp,
    /// Only for linking; not sent, harmless to the preprocessor.
    Link,
    /// `-c`: compile to an object.
    Compile,
    /// `-S`: compile to assembler.
    Assemble,
    /// `-o`: the output file.
    Output,
    /// `-x`: the language of the following inputs.
    Language,
    /// `-MD`/`-MMD` given to the driver: write a dependency file beside the output.
    DepsBesideOutput,
    /// `-MF`: where the dependency file goes.
    DepsFile,
    /// `-MT`/`-MQ`: the dependency target.
    DepsTarget,
    /// `-Wa,...`: local when it asks for an assembler listing or dependency file.
    Assembler,
    /// Cannot be distributed.
    Local(LocalReason),
}

use Role::*;
use Takes::*;

/// The option table: name, how it takes a value, what it means.
#[rustfmt::skip]
const OPTIONS: &[(&str, Takes, Role)] = &[
    // What to produce.
    ("-c", Flag, Compile),
    ("-S", Flag, Assemble),
    ("-E", Flag, Local(LocalReason::PreprocessOnly)),
    ("-o", Either, Output),
    ("--output=", Joined, Output),
    ("--output", Separate, Output),
    ("-x", Either, Language),
    ("--language=", Joined, Language),
    ("--language", Separate, Language),
    // Questions to the driver, answered without compiling.
    ("-###", Flag, Local(LocalReason::NotCompile)),
    ("--help", Joined, Local(LocalReason::NotCompile)),
    ("--version", Flag, Local(LocalReason::NotCompile)),
    ("--target-help", Flag, Local(LocalReason::NotCompile)),
    ("-dumpversion", Flag, Local(LocalReason::NotCompile)),
    ("-dumpfullversion", Flag, Local(LocalReason::NotCompile)),
    ("-dumpmachine", Flag, Local(LocalReason::NotCompile)),
    ("-dumpspecs", Flag, Local(LocalReason::NotCompile)),
    ("-print-", Joined, Local(LocalReason::NotCompile)),
    ("--print-", Joined, Local(LocalReason::NotCompile)),
    ("-dM", Flag, Local(LocalReason::PreprocessOnly)),
    // Preprocessor: consumed locally, never sent.
    ("-D", Either, Cpp),
    ("-U", Either, Cpp),
    ("-I", Either, Cpp),
    ("-include", Separate, Cpp),
    ("-imacros", Separate, Cpp),
    ("-iprefix", Separate, Cpp),
    ("-iwithprefix", Separate, Cpp),
    ("-iwithprefixbefore", Separate, Cpp),
    ("-isystem", Either, Cpp),
    ("-idirafter", Either, Cpp),
    ("-iquote", Either, Cpp),
    ("-isysroot", Either, Cpp),
    ("-imultilib", Separate, Cpp),
    ("-imultiarch", Separate, Cpp),
    ("-Xpreprocessor", Separate, Cpp),
    ("-Wp,", Joined, Cpp),
    ("-undef", Flag, Cpp),
    ("-nostdinc", Flag, Cpp),
    ("-nostdinc++", Flag, Cpp),
    ("-H", Flag, Cpp),
    ("-P", Flag, Cpp),
    ("-C", Flag, Cpp),
    ("-CC", Flag, Cpp),
    ("-traditional-cpp", Flag, Cpp),
    ("-stdlib=", Joined, Cpp),
    // Dependency files, written by the local preprocessor.
    ("-MD", Flag, DepsBesideOutput),
    ("-MMD", Flag, DepsBesideOutput),
    ("-MF", Either, DepsFile),
    ("-MT", Either, DepsTarget),
    ("-MQ", Either, DepsTarget),
    ("-MG", Flag, Cpp),
    ("-MP", Flag, Cpp),
    ("-M", Flag, Local(LocalReason::PreprocessOnly)),
    ("-MM", Flag, Local(LocalReason::PreprocessOnly)),
    // Linker-only: meaningless with -c, not sent.
    ("-L", Either, Link),
    ("-l", Either, Link),
    ("-Wl,", Joined, Link),
    ("-Xlinker", Separate, Link),
    ("-T", Separate, Link),
    ("-u", Separate, Link),
    ("-z", Separate, Link),
    // Values that are not files but come as a separate word.
    ("--param", Separate, Both),
    ("--sysroot=", Joined, Both),
    ("--sysroot", Separate, Both),
    ("-target", Separate, Both),
    ("-arch", Separate, Both),
    ("-Xclang", Separate, Local(LocalReason::RawToolOptions)),
    ("-mllvm", Separate, Local(LocalReason::RawToolOptions)),
    ("-Xassembler", Separate, Assembler),
    ("-dumpbase", Separate, Local(LocalReason::ClientFiles)),
    ("-dumpdir", Separate, Local(LocalReason::ClientFiles)),
    ("-Wa,", Joined, Assembler),
    // Tuned for the machine that compiles: must be this one.
    ("-march=native", Flag, Local(LocalReason::NativeCpu)),
    ("-mtune=native", Flag, Local(LocalReason::NativeCpu)),
    ("-mcpu=native", Flag, Local(LocalReason::NativeCpu)),
    // Read or write files on the client beside the object.
    ("-flto", Flag, Local(LocalReason::ClientFiles)),
    ("-fprofile-arcs", Flag, Local(LocalReason::ClientFiles)),
    ("-ftest-coverage", Flag, Local(LocalReason::ClientFiles)),
    ("--coverage", Flag, Local(LocalReason::ClientFiles)),
    ("-fprofile-correction", Flag, Local(LocalReason::ClientFiles)),
    ("-fprofile-generate", Joined, Local(LocalReason::ClientFiles)),
    ("-fprofile-use", Joined, Local(LocalReason::ClientFiles)),
    ("-fauto-profile", Joined, Local(LocalReason::ClientFiles)),
    ("-fprofile-dir=", Joined, Local(LocalReason::ClientFiles)),
    ("-fprofile-instr-generate", Joined, Local(LocalReason::ClientFiles)),
    ("-fprofile-instr-use", Joined, Local(LocalReason::ClientFiles)),
    ("-fcs-profile-generate", Joined, Local(LocalReason::ClientFiles)),
    ("-frepo", Flag, Local(LocalReason::ClientFiles)),
    ("-dr", Joined, Local(LocalReason::ClientFiles)),
    ("-fdump-", Joined, Local(LocalReason::ClientFiles)),
    ("-save-temps", Joined, Local(LocalReason::ClientFiles)),
    ("-fstack-usage", Flag, Local(LocalReason::ClientFiles)),
    ("-fcallgraph-info", Joined, Local(LocalReason::ClientFiles)),
    ("-gsplit-dwarf", Flag, Local(LocalReason::ClientFiles)),
    ("-aux-info", Separate, Local(LocalReason::ClientFiles)),
    ("-ftime-trace", Joined, Local(LocalReason::ClientFiles)),
    ("-specs=", Joined, Local(LocalReason::ClientFiles)),
    ("-fplugin=", Joined, Local(LocalReason::ClientFiles)),
    ("-fplugin-arg-", Joined, Local(LocalReason::ClientFiles)),
    ("-B", Either, Local(LocalReason::ClientFiles)),
    ("-wrapper", Separate, Local(LocalReason::ClientFiles)),
    ("-fopt-info", Joined, Local(LocalReason::ClientFiles)),
    ("-fsave-optimization-record", Joined, Local(LocalReason::ClientFiles)),
    ("-foptimization-record-file=", Joined, Local(LocalReason::ClientFiles)),
    ("-MJ", Either, Local(LocalReason::ClientFiles)),
    // C++ modules: compiled module interfaces live on the client.
    ("-fmodules", Joined, Local(LocalReason::ClientFiles)),
    ("-fmodule-", Joined, Local(LocalReason::ClientFiles)),
    ("--precompile", Flag, Local(LocalReason::ClientFiles)),
    ("-fsyntax-only", Flag, Local(LocalReason::NoOutput)),
];

/// Why a command line is run locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// Neither `-c` nor `-S`: linking, `--version`, and the like.
    NotCompile,
    /// `-E`, `-M`, `-MM`: preprocessing only.
    PreprocessOnly,
    NoInput,
    SeveralInputs,
    /// The input is not C, C++ or Objective-C (assembler, headers, unknown).
    UnknownLanguage,
    /// autoconf's test programs: their compile errors are the answer, keep them local.
    Autoconf,
    /// `-o -`.
    OutputToStdout,
    /// `-march=native` and the like.
    NativeCpu,
    /// The compile reads or writes files on the client other than source and object.
    ClientFiles,
    /// `-fsyntax-only`: nothing comes back.
    NoOutput,
    /// `@file`: arguments we cannot see.
    ResponseFile,
    /// An option whose value is missing at the end of the line.
    MissingValue,
    /// `-Xclang`, `-mllvm`: raw options for an inner tool, which may touch files.
    RawToolOptions,
}

impl fmt::Display for LocalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalReason::NotCompile => "compiler apparently called not for compile",
            LocalReason::PreprocessOnly => "preprocessing only",
            LocalReason::NoInput => "no visible input file",
            LocalReason::SeveralInputs => "more than one input file",
            LocalReason::UnknownLanguage => "input is not a C, C++ or Objective-C source",
            LocalReason::Autoconf => "autoconf test program",
            LocalReason::OutputToStdout => "output to stdout",
            LocalReason::NativeCpu => "code is tuned for the local CPU",
            LocalReason::ClientFiles => "option reads or writes files on this machine",
            LocalReason::NoOutput => "no output file",
            LocalReason::ResponseFile => "response files (@file) are not distributed",
            LocalReason::MissingValue => "an option lacks its value",
            LocalReason::RawToolOptions => "raw options for an inner tool are not distributed",
        })
    }
}

/// The source languages that can be compiled remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cxx,
    ObjC,
    ObjCxx,
}

impl Lang {
    /// The extension gcc gives this language's preprocessed form.
    pub fn preprocessed_ext(self) -> &'static str {
        match self {
            Lang::C => "i",
            Lang::Cxx => "ii",
            Lang::ObjC => "mi",
            Lang::ObjCxx => "mii",
        }
    }

    /// The `-x` name of this language's preprocessed form.
    fn preprocessed_x(self) -> &'static str {
        match self {
            Lang::C => "cpp-output",
            Lang::Cxx => "c++-cpp-output",
            Lang::ObjC => "objective-c-cpp-output",
            Lang::ObjCxx => "objective-c++-cpp-output",
        }
    }
}

/// Language by file extension (case-sensitive, as gcc's): the language and whether the file
/// is already preprocessed.
fn lang_of_path(path: &str) -> Option<(Lang, bool)> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "c" => (Lang::C, false),
        "i" => (Lang::C, true),
        "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => (Lang::Cxx, false),
        "ii" => (Lang::Cxx, true),
        "m" => (Lang::ObjC, false),
        "mi" => (Lang::ObjC, true),
        "mm" | "M" => (Lang::ObjCxx, false),
        "mii" => (Lang::ObjCxx, true),
        _ => return None,
    })
}

/// True when `path` has the extension of a C, C++ or Objective-C source (or its
/// preprocessed form).
pub fn is_source(path: &str) -> bool {
    lang_of_path(path).is_some()
}

/// Language by `-x` name.
fn lang_of_x(name: &str) -> Option<(Lang, bool)> {
    Some(match name {
        "c" => (Lang::C, false),
        "cpp-output" => (Lang::C, true),
        "c++" => (Lang::Cxx, false),
        "c++-cpp-output" => (Lang::Cxx, true),
        "objective-c" => (Lang::ObjC, false),
        "objective-c-cpp-output" => (Lang::ObjC, true),
        "objective-c++" => (Lang::ObjCxx, false),
        "objective-c++-cpp-output" => (Lang::ObjCxx, true),
        _ => return None,
    })
}

/// One scanned argument: where it is, how many words it spans, and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    at: usize,
    /// The option word's own length when its value is joined to it; 0 otherwise.
    joined: usize,
    /// 1, or 2 when the value is the next word.
    words: usize,
    role: ItemRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemRole {
    Option(Role),
    Input,
}

impl Item {
    /// The option's value (joined or separate).
    fn value<'a>(&self, argv: &'a [String]) -> &'a str {
        if self.words == 2 {
            &argv[self.at + 1]
        } else {
            &argv[self.at][self.joined..]
        }
    }
}

/// A command line that can be compiled remotely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compile {
    /// The full command line, compiler first, with `-o` added when it was implicit.
    argv: Vec<String>,
    items: Vec<Item>,
    input: usize,
    /// Index of the `-o` item in `items`.
    output: usize,
    pub lang: Lang,
    /// The input is already preprocessed (`.i` and friends): no local cpp.
    pub preprocessed: bool,
    /// `-S`: the result is assembler, not an object.
    pub assembly: bool,
    /// Preprocess with `-fdirectives-only`, so that a `-g` object equals a local one
    /// (see `debuginfo`).
    pub directives_only: bool,
}

/// What to do with a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Local(LocalReason),
    Remote(Compile),
}

/// Finds the table row for `arg`: an exact match first, else the longest prefix among
/// options that take a joined value. Unknown options affect compilation and take no value.
fn lookup(arg: &str) -> (Takes, Role, usize) {
    let mut best: Option<(Takes, Role, usize)> = None;
    for &(name, takes, role) in OPTIONS {
        if arg == name && takes != Joined {
            return (takes, role, 0);
        }
        if matches!(takes, Joined | Either)
            && arg.len() > name.len()
            && arg.starts_with(name)
            && best.is_none_or(|(_, _, n)| name.len() > n)
        {
            best = Some((takes, role, name.len()));
        }
        if takes == Joined && arg == name {
            best = best.or(Some((takes, role, name.len())));
        }
    }
    best.unwrap_or((Flag, Both, 0))
}

/// Splits `argv` (compiler first) into items.
fn scan(argv: &[String]) -> Result<Vec<Item>, LocalReason> {
    let mut items = Vec::with_capacity(argv.len());
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        if arg.starts_with('@') {
            return Err(LocalReason::ResponseFile);
        }
        if !arg.starts_with('-') || arg == "-" {
            items.push(Item {
                at: i,
                joined: 0,
                words: 1,
                role: ItemRole::Input,
            });
            i += 1;
            continue;
        }
        let (takes, role, joined) = lookup(arg);
        let words = match takes {
            Separate => 2,
            Either if joined == 0 => 2,
            _ => 1,
        };
        if i + words > argv.len() {
            return Err(LocalReason::MissingValue);
        }
        items.push(Item {
            at: i,
            joined,
            words,
            role: ItemRole::Option(role),
        });
        i += words;
    }
    Ok(items)
}

/// `path` with its extension (of the last component) replaced by `ext`.
fn with_extension(path: &str, ext: &str) -> String {
    let base_start = path.rfind('/').map_or(0, |p| p + 1);
    let stem = match path[base_start..].rfind('.') {
        Some(dot) if dot > 0 => &path[..base_start + dot],
        _ => path,
    };
    format!("{stem}.{ext}")
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Decides whether `argv` (compiler first) can be compiled remotely.
pub fn classify(argv: &[String]) -> Decision {
    let items = match scan(argv) {
        Ok(items) => items,
        Err(reason) => return Decision::Local(reason),
    };
    let mut compile = false;
    let mut assembly = false;
    let mut x_lang: Option<Option<(Lang, bool)>> = None;
    let mut input: Option<(usize, Option<(Lang, bool)>)> = None;
    let mut output: Option<usize> = None;
    for (n, item) in items.iter().enumerate() {
        match item.role {
            ItemRole::Input => {
                if input.is_some() {
                    return Decision::Local(LocalReason::SeveralInputs);
                }
                let lang = match x_lang {
                    Some(x) => x,
                    None => lang_of_path(&argv[item.at]),
                };
                input = Some((n, lang));
            }
            ItemRole::Option(role) => match role {
                Local(reason) => return Decision::Local(reason),
                Compile => compile = true,
                Assemble => assembly = true,
                Output => {
                    if output.is_some() {
                        return Decision::Local(LocalReason::SeveralInputs);
                    }
                    output = Some(n);
                }
                Language => {
                    let name = item.value(argv);
                    x_lang = if name == "none" {
                        None
                    } else {
                        Some(lang_of_x(name))
                    };
                }
                Assembler => {
                    let v = item.value(argv);
                    let listing = v.split(',').any(|w| w.starts_with("-a") || w == "--MD");
                    if listing || v.starts_with("-a") {
                        return Decision::Local(LocalReason::ClientFiles);
                    }
                }
                Both | Cpp | Link | DepsBesideOutput | DepsFile | DepsTarget => {}
            },
        }
    }
    if !compile && !assembly {
        return Decision::Local(LocalReason::NotCompile);
    }
    let Some((input, lang)) = input else {
        return Decision::Local(LocalReason::NoInput);
    };
    let input_path = &argv[items[input].at];
    // `-x c /dev/null` is how build systems ask whether this compiler takes an option
    // (Kbuild's cc-option, a hundred times per kernel build): the answer must be the local
    // compiler's, and it takes less time than asking a server. distcc 3.4 runs them here
    // too, as it sees no source file.
    if input_path == "-" || input_path.starts_with("/dev/") {
        return Decision::Local(LocalReason::NoInput);
    }
    let Some((lang, preprocessed)) = lang else {
        return Decision::Local(LocalReason::UnknownLanguage);
    };
    let base = basename(input_path);
    if base.starts_with("conftest.") || base.starts_with("tmp.conftest.") {
        return Decision::Local(LocalReason::Autoconf);
    }

    let mut argv = argv.to_vec();
    let mut items = items;
    let output = match output {
        Some(o) => {
            if items[o].value(&argv) == "-" {
                return Decision::Local(LocalReason::OutputToStdout);
            }
            o
        }
        None => {
            let ext = if assembly { "s" } else { "o" };
            argv.push("-o".into());
            argv.push(with_extension(base, ext));
            items.push(Item {
                at: argv.len() - 2,
                joined: 0,
                words: 2,
                role: ItemRole::Option(Output),
            });
            items.len() - 1
        }
    };
    let directives_only = !preprocessed && keeps_columns(&argv);
    Decision::Remote(Compile {
        argv,
        items,
        input,
        output,
        lang,
        preprocessed,
        assembly,
        directives_only,
    })
}

/// Whether `argv` asks for debug information: the last option that sets a level decides.
pub fn debug_info(argv: &[String]) -> bool {
    let mut on = false;
    for arg in argv.iter().skip(1) {
        let Some(g) = arg.strip_prefix("-g") else {
            continue;
        };
        let level = [
            "gdb", "stabs+", "stabs", "xcoff+", "xcoff", "vms", "ctf", "",
        ]
        .iter()
        .find_map(|format| g.strip_prefix(format))
        .filter(|level| level.bytes().all(|c| c.is_ascii_digit()));
        if let Some(level) = level {
            on = level != "0";
        } else if g.starts_with("dwarf") || g == "btf" {
            on = true;
        }
    }
    on
}

/// Options under which `-fdirectives-only` text would not compile as the source does:
/// preprocessor modes it refuses or changes (`-traditional-cpp`, `-C`, `-P`,
/// `-Wunused-macros`), raw preprocessor options we cannot see into, the option itself,
/// OpenMP and OpenACC (the mode drops their pragmas: the object would not be parallel),
/// and pedantic diagnostics (older gcc then warns about the built-in macros it writes).
const DIRECTIVES_ONLY_CONFLICTS: &[&str] = &[
    "-fopenmp",
    "-fopenmp-simd",
    "-fopenacc",
    "-pedantic",
    "-pedantic-errors",
    "-Wpedantic",
    "-traditional-cpp",
    "-traditional",
    "-C",
    "-CC",
    "-P",
    "-Wunused-macros",
    "-fdirectives-only",
    "-fno-directives-only",
    "-fpreprocessed",
    "-fno-working-directory",
    "-imacros",
];

/// Chooses when gcc preprocesses with `-fdirectives-only`: `1` for every compile, `0` for
/// none (the text distcc 3.4 sends), anything else for `-g` compiles only.
pub const DIRECTIVES_ONLY_ENV: &str = "DISTCC_DIRECTIVES_ONLY";

/// Whether gcc should preprocess with `-fdirectives-only`: a compile by gcc (clang has no
/// such mode) with nothing in the way, and with `-g` unless [`DIRECTIVES_ONLY_ENV`] says
/// otherwise. Of raw preprocessor options, only the dependency-file ones that Kbuild
/// passes (`-Wp,-MMD,file`) are known to be harmless.
fn keeps_columns(argv: &[String]) -> bool {
    let unknown_to_cpp = |a: &String| match a.strip_prefix("-Wp,") {
        Some(raw) => {
            let mut parts = raw.split(',');
            !matches!(parts.next(), Some("-MD" | "-MMD")) || parts.count() != 1
        }
        None => a == "-Xpreprocessor",
    };
    let wanted = match std::env::var(DIRECTIVES_ONLY_ENV).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => debug_info(argv),
    };
    !basename(&argv[0]).contains("clang")
        && wanted
        && !argv
            .iter()
            .skip(1)
            .any(|a| DIRECTIVES_ONLY_CONFLICTS.contains(&a.as_str()) || unknown_to_cpp(a))
}

impl Compile {
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    pub fn input(&self) -> &str {
        &self.argv[self.items[self.input].at]
    }

    pub fn output(&self) -> &str {
        self.items[self.output].value(&self.argv)
    }

    fn words(&self, item: &Item) -> &[String] {
        &self.argv[item.at..item.at + item.words]
    }

    fn has(&self, role: Role) -> bool {
        self.items.iter().any(|i| i.role == ItemRole::Option(role))
    }

    /// The local preprocessor command: the same line with `-E` for `-c`/`-S` and without
    /// `-o`, writing to stdout. Dependency files come out where and as gcc itself writes
    /// them: distcc 3.4 drops `-o`, so `-MD` wrote `./foo.d` with the wrong target.
    pub fn cpp_argv(&self) -> Vec<String> {
        let mut out = vec![self.argv[0].clone()];
        for item in &self.items {
            match item.role {
                ItemRole::Option(Output) => {}
                ItemRole::Option(Compile | Assemble) => out.push("-E".into()),
                _ => out.extend_from_slice(self.words(item)),
            }
        }
        if self.directives_only {
            out.push(crate::toolchain::debuginfo::DIRECTIVES_ONLY.into());
        }
        if self.has(DepsBesideOutput) {
            if !self.has(DepsFile) {
                out.push("-MF".into());
                out.push(with_extension(self.output(), "d"));
            }
            if !self.has(DepsTarget) {
                out.push("-MQ".into());
                out.push(self.output().to_string());
            }
        }
        out
    }

    /// The command line sent to the server: preprocessor and linker options dropped, `-x`
    /// naming the preprocessed language (the server gets a `.i`, not the source).
    pub fn server_argv(&self) -> Vec<String> {
        let mut out = vec![self.argv[0].clone()];
        for item in &self.items {
            match item.role {
                ItemRole::Option(Cpp | Link | DepsBesideOutput | DepsFile | DepsTarget) => {}
                ItemRole::Option(Language) => {
                    out.push("-x".into());
                    out.push(self.lang.preprocessed_x().into());
                }
                // `--output=x` reaches the server as `-o x`; `-o` keeps its form.
                ItemRole::Option(Output) if self.argv[item.at].starts_with("--") => {
                    out.push("-o".into());
                    out.push(item.value(&self.argv).to_string());
                }
                _ => out.extend_from_slice(self.words(item)),
            }
        }
        if self.directives_only {
            out.push(crate::toolchain::debuginfo::DIRECTIVES_ONLY.into());
        }
        out
    }

    /// The command line the server runs on the files of its private temporary directory:
    /// input and output replaced, and every `-x` naming the preprocessed language, so that
    /// the server never runs the preprocessor on what a client sent.
    pub fn with_files(&self, input: &str, output: &str) -> Vec<String> {
        let mut out = self.argv.clone();
        out[self.items[self.input].at] = input.to_string();
        let replace = |out: &mut Vec<String>, item: &Item, value: &str| {
            if item.words == 2 {
                out[item.at + 1] = value.to_string();
            } else {
                out[item.at] = format!("{}{value}", &self.argv[item.at][..item.joined]);
            }
        };
        replace(&mut out, &self.items[self.output], output);
        for item in &self.items {
            if item.role == ItemRole::Option(Language) {
                replace(&mut out, item, self.lang.preprocessed_x());
            }
        }
        out
    }

    /// [`Compile::with_files`], compiling to assembler (`-S`) even where `-c` was asked.
    pub fn with_files_to_assembler(&self, input: &str, output: &str) -> Vec<String> {
        let mut out = self.with_files(input, output);
        for item in &self.items {
            if item.role == ItemRole::Option(Compile) {
                out[item.at] = "-S".into();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn remote(line: &str) -> Compile {
        match classify(&v(line)) {
            Decision::Remote(c) => c,
            other => panic!("{line}: expected remote, got {other:?}"),
        }
    }

    fn local(line: &str) -> LocalReason {
        match classify(&v(line)) {
            Decision::Local(r) => r,
            other => panic!("{line}: expected local, got {other:?}"),
        }
    }

    #[test]
    fn simple_compiles_are_remote() {
        let c = remote("gcc -c hello.c");
        assert_eq!(c.input(), "hello.c");
        assert_eq!(c.output(), "hello.o");
        assert_eq!(c.server_argv(), v("gcc -c hello.c -o hello.o"));
        assert_eq!(c.cpp_argv(), v("gcc -E hello.c"));

        let c = remote("gcc -S src/hello.c");
        assert_eq!(c.output(), "hello.s");

        let c = remote("cc -O2 -DX=1 -I inc -Iinc2 -include cfg.h -c a.c -o out/a.o -Wall");
        assert_eq!(c.server_argv(), v("cc -O2 -c a.c -o out/a.o -Wall"));
        assert_eq!(
            c.cpp_argv(),
            v("cc -O2 -DX=1 -I inc -Iinc2 -include cfg.h -E a.c -Wall")
        );
        assert_eq!(remote("g++ -c x.cpp -oy.o").output(), "y.o");
        assert!(remote("gcc -c p.i").preprocessed);
    }

    #[test]
    fn local_decisions() {
        assert_eq!(local("gcc hello.c -o hello"), LocalReason::NotCompile);
        assert_eq!(local("gcc -E hello.c"), LocalReason::PreprocessOnly);
        assert_eq!(local("gcc -M -c hello.c"), LocalReason::PreprocessOnly);
        assert_eq!(local("gcc -c a.c b.c"), LocalReason::SeveralInputs);
        assert_eq!(local("gcc -c a.s"), LocalReason::UnknownLanguage);
        assert_eq!(local("gcc -c a.S"), LocalReason::UnknownLanguage);
        assert_eq!(local("gcc -c conftest.c"), LocalReason::Autoconf);
        assert_eq!(local("gcc -c a.c -o -"), LocalReason::OutputToStdout);
        assert_eq!(local("gcc -march=native -c a.c"), LocalReason::NativeCpu);
        assert_eq!(local("gcc -mcpu=native -c a.c"), LocalReason::NativeCpu);
        assert_eq!(local("gcc -c a.c -Wa,-alh=a.lst"), LocalReason::ClientFiles);
        assert_eq!(local("gcc -c a.c @opts"), LocalReason::ResponseFile);
        assert_eq!(local("gcc -c a.c -include"), LocalReason::MissingValue);
        assert_eq!(
            local("gcc -x assembler -c a.c"),
            LocalReason::UnknownLanguage
        );
        assert_eq!(local("gcc -c"), LocalReason::NoInput);
        assert_eq!(
            local("gcc -Werror -mno-red-zone -c -x c /dev/null -o .tmp.o"),
            LocalReason::NoInput
        );
        assert_eq!(local("gcc -save-temps -c a.c"), LocalReason::ClientFiles);
        assert_eq!(
            local("gcc -fprofile-generate=/x -c a.c"),
            LocalReason::ClientFiles
        );
    }

    #[test]
    fn debug_compiles_by_gcc_keep_their_columns() {
        for line in [
            "gcc -g -c a.c",
            "gcc -g0 -g2 -c a.c",
            "g++ -ggdb -c a.cc",
            "cc -gdwarf-4 -c a.c",
            "gcc -Wp,-MMD,dir/.a.o.d -g -c a.c",
        ] {
            let c = remote(line);
            assert!(c.directives_only, "{line}");
            assert_eq!(c.cpp_argv().last().unwrap(), "-fdirectives-only", "{line}");
            assert_eq!(c.server_argv().last().unwrap(), "-fdirectives-only");
        }
        for line in [
            "gcc -c a.c",
            "gcc -g -g0 -c a.c",
            "gcc -ggdb0 -c a.c",
            "gcc -gz -c a.c",
            "clang -g -c a.c",
            "gcc -g -c p.i",
            "gcc -g -C -c a.c",
            "gcc -g -Wunused-macros -c a.c",
            "gcc -g -Wp,-P -c a.c",
            "gcc -g -Xpreprocessor -P -c a.c",
        ] {
            let c = remote(line);
            assert!(!c.directives_only, "{line}");
            assert!(!c.server_argv().contains(&"-fdirectives-only".to_string()));
        }
    }

    #[test]
    fn separate_values_are_not_files() {
        // distcc 3.4 takes `x.c` here for a second input and runs locally.
        let c = remote("gcc -include x.c -c a.c");
        assert_eq!(c.input(), "a.c");
        let c = remote("gcc -MF deps/a.o -c a.c -o a.o");
        assert_eq!(c.output(), "a.o");
    }

    #[test]
    fn language_flag_is_rewritten_for_the_server() {
        let c = remote("gcc -x c -c weird.txt -o w.o");
        assert_eq!(c.lang, Lang::C);
        assert_eq!(c.server_argv(), v("gcc -x cpp-output -c weird.txt -o w.o"));
        let c = remote("g++ -xc++ -c a.h.in -o a.o");
        assert_eq!(c.server_argv(), v("g++ -x c++-cpp-output -c a.h.in -o a.o"));
    }

    #[test]
    fn dependency_files_land_where_gcc_puts_them() {
        let c = remote("gcc -MD -c src/a.c -o out/a.o");
        assert_eq!(
            c.cpp_argv(),
            v("gcc -MD -E src/a.c -MF out/a.d -MQ out/a.o")
        );
        assert_eq!(c.server_argv(), v("gcc -c src/a.c -o out/a.o"));
        let c = remote("gcc -MMD -MF x.d -MT t -c a.c");
        assert_eq!(c.cpp_argv(), v("gcc -MMD -MF x.d -MT t -E a.c"));
        let c = remote("gcc -Wp,-MD,.a.o.d -c a.c -o a.o");
        assert_eq!(c.cpp_argv(), v("gcc -Wp,-MD,.a.o.d -E a.c"));
        assert_eq!(c.server_argv(), v("gcc -c a.c -o a.o"));
    }

    #[test]
    fn server_replaces_input_and_output() {
        let c = remote("x86_64-linux-gnu-gcc -c hello.c -o hello.o");
        assert_eq!(
            c.with_files("/t/in.i", "/t/out.o"),
            v("x86_64-linux-gnu-gcc -c /t/in.i -o /t/out.o")
        );
        let c = remote("gcc -c hello.c -ohello.o");
        assert_eq!(c.with_files("in.i", "out.o"), v("gcc -c in.i -oout.o"));
        let c = remote("gcc -c hello.c");
        assert_eq!(c.with_files("in.i", "out.o"), v("gcc -c in.i -o out.o"));
        let c = remote("gcc -x c -c hello.c -xc");
        assert_eq!(
            c.with_files("in.i", "out.o"),
            v("gcc -x cpp-output -c in.i -xcpp-output -o out.o")
        );
    }

    #[test]
    fn extension_replacement() {
        assert_eq!(with_extension("out/a.o", "d"), "out/a.d");
        assert_eq!(with_extension("out.dir/a", "d"), "out.dir/a.d");
        assert_eq!(with_extension(".hidden", "o"), ".hidden.o");
        assert_eq!(with_extension("a.b.c", "o"), "a.b.o");
    }
}
