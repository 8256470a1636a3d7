//! Feeds arbitrary bytes to the daemon's request reader and the classifier behind it: any
//! input must give a request or a typed error, never a panic or an allocation beyond the
//! limits.
#![no_main]

use distcc_rs::cmdline;
use distcc_rs::wire::{Limits, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_file: 1 << 20,
        ..Limits::default()
    };
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
