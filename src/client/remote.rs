//! One attempt at one host: connect (the preprocessor running meanwhile), send the request
//! with the preprocessed text, and read the reply. Whether the reply is used, and what
//! happens when the attempt fails, is `build`'s business; the packets are `wire`'s.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use super::config::Config;
use super::outputs::save_temp;
use super::preprocess::{self, Pending, Prepared, Text};
use super::pump::Plan;
use super::secure;
use super::Progress;
use crate::cmdline::Compile;
use crate::farm::hosts::{HostSpec, Transport};
use crate::farm::load::Standing;
use crate::farm::lock;
use crate::farm::pick::Farm;
use crate::farm::state::Phase;
use crate::logging::argv_to_string;
use crate::net::{self, ConnectError, Connection};
use crate::toolchain::rename;
use crate::wire::{self, Answer, Ask, Limits, Load, ProtocolError, Reply, Version, DOTI};

/// Why a remote compile did not produce a result.
#[derive(Debug)]
pub(super) enum RemoteError {
    Connect(ConnectError),
    Protocol(ProtocolError),
    /// The local preprocessor failed; its diagnostics are already on stderr.
    Cpp(i32),
    /// The directives-only preprocessor failed (its diagnostics held back): gcc refuses
    /// that mode for some sources, so the local compile has the last word.
    DirectivesOnly(i32),
    CppStart(io::Error),
    ReadInput(io::Error),
    /// Directives-only text that uses the time macros, with `SOURCE_DATE_EPOCH` set: the
    /// host would not expand them as the local compile does.
    TimeMacros,
    /// The host is not used over TLS (a changed key, no pin where one is required): why.
    Untrusted(String),
    /// Our daemon turned the job away at once: every one of its slots is busy.
    Busy(Load),
    /// A host on the load board did not answer the ask: it is no longer ours (distcc 3.4's
    /// daemon closes the connection), and is taken off the board.
    NoLoad(ProtocolError),
}

impl RemoteError {
    /// Whether the trouble is on this machine (preprocessing, reading the input) rather
    /// than with the host: then no other host would do better.
    pub(super) fn is_local(&self) -> bool {
        !matches!(
            self,
            RemoteError::Connect(_)
                | RemoteError::Protocol(_)
                | RemoteError::Untrusted(_)
                | RemoteError::Busy(_)
                | RemoteError::NoLoad(_)
        )
    }
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
            RemoteError::Untrusted(why) => write!(f, "{why}"),
            RemoteError::Busy(load) => write!(
                f,
                "the host is busy: {} jobs running and {} waiting for its {} slots",
                load.running, load.queued, load.slots
            ),
            RemoteError::NoLoad(e) => write!(f, "no answer to the load ask: {e}"),
            RemoteError::TimeMacros => write!(
                f,
                "__DATE__ or __TIME__ in -fdirectives-only text with SOURCE_DATE_EPOCH set"
            ),
        }
    }
}

impl From<ProtocolError> for RemoteError {
    fn from(e: ProtocolError) -> Self {
        RemoteError::Protocol(e)
    }
}

/// Where an attempt goes.
pub(super) struct Route<'a> {
    pub host: &'a HostSpec,
    pub farm: &'a Farm,
    pub io_timeout: Duration,
    /// Whether the host is our daemon, asked for its load before the job (one not asked
    /// lately is asked first on a connection of its own, [`probe`]); SSH hosts never are.
    pub standing: Standing,
    /// Whether the host, if asked, may turn the job away when it is full.
    pub may_refuse: bool,
    /// The identity of the compiler this machine would run for the job, asked only when
    /// the connection is TLS: our daemon, the only one there, reads it before the request
    /// and does not compile the job with another compiler.
    pub compiler: &'a mut dyn FnMut() -> Option<String>,
}

/// Opens a connection to `route.host`: TCP, in TLS or in the clear as `secure` decides, or
/// SSH; never this machine. Returns it and what goes before the request on it.
fn connect(route: &mut Route<'_>, cfg: &Config) -> Result<(Connection, Vec<u8>), RemoteError> {
    let spec = route.host;
    let stream = match &spec.transport {
        Transport::Tcp { host, port } => {
            // Decided first: a host that is not to be used is not even connected to.
            let tls = secure::plan(cfg, host, *port)?;
            let timeout = route.io_timeout;
            let sock = net::connect(host, *port, timeout).map_err(RemoteError::Connect)?;
            let ours = match route.standing {
                Standing::Ours => true,
                Standing::Unknown => probe(spec, host, *port, route.farm, route.io_timeout)?,
                Standing::NotOurs => false,
            };
            if ours {
                ask_load(&sock, route)?;
            }
            match tls {
                Some(tls) => {
                    let stream = tls.reach(cfg, host, sock, timeout)?;
                    let preamble = match (route.compiler)() {
                        Some(text) => compiler_note(&text),
                        None => Vec::new(),
                    };
                    return Ok((stream, preamble));
                }
                None if spec.auth => authenticate(sock, spec, cfg),
                None => Ok(Connection::Tcp(sock)),
            }
        }
        Transport::Ssh { .. } if spec.auth => Err(RemoteError::Untrusted(
            "GSS-API authentication (,auth) is for TCP hosts; SSH authenticates by itself".into(),
        )),
        Transport::Ssh {
            user,
            host,
            command,
        } => net::ssh(&net::ssh_command(
            &cfg.ssh,
            user.as_deref(),
            host,
            command.as_deref(),
        ))
        .map_err(RemoteError::Connect),
        Transport::Local => Err(RemoteError::Connect(ConnectError::Connect {
            addr: "localhost".into(),
            error: io::Error::other("this machine is not reached over the network"),
        })),
    };
    stream.map(|s| (s, Vec::new()))
}

/// How long our daemon's door may take to answer the load ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks our daemon for its load, before anything else on the connection (in the clear even
/// for TLS: the figures are no secret, and forged answers can do no more than send the
/// job to other hosts a few times (`build`'s `MAX_REFUSALS`) and then fail like a dropped
/// connection). A job admitted counts on the board at once, for this machine's next jobs.
/// The door answers at once; a host that does not within [`ASK_TIMEOUT`] is taken for one
/// that is no longer ours (distcc 3.4's daemon waits for more of what it takes for a bad
/// request, and never answers).
fn ask_load(sock: &std::net::TcpStream, route: &Route<'_>) -> Result<(), RemoteError> {
    let may_refuse = route.may_refuse;
    let ask = if may_refuse {
        Ask::MayRefuse
    } else {
        Ask::Wait
    };
    let answer = exchange_ask(sock, ask, route.io_timeout).and_then(|answer| {
        sock.set_read_timeout(Some(route.io_timeout))?;
        Ok(answer)
    });
    let Answer { admitted, mut load } = answer.map_err(|e| {
        route.farm.not_ours(route.host);
        RemoteError::NoLoad(e)
    })?;
    if !admitted && !may_refuse {
        // Our daemon never does that: whoever answered is not to be trusted.
        return Err(RemoteError::Protocol(ProtocolError::Io(io::Error::other(
            "the host turned the job away though it was asked to let it wait",
        ))));
    }
    if !admitted {
        route.farm.heard(route.host, load);
        return Err(RemoteError::Busy(load));
    }
    if u64::from(load.running) + u64::from(load.queued) < u64::from(load.slots) {
        load.running += 1;
    } else {
        load.queued = load.queued.saturating_add(1);
    }
    route.farm.heard(route.host, load);
    Ok(())
}

/// Sends `ask` on `sock` and reads the answer, within [`ASK_TIMEOUT`] (the read timeout
/// stays so). A probe is alone on its connection: the sending side is closed after it.
fn exchange_ask(
    mut sock: &std::net::TcpStream,
    ask: Ask,
    io_timeout: Duration,
) -> Result<Answer, ProtocolError> {
    sock.set_read_timeout(Some(ASK_TIMEOUT.min(io_timeout)))
        .and_then(|()| sock.write_all(&wire::load_ask(ask)))
        .and_then(|()| match ask {
            Ask::Probe => sock.shutdown(std::net::Shutdown::Write),
            _ => Ok(()),
        })
        .map_err(ProtocolError::Io)
        .and_then(|()| Answer::read(&mut sock))
}

/// Asks `host`, not asked lately, whether it is our daemon, with the ask alone on a
/// connection of its own, whose sending side is then closed: our daemon answers with its
/// figures, which go on the board; distcc 3.4's takes it for a bad request and, as nothing
/// more can come, closes at once. Returns whether it answered. A connection that cannot
/// be made fails the attempt as the job's own would.
fn probe(
    spec: &HostSpec,
    host: &str,
    port: u16,
    farm: &Farm,
    io_timeout: Duration,
) -> Result<bool, RemoteError> {
    let sock = net::connect(host, port, io_timeout).map_err(RemoteError::Connect)?;
    match exchange_ask(&sock, Ask::Probe, io_timeout) {
        Ok(answer) => {
            farm.heard(spec, answer.load);
            Ok(true)
        }
        Err(e) => {
            log::debug!(
                "{} does not tell its load ({e}): distcc 3.4's daemon",
                spec.spec
            );
            farm.not_ours(spec);
            Ok(false)
        }
    }
}

/// Whether `spec` is our daemon, as the board says or, when it was not asked lately, as a
/// probe finds (which the board then keeps, so the job's connection does not probe again).
/// An SSH host never says, and a host that is not to be reached at all is not probed:
/// neither counts as ours.
pub(super) fn is_ours(spec: &HostSpec, farm: &Farm, cfg: &Config, io_timeout: Duration) -> bool {
    let Transport::Tcp { host, port } = &spec.transport else {
        return false;
    };
    match farm.standing(spec) {
        Standing::Ours => true,
        Standing::NotOurs => false,
        Standing::Unknown => {
            secure::plan(cfg, host, *port).is_ok()
                && probe(spec, host, *port, farm, io_timeout).unwrap_or(false)
        }
    }
}

/// The note before a request that says which compiler the client would run (`CCID`).
fn compiler_note(text: &str) -> Vec<u8> {
    if text.len() > wire::MAX_CCID {
        return Vec::new();
    }
    let mut note = wire::header(wire::CCID, text.len() as u32).to_vec();
    note.extend_from_slice(text.as_bytes());
    note
}

/// GSS-API authentication (`,auth`) on a classic connection, as distcc 3.4 does it. A
/// host that goes silent or breaks the connection is backed off; a refusal, or a trouble
/// here (no ticket), is said once per build and the host is not.
fn authenticate(
    mut sock: std::net::TcpStream,
    spec: &HostSpec,
    cfg: &Config,
) -> Result<Connection, RemoteError> {
    let untrusted = |e: &dyn std::fmt::Display| {
        RemoteError::Untrusted(format!("GSS-API authentication failed: {e}"))
    };
    let name = match &spec.auth_name {
        Some(name) => name.clone(),
        None => net::gssapi::peer_name(&sock).map_err(|e| untrusted(&e))?,
    };
    net::gssapi::authenticate(&mut sock, &name, cfg.principal.as_deref()).map_err(|e| {
        if e.is_connection() {
            RemoteError::Connect(ConnectError::Connect {
                addr: spec.spec.clone(),
                error: std::io::Error::other(format!("GSS-API authentication: {e}")),
            })
        } else {
            untrusted(&e)
        }
    })?;
    log::debug!("authenticated to {} as host {name}", spec.spec);
    Ok(Connection::Tcp(sock))
}

/// Sends the job to `host` and returns its reply. The preprocessor runs while we connect,
/// unless `ready` already holds its text. When the host turns the job away, the text is
/// left in `ready` for the next.
pub(super) fn compile_remote<'a>(
    job: &'a Compile,
    route: &mut Route<'_>,
    cfg: &Config,
    progress: &mut Progress,
    ready: &mut Option<Prepared<'a>>,
) -> Result<Reply, RemoteError> {
    let (host, farm) = (route.host, route.farm);
    // One of this machine's preprocessor slots, held while the preprocessor runs.
    let cpp_slot = if job.preprocessed || ready.is_some() {
        None
    } else {
        farm.machine_slot(lock::LOCAL_CPP, farm.cpp_slots)
    };
    let pending = match ready.take() {
        Some(prepared) => Pending::Ready(prepared),
        None => {
            progress.note(Phase::Preprocess);
            Pending::Running(preprocess::start_source(job, false)?)
        }
    };
    progress.note(Phase::Connect);
    let ((mut stream, preamble), pending) = match (connect(route, cfg), pending) {
        (Ok(opened), pending) => (opened, pending),
        // The next host will want the text.
        (Err(e @ (RemoteError::Busy(_) | RemoteError::NoLoad(_))), pending) => {
            *ready = Some(match pending {
                Pending::Running(source) => {
                    progress.note(Phase::Preprocess);
                    preprocess::preprocessed(job, source, cfg.source_date_epoch.is_some())?
                }
                Pending::Ready(prepared) => prepared,
            });
            return Err(e);
        }
        (Err(e), pending) => {
            if let Pending::Running(source) = pending {
                source.abandon();
            }
            return Err(e);
        }
    };
    let (job, text) = match pending {
        Pending::Running(source) => {
            progress.note(Phase::Preprocess);
            preprocess::preprocessed(job, source, cfg.source_date_epoch.is_some())?
        }
        Pending::Ready(prepared) => prepared,
    };
    drop(cpp_slot);
    progress.note(Phase::Send);
    send(&mut stream, preamble, &job, host, cfg, text)?;
    read_reply(
        &mut stream,
        host.version,
        cfg,
        progress,
        matches!(host.transport, Transport::Tcp { .. }),
    )
}

/// Sends a pump-mode job to `host` (protocol 3): the command line and the files the include
/// server named; the host preprocesses. Returns its reply, with the dependency file.
pub(super) fn compile_pump(
    route: &mut Route<'_>,
    cfg: &Config,
    progress: &mut Progress,
    plan: &Plan,
) -> Result<Reply, RemoteError> {
    let host = route.host;
    progress.note(Phase::Connect);
    let (mut stream, mut request) = connect(route, cfg)?;
    progress.note(Phase::Send);
    let mut argv = plan.argv.clone();
    if cfg.rewrite_cross {
        rename::rewrite_for_server(&mut argv);
    }
    log::debug!(
        "sending to {} with the {} files it reads (protocol 3): {}",
        host.spec,
        plan.files.len(),
        argv_to_string(&argv)
    );
    wire::write_pump_request(&mut request, &plan.cwd, &argv, &plan.files)?;
    stream.write_all(&request).map_err(ProtocolError::Io)?;
    read_reply(
        &mut stream,
        Version::Pump,
        cfg,
        progress,
        matches!(host.transport, Transport::Tcp { .. }),
    )
}

/// The host's reply to the job just sent on `stream`. The host compiles until the reply's
/// first bytes come, which the monitor and the trace see apart from receiving the rest.
/// Then our daemon's notes, when something needs them: the load board (a host over `tcp`:
/// the load comes at once after the reply), the compiler check (every reply: the
/// compiler's identity comes last) or the cache (a success: its counters, and whose
/// compiler made the result); distcc 3.4's daemon sends none and closes the connection a
/// moment later, which this waits for.
/// Last, what the connection moved, for the trace.
fn read_reply(
    stream: &mut Connection,
    version: Version,
    cfg: &Config,
    progress: &mut Progress,
    tcp: bool,
) -> Result<Reply, RemoteError> {
    progress.note(Phase::Compile);
    // Buffered: the reply's headers then take one read, not one each.
    let mut reply = io::BufReader::with_capacity(16 << 10, &mut *stream);
    loop {
        // As `read_exact` does: a stopped and continued client (^Z, fg) gets EINTR from
        // a socket with a receive timeout, which is no failure of the host.
        match io::BufRead::fill_buf(&mut reply) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ProtocolError::Io(e).into()),
        }
    }
    progress.note(Phase::Receive);
    let mut got = Reply::read(&mut reply, version, &Limits::default())?;
    // Our daemon's notes come after the reply, once it knows its compiler's identity.
    progress.step("notes");
    // The cache keeps no result from another compiler than this machine's, check or not.
    let compiler = cfg.compiler_check || (cfg.cache.is_some() && got.status == 0);
    if tcp || compiler {
        got.read_note(&mut reply, compiler);
    }
    drop(reply);
    progress.traffic(stream);
    Ok(got)
}

/// The command line a host compiles the job's text with.
pub(super) fn argv_for_host(job: &Compile, cfg: &Config) -> Vec<String> {
    let mut argv = job.server_argv();
    if cfg.rewrite_cross {
        rename::rewrite_for_server(&mut argv);
    }
    argv
}

/// Sends the request: its header, then the text. The request goes once the text is ready,
/// since the text decides the command line (see `preprocess::preprocessed`); its header
/// then leaves in the same packet as the text's start.
fn send(
    stream: &mut Connection,
    mut head: Vec<u8>,
    job: &Compile,
    host: &HostSpec,
    cfg: &Config,
    text: Text,
) -> Result<(), RemoteError> {
    let argv = argv_for_host(job, cfg);
    log::debug!("sending to {}: {}", host.spec, argv_to_string(&argv));
    wire::write_request_header(&mut head, host.version, &argv)?;
    match text {
        // A large text goes from the preprocessor's memory file to the socket without
        // passing through our memory (sendfile), as distcc 3.4 sends its temporary file.
        Text::Memory(file, len)
            if len > wire::SMALL_FILE as u64 && !host.version.compressed() && !cfg.save_temps =>
        {
            head.extend_from_slice(&wire::header(DOTI, wire::header_len(DOTI, len)?));
            stream
                .write_with_file(&head, &file, len)
                .map_err(ProtocolError::Io)?;
        }
        text => {
            let text = text.into_bytes().map_err(RemoteError::CppStart)?;
            if cfg.save_temps {
                save_temp(&text, job.lang.preprocessed_ext());
            }
            if text.len() <= wire::SMALL_FILE {
                wire::write_file(&mut head, DOTI, host.version, &text)?;
                stream.write_all(&head).map_err(ProtocolError::Io)?;
            } else {
                stream.write_all(&head).map_err(ProtocolError::Io)?;
                wire::write_file(stream, DOTI, host.version, &text)?;
            }
        }
    }
    Ok(())
}
