//! `lsdistcc`: lists the distcc daemons that answer, as distcc 3.4's program does, with its
//! options, output and exit codes. The names to try come from a pattern with `%d`
//! (`distcc%d` by default: distcc1, distcc2, … until a name does not resolve) or are given
//! one by one. Each address is connected to on the distcc port and, with `-pCOMPILER`,
//! sent a canned compile of one line of C in protocol 1, 2 or 3; a host is up when it
//! accepts the connection (and compiles that line). Each host is printed when its probe
//! ends, so the order is the order of the answers, as in 3.4.
//!
//! Like 3.4, it speaks IPv4 only, stops silently after the overall time limit (`-t`) with
//! what it printed so far, and fails (exit 1) only when no name resolved at all. It does
//! not read the host list: its output is meant to become one (`DISTCC_HOSTS=$(lsdistcc)`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::wire::{header, lzo, ARGC, ARGV, CDIR, DIST, DONE, DOTI, FILE, NAME, NFIL, STAT};

/// The most names a pattern is expanded to (3.4's `MAXHOSTS`).
const MAX_HOSTS: usize = 500;

/// The one line of C a probe compiles.
const PROGRAM: &str = "int foo(){return 0;}";

/// What the command line asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub latency: bool,
    pub numeric: bool,
    pub mark_down: bool,
    pub verbose: u32,
    pub domain: bool,
    /// `-t`: the whole run's limit (0: none, as 3.4's `alarm(0)`).
    pub total: Duration,
    /// `-c`: 0 takes a name that resolves as up without connecting.
    pub connect_ms: u64,
    /// `-k`: 0 skips the compile.
    pub compile_ms: u64,
    /// `-m`: how many leading bits of each address must match the first one found.
    pub match_bits: u32,
    /// `-g`: how many names that do not resolve are passed over before the search stops.
    pub dns_gap: u32,
    pub port: u16,
    pub protocol: u8,
    pub compiler: Option<String>,
    pub names: Names,
}

/// Where the names come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// A pattern whose `%d` is replaced by 1, 2, 3, …
    Pattern(String),
    /// The names given.
    List(Vec<String>),
}

/// A command line `lsdistcc` cannot read: the usage is printed and the exit code is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUsage;

/// C's `atoi`: leading blanks, a sign, digits; anything else ends the number (0 if none).
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative {
        -n
    } else {
        n
    }
}

impl Options {
    /// Reads the arguments after the program's name as 3.4 does: each option is one word,
    /// `-X` and its value joined (`-t10`, `-pgcc`), options end at the first word that does
    /// not start with `-`.
    pub fn parse(args: &[String]) -> Result<Options, BadUsage> {
        let mut o = Options {
            latency: false,
            numeric: false,
            mark_down: false,
            verbose: 0,
            domain: false,
            total: Duration::from_secs(7),
            connect_ms: 900,
            compile_ms: 1500,
            match_bits: 0,
            dns_gap: 0,
            port: 3632,
            protocol: 1,
            compiler: None,
            names: Names::Pattern("distcc%d".into()),
        };
        let mut rest = args;
        while let Some(word) = rest.first().filter(|w| w.starts_with('-')) {
            rest = &rest[1..];
            let value = word.get(2..).unwrap_or("");
            let number = || atoi(value);
            let at_least = |min: i64| Some(number()).filter(|n| *n >= min).ok_or(BadUsage);
            match word.as_bytes().get(1) {
                Some(b'm') => {
                    o.match_bits = u32::try_from(number())
                        .ok()
                        .filter(|b| *b <= 31)
                        .ok_or(BadUsage)?
                }
                Some(b't') => o.total = Duration::from_secs(at_least(0)? as u64),
                // The resolver's retries and overlapping lookups are the system
                // resolver's business here: accepted and checked, as 3.4 does.
                Some(b'h' | b'o') => {
                    at_least(0)?;
                }
                Some(b'c') => o.connect_ms = at_least(0)? as u64,
                Some(b'k') => o.compile_ms = at_least(0)? as u64,
                Some(b'g') => o.dns_gap = u32::try_from(at_least(0)?).unwrap_or(u32::MAX),
                Some(b'P') => {
                    o.protocol = u8::try_from(number())
                        .ok()
                        .filter(|p| (1..=3).contains(p))
                        .ok_or(BadUsage)?
                }
                Some(b'p') if !value.is_empty() => o.compiler = Some(value.to_string()),
                Some(b'r') => o.port = u16::try_from(at_least(1)?).map_err(|_| BadUsage)?,
                Some(b'l') => o.latency = true,
                Some(b'n') => o.numeric = true,
                Some(b'x') => o.mark_down = true,
                Some(b'v') => o.verbose += 1,
                Some(b'd') => o.domain = true,
                _ => return Err(BadUsage),
            }
        }
        if let Some(first) = rest.first() {
            o.names = if first.contains("%d") {
                Names::Pattern(first.clone())
            } else {
                Names::List(rest.to_vec())
            };
        }
        Ok(o)
    }

    /// The suffix each listed host gets, saying what the protocol asked for needs.
    fn suffix(&self) -> &'static str {
        match self.protocol {
            2 => ",lzo",
            3 => ",lzo,cpp",
            _ => "",
        }
    }
}

/// The usage text (on standard output, as 3.4 prints it).
pub fn usage() -> String {
    "Usage: lsdistcc [OPTIONS] [FORMAT]\n       lsdistcc [OPTIONS] HOST...\n\
     Lists the distcc servers that answer on distcc's port. With FORMAT (default\n\
     distcc%d), tries the names it makes with 1, 2, 3, ... in place of %d, until one\n\
     does not resolve or 7 seconds have passed; with HOSTs, tries only those.\n\
     Options (each one word, its value attached: -t10, -pgcc):\n\
     -l          print each host's latency in milliseconds (DNS not counted)\n\
     -n          print the IP address instead of the name\n\
     -x          also list hosts that did not answer, with ,down\n\
     -tSECONDS   stop after SECONDS in all; 0: no limit [7]\n\
     -hMS        milliseconds before a name lookup is retried [500]\n\
     -cMS        milliseconds to wait for a connection; 0: no connection [900]\n\
     -kMS        milliseconds to wait for the test compile; 0: none [1500]\n\
     -mBITS      leading bits of each address that must match the first host's [0]\n\
     -oOVERLAP   extra name lookups in flight [1]\n\
     -gGAP       names that do not resolve to pass over before stopping [0]\n\
     -rPORT      port to connect to [3632]\n\
     -PPROTOCOL  protocol of the test compile, 1 to 3 [1]\n\
     -pCOMPILER  send a test compile to this compiler [none]\n\
     -d          append the DNS domain to the names\n\
     -v          say what happens, on standard error\n\
     \n\
     Examples:\n\
     lsdistcc -l -pgcc\n\
     lsdistcc -pgcc hosta hostb hostc\n"
        .to_string()
}

/// The canned compile request for `protocol` to `compiler`: `compiler -c hello.c -o
/// hello.o` with the one line of C as the source (protocol 3: the file `/hello.c` in the
/// working directory `/`).
fn canned_request(protocol: u8, compiler: &str) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, token: crate::wire::Token, body: &[u8]) {
        out.extend_from_slice(&header(token, body.len() as u32));
        out.extend_from_slice(body);
    }
    let mut out = header(DIST, u32::from(protocol)).to_vec();
    if protocol == 3 {
        put(&mut out, CDIR, b"/");
    }
    let argv = [compiler, "-c", "hello.c", "-o", "hello.o"];
    out.extend_from_slice(&header(ARGC, argv.len() as u32));
    for a in argv {
        put(&mut out, ARGV, a.as_bytes());
    }
    let source = match protocol {
        1 => PROGRAM.as_bytes().to_vec(),
        _ => lzo::compress(PROGRAM.as_bytes()),
    };
    if protocol == 3 {
        out.extend_from_slice(&header(NFIL, 1));
        put(&mut out, NAME, b"/hello.c");
        put(&mut out, FILE, &source);
    } else {
        put(&mut out, DOTI, &source);
    }
    out
}

/// How one host's probe ended.
struct Probed {
    name: String,
    addr: Ipv4Addr,
    up: bool,
    /// From the start of the connection to the end of the probe.
    took: Duration,
}

/// What the threads tell the main one.
enum Event {
    /// A name was looked up (`None`: it does not resolve, or not to IPv4).
    Resolved(String, Option<Ipv4Addr>),
    /// No more names will be looked up.
    NoMoreNames,
    Probed(Probed),
}

/// Whether the first `bits` bits of `a` and `b` are the same.
fn same_network(a: Ipv4Addr, b: Ipv4Addr, bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    (u32::from(a) ^ u32::from(b)) & mask == 0
}

/// The first IPv4 address of `name`.
fn resolve(name: &str) -> Option<Ipv4Addr> {
    (name, 0)
        .to_socket_addrs()
        .ok()?
        .find_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

/// This machine's DNS domain, found as 3.4 finds it: from `$HOST` or `$HOSTNAME` when one
/// holds a dot (the longer), else from the host name or what it resolves to.
fn dns_domain() -> Option<String> {
    let dotted = |v: &str| std::env::var(v).ok().filter(|h| h.contains('.'));
    let from_env = match (dotted("HOST"), dotted("HOSTNAME")) {
        (Some(a), Some(b)) => Some(if b.len() > a.len() { b } else { a }),
        (a, b) => a.or(b),
    };
    let full = match from_env {
        Some(h) => h,
        None => {
            let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
            if name.contains('.') {
                name
            } else {
                canonical_name(&name)?
            }
        }
    };
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if full.len() > 512 || !full.chars().all(legal) {
        return None;
    }
    let (_, domain) = full.split_once('.')?;
    (!domain.is_empty()).then(|| domain.to_string())
}

/// The canonical name the resolver gives `name`.
fn canonical_name(name: &str) -> Option<String> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a zeroed addrinfo is a valid hints value; getaddrinfo fills `list`, which
    // is freed below whatever was read from it.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_INET;
        let mut list = std::ptr::null_mut();
        if libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut list) != 0 {
            return None;
        }
        let canon = (*list).ai_canonname;
        let found = (!canon.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canon)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(list);
        found
    }
}

/// Probes `addr` as `o` says.
fn probe(o: &Options, name: String, addr: Ipv4Addr, request: Option<&[u8]>) -> Probed {
    let start = Instant::now();
    let up = o.connect_ms == 0 || {
        let to = SocketAddr::from((addr, o.port));
        match TcpStream::connect_timeout(&to, Duration::from_millis(o.connect_ms)) {
            Err(e) => {
                if o.verbose > 0 {
                    eprintln!("lsdistcc: cannot connect to {name}: {e}");
                }
                false
            }
            Ok(stream) => match request.filter(|_| o.compile_ms > 0) {
                None => true,
                Some(request) => compiles(o, &name, stream, request),
            },
        }
    };
    Probed {
        name,
        addr,
        up,
        took: start.elapsed(),
    }
}

/// Whether the daemon on `stream` compiles the canned request within `-k`: `DONE` with
/// the protocol asked, `STAT` 0, then the rest of the reply up to the end of the stream.
fn compiles(o: &Options, name: &str, mut stream: TcpStream, request: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_millis(o.compile_ms);
    let say = |what: String| {
        if o.verbose > 1 {
            eprintln!("lsdistcc: {name}: {what}");
        }
        false
    };
    if let Err(e) = stream.write_all(request) {
        return say(format!("sending the test compile failed: {e}"));
    }
    let mut read = |buf: &mut [u8]| -> std::io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        stream.read(buf)
    };
    let mut head = |expected: crate::wire::Token| -> Result<u32, String> {
        let mut h = [0u8; 12];
        let mut got = 0;
        while got < 12 {
            match read(&mut h[got..]) {
                Ok(0) => return Err("the reply ended early".into()),
                Ok(n) => got += n,
                Err(e) => return Err(format!("no reply: {e}")),
            }
        }
        crate::wire::parse_header(&h, expected).map_err(|e| e.to_string())
    };
    match head(DONE) {
        Ok(v) if v == u32::from(o.protocol) => {}
        Ok(v) => return say(format!("answers in protocol {v}")),
        Err(e) => return say(e),
    }
    match head(STAT) {
        Ok(0) => {}
        Ok(status) => return say(format!("the test compile failed, status {status:#x}")),
        Err(e) => return say(e),
    }
    let mut rest = [0u8; 4096];
    loop {
        match read(&mut rest) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return say(format!("the reply did not end: {e}")),
        }
    }
}

/// Runs `lsdistcc` with `args` (without the program's name); returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let o = match Options::parse(args) {
        Ok(o) => o,
        Err(BadUsage) => {
            print!("{}", usage());
            return 1;
        }
    };
    let domain = match o.domain.then(dns_domain) {
        Some(None) => {
            eprintln!("Can't get domain name");
            return 1;
        }
        Some(Some(d)) => Some(d),
        None => None,
    };
    let names: Box<dyn Iterator<Item = String> + Send> = match &o.names {
        Names::Pattern(p) => {
            let p = p.clone();
            Box::new((1..=MAX_HOSTS).map(move |i| p.replacen("%d", &i.to_string(), 1)))
        }
        Names::List(l) => Box::new(l.clone().into_iter()),
    };
    let names = names.map(move |n| match &domain {
        Some(d) => format!("{n}.{d}"),
        None => n,
    });
    let stdout = std::io::stdout();
    match survey(std::sync::Arc::new(o), names, &mut stdout.lock()) {
        // As 3.4's alarm: what was printed stands, and the run succeeded.
        Survey::TimedOut => 0,
        Survey::Resolved(n) => i32::from(n == 0),
    }
}

/// How a survey ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Survey {
    /// Every name was looked up and every address probed; this many names resolved.
    Resolved(usize),
    /// The time limit (`-t`) came first.
    TimedOut,
}

/// Looks up `names` in order, probes each address found, and writes each host to `out` as
/// its probe ends.
pub fn survey(
    o: std::sync::Arc<Options>,
    names: impl Iterator<Item = String> + Send + 'static,
    out: &mut dyn Write,
) -> Survey {
    let deadline = (!o.total.is_zero()).then(|| Instant::now() + o.total);
    let request: Option<std::sync::Arc<[u8]>> =
        (o.compiler.as_deref()).map(|c| canned_request(o.protocol, c).into());
    let (tx, rx) = mpsc::channel();
    // The lookups run on a thread of their own so that a slow resolver cannot hold the
    // probes or the time limit up; they stop at the first name past the gap, counting an
    // address on another network than the first host's (`-m`) as no address. Threads
    // still running when the time is up are left behind: the program is ending.
    {
        let tx = tx.clone();
        let (gap, bits, verbose) = (o.dns_gap, o.match_bits, o.verbose);
        std::thread::spawn(move || {
            let (mut missing, mut first) = (0, None);
            for name in names {
                let addr = resolve(&name).filter(|a| {
                    let first = *first.get_or_insert(*a);
                    bits == 0 || same_network(first, *a, bits)
                });
                if addr.is_none() {
                    if verbose > 0 {
                        eprintln!("lsdistcc: {name} not found");
                    }
                    missing += 1;
                }
                let stop = addr.is_none() && missing > gap;
                if tx.send(Event::Resolved(name, addr)).is_err() || stop {
                    break;
                }
            }
            let _ = tx.send(Event::NoMoreNames);
        });
    }
    let (mut resolved, mut probing, mut names_done) = (0, 0, false);
    while !(names_done && probing == 0) {
        let event = match deadline {
            Some(d) => rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .ok(),
            None => rx.recv().ok(),
        };
        let Some(event) = event else {
            if o.verbose > 0 {
                eprintln!("lsdistcc: out of time");
            }
            let _ = out.flush();
            return Survey::TimedOut;
        };
        match event {
            Event::NoMoreNames => names_done = true,
            Event::Resolved(_, None) => {}
            Event::Resolved(name, Some(addr)) => {
                resolved += 1;
                probing += 1;
                let (tx, o, request) = (tx.clone(), o.clone(), request.clone());
                std::thread::spawn(move || {
                    let _ = tx.send(Event::Probed(probe(&o, name, addr, request.as_deref())));
                });
            }
            Event::Probed(p) => {
                probing -= 1;
                if p.up || o.mark_down {
                    let mut line = if o.numeric {
                        p.addr.to_string()
                    } else {
                        p.name
                    };
                    // A host list entry: the port is named when it is not the default.
                    if o.port != 3632 {
                        line.push_str(&format!(":{}", o.port));
                    }
                    line.push_str(o.suffix());
                    if !p.up {
                        line.push_str(",down");
                    }
                    if o.latency {
                        line.push_str(&format!(" {}", p.took.as_millis()));
                    }
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }
    let _ = out.flush();
    Survey::Resolved(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &str) -> Result<Options, BadUsage> {
        let args: Vec<String> = words.split_whitespace().map(String::from).collect();
        Options::parse(&args)
    }

    #[test]
    fn options_are_read_as_3_4_reads_them() {
        let o = parse("-l -n -x -t3 -c50 -k0 -m8 -g2 -r4000 -P3 -pgcc -v -v a b").unwrap();
        assert!(o.latency && o.numeric && o.mark_down);
        assert_eq!(o.total, Duration::from_secs(3));
        assert_eq!(
            (o.connect_ms, o.compile_ms, o.match_bits, o.dns_gap),
            (50, 0, 8, 2)
        );
        assert_eq!((o.port, o.protocol, o.verbose), (4000, 3, 2));
        assert_eq!(o.compiler.as_deref(), Some("gcc"));
        assert_eq!(o.names, Names::List(vec!["a".into(), "b".into()]));
        // A pattern is the first word after the options; the rest is ignored.
        assert_eq!(
            parse("h%d.lan x").unwrap().names,
            Names::Pattern("h%d.lan".into())
        );
        assert_eq!(parse("").unwrap().names, Names::Pattern("distcc%d".into()));
        // Only the letter after the dash counts: `-ln` is `-l`.
        let o = parse("-ln").unwrap();
        assert!(o.latency && !o.numeric);
        // Options end at the first word without a dash.
        assert_eq!(
            parse("a -l").unwrap().names,
            Names::List(vec!["a".into(), "-l".into()])
        );
        // Values read as atoi reads them.
        assert_eq!(parse("-t5s").unwrap().total, Duration::from_secs(5));
        assert_eq!(parse("-tx").unwrap().total, Duration::ZERO);
        for bad in [
            "-m32", "-m-1", "-t-1", "-P0", "-P4", "-p", "-r0", "-q", "-", "--help",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canned_requests_have_3_4s_shape() {
        let one = canned_request(1, "cc");
        assert!(one.starts_with(b"DIST00000001ARGC00000005ARGV00000002ccARGV00000002-c"));
        assert!(one.ends_with(b"DOTI00000014int foo(){return 0;}"));
        let three = canned_request(3, "cc");
        assert!(three.starts_with(b"DIST00000003CDIR00000001/ARGC00000005"));
        let tail = b"NFIL00000001NAME00000008/hello.cFILE";
        assert!(three.windows(tail.len()).any(|w| w == tail));
        let lzo = lzo::compress(PROGRAM.as_bytes());
        assert!(canned_request(2, "cc").ends_with(&lzo));
    }

    #[test]
    fn networks_compare_by_leading_bits() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert!(same_network(a, Ipv4Addr::new(10, 1, 9, 9), 16));
        assert!(!same_network(a, Ipv4Addr::new(10, 2, 2, 3), 16));
        assert!(same_network(a, Ipv4Addr::new(11, 0, 0, 0), 7));
        assert!(!same_network(a, Ipv4Addr::new(11, 0, 0, 0), 8));
        assert!(same_network(a, Ipv4Addr::new(200, 0, 0, 0), 0));
    }
}
