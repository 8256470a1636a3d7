//! The option table: one row per gcc/clang option, saying how it takes its value, what the
//! client does with it (`Role`), and whether a daemon runs a compile that carries it
//! (`OnServer`, with the reason when it does not).
//!
//! Both sides read this one table, so they cannot drift apart: every row whose role sends the
//! option to a host says `Runs` (a unit test holds the table to that), and the client keeps
//! a job local before sending anything a daemon would refuse. Refusals are kept for what
//! loads code, reads or writes a file the client names, writes files the daemon neither
//! returns nor removes, or hands options to an inner tool that no table of ours could follow.
//! An option the table does not name affects compilation, takes no value, and runs
//! anywhere, except a `--long` one: gcc has long aliases for options that name files
//! (`--include=`, `--write-dependencies`, ...), so those stay local and are refused.
//!
//! Classification (`classify`) and the daemon's check (`policy`) walk a command line with
//! [`lookup`]; this module only holds the knowledge.

use std::fmt;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No value: matches the whole word only.
    Flag,
    /// Value joined to the option (`-DX`, `-std=c99`): matches as a prefix.
    Joined,
    /// Value in the next word only (`-include x.h`).
    Separate,
    /// Either form (`-I dir` or `-Idir`).
    Either,
}

/// What an option means for distribution, on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
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
    /// `-Wa,...`, `-Xassembler`: sent, unless the value names files ([`assembler_names_files`]).
    Assembler,
    /// Cannot be distributed.
    Local(LocalReason),
}

/// Options naming a file or directory the compile reads, whose absolute path a pump host
/// (distcc 3.4's too) moves into its job root.
pub const PATH_OPTIONS: &[&str] = &[
    "-I",
    "-include",
    "-imacros",
    "-idirafter",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isystem",
    "-iquote",
];

impl Role {
    /// Whether the client sends an option of this role to the host.
    pub fn is_sent(self) -> bool {
        matches!(
            self,
            Role::Both
                | Role::Compile
                | Role::Assemble
                | Role::Output
                | Role::Language
                | Role::Assembler
        )
    }
}

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
    /// A `--long` option the table does not know: it may be an alias of one that names files.
    LongOption,
    /// The host would refuse the command line (a value-dependent check said so).
    HostWouldRefuse,
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
            LocalReason::LongOption => "unknown --long option (it may name files)",
            LocalReason::HostWouldRefuse => "a host would refuse this option",
        })
    }
}

/// Whether a daemon runs a compile that carries the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnServer {
    Runs,
    Refused(Danger),
}

/// Why a daemon refuses an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Danger {
    /// Loads a plugin, a specs file or other programs chosen by the client.
    LoadsCode,
    /// Reads or writes a file at a path the client names.
    NamesFiles,
    /// Writes files beside the object, which the daemon neither returns nor removes.
    SideFiles,
    /// Hands raw options to an inner tool, where no table of ours could follow.
    RawOptions,
    /// Makes the server run the preprocessor on what the client sent.
    Preprocesses,
    /// A `--long` option the table does not know.
    UnknownLong,
}

impl fmt::Display for Danger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Danger::LoadsCode => "loads code chosen by the client",
            Danger::NamesFiles => "reads or writes a file the client names",
            Danger::SideFiles => "writes files beside the object that would be lost",
            Danger::RawOptions => "passes raw options to an inner tool",
            Danger::Preprocesses => "makes this machine preprocess what the client sent",
            Danger::UnknownLong => "is a --long option this daemon does not know",
        })
    }
}

/// One option: its name, how it takes a value, what the client does with it, what a
/// daemon does with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    pub takes: Takes,
    pub role: Role,
    pub server: OnServer,
}

use Danger::*;
use LocalReason as Why;
use OnServer::*;
use Role::*;
use Takes::*;

const fn row(name: &'static str, takes: Takes, role: Role, server: OnServer) -> Row {
    Row {
        name,
        takes,
        role,
        server,
    }
}

/// What an option the table does not name is taken for.
pub static UNKNOWN: Row = row("", Flag, Both, Runs);

/// The table. Prefix rows (`Joined`) also catch the options the table does not list one by
/// one: `-fprofile` keeps every profiling option local unless a longer row says otherwise.
#[rustfmt::skip]
pub static OPTIONS: &[Row] = &[
    // What to produce.
    row("-c", Flag, Compile, Runs),
    row("-S", Flag, Assemble, Runs),
    row("-E", Flag, Local(Why::PreprocessOnly), Runs),
    row("-o", Either, Output, Runs),
    row("--output=", Joined, Output, Runs),
    row("--output", Separate, Output, Runs),
    row("-x", Either, Language, Runs),
    row("--language=", Joined, Language, Runs),
    row("--language", Separate, Language, Runs),
    // Questions to the driver, answered without compiling.
    row("-###", Flag, Local(Why::NotCompile), Runs),
    row("--help", Joined, Local(Why::NotCompile), Runs),
    row("--version", Flag, Local(Why::NotCompile), Runs),
    row("--target-help", Flag, Local(Why::NotCompile), Runs),
    row("-dumpversion", Flag, Local(Why::NotCompile), Runs),
    row("-dumpfullversion", Flag, Local(Why::NotCompile), Runs),
    row("-dumpmachine", Flag, Local(Why::NotCompile), Runs),
    row("-dumpspecs", Flag, Local(Why::NotCompile), Runs),
    row("-print-", Joined, Local(Why::NotCompile), Runs),
    row("--print-", Joined, Local(Why::NotCompile), Runs),
    row("-dM", Flag, Local(Why::PreprocessOnly), Runs),
    // Preprocessor: consumed locally, never sent. Directories are harmless to a server
    // that compiles preprocessed text; files it would read are not.
    row("-D", Either, Cpp, Runs),
    row("-U", Either, Cpp, Runs),
    row("-I", Either, Cpp, Runs),
    row("-include", Separate, Cpp, Refused(NamesFiles)),
    row("-imacros", Separate, Cpp, Refused(NamesFiles)),
    row("-iprefix", Separate, Cpp, Runs),
    row("-iwithprefix", Separate, Cpp, Runs),
    row("-iwithprefixbefore", Separate, Cpp, Runs),
    row("-isystem", Either, Cpp, Runs),
    row("-idirafter", Either, Cpp, Runs),
    row("-iquote", Either, Cpp, Runs),
    row("-isysroot", Either, Cpp, Runs),
    row("-imultilib", Separate, Cpp, Runs),
    row("-imultiarch", Separate, Cpp, Runs),
    row("-Xpreprocessor", Separate, Cpp, Refused(RawOptions)),
    row("-Wp,", Joined, Cpp, Refused(RawOptions)),
    row("-undef", Flag, Cpp, Runs),
    row("-nostdinc", Flag, Cpp, Runs),
    row("-nostdinc++", Flag, Cpp, Runs),
    row("-H", Flag, Cpp, Runs),
    row("-P", Flag, Cpp, Runs),
    row("-C", Flag, Cpp, Runs),
    row("-CC", Flag, Cpp, Runs),
    row("-traditional-cpp", Flag, Cpp, Runs),
    row("-stdlib=", Joined, Cpp, Runs),
    row("-fno-preprocessed", Flag, Cpp, Refused(Preprocesses)),
    row("-fno-directives-only", Flag, Cpp, Refused(Preprocesses)),
    // Dependency files, written by the local preprocessor.
    row("-MD", Flag, DepsBesideOutput, Refused(SideFiles)),
    row("-MMD", Flag, DepsBesideOutput, Refused(SideFiles)),
    row("-MF", Either, DepsFile, Refused(NamesFiles)),
    row("-MT", Either, DepsTarget, Runs),
    row("-MQ", Either, DepsTarget, Runs),
    row("-MG", Flag, Cpp, Runs),
    row("-MP", Flag, Cpp, Runs),
    row("-M", Flag, Local(Why::PreprocessOnly), Runs),
    row("-MM", Flag, Local(Why::PreprocessOnly), Runs),
    row("-MJ", Either, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-M", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    // Linker-only: meaningless with -c, not sent.
    row("-L", Either, Link, Runs),
    row("-l", Either, Link, Runs),
    row("-Wl,", Joined, Link, Runs),
    row("-Xlinker", Separate, Link, Runs),
    row("-T", Separate, Link, Runs),
    row("-u", Separate, Link, Runs),
    row("-z", Separate, Link, Runs),
    // Values that are not files, some of them in a separate word.
    row("--param", Separate, Both, Runs),
    row("--param=", Joined, Both, Runs),
    row("--sysroot=", Joined, Both, Runs),
    row("--sysroot", Separate, Both, Runs),
    row("--target=", Joined, Both, Runs),
    row("-target", Separate, Both, Runs),
    row("-arch", Separate, Both, Runs),
    row("-fprofile-update=", Joined, Both, Runs),
    // The assembler's options: sent unless they name files (see assembler_names_files).
    row("-Wa,", Joined, Assembler, Runs),
    row("-Xassembler", Separate, Assembler, Runs),
    // Raw options for clang's inner tools.
    row("-Xclang", Separate, Local(Why::RawToolOptions), Refused(RawOptions)),
    row("-mllvm", Separate, Local(Why::RawToolOptions), Refused(RawOptions)),
    // Tuned for the machine that compiles: must be this one.
    row("-march=native", Flag, Local(Why::NativeCpu), Runs),
    row("-mtune=native", Flag, Local(Why::NativeCpu), Runs),
    row("-mcpu=native", Flag, Local(Why::NativeCpu), Runs),
    // Code chosen by the client: compilers, plugins, specs.
    row("-B", Either, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-wrapper", Separate, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-specs", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-fplugin", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-fpass-plugin", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-iplugindir", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-load", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-plugin", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    row("-add-plugin", Joined, Local(Why::ClientFiles), Refused(LoadsCode)),
    // Files read or written at paths the client names.
    row("-fprofile", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fauto-profile", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fcs-profile-generate", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-dumpbase", Separate, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-dumpbase-ext", Separate, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-dumpdir", Separate, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-aux-info", Separate, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fdump-", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fopt-info", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-ftime-trace", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-foptimization-record-file=", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fcrash-diagnostics", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fdiagnostics-add-output=", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fdiagnostics-set-output=", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fproc-stat-report", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    // C++ modules: compiled module interfaces live on the client.
    row("-fmodules", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("-fmodule-", Joined, Local(Why::ClientFiles), Refused(NamesFiles)),
    row("--precompile", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    // Files written beside the object: the client wants them, a daemon would leave them.
    row("-flto", Flag, Local(Why::ClientFiles), Runs),
    row("-fprofile-arcs", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-ftest-coverage", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("--coverage", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-frepo", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-dr", Joined, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-save-temps", Joined, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-fstack-usage", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-fcallgraph-info", Joined, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-gsplit-dwarf", Flag, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-fsave-optimization-record", Joined, Local(Why::ClientFiles), Refused(SideFiles)),
    row("-fsyntax-only", Flag, Local(Why::NoOutput), Runs),
    // Long aliases the table does not know (`--include=`, `--write-dependencies`, ...).
    row("--", Joined, Local(Why::LongOption), Refused(UnknownLong)),
];

/// Finds the row for `arg`: an exact match first, else the longest prefix among options
/// that take a joined value; returns it with the length of the option's own part of `arg`
/// when its value is joined (0 otherwise).
pub fn lookup(arg: &str) -> (&'static Row, usize) {
    let mut best: Option<(&'static Row, usize)> = None;
    for r in OPTIONS {
        if arg == r.name && r.takes != Joined {
            return (r, 0);
        }
        let prefix = match r.takes {
            Joined => arg.starts_with(r.name),
            Either => arg.len() > r.name.len() && arg.starts_with(r.name),
            Flag | Separate => false,
        };
        if prefix && best.is_none_or(|(_, n)| r.name.len() > n) {
            best = Some((r, r.name.len()));
        }
    }
    best.unwrap_or((&UNKNOWN, 0))
}

/// Whether an assembler option (`-Wa,` list or `-Xassembler` word) makes the assembler read
/// or write files of the client's choosing: listings (`-a...`), dependency files (`--MD`),
/// another output (`-o`), option files (`@`). Include directories (`-I`) and flags such as
/// `--noexecstack` only steer the assembly and are sent.
pub fn assembler_names_files(value: &str) -> bool {
    value.split(',').any(|word| {
        ["-a", "--MD", "-o", "@", "--listing"]
            .iter()
            .any(|p| word.starts_with(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The promise that keeps client and daemon together: whatever the client sends, a
    /// daemon runs.
    #[test]
    fn every_option_the_client_sends_runs_on_a_server() {
        for r in OPTIONS {
            if r.role.is_sent() {
                assert_eq!(r.server, Runs, "{} is sent but refused", r.name);
            }
        }
        assert!(UNKNOWN.role.is_sent() && UNKNOWN.server == Runs);
    }

    #[test]
    fn lookup_prefers_exact_then_longest_prefix() {
        assert_eq!(lookup("-M").0.role, Local(Why::PreprocessOnly));
        assert_eq!(lookup("-MJx").0.name, "-MJ");
        assert_eq!(lookup("-Mfoo").0.name, "-M");
        assert_eq!(lookup("-fprofile-update=atomic").0.role, Both);
        assert_eq!(lookup("-fprofile-generate").0.name, "-fprofile");
        assert_eq!(lookup("--param=x=1"), (&OPTIONS[row_of("--param=")], 8));
        assert_eq!(lookup("--include=x").0.name, "--");
        assert_eq!(lookup("-O2").0, &UNKNOWN);
        // As distcc 3.4: only a bare -flto stays here (-flto=auto is sent).
        assert_eq!(lookup("-flto=auto").0, &UNKNOWN);
    }

    fn row_of(name: &str) -> usize {
        OPTIONS.iter().position(|r| r.name == name).unwrap()
    }

    #[test]
    fn assembler_values() {
        for files in [
            "-alh=x.lst",
            "--MD,x.d",
            "-o,x",
            "@opts",
            "--noexecstack,-ahl",
        ] {
            assert!(assembler_names_files(files), "{files}");
        }
        for harmless in ["--noexecstack", "-I.", "-I", "--64", "--gdwarf-5"] {
            assert!(!assembler_names_files(harmless), "{harmless}");
        }
    }
}
