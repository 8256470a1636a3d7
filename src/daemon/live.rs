//! What the daemon is doing now, for whoever watches it: the jobs being served (client,
//! compiler, input, for how long) and the last jobs that ended (result, time, how long
//! ago), as one JSON document with the door's figures. The live web page (`/live` on the
//! `--stats` port, [`PAGE`]) and the farm view (`distccmon-text --hosts`, over the job
//! port) read it.
//!
//! `stats` counts since the start; this module remembers only a little, and renders it.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::job::{JobResult, Outcome};
use crate::json::string;
use crate::wire::Load;

/// How many ended jobs are remembered.
const RECENT: usize = 50;

/// The longest client, compiler or input name kept, in bytes: a client chooses its
/// command line, and the document must stay small (at most about 60 KiB with `--jobs`
/// of 20).
const LONGEST: usize = 200;

/// `s`, cut to at most [`LONGEST`] bytes at a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(LONGEST);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The jobs of one daemon.
#[derive(Debug, Default)]
pub struct Live {
    serving: Mutex<HashMap<u64, Serving>>,
    recent: Mutex<VecDeque<Ended>>,
    next: AtomicU64,
}

#[derive(Debug, Clone)]
struct Serving {
    client: String,
    since: Instant,
    compiler: String,
    input: String,
}

#[derive(Debug, Clone)]
struct Ended {
    client: String,
    compiler: String,
    input: String,
    result: &'static str,
    seconds: f64,
    at: Instant,
}

thread_local! {
    /// The job this worker thread serves.
    static CURRENT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A job being served; it is forgotten when this is dropped.
pub struct Job<'a> {
    live: &'a Live,
    id: u64,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(None));
        lock(&self.live.serving).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The word a result goes by here and in the metrics.
pub fn result_word(r: JobResult) -> &'static str {
    match r {
        JobResult::CompileOk => "ok",
        JobResult::CompileError => "compile_error",
        JobResult::CompileTimeout => "timeout",
        JobResult::ClientDisconnected => "client_disconnect",
        JobResult::BadRequest => "bad_request",
        JobResult::Other => "other",
    }
}

impl Live {
    /// A job from `client` starts on this thread.
    pub fn begin(&self, client: &str) -> Job<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        CURRENT.with(|c| c.set(Some(id)));
        lock(&self.serving).insert(
            id,
            Serving {
                client: cut(client),
                since: Instant::now(),
                compiler: String::new(),
                input: String::new(),
            },
        );
        Job { live: self, id }
    }

    /// The job this thread serves compiles `input` with `compiler` (once its request is
    /// read).
    pub fn describe(&self, compiler: &str, input: &str) {
        if let Some(id) = CURRENT.with(Cell::get) {
            if let Some(s) = lock(&self.serving).get_mut(&id) {
                s.compiler = cut(compiler);
                s.input = cut(input);
            }
        }
    }

    /// The job of `client` ended with `outcome`.
    pub fn ended(&self, client: &str, outcome: &Outcome) {
        let (compiler, input) = outcome.job.clone().unwrap_or_default();
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(Ended {
            client: cut(client),
            compiler: cut(&compiler),
            input: cut(&input),
            result: result_word(outcome.result),
            seconds: outcome.time.as_secs_f64(),
            at: Instant::now(),
        });
    }

    /// The JSON document: this host's figures (`load`), the jobs being served, longest
    /// first, and the last jobs ended, newest first.
    pub fn json(&self, load: &Load) -> String {
        let now = Instant::now();
        let mut serving: Vec<Serving> = lock(&self.serving).values().cloned().collect();
        serving.sort_by_key(|s| s.since);
        let jobs: Vec<String> = (serving.iter())
            .map(|s| {
                format!(
                    "{{\"client\":{},\"compiler\":{},\"input\":{},\"seconds\":{:.3}}}",
                    string(&s.client),
                    string(&s.compiler),
                    string(&s.input),
                    now.duration_since(s.since).as_secs_f64()
                )
            })
            .collect();
        let recent: Vec<String> = (lock(&self.recent).iter().rev())
            .map(|e| {
                format!(
                    "{{\"client\":{},\"compiler\":{},\"input\":{},\"result\":{},\
                     \"seconds\":{:.3},\"ago\":{:.1}}}",
                    string(&e.client),
                    string(&e.compiler),
                    string(&e.input),
                    string(e.result),
                    e.seconds,
                    now.duration_since(e.at).as_secs_f64()
                )
            })
            .collect();
        format!(
            "{{\"version\":{},\"cpus\":{},\"slots\":{},\"running\":{},\"queued\":{},\
             \"jobs\":[{}],\"recent\":[{}]}}",
            string(env!("CARGO_PKG_VERSION")),
            load.cpus,
            load.slots,
            load.running,
            load.queued,
            jobs.join(","),
            recent.join(",")
        )
    }
}

/// The live page: self-contained (no file, no network but this daemon), it asks for
/// `/state.json` every second and shows the figures, the jobs running and the last jobs.
pub const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>distccd</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}.bad{color:#b00}.figs span{margin-right:1.5em}
</style></head><body>
<h1>distccd on <span id="host"></span></h1>
<p class="figs"><span id="figs">waiting for the daemon</span></p>
<h2>Running</h2>
<table><thead><tr><th>input</th><th>compiler</th><th>client</th><th>seconds</th></tr></thead>
<tbody id="jobs"></tbody></table>
<h2>Last jobs</h2>
<table><thead><tr><th>input</th><th>result</th><th>seconds</th><th>client</th><th>ended</th></tr></thead>
<tbody id="recent"></tbody></table>
<script>
"use strict";
document.getElementById("host").textContent = location.host;
function row(cells, bad) {
  const tr = document.createElement("tr");
  if (bad) tr.className = "bad";
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}
async function refresh() {
  try {
    const s = await (await fetch("state.json", {cache: "no-store"})).json();
    document.getElementById("figs").textContent =
      `${s.running} of ${s.slots} slots busy, ${s.queued} queued, ${s.cpus} CPUs (distcc-rs ${s.version})`;
    document.getElementById("jobs").replaceChildren(...s.jobs.map(j =>
      row([j.input || "(reading the request)", j.compiler, j.client, j.seconds.toFixed(1)])));
    document.getElementById("recent").replaceChildren(...s.recent.map(j =>
      row([j.input, j.result, j.seconds.toFixed(2), j.client, `${j.ago.toFixed(0)} s ago`],
          j.result !== "ok")));
  } catch (e) {
    document.getElementById("figs").textContent = `the daemon does not answer (${e})`;
  }
}
refresh();
setInterval(refresh, 1000);
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jobs_show_while_served_and_after() {
        let live = Live::default();
        let load = Load {
            cpus: 2,
            slots: 3,
            running: 1,
            queued: 0,
        };
        {
            let _job = live.begin("10.0.0.1:4000");
            live.describe("gcc", "we \"quote\".c");
            let doc = crate::json::parse(&live.json(&load)).unwrap();
            let jobs = doc.get("jobs").and_then(|j| j.as_array()).unwrap();
            assert_eq!(jobs.len(), 1);
            assert_eq!(
                jobs[0].get("input").and_then(|v| v.as_str()),
                Some("we \"quote\".c")
            );
            assert_eq!(doc.get("slots").and_then(|v| v.as_f64()), Some(3.0));
        }
        live.ended(
            "10.0.0.1:4000",
            &Outcome {
                result: JobResult::CompileError,
                job: Some(("gcc".into(), "x.c".into())),
                time: Duration::from_millis(250),
                status: 256,
                problem: None,
            },
        );
        let doc = crate::json::parse(&live.json(&load)).unwrap();
        assert!(doc
            .get("jobs")
            .and_then(|j| j.as_array())
            .unwrap()
            .is_empty());
        let recent = doc.get("recent").and_then(|j| j.as_array()).unwrap();
        assert_eq!(
            recent[0].get("result").and_then(|v| v.as_str()),
            Some("compile_error")
        );
        // A client's names are cut: 50 jobs with long ones make a small document.
        for _ in 0..RECENT {
            let long = "é".repeat(100_000);
            live.ended(
                &long,
                &Outcome {
                    result: JobResult::CompileOk,
                    job: Some((long.clone(), long.clone())),
                    time: Duration::ZERO,
                    status: 0,
                    problem: None,
                },
            );
        }
        let text = live.json(&load);
        assert!(text.len() < 40_000, "{}", text.len());
        assert!(crate::json::parse(&text).is_ok());
    }
}
