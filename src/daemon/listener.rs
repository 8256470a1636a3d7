//! The standalone daemon's process: the listening socket, detaching into the background,
//! the pid file, the bounded pool of workers, the statistics page, and the signals (SIGHUP
//! reopens the log; SIGTERM, SIGINT and the `--lifetime` alarm stop the daemon cleanly).
//!
//! `--jobs N` workers each serve one connection at a time, so at most N jobs run at once;
//! further clients wait in the door's queue, as they waited in the listen backlog of distcc
//! 3.4's preforked children, unless they asked to be turned away (`door`). What a job does
//! is `job`'s business; who may connect is `access`'s; giving up root is `privileges`'s.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use socket2::{Domain, Socket, Type};

use super::door::{Arrival, Door};
use super::privileges::{self, Keeper};
use super::stats::Stats;
use super::{access, job, tls, Config, DaemonError, Deadline};
use crate::cmdline::policy::Compilers;
use crate::logging;
use crate::net;
use crate::toolchain::identity::Identity;
use crate::wire;

fn bind_address(cfg: &Config, port: u16) -> Result<SocketAddr, DaemonError> {
    let host = cfg.listen.as_deref().unwrap_or("0.0.0.0");
    let resolve_err = |error: String| DaemonError::Resolve {
        listen: host.to_string(),
        error,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| resolve_err(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_err("no addresses".into()))
}

/// Binds and listens on `port` with a backlog deep enough for a whole `make -j` of clients.
pub fn listen(cfg: &Config, port: u16) -> Result<TcpListener, DaemonError> {
    let addr = bind_address(cfg, port)?;
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
    if cfg.tcp_defer_accept {
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

fn write_pid_file(path: &Path) -> Result<(), DaemonError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
        DaemonError::PidFile {
            path: path.to_path_buf(),
            error,
        }
    })
}

/// Checks that the whitelist can still be read once root is given up: otherwise every job
/// would be refused while the daemon looked healthy.
pub(crate) fn check_whitelist(cfg: &Config) -> Result<(), DaemonError> {
    if let Compilers::Whitelist(dir) = &cfg.job.compilers {
        std::fs::read_dir(dir).map_err(|error| DaemonError::Whitelist {
            dir: dir.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Checks that the authorised keys, if any, can be read again once root is given up:
/// otherwise a SIGHUP after a key was revoked would keep it.
fn check_authorized_keys(cfg: &Config) -> Result<(), DaemonError> {
    let Some(authorized) = cfg.tls.as_ref().and_then(|t| t.authorized.as_ref()) else {
        return Ok(());
    };
    std::fs::File::open(&authorized.path)
        .map(drop)
        .map_err(|e| {
            DaemonError::Tls(format!(
                "--authorized-keys {}: {} as the user distccd runs as, which SIGHUP needs to \
             read it again",
                authorized.path.display(),
                logging::strerror(&e)
            ))
        })
}

/// Checks that the cache directory, if any, can be written once root is given up; makes
/// it when it does not exist.
pub(crate) fn check_cache(cfg: &Config) -> Result<(), DaemonError> {
    let Some(cache) = &cfg.job.cache else {
        return Ok(());
    };
    let error = |error| DaemonError::CacheDir {
        dir: cache.dir.clone(),
        error,
    };
    crate::ensure_dir(&cache.dir).map_err(error)?;
    // Whoever can write there can put an object in it that the daemon would serve to
    // every client.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache.dir)
        .map_err(error)?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(error(io::Error::other(format!(
            "it is writable by other users (mode {:o}): anyone who can write there could \
             plant objects for every client; make it writable by its owner only",
            mode & 0o7777
        ))));
    }
    tempfile::tempfile_in(&cache.dir).map_err(error)?;
    Ok(())
}

/// Serves one accepted connection (the door has checked its address).
fn handle(arrival: Arrival, cfg: &Config, stats: &Stats, door: &Door) {
    let Arrival {
        mut stream,
        peer,
        answered,
        accepted,
    } = arrival;
    let arrived = job::Arrived {
        compiler: None,
        waited: accepted.elapsed(),
    };
    let client = peer.to_string();
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_write_timeout(Some(cfg.io_timeout)) {
        log::error!("failed to set timeouts for {client}: {e}");
        return;
    }
    // A client that connects and closes without a word (a port check) is no job.
    let mut first = [0u8; 1];
    let _ = stream.set_read_timeout(Some(cfg.io_timeout));
    if matches!(stream.peek(&mut first), Ok(0)) {
        log::debug!("client {client} closed the connection without sending anything");
        stats.silent_connection();
        return;
    }
    // An ask for the load that came too late for the door: this connection is served.
    if !answered && first == wire::LOAD[..1] {
        let mut ask = [0u8; 12];
        let ask = (stream.read_exact(&mut ask).ok()).and_then(|()| wire::parse_load_ask(&ask));
        if ask.is_none() || door.answer_served(&mut stream).is_err() {
            log::warn!("client {client} sent a malformed load ask: closed");
            return;
        }
        // A monitor's: its state, and nothing follows.
        if ask == Some(wire::Ask::State) {
            let _ = stream.write_all(&door.state_packet(&door.load()));
            return;
        }
        if matches!(stream.peek(&mut first), Ok(0) | Err(_)) {
            return;
        }
    }
    let mut conn = Deadline {
        input: &stream,
        output: &stream,
        deadline: Instant::now() + cfg.io_timeout,
        stop_by: &cfg.job.stop_by,
    };
    let _serving = door.live.begin(&client);
    let outcome = match (&cfg.tls, first[0] == net::tls::HANDSHAKE) {
        (Some(settings), true) => {
            let Some(outcome) = serve_tls(conn, settings, cfg, stats, (&client, arrived.waited))
            else {
                return;
            };
            outcome
        }
        (None, true) => {
            log::warn!(
                "client {client} opened a TLS connection, but this daemon has no key \
                 (--key): closed"
            );
            return;
        }
        (Some(settings), false) if settings.only => {
            stats.job_started();
            refuse(
                &mut conn,
                "this host serves only TLS connections (distccd --tls-only): ask its \
                 administrator for its key's fingerprint, and pin it in your known hosts"
                    .into(),
            )
        }
        (_, false) if first[0] == net::gssapi::HANDSHAKE => match &cfg.gss {
            Some(gss) => match authenticate(gss, &mut conn) {
                Ok(principal) => {
                    log::debug!("client {client} authenticated as {principal}");
                    stats.job_started();
                    job::serve(&mut conn, &cfg.job, &arrived)
                }
                Err(e) => {
                    log::warn!("GSS-API authentication of {client} failed: {e}");
                    return;
                }
            },
            // distcc 3.4 takes the `*` for a bad request and closes; ours says why, which
            // 3.4's client takes for a missing handshake.
            None => {
                stats.job_started();
                refuse(
                    &mut conn,
                    "this host does not do GSS-API authentication (distccd --auth): remove \
                     ,auth from its entry in your host list"
                        .into(),
                )
            }
        },
        (_, false) if cfg.gss.is_some() => {
            stats.job_started();
            refuse(
                &mut conn,
                "this host requires GSS-API authentication: add ,auth to its entry in your \
                 host list"
                    .into(),
            )
        }
        (_, false) => {
            stats.job_started();
            job::serve(&mut conn, &cfg.job, &arrived)
        }
    };
    stats.job_ended(&outcome);
    door.live.ended(&client, &outcome);
    outcome.log(&client);
}

/// GSS-API authentication on a classic connection, bounded as a TLS handshake is.
fn authenticate<R: Read + AsFd, W: Write>(
    gss: &super::gss::Gss,
    conn: &mut Deadline<'_, R, W>,
) -> Result<String, net::gssapi::GssError> {
    let full = conn.shorten(net::tls::HANDSHAKE_TIMEOUT);
    let result = gss.authenticate(conn);
    conn.deadline = full;
    result
}

/// Serves a TLS connection: the handshake (bounded by its own timeout), then the job, or
/// the refusal of a key the daemon does not admit. `None` when the handshake failed.
fn serve_tls<R: Read + AsFd, W: Write>(
    mut conn: Deadline<'_, R, W>,
    settings: &tls::Tls,
    cfg: &Config,
    stats: &Stats,
    (client, waited): (&str, Duration),
) -> Option<job::Outcome> {
    let full = conn.shorten(net::tls::HANDSHAKE_TIMEOUT);
    let mut stream = match net::tls::accept(settings.config.clone(), conn) {
        Ok(stream) => stream,
        Err(e) => {
            match net::tls::tls_error(&e) {
                Some(rustls::Error::AlertReceived(rustls::AlertDescription::AccessDenied)) => {
                    log::warn!(
                        "TLS client {client} does not trust this daemon's key (it pins another)"
                    )
                }
                _ => log::warn!("TLS handshake with {client} failed: {e}"),
            }
            return None;
        }
    };
    stream.sock.deadline = full;
    let key = net::tls::peer_key(&stream.conn).map(|k| k.fingerprint());
    stats.job_started();
    let outcome = match tls::admit(settings, key) {
        Ok(name) => {
            if let Some(key) = key {
                log::debug!("TLS client {client}: key {key} {name}");
            }
            let (compiler, head) = read_client_compiler(&mut stream);
            let mut joined = Joined {
                head: io::Cursor::new(head),
                stream: &mut stream,
            };
            let arrived = job::Arrived {
                compiler: compiler.as_ref(),
                waited,
            };
            job::serve(&mut joined, &cfg.job, &arrived)
        }
        Err(why) => refuse(&mut stream, why),
    };
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Some(outcome)
}

/// What our client says before its request under TLS: the identity of the compiler it
/// would run (`CCID`), so that a job is not compiled with another. Returns it, and the bytes
/// read that were the request's start instead (from a client that said nothing).
fn read_client_compiler(stream: &mut impl Read) -> (Option<Identity>, Vec<u8>) {
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => return (None, head[..got].to_vec()),
            Ok(n) => got += n,
        }
    }
    let Ok(len) = wire::parse_header(&head, wire::CCID) else {
        return (None, head.to_vec());
    };
    let mut text = vec![0; (len as usize).min(wire::MAX_CCID)];
    if len as usize > wire::MAX_CCID || stream.read_exact(&mut text).is_err() {
        // Cut short or too long: what follows is no request either.
        return (None, Vec::new());
    }
    (Identity::parse(&String::from_utf8_lossy(&text)), Vec::new())
}

/// A connection with bytes already read put back in front.
struct Joined<'a, S> {
    head: io::Cursor<Vec<u8>>,
    stream: &'a mut S,
}

impl<S: Read> Read for Joined<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.head.read(buf)? {
            0 => self.stream.read(buf),
            n => Ok(n),
        }
    }
}

impl<S: Write> Write for Joined<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// How long, and how many bytes, a refused client's request is read for: past either, the
/// connection is closed (and the client may see a reset instead of the refusal).
const REFUSED_READ_FOR: Duration = Duration::from_secs(3);
const REFUSED_READ_BYTES: u64 = 64 << 20;

/// Answers a connection that may not ask for anything with `why`, before reading its
/// request: nothing it sends is parsed or stored. What it sends is then read and dropped,
/// within bounds, so that closing does not reset the connection under the refusal before
/// the client has read it.
fn refuse(conn: &mut impl Deadlined, why: String) -> job::Outcome {
    let start = Instant::now();
    if let Err(e) = wire::write_refusal(conn, &why) {
        log::debug!("failed to tell the client of the refusal: {e}");
    } else {
        conn.shorten(REFUSED_READ_FOR);
        let _ = io::copy(&mut conn.take(REFUSED_READ_BYTES), &mut io::sink());
    }
    job::Outcome::refused(why, start.elapsed())
}

/// A connection whose reads end at a deadline that can be brought forward.
trait Deadlined: Read + Write {
    /// Ends reads within `limit` from now, if that is sooner; returns the deadline before.
    fn shorten(&mut self, limit: Duration) -> Instant;
}

impl<R: Read + AsFd, W: Write> Deadlined for Deadline<'_, R, W> {
    fn shorten(&mut self, limit: Duration) -> Instant {
        let before = self.deadline;
        self.deadline = before.min(Instant::now() + limit);
        before
    }
}

impl<C, R: Read + AsFd, W: Write> Deadlined for rustls::StreamOwned<C, Deadline<'_, R, W>>
where
    Self: Read + Write,
{
    fn shorten(&mut self, limit: Duration) -> Instant {
        self.sock.shorten(limit)
    }
}

/// One worker: serves the connections the door queues, one at a time, until the daemon
/// stops.
fn worker(door: &Door, cfg: &Config, stats: &Stats) {
    while let Some(arrival) = door.next() {
        let peer = arrival.peer;
        // A bug in one job must not take the worker, and with it a job slot, away.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle(arrival, cfg, stats, door)
        }));
        door.done();
        if served.is_err() {
            log::error!("internal error while serving {peer}; job abandoned");
        }
    }
}

/// Serves the statistics to allowed clients until the daemon stops: reads what the client
/// sends (at most 1 KiB, as distcc 3.4 does), answers, closes. `/metrics` gets the
/// Prometheus text, `/live` the live page and `/state.json` what it shows; anything else
/// distcc 3.4's page, which 3.4 sends whatever was asked.
fn stats_server(listener: &TcpListener, cfg: &Config, stats: &Stats, stopping: &AtomicBool) {
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
        if !access::allowed(&cfg.allow, peer.ip()) {
            log::error!("stats connection from client '{peer}' denied by access list");
            if let Some(door) = &stats.door {
                door.denied();
            }
            continue;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut request = [0u8; 1024];
        let n = stream.read(&mut request).unwrap_or(0);
        let reply = |kind: &str, body: &str| {
            format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let door = stats.door.as_ref();
        let page = match (http_path(&request[..n]), door) {
            (Some("/metrics"), _) => {
                reply(super::metrics::CONTENT_TYPE, &super::metrics::render(stats))
            }
            (Some("/live"), Some(_)) => reply("text/html; charset=utf-8", super::live::PAGE),
            (Some("/state.json"), Some(door)) => {
                reply("application/json", &door.live.json(&door.load()))
            }
            _ => stats.page(),
        };
        let _ = stream.write_all(page.as_bytes());
    }
}

/// The path of an HTTP `GET` request's first line, without its query.
fn http_path(request: &[u8]) -> Option<&str> {
    let line = request.split(|b| *b == b'\n').next()?;
    let mut words = std::str::from_utf8(line).ok()?.split_whitespace();
    (words.next()? == "GET").then_some(())?;
    words.next()?.split('?').next()
}

/// Reopens the log file at its path (after `logrotate` moved it away), through the keeper
/// when the daemon's user cannot create it there.
fn reopen_log(keeper: Option<&mut Keeper>) {
    if let Some(keeper) = keeper {
        if let Err(e) = keeper.recreate_log() {
            log::error!("failed to create the log file again: {e}");
            return;
        }
    }
    match logging::reopen() {
        Ok(()) => log::info!("log file reopened on SIGHUP"),
        Err(e) => eprintln!("distccd: ERROR: failed to reopen the log file: {e}"),
    }
}

/// Waits for signals: SIGHUP reopens the log file and reads the authorised keys again; SIGTERM, SIGINT or SIGALRM (the
/// `--lifetime` alarm) stops the daemon. Returns the stopping signal.
fn wait_for_stop(cfg: &Config, signals: &SigSet, mut keeper: Option<&mut Keeper>) -> Signal {
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => {
                reopen_log(keeper.as_deref_mut());
                if let Some(authorized) = cfg.tls.as_ref().and_then(|t| t.authorized.as_ref()) {
                    authorized.reload();
                }
            }
            Ok(sig) => return sig,
            Err(e) => log::error!("sigwait failed: {e}"),
        }
    }
}

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

/// Everything from listening to giving up root, in the order that works: bind (maybe a
/// low port), detach, write the pid file where root may, start the keeper if the daemon's
/// user will need one, then give up root. Returns the keeper.
fn start_up(cfg: &Config) -> Result<Option<Keeper>, DaemonError> {
    if !cfg.no_detach {
        detach()?;
    }
    // Written while still root, so that it lands where it was asked for (3.4 writes it
    // after giving up root and fails in /run).
    if let Some(path) = &cfg.pid_file {
        write_pid_file(path)?;
    }
    privileges::apply_nice(cfg.nice);
    let mut keeper = None;
    if let Some(persona) = privileges::persona(cfg.user.as_deref())? {
        if let Some(log) = &cfg.log_file {
            privileges::hand_over_log(log, &persona);
        }
        if let Some(cache) = &cfg.job.cache {
            privileges::hand_over_cache(&cache.dir, &persona);
        }
        keeper =
            Keeper::start_if_needed(&persona, cfg.pid_file.as_deref(), cfg.log_file.as_deref())?;
        privileges::become_user(&persona)?;
    }
    check_whitelist(cfg)?;
    check_cache(cfg)?;
    check_authorized_keys(cfg)?;
    if let Some(gss) = &cfg.gss {
        gss.acquire()?;
    }
    Ok(keeper)
}

/// Starts announcing the daemon for `--zeroconf`. A failure is logged and the daemon serves
/// unannounced, as distcc 3.4's does.
fn announce(cfg: &Config, listener: &TcpListener) -> Option<super::zeroconf::Announcement> {
    let addr = listener.local_addr().ok()?;
    super::zeroconf::Announcement::start(addr.port(), addr.ip(), cfg.jobs)
        .map_err(|e| log::error!("--zeroconf: cannot announce this daemon: {e}"))
        .ok()
}

/// Removes the pid file, through the keeper when there is one.
fn remove_pid_file(path: &Path, keeper: Option<&mut Keeper>) {
    let removed = match keeper {
        Some(keeper) => keeper.remove_pid_file(),
        None => std::fs::remove_file(path),
    };
    if let Err(e) = removed {
        log::warn!("failed to remove pid file {}: {e}", path.display());
    }
}

/// Runs the standalone daemon: listens, detaches unless told not to, and serves until
/// SIGTERM, SIGINT or the end of `--lifetime`. Then it stops accepting, lets running jobs
/// finish, removes its pid file and returns.
pub fn run(mut cfg: Config) -> Result<(), DaemonError> {
    let listener = listen(&cfg, cfg.port)?;
    let stats_listener = match cfg.stats_port {
        Some(port) => Some(listen(&cfg, port)?),
        None => None,
    };
    let mut stats = Stats::new(cfg.job.tmp_root.clone(), cfg.jobs);
    stats.cache_dir = cfg.job.cache.as_ref().map(|c| c.dir.clone());
    let mut keeper = start_up(&cfg)?;
    bound_heap();
    // The descriptor gcc's `-wrapper` runs, open from the start rather than at the first
    // `-g` job, so that an idle daemon's descriptors are the same before and after jobs.
    crate::toolchain::producer::wrapper();
    log::debug!("allowing up to {} active jobs", cfg.jobs);
    if let Ok(addr) = listener.local_addr() {
        log::info!("listening on {addr}");
    }
    // Every thread inherits this mask, so the signals reach only the sigwait below.
    // (Compilers start with a clean mask: std resets it in children.)
    let mut signals = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGALRM,
    ] {
        signals.add(sig);
    }
    if let Err(e) = signals.thread_block() {
        log::warn!("failed to block signals: {e}; SIGTERM will stop the daemon at once");
    }
    if let Some(lifetime) = cfg.lifetime {
        // As distcc 3.4's alarm(), set here because an alarm does not survive detaching.
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        // SAFETY: alarm() only schedules a SIGALRM for this process.
        unsafe { libc::alarm(secs) };
        log::info!("will stop after the --lifetime of {secs}s");
    }
    let door = std::sync::Arc::new(Door::new(cfg.jobs));
    cfg.job.load = Some(door.clone());
    stats.door = Some(door.clone());
    let (cfg, stats) = (cfg, stats);
    let announcement = cfg.zeroconf.then(|| announce(&cfg, &listener)).flatten();
    let stopping = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs {
            scope.spawn(|| worker(&door, &cfg, &stats));
        }
        scope.spawn(|| door.keep(&listener, &cfg.allow, &stopping));
        if let Some(l) = &stats_listener {
            scope.spawn(|| stats_server(l, &cfg, &stats, &stopping));
        }
        let sig = wait_for_stop(&cfg, &signals, keeper.as_mut());
        match sig {
            Signal::SIGALRM => log::info!(
                "stopping at the end of the --lifetime: no new jobs; waiting for running \
                 jobs to finish"
            ),
            _ => log::info!("stopping on {sig}: no new jobs; waiting for running jobs to finish"),
        }
        stopping.store(true, Ordering::SeqCst);
        door.stop();
        if let Some(a) = announcement {
            a.stop();
        }
        let _ = cfg.job.stop_by.set(Instant::now() + cfg.stop_grace);
        // Wakes the door and the stats server, blocked in accept().
        for l in std::iter::once(&listener).chain(&stats_listener) {
            let _ = nix::sys::socket::shutdown(l.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    });
    if let Some(path) = &cfg.pid_file {
        remove_pid_file(path, keeper.as_mut());
    }
    log::info!("stopped");
    Ok(())
}
