//! `distcc`: distribute one compile to a volunteer host, or run it here.
//!
//! It runs once per compile, so it starts without std's runtime set-up (`no_main`): that
//! reads `/proc/self/maps` and installs an alternate signal stack, about 5% of a small
//! job's client CPU. [`client::bare_start`] does the part of it that we need.

// Built as a test (`cargo test --all-targets`), the harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    use distcc_rs::client::{self, config::Config};
    use distcc_rs::logging;
    use log::LevelFilter;

    client::bare_start();
    distcc_rs::farm::zeroconf::serve_if_asked();
    let cfg = Config::from_env();
    let (sink, level, failed) = match &cfg.log {
        Some(path) => match logging::open_file(path) {
            Ok(sink) => (sink, LevelFilter::Info, None),
            Err(e) => (logging::Sink::Stderr, LevelFilter::Warn, Some((path, e))),
        },
        None => (logging::Sink::Stderr, LevelFilter::Warn, None),
    };
    let level = if cfg.verbose {
        LevelFilter::Debug
    } else {
        level
    };
    logging::init("distcc", sink, level);
    if let Some((path, e)) = failed {
        // distcc 3.4's words, which scripts look for.
        log::error!("failed to open logfile {}: {e}", path.display());
    }
    std::process::exit(client::main(std::env::args_os().collect(), &cfg));
}
