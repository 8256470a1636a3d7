//! Classification of a gcc/clang command line: may it be compiled remotely, and if so, what
//! runs locally as the preprocessor and what is sent to the server.
//!
//! Flag knowledge is data, in `table`. The scanner walks the argv once with that table and
//! records each argument's role, so that an option's separate value is never mistaken for an
//! input or output file (a distcc 3.4 misjudgement). The same classifier serves the daemon,
//! which must find the input and output in what a client sent.
//!
//! This module runs nothing and touches no files.

use std::fmt;

use super::policy;
use super::table::{self, LocalReason, Role, Row, Takes};
use Role::*;

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

/// One scanned argument, an option (with its value) or an input: where it is, how many
/// words it spans, and its row in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    at: usize,
    /// The option word's own length when its value is joined to it; 0 otherwise.
    joined: usize,
    /// 1, or 2 when the value is the next word.
    words: usize,
    role: ItemRole,
    /// The option's row in the table ([`table::UNKNOWN`] for an input).
    row: &'static Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemRole {
    Option(Role),
    Input,
}

impl Item {
    /// Where the item starts in the command line.
    pub fn at(&self) -> usize {
        self.at
    }

    /// The option's row in the table; `None` for an input.
    pub fn row(&self) -> Option<&'static Row> {
        self.is_option().then_some(self.row)
    }

    /// The words the item spans: one, or the option and its separate value.
    pub fn span<'a>(&self, argv: &'a [String]) -> &'a [String] {
        &argv[self.at..self.at + self.words]
    }

    /// The option's words with its value replaced by `value`, in the same form (`-Ix`
    /// stays joined, `-I x` separate).
    pub fn with_value(&self, argv: &[String], value: &str) -> Vec<String> {
        if self.words == 2 {
            vec![argv[self.at].clone(), value.to_string()]
        } else {
            vec![format!("{}{value}", &argv[self.at][..self.joined])]
        }
    }

    /// The option's value (joined or separate).
    pub fn value<'a>(&self, argv: &'a [String]) -> &'a str {
        if self.words == 2 {
            &argv[self.at + 1]
        } else {
            &argv[self.at][self.joined..]
        }
    }

    fn is_option(&self) -> bool {
        self.role != ItemRole::Input
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

/// Why a command line runs locally, and the argument that decided it, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub reason: LocalReason,
    pub arg: Option<String>,
}

impl Local {
    fn new(reason: LocalReason) -> Local {
        Local { reason, arg: None }
    }

    fn by(reason: LocalReason, arg: &str) -> Local {
        Local {
            reason,
            arg: Some(arg.to_string()),
        }
    }
}

impl fmt::Display for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(arg) => write!(f, "{} ({arg})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// What to do with a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Local(Local),
    Remote(Compile),
}

/// When gcc preprocesses with `-fdirectives-only` (`DISTCC_DIRECTIVES_ONLY`): for every
/// compile, for none (the text distcc 3.4 sends), or for `-g` compiles only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectivesOnly {
    Always,
    Never,
    #[default]
    WithDebugInfo,
}

/// Splits `argv` (compiler first) into items, with the option table: an option's separate
/// value is never taken for an input.
pub fn scan(argv: &[String]) -> Result<Vec<Item>, Local> {
    let mut items = Vec::with_capacity(argv.len());
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        if arg.starts_with('@') {
            return Err(Local::by(LocalReason::ResponseFile, arg));
        }
        if !arg.starts_with('-') || arg == "-" {
            items.push(Item {
                at: i,
                joined: 0,
                words: 1,
                role: ItemRole::Input,
                row: &table::UNKNOWN,
            });
            i += 1;
            continue;
        }
        let (row, joined) = table::lookup(arg);
        let words = match row.takes {
            Takes::Separate => 2,
            Takes::Either if joined == 0 => 2,
            _ => 1,
        };
        if i + words > argv.len() {
            return Err(Local::by(LocalReason::MissingValue, arg));
        }
        items.push(Item {
            at: i,
            joined,
            words,
            role: ItemRole::Option(row.role),
            row,
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

/// What a scan found: the input (its item and language, as `-x` or its name says), the
/// `-o` item, and whether `-c` or `-S` asks for a compile.
#[derive(Default)]
struct Parts {
    input: Option<(usize, Option<(Lang, bool)>)>,
    output: Option<usize>,
    compile: bool,
    assembly: bool,
}

/// Walks the items once: the first option that keeps the job local ends the walk.
fn parts(argv: &[String], items: &[Item]) -> Result<Parts, Local> {
    let mut found = Parts::default();
    let mut x_lang: Option<Option<(Lang, bool)>> = None;
    for (n, item) in items.iter().enumerate() {
        let arg = &argv[item.at];
        let role = match item.role {
            ItemRole::Input if found.input.is_some() => {
                return Err(Local::by(LocalReason::SeveralInputs, arg))
            }
            ItemRole::Input => {
                found.input = Some((n, x_lang.unwrap_or_else(|| lang_of_path(arg))));
                continue;
            }
            ItemRole::Option(role) => role,
        };
        match role {
            Local(reason) => return Err(Local::by(reason, arg)),
            Compile => found.compile = true,
            Assemble => found.assembly = true,
            Output if found.output.is_some() => {
                return Err(Local::by(LocalReason::SeveralInputs, arg))
            }
            Output => found.output = Some(n),
            Language => {
                let name = item.value(argv);
                x_lang = (name != "none").then(|| lang_of_x(name));
            }
            Assembler if table::assembler_names_files(item.value(argv)) => {
                return Err(Local::by(LocalReason::ClientFiles, arg))
            }
            // The dependency list on stdout: the preprocessor's text goes there too, and a
            // host's would not come back as the compiler's output.
            DepsFile if item.value(argv) == "-" => {
                return Err(Local::by(LocalReason::OutputToStdout, arg))
            }
            Assembler | Both | Cpp | Link | DepsBesideOutput | DepsFile | DepsTarget => {}
        }
    }
    Ok(found)
}

/// The input's item and language, if it is a source a host can compile.
fn remote_input(
    argv: &[String],
    items: &[Item],
    parts: &Parts,
) -> Result<(usize, Lang, bool), Local> {
    if !parts.compile && !parts.assembly {
        return Err(Local::new(LocalReason::NotCompile));
    }
    let Some((input, lang)) = parts.input else {
        return Err(Local::new(LocalReason::NoInput));
    };
    let path = &argv[items[input].at];
    // `-x c /dev/null` is how build systems ask whether this compiler takes an option
    // (Kbuild's cc-option, a hundred times per kernel build): the answer must be the local
    // compiler's, and it takes less time than asking a server. distcc 3.4 runs them here
    // too, as it sees no source file.
    if path == "-" || path.starts_with("/dev/") {
        return Err(Local::by(LocalReason::NoInput, path));
    }
    let Some((lang, preprocessed)) = lang else {
        return Err(Local::by(LocalReason::UnknownLanguage, path));
    };
    let base = basename(path);
    if base.starts_with("conftest.") || base.starts_with("tmp.conftest.") {
        return Err(Local::by(LocalReason::Autoconf, path));
    }
    Ok((input, lang, preprocessed))
}

/// Decides whether `argv` (compiler first) can be compiled remotely; `directives` says when
/// gcc preprocesses with `-fdirectives-only`. A remote decision is one a daemon accepts:
/// the command line sent is checked by the daemon's own rules before it is promised.
pub fn classify(argv: &[String], directives: DirectivesOnly) -> Decision {
    match remote(argv, directives) {
        Ok(job) => match policy::check_options(&job.server_argv()) {
            Ok(()) => Decision::Remote(job),
            Err(refused) => Decision::Local(Local::by(LocalReason::HostWouldRefuse, refused.arg())),
        },
        Err(local) => Decision::Local(local),
    }
}

/// A command line as a daemon receives it: the compile it asks for, or why it is none. The
/// daemon checks its options itself (`policy::check`), and never preprocesses.
pub fn parse_received(argv: &[String]) -> Result<Compile, Local> {
    remote(argv, DirectivesOnly::Never)
}

fn remote(argv: &[String], directives: DirectivesOnly) -> Result<Compile, Local> {
    let mut items = scan(argv)?;
    let parts = parts(argv, &items)?;
    let (input, lang, preprocessed) = remote_input(argv, &items, &parts)?;
    let mut argv = argv.to_vec();
    let output = match parts.output {
        Some(o) if items[o].value(&argv) == "-" => {
            return Err(Local::new(LocalReason::OutputToStdout))
        }
        Some(o) => o,
        None => {
            let ext = if parts.assembly { "s" } else { "o" };
            let name = with_extension(basename(&argv[items[input].at]), ext);
            argv.extend(["-o".to_string(), name]);
            items.push(Item {
                at: argv.len() - 2,
                joined: 0,
                words: 2,
                role: ItemRole::Option(Output),
                row: table::lookup("-o").0,
            });
            items.len() - 1
        }
    };
    let directives_only = !preprocessed && keeps_columns(&argv, directives);
    Ok(Compile {
        argv,
        items,
        input,
        output,
        lang,
        preprocessed,
        assembly: parts.assembly,
        directives_only,
    })
}

/// `-g` options beyond the levels that turn debug information on: gcc's BTF, and clang's
/// reduced levels and debugger tunings.
const IMPLY_DEBUG_INFO: &[&str] = &[
    "btf",
    "line-tables-only",
    "mlt",
    "line-directives-only",
    "lldb",
    "sce",
    "dbx",
    "full",
    "used",
    "modules",
];

/// Whether `argv` asks for debug information: the last option that sets a level decides.
/// clang's reduced levels and debugger tunings each turn it on as `-g` does; `-gsplit-dwarf`,
/// `-gz` and `-gcolumn-info` only shape debug information asked for otherwise.
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
        } else if g.starts_with("dwarf") || IMPLY_DEBUG_INFO.contains(&g) {
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

/// Whether gcc should preprocess with `-fdirectives-only`: a compile by gcc (clang has no
/// such mode) with nothing in the way, and with `-g` unless `directives` says otherwise. Of raw preprocessor options, only the dependency-file ones that Kbuild
/// passes (`-Wp,-MMD,file`) are known to be harmless.
fn keeps_columns(argv: &[String], directives: DirectivesOnly) -> bool {
    let unknown_to_cpp = |a: &String| match a.strip_prefix("-Wp,") {
        Some(raw) => {
            let mut parts = raw.split(',');
            !matches!(parts.next(), Some("-MD" | "-MMD")) || parts.count() != 1
        }
        None => a == "-Xpreprocessor",
    };
    let wanted = match directives {
        DirectivesOnly::Always => true,
        DirectivesOnly::Never => false,
        DirectivesOnly::WithDebugInfo => debug_info(argv),
    };
    !crate::toolchain::names::is_clang(&argv[0])
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

    /// Whether a host compiling in a job root (pump mode, or the files of a clang `-g`
    /// job) would write that root into the object, where no prefix map reaches: a
    /// sanitizer records the names of the files it instruments (ASan its module, UBSan
    /// each check's location) as the compiler found them, and a file named by an absolute
    /// path (the input, or one found through an absolute directory) is found in the root.
    /// Preprocessed text carries the client's names instead.
    pub fn records_root(&self) -> bool {
        let sanitized = self.argv.iter().any(|a| a.starts_with("-fsanitize="));
        sanitized
            && (self.input().starts_with('/')
                || self.items.iter().any(|i| {
                    i.row()
                        .is_some_and(|r| super::PATH_OPTIONS.contains(&r.name))
                        && i.value(&self.argv).starts_with('/')
                }))
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

    /// The command line sent to a host in pump mode, where the host preprocesses: the whole
    /// line, with the dependency file made explicit (`-MF`, and `-MQ` naming the object as
    /// gcc would), so that the file the host sends back is the one gcc writes here, and
    /// Kbuild's `-Wp,-MD,file` as the equivalent `-MD -MF file -MQ target`. Returns the line and the
    /// dependency file the client writes, if any; `None` when a raw preprocessor option
    /// other than those stands in the way.
    pub fn pump_argv(&self) -> Option<(Vec<String>, Option<String>)> {
        let mut out = vec![self.argv[0].clone()];
        let mut deps = None;
        let mut target = self.output().to_string();
        for item in &self.items {
            let word = &self.argv[item.at];
            match (item.role, word.strip_prefix("-Wp,")) {
                (ItemRole::Option(Cpp), Some(raw)) => {
                    let (flag, file) = raw.split_once(',')?;
                    if !matches!(flag, "-MD" | "-MMD") || file.contains(',') {
                        return None;
                    }
                    out.extend([flag.to_string(), "-MF".into(), file.to_string()]);
                    deps = Some(file.to_string());
                    // Given to cc1 this way, gcc names the target after the input, not
                    // the output: `x.o` for `-o out/x.o dir/x.c`.
                    target = with_extension(basename(self.input()), "o");
                }
                (ItemRole::Option(Cpp), None) if word == "-Xpreprocessor" => return None,
                (ItemRole::Option(DepsFile), _) => {
                    deps = Some(item.value(&self.argv).to_string());
                    out.extend_from_slice(self.words(item));
                }
                _ => out.extend_from_slice(self.words(item)),
            }
        }
        if self.has(DepsBesideOutput) && deps.is_none() {
            let file = with_extension(self.output(), "d");
            out.extend(["-MF".to_string(), file.clone()]);
            deps = Some(file);
        }
        if deps.is_some() && !self.has(DepsTarget) {
            out.extend(["-MQ".to_string(), target]);
        }
        // No dependency file asked: the host makes one anyway (distcc 3.4's daemon adds
        // `-MMD`, which leaves the compiler's own headers out), and this client drops it.
        // `-MD` has it name every header, which a daemon's cache needs to keep the job.
        if deps.is_none() {
            out.push("-MD".into());
        }
        Some((out, deps))
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
            let words = item.with_value(&self.argv, value);
            out[item.at..item.at + words.len()].clone_from_slice(&words);
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

    #[test]
    fn debug_info_is_on_for_every_option_that_asks_for_it() {
        for on in [
            "cc -g",
            "cc -g3",
            "cc -ggdb",
            "cc -gdwarf-4",
            "cc -gbtf",
            "cc -gline-tables-only",
            "cc -gmlt",
            "cc -glldb",
            "cc -gsce",
            "cc -gmodules",
            "cc -g0 -gfull",
        ] {
            assert!(debug_info(&v(on)), "{on}");
        }
        for off in [
            "cc",
            "cc -g -g0",
            "cc -gsplit-dwarf",
            "cc -gz",
            "cc -gcolumn-info",
        ] {
            assert!(!debug_info(&v(off)), "{off}");
        }
    }

    fn remote(line: &str) -> Compile {
        match classify(&v(line), DirectivesOnly::WithDebugInfo) {
            Decision::Remote(c) => c,
            other => panic!("{line}: expected remote, got {other:?}"),
        }
    }

    fn local(line: &str) -> LocalReason {
        match classify(&v(line), DirectivesOnly::WithDebugInfo) {
            Decision::Local(r) => r.reason,
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
        assert_eq!(local("gcc -c a.c -MD -MF -"), LocalReason::OutputToStdout);
        assert_eq!(local("clang -c a.c -MMD -MF-"), LocalReason::OutputToStdout);
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
    fn pump_sends_the_whole_line_with_the_dependency_file_made_explicit() {
        let c = remote("gcc -Iinc -DX -c a.c -o out/a.o");
        assert_eq!(
            c.pump_argv(),
            Some((v("gcc -Iinc -DX -c a.c -o out/a.o -MD"), None))
        );
        let c = remote("gcc -MD -c src/a.c -o out/a.o");
        assert_eq!(
            c.pump_argv(),
            Some((
                v("gcc -MD -c src/a.c -o out/a.o -MF out/a.d -MQ out/a.o"),
                Some("out/a.d".into())
            ))
        );
        let c = remote("gcc -Wp,-MMD,out/.a.o.d -c -o out/a.o a.c");
        assert_eq!(
            c.pump_argv(),
            Some((
                v("gcc -MMD -MF out/.a.o.d -c -o out/a.o a.c -MQ a.o"),
                Some("out/.a.o.d".into())
            ))
        );
        let c = remote("gcc -MMD -MF x.d -MT t -c a.c");
        assert_eq!(c.pump_argv().unwrap().1, Some("x.d".into()));
        assert_eq!(remote("gcc -Wp,-P -c a.c").pump_argv(), None);
        assert_eq!(remote("gcc -Xpreprocessor -P -c a.c").pump_argv(), None);
    }

    #[test]
    fn extension_replacement() {
        assert_eq!(with_extension("out/a.o", "d"), "out/a.d");
        assert_eq!(with_extension("out.dir/a", "d"), "out.dir/a.d");
        assert_eq!(with_extension(".hidden", "o"), ".hidden.o");
        assert_eq!(with_extension("a.b.c", "o"), "a.b.o");
    }
}
