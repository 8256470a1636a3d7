//! Compiling here: the command as the user gave it, with inherited standard streams, in one
//! of this machine's compile slots (`--localslots`), shown to the monitor as on `localhost`.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use super::Progress;
use crate::cache::manifest::{now_ns, Ident};
use crate::exitcode;
use crate::farm::lock;
use crate::farm::pick::Farm;
use crate::farm::state::Phase;
use crate::logging::{argv_to_string, strerror};
use crate::wire::Reply;

/// Runs `argv` here with inherited stdio and returns its exit code.
pub fn run_local<S: AsRef<OsStr>>(argv: &[S]) -> i32 {
    match run(argv) {
        Ok(status) => exitcode::from_status(status),
        Err(code) => code,
    }
}

/// Runs `argv` here with inherited stdio: how it ended, or distcc's exit code when it could
/// not start.
fn run<S: AsRef<OsStr>>(argv: &[S]) -> Result<ExitStatus, i32> {
    started(argv, |c| c.status())
}

/// Runs `argv` here as `how` runs a command; distcc's exit code when it could not start.
fn started<S: AsRef<OsStr>, T>(
    argv: &[S],
    how: impl FnOnce(&mut Command) -> io::Result<T>,
) -> Result<T, i32> {
    let shown: Vec<_> = argv.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    log::debug!("exec on localhost: {}", argv_to_string(&shown));
    let done = how(Command::new(&argv[0]).args(&argv[1..]));
    Err(match done {
        Ok(s) => return Ok(s),
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
            log::error!("failed to exec {}: {}", shown[0], strerror(&e));
            exitcode::COMPILER_MISSING
        }
    })
}

/// Says how the compile of `input` on `host` ended, in distcc 3.4's words, which build-log
/// readers look for ("compile x.c on host failed"): an error when it failed, a note when
/// it succeeded. Returns the exit code: the compiler's, or 128 + the signal that ended it.
pub(super) fn critique(wait_status: u32, input: &str, host: &str) -> i32 {
    let w = exitcode::WaitStatus::decode(wait_status);
    if w.signal != 0 {
        // SAFETY: strsignal returns a pointer to a static or thread-local description,
        // read at once.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(w.signal as i32)) };
        let core = if w.core { " (core dumped)" } else { "" };
        log::error!(
            "compile {input} on {host}: {}{core}",
            name.to_string_lossy()
        );
    } else if w.exit == 1 {
        log::error!("compile {input} on {host} failed");
    } else if w.exit != 0 {
        log::error!("compile {input} on {host} failed with exit code {}", w.exit);
    } else {
        log::info!("compile {input} on {host} completed ok");
    }
    exitcode::from_wait_status(wait_status)
}

/// Runs `argv` here, holding one of this machine's compile slots. The outcome of a compile
/// of `input` is said as a remote one's is.
pub(super) fn compile_here<S: AsRef<OsStr>>(
    argv: &[S],
    input: Option<&str>,
    farm: &Farm,
    progress: &mut Progress,
) -> i32 {
    progress.note(Phase::Blocked);
    let slot = farm.machine_slot(lock::LOCAL, farm.local_slots);
    progress.host("localhost", slot.as_ref().map_or(0, |s| s.slot), true);
    progress.note(Phase::Compile);
    compile_now(argv, input)
}

/// Runs `argv`, the compile of `input`, here in a slot already taken, with what it
/// prints held and then shown, as a remote compile's is, so that the cache can keep it.
/// Returns the exit code, and the reply with the object read back when it succeeded.
pub(super) fn compile_held(argv: &[String], input: &str, output: &str) -> (i32, Option<Reply>) {
    let started_ns = now_ns();
    let out = match started(argv, |c| c.output()) {
        Ok(out) => out,
        Err(code) => return (code, None),
    };
    super::build::show(&out.stderr, &out.stdout);
    let status = out.status.into_raw() as u32;
    let code = critique(status, input, "localhost");
    // An object the compiler did not write now (a wrapper that wrote none leaves the last
    // build's), or an empty one, is not a result to keep.
    let written = std::fs::metadata(output)
        .is_ok_and(|m| m.is_file() && m.len() > 0 && Ident::of(&m).recent(started_ns));
    let object = match std::fs::read(output) {
        Ok(object) if status == 0 && written => object,
        _ => return (code, None),
    };
    let reply = Reply {
        status,
        stderr: out.stderr,
        stdout: out.stdout,
        output: object,
        deps: None,
        from_cache: false,
        compiler: None,
        load: None,
        times: None,
    };
    (code, Some(reply))
}

/// Runs `argv` here in a slot already taken; the outcome of a compile of `input` is said
/// as a remote one's is.
pub(super) fn compile_now<S: AsRef<OsStr>>(argv: &[S], input: Option<&str>) -> i32 {
    match (run(argv), input) {
        (Ok(status), Some(input)) => critique(status.into_raw() as u32, input, "localhost"),
        (Ok(status), None) => exitcode::from_status(status),
        (Err(code), _) => code,
    }
}
