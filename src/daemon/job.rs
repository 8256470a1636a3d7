//! One compile job on the daemon, over any byte stream (a TCP connection, or stdin/stdout
//! under inetd or SSH): read the request, check it, compile it in a private temporary
//! directory that is always removed, and send the reply in the client's protocol version.
//!
//! A client that half-closes its side after sending still gets its result: we never read
//! after the request (distcc 3.4 takes that EOF for a vanished client and kills the job).
//! A request the daemon will not run (a compiler or an option it does not allow) is answered
//! with the reason in an `EMSG` packet instead of a reply (see `wire`). distcc 3.4 closes
//! the connection without a word, which a client cannot tell from a broken host; a 3.4
//! client reading `EMSG` prints it and falls back exactly as after that close, and ours
//! tells the user why, once per build, without backing the host off. A command that is no
//! compile a host can do (linking, say) is answered the same way. Every request is read
//! whole first, so that the client meets an answer, not a reset in the middle of sending;
//! one that breaks the protocol is closed without a word. The compiler named without a path is looked up on
//! the configured search path, past masquerade links (`toolchain::lookup`). Listening,
//! access control and process management belong to `listener`, `inetd`, `access` and
//! `privileges`; the settings come from `config`, read once.
//!
//! Protocol 3 (pump mode) jobs get a private root for the files sent (`jobroot`), compile
//! the source there with the client's full command line, its paths moved into the root, and
//! send the dependency file back with the client's paths. A name that would leave the root,
//! and a request over the limits, are refused with `EMSG` too.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tempfile::NamedTempFile;

use super::pumpcache;
use crate::cache::{self, Cache, Counter, Entry, Key, KeyHasher};
use crate::cmdline;
use crate::cmdline::policy::{self, Compilers, Refusal};
use crate::exitcode;
use crate::logging::argv_to_string;
use crate::toolchain::debuginfo::{self, ProducerFix};
use crate::toolchain::identity::{self, Identity};
use crate::toolchain::lookup;
use crate::wire::{self, JobTimes, Limits, ProtocolError, Reply, DOTI};

use super::jobroot::{self, JobRoot, Unsafe};

/// What the daemon needs to know to run a job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub limits: Limits,
    /// Where job files are written (`$TMPDIR`, default `/tmp`).
    pub tmp_root: PathBuf,
    /// Which compilers may run.
    pub compilers: Compilers,
    /// `DISTCCD_PATH`: the compilers' `PATH` instead of the daemon's.
    pub compiler_path: Option<std::ffi::OsString>,
    /// Where compilers named without a `/` are looked up (`DISTCCD_PATH`, else `PATH`),
    /// masquerade links passed over.
    pub search_path: std::ffi::OsString,
    /// `DISTCC_SAVE_TEMPS=1`: keep each job's files.
    pub save_temps: bool,
    /// Set when the daemon is stopping: running compiles are killed from then on.
    pub stop_by: StopBy,
    /// `--job-lifetime`: the longest a compile may run.
    pub job_lifetime: Option<Duration>,
    /// `--cache-dir`: where results compiled here are kept.
    pub cache: Option<Cache>,
    /// The standalone daemon's door, whose figures end each reply's notes; none under
    /// inetd, which serves one job and knows of no other.
    pub load: Option<std::sync::Arc<super::door::Door>>,
}

/// Why a job ended without a reply.
#[derive(Debug)]
enum JobError {
    Protocol(ProtocolError),
    NotDistributable(cmdline::Local),
    Refused(Refusal),
    TempFiles(std::io::Error),
    /// A protocol 3 name or link that would leave the job's root.
    Unsafe(Unsafe),
    /// A protocol 3 request over the limits, or with a path that is not UTF-8.
    TooLarge(ProtocolError),
    /// A system header the client listed is not here as it is there.
    OtherHeaders(String),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Protocol(e) => write!(f, "{e}"),
            JobError::NotDistributable(r) => {
                write!(
                    f,
                    "client sent a command that cannot be compiled remotely: {r}"
                )
            }
            JobError::Refused(r) => write!(f, "{r}"),
            JobError::TempFiles(e) => write!(f, "failed to set up the job's temporary files: {e}"),
            JobError::Unsafe(u) => write!(f, "{u}"),
            JobError::TooLarge(e) => write!(f, "{e}"),
            JobError::OtherHeaders(h) => {
                write!(f, "system header {h} {}", wire::OTHER_SYSTEM_HEADER)
            }
        }
    }
}

impl From<ProtocolError> for JobError {
    fn from(e: ProtocolError) -> Self {
        JobError::Protocol(e)
    }
}

impl JobError {
    fn result(&self) -> JobResult {
        match self {
            JobError::Protocol(ProtocolError::Io(_) | ProtocolError::Truncated { .. }) => {
                JobResult::ClientDisconnected
            }
            JobError::Protocol(_)
            | JobError::NotDistributable(_)
            | JobError::Unsafe(_)
            | JobError::TooLarge(_) => JobResult::BadRequest,
            JobError::Refused(_) | JobError::TempFiles(_) | JobError::OtherHeaders(_) => {
                JobResult::Other
            }
        }
    }
}

/// When a stopping daemon stops waiting for its running jobs; unset while it runs.
pub type StopBy = Arc<OnceLock<Instant>>;

/// How a job ended, as distcc's job summary line and statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    CompileOk,
    CompileError,
    CompileTimeout,
    ClientDisconnected,
    BadRequest,
    Other,
}

impl JobResult {
    /// The word of distcc's summary line.
    pub fn word(self) -> &'static str {
        match self {
            JobResult::CompileOk => "COMPILE_OK",
            JobResult::CompileError => "COMPILE_ERROR",
            JobResult::CompileTimeout => "COMPILE_TIMEOUT",
            JobResult::ClientDisconnected => "CLI_DISCONN",
            JobResult::BadRequest => "REJ_BAD_REQ",
            JobResult::Other => "OTHER",
        }
    }
}

/// What a served connection came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: JobResult,
    /// The compiler and input file, when the request got that far.
    pub job: Option<(String, String)>,
    pub time: Duration,
    /// The compiler's wait status, for a job that ran.
    pub(crate) status: u32,
    /// Why a job ended without an answer, and whether it was a refusal (a warning) rather
    /// than an error.
    pub(crate) problem: Option<(String, bool)>,
}

impl Outcome {
    /// A connection refused before its request was read: a warning with `why`.
    pub fn refused(why: String, time: Duration) -> Outcome {
        Outcome {
            result: JobResult::Other,
            job: None,
            time,
            status: 0,
            problem: Some((why, true)),
        }
    }

    /// Logs the reason of a failure, if any, and distcc's one-line summary of the job.
    pub fn log(&self, client: &str) {
        let ms = self.time.as_millis();
        match &self.problem {
            Some((why, true)) => log::warn!("refused job from {client}: {why}"),
            Some((why, false)) => log::error!("job from {client} failed: {why}"),
            None => {}
        }
        match &self.job {
            Some((compiler, input)) => {
                let w = exitcode::WaitStatus::decode(self.status);
                log::info!(
                    "client: {client} {} exit:{} sig:{} core:{} ret:0 time:{ms}ms {compiler} {input}",
                    self.result.word(),
                    w.exit,
                    w.signal,
                    u32::from(w.core),
                )
            }
            None => log::info!(
                "client: {client} {} exit:0 sig:0 core:0 ret:{} time:{ms}ms",
                self.result.word(),
                exitcode::PROTOCOL_ERROR
            ),
        }
    }
}

/// A finished compile, for the summary line.
struct Done {
    status: u32,
    /// Killed by us, at `--job-lifetime` or at the stop: a timeout, whatever the status
    /// says (a compiler may well exit with 118 by itself).
    killed: bool,
    compiler: String,
    input: String,
}

/// The wait status distccd reports for a compile killed at `--job-lifetime`.
const TIMEOUT_STATUS: u32 = (exitcode::TIMEOUT as u32) << 8;

/// What running a compiler came to.
struct Compiled {
    status: u32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// We killed it (and `status` is `TIMEOUT_STATUS`).
    killed: bool,
    /// How long it ran, and the processor time of it and the processes it ran.
    ran: Duration,
    cpu: Duration,
}

/// What a connection brought besides its request.
#[derive(Debug, Default)]
pub struct Arrived<'a> {
    /// What our client said it would run (under TLS), which a job is not compiled against.
    pub compiler: Option<&'a Identity>,
    /// How long the connection waited for a worker.
    pub waited: Duration,
}

impl Arrived<'_> {
    /// What the job cost here, for the notes: its wait, and `compiled`'s run.
    fn times(&self, compiled: Option<&Compiled>) -> JobTimes {
        let us = |d: Duration| d.as_micros() as u64;
        JobTimes {
            waited_us: us(self.waited),
            compile_us: compiled.map_or(0, |c| us(c.ran)),
            cpu_us: compiled.map_or(0, |c| us(c.cpu)),
        }
    }
}

/// A descriptor that becomes readable when process `pid` (our child) exits: a pidfd, so
/// that waiting with a timeout needs no thread. `None` on kernels before 5.3, where the
/// caller polls.
fn exit_notifier(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The program to run for compiler `name`: a path as it is; a bare name from the search
/// path, past masquerade links (`gcc -> distcc` on the daemon's PATH would have our own
/// client compile the job) and past directories the daemon's user cannot search (which
/// `execvp` would report as "Permission denied" for a compiler that is simply absent).
fn resolve_program(name: &str, cfg: &JobConfig) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let found = lookup::find_compiler(name, &cfg.search_path)
        .map_err(|nf| format!("{}: {nf}", nix::errno::Errno::ENOENT.desc()))?;
    log::debug!("compiler {name} is {}", found.display());
    Ok(found)
}

/// What the compiler `program` says it is, for the client to compare with its own (see
/// `toolchain::identity`), asked with the `PATH` the compile had and kept beside the `-g`
/// probe's results, which `--inetd` processes share; `None` when it cannot be asked.
/// Asked only after a success: a compiler that failed or was stopped is not made to run
/// again.
fn identity_of(program: &str, cfg: &JobConfig) -> Option<Identity> {
    let path = resolve_program(program, cfg).ok()?;
    let dir = crate::toolchain::producer::cache_dir(cfg.tmp_root.as_ref());
    identity::of_compiler(&path, dir.as_deref(), cfg.compiler_path.as_deref())
}

/// Our notes after a reply (see `wire::reply`): first those that cost nothing, which leave
/// at once, then the compiler's identity, which `identity` finds (a run of the compiler
/// the first time). A client that stopped reading at the reply's end (distcc 3.4's, which
/// may have closed the connection) loses nothing.
fn write_notes(
    stream: &mut impl Write,
    cfg: &JobConfig,
    from_cache: bool,
    times: JobTimes,
    identity: impl FnOnce() -> Option<Identity>,
) {
    let load = cfg.load.as_ref().map(|door| door.load_after_job());
    let sent = Reply::write_note(stream, from_cache, times, load).and_then(|()| match identity() {
        Some(identity) => Reply::write_compiler_note(stream, identity.text()),
        None => Ok(()),
    });
    if let Err(e) = sent {
        log::debug!("the notes after the reply were not sent: {e}");
    }
}

/// The reply for a compiler that could not be started: distcc's "compiler missing" status
/// with the reason on stderr, as distcc 3.4 reports it.
fn exec_failed(name: &str, why: &str) -> Compiled {
    log::error!("failed to exec {name}: {why}");
    let msg = format!(
        "distccd[{}] (serve) ERROR: failed to exec {name}: {why}\n",
        std::process::id()
    );
    Compiled {
        status: (exitcode::COMPILER_MISSING as u32) << 8,
        stdout: Vec::new(),
        stderr: msg.into_bytes(),
        killed: false,
        ran: Duration::ZERO,
        cpu: Duration::ZERO,
    }
}

/// Why a running compile must be killed now, if it must: its `--job-lifetime` is over, or
/// the daemon is stopping and its grace period is over.
fn kill_reason(started: Instant, cfg: &JobConfig) -> Option<String> {
    match (cfg.job_lifetime, cfg.stop_by.get()) {
        (Some(limit), _) if started.elapsed() >= limit => Some(format!(
            "compile killed after the --job-lifetime of {}s",
            limit.as_secs()
        )),
        (_, Some(stop)) if Instant::now() >= *stop => {
            Some("compile killed: the daemon is stopping".to_string())
        }
        _ => None,
    }
}

/// Reaps the compiler if it has ended: its wait status and the processor time of it and
/// of the processes it waited for (cc1, as), which only `wait4` tells of one child.
fn reap(child: &Child) -> std::io::Result<Option<(u32, Duration)>> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value, which wait4 fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, libc::WNOHANG, &mut usage) };
    match pid {
        0 => Ok(None),
        -1 => {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            }
        }
        _ => {
            let time = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            Ok(Some((
                status as u32,
                time(usage.ru_utime) + time(usage.ru_stime),
            )))
        }
    }
}

/// Waits for the compiler to end, or kills it with everything it started (its process
/// group) when `kill_reason` says so. Returns the wait status, the processor time it took
/// (see [`reap`]; none known for one killed) and why it was killed.
fn wait_compiler(
    child: &mut Child,
    name: &str,
    cfg: &JobConfig,
) -> std::io::Result<(u32, Duration, Option<String>)> {
    let started = Instant::now();
    let exited = exit_notifier(child.id());
    // The notifier wakes us the moment the compiler ends; the timeout only paces the checks
    // of the job's lifetime and of a daemon that is stopping.
    loop {
        match &exited {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(200u16));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
        if let Some((status, cpu)) = reap(child)? {
            return Ok((status, cpu, None));
        }
        if let Some(why) = kill_reason(started, cfg) {
            log::warn!("{why} ({name})");
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Ok((TIMEOUT_STATUS, Duration::ZERO, Some(why)));
        }
    }
}

/// Runs `argv` in the daemon's temporary directory with stdin from /dev/null, stdout and
/// stderr in unnamed files, and in a process group of its own, so that at `--job-lifetime`
/// the compiler and everything it started (cc1, as) can be killed together.
fn run_compiler(
    argv: &[String],
    env: Option<(&str, String)>,
    cwd: Option<&str>,
    cfg: &JobConfig,
) -> std::io::Result<Compiled> {
    let program = match resolve_program(&argv[0], cfg) {
        Ok(p) => p,
        Err(why) => return Ok(exec_failed(&argv[0], &why)),
    };
    let (out_file, err_file) = (
        tempfile::tempfile_in(&cfg.tmp_root)?,
        tempfile::tempfile_in(&cfg.tmp_root)?,
    );
    let mut cmd = Command::new(&program);
    cmd.envs(env);
    if let Some(path) = &cfg.compiler_path {
        cmd.env("PATH", path);
    }
    // A pump job runs in its root; `PWD` says so to a compiler that trusts it (gcc's
    // `getpwd`, for `DW_AT_comp_dir`), instead of the daemon's own.
    match cwd {
        Some(dir) => cmd.current_dir(dir).env("PWD", dir),
        None => cmd.current_dir(&cfg.tmp_root),
    };
    let spawned = cmd
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out_file.try_clone()?)
        .stderr(err_file.try_clone()?)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Ok(exec_failed(&argv[0], &e.to_string())),
    };
    let started = Instant::now();
    let (status, cpu, killed_because) = wait_compiler(&mut child, &argv[0], cfg)?;
    let ran = started.elapsed();
    let mut stderr = crate::read_whole(&err_file)?;
    if let Some(why) = &killed_because {
        stderr.extend_from_slice(
            format!("distccd[{}] (serve) ERROR: {why}\n", std::process::id()).as_bytes(),
        );
    }
    Ok(Compiled {
        status,
        stdout: crate::read_whole(&out_file)?,
        stderr,
        killed: killed_because.is_some(),
        ran,
        cpu,
    })
}

/// A file for a job, `distccd_XXXXXX.ext` directly in the temporary directory, removed
/// when dropped. Not a directory per job: where `/tmp` is mounted with `discard`,
/// removing a directory costs milliseconds, far more than the files in it.
fn job_file(cfg: &JobConfig, ext: &str) -> std::io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix("distccd_")
        .suffix(&format!(".{ext}"))
        .tempfile_in(&cfg.tmp_root)
}

/// How to make the producer of a directives-only compile a local compile's: learnt and
/// checked on a probe the first time this compiler and command line are seen (see
/// `toolchain::producer`).
fn producer_fix(
    compile: &cmdline::Compile,
    compiler: &str,
    hook: &str,
    cfg: &JobConfig,
) -> ProducerFix {
    let run = |argv: &[String], env| run_compiler(argv, env, None, cfg).map(|done| done.status);
    crate::toolchain::producer::fix_for(&crate::toolchain::producer::Job {
        compile,
        compiler,
        hook,
        tmp_root: &cfg.tmp_root,
        search_path: &cfg.search_path,
        run: &run,
    })
}

/// A request read in full.
struct Request {
    version: wire::Version,
    argv: Vec<String>,
    /// The compile asked for, or why the command is none.
    compile: Result<cmdline::Compile, cmdline::Local>,
    /// The source, already in its file unless `doti` holds it for checking.
    input: NamedTempFile,
    /// A directives-only source, to be checked before it goes into `input`.
    doti: Option<Vec<u8>>,
    /// The BLAKE3 sum of the text as received, when there is a cache to key.
    text_sum: Option<[u8; 32]>,
}

/// A writer that also hashes what goes through it.
struct Hashing<'a, W: Write> {
    inner: W,
    sum: &'a mut blake3::Hasher,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A protocol 3 request read in full: its files are in `root`.
struct PumpRequest {
    argv: Vec<String>,
    cwd: String,
    root: JobRoot,
    /// The first name or link refused, if any: the request was read to its end all the same.
    refused: Option<Unsafe>,
    /// With a cache, what was received, held and summed: not written yet.
    received: Option<pumpcache::Received>,
    /// Our client's list of the system headers the compile reads (`wire::SYSTEM_HEADERS`),
    /// held apart from the files: it is checked, not written, and the cache keys this
    /// host's own headers.
    system_headers: Option<Vec<u8>>,
}

enum Received {
    Plain(Request),
    Pump(PumpRequest),
}

/// Reads the whole request, before any refusal, so that the client sees a clean close
/// rather than a reset in the middle of sending.
fn read_request(stream: &mut impl Read, cfg: &JobConfig) -> Result<Received, JobError> {
    // Buffered: a request's many small packets then take one read, not one each. Nothing
    // follows the request, so dropping the buffer after it loses nothing.
    let mut request = BufReader::with_capacity(16 << 10, stream);
    let head = wire::read_request_head(&mut request, &cfg.limits)?;
    let (version, argv) = (head.version, head.argv);
    log::debug!("got request: {}", argv_to_string(&argv));
    if let Some(cwd) = head.cwd {
        return read_pump(&mut request, argv, cwd, cfg).map(Received::Pump);
    }
    let compile = cmdline::parse_received(&argv);
    let ext = compile.as_ref().map_or("i", |c| c.lang.preprocessed_ext());
    let mut input = job_file(cfg, ext).map_err(JobError::TempFiles)?;
    let mut text_sum = None;
    let doti = if debuginfo::requested(&argv) {
        // Checked in memory before gcc sees it.
        let text = wire::read_file(&mut request, DOTI, version, &cfg.limits)?;
        if cfg.cache.is_some() {
            text_sum = Some(*blake3::hash(&text).as_bytes());
        }
        Some(text)
    } else {
        // Straight into its file: the daemon never holds a whole source.
        let mut file = io::BufWriter::with_capacity(64 << 10, input.as_file_mut());
        if cfg.cache.is_some() {
            let mut sum = blake3::Hasher::new();
            let mut hashing = Hashing {
                inner: &mut file,
                sum: &mut sum,
            };
            wire::read_file_into(&mut request, DOTI, version, &cfg.limits, &mut hashing)?;
            text_sum = Some(*sum.finalize().as_bytes());
        } else {
            wire::read_file_into(&mut request, DOTI, version, &cfg.limits, &mut file)?;
        }
        file.flush().map_err(JobError::TempFiles)?;
        None
    };
    Ok(Received::Plain(Request {
        version,
        argv,
        compile,
        input,
        doti,
        text_sum,
    }))
}

/// Reads the files of a protocol 3 request into a new job root, one at a time. After a
/// refused name the rest is read and dropped, so that the refusal reaches the client.
fn read_pump(
    r: &mut impl Read,
    argv: Vec<String>,
    cwd: String,
    cfg: &JobConfig,
) -> Result<PumpRequest, JobError> {
    let over = |e: ProtocolError| match e {
        ProtocolError::TooLarge { .. }
        | ProtocolError::Expands { .. }
        | ProtocolError::BadPath { .. } => JobError::TooLarge(e),
        e => JobError::Protocol(e),
    };
    let root = JobRoot::create(&cfg.tmp_root).map_err(JobError::TempFiles)?;
    let mut files = wire::PumpFiles::start(r, &cfg.limits).map_err(over)?;
    let mut refused = None;
    // With a cache, the files are held, and written only once the key is known and
    // missed: on a hit, writing hundreds of headers would cost most of the job.
    let mut received = cfg.cache.as_ref().map(|_| pumpcache::Received::default());
    let mut system_headers = None;
    while let Some(file) = files.next(r, &cfg.limits).map_err(over)? {
        if file.name == wire::SYSTEM_HEADERS {
            if let wire::Received::File(list) = file.content {
                system_headers = Some(list);
                continue;
            }
        }
        if let Some(r) = &mut received {
            r.add(file);
            if r.held <= pumpcache::HOLD_LIMIT {
                continue;
            }
            // Too large to hold: written from here on, and not cached.
            write_held(&root, &mut refused, received.take());
        } else if refused.is_none() {
            refused = root.add(&file).err();
        }
    }
    Ok(PumpRequest {
        argv,
        cwd,
        root,
        refused,
        received,
        system_headers,
    })
}

/// Writes the files `held` for the cache into `root`, keeping the first name refused.
fn write_held(root: &JobRoot, refused: &mut Option<Unsafe>, held: Option<pumpcache::Received>) {
    for file in held.map(|r| r.files).unwrap_or_default() {
        if refused.is_none() {
            *refused = root.add(&file).err();
        }
    }
}

/// Checks the request against the daemon's policy and builds the command to run, with its
/// output file and the environment of the `-g` producer fix, if any.
#[allow(clippy::type_complexity)]
fn prepare(
    req: &mut Request,
    cfg: &JobConfig,
) -> Result<(Vec<String>, NamedTempFile, Option<(&'static str, String)>), JobError> {
    let compiler_path = policy::check(&req.argv, &cfg.compilers).map_err(JobError::Refused)?;
    let compile = req
        .compile
        .as_ref()
        .map_err(|local| JobError::NotDistributable(local.clone()))?;
    if let Some(mut text) = req.doti.take() {
        debuginfo::check_directives(&mut text)
            .map_err(|line| JobError::Refused(Refusal::Directive(line)))?;
        req.input.write_all(&text).map_err(JobError::TempFiles)?;
    }
    let ext = if compile.assembly { "s" } else { "o" };
    let output = job_file(cfg, ext).map_err(JobError::TempFiles)?;
    let mut cmd = compile.with_files(
        &req.input.path().to_string_lossy(),
        &output.path().to_string_lossy(),
    );
    if let Some(path) = compiler_path {
        cmd[0] = path;
    }
    let mut env = None;
    // gcc runs this daemon's own executable as its `-wrapper` to edit the producer of a
    // directives-only compile; without one (no /proc), the object keeps that producer.
    if debuginfo::requested(&req.argv) {
        if let Some(hook) = crate::toolchain::producer::wrapper() {
            env = producer_fix(compile, &cmd[0], hook, cfg).apply(&mut cmd, hook);
        }
    }
    Ok((cmd, output, env))
}

/// Removes the job's files (or keeps them, with `DISTCC_SAVE_TEMPS=1`). Done before
/// answering: once the client has its answer, the job is over, and a daemon counting
/// running jobs sees no overlap with the client's next one.
fn clean_up<const N: usize>(files: [NamedTempFile; N], cfg: &JobConfig) {
    if !cfg.save_temps {
        return;
    }
    for file in files {
        if let Ok((_, path)) = file.keep() {
            log::info!("kept {}", path.display());
        }
    }
}

/// Tells the client why its job will not run here (see the module's comment).
fn answer_refusal(stream: &mut impl Write, why: &JobError) {
    if let Err(e) = wire::write_refusal(stream, &why.to_string()) {
        log::debug!("failed to tell the client of the refusal: {e}");
    }
}

/// What a pump job runs: the command, where it runs, its object and dependency files.
struct PumpPrepared {
    cmd: Vec<String>,
    dir: String,
    output: NamedTempFile,
    deps: NamedTempFile,
    input: String,
}

/// The compiler a pump job would run, when there is a cache to look the job up in and the
/// daemon's policy allows the command: the same check [`prepare_pump`] makes, before it.
fn cache_compiler(req: &PumpRequest, cfg: &JobConfig) -> Option<PathBuf> {
    cfg.cache.as_ref()?;
    let allowed = policy::check(&jobroot::for_policy(&req.argv), &cfg.compilers).ok()?;
    cmdline::parse_received(&req.argv).ok()?;
    let name = allowed.unwrap_or_else(|| req.argv[0].clone());
    resolve_program(&name, cfg)
        .map_err(|e| log::debug!("cannot find {name} for the cache: {e}"))
        .ok()
}

/// Checks a pump request: its names, then the daemon's policy on the command line, where
/// the options naming files that a pump job ships or produces are allowed
/// (`jobroot::for_policy`).
fn prepare_pump(req: &PumpRequest, cfg: &JobConfig) -> Result<PumpPrepared, JobError> {
    if let Some(u) = &req.refused {
        return Err(JobError::Unsafe(u.clone()));
    }
    let compiler_path = policy::check(&jobroot::for_policy(&req.argv), &cfg.compilers)
        .map_err(JobError::Refused)?;
    let compile = cmdline::parse_received(&req.argv).map_err(JobError::NotDistributable)?;
    let dir = req.root.dir(&req.cwd).map_err(JobError::Unsafe)?;
    let output =
        job_file(cfg, if compile.assembly { "s" } else { "o" }).map_err(JobError::TempFiles)?;
    let deps = job_file(cfg, "d").map_err(JobError::TempFiles)?;
    let mut cmd = jobroot::pump_argv(
        compile.argv(),
        req.root.path(),
        &output.path().to_string_lossy(),
        &deps.path().to_string_lossy(),
    );
    if let Some(path) = compiler_path {
        cmd[0] = path;
    }
    Ok(PumpPrepared {
        cmd,
        dir,
        output,
        deps,
        input: compile.input().to_string(),
    })
}

fn run_pump_job(
    stream: &mut (impl Read + Write),
    mut req: PumpRequest,
    cfg: &JobConfig,
    arrived: &Arrived<'_>,
) -> Result<Done, JobError> {
    let input = (cmdline::parse_received(&req.argv))
        .map(|c| c.input().to_string())
        .unwrap_or_default();
    if let (Some(door), Some(first)) = (&cfg.load, req.argv.first()) {
        door.live.describe(first, &input);
    }
    let headers = req.system_headers.as_deref();
    let why = match headers.map(|list| (list.len() > wire::MAX_LIST, list)) {
        Some((true, _)) => Some(JobError::Unsafe(Unsafe {
            name: wire::SYSTEM_HEADERS.into(),
            why: "is too long a list",
        })),
        Some((false, list)) => wire::first_other_system_header(list).map(JobError::OtherHeaders),
        None => None,
    };
    if let Some(why) = why {
        drop(req.root);
        answer_refusal(stream, &why);
        return Err(why);
    }
    let compiler = cache_compiler(&req, cfg);
    let keyed = compiler.as_ref().map(|compiler| pumpcache::Job {
        argv: &req.argv,
        cwd: &req.cwd,
        root: req.root.path().to_string(),
        compiler,
        path_var: cfg.compiler_path.as_deref(),
    });
    let pending = match (&cfg.cache, &keyed, req.received.as_mut()) {
        (Some(cache), Some(keyed), Some(received)) => {
            match pumpcache::look_up(cache, keyed, received) {
                pumpcache::Looked::Hit(entry) => {
                    drop(req.root);
                    let compiler = keyed.compiler.to_path_buf();
                    let identity = move || compiler.to_str().and_then(|c| identity_of(c, cfg));
                    let (version, argv) = (wire::Version::Pump, req.argv);
                    return answer_from_cache(
                        stream,
                        cfg,
                        arrived,
                        (version, argv, input),
                        entry,
                        identity,
                    );
                }
                pumpcache::Looked::Miss(pending) => pending,
            }
        }
        _ => None,
    };
    // Not answered from the cache: the files held for it go into the root.
    write_held(&req.root, &mut req.refused, req.received.take());
    let job = match prepare_pump(&req, cfg) {
        Err(why) => {
            drop(req.root);
            answer_refusal(stream, &why);
            return Err(why);
        }
        Ok(job) => job,
    };
    let version = wire::Version::Pump;
    // Asked once, for the check before compiling and for the notes after.
    let mut known = arrived.compiler.and_then(|_| identity_of(&job.cmd[0], cfg));
    let theirs = (arrived.compiler, known.as_ref());
    if let Some(done) = other_compiler(stream, cfg, arrived, version, &job.cmd[0], theirs) {
        return done.map(|status| Done {
            status,
            killed: false,
            compiler: job.cmd[0].clone(),
            input: job.input.clone(),
        });
    }
    log::debug!("compiling in {}: {}", job.dir, argv_to_string(&job.cmd));
    let compiled = run_compiler(&job.cmd, None, Some(&job.dir), cfg);
    let mut compiled = compiled.map_err(JobError::TempFiles)?;
    for text in [&mut compiled.stderr, &mut compiled.stdout] {
        *text = jobroot::client_text(std::mem::take(text), req.root.path());
    }
    log::debug!("compiled: status {}", compiled.status);
    let (object, raw_deps, deps) = if compiled.status == 0 {
        let raw = std::fs::read(job.deps.path()).unwrap_or_default();
        let clang = crate::toolchain::names::is_clang(&job.cmd[0]);
        let deps = jobroot::client_deps(&raw, req.root.path(), clang);
        (File::open(job.output.path()).ok(), raw, Some(deps))
    } else {
        (None, Vec::new(), None)
    };
    // What is stored: a success with an object, read before the file goes, and the
    // headers it read, known before the root goes.
    let to_store = match (pending, &object, &keyed) {
        (Some(pending), Some(_), Some(keyed)) => std::fs::read(job.output.path())
            .ok()
            .filter(|o| !o.is_empty())
            .and_then(|o| Some((pending.facts(keyed, &raw_deps)?, pending, o))),
        _ => None,
    };
    // The root goes before the answer, as the plain job's files do.
    if cfg.save_temps {
        if let Some(path) = req.root.keep() {
            log::info!("kept {}", path.display());
        }
    } else {
        drop(req.root);
    }
    clean_up([job.output, job.deps], cfg);
    let times = arrived.times(Some(&compiled));
    let reply = Reply {
        status: compiled.status,
        stderr: compiled.stderr,
        stdout: compiled.stdout,
        output: Vec::new(),
        deps,
        from_cache: false,
        compiler: None,
        load: None,
        times: None,
    };
    match object {
        Some(mut file) => {
            let len = file.metadata().map_err(JobError::TempFiles)?.len();
            reply.write_with_output(stream, version, &mut file, len)?;
        }
        None => reply.write(stream, version)?,
    }
    let identity = || {
        (compiled.status == 0)
            .then(|| known.take().or_else(|| identity_of(&job.cmd[0], cfg)))
            .flatten()
    };
    write_notes(stream, cfg, false, times, identity);
    // Stored once the client has its answer.
    if let Some((facts, pending, object)) = to_store {
        let entry = Entry {
            object,
            stderr: reply.stderr,
            stdout: reply.stdout,
            deps: reply.deps,
        };
        pending.store(facts, entry);
    }
    let mut argv = req.argv;
    Ok(Done {
        status: compiled.status,
        killed: compiled.killed,
        compiler: std::mem::take(&mut argv[0]),
        input: job.input,
    })
}

fn run_job(
    stream: &mut (impl Read + Write),
    cfg: &JobConfig,
    arrived: &Arrived<'_>,
) -> Result<Done, JobError> {
    let mut req = match read_request(&mut *stream, cfg) {
        Ok(Received::Plain(req)) => req,
        Ok(Received::Pump(req)) => return run_pump_job(stream, req, cfg, arrived),
        Err(why @ JobError::TooLarge(_)) => {
            answer_refusal(stream, &why);
            return Err(why);
        }
        Err(e) => return Err(e),
    };
    let (cmd, output, env) = match prepare(&mut req, cfg) {
        Err(why @ (JobError::Refused(_) | JobError::NotDistributable(_))) => {
            answer_refusal(stream, &why);
            return Err(why);
        }
        prepared => prepared?,
    };
    let input = || req.compile.as_ref().map(|c| c.input().to_string());
    if let Some(door) = &cfg.load {
        door.live.describe(&cmd[0], &input().unwrap_or_default());
    }
    let mut known = arrived.compiler.and_then(|_| identity_of(&cmd[0], cfg));
    let theirs = (arrived.compiler, known.as_ref());
    if let Some(done) = other_compiler(stream, cfg, arrived, req.version, &cmd[0], theirs) {
        return done.map(|status| Done {
            status,
            killed: false,
            compiler: cmd[0].clone(),
            input: input().unwrap_or_default(),
        });
    }
    let cached = cached_key(&req, &cmd[0], &env, cfg);
    if let Some((cache, key)) = &cached {
        if let Some(entry) = cache.get(key) {
            cache.count(key, Counter::HitDaemon);
            let input = req.compile.map(|c| c.input().to_string());
            let input = input.unwrap_or_default();
            let identity = || identity_of(&cmd[0], cfg);
            return answer_from_cache(
                stream,
                cfg,
                arrived,
                (req.version, req.argv, input),
                entry,
                identity,
            );
        }
        cache.count(key, Counter::Miss);
    }
    log::debug!("compiling: {}", argv_to_string(&cmd));
    let compiled = run_compiler(&cmd, env, None, cfg).map_err(JobError::TempFiles)?;
    log::debug!("compiled: status {}", compiled.status);
    // A compiler that succeeds without writing its output (a wrapper script, say) gives
    // an empty result, as distcc 3.4 sends it. The object is sent from its file, which
    // stays readable once removed.
    let object = if compiled.status == 0 {
        File::open(output.path()).ok()
    } else {
        None
    };
    // What is stored: a success with an object, read before the file goes.
    let to_store = match (&cached, &object) {
        (Some(_), Some(_)) => std::fs::read(output.path()).ok().filter(|o| !o.is_empty()),
        _ => None,
    };
    let Request {
        version,
        mut argv,
        compile,
        input,
        ..
    } = req;
    clean_up([input, output], cfg);
    let times = arrived.times(Some(&compiled));
    let reply = Reply {
        status: compiled.status,
        stderr: compiled.stderr,
        stdout: compiled.stdout,
        output: Vec::new(),
        deps: None,
        from_cache: false,
        compiler: None,
        load: None,
        times: None,
    };
    match object {
        Some(mut file) => {
            let len = file.metadata().map_err(JobError::TempFiles)?.len();
            reply.write_with_output(stream, version, &mut file, len)?;
        }
        None => reply.write(stream, version)?,
    }
    let identity = || {
        (compiled.status == 0)
            .then(|| known.take().or_else(|| identity_of(&cmd[0], cfg)))
            .flatten()
    };
    write_notes(stream, cfg, false, times, identity);
    // Stored once the client has its answer.
    if let (Some((cache, key)), Some(object)) = (cached, to_store) {
        let entry = Entry {
            object,
            stderr: reply.stderr,
            stdout: reply.stdout,
            deps: None,
        };
        if let Err(e) = cache.put(&key, &entry) {
            log::warn!("cannot store in the cache at {}: {e}", cache.dir.display());
        }
    }
    Ok(Done {
        status: compiled.status,
        killed: compiled.killed,
        compiler: std::mem::take(&mut argv[0]),
        // The compile prepare() accepted.
        input: compile.map(|c| c.input().to_string()).unwrap_or_default(),
    })
}

/// The cache and the key of a plain job, when the daemon has a cache: made from what
/// this daemon received and would run (the identity of its own compiler, the command
/// line, the text), never from anything a client says about the result.
fn cached_key<'a>(
    req: &Request,
    program: &str,
    env: &Option<(&str, String)>,
    cfg: &'a JobConfig,
) -> Option<(&'a Cache, Key)> {
    let cache = cfg.cache.as_ref()?;
    let sum = req.text_sum?;
    let identity = resolve_program(program, cfg)
        .map_err(std::io::Error::other)
        .and_then(|path| {
            cache::key::compiler_identity(&cache.dir, &path, cfg.compiler_path.as_deref())
        });
    let identity = match identity {
        Ok(id) => id,
        Err(e) => {
            log::debug!("cannot identify the compiler {program} for the cache: {e}");
            return None;
        }
    };
    // The `-g` producer fix, and this daemon's version, change an object too.
    let fix = env
        .as_ref()
        .map(|(k, v)| format!("{k}={v}"))
        .unwrap_or_default();
    let key = KeyHasher::new("daemon")
        .field("compiler", &identity)
        .field("distccd", env!("CARGO_PKG_VERSION").as_bytes())
        .field("producer fix", fix.as_bytes())
        .words("argv", &req.argv)
        .field("text", &sum)
        .finish();
    Some((cache, key))
}

/// Answers the job of `input` with what the cache kept for it.
fn answer_from_cache(
    stream: &mut impl Write,
    cfg: &JobConfig,
    arrived: &Arrived<'_>,
    (version, mut argv, input): (wire::Version, Vec<String>, String),
    entry: Entry,
    identity: impl FnOnce() -> Option<Identity>,
) -> Result<Done, JobError> {
    log::info!("{input}: answered from the cache");
    let reply = Reply {
        status: 0,
        stderr: entry.stderr,
        stdout: entry.stdout,
        output: entry.object,
        deps: entry.deps,
        from_cache: true,
        compiler: None,
        load: None,
        times: None,
    };
    reply.write(stream, version)?;
    // Asked once the reply is out.
    write_notes(stream, cfg, true, arrived.times(None), identity);
    Ok(Done {
        status: 0,
        killed: false,
        compiler: std::mem::take(&mut argv[0]),
        input,
    })
}

/// Answers, without compiling, a job whose client said it would run another compiler than
/// `program` here (our client says so under TLS, before its request): the status of a
/// compiler missing here, with this host's identity in the notes, which the client takes
/// as it takes them after a compile (it tells its user once and skips the host). `None`
/// when the client said nothing, or the same, or this compiler cannot say what it is
/// (the pair: the client's compiler, this one's); else the status answered.
fn other_compiler(
    stream: &mut impl Write,
    cfg: &JobConfig,
    arrived: &Arrived<'_>,
    version: wire::Version,
    program: &str,
    (client, ours): (Option<&Identity>, Option<&Identity>),
) -> Option<Result<u32, JobError>> {
    let (client, ours) = (client?, ours?);
    if ours == client {
        return None;
    }
    log::warn!(
        "not compiling with {program}: {}",
        client.against(ours).replace('\n', " ")
    );
    let status = (exitcode::COMPILER_MISSING as u32) << 8;
    let reply = Reply {
        status,
        stderr: format!(
            "distccd[{}] (serve) ERROR: this host's compiler is not the client's\n",
            std::process::id()
        )
        .into_bytes(),
        stdout: Vec::new(),
        output: Vec::new(),
        deps: None,
        from_cache: false,
        compiler: None,
        load: None,
        times: None,
    };
    Some(
        reply
            .write(stream, version)
            .map_err(JobError::from)
            .map(|()| {
                write_notes(stream, cfg, false, arrived.times(None), || {
                    Some(ours.clone())
                });
                status
            }),
    )
}

/// Serves one job on `stream` and says how it ended; the caller logs it with
/// [`Outcome::log`] once it has counted it. `arrived` is what came with the request.
pub fn serve(stream: &mut (impl Read + Write), cfg: &JobConfig, arrived: &Arrived<'_>) -> Outcome {
    let start = Instant::now();
    let result = run_job(stream, cfg, arrived);
    let time = start.elapsed();
    match result {
        Ok(done) => Outcome {
            result: match done.status {
                _ if done.killed => JobResult::CompileTimeout,
                0 => JobResult::CompileOk,
                _ => JobResult::CompileError,
            },
            job: Some((done.compiler, done.input)),
            time,
            status: done.status,
            problem: None,
        },
        Err(e) => Outcome {
            result: e.result(),
            job: None,
            time,
            status: 0,
            problem: Some((
                e.to_string(),
                matches!(
                    e,
                    JobError::Refused(_) | JobError::Unsafe(_) | JobError::OtherHeaders(_)
                ),
            )),
        },
    }
}
