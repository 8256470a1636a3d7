//! The per-job trace (`DISTCC_TRACE=FILE`): every `distcc` process of a build appends one
//! line to FILE when its job ends, a JSON object ([`Record`]) with the job's phases as
//! they followed each other, where it ran and why, the bytes it moved and the CPU it took.
//! One `write` per line on a file opened for appending: the processes of a `make -j`
//! never mix their lines.
//!
//! This module owns the format (writing and reading a line); what a process notes on its
//! way is `recorder`'s, the summary `report`'s and the Chrome trace `chrome`'s. Times are
//! microseconds since the epoch, so that the lines of many processes share one clock.

pub mod chrome;
pub mod recorder;
pub mod report;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::json;

/// The format's version, the first member of every line.
pub const VERSION: u32 = 1;

/// One job of a build.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// The `distcc` process.
    pub pid: u32,
    /// When it started and ended (µs since the epoch).
    pub start_us: u64,
    pub end_us: u64,
    pub cwd: String,
    /// The source, and the object (empty when the command has none: a link).
    pub input: String,
    pub output: String,
    /// Its exit code.
    pub exit: i32,
    /// How the job ended: `remote` (a host compiled the text), `pump` (a host preprocessed
    /// and compiled), `cache` (a hit), `local` (compiled here), or `failed` (it ended
    /// before any compile: the preprocessor failed here, no host and no fallback).
    pub mode: String,
    /// The host whose result was used, `localhost` for this machine; empty for a hit or a
    /// job that failed before compiling.
    pub host: String,
    /// The hosts the job was sent to, in order (a result not used, a failure retried
    /// here, count too).
    pub tried: Vec<String>,
    /// Why it ran here, for a local job.
    pub why_local: Option<String>,
    /// Bytes sent to and received from the host (TCP and TLS, as the kernel counted them),
    /// and the connection's round-trip time.
    pub sent: Option<u64>,
    pub received: Option<u64>,
    pub rtt_us: Option<u64>,
    /// CPU of this process, and of the processes it waited for (preprocessor, compiler).
    pub cpu_us: u64,
    pub children_cpu_us: u64,
    /// What our daemon said the job cost there: how long it waited for a slot, and the
    /// wall and processor time of its compile (0 for a result from its cache).
    pub host_wait_us: Option<u64>,
    pub host_compile_us: Option<u64>,
    pub host_cpu_us: Option<u64>,
    /// The phases, in order, each `(name, start_us, end_us)`; they follow each other
    /// without gaps from the job's start to its end. See [`PHASES`].
    pub phases: Vec<(String, u64, u64)>,
}

/// The phases a job goes through, in the order they may come.
pub const PHASES: [(&str, &str); 12] = [
    ("start", "start-up and the command line"),
    ("cache", "looking in the cache"),
    ("slot", "waiting for a slot"),
    ("include", "include analysis (pump mode)"),
    ("preprocess", "preprocessing here"),
    ("connect", "connecting"),
    ("send", "sending"),
    ("compile", "the host compiling"),
    ("receive", "receiving"),
    ("notes", "the host's notes after its reply"),
    ("write", "writing outputs"),
    ("local", "compiling here"),
];

impl Record {
    /// The line that stands for this record, newline included.
    pub fn to_line(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        let mut s = format!(
            "{{\"v\":{VERSION},\"pid\":{},\"start\":{},\"end\":{},\"cwd\":{},\"input\":{},\
             \"output\":{},\"exit\":{},\"mode\":{},\"host\":{},\"why_local\":{},\"sent\":{},\
             \"received\":{},\"rtt_us\":{},\"cpu_us\":{},\"children_cpu_us\":{},\
             \"host_wait_us\":{},\"host_compile_us\":{},\"host_cpu_us\":{},\"tried\":[{}],\
             \"phases\":[",
            self.pid,
            self.start_us,
            self.end_us,
            json::string(&self.cwd),
            json::string(&self.input),
            json::string(&self.output),
            self.exit,
            json::string(&self.mode),
            json::string(&self.host),
            self.why_local
                .as_deref()
                .map_or("null".to_string(), json::string),
            opt(self.sent),
            opt(self.received),
            opt(self.rtt_us),
            self.cpu_us,
            self.children_cpu_us,
            opt(self.host_wait_us),
            opt(self.host_compile_us),
            opt(self.host_cpu_us),
            (self.tried.iter())
                .map(|h| json::string(h))
                .collect::<Vec<_>>()
                .join(","),
        );
        for (i, (name, a, b)) in self.phases.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}[{},{a},{b}]", json::string(name));
        }
        s.push_str("]}\n");
        s
    }

    /// The record on `line`, or what is wrong with it.
    pub fn parse(line: &str) -> Result<Record, String> {
        let v = json::parse(line)?;
        let num = |k: &str| -> Result<f64, String> {
            v.get(k)
                .and_then(json::Value::as_f64)
                .ok_or_else(|| format!("no number '{k}'"))
        };
        let text = |k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(json::Value::as_str)
                .map(String::from)
                .ok_or_else(|| format!("no text '{k}'"))
        };
        let maybe = |k: &str| v.get(k).and_then(json::Value::as_f64).map(|n| n as u64);
        if num("v")? as u32 != VERSION {
            return Err(format!("not version {VERSION}"));
        }
        let tried = v
            .get("tried")
            .and_then(json::Value::as_array)
            .ok_or("no hosts tried")?
            .iter()
            .map(|h| h.as_str().map(String::from).ok_or("a bad host tried"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut phases = Vec::new();
        for p in v
            .get("phases")
            .and_then(json::Value::as_array)
            .ok_or("no phases")?
        {
            let p = p.as_array().filter(|p| p.len() == 3).ok_or("a bad phase")?;
            let (Some(name), Some(a), Some(b)) = (p[0].as_str(), p[1].as_f64(), p[2].as_f64())
            else {
                return Err("a bad phase".into());
            };
            phases.push((name.to_string(), a as u64, b as u64));
        }
        Ok(Record {
            pid: num("pid")? as u32,
            start_us: num("start")? as u64,
            end_us: num("end")? as u64,
            cwd: text("cwd")?,
            input: text("input")?,
            output: text("output")?,
            exit: num("exit")? as i32,
            mode: text("mode")?,
            host: text("host")?,
            tried,
            why_local: v
                .get("why_local")
                .and_then(json::Value::as_str)
                .map(String::from),
            sent: maybe("sent"),
            received: maybe("received"),
            rtt_us: maybe("rtt_us"),
            cpu_us: num("cpu_us")? as u64,
            children_cpu_us: num("children_cpu_us")? as u64,
            host_wait_us: maybe("host_wait_us"),
            host_compile_us: maybe("host_compile_us"),
            host_cpu_us: maybe("host_cpu_us"),
            phases,
        })
    }

    /// How long the job took, in seconds.
    pub fn seconds(&self) -> f64 {
        self.end_us.saturating_sub(self.start_us) as f64 / 1e6
    }

    /// Seconds spent in the phases named `name`.
    pub fn in_phase(&self, name: &str) -> f64 {
        (self.phases.iter())
            .filter(|(n, ..)| n == name)
            .map(|(_, a, b)| b.saturating_sub(*a) as f64 / 1e6)
            .sum()
    }

    /// Where the job's result came from, for a person: its host, `(cache)`, or
    /// `(nowhere)` for a job that failed before any compile.
    pub fn place(&self) -> &str {
        match self.mode.as_str() {
            "cache" => "(cache)",
            _ if self.host.is_empty() => "(nowhere)",
            _ => &self.host,
        }
    }
}

/// Appends `record` to the trace at `path`, in one write.
pub fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(record.to_line().as_bytes())
}

/// The records of the trace at `path`, in the order written, and what is wrong with each
/// line that is not one (a line cut short by a full disk, say), naming it.
pub fn read(path: &Path) -> Result<(Vec<Record>, Vec<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() {
            continue;
        }
        match Record::parse(&line) {
            Ok(r) => records.push(r),
            Err(e) => bad.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok((records, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let r = Record {
            pid: 7,
            start_us: 1_700_000_000_000_000,
            end_us: 1_700_000_000_250_000,
            cwd: "/src/a dir".into(),
            input: "x\"y\".c".into(),
            output: "x.o".into(),
            exit: 1,
            mode: "local".into(),
            host: "localhost".into(),
            why_local: Some("failed to distribute\n".into()),
            sent: Some(10),
            received: None,
            rtt_us: Some(40),
            cpu_us: 1234,
            children_cpu_us: 99,
            host_wait_us: Some(5),
            host_compile_us: None,
            host_cpu_us: Some(0),
            tried: vec!["h:1".into(), "h\"2".into()],
            phases: vec![
                ("slot".into(), 1_700_000_000_000_000, 1_700_000_000_000_100),
                ("local".into(), 1_700_000_000_000_100, 1_700_000_000_250_000),
            ],
        };
        let line = r.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert_eq!(Record::parse(&line).unwrap(), r);
        assert!(Record::parse("{\"v\":2}").is_err());
        assert!(Record::parse(&line.replace("\"pid\":7,", "")).is_err());
    }
}
