//! The journey of a job that can be distributed: pick a host with a free slot, try it, and
//! turn what comes back into what a local compile would have left. Each host is tried at
//! most once. A host that fails (no connection, no answer) is backed off for every client
//! and the next is tried; a host that says it cannot run the compile (the compiler is
//! missing there: status 110; or not allowed: our daemon's `EMSG`) is told to the user once
//! per build and skipped without a backoff; when no host is left the job is compiled here,
//! unless `DISTCC_FALLBACK=0`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::cache::{self, Cached, Looked};
use super::compiler::Ours;
use super::config::Config;
use super::local::{compile_held, compile_here, compile_now, critique};
use super::outputs::write_output;
use super::preprocess::{self, Prepared};
use super::pump::{self, Plan, Via};
use super::remote::{self, RemoteError};
use super::Progress;
use crate::cache::manifest;
use crate::cmdline::Compile;
use crate::exitcode;
use crate::farm::hosts::{HostSpec, Transport};
use crate::farm::load::Standing;
use crate::farm::lock::{self, Slot};
use crate::farm::pick::Farm;
use crate::farm::state::Phase;
use crate::toolchain::identity::Identity;
use crate::wire::{ProtocolError, Reply};

/// What a host with another compiler is told to have.
const OTHER: &str = "its compiler is not this machine's";

/// What the last host tried came to, for the end of the journey.
enum LastTry {
    Nothing,
    /// The host could not be used (connection, protocol): it is backed off.
    Broken(String),
    /// The host answered that it cannot run the compile: the exit code that stands for
    /// it (110 compiler missing, 113 refused) and what the host said.
    Cannot(i32, Vec<u8>),
    /// The host's compiler is not the one this machine would run (or this build found so
    /// before): what to say about it.
    OtherCompiler(String),
}

/// Where one attempt leaves the job.
enum Attempt<'a> {
    /// The job is over with this exit code.
    Done(i32),
    /// Try the next host.
    Next(LastTry),
    /// The host turned the job away, being full, or did not answer the load ask: choose
    /// again (that host last among equals), with the text if it was made meanwhile.
    Again(Option<Prepared<'a>>),
}

/// How many times a job may be turned away by full hosts (or find a host on the board that
/// no longer answers the ask): after that it asks to wait at the host that looks least
/// busy, as every job waits with distcc 3.4, rather than go on knocking at a full farm.
const MAX_REFUSALS: u32 = 3;

/// One job and what it uses on its way.
struct Journey<'a> {
    job: &'a Compile,
    cfg: &'a Config,
    farm: Farm,
    progress: &'a mut Progress,
    /// Where the result goes in the cache, when it is to be stored.
    cached: Option<Box<Cached>>,
    /// A result to store, once the host's slot is let go.
    to_store: Option<(Box<Cached>, Reply)>,
    /// The include server's answer, asked before the first host for the cache's key.
    planned: Option<Plan>,
    /// This machine's compiler for the job, for the compiler check.
    ours: Ours,
    /// How many full hosts turned the job away.
    refusals: u32,
    /// The job goes to our daemon as the files it reads (`pump::files_wanted`, asked once).
    files: bool,
    /// A host said its system headers differ from this machine's: the job goes as
    /// preprocessed text from now on, in pump mode too.
    text_only: bool,
}

/// Compiles a distributable job somewhere and returns the exit code.
pub(super) fn build_somewhere(job: &Compile, cfg: &Config, progress: &mut Progress) -> i32 {
    let io_timeout = match &cfg.io_timeout {
        Ok(t) => *t,
        Err(e) => return exitcode::report(e),
    };
    if let (Some(_), Err(e)) = (&cfg.pump.socket, &cfg.pump.max_discrepancy) {
        return exitcode::report(e);
    }
    let mut farm = Farm::load(cfg.hosts.as_deref(), cfg.top.as_deref(), cfg.backoff);
    let mut hosts = std::mem::take(&mut farm.hosts);
    let mut journey = Journey {
        job,
        cfg,
        farm,
        progress,
        cached: None,
        to_store: None,
        planned: None,
        ours: Ours::default(),
        refusals: 0,
        files: pump::files_wanted(job, cfg),
        text_only: false,
    };
    if let Some(e) = &journey.farm.list_error {
        log::warn!("{e}");
        return journey.here("the host list cannot be read");
    }
    let mut last = LastTry::Nothing;
    if cfg.compiler_check {
        if let Some(skipped) = journey.skip_other_compilers(&mut hosts) {
            last = skipped;
        }
    }
    // With the cache, what the key is made of comes first: in plain mode the text, in
    // pump mode the include server's answer.
    let mut prepared = None;
    // Before any file the key is made of is read.
    let keyed_at = manifest::now_ns();
    if let Some(cc) = &cfg.cache {
        let limit = match &cc.size {
            Ok(limit) => *limit,
            Err(e) => return exitcode::report(e),
        };
        journey.progress.step("cache");
        let direct = match cache::look_up_direct(job, cfg, limit) {
            Ok(()) => return journey.served_by_cache(),
            Err(direct) => direct,
        };
        // In protocol 3 when some host would take it so (in pump mode, or as files to a
        // host that is our daemon, asked now if not known, rather than preprocess for a
        // text key that would not be used); if another takes it, the key and the files
        // named are dropped (`pump_plan`).
        let via = match &cfg.pump.socket {
            Some(socket) => {
                (hosts.iter().find_map(|h| pump::wanted(job, h, cfg))).map(|_| Via::Server(socket))
            }
            None => (journey.files
                && (hosts.iter()).any(|h| remote::is_ours(h, &journey.farm, cfg, io_timeout)))
            .then_some(Via::Here),
        };
        if cfg.pump.socket.is_some() || via.is_some() {
            if let Some((direct, via)) = direct.zip(via) {
                // A failure is the attempt's to handle: it asks again.
                journey.progress.step("include");
                let ours = || {
                    matches!(via, Via::Here)
                        || hosts
                            .iter()
                            .any(|h| journey.farm.standing(h) == Standing::Ours)
                };
                let planned = pump::working_dir(cfg, ours)
                    .ok_or(())
                    .and_then(|cwd| pump::plan(job, via, cfg, cwd).map_err(drop));
                if let Ok(plan) = planned {
                    journey.progress.step("cache");
                    match cache::look_up_pump(job, cfg, limit, &plan, direct) {
                        Looked::Hit => return journey.served_by_cache(),
                        Looked::Miss((), cached) => journey.cached = cached,
                    }
                    journey.planned = Some(plan);
                }
            }
        } else {
            let (text, quiet) = match journey.preprocess_now(direct.is_some()) {
                Ok(made) => made,
                Err(e) => return journey.after_cpp_failure(e),
            };
            journey.progress.step("cache");
            match cache::look_up(text, cfg, limit, direct, quiet) {
                Looked::Hit => return journey.served_by_cache(),
                Looked::Miss(text, cached) => {
                    prepared = Some(text);
                    journey.cached = cached;
                }
            }
        }
    }
    // Only before the first host tried, and not when the list names this machine (a job
    // compiled here needs no separate preprocessing): preprocess while every slot is busy.
    // Never in pump mode, where the host preprocesses, nor for a job that goes to our
    // daemon as files.
    let mut early = !job.preprocessed
        && prepared.is_none()
        && cfg.pump.socket.is_none()
        && !journey.files
        && hosts.iter().all(|h| h.transport != Transport::Local);
    while !hosts.is_empty() {
        let (i, slot, ready) = match journey.take_slot(&hosts, std::mem::take(&mut early)) {
            Ok(taken) => taken,
            Err(code) => return code,
        };
        let ready = ready.or_else(|| prepared.take());
        let host = hosts[i].clone();
        journey.progress.host(
            host.name(),
            slot.as_ref().map_or(0, |s| s.slot),
            host.transport == Transport::Local,
        );
        if host.transport == Transport::Local {
            // The slot just taken is this machine's.
            journey
                .progress
                .local("the host list sends it to localhost");
            journey.progress.note(Phase::Compile);
            // With a key, the result is kept as a host's would be, unless a file the key
            // was made of changed before the compile read it: the compile reads the
            // source again, where a host compiles the text or files the key holds.
            let Some(cached) = journey.cached.take() else {
                return compile_now(job.argv(), Some(job.input()));
            };
            let entered = match (&ready, &journey.planned) {
                (Some((_, text)), _) => text.with_bytes(manifest::entered).ok().flatten(),
                (None, Some(plan)) => plan.entered.clone(),
                (None, None) => None,
            };
            let (code, reply) = compile_held(job.argv(), job.input(), job.output());
            drop(slot);
            if let (Some(mut reply), Some(entered)) = (reply, entered) {
                if cache::unchanged_since(keyed_at, job.input(), &entered) {
                    reply.deps = job.pump_argv().and_then(|(_, d)| std::fs::read(d?).ok());
                    cached.store(reply);
                }
            }
            return code;
        }
        match journey.attempt(&host, io_timeout, ready) {
            Attempt::Done(code) => {
                // Stored once the host's slot is free for another job.
                drop(slot);
                if let Some((cached, reply)) = journey.to_store.take() {
                    cached.store(reply);
                }
                return code;
            }
            Attempt::Again(text) => {
                drop(slot);
                prepared = text;
                let host = hosts.remove(i);
                hosts.push(host);
            }
            Attempt::Next(why) => {
                hosts.remove(i);
                last = why;
                // The next host gets a text made again, which may differ from the one
                // the key was made of: its result is not stored.
                journey.cached = None;
            }
        }
    }
    journey.no_host_left(last)
}

impl<'a> Journey<'a> {
    /// The job's result came from the cache: it is over.
    fn served_by_cache(&mut self) -> i32 {
        self.progress.ran_on("", "cache");
        0
    }

    /// Compiles the job here, because `why` (for the trace).
    fn here(&mut self, why: &str) -> i32 {
        self.progress.local(why);
        let input = Some(self.job.input());
        compile_here(self.job.argv(), input, &self.farm, self.progress)
    }

    /// The job's text, made now (one of this machine's preprocessor slots held meanwhile),
    /// and whether the preprocessor is known to have said nothing (with `hold`, its
    /// messages are held to know it).
    fn preprocess_now(&mut self, hold: bool) -> Result<(Prepared<'a>, bool), RemoteError> {
        // Waiting for the slot is waiting, not preprocessing (nor, for the trace, the
        // cache's look-up that comes before).
        self.progress.note(Phase::Blocked);
        let _slot = if self.job.preprocessed {
            None
        } else {
            self.farm.machine_slot(lock::LOCAL_CPP, self.farm.cpp_slots)
        };
        self.progress.note(Phase::Preprocess);
        let source = preprocess::start_source(self.job, hold)?;
        let fixed_date = self.cfg.source_date_epoch.is_some();
        preprocess::preprocessed_quietly(self.job, source, fixed_date)
    }

    /// A slot on one of `hosts`, waiting for one. With `early`, and every slot busy, the
    /// job is preprocessed while it waits; that text comes with the slot.
    fn take_slot(
        &mut self,
        hosts: &[HostSpec],
        early: bool,
    ) -> Result<(usize, Option<Slot>, Option<Prepared<'a>>), i32> {
        self.progress.note(Phase::Blocked);
        let free = if early {
            self.farm.try_take_host(hosts)
        } else {
            Some(self.farm.take_host(hosts))
        };
        if let Some((i, slot)) = free {
            return Ok((i, slot, None));
        }
        self.progress.note(Phase::Preprocess);
        let ready = match preprocess::preprocess_early(
            self.job,
            &self.farm,
            self.cfg.source_date_epoch.is_some(),
        ) {
            Some(Ok(prepared)) => Some(prepared),
            Some(Err(e)) => return Err(self.after_cpp_failure(e)),
            None => None,
        };
        self.progress.note(Phase::Blocked);
        let (i, slot) = self.farm.take_host(hosts);
        Ok((i, slot, ready))
    }

    /// Tries `host` once.
    fn attempt(
        &mut self,
        host: &HostSpec,
        io_timeout: Duration,
        mut ready: Option<Prepared<'a>>,
    ) -> Attempt<'a> {
        self.progress.try_host(&host.spec);
        let plan = match self.pump_plan(host, io_timeout) {
            Ok(plan) => plan,
            Err(code) => return Attempt::Done(code),
        };
        let (job, cfg) = (self.job, self.cfg);
        let progress = &mut self.progress;
        let ours = &mut self.ours;
        let mut compiler = || {
            cfg.compiler_check
                .then(|| ours.get(job, cfg).map(|(id, _)| id.text().to_string()))
                .flatten()
        };
        let mut route = remote::Route {
            host,
            farm: &self.farm,
            io_timeout,
            standing: self.farm.standing(host),
            may_refuse: self.refusals < MAX_REFUSALS,
            compiler: &mut compiler,
        };
        let result = match &plan {
            Some(plan) => remote::compile_pump(&mut route, cfg, progress, plan),
            None => remote::compile_remote(job, &mut route, cfg, progress, &mut ready),
        };
        match &result {
            Err(RemoteError::Busy(load)) => {
                log::debug!(
                    "{} turned the job away: {} of its {} slots busy, {} waiting",
                    host.spec,
                    load.running,
                    load.slots,
                    load.queued
                );
                self.refusals += 1;
                self.planned = plan;
                return Attempt::Again(ready);
            }
            // Bounded even if the host is put back on the board meanwhile and fails its
            // ask again: past that, it has failed.
            Err(e @ RemoteError::NoLoad(_)) if self.refusals <= MAX_REFUSALS => {
                log::info!("{}: {e}; it is used as distcc 3.4's from now on", host.spec);
                self.refusals += 1;
                self.planned = plan;
                return Attempt::Again(ready);
            }
            _ => {}
        }
        if let Ok(reply) = &result {
            if let Some(load) = reply.load {
                self.farm.heard(host, load);
            }
            if let Some(times) = reply.times {
                self.progress.host_times(times);
            }
        }
        let deps = plan.as_ref().and_then(|p| p.deps.as_deref());
        if let Ok(reply) = &result {
            if let Some(why) = self.other_compiler(host, reply) {
                return Attempt::Next(why);
            }
        }
        if result.is_ok() {
            let mode = if plan.is_some() { "pump" } else { "remote" };
            self.progress.ran_on(&host.spec, mode);
        }
        match result {
            Ok(reply) if reply.status == 0 => Attempt::Done(self.succeeded(host, reply, deps)),
            Ok(reply) => {
                let code = exitcode::from_wait_status(reply.status);
                if code == exitcode::COMPILER_MISSING {
                    self.host_cannot(host, &String::from_utf8_lossy(&reply.stderr));
                    Attempt::Next(LastTry::Cannot(code, reply.stderr))
                } else {
                    Attempt::Done(self.failed_there(host, code, reply, plan.is_some()))
                }
            }
            Err(RemoteError::Untrusted(why)) => {
                self.tell_once(host, &why, format!("not using {}: {why}", host.spec));
                let said = format!("{}: {why}\n", host.spec).into_bytes();
                Attempt::Next(LastTry::Cannot(exitcode::ACCESS_DENIED, said))
            }
            Err(RemoteError::Protocol(ProtocolError::Refused(why)))
                if plan.is_some() && why.contains(crate::wire::OTHER_SYSTEM_HEADER) =>
            {
                let said = format!("{}: {why}: sending preprocessed text", host.spec);
                self.tell_once(host, crate::wire::OTHER_SYSTEM_HEADER, said);
                self.text_only = true;
                // The key was of the files, not of the text that goes now.
                self.cached = None;
                Attempt::Again(ready)
            }
            Err(RemoteError::Protocol(ProtocolError::Refused(why))) => {
                self.host_cannot(host, &why);
                let said = format!("{}: {why}\n", host.spec).into_bytes();
                Attempt::Next(LastTry::Cannot(exitcode::ACCESS_DENIED, said))
            }
            Err(e) if e.is_local() => Attempt::Done(self.after_cpp_failure(e)),
            Err(e) => {
                match &e {
                    // It names the address already.
                    RemoteError::Connect(_) => log::error!("{e}"),
                    _ => log::error!("{e} on {}", host.spec),
                }
                self.farm.mark_failed(host);
                Attempt::Next(LastTry::Broken(host.spec.clone()))
            }
        }
    }

    /// The files to send `host` in protocol 3, in pump mode or for a job that goes to our
    /// daemon as files (`pump::files_wanted`): `None` for plain mode (not such a host, or
    /// the files could not be named and plain mode may stand in); an exit code when the
    /// job must end here (`DISTCC_TESTING_INCLUDE_SERVER=1`, or fallbacks disabled, which
    /// distcc 3.4 ignores there).
    fn pump_plan(&mut self, host: &HostSpec, io_timeout: Duration) -> Result<Option<Plan>, i32> {
        let planned = self.planned.take();
        let via = match pump::wanted(self.job, host, self.cfg) {
            _ if self.text_only => None,
            Some(socket) => Some(Via::Server(socket)),
            None if self.files && remote::is_ours(host, &self.farm, self.cfg, io_timeout) => {
                Some(Via::Here)
            }
            None => None,
        };
        let Some(via) = via else {
            // The cache's key, if any, was of the request in protocol 3.
            if planned.is_some() {
                self.cached = None;
            }
            return Ok(None);
        };
        let ours =
            || matches!(via, Via::Here) || remote::is_ours(host, &self.farm, self.cfg, io_timeout);
        let cwd = pump::working_dir(self.cfg, ours);
        if planned
            .as_ref()
            .is_some_and(|p| Some(&p.cwd) == cwd.as_ref())
        {
            return Ok(planned);
        }
        // A key made before (of the text, or of files named for another working
        // directory) is not of what goes now.
        self.cached = None;
        self.progress.step("include");
        let planned = cwd
            .ok_or_else(|| pump::NotPumped::IncludeServer("no working directory".into()))
            .and_then(|cwd| pump::plan(self.job, via, self.cfg, cwd));
        match (planned, via) {
            (Ok(plan), _) => Ok(Some(plan)),
            (Err(why), Via::Here) => {
                log::info!(
                    "the include analysis did not cover the job ({why}): sending it preprocessed"
                );
                Ok(None)
            }
            (Err(why), Via::Server(_)) => {
                log::warn!("{why}");
                if self.cfg.pump.testing {
                    log::error!("failed to get includes from include server");
                    return Err(exitcode::DISTCC_FAILED);
                }
                if !self.cfg.fallback {
                    log::error!("failed to distribute and fallbacks are disabled");
                    return Err(exitcode::NO_HOSTS);
                }
                log::warn!("failed to get includes from include server, preprocessing locally");
                Ok(None)
            }
        }
    }

    /// Writes a successful remote result as a local compile would have left it: the object,
    /// and in pump mode the dependency file the host wrote, to `deps`.
    fn succeeded(&mut self, host: &HostSpec, reply: Reply, deps: Option<&str>) -> i32 {
        let input = self.job.input();
        // A compiler that succeeds always writes something; an empty result means the
        // command did not do what a local one would.
        if reply.output.is_empty() {
            log::warn!(
                "{} returned no output for {input}; compiling locally",
                host.spec
            );
            return self.here("the host returned no output");
        }
        self.farm.mark_good(host);
        self.progress.step("write");
        let written =
            write_output(Path::new(self.job.output()), &reply.output).and_then(|()| {
                match (deps, &reply.deps) {
                    (Some(file), Some(text)) => write_output(Path::new(file), text),
                    _ => Ok(()),
                }
            });
        if let Err(e) = written {
            log::warn!(
                "failed to write {}: {e}; compiling locally instead",
                self.job.output()
            );
            return self.here("the output could not be written");
        }
        show(&reply.stderr, &reply.stdout);
        if let Some(cached) = self.cached.take() {
            self.to_store = Some((cached, reply));
        }
        critique(0, input, &host.spec)
    }

    /// A compile that failed on the host: the local compile has the last word, unless the
    /// user asked for the host's (`DISTCC_SKIP_LOCAL_RETRY`, `DISTCC_FALLBACK=0`).
    fn failed_there(&mut self, host: &HostSpec, code: i32, reply: Reply, pumped: bool) -> i32 {
        let input = self.job.input();
        critique(reply.status, input, &host.spec);
        if !self.cfg.fallback {
            // As distcc 3.4: no local retry, and the host's messages are the answer.
            log::error!("failed to distribute and fallbacks are disabled");
            show(&reply.stderr, &reply.stdout);
            return code;
        }
        if self.cfg.skip_local_retry && code < 128 {
            show(&reply.stderr, &reply.stdout);
            return code;
        }
        log::warn!("remote compilation of '{input}' failed, retrying locally");
        let local = self.here("the compile failed on the host: retried here");
        if local == 0 {
            // The same command works here: the host is at fault, not the code.
            self.farm.mark_failed(host);
        }
        if local != code {
            log::warn!(
                "remote compilation of '{input}' failed, retried locally and got a different \
                 result."
            );
            if let (true, Some(socket)) = (pumped, &self.cfg.pump.socket) {
                // Once too many, the rest of the build goes in plain mode.
                if let Ok(max) = self.cfg.pump.max_discrepancy {
                    pump::Discrepancies::of(socket).note(max);
                }
            }
        }
        local
    }

    /// Whether `reply` comes from a compiler other than the one this machine would run
    /// (our daemon says which it ran; distcc 3.4's says nothing and is trusted). With the
    /// check on, the result is not used: the user hears it once per build, and jobs of
    /// this compiler skip the host for a while. With it off, the result is used but not
    /// kept in the cache, whose key names this machine's compiler.
    fn other_compiler(&mut self, host: &HostSpec, reply: &Reply) -> Option<LastTry> {
        // Read as our own -v is: a daemon of another version may keep other lines.
        let theirs = Identity::parse(reply.compiler.as_deref()?)?;
        let (ours, digest) = self.ours.get(self.job, self.cfg)?;
        if *ours == theirs {
            return None;
        }
        if !self.cfg.compiler_check {
            self.cached = None;
            return None;
        }
        let what = format!("{OTHER}: {}", theirs.against(ours));
        self.farm.note_other_compiler(host, digest);
        if self.farm.first_to_say(host, &what) {
            log::warn!(
                "{}: {what}; its results are not used (DISTCC_COMPILER_CHECK=off uses them)",
                host.spec
            );
        }
        Some(LastTry::OtherCompiler(format!("{}: {what}", host.spec)))
    }

    /// Drops from `hosts` those found lately to have another compiler than the one this
    /// job would run here; says so when it dropped any.
    fn skip_other_compilers(&mut self, hosts: &mut Vec<HostSpec>) -> Option<LastTry> {
        if !self.farm.any_other_compiler() {
            return None;
        }
        let ours = self.ours.get(self.job, self.cfg)?.1.clone();
        let mut skipped = None;
        hosts.retain(|h| {
            let other = self.farm.has_other_compiler(h, &ours);
            if other {
                log::debug!("skipping {}: its compiler is not this machine's", h.spec);
                skipped = Some(LastTry::OtherCompiler(format!("{}: {OTHER}", h.spec)));
            }
            !other
        });
        skipped
    }

    /// Tells the user, once per build, what a host said when it could not run the compile
    /// (the compiler is missing there, or not allowed). That is no fault of the host's
    /// network or daemon, so it is not backed off: other jobs may use it.
    fn host_cannot(&self, host: &HostSpec, said: &str) {
        let said = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        // Without the daemon's "distccd[pid] (function) ERROR: ", which differs per job.
        let what = said.split_once("ERROR: ").map_or(said, |(_, rest)| rest);
        let message = format!("{} cannot compile {}: {what}", host.spec, self.job.input());
        self.tell_once(host, what, message);
    }

    /// Warns with `message` if this is the build's first job to say `what` of `host`.
    fn tell_once(&self, host: &HostSpec, what: &str, message: String) {
        if self.farm.first_to_say(host, what) {
            log::warn!("{message}");
        } else {
            log::debug!("{message}");
        }
    }

    /// The exit code after our own preprocessing failed: the preprocessor's when it ran
    /// and said why; otherwise the local compile's, which reports the trouble as gcc would.
    fn after_cpp_failure(&mut self, e: RemoteError) -> i32 {
        match e {
            RemoteError::Cpp(code) => code,
            e => {
                log::debug!("{e}; compiling locally");
                self.here(&format!("{e}"))
            }
        }
    }

    /// Every host was tried: compile here, or with `DISTCC_FALLBACK=0` fail as the last
    /// host did.
    fn no_host_left(mut self, last: LastTry) -> i32 {
        let input = self.job.input();
        if !self.cfg.fallback {
            log::error!("failed to distribute and fallbacks are disabled");
            return match last {
                LastTry::Cannot(code, stderr) => {
                    let _ = io::stderr().write_all(&stderr);
                    code
                }
                LastTry::OtherCompiler(said) => {
                    log::error!("{said}");
                    exitcode::COMPILER_MISSING
                }
                LastTry::Nothing | LastTry::Broken(_) => exitcode::NO_HOSTS,
            };
        }
        let why = match last {
            LastTry::Broken(spec) => {
                log::warn!("failed to distribute {input} to {spec}, running locally instead");
                "no host could be reached"
            }
            LastTry::Cannot(..) => {
                log::warn!("failed to distribute, running locally instead");
                "no host could run the compiler"
            }
            LastTry::Nothing => {
                log::warn!("failed to distribute, running locally instead");
                "no host to try"
            }
            LastTry::OtherCompiler(said) => {
                // Said once per build already.
                log::debug!("{said}; compiling {input} here");
                "the hosts' compiler is not this machine's"
            }
        };
        self.here(why)
    }
}

/// Passes a remote (or cached) compile's messages on, as the compiler would have printed
/// them here.
pub(super) fn show(stderr: &[u8], stdout: &[u8]) {
    let _ = io::stderr().write_all(stderr);
    let _ = io::stdout().write_all(stdout);
    let _ = io::stdout().flush();
}
