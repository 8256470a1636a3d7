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
    use distcc_rs::{client, logging};
    use log::LevelFilter;

    client::bare_start();
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
