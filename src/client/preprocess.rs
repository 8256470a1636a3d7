//! The client's side of preprocessing: the local preprocessor runs into a memory file while
//! the client connects, or a `.i` input is read as it is; directives-only text that lost a
//! pragma the compile needs is made again in full (see `toolchain::pragmas`).
//!
//! Choosing what to preprocess with which options is `cmdline`'s; sending the text, `remote`'s.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::process::{Child, Command, Stdio};

use super::remote::RemoteError;
use crate::cmdline::Compile;
use crate::exitcode;
use crate::farm::pick::Farm;
use crate::logging::argv_to_string;
use crate::toolchain::pragmas;

/// Starts the local preprocessor with its output in a memory file, or reads an already
/// preprocessed input file. A memory file rather than a pipe: through a pipe, every 4 KiB
/// that cpp writes wakes us to read it, which costs more CPU than the rest of the job
/// (distcc 3.4 has cpp write a temporary file). A directives-only preprocessor's
/// diagnostics are held back too, until it succeeds: if it fails, the source is compiled
/// here and only the local compiler's diagnostics are shown.
pub(super) enum Source {
    Cpp {
        child: Child,
        out: File,
        held: Option<File>,
        /// Directives-only: a failure sends the source to the local compiler, which
        /// shows its own messages (else the held messages are shown before failing).
        retry_locally: bool,
    },
    Ready(Vec<u8>),
}

/// A file in memory, for what a child writes and we read once it has finished.
fn memory_file(name: &std::ffi::CStr) -> io::Result<File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    Ok(File::from(memfd_create(name, MFdFlags::MFD_CLOEXEC)?))
}

/// With `hold`, the preprocessor's messages are held too (and shown when it finishes),
/// so that the cache knows whether there were any.
pub(super) fn start_source(job: &Compile, hold: bool) -> Result<Source, RemoteError> {
    if job.preprocessed {
        return std::fs::read(job.input())
            .map(Source::Ready)
            .map_err(RemoteError::ReadInput);
    }
    let cpp = job.cpp_argv();
    log::debug!("running preprocessor: {}", argv_to_string(&cpp));
    // Looked into only when the verbose log would say it: this is every job's path.
    if log::log_enabled!(log::Level::Debug)
        && crate::toolchain::names::is_clang(&job.argv()[0])
        && crate::cmdline::debug_info(job.argv())
    {
        // clang has no directives-only mode, and text from `-frewrite-includes` cannot
        // carry the files' checksums that its DWARF 5 line table records: only the files
        // themselves, sent to our daemon (`pump::files_wanted`), give a local object.
        log::debug!(
            "clang -g sent as preprocessed text: the object's debug information will differ \
             from a local compile's (macro columns, file checksums); only the files it reads, \
             sent to distcc-rs's daemon, keep it identical, and they go neither to distcc \
             3.4's daemon nor over SSH, nor when the include analysis does not cover the job"
        );
    }
    let out = memory_file(c"distcc-cpp-output").map_err(RemoteError::CppStart)?;
    let held = if job.directives_only || hold {
        Some(memory_file(c"distcc-cpp-stderr").map_err(RemoteError::CppStart)?)
    } else {
        None
    };
    let stderr = match &held {
        Some(file) => Stdio::from(file.try_clone().map_err(RemoteError::CppStart)?),
        None => Stdio::inherit(),
    };
    Command::new(&cpp[0])
        .args(&cpp[1..])
        // Inherited: a preprocessor given a file does not read it, and a stdin of its own
        // would cost an open and a close per job.
        .stdout(out.try_clone().map_err(RemoteError::CppStart)?)
        .stderr(stderr)
        .spawn()
        .map(|child| Source::Cpp {
            child,
            out,
            held,
            retry_locally: job.directives_only,
        })
        .map_err(RemoteError::CppStart)
}

/// The preprocessed text: read from a `.i` file, or in the preprocessor's memory file (with
/// its length).
pub(super) enum Text {
    Bytes(Vec<u8>),
    Memory(File, u64),
}

impl Text {
    pub(super) fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Text::Bytes(data) => Ok(data),
            Text::Memory(file, len) => crate::read_first(&file, len),
        }
    }
}

impl Source {
    /// The preprocessed text, once the preprocessor has finished successfully, and the
    /// messages it held back (`None`: they were not held, but shown as they came).
    pub(super) fn finish(self) -> Result<(Text, Option<Vec<u8>>), RemoteError> {
        match self {
            Source::Ready(data) => Ok((Text::Bytes(data), Some(Vec::new()))),
            Source::Cpp {
                mut child,
                out,
                held,
                retry_locally,
            } => {
                let status = child.wait().map_err(RemoteError::CppStart)?;
                if !status.success() {
                    let code = exitcode::from_status(status);
                    if retry_locally {
                        return Err(RemoteError::DirectivesOnly(code));
                    }
                    if let Some(file) = held {
                        let _ =
                            io::stderr().write_all(&crate::read_whole(&file).unwrap_or_default());
                    }
                    return Err(RemoteError::Cpp(code));
                }
                let diagnostics = match held {
                    Some(file) => Some(crate::read_whole(&file).map_err(RemoteError::CppStart)?),
                    None => None,
                };
                let len = out.metadata().map_err(RemoteError::CppStart)?.len();
                Ok((Text::Memory(out, len), diagnostics))
            }
        }
    }

    /// Stops a preprocessor whose output is no longer wanted.
    pub(super) fn abandon(self) {
        if let Source::Cpp { mut child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A preprocessed text and the command line that compiles it.
pub(super) type Prepared<'a> = (Cow<'a, Compile>, Text);

/// A job's text: its preprocessor still running, or already done while we waited.
pub(super) enum Pending<'a> {
    Running(Source),
    Ready(Prepared<'a>),
}

/// While every host slot is busy: preprocesses now, if one of this machine's preprocessor
/// slots is free at once, so that the host slot, once ours, does not wait for our
/// preprocessor (distcc 3.4 takes the host slot first and holds it while cpp runs). The
/// preprocessor slot is never waited for here and is let go before we wait for a host:
/// waiting for one while holding the other could deadlock with clients that hold a host
/// slot and wait for a preprocessor slot.
pub(super) fn preprocess_early<'a>(
    job: &'a Compile,
    farm: &Farm,
    fixed_date: bool,
) -> Option<Result<Prepared<'a>, RemoteError>> {
    let _slot = farm.free_cpp_slot()?;
    log::debug!("every host slot is busy: preprocessing while waiting for one");
    Some(start_source(job, false).and_then(|source| preprocessed(job, source, fixed_date)))
}

/// The text to send and the command line that compiles it. Directives-only text whose
/// preprocessor dropped a pragma that the compile needs (see `pragmas`) is thrown away and
/// the source preprocessed again in full; otherwise the preprocessor's held diagnostics
/// are shown now. With `fixed_date` (`SOURCE_DATE_EPOCH` set), directives-only text that
/// uses the time macros is not sent (see [`pragmas::uses_time_macros`]).
pub(super) fn preprocessed(
    job: &Compile,
    source: Source,
    fixed_date: bool,
) -> Result<Prepared<'_>, RemoteError> {
    preprocessed_quietly(job, source, fixed_date).map(|(prepared, _)| prepared)
}

/// [`preprocessed`], and whether the preprocessor is known to have said nothing (its
/// messages were held, and there were none).
pub(super) fn preprocessed_quietly(
    job: &Compile,
    source: Source,
    fixed_date: bool,
) -> Result<(Prepared<'_>, bool), RemoteError> {
    let (text, diagnostics) = source.finish()?;
    if job.directives_only && fixed_date {
        let timed = match &text {
            Text::Memory(file, len) => {
                with_mapped(file, *len, pragmas::uses_time_macros).map_err(RemoteError::CppStart)?
            }
            Text::Bytes(data) => pragmas::uses_time_macros(data),
        };
        if timed {
            return Err(RemoteError::TimeMacros);
        }
    }
    if job.directives_only {
        let lost = match &text {
            Text::Memory(file, len) => {
                with_mapped(file, *len, pragmas::loses_pragma).map_err(RemoteError::CppStart)?
            }
            Text::Bytes(data) => pragmas::loses_pragma(data),
        };
        if lost {
            log::info!(
                "{} uses a #pragma that gcc drops from -fdirectives-only text; \
                 preprocessing it in full",
                job.input()
            );
            let mut full = job.clone();
            full.directives_only = false;
            let (text, _) = start_source(&full, false)?.finish()?;
            return Ok(((Cow::Owned(full), text), false));
        }
    }
    let quiet = diagnostics.as_ref().is_some_and(|d| d.is_empty());
    let _ = io::stderr().write_all(&diagnostics.unwrap_or_default());
    Ok(((Cow::Borrowed(job), text), quiet))
}

/// Runs `f` on the first `len` bytes of `file`, mapped into memory rather than copied.
pub(super) fn with_mapped<T>(file: &File, len: u64, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
    let Some(size) = usize::try_from(len)
        .ok()
        .and_then(std::num::NonZeroUsize::new)
    else {
        return Ok(f(&[]));
    };
    // SAFETY: a fresh read-only shared mapping of a memory file that only we hold and no
    // one writes any more; it is unmapped below and the slice does not outlive it.
    let addr = unsafe {
        mmap(
            None,
            size,
            ProtFlags::PROT_READ,
            MapFlags::MAP_SHARED,
            file,
            0,
        )
    }?;
    // SAFETY: the mapping is `size` readable bytes, alive until the munmap below.
    let out = f(unsafe { std::slice::from_raw_parts(addr.as_ptr().cast::<u8>(), size.get()) });
    // SAFETY: the mapping made above, no longer borrowed.
    let _ = unsafe { munmap(addr, size.get()) };
    Ok(out)
}
