//! The daemon's TLS: its key (`--key`), which clients it admits (`--authorized-keys`,
//! read again on SIGHUP) and whether it still serves the classic protocol in the clear
//! (not with `--tls-only`).
//!
//! A client whose key is not listed completes its handshake all the same and is answered
//! with a refusal that names its key (see `listener::refuse`), so that its user learns
//! what to ask the farm's administrator for, instead of meeting a closed connection. The
//! handshake itself and the key files are `net`'s.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;

use super::DaemonError;
use crate::net::keys::{AuthorizedKeys, Fingerprint, KeyError, KeyPair};
use crate::net::tls;

/// The daemon's TLS settings, decided at start-up.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// Without a list, any client the address list allows is served, encrypted.
    pub authorized: Option<Arc<Authorized>>,
    /// `--tls-only`: classic connections are refused.
    pub only: bool,
}

/// `--authorized-keys`: the file, and the keys it listed when last read.
#[derive(Debug)]
pub struct Authorized {
    pub path: PathBuf,
    keys: RwLock<AuthorizedKeys>,
}

impl Authorized {
    /// Reads the file again; keeps the keys it had when the file cannot be read. A line
    /// that lists no key is said, and the others are used: a key removed (revoked) must go
    /// even when another line is mistyped.
    pub fn reload(&self) {
        let loaded = match AuthorizedKeys::load(&self.path) {
            // Removed to revoke every key: none is admitted.
            Err(KeyError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                log::error!(
                    "{} is gone: no TLS client is admitted until it is back",
                    self.path.display()
                );
                Ok(AuthorizedKeys::default())
            }
            loaded => loaded,
        };
        match loaded {
            Ok(keys) => {
                for problem in &keys.problems {
                    log::error!("{problem}: line ignored");
                }
                log::info!(
                    "authorized keys read again from {}: {} keys",
                    self.path.display(),
                    keys.len()
                );
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(e) => {
                log::error!("cannot read the authorized keys again: {e}; keeping the old ones")
            }
        }
    }
}

/// What the daemon makes of a client's key: its name in the list (empty when it has none,
/// or when there is no list), or the refusal to send.
pub fn admit(tls: &Tls, key: Option<Fingerprint>) -> Result<String, String> {
    let Some(key) = key else {
        return Err("the client showed no key".into());
    };
    let Some(authorized) = &tls.authorized else {
        return Ok(String::new());
    };
    let keys = authorized.keys.read().unwrap_or_else(|e| e.into_inner());
    match keys.name_of(&key) {
        Some(name) => Ok(name.to_string()),
        None => Err(format!(
            "your key {key} is not authorised on this host; ask its administrator to add \
             your public key (id_ed25519.pub in your distcc directory) to its authorized keys"
        )),
    }
}

/// The TLS settings the options ask for, if any: the key is read now, while the daemon may
/// still be root.
pub fn from_args(
    key: Option<&PathBuf>,
    authorized: Option<&PathBuf>,
    only: bool,
) -> Result<Option<Tls>, DaemonError> {
    let Some(key) = key else {
        return match (authorized, only) {
            (None, false) => Ok(None),
            _ => Err(DaemonError::Tls(
                "--authorized-keys and --tls-only need the daemon's key (--key FILE; make one \
                 with distccd --gen-key FILE)"
                    .into(),
            )),
        };
    };
    let pair = KeyPair::load(key).map_err(|e| DaemonError::Tls(format!("--key: {e}")))?;
    let config = tls::server_config(&pair).map_err(|e| DaemonError::Tls(e.to_string()))?;
    let authorized = match authorized {
        None => None,
        Some(path) => {
            let keys = AuthorizedKeys::load(path)
                .map_err(|e| DaemonError::Tls(format!("--authorized-keys: {e}")))?;
            if let Some(problem) = keys.problems.first() {
                return Err(DaemonError::Tls(format!("--authorized-keys: {problem}")));
            }
            if keys.is_empty() {
                log::warn!(
                    "{} lists no key: every TLS client will be refused",
                    path.display()
                );
            }
            Some(Arc::new(Authorized {
                path: path.clone(),
                keys: RwLock::new(keys),
            }))
        }
    };
    if authorized.is_some() && !only {
        log::warn!(
            "--authorized-keys admits TLS clients only: classic clients that --allow admits \
             are not asked for a key (add --tls-only to refuse them)"
        );
    }
    let fingerprint = pair.public.fingerprint();
    log::info!(
        "serving TLS with key {fingerprint}{}{}",
        match &authorized {
            Some(a) => format!(" to the clients of {}", a.path.display()),
            None => " to any client".into(),
        },
        if only {
            ", and nothing in the clear"
        } else {
            ""
        }
    );
    Ok(Some(Tls {
        config,
        authorized,
        only,
    }))
}
