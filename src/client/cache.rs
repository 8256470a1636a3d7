//! The client's use of the compile cache in plain mode: the job is preprocessed before a
//! host is chosen, and its text, with everything else that decides the result, makes the
//! key. A hit writes the object and replays the messages with no host at all; a miss goes
//! on to a host with the text already made, and what the host sends back is stored.
//!
//! The key holds the text exactly as it would be sent (the preprocessor has already put
//! every header, `-D` and `__FILE__` into it), the command line the host would run, the
//! compiler's identity ([`crate::cache::key`]), the variables that change what a compiler
//! writes, and the working directory when debug information would name it. The dependency
//! file needs no entry: the local preprocessor writes it on every build.
//!
//! Text made with `-fdirectives-only` still holds `__DATE__` and `__TIME__` unexpanded:
//! the host expands them when it compiles, so such a result is never cached (with
//! `SOURCE_DATE_EPOCH` set it is not even distributed, see `preprocess`). Fully
//! preprocessed text has them expanded, so they are in the key. The store itself is
//! `crate::cache`'s.

use std::io;
use std::path::Path;

use super::config::{CacheConfig, Config};
use super::outputs::write_output;
use super::preprocess::{self, Prepared, Text};
use crate::cache::stats::Bytes;
use crate::cache::{key, Cache, Counter, Entry, Key, KeyHasher, Stats};
use crate::cmdline::{debug_info, Compile};
use crate::wire::Reply;

/// The cache and the key of one job.
pub(super) struct Cached {
    cache: Cache,
    key: Key,
}

/// What looking a job up came to.
pub(super) enum Looked<'a> {
    /// Answered: the object is written and the messages shown.
    Hit,
    /// To be compiled, with this text; stored under the key afterwards, when there is one.
    Miss(Prepared<'a>, Option<Cached>),
}

/// Looks `job`, preprocessed into `prepared`, up in the cache.
pub(super) fn look_up<'a>(prepared: Prepared<'a>, cfg: &Config, limit: u64) -> Looked<'a> {
    let Some(cc) = &cfg.cache else {
        return Looked::Miss(prepared, None);
    };
    let (job, text) = &prepared;
    let key = match text.with_bytes(|t| job_key(job, cfg, cc, t)) {
        Ok(Some(key)) => key,
        Ok(None) => return Looked::Miss(prepared, None),
        Err(e) => {
            log::warn!("cannot read the preprocessed text for the cache: {e}");
            return Looked::Miss(prepared, None);
        }
    };
    let cache = Cache::new(cc.dir.clone(), limit);
    if let Some(entry) = cache.get(&key) {
        match write_output(Path::new(job.output()), &entry.object) {
            Ok(()) => {
                log::info!("{} answered from the cache", job.input());
                cache.count(&key, Counter::HitPreprocessed);
                super::build::show(&entry.stderr, &entry.stdout);
                return Looked::Hit;
            }
            Err(e) => log::warn!("failed to write {}: {e}", job.output()),
        }
    }
    cache.count(&key, Counter::Miss);
    Looked::Miss(prepared, Some(Cached { cache, key }))
}

impl Cached {
    /// Stores what a host sent back for the job (a success).
    pub(super) fn store(self, reply: Reply) {
        let entry = Entry {
            object: reply.output,
            stderr: reply.stderr,
            stdout: reply.stdout,
        };
        if let Err(e) = self.cache.put(&self.key, &entry) {
            log::info!(
                "cannot store in the cache at {}: {e}",
                self.cache.dir.display()
            );
        }
    }
}

/// The key of `job` whose text to send is `text`; `None` when its result may not be
/// cached, or the compiler cannot be identified.
fn job_key(job: &Compile, cfg: &Config, cc: &CacheConfig, text: &[u8]) -> Option<Key> {
    if job.directives_only && preprocess::uses_time_macros(text) {
        log::debug!("{} uses the time macros: not cached", job.input());
        return None;
    }
    let mut h = KeyHasher::new("preprocessed");
    let compiler = &job.argv()[0];
    let identity = key::locate(compiler)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not on PATH"))
        .and_then(|path| key::compiler_identity(&cc.dir, &path));
    match identity {
        Ok(id) => h.field("compiler", &id),
        Err(e) => {
            log::info!("cannot identify the compiler {compiler} for the cache: {e}");
            return None;
        }
    };
    let argv = super::remote::argv_for_host(job, cfg);
    h.words("argv", &argv);
    h.field("language", format!("{:?}", job.lang).as_bytes());
    for (name, value) in &cc.env {
        h.field(
            name,
            value.as_ref().map_or(b"\0unset", |v| v.as_encoded_bytes()),
        );
    }
    let mapped = job
        .argv()
        .iter()
        .any(|a| a.starts_with("-fdebug-prefix-map=") || a.starts_with("-ffile-prefix-map="));
    if debug_info(job.argv()) && !mapped {
        let cwd = std::env::current_dir().ok()?;
        h.field("cwd", cwd.as_os_str().as_encoded_bytes());
    }
    h.field("text", text);
    Some(h.finish())
}

impl Text {
    /// Runs `f` on the text's bytes, without copying a text in a memory file.
    pub(super) fn with_bytes<T>(&self, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        match self {
            Text::Bytes(data) => Ok(f(data)),
            Text::Memory(file, len) => preprocess::with_mapped(file, *len, f),
        }
    }
}

/// `distcc --cache-stats`: the counters of the whole cache.
pub(super) fn stats_main(cfg: &Config) -> i32 {
    let Some(cc) = &cfg.cache else {
        println!("The cache is off: set DISTCC_CACHE_DIR, or DISTCC_CACHE=1.");
        return 0;
    };
    let s = Stats::total(&cc.dir);
    let hits = [
        Counter::HitDirect,
        Counter::HitPreprocessed,
        Counter::HitDaemon,
    ]
    .iter()
    .map(|&c| s.get(c))
    .sum::<u64>();
    let asked = hits + s.get(Counter::Miss);
    let rate = if asked == 0 {
        0.0
    } else {
        hits as f64 * 100.0 / asked as f64
    };
    let limit = match &cc.size {
        Ok(l) => Bytes(*l).to_string(),
        Err(e) => e.to_string(),
    };
    let rows = [
        ("cache directory", cc.dir.display().to_string()),
        ("hits, direct", s.get(Counter::HitDirect).to_string()),
        (
            "hits, preprocessed",
            s.get(Counter::HitPreprocessed).to_string(),
        ),
        ("hits, on a daemon", s.get(Counter::HitDaemon).to_string()),
        ("misses", s.get(Counter::Miss).to_string()),
        ("hit rate", format!("{rate:.1} %")),
        ("results stored", s.get(Counter::Stored).to_string()),
        ("entries", s.files.to_string()),
        ("size", Bytes(s.size).to_string()),
        ("size limit", limit),
        ("evicted", s.get(Counter::Evicted).to_string()),
        ("damaged, removed", s.get(Counter::Damaged).to_string()),
    ];
    for (name, value) in rows {
        println!("{name:<24}{value}");
    }
    0
}

/// `distcc --cache-clear`: removes every entry and counter.
pub(super) fn clear_main(cfg: &Config) -> i32 {
    let Some(cc) = &cfg.cache else {
        println!("The cache is off: set DISTCC_CACHE_DIR, or DISTCC_CACHE=1.");
        return 0;
    };
    match Cache::new(cc.dir.clone(), 0).clear() {
        Ok(was) => {
            println!(
                "Removed {} entries ({}) from {}.",
                was.files,
                Bytes(was.size),
                cc.dir.display()
            );
            0
        }
        Err(e) => {
            log::error!("cannot clear the cache at {}: {e}", cc.dir.display());
            crate::exitcode::IO_ERROR
        }
    }
}
