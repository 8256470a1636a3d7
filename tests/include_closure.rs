//! The include analysis against GCC: on the example project and on fixtures with
//! subdirectories, `..` paths, symlinked headers and directories, `#include_next` and an
//! absolute `-I`, every header `gcc -M` names outside the system dirs must be in the
//! closure. Also the mirror those closures produce (`.lzo.abs`, links, forcing files).

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::oracle::gcc_deps;

use distcc_rs::include::closure::{analyze, Caches, Closure, FileKey};
use distcc_rs::include::cmdline;
use distcc_rs::include::server::IncludeServer;
use distcc_rs::include::watch::Watcher;
use distcc_rs::wire::lzo;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// Checks that the closure of `argv` in `cwd` holds every file gcc reads outside system
/// dirs; returns the closure's realpaths.
fn check(cwd: &Path, argv: &[String]) -> Vec<String> {
    check_with(&Caches::default(), cwd, argv)
}

/// [`check`] with caches kept from earlier analyses.
fn check_with(caches: &Caches, cwd: &Path, argv: &[String]) -> Vec<String> {
    let cmd = cmdline::parse(argv).unwrap();
    let cwd_s = cwd.to_str().unwrap();
    let (closure, _) = analyze(&cmd, cwd_s, caches, Duration::from_secs(30)).unwrap();
    let got: Vec<String> = closure.files.iter().map(|f| f.realpath.clone()).collect();
    let want = gcc_deps(cwd, argv, &closure.system_dirs);
    for w in &want {
        assert!(
            got.contains(w),
            "{w} missing from the closure of {argv:?}: {got:?}"
        );
    }
    got
}

#[test]
fn example_project_matches_gcc() {
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
    for src in ["main.c", "greet.c", "stats.c", "fib.c", "table.c"] {
        let argv = words(&format!("gcc -O2 -Wall -MD -c {src} -o /dev/null"));
        let got = check(&ex, &argv);
        assert!(got[0].ends_with(src));
    }
}

/// An analysis that takes more CPU than the limit gives up with distcc 3.4's message;
/// the same one within the limit does not.
#[test]
fn an_analysis_over_its_time_limit_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::new();
    for i in 0..80 {
        fs::write(
            dir.path().join(format!("h{i}.h")),
            format!("#define H{i} {i}\n"),
        )
        .unwrap();
        src.push_str(&format!("#include \"h{i}.h\"\n"));
    }
    fs::write(dir.path().join("many.c"), src).unwrap();
    let cmd = cmdline::parse(&words("gcc -c many.c")).unwrap();
    let cwd = dir.path().to_str().unwrap();
    let Err(why) = analyze(&cmd, cwd, &Caches::default(), Duration::ZERO) else {
        panic!("an analysis with no time to spend gives up");
    };
    assert!(
        why.starts_with("Bailing out because include server spent more than"),
        "{why}"
    );
    let (closure, _) = analyze(&cmd, cwd, &Caches::default(), Duration::from_secs(30)).unwrap();
    assert_eq!(closure.files.len(), 81);
}

/// An `#if`'s value remembered from one analysis serves another only with the same
/// definitions and search chain: many values of one macro in turn (more than are kept per
/// `#if`), and the same definitions under another chain, where the header found differs.
#[test]
fn a_remembered_condition_serves_only_the_same_definitions_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include \"cfg.h\"\n");
    w(
        "src/cfg.h",
        "#if LEVEL > 3\n#include \"high.h\"\n#elif LEVEL > 1 && defined(EXTRA)\n\
         #include \"extra.h\"\n#else\n#include <low.h>\n#endif\n",
    );
    for h in ["high.h", "extra.h", "a/low.h", "b/low.h"] {
        w(&format!("src/{h}"), "");
    }
    let src = root.join("src");
    let caches = Caches::default();
    for round in 0..2 {
        for level in 0..7 {
            for extra in ["", "-DEXTRA"] {
                for inc in ["a", "b"] {
                    let argv = words(&format!(
                        "gcc -DLEVEL={level} {extra} -I{inc} -c main.c -o /dev/null"
                    ));
                    let got = check_with(&caches, &src, &argv);
                    let want = if level > 3 {
                        "high.h".to_string()
                    } else if level > 1 && !extra.is_empty() {
                        "extra.h".to_string()
                    } else {
                        format!("{inc}/low.h")
                    };
                    assert_eq!(got.len(), 3, "round {round}: {argv:?}: {got:?}");
                    assert!(
                        got[2].ends_with(&format!("/src/{want}")),
                        "round {round}: {argv:?}: {got:?}"
                    );
                }
            }
        }
    }
}

/// Writes `text` to `path` under `root`, making its directories.
fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A tree with the awkward cases.
fn fixture(root: &Path) {
    let w = |p: &str, s: &str| write(root, p, s);
    w(
        "src/main.c",
        "#include \"a.h\"\n#include <lib/b.h>\n#include \"sub/../c.h\"\n#include \"link.h\"\n\
         #include <nexttest.h>\n#include <s.h>\n#include <absonly.h>\nint main(void){return 0;}\n",
    );
    w("src/a.h", "#pragma once\n#include \"sub/d.h\"\n");
    w("src/sub/d.h", "#include \"../e.h\"\n");
    w("src/e.h", "/* #include \"never.h\" */\n");
    w("src/c.h", "#if 0\n#include \"maybe.h\"\n#endif\n");
    w("src/maybe.h", "");
    w("inc/lib/b.h", "#include \"b2.h\"\n");
    w("inc/lib/b2.h", "#include <stdio.h>\n");
    w("real/r.h", "#include \"r2.h\"\n");
    w("src/r2.h", "");
    std::os::unix::fs::symlink("../real/r.h", root.join("src/link.h")).unwrap();
    w("inc1/nexttest.h", "#include_next <nexttest.h>\n");
    w("inc2/nexttest.h", "int next2;\n");
    w("inc3/s.h", "int s;\n");
    std::os::unix::fs::symlink("inc3", root.join("linkdir")).unwrap();
    w("abs/absonly.h", "#include \"absrel.h\"\n");
    w("abs/absrel.h", "");
}

fn fixture_argv(root: &Path) -> Vec<String> {
    let abs = root.join("abs");
    words(&format!(
        "gcc -I../inc -I../inc1 -I ../inc2 -I../linkdir -I{} -c main.c -o main.o",
        abs.display()
    ))
}

#[test]
fn fixtures_match_gcc_and_mirror_like_3_4() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fixture(&root);
    let src = root.join("src");
    let argv = fixture_argv(&root);
    let got = check(&src, &argv);
    let r = |p: &str| root.join(p).to_str().unwrap().to_string();
    for f in ["inc2/nexttest.h", "real/r.h", "src/r2.h", "abs/absrel.h"] {
        assert!(got.contains(&r(f)), "{f} not in {got:?}");
    }
    assert!(!got.iter().any(|g| g.ends_with("never.h")));
    // Inside `#if 0`: not read by gcc, not shipped.
    assert!(!got.contains(&r("src/maybe.h")));

    let server = IncludeServer::new().unwrap();
    let cwd = src.to_str().unwrap();
    let reply = server.answer(cwd, &argv).unwrap();
    let root_dir = server.client_root();
    assert_eq!(root_dir.split('/').filter(|c| !c.is_empty()).count(), 3);
    for p in &reply {
        assert!(p.starts_with(&format!("{root_dir}/")), "{p}");
        assert!(fs::symlink_metadata(p).is_ok(), "{p} is not in the root");
    }
    // Files found through the absolute -I dir carry a #line with the client's name.
    let abs = format!("{root_dir}{}.lzo.abs", r("abs/absonly.h"));
    assert!(reply.contains(&abs), "{abs} not in {reply:?}");
    let text = lzo::decompress(&fs::read(&abs).unwrap(), 1 << 20).unwrap();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        format!(
            "#line 1 \"{}\"\n#include \"absrel.h\"\n",
            r("abs/absonly.h")
        )
    );
    // The symlinked header and directory are links to their absolute realpaths.
    let link = format!("{root_dir}{}", r("src/link.h"));
    assert!(reply.contains(&link));
    assert_eq!(fs::read_link(&link).unwrap(), root.join("real/r.h"));
    let linkdir = format!("{root_dir}{}", r("linkdir"));
    assert!(reply.contains(&linkdir));
    assert_eq!(fs::read_link(&linkdir).unwrap(), root.join("inc3"));
    // The directory `sub/..` passes through must exist on the host.
    let forced = format!("{root_dir}{}/forcing_technique_271828", r("src/sub"));
    assert!(reply.contains(&forced), "{forced} not in {reply:?}");
    // The order: files, then links, then forcing files.
    let kind = |p: &String| {
        if p.ends_with("forcing_technique_271828") {
            2
        } else if fs::symlink_metadata(p).unwrap().file_type().is_symlink() {
            1
        } else {
            0
        }
    };
    let kinds: Vec<_> = reply.iter().map(kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted);
    server.clean_up();
    assert!(!Path::new(&root_dir).exists());
}

#[test]
fn absolute_includes_are_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let x = root.join("x.h");
    fs::write(&x, "").unwrap();
    let x = x.display();
    fs::write(root.join("m.c"), format!("#define H \"{x}\"\n#include H\n")).unwrap();
    fs::write(
        root.join("a.c"),
        format!("#if 0\n#include \"{x}\"\n#endif\n"),
    )
    .unwrap();
    fs::write(root.join("s.c"), "#include \"/usr/include/stdio.h\"\n").unwrap();
    let server = IncludeServer::new().unwrap();
    let cwd = root.to_str().unwrap();
    // The host would read its own file of that name: not covered.
    assert!(server.answer(cwd, &words("gcc -c m.c")).is_err());
    // Unless the preprocessor does not get there, or the file is a system header.
    assert!(server.answer(cwd, &words("gcc -c a.c")).is_ok());
    assert!(server.answer(cwd, &words("gcc -c s.c")).is_ok());
    assert!(server.answer(cwd, &words("gcc -c missing.c")).is_err());
    server.clean_up();
}

/// What the analysis does not model is not covered (the client then preprocesses
/// locally): clang's Microsoft include rules, and a computed include the walk is certain
/// to reach whose name, as GCC spells it, is found nowhere (clang spells `<d/f>` made of
/// macro arguments otherwise). A computed include the walk may not reach stays covered.
#[test]
fn what_the_analysis_does_not_model_is_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    for (name, text) in [
        ("sub/a.h", ""),
        ("a.h", ""),
        ("b.h", ""),
        (
            "ms.c",
            "#pragma include_alias(\"a.h\", \"b.h\")\n#include \"a.h\"\n",
        ),
        (
            "comp.c",
            "#define PATH(d, f) <d/f>\n#include PATH(sub, a.h)\n",
        ),
        (
            "maybe.c",
            "#if __LINE__ > 100\n#define H <missing.h>\n#include H\n#endif\n",
        ),
    ] {
        fs::write(root.join(name), text).unwrap();
    }
    let server = IncludeServer::new().unwrap();
    let cwd = root.to_str().unwrap();
    let covered = |cmd: &str| server.closure(cwd, &words(cmd)).map(|_| ());
    let why = covered("clang -fms-compatibility -c ms.c").unwrap_err();
    assert!(why.contains("Microsoft"), "{why}");
    assert!(covered("clang -fms-extensions -c ms.c").is_err());
    assert!(covered("clang -Xclang -fms-compatibility -c ms.c").is_err());
    assert!(covered("clang --target=x86_64-pc-windows-msvc -c ms.c").is_err());
    // The last of each option counts; GCC's `-fms-extensions` changes no include rule.
    assert!(covered("clang -fms-extensions -fno-ms-extensions -c ms.c").is_ok());
    assert!(covered("gcc -fms-extensions -c ms.c").is_ok());
    let why = covered("clang -I. -c comp.c").unwrap_err();
    assert!(why.contains("<sub/ a.h> not found"), "{why}");
    assert!(covered("gcc -I. -c maybe.c").is_ok());
    server.clean_up();
}

/// `_Pragma` operators written in the text act as their directives: `push_macro` and
/// `pop_macro` (the restored definition as one possibility), `GCC dependency` (shipped).
/// `gcc -M` skips them, but a compile (and `gcc -E -MD`) does not: the case is checked
/// against the latter.
#[test]
fn pragma_operators_in_the_text_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    // Comments may stand between the words, as blanks.
    let x = "#define X 1\n_Pragma(\"push_macro(\\\"X\\\")\")\n#undef X\n\
             _Pragma /* c */ ( // d\n \"pop_macro(\\\"X\\\")\")\n#ifdef X\n#include \"a.h\"\n\
             #endif\n_Pragma(/**/\"GCC dependency \\\"dep.h\\\"\")\nint main(void) { return 0; }\n";
    for (name, text) in [("x.c", x), ("a.h", ""), ("dep.h", "")] {
        fs::write(root.join(name), text).unwrap();
    }
    let deps = root.join("x.d");
    let out = std::process::Command::new("gcc")
        .args(["-E", "-MD", "-MF"])
        .arg(&deps)
        .args(["x.c", "-o", "/dev/null"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(fs::read_to_string(&deps).unwrap().contains("a.h"));
    let server = IncludeServer::new().unwrap();
    let closure = server
        .closure(root.to_str().unwrap(), &words("gcc -c x.c"))
        .unwrap();
    let names: Vec<&str> = closure
        .files
        .iter()
        .map(|f| f.realpath.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["x.c", "a.h", "dep.h"]);
    server.clean_up();
}

/// What the walk may or may not do stays a possibility: each of the headers a computed
/// include may name (each may define what the others undefine), and a `push_macro` a
/// macro call may drop (then the later pop restores nothing). Both compile; checked
/// against what `gcc -E -MD` reads.
#[test]
fn possibilities_are_not_taken_as_certain() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let alts = "#define Y 1\n#pragma push_macro(\"Y\")\n#undef Y\n\
                _Pragma(\"pop_macro(\\\"Y\\\")\")\n#ifdef Y\n#define H \"a.h\"\n#else\n\
                #define H \"b.h\"\n#endif\n#include H\n#ifdef FROM_A\n#include \"c.h\"\n#endif\n\
                #ifdef FROM_B\n#include \"d.h\"\n#endif\nint main(void) { return 0; }\n";
    let dropped = "#define DROP(x)\n#define X 1\nDROP(_Pragma(\"push_macro(\\\"X\\\")\"))\n\
                   #undef X\n#pragma pop_macro(\"X\")\n#ifndef X\n#include \"e.h\"\n#endif\n\
                   int main(void) { return 0; }\n";
    for (name, text) in [
        ("alts.c", alts),
        ("dropped.c", dropped),
        ("a.h", "#define FROM_A 1\n#undef FROM_B\n"),
        ("b.h", "#define FROM_B 1\n#undef FROM_A\n"),
        ("c.h", ""),
        ("d.h", ""),
        ("e.h", ""),
    ] {
        fs::write(root.join(name), text).unwrap();
    }
    let server = IncludeServer::new().unwrap();
    for (source, read) in [("alts.c", ["a.h", "c.h"]), ("dropped.c", ["e.h", "e.h"])] {
        let deps = root.join("x.d");
        let out = std::process::Command::new("gcc")
            .args(["-E", "-MD", "-MF"])
            .arg(&deps)
            .args([source, "-o", "/dev/null"])
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listed = fs::read_to_string(&deps).unwrap();
        let closure =
            (server.closure(root.to_str().unwrap(), &words(&format!("gcc -c {source}")))).unwrap();
        for name in read {
            assert!(
                listed.contains(name),
                "gcc reads {name} for {source}: {listed}"
            );
            assert!(
                closure
                    .files
                    .iter()
                    .any(|f| f.realpath.ends_with(&format!("/{name}"))),
                "{name} missing from the closure of {source}"
            );
        }
    }
    server.clean_up();
}

/// Waits until what was just written is old enough for the server to remember what it
/// read (it does not trust a file or directory changed within `TOO_NEW`: timestamps are
/// coarser than the time between two writes; on a filesystem with whole-second stamps, `TOO_NEW_COARSE`).
fn settle() {
    std::thread::sleep(distcc_rs::include::search::TOO_NEW_COARSE + Duration::from_millis(100));
}

#[test]
fn a_remembered_analysis_serves_only_while_what_it_read_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include \"a.h\"\n#include <b.h>\n");
    w("src/a.h", "#include \"c.h\"\n");
    w("src/c.h", "/* none     */\n");
    w("src/d.h", "");
    w("inc2/b.h", "");
    fs::create_dir(root.join("inc1")).unwrap();
    settle();
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let argv = words("gcc -I../inc1 -I../inc2 -c main.c");
    let server = IncludeServer::new().unwrap();
    let files = |c: &distcc_rs::include::closure::Closure| -> Vec<String> {
        c.files
            .iter()
            .map(|f| f.realpath[root.to_str().unwrap().len() + 1..].to_string())
            .collect()
    };
    let first = server.closure(cwd, &argv).unwrap();
    assert_eq!(
        files(&first),
        ["src/main.c", "src/a.h", "src/c.h", "inc2/b.h"]
    );
    let again = server.closure(cwd, &argv).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "not remembered");

    // A header created in an earlier directory of the chain shadows the one found.
    w("inc1/b.h", "");
    let shadowed = server.closure(cwd, &argv).unwrap();
    assert_eq!(
        files(&shadowed),
        ["src/main.c", "src/a.h", "src/c.h", "inc1/b.h"]
    );
    settle();
    let kept = server.closure(cwd, &argv).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &kept,
        &server.closure(cwd, &argv).unwrap()
    ));

    // A header rewritten in place, same size: read again, with what it now includes.
    w("src/c.h", "#include \"d.h\"\n");
    let rewritten = server.closure(cwd, &argv).unwrap();
    assert_eq!(
        files(&rewritten),
        ["src/main.c", "src/a.h", "src/c.h", "src/d.h", "inc1/b.h"]
    );
    server.clean_up();
}

/// A build that writes its objects beside the sources (Kbuild) changes the stamps of the
/// directories an analysis looked into: the analysis is still reused while every name it
/// looked up there is found (or not) as before, even while the directory is too recent
/// for its stamp to be trusted; a header removed or created among those names is not.
#[test]
fn a_remembered_analysis_survives_objects_written_beside_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include \"a.h\"\n#include <b.h>\n");
    w("src/a.h", "");
    w("inc1/b.h", "");
    w("inc2/b.h", "");
    settle();
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let argv = words("gcc -I../inc1 -I../inc2 -c main.c");
    let server = IncludeServer::new().unwrap();
    let first = server.closure(cwd, &argv).unwrap();
    let has = |c: &distcc_rs::include::closure::Closure, f: &str| {
        c.files
            .iter()
            .any(|x| x.realpath == root.join(f).to_str().unwrap())
    };
    assert!(has(&first, "inc1/b.h"));

    // Objects and their command files appear next to the sources and the headers.
    w("src/main.o", "object");
    w("src/.main.o.cmd", "cmd");
    w("inc1/x.o", "object");
    let kept = server.closure(cwd, &argv).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &kept), "not reused");

    // The header found goes: the next one in the chain is, at once.
    fs::remove_file(root.join("inc1/b.h")).unwrap();
    let moved = server.closure(cwd, &argv).unwrap();
    assert!(has(&moved, "inc2/b.h") && !has(&moved, "inc1/b.h"));

    // And one created where the first search found nothing shadows it, at once.
    w("inc1/b.h", "");
    let back = server.closure(cwd, &argv).unwrap();
    assert!(has(&back, "inc1/b.h") && !has(&back, "inc2/b.h"));

    // A directory looked into, replaced by another: not the same directory any more.
    fs::rename(root.join("inc2"), root.join("old2")).unwrap();
    w("inc2/b.h", "");
    fs::remove_file(root.join("inc1/b.h")).unwrap();
    let replaced = server.closure(cwd, &argv).unwrap();
    assert!(has(&replaced, "inc2/b.h"));
    server.clean_up();
}

/// An analysis that used a search remembered from another request survives a build's
/// temporary file made and removed in a directory that search looked into (Kbuild's
/// `filechk` beside its generated headers), and sees a header created there.
#[test]
fn a_remembered_search_survives_temporary_files_and_sees_new_headers() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/one.c", "#include <g/h.h>\n");
    w("src/two.c", "#include <g/h.h>\n");
    w("inc/g/h.h", "");
    fs::create_dir_all(root.join("a/g")).unwrap();
    settle();
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let one = words("gcc -I../a -I../inc -c one.c");
    let two = words("gcc -I../a -I../inc -c two.c");
    let server = IncludeServer::new().unwrap();
    server.closure(cwd, &one).unwrap();
    // Its search for g/h.h is the one `one.c`'s request made.
    let first = server.closure(cwd, &two).unwrap();
    for d in ["a/g", "inc/g"] {
        w(&format!("{d}/.tmp_h.h"), "");
        fs::remove_file(root.join(format!("{d}/.tmp_h.h"))).unwrap();
    }
    let kept = server.closure(cwd, &two).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &kept), "not reused");
    w("a/g/h.h", "");
    let after = server.closure(cwd, &two).unwrap();
    let a = root.join("a/g/h.h");
    assert!(
        after
            .files
            .iter()
            .any(|f| f.realpath == a.to_str().unwrap()),
        "{after:?}"
    );
    server.clean_up();
}

/// Every way of changing what a command includes is seen at the next request, without
/// waiting, however the change is made (in place, by a rename over the
/// file, through a hard link elsewhere, a directory renamed away and made again, a
/// symlinked search directory pointed elsewhere, a header appearing where its directory
/// did not exist, or in a search directory spelled with `..`).
#[test]
fn every_kind_of_change_is_seen_at_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let r = |p: &str| root.join(p);
    let w = |p: &str, s: &str| write(&root, p, s);
    w(
        "src/main.c",
        "#include \"a.h\"\n#include <sub/s.h>\n#include <l.h>\n#include <u.h>\n",
    );
    w("src/a.h", "#include \"x.h\"\n");
    w("src/x.h", "");
    w("src/y.h", "");
    w("src/z.h", "");
    w("b/sub/s.h", "");
    w("d1/l.h", "");
    w("d2/l.h", "");
    w("up/u.h", "");
    w("up2/u.h", "");
    fs::create_dir(r("a")).unwrap();
    fs::create_dir(r("links")).unwrap();
    std::os::unix::fs::symlink(r("d1"), r("links/l")).unwrap();
    settle();
    let src = r("src");
    let cwd = src.to_str().unwrap();
    // `a` has no `sub`; `missing/deeper` does not exist at all; `../src/../up2` winds.
    let argv = words(
        "gcc -I../missing/deeper -I../a -I../b -I../links/l -I../src/../up2 -I../up -c main.c",
    );
    let server = IncludeServer::new().unwrap();
    let has = |f: &str| -> bool {
        let c = server.closure(cwd, &argv).unwrap();
        let want = r(f);
        c.files.iter().any(|x| Path::new(&x.realpath) == want)
    };
    assert!(has("src/x.h") && has("b/sub/s.h") && has("d1/l.h") && has("up2/u.h"));

    // In place, the same size.
    fs::write(r("src/a.h"), "#include \"y.h\"\n").unwrap();
    assert!(has("src/y.h") && !has("src/x.h"), "in place");

    // A new version renamed over the old one.
    fs::write(r("src/a.h.new"), "#include \"z.h\"\n").unwrap();
    fs::rename(r("src/a.h.new"), r("src/a.h")).unwrap();
    assert!(has("src/z.h") && !has("src/y.h"), "renamed over");

    // Through a hard link in another directory.
    fs::create_dir(r("elsewhere")).unwrap();
    fs::hard_link(r("src/a.h"), r("elsewhere/a.h")).unwrap();
    settle();
    assert!(has("src/z.h"));
    fs::write(r("elsewhere/a.h"), "#include \"x.h\"\n").unwrap();
    assert!(has("src/x.h") && !has("src/z.h"), "through a hard link");

    // A directory renamed away and made again, its header now including another.
    fs::rename(r("b"), r("b.old")).unwrap();
    w("b/sub/s.h", "#include \"t.h\"\n");
    w("b/sub/t.h", "");
    assert!(has("b/sub/t.h"), "directory replaced");

    // A header where its directory did not exist shadows the one found later.
    w("a/sub/s.h", "");
    assert!(has("a/sub/s.h") && !has("b/sub/s.h"), "directory created");
    w("missing/deeper/sub/s.h", "");
    assert!(has("missing/deeper/sub/s.h"), "two directories created");

    // And the same where the directory was found empty.
    fs::rename(r("missing"), r("gone")).unwrap();
    fs::rename(r("a"), r("a.old")).unwrap();
    fs::create_dir(r("a")).unwrap();
    assert!(
        has("b/sub/s.h") && !has("a/sub/s.h"),
        "empty directory replaced"
    );

    // A symlinked search directory pointed elsewhere.
    fs::remove_file(r("links/l")).unwrap();
    std::os::unix::fs::symlink(r("d2"), r("links/l")).unwrap();
    assert!(has("d2/l.h") && !has("d1/l.h"), "link retargeted");

    // A search directory spelled with `..`: its header goes, the next one is found.
    fs::remove_file(r("up2/u.h")).unwrap();
    assert!(has("up/u.h") && !has("up2/u.h"), "winding directory");

    // Renamed over while the old version lives on through a hard link, then, once the
    // change is old, written again in place.
    fs::write(r("src/a.h.new"), "#include \"y.h\"\n").unwrap();
    fs::rename(r("src/a.h.new"), r("src/a.h")).unwrap();
    settle();
    assert!(
        has("src/y.h") && !has("src/x.h"),
        "renamed over a linked file"
    );
    fs::write(r("src/a.h"), "#include \"z.h\"\n").unwrap();
    assert!(has("src/z.h") && !has("src/y.h"), "then written in place");

    // A header made where an empty directory was put in place.
    settle();
    assert!(has("b/sub/s.h"));
    w("a/sub/s.h", "");
    assert!(has("a/sub/s.h"), "made in the replaced directory");
    server.clean_up();
}

/// A search directory that does not exist is not in GCC's chain, nor is one that is the
/// same directory as an earlier one: a kept analysis holds only while the chain would be
/// made the same.
#[test]
fn a_remembered_analysis_holds_only_while_its_search_chain_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let r = |p: &str| root.join(p);
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include <s.h>\n#include <t.h>\n");
    w("b/s.h", "");
    w("c/t.h", "");
    w("d/t.h", "");
    std::os::unix::fs::symlink(r("c"), r("l")).unwrap();
    settle();
    let cwd = r("src");
    let cwd = cwd.to_str().unwrap();
    // `gen` does not exist yet; `l` is `c` until it points to `d`, which is then
    // dropped from the chain as a duplicate.
    let argv = words("gcc -I../gen -I../b -I../d -I../l -c main.c");
    let server = IncludeServer::new().unwrap();
    let has = |f: &str| -> bool {
        let c = server.closure(cwd, &argv).unwrap();
        c.files.iter().any(|x| Path::new(&x.realpath) == r(f))
    };
    assert!(has("b/s.h") && has("d/t.h"));
    assert!(has("b/s.h"), "kept");

    // The directory is made by the build, long enough before the request that nothing
    // about it is too recent to trust.
    w("gen/s.h", "");
    settle();
    assert!(
        has("gen/s.h") && !has("b/s.h"),
        "a search directory appeared"
    );

    // `l` first stands for `c`, then for `d` (a duplicate dropped, `d` kept in its place).
    fs::remove_file(r("d/t.h")).unwrap();
    assert!(has("c/t.h"));
    fs::remove_file(r("l")).unwrap();
    std::os::unix::fs::symlink(r("d"), r("l")).unwrap();
    w("d/t.h", "");
    settle();
    assert!(has("d/t.h") && !has("c/t.h"), "a duplicate");
    server.clean_up();
}

/// The reply to a command depends on that command alone, not on what other compilers the
/// build asked about before (a daemon's cache keys the reply): a job whose compiler has
/// other system directories (here through `--sysroot`) adds no link to the replies of
/// the jobs after it.
#[test]
fn a_reply_is_the_same_whatever_was_asked_before() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include <stdio.h>\n#include \"a.h\"\n");
    w("src/a.h", "");
    w("src/other.c", "#include \"a.h\"\n");
    w("sysroot/usr/include/sr.h", "");
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let sysroot = format!("--sysroot={}", root.join("sysroot").display());
    let plain = words("gcc -O2 -c main.c");
    let other: Vec<String> = ["gcc", &sysroot, "-c", "other.c"]
        .map(String::from)
        .to_vec();
    // The paths under the root of each server.
    let reply = |server: &IncludeServer, argv: &[String]| -> Vec<String> {
        let root = server.client_root();
        let mut r: Vec<String> = (server.answer(cwd, argv).unwrap().into_iter())
            .map(|p| p[root.len()..].to_string())
            .collect();
        r.sort();
        r
    };
    let alone = IncludeServer::new().unwrap();
    let want = reply(&alone, &plain);
    alone.clean_up();
    assert!(want.contains(&"/usr/include".to_string()), "{want:?}");
    let after = IncludeServer::new().unwrap();
    let theirs = reply(&after, &other);
    assert!(
        theirs.iter().any(|p| p.ends_with("/sysroot/usr/include")),
        "{theirs:?}"
    );
    assert_eq!(reply(&after, &plain), want);
    after.clean_up();
}

/// A header whose mirror copy would have the name of a symlink the mirror made for
/// another include (`x.h` beside a link `x.h.lzo`) never writes through that link: the
/// file it points to keeps its content, whatever the reply.
#[test]
fn a_mirror_copy_never_writes_through_a_link_named_like_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("src/main.c", "#include \"x.h.lzo\"\n#include \"x.h\"\n");
    w("src/x.h", "int x;\n");
    w("src/other.h", "int other;\n");
    std::os::unix::fs::symlink("other.h", root.join("src/x.h.lzo")).unwrap();
    let src = root.join("src");
    let server = IncludeServer::new().unwrap();
    let _ = server.answer(src.to_str().unwrap(), &words("gcc -c main.c"));
    server.clean_up();
    assert_eq!(
        fs::read_to_string(src.join("other.h")).unwrap(),
        "int other;\n"
    );
}

/// A request asked again while its analysis holds gets the reply made before, without
/// the mirror being walked again; once another request has started a new generation of
/// the mirror (a header of its own changed), the reply names the new root; a header
/// written again with the same content starts no generation; and a header of its own
/// changed gives a reply with the new content.
#[test]
fn a_kept_request_gets_its_reply_again_until_the_mirror_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    w("a.c", "#include \"a.h\"\n");
    w("a.h", "int a;\n");
    w("b.c", "#include \"b.h\"\n");
    w("b.h", "int b;\n");
    settle();
    let cwd = root.to_str().unwrap();
    let (a, b) = (words("gcc -c a.c"), words("gcc -c b.c"));
    let server = IncludeServer::new().unwrap();
    let content = |reply: &[String], name: &str| {
        let path = reply.iter().find(|p| p.contains(name)).unwrap();
        String::from_utf8(lzo::decompress(&fs::read(path).unwrap(), 1 << 20).unwrap()).unwrap()
    };
    let first = server.answer(cwd, &a).unwrap();
    let root1 = server.client_root();
    assert!(first.iter().all(|p| p.starts_with(&root1)), "{first:?}");
    assert_eq!(server.answer(cwd, &a).unwrap(), first);
    assert_eq!(server.answer(cwd, &b).unwrap().len(), first.len());

    // b.h changes: b's next request starts a new generation; a's reply follows it.
    w("b.h", "int b, bb;\n");
    settle();
    let b2 = server.answer(cwd, &b).unwrap();
    let root2 = server.client_root();
    assert_ne!(root1, root2);
    assert_eq!(content(&b2, "b.h"), "int b, bb;\n");
    let again = server.answer(cwd, &a).unwrap();
    assert!(again.iter().all(|p| p.starts_with(&root2)), "{again:?}");
    assert_eq!(content(&again, "a.h"), "int a;\n");

    // b.h written again with the same content, as a build makes a generated file again
    // (a new file, a new inode): the generation stays, and so do the copies.
    fs::remove_file(root.join("b.h")).unwrap();
    w("b.h", "int b, bb;\n");
    settle();
    let b3 = server.answer(cwd, &b).unwrap();
    assert_eq!(server.client_root(), root2);
    assert_eq!(b3, b2);
    assert_eq!(server.answer(cwd, &a).unwrap(), again);

    // a.h changes: not the old copy.
    w("a.h", "int a, aa;\n");
    settle();
    assert_eq!(
        content(&server.answer(cwd, &a).unwrap(), "a.h"),
        "int a, aa;\n"
    );
    server.clean_up();
}

/// Kept analyses are checked by change notices: each change below, made right after the
/// analyses were kept (no time for a timestamp to tell), is seen at the next request,
/// while the analyses it does not touch stay kept. A directory reached through a symbolic
/// link is not trusted to notices, and is checked by `stat` instead.
#[test]
fn change_notices_see_every_change_an_analysis_depends_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    // One small tree per change: a source including <b.h> from its inc/ directory.
    let cases = [
        "content", "hardlink", "shadow", "renamed", "linked", "overflow", "removed", "created",
    ];
    for c in cases {
        w(&format!("{c}/a.c"), "#include <b.h>\n");
        w(&format!("{c}/inc/b.h"), "int b;\n");
        w(&format!("{c}/early/x.h"), "");
    }
    fs::create_dir(root.join("other")).unwrap();
    fs::create_dir(root.join("elsewhere")).unwrap();
    w("elsewhere/b.h", "int b;\n");
    std::os::unix::fs::symlink(root.join("elsewhere"), root.join("linked/viainc")).unwrap();
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = |c: &str| root.join(c).to_str().unwrap().to_string();
    let argv = |c: &str| {
        let inc = if c == "linked" { "viainc" } else { "inc" };
        // `new` does not exist yet: GCC leaves it out of the chain.
        words(&format!("gcc -Inew -Iearly -I{inc} -c a.c"))
    };
    let kept: Vec<_> = (cases.iter())
        .map(|c| server.closure(&cwd(c), &argv(c)).unwrap())
        .collect();
    for (c, k) in cases.iter().zip(&kept) {
        let again = server.closure(&cwd(c), &argv(c)).unwrap();
        assert!(std::sync::Arc::ptr_eq(k, &again), "{c}: not kept");
        assert_eq!(server.is_watched(&cwd(c), &argv(c)), *c != "linked", "{c}");
    }
    let seen = |c: &str, i: usize| {
        let now = server.closure(&cwd(c), &argv(c)).unwrap();
        !std::sync::Arc::ptr_eq(&kept[i], &now)
    };
    for (i, c) in cases.iter().enumerate() {
        let b = root.join(c).join("inc/b.h");
        match *c {
            // Rewritten in place, same size.
            "content" => w("content/inc/b.h", "int c;\n"),
            // Written through a hard link in a directory nobody watches.
            "hardlink" => {
                let other = root.join("other/b.h");
                fs::hard_link(&b, &other).unwrap();
                fs::write(&other, "int h;\n").unwrap();
            }
            // A header created earlier on the chain.
            "shadow" => w("shadow/early/b.h", ""),
            // The directory renamed, and another put in its place.
            "renamed" => {
                fs::rename(root.join("renamed/inc"), root.join("renamed/old")).unwrap();
                w("renamed/inc/b.h", "int r;\n");
            }
            // Behind a symbolic link: checked by stat, which sees the new size.
            "linked" => w("elsewhere/b.h", "int bb;\n"),
            // More notices than the kernel queues, then the change.
            "overflow" => {
                for n in 0..20_000 {
                    fs::File::create(root.join(format!("overflow/early/f{n}"))).unwrap();
                }
                w("overflow/inc/b.h", "int o;\n");
            }
            "removed" => fs::remove_file(&b).unwrap(),
            // A directory of the command line that did not exist, made with a header.
            "created" => w("created/new/b.h", ""),
            _ => unreachable!(),
        }
        assert!(seen(c, i), "{c}: the change was not seen");
        // The others' analyses are untouched.
        for (j, o) in cases.iter().enumerate().skip(i + 1) {
            let again = server.closure(&cwd(o), &argv(o)).unwrap();
            assert!(std::sync::Arc::ptr_eq(&kept[j], &again), "{o} after {c}");
        }
    }
    server.clean_up();
}

/// A file that earlier analyses read and that change notices vouch for is not `stat`ed
/// again by the next command that reads it; each change below, made to such a file or to
/// its path, is seen by the next new command, which then includes `c.h`.
#[test]
fn a_file_vouched_for_by_notices_is_read_again_once_changed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let cases = [
        "content", "hardlink", "renamed", "replaced", "overflow", "sticky",
    ];
    // The sticky case's tree is in a sticky directory (as `/tmp`), which is not watched.
    let tree = |c: &str| match c {
        "sticky" => root.join("s/sticky"),
        _ => root.join(c),
    };
    let w = |c: &str, p: &str, s: &str| write(&tree(c), p, s);
    fs::create_dir_all(root.join("s")).unwrap();
    fs::set_permissions(root.join("s"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(root.join("other")).unwrap();
    for c in cases {
        w(c, "a.c", "#include <b.h>\n");
        w(c, "inc/b.h", "int b;\n");
        w(c, "inc/c.h", "int c;\n");
        w(c, "early/x.h", "");
    }
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = |c: &str| tree(c).to_str().unwrap().to_string();
    // Each command new (another -D), so that none is answered from a kept analysis.
    let mut n = 0;
    let mut names = |c: &str| -> Vec<String> {
        n += 1;
        let argv = words(&format!("gcc -DV{n} -Iearly -Iinc -c a.c"));
        let closure = server.closure(&cwd(c), &argv).unwrap();
        (closure.files.iter())
            .map(|f| f.realpath[tree(c).to_str().unwrap().len() + 1..].to_string())
            .collect()
    };
    // The first commands have the files watched, the next record their versions, the
    // last are answered from those versions and the notices.
    for _ in 0..3 {
        for c in cases {
            assert_eq!(names(c), ["a.c", "inc/b.h"], "{c}");
        }
    }
    let includes_c = "#include <c.h>\n";
    for c in cases {
        let b = tree(c).join("inc/b.h");
        match c {
            "content" => w(c, "inc/b.h", includes_c),
            // Written through a hard link in a directory nobody watches.
            "hardlink" => {
                let other = root.join("other/b.h");
                fs::hard_link(&b, &other).unwrap();
                fs::write(&other, includes_c).unwrap();
            }
            // Its directory renamed, and another put in its place.
            "renamed" => {
                fs::rename(tree(c).join("inc"), tree(c).join("old")).unwrap();
                w(c, "inc/b.h", includes_c);
                w(c, "inc/c.h", "int c;\n");
            }
            // Another file renamed over it.
            "replaced" => {
                w(c, "inc/b.new", includes_c);
                fs::rename(tree(c).join("inc/b.new"), &b).unwrap();
            }
            // More notices than the kernel queues, then the change.
            "overflow" => {
                for n in 0..20_000 {
                    fs::File::create(tree(c).join(format!("early/f{n}"))).unwrap();
                }
                w(c, "inc/b.h", includes_c);
            }
            // The tree moved out of the sticky directory, and another put in its place.
            "sticky" => {
                fs::rename(tree(c), root.join("s/old")).unwrap();
                w(c, "a.c", "#include <b.h>\n");
                w(c, "inc/b.h", includes_c);
                w(c, "inc/c.h", "int c;\n");
                w(c, "early/x.h", "");
            }
            _ => unreachable!(),
        }
        assert_eq!(
            names(c),
            ["a.c", "inc/b.h", "inc/c.h"],
            "{c}: the change was not seen"
        );
    }
    server.clean_up();
}

/// The inodes of this process's inotify watches (`/proc/self/fdinfo`).
fn watched_inodes() -> Vec<u64> {
    let mut inodes = Vec::new();
    for fd in fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(info) = fs::read_to_string(fd.path()) else {
            continue;
        };
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let ino = line.split_whitespace().find_map(|w| w.strip_prefix("ino:"));
            inodes.extend(ino.and_then(|i| u64::from_str_radix(i, 16).ok()));
        }
    }
    inodes
}

/// A header in the compiler's own directories (here a `--sysroot`'s) has no watch of its
/// own when it has no other name: its directory's watch reports each change to it by
/// name. Each change below is seen by the next new command and by the kept one; a header
/// with a second name from the start keeps a watch of its own, which sees a write through
/// that other name.
#[test]
fn a_system_header_is_watched_through_its_directory() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let cases = ["content", "replaced", "renamed", "overflow", "linked"];
    let tree = |c: &str| root.join(c);
    let w = |c: &str, p: &str, s: &str| write(&tree(c), p, s);
    fs::create_dir(root.join("other")).unwrap();
    for c in cases {
        w(
            c,
            "src/a.c",
            "#include <b.h>\n#ifdef WANT_C\n#include \"c.h\"\n#endif\n",
        );
        w(c, "src/c.h", "int c;\n");
        w(c, "sys/usr/include/b.h", "int b;\n");
        w(c, "sys/usr/include/x.h", "");
    }
    let b = |c: &str| tree(c).join("sys/usr/include/b.h");
    fs::hard_link(b("linked"), root.join("other/b.h")).unwrap();
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = |c: &str| tree(c).join("src").to_str().unwrap().to_string();
    let argv = |c: &str, n: &str| {
        let sysroot = tree(c).join("sys");
        words(&format!("gcc --sysroot={} -D{n} -c a.c", sysroot.display()))
    };
    let names = |c: &str, n: &str| -> Vec<String> {
        let closure = server.closure(&cwd(c), &argv(c, n)).unwrap();
        assert!(
            (closure.system_dirs.iter()).any(|d| d.ends_with("/sys/usr/include")),
            "{:?}",
            closure.system_dirs
        );
        under_root(&tree(c).join("src"), &closure)
    };
    // The first commands have the files watched, the next record their versions, the
    // last are answered from those versions and the notices.
    let mut kept = Vec::new();
    for c in cases {
        for n in 0..3 {
            assert_eq!(names(c, &format!("V{n}")), ["a.c"], "{c}");
        }
        kept.push(server.closure(&cwd(c), &argv(c, "KEPT")).unwrap());
    }
    let watched = watched_inodes();
    for c in cases {
        let own = watched.contains(&fs::metadata(b(c)).unwrap().ino());
        assert_eq!(own, c == "linked", "{c}: a watch of its own");
    }
    let wants_c = "#define WANT_C\n";
    for (i, c) in cases.iter().enumerate() {
        match *c {
            // Rewritten in place.
            "content" => w(c, "sys/usr/include/b.h", wants_c),
            // Another file renamed over it.
            "replaced" => {
                w(c, "sys/usr/include/b.new", wants_c);
                fs::rename(tree(c).join("sys/usr/include/b.new"), b(c)).unwrap();
            }
            // Its directory renamed, and another put in its place.
            "renamed" => {
                fs::rename(tree(c).join("sys/usr/include"), tree(c).join("sys/old")).unwrap();
                w(c, "sys/usr/include/b.h", wants_c);
            }
            // More notices than the kernel queues, then the change.
            "overflow" => {
                for n in 0..20_000 {
                    fs::File::create(tree(c).join(format!("sys/usr/include/f{n}"))).unwrap();
                }
                w(c, "sys/usr/include/b.h", wants_c);
            }
            // Written through its other name, in a directory nobody watches.
            "linked" => fs::write(root.join("other/b.h"), wants_c).unwrap(),
            _ => unreachable!(),
        }
        assert_eq!(
            names(c, "NEW"),
            ["a.c", "c.h"],
            "{c}: not seen by a new command"
        );
        let again = server.closure(&cwd(c), &argv(c, "KEPT")).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&kept[i], &again), "{c}: kept");
        assert_eq!(
            under_root(&tree(c).join("src"), &again),
            ["a.c", "c.h"],
            "{c}"
        );
    }
    server.clean_up();
}

/// A directory the notices vouch for is its own realpath while nothing on its path
/// changes; once it is replaced by a symbolic link, a header found through it has the
/// link's target in its realpath again.
#[test]
fn a_directory_replaced_by_a_link_gives_its_files_their_new_realpath() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let mut fresh = vouched_tree(&root);
    write(&root, "elsewhere/b.h", "int e;\n");
    settle();
    let server = IncludeServer::new().unwrap();
    for _ in 0..3 {
        assert_eq!(fresh(&server), ["a.c", "inc/b.h"]);
    }
    fs::rename(root.join("inc"), root.join("old")).unwrap();
    std::os::unix::fs::symlink(root.join("elsewhere"), root.join("inc")).unwrap();
    assert_eq!(fresh(&server), ["a.c", "elsewhere/b.h"]);
    server.clean_up();
}

/// The same when a directory above the one a header is found in is replaced by a link:
/// the header's own directory keeps its watch (it was not moved itself), and only the
/// notice about the directory above says that its realpath changed.
#[test]
fn a_directory_above_replaced_by_a_link_gives_the_files_below_their_new_realpath() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "a.c", "#include <b.h>\n");
    write(&root, "top/inc/b.h", "int b;\n");
    write(&root, "top2/inc/b.h", "int b2;\n");
    settle();
    let server = IncludeServer::new().unwrap();
    let files = |n: &str| files_from(&server, &root, &format!("gcc -D{n} -Itop/inc -c a.c"));
    for n in 0..3 {
        assert_eq!(files(&format!("V{n}")), ["a.c", "top/inc/b.h"]);
    }
    fs::rename(root.join("top"), root.join("old")).unwrap();
    std::os::unix::fs::symlink(root.join("top2"), root.join("top")).unwrap();
    assert_eq!(files("NEW"), ["a.c", "top2/inc/b.h"]);
    server.clean_up();
}

/// A search directory missing with the directory above it, both made during the build,
/// one after the other: the kept analysis of a command that searches it sees the header
/// made there (the directory above, found missing before, is watched once it is made).
#[test]
fn a_search_directory_made_with_its_parent_during_the_build_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "a.c", "#include <b.h>\n");
    write(&root, "inc/b.h", "int b;\n");
    settle();
    let server = IncludeServer::new().unwrap();
    let cmd = |n: &str| format!("gcc -D{n} -Imissing/dir -Iinc -c a.c");
    let files = |n: &str| files_from(&server, &root, &cmd(n));
    for n in 0..3 {
        assert_eq!(files(&format!("V{n}")), ["a.c", "inc/b.h"]);
    }
    assert_eq!(files("KEPT"), ["a.c", "inc/b.h"]);
    fs::create_dir(root.join("missing")).unwrap();
    assert_eq!(files("V3"), ["a.c", "inc/b.h"]);
    assert_eq!(files("KEPT"), ["a.c", "inc/b.h"]);
    write(&root, "missing/dir/b.h", "int made;\n");
    assert_eq!(files("KEPT"), ["a.c", "missing/dir/b.h"], "kept");
    assert_eq!(files("V4"), ["a.c", "missing/dir/b.h"], "new");
    server.clean_up();
}

/// The paths under the compiler's directories where a search found no header are listed
/// the same by a request that takes the searches from an earlier one.
#[test]
fn system_paths_found_missing_are_listed_from_remembered_searches_too() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "a.c", "#include <stdio.h>\n");
    write(&root, "b.c", "#include <stdio.h>\n");
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = root.to_str().unwrap();
    let absent = |c: &str| {
        let closure = server.closure(cwd, &words(&format!("gcc -c {c}"))).unwrap();
        closure.absent_system.clone()
    };
    let first = absent("a.c");
    // GCC looks for <stdio.h> in its own directory before the C library's.
    assert!(first.iter().any(|p| p.ends_with("/stdio.h")), "{first:?}");
    assert_eq!(absent("b.c"), first);
    server.clean_up();
}

/// A `--sysroot` tree whose `usr/include/b.h` makes `src/a.c` include `c.h` once it
/// defines `WANT_C`, and whose `usr/include/y.h` `src/other.c` includes; a server; and
/// the files of `a.c`'s closure (under `src/`) for a command with `-D<n>`.
fn sysroot_tree(
    root: &Path,
) -> (
    IncludeServer,
    impl Fn(&IncludeServer, &str) -> Vec<String> + '_,
) {
    let w = |p: &str, s: &str| write(root, p, s);
    w(
        "src/a.c",
        "#include <b.h>\n#ifdef WANT_C\n#include \"c.h\"\n#endif\n",
    );
    w("src/c.h", "int c;\n");
    w("src/other.c", "#include \"y.h\"\n");
    w("sys/usr/include/b.h", "int b;\n");
    w("sys/usr/include/y.h", "int y;\n");
    fs::create_dir_all(root.join("sys/usr/lib")).unwrap();
    settle();
    let names = move |server: &IncludeServer, n: &str| {
        let src = root.join("src");
        let argv = format!("gcc --sysroot={} -D{n} -c a.c", root.join("sys").display());
        let closure = server
            .closure(src.to_str().unwrap(), &words(&argv))
            .unwrap();
        under_root(&src, &closure)
    };
    (IncludeServer::new().unwrap(), names)
}

/// A system directory reached by another path too, as a plain `-I` directory (through a
/// link, or spelled with `..`): that path's watch is the same inode's, and must not take
/// away the write notices that the system headers covered by it depend on.
#[test]
fn a_system_directory_reached_by_another_path_still_reports_writes() {
    for alias in ["link", "dotdot"] {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let (server, names) = sysroot_tree(&root);
        let inc = match alias {
            "link" => {
                std::os::unix::fs::symlink(root.join("sys/usr/include"), root.join("alias"))
                    .unwrap();
                root.join("alias")
            }
            _ => root.join("sys/usr/lib/../include"),
        };
        for n in 0..3 {
            assert_eq!(names(&server, &format!("V{n}")), ["a.c"]);
        }
        assert_eq!(names(&server, "KEPT"), ["a.c"]);
        let other = words(&format!("gcc -I{} -c other.c", inc.display()));
        server
            .closure(root.join("src").to_str().unwrap(), &other)
            .unwrap();
        fs::write(root.join("sys/usr/include/b.h"), "#define WANT_C\n").unwrap();
        assert_eq!(names(&server, "KEPT"), ["a.c", "c.h"], "{alias}: kept");
        assert_eq!(names(&server, "NEW"), ["a.c", "c.h"], "{alias}: new");
        server.clean_up();
    }
}

/// A system header covered by its directory's watch is vouched for through it only while
/// that watch reports writes: here the directory's watch is lost (moved away and back)
/// and the directory watched again by a command that has it as a plain `-I` directory;
/// then a command that reads the header but keeps no analysis (its source is new)
/// records its version, and the header is rewritten in place.
#[test]
fn a_covered_header_is_not_vouched_for_by_a_plain_directory_watch() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let (server, names) = sysroot_tree(&root);
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    for n in 0..3 {
        assert_eq!(names(&server, &format!("V{n}")), ["a.c"]);
    }
    let inc = root.join("sys/usr/include");
    fs::rename(&inc, root.join("sys/usr/inc2")).unwrap();
    fs::rename(root.join("sys/usr/inc2"), &inc).unwrap();
    let other = words(&format!("gcc -I{} -c other.c", inc.display()));
    server.closure(cwd, &other).unwrap();
    write(&src, "fresh.c", "#include <b.h>\n");
    let sysroot = format!("--sysroot={}", root.join("sys").display());
    let fresh: Vec<String> = ["gcc", &sysroot, "-c", "fresh.c"]
        .map(String::from)
        .to_vec();
    server.closure(cwd, &fresh).unwrap();
    fs::write(inc.join("b.h"), "#define WANT_C\n").unwrap();
    assert_eq!(names(&server, "NEW"), ["a.c", "c.h"]);
    server.clean_up();
}

/// A sysroot tree whose `src/a.c` (`a_c`) includes `c.h` once a `<b.h>` defines
/// `WANT_C`, with `sys` made as `setup` says, analysed by `compiler --sysroot=sys` until
/// kept; then `made` (under `sys`) is written with that definition: the new command and
/// the kept one must both read `c.h`, as the compiler does (`-M`).
fn sysroot_header_made_during_the_build(
    compiler: &str,
    a_c: &str,
    setup: impl Fn(&Path),
    made: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "src/a.c", a_c);
    write(&root, "src/c.h", "int c;\n");
    setup(&root.join("sys"));
    settle();
    let server = IncludeServer::new().unwrap();
    let src = root.join("src");
    let argv = |n: &str| {
        let sysroot = root.join("sys");
        words(&format!(
            "{compiler} --sysroot={} -D{n} -c a.c",
            sysroot.display()
        ))
    };
    let names = |n: &str| {
        under_root(
            &src,
            &server.closure(src.to_str().unwrap(), &argv(n)).unwrap(),
        )
    };
    for n in ["V0", "V1", "KEPT", "KEPT"] {
        assert_eq!(names(n), ["a.c"]);
    }
    write(&root.join("sys"), made, "#define WANT_C\n");
    let out = std::process::Command::new(compiler)
        .args(&argv("NEW")[1..])
        .args(["-M", "-o", "-"])
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("c.h"),
        "{out:?}"
    );
    assert_eq!(names("NEW"), ["a.c", "c.h"], "new");
    assert_eq!(names("KEPT"), ["a.c", "c.h"], "kept");
    server.clean_up();
}

/// A directory the compiler would search but found missing (here a `--sysroot`'s
/// `usr/include`) is searched by the compilers run once it is made: the compiler is asked
/// again then, and what was kept of earlier commands no longer holds.
#[test]
fn a_missing_system_directory_made_during_the_build_is_searched() {
    sysroot_header_made_during_the_build(
        "gcc",
        "#if __has_include(<b.h>)\n#include <b.h>\n#endif\n#ifdef WANT_C\n#include \"c.h\"\n#endif\n",
        |sys| fs::create_dir_all(sys.join("usr")).unwrap(),
        "usr/include/b.h",
    );
}

/// clang adds a sysroot's multiarch directory only when it exists, without reporting it
/// missing otherwise: one made during the build is searched by the compilers run after,
/// and so by the analysis.
#[test]
fn clang_s_sysroot_multiarch_directory_made_during_the_build_is_searched() {
    let triple = std::process::Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .unwrap();
    let triple = String::from_utf8(triple.stdout).unwrap();
    sysroot_header_made_during_the_build(
        "clang",
        "#include <b.h>\n#ifdef WANT_C\n#include \"c.h\"\n#endif\n",
        |sys| write(sys, "usr/include/b.h", "int b;\n"),
        &format!("usr/include/{}/b.h", triple.trim()),
    );
}

/// A relative `--sysroot=` names a directory of each working directory (even without a
/// `/`): what the compiler says is asked per directory, so a sysroot header made in one
/// is found by the commands run there.
#[test]
fn a_relative_sysroot_is_asked_about_per_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    for d in ["A", "B"] {
        w(
            &format!("{d}/a.c"),
            "#include <b.h>\n#ifdef WANT_C\n#include \"c.h\"\n#endif\n",
        );
        w(&format!("{d}/c.h"), "int c;\n");
        // Found through -idirafter while the sysroot has no usr/include.
        w(&format!("{d}/b.h"), "int b;\n");
        fs::create_dir_all(root.join(d).join("sys/usr")).unwrap();
    }
    settle();
    let server = IncludeServer::new().unwrap();
    let argv = |n: &str| words(&format!("gcc --sysroot=sys -idirafter . -D{n} -c a.c"));
    let names = |d: &str, n: &str| {
        let cwd = root.join(d);
        under_root(
            &cwd,
            &server.closure(cwd.to_str().unwrap(), &argv(n)).unwrap(),
        )
    };
    assert_eq!(names("A", "V0"), ["a.c", "b.h"]);
    w("B/sys/usr/include/b.h", "#define WANT_C\n");
    let deps = gcc_deps(&root.join("B"), &argv("NEW"), &[]);
    assert!(deps.iter().any(|d| d.ends_with("/c.h")), "{deps:?}");
    assert_eq!(names("B", "NEW"), ["a.c", "c.h"]);
    server.clean_up();
}

/// A tree of `a.c` including `<b.h>` from `inc/`, which also holds `c.h`, and a counter
/// of commands: each call analyses a new command (another -D) and lists its files.
fn vouched_tree(root: &Path) -> impl FnMut(&IncludeServer) -> Vec<String> + '_ {
    write(root, "a.c", "#include <b.h>\n");
    write(root, "inc/b.h", "int b;\n");
    write(root, "inc/c.h", "int c;\n");
    let mut n = 0;
    move |server: &IncludeServer| {
        n += 1;
        files_from(server, root, &format!("gcc -DV{n} -Iinc -c a.c"))
    }
}

/// The files of the closure of `cmd` run in `root`, relative to it.
fn files_from(server: &IncludeServer, root: &Path, cmd: &str) -> Vec<String> {
    let cwd = root.to_str().unwrap();
    let closure = server.closure(cwd, &words(cmd)).unwrap();
    (closure.files.iter())
        .map(|f| f.realpath[cwd.len() + 1..].to_string())
        .collect()
}

/// A watch put on one inode is never taken for a watch on another: a kept analysis
/// asked again re-arms with the versions it read, while its path already names another
/// file (kept alive by a hard link); when the first file comes back at the path, the
/// watch still on the other must not vouch for it.
#[test]
fn a_watch_vouches_only_for_the_inode_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let mut fresh = vouched_tree(&root);
    fs::create_dir(root.join("other")).unwrap();
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = root.to_str().unwrap();
    let kept = words("gcc -DKEPT -Iinc -c a.c");
    for _ in 0..3 {
        assert_eq!(fresh(&server), ["a.c", "inc/b.h"]);
    }
    server.closure(cwd, &kept).unwrap();
    // The header moved away, another written in its place and linked elsewhere.
    fs::rename(root.join("inc/b.h"), root.join("other/b.old")).unwrap();
    write(&root, "inc/b.h", "int b2;\n");
    fs::hard_link(root.join("inc/b.h"), root.join("other/b.keep")).unwrap();
    server.closure(cwd, &kept).unwrap();
    settle();
    // The first comes back; the second lives on under its other name.
    fs::rename(root.join("other/b.old"), root.join("inc/b.h")).unwrap();
    settle();
    for _ in 0..2 {
        assert_eq!(fresh(&server), ["a.c", "inc/b.h"]);
    }
    write(&root, "inc/b.h", "#include <c.h>\n");
    assert_eq!(fresh(&server), ["a.c", "inc/b.h", "inc/c.h"], "stale b.h");
    server.clean_up();
}

/// A directory on a vouched file's path mounted over (a bind mount) sends no notice, but
/// changes what the path names: the next command reads the file the mount shows. Runs
/// itself again in a mount namespace of its own (as root, as CI is).
#[test]
fn a_mount_over_a_directory_on_the_path_is_seen() {
    const INSIDE: &str = "DISTCC_TEST_IN_MOUNT_NAMESPACE";
    if std::env::var_os(INSIDE).is_none() {
        let status = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "a_mount_over_a_directory_on_the_path_is_seen"])
            .env(INSIDE, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the test in its mount namespace failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let mut fresh = vouched_tree(&root);
    write(&root, "alt/b.h", "#include <c.h>\n");
    write(&root, "alt/c.h", "int c;\n");
    settle();
    let server = IncludeServer::new().unwrap();
    for _ in 0..3 {
        assert_eq!(fresh(&server), ["a.c", "inc/b.h"]);
    }
    let mounted = std::process::Command::new("mount")
        .arg("--bind")
        .args([root.join("alt"), root.join("inc")])
        .status()
        .unwrap();
    assert!(mounted.success());
    let seen = fresh(&server);
    let _ = std::process::Command::new("umount")
        .arg(root.join("inc"))
        .status();
    assert_eq!(
        seen,
        ["a.c", "inc/b.h", "inc/c.h"],
        "stale b.h under the mount"
    );
    server.clean_up();
}

/// A sticky, world-writable directory above a tree (as `/tmp`) is checked by identity
/// rather than watched: one replaced, with a different tree put where the old one was,
/// is seen.
#[test]
fn a_replaced_sticky_directory_above_the_tree_is_seen() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let sticky = |p: &Path| {
        fs::create_dir_all(p).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o1777)).unwrap();
    };
    let (outer, inner) = (root.join("outer"), root.join("outer/inner"));
    sticky(&outer);
    sticky(&inner);
    write(&inner, "p/a.c", "#include \"b.h\"\n");
    write(&inner, "p/b.h", "int b;\n");
    settle();
    let cwd = inner.join("p");
    let cwd = cwd.to_str().unwrap();
    let argv = words("gcc -c a.c");
    let server = IncludeServer::new().unwrap();
    let first = server.closure(cwd, &argv).unwrap();
    assert!(server.is_watched(cwd, &argv));
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &server.closure(cwd, &argv).unwrap()
    ));
    // The inner sticky directory moves away, and another takes its place: nothing watched
    // was moved itself, and `outer` is not watched.
    fs::rename(&inner, root.join("outer/old")).unwrap();
    sticky(&inner);
    write(&inner, "p/a.c", "#include \"b.h\"\n");
    write(&inner, "p/b.h", "int b, c;\n");
    let now = server.closure(cwd, &argv).unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&first, &now),
        "the replacement was not seen"
    );
    server.clean_up();
}

/// A watch follows its inode: after a header is moved away and another written in its
/// place, and after notices were lost to a queue overflow (a header replaced meanwhile),
/// the new file is watched in its turn, so that a later change to it is seen too.
#[test]
fn a_path_whose_file_was_replaced_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let w = |p: &str, s: &str| write(&root, p, s);
    for c in ["moved", "overflow", "movedir"] {
        w(&format!("{c}/a.c"), "#include <b.h>\n");
        w(&format!("{c}/inc/b.h"), "int b;\n");
        w(&format!("{c}/late/b.h"), "int late;\n");
        w(&format!("{c}/inc/c.h"), "int c;\n");
    }
    settle();
    let server = IncludeServer::new().unwrap();
    let cwd = |c: &str| root.join(c).to_str().unwrap().to_string();
    let argv = words("gcc -Iinc -Ilate -c a.c");
    let names = |c: &str| -> Vec<String> {
        let closure = server.closure(&cwd(c), &argv).unwrap();
        (closure.files.iter())
            .map(|f| f.realpath[root.to_str().unwrap().len() + 1..].to_string())
            .collect()
    };
    for c in ["moved", "overflow", "movedir"] {
        assert_eq!(names(c), [format!("{c}/a.c"), format!("{c}/inc/b.h")]);
        assert!(server.is_watched(&cwd(c), &argv));
        match c {
            "moved" => {
                fs::rename(root.join("moved/inc/b.h"), root.join("moved/inc/b.old")).unwrap()
            }
            "overflow" => {
                for n in 0..20_000 {
                    fs::File::create(root.join(format!("overflow/late/f{n}"))).unwrap();
                }
                fs::remove_file(root.join("overflow/inc/b.h")).unwrap();
            }
            _ => fs::rename(root.join("movedir/inc"), root.join("movedir/old")).unwrap(),
        }
        w(&format!("{c}/inc/b.h"), "int b2;\n");
        w(&format!("{c}/inc/c.h"), "int c;\n");
        // Old enough for the new analysis to be kept.
        std::thread::sleep(distcc_rs::include::search::TOO_NEW * 2);
        assert_eq!(
            names(c),
            [format!("{c}/a.c"), format!("{c}/inc/b.h")],
            "{c}"
        );
        assert!(server.is_watched(&cwd(c), &argv), "{c}");
        // The new header changes in place: seen.
        let b = root.join(c).join("inc/b.h");
        let mut f = fs::OpenOptions::new().append(true).open(&b).unwrap();
        std::io::Write::write_all(&mut f, b"#include <c.h>\n").unwrap();
        drop(f);
        assert_eq!(
            names(c),
            [
                format!("{c}/a.c"),
                format!("{c}/inc/b.h"),
                format!("{c}/inc/c.h")
            ],
            "{c}: the change to the new file was not seen"
        );
    }
    server.clean_up();
}

/// The paths of `c`'s files under `root`.
fn under_root(root: &Path, c: &Closure) -> Vec<String> {
    let r = root.to_str().unwrap();
    (c.files.iter())
        .map(|f| f.realpath[r.len() + 1..].to_string())
        .collect()
}

/// A tree of `files` (path, content) old enough to be remembered, and caches with change
/// notices.
fn watched_tree(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf, Caches) {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    for (path, text) in files {
        write(&root, path, text);
    }
    settle();
    let mut caches = Caches::default();
    caches.watcher = Watcher::new();
    (dir, root, caches)
}

/// The directory of a header the analysis read is replaced between the read and the
/// watching of the analysis, in a tree nothing watched before: the kept analysis must not
/// hold (a file's own watch says nothing of whether its path still names it).
#[test]
fn a_directory_replaced_between_the_read_and_the_watch_is_seen() {
    let (_dir, root, caches) = watched_tree(&[
        ("src/a.c", "#include \"gen/f.h\"\n"),
        ("src/gen/f.h", "int f1;\n"),
        ("src/gen2/f.h", "#include \"g.h\"\n"),
        ("src/gen2/g.h", "int g;\n"),
    ]);
    let w = caches.watcher.as_ref().unwrap();
    let cwd = root.join("src");
    let cmd = cmdline::parse(&words("gcc -c a.c")).unwrap();
    let started = w.now();
    let (c, _) = analyze(
        &cmd,
        cwd.to_str().unwrap(),
        &caches,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(under_root(&root, &c), ["src/a.c", "src/gen/f.h"]);
    fs::rename(root.join("src/gen"), root.join("src/gen.old")).unwrap();
    fs::rename(root.join("src/gen2"), root.join("src/gen")).unwrap();
    let facts = c.facts.as_ref().unwrap();
    let (plan, holds) = w.arm(facts, started);
    let then = facts
        .files
        .iter()
        .find(|f| f.0.as_str().ends_with("gen/f.h"))
        .unwrap()
        .1;
    let now = FileKey::stat(root.join("src/gen/f.h").to_str().unwrap()).unwrap();
    assert_ne!(now, then);
    assert!(
        !(plan.usable && holds && w.unchanged(&plan, facts, started)),
        "the analysis of the old gen/f.h would be served again"
    );
}

/// After the queue of notices overflowed (every watch dropped), a request takes a header
/// from the directive cache without watching it; the header is then written in place and
/// another request reads and watches it. Neither the first request's analysis nor the
/// first version of the header may serve a later request.
#[test]
fn a_header_watched_after_an_overflow_is_not_vouched_for_by_a_later_watch() {
    let (_dir, root, caches) = watched_tree(&[
        ("src/a.c", "#include \"f.h\"\n"),
        ("src/b.c", "int b;\n"),
        ("src/f.h", "int f1;\n"),
    ]);
    let w = caches.watcher.as_ref().unwrap();
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let run = |source: &str, define: &str| {
        let cmd = cmdline::parse(&words(&format!("gcc -D{define} -c {source}"))).unwrap();
        analyze(&cmd, cwd, &caches, Duration::from_secs(30))
            .unwrap()
            .0
    };
    let started = w.now();
    let c = run("a.c", "C");
    let (plan, holds) = w.arm(c.facts.as_ref().unwrap(), started);
    assert!(plan.usable && holds);
    // More notices than the kernel queues (16384 by default): the server starts over.
    for i in 0..17_000 {
        fs::write(src.join(format!("j{i}")), "").unwrap();
    }
    w.now();
    for i in 0..17_000 {
        fs::remove_file(src.join(format!("j{i}"))).unwrap();
    }
    settle();
    let started = w.now();
    let e = run("b.c", "E");
    w.arm(e.facts.as_ref().unwrap(), started);
    let started_a = w.now();
    let a = run("a.c", "A");
    assert_eq!(under_root(&root, &a), ["src/a.c", "src/f.h"]);
    write(&root, "src/f.h", "#include \"g.h\"\n");
    write(&root, "src/g.h", "int g;\n");
    let b = run("a.c", "B");
    assert_eq!(under_root(&root, &b), ["src/a.c", "src/f.h", "src/g.h"]);
    let facts = a.facts.as_ref().unwrap();
    let (plan, holds) = w.arm(facts, started_a);
    assert!(
        !(plan.usable && holds && w.unchanged(&plan, facts, started_a)),
        "the analysis of the first f.h would be served again"
    );
    settle();
    let d = run("a.c", "D");
    assert_eq!(under_root(&root, &d), ["src/a.c", "src/f.h", "src/g.h"]);
}

/// The files of the closure of `cmd` run in `cwd`, relative to `root`.
fn files_in(server: &IncludeServer, root: &Path, cwd: &Path, cmd: &str) -> Vec<String> {
    let closure = server.closure(cwd.to_str().unwrap(), &words(cmd)).unwrap();
    under_root(root, &closure)
}

/// A name's kept answer (`FsCache.names`) must not be older than the stamp its directory
/// is recorded with: here the directory is `stat`ed afresh after a header was made in it
/// during the request, before that header's notice was read. The search remembered from
/// that request is keyed on the new stamp, so later requests would reuse a stale one.
#[test]
fn a_name_cache_answer_older_than_the_directory_stamp_is_remembered() {
    let (_dir, root, caches) = watched_tree(&[
        ("src/a.c", "#include <b.h>\n"),
        ("inc1/.keep", ""),
        ("inc2/b.h", "int two;\n"),
    ]);
    let w = caches.watcher.as_ref().unwrap();
    let src = root.join("src");
    let cwd = src.to_str().unwrap();
    let argv = |d: &str| words(&format!("gcc -D{d} -I../inc1 -I../inc2 -c a.c"));
    let run = |d: &str| {
        let cmd = cmdline::parse(&argv(d)).unwrap();
        analyze(&cmd, cwd, &caches, Duration::from_secs(30))
            .unwrap()
            .0
    };
    // R1: watches inc1.
    let s = w.now();
    let c = run("A");
    assert_eq!(under_root(&root, &c), ["src/a.c", "inc2/b.h"]);
    w.arm(c.facts.as_ref().unwrap(), s);
    // R2: a build's object in inc1 makes it stat inc1 afresh and lstat inc1/b.h: the
    // name cache now holds (absent, batch of R2).
    write(&root, "inc1/x1.o", "");
    settle();
    let s = w.now();
    let c = run("B");
    assert_eq!(under_root(&root, &c), ["src/a.c", "inc2/b.h"]);
    w.arm(c.facts.as_ref().unwrap(), s);
    // R3: another object, read as a notice at the request's start; the header is made
    // after that, well before the analysis looks (> TOO_NEW).
    write(&root, "inc1/x2.o", "");
    settle();
    let s = w.now();
    write(&root, "inc1/b.h", "int one;\n");
    std::thread::sleep(Duration::from_millis(300));
    let c3 = run("C");
    let f3 = c3.facts.as_ref().unwrap();
    w.arm(f3, s);
    // R4, a new command, begun well after the header was made (its notice is read now).
    std::thread::sleep(Duration::from_millis(300));
    w.now();
    let c4 = run("D");
    let want = gcc_deps(&src, &argv("D"), &c4.system_dirs);
    assert!(want.iter().any(|f| f.ends_with("inc1/b.h")), "{want:?}");
    // The server's path for R3's command asked again: notices say inc1/b.h changed,
    // so it re-arms and checks by stat (Facts::hold), which keeps the stale analysis.
    w.now();
    w.arm(f3, u64::MAX);
    let holds_by_stat = f3.hold(&caches.fs);
    assert!(
        !(under_root(&root, &c3).contains(&"inc2/b.h".to_string()) && holds_by_stat),
        "R3's stale analysis holds by stat"
    );
    assert_eq!(under_root(&root, &c4), ["src/a.c", "inc1/b.h"], "R4 stale");
}

/// A sticky directory on a `..` path: `t/../x.h`, `t` a sticky world-writable
/// directory (checked by identity, not watched). `t` is moved elsewhere and a symlink to
/// it put in its place: same identity, but `t/..` is now another directory.
#[test]
fn a_sticky_directory_on_a_dotdot_path_replaced_by_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write(&root, "p/a.c", "#include \"t/../x.h\"\n");
    write(&root, "p/x.h", "int p;\n");
    write(&root, "elsewhere/x.h", "#include \"y.h\"\n");
    write(&root, "elsewhere/y.h", "int y;\n");
    fs::create_dir(root.join("p/t")).unwrap();
    fs::set_permissions(root.join("p/t"), fs::Permissions::from_mode(0o1777)).unwrap();
    settle();
    let server = IncludeServer::new().unwrap();
    let p = root.join("p");
    let cmd = |d: &str| format!("gcc -D{d} -c a.c");
    for n in 0..3 {
        assert_eq!(
            files_in(&server, &root, &p, &cmd(&format!("V{n}"))),
            ["p/a.c", "p/x.h"]
        );
    }
    fs::rename(root.join("p/t"), root.join("elsewhere/t")).unwrap();
    std::os::unix::fs::symlink(root.join("elsewhere/t"), root.join("p/t")).unwrap();
    settle();
    let want = gcc_deps(&p, &words(&cmd("NEW")), &[]);
    assert!(
        want.iter().any(|f| f.ends_with("elsewhere/y.h")),
        "{want:?}"
    );
    assert_eq!(
        files_in(&server, &root, &p, &cmd("NEW")),
        ["p/a.c", "elsewhere/x.h", "elsewhere/y.h"]
    );
    server.clean_up();
}

/// A header file with a second (hard) name is watched as a file; its name is then
/// replaced by a directory, or by a symbolic link to one. The file's watch is not removed
/// (the unlink only changes its link count), and must not be taken for the directory's:
/// a name looked up there by a command whose analysis is not kept, then made, must be
/// found by the next commands (the kept one too).
#[test]
fn a_file_path_made_a_directory_or_a_link_vouches_for_no_names_in_it() {
    for link in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        write(&root, "src/a.c", "#include \"x\"\n");
        write(&root, "src/x", "int x;\n");
        write(&root, "inc/x/y.h", "int inc;\n");
        fs::create_dir(root.join("other")).unwrap();
        fs::create_dir(root.join("elsewhere")).unwrap();
        fs::hard_link(root.join("src/x"), root.join("other/xl")).unwrap();
        settle();
        let server = IncludeServer::new().unwrap();
        let src = root.join("src");
        assert_eq!(
            files_in(&server, &root, &src, "gcc -DA -I../inc -c a.c"),
            ["src/a.c", "src/x"]
        );
        fs::remove_file(root.join("src/x")).unwrap();
        let made = match link {
            true => {
                std::os::unix::fs::symlink("../elsewhere", root.join("src/x")).unwrap();
                "elsewhere/y.h"
            }
            false => {
                fs::create_dir(root.join("src/x")).unwrap();
                "src/x/y.h"
            }
        };
        settle();
        // A command whose analysis is not kept (its source is too new): nothing watches
        // the new directory.
        write(&root, "src/b.c", "#include \"x/y.h\"\n");
        assert_eq!(
            files_in(&server, &root, &src, "gcc -DB -I../inc -c b.c"),
            ["src/b.c", "inc/x/y.h"]
        );
        write(&root, made, "int src;\n");
        settle();
        let argv = words("gcc -DC -I../inc -c b.c");
        let want = gcc_deps(&src, &argv, &[]);
        assert!(want.iter().any(|f| f.ends_with(made)), "{want:?}");
        for _ in 0..2 {
            assert_eq!(
                files_in(&server, &root, &src, "gcc -DC -I../inc -c b.c"),
                ["src/b.c", made],
                "link: {link}"
            );
        }
        server.clean_up();
    }
}
