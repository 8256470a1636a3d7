//! `distccd`: the volunteer daemon that compiles jobs sent by `distcc` clients. The command
//! line goes into the daemon's configuration; everything else is `distcc_rs::daemon`'s.

use clap::Parser;
use distcc_rs::daemon::{self, Args};
use distcc_rs::exitcode;
use distcc_rs::toolchain::debuginfo;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == debuginfo::HOOK_ARG) {
        // gcc runs us as its `-wrapper` in a directives-only compile.
        std::process::exit(debuginfo::hook(&args[2..]));
    }
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                exitcode::BAD_ARGUMENTS
            } else {
                0
            });
        }
    };
    std::process::exit(daemon::main(args));
}
