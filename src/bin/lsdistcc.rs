//! `lsdistcc [OPTIONS] [FORMAT | HOST...]`: lists the distcc daemons that answer.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(distcc_rs::farm::lsdistcc::main(&args));
}
