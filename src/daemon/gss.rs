//! The daemon's GSS-API authentication, as distcc 3.4's `--auth`: the service principal
//! (`DISTCCD_PRINCIPAL`), the credentials acquired for it once the daemon runs as its own
//! user (whose keytab it then reads at every job), and the principal lists
//! (`--whitelist`, `--blacklist`). The exchange itself is `net::gssapi`'s.

use std::io::{Read, Write};
use std::sync::OnceLock;

use super::DaemonError;
use crate::net::gssapi::{self, Acceptor, GssError, PrincipalList};

/// `--auth` and its lists.
#[derive(Debug)]
pub struct Gss {
    pub principal: String,
    list: Option<PrincipalList>,
    /// Acquired at start-up, as the daemon's user.
    acceptor: OnceLock<Acceptor>,
}

impl Gss {
    /// The settings the options ask for, if any.
    pub fn from_args(
        auth: bool,
        whitelist: Option<&std::path::Path>,
        blacklist: Option<&std::path::Path>,
        principal: Option<&str>,
    ) -> Result<Option<Gss>, DaemonError> {
        let bad = |why: String| DaemonError::GssOptions(why);
        if !auth {
            return match (whitelist, blacklist) {
                (None, None) => Ok(None),
                _ => Err(bad("--whitelist and --blacklist need --auth".into())),
            };
        }
        let list = match (whitelist, blacklist) {
            (Some(_), Some(_)) => {
                return Err(bad("can't specify both --whitelist and --blacklist".into()))
            }
            (Some(path), None) => Some((path, true)),
            (None, Some(path)) => Some((path, false)),
            (None, None) => None,
        };
        let list = match list {
            Some((path, admit_listed)) => {
                Some(PrincipalList::load(path, admit_listed).map_err(|e| {
                    DaemonError::Gss(format!("failed to open list file {}: {e}", path.display()))
                })?)
            }
            None => None,
        };
        let principal = principal.filter(|p| !p.is_empty()).ok_or_else(|| {
            DaemonError::Gss(
                "--auth needs the daemon's principal in DISTCCD_PRINCIPAL (such as \
                 host/build1.example.com)"
                    .into(),
            )
        })?;
        Ok(Some(Gss {
            principal: principal.to_string(),
            list,
            acceptor: OnceLock::new(),
        }))
    }

    /// Acquires the credentials, as the user the daemon runs as: its keytab must be
    /// readable by that user at every job.
    pub fn acquire(&self) -> Result<(), DaemonError> {
        let acceptor = Acceptor::acquire(&self.principal).map_err(|e| {
            DaemonError::Gss(format!(
                "{e} (as the user distccd runs as; see KRB5_KTNAME)"
            ))
        })?;
        log::info!("GSS-API credentials acquired for {}", acceptor.principal);
        let _ = self.acceptor.set(acceptor);
        Ok(())
    }

    /// Authenticates a client whose `*` was seen (not read): its context, then `y` or `n`.
    /// Returns its principal when it is admitted.
    pub fn authenticate(&self, stream: &mut (impl Read + Write)) -> Result<String, GssError> {
        let mut star = [0u8; 1];
        stream.read_exact(&mut star)?;
        let acceptor = self
            .acceptor
            .get()
            .ok_or_else(|| GssError::Library("no credentials acquired".into()))?;
        let principal = acceptor.accept(stream)?;
        let admitted = self.list.as_ref().is_none_or(|l| l.admits(&principal));
        let verdict = if admitted {
            gssapi::ACCESS
        } else {
            gssapi::NO_ACCESS
        };
        stream.write_all(&[verdict])?;
        stream.flush()?;
        if admitted {
            Ok(principal)
        } else {
            log::warn!("access denied to {principal} by the principal list");
            Err(GssError::Denied)
        }
    }
}
