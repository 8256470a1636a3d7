//! The client's use of the compile cache. Direct mode ([`look_up_direct`]) comes first in
//! both modes. In plain mode the job is then preprocessed before a host is chosen, and its
//! text, with everything else that decides the result, makes the key. A hit writes the
//! object and replays the messages with no host at all; a miss goes on to a host with the
//! text already made, and what the host sends back is stored. In pump mode the include
//! server's answer takes the text's place ([`look_up_pump`]).
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
use super::pump::Plan;
use crate::cache::manifest::Fact;
use crate::cache::scans::Scans;
use crate::cache::stats::Bytes;
use crate::cache::sums::Sums;
use crate::cache::{key, manifest, Cache, Counter, Entry, Key, KeyHasher, Stats};
use crate::cmdline::{debug_info, Compile};
use crate::wire::{Content, Reply};

/// The cache and the key of one job.
pub(super) struct Cached {
    cache: Cache,
    key: Key,
    /// Direct mode's manifest to add this result to, with the headers the text entered.
    direct: Option<(Key, manifest::Candidate)>,
    /// In pump mode, the manifest's key and the candidate, made with the key, to which
    /// the dependency file the host sends is added once it is written.
    pumped: Option<(Key, Option<String>, manifest::Candidate)>,
}

/// What direct mode knows of a job before it is preprocessed.
pub(super) struct Direct {
    key: Key,
    /// The compiler's identity, which the text's key holds too.
    identity: [u8; 32],
    /// The search chain, every directory as written; and the compiler's own, also by
    /// their real paths.
    chain: Vec<String>,
    /// How many of `chain`'s first directories are `-iquote` ones.
    quoted: usize,
    system: Vec<String>,
    /// The dependency file the command writes.
    deps: Option<String>,
    started_ns: i128,
    source_sum: [u8; 32],
    /// The `-include` and `-imacros` names.
    forced: Vec<String>,
    /// The sums of the files a manifest names, remembered.
    sums: Sums,
    /// The cache's directory, where what each header names is remembered.
    dir: std::path::PathBuf,
}

/// What looking a job up came to.
pub(super) enum Looked<T> {
    /// Answered: the object is written and the messages shown.
    Hit,
    /// To be compiled, with this text (plain mode); stored under the key afterwards, when
    /// there is one.
    Miss(T, Option<Box<Cached>>),
}

/// Direct mode: answers `job` from the cache without preprocessing it, when a manifest of
/// its command holds. Otherwise what the later steps need to add to the manifest.
pub(super) fn look_up_direct(
    job: &Compile,
    cfg: &Config,
    limit: u64,
) -> Result<(), Option<Box<Direct>>> {
    let cc = cfg.cache.as_ref().ok_or(None)?;
    let direct = Box::new(direct_key(job, cfg, cc).ok_or(None)?);
    let cache = Cache::new(cc.dir.clone(), limit);
    let Some(manifest) = cache.get_manifest(&direct.key) else {
        return Err(Some(direct));
    };
    let Some(candidate) = manifest.find(&direct.sums) else {
        return Err(Some(direct));
    };
    let Some(entry) = cache.get(&candidate.result) else {
        return Err(Some(direct));
    };
    let written = write_output(Path::new(job.output()), &entry.object).and_then(|()| {
        match (&direct.deps, &candidate.deps) {
            (Some(path), Some(text)) => write_output(Path::new(path), text),
            _ => Ok(()),
        }
    });
    if let Err(e) = written {
        log::warn!("failed to write {}: {e}", job.output());
        return Err(Some(direct));
    }
    log::info!("{} answered from the cache, not preprocessed", job.input());
    cache.count(&candidate.result, Counter::HitDirect);
    super::build::show(&entry.stderr, &entry.stdout);
    Ok(())
}

/// Direct mode's key for `job`: its compiler, command line, working directory and source;
/// `None` where direct mode cannot be exact (no dependency file it can name, include
/// directories from the environment, the time macros in the source).
fn direct_key(job: &Compile, cfg: &Config, cc: &CacheConfig) -> Option<Direct> {
    if job.preprocessed || cc.direct_off.is_some() {
        return None;
    }
    if let Some(a) = job.argv().iter().skip(1).find(|a| moves_headers(a)) {
        log::debug!("{a} may move what the preprocessor reads: no direct mode");
        return None;
    }
    let (_, deps) = job.pump_argv()?;
    let model = crate::include::cmdline::parse(job.argv()).ok()?;
    let (path, identity) = compiler(job, cc)?;
    let builtin = key::builtin_dirs(
        &cc.dir,
        &path,
        &identity,
        &model.probe_flags,
        &model.language,
    )
    .map_err(|e| log::info!("cannot ask {} for its directories: {e}", path.display()))
    .ok()?;
    let source = std::fs::read(job.input()).ok()?;
    if crate::toolchain::pragmas::uses_time_macros(&source) || time_macros_in_argv(job) {
        return None;
    }
    let cwd = cfg.working_dir()?;
    let source_sum = *blake3::hash(&source).as_bytes();
    let mut h = KeyHasher::new("direct");
    h.field("compiler", &identity)
        .words("argv", job.argv())
        .field("cwd", cwd.as_encoded_bytes())
        .field("directives-only", &[u8::from(job.directives_only)])
        .field("rewrite-cross", &[u8::from(cfg.rewrite_cross)])
        .field("source", &source_sum);
    environment(&mut h, cc);
    let quoted = model.quote.len();
    let chain = [
        model.quote,
        model.bracket,
        model.isystem,
        builtin.spelled,
        model.after,
    ]
    .concat();
    Some(Direct {
        key: h.finish(),
        identity,
        chain,
        quoted,
        system: builtin.own,
        deps,
        started_ns: manifest::now_ns(),
        source_sum,
        forced: model.include_files,
        sums: Sums::open(&cc.dir),
        dir: cc.dir.clone(),
    })
}

/// Looks `job`, preprocessed into `prepared`, up in the cache; `direct` is what direct
/// mode needs to learn this text's headers, which it does only from a preprocessor that
/// was `quiet`: a direct hit could not say again what it said.
pub(super) fn look_up<'a>(
    prepared: Prepared<'a>,
    cfg: &Config,
    limit: u64,
    direct: Option<Box<Direct>>,
    quiet: bool,
) -> Looked<Prepared<'a>> {
    let Some(cc) = &cfg.cache else {
        return Looked::Miss(prepared, None);
    };
    let (job, text) = &prepared;
    let identity = match &direct {
        Some(d) => Some(d.identity),
        None => compiler(job, cc).map(|(_, id)| id),
    };
    let Some(identity) = identity else {
        return Looked::Miss(prepared, None);
    };
    let direct = direct.filter(|_| quiet);
    let made = text.with_bytes(|t| {
        let key = job_key(job, cfg, cc, t, &identity)?;
        Some((key, direct.zip(manifest::entered(t))))
    });
    let (key, direct) = match made {
        Ok(Some(made)) => made,
        Ok(None) => return Looked::Miss(prepared, None),
        Err(e) => {
            log::warn!("cannot read the preprocessed text for the cache: {e}");
            return Looked::Miss(prepared, None);
        }
    };
    let cache = Cache::new(cc.dir.clone(), limit);
    // Made now, while what the preprocessor read is most likely as it was.
    let direct =
        direct.and_then(|(d, entered)| Some((d.key, d.candidate(job.input(), &entered, key)?)));
    let cached = Cached {
        cache,
        key,
        direct,
        pumped: None,
    };
    if let Some(entry) = cached.cache.get(&key) {
        match write_output(Path::new(job.output()), &entry.object) {
            Ok(()) => {
                log::info!("{} answered from the cache", job.input());
                cached.cache.count(&key, Counter::HitPreprocessed);
                super::build::show(&entry.stderr, &entry.stdout);
                cached.remember();
                return Looked::Hit;
            }
            Err(e) => log::warn!("failed to write {}: {e}", job.output()),
        }
    }
    cached.cache.count(&key, Counter::Miss);
    Looked::Miss(prepared, Some(Box::new(cached)))
}

/// Pump mode: looks `job` up by what it would send, `plan`, when direct mode knows the
/// job (`direct`) and the include server said what its walk entered. Direct mode's own
/// look-up has missed already.
///
/// The candidate for direct mode's manifest is made first, from every file the walk
/// entered: reading them all is what shows that none uses the time macros (which the
/// host would expand), and its facts under the compiler's own directories (each system
/// header by identity, each system directory a name was looked for in, `__has_include`
/// included) stand for the host's system headers, which pump mode takes to be this
/// machine's. The key holds those, every file sent by name and content, the command
/// line and working directory the host gets, and the compiler's identity.
pub(super) fn look_up_pump(
    job: &Compile,
    cfg: &Config,
    limit: u64,
    plan: &Plan,
    direct: Box<Direct>,
) -> Looked<()> {
    let (Some(cc), Some(entered)) = (&cfg.cache, &plan.entered) else {
        return Looked::Miss((), None);
    };
    let Some(mut candidate) = direct.facts(job.input(), entered, Key([0; 32])) else {
        log::debug!(
            "{}: what the include server walked cannot be kept",
            job.input()
        );
        return Looked::Miss((), None);
    };
    let key = pump_key(&direct, plan, cfg, cc, &candidate);
    candidate.result = key;
    let cache = Cache::new(cc.dir.clone(), limit);
    if let Some(entry) = cache.get(&key) {
        let written = match (&plan.deps, &entry.deps) {
            (Some(path), Some(deps)) => write_output(Path::new(job.output()), &entry.object)
                .and_then(|()| write_output(Path::new(path), deps)),
            (None, _) => write_output(Path::new(job.output()), &entry.object),
            // Kept without the file this command writes: not this command's result.
            (Some(_), None) => Err(io::Error::other("no dependency file in the entry")),
        };
        match written {
            Ok(()) => {
                log::info!("{} answered from the cache, not sent", job.input());
                cache.count(&key, Counter::HitPump);
                super::build::show(&entry.stderr, &entry.stdout);
                candidate.deps = plan.deps.as_ref().and(entry.deps);
                let cached = Cached {
                    cache,
                    key,
                    direct: Some((direct.key, candidate)),
                    pumped: None,
                };
                cached.remember();
                return Looked::Hit;
            }
            Err(e) => log::warn!("failed to write {}: {e}", job.output()),
        }
    }
    cache.count(&key, Counter::Miss);
    Looked::Miss(
        (),
        Some(Box::new(Cached {
            cache,
            key,
            direct: None,
            pumped: Some((direct.key, direct.deps.clone(), candidate)),
        })),
    )
}

/// The key of a pump-mode request (see [`look_up_pump`]), with `candidate` the facts of
/// what its walk entered.
fn pump_key(
    direct: &Direct,
    plan: &Plan,
    cfg: &Config,
    cc: &CacheConfig,
    candidate: &manifest::Candidate,
) -> Key {
    let mut h = KeyHasher::new("pump");
    h.field("compiler", &direct.identity)
        .words("argv", &plan.argv)
        .field("cwd", plan.cwd.as_bytes())
        .field("rewrite-cross", &[u8::from(cfg.rewrite_cross)]);
    environment(&mut h, cc);
    for f in &plan.files {
        match &f.content {
            Content::File(bytes) => h.field(&format!("file {}", f.name), bytes),
            Content::Link(target) => h.field(&format!("link {}", f.name), target.as_bytes()),
        };
    }
    // What the host finds in its own directories. Elsewhere, a name found or not decides
    // only which files are sent, which the key has already: a header created where the
    // walk shows it is never included changes nothing.
    for (path, fact) in &candidate.facts {
        let own = matches!(fact, Fact::Stat(_) | Fact::Dir(_))
            || manifest::under_any(&direct.system, path);
        if own || matches!(fact, Fact::Content(_)) {
            h.field(path, fact.to_string().as_bytes());
        }
    }
    h.finish()
}

impl Cached {
    /// Stores what a host sent back for `job` (a success).
    pub(super) fn store(mut self, reply: Reply) {
        if let Some((key, deps, mut candidate)) = self.pumped.take() {
            match deps.map(std::fs::read).transpose() {
                Ok(deps) => candidate.deps = deps,
                Err(_) => return,
            }
            self.direct = Some((key, candidate));
        }
        if reply.from_cache {
            self.cache.count(&self.key, Counter::HitDaemon);
        }
        let entry = Entry {
            object: reply.output,
            stderr: reply.stderr,
            stdout: reply.stdout,
            deps: reply.deps,
        };
        match self.cache.put(&self.key, &entry) {
            Ok(()) => self.remember(),
            Err(e) => log::info!(
                "cannot store in the cache at {}: {e}",
                self.cache.dir.display()
            ),
        }
    }

    /// Adds this result to the manifest of the command, for direct mode.
    fn remember(self) {
        let Some((key, candidate)) = self.direct else {
            return;
        };
        let mut m = self.cache.get_manifest(&key).unwrap_or_default();
        m.add(candidate);
        if let Err(e) = self.cache.put_manifest(&key, &m) {
            log::info!("cannot store a manifest in the cache: {e}");
        }
    }
}

impl Direct {
    /// The candidate of the job of `source`, whose preprocessor entered `entered`, with
    /// the result `result` and the dependency file the command wrote.
    fn candidate(
        &self,
        source: &str,
        entered: &[(String, Option<usize>)],
        result: Key,
    ) -> Option<manifest::Candidate> {
        let mut c = self.facts(source, entered, result)?;
        if let Some(p) = &self.deps {
            c.deps = Some(std::fs::read(p).ok()?);
        }
        Some(c)
    }

    /// The same without the dependency file.
    fn facts(
        &self,
        source: &str,
        entered: &[(String, Option<usize>)],
        result: Key,
    ) -> Option<manifest::Candidate> {
        let recorder = manifest::Recorder {
            chain: &self.chain,
            quoted: self.quoted,
            system: &self.system,
            started_ns: self.started_ns,
            source_sum: self.source_sum,
            forced: &self.forced,
            sums: &self.sums,
            scans: &Scans::open(&self.dir),
        };
        recorder.candidate(source, entered, result, None)
    }
}

/// Whether `source` and every file of `entered` (what a key was made of) are still as
/// they were at `started_ns`: none changed since, none is gone.
pub(super) fn unchanged_since(started_ns: i128, source: &str, entered: &manifest::Entered) -> bool {
    let paths = std::iter::once(source).chain(entered.iter().map(|(p, _)| p.as_str()));
    for path in paths {
        let Ok(m) = std::fs::metadata(path) else {
            return false;
        };
        if manifest::Ident::of(&m).recent(started_ns) {
            log::debug!("{path} changed while {source} compiled here: not kept");
            return false;
        }
    }
    true
}

/// Options that add search directories, or move the compiler's own, other than those
/// the search chain of direct mode knows (`-I`, `-iquote`, `-isystem`, `-idirafter`,
/// `-iprefix` and `-iwithprefix*`, `--sysroot`, `-isysroot`): a file found through one
/// would not be on the chain whose lookups a manifest records.
fn moves_headers(arg: &str) -> bool {
    const KNOWN: [&str; 9] = [
        "-iquote",
        "-isystem",
        "-idirafter",
        "-iprefix",
        "-iwithprefix",
        "-iwithprefixbefore",
        "-include",
        "-imacros",
        "-isysroot",
    ];
    let known = |k: &&str| {
        arg.strip_prefix(*k)
            .is_some_and(|rest| !rest.starts_with('-'))
    };
    (arg.starts_with("-i") && !KNOWN.iter().any(known))
        || [
            "-B",
            "-F",
            "-cxx-isystem",
            "--include",
            "--prefix",
            "-iframework",
        ]
        .iter()
        .any(|p| arg.starts_with(p))
}

/// Whether the command line defines a macro as one of the time macros
/// (`-DSTAMP=__TIME__`): the compiler expands it when it runs.
fn time_macros_in_argv(job: &Compile) -> bool {
    job.argv()
        .iter()
        .any(|a| crate::toolchain::pragmas::uses_time_macros(a.as_bytes()))
}

/// Adds the variables that change what a compiler writes (set or not) to a key.
fn environment(h: &mut KeyHasher, cc: &CacheConfig) {
    for (name, value) in &cc.env {
        h.field(
            name,
            value.as_ref().map_or(b"\0unset", |v| v.as_encoded_bytes()),
        );
    }
}

/// Where `job`'s compiler is, and its identity.
fn compiler(job: &Compile, cc: &CacheConfig) -> Option<(std::path::PathBuf, [u8; 32])> {
    let name = &job.argv()[0];
    let found = key::locate(name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not on PATH"))
        .and_then(|path| key::compiler_identity(&cc.dir, &path, None).map(|id| (path, id)));
    match found {
        Ok(found) => Some(found),
        Err(e) => {
            log::info!("cannot identify the compiler {name} for the cache: {e}");
            None
        }
    }
}

/// The key of `job` whose text to send is `text`, made by the compiler `identity`;
/// `None` when its result may not be cached.
fn job_key(
    job: &Compile,
    cfg: &Config,
    cc: &CacheConfig,
    text: &[u8],
    identity: &[u8; 32],
) -> Option<Key> {
    if (job.directives_only && crate::toolchain::pragmas::uses_time_macros(text))
        || time_macros_in_argv(job)
    {
        log::debug!("{} uses the time macros: not cached", job.input());
        return None;
    }
    if debug_info(job.argv()) && crate::toolchain::names::is_clang(&job.argv()[0]) {
        // clang's DWARF 5 line table records a checksum of every file read, comments and
        // all, which preprocessed text does not show: one text stands for objects that
        // differ. Such jobs are cached by the files they read (`look_up_pump`) only.
        log::debug!("{}: clang -g is not cached by its text", job.input());
        return None;
    }
    let mut h = KeyHasher::new("preprocessed");
    h.field("compiler", identity);
    let argv = super::remote::argv_for_host(job, cfg);
    h.words("argv", &argv);
    h.field("language", format!("{:?}", job.lang).as_bytes());
    environment(&mut h, cc);
    let mapped = job
        .argv()
        .iter()
        .any(|a| a.starts_with("-fdebug-prefix-map=") || a.starts_with("-ffile-prefix-map="));
    if debug_info(job.argv()) && !mapped {
        h.field("cwd", cfg.working_dir()?.as_encoded_bytes());
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
        Counter::HitPump,
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
        ("hits, pump request", s.get(Counter::HitPump).to_string()),
        ("misses", s.get(Counter::Miss).to_string()),
        // Of the misses, those our daemons answered from their caches.
        ("hits, on a daemon", s.get(Counter::HitDaemon).to_string()),
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
