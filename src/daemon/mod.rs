//! The volunteer daemon's process: the listening socket, the access check on each
//! connection, the bounded pool of workers, detaching into the background, and inetd mode.
//!
//! `--jobs N` workers each accept and serve one connection at a time, so at most N jobs run
//! at once and further clients wait in the kernel's listen backlog, as with distcc 3.4's
//! preforked children. What a job does is `serve`'s business; who may connect is `access`'s.

pub mod access;
pub mod job;
pub mod stats;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use socket2::{Domain, Socket, Type};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cmdline::policy::Compilers;
use crate::exitcode;
use crate::logging;
use access::Allow;
use job::{JobConfig, StopBy};
use stats::Stats;

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    /// `--listen`: the address to bind, all IPv4 addresses when absent.
    pub listen: Option<String>,
    pub allow: Vec<Allow>,
    pub jobs: usize,
    /// `--inetd`: serve one job on stdin/stdout.
    pub inetd: bool,
    /// Stay in the foreground (`--no-detach`).
    pub no_detach: bool,
    pub pid_file: Option<PathBuf>,
    /// `--user`: whom to run as when started as root.
    pub user: Option<String>,
    /// `--nice`: the niceness increment applied at start.
    pub nice: i32,
    /// `--stats`: serve the statistics page on this port.
    pub stats_port: Option<u16>,
    /// How long a stopping daemon lets running jobs go on.
    pub stop_grace: Duration,
    /// Per-read and per-write timeout on client connections.
    pub io_timeout: Duration,
    pub job: JobConfig,
}

/// Why the daemon could not start.
#[derive(Debug)]
pub enum DaemonError {
    Resolve {
        listen: String,
        error: String,
    },
    Bind {
        addr: SocketAddr,
        error: io::Error,
    },
    Detach(nix::Error),
    PidFile {
        path: PathBuf,
        error: io::Error,
    },
    /// Root could not be given up.
    SetUid(String),
    /// The whitelist directory cannot be read by the user the daemon runs as.
    Whitelist {
        dir: PathBuf,
        error: io::Error,
    },
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Resolve { listen, error } => {
                write!(f, "cannot resolve --listen address \"{listen}\": {error}")
            }
            DaemonError::Bind { addr, error } => write!(
                f,
                "failed to listen on {addr}: {error} (is another distccd using the port? see --port)"
            ),
            DaemonError::Detach(e) => write!(f, "failed to detach into the background: {e}"),
            DaemonError::PidFile { path, error } => {
                write!(f, "failed to write pid file {}: {error}", path.display())
            }
            DaemonError::Whitelist { dir, error } => write!(
                f,
                "cannot read the compiler whitelist {} as the user distccd runs as: {error}; \
                 every job would be refused",
                dir.display()
            ),
            DaemonError::SetUid(why) => write!(
                f,
                "refusing to compile as root: {why} (start distccd as an unprivileged user, or \
                 give --user NAME)"
            ),
        }
    }
}

impl std::error::Error for DaemonError {}

impl DaemonError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Resolve { .. } | DaemonError::Bind { .. } => exitcode::BIND_FAILED,
            DaemonError::Detach(_) | DaemonError::PidFile { .. } => exitcode::DISTCC_FAILED,
            DaemonError::SetUid(_) => exitcode::SETUID_FAILED,
            DaemonError::Whitelist { .. } => exitcode::COMPILER_MISSING,
        }
    }
}

fn bind_address(opts: &Options) -> Result<SocketAddr, DaemonError> {
    let host = opts.listen.as_deref().unwrap_or("0.0.0.0");
    let resolve_err = |error: String| DaemonError::Resolve {
        listen: host.to_string(),
        error,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, opts.port));
    }
    (host, opts.port)
        .to_socket_addrs()
        .map_err(|e| resolve_err(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_err("no addresses".into()))
}

/// Binds and listens with a backlog deep enough for a whole `make -j` of clients.
pub fn listen(opts: &Options) -> Result<TcpListener, DaemonError> {
    let addr = bind_address(opts)?;
    let bind_err = |error| DaemonError::Bind { addr, error };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(bind_err)?;
    }
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket.listen(1024).map_err(bind_err)?;
    // As distcc 3.4: accept() returns only once the client has sent something, so that a
    // connection that says nothing never takes a worker. DISTCC_TCP_DEFER_ACCEPT=0 turns
    // it off.
    if std::env::var("DISTCC_TCP_DEFER_ACCEPT").as_deref() != Ok("0") {
        let secs: libc::c_int = 1;
        // SAFETY: a plain integer option on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&secs as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            log::warn!("TCP_DEFER_ACCEPT: {}", io::Error::last_os_error());
        }
    }
    Ok(socket.into())
}

/// Forks into the background: the parent exits, the child leads a new session with its
/// standard streams on /dev/null. Must run before any thread is started.
fn detach() -> Result<(), DaemonError> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: no other thread exists yet, so the child may run arbitrary code.
    match unsafe { fork() }.map_err(DaemonError::Detach)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid().map_err(DaemonError::Detach)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| DaemonError::Detach(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    Ok(())
}

fn write_pid_file(path: &PathBuf) -> Result<(), DaemonError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
        DaemonError::PidFile {
            path: path.clone(),
            error,
        }
    })
}

/// A client connection whose reads must all be done by one deadline, so that a client that
/// sends a byte now and then cannot hold a worker longer than the I/O timeout (distcc 3.4's
/// reads have no timeout at all).
struct Deadline<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    /// A stopping daemon's own deadline, which may come first.
    stop_by: &'a StopBy,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = match self.stop_by.get() {
            Some(stop) => self.deadline.min(*stop),
            None => self.deadline,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request took too long to arrive",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        (&*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.stream).flush()
    }
}

/// Started as root, becomes `--user` (default `distcc`, then Debian's `distccd`, then
/// `nobody`, then uid 65534): no supplementary groups, and no way back to privilege
/// through set-uid programs. Compiling as root is never an option. Anyone else stays as is.
/// Also applies `--nice`.
pub fn drop_privileges(opts: &Options) -> Result<(), DaemonError> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid, User};
    // SAFETY: nice() only changes this process's scheduling priority.
    unsafe { libc::nice(opts.nice) };
    if !Uid::effective().is_root() {
        if let Some(user) = &opts.user {
            log::warn!("--user {user} ignored: distccd was not started as root");
        }
        return Ok(());
    }
    let candidates: Vec<&str> = match &opts.user {
        Some(u) => vec![u.as_str(), "nobody"],
        None => vec!["distcc", "distccd", "nobody"],
    };
    let found = candidates
        .iter()
        .find_map(|name| User::from_name(name).ok().flatten());
    let (uid, gid, name) = match found {
        Some(u) => (u.uid, u.gid, u.name),
        None => (Uid::from_raw(65534), Gid::from_raw(65534), "65534".into()),
    };
    if uid.is_root() {
        return Err(DaemonError::SetUid(format!("user {name} is root")));
    }
    let fail = |what: &str, e: nix::Error| DaemonError::SetUid(format!("{what}: {e}"));
    setgroups(&[gid]).map_err(|e| fail("setgroups", e))?;
    setgid(gid).map_err(|e| fail("setgid", e))?;
    setuid(uid).map_err(|e| fail("setuid", e))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(DaemonError::SetUid("root could be regained".into()));
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    log::info!("running as user {name} (uid {uid}, gid {gid})");
    Ok(())
}

/// Gives up root, then checks that the whitelist can still be read: otherwise every job
/// would be refused while the daemon looked healthy.
fn become_worker(opts: &Options) -> Result<(), DaemonError> {
    drop_privileges(opts)?;
    if let Compilers::Whitelist(dir) = &opts.job.compilers {
        std::fs::read_dir(dir).map_err(|error| DaemonError::Whitelist {
            dir: dir.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Serves one accepted connection, if its address is allowed.
fn handle(stream: TcpStream, peer: SocketAddr, opts: &Options, stats: &Stats) {
    let client = peer.to_string();
    if !access::allowed(&opts.allow, peer.ip()) {
        log::error!("connection from client '{client}' denied by access list");
        return;
    }
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_write_timeout(Some(opts.io_timeout)) {
        log::error!("failed to set timeouts for {client}: {e}");
        return;
    }
    let mut conn = Deadline {
        stream: &stream,
        deadline: Instant::now() + opts.io_timeout,
        stop_by: &opts.job.stop_by,
    };
    // A client that connects and closes without a word (a port check) is no job.
    let mut first = [0u8; 1];
    let _ = stream.set_read_timeout(Some(opts.io_timeout));
    if matches!(stream.peek(&mut first), Ok(0)) {
        log::debug!("client {client} closed the connection without sending anything");
        stats.silent_connection();
        return;
    }
    stats.job_started();
    let outcome = job::serve(&mut conn, &opts.job);
    stats.job_ended(&outcome);
    outcome.log(&client);
}

/// One worker: accepts and serves connections, one at a time, until the daemon stops.
fn worker(listener: &TcpListener, opts: &Options, stats: &Stats, stopping: &AtomicBool) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                // A bug in one job must not take the worker, and with it a job slot, away.
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle(stream, peer, opts, stats)
                }));
                if served.is_err() {
                    log::error!("internal error while serving {peer}; job abandoned");
                }
            }
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                log::error!("accept failed: {e}");
                // EMFILE and the like: give the system a moment rather than spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Serves the statistics page to allowed clients until the daemon stops: reads what the
/// client sends (at most 1 KiB, as distcc 3.4 does), answers, closes.
fn stats_server(listener: &TcpListener, opts: &Options, stats: &Stats, stopping: &AtomicBool) {
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                log::error!("stats accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if !access::allowed(&opts.allow, peer.ip()) {
            log::error!("stats connection from client '{peer}' denied by access list");
            continue;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(stats.page().as_bytes());
    }
}

/// Waits for signals: SIGHUP reopens the log file; SIGTERM or SIGINT stops the daemon.
/// Returns the stopping signal.
fn wait_for_stop(signals: &SigSet) -> Signal {
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => {
                if let Err(e) = logging::reopen() {
                    eprintln!("distccd: ERROR: failed to reopen the log file: {e}");
                }
                log::info!("log file reopened on SIGHUP");
            }
            Ok(sig) => return sig,
            Err(e) => log::error!("sigwait failed: {e}"),
        }
    }
}

/// Runs the standalone daemon: listens, detaches unless told not to, and serves until
/// SIGTERM or SIGINT. Then it stops accepting, lets running jobs finish, removes its pid
/// file and returns.
/// Keeps a long-running daemon's memory at what its jobs use now. Each job holds a source
/// and an object of up to megabytes for a moment; glibc's default raises its mmap
/// threshold to the largest block freed, after which such buffers come from the heap of
/// each worker thread and stay resident. A fixed threshold gives them back at once.
fn bound_heap() {
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 10);
    }
}

pub fn run_daemon(opts: Options) -> Result<(), DaemonError> {
    let listener = listen(&opts)?;
    let stats_listener = match opts.stats_port {
        Some(port) => Some(listen(&Options {
            port,
            ..opts.clone()
        })?),
        None => None,
    };
    let stats = Stats::new(opts.job.tmp_root.clone());
    if !opts.no_detach {
        detach()?;
    }
    // Written while still root, so that it lands where it was asked for (3.4 writes it
    // after giving up root and fails in /run).
    if let Some(path) = &opts.pid_file {
        write_pid_file(path)?;
    }
    become_worker(&opts)?;
    bound_heap();
    log::debug!("allowing up to {} active jobs", opts.jobs);
    if let Ok(addr) = listener.local_addr() {
        log::info!("listening on {addr}");
    }
    // Every thread inherits this mask, so the signals reach only the sigwait below.
    // (Compilers start with a clean mask: std resets it in children.)
    let mut signals = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(sig);
    }
    if let Err(e) = signals.thread_block() {
        log::warn!("failed to block signals: {e}; SIGTERM will stop the daemon at once");
    }
    let stopping = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs {
            scope.spawn(|| worker(&listener, &opts, &stats, &stopping));
        }
        if let Some(l) = &stats_listener {
            scope.spawn(|| stats_server(l, &opts, &stats, &stopping));
        }
        let sig = wait_for_stop(&signals);
        log::info!("stopping on {sig}: no new jobs; waiting for running jobs to finish");
        stopping.store(true, Ordering::SeqCst);
        let _ = opts.job.stop_by.set(Instant::now() + opts.stop_grace);
        // Wakes every worker blocked in accept().
        for l in std::iter::once(&listener).chain(&stats_listener) {
            let _ = nix::sys::socket::shutdown(l.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    });
    if let Some(path) = &opts.pid_file {
        if let Err(e) = std::fs::remove_file(path) {
            // Typical when root was given up and the file is in a directory of root's.
            log::warn!("failed to remove pid file {}: {e}", path.display());
        }
    }
    log::info!("stopped");
    Ok(())
}

/// stdin and stdout as one stream.
struct StdStream {
    input: io::Stdin,
    output: io::Stdout,
}

impl Read for StdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for StdStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Serves one job on stdin/stdout (inetd, or SSH). A network peer must pass the access
/// list (distcc 3.4 accepts anyone when none was given); a pipe or a Unix socket is always
/// accepted, its other end having logged in already.
pub fn run_inetd(opts: &Options) -> Result<(), DaemonError> {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    become_worker(opts)?;
    let peer = getpeername::<SockaddrStorage>(0).ok();
    let ip = peer.as_ref().and_then(|addr| {
        addr.as_sockaddr_in()
            .map(|a| IpAddr::V4(a.ip()))
            .or_else(|| addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
    });
    let client = match (ip, &peer) {
        // A network peer must be allowed explicitly (distcc 3.4 serves anyone here).
        (Some(ip), Some(addr)) => {
            if !access::allowed(&opts.allow, ip) {
                log::error!("connection from client '{addr}' denied by access list");
                return Ok(());
            }
            addr.to_string()
        }
        // A pipe, or a Unix socket pair as distcc 3.4's client gives ssh: the far end
        // logged in through SSH.
        _ => "NOTSOCKET".to_string(),
    };
    let mut stream = StdStream {
        input: io::stdin(),
        output: io::stdout(),
    };
    job::serve(&mut stream, &opts.job).log(&client);
    Ok(())
}
