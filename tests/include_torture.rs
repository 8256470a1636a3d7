//! Hand-written torture cases for the include analysis (issue 15), each checked against
//! `gcc -M` as the oracle: conditionals on `-D` values and predefined macros, guards and
//! `#pragma once`, `#include_next` chains and GCC's search-list clean-up, symlinks and
//! `..`, computed includes, `__has_include`, lexer corners (also in generated files),
//! `-include`/`-imacros`, the languages, and headers created, changed and deleted during
//! a build.
//!
//! Every case first checks that gcc reads exactly the files the case says (so the case
//! tests what it claims to), then compares the closure with gcc's list:
//! - always: nothing gcc reads is missing, and every file `__has_include` finds is shipped
//!   (gcc reads it on the host too, though `gcc -M` does not list it);
//! - in the `*_exact` tests, for the cases marked [`Run::exact`], the surplus is exactly
//!   the files probed by `__has_include`: what an analysis that evaluates `#if` must reach.
//!   The `*_superset` tests run the same cases and report the surplus without judging it.
//!
//! A test collects the failures of all its cases and reports them together.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use common::oracle::{compare, try_deps};
use distcc_rs::include::client_root_name_to_real;
use distcc_rs::include::server::IncludeServer;
use distcc_rs::wire::lzo;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// A tree in a fresh temporary directory (its canonical path).
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    /// Writes `files`: (path relative to the root, content). A content `-> target` makes
    /// a symbolic link to `target`; a path ending in `/` makes a directory.
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let t = Tree { _dir: dir, root };
        for (path, content) in files {
            t.write(path, content);
        }
        t
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.root.join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
            return;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        match content.strip_prefix("->") {
            Some(target) => std::os::unix::fs::symlink(target.trim(), &p).unwrap(),
            None => fs::write(&p, content).unwrap(),
        }
    }

    /// The absolute path of `rel` ("" or "." for the root).
    fn path(&self, rel: &str) -> String {
        let p = match rel {
            "" | "." => self.root.clone(),
            _ => self.root.join(rel),
        };
        p.to_str().unwrap().to_string()
    }

    /// `abs` relative to the root when it is under it.
    fn rel(&self, abs: &str) -> String {
        let root = self.path("");
        abs.strip_prefix(&root)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(abs)
            .to_string()
    }
}

/// What a test judges.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Missing files and unshipped probes only.
    Superset,
    /// Also the surplus of the cases marked exact.
    Exact,
}

/// The compiler the cases run with, and whose `-M` is the oracle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cc {
    /// The commands as written (`gcc`, `g++`).
    Gcc,
    /// The same commands with `clang` and `clang++`. Where clang reads other files than
    /// gcc (its own headers, its own predefined macros), its list is the expectation.
    Clang,
}

/// The cases of one test: one include server for all of them, as in a build.
struct Run<'t> {
    name: &'static str,
    tree: &'t Tree,
    server: IncludeServer,
    mode: Mode,
    cc: Cc,
    failures: Vec<String>,
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

impl<'t> Run<'t> {
    fn new(name: &'static str, tree: &'t Tree, mode: Mode, cc: Cc) -> Run<'t> {
        Run {
            name,
            tree,
            server: IncludeServer::new().unwrap(),
            mode,
            cc,
            failures: Vec::new(),
        }
    }

    /// `cmd` as this run's compiler runs it.
    fn argv(&self, cmd: &str) -> Vec<String> {
        let mut argv = words(cmd);
        if self.cc == Cc::Clang {
            argv[0] = match argv[0].as_str() {
                "gcc" => "clang".to_string(),
                "g++" => "clang++".to_string(),
                other => other.to_string(),
            };
        }
        argv
    }

    fn fail(&mut self, cwd: &str, cmd: &str, what: String) {
        let line = format!("`{cmd}` in {cwd:?}: {what}");
        eprintln!("FAIL {}: {line}", self.name);
        self.failures.push(line);
    }

    /// Missing 0: every file gcc reads is shipped. `gcc` is what gcc must read (relative
    /// to the root, source included), checked first.
    fn superset(&mut self, cwd: &str, cmd: &str, gcc: &[&str]) {
        self.case(cwd, cmd, gcc, &[], false, false);
    }

    /// Missing 0, and in the exact tests nothing more than gcc reads.
    fn exact(&mut self, cwd: &str, cmd: &str, gcc: &[&str]) {
        self.case(cwd, cmd, gcc, &[], true, false);
    }

    /// Missing 0 and `probed` shipped (files looked up but not read: those `__has_include`
    /// or `#pragma GCC dependency` finds); in the exact tests the surplus is exactly
    /// `probed`.
    fn exact_probed(&mut self, cwd: &str, cmd: &str, gcc: &[&str], probed: &[&str]) {
        self.case(cwd, cmd, gcc, probed, true, false);
    }

    /// As [`Run::exact`] when the command is covered; "not covered" (the client then
    /// preprocesses locally, which is safe) is reported, not failed.
    fn exact_if_covered(&mut self, cwd: &str, cmd: &str, gcc: &[&str]) {
        self.case(cwd, cmd, gcc, &[], true, true);
    }

    fn case(
        &mut self,
        cwd: &str,
        cmd: &str,
        gcc: &[&str],
        probed: &[&str],
        exact: bool,
        may_be_not_covered: bool,
    ) {
        let argv = self.argv(cmd);
        let dir = self.tree.path(cwd);
        let closure = match self.server.closure(&dir, &argv) {
            Ok(c) => c,
            Err(why) if may_be_not_covered => {
                println!("{}: `{cmd}` in {cwd:?}: not covered: {why}", self.name);
                return;
            }
            Err(why) => return self.fail(cwd, cmd, format!("not covered: {why}")),
        };
        let t = self.tree;
        let read: BTreeSet<String> = match try_deps(dir.as_ref(), &argv, &closure.system_dirs) {
            Ok(read) => read.iter().map(|p| t.rel(p)).collect(),
            Err(e) if self.cc == Cc::Clang => {
                // Such as an angled name made by macros: clang keeps the spaces.
                println!(
                    "{}: `{cmd}` in {cwd:?}: clang cannot preprocess it: {e}",
                    self.name
                );
                return;
            }
            Err(e) => return self.fail(cwd, cmd, e),
        };
        if read.is_empty() && self.cc == Cc::Clang {
            // clang 14 takes a `.sx` file for the linker's.
            println!("{}: `{cmd}` in {cwd:?}: not a source for clang", self.name);
            return;
        }
        if read != set(gcc) && self.cc == Cc::Clang {
            println!(
                "{}: `{cmd}` in {cwd:?}: clang reads {read:?} where gcc reads {gcc:?}",
                self.name
            );
        } else if read != set(gcc) {
            return self.fail(
                cwd,
                cmd,
                format!("the case is wrong: gcc reads {read:?}, the case says {gcc:?}"),
            );
        }
        let c = compare(&self.server, dir.as_ref(), &argv);
        let rel = |v: &[String]| -> BTreeSet<String> { v.iter().map(|p| t.rel(p)).collect() };
        let (missing, surplus) = (rel(&c.missing), rel(&c.surplus));
        let ours: BTreeSet<String> = closure.files.iter().map(|f| t.rel(&f.realpath)).collect();
        println!(
            "{} [{:?}{}]: `{cmd}` in {cwd:?}: gcc reads {}, surplus {surplus:?}",
            self.name,
            self.mode,
            if exact { ", exact case" } else { "" },
            read.len()
        );
        if !missing.is_empty() {
            self.fail(cwd, cmd, format!("MISSING {missing:?}"));
        }
        let unshipped: Vec<&&str> = probed.iter().filter(|p| !ours.contains(**p)).collect();
        if !unshipped.is_empty() {
            self.fail(
                cwd,
                cmd,
                format!("looked up but NOT SHIPPED: {unshipped:?}"),
            );
        }
        // clang's `-M` lists what `__has_include` found; GCC's does not.
        let probed_unlisted: BTreeSet<String> = set(probed).difference(&read).cloned().collect();
        if exact && self.mode == Mode::Exact && surplus != probed_unlisted {
            self.fail(
                cwd,
                cmd,
                format!("NOT EXACT: surplus {surplus:?}, expected {probed:?}"),
            );
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} failures:\n{}",
            self.name,
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.server.clean_up();
    }
}

/// Four tests over the same cases: `$superset` judges missing files only, `$exact` also the
/// surplus of the exact cases; the `$clang_` ones do the same with clang as the compiler
/// and its `-M` as the oracle.
macro_rules! torture {
    ($cases:ident: $superset:ident, $exact:ident, $clang_superset:ident, $clang_exact:ident) => {
        #[test]
        fn $superset() {
            $cases(Mode::Superset, Cc::Gcc);
        }

        #[test]
        fn $exact() {
            $cases(Mode::Exact, Cc::Gcc);
        }

        #[test]
        fn $clang_superset() {
            $cases(Mode::Superset, Cc::Clang);
        }

        #[test]
        fn $clang_exact() {
            $cases(Mode::Exact, Cc::Clang);
        }
    };
}

// 1. Conditionals on `-D` values and on predefined macros. (`defined` produced by macro
// expansion is undefined behaviour: not a case.)

torture!(conditionals: conditionals_superset, conditionals_exact, conditionals_clang_superset, conditionals_clang_exact);

fn conditionals(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "cond.c",
            "#if FOO > 2\n#include \"foo_gt2.h\"\n\
             #elif defined(BAR) && BAZ\n#include \"bar_baz.h\"\n\
             #else\n#include \"neither.h\"\n#endif\n\
             #ifdef FOO\n#include \"foo_defined.h\"\n#endif\n\
             #ifndef BAR\n#include \"bar_undefined.h\"\n#endif\n\
             #if defined FOO\n# if FOO == 1\n#  include \"foo_is_1.h\"\n# else\n\
             #  ifdef BAZ\n#   include \"foo_not_1_baz.h\"\n#  endif\n# endif\n#endif\n\
             #ifdef F\n# if F(2) == 3\n#  include \"f_plus_1.h\"\n# endif\n#endif\n",
        ),
        ("foo_gt2.h", ""),
        ("bar_baz.h", ""),
        ("neither.h", ""),
        ("foo_defined.h", ""),
        ("bar_undefined.h", ""),
        ("foo_is_1.h", ""),
        ("foo_not_1_baz.h", ""),
        ("f_plus_1.h", ""),
        // Corners of #if expressions.
        (
            "expr.c",
            "#if -1 > 0u\n#include \"unsigned.h\"\n#endif\n\
             #if 1 ? 2 : (1/0)\n#include \"ternary.h\"\n#endif\n\
             #if 0 && (1/0)\n#include \"never_and.h\"\n#endif\n\
             #if 'A' == 65\n#include \"char_a.h\"\n#endif\n\
             #if UNDEFINED_NAME == 0\n#include \"undefined_is_0.h\"\n#endif\n\
             #line 100\n#if __LINE__ == 100\n#include \"line_100.h\"\n#endif\n\
             #if defined X || defined(Y)\n#define XY\n#endif\n\
             #ifdef XY\n#include \"x_or_y.h\"\n#endif\n\
             #if 0\n# if 1\n#  include \"nested_if.h\"\n# else\n#  include \"nested_else.h\"\n\
             # endif\n#else\n# include \"outer_else.h\"\n#endif\n",
        ),
        ("unsigned.h", ""),
        ("ternary.h", ""),
        ("never_and.h", ""),
        ("char_a.h", ""),
        ("undefined_is_0.h", ""),
        ("line_100.h", ""),
        ("x_or_y.h", ""),
        ("nested_if.h", ""),
        ("nested_else.h", ""),
        ("outer_else.h", ""),
        // #elifdef: GCC 12 knows it in its GNU modes and C2X, not in strict C11.
        (
            "elif.c",
            "#if 0\n#elifdef X\n#include \"x.h\"\n#elifndef Y\n#include \"not_y.h\"\n#endif\n",
        ),
        ("x.h", ""),
        ("not_y.h", ""),
        // Predefined macros.
        (
            "predef.c",
            "#if __STDC_VERSION__ >= 201112L\n#include \"c11.h\"\n#else\n#include \"pre_c11.h\"\n#endif\n\
             #ifdef __x86_64__\n#include \"x86_64.h\"\n#else\n#include \"not_x86_64.h\"\n#endif\n\
             #if __GNUC__ >= 4\n#include \"gnuc4.h\"\n#endif\n\
             #ifdef __OPTIMIZE__\n#include \"optimize.h\"\n#endif\n\
             #ifdef __cplusplus\n#include \"cplusplus.h\"\n#endif\n\
             #ifdef __STRICT_ANSI__\n#include \"strict.h\"\n#endif\n",
        ),
        ("predef.cc", "#include \"predef.c\"\n"),
        ("c11.h", ""),
        ("pre_c11.h", ""),
        ("x86_64.h", ""),
        ("not_x86_64.h", ""),
        ("gnuc4.h", ""),
        ("optimize.h", ""),
        ("cplusplus.h", ""),
        ("strict.h", ""),
    ]);
    let mut r = Run::new("conditionals", &t, mode, cc);
    let c = "cond.c";
    r.exact(".", "gcc -c cond.c", &[c, "neither.h", "bar_undefined.h"]);
    let gt2 = [c, "foo_gt2.h", "foo_defined.h", "bar_undefined.h"];
    r.exact(".", "gcc -DFOO=3 -c cond.c", &gt2);
    r.exact(".", "gcc -D FOO=3 -c cond.c", &gt2);
    r.exact(".", "gcc -DFOO=2+1 -c cond.c", &gt2);
    r.exact(
        ".",
        "gcc -DFOO -c cond.c",
        &[
            c,
            "neither.h",
            "foo_defined.h",
            "bar_undefined.h",
            "foo_is_1.h",
        ],
    );
    r.exact(".", "gcc -DBAR -DBAZ=2 -c cond.c", &[c, "bar_baz.h"]);
    r.exact(".", "gcc -DBAR -DBAZ=0 -c cond.c", &[c, "neither.h"]);
    r.exact(".", "gcc -DBAR -c cond.c", &[c, "neither.h"]);
    r.exact(
        ".",
        "gcc -DFOO=3 -UFOO -c cond.c",
        &[c, "neither.h", "bar_undefined.h"],
    );
    r.exact(
        ".",
        "gcc -UFOO -DFOO=5 -DBAZ -c cond.c",
        &[
            c,
            "foo_gt2.h",
            "foo_defined.h",
            "bar_undefined.h",
            "foo_not_1_baz.h",
        ],
    );
    r.exact(
        ".",
        "gcc -D FOO=2 -D BAR -D BAZ=FOO -c cond.c",
        &[c, "bar_baz.h", "foo_defined.h", "foo_not_1_baz.h"],
    );
    r.exact(
        ".",
        "gcc -DF(x)=x+1 -c cond.c",
        &[c, "neither.h", "bar_undefined.h", "f_plus_1.h"],
    );
    r.exact(
        ".",
        "gcc -DF(x)=x -c cond.c",
        &[c, "neither.h", "bar_undefined.h"],
    );

    let e = "expr.c";
    let always = [
        "unsigned.h",
        "ternary.h",
        "char_a.h",
        "undefined_is_0.h",
        "line_100.h",
        "outer_else.h",
    ];
    let mut read = vec![e];
    read.extend(always);
    r.exact(".", "gcc -c expr.c", &read);
    read.push("x_or_y.h");
    r.exact(".", "gcc -DY -c expr.c", &read);

    let e = "elif.c";
    r.exact(".", "gcc -c elif.c", &[e, "not_y.h"]);
    r.exact(".", "gcc -DX -c elif.c", &[e, "x.h"]);
    r.exact(".", "gcc -DY -c elif.c", &[e]);
    r.exact(".", "gcc -std=c2x -DX -c elif.c", &[e, "x.h"]);
    r.exact(".", "gcc -std=c11 -DX -c elif.c", &[e]);
    r.exact(".", "gcc -std=c11 -c elif.c", &[e]);

    let p = "predef.c";
    let arch = if cfg!(target_arch = "x86_64") {
        "x86_64.h"
    } else {
        "not_x86_64.h"
    };
    r.exact(".", "gcc -c predef.c", &[p, "c11.h", arch, "gnuc4.h"]);
    r.exact(
        ".",
        "gcc -std=c89 -c predef.c",
        &[p, "pre_c11.h", arch, "gnuc4.h", "strict.h"],
    );
    r.exact(
        ".",
        "gcc -std=gnu89 -c predef.c",
        &[p, "pre_c11.h", arch, "gnuc4.h"],
    );
    r.exact(
        ".",
        "gcc -std=c11 -O2 -c predef.c",
        &[p, "c11.h", arch, "gnuc4.h", "optimize.h", "strict.h"],
    );
    r.exact(
        ".",
        "gcc -O2 -O0 -c predef.c",
        &[p, "c11.h", arch, "gnuc4.h"],
    );
    r.exact(
        ".",
        "gcc -Os -c predef.c",
        &[p, "c11.h", arch, "gnuc4.h", "optimize.h"],
    );
    let cxx = [p, "pre_c11.h", arch, "gnuc4.h", "cplusplus.h"];
    r.exact(".", "gcc -x c++ -c predef.c", &cxx);
    let mut cc = vec!["predef.cc"];
    cc.extend(cxx);
    r.exact(".", "g++ -c predef.cc", &cc);
    r.exact(".", "gcc -O1 -c predef.cc", &{
        let mut v = cc.clone();
        v.push("optimize.h");
        v
    });
    r.finish();
}

// 2. Include guards and `#pragma once`.

torture!(guards: guards_superset, guards_exact, guards_clang_superset, guards_clang_exact);

fn guards(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "g.h",
            "#ifndef G_H\n#define G_H\n#ifdef SECOND\n#include \"g_second.h\"\n\
             #else\n#include \"g_first.h\"\n#endif\n#endif\n",
        ),
        ("g_first.h", ""),
        ("g_second.h", ""),
        (
            "once.h",
            "#pragma once\n#ifdef SECOND\n#include \"once_second.h\"\n\
             #else\n#include \"once_first.h\"\n#endif\n",
        ),
        ("once_first.h", ""),
        ("once_second.h", ""),
        ("once_link.h", "-> once.h"),
        (
            "twice.c",
            "#include \"g.h\"\n#include \"once.h\"\n#define SECOND\n\
             #include \"g.h\"\n#include \"once.h\"\n#include \"once_link.h\"\n",
        ),
        (
            "reguard.c",
            "#include \"g.h\"\n#undef G_H\n#define SECOND\n#include \"g.h\"\n",
        ),
        ("preguard.c", "#define G_H\n#include \"g.h\"\n"),
        ("plain.c", "#include \"g.h\"\n"),
        // #import reads a file once.
        (
            "imp.h",
            "#ifdef SECOND\n#include \"imp_second.h\"\n#else\n#include \"imp_first.h\"\n#endif\n",
        ),
        ("imp_first.h", ""),
        ("imp_second.h", ""),
        (
            "import.c",
            "#import \"imp.h\"\n#define SECOND\n#import \"imp.h\"\n#include \"imp.h\"\n",
        ),
    ]);
    let mut r = Run::new("guards", &t, mode, cc);
    r.exact(
        ".",
        "gcc -c twice.c",
        &["twice.c", "g.h", "g_first.h", "once.h", "once_first.h"],
    );
    r.exact(
        ".",
        "gcc -c reguard.c",
        &["reguard.c", "g.h", "g_first.h", "g_second.h"],
    );
    r.exact(".", "gcc -c preguard.c", &["preguard.c", "g.h"]);
    r.exact(
        ".",
        "gcc -c import.c",
        &["import.c", "imp.h", "imp_first.h"],
    );
    r.exact(".", "gcc -DG_H -c plain.c", &["plain.c", "g.h"]);
    r.exact(
        ".",
        "gcc -DSECOND -c plain.c",
        &["plain.c", "g.h", "g_second.h"],
    );
    r.finish();
}

// 3. Search chains: `#include_next`, -iquote, and GCC's removal of duplicate directories.

torture!(search_chains: search_chains_superset, search_chains_exact, search_chains_clang_superset, search_chains_clang_exact);

fn search_chains(mode: Mode, cc: Cc) {
    let n = "torture_n.h";
    let t = Tree::new(&[
        ("next.c", "#include <torture_n.h>\n"),
        ("n1/torture_n.h", "#include_next <torture_n.h>\n"),
        ("n2/torture_n.h", "#include_next \"torture_n.h\"\n"),
        ("n3/torture_n.h", "/* the end of the chain */\n"),
        ("n4/torture_n.h", "/* after the end */\n"),
        // #include_next from a file found in its includer's directory: GCC goes on with
        // the whole quote chain (-iquote included, even for <>).
        ("q.h", "#include_next <q.h>\n"),
        ("qd/q.h", ""),
        ("id/q.h", ""),
        ("inc_q.c", "#include \"q.h\"\n"),
        // ... and in the primary source file, it is an #include.
        ("next_main.c", "#include_next <q.h>\n"),
        ("iq.c", "#include \"iq.h\"\n#include <iq.h>\n"),
        ("qq/iq.h", ""),
        ("ii/iq.h", ""),
        // An -I dir that is also a system dir (-isystem, -idirafter) is dropped: the
        // directory keeps its later place.
        ("dup.c", "#include <dup.h>\n"),
        ("dq.c", "#include \"dup.h\"\n"),
        ("ds/dup.h", ""),
        ("do/dup.h", ""),
        // -I of a built-in system dir is dropped too: the user's stdio.h comes first.
        ("sysdup.c", "#include <stdio.h>\n"),
        ("mine/stdio.h", "#include_next <stdio.h>\n"),
    ]);
    let mut r = Run::new("search_chains", &t, mode, cc);
    let (n1, n2, n3) = (format!("n1/{n}"), format!("n2/{n}"), format!("n3/{n}"));
    let chain = ["next.c", n1.as_str(), n2.as_str(), n3.as_str()];
    r.exact(".", "gcc -In1 -In2 -In3 -In4 -c next.c", &chain);
    r.exact(".", "gcc -In1 -isystem n2 -idirafter n3 -c next.c", &chain);
    r.exact(".", "gcc -In1 -In2 -In1 -In3 -In4 -c next.c", &chain);
    r.exact(
        ".",
        "gcc -In2 -In1 -In3 -In4 -c next.c",
        &["next.c", n2.as_str(), n1.as_str(), n3.as_str()],
    );
    r.exact(
        ".",
        "gcc -iquote n1 -iquote n2 -In3 -In4 -c next.c",
        &["next.c", n3.as_str()],
    );
    r.exact(
        ".",
        "gcc -iquote qd -Iid -c inc_q.c",
        &["inc_q.c", "q.h", "qd/q.h"],
    );
    r.exact(".", "gcc -Iid -c inc_q.c", &["inc_q.c", "q.h", "id/q.h"]);
    r.exact(
        ".",
        "gcc -iquote qd -Iid -c next_main.c",
        &["next_main.c", "id/q.h"],
    );
    r.exact(
        ".",
        "gcc -iquote qq -Iii -c iq.c",
        &["iq.c", "qq/iq.h", "ii/iq.h"],
    );
    r.exact(".", "gcc -Ids -Ido -Ids -c dup.c", &["dup.c", "ds/dup.h"]);
    r.exact(
        ".",
        "gcc -Ids -Ido -isystem ds -c dup.c",
        &["dup.c", "do/dup.h"],
    );
    r.exact(
        ".",
        "gcc -Ids -Ido -idirafter ds -c dup.c",
        &["dup.c", "do/dup.h"],
    );
    r.exact(
        ".",
        "gcc -iquote ds -Ido -isystem ds -c dq.c",
        &["dq.c", "do/dup.h"],
    );
    if std::path::Path::new("/usr/include/stdio.h").exists() {
        r.exact(
            ".",
            "gcc -I/usr/include -Imine -c sysdup.c",
            &["sysdup.c", "mine/stdio.h"],
        );
    }
    r.finish();
}

// 4. Symlinked headers and directories, `..` in names and in -I dirs.

torture!(symlinks_and_dotdot: symlinks_and_dotdot_superset, symlinks_and_dotdot_exact, symlinks_and_dotdot_clang_superset, symlinks_and_dotdot_clang_exact);

fn symlinks_and_dotdot(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        // A quoted include in a symlinked header is looked up next to the link.
        ("real/r.h", "#include \"r2.h\"\n"),
        ("real/r2.h", ""),
        ("inc/r2.h", ""),
        ("inc/l.h", "-> ../real/r.h"),
        ("links.c", "#include \"inc/l.h\"\n"),
        // A symlinked directory as -I dir.
        ("d/dl.h", "#include \"dl2.h\"\n"),
        ("d/dl2.h", ""),
        ("ld", "-> d"),
        ("dirlink.c", "#include <dl.h>\n"),
        // `sub/..` where sub is a link: the parent of the link's target.
        ("deep/er/", ""),
        ("deep/x.h", ""),
        ("x.h", ""),
        ("sub", "-> deep/er"),
        ("dotdot.c", "#include \"sub/../x.h\"\n"),
        // `..` in -I dirs and names, from a subdirectory.
        ("src/up.c", "#include <up.h>\n#include \"../top.h\"\n"),
        ("inc2/up.h", "#include \"../inc2/sib.h\"\n"),
        ("inc2/sib.h", ""),
        ("top.h", ""),
        // A dangling link and a directory before the real header.
        ("e1/h.h", "-> nowhere.h"),
        ("e1/hd.h/", ""),
        ("e2/h.h", ""),
        ("e2/hd.h", ""),
        ("skip.c", "#include <h.h>\n#include <hd.h>\n"),
    ]);
    let mut r = Run::new("symlinks_and_dotdot", &t, mode, cc);
    r.exact(".", "gcc -c links.c", &["links.c", "real/r.h", "inc/r2.h"]);
    r.exact(
        ".",
        "gcc -Ild -c dirlink.c",
        &["dirlink.c", "d/dl.h", "d/dl2.h"],
    );
    r.exact(".", "gcc -c dotdot.c", &["dotdot.c", "deep/x.h"]);
    let up = ["src/up.c", "inc2/up.h", "inc2/sib.h", "top.h"];
    r.exact("src", "gcc -I../inc2 -c up.c", &up);
    r.exact("src", "gcc -I../src/../inc2/ -c up.c", &up);
    r.exact("src", "gcc -I../ld/../inc2 -c up.c", &up);
    r.exact(".", "gcc -Iinc2 -c src/up.c", &up);
    r.exact(
        ".",
        "gcc -Ie1 -Ie2 -c skip.c",
        &["skip.c", "e2/h.h", "e2/hd.h"],
    );
    r.finish();
}

// 5. Computed includes.

torture!(computed_includes: computed_includes_superset, computed_includes_exact, computed_includes_clang_superset, computed_includes_clang_exact);

fn computed_includes(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "comp.c",
            "#define H \"a.h\"\n#include H\n\
             #define CAT(a, b) a##b\n#define STR2(x) #x\n#define STR(x) STR2(x)\n\
             #include STR(CAT(x, y).h)\n#include STR(sub/s.h)\n\
             #define TRACE_INCLUDE(x) <trace/events/x.h>\n\
             #define TRACE_SYSTEM sched\n#include TRACE_INCLUDE(TRACE_SYSTEM)\n\
             #undef TRACE_SYSTEM\n#define TRACE_SYSTEM irq\n#include TRACE_INCLUDE(TRACE_SYSTEM)\n\
             #undef TRACE_SYSTEM\n#define TRACE_SYSTEM never\n\
             #define HDR \"first.h\"\n#include HDR\n#undef HDR\n\
             #define HDR \"second.h\"\n#include HDR\n#undef HDR\n#define HDR \"third.h\"\n\
             #if 0\n#define PICK \"skipped.h\"\n#else\n#define PICK \"taken.h\"\n#endif\n\
             #include PICK\n",
        ),
        ("a.h", ""),
        ("xy.h", ""),
        ("sub/s.h", ""),
        ("inc/trace/events/sched.h", ""),
        ("inc/trace/events/irq.h", ""),
        ("inc/trace/events/never.h", ""),
        ("first.h", ""),
        ("second.h", ""),
        ("third.h", ""),
        ("skipped.h", ""),
        ("taken.h", ""),
        // `linux` is a predefined macro (1) in GNU modes, not in strict ones.
        (
            "linux.c",
            "#define ARCH_HDR(x) <linux/x.h>\n#include ARCH_HDR(foo)\n",
        ),
        ("inc/linux/foo.h", ""),
        ("inc/1/foo.h", ""),
        // The name from the command line.
        ("cfg.c", "#include CFG\n"),
        ("cfg_a.h", ""),
        ("cfg_b.h", ""),
        (
            "recfg.c",
            "#include CFG\n#undef CFG\n#define CFG \"cfg_b.h\"\n#include CFG\n",
        ),
        // A name defined in one header, used, redefined in another.
        (
            "mid.c",
            "#include \"setname.h\"\n#include NAME\n#include \"resetname.h\"\n#include NAME\n",
        ),
        ("setname.h", "#define NAME \"n1.h\"\n"),
        ("resetname.h", "#undef NAME\n#define NAME \"n2.h\"\n"),
        ("n1.h", ""),
        ("n2.h", ""),
        // The file itself, once.
        (
            "self.c",
            "#ifndef ONCE\n#define ONCE\n#include __FILE__\n#endif\n",
        ),
    ]);
    let mut r = Run::new("computed_includes", &t, mode, cc);
    r.exact(
        ".",
        "gcc -Iinc -c comp.c",
        &[
            "comp.c",
            "a.h",
            "xy.h",
            "sub/s.h",
            "inc/trace/events/sched.h",
            "inc/trace/events/irq.h",
            "first.h",
            "second.h",
            "taken.h",
        ],
    );
    r.exact(".", "gcc -Iinc -c linux.c", &["linux.c", "inc/1/foo.h"]);
    r.exact(
        ".",
        "gcc -std=c11 -Iinc -c linux.c",
        &["linux.c", "inc/linux/foo.h"],
    );
    r.exact(
        ".",
        "gcc -Ulinux -Iinc -c linux.c",
        &["linux.c", "inc/linux/foo.h"],
    );
    r.exact(".", "gcc -DCFG=\"cfg_a.h\" -c cfg.c", &["cfg.c", "cfg_a.h"]);
    r.exact(
        ".",
        "gcc -I. -DCFG=<cfg_b.h> -c cfg.c",
        &["cfg.c", "cfg_b.h"],
    );
    r.exact(
        ".",
        "gcc -DCFG=\"cfg_a.h\" -UCFG -DCFG=\"cfg_b.h\" -c cfg.c",
        &["cfg.c", "cfg_b.h"],
    );
    r.exact(
        ".",
        "gcc -DCFG=\"cfg_a.h\" -c recfg.c",
        &["recfg.c", "cfg_a.h", "cfg_b.h"],
    );
    r.exact(
        ".",
        "gcc -DCFG=CFG2 -DCFG2=\"cfg_a.h\" -c cfg.c",
        &["cfg.c", "cfg_a.h"],
    );
    r.exact(
        ".",
        "gcc -c mid.c",
        &["mid.c", "setname.h", "n1.h", "resetname.h", "n2.h"],
    );
    r.exact(".", "gcc -c self.c", &["self.c"]);
    r.finish();
}

// 6. `__has_include` and `__has_include_next`: gcc -M does not list the files they find,
// but the host must have them, or it takes the other branch.

torture!(has_include: has_include_superset, has_include_exact, has_include_clang_superset, has_include_clang_exact);

fn has_include(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "hi.c",
            "#if __has_include(\"probe.h\")\n#define HAVE_PROBE 1\n#endif\n\
             #if __has_include(<angle_probe.h>)\n#define HAVE_ANGLE 1\n#endif\n\
             #define P \"probe2.h\"\n#if __has_include(P)\n#endif\n\
             #if __has_include(\"absent.h\")\n#include \"absent.h\"\n\
             #else\n#include \"absent_fallback.h\"\n#endif\n\
             #if defined __has_include && __has_include(<absent2.h>)\n#endif\n\
             #if 0\n#if __has_include(\"skipped_probe.h\")\n#endif\n#endif\n\
             #include <z.h>\n",
        ),
        ("probe.h", ""),
        ("probe2.h", ""),
        ("inc/angle_probe.h", ""),
        ("absent_fallback.h", ""),
        ("skipped_probe.h", ""),
        (
            "i1/z.h",
            "#if __has_include_next(<z.h>)\n#include_next <z.h>\n\
             #else\n#include \"z_fallback.h\"\n#endif\n",
        ),
        ("i1/z_fallback.h", ""),
        ("i2/z.h", ""),
        // GCC and clang look a dependency up as an include and stop when it is missing,
        // but do not read it (nor does `-M` list it).
        (
            "dep.c",
            "#pragma GCC dependency \"dep_quote.h\"\n\
             #pragma GCC dependency <dep_angle.h> regenerate it\n\
             #if 0\n#pragma GCC dependency \"dep_skipped.h\"\n#endif\n",
        ),
        ("dep_quote.h", ""),
        ("inc/dep_angle.h", ""),
        ("dep_skipped.h", ""),
    ]);
    let mut r = Run::new("has_include", &t, mode, cc);
    r.exact_probed(
        ".",
        "gcc -Iinc -c dep.c",
        &["dep.c"],
        &["dep_quote.h", "inc/dep_angle.h"],
    );
    let probed = ["probe.h", "inc/angle_probe.h", "probe2.h"];
    r.exact_probed(
        ".",
        "gcc -Iinc -Ii1 -Ii2 -c hi.c",
        &["hi.c", "absent_fallback.h", "i1/z.h", "i2/z.h"],
        &probed,
    );
    r.exact_probed(
        ".",
        "gcc -Iinc -Ii1 -c hi.c",
        &["hi.c", "absent_fallback.h", "i1/z.h", "i1/z_fallback.h"],
        &probed,
    );
    r.finish();
}

// 7. Values the analysis may not know: both branches may be followed; missing 0 only.
// (`#if FOO(1)` with FOO undefined is an error in GCC 12, even after `defined(FOO) &&`.)

#[test]
fn unknown_values_superset() {
    let t = Tree::new(&[
        (
            "unk.c",
            "#if __has_builtin(__builtin_expect)\n#include \"builtin_yes.h\"\n\
             #else\n#include \"builtin_no.h\"\n#endif\n\
             #if __has_attribute(packed)\n#include \"attr_yes.h\"\n\
             #else\n#include \"attr_no.h\"\n#endif\n\
             #if __has_c_attribute(nodiscard)\n#include \"c_attr_yes.h\"\n#endif\n\
             #if __has_builtin(__builtin_no_such_thing)\n#include \"builtin_bogus.h\"\n#endif\n\
             #if __INCLUDE_LEVEL__ == 0\n#include \"level0.h\"\n#endif\n\
             #if __SIZEOF_POINTER__ == 8\n#include \"ptr8.h\"\n#else\n#include \"ptr_other.h\"\n#endif\n",
        ),
        ("builtin_yes.h", ""),
        ("builtin_no.h", ""),
        ("attr_yes.h", ""),
        ("attr_no.h", ""),
        ("c_attr_yes.h", ""),
        ("builtin_bogus.h", ""),
        ("level0.h", ""),
        ("ptr8.h", ""),
        ("ptr_other.h", ""),
    ]);
    let mut r = Run::new("unknown_values", &t, Mode::Superset, Cc::Gcc);
    let ptr = if cfg!(target_pointer_width = "64") {
        "ptr8.h"
    } else {
        "ptr_other.h"
    };
    r.superset(
        ".",
        "gcc -c unk.c",
        &[
            "unk.c",
            "builtin_yes.h",
            "attr_yes.h",
            "c_attr_yes.h",
            "level0.h",
            ptr,
        ],
    );
    r.finish();
}

// 8. The lexer: raw strings, comments, splices, digraphs, trigraphs.

torture!(lexer: lexer_superset, lexer_exact, lexer_clang_superset, lexer_clang_exact);

fn lexer(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "lex.cc",
            "const char *raw = R\"x(\n#include \"raw_no.h\"\n)x\";\n\
             const char *raw8 = u8R\"(\n#include \"raw8_no.h\"\n)\";\n\
             #include \"yes1.h\"\n\
             /* #include \"comment_no.h\" */\n\
             // #include \"line_comment_no.h\" \\\n#include \"spliced_comment_no.h\"\n\
             const char *s = \"/*\";\n#include \"yes2.h\"\nconst char *e = \"*/\";\n\
             #inc\\\nlude \"yes3.h\"\n\
             #define LEVEL 2\n#if LEVEL \\\n  > 1\n#include \"yes4.h\"\n#endif\n\
             %:include \"yes5.h\"\n\
             /* block */ #include \"yes6.h\"\n\
             /* multi\nline */ #include \"yes7.h\"\n\
             int x; /* a\n b */ #include \"not_a_directive.h\"\n\
             char c = '\"';\n#include \"yes8.h\"\n\
             #include \"yes9.h\" /* \n#include \"directive_comment_no.h\" */\n",
        ),
        ("raw_no.h", ""),
        ("raw8_no.h", ""),
        ("comment_no.h", ""),
        ("line_comment_no.h", ""),
        ("spliced_comment_no.h", ""),
        ("not_a_directive.h", ""),
        ("directive_comment_no.h", ""),
        ("yes1.h", ""),
        ("yes2.h", ""),
        ("yes3.h", ""),
        ("yes4.h", ""),
        ("yes5.h", ""),
        ("yes6.h", ""),
        ("yes7.h", ""),
        ("yes8.h", ""),
        ("yes9.h", ""),
        // Valid C in GNU and strict modes, read differently: strict C11 has no raw
        // strings (R is the macro) and replaces trigraphs.
        (
            "modes.c",
            "#define R \"x\"\nconst char *s = R\"(\";\n#include \"strict_raw.h\"\n\
             const char *t = \")\";\n\
             #ifdef __STRICT_ANSI__\n??=include \"strict_trigraph.h\"\n#endif\n\
             // a trigraph splice ??/\n#include \"gnu_only.h\"\n",
        ),
        // A UTF-8 byte order mark, `//` inside an angled name, CRLF line ends, no final
        // newline.
        (
            "bytes.c",
            "\u{feff}#include \"bom.h\"\n#include <d//slashes.h>\r\n\
             #inc\\\r\nlude \"crlf.h\"\r\n#include \"last.h\"",
        ),
        ("bom.h", ""),
        ("d/slashes.h", ""),
        ("crlf.h", ""),
        ("last.h", ""),
        ("strict_raw.h", ""),
        ("strict_trigraph.h", ""),
        ("gnu_only.h", ""),
        // In a directive's line too: a raw string (GNU C) ends before the `/*`; in strict
        // C11 the `"` before it opens a string that ends with the line.
        (
            "rawdef.c",
            "#define X R\"x(a\")x\" /*\n#include \"rawdef_strict.h\"\n*/\n\
             #include \"rawdef_both.h\"\n",
        ),
        ("rawdef_strict.h", ""),
        ("rawdef_both.h", ""),
        // Digit separators (C++14, C2X): where a `'` continues a number, the `/*` after
        // it opens a comment; elsewhere the `'` opens a character literal that hides it.
        // In skipped groups, so that the file is valid either way; and as GCC's lexer
        // reads a number (a `'` before a letter or `_` continues it, `.5` begins one).
        (
            "seps.c",
            "#if 0\nx 1'0 /*\n#endif\n#include \"sep_c.h\"\n#if 0\n*/\n#endif\n",
        ),
        ("sep_c.h", ""),
        (
            "seps.cc",
            "#if 0\na 1'z /*\n#endif\n#include \"sep_letter.h\"\n#if 0\n*/\n#endif\n\
             #if 0\nb .5'0 /*\n#endif\n#include \"sep_dot.h\"\n#if 0\n*/\n#endif\n\
             #if 0\nc x1'0 /*\n#endif\n#include \"sep_name.h\"\n#if 0\n*/\n#endif\n\
             #define SEP 1'0 /*\n#include \"sep_define.h\"\n*/\n",
        ),
        ("sep_letter.h", ""),
        ("sep_dot.h", ""),
        ("sep_name.h", ""),
        ("sep_define.h", ""),
        // A backslash, then a form feed or vertical tab, then the newline: still a
        // splice (GCC and clang warn). GCC takes a NUL byte there too, clang does not.
        (
            "blanks.c",
            "#inc\\\x0c\nlude \"splice_ff.h\"\n#inc\\\x0b\nlude \"splice_vt.h\"\n\
             // \\\x0c\n#include \"splice_hidden.h\"\n",
        ),
        ("splice_ff.h", ""),
        ("splice_vt.h", ""),
        ("splice_hidden.h", ""),
        ("nul.c", "// \\\0\n#include \"splice_nul.h\"\n"),
        ("splice_nul.h", ""),
    ]);
    let mut r = Run::new("lexer", &t, mode, cc);
    let yes = [
        "lex.cc", "yes1.h", "yes2.h", "yes3.h", "yes4.h", "yes5.h", "yes6.h", "yes7.h", "yes8.h",
        "yes9.h",
    ];
    r.exact(".", "g++ -c lex.cc", &yes);
    r.exact(
        ".",
        "gcc -I. -c bytes.c",
        &["bytes.c", "bom.h", "d/slashes.h", "crlf.h", "last.h"],
    );
    r.exact(".", "gcc -c modes.c", &["modes.c", "gnu_only.h"]);
    r.exact(
        ".",
        "gcc -std=c11 -c modes.c",
        &["modes.c", "strict_raw.h", "strict_trigraph.h"],
    );
    r.exact(".", "gcc -c rawdef.c", &["rawdef.c", "rawdef_both.h"]);
    r.exact(
        ".",
        "gcc -std=c11 -c rawdef.c",
        &["rawdef.c", "rawdef_strict.h", "rawdef_both.h"],
    );
    r.exact(".", "gcc -c seps.c", &["seps.c", "sep_c.h"]);
    r.exact(".", "gcc -std=c2x -c seps.c", &["seps.c"]);
    r.exact(".", "g++ -x c++ -c seps.c", &["seps.c"]);
    r.exact(".", "g++ -c seps.cc", &["seps.cc", "sep_name.h"]);
    let all = [
        "seps.cc",
        "sep_letter.h",
        "sep_dot.h",
        "sep_name.h",
        "sep_define.h",
    ];
    r.exact(".", "g++ -std=c++11 -c seps.cc", &all);
    r.exact(
        ".",
        "gcc -c blanks.c",
        &["blanks.c", "splice_ff.h", "splice_vt.h"],
    );
    // clang reads `splice_nul.h` (its list is then the oracle).
    r.exact(".", "gcc -c nul.c", &["nul.c"]);
    r.finish();
}

/// Files made of the lexer's corner cases in random order (a fixed seed: the same files
/// each run), each read by two of the compilers and modes below, whose `-M` is the oracle:
/// the closure must be exactly what the compiler reads. A file the compiler cannot
/// preprocess is left out.
#[test]
fn generated_lexer_corners_match_gcc_and_clang() {
    const PIECES: &[&str] = &[
        "#if 0",
        "#endif",
        "#else",
        "#elif 1",
        "#elif 0",
        "#ifdef X",
        "#ifndef X",
        "#if X",
        "#if defined(X) || 1",
        "#define X 1",
        "#undef X",
        "#pragma once",
        "#define S \"/*\"",
        "#define Y R\"(a)\" /*",
        "#if 1 /* x",
        "x 1'0 /*",
        "x = 1'z /*",
        "a.b'0",
        "0x1'f",
        "1.e+'0",
        "*/",
        "/*",
        "\"abc",
        "'",
        "'a'",
        "'\\'' /*",
        "\"a\\\"b\" /*",
        "R\"x(",
        ")x\"",
        "u8R\"(",
        ")\"",
        "R\"\"",
        "LR\"d(x)d\" /*",
        "// c \\",
        "int x; // \\",
        "\\",
        "\\\t",
        "\\\x0c",
        "#inc\\\nlude \"hN.h\"",
        "#inc\\\x0b\nlude \"hN.h\"",
        "#include \"hN.h\"",
        "#  include <hN.h>",
        "# /* c */ include \"hN.h\"",
        "#include \"hN.h\" /*",
        "*/ #include \"hN.h\"",
        "%:include \"hN.h\"",
        "??=include \"hN.h\"",
        "\t#\tinclude \"hN.h\"",
    ];
    const COMMANDS: &[&str] = &[
        "gcc -I. -c F.c",
        "gcc -std=c11 -I. -c F.c",
        "gcc -std=c2x -I. -c F.c",
        "g++ -I. -c F.cc",
        "g++ -std=c++11 -I. -c F.cc",
        "clang -I. -c F.c",
        "clang++ -I. -c F.cc",
    ];
    let headers: Vec<(String, &str)> = (0..10).map(|n| (format!("h{n}.h"), "")).collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let t = Tree::new(&headers);
    let server = IncludeServer::new().unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let (mut compared, mut failures) = (0, Vec::new());
    for k in 0..400 {
        let (mut lines, mut depth) = (Vec::new(), 0);
        for _ in 0..3 + next(13) {
            let piece = PIECES[next(PIECES.len())].replace('N', &next(10).to_string());
            let closes = matches!(piece.as_str(), "#endif" | "#else" | "#elif 1" | "#elif 0");
            if closes && depth == 0 {
                continue;
            }
            if piece.starts_with("#if") {
                depth += 1;
            } else if piece == "#endif" {
                depth -= 1;
            }
            lines.push(piece);
        }
        lines.extend(std::iter::repeat_n("#endif".to_string(), depth));
        let text = lines.join("\n") + "\n";
        for _ in 0..2 {
            let cmd = COMMANDS[next(COMMANDS.len())].replace('F', &format!("g{k}"));
            let source = cmd.rsplit(' ').next().unwrap();
            t.write(source, &text);
            let argv = words(&cmd);
            let closure = match server.closure(&t.path(""), &argv) {
                Ok(c) => c,
                Err(why) => {
                    failures.push(format!("`{cmd}` not covered: {why}\n{text}"));
                    continue;
                }
            };
            let Ok(read) = try_deps(t.root.as_ref(), &argv, &closure.system_dirs) else {
                continue;
            };
            compared += 1;
            let ours: BTreeSet<String> = closure.files.iter().map(|f| f.realpath.clone()).collect();
            if ours != read {
                let rel = |s: &BTreeSet<String>| s.iter().map(|p| t.rel(p)).collect::<Vec<_>>();
                failures.push(format!(
                    "`{cmd}`: the compiler reads {:?}, the closure is {:?}, of\n{text}",
                    rel(&read),
                    rel(&ours)
                ));
            }
        }
    }
    server.clean_up();
    println!("{compared} generated files compared");
    assert!(compared >= 150, "only {compared} files could be compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// 9. `-include` and `-imacros`.

torture!(command_line_files: command_line_files_superset, command_line_files_exact, command_line_files_clang_superset, command_line_files_clang_exact);

fn command_line_files(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "pre.h",
            "#ifdef BIG\n#include \"pre_big.h\"\n#else\n#include \"pre_small.h\"\n#endif\n",
        ),
        ("pre_big.h", ""),
        ("pre_small.h", ""),
        // Not read: -include looks in the working directory, not the source's.
        (
            "src/pre.h",
            "#error the source's directory is not searched\n",
        ),
        (
            "src/main.c",
            "#include \"main.h\"\n#if FROM_MACROS\n#include \"from_macros.h\"\n#endif\n",
        ),
        ("src/main.h", ""),
        ("src/from_macros.h", ""),
        ("mac.h", "#define FROM_MACROS 1\n#include \"mac_inner.h\"\n"),
        ("mac_inner.h", ""),
        ("inc/only_inc.h", ""),
        (
            "usesmac.h",
            "#if FROM_MACROS\n#include \"usesmac_yes.h\"\n#endif\n",
        ),
        ("usesmac_yes.h", ""),
    ]);
    let mut r = Run::new("command_line_files", &t, mode, cc);
    let main = ["src/main.c", "src/main.h"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = main.to_vec();
        v.extend(extra);
        v
    };
    r.exact(
        ".",
        "gcc -include pre.h -c src/main.c",
        &with(&["pre.h", "pre_small.h"]),
    );
    r.exact(
        ".",
        "gcc -include pre.h -DBIG -c src/main.c",
        &with(&["pre.h", "pre_big.h"]),
    );
    r.exact(
        ".",
        "gcc -imacros mac.h -c src/main.c",
        &with(&["mac.h", "mac_inner.h", "src/from_macros.h"]),
    );
    r.exact(
        ".",
        "gcc -Iinc -include only_inc.h -c src/main.c",
        &with(&["inc/only_inc.h"]),
    );
    // All -imacros files are read before all -include files.
    r.exact(
        ".",
        "gcc -include usesmac.h -imacros mac.h -c src/main.c",
        &with(&[
            "mac.h",
            "mac_inner.h",
            "src/from_macros.h",
            "usesmac.h",
            "usesmac_yes.h",
        ]),
    );
    r.finish();
}

// 11. Languages: C, C++, assembler with cpp.

torture!(languages: languages_superset, languages_exact, languages_clang_superset, languages_clang_exact);

fn languages(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        (
            "lang.h",
            "#ifdef __ASSEMBLER__\n#include \"lang_asm.h\"\n\
             #elif defined __cplusplus\n#include \"lang_cxx.h\"\n\
             #else\n#include \"lang_c.h\"\n#endif\n",
        ),
        ("lang_asm.h", ""),
        ("lang_cxx.h", ""),
        ("lang_c.h", ""),
        ("lang.c", "#include \"lang.h\"\n"),
        ("lang.cc", "#include \"lang.h\"\n"),
        ("lang.S", "#include \"lang.h\"\n"),
        ("lang.sx", "#include \"lang.h\"\n"),
    ]);
    let mut r = Run::new("languages", &t, mode, cc);
    r.exact(".", "gcc -c lang.c", &["lang.c", "lang.h", "lang_c.h"]);
    r.exact(".", "g++ -c lang.cc", &["lang.cc", "lang.h", "lang_cxx.h"]);
    r.exact(".", "gcc -c lang.cc", &["lang.cc", "lang.h", "lang_cxx.h"]);
    r.exact(
        ".",
        "gcc -x c++ -c lang.c",
        &["lang.c", "lang.h", "lang_cxx.h"],
    );
    // Assembler with cpp: not covered today (plain mode), which is safe.
    let asm = ["lang.S", "lang.h", "lang_asm.h"];
    r.exact_if_covered(".", "gcc -c lang.S", &asm);
    r.exact_if_covered(".", "gcc -x assembler-with-cpp -c lang.S", &asm);
    r.exact_if_covered(".", "gcc -c lang.sx", &["lang.sx", "lang.h", "lang_asm.h"]);
    r.finish();
}

// 12. Found in review: cases where an earlier analysis shipped less than gcc reads.
torture!(review: review_superset, review_exact, review_clang_superset, review_clang_exact);

fn review(mode: Mode, cc: Cc) {
    let t = Tree::new(&[
        // A feature test's operand is macro-expanded.
        (
            "op.c",
            "#define B __builtin_expect\n#if __has_builtin(B)\n#include \"op_yes.h\"\n#endif\n",
        ),
        ("op_yes.h", ""),
        // GCC 12 has no __has_feature.
        (
            "feat.c",
            "#ifndef __has_feature\n#include \"no_feature.h\"\n#endif\n",
        ),
        ("no_feature.h", ""),
        // A shift has its left operand's type; char signedness follows the compiler.
        (
            "shift.c",
            "#if -1 >> 1u == -1\n#include \"shift_yes.h\"\n#endif\n\
             #if '\\377' < 0\n#include \"char_signed.h\"\n#else\n#include \"char_unsigned.h\"\n#endif\n",
        ),
        ("shift_yes.h", ""),
        ("char_signed.h", ""),
        ("char_unsigned.h", ""),
        // __VA_OPT__ looks at the expanded variable argument.
        (
            "vaopt.c",
            "#define EMPTY\n#define O(a, ...) a __VA_OPT__(+1)\n#if O(1, EMPTY) == 1\n\
             #include \"vaopt_yes.h\"\n#endif\n",
        ),
        ("vaopt_yes.h", ""),
        // An angled name made of tokens: no space where a macro was replaced.
        (
            "glue.c",
            "#define N glued\n#define H < N.h>\n#include H\n",
        ),
        ("glued.h", ""),
        // __FILE__ in a computed include, and a name with tokens after it.
        (
            "self.c",
            "#ifndef PASS2\n#define PASS2\n#include __FILE__\n#else\n#include \"items.def\"\n#endif\n",
        ),
        ("items.def", ""),
        // #import of a file already included does not enter it again.
        (
            "imp.c",
            "#include \"tog.h\"\n#define ON\n#import \"tog.h\"\n",
        ),
        (
            "tog.h",
            "#ifdef ON\n#include \"tog_on.h\"\n#else\n#include \"tog_off.h\"\n#endif\n",
        ),
        ("tog_on.h", ""),
        ("tog_off.h", ""),
        // -o joined to its value, and --std.
        (
            "opt.c",
            "#ifdef __OPTIMIZE__\n#include \"optimized.h\"\n#endif\n??=include \"tri.h\"\n",
        ),
        ("optimized.h", ""),
        ("tri.h", ""),
        // Warning options that change predefined macros: `-Wno-deprecated` undefines
        // `__DEPRECATED`, `-Wpedantic` `__cpp_runtime_arrays` (g++).
        (
            "warn.cc",
            "#ifndef __DEPRECATED\n#include \"not_deprecated.h\"\n#endif\n\
             #ifndef __cpp_runtime_arrays\n#include \"pedantic.h\"\n#endif\n",
        ),
        ("not_deprecated.h", ""),
        ("pedantic.h", ""),
        // The preprocessor's own names, per compiler and language: GCC has both
        // attribute tests in C and C++, clang 14 `__has_cpp_attribute` in C++ only and
        // `__has_c_attribute` in C only, and `__building_module` (clang's list is the
        // oracle under clang).
        (
            "own.c",
            "#ifdef __has_cpp_attribute\n#include \"cpp_attr.h\"\n#endif\n\
             #ifdef __has_c_attribute\n#include \"c_attr.h\"\n#endif\n\
             #ifdef __building_module\n#include \"module.h\"\n#endif\n",
        ),
        ("own.cc", "#include \"own.c\"\n"),
        ("cpp_attr.h", ""),
        ("c_attr.h", ""),
        ("module.h", ""),
    ]);
    let mut r = Run::new("review", &t, mode, cc);
    r.exact(
        ".",
        "g++ -Wno-deprecated -Wall -c warn.cc",
        &["warn.cc", "not_deprecated.h"],
    );
    r.exact(".", "g++ -Wpedantic -c warn.cc", &["warn.cc", "pedantic.h"]);
    r.exact(".", "gcc -c own.c", &["own.c", "cpp_attr.h", "c_attr.h"]);
    let own_cc = ["own.cc", "own.c", "cpp_attr.h", "c_attr.h"];
    r.exact(".", "g++ -c own.cc", &own_cc);
    r.exact(".", "gcc -c op.c", &["op.c", "op_yes.h"]);
    r.exact(".", "gcc -c feat.c", &["feat.c", "no_feature.h"]);
    r.exact(
        ".",
        "gcc -c shift.c",
        &["shift.c", "shift_yes.h", "char_signed.h"],
    );
    r.exact(
        ".",
        "gcc -funsigned-char -c shift.c",
        &["shift.c", "shift_yes.h", "char_unsigned.h"],
    );
    r.exact(".", "gcc -c vaopt.c", &["vaopt.c", "vaopt_yes.h"]);
    r.exact(".", "gcc -I. -c glue.c", &["glue.c", "glued.h"]);
    r.exact(".", "gcc -c self.c", &["self.c", "items.def"]);
    r.exact(".", "gcc -c imp.c", &["imp.c", "tog.h", "tog_off.h"]);
    r.exact(
        ".",
        "gcc -O2 --std c11 -c opt.c -oopt.o",
        &["opt.c", "optimized.h", "tri.h"],
    );
    r.finish();
}

// 10. During a build: one server for every request, headers created, changed and deleted
// between requests, each within the same second as the request before.

/// The files of a reply (realpaths, relative to the tree) and, for each, its path in the
/// mirror.
fn shipped(t: &Tree, reply: &[String]) -> Vec<(String, String)> {
    reply
        .iter()
        .filter(|p| p.ends_with(".lzo") || p.ends_with(".lzo.abs"))
        .map(|p| (t.rel(&client_root_name_to_real(p).unwrap()), p.clone()))
        .collect()
}

fn mirror_content(path: &str) -> String {
    let data = lzo::decompress(&fs::read(path).unwrap(), 1 << 20).unwrap();
    String::from_utf8(data).unwrap()
}

#[test]
fn during_a_build() {
    let t = Tree::new(&[
        ("b.c", "#include <gen.h>\n#include \"cfg.h\"\n"),
        ("first/", ""),
        ("first/first_inner.h", ""),
        ("second/gen.h", "/* the second */\n"),
        ("cfg.h", "#include \"v1.h\"\n"),
        ("v1.h", ""),
        ("v2.h", ""),
    ]);
    let cmd = "gcc -Ifirst -Isecond -c b.c";
    let argv = words(cmd);
    let cwd = t.path("");
    let mut r = Run::new("during_a_build", &t, Mode::Superset, Cc::Gcc);
    let request = |r: &mut Run, step: &str, want: &[&str], not: &[&str]| {
        let reply = match r.server.answer(&cwd, &argv) {
            Ok(reply) => reply,
            Err(why) => return r.fail(".", cmd, format!("{step}: not covered: {why}")),
        };
        let files = shipped(&t, &reply);
        let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let c = compare(&r.server, cwd.as_ref(), &argv);
        if !c.missing.is_empty() {
            r.fail(".", cmd, format!("{step}: MISSING {:?}", c.missing));
        }
        for w in want {
            if !names.contains(w) {
                r.fail(".", cmd, format!("{step}: {w} not shipped: {names:?}"));
            }
        }
        for n in not {
            if names.contains(n) {
                r.fail(".", cmd, format!("{step}: {n} shipped: {names:?}"));
            }
        }
        // Every file's mirror copy has the file's current content.
        for (name, path) in &files {
            let now = fs::read_to_string(t.path(name)).unwrap();
            if mirror_content(path) != now {
                r.fail(
                    ".",
                    cmd,
                    format!("{step}: the mirror's {name} is stale: {path}"),
                );
            }
        }
    };

    request(
        &mut r,
        "first request",
        &["second/gen.h", "cfg.h", "v1.h"],
        &[],
    );

    // (a) A header created in an earlier search dir shadows the one found before.
    t.write("first/gen.h", "#include \"first_inner.h\"\n");
    request(
        &mut r,
        "after first/gen.h was created",
        &["first/gen.h", "first/first_inner.h"],
        &["second/gen.h"],
    );

    // (b) A header rewritten in place with the same size, right after a request, again
    // and again; once with its old modification time put back (a coarse clock).
    let cfg = t.path("cfg.h");
    let old_mtime = fs::metadata(&cfg).unwrap().modified().unwrap();
    for i in 0..20 {
        let (now, then) = if i % 2 == 0 {
            ("v2.h", "v1.h")
        } else {
            ("v1.h", "v2.h")
        };
        t.write("cfg.h", &format!("#include \"{now}\"\n"));
        if i == 10 {
            let f = fs::File::options().write(true).open(&cfg).unwrap();
            f.set_modified(old_mtime).unwrap();
        }
        request(
            &mut r,
            &format!("cfg.h rewritten ({i})"),
            &["cfg.h", now],
            &[then],
        );
    }

    // The same with a new file (a new inode, maybe a reused one) of the same size.
    fs::remove_file(&cfg).unwrap();
    t.write("cfg.h", "#include \"v2.h\"\n");
    request(&mut r, "cfg.h replaced", &["cfg.h", "v2.h"], &["v1.h"]);

    // (c) The shadowing header deleted: the one it shadowed again.
    fs::remove_file(t.path("first/gen.h")).unwrap();
    request(
        &mut r,
        "after first/gen.h was deleted",
        &["second/gen.h"],
        &["first/gen.h", "first/first_inner.h"],
    );
    r.finish();
}
