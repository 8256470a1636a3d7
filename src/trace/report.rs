//! `distcc --trace-report FILE`: a build's trace summed up for a person. How the jobs
//! ended, where their time went phase by phase and host by host, the chain of jobs that
//! set the build's length, and what compiled here and why.
//!
//! The trace has no dependencies between jobs, so the chain is found backwards: from the
//! job that ended last, each step goes to the job that ended last before the current one
//! started (what `make` was waiting for: a slot or a prerequisite). The time between them
//! is time in no compile (make itself, links, tools that do not go through distcc).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Record, PHASES};

/// The report of `records`, as printed.
pub fn report(records: &[Record]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("no jobs in the trace\n");
        return out;
    }
    let first = records.iter().map(|r| r.start_us).min().unwrap_or(0);
    let last = records.iter().map(|r| r.end_us).max().unwrap_or(0);
    let wall = last.saturating_sub(first) as f64 / 1e6;
    let in_jobs: f64 = records.iter().map(Record::seconds).sum();
    let count = |mode: &str| records.iter().filter(|r| r.mode == mode).count();
    let failed = records.iter().filter(|r| r.exit != 0).count();
    let _ = writeln!(
        out,
        "jobs: {} (remote {}, pump {}, from the cache {}, here {}, ended before compiling \
         {}); {} failed",
        records.len(),
        count("remote"),
        count("pump"),
        count("cache"),
        count("local"),
        count("failed"),
        failed
    );
    let _ = writeln!(
        out,
        "wall time {wall:.2} s from the first job's start to the last one's end; {in_jobs:.2} s \
         in jobs ({:.1} at once on average)",
        if wall > 0.0 { in_jobs / wall } else { 0.0 }
    );
    let cpu: u64 = records.iter().map(|r| r.cpu_us).sum();
    let children: u64 = records.iter().map(|r| r.children_cpu_us).sum();
    let _ = writeln!(
        out,
        "CPU here: {:.2} s in distcc, {:.2} s in the compilers and preprocessors it ran",
        cpu as f64 / 1e6,
        children as f64 / 1e6
    );

    out.push_str("\ntime per phase\n  phase       total s   share  ms per job  jobs\n");
    for (name, what) in PHASES {
        let spans: Vec<f64> = records.iter().map(|r| r.in_phase(name)).collect();
        let jobs = records
            .iter()
            .filter(|r| r.phases.iter().any(|(n, ..)| n == name))
            .count();
        if jobs == 0 {
            continue;
        }
        let total: f64 = spans.iter().sum();
        let _ = writeln!(
            out,
            "  {name:<10} {total:>8.2} {:>7.1}% {:>10.2}  {jobs:>4}  {what}",
            if in_jobs > 0.0 {
                100.0 * total / in_jobs
            } else {
                0.0
            },
            1e3 * total / jobs as f64
        );
    }

    // A job counts for the place its result came from; its time compiling, and the bytes
    // it moved, for where that happened: a failure retried here is the host's and ours.
    // What our daemons said: the time jobs waited there for a slot, and their compilers'
    // CPU.
    out.push_str(
        "\nper host\n  host                          jobs  compile s  ms per job  waited s  \
         CPU s  sent KiB  received KiB\n",
    );
    let mut hosts: BTreeMap<&str, (usize, f64, u64, u64, u64, u64)> = BTreeMap::new();
    for r in records {
        hosts.entry(r.place()).or_default().0 += 1;
        if let Some(remote) = r.tried.last() {
            let e = hosts.entry(remote).or_default();
            e.1 += r.in_phase("compile");
            e.2 += r.sent.unwrap_or(0);
            e.3 += r.received.unwrap_or(0);
            e.4 += r.host_wait_us.unwrap_or(0);
            e.5 += r.host_cpu_us.unwrap_or(0);
        }
        if r.phases.iter().any(|(n, ..)| n == "local") {
            hosts.entry("localhost").or_default().1 += r.in_phase("local");
        }
    }
    for (host, (jobs, secs, sent, received, waited, cpu)) in &hosts {
        let _ = writeln!(
            out,
            "  {host:<29} {jobs:>5} {secs:>10.2} {:>11.2} {:>9.2} {:>6.2} {:>9.1} {:>13.1}",
            1e3 * secs / (*jobs).max(1) as f64,
            *waited as f64 / 1e6,
            *cpu as f64 / 1e6,
            *sent as f64 / 1024.0,
            *received as f64 / 1024.0
        );
    }

    let chain = critical_path(records);
    let on_path: f64 = chain.iter().map(|&i| records[i].seconds()).sum();
    let _ = writeln!(
        out,
        "\ncritical path: {} jobs, {on_path:.2} s of the {wall:.2} s of wall time, {:.2} s \
         between them (make itself, and commands run without distcc); its longest jobs:",
        chain.len(),
        (wall - on_path).max(0.0)
    );
    let mut longest: Vec<usize> = chain.clone();
    longest.sort_by(|&a, &b| records[b].seconds().total_cmp(&records[a].seconds()));
    for &i in longest.iter().take(5) {
        let r = &records[i];
        let _ = writeln!(
            out,
            "  {:>8.3} s  {} ({}, {})",
            r.seconds(),
            r.input.escape_debug(),
            r.mode,
            r.place()
        );
    }

    let mut why: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        if let Some(w) = &r.why_local {
            *why.entry(w.as_str()).or_default() += 1;
        }
    }
    if !why.is_empty() {
        out.push_str("\nran here, and why\n");
        let mut why: Vec<_> = why.into_iter().collect();
        why.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (w, n) in why {
            let _ = writeln!(out, "  {n:>5}  {}", w.escape_debug());
        }
    }
    out
}

/// The jobs that set the build's length, first to last, as indices into `records` (see
/// the module's comment).
pub fn critical_path(records: &[Record]) -> Vec<usize> {
    let mut by_end: Vec<usize> = (0..records.len()).collect();
    by_end.sort_by_key(|&i| records[i].end_us);
    let mut chain = Vec::new();
    let Some(&last) = by_end.last() else {
        return chain;
    };
    let mut at = last;
    loop {
        chain.push(at);
        let start = records[at].start_us;
        // The job that ended last before this one started.
        let before = by_end.partition_point(|&i| records[i].end_us <= start);
        match before.checked_sub(1).map(|k| by_end[k]) {
            Some(prev) if !chain.contains(&prev) => at = prev,
            _ => break,
        }
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(input: &str, start: u64, end: u64) -> Record {
        Record {
            input: input.into(),
            start_us: start,
            end_us: end,
            mode: "remote".into(),
            host: "h".into(),
            phases: vec![("compile".into(), start, end)],
            ..Record::default()
        }
    }

    #[test]
    fn the_critical_path_goes_back_through_what_each_job_waited_for() {
        // a and b at once; c after a (b still running); d after c and b.
        let records = [
            job("a", 0, 100),
            job("b", 0, 250),
            job("c", 110, 200),
            job("d", 260, 400),
        ];
        let names: Vec<&str> = critical_path(&records)
            .iter()
            .map(|&i| records[i].input.as_str())
            .collect();
        assert_eq!(names, ["b", "d"]);
        let text = report(&records);
        assert!(text.contains("jobs: 4 (remote 4"), "{text}");
        assert!(text.contains("critical path: 2 jobs"), "{text}");
    }
}
