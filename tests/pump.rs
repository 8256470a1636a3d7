//! Pump mode end to end: `pump make` with our include server, our client and our daemon
//! (and distcc 3.4 in each role it can take), objects and dependency files byte-identical
//! to a local build's, every translation unit compiled remotely. An include-server failure
//! is an error here (`DISTCC_TESTING_INCLUDE_SERVER=1`, as 3.4's own tests set it), so a
//! silent fallback to plain mode cannot pass.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

const OUR_PUMP: &str = env!("CARGO_BIN_EXE_pump");

/// Runs `make ARGS` under our `pump` in `project`, against `hosts`.
fn pump_make(
    project: &Project,
    hosts: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(project.path())
        .arg("make")
        .args(args)
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", hosts)
        .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .envs(env.iter().copied());
    output_within(&mut cmd, 300)
}

fn cc(client: &str) -> String {
    format!("CC={client} gcc")
}

/// How many jobs the daemon (started with `--verbose`) compiled in pump mode, in a job root
/// from the files sent, rather than from preprocessed text.
fn pumped(d: &Daemon) -> usize {
    d.log_text().matches(") compiling in ").count()
}

/// Runs the shell `script` under our `pump` in `project`, against daemon `d` as a pump
/// host; `strict` makes an include-server failure or a fallback an error. Checks that it
/// succeeded.
fn pump_script(project: &Project, d: &Daemon, script: &str, strict: bool) {
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(project.path())
        .args(["sh", "-c", script])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()))
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    if strict {
        cmd.env("DISTCC_TESTING_INCLUDE_SERVER", "1")
            .env("DISTCC_FALLBACK", "0");
    } else {
        cmd.env_remove("DISTCC_TESTING_INCLUDE_SERVER")
            .env_remove("DISTCC_FALLBACK");
    }
    let out = output_within(&mut cmd, 120);
    assert!(
        out.status.success(),
        "{}\ndaemon:\n{}",
        show(&out),
        d.log_text()
    );
}

/// Builds the example project with `make -j4 FLAGS` locally, then under `pump` against our
/// daemon with `hosts` (`{}` stands for the daemon), and checks that the outputs are the
/// same and that all 5 files were compiled there in pump mode.
fn pump_build_matches_local(flags: &[&str], hosts: &str) {
    let project = Project::example();
    let mut args = vec!["-j4"];
    args.extend_from_slice(flags);
    let expected = project.reference_build(&args);
    let d = Daemon::ours(&["--verbose"]);
    let hosts = hosts.replace("{}", &d.host());
    let client = cc(OUR_DISTCC);
    args.push(&client);
    let out = pump_make(&project, &hosts, &args, &[]);
    assert!(
        out.status.success(),
        "{}\ndaemon:\n{}",
        show(&out),
        d.log_text()
    );
    assert_same_outputs(&expected, &project.outputs());
    assert_eq!(d.wait_compiled(5), 5, "{}", d.log_text());
    assert_eq!(pumped(&d), 5, "{}", d.log_text());
}

#[test]
fn pump_build_of_the_example_project_is_identical_and_remote() {
    pump_build_matches_local(&[], "{},cpp,lzo");
}

#[test]
fn pump_build_with_debug_information_is_identical() {
    pump_build_matches_local(&["CFLAGS=-O2 -g -Wall"], "{},cpp,lzo");
}

/// Headers rewritten and created between two compiles of one `pump` session are shipped
/// as they are then, never as an earlier snapshot.
#[test]
fn headers_changed_during_a_pump_session_are_never_stale() {
    let project = Project::example();
    let dir = project.path();
    std::fs::write(dir.join("extra.h"), "#define EXTRA 1\n").unwrap();
    std::fs::write(
        dir.join("uses.c"),
        "#include \"extra.h\"\n#if __has_include(\"late.h\")\n#include \"late.h\"\n#endif\nint uses(void) { return EXTRA; }\n",
    )
    .unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let script = format!(
        "set -e; {client} gcc -c uses.c -o a.o; \
         printf '#define EXTRA 2\\n' > extra.h; {client} gcc -c uses.c -o b.o; \
         printf '#define LATE 3\\n' > late.h; {client} gcc -c uses.c -o c.o",
        client = OUR_DISTCC
    );
    pump_script(&project, &d, &script, true);
    // The same three states, compiled here.
    std::fs::remove_file(dir.join("late.h")).unwrap();
    std::fs::write(dir.join("extra.h"), "#define EXTRA 1\n").unwrap();
    project.gcc(&["-c", "uses.c", "-o", "ref_a.o"]);
    std::fs::write(dir.join("extra.h"), "#define EXTRA 2\n").unwrap();
    project.gcc(&["-c", "uses.c", "-o", "ref_b.o"]);
    std::fs::write(dir.join("late.h"), "#define LATE 3\n").unwrap();
    project.gcc(&["-c", "uses.c", "-o", "ref_c.o"]);
    for (ours, local) in [("a.o", "ref_a.o"), ("b.o", "ref_b.o"), ("c.o", "ref_c.o")] {
        assert_eq!(
            std::fs::read(dir.join(ours)).unwrap(),
            std::fs::read(dir.join(local)).unwrap(),
            "{ours} differs from a local compile of the same state"
        );
    }
    assert_eq!(d.wait_compiled(3), 3, "{}", d.log_text());
    assert_eq!(pumped(&d), 3, "{}", d.log_text());
}

/// A directory on the search path replaced by a link to another (as `ln -sfn` makes a
/// `current` directory point to a new version) between two compiles of one `pump`
/// session: the second is shipped through the link, as the preprocessor reads it, not
/// through the directory mirrored for the first.
#[test]
fn a_directory_replaced_by_a_link_during_a_pump_session_is_followed() {
    let project = Project::example();
    let dir = project.path();
    for (sub, v) in [("inc", 1), ("v2", 2)] {
        std::fs::create_dir(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("v.h"), format!("#define V {v}\n")).unwrap();
    }
    std::fs::write(
        dir.join("w.c"),
        "#include \"v.h\"\nint w(void) { return V; }\n",
    )
    .unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let script = format!(
        "set -e; {client} gcc -Iinc -c w.c -o a.o; rm -r inc; ln -s v2 inc; \
         {client} gcc -Iinc -c w.c -o b.o",
        client = OUR_DISTCC
    );
    pump_script(&project, &d, &script, true);
    project.gcc(&["-Iinc", "-c", "w.c", "-o", "ref_b.o"]);
    assert_eq!(
        std::fs::read(dir.join("b.o")).unwrap(),
        std::fs::read(dir.join("ref_b.o")).unwrap(),
        "the compile after the change differs from a local one"
    );
    assert_eq!(pumped(&d), 2, "{}", d.log_text());
}

/// One directory that is the project's for one command (`-I`) and the compiler's own for
/// another (`--sysroot`): the root's link to the host's directory never replaces files
/// an earlier reply named, nothing is ever written through it into the real directory,
/// and the first command is never sent without its header (which a host of a real farm
/// would lack: distcc 3.4 leaves out files under any compiler's directories). Once the
/// link is made, that command goes in plain mode.
#[test]
fn a_directory_that_is_a_system_one_for_another_command_is_never_written_through() {
    let project = Project::example();
    let dir = project.path();
    let sr = dir.join("sr");
    std::fs::create_dir_all(sr.join("usr/include")).unwrap();
    std::fs::create_dir_all(sr.join("usr/local/include")).unwrap();
    std::fs::write(sr.join("usr/include/x.h"), "#define X 1\n").unwrap();
    std::fs::write(
        dir.join("u.c"),
        "#include <x.h>\nint x(void) { return X; }\n",
    )
    .unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let inc = format!("-I{}/usr/include", sr.display());
    let sysroot = format!("--sysroot={}", sr.display());
    let script = format!(
        "set -e; {client} gcc {inc} -c u.c -o a.o; {client} gcc {sysroot} -c u.c -o b.o; \
         {client} gcc {inc} -c u.c -o c.o",
        client = OUR_DISTCC
    );
    pump_script(&project, &d, &script, false);
    project.gcc(&[&inc, "-c", "u.c", "-o", "ref_a.o"]);
    project.gcc(&[&sysroot, "-c", "u.c", "-o", "ref_b.o"]);
    for (ours, local) in [("a.o", "ref_a.o"), ("b.o", "ref_b.o"), ("c.o", "ref_a.o")] {
        assert_eq!(
            std::fs::read(dir.join(ours)).unwrap(),
            std::fs::read(dir.join(local)).unwrap(),
            "{ours} differs from a local compile"
        );
    }
    let written: Vec<_> = std::fs::read_dir(sr.join("usr/include"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, ["x.h"], "written into the real directory");
    assert_eq!(d.wait_compiled(3), 3, "{}", d.log_text());
    assert_eq!(pumped(&d), 2, "{}", d.log_text());
}

/// Interop: distcc 3.4's client with our include server and our daemon, our client with
/// 3.4's daemon, and 3.4 at both ends with our include server in the middle (3.4's own is
/// Python and fails on current Pythons). Each builds the example project as a local build
/// does, every job remote.
#[test]
fn pump_interop_with_distcc_34_each_way() {
    require_distcc_34();
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    // (client, daemon, whether the dependency files are compared too)
    for (client, daemon, deps) in [
        (DISTCC_34, Daemon::ours(&["--verbose"]), true),
        (OUR_DISTCC, Daemon::distcc_34(), true),
        // 3.4's daemon shortens the paths of the .d file it sends back without wrapping
        // its lines again where gcc would, and 3.4's client writes it as it is.
        (DISTCC_34, Daemon::distcc_34(), false),
    ] {
        let hosts = format!("{},cpp,lzo", daemon.host());
        let out = pump_make(&project, &hosts, &["-j4", &cc(client)], &[]);
        assert!(
            out.status.success(),
            "{client}: {}\ndaemon:\n{}",
            show(&out),
            daemon.log_text()
        );
        let compared = |v: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            let kept = v.iter().filter(|(n, _)| deps || n.ends_with(".o"));
            kept.cloned().collect()
        };
        assert_same_outputs(&compared(&expected), &compared(&project.outputs()));
        assert_eq!(
            daemon.wait_compiled(5),
            5,
            "{client}: {}",
            daemon.log_text()
        );
        let clean = project.make(&["clean"], &[]);
        assert!(clean.status.success());
    }
}

/// `distcc --scan-includes` lists what the include server would have the job send, in
/// distcc 3.4's words: 3.4's client and ours print the same lines from our include server.
#[test]
fn scan_includes_prints_what_distcc_34_prints() {
    require_distcc_34();
    let project = Project::example();
    let scan = |client: &str| {
        let mut cmd = Command::new(OUR_PUMP);
        cmd.current_dir(project.path())
            .args([
                client,
                "--scan-includes",
                "gcc",
                "-c",
                "main.c",
                "-o",
                "main.o",
            ])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", "127.0.0.1:1,cpp,lzo");
        let out = output_within(&mut cmd, 60);
        assert!(out.status.success(), "{client}: {}", show(&out));
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("__________"))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let ours = scan(OUR_DISTCC);
    assert!(ours.iter().any(|l| l.starts_with("FILE ")), "{ours:?}");
    assert!(ours.iter().any(|l| l.starts_with("SYSTEMDIR ")), "{ours:?}");
    assert_eq!(ours, scan(DISTCC_34));
}

/// A first host that cannot be reached: the job goes to the next one, still in pump mode
/// (distcc 3.4 crashes on such a list).
#[test]
fn an_unreachable_pump_host_gives_way_to_the_next() {
    pump_build_matches_local(&[], "127.0.0.1:1,cpp,lzo {},cpp,lzo");
}

/// A header that does not exist: gcc's own error, once, and no discrepancy (the compile
/// fails here the same way).
#[test]
fn a_missing_header_gives_gccs_error_once() {
    let project = Project::example();
    std::fs::write(
        project.path().join("broken.c"),
        "#include \"missing.h\"\nint x;\n",
    )
    .unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let hosts = format!("{},cpp,lzo", d.host());
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(project.path())
        .args([OUR_DISTCC, "gcc", "-c", "broken.c"])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", &hosts)
        .env("DISTCC_TESTING_INCLUDE_SERVER", "1");
    let out = output_within(&mut cmd, 60);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        said.matches("missing.h: No such file or directory").count(),
        1,
        "{said}"
    );
    assert!(!said.contains("discrepanc"), "{said}");
    assert_eq!(pumped(&d), 1, "{}", d.log_text());
}

/// `-g` objects stay a local build's where plain mode cannot keep them so: headers whose
/// pragmas gcc drops from `-fdirectives-only` text (`#pragma GCC diagnostic`, `#pragma omp`
/// with `-fopenmp`, `#pragma pack`), which plain mode must preprocess in full, moving the
/// DWARF columns. In pump mode the host compiles the source itself.
#[test]
fn debug_objects_with_pragmas_are_identical_in_pump_mode() {
    let project = Project::example();
    let dir = project.path();
    std::fs::write(
        dir.join("pragmas.h"),
        "#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Wunused-variable\"\n\
         #pragma pack(push, 1)\nstruct packed { char c; int i; };\n#pragma pack(pop)\n\
         #define SQUARE(x) ((x) * (x))\n#pragma GCC diagnostic pop\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("omp.c"),
        "#include \"pragmas.h\"\nint sum(int n) {\n  int s = 0;\n#pragma omp parallel for reduction(+:s)\n  \
         for (int i = 0; i < n; i++) s += SQUARE(i);\n  return s + (int)sizeof(struct packed);\n}\n",
    )
    .unwrap();
    let args = ["gcc", "-g", "-O2", "-fopenmp", "-c", "omp.c"];
    project.gcc(&args[1..]);
    let local = std::fs::read(dir.join("omp.o")).unwrap();
    std::fs::remove_file(dir.join("omp.o")).unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(dir)
        .arg(OUR_DISTCC)
        .args(args)
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()))
        .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
        .env("DISTCC_FALLBACK", "0");
    let out = output_within(&mut cmd, 60);
    assert!(
        out.status.success(),
        "{}\ndaemon:\n{}",
        show(&out),
        d.log_text()
    );
    assert_eq!(pumped(&d), 1, "{}", d.log_text());
    assert!(
        std::fs::read(dir.join("omp.o")).unwrap() == local,
        "omp.o differs from a local compile's"
    );
}

/// An include server that does not answer: plain mode on the same host, as in distcc 3.4;
/// an error with `DISTCC_TESTING_INCLUDE_SERVER=1`; and, unlike 3.4, no fallback with
/// `DISTCC_FALLBACK=0`.
#[test]
fn an_include_server_failure_falls_back_to_plain_mode_unless_told_not_to() {
    let project = Project::example();
    let d = Daemon::ours(&["--verbose"]);
    let gone = project.path().join("no-such-socket");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(OUR_DISTCC);
        cmd.current_dir(project.path())
            .args(["gcc", "-c", "fib.c"])
            .env("DISTCC_DIR", project.distcc_dir())
            .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()))
            .env("INCLUDE_SERVER_PORT", &gone)
            .envs(env.iter().copied());
        output_within(&mut cmd, 60)
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("preprocessing locally"),
        "{}",
        show(&out)
    );
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
    assert_eq!(pumped(&d), 0, "{}", d.log_text());
    let out = run(&[("DISTCC_TESTING_INCLUDE_SERVER", "1")]);
    assert_eq!(out.status.code(), Some(100), "{}", show(&out));
    let out = run(&[("DISTCC_FALLBACK", "0")]);
    assert_eq!(out.status.code(), Some(116), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fallbacks are disabled"),
        "{}",
        show(&out)
    );
    assert_eq!(d.compiled_ok(), 1, "{}", d.log_text());
}

/// `DEPENDENCIES_OUTPUT` and `SUNPRO_DEPENDENCIES` have gcc append to the file they name,
/// which no dependency file from a host can stand for: under `pump` such a job goes in
/// plain mode, and the file is what a local compile leaves (distcc 3.4 would overwrite it
/// with the host's file, without its system headers for `SUNPRO_DEPENDENCIES`).
#[test]
fn dependency_variables_keep_their_job_in_plain_mode_with_the_local_file() {
    let project = Project::example();
    let dir = project.path();
    let d = Daemon::ours(&["--verbose"]);
    let mut compiled = 0;
    for var in ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"] {
        let value = "all.deps fib-target";
        let compile = |via: &[&str]| {
            std::fs::write(dir.join("all.deps"), "kept: before\n").unwrap();
            let mut argv: Vec<&str> = via.to_vec();
            argv.extend(["gcc", "-O2", "-c", "fib.c", "-o", "fib.o"]);
            let mut cmd = Command::new(argv[0]);
            cmd.current_dir(dir)
                .args(&argv[1..])
                .env(var, value)
                .env("DISTCC_DIR", project.distcc_dir())
                .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()))
                .env("DISTCC_FALLBACK", "0")
                .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
                .env_remove("DISTCC_VERBOSE")
                .env_remove("DISTCC_LOG");
            let out = output_within(&mut cmd, 120);
            assert!(out.status.success(), "{var}: {}", show(&out));
            (
                std::fs::read(dir.join("fib.o")).unwrap(),
                std::fs::read_to_string(dir.join("all.deps")).unwrap(),
            )
        };
        let local = compile(&[]);
        assert!(
            local.1.starts_with("kept: before\nfib-target:"),
            "{}",
            local.1
        );
        let ours = compile(&[OUR_PUMP, OUR_DISTCC]);
        assert_eq!(ours, local, "{var}");
        compiled += 1;
        assert_eq!(d.wait_compiled(compiled), compiled, "{}", d.log_text());
    }
    assert_eq!(pumped(&d), 0, "{}", d.log_text());
}

/// A job that fails on the host in pump mode and then compiles here is a discrepancy,
/// counted beside the include server's socket; after `DISTCC_MAX_DISCREPANCY` of them the
/// rest of the build goes in plain mode, and `pump` says so at the end, as in distcc 3.4.
/// The include server's answer is given with 3.4's test hook, `INCLUDE_SERVER_STUB`,
/// leaving out the header the source needs.
#[test]
fn discrepancies_demote_the_build_to_plain_mode() {
    let project = Project::example();
    let dir = project.path();
    std::fs::write(dir.join("extra.h"), "#define EXTRA 1\n").unwrap();
    std::fs::write(
        dir.join("uses.c"),
        "#include \"extra.h\"\nint uses(void) { return EXTRA; }\n",
    )
    .unwrap();
    // A mirror tree of 3 components holding only the source.
    let mirror = tempfile::tempdir().unwrap();
    let root = mirror.path().join("root");
    assert_eq!(root.components().count(), 4, "{}", root.display()); // "/" and 3
    let source = dir.canonicalize().unwrap().join("uses.c");
    let mirrored = format!("{}{}.lzo", root.display(), source.display());
    std::fs::create_dir_all(std::path::Path::new(&mirrored).parent().unwrap()).unwrap();
    let text = std::fs::read(&source).unwrap();
    std::fs::write(&mirrored, distcc_rs::wire::lzo::compress(&text)).unwrap();
    let d = Daemon::ours(&["--verbose"]);
    let script = format!("{OUR_DISTCC} gcc -c uses.c -o a.o && {OUR_DISTCC} gcc -c uses.c -o b.o");
    let mut cmd = Command::new(OUR_PUMP);
    cmd.current_dir(dir)
        .args(["sh", "-c", &script])
        .env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()))
        .env("INCLUDE_SERVER_STUB", &mirrored)
        .env("DISTCC_MAX_DISCREPANCY", "1")
        // The failure backs the host off; the second job must still go there.
        .env("DISTCC_BACKOFF_PERIOD", "0");
    let out = output_within(&mut cmd, 60);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(said.contains("now using plain distcc"), "{said}");
    assert!(
        said.contains("Distcc-pump was demoted to plain mode"),
        "{said}"
    );
    // The first job was pumped and failed there; the second went in plain mode.
    assert_eq!(pumped(&d), 1, "{}", d.log_text());
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
}

/// One compile through our client to `d`, without a local fallback: under `pump` (an
/// include-server failure an error), or in plain mode. The caller adds the command.
fn one_compile(project: &Project, d: &Daemon, pump: bool) -> Command {
    let mut c = match pump {
        true => {
            let mut c = Command::new(OUR_PUMP);
            c.arg(OUR_DISTCC)
                .env("DISTCC_TESTING_INCLUDE_SERVER", "1")
                .env("DISTCC_HOSTS", format!("{},cpp,lzo", d.host()));
            c
        }
        false => {
            let mut c = Command::new(OUR_DISTCC);
            c.env("DISTCC_HOSTS", d.host());
            c
        }
    };
    c.env("DISTCC_DIR", project.distcc_dir())
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    c
}

/// One compile of `args` (whose object is `object`, in `cwd`), here and then through our
/// client to `d` (see [`one_compile`]), both in `cwd` with `PWD` set to `pwd` when given,
/// as a shell that went there through a link sets it. Both must succeed.
struct HereAndThere {
    what: String,
    local: std::process::Output,
    remote: std::process::Output,
    expected: Vec<u8>,
    got: Vec<u8>,
}

fn here_and_there(
    project: &Project,
    d: &Daemon,
    pump: bool,
    args: &[&str],
    (cwd, pwd): (&std::path::Path, Option<&std::path::Path>),
    object: &str,
) -> HereAndThere {
    let what = format!("{args:?} (pump: {pump})");
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .current_dir(cwd)
        .envs(pwd.map(|p| ("PWD", p)));
    let local = output_within(&mut cmd, 60);
    assert!(local.status.success(), "{what}: {}", show(&local));
    let expected = std::fs::read(cwd.join(object)).unwrap();
    std::fs::remove_file(cwd.join(object)).unwrap();
    let mut cmd = one_compile(project, d, pump);
    cmd.args(args)
        .current_dir(cwd)
        .envs(pwd.map(|p| ("PWD", p)));
    let remote = output_within(&mut cmd, 120);
    assert!(
        remote.status.success(),
        "{what}: {}\n{}",
        show(&remote),
        d.log_text()
    );
    let got = std::fs::read(cwd.join(object)).unwrap();
    HereAndThere {
        what,
        local,
        remote,
        expected,
        got,
    }
}

/// A host compiling in a job root never shows it: warnings about files named by absolute
/// paths (as CMake names every source) name the client's files, in pump mode with gcc and
/// in plain mode with clang `-g` alike; and a sanitizer, which records such names where no
/// prefix map reaches, sends its job as text, so that its object is still a local one's
/// (but for clang's DWARF 5 checksums, which text does not carry).
#[test]
fn absolute_paths_never_show_the_hosts_job_directory() {
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("inc")).unwrap();
    std::fs::write(
        dir.join("inc/noisy.h"),
        "#warning \"a noisy header\"\nstatic inline int shl(int x, int n) { return x << n; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("noisy.c"),
        "#include \"noisy.h\"\nint f(int a, int b) { int unused; return shl(a, b) / b; }\n",
    )
    .unwrap();
    let (src, inc) = (
        dir.join("noisy.c").display().to_string(),
        format!("-I{}/inc", dir.display()),
    );
    let d = Daemon::ours(&["--verbose"]);
    let cases: [(&str, bool, &[&str]); 4] = [
        ("gcc", true, &["-g"]),
        ("clang", false, &["-g"]),
        ("gcc", true, &["-g", "-fsanitize=address,undefined"]),
        ("clang", false, &["-g", "-fsanitize=address,undefined"]),
    ];
    for (n, (compiler, pump, flags)) in cases.into_iter().enumerate() {
        let args: Vec<&str> = [compiler, "-Wall", "-c", &src, &inc, "-o", "noisy.o"]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        let r = here_and_there(&project, &d, pump, &args, (&dir, None), "noisy.o");
        let what = r.what;
        assert_eq!(d.wait_compiled(n + 1), n + 1, "{what}: {}", d.log_text());
        let said = String::from_utf8_lossy(&r.remote.stderr);
        assert!(said.contains("a noisy header"), "{what}: {said}");
        assert!(!said.contains("distccd_"), "{what}: {said}");
        assert!(
            memchr::memmem::find(&r.got, b"distccd_").is_none(),
            "{what}: the object names the job directory"
        );
        // clang's text has no DWARF 5 checksums: that one case is not identical (and says
        // so in the verbose log).
        if n != 3 {
            assert!(
                r.got == r.expected,
                "{what}: the object differs from a local compile's"
            );
        }
        // Compiled from the files themselves, the warnings are the local ones exactly.
        if n < 2 {
            assert_eq!(said, String::from_utf8_lossy(&r.local.stderr), "{what}");
        }
    }
    // The sanitized jobs went as text.
    assert_eq!(pumped(&d), 2, "{}", d.log_text());
}

/// Headers reached by names other than their real paths: through an absolute `-I` that
/// is a symlink (whose files the include server marks with a `#line`, which our daemon
/// drops, so that clang's DWARF 5 checksums stay), and a `#pragma once` header included
/// again by a second name, which the host must find under that name too, though it does
/// not read it again. In one pump session, a header found through the symlinked directory
/// and then through the real one is named by the second compile as it found it (the
/// mirror's copy keeps the first name in its `#line`).
#[test]
fn headers_reached_by_other_names_compile_as_they_do_here() {
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "real/inc/once.h",
        "#pragma once\nstatic int once_value = 1;\n",
    );
    write(
        "real/inc/guarded.h",
        "#ifndef GUARDED_H\n#define GUARDED_H\nstatic int guarded_value = 2;\n#endif\n",
    );
    write(
        "names.c",
        "#include \"once.h\"\n#include \"alias/once.h\"\n#include <guarded.h>\n\
         #include \"real/inc/guarded.h\"\n\
         int f(void) { return once_value + guarded_value + __LINE__; }\n\
         const char *g(void) { return __FILE__; }\n",
    );
    std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
    std::os::unix::fs::symlink("real/inc", dir.join("alias")).unwrap();
    let src = dir.join("names.c").display().to_string();
    let inc = format!("-I{}/linked/inc", dir.display());
    let d = Daemon::ours(&["--verbose"]);
    let cases = [("clang", false), ("clang", true), ("gcc", true)];
    for (n, (compiler, pump)) in cases.into_iter().enumerate() {
        let args = [compiler, "-g", "-c", &src, &inc, "-o", "names.o"];
        let r = here_and_there(&project, &d, pump, &args, (&dir, None), "names.o");
        assert_eq!(pumped(&d), n + 1, "{}: {}", r.what, d.log_text());
        assert!(r.got == r.expected, "{}: the object differs", r.what);
    }
    let real = format!("-I{}/real/inc", dir.display());
    let local = output_within(
        Command::new("gcc")
            .args(["-g", "-c", &src, &real, "-o", "names.o"])
            .current_dir(&dir),
        60,
    );
    assert!(local.status.success(), "{}", show(&local));
    let expected = std::fs::read(dir.join("names.o")).unwrap();
    let session = format!(
        "{OUR_DISTCC} gcc -g -c {src} {inc} -o first.o && {OUR_DISTCC} gcc -g -c {src} {real} -o names.o"
    );
    // One session: `pump sh -c ...`, with the settings of `one_compile`.
    let mut cmd = Command::new(OUR_PUMP);
    cmd.args(["sh", "-c", &session]).current_dir(&dir).envs(
        one_compile(&project, &d, true)
            .get_envs()
            .filter_map(|(k, v)| Some((k, v?))),
    );
    let out = output_within(&mut cmd, 120);
    assert!(out.status.success(), "{}\n{}", show(&out), d.log_text());
    assert!(
        std::fs::read(dir.join("names.o")).unwrap() == expected,
        "the second compile of the session names the first one's path"
    );
}

/// A working directory reached through a symlink is named as the compiler here names it
/// (`$PWD`, in `DW_AT_comp_dir`): the client sends that name, and the host follows the
/// mirrored link to it, even to a directory no file was sent to (a build directory).
/// distcc 3.4's daemon is given the physical directory.
#[test]
fn a_working_directory_reached_through_a_symlink_keeps_its_name() {
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("real/build")).unwrap();
    std::fs::create_dir_all(dir.join("real/src")).unwrap();
    std::fs::write(dir.join("real/src/h.h"), "#define H 1\n").unwrap();
    std::fs::write(
        dir.join("real/src/s.c"),
        "#include \"h.h\"\nint f(void) { return H; }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("real", dir.join("linked")).unwrap();
    let (physical, logical) = (dir.join("real/build"), dir.join("linked/build"));
    let d = Daemon::ours(&["--verbose"]);
    let cases = [("clang", false), ("clang", true), ("gcc", true)];
    for (n, (compiler, pump)) in cases.into_iter().enumerate() {
        let args = [compiler, "-g", "-c", "../src/s.c", "-o", "s.o"];
        let r = here_and_there(
            &project,
            &d,
            pump,
            &args,
            (&physical, Some(&logical)),
            "s.o",
        );
        assert!(memchr::memmem::find(&r.expected, b"/linked/build").is_some());
        assert_eq!(pumped(&d), n + 1, "{}: {}", r.what, d.log_text());
        assert!(r.got == r.expected, "{}: the object differs", r.what);
    }
    // As `PWD` spells it, final and doubled slashes too; one with `..` (which no host
    // takes) is replaced by the physical directory, and the job still goes.
    let spelled =
        |pwd: &str| std::path::PathBuf::from(pwd.replace("DIR", &dir.display().to_string()));
    for (n, pwd) in [
        "DIR/linked/build/",
        "DIR/linked//build",
        "DIR/linked/../linked/build",
    ]
    .into_iter()
    .enumerate()
    {
        let pwd = spelled(pwd);
        let args = ["clang", "-g", "-c", "../src/s.c", "-o", "s.o"];
        let r = here_and_there(&project, &d, false, &args, (&physical, Some(&pwd)), "s.o");
        assert_eq!(pumped(&d), cases.len() + n + 1, "{}", d.log_text());
        assert_eq!(
            r.got == r.expected,
            n < 2,
            "{} with PWD={}",
            r.what,
            pwd.display()
        );
    }
    // distcc 3.4's daemon makes the working directory before the links arrive: it is
    // given the physical one, as 3.4's client gives it, and the job compiles there.
    let theirs = Daemon::distcc_34();
    let mut cmd = one_compile(&project, &theirs, true);
    cmd.args(["gcc", "-g", "-c", "../src/s.c", "-o", "s.o"])
        .current_dir(&physical)
        .env("PWD", &logical);
    let out = output_within(&mut cmd, 120);
    assert!(
        out.status.success(),
        "{}\n{}",
        show(&out),
        theirs.log_text()
    );
    assert_eq!(theirs.wait_compiled(1), 1, "{}", theirs.log_text());
}

/// Mirror roots that processes now gone left (a client killed during its analysis, an
/// include server killed with SIGKILL) are removed by the next mirror made; a live
/// process's are not.
#[test]
fn mirror_roots_of_dead_processes_are_swept() {
    let project = Project::example();
    let tmp = tempfile::Builder::new()
        .prefix("sweep")
        .tempdir_in("/tmp")
        .unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead = tmp
        .path()
        .join(format!("tmpAbCdEfGh.include_server-{dead_pid}-1"));
    let live = tmp.path().join(format!(
        "tmpIjKlMnOp.include_server-{}-1",
        std::process::id()
    ));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d.join("padding/x")).unwrap();
    }
    let d = Daemon::ours(&["--verbose"]);
    let mut cmd = one_compile(&project, &d, true);
    cmd.args(["gcc", "-c", "fib.c", "-o", "fib.o"])
        .current_dir(project.path())
        .env("DISTCC_CLIENT_TMP", tmp.path());
    let out = output_within(&mut cmd, 60);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!dead.exists(), "a dead process's root stayed");
    assert!(live.exists(), "a live process's root went");
}

/// clang maps `__builtin_FILE()` (C++20's `std::source_location`) by `-ffile-prefix-map`
/// only when it preprocesses: such a compile goes to our daemon as its files, without
/// `-g` too, and its object and messages are a local compile's (from text, the path would
/// be unmapped and clang would warn that the option went unused).
#[test]
fn clang_macro_path_maps_hold_in_plain_mode() {
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    std::fs::write(
        dir.join("where.c"),
        "const char *here(void) { return __builtin_FILE(); }\n",
    )
    .unwrap();
    let src = dir.join("where.c").display().to_string();
    let map = format!("-ffile-prefix-map={}=.", dir.display());
    let d = Daemon::ours(&["--verbose"]);
    let args = ["clang", "-O2", "-c", &src, &map, "-o", "where.o"];
    let r = here_and_there(&project, &d, false, &args, (&dir, None), "where.o");
    assert!(r.got == r.expected, "{}: the object differs", r.what);
    assert_eq!(
        String::from_utf8_lossy(&r.remote.stderr),
        String::from_utf8_lossy(&r.local.stderr)
    );
    assert_eq!(pumped(&d), 1, "{}", d.log_text());
}

/// A host whose system headers differ from this machine's (here our daemon in a mount
/// namespace of its own, where `<stdio.h>` is a copy with another time) says so before
/// compiling, and the job goes to it as preprocessed text, which carries this machine's
/// headers: in pump mode, and for clang `-g` in plain mode (whose object is then as the
/// text makes it: not a local one's, but not one of other headers either). So does a host
/// with a header the client looked for and does not have.
#[test]
fn a_host_with_other_system_headers_gets_the_text() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes a mount namespace: run it as root"
    );
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    std::fs::write(
        dir.join("io.c"),
        "#include <stdio.h>\nint say(void) { return puts(\"hi\"); }\n",
    )
    .unwrap();
    let aside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(aside.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = aside.path().join("stdio.h");
    std::fs::copy("/usr/include/stdio.h", &copy).unwrap();
    // And a header only the host has, in a directory the client looks into.
    let local_include = aside.path().join("local-include");
    std::fs::create_dir(&local_include).unwrap();
    std::fs::write(local_include.join("only_on_host.h"), "#define ONLY 1\n").unwrap();
    std::fs::write(
        dir.join("probe.c"),
        "#if __has_include(<only_on_host.h>)\n#error the host's header was seen\n#endif\n\
         int probe;\n",
    )
    .unwrap();
    let wrapper = aside.path().join("distccd-other-headers");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --mount --propagation private sh -c \
             'mount --bind {} /usr/include/stdio.h && mount --bind {} /usr/local/include \
             && exec {OUR_DISTCCD} \"$@\"' sh \"$@\"\n",
            copy.display(),
            local_include.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let whitelist = whitelist_dir(USUAL_COMPILERS);
    let pid = aside.path().join("distccd.pid");
    let d = Daemon::start(
        wrapper.to_str().unwrap(),
        &[
            "--allow",
            "127.0.0.1",
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
            "--pid-file",
            pid.to_str().unwrap(),
            "--verbose",
        ],
    );
    for (n, (compiler, pump)) in [("gcc", true), ("clang", false)].into_iter().enumerate() {
        let args = [compiler, "-g", "-c", "io.c", "-o", "io.o"];
        let r = here_and_there(&project, &d, pump, &args, (&dir, None), "io.o");
        // Said once a build (the second job's word is in the verbose log only).
        let said = String::from_utf8_lossy(&r.remote.stderr);
        let warned = said.contains("/usr/include/stdio.h differs on this host");
        assert_eq!(warned, n == 0, "{}: {said}", r.what);
        // clang's -g text has no DWARF 5 checksums: its object is as distcc 3.4's would be.
        if compiler == "gcc" {
            assert!(r.got == r.expected, "{}: the object differs", r.what);
        }
        assert_eq!(d.wait_compiled(n + 1), n + 1, "{}", d.log_text());
    }
    // The analysis says where it found no header (here, or our include server): the
    // host that has one there gets the text too.
    for (n, (compiler, pump)) in [("clang", false), ("gcc", true)].into_iter().enumerate() {
        let args = [compiler, "-g", "-c", "probe.c", "-o", "probe.o"];
        let r = here_and_there(&project, &d, pump, &args, (&dir, None), "probe.o");
        if compiler == "gcc" {
            assert!(r.got == r.expected, "{}: the object differs", r.what);
        }
        assert_eq!(d.wait_compiled(3 + n), 3 + n, "{}", d.log_text());
    }
    let log = d.log_text();
    assert_eq!(
        log.matches("stdio.h differs on this host").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("only_on_host.h differs on this host").count(),
        2,
        "{log}"
    );
    assert_eq!(pumped(&d), 0, "{log}");
}

/// A source whose first line is a `#line` naming its own absolute path (what a generator
/// may write) keeps it: only the markers the include server put there are dropped, and
/// our client names those.
#[test]
fn a_sources_own_line_directive_is_kept() {
    let project = Project::example();
    let dir = project.path().canonicalize().unwrap();
    let own = dir.join("own.c");
    std::fs::write(
        &own,
        format!(
            "#line 1 \"{}\"\nconst char *here(void) {{ return __FILE__; }}\n#warning marked\n",
            own.display()
        ),
    )
    .unwrap();
    let d = Daemon::ours(&["--verbose"]);
    for (n, (compiler, pump)) in [("clang", false), ("gcc", true)].into_iter().enumerate() {
        let args = [compiler, "-g", "-c", "own.c", "-o", "own.o"];
        let r = here_and_there(&project, &d, pump, &args, (&dir, None), "own.o");
        assert_eq!(pumped(&d), n + 1, "{}", d.log_text());
        assert!(r.got == r.expected, "{}: the object differs", r.what);
        assert_eq!(
            String::from_utf8_lossy(&r.remote.stderr),
            String::from_utf8_lossy(&r.local.stderr),
            "{}",
            r.what
        );
    }
}
