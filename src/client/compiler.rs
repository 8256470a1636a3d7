//! The client's side of the compiler identity check: the identity of the compiler this
//! machine would run for a job (asked once per compiler version and kept in
//! `$DISTCC_DIR/compilers/`), and whether a host's result may be used. Our daemon says
//! after each reply what its compiler is (`wire::reply`); distcc 3.4's says nothing and is
//! trusted as before. What a mismatch costs the job (another host, or a local compile) is
//! `build`'s business.

use std::path::Path;

use super::config::Config;
use crate::cache::key;
use crate::cmdline::Compile;
use crate::toolchain::identity::Identity;

/// This machine's compiler for one job, asked at most once.
#[derive(Default)]
pub(super) struct Ours(Option<Option<(Identity, String)>>);

impl Ours {
    /// The identity of the compiler `job` would run here, and a digest of it that names it
    /// in the build's notes; `None` when it cannot be asked (then nothing is checked).
    pub(super) fn get(&mut self, job: &Compile, cfg: &Config) -> Option<&(Identity, String)> {
        self.0
            .get_or_insert_with(|| {
                let name = job.argv().first()?;
                let path = key::locate(name)?;
                let id = remembered(&path, cfg.top.as_deref()?)?;
                let digest = blake3::hash(id.text().as_bytes()).to_hex()[..16].to_string();
                Some((id, digest))
            })
            .as_ref()
    }
}

/// The identity of the compiler at `path`, kept in `top/compilers/` by the program's own
/// identity: a client runs once per job, and `-v` costs a few milliseconds. A compiler
/// that could not say is kept as such (`none`), and not asked again.
fn remembered(path: &Path, top: &Path) -> Option<Identity> {
    let m = std::fs::metadata(path).ok()?;
    let mut name = blake3::Hasher::new();
    name.update(b"distcc-rs compiler identity 1\0");
    name.update(path.as_os_str().as_encoded_bytes());
    name.update(&crate::cache::manifest::Ident::of(&m).bytes());
    let name = format!("{}.id", name.finalize().to_hex());
    let kept = key::memoized(
        top,
        &name,
        |k| k == NONE || std::str::from_utf8(k).is_ok_and(|t| Identity::parse(t).is_some()),
        || match Identity::ask(path) {
            Ok(id) => Ok(id.text().as_bytes().to_vec()),
            Err(e) => {
                log::warn!("cannot identify the compiler: {e}");
                Ok(NONE.to_vec())
            }
        },
    )
    .map_err(|e| log::debug!("cannot identify {}: {e}", path.display()))
    .ok()?;
    Identity::parse(std::str::from_utf8(&kept).ok()?)
}

/// The memo of a compiler that could not say what it is.
const NONE: &[u8] = b"none";
