//! The daemon's statistics, and distcc 3.4's plain-text HTTP page of them (`--stats`, port
//! 3633): counters of jobs by outcome, the longest job, the job limit and the average jobs
//! running, the machine's load, memory and free space. Each key means what it means on
//! distcc 3.4's page: `dcc_max_kids` is the job limit (`--jobs`), `dcc_current_load` the
//! machine's running processes (the fourth field of `/proc/loadavg`).
//!
//! This module counts and renders 3.4's page (`metrics` renders the same figures for
//! Prometheus). The daemon records each job's outcome and serves the page to allowed
//! clients; it owns no socket here.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache::Counter;
use crate::daemon::job::{JobResult, Outcome};

/// Time constants of the 1, 5 and 15 minute averages.
const WINDOWS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
];

#[derive(Debug, Default)]
struct Counters {
    tcp_accept: u64,
    rej_bad_req: u64,
    compile_ok: u64,
    compile_error: u64,
    compile_timeout: u64,
    cli_disconnect: u64,
    other: u64,
    /// (input, compiler, milliseconds) of the longest successful job.
    longest: Option<(String, String, u128)>,
    running: u64,
    /// Decaying averages of `running` over the three windows, and when they were updated.
    avg_running: [f64; 3],
    avg_at: Option<Instant>,
    /// When recent compiles finished, for the 1/5/15 minute counts.
    finished: VecDeque<Instant>,
    /// (kilobytes, compiler) of the largest compiler process so far.
    max_rss: Option<(i64, String)>,
    /// Requests refused with a message (a compiler not allowed, TLS or GSS-API required).
    refused: u64,
    /// How long the jobs that ran a compiler took, by [`COMPILE_BUCKETS`].
    compile_times: Histogram,
}

/// The upper bounds, in seconds, of the compile time histogram's buckets.
pub const COMPILE_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Counts of observations at most each bound of [`COMPILE_BUCKETS`] (the last: all), and
/// their sum.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    pub at_most: [u64; COMPILE_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (n, bound) in self.at_most.iter_mut().zip(COMPILE_BUCKETS) {
            if seconds <= bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The counters at one moment, for the metrics.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub connections: u64,
    /// Jobs by result.
    pub results: [(JobResult, u64); 6],
    pub refused: u64,
    pub running: u64,
    pub compile_times: Histogram,
}

impl Counters {
    /// Folds the time since the last update into the running-jobs averages.
    fn decay(&mut self, now: Instant) {
        if let Some(at) = self.avg_at {
            let dt = now.duration_since(at).as_secs_f64();
            for (avg, window) in self.avg_running.iter_mut().zip(WINDOWS) {
                let keep = (-dt / window.as_secs_f64()).exp();
                *avg = *avg * keep + self.running as f64 * (1.0 - keep);
            }
        }
        self.avg_at = Some(now);
    }
}

/// Statistics shared by every worker of a daemon.
#[derive(Debug)]
pub struct Stats {
    counters: Mutex<Counters>,
    /// Where jobs run, for the free-space figure.
    tmp_root: PathBuf,
    /// The job limit (`--jobs`), 3.4's `dcc_max_kids`.
    max_jobs: usize,
    /// `--cache-dir`, whose counters the page adds after 3.4's lines.
    pub cache_dir: Option<PathBuf>,
    /// The door, which knows the running and queued jobs and the connections it turned
    /// away (none under inetd, which serves one connection and no statistics).
    pub(crate) door: Option<std::sync::Arc<crate::daemon::door::Door>>,
}

/// The peak resident size of all the compilers this process has waited for, in KiB.
fn children_max_rss() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0 {
        usage.ru_maxrss
    } else {
        0
    }
}

/// Processes in uninterruptible sleep (usually waiting for the disk).
fn processes_in_d_state() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('D'))
        })
        .count()
}

pub(crate) fn load_averages() -> [String; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace();
    std::array::from_fn(|_| {
        it.next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or_else(|| "0.00".to_string(), |v| format!("{v:.2}"))
    })
}

/// The processes running on the machine now (the `R` of `/proc/loadavg`'s `R/TOTAL`), as
/// distcc 3.4's `dcc_current_load`; -1 when it cannot be read, as 3.4.
fn running_processes() -> i64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let field = text.split_whitespace().nth(3)?;
            field.split_once('/')?.0.parse().ok()
        })
        .unwrap_or(-1)
}

pub(crate) fn free_megabytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks_available() * s.fragment_size() / (1024 * 1024))
        .unwrap_or(0)
}

impl Stats {
    /// The statistics of a daemon running at most `max_jobs` jobs at once, in `tmp_root`.
    pub fn new(tmp_root: PathBuf, max_jobs: usize) -> Stats {
        Stats {
            counters: Mutex::new(Counters::default()),
            tmp_root,
            max_jobs,
            cache_dir: None,
            door: None,
        }
    }

    /// The job limit (`--jobs`).
    pub fn max_jobs(&self) -> usize {
        self.max_jobs
    }

    /// Where jobs run.
    pub fn tmp_root(&self) -> &Path {
        &self.tmp_root
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let c = self.lock();
        Snapshot {
            connections: c.tcp_accept,
            results: [
                (JobResult::CompileOk, c.compile_ok),
                (JobResult::CompileError, c.compile_error),
                (JobResult::CompileTimeout, c.compile_timeout),
                (JobResult::ClientDisconnected, c.cli_disconnect),
                (JobResult::BadRequest, c.rej_bad_req),
                (JobResult::Other, c.other),
            ],
            refused: c.refused,
            running: c.running,
            compile_times: c.compile_times.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        match self.counters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A connection was accepted and closed without a byte: no job, and none running.
    pub fn silent_connection(&self) {
        let mut c = self.lock();
        c.tcp_accept += 1;
        c.cli_disconnect += 1;
    }

    /// A connection was accepted and a job starts.
    pub fn job_started(&self) {
        let mut c = self.lock();
        c.decay(Instant::now());
        c.tcp_accept += 1;
        c.running += 1;
    }

    /// The job started by `job_started` ended.
    pub fn job_ended(&self, outcome: &Outcome) {
        let now = Instant::now();
        let mut c = self.lock();
        c.decay(now);
        c.running = c.running.saturating_sub(1);
        match outcome.result {
            JobResult::CompileOk => c.compile_ok += 1,
            JobResult::CompileError => c.compile_error += 1,
            JobResult::CompileTimeout => c.compile_timeout += 1,
            JobResult::ClientDisconnected => c.cli_disconnect += 1,
            JobResult::BadRequest => c.rej_bad_req += 1,
            JobResult::Other => c.other += 1,
        }
        if outcome
            .problem
            .as_ref()
            .is_some_and(|(_, refusal)| *refusal)
        {
            c.refused += 1;
        }
        let compiled = matches!(
            outcome.result,
            JobResult::CompileOk | JobResult::CompileError | JobResult::CompileTimeout
        );
        if compiled && outcome.job.is_some() {
            c.compile_times.observe(outcome.time.as_secs_f64());
        }
        if let Some((compiler, input)) = &outcome.job {
            c.finished.push_back(now);
            while c
                .finished
                .front()
                .is_some_and(|t| now.duration_since(*t) > WINDOWS[2])
            {
                c.finished.pop_front();
            }
            let ms = outcome.time.as_millis();
            if outcome.result == JobResult::CompileOk
                && c.longest.as_ref().is_none_or(|(_, _, m)| ms > *m)
            {
                c.longest = Some((input.clone(), compiler.clone(), ms));
            }
            let rss = children_max_rss();
            if c.max_rss.as_ref().is_none_or(|(kb, _)| rss > *kb) {
                c.max_rss = Some((rss, compiler.clone()));
            }
        }
    }

    /// The page distcc 3.4 serves: an HTTP/1.0 reply with LF line endings and one
    /// `key value` line per figure, in 3.4's order.
    pub fn page(&self) -> String {
        let now = Instant::now();
        let mut c = self.lock();
        c.decay(now);
        let recent = |w: Duration| {
            c.finished
                .iter()
                .filter(|t| now.duration_since(**t) <= w)
                .count()
        };
        let (longest, longest_compiler, longest_ms) = c
            .longest
            .clone()
            .unwrap_or_else(|| ("none".into(), "none".into(), 0));
        let (rss, rss_name) = c.max_rss.clone().unwrap_or_else(|| (0, "none".into()));
        let load = load_averages();
        let lines = [
            ("dcc_tcp_accept", c.tcp_accept.to_string()),
            ("dcc_rej_bad_req", c.rej_bad_req.to_string()),
            // Clients beyond --jobs wait in the listen backlog; none is turned away.
            ("dcc_rej_overload", "0".into()),
            ("dcc_compile_ok", c.compile_ok.to_string()),
            ("dcc_compile_error", c.compile_error.to_string()),
            ("dcc_compile_timeout", c.compile_timeout.to_string()),
            ("dcc_cli_disconnect", c.cli_disconnect.to_string()),
            ("dcc_other", c.other.to_string()),
            ("dcc_longest_job", longest),
            ("dcc_longest_job_compiler", longest_compiler),
            ("dcc_longest_job_time_msecs", longest_ms.to_string()),
            ("dcc_max_kids", self.max_jobs.to_string()),
            ("dcc_avg_kids1", format!("{}", c.avg_running[0].round())),
            ("dcc_avg_kids2", format!("{}", c.avg_running[1].round())),
            ("dcc_avg_kids3", format!("{}", c.avg_running[2].round())),
            ("dcc_current_load", running_processes().to_string()),
            ("dcc_load1", load[0].clone()),
            ("dcc_load2", load[1].clone()),
            ("dcc_load3", load[2].clone()),
            ("dcc_num_compiles1", recent(WINDOWS[0]).to_string()),
            ("dcc_num_compiles2", recent(WINDOWS[1]).to_string()),
            ("dcc_num_compiles3", recent(WINDOWS[2]).to_string()),
            ("dcc_num_procstate_D", processes_in_d_state().to_string()),
            ("dcc_max_RSS", rss.to_string()),
            ("dcc_max_RSS_name", rss_name),
            // distcc 3.4 starts at -1 and measures disk I/O of its own; we do not.
            ("dcc_io_rate", "-1".into()),
            (
                "dcc_free_space",
                format!("{} MB", free_megabytes(&self.tmp_root)),
            ),
        ];
        let mut lines = lines.to_vec();
        if let Some(dir) = &self.cache_dir {
            let s = crate::cache::Stats::total(dir);
            lines.extend([
                ("dcc_cache_hits", s.get(Counter::HitDaemon).to_string()),
                ("dcc_cache_misses", s.get(Counter::Miss).to_string()),
                ("dcc_cache_stored", s.get(Counter::Stored).to_string()),
                ("dcc_cache_entries", s.files.to_string()),
                ("dcc_cache_bytes", s.size.to_string()),
                ("dcc_cache_evicted", s.get(Counter::Evicted).to_string()),
            ]);
        }
        let mut page = String::from(
            "HTTP/1.0 200 OK\nContent-Type: text/plain\nConnection: close\n\nargv /distccd\n<distccstats>\n",
        );
        for (key, value) in lines {
            page.push_str(key);
            page.push(' ');
            page.push_str(&value);
            page.push('\n');
        }
        page.push_str("</distccstats>\n");
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(result: JobResult, ms: u64) -> Outcome {
        Outcome {
            result,
            job: Some(("gcc".into(), format!("f{ms}.c"))),
            time: Duration::from_millis(ms),
            status: 0,
            problem: None,
        }
    }

    #[test]
    fn counts_and_page_shape() {
        let stats = Stats::new(std::env::temp_dir(), 7);
        for (r, ms) in [
            (JobResult::CompileOk, 10),
            (JobResult::CompileOk, 30),
            (JobResult::CompileError, 50),
        ] {
            stats.job_started();
            stats.job_ended(&outcome(r, ms));
        }
        stats.job_started();
        stats.job_ended(&Outcome {
            result: JobResult::BadRequest,
            job: None,
            time: Duration::ZERO,
            status: 0,
            problem: Some(("bad".into(), false)),
        });
        let page = stats.page();
        assert!(page.starts_with("HTTP/1.0 200 OK\nContent-Type: text/plain\n"));
        assert!(!page.contains('\r'));
        for want in [
            "dcc_tcp_accept 4\n",
            "dcc_rej_bad_req 1\n",
            "dcc_compile_ok 2\n",
            "dcc_compile_error 1\n",
            "dcc_longest_job f30.c\n",
            "dcc_longest_job_time_msecs 30\n",
            "dcc_max_kids 7\n",
            "dcc_num_compiles1 3\n",
            "dcc_io_rate -1\n",
        ] {
            assert!(page.contains(want), "{want:?} missing from\n{page}");
        }
        let keys: Vec<&str> = page
            .lines()
            .skip_while(|l| *l != "<distccstats>")
            .skip(1)
            .take_while(|l| *l != "</distccstats>")
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        // This test runs, so at least one process is running.
        let load = page
            .lines()
            .find_map(|l| l.strip_prefix("dcc_current_load "))
            .and_then(|v| v.parse::<i64>().ok());
        assert!(load.is_some_and(|n| n >= 1), "{page}");
        assert_eq!(keys.len(), 27);
        assert_eq!(keys[0], "dcc_tcp_accept");
        assert_eq!(keys[26], "dcc_free_space");
    }
}
