//! The client's journey for one compiler invocation: decide local or remote, preprocess
//! locally while connecting, send the job, and reproduce the remote result exactly as a local
//! compile would have left it (object written atomically, stderr, stdout, exit status).
//! Every failure of the network or of a host turns into a local compile with one warning.
//!
//! Command-line knowledge is in `args`, the host list in `hosts`, framing in `protocol`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cmdline::{self, Compile, Decision};
use crate::env_flag;
use crate::exitcode;
use crate::farm::backoff;
use crate::farm::hosts::{self, HostSpec, Transport};
use crate::farm::lock::{self, Slot};
use crate::farm::state::{Phase, StateFile};
use crate::logging::argv_to_string;
use crate::net::{self, ConnectError, Connection};
use crate::toolchain::masquerade;
use crate::toolchain::pragmas;
use crate::toolchain::rename;
use crate::wire::{self, Limits, ProtocolError, Reply, DOTI};

/// The environment variable that marks a process as started by distcc, with the nesting
/// level, so that a compiler which is itself distcc runs locally instead of looping.
pub const SAFEGUARD: &str = "_DISTCC_SAFEGUARD";

/// Why a remote compile did not produce a result.
#[derive(Debug)]
enum RemoteError {
    Connect(ConnectError),
    Protocol(ProtocolError),
    /// The local preprocessor failed; its diagnostics are already on stderr.
    Cpp(i32),
    /// The directives-only preprocessor failed (its diagnostics held back): gcc refuses
    /// that mode for some sources, so the local compile has the last word.
    DirectivesOnly(i32),
    CppStart(io::Error),
    ReadInput(io::Error),
    Unsupported(&'static str),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Connect(e) => write!(f, "{e}"),
            RemoteError::Protocol(ProtocolError::Truncated { what: "DONE" }) => write!(
                f,
                "server provided no answer. Is the server configured to allow access from your \
                 IP address? Does the server have the compiler installed? Is the server \
                 configured to access the compiler?"
            ),
            RemoteError::Protocol(e) => write!(f, "{e}"),
            RemoteError::Cpp(code) => write!(f, "preprocessor failed with exit code {code}"),
            RemoteError::DirectivesOnly(code) => write!(
                f,
                "preprocessor failed with exit code {code} in -fdirectives-only mode"
            ),
            RemoteError::CppStart(e) => write!(f, "failed to start the preprocessor: {e}"),
            RemoteError::ReadInput(e) => write!(f, "failed to read the input file: {e}"),
            RemoteError::Unsupported(what) => write!(f, "{what} is not supported yet"),
        }
    }
}

impl From<ProtocolError> for RemoteError {
    fn from(e: ProtocolError) -> Self {
        RemoteError::Protocol(e)
    }
}

fn safeguard_level() -> u32 {
    match std::env::var(SAFEGUARD) {
        Ok(v) => v.trim().parse().unwrap_or(1),
        Err(_) => 0,
    }
}

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

/// Starts the local preprocessor with its output in a memory file, or reads an already
/// preprocessed input file. A memory file rather than a pipe: through a pipe, every 4 KiB
/// that cpp writes wakes us to read it, which costs more CPU than the rest of the job
/// (distcc 3.4 has cpp write a temporary file). A directives-only preprocessor's
/// diagnostics are held back too, until it succeeds: if it fails, the source is compiled
/// here and only the local compiler's diagnostics are shown.
enum Source {
    Cpp {
        child: Child,
        out: File,
        held: Option<File>,
    },
    Ready(Vec<u8>),
}

/// A file in memory, for what a child writes and we read once it has finished.
fn memory_file(name: &std::ffi::CStr) -> io::Result<File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    Ok(File::from(memfd_create(name, MFdFlags::MFD_CLOEXEC)?))
}

fn start_source(job: &Compile) -> Result<Source, RemoteError> {
    if job.preprocessed {
        return std::fs::read(job.input())
            .map(Source::Ready)
            .map_err(RemoteError::ReadInput);
    }
    let cpp = job.cpp_argv();
    log::debug!("running preprocessor: {}", argv_to_string(&cpp));
    let out = memory_file(c"distcc-cpp-output").map_err(RemoteError::CppStart)?;
    let held = if job.directives_only {
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
        .map(|child| Source::Cpp { child, out, held })
        .map_err(RemoteError::CppStart)
}

/// The preprocessed text: read from a `.i` file, or in the preprocessor's memory file (with
/// its length).
enum Text {
    Bytes(Vec<u8>),
    Memory(File, u64),
}

impl Text {
    fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Text::Bytes(data) => Ok(data),
            Text::Memory(file, len) => crate::read_first(&file, len),
        }
    }
}

impl Source {
    /// The preprocessed text, once the preprocessor has finished successfully, and the
    /// diagnostics it held back (empty unless directives-only).
    fn finish(self) -> Result<(Text, Vec<u8>), RemoteError> {
        match self {
            Source::Ready(data) => Ok((Text::Bytes(data), Vec::new())),
            Source::Cpp {
                mut child,
                out,
                held,
            } => {
                let status = child.wait().map_err(RemoteError::CppStart)?;
                if !status.success() {
                    return Err(match held {
                        Some(_) => RemoteError::DirectivesOnly(exitcode::from_status(status)),
                        None => RemoteError::Cpp(exitcode::from_status(status)),
                    });
                }
                let diagnostics = match held {
                    Some(file) => crate::read_whole(&file).map_err(RemoteError::CppStart)?,
                    None => Vec::new(),
                };
                let len = out.metadata().map_err(RemoteError::CppStart)?.len();
                Ok((Text::Memory(out, len), diagnostics))
            }
        }
    }

    /// Stops a preprocessor whose output is no longer wanted.
    fn abandon(self) {
        if let Source::Cpp { mut child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A preprocessed text and the command line that compiles it.
type Prepared<'a> = (Cow<'a, Compile>, Text);

/// A job's text: its preprocessor still running, or already done while we waited.
enum Pending<'a> {
    Running(Source),
    Ready(Prepared<'a>),
}

/// While every host slot is busy: preprocesses now, if one of this machine's preprocessor
/// slots is free at once, so that the host slot, once ours, does not wait for our
/// preprocessor (distcc 3.4 takes the host slot first and holds it while cpp runs). The
/// preprocessor slot is never waited for here and is let go before we wait for a host:
/// waiting for one while holding the other could deadlock with clients that hold a host
/// slot and wait for a preprocessor slot.
fn preprocess_early<'a>(
    job: &'a Compile,
    farm: &Farm,
) -> Option<Result<Prepared<'a>, RemoteError>> {
    let dir = farm.dir.as_ref()?;
    let _slot = lock::try_take_local(dir, lock::LOCAL_CPP, farm.cpp_slots).ok()??;
    log::debug!("every host slot is busy: preprocessing while waiting for one");
    Some(start_source(job).and_then(|source| preprocessed(job, source)))
}

/// The text to send and the command line that compiles it. Directives-only text whose
/// preprocessor dropped a pragma that the compile needs (see `pragmas`) is thrown away and
/// the source preprocessed again in full; otherwise the preprocessor's held diagnostics
/// are shown now.
fn preprocessed(job: &Compile, source: Source) -> Result<Prepared<'_>, RemoteError> {
    let (text, diagnostics) = source.finish()?;
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
            let (text, _) = start_source(&full)?.finish()?;
            return Ok((Cow::Owned(full), text));
        }
    }
    let _ = io::stderr().write_all(&diagnostics);
    Ok((Cow::Borrowed(job), text))
}

/// Runs `f` on the first `len` bytes of `file`, mapped into memory rather than copied.
fn with_mapped<T>(file: &File, len: u64, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
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

/// Sends the job to `host` and returns its reply. The preprocessor runs while we connect.
fn compile_remote<'a>(
    job: &'a Compile,
    host: &HostSpec,
    farm: &Farm,
    io_timeout: Duration,
    state: &mut Option<StateFile>,
    ready: Option<Prepared<'a>>,
) -> Result<Reply, RemoteError> {
    if host.transport == Transport::Local {
        return Err(RemoteError::Unsupported("sending to localhost"));
    }
    // One of this machine's preprocessor slots, held while the preprocessor runs.
    let cpp_slot = if job.preprocessed || ready.is_some() {
        None
    } else {
        farm.machine_slot(lock::LOCAL_CPP, farm.cpp_slots)
    };
    let pending = match ready {
        Some(prepared) => Pending::Ready(prepared),
        None => {
            note(state, Phase::Preprocess);
            Pending::Running(start_source(job)?)
        }
    };
    note(state, Phase::Connect);
    let connection = match &host.transport {
        Transport::Tcp { host, port } => net::connect(host, *port, io_timeout).map(Connection::Tcp),
        Transport::Ssh {
            user,
            host,
            command,
        } => net::ssh(&net::ssh_command(user.as_deref(), host, command.as_deref())),
        Transport::Local => Err(ConnectError::Connect {
            addr: "localhost".into(),
            error: io::Error::other("this machine is not reached over the network"),
        }),
    };
    let mut stream = match connection {
        Ok(s) => s,
        Err(e) => {
            if let Pending::Running(source) = pending {
                source.abandon();
            }
            return Err(RemoteError::Connect(e));
        }
    };
    let (job, text) = match pending {
        Pending::Running(source) => {
            note(state, Phase::Preprocess);
            preprocessed(job, source)?
        }
        Pending::Ready(prepared) => prepared,
    };
    drop(cpp_slot);
    note(state, Phase::Send);
    // The request goes once the text is ready, since the text decides the command line
    // (see `preprocessed`); its header then leaves in the same packet as the text's start.
    let mut argv = job.server_argv();
    rename::rewrite_for_server(&mut argv);
    log::debug!("sending to {}: {}", host.spec, argv_to_string(&argv));
    let mut head = Vec::new();
    wire::write_request_header(&mut head, host.version, &argv)?;
    let save_temps = env_flag("DISTCC_SAVE_TEMPS", false);
    match text {
        // A large text goes from the preprocessor's memory file to the socket without
        // passing through our memory (sendfile), as distcc 3.4 sends its temporary file.
        Text::Memory(file, len)
            if len > wire::SMALL_FILE as u64 && !host.version.compressed() && !save_temps =>
        {
            head.extend_from_slice(&wire::header(DOTI, wire::header_len(DOTI, len)?));
            stream
                .write_with_file(&head, &file, len)
                .map_err(ProtocolError::Io)?;
        }
        text => {
            let text = text.into_bytes().map_err(RemoteError::CppStart)?;
            if save_temps {
                save_temp(&text, job.lang.preprocessed_ext());
            }
            if text.len() <= wire::SMALL_FILE {
                wire::write_file(&mut head, DOTI, host.version, &text)?;
                stream.write_all(&head).map_err(ProtocolError::Io)?;
            } else {
                stream.write_all(&head).map_err(ProtocolError::Io)?;
                wire::write_file(&mut stream, DOTI, host.version, &text)?;
            }
        }
    }
    note(state, Phase::Compile);
    // Buffered: the reply's headers then take one read, not one each.
    let mut reply = io::BufReader::with_capacity(16 << 10, &mut stream);
    Ok(Reply::read(&mut reply, host.version, &Limits::default())?)
}

/// Keeps what is sent to the server in `$TMPDIR/distcc_XXXXXX.ext` (`DISTCC_SAVE_TEMPS=1`;
/// distcc 3.4 keeps its temporary `.i` file, which we never write otherwise).
fn save_temp(text: &[u8], ext: &str) {
    let kept = tempfile::Builder::new()
        .prefix("distcc_")
        .suffix(&format!(".{ext}"))
        .tempfile()
        .and_then(|mut f| f.write_all(text).map(|()| f))
        .and_then(|f| f.keep().map_err(|e| e.error));
    match kept {
        Ok((_, path)) => log::info!("kept the preprocessed source in {}", path.display()),
        Err(e) => log::warn!("failed to keep the preprocessed source: {e}"),
    }
}

/// Writes the result to `path` as gcc would, but safely: through a temporary file in the
/// same directory, renamed into place (exchanged with an existing object, see
/// [`exchange`]), so that `path` is either the complete result or untouched (distcc 3.4
/// writes in place). What is not a regular file (`/dev/null`, a FIFO, a
/// symlink) is written through in place, as gcc does, never replaced.
fn write_output(path: &Path, data: &[u8]) -> io::Result<()> {
    let replacing = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)?
                .write_all(data);
        }
        Ok(_) => true,
        Err(_) => false,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created with the mode a compiler creates its output with: 0666, less the umask.
    let mut tmp = tempfile::Builder::new()
        .prefix(".distcc-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    if replacing && exchange(tmp.path(), path).is_ok() {
        // The temporary name now holds the previous output; dropping it unlinks it.
        return Ok(());
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Swaps two names atomically. A rename over an existing file makes ext4 (`auto_da_alloc`)
/// and btrfs start writing the new file out at once, in the client's time: a disk write
/// per object of every rebuild, which neither gcc's assembler nor distcc 3.4 pays (both
/// unlink an old output, then create a new one). Exchanging and then unlinking keeps the
/// output whole at every moment without it. Fails where the filesystem cannot exchange;
/// the caller then renames.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> nix::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> nix::Result<()> {
    Err(nix::errno::Errno::ENOSYS)
}

/// What one invocation may use: the hosts of the list that are neither `,down` nor backed
/// off, and this machine's slots, all counted through the lock directory.
struct Farm {
    hosts: Vec<HostSpec>,
    /// Where slot locks and backoff marks live; without it nothing is locked.
    dir: Option<PathBuf>,
    /// `$DISTCC_DIR`, where the monitor's state files go.
    top: Option<PathBuf>,
    local_slots: u32,
    cpp_slots: u32,
    /// Why there is no host list, to report when a job could have been distributed.
    list_error: Option<hosts::HostsError>,
}

impl Farm {
    fn load() -> Farm {
        let (list, list_error) = match hosts::load() {
            Ok(list) => (Some(list), None),
            Err(e) => (None, Some(e)),
        };
        let top = hosts::distcc_dir();
        let dir = match top.as_deref().map(lock::lock_dir) {
            Some(Ok(dir)) => Some(dir),
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "neither DISTCC_DIR nor HOME is set".to_string(),
                };
                log::warn!("cannot use the lock directory ({why}); nothing is locked");
                None
            }
        };
        let list = list.unwrap_or_default();
        let mut farm = Farm {
            hosts: list.hosts.into_iter().filter(|h| !h.down).collect(),
            dir,
            top,
            local_slots: list.local_slots,
            cpp_slots: list.local_slots_cpp,
            list_error,
        };
        if list.randomize {
            shuffle(&mut farm.hosts);
        }
        if let (Some(dir), Some(period)) = (&farm.dir, backoff::period()) {
            farm.hosts.retain(|h| {
                let skip = backoff::is_backed_off(dir, &lock::host_key(h), period);
                if skip {
                    log::debug!("skipping {}: it failed less than {period:?} ago", h.spec);
                }
                !skip
            });
        }
        farm
    }

    /// One of this machine's slots of kind `key`, waiting while all are taken.
    fn machine_slot(&self, key: &str, n: u32) -> Option<Slot> {
        let dir = self.dir.as_ref()?;
        lock::take_local(dir, key, n)
            .map_err(|e| log::warn!("failed to lock a local slot in {}: {e}", dir.display()))
            .ok()
    }

    /// A slot on one of `hosts` if one is free now, as [`Farm::take_host`] gives it;
    /// `None` when every slot is taken.
    fn try_take_host(&self, hosts: &[HostSpec]) -> Option<(usize, Option<Slot>)> {
        let Some(dir) = &self.dir else {
            return Some((0, None));
        };
        match lock::SlotSet::open(dir, &host_owners(hosts)).and_then(|mut set| set.try_take()) {
            Ok(free) => free.map(|(i, slot)| (i, Some(slot))),
            Err(_) => Some(self.take_host(hosts)),
        }
    }

    /// Takes a slot on one of `hosts`, waiting while every slot is busy; returns the
    /// host's index. Without a lock directory the first host is used, unlocked.
    fn take_host(&self, hosts: &[HostSpec]) -> (usize, Option<Slot>) {
        let Some(dir) = &self.dir else {
            return (0, None);
        };
        match lock::SlotSet::open(dir, &host_owners(hosts)).and_then(|set| set.take()) {
            Ok((i, slot)) => {
                log::debug!("picked {} slot {}", hosts[i].spec, slot.slot);
                (i, Some(slot))
            }
            Err(e) => {
                log::warn!("failed to lock a slot in {}: {e}", dir.display());
                (0, None)
            }
        }
    }
}

/// The slot owners of `hosts`: each host's lock key and its number of slots.
fn host_owners(hosts: &[HostSpec]) -> Vec<(String, u32)> {
    hosts.iter().map(|h| (lock::host_key(h), h.limit)).collect()
}

/// Shuffles the host list for `--randomize`, differently in each process.
fn shuffle(hosts: &mut [HostSpec]) {
    let mut x = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        | 1;
    for i in (1..hosts.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hosts.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// Runs `argv` here, holding one of this machine's `--localslots` compile slots, and
/// tells the monitor when there is a job to show.
fn compile_here<S: AsRef<OsStr>>(argv: &[S], farm: &Farm, state: &mut Option<StateFile>) -> i32 {
    note(state, Phase::Blocked);
    let slot = farm.machine_slot(lock::LOCAL, farm.local_slots);
    if let Some(st) = state {
        st.set_host("localhost", slot.as_ref().map_or(0, |s| s.slot));
    }
    note(state, Phase::Compile);
    run_local(argv)
}

/// Tells the monitor which phase the job is in.
fn note(state: &mut Option<StateFile>, phase: Phase) {
    if let Some(st) = state {
        st.set(phase);
    }
}

/// The exit code after our own preprocessing failed: the preprocessor's when it ran and
/// said why; otherwise the local compile's, which reports the trouble as gcc would.
fn after_cpp_failure(
    e: RemoteError,
    job: &Compile,
    farm: &Farm,
    state: &mut Option<StateFile>,
) -> i32 {
    match e {
        RemoteError::Cpp(code) => code,
        e => {
            log::debug!("{e}; compiling locally");
            compile_here(job.argv(), farm, state)
        }
    }
}

/// Compiles a distributable job somewhere and returns the exit code. Each host is tried at
/// most once; one that fails is backed off for every client and the next is tried; when
/// none is left the job is compiled here.
fn build_somewhere(job: &Compile) -> i32 {
    let io_timeout = match net::io_timeout() {
        Ok(t) => t,
        Err(e) => {
            log::error!("{e}");
            return exitcode::BAD_ARGUMENTS;
        }
    };
    let mut farm = Farm::load();
    let mut state = farm
        .top
        .as_deref()
        .and_then(|top| StateFile::new(top, job.input()));
    if let Some(e) = &farm.list_error {
        log::warn!("{e}");
        return compile_here(job.argv(), &farm, &mut state);
    }
    let mut hosts = std::mem::take(&mut farm.hosts);
    let farm = farm;
    let mark = |host: &HostSpec| {
        if let (Some(dir), Some(_)) = (&farm.dir, backoff::period()) {
            if let Err(e) = backoff::mark(dir, &lock::host_key(host)) {
                log::warn!("failed to record the failure of {}: {e}", host.spec);
            }
        }
    };
    let mut failed_host = None;
    // Only before the first host tried, and not when the list names this machine (a job
    // compiled here needs no separate preprocessing): preprocess while every slot is busy.
    let mut early = !job.preprocessed && hosts.iter().all(|h| h.transport != Transport::Local);
    while !hosts.is_empty() {
        note(&mut state, Phase::Blocked);
        let mut ready = None;
        let free = if std::mem::take(&mut early) {
            farm.try_take_host(&hosts)
        } else {
            Some(farm.take_host(&hosts))
        };
        let (i, slot) = match free {
            Some(taken) => taken,
            None => {
                note(&mut state, Phase::Preprocess);
                match preprocess_early(job, &farm) {
                    Some(Ok(prepared)) => ready = Some(prepared),
                    Some(Err(e)) => return after_cpp_failure(e, job, &farm, &mut state),
                    None => {}
                }
                note(&mut state, Phase::Blocked);
                farm.take_host(&hosts)
            }
        };
        let host = hosts[i].clone();
        if let Some(st) = &mut state {
            st.set_host(host.name(), slot.as_ref().map_or(0, |s| s.slot));
        }
        if host.transport == Transport::Local {
            // The slot just taken is this machine's.
            note(&mut state, Phase::Compile);
            return run_local(job.argv());
        }
        match compile_remote(job, &host, &farm, io_timeout, &mut state, ready) {
            // A compiler that succeeds always writes something; an empty result means
            // the command did not do what a local one would.
            Ok(reply) if reply.status == 0 && reply.output.is_empty() => {
                log::warn!(
                    "{} returned no output for {}; compiling locally",
                    host.spec,
                    job.input()
                );
                return compile_here(job.argv(), &farm, &mut state);
            }
            Ok(reply) if reply.status == 0 => {
                if let Some(dir) = &farm.dir {
                    backoff::clear(dir, &lock::host_key(&host));
                }
                if let Err(e) = write_output(Path::new(job.output()), &reply.output) {
                    log::warn!(
                        "failed to write {}: {e}; compiling locally instead",
                        job.output()
                    );
                    return compile_here(job.argv(), &farm, &mut state);
                }
                let _ = io::stderr().write_all(&reply.stderr);
                let _ = io::stdout().write_all(&reply.stdout);
                let _ = io::stdout().flush();
                log::info!("compile {} on {} completed ok", job.input(), host.spec);
                return 0;
            }
            Ok(reply) => {
                let code = exitcode::from_wait_status(reply.status);
                log::info!(
                    "compile {} on {} failed with exit code {code}",
                    job.input(),
                    host.spec
                );
                // Set to anything but 0 (distcc 3.4 also skips the retry for 0).
                let skip = std::env::var_os("DISTCC_SKIP_LOCAL_RETRY").is_some_and(|v| v != "0");
                if skip && code < 128 {
                    let _ = io::stderr().write_all(&reply.stderr);
                    let _ = io::stdout().write_all(&reply.stdout);
                    return code;
                }
                log::warn!(
                    "remote compilation of '{}' failed, retrying locally",
                    job.input()
                );
                let local = compile_here(job.argv(), &farm, &mut state);
                if local == 0 {
                    // The same command works here: the host is at fault, not the code.
                    mark(&host);
                }
                return local;
            }
            Err(
                e @ (RemoteError::Cpp(_)
                | RemoteError::ReadInput(_)
                | RemoteError::CppStart(_)
                | RemoteError::DirectivesOnly(_)),
            ) => return after_cpp_failure(e, job, &farm, &mut state),
            Err(e) => {
                log::error!("{} on {}", e, host.spec);
                mark(&host);
                hosts.remove(i);
                failed_host = Some(host.spec);
            }
        }
    }
    if !env_flag("DISTCC_FALLBACK", true) {
        log::error!("failed to distribute and fallbacks are disabled");
        return exitcode::NO_HOSTS;
    }
    match failed_host {
        Some(spec) => log::warn!(
            "failed to distribute {} to {spec}, running locally instead",
            job.input()
        ),
        None => log::warn!("failed to distribute, running locally instead"),
    }
    compile_here(job.argv(), &farm, &mut state)
}

/// Runs one compiler command line (compiler first) and returns the exit code; `nested` is
/// the safeguard level we were started with.
fn compile(argv: &[String], nested: u32) -> i32 {
    if nested > 0 {
        // We were started by distcc itself (a compiler that is distcc): run it for real.
        return run_local(argv);
    }
    match cmdline::classify(argv) {
        Decision::Local(reason) => {
            log::debug!("{reason}; running locally");
            compile_here(argv, &Farm::load(), &mut None)
        }
        Decision::Remote(job) => build_somewhere(&job),
    }
}

/// `--version`, in distcc 3.4's shape: name, version and target; protocols and port;
/// then copyright and licence.
fn version_text() -> String {
    let vendor = if cfg!(target_arch = "x86_64") {
        "pc"
    } else {
        "unknown"
    };
    format!(
        "distcc {} {}-{vendor}-linux-gnu\n{VERSION_REST}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

const VERSION_REST: &str = "  (protocols 1 and 2) (default port 3632)
  distcc-rs, wire-compatible with distcc 3.4
Copyright (C) 2002, 2003, 2004 by Martin Pool.
Portions Copyright (C) 2007-2008 Google.
Copyright (C) 2026 the distcc-rs authors.

distcc comes with ABSOLUTELY NO WARRANTY.  distcc is free software, and
you may use, modify and redistribute it under the terms of the GNU
General Public License version 2 or later.
";

/// `--help` after the version, in distcc 3.4's order and columns, less what we do not
/// have (pump mode, GSS-API) and plus what we add.
const USAGE: &str = "Usage:
   distcc [COMPILER] [compile options] -o OBJECT -c SOURCE
   distcc [--help|--version|--show-hosts|-j]
   distcc --make-symlinks DIR

Options:
   COMPILER                   Defaults to \"cc\".
   --help                     Explain usage, and exit.
   --version                  Show version, and exit.
   --show-hosts               Show host list, and exit.
   -j                         Show the concurrency level, as calculated from
                              the host list, and exit.
   --make-symlinks DIR        Link the compilers found on PATH to distcc in
                              DIR (a masquerade directory), and exit.

Environment variables:
   See the manual page for a complete list.
   DISTCC_VERBOSE=1           Give debug messages.
   DISTCC_LOG                 Send messages to file, not stderr.
   DISTCC_SSH                 Command to run to open SSH connections.
   DISTCC_DIR                 Directory for host list and locks.
   DISTCC_FALLBACK=0          Fail instead of compiling locally.

Server specification:
A list of servers is taken from the environment variable $DISTCC_HOSTS, or
$DISTCC_DIR/hosts, or ~/.distcc/hosts, or /etc/distcc/hosts.
Each host can be given in any of these forms, see the manual for details:

   localhost                  Run in place.
   HOST                       TCP connection, port 3632.
   HOST:PORT                  TCP connection, specified port.
   @HOST                      SSH connection to specified host.
   USER@HOST                  SSH connection to specified username at host.
   HOSTSPEC/LIMIT             Run at most LIMIT jobs there at once.
   HOSTSPEC,lzo               Enable compression.
   --randomize                Randomize the server list before execution.

distcc distributes compilation jobs across volunteer machines running
distccd.  Jobs that cannot be distributed, such as linking, are run locally.
distcc should be used with make's -jN option to execute in parallel on
several machines.
";

/// Answers distcc's own options (`--help`, `--version`, `--show-hosts`, `-j`), which are
/// recognised only as the first argument; `None` when `first` is none of them.
fn own_option(first: &str, rest: &[OsString]) -> Option<i32> {
    match first {
        "--help" => {
            print!("{}\n{USAGE}", version_text());
            Some(0)
        }
        "--version" => {
            print!("{}", version_text());
            Some(0)
        }
        "--make-symlinks" => Some(masquerade::make_symlinks_main(rest)),
        "--show-hosts" | "-j" => {
            let mut list = match hosts::load() {
                Ok(l) => l,
                Err(e) => {
                    log::error!("{e}");
                    return Some(exitcode::BAD_HOSTSPEC);
                }
            };
            if list.randomize {
                shuffle(&mut list.hosts);
            }
            if first == "-j" {
                println!("{}", list.hosts.iter().map(|h| h.limit).sum::<u32>());
            } else {
                for h in &list.hosts {
                    println!("{}", h.spec);
                }
            }
            Some(0)
        }
        _ => None,
    }
}

/// What std's runtime does before `main` that the client needs, for a `distcc` that starts
/// without it. A closed standard descriptor gets `/dev/null`, or the first file we open
/// would take its place (and a compiler's output meant for stdout would land in it).
/// SIGPIPE is ignored, so that a reader gone away is an error to handle, not our death;
/// std's `Command` restores the default in the processes we start.
pub fn bare_start() {
    for fd in 0..3 {
        // SAFETY: asks about a descriptor number; touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // Opened at the lowest free number, which is `fd`; kept open for ever.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                std::mem::forget(null);
            }
        }
    }
    // SAFETY: sets a disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The `distcc` program: `argv` is its whole command line.
pub fn main(argv: Vec<OsString>) -> i32 {
    // Every process we start inherits the next level. Set once here rather than on each
    // Command: a Command with its own environment copies the whole of ours first.
    let nested = safeguard_level();
    std::env::set_var(SAFEGUARD, (nested + 1).to_string());
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(OsStr::to_os_string)
        .unwrap_or_default();
    let cmd: Vec<OsString> = if !name.is_empty() && !name.to_string_lossy().contains("distcc") {
        // Masquerade: invoked as `gcc` through a link to distcc.
        masquerade::trim_path(&name);
        std::iter::once(name)
            .chain(argv[1..].iter().cloned())
            .collect()
    } else {
        let Some(first) = argv.get(1) else {
            eprint!("{USAGE}");
            return exitcode::BAD_ARGUMENTS;
        };
        let first = first.to_string_lossy();
        if let Some(code) = own_option(&first, &argv[2..]) {
            return code;
        }
        if first.starts_with('-') || first.ends_with(".o") || cmdline::is_source(&first) {
            std::iter::once(OsString::from("cc"))
                .chain(argv[1..].iter().cloned())
                .collect()
        } else {
            argv[1..].to_vec()
        }
    };
    match cmd
        .iter()
        .map(|a| a.to_str().map(String::from))
        .collect::<Option<Vec<String>>>()
    {
        Some(cmd) => compile(&cmd, nested),
        None => {
            // Rare, and gcc copes: run the command here exactly as given.
            log::warn!("an argument is not valid UTF-8; compiling locally");
            run_local(&cmd)
        }
    }
}
