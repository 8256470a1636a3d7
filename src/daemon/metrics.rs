//! The daemon's figures in Prometheus's text exposition format, served at `/metrics` on
//! the `--stats` port beside distcc 3.4's page: jobs by result, refusals by reason, the
//! running and queued jobs and the slots, a histogram of compile times, the load
//! averages, free space, and the shared cache's counters when there is one. Every name
//! starts with `distccd_`; counters end in `_total` and count from the daemon's start.
//!
//! This module only renders what `stats` counts and the door sees.

use std::fmt::Write;

use super::job::JobResult;
use super::live::result_word;
use super::stats::{free_megabytes, load_averages, Stats, COMPILE_BUCKETS};
use crate::cache::Counter;

/// The content type Prometheus expects of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its help line, type, and samples (labels, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn one(value: impl ToString) -> Vec<(String, String)> {
    vec![(String::new(), value.to_string())]
}

/// The metrics page's body.
pub fn render(stats: &Stats) -> String {
    let s = stats.snapshot();
    let mut out = String::new();
    family(
        &mut out,
        "distccd_connections_total",
        "counter",
        "Connections accepted that were served (a job, or a refusal).",
        &one(s.connections),
    );
    let results: Vec<_> = (s.results.iter())
        .map(|(r, n)| (format!("{{result=\"{}\"}}", result_word(*r)), n.to_string()))
        .collect();
    family(
        &mut out,
        "distccd_jobs_total",
        "counter",
        "Jobs ended, by result (distcc 3.4's page counts the same).",
        &results,
    );
    let (busy, denied) = stats.door.as_ref().map_or((0, 0), |d| d.refusals());
    let bad_request = (s.results.iter())
        .find(|(r, _)| *r == JobResult::BadRequest)
        .map_or(0, |(_, n)| *n);
    let reasons = [
        ("busy", busy),
        ("access", denied),
        ("policy", s.refused),
        ("bad_request", bad_request),
    ];
    family(
        &mut out,
        "distccd_refusals_total",
        "counter",
        "Connections and requests refused: every slot busy (to clients that may go \
         elsewhere), address not allowed (here or at the statistics port), request refused \
         with a message (compiler not allowed, TLS or GSS-API required), malformed request.",
        &(reasons.iter())
            .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.to_string()))
            .collect::<Vec<_>>(),
    );
    let load = stats.door.as_ref().map(|d| d.load());
    let running = load.as_ref().map_or(s.running, |l| u64::from(l.running));
    family(
        &mut out,
        "distccd_jobs_running",
        "gauge",
        "Jobs a worker is serving.",
        &one(running),
    );
    family(
        &mut out,
        "distccd_jobs_queued",
        "gauge",
        "Connections accepted and waiting for a free worker.",
        &one(load.as_ref().map_or(0, |l| l.queued)),
    );
    family(
        &mut out,
        "distccd_job_slots",
        "gauge",
        "Jobs served at once (--jobs).",
        &one(stats.max_jobs()),
    );
    family(
        &mut out,
        "distccd_cpus",
        "gauge",
        "Processors this daemon may use.",
        &one(std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    let h = &s.compile_times;
    let mut buckets: Vec<(String, String)> = (COMPILE_BUCKETS.iter().zip(h.at_most))
        .map(|(le, n)| (format!("_bucket{{le=\"{le}\"}}"), n.to_string()))
        .collect();
    buckets.push(("_bucket{le=\"+Inf\"}".into(), h.count.to_string()));
    buckets.push(("_sum".into(), format!("{:.6}", h.sum)));
    buckets.push(("_count".into(), h.count.to_string()));
    family(
        &mut out,
        "distccd_compile_duration_seconds",
        "histogram",
        "Time from a job's request to its reply, for jobs that ran the compiler.",
        &buckets,
    );
    let windows = ["1m", "5m", "15m"];
    family(
        &mut out,
        "distccd_load_average",
        "gauge",
        "The machine's load averages.",
        &(windows.iter().zip(load_averages()))
            .map(|(w, v)| (format!("{{window=\"{w}\"}}"), v))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "distccd_free_space_bytes",
        "gauge",
        "Free space where jobs run.",
        &one(free_megabytes(stats.tmp_root()) * 1024 * 1024),
    );
    if let Some(dir) = &stats.cache_dir {
        let c = crate::cache::Stats::total(dir);
        for (name, kind, help, value) in [
            (
                "distccd_cache_hits_total",
                "counter",
                "Jobs answered from the cache.",
                c.get(Counter::HitDaemon),
            ),
            (
                "distccd_cache_misses_total",
                "counter",
                "Jobs looked up in the cache and compiled.",
                c.get(Counter::Miss),
            ),
            (
                "distccd_cache_stored_total",
                "counter",
                "Results stored in the cache.",
                c.get(Counter::Stored),
            ),
            (
                "distccd_cache_evictions_total",
                "counter",
                "Entries evicted to keep the cache within its size.",
                c.get(Counter::Evicted),
            ),
            (
                "distccd_cache_entries",
                "gauge",
                "Files in the cache.",
                c.files,
            ),
            (
                "distccd_cache_size_bytes",
                "gauge",
                "Bytes in the cache.",
                c.size,
            ),
        ] {
            family(&mut out, name, kind, help, &one(value));
        }
    }
    out
}
