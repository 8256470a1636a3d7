//! Which hosts a job reaches over TLS, and with what trust: the user's mode (`DISTCC_TLS`),
//! the hosts' pinned keys (the known hosts files), the user's own key (made on first use),
//! and what to tell the user when a host's key is not the pinned one.
//!
//! Nothing of this goes into the host list, which distcc 3.4 reads too and would reject
//! whole for an option it does not know. The handshake is `net::tls`'s; the key files are
//! `net::keys`'s.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{Config, TlsMode};
use super::remote::RemoteError;
use crate::net::keys::{self, Fingerprint, KeyPair, KnownHosts};
use crate::net::{tls, ConnectError, Connection};

/// The known hosts file every user of this machine shares, beside their own.
const SYSTEM_KNOWN_HOSTS: &str = "/etc/distcc/known_hosts";

/// The user's known hosts file, in the distcc directory.
fn user_known_hosts(cfg: &Config) -> Option<PathBuf> {
    cfg.top.as_ref().map(|top| top.join("known_hosts"))
}

/// The user's key for TLS, in the distcc directory.
pub fn user_key_file(top: &Path) -> PathBuf {
    top.join("id_ed25519")
}

fn mode(cfg: &Config) -> TlsMode {
    match &cfg.tls {
        Ok(mode) => *mode,
        Err(e) => {
            log::warn!("{e}; taking it as require");
            TlsMode::Require
        }
    }
}

/// TLS to one host: its name in the known hosts, the keys pinned for it (none: any, trusted
/// on first use), and the user's key.
pub struct Tls {
    name: String,
    pins: Vec<Fingerprint>,
    pair: KeyPair,
}

/// How `host:port` is reached under the user's mode and pins: `None` in the clear.
pub fn plan(cfg: &Config, host: &str, port: u16) -> Result<Option<Tls>, RemoteError> {
    let mode = mode(cfg);
    if mode == TlsMode::Off {
        return Ok(None);
    }
    let name = keys::host_name(host, port);
    let mut pins = Vec::new();
    for file in user_known_hosts(cfg)
        .into_iter()
        .chain([PathBuf::from(SYSTEM_KNOWN_HOSTS)])
    {
        let known = KnownHosts::load(&file);
        let keys = known.keys_of(&name).map_err(|why| {
            RemoteError::Untrusted(format!(
                "{why}; the host is left out until the file can be read, since it may \
                 pin the host's key"
            ))
        })?;
        pins.extend_from_slice(keys);
    }
    match mode {
        _ if !pins.is_empty() => {}
        TlsMode::Tofu => {}
        TlsMode::Require => {
            return Err(RemoteError::Untrusted(format!(
                "no key is pinned for {name} in your known hosts ({}), and DISTCC_TLS=require \
                 sends nothing in the clear",
                known_hosts_shown(cfg)
            )))
        }
        _ => return Ok(None),
    }
    let pair = user_key(cfg).map_err(RemoteError::Untrusted)?;
    Ok(Some(Tls { name, pins, pair }))
}

/// The known hosts file to name in messages.
fn known_hosts_shown(cfg: &Config) -> String {
    user_known_hosts(cfg).map_or_else(|| SYSTEM_KNOWN_HOSTS.into(), |p| p.display().to_string())
}

/// The user's key pair, made the first time it is needed.
fn user_key(cfg: &Config) -> Result<KeyPair, String> {
    let Some(top) = &cfg.top else {
        return Err("no distcc directory (set DISTCC_DIR or HOME) to keep your TLS key in".into());
    };
    let path = user_key_file(top);
    match KeyPair::load(&path) {
        Ok(pair) => return Ok(pair),
        Err(keys::KeyError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot use your TLS key: {e}")),
    }
    match KeyPair::generate(&path, &keys::default_comment()) {
        Ok(pair) => {
            log::info!(
                "made your TLS key {} ({})",
                path.display(),
                pair.public.fingerprint()
            );
            Ok(pair)
        }
        // Another job of the build made it first.
        Err(keys::KeyError::Exists { .. }) => {
            KeyPair::load(&path).map_err(|e| format!("cannot use your TLS key: {e}"))
        }
        Err(e) => Err(format!("cannot make your TLS key: {e}")),
    }
}

impl Tls {
    /// The handshake with `host` over `sock`.
    pub fn reach(
        self,
        cfg: &Config,
        host: &str,
        sock: TcpStream,
        timeout: Duration,
    ) -> Result<Connection, RemoteError> {
        let Tls { name, pins, pair } = self;
        let check = tls::HostKeyCheck::new(pins.clone());
        let config = tls::client_config(&pair, check.clone())
            .map_err(|e| RemoteError::Untrusted(format!("cannot set up TLS: {e}")))?;
        // The connection's own timeout: a host busy with other jobs leaves it in its backlog,
        // unanswered, for as long as a classic connection would wait there.
        match tls::connect(config, host, sock, timeout) {
            Ok(stream) => {
                if pins.is_empty() {
                    trust_on_first_use(cfg, &name, &check);
                }
                Ok(Connection::Tls(Box::new(stream)))
            }
            Err(error) => Err(match check.seen() {
                Some(key) if !pins.is_empty() && !pins.contains(&key.fingerprint()) => {
                    RemoteError::Untrusted(changed(cfg, &name, &pins, key.fingerprint()))
                }
                _ => RemoteError::Connect(ConnectError::Tls { host: name, error }),
            }),
        }
    }
}

/// Pins the key `host` just showed, and says so.
fn trust_on_first_use(cfg: &Config, name: &str, check: &tls::HostKeyCheck) {
    let (Some(file), Some(key)) = (user_known_hosts(cfg), check.seen()) else {
        return;
    };
    let key = key.fingerprint();
    match keys::remember_host(&file, name, key) {
        Ok(true) => log::warn!(
            "trusting {name} with key {key} on first use (DISTCC_TLS=tofu); pinned in {}",
            file.display()
        ),
        Ok(false) => {}
        Err(e) => log::warn!("cannot pin the key of {name}: {e}"),
    }
}

/// What to say of a host whose key is not the pinned one.
fn changed(cfg: &Config, name: &str, pins: &[Fingerprint], shown: Fingerprint) -> String {
    let pinned: Vec<String> = pins.iter().map(Fingerprint::to_string).collect();
    format!(
        "the key of {name} has changed: it showed {shown}, but your known hosts pin {}. \
         Someone may be impersonating the host, or its key was replaced; if you know that it \
         was, replace its line in {}",
        pinned.join(" or "),
        known_hosts_shown(cfg)
    )
}
