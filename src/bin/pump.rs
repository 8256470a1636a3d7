//! `pump`: distcc 3.4's `pump` script as a program, with the include server built in
//! (`distcc_rs::include::pump`).

fn main() {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pump".into());
    let rest: Vec<_> = args.collect();
    std::process::exit(distcc_rs::include::pump::main(&program, &rest));
}
