//! Protocol 3 (pump mode) against our daemon: requests built from a real small project the
//! way distcc 3.4's client sends them (files LZO-compressed under their realpaths, links,
//! forcing files, a system-directory link), objects and dependency files compared with a
//! local gcc's byte for byte, and hostile requests refused without a write outside the
//! job's root.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use distcc_rs::wire::{self, lzo, write_pump_request, Content, PumpFile, Reply, Version};

/// A small project: `src/main.c` includes a header of `src/inc` (by `-Iinc`), one of an
/// absolute `-I` directory, one through a link, and `<stdio.h>`; `-include` names another.
struct Project {
    _dir: tempfile::TempDir,
    root: String,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir
            .path()
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let w = |p: &str, text: &str| {
            let path = format!("{root}/{p}");
            std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        w(
            "src/main.c",
            "#include <stdio.h>\n#include \"local.h\"\n#include \"abs.h\"\n#include \"link.h\"\n\
             #include \"inc/../inc/local.h\"\n\
             int main(void) { printf(\"%s %d %d\\n\", __FILE__, LOCAL + ABS, REAL); return 0; }\n\
             const char *where(void) { return WHERE; }\n",
        );
        w("src/inc/local.h", "#pragma once\n#define LOCAL 1\n");
        w("absinc/abs.h", "#define ABS 2\n#define WHERE __FILE__\n");
        w("absinc/real.h", "#define REAL 3\n");
        w("absinc/forced.h", "static int forced = 4;\n");
        std::os::unix::fs::symlink(
            format!("{root}/absinc/real.h"),
            format!("{root}/src/inc/link.h"),
        )
        .unwrap();
        Project { _dir: dir, root }
    }

    fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["gcc", "-c", "main.c", "-Iinc", "-I"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(format!("{}/absinc", self.root));
        v.extend([
            "-include".to_string(),
            format!("{}/absinc/forced.h", self.root),
        ]);
        v.extend(["-o", "main.o", "-MD"].map(String::from));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// The files distcc 3.4's include server would name, as its client sends them.
    fn files(&self) -> Vec<PumpFile> {
        let r = &self.root;
        let file = |p: &str| PumpFile {
            name: format!("{r}/{p}"),
            content: Content::File(lzo::compress(&std::fs::read(format!("{r}/{p}")).unwrap())),
        };
        let mut files: Vec<PumpFile> = ["src/main.c", "src/inc/local.h", "absinc/abs.h"]
            .into_iter()
            .chain(["absinc/real.h", "absinc/forced.h"])
            .map(file)
            .collect();
        files.push(PumpFile {
            name: "/usr/include".into(),
            content: Content::Link(format!("{}usr/include", "../".repeat(22))),
        });
        files.push(PumpFile {
            name: format!("{r}/src/inc/link.h"),
            content: Content::Link(format!("{r}/absinc/real.h")),
        });
        files.push(PumpFile {
            name: format!("{r}/src/inc/forcing_technique_271828"),
            content: Content::File(Vec::new()),
        });
        files
    }

    /// gcc's own object and dependency file, compiled in `src`.
    fn local(&self, argv: &[String]) -> (Vec<u8>, Vec<u8>) {
        let src = format!("{}/src", self.root);
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = std::fs::read(format!("{src}/main.o")).unwrap();
        let d = std::fs::read(format!("{src}/main.d")).unwrap();
        std::fs::remove_file(format!("{src}/main.o")).unwrap();
        std::fs::remove_file(format!("{src}/main.d")).unwrap();
        (o, d)
    }
}

/// Our daemon with `TMPDIR` at `tmp`, and its whitelist (kept alive by the caller); with
/// `cache`, its `--cache-dir`.
fn daemon(tmp: &Path, cache: Option<&Path>) -> (Daemon, tempfile::TempDir) {
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let wl = whitelist_dir(&["gcc"]);
    let wl_s = wl.path().to_str().unwrap().to_string();
    let mut args = vec![
        "--allow",
        "127.0.0.1",
        "--jobs",
        "2",
        "--whitelist-dir",
        &wl_s,
    ];
    if let Some(c) = cache {
        args.extend(["--cache-dir", c.to_str().unwrap()]);
    }
    let d = Daemon::start_with_env(OUR_DISTCCD, &args, &[("TMPDIR", tmp.to_str().unwrap())]);
    (d, wl)
}

fn exchange(d: &Daemon, cwd: &str, argv: &[String], files: &[PumpFile]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let mut bytes = Vec::new();
    write_pump_request(&mut bytes, cwd, argv, files).unwrap();
    let _ = s.write_all(&bytes);
    read_all(&mut s)
}

/// With a cache on the daemon too: each request is asked twice, the second answered
/// from the cache with what a local compile gives.
#[test]
fn pump_objects_and_deps_equal_a_local_compile() {
    let p = Project::new();
    let cache = tempfile::tempdir().unwrap();
    for (cache, rounds) in [(None, 1), (Some(cache.path()), 2)] {
        pump_requests_give_a_local_compile(&p, cache, rounds);
    }
}

fn pump_requests_give_a_local_compile(p: &Project, cache: Option<&Path>, rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _wl) = daemon(tmp.path(), cache);
    for extra in [
        &[][..],
        &["-g"],
        &["-g", "-gdwarf-4"],
        &["-g", "-gdwarf-5", "-O2"],
    ] {
        let argv = p.argv(extra);
        let (object, deps) = p.local(&argv);
        for _ in 0..rounds {
            let answer = exchange(&d, &format!("{}/src", p.root), &argv, &p.files());
            let reply = Reply::read(&mut &answer[..], Version::Pump, &Default::default())
                .unwrap_or_else(|e| panic!("{extra:?}: {e}\n{}", d.log_text()));
            assert_eq!(
                reply.status,
                0,
                "{}",
                String::from_utf8_lossy(&reply.stderr)
            );
            assert!(
                reply.output == object,
                "{extra:?}: object differs from a local compile"
            );
            assert_eq!(
                String::from_utf8_lossy(reply.deps.as_deref().unwrap()),
                String::from_utf8_lossy(&deps),
                "{extra:?}"
            );
            let left = job_leftovers(tmp.path());
            assert!(left.is_empty(), "{left:?}");
        }
    }
    if cache.is_some() {
        assert_eq!(d.log_text().matches("answered from the cache").count(), 4);
    }
}

/// With a cache on the daemon too, whose held files are written only on a miss.
#[test]
fn hostile_pump_requests_are_refused_inside_the_root() {
    let cache = tempfile::tempdir().unwrap();
    for cache in [None, Some(cache.path())] {
        hostile_pump_requests_are_refused(cache);
    }
}

fn hostile_pump_requests_are_refused(cache: Option<&Path>) {
    let p = Project::new();
    let tmp = tempfile::tempdir().unwrap();
    let (d, _wl) = daemon(tmp.path(), cache);
    let canary = format!("{}/canary", p.root);
    std::fs::create_dir(&canary).unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pwned = format!("{canary}/pwned");
    let cwd = format!("{}/src", p.root);
    let argv = p.argv(&[]);
    let file = |name: String| PumpFile {
        name,
        content: Content::File(lzo::compress(b"pwned\n")),
    };
    let link = |name: &str, target: String| PumpFile {
        name: name.into(),
        content: Content::Link(target),
    };
    let up = "../".repeat(40);
    let hostile: Vec<(&str, Vec<PumpFile>)> = vec![
        (
            "NAME with ..",
            vec![file(format!("/a{}{pwned}", "/..".repeat(40)))],
        ),
        (
            "absolute link out",
            vec![
                link("/w/esc", format!("/{up}{}", &canary[1..])),
                file("/w/esc/pwned".into()),
            ],
        ),
        (
            "relative link out",
            vec![
                link("/w/rel", format!("{up}{}", &canary[1..])),
                file("/w/rel/pwned".into()),
            ],
        ),
        (
            "write through a system-directory link",
            vec![
                link(&canary, format!("{up}{}", &canary[1..])),
                file(pwned.clone()),
            ],
        ),
        (
            "file then directory",
            vec![file("/w/f".into()), file("/w/f/g".into())],
        ),
        (
            "directory then file",
            vec![file("/w/f/g".into()), file("/w/f".into())],
        ),
        (
            "a name twice",
            vec![file("/w/f".into()), file("/w/f".into())],
        ),
    ];
    for (what, bad) in hostile {
        let mut files = p.files();
        files.extend(bad);
        let answer = exchange(&d, &cwd, &argv, &files);
        let why = refusal(&answer, Version::Pump);
        assert!(
            why.is_some(),
            "{what}: not refused: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            !Path::new(&pwned).exists(),
            "{what}: wrote outside the root"
        );
        assert!(
            job_leftovers(tmp.path()).is_empty(),
            "{what}: {:?}",
            job_leftovers(tmp.path())
        );
    }
    // Over the limits: a count of 2^32-1 files, a body of 2 GiB announced.
    let mut head = Vec::new();
    write_pump_request(&mut head, &cwd, &argv, &[]).unwrap();
    head.truncate(head.len() - 12);
    for (what, tail) in [
        ("huge NFIL", wire::header(wire::NFIL, u32::MAX).to_vec()),
        ("oversize FILE", {
            let mut t = wire::header(wire::NFIL, 1).to_vec();
            t.extend_from_slice(&wire::header(wire::NAME, 2));
            t.extend_from_slice(b"/x");
            t.extend_from_slice(&wire::header(wire::FILE, 0x7fff_ffff));
            t
        }),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        s.write_all(&head).unwrap();
        s.write_all(&tail).unwrap();
        let answer = read_all(&mut s);
        assert!(refusal(&answer, Version::Pump).is_some(), "{what}");
        assert!(
            job_leftovers(tmp.path()).is_empty(),
            "{what}: {:?}",
            job_leftovers(tmp.path())
        );
    }
    // Still serving.
    let answer = exchange(&d, &cwd, &argv, &p.files());
    let reply = Reply::read(&mut &answer[..], Version::Pump, &Default::default()).unwrap();
    assert_eq!(
        reply.status,
        0,
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert!(job_leftovers(tmp.path()).is_empty());
}
