//! The host list: distcc 3.4's grammar for `DISTCC_HOSTS` and the host files, and where the
//! list comes from (`$DISTCC_HOSTS`, then `$DISTCC_DIR/hosts` or `~/.distcc/hosts`, then
//! `/etc/distcc/hosts`).
//!
//! This module turns text into [`HostSpec`] values. It does not lock slots, remember failures
//! or connect; those belong to `lock`, `backoff` and `transport`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::wire::Version;

pub const DEFAULT_PORT: u16 = 3632;
const DEFAULT_REMOTE_LIMIT: u32 = 4;
const DEFAULT_LOCAL_LIMIT: u32 = 2;
const DEFAULT_LOCAL_SLOTS: u32 = 4;
const DEFAULT_LOCAL_SLOTS_CPP: u32 = 8;

/// How a host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `localhost`: compile on this machine.
    Local,
    Tcp {
        host: String,
        port: u16,
    },
    /// `user@host` or `@host`: `ssh host distccd --inetd`.
    Ssh {
        user: Option<String>,
        host: String,
        command: Option<String>,
    },
}

/// One entry of the host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The entry as written, for messages (`failed to distribute x.c to host:3632`).
    pub spec: String,
    pub transport: Transport,
    /// How many jobs may run there at once.
    pub limit: u32,
    /// `,lzo` asks for protocol 2.
    pub version: Version,
    /// `,cpp`: pump mode (not supported yet: such a host is used in plain mode).
    pub cpp: bool,
    /// `,down`: listed but never used.
    pub down: bool,
    /// `,auth`: GSS-API authentication before each job, as distcc 3.4 does it.
    pub auth: bool,
    /// `,auth=NAME`: the host's name in its principal, instead of the one its address has.
    pub auth_name: Option<String>,
}

/// A host entry's options after its name.
#[derive(Debug, Clone, Default)]
struct Options {
    version: Version,
    cpp: bool,
    down: bool,
    auth: bool,
    auth_name: Option<String>,
}

impl HostSpec {
    /// The host's name, as the monitor shows it: `localhost` for this machine.
    pub fn name(&self) -> &str {
        match &self.transport {
            Transport::Local => "localhost",
            Transport::Tcp { host, .. } | Transport::Ssh { host, .. } => host,
        }
    }
}

/// A parsed host list with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList {
    pub hosts: Vec<HostSpec>,
    pub randomize: bool,
    pub local_slots: u32,
    pub local_slots_cpp: u32,
    /// Where the list came from: `$DISTCC_HOSTS` or a file's path.
    pub source: String,
    /// Where `+zeroconf` stands in `hosts`: the daemons found go there.
    pub zeroconf: Option<usize>,
}

impl Default for HostList {
    /// No hosts, and distcc's default number of local slots.
    fn default() -> Self {
        HostList {
            hosts: Vec::new(),
            randomize: false,
            local_slots: DEFAULT_LOCAL_SLOTS,
            local_slots_cpp: DEFAULT_LOCAL_SLOTS_CPP,
            source: String::new(),
            zeroconf: None,
        }
    }
}

/// Why a host list could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostsError {
    /// Entry number `position` (from 1), `entry`, is malformed.
    BadEntry {
        entry: String,
        position: usize,
        reason: &'static str,
    },
    /// `+zeroconf` could not be served: no distcc directory, or the browser failed.
    Zeroconf(String),
    /// The list names no host.
    NoHosts { source: String },
    /// No list anywhere.
    NotSet,
    /// A host file exists but cannot be read.
    Unreadable { path: PathBuf, error: String },
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostsError::BadEntry {
                entry,
                position,
                reason,
            } => write!(f, "bad host entry {position} \"{entry}\": {reason}"),
            HostsError::Zeroconf(why) => write!(f, "+zeroconf: {why}"),
            HostsError::NoHosts { source } => {
                write!(f, "{source} contained no hosts; can't distribute work")
            }
            HostsError::NotSet => write!(
                f,
                "no hostlist is set; can't distribute work (set DISTCC_HOSTS or write ~/.distcc/hosts)"
            ),
            HostsError::Unreadable { path, error } => {
                write!(f, "failed to read host file {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for HostsError {}

/// Parses a leading decimal number; returns it and the rest.
fn number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

struct EntryParser<'a> {
    entry: &'a str,
    position: usize,
}

impl EntryParser<'_> {
    fn bad(&self, reason: &'static str) -> HostsError {
        HostsError::BadEntry {
            entry: self.entry.to_string(),
            position: self.position,
            reason,
        }
    }

    /// `/N`: a positive job limit.
    fn limit<'s>(&self, rest: &'s str) -> Result<(u32, &'s str), HostsError> {
        match number(&rest[1..]) {
            Some((n, r)) if n > 0 => Ok((n, r)),
            _ => Err(self.bad("bad multiplier (expected /N with N > 0)")),
        }
    }

    /// `,lzo,cpp,down,auth`.
    fn options(&self, rest: &str) -> Result<Options, HostsError> {
        let (mut lzo, mut cpp, mut down, mut auth) = (false, false, false, false);
        let mut auth_name = None;
        if rest.is_empty() {
            return Ok(Options::default());
        }
        let Some(opts) = rest.strip_prefix(',') else {
            return Err(self.bad("unexpected text after the host name"));
        };
        for opt in opts.split(',') {
            match opt {
                "lzo" => lzo = true,
                "cpp" => cpp = true,
                "down" => down = true,
                "auth" => auth = true,
                _ if opt.starts_with("auth=") => {
                    let name = &opt["auth=".len()..];
                    if name.is_empty() || name.contains(['/', ':']) {
                        return Err(self.bad("expected a host name after auth="));
                    }
                    auth = true;
                    auth_name = Some(name.to_string());
                }
                _ => return Err(self.bad("unrecognized option in host specification")),
            }
        }
        if cpp && !lzo {
            return Err(self.bad("pump mode (',cpp') requires compression (',lzo')"));
        }
        let version = if lzo { Version::Lzo } else { Version::Plain };
        Ok(Options {
            version,
            cpp,
            down,
            auth,
            auth_name,
        })
    }

    fn parse(&self) -> Result<HostSpec, HostsError> {
        let e = self.entry;
        if e == "localhost" || e.starts_with("localhost/") {
            let limit = match e.strip_prefix("localhost") {
                Some(rest) if !rest.is_empty() => {
                    let (n, rest) = self.limit(rest)?;
                    if !rest.is_empty() {
                        return Err(self.bad("unexpected text after the limit"));
                    }
                    n
                }
                _ => DEFAULT_LOCAL_LIMIT,
            };
            return Ok(self.spec(Transport::Local, limit, Options::default()));
        }
        if let Some((user, rest)) = e.split_once('@') {
            let end = rest.find(['/', ':', ',']).unwrap_or(rest.len());
            let host = &rest[..end];
            if host.is_empty() {
                return Err(self.bad("no host name after '@'"));
            }
            let mut rest = &rest[end..];
            let mut limit = DEFAULT_REMOTE_LIMIT;
            if rest.starts_with('/') {
                (limit, rest) = self.limit(rest)?;
            }
            let mut command = None;
            if let Some(r) = rest.strip_prefix(':') {
                let end = r.find(',').unwrap_or(r.len());
                command = Some(r[..end].to_string());
                rest = &r[end..];
            }
            let transport = Transport::Ssh {
                user: (!user.is_empty()).then(|| user.to_string()),
                host: host.to_string(),
                command,
            };
            return Ok(self.spec(transport, limit, self.options(rest)?));
        }
        let (host, mut rest) = if let Some(r) = e.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| self.bad("missing ']' after IPv6 address"))?;
            (&r[..close], &r[close + 1..])
        } else {
            let end = e.find(['/', ':', ',']).unwrap_or(e.len());
            (&e[..end], &e[end..])
        };
        if host.is_empty() {
            return Err(self.bad("no host name"));
        }
        let mut limit = DEFAULT_REMOTE_LIMIT;
        let mut port = DEFAULT_PORT;
        if rest.starts_with('/') {
            (limit, rest) = self.limit(rest)?;
        }
        if let Some(r) = rest.strip_prefix(':') {
            match number(r) {
                Some((p, r)) if (1..=65535).contains(&p) => {
                    port = p as u16;
                    rest = r;
                }
                _ => return Err(self.bad("invalid tcp port specification")),
            }
            if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with(',')) {
                return Err(self.bad("invalid tcp port specification"));
            }
        }
        if rest.starts_with('/') {
            (limit, rest) = self.limit(rest)?;
        }
        let transport = Transport::Tcp {
            host: host.to_string(),
            port,
        };
        Ok(self.spec(transport, limit, self.options(rest)?))
    }

    fn spec(&self, transport: Transport, limit: u32, opts: Options) -> HostSpec {
        let Options {
            version,
            cpp,
            down,
            auth,
            auth_name,
        } = opts;
        HostSpec {
            spec: self.entry.to_string(),
            transport,
            limit,
            version,
            cpp,
            down,
            auth,
            auth_name,
        }
    }
}

/// `--localslots=N`, `--localslots/N` or `--localslots N`-less forms.
fn slots_option(entry: &str, name: &str, position: usize) -> Result<Option<u32>, HostsError> {
    let Some(rest) = entry.strip_prefix(name) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix(['=', '/']).and_then(number) {
        Some((n, "")) if n > 0 => Ok(Some(n)),
        _ => Err(HostsError::BadEntry {
            entry: entry.to_string(),
            position,
            reason: "expected a positive number of slots",
        }),
    }
}

/// Parses a host list; `source` names it in the "contained no hosts" error.
pub fn parse(text: &str, source: &str) -> Result<HostList, HostsError> {
    let mut list = HostList::default();
    let words = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split([' ', '\t', '\r', '\x0c']))
        .filter(|w| !w.is_empty());
    for (i, entry) in words.enumerate() {
        let position = i + 1;
        if entry.starts_with("--randomize") {
            list.randomize = true;
        } else if entry.starts_with("--localslots_cpp") {
            if let Some(n) = slots_option(entry, "--localslots_cpp", position)? {
                list.local_slots_cpp = n;
            }
        } else if entry.starts_with("--localslots") {
            if let Some(n) = slots_option(entry, "--localslots", position)? {
                list.local_slots = n;
            }
        } else if entry == "+zeroconf" {
            list.zeroconf.get_or_insert(list.hosts.len());
        } else {
            list.hosts.push(EntryParser { entry, position }.parse()?);
        }
    }
    if list.hosts.is_empty() && list.zeroconf.is_none() {
        return Err(HostsError::NoHosts {
            source: source.to_string(),
        });
    }
    list.source = source.to_string();
    Ok(list)
}

/// The distcc directory: `$DISTCC_DIR`, else `~/.distcc`.
pub fn distcc_dir() -> Option<PathBuf> {
    distcc_dir_from(std::env::var_os("DISTCC_DIR"), std::env::var_os("HOME"))
}

/// The distcc directory given the values of `DISTCC_DIR` and `HOME`.
pub fn distcc_dir_from(dir: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match dir {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => home.map(|h| PathBuf::from(h).join(".distcc")),
    }
}

/// Reads the host list from where distcc 3.4 looks for it: `env` (the value of
/// `DISTCC_HOSTS`), else `top/hosts`, else `/etc/distcc/hosts`. The list's `source` says
/// which.
pub fn load(env: Option<&str>, top: Option<&Path>) -> Result<HostList, HostsError> {
    let mut list = read(env, top)?;
    if let Some(at) = list.zeroconf {
        // The daemons found stand where `+zeroconf` does, as in distcc 3.4. When none was
        // found, the list fails only if it names no other host; 3.4 also fails it when
        // `+zeroconf` comes before every other host.
        let top = top.ok_or_else(|| {
            HostsError::Zeroconf("neither DISTCC_DIR nor HOME is set".to_string())
        })?;
        let (text, path) = super::zeroconf::host_file(top)?;
        let source = path.display().to_string();
        let found = match parse(&text, &source) {
            Err(HostsError::NoHosts { .. }) => Vec::new(),
            other => other?.hosts,
        };
        list.hosts.splice(at..at, found);
        if list.hosts.is_empty() {
            return Err(HostsError::NoHosts { source });
        }
    }
    Ok(list)
}

/// The host list as written, `+zeroconf` not yet expanded.
fn read(env: Option<&str>, top: Option<&Path>) -> Result<HostList, HostsError> {
    if let Some(text) = env {
        return parse(text, "$DISTCC_HOSTS");
    }
    let candidates = top
        .map(|d| d.join("hosts"))
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/etc/distcc/hosts")));
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(HostsError::Unreadable {
                    path,
                    error: e.to_string(),
                })
            }
        }
    }
    Err(HostsError::NotSet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> HostSpec {
        parse(entry, "test").unwrap().hosts.remove(0)
    }

    fn tcp(host: &str, port: u16) -> Transport {
        Transport::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn tcp_hosts() {
        let h = one("a");
        assert_eq!(
            (h.transport, h.limit, h.version),
            (tcp("a", 3632), 4, Version::Plain)
        );
        let h = one("a:4000/3,lzo");
        assert_eq!(
            (h.transport, h.limit, h.version),
            (tcp("a", 4000), 3, Version::Lzo)
        );
        let h = one("a/3:4000,lzo");
        assert_eq!((h.transport, h.limit), (tcp("a", 4000), 3));
        let h = one("[::1]:4000/2");
        assert_eq!((h.transport, h.limit), (tcp("::1", 4000), 2));
        let h = one("127.0.0.1:3633,lzo,down");
        assert!(h.down);
        // Only the exact word `localhost` (with a limit) means this machine.
        assert_eq!(one("localhost:3632").transport, tcp("localhost", 3632));
        assert_eq!(one("localhost,lzo").transport, tcp("localhost", 3632));
    }

    #[test]
    fn local_and_ssh() {
        let h = one("localhost");
        assert_eq!((h.transport, h.limit), (Transport::Local, 2));
        assert_eq!(one("localhost/3").limit, 3);
        let h = one("u@b/6:/opt/distccd,lzo");
        assert_eq!(
            h.transport,
            Transport::Ssh {
                user: Some("u".into()),
                host: "b".into(),
                command: Some("/opt/distccd".into())
            }
        );
        assert_eq!((h.limit, h.version), (6, Version::Lzo));
    }

    #[test]
    fn lists_and_options() {
        let l = parse(
            "a # comment b\nc --localslots=7 --localslots_cpp=3 --randomize",
            "t",
        )
        .unwrap();
        let names: Vec<_> = l.hosts.iter().map(|h| h.spec.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(
            (l.local_slots, l.local_slots_cpp, l.randomize),
            (7, 3, true)
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for (text, pos) in [
            ("a b/0", 2),
            ("a:99999", 1),
            ("a:x", 1),
            ("a,bogus", 1),
            ("a,cpp", 1),
            ("x [::1", 2),
            ("a:3632=5", 1),
        ] {
            match parse(text, "t") {
                Err(HostsError::BadEntry { position, .. }) => assert_eq!(position, pos, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("  # nothing", "t"),
            Err(HostsError::NoHosts { .. })
        ));
    }

    #[test]
    fn zeroconf_holds_its_place() {
        let l = parse("a +zeroconf b +zeroconf", "t").unwrap();
        let names: Vec<_> = l.hosts.iter().map(|h| h.spec.as_str()).collect();
        assert_eq!((names, l.zeroconf), (vec!["a", "b"], Some(1)));
        // Alone it is a list: the daemons found make it one, or the expansion fails.
        assert_eq!(parse("+zeroconf", "t").unwrap().zeroconf, Some(0));
    }
}
