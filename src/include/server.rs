//! The include server: a Unix stream socket answering distcc 3.4's include-server
//! requests (see the [module](super) comment for the protocol), one thread per connection,
//! with the directive lists, the system-dir probes and the mirror shared by all requests
//! of a build. An analysis that takes more than [`TIME_LIMIT`] of CPU is "not covered".
//!
//! A request that is not covered gets `ARGC00000000`, and a line `WARNING include server:
//! <why>` on the server's standard error, as distcc 3.4's server writes it with `-d1`.
//!
//! With `DISTCC_INCLUDE_SERVER_STATS=FILE`, the server appends to FILE one line per request,
//! `request WALL_US CPU_US FILES COVERED HOW GENERATION SOURCE` (the time the answer took,
//! on the clock and in the thread's CPU, how many paths it named, whether it was the reply
//! kept from before (`reply`), a kept analysis shipped again (`kept`) or a new one (`new`;
//! `-` when not covered), the mirror's generation it named, and the source's realpath, to
//! the end of the line), and at shutdown one line
//! `server USER_US SYSTEM_US CHILDREN_USER_US CHILDREN_SYSTEM_US` with the CPU the whole
//! server and the compilers it ran used: what the benchmark reports.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use super::closure::{analyze, thread_cpu, Caches, Closure, Contents};
use super::cmdline;
use super::facts::Store;
use super::mirror::Mirror;
use super::sysdirs::SystemDirs;
use super::token::{Fx, FxMap, Sym};
use super::watch::{Plan, Watcher};
use crate::wire::{header, read_body, read_header, Limits, ProtocolError, ARGC, ARGV, CDIR};

/// The CPU time one analysis may take (distcc 3.4's `USER_TIME_QUOTA`).
pub const TIME_LIMIT: Duration = Duration::from_millis(3800);

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest request accepted: arguments, and bytes of all arguments with the cwd.
const MAX_ARGS: u32 = 65_536;
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What the server keeps across the requests of a build.
pub struct IncludeServer {
    caches: Caches,
    /// The analyses made, by the hash of (working directory, command): a command asked
    /// again (a rebuild in the same session) is answered from here while every file and
    /// directory it depended on is unchanged.
    results: Mutex<FxMap<u64, Kept>>,
    mirror: Mirror,
    limit: Duration,
}

impl IncludeServer {
    /// A server with a fresh client root.
    pub fn new() -> Result<IncludeServer, String> {
        IncludeServer::with_facts(None)
    }

    /// A server that keeps what compilers say about themselves in `facts` between
    /// builds.
    pub fn with_facts(facts: Option<Store>) -> Result<IncludeServer, String> {
        IncludeServer::made(facts, Watcher::new())
    }

    /// A server for one request of the process that makes it (the client's own analysis,
    /// see `client::pump`): nothing is watched, since nothing is asked again.
    pub fn for_one_request(facts: Option<Store>) -> Result<IncludeServer, String> {
        IncludeServer::made(facts, None)
    }

    fn made(facts: Option<Store>, watcher: Option<Watcher>) -> Result<IncludeServer, String> {
        let mut caches = Caches::with_compilers(SystemDirs::with_store(facts));
        caches.watcher = watcher;
        Ok(IncludeServer {
            caches,
            results: Mutex::default(),
            mirror: Mirror::new()?,
            limit: TIME_LIMIT,
        })
    }

    /// Whether the analysis kept for this request is checked by change notices rather
    /// than by `stat` (for tests and tools).
    pub fn is_watched(&self, cwd: &str, argv: &[String]) -> bool {
        lock(&self.results)
            .values()
            .any(|k| k.request.0 == cwd && k.request.1 == argv && k.watched.is_some())
    }

    /// Notes that the kept analysis `c` held as of `watched`'s batch.
    fn keep_watched(&self, hash: u64, c: &Arc<Closure>, watched: Option<(Plan, u64)>) {
        if let Some(k) = lock(&self.results).get_mut(&hash) {
            if Arc::ptr_eq(&k.closure, c) {
                k.watched = watched.map(|(p, b)| (Arc::new(p), b));
            }
        }
    }

    /// The files one request would ship (realpaths, the source first), or the reason it
    /// is not covered: the analysis without the mirror, for tests and tools.
    pub fn closure(&self, cwd: &str, argv: &[String]) -> Result<Arc<Closure>, String> {
        self.analysis(cwd, argv).map(|(_, closure, ..)| closure)
    }

    /// The analysis of one request, the hash it is kept under, the reply last made of it
    /// when it was kept and still holds, and what the walk read when it is new (`None`
    /// for a kept analysis).
    fn analysis(
        &self,
        cwd: &str,
        argv: &[String],
    ) -> Result<(u64, Arc<Closure>, Memo, Option<Contents>), String> {
        if !cwd.starts_with('/') {
            return Err(format!("the working directory '{cwd}' is not absolute"));
        }
        // Hashed, not copied, to be looked up: a kernel command has a hundred words.
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = Fx::default();
            (cwd, argv).hash(&mut h);
            h.finish()
        };
        let kept = lock(&self.results)
            .get(&hash)
            .filter(|k| k.request.0 == cwd && k.request.1 == argv)
            .map(|k| (k.closure.clone(), k.reply.clone(), k.watched.clone()));
        if let Some((c, reply, watched)) = kept {
            if let (Some(facts), Some(w), Some((plan, checked))) =
                (c.facts.as_ref(), &self.caches.watcher, &watched)
            {
                if w.unchanged(plan, facts, *checked) {
                    return Ok((hash, c, reply, None));
                }
            }
            if let Some(facts) = c.facts.as_ref() {
                // Watched again before it is checked, so that notices cover what follows.
                let batch = self.caches.watcher.as_ref().map(Watcher::now);
                let plan = (self.caches.watcher.as_ref()).map(|w| w.arm(facts, u64::MAX).0);
                if facts.hold(&self.caches.fs) {
                    let watched = plan.zip(batch).filter(|(p, _)| p.usable);
                    self.keep_watched(hash, &c, watched);
                    return Ok((hash, c, reply, None));
                }
            }
        }
        let cmd = cmdline::parse(argv)?;
        let batch = self.caches.watcher.as_ref().map(Watcher::now);
        let (c, contents) = analyze(&cmd, cwd, &self.caches, self.limit)?;
        let c = Arc::new(c);
        if let Some(facts) = &c.facts {
            // What was watched during the whole walk holds as of the batch before it; what
            // is watched only now is checked once by `stat` (`Watcher::arm`).
            let watched = self.caches.watcher.as_ref().and_then(|w| {
                let (plan, holds) = w.arm(facts, batch.unwrap_or(0));
                (plan.usable && holds).then(|| (Arc::new(plan), batch.unwrap_or(0)))
            });
            let kept = Kept {
                request: (cwd.to_string(), argv.to_vec()),
                closure: c.clone(),
                reply: None,
                watched,
            };
            lock(&self.results).insert(hash, kept);
        }
        Ok((hash, c, None, Some(contents)))
    }

    /// The reply to one request: the paths in the client root, or the reason it is not
    /// covered.
    pub fn answer(&self, cwd: &str, argv: &[String]) -> Result<Vec<String>, String> {
        self.reply(cwd, argv).map(|a| a.files.to_vec())
    }

    /// The reply to one request and the analysis it was made of (whose `entered` is the
    /// trailer after the reply), or the reason it is not covered.
    pub fn answer_with_closure(
        &self,
        cwd: &str,
        argv: &[String],
    ) -> Result<(Vec<String>, Arc<Closure>), String> {
        let a = self.reply(cwd, argv)?;
        Ok((a.files.to_vec(), a.closure))
    }

    /// The reply's paths, the analysis they come from, and how it was answered. A kept
    /// analysis that still holds gets the reply made of it before while the mirror is in
    /// the same generation: the files it names are the versions it read, already in that
    /// root, and a root is only ever added to.
    fn reply(&self, cwd: &str, argv: &[String]) -> Result<Answer, String> {
        let (hash, closure, memo, contents) = self.analysis(cwd, argv)?;
        let how = if contents.is_some() {
            How::Analysed
        } else {
            How::Kept
        };
        if let Some((generation, files)) = memo {
            if generation == self.mirror.generation() {
                return Ok(Answer {
                    files,
                    closure,
                    how: How::KeptReply,
                    generation,
                });
            }
        }
        let sys = &self.caches.compilers;
        let (files, generation) = (self.mirror).ship(
            &closure,
            &mut contents.unwrap_or_default(),
            &sys.all(),
            &|p: &str| sys.contains(p),
        )?;
        let files: Arc<[String]> = files.into();
        // A file only `__has_include` met is not among the analysis's facts: its copy is
        // checked by the mirror at each request.
        let read_all = closure.files.iter().all(|f| f.key.is_some());
        if let Some(k) = lock(&self.results).get_mut(&hash).filter(|_| read_all) {
            if Arc::ptr_eq(&k.closure, &closure) {
                k.reply = Some((generation, files.clone()));
            }
        }
        Ok(Answer {
            files,
            closure,
            how,
            generation,
        })
    }

    /// The current client root (for tests and logs).
    pub fn client_root(&self) -> String {
        self.mirror.root()
    }

    /// Removes the client roots.
    pub fn clean_up(&self) {
        self.mirror.clean_up();
    }

    /// Reads one request from `stream`, answers it, and closes; notes its times in
    /// `stats`.
    pub fn handle(
        &self,
        mut stream: UnixStream,
        stats: Option<&Stats>,
    ) -> Result<(), ProtocolError> {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        // Buffered: a request is two reads of the socket, not two per argument (a
        // kernel command has a hundred). The client sends nothing after it.
        let (cwd, argv) = read_request(&mut std::io::BufReader::new(&stream))?;
        let (start, start_cpu) = (std::time::Instant::now(), thread_cpu());
        let answer = self.reply(&cwd, &argv);
        let (wall, cpu) = (start.elapsed(), thread_cpu().saturating_sub(start_cpu));
        let (files, closure, how, generation) = match answer {
            Ok(a) => (a.files, a.closure, a.how.word(), a.generation),
            Err(why) => {
                eprintln!("WARNING include server: {why}");
                (Arc::default(), Arc::default(), "-", 0)
            }
        };
        if let Some(stats) = stats {
            let source = if closure.source.is_empty() {
                "-"
            } else {
                closure.source.as_str()
            };
            stats.line(&format!(
                "request {} {} {} {} {how} {generation} {source}",
                wall.as_micros(),
                cpu.as_micros(),
                files.len(),
                u8::from(!files.is_empty())
            ));
        }
        // The reply and its trailers in one write, not one each. No trailers after an
        // empty reply.
        let mut out = Vec::new();
        write_reply(&mut out, &files);
        let reply_len = out.len();
        if !files.is_empty() {
            write_entered(&mut out, &closure.entered);
            write_absent(&mut out, &closure.absent_system);
        }
        send(&mut stream, &out, reply_len)?;
        Ok(())
    }
}

/// Writes `out`, whose first `reply_len` bytes are the reply. distcc 3.4's client closes
/// the socket once it has read the reply: failing to write the trailers after it is no
/// failure of the request.
fn send(stream: &mut impl Write, out: &[u8], reply_len: usize) -> std::io::Result<()> {
    let mut sent = 0;
    while sent < out.len() {
        match stream.write(&out[sent..]) {
            Ok(0) if sent < reply_len => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if sent >= reply_len => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The statistics file ([module](self) comment).
pub struct Stats(Mutex<std::fs::File>);

impl Stats {
    fn open(path: &std::ffi::OsStr) -> Result<Stats, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| Stats(Mutex::new(f)))
            .map_err(|e| format!("cannot open {}: {e}", Path::new(path).display()))
    }

    fn line(&self, text: &str) {
        // One write per line: `writeln!` makes two, and the benchmark counts them.
        let line = [text, "\n"].concat();
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(line.as_bytes());
    }

    /// The CPU of the whole server and of the compilers it ran.
    fn finish(&self) {
        let usage = |who| {
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage writes one rusage through a valid pointer.
            unsafe { libc::getrusage(who, &mut ru) };
            let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
            (us(ru.ru_utime), us(ru.ru_stime))
        };
        let (u, s) = usage(libc::RUSAGE_SELF);
        let (cu, cs) = usage(libc::RUSAGE_CHILDREN);
        self.line(&format!("server {u} {s} {cu} {cs}"));
    }
}

/// A request: its working directory and command.
type Request = (String, Vec<String>);

/// The reply last made of an analysis, with the mirror generation it was made in.
type Memo = Option<(u32, Arc<[String]>)>;

/// One request's answer: the reply's paths, the analysis, how it was made and the mirror
/// generation the paths are in.
struct Answer {
    files: Arc<[String]>,
    closure: Arc<Closure>,
    how: How,
    generation: u32,
}

/// How a request was answered, as the statistics file says it.
enum How {
    /// The reply made before for the same request, its analysis still holding.
    KeptReply,
    /// The analysis kept from before, shipped again (the mirror moved on).
    Kept,
    /// A new analysis.
    Analysed,
}

impl How {
    fn word(&self) -> &'static str {
        match self {
            How::KeptReply => "reply",
            How::Kept => "kept",
            How::Analysed => "new",
        }
    }
}

/// An analysis kept for the requests to come.
struct Kept {
    request: Request,
    closure: Arc<Closure>,
    reply: Memo,
    /// Its paths as watched, and the batch of notices as of which it was last found to
    /// hold.
    watched: Option<(Arc<Plan>, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `CDIR`, `ARGC` and the `ARGV`s.
pub fn read_request(r: &mut impl Read) -> Result<(String, Vec<String>), ProtocolError> {
    let mut total = 0usize;
    let mut string = |r: &mut dyn Read, len: u32, token| -> Result<String, ProtocolError> {
        total += len as usize;
        if total > MAX_BYTES {
            return Err(ProtocolError::TooLarge {
                token,
                value: u64::from(len),
                limit: MAX_BYTES as u64,
            });
        }
        let mut buf = vec![0; len as usize];
        r.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(|_| ProtocolError::BadArgument { index: 0 })
    };
    let len = read_header(r, CDIR)?;
    let cwd = string(r, len, CDIR)?;
    let argc = read_header(r, ARGC)?;
    if argc > MAX_ARGS {
        return Err(ProtocolError::TooLarge {
            token: ARGC,
            value: u64::from(argc),
            limit: u64::from(MAX_ARGS),
        });
    }
    let mut argv = Vec::with_capacity(argc.min(1024) as usize);
    for _ in 0..argc {
        let len = read_header(r, ARGV)?;
        argv.push(string(r, len, ARGV)?);
    }
    Ok((cwd, argv))
}

/// Appends `ARGC` and one `ARGV` per path to `out`.
pub fn write_reply(out: &mut Vec<u8>, files: &[String]) {
    out.extend_from_slice(&header(ARGC, files.len() as u32));
    for f in files {
        out.extend_from_slice(&header(ARGV, f.len() as u32));
        out.extend_from_slice(f.as_bytes());
    }
}

/// The token of the trailer after a reply: the files the walk entered (see
/// [`Closure::entered`]), a count and then, as `ARGV`s, `PARENT PATH` each, `PARENT` the
/// index of the includer in the same list or `-`. distcc 3.4's client reads no further
/// than the reply; ours reads it for the compile cache.
pub const ENTERED: crate::wire::Token = *b"ENTD";

fn write_entered(out: &mut Vec<u8>, entered: &[(Sym, Option<usize>)]) {
    out.extend_from_slice(&header(ENTERED, entered.len() as u32));
    // Into the buffer as it goes: a kernel unit enters some 1500 files.
    let mut index = String::new();
    for (path, parent) in entered {
        let path = path.as_str();
        index.clear();
        match parent {
            Some(i) => {
                use std::fmt::Write;
                let _ = write!(index, "{i} ");
            }
            None => index.push_str("- "),
        }
        out.extend_from_slice(&header(ARGV, (index.len() + path.len()) as u32));
        out.extend_from_slice(index.as_bytes());
        out.extend_from_slice(path.as_bytes());
    }
}

/// Reads the trailer after a reply, when the server sent one (ours does). `None` when it
/// did not, or sent one that cannot be read.
pub fn read_entered(r: &mut impl Read, limits: &Limits) -> Option<Vec<(String, Option<usize>)>> {
    let lines = read_trailer(r, ENTERED, limits, limits.max_name_len as usize + 24)?;
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let (parent, path) = line.split_once(' ')?;
        let parent = match parent {
            "-" => None,
            i => Some(i.parse::<usize>().ok().filter(|&i| i < out.len())?),
        };
        out.push((path.to_string(), parent));
    }
    Some(out)
}

/// A trailer's `ARGV`s after its `token` and count, each at most `max_len` bytes; `None`
/// when there is none or it cannot be read. A count may pass the files of a request (a
/// file entered many times, having no guard), but not without bound.
fn read_trailer(
    r: &mut impl Read,
    token: crate::wire::Token,
    limits: &Limits,
    max_len: usize,
) -> Option<Vec<String>> {
    let n = read_header(r, token).ok()?;
    if n > limits.max_files.saturating_mul(16) {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = read_header(r, ARGV).ok()?;
        let body = read_body(r, ARGV, len, max_len).ok()?;
        out.push(String::from_utf8(body).ok()?);
    }
    Some(out)
}

/// The token of the second trailer, after [`ENTERED`]: the paths under the compiler's
/// directories where the walk found no header ([`Closure::absent_system`]), a count and
/// then each as an `ARGV`. Our client lists them for the host to check
/// (`wire::SYSTEM_HEADERS`).
pub const ABSENT: crate::wire::Token = *b"ABSN";

fn write_absent(out: &mut Vec<u8>, absent: &[String]) {
    out.extend_from_slice(&header(ABSENT, absent.len() as u32));
    for path in absent {
        out.extend_from_slice(&header(ARGV, path.len() as u32));
        out.extend_from_slice(path.as_bytes());
    }
}

/// Reads the second trailer, when the server sent one (ours does): `None` when it did
/// not, or sent one that cannot be read.
pub fn read_absent(r: &mut impl Read, limits: &Limits) -> Option<Vec<String>> {
    read_trailer(r, ABSENT, limits, limits.max_name_len as usize)
}

/// Writes one request (the client's side: `distcc`, tests and tools).
pub fn write_request(w: &mut impl Write, cwd: &str, argv: &[String]) -> std::io::Result<()> {
    let mut buf = header(CDIR, cwd.len() as u32).to_vec();
    buf.extend_from_slice(cwd.as_bytes());
    buf.extend_from_slice(&header(ARGC, argv.len() as u32));
    for a in argv {
        buf.extend_from_slice(&header(ARGV, a.len() as u32));
        buf.extend_from_slice(a.as_bytes());
    }
    w.write_all(&buf)
}

/// Reads a reply (the client's side), within `limits`' bounds on counts and lengths.
pub fn read_reply(r: &mut impl Read, limits: &Limits) -> Result<Vec<String>, ProtocolError> {
    let k = read_header(r, ARGC)?;
    if k > limits.max_files {
        return Err(ProtocolError::TooLarge {
            token: ARGC,
            value: u64::from(k),
            limit: u64::from(limits.max_files),
        });
    }
    (0..k)
        .map(|index| {
            let len = read_header(r, ARGV)?;
            let body = read_body(r, ARGV, len, limits.max_name_len as usize)?;
            String::from_utf8(body).map_err(|_| ProtocolError::BadArgument { index })
        })
        .collect()
}

/// Serves on a new socket at `path` until SIGTERM, SIGINT or SIGHUP, then removes the
/// client roots and the socket and exits the process; with `stats`, writes the statistics
/// there; with `facts`, keeps compilers' answers there between builds. `ready` runs once
/// the socket accepts connections.
pub fn serve(
    path: &Path,
    stats: Option<&std::ffi::OsStr>,
    facts: Option<&Path>,
    ready: impl FnOnce(),
) -> Result<(), String> {
    let stats = stats.map(Stats::open).transpose()?.map(Arc::new);
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    // Blocked here, before any thread starts, so that only the waiting thread takes them.
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let server = Arc::new(IncludeServer::with_facts(facts.and_then(Store::open))?);
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    {
        let server = server.clone();
        let path = path.to_path_buf();
        let stats = stats.clone();
        std::thread::spawn(move || {
            let _ = signals.wait();
            if let Some(stats) = &stats {
                stats.finish();
            }
            server.clean_up();
            let _ = std::fs::remove_file(&path);
            std::process::exit(0);
        });
    }
    ready();
    let waiting = Arc::new(Waiting::default());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("WARNING include server: accept failed: {e}");
                continue;
            }
        };
        let Some(mut stream) = waiting.give(stream) else {
            continue;
        };
        let (server, stats, waiting) = (server.clone(), stats.clone(), waiting.clone());
        std::thread::spawn(move || loop {
            if let Err(e) = server.handle(stream, stats.as_deref()) {
                eprintln!("WARNING include server: bad request: {e}");
            }
            stream = waiting.take();
        });
    }
    Ok(())
}

/// The connections accepted and not yet taken, and how many threads wait for one. A
/// thread that answered a request waits for the next instead of ending: a new thread's
/// stack is fresh memory, and faulting it in again for every request showed in the
/// server's CPU.
#[derive(Default)]
struct Waiting {
    queue: Mutex<(std::collections::VecDeque<UnixStream>, usize)>,
    ready: std::sync::Condvar,
}

impl Waiting {
    /// Queues `stream` for a waiting thread; gives it back when none is free, for a new
    /// thread to take.
    fn give(&self, stream: UnixStream) -> Option<UnixStream> {
        let mut q = lock(&self.queue);
        // Threads already woken for earlier connections still count as waiting.
        if q.1 <= q.0.len() {
            return Some(stream);
        }
        q.0.push_back(stream);
        drop(q);
        self.ready.notify_one();
        None
    }

    /// The next connection, waiting for one as long as it takes.
    fn take(&self) -> UnixStream {
        let mut q = lock(&self.queue);
        loop {
            if let Some(s) = q.0.pop_front() {
                return s;
            }
            q.1 += 1;
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            q.1 -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_reads_back_and_a_bad_one_is_none() {
        let entered = vec![
            ("a.h".to_string(), None),
            ("/usr/include/stdio.h".to_string(), Some(0)),
            ("dir with space/b.h".to_string(), Some(1)),
        ];
        let interned: Vec<_> = (entered.iter())
            .map(|(p, i)| (crate::include::token::sym(p), *i))
            .collect();
        let mut out = Vec::new();
        write_entered(&mut out, &interned);
        let limits = Limits::default();
        assert_eq!(read_entered(&mut &out[..], &limits), Some(entered));
        // None at all (distcc 3.4's server), cut short, or an includer not yet listed.
        assert_eq!(read_entered(&mut &b""[..], &limits), None);
        assert_eq!(read_entered(&mut &out[..out.len() - 1], &limits), None);
        let mut out = Vec::new();
        write_entered(&mut out, &[(crate::include::token::sym("a.h"), Some(0))]);
        assert_eq!(read_entered(&mut &out[..], &limits), None);
        // The second: absent paths.
        let absent = vec!["/usr/local/include/x.h".to_string(), "/a b/c.h".to_string()];
        let mut out = Vec::new();
        write_absent(&mut out, &absent);
        assert_eq!(read_absent(&mut &out[..], &limits), Some(absent));
        assert_eq!(read_absent(&mut &out[..out.len() - 1], &limits), None);
        assert_eq!(read_absent(&mut &b""[..], &limits), None);
    }
}
