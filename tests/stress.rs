//! The daemon under a storm: 500 connections at once, mixing valid compiles, garbage,
//! truncated requests, absurd lengths, clients that vanish in every phase, clients that
//! send a byte a second, and compilers that hang or crash. Every valid client must be
//! served, and afterwards the daemon must be back to its idle processes, threads, file
//! descriptors and temporary files. The figures are printed.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use distcc_rs::wire::{self, Limits, Reply, Version};

fn request(compiler: &str, doti: &[u8], version: Version) -> Vec<u8> {
    request_bytes(&[compiler, "-O2", "-c", "s.c", "-o", "s.o"], doti, version)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Valid,
    Garbage,
    Truncated,
    Oversize,
    Vanish,
    Slow,
    HangingCompiler,
    CrashingCompiler,
}

/// What each kind of client did; `true` when the outcome was the expected one.
fn client(kind: Kind, i: usize, port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(120)));
    let source = format!("int f{i}(int x) {{ return x * {i}; }}\n");
    let valid = request("gcc", source.as_bytes(), Version::Lzo);
    match kind {
        Kind::Valid => {
            if s.write_all(&valid).is_err() {
                return false;
            }
            let answer = read_all_for(&mut s, 120);
            Reply::read(&mut &answer[..], Version::Lzo, &Limits::default())
                .is_ok_and(|r| r.status == 0 && r.output.starts_with(b"\x7fELF"))
        }
        Kind::Garbage => {
            let junk: Vec<u8> = (0..512).map(|j| ((i * 31 + j * 7) % 256) as u8).collect();
            let _ = s.write_all(&junk);
            let _ = s.shutdown(Shutdown::Write);
            read_all_for(&mut s, 120).is_empty()
        }
        Kind::Truncated => {
            let cut = 1 + i % (valid.len() - 1);
            let _ = s.write_all(&valid[..cut]);
            let _ = s.shutdown(Shutdown::Write);
            read_all_for(&mut s, 120).is_empty()
        }
        Kind::Oversize => {
            let mut v = wire::header(wire::DIST, 1).to_vec();
            let token = [wire::ARGC, wire::ARGV][i % 2];
            if token == wire::ARGV {
                v.extend_from_slice(&wire::header(wire::ARGC, 1));
            }
            v.extend_from_slice(&wire::header(token, u32::MAX));
            let _ = s.write_all(&v);
            let _ = s.shutdown(Shutdown::Write);
            read_all_for(&mut s, 120).is_empty()
        }
        Kind::Vanish => {
            let _ = s.write_all(&valid[..(i * 13) % valid.len()]);
            drop(s);
            true
        }
        Kind::Slow => {
            // One byte a second: the daemon must cut this client off.
            for b in valid.iter().take(30) {
                if s.write_all(&[*b]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            read_all_for(&mut s, 5).is_empty()
        }
        Kind::HangingCompiler | Kind::CrashingCompiler => {
            let compiler = if kind == Kind::HangingCompiler {
                "x86_64-hang-gcc"
            } else {
                "x86_64-crash-gcc"
            };
            if s.write_all(&request(compiler, source.as_bytes(), Version::Plain))
                .is_err()
            {
                return false;
            }
            let answer = read_all_for(&mut s, 120);
            Reply::read(&mut &answer[..], Version::Plain, &Limits::default())
                .is_ok_and(|r| r.status != 0 && r.output.is_empty())
        }
    }
}

fn read_all_for(s: &mut TcpStream, secs: u64) -> Vec<u8> {
    use std::io::Read;
    let _ = s.set_read_timeout(Some(Duration::from_secs(secs)));
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

fn job_dirs(tmp: &std::path::Path) -> usize {
    job_leftovers(tmp).len()
}

#[test]
fn five_hundred_connections_at_once() {
    // Compilers that misbehave, whitelisted and found through DISTCCD_PATH.
    let (tools, whitelist) = misbehaving_compilers();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let d = Daemon::start_with_env(
        OUR_DISTCCD,
        &[
            "--allow",
            "127.0.0.1",
            "--jobs",
            "4",
            "--job-lifetime",
            "2",
            "--whitelist-dir",
            whitelist.path().to_str().unwrap(),
        ],
        &[
            ("DISTCCD_PATH", &path),
            ("DISTCC_IO_TIMEOUT", "3"),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ],
    );
    let pid = d.pid();
    let idle_now = || (fd_count(pid), thread_count(pid), child_count(pid));
    d.wait_for_workers(4);
    assert!(wait_for(Duration::from_secs(10), || child_count(pid) == 0));
    let idle = idle_now();

    let mut kinds = Vec::new();
    for (kind, n) in [
        (Kind::Valid, 200),
        (Kind::Garbage, 80),
        (Kind::Truncated, 80),
        (Kind::Oversize, 40),
        (Kind::Vanish, 80),
        (Kind::Slow, 8),
        (Kind::HangingCompiler, 6),
        (Kind::CrashingCompiler, 6),
    ] {
        kinds.extend(std::iter::repeat_n(kind, n));
    }
    assert_eq!(kinds.len(), 500);
    // Interleave the kinds so that valid clients arrive throughout the storm.
    kinds.sort_by_key(|k| *k as usize);
    let mut order: Vec<(usize, Kind)> = kinds.into_iter().enumerate().collect();
    order.sort_by_key(|(i, _)| (i * 7919) % 500);

    let start = Instant::now();
    let port = d.port;
    let handles: Vec<_> = order
        .into_iter()
        .map(|(i, kind)| (kind, std::thread::spawn(move || client(kind, i, port))))
        .collect();
    let mut tally: std::collections::BTreeMap<Kind, (usize, usize)> = Default::default();
    for (kind, h) in handles {
        let ok = h.join().unwrap_or(false);
        let e = tally.entry(kind).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
    }
    let elapsed = start.elapsed();

    assert!(
        wait_for(Duration::from_secs(30), || idle_now() == idle
            && job_dirs(tmp.path()) == 0),
        "not back to idle: {idle:?} then {:?}, {} temp entries",
        idle_now(),
        job_dirs(tmp.path())
    );
    println!("storm of 500 connections in {elapsed:?} against a --jobs 4 daemon:");
    for (kind, (n, ok)) in &tally {
        println!("  {kind:?}: {n} clients, {ok} as expected");
    }
    println!(
        "  daemon fds/threads/children idle {idle:?}, after {:?}; temp entries after: {}",
        idle_now(),
        job_dirs(tmp.path())
    );
    for (kind, (n, ok)) in &tally {
        assert_eq!(n, ok, "{kind:?}: {ok} of {n} as expected");
    }
    // No misbehaving compiler outlived its job.
    let survivors = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("sleep\x00600"))
        .count();
    assert_eq!(survivors, 0, "hanging compilers survived");
    assert!(d.log_text().contains("COMPILE_TIMEOUT"));
}
