//! Links the `distcc` client with libgcc's unwinder from `libgcc_eh.a`, as gcc's
//! `-static-libgcc` does, instead of loading `libgcc_s.so.1` at every start.
//!
//! The client is started once per compile. Loading libgcc_s costs it page faults,
//! relocations and the library's CPU-feature probe (`__cpu_indicator_init`, whose `cpuid`
//! instructions trap on virtual machines): 8% of a small job's client CPU on the
//! development machine. Rust's std only needs the unwinder for panics, which work the same
//! with a static copy. Where the C compiler has no `libgcc_eh.a`, or when cross-compiling,
//! nothing changes.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !gnu_linux || target != host {
        return;
    }
    // rustc links through `cc`; it names the archive it would use, or echoes the bare name
    // when it has none.
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let Ok(out) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return;
    }
    // Whole: the arguments come after std's `-lgcc_s`, so only members already in the link
    // would otherwise be taken; with every member in, `--as-needed` drops libgcc_s.
    for arg in [
        "-Wl,--whole-archive",
        &path.to_string_lossy(),
        "-Wl,--no-whole-archive",
    ] {
        println!("cargo:rustc-link-arg-bin=distcc={arg}");
    }
}
