//! The keys of TLS connections and the files that hold and list them: a key pair (an
//! Ed25519 private key in a PKCS#8 PEM file only its owner can read, its public half in
//! `FILE.pub`), fingerprints (`SHA256:` and the unpadded base64 of the SHA-256 of the
//! public key's DER `SubjectPublicKeyInfo`, as OpenSSH writes its own), a daemon's list of
//! authorised client keys, and a client's known hosts.
//!
//! What a connection does with them is `tls`'s business; where the files are and when they
//! are read is the client's and the daemon's.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;

/// The word that starts a public key line (`FILE.pub`).
pub const PUBLIC_KEY_TYPE: &str = "distcc-ed25519";

/// The DER of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410) up to the key's 32 bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key as TLS carries it: a raw public key is a DER `SubjectPublicKeyInfo`.
    pub fn spki(&self) -> Vec<u8> {
        [&SPKI_PREFIX[..], &self.0].concat()
    }

    /// The key in `der`, if it is an Ed25519 `SubjectPublicKeyInfo`.
    pub fn from_spki(der: &[u8]) -> Option<PublicKey> {
        let key = der.strip_prefix(&SPKI_PREFIX[..])?;
        Some(PublicKey(key.try_into().ok()?))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let sum = ring::digest::digest(&ring::digest::SHA256, &self.spki());
        Fingerprint(sum.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }

    /// The line of `FILE.pub`: `distcc-ed25519 BASE64 COMMENT`.
    pub fn line(&self, comment: &str) -> String {
        format!("{PUBLIC_KEY_TYPE} {} {comment}", STANDARD.encode(self.0))
    }
}

/// What names a key in the lists: the SHA-256 of its `SubjectPublicKeyInfo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint([u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl Fingerprint {
    /// A fingerprint as [`Display`](fmt::Display) writes it.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let b64 = strip_prefix_any_case(text, "SHA256:")?;
        Some(Fingerprint(decode(b64)?.try_into().ok()?))
    }
}

/// Base64 with or without its `=` padding.
fn decode(b64: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(b64.trim_end_matches('=')).ok()
}

fn strip_prefix_any_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A key at the start of `words`: a fingerprint, or a public key line's type and key.
/// Returns it and the words after it.
fn key_in<'a>(words: &'a [&'a str]) -> Option<(Fingerprint, &'a [&'a str])> {
    match words {
        [first, rest @ ..] if strip_prefix_any_case(first, "SHA256:").is_some() => {
            Some((Fingerprint::parse(first)?, rest))
        }
        [kind, key, rest @ ..] if *kind == PUBLIC_KEY_TYPE => {
            Some((PublicKey(decode(key)?.try_into().ok()?).fingerprint(), rest))
        }
        _ => None,
    }
}

/// Why a key file or list cannot be used.
#[derive(Debug)]
pub enum KeyError {
    Io {
        path: PathBuf,
        error: io::Error,
    },
    /// A private key that others may read.
    Exposed {
        path: PathBuf,
        mode: u32,
    },
    Malformed {
        path: PathBuf,
        why: String,
    },
    /// `--gen-key` on a file that exists.
    Exists {
        path: PathBuf,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io { path, error } => {
                write!(f, "{}: {}", path.display(), crate::logging::strerror(error))
            }
            KeyError::Exposed { path, mode } => write!(
                f,
                "{}: the private key can be read by other users (mode {mode:o}); make it \
                 readable by its owner only (chmod 600)",
                path.display()
            ),
            KeyError::Malformed { path, why } => write!(f, "{}: {why}", path.display()),
            KeyError::Exists { path } => write!(
                f,
                "{} exists already; remove it first to make a new key",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A private key and its public half.
pub struct KeyPair {
    /// The PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    pub public: PublicKey,
}

impl KeyPair {
    /// Reads the private key in PEM file `path`, which no one but its owner may read.
    pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
        let malformed = |why: &str| KeyError::Malformed {
            path: path.to_path_buf(),
            why: why.to_string(),
        };
        // Not opened before it is known to be a file: a FIFO would block the open.
        let meta = fs::metadata(path).map_err(io_error(path))?;
        if !meta.is_file() {
            return Err(malformed("not a regular file"));
        }
        let file = File::open(path).map_err(io_error(path))?;
        let text = crate::read_whole(&file).map_err(io_error(path))?;
        if text.starts_with(PUBLIC_KEY_TYPE.as_bytes()) {
            return Err(malformed(
                "this is a public key; give the private key's file (without .pub)",
            ));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(&text)
            .map_err(|_| malformed("no PEM \"PRIVATE KEY\" in it (make keys with --gen-key)"))?;
        let pkcs8 = der.secret_pkcs8_der();
        let public = match stored_public_key(pkcs8) {
            Some(public) => public,
            // Without the public key beside it (a version 1 document), it is computed.
            None => {
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|_| malformed("not an Ed25519 private key"))?;
                use ring::signature::KeyPair as _;
                pair.public_key().as_ref().try_into().expect("32 bytes")
            }
        };
        Ok(KeyPair {
            pkcs8: pkcs8.to_vec(),
            public: PublicKey(public),
        })
    }

    /// Makes a new key pair and writes it to `path` (mode 600, never over an existing file)
    /// and `path.pub`, with `comment` after the public key.
    pub fn generate(path: &Path, comment: &str) -> Result<KeyPair, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| {
            KeyError::Malformed {
                path: path.to_path_buf(),
                why: "the system's random generator failed".into(),
            }
        })?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .expect("a key ring just made");
        use ring::signature::KeyPair as _;
        let public = PublicKey(pair.public_key().as_ref().try_into().expect("32 bytes"));
        // Written whole under another name, then linked into place: a process reading the
        // key never sees half of it, and of two making it at once, one wins.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        crate::ensure_dir(dir).map_err(io_error(dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".key")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io_error(dir))?;
        tmp.write_all(pem("PRIVATE KEY", doc.as_ref()).as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_error(path))?;
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io_error(path)(e.error)
            }
        })?;
        let public_path = public_file(path);
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&public_path)
            .map_err(io_error(&public_path))?;
        writeln!(out, "{}", public.line(comment)).map_err(io_error(&public_path))?;
        Ok(KeyPair {
            pkcs8: doc.as_ref().to_vec(),
            public,
        })
    }
}

/// The public key stored in an Ed25519 PKCS#8 version 2 document (RFC 8410), as `--gen-key`
/// writes it: read rather than computed again from the private key, which costs a client
/// a scalar multiplication at every job. A key that does not match its private half only
/// makes the peer's signature check fail.
fn stored_public_key(pkcs8: &[u8]) -> Option<[u8; 32]> {
    const HEAD: [u8; 16] = [
        0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const PUBLIC: [u8; 5] = [0xa1, 0x23, 0x03, 0x21, 0x00];
    let rest = pkcs8.strip_prefix(&HEAD[..])?.get(32..)?;
    rest.strip_prefix(&PUBLIC[..])?.try_into().ok()
}

/// Where the public half of the key in `path` is written.
pub fn public_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// `user@host`, the comment of a key made here.
pub fn default_comment() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// `--gen-key`: makes a key pair in `path` and tells where it is; a key already there is
/// kept and shown. Returns the exit code.
pub fn gen_key_main(program: &str, path: &Path) -> i32 {
    match KeyPair::generate(path, &default_comment()) {
        Ok(pair) => {
            println!(
                "Your private key is in {}; keep it to yourself.\n\
                 Your public key is in {}.\n\
                 Its fingerprint is {}",
                path.display(),
                public_file(path).display(),
                pair.public.fingerprint()
            );
            0
        }
        Err(e @ KeyError::Exists { .. }) => {
            eprintln!("{program}: {e}");
            if let Ok(pair) = KeyPair::load(path) {
                eprintln!(
                    "{program}: its fingerprint is {}",
                    pair.public.fingerprint()
                );
            }
            crate::exitcode::BAD_ARGUMENTS
        }
        Err(e) => {
            eprintln!("{program}: failed to make a key: {e}");
            crate::exitcode::IO_ERROR
        }
    }
}

/// A daemon's authorised client keys (`--authorized-keys`): per line, a fingerprint or a
/// public key line (`distcc-ed25519 BASE64`), then an optional name for the log; `#`
/// starts a comment.
#[derive(Debug, Default, Clone)]
pub struct AuthorizedKeys {
    names: HashMap<Fingerprint, String>,
    /// The lines that list no key, said as errors: what they meant to list is not admitted.
    pub problems: Vec<String>,
}

impl AuthorizedKeys {
    /// Reads `path`, whose lines that list no key are in `problems`.
    pub fn load(path: &Path) -> Result<AuthorizedKeys, KeyError> {
        let text = fs::read_to_string(path).map_err(io_error(path))?;
        let mut keys = AuthorizedKeys::parse(&text);
        for problem in &mut keys.problems {
            *problem = format!("{}: {problem}", path.display());
        }
        Ok(keys)
    }

    /// The keys `text` lists.
    pub fn parse(text: &str) -> AuthorizedKeys {
        let mut keys = AuthorizedKeys::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match key_in(&words) {
                Some((key, rest)) => {
                    keys.names.insert(key, rest.join(" "));
                }
                None => keys.problems.push(format!(
                    "line {}: expected a fingerprint (SHA256:...) or a public key line \
                     ({PUBLIC_KEY_TYPE} ...)",
                    n + 1
                )),
            }
        }
        keys
    }

    /// The name the list gives `key`, if it lists it.
    pub fn name_of(&self, key: &Fingerprint) -> Option<&str> {
        self.names.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// How a host of the host list is named in the known hosts file: `HOST:PORT`, the name in
/// lower case, an address in its usual form (an IPv6 one in brackets), so that the usual
/// ways of writing one name or one address meet one pin. A name and its address, or two
/// names of one host, are still two hosts here.
pub fn host_name(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => format!("{}:{port}", host.to_ascii_lowercase()),
    }
}

/// A client's known hosts: per line, a host (`HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT`;
/// the port is 3632 when not given) and its key (a fingerprint, or a public key line);
/// `#` starts a comment. A host may have several lines (a key being replaced): any of its
/// keys is accepted.
///
/// What cannot be read makes the hosts it may have pinned unusable rather than unpinned,
/// which would send them jobs in the clear: a line whose key cannot be read, the host it
/// names; a line with no host either, or a file that cannot be read, every host.
#[derive(Debug, Default)]
pub struct KnownHosts {
    keys: HashMap<String, Vec<Fingerprint>>,
    /// Hosts whose line could not be read, with what to say.
    broken: HashMap<String, String>,
    /// What to say when the whole file cannot be trusted to list its pins.
    unreadable: Option<String>,
}

impl KnownHosts {
    /// Reads `path`; a missing file lists no host.
    pub fn load(path: &Path) -> KnownHosts {
        match fs::read_to_string(path) {
            Ok(text) => KnownHosts::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => KnownHosts::default(),
            Err(e) => KnownHosts {
                unreadable: Some(format!(
                    "cannot read {}: {}",
                    path.display(),
                    crate::logging::strerror(&e)
                )),
                ..KnownHosts::default()
            },
        }
    }

    /// The hosts `text` lists; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> KnownHosts {
        let mut known = KnownHosts::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((host, rest)) = words.split_first() else {
                continue;
            };
            let what = format!(
                "{}:{}: expected HOST[:PORT] and a fingerprint (SHA256:...)",
                path.display(),
                n + 1
            );
            match (normal_host(host), key_in(rest)) {
                (Some(host), Some((key, _))) => known.keys.entry(host).or_default().push(key),
                (Some(host), None) => {
                    known.broken.insert(host, what);
                }
                (None, _) => known.unreadable = Some(what),
            }
        }
        known
    }

    /// The keys pinned for `host` (as [`host_name`] writes it), or why it cannot be known.
    pub fn keys_of(&self, host: &str) -> Result<&[Fingerprint], &str> {
        if let Some(why) = self.unreadable.as_ref().or_else(|| self.broken.get(host)) {
            return Err(why);
        }
        Ok(self.keys.get(host).map_or(&[], Vec::as_slice))
    }
}

/// A host of the known hosts file as [`host_name`] writes it: `HOST` with the default port,
/// `HOST:PORT`, `[V6]` and `[V6]:PORT`, and a bare IPv6 address with the default port.
/// `None` when the port is no port.
fn normal_host(host: &str) -> Option<String> {
    let default = crate::farm::hosts::DEFAULT_PORT;
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => default,
            _ => after.strip_prefix(':')?.parse().ok()?,
        };
        return Some(host_name(ip, port));
    }
    match host.matches(':').count() {
        0 => Some(host_name(host, default)),
        1 => {
            let (name, port) = host.split_once(':')?;
            Some(host_name(name, port.parse().ok()?))
        }
        _ => host
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| host_name(&ip.to_string(), default)),
    }
}

/// Records `key` for `host` at the end of the known hosts file `path`, unless a line already
/// does, under a lock so that the first jobs of a build, which all meet the host at once,
/// write one line. Says whether it wrote it.
pub fn remember_host(path: &Path, host: &str, key: Fingerprint) -> Result<bool, KeyError> {
    if let Some(dir) = path.parent() {
        crate::ensure_dir(dir).map_err(io_error(dir))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(io_error(path))?;
    crate::lock_exclusive(&file).map_err(io_error(path))?;
    let text = crate::read_whole(&file).map_err(io_error(path))?;
    let known = KnownHosts::parse(&String::from_utf8_lossy(&text), path);
    if known.keys_of(host).is_ok_and(|keys| keys.contains(&key)) {
        return Ok(false);
    }
    // A last line without its end (edited by hand) keeps its own.
    let newline = if text.is_empty() || text.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    writeln!(file, "{newline}{host} {key}").map_err(io_error(path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/id");
        let made = KeyPair::generate(&path, "me@here").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = KeyPair::load(&path).unwrap();
        assert_eq!(loaded.public, made.public);
        assert_eq!(loaded.pkcs8, made.pkcs8);
        assert!(matches!(
            KeyPair::generate(&path, "x"),
            Err(KeyError::Exists { .. })
        ));
        // The public line and the fingerprint name the same key in a list.
        let line = fs::read_to_string(public_file(&path)).unwrap();
        let fp = made.public.fingerprint();
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        let list = dir.path().join("authorized");
        fs::write(&list, format!("# a comment\n{line}\n\n")).unwrap();
        let keys = AuthorizedKeys::load(&list).unwrap();
        assert!(keys.problems.is_empty());
        assert_eq!(keys.name_of(&fp), Some("me@here"));
        fs::write(&list, format!("{fp} ci\n")).unwrap();
        assert_eq!(
            AuthorizedKeys::load(&list).unwrap().name_of(&fp),
            Some("ci")
        );
        fs::write(&list, "SHA256:nonsense\n").unwrap();
        // A line that lists no key is said; the others stand.
        fs::write(&list, format!("SHA256:nonsense\n{fp} ci\n")).unwrap();
        let keys = AuthorizedKeys::load(&list).unwrap();
        assert_eq!(keys.problems.len(), 1);
        assert_eq!(keys.name_of(&fp), Some("ci"));
        // A public key given for a private one is named as such.
        let e = KeyPair::load(&public_file(&path))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("this is a public key"), "{e}");
        // Others may not read a private key.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            KeyPair::load(&path),
            Err(KeyError::Exposed { .. })
        ));
        assert_eq!(PublicKey::from_spki(&made.public.spki()), Some(made.public));
    }

    #[test]
    fn known_hosts_are_named_with_their_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let a = PublicKey([1; 32]).fingerprint();
        let b = PublicKey([2; 32]).fingerprint();
        let line_b = PublicKey([2; 32]).line("b@here");
        // Padding kept, the prefix in lower case, a public key line: all the same key.
        let padded = format!("{b}=").replace("SHA256:", "sha256:");
        fs::write(
            &path,
            format!(
                "Alpha {a}\nbeta:4000 {a}\n[::1] {b}\n[0:0::2]:3632 {padded}\n10.0.0.1 {line_b}"
            ),
        )
        .unwrap();
        let known = KnownHosts::load(&path);
        let keys = |host: &str, port| known.keys_of(&host_name(host, port)).map(<[_]>::to_vec);
        assert_eq!(keys("alpha", 3632), Ok(vec![a]));
        assert_eq!(keys("ALPHA", 3632), Ok(vec![a]));
        assert_eq!(keys("beta", 4000), Ok(vec![a]));
        assert_eq!(keys("beta", 3632), Ok(vec![]));
        assert_eq!(keys("::1", 3632), Ok(vec![b]));
        assert_eq!(keys("::2", 3632), Ok(vec![b]));
        assert_eq!(keys("10.0.0.1", 3632), Ok(vec![b]));
        assert!(!remember_host(&path, &host_name("beta", 4000), a).unwrap());
        // The last line had no end: it keeps its own.
        assert!(remember_host(&path, &host_name("gamma", 1), b).unwrap());
        assert!(!remember_host(&path, &host_name("gamma", 1), b).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("beta").count(), 1);
        assert_eq!(text.matches("gamma").count(), 1);
        let known = KnownHosts::load(&path);
        assert_eq!(known.keys_of("gamma:1"), Ok(&[b][..]));
        assert_eq!(known.keys_of("10.0.0.1:3632"), Ok(&[b][..]));

        // A line whose key cannot be read leaves its host unusable, not unpinned; one with
        // no host, or a file that cannot be read, every host.
        fs::write(&path, format!("alpha {a}\nbeta SHA256:short\n")).unwrap();
        let known = KnownHosts::load(&path);
        assert!(known.keys_of("alpha:3632").is_ok());
        assert!(known.keys_of("beta:3632").is_err());
        fs::write(&path, format!("alpha {a}\nbeta:port {a}\n")).unwrap();
        assert!(KnownHosts::load(&path).keys_of("alpha:3632").is_err());
        assert!(KnownHosts::load(dir.path()).keys_of("alpha:3632").is_err());
        assert_eq!(
            KnownHosts::load(&dir.path().join("none")).keys_of("x:1"),
            Ok(&[][..])
        );
    }
}
