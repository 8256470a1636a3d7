//! One compile job on the daemon, over any byte stream (a TCP connection, or stdin/stdout
//! under inetd or SSH): read the request, check it, compile it in a private temporary
//! directory that is always removed, and send the reply in the client's protocol version.
//!
//! A client that half-closes its side after sending still gets its result: we never read
//! after the request (distcc 3.4 takes that EOF for a vanished client and kills the job).
//! Refusals close the connection without a reply, as distcc 3.4 does, so that 3.4 clients
//! fall back to a local compile as usual. Listening, access control and process management
//! belong to `daemon`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tempfile::NamedTempFile;

use crate::cmdline::policy::{self, Compilers, Refusal};
use crate::cmdline::{self, Decision, LocalReason};
use crate::exitcode;
use crate::logging::argv_to_string;
use crate::toolchain::debuginfo::{self, ProducerFix};
use crate::wire::{self, Limits, ProtocolError, Reply, DOTI};

/// What the daemon needs to know to run a job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub limits: Limits,
    /// Where job files are written (`$TMPDIR`, default `/tmp`).
    pub tmp_root: PathBuf,
    /// Which compilers may run.
    pub compilers: Compilers,
    /// `DISTCCD_PATH`: where compilers are looked up instead of `PATH`.
    pub compiler_path: Option<std::ffi::OsString>,
    /// Set when the daemon is stopping: running compiles are killed from then on.
    pub stop_by: StopBy,
    /// `--job-lifetime`: the longest a compile may run.
    pub job_lifetime: Option<Duration>,
    /// The daemon's own executable, run by gcc as its `-wrapper` to edit the producer of
    /// directives-only compiles (see `debuginfo`); without it they keep that producer.
    /// Only whether it is set counts: gcc is given the running executable through a
    /// descriptor (`toolchain::producer::wrapper`), which survives an upgrade of the file.
    pub hook: Option<String>,
}

/// Why a job ended without a reply.
#[derive(Debug)]
enum JobError {
    Protocol(ProtocolError),
    NotDistributable(LocalReason),
    Refused(Refusal),
    TempFiles(std::io::Error),
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
            JobError::Protocol(_) | JobError::NotDistributable(_) => JobResult::BadRequest,
            JobError::Refused(_) | JobError::TempFiles(_) => JobResult::Other,
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
    /// Logs the reason of a failure, if any, and distcc's one-line summary of the job.
    pub fn log(&self, client: &str) {
        let ms = self.time.as_millis();
        match &self.problem {
            Some((why, true)) => log::warn!("refused job from {client}: {why}"),
            Some((why, false)) => log::error!("job from {client} failed: {why}"),
            None => {}
        }
        match &self.job {
            Some((compiler, input)) => log::info!(
                "client: {client} {} exit:{} sig:{} core:{} ret:0 time:{ms}ms {compiler} {input}",
                self.result.word(),
                (self.status >> 8) & 0xff,
                self.status & 0x7f,
                u32::from(self.status & 0x80 != 0),
            ),
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
    compiler: String,
    input: String,
}

/// The wait status distccd reports for a compile killed at `--job-lifetime`.
const TIMEOUT_STATUS: u32 = (exitcode::TIMEOUT as u32) << 8;

/// A descriptor that becomes readable when process `pid` (our child) exits: a pidfd, so
/// that waiting with a timeout needs no thread. `None` on kernels before 5.3, where the
/// caller polls.
fn exit_notifier(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `argv` in the daemon's temporary directory with stdin from /dev/null, stdout and
/// stderr in unnamed files, and in a process group of its own, so that at `lifetime` the
/// compiler and everything it started (cc1, as) can be killed together. Returns the wait
/// status, stdout and stderr. A compiler that cannot be started gives distcc's "compiler
/// missing" status with the reason on stderr, as distcc 3.4 reports it.
fn run_compiler(
    argv: &[String],
    env: Option<(&str, String)>,
    cfg: &JobConfig,
) -> std::io::Result<(u32, Vec<u8>, Vec<u8>)> {
    let lifetime = cfg.job_lifetime;
    let (out_file, err_file) = (
        tempfile::tempfile_in(&cfg.tmp_root)?,
        tempfile::tempfile_in(&cfg.tmp_root)?,
    );
    let mut cmd = Command::new(&argv[0]);
    cmd.envs(env);
    if let Some(path) = &cfg.compiler_path {
        // The child's PATH is also where the program itself is looked up.
        cmd.env("PATH", path);
    }
    let spawned = cmd
        .args(&argv[1..])
        .current_dir(&cfg.tmp_root)
        .stdin(Stdio::null())
        .stdout(out_file.try_clone()?)
        .stderr(err_file.try_clone()?)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            log::error!("failed to exec {}: {e}", argv[0]);
            let msg = format!(
                "distccd[{}] (serve) ERROR: failed to exec {}: {e}\n",
                std::process::id(),
                argv[0]
            );
            return Ok((
                (exitcode::COMPILER_MISSING as u32) << 8,
                Vec::new(),
                msg.into_bytes(),
            ));
        }
    };
    let started = Instant::now();
    let exited = exit_notifier(child.id());
    // The notifier wakes us the moment the compiler ends; the timeout only paces the checks
    // of the job's lifetime and of a daemon that is stopping.
    let mut killed_because = None;
    let status = loop {
        match &exited {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(200u16));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
        if let Some(status) = child.try_wait()? {
            break status.into_raw() as u32;
        }
        killed_because = match (lifetime, cfg.stop_by.get()) {
            (Some(limit), _) if started.elapsed() >= limit => Some(format!(
                "compile killed after the --job-lifetime of {}s",
                limit.as_secs()
            )),
            (_, Some(stop)) if Instant::now() >= *stop => {
                Some("compile killed: the daemon is stopping".to_string())
            }
            _ => None,
        };
        if let Some(why) = &killed_because {
            log::warn!("{why} ({})", argv[0]);
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break TIMEOUT_STATUS;
        }
    };
    let mut stderr = crate::read_whole(&err_file)?;
    if let Some(why) = killed_because {
        stderr.extend_from_slice(
            format!("distccd[{}] (serve) ERROR: {why}\n", std::process::id()).as_bytes(),
        );
    }
    Ok((status, crate::read_whole(&out_file)?, stderr))
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
fn producer_fix(compile: &cmdline::Compile, compiler: &str, cfg: &JobConfig) -> ProducerFix {
    let Some(hook) = crate::toolchain::producer::wrapper() else {
        return ProducerFix::Impossible;
    };
    let run = |argv: &[String], env| run_compiler(argv, env, cfg).map(|(status, _, _)| status);
    crate::toolchain::producer::fix_for(&crate::toolchain::producer::Job {
        compile,
        compiler,
        hook,
        tmp_root: &cfg.tmp_root,
        search_path: cfg.compiler_path.as_deref(),
        run: &run,
    })
}

fn run_job(stream: &mut (impl Read + Write), cfg: &JobConfig) -> Result<Done, JobError> {
    // Buffered: a request's many small packets then take one read, not one each. Nothing
    // follows the request, so dropping the buffer after it loses nothing.
    let mut request = BufReader::with_capacity(16 << 10, &mut *stream);
    let (version, argv) = wire::read_request_header(&mut request, &cfg.limits)?;
    log::debug!("got request: {}", argv_to_string(&argv));
    let compile = match cmdline::classify(&argv) {
        Decision::Remote(c) => c,
        Decision::Local(reason) => return Err(JobError::NotDistributable(reason)),
    };
    // Read the whole request before any refusal, so that the client sees a clean close
    // rather than a reset in the middle of sending.
    let directives_only = debuginfo::requested(&argv);
    let mut input = job_file(cfg, compile.lang.preprocessed_ext()).map_err(JobError::TempFiles)?;
    let doti = if directives_only {
        // Checked in memory before gcc sees it.
        Some(wire::read_file(&mut request, DOTI, version, &cfg.limits)?)
    } else {
        // Straight into its file: the daemon never holds a whole source.
        let mut file = io::BufWriter::with_capacity(64 << 10, input.as_file_mut());
        wire::read_file_into(&mut request, DOTI, version, &cfg.limits, &mut file)?;
        file.flush().map_err(JobError::TempFiles)?;
        None
    };
    drop(request);
    let compiler_path = policy::check(&argv, &cfg.compilers).map_err(JobError::Refused)?;
    if let Some(mut text) = doti {
        debuginfo::check_directives(&mut text)
            .map_err(|line| JobError::Refused(Refusal::Directive(line)))?;
        input.write_all(&text).map_err(JobError::TempFiles)?;
    }
    let output =
        job_file(cfg, if compile.assembly { "s" } else { "o" }).map_err(JobError::TempFiles)?;

    let mut cmd = compile.with_files(
        &input.path().to_string_lossy(),
        &output.path().to_string_lossy(),
    );
    if let Some(path) = compiler_path {
        cmd[0] = path;
    }
    let mut env = None;
    if let (true, Some(_)) = (directives_only, &cfg.hook) {
        if let Some(hook) = crate::toolchain::producer::wrapper() {
            env = producer_fix(&compile, &cmd[0], cfg).apply(&mut cmd, hook);
        }
    }
    log::debug!("compiling: {}", argv_to_string(&cmd));
    let (status, stdout, stderr) = run_compiler(&cmd, env, cfg).map_err(JobError::TempFiles)?;
    log::debug!("compiled: status {status}");
    // A compiler that succeeds without writing its output (a wrapper script, say) gives
    // an empty result, as distcc 3.4 sends it. The object is sent from its file.
    let object = if status == 0 {
        File::open(output.path()).ok()
    } else {
        None
    };
    let reply = Reply {
        status,
        stderr,
        stdout,
        output: Vec::new(),
    };
    // Cleaned up before answering: once the client has its answer, the job is over, and
    // a daemon counting running jobs sees no overlap with the client's next one. (The
    // object stays readable through its open file.)
    if crate::env_flag("DISTCC_SAVE_TEMPS", false) {
        for file in [input, output] {
            if let Ok((_, path)) = file.keep() {
                log::info!("kept {}", path.display());
            }
        }
    } else {
        drop((input, output));
    }
    match object {
        Some(mut file) => {
            let len = file.metadata().map_err(JobError::TempFiles)?.len();
            reply.write_with_output(stream, version, &mut file, len)?;
        }
        None => reply.write(stream, version)?,
    }
    Ok(Done {
        status,
        compiler: argv[0].clone(),
        input: compile.input().to_string(),
    })
}

/// Serves one job on `stream` and says how it ended; the caller logs it with
/// [`Outcome::log`] once it has counted it.
pub fn serve(stream: &mut (impl Read + Write), cfg: &JobConfig) -> Outcome {
    let start = Instant::now();
    let result = run_job(stream, cfg);
    let time = start.elapsed();
    match result {
        Ok(done) => Outcome {
            result: match done.status {
                0 => JobResult::CompileOk,
                TIMEOUT_STATUS => JobResult::CompileTimeout,
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
            problem: Some((e.to_string(), matches!(e, JobError::Refused(_)))),
        },
    }
}
