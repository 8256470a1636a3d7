//! `distcc --trace-chrome FILE`: the trace in the Chrome trace event format (JSON), which
//! Perfetto (ui.perfetto.dev) and `chrome://tracing` open. Each host is a process, each
//! `distcc` process a thread in it; a job is one event with its phases nested inside.
//! Times start at the build's first job.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Record;
use crate::json;

/// The Chrome trace of `records`.
pub fn chrome(records: &[Record]) -> String {
    let origin = records.iter().map(|r| r.start_us).min().unwrap_or(0);
    let mut hosts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        let next = hosts.len() + 1;
        hosts.entry(r.place()).or_insert(next);
    }
    let mut events: Vec<String> = Vec::new();
    for (host, pid) in &hosts {
        events.push(format!(
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{pid},\"args\":{{\"name\":{}}}}}",
            json::string(host)
        ));
    }
    for r in records {
        let pid = hosts[r.place()];
        let tid = r.pid;
        let ts = |us: u64| us.saturating_sub(origin);
        let mut args = format!(
            "\"exit\":{},\"mode\":{},\"cwd\":{},\"output\":{}",
            r.exit,
            json::string(&r.mode),
            json::string(&r.cwd),
            json::string(&r.output)
        );
        if let Some(w) = &r.why_local {
            let _ = write!(args, ",\"why_local\":{}", json::string(w));
        }
        for (k, v) in [
            ("sent", r.sent),
            ("received", r.received),
            ("rtt_us", r.rtt_us),
        ] {
            if let Some(v) = v {
                let _ = write!(args, ",\"{k}\":{v}");
            }
        }
        let _ = write!(
            args,
            ",\"cpu_us\":{},\"children_cpu_us\":{}",
            r.cpu_us, r.children_cpu_us
        );
        events.push(format!(
            "{{\"name\":{},\"cat\":\"job\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\
             \"tid\":{tid},\"args\":{{{args}}}}}",
            json::string(&r.input),
            ts(r.start_us),
            r.end_us.saturating_sub(r.start_us)
        ));
        for (name, a, b) in &r.phases {
            events.push(format!(
                "{{\"name\":{},\"cat\":\"phase\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\
                 \"pid\":{pid},\"tid\":{tid}}}",
                json::string(name),
                ts(*a),
                b.saturating_sub(*a)
            ));
        }
    }
    format!(
        "{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ms\"}}\n",
        events.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chrome_trace_is_json_with_a_job_and_its_phases() {
        let r = Record {
            pid: 42,
            start_us: 1000,
            end_us: 3000,
            input: "a.c".into(),
            mode: "remote".into(),
            host: "h:1".into(),
            phases: vec![("send".into(), 1000, 1500), ("compile".into(), 1500, 3000)],
            ..Record::default()
        };
        let text = chrome(&[r]);
        let v = json::parse(&text).unwrap();
        let events = v.get("traceEvents").unwrap().as_array().unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1].get("name").unwrap().as_str(), Some("a.c"));
        assert_eq!(events[1].get("dur").unwrap().as_f64(), Some(2000.0));
        assert_eq!(events[3].get("ts").unwrap().as_f64(), Some(500.0));
    }
}
