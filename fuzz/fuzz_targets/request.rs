//! Feeds arbitrary bytes to the daemon's request reader and the classifier behind it: any
//! input must give a request or a typed error, never a panic or an allocation beyond the
//! limits. Protocol 3 requests are read to their last file, and their command line and
//! dependency text go through the daemon's rewriting (without touching files). The TLS
//! handshake bytes of either end, and the key lists, must give a connection or an error.
#![no_main]

use distcc_rs::cmdline;
use distcc_rs::daemon::jobroot;
use distcc_rs::wire::{read_request_head, Limits, PumpFiles, Received, Request, Version};
use distcc_rs::net::keys::{self, KeyPair};
use distcc_rs::net::tls;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;

/// A connection whose peer sends `data` and swallows what it is sent.
struct Peer<'a>(&'a [u8]);

impl std::io::Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A key for both ends, made once.
fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("distcc-fuzz-key-{}", std::process::id()));
        let pair = KeyPair::generate(&path, "fuzz").expect("a key");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(keys::public_file(&path));
        pair
    })
}

/// The handshake bytes: what a TLS client sends the daemon (a connection starting with
/// 0x16), and what a host sends our client after its hello (`TLSC` and the bytes); then
/// the lists a user writes by hand.
fn tls_and_keys(data: &[u8]) {
    if data.first() == Some(&tls::HANDSHAKE) {
        let config = tls::server_config(key()).expect("a server config");
        if let Ok(mut stream) = tls::accept(config, Peer(data)) {
            let _ = tls::peer_key(&stream.conn);
            let _ = std::io::Read::read(&mut stream, &mut [0; 64]);
        }
    } else if let Some(rest) = data.strip_prefix(b"TLSC") {
        let check = tls::HostKeyCheck::new(Vec::new());
        let config = tls::client_config(key(), check).expect("a client config");
        let _ = tls::connect(config, "host", Peer(rest), Duration::from_secs(1));
    } else if let Ok(text) = std::str::from_utf8(data) {
        let _ = keys::AuthorizedKeys::parse(text);
        let known = keys::KnownHosts::parse(text, std::path::Path::new("fuzz"));
        let _ = known.keys_of("host:3632");
    }
}

fuzz_target!(|data: &[u8]| {
    tls_and_keys(data);
    let limits = Limits {
        max_file: 1 << 20,
        max_files: 1000,
        max_files_bytes: 4 << 20,
        ..Limits::default()
    };
    if data.starts_with(b"DIST00000003") {
        let mut r = data;
        let Ok(head) = read_request_head(&mut r, &limits) else {
            return;
        };
        assert_eq!(head.version, Version::Pump);
        let _ = cmdline::policy::check_options(&jobroot::for_policy(&head.argv));
        if let Ok(job) = cmdline::parse_received(&head.argv) {
            let _ = jobroot::pump_argv(job.argv(), "/tmp/distccd_x", "/o.o", "/o.d");
        }
        let Ok(mut files) = PumpFiles::start(&mut r, &limits) else {
            return;
        };
        let mut total = 0;
        while let Ok(Some(file)) = files.next(&mut r, &limits) {
            if let Received::File(body) = &file.content {
                assert!(body.len() <= limits.max_file);
                total += body.len();
                // As gcc wraps a dependency file and as clang does.
                let _ = jobroot::client_deps(body, "/tmp", false);
                let _ = jobroot::client_deps(body, "/tmp", true);
            }
        }
        assert!(total as u64 <= limits.max_files_bytes);
        return;
    }
    if let Ok(req) = Request::read(&mut &data[..], &limits) {
        assert!(req.doti.len() <= limits.max_file);
        // What the daemon does with it, then what a client would.
        let _ = cmdline::policy::check_options(&req.argv);
        if let Ok(job) = cmdline::parse_received(&req.argv) {
            let _ = job.with_files("in.i", "out.o");
        }
        let directives = cmdline::DirectivesOnly::WithDebugInfo;
        if let cmdline::Decision::Remote(job) = cmdline::classify(&req.argv, directives) {
            let _ = job.server_argv();
            let _ = job.cpp_argv();
        }
    }
});
