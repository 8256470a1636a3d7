//! The client's side of the compiler identity check: the identity of the compiler this
//! machine would run for a job (asked once per version of the compiler and kept in
//! `$DISTCC_DIR/compilers/`, see `toolchain::identity`), for `build` to compare with what
//! our daemon says after each reply it ran (`wire::reply`). distcc 3.4's daemon says
//! nothing and is trusted as before. What a mismatch costs the job (another host, or a
//! local compile) is `build`'s business.

use super::config::Config;
use crate::cache::key;
use crate::cmdline::Compile;
use crate::toolchain::identity::{self, Identity};

/// This machine's compiler for one job, asked at most once.
#[derive(Default)]
pub(super) struct Ours(Option<Option<(Identity, String)>>);

impl Ours {
    /// The identity of the compiler `job` would run here (kept in `$DISTCC_DIR/compilers/`,
    /// or asked each time without a `DISTCC_DIR`), and a digest of it that names it in the
    /// notes of the farm; `None` when it cannot be asked (then nothing is checked).
    pub(super) fn get(&mut self, job: &Compile, cfg: &Config) -> Option<&(Identity, String)> {
        self.0
            .get_or_insert_with(|| {
                let path = key::locate(job.argv().first()?)?;
                let id = identity::of_compiler(&path, cfg.top.as_deref(), None)?;
                let digest = blake3::hash(id.text().as_bytes()).to_hex()[..16].to_string();
                Some((id, digest))
            })
            .as_ref()
    }
}
