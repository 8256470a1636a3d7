//! `distccmon-text [DELAY]`: shows the distcc jobs running on this machine.

fn main() {
    distcc_rs::farm::zeroconf::serve_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(distcc_rs::farm::state::monitor_main(&args));
}
