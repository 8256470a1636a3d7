//! What a daemon's worker may be made to hold: a compressed source expands only within a
//! fixed ratio of what was received (see `wire::MAX_SOURCE_EXPANSION`), while real
//! preprocessed sources, compressed as distcc's protocol 2 sends them, still compile.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::process::Command;

use common::*;
use distcc_rs::wire::{Limits, Reply, Version};

/// Sends `argv` with `doti` in protocol 2 and returns the reply, if the daemon gave one.
fn lzo_request(port: u16, argv: &[&str], doti: &[u8]) -> Option<Reply> {
    let bytes = request_bytes(argv, doti, Version::Lzo);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&bytes).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    Reply::read(&mut &answer[..], Version::Lzo, &Limits::default()).ok()
}

#[test]
fn real_sources_compile_and_zeros_beyond_the_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.cc"),
        "#include <iostream>\n#include <vector>\n#include <map>\n#include <string>\n\
         int main() { std::map<std::string, std::vector<int>> m; m[\"a\"].push_back(1);\n\
         std::cout << m.size() << '\\n'; }\n",
    )
    .unwrap();
    let pre = Command::new("g++")
        .args(["-E", "big.cc", "-o", "big.ii"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(pre.success());
    let text = std::fs::read(dir.path().join("big.ii")).unwrap();
    assert!(text.len() > 500_000, "{} bytes", text.len());

    let d = Daemon::ours(&[]);
    let reply = lzo_request(
        d.port,
        &["g++", "-O0", "-c", "big.ii", "-o", "big.o"],
        &text,
    )
    .expect("a real source gets a reply");
    assert_eq!(
        reply.status,
        0,
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert!(reply.output.starts_with(b"\x7fELF"));

    // 4 MiB of zeros: some 18 KiB on the wire, beyond 64 times that plus 1 MiB.
    let zeros = vec![0u8; 4 << 20];
    assert!(lzo_request(d.port, &["gcc", "-c", "z.i", "-o", "z.o"], &zeros).is_none());
    assert!(
        wait_for(std::time::Duration::from_secs(10), || d
            .log_text()
            .contains("expands beyond")),
        "{}",
        d.log_text()
    );
    assert_eq!(d.wait_compiled(1), 1, "{}", d.log_text());
}
