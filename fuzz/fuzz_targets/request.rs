//! Feeds arbitrary bytes to the daemon's request reader and the classifier behind it: any
//! input must give a request or a typed error, never a panic or an allocation beyond the
//! limits. Protocol 3 requests are read to their last file, and their command line and
//! dependency text go through the daemon's rewriting (without touching files).
#![no_main]

use distcc_rs::cmdline;
use distcc_rs::daemon::jobroot;
use distcc_rs::wire::{read_request_head, Limits, PumpFiles, Received, Request, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
                let _ = jobroot::client_deps(body, "/tmp");
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
