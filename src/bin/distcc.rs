//! `distcc`: distribute one compile to a volunteer host, or run it here.

use distcc_rs::{client, logging};
use log::LevelFilter;

fn main() {
    let verbose = std::env::var("DISTCC_VERBOSE").as_deref() == Ok("1");
    let (sink, level) = match std::env::var_os("DISTCC_LOG").filter(|p| !p.is_empty()) {
        Some(path) => match logging::open_file(path.as_ref()) {
            Ok(sink) => (sink, LevelFilter::Info),
            Err(e) => {
                eprintln!("distcc: failed to open DISTCC_LOG {:?}: {e}", path);
                (logging::Sink::Stderr, LevelFilter::Warn)
            }
        },
        None => (logging::Sink::Stderr, LevelFilter::Warn),
    };
    let level = if verbose { LevelFilter::Debug } else { level };
    logging::init("distcc", sink, level);
    let argv: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(argv) => argv,
        Err(bad) => {
            // Rare, and gcc handles it: run the command here exactly as given.
            log::warn!("argument {bad:?} is not UTF-8; running locally");
            let mut args = std::env::args_os().skip(1);
            let Some(prog) = args.next() else {
                std::process::exit(distcc_rs::exitcode::BAD_ARGUMENTS)
            };
            let status = std::process::Command::new(prog).args(args).status();
            std::process::exit(status.map_or(
                distcc_rs::exitcode::COMPILER_MISSING,
                distcc_rs::exitcode::from_status,
            ));
        }
    };
    std::process::exit(client::main(argv));
}
