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
    std::process::exit(client::main(std::env::args_os().collect()));
}
