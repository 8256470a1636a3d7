//! What one `distcc` process notes of its job for the trace, as it goes: the phase it
//! enters (the one before ends then), the host whose result it used or why it compiled
//! here, the bytes the connection moved. [`Recorder::finish`] appends the record. The
//! client calls it through its monitor hooks (`client::Progress`); nothing here knows the
//! client.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Record;

/// A job's record in the making.
pub struct Recorder {
    path: PathBuf,
    record: Record,
    /// The phase under way, and when it began.
    current: (&'static str, u64),
}

/// Now, in µs since the epoch.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Recorder {
    /// Starts the record of the job compiling `input` into `output`, to be appended to
    /// `path`. The job's first phase is `start`.
    pub fn new(path: PathBuf, input: &str, output: &str) -> Recorder {
        let now = now_us();
        Recorder {
            path,
            record: Record {
                pid: std::process::id(),
                start_us: now,
                cwd: std::env::current_dir()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                input: input.to_string(),
                output: output.to_string(),
                ..Record::default()
            },
            current: ("start", now),
        }
    }

    /// The job enters `phase` (one of [`super::PHASES`]); the phase under way ends.
    pub fn enter(&mut self, phase: &'static str) {
        if self.current.0 == phase {
            return;
        }
        let now = now_us();
        let (name, since) = std::mem::replace(&mut self.current, (phase, now));
        self.record.phases.push((name.to_string(), since, now));
    }

    /// The job's result came from `host`, in `mode` (see [`Record::mode`]).
    pub fn ran_on(&mut self, host: &str, mode: &str) {
        self.record.host = host.to_string();
        self.record.mode = mode.to_string();
        self.record.why_local = None;
    }

    /// The job goes to `host`.
    pub fn tried(&mut self, host: &str) {
        self.record.tried.push(host.to_string());
    }

    /// The job compiles here, because `why`.
    pub fn local(&mut self, why: &str) {
        self.ran_on("localhost", "local");
        self.record.why_local = Some(why.to_string());
    }

    /// What the job's connection moved: bytes sent, bytes received, round-trip time.
    pub fn traffic(&mut self, sent: u64, received: u64, rtt_us: u64) {
        self.record.sent = Some(sent);
        self.record.received = Some(received);
        self.record.rtt_us = Some(rtt_us);
    }

    /// What our daemon said the job cost there.
    pub fn host_times(&mut self, times: crate::wire::JobTimes) {
        self.record.host_wait_us = Some(times.waited_us);
        self.record.host_compile_us = Some(times.compile_us);
        self.record.host_cpu_us = Some(times.cpu_us);
    }

    /// Ends the record with the job's exit code and appends it. A trace that cannot be
    /// written is said, and the job's outcome stays what it was.
    pub fn finish(mut self, exit: i32) {
        let now = now_us();
        let (name, since) = self.current;
        self.record.phases.push((name.to_string(), since, now));
        self.record.end_us = now;
        self.record.exit = exit;
        if self.record.mode.is_empty() {
            self.record.mode = "failed".into();
        }
        let (own, children) = cpu_us();
        self.record.cpu_us = own;
        self.record.children_cpu_us = children;
        if let Err(e) = super::append(&self.path, &self.record) {
            log::warn!("cannot write the trace {}: {e}", self.path.display());
        }
    }
}

/// The CPU (user and system) of this process, and of its children waited for, in µs.
fn cpu_us() -> (u64, u64) {
    let usage = |who| {
        // SAFETY: getrusage fills one plain struct through a valid pointer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        us(ru.ru_utime) + us(ru.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN))
}
