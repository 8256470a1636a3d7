//! The command-line table: real gcc and clang lines from kernel, CMake, Meson, autoconf and
//! libtool builds, with the decision we make (remote or local). Every row is checked against
//! distcc 3.4 itself: its client is run on the line against our daemon in --verbose mode,
//! whose log shows whether 3.4 distributed it and with which command line. Every remote row
//! is also run through our own client against our own daemon, which must compile it: our
//! client must never send what our daemon refuses.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use distcc_rs::cmdline::{classify, Decision, DirectivesOnly};
use distcc_rs::logging::argv_to_string;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Remote,
    Local,
}

/// How distcc 3.4 compares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Vs34 {
    /// Same decision, and the same command line sent.
    Same,
    /// Same decision; we send another command line (the reason follows in the table).
    OtherArgv,
    /// Same decision; we send 3.4's command line plus `-fdirectives-only`: a gcc `-g`
    /// compile, preprocessed so that the object equals a local one (see `debuginfo`).
    DirectivesOnly,
    /// Another decision, on purpose.
    Differs,
}

use Vs34::*;
use Want::*;

#[rustfmt::skip]
const TABLE: &[(&str, Want, Vs34)] = &[
    // Plain compiles and links.
    ("gcc -c a.c", Remote, Same),
    ("gcc -c a.c -o a.o", Remote, Same),
    ("gcc -c a.c -o out/a.o", Remote, Same),
    ("gcc -O2 -g -Wall -c a.c", Remote, DirectivesOnly),
    ("gcc -S a.c", Remote, Same),
    ("gcc -S a.c -o out/a.s", Remote, Same),
    ("gcc -S -c a.c", Remote, Same),
    ("gcc -c -o a.o a.c", Remote, Same),
    ("gcc -o a.o -c a.c", Remote, Same),
    ("gcc -c a.c -oa.o", Remote, Same),
    ("gcc -c a.c -o a.obj", Remote, Same),
    ("gcc -c a.c -o out/a", Remote, Same),
    ("gcc -c b.c -o b.o", Remote, Same),
    ("gcc -pipe -c a.c", Remote, Same),
    ("gcc a.c -o prog", Local, Same),
    ("gcc a.o b.o -o prog", Local, Same),
    ("gcc -o prog a.o", Local, Same),
    ("gcc -shared -o lib.so a.o", Local, Same),
    ("gcc -c a.c b.c", Local, Same),
    ("gcc -c a.c -o -", Local, Same),
    ("gcc --version", Local, Same),
    ("gcc -v", Local, Same),
    ("gcc -dumpmachine", Local, Same),
    ("gcc @args.rsp", Local, Same),
    // Languages and inputs.
    ("gcc -c a.C", Remote, Same),
    ("gcc -c a.cxx", Remote, Same),
    ("gcc -c a.c++", Remote, Same),
    ("g++ -c a.cpp -o a.o", Remote, Same),
    ("g++ -std=c++17 -O2 -c x.cc", Remote, Same),
    ("c++ -c x.cc", Remote, Same),
    ("cc -c a.c", Remote, Same),
    ("gcc-12 -c a.c", Remote, Same),
    ("gcc -c a.m", Remote, Same),
    ("gcc -c a.mm", Remote, Same),
    ("gcc -c p.i", Remote, Same),
    ("g++ -c p.ii", Remote, Same),
    ("gcc -c a.s", Local, Same),
    ("gcc -c a.S", Local, Same),
    ("gcc -c h.h", Local, Same),
    ("gcc -x c-header -c h.h -o h.h.gch", Local, Same),
    ("gcc -x assembler -c a.s", Local, Same),
    ("gcc -c -x c -", Local, Same),
    // Kbuild's cc-option: whether the local compiler takes an option.
    ("gcc -Werror -fno-stack-protector -c -x c /dev/null -o .tmp_1.o", Local, Same),
    ("gcc -Wall -S -x c /dev/null -o /dev/null", Local, Same),
    // -x: we send the preprocessed language, so the server never preprocesses.
    ("gcc -x c -c a.c", Remote, OtherArgv),
    ("gcc -x c++ -c a.c", Remote, OtherArgv),
    // 3.4 reads the next word for the joined -xc (a quirk), and does not see inputs
    // without a source extension named by -x.
    ("gcc -xc -c a.c", Remote, Differs),
    ("gcc -x c -c w.txt -o w.o", Remote, Differs),
    ("g++ -x c++ -c h.hpp -o out/h.o", Remote, Differs),
    // Preprocessing only.
    ("gcc -E a.c", Local, Same),
    ("gcc -E a.c -o a.i", Local, Same),
    ("gcc -M a.c", Local, Same),
    ("gcc -MM a.c", Local, Same),
    ("gcc -fsyntax-only a.c", Local, Same),
    // 3.4 distributes these; nothing useful comes back.
    ("gcc -fsyntax-only -c a.c", Local, Differs),
    ("gcc -### -c a.c", Local, Differs),
    ("gcc -dM -c a.c", Local, Differs),
    // autoconf.
    ("gcc -c conftest.c", Local, Same),
    ("gcc -c conftest.c -o conftest.o", Local, Same),
    ("gcc -E conftest.c", Local, Same),
    ("gcc -o conftest -g -O2 conftest.c", Local, Same),
    ("gcc -DHAVE_CONFIG_H -I. -g -O2 -MT a.o -MD -MP -MF .deps/a.Tpo -c -o a.o a.c", Remote, DirectivesOnly),
    ("gcc -DHAVE_CONFIG_H -I. -I.. -g -O2 -c a.c", Remote, DirectivesOnly),
    // libtool.
    ("gcc -DHAVE_CONFIG_H -I. -g -O2 -MT a.lo -MD -MP -MF .deps/a.Tpo -c a.c -fPIC -DPIC -o .libs/a.o", Remote, DirectivesOnly),
    ("gcc -DHAVE_CONFIG_H -I. -g -O2 -MT a.lo -MD -MP -MF .deps/a.Tpo -c a.c -o a.o", Remote, DirectivesOnly),
    // Linux kernel.
    ("gcc -Wp,-MMD,out/.a.o.d -nostdinc -I./inc -include ./cfg.h -D__KERNEL__ -fno-PIE -mcmodel=kernel -O2 -c -o out/a.o a.c", Remote, Same),
    ("gcc -Wp,-MD,out/.a.o.d -nostdinc -isystem inc -D__KERNEL__ -Wall -Wundef -fno-strict-aliasing -fno-common -std=gnu11 -c -o out/a.o a.c", Remote, Same),
    ("gcc -Wp,-MMD,out/.b.o.d -nostdinc -I./inc -D__KERNEL__ -DKBUILD_MODNAME=b -mno-sse -mno-mmx -mno-red-zone -fno-asynchronous-unwind-tables -c -o out/b.o b.c", Remote, Same),
    ("gcc -Wp,-MMD,out/.a.s.d -nostdinc -I./inc -D__ASSEMBLY__ -c -o out/a.o a.S", Local, Same),
    ("gcc -E -Wp,-MMD,out/.vmlinux.lds.d -nostdinc -P -Ux86 -D__ASSEMBLY__ -o out/vmlinux.lds a.c", Local, Same),
    ("gcc -Wp,-MMD,out/.a.o.d -nostdinc -I./inc -Wa,--noexecstack -c -o out/a.o a.c", Remote, Same),
    ("gcc -Wp,-MMD,out/.a.o.d -fno-PIE -fcf-protection=none -falign-jumps=1 -fno-jump-tables -c -o out/a.o a.c", Remote, Same),
    // CMake and Ninja.
    ("/usr/bin/cc -DFOO -Iinc -O3 -DNDEBUG -MD -MT out/a.c.o -MF out/a.c.o.d -o out/a.c.o -c a.c", Remote, Same),
    ("/usr/bin/c++ -isystem inc -std=gnu++17 -MD -MT out/x.o -MF out/x.o.d -o out/x.o -c x.cc", Remote, Same),
    ("/usr/bin/cc -fPIC -o out/a.o -c a.c", Remote, Same),
    ("/usr/bin/c++ -DNDEBUG -O2 -g -fPIC -std=c++14 -MD -MT out/x.cc.o -MF out/x.cc.o.d -o out/x.cc.o -c x.cc", Remote, DirectivesOnly),
    // Meson.
    ("cc -Iout/p -I. -fdiagnostics-color=always -D_FILE_OFFSET_BITS=64 -Wall -Winvalid-pch -O0 -g -MD -MQ out/a.o -MF out/a.o.d -o out/a.o -c a.c", Remote, DirectivesOnly),
    ("c++ -Iout -fdiagnostics-color=always -D_GLIBCXX_ASSERTIONS=1 -std=c++17 -O2 -g -fPIC -MD -MQ out/x.o -MF out/x.o.d -o out/x.o -c x.cc", Remote, DirectivesOnly),
    // Dependency files.
    ("gcc -MD -c a.c", Remote, Same),
    ("gcc -MMD -c a.c -o out/a.o", Remote, Same),
    ("gcc -MD -MF a.d -MT a.o -c a.c", Remote, Same),
    ("gcc -MD -MF deps/a.o -c a.c -o a.o", Remote, Same),
    ("gcc -MQ out/a.o -MD -c a.c", Remote, Same),
    ("gcc -Wp,-MD,a.d -c a.c", Remote, Same),
    ("gcc -Wp,-MMD,.a.o.d -c a.c -o a.o", Remote, Same),
    ("gcc -c a.c -MG -MD", Remote, Same),
    ("gcc -c a.c -MP -MD", Remote, Same),
    ("gcc -c a.c -o out/a.o -MD -MF out/a.d", Remote, Same),
    // Preprocessor options, consumed here.
    ("gcc -include cfg.h -c a.c", Remote, Same),
    ("gcc -imacros m.h -c a.c", Remote, Same),
    ("gcc -c a.c -I inc -Iinc2 -DX=1 -UY", Remote, Same),
    ("gcc -c a.c -isystem inc", Remote, Same),
    ("gcc -c a.c -idirafter inc", Remote, Same),
    ("gcc -c a.c -nostdinc", Remote, Same),
    ("gcc -c a.c -undef", Remote, Same),
    ("g++ -c x.cc -stdlib=libstdc++", Remote, Same),
    // We also keep these preprocessor-only options here; 3.4 sends them along.
    ("gcc -c a.c -iquote inc", Remote, OtherArgv),
    ("gcc -c a.c -isysroot /", Remote, OtherArgv),
    ("gcc -c a.c -H", Remote, OtherArgv),
    ("gcc -c a.c -C", Remote, OtherArgv),
    ("gcc -c a.c -Xpreprocessor -DZ", Remote, OtherArgv),
    // 3.4 takes -include's argument for a second input.
    ("gcc -include x.c -c a.c", Remote, Differs),
    // Linker options with -c.
    ("gcc -c a.c -L lib -lm", Remote, Same),
    ("gcc -c a.c -Wl,--as-needed", Remote, Same),
    ("gcc -c a.c -Xlinker --no-undefined", Remote, OtherArgv),
    // Code generation: sent as they are.
    ("gcc -c a.c -std=c99 -pedantic", Remote, Same),
    ("gcc -c a.c -fPIC -DPIC", Remote, Same),
    ("gcc -c a.c -fvisibility=hidden", Remote, Same),
    ("gcc -c a.c -fstack-protector-strong --param=ssp-buffer-size=4", Remote, Same),
    ("gcc -c a.c -D_FORTIFY_SOURCE=2 -O2", Remote, Same),
    ("gcc -c a.c -ffunction-sections -fdata-sections", Remote, Same),
    ("gcc -c a.c -pthread", Remote, Same),
    ("gcc -c a.c -fopenmp", Remote, Same),
    ("gcc -c a.c -m32", Remote, Same),
    ("gcc -c a.c -fdebug-prefix-map=/a=/b", Remote, Same),
    ("gcc -c a.c -w", Remote, Same),
    ("gcc -c a.c -Werror", Remote, Same),
    ("gcc -c a.c -fno-common", Remote, Same),
    ("gcc -c a.c -trigraphs", Remote, Same),
    ("gcc -c a.c -ansi", Remote, Same),
    ("gcc -c a.c --sysroot=/", Remote, Same),
    ("gcc -c a.c --sysroot /", Remote, Same),
    ("gcc -c a.c -fsanitize=address", Remote, Same),
    ("gcc -c a.c -fno-omit-frame-pointer", Remote, Same),
    ("gcc -c a.c -mavx2", Remote, Same),
    ("gcc -c a.c -march=x86-64-v3", Remote, Same),
    ("gcc -c a.c -mtune=generic", Remote, Same),
    ("gcc -c a.c -O3 -funroll-loops", Remote, Same),
    ("gcc -c a.c -fwrapv", Remote, Same),
    ("gcc -c a.c -Wno-unused -Wextra", Remote, Same),
    ("gcc -c a.c -fmessage-length=0", Remote, Same),
    ("gcc -c a.c -frecord-gcc-switches", Remote, Same),
    ("gcc -c a.c -fno-ident", Remote, Same),
    ("gcc -c a.c -g3", Remote, DirectivesOnly),
    ("gcc -c a.c -ggdb", Remote, DirectivesOnly),
    ("gcc -c a.c -gdwarf-4", Remote, DirectivesOnly),
    ("gcc -g0 -ggdb1 -c a.c", Remote, DirectivesOnly),
    // No debug information in the end, or a preprocessor mode -fdirectives-only refuses.
    ("gcc -g -g0 -c a.c", Remote, Same),
    ("gcc -g -Wunused-macros -c a.c", Remote, Same),
    ("gcc -c a.c -fPIE", Remote, Same),
    ("gcc -c a.c -fno-plt", Remote, Same),
    ("gcc -c a.c -fcf-protection", Remote, Same),
    ("gcc -c a.c -fstack-clash-protection", Remote, Same),
    ("gcc -c a.c -fexceptions", Remote, Same),
    ("gcc -c a.c -fpch-preprocess", Remote, Same),
    ("gcc -c a.c -Wa,--noexecstack", Remote, Same),
    ("gcc -c a.c -Xassembler --noexecstack", Remote, Same),
    ("gcc -Xassembler --noexecstack -c a.c", Remote, Same),
    ("gcc -Wa,-I. -c a.c", Remote, Same),
    ("gcc -Wa,--noexecstack,-I. -c a.c", Remote, Same),
    ("gcc -fprofile-update=atomic -c a.c", Remote, Same),
    ("gcc -fprofile-update=prefer-atomic -fprofile-abs-path -c a.c", Local, Differs),
    ("gcc -c a.c -flto=auto", Remote, Same),
    ("gcc -Os -c a.c", Remote, Same),
    ("gcc -Og -c a.c", Remote, Same),
    ("g++ -c x.cc -fno-rtti -fno-exceptions", Remote, Same),
    // Tuned for this machine, or reading and writing files here: local.
    ("gcc -march=native -c a.c", Local, Same),
    ("gcc -mtune=native -c a.c", Local, Same),
    ("gcc -flto -c a.c", Local, Same),
    ("gcc -fprofile-arcs -c a.c", Local, Same),
    ("gcc -ftest-coverage -c a.c", Local, Same),
    ("gcc --coverage -c a.c", Local, Same),
    ("gcc -fprofile-generate -c a.c", Local, Same),
    ("gcc -fprofile-use=prof -c a.c", Local, Same),
    ("gcc -frepo -c a.c", Local, Same),
    ("gcc -Wa,-alh=a.lst -c a.c", Local, Same),
    ("gcc -Wa,--MD,a.dd -c a.c", Local, Same),
    ("gcc -specs=foo.specs -c a.c", Local, Same),
    ("gcc -dr -c a.c", Local, Same),
    ("clang -MJ out/a.json -c a.c", Local, Same),
    // 3.4 distributes these, to the wrong effect (or to a refusal).
    ("gcc -mcpu=native -c a.c", Local, Differs),
    ("gcc -save-temps -c a.c", Local, Differs),
    ("gcc -fplugin=./p.so -c a.c", Local, Differs),
    ("gcc -c a.c -gsplit-dwarf", Local, Differs),
    ("gcc -c a.c -fstack-usage", Local, Differs),
    ("gcc -c a.c -fdump-tree-all", Local, Differs),
    ("gcc -c a.c -aux-info a.aux", Local, Differs),
    ("gcc -c a.c -B/tmp", Local, Differs),
    ("gcc -c a.c @opts", Local, Differs),
    ("g++ -fmodules-ts -c x.cc", Local, Differs),
    // clang.
    ("clang -c a.c", Remote, Same),
    ("clang -target aarch64-linux-gnu -c a.c", Remote, Same),
    ("clang --target=x86_64-linux-gnu -c a.c", Remote, Same),
    ("clang --target=aarch64-linux-gnu -O2 -c a.c", Remote, Same),
    ("clang++ --target=aarch64-linux-gnu -g -c a.cc -o a.o", Remote, Same),
    ("clang++ -std=c++20 -c x.cc", Remote, Same),
    // clang has no -fdirectives-only: its -g compiles go as the files they read to our
    // daemon, and as 3.4 sends them to 3.4's.
    ("clang -g -O2 -c a.c", Remote, Same),
    ("clang -c a.c -Xclang -fno-pch-timestamp", Local, Differs),
    ("clang -c a.c -mllvm -x86-asm-syntax=intel", Local, Differs),
    ("clang -fprofile-instr-generate -c a.c", Local, Differs),
    ("clang -c a.c -ftime-trace", Local, Differs),
];

/// Source files the lines name.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["out", ".deps", ".libs", "inc", "deps"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    for f in ["a.c", "b.c", "conftest.c", "w.txt", "a.m"] {
        std::fs::write(dir.path().join(f), "int f(void) { return 1; }\n").unwrap();
    }
    for f in ["a.C", "a.cxx", "a.c++", "a.cpp", "x.cc", "a.mm", "h.hpp"] {
        std::fs::write(dir.path().join(f), "int g() { return 2; }\n").unwrap();
    }
    for f in ["p.i", "p.ii"] {
        std::fs::write(dir.path().join(f), "int h(void) { return 3; }\n").unwrap();
    }
    for f in ["h.h", "cfg.h", "m.h", "x.c"] {
        std::fs::write(dir.path().join(f), "#define CFG 1\n").unwrap();
    }
    std::fs::write(dir.path().join("a.s"), ".text\n").unwrap();
    std::fs::write(dir.path().join("a.S"), ".text\n").unwrap();
    dir
}

/// Requests the daemon has logged so far, in order.
fn requests(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter_map(|l| l.split_once(" got request: ").map(|(_, r)| r.to_string()))
        .collect()
}

/// Runs distcc 3.4 on `argv` and says what it sent our daemon, if anything.
fn distcc_34_sends(d: &Daemon, argv: &[String]) -> Option<String> {
    let dir = scratch();
    std::fs::create_dir(dir.path().join(".distcc")).unwrap();
    let before = requests(d).len();
    let _ = output_within(
        Command::new(DISTCC_34)
            .current_dir(dir.path())
            .args(argv)
            .env("DISTCC_HOSTS", d.host())
            .env("DISTCC_DIR", dir.path().join(".distcc"))
            .env("DISTCC_NO_REWRITE_CROSS", "1"),
        60,
    );
    requests(d).get(before).cloned()
}

#[test]
fn command_line_table_against_distcc_34() {
    require_distcc_34();
    assert!(TABLE.len() >= 150, "{} rows", TABLE.len());
    let d = Daemon::ours(&["--verbose"]);
    let mut problems = Vec::new();
    for (line, want, vs) in TABLE {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        let ours = match classify(&argv, DirectivesOnly::WithDebugInfo) {
            Decision::Remote(job) => Some(argv_to_string(&job.server_argv())),
            Decision::Local(_) => None,
        };
        if ours.is_some() != (*want == Remote) {
            problems.push(format!(
                "{line}: we decide {ours:?}, the table says {want:?}"
            ));
            continue;
        }
        let theirs = distcc_34_sends(&d, &argv);
        let ok = match vs {
            Same => theirs == ours,
            OtherArgv => theirs.is_some() == ours.is_some() && theirs != ours,
            DirectivesOnly => theirs.as_ref().map(|t| format!("{t} -fdirectives-only")) == ours,
            Differs => theirs.is_some() != ours.is_some(),
        };
        if !ok {
            problems.push(format!(
                "{line} ({vs:?}): distcc 3.4 sends {theirs:?}, we {ours:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} rows:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Runs `line` in a fresh copy of the scratch files: with our client against `d` when
/// `host` is set, else the compiler itself. Returns the exit status.
fn run_line(argv: &[String], host: Option<&Daemon>) -> std::process::ExitStatus {
    let dir = scratch();
    let mut cmd = match host {
        Some(d) => {
            let mut cmd = Command::new(OUR_DISTCC);
            cmd.args(argv)
                .env("DISTCC_HOSTS", d.host())
                .env("DISTCC_DIR", dir.path().join(".distcc"))
                // A refusal must not hide behind a local compile.
                .env("DISTCC_FALLBACK", "0");
            cmd
        }
        None => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        }
    };
    output_within(cmd.current_dir(dir.path()), 60).status
}

#[test]
fn our_daemon_compiles_every_line_our_client_sends() {
    let d = Daemon::ours(&[]);
    let mut problems = Vec::new();
    let mut compiled = 0;
    for (line, want, _) in TABLE.iter().filter(|(_, want, _)| *want == Remote) {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        let installed = std::env::var_os("PATH").is_some_and(|path| {
            Path::new(&argv[0]).is_absolute()
                || std::env::split_paths(&path).any(|dir| dir.join(&argv[0]).exists())
        });
        if !installed || !run_line(&argv, None).success() {
            // This machine cannot compile it at all (no clang, no Objective-C): nothing
            // to compare. The other test still checks the decision.
            eprintln!("skipped, the compiler itself fails here: {line} ({want:?})");
            continue;
        }
        let before = d.compiled_ok();
        let status = run_line(&argv, Some(&d));
        if !status.success() || d.wait_compiled(before + 1) != before + 1 {
            problems.push(format!("{line}: {status}, not compiled by our daemon"));
        } else {
            compiled += 1;
        }
    }
    let log = d.log_text();
    assert!(
        problems.is_empty(),
        "{} rows:\n{}\ndaemon log:\n{log}",
        problems.len(),
        problems.join("\n")
    );
    assert!(compiled >= 100, "only {compiled} rows compiled");
    assert!(!log.contains("refused"), "{log}");
}
