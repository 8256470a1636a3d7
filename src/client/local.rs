//! Compiling here: the command as the user gave it, with inherited standard streams, in one
//! of this machine's compile slots (`--localslots`), shown to the monitor as on `localhost`.

use std::ffi::OsStr;
use std::io;
use std::process::Command;

use super::Progress;
use crate::exitcode;
use crate::farm::lock;
use crate::farm::pick::Farm;
use crate::farm::state::Phase;
use crate::logging::argv_to_string;

/// Runs `argv` here with inherited stdio and returns its exit code.
pub fn run_local<S: AsRef<OsStr>>(argv: &[S]) -> i32 {
    let shown: Vec<_> = argv.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    log::debug!("exec on localhost: {}", argv_to_string(&shown));
    let status = Command::new(&argv[0]).args(&argv[1..]).status();
    match status {
        Ok(s) => exitcode::from_status(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // distcc 3.4 crashes when `cc` is missing.
            log::error!(
                "failed to exec {}: not found on PATH; install it, or name the compiler \
                 (distcc gcc ...)",
                shown[0]
            );
            exitcode::COMPILER_MISSING
        }
        Err(e) => {
            log::error!("failed to exec {}: {e}", shown[0]);
            exitcode::COMPILER_MISSING
        }
    }
}

/// Runs `argv` here, holding one of this machine's compile slots.
pub(super) fn compile_here<S: AsRef<OsStr>>(
    argv: &[S],
    farm: &Farm,
    progress: &mut Progress,
) -> i32 {
    progress.note(Phase::Blocked);
    let slot = farm.machine_slot(lock::LOCAL, farm.local_slots);
    progress.host("localhost", slot.as_ref().map_or(0, |s| s.slot));
    progress.note(Phase::Compile);
    run_local(argv)
}
