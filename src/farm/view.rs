//! The farm view, `distccmon-text --hosts [DELAY]`: every TCP host of the host list
//! (`DISTCC_HOSTS`, else the hosts files) asked at once for its state over its job port
//! (the state ask of `wire::load`, which our daemon answers at its door without taking a
//! worker), and shown on one screen: each host's processors, busy slots and queue, the jobs
//! it is serving (input, compiler, client, for how long) and the failures among its last
//! jobs. With DELAY the screen is redrawn in place every DELAY seconds.
//!
//! A host that does not answer the ask is shown as such (distcc 3.4's daemon, or down);
//! `localhost` and SSH hosts have no port to ask. This module asks and draws; the daemon's
//! side is `daemon::live`.

use std::io::Write;
use std::time::Duration;

use super::hosts::{HostSpec, Transport};
use crate::json::{self, Value};
use crate::wire::{self, Ask};

/// How long a host has to connect and answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What one host said.
#[derive(Debug)]
pub enum Seen {
    /// Our daemon's state document.
    State(Value),
    /// It accepted the connection but gave no state: distcc 3.4's daemon, or ours before
    /// the state ask.
    NoState,
    /// It could not be reached.
    Down(String),
    /// Not asked: `localhost` or an SSH host.
    NotAsked(&'static str),
}

/// Asks `host:port` for its state.
pub fn ask(host: &str, port: u16) -> Seen {
    let mut sock = match crate::net::connect(host, port, ASK_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return Seen::Down(e.to_string()),
    };
    let sent = sock
        .set_read_timeout(Some(ASK_TIMEOUT))
        .and_then(|()| sock.write_all(&wire::load_ask(Ask::State)))
        .and_then(|()| sock.shutdown(std::net::Shutdown::Write));
    if let Err(e) = sent {
        return Seen::Down(e.to_string());
    }
    match wire::read_state(&mut sock).map(|(_, text)| json::parse(&text)) {
        Ok(Ok(doc)) => Seen::State(doc),
        _ => Seen::NoState,
    }
}

/// Asks every host of `hosts` at once.
pub fn survey(hosts: &[HostSpec]) -> Vec<(String, Seen)> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = (hosts.iter())
            .map(|h| {
                let label = match &h.transport {
                    Transport::Tcp { host, port } => format!("{host}:{port}"),
                    _ => h.spec.clone(),
                };
                let seen = scope.spawn(move || match &h.transport {
                    Transport::Tcp { host, port } => ask(host, *port),
                    Transport::Local => Seen::NotAsked("this machine: see distccmon-text"),
                    Transport::Ssh { .. } => Seen::NotAsked("over SSH: not asked"),
                });
                (label, seen)
            })
            .collect();
        asks.into_iter()
            .map(|(label, seen)| {
                let seen = seen
                    .join()
                    .unwrap_or_else(|_| Seen::Down("internal error".into()));
                (label, seen)
            })
            .collect()
    })
}

fn number(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A string of a host's document, made safe to print: control characters (which could
/// move the cursor, set the title or write to the clipboard) become `?`, and it is cut to
/// 60 characters.
fn text(v: &Value, key: &str) -> String {
    let raw = v.get(key).and_then(Value::as_str).unwrap_or("");
    raw.chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).unwrap_or(&[])
}

/// The screen for `seen`: a summary line, then each host with its jobs.
pub fn render(seen: &[(String, Seen)]) -> String {
    let width = seen.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(4);
    let (mut answering, mut busy, mut slots, mut queued) = (0, 0.0, 0.0, 0.0);
    let mut body = String::new();
    for (label, s) in seen {
        match s {
            Seen::State(doc) => {
                answering += 1;
                let (r, sl, q) = (
                    number(doc, "running"),
                    number(doc, "slots"),
                    number(doc, "queued"),
                );
                busy += r;
                slots += sl;
                queued += q;
                let recent = list(doc, "recent");
                let failed: Vec<String> = (recent.iter())
                    .filter(|j| text(j, "result") != "ok")
                    .map(|j| text(j, "input"))
                    .collect();
                let mut line = format!(
                    "{label:<width$}  up    {} CPUs  {r}/{sl} slots busy  {q} queued  \
                     failed {} of last {}",
                    number(doc, "cpus"),
                    failed.len(),
                    recent.len()
                );
                if let Some(names) =
                    (!failed.is_empty()).then(|| failed[..failed.len().min(3)].join(" "))
                {
                    line.push_str(&format!(": {names}"));
                }
                body.push_str(&line);
                body.push('\n');
                for j in list(doc, "jobs") {
                    let input = match text(j, "input") {
                        i if i.is_empty() => "(reading the request)".to_string(),
                        i => i,
                    };
                    body.push_str(&format!(
                        "    {input:<30} {:<12} {:<22} {:>6.1} s\n",
                        text(j, "compiler"),
                        text(j, "client"),
                        number(j, "seconds")
                    ));
                }
            }
            Seen::NoState => body.push_str(&format!(
                "{label:<width$}  up, no state (distcc 3.4's daemon?)\n"
            )),
            Seen::Down(why) => body.push_str(&format!("{label:<width$}  down: {why}\n")),
            Seen::NotAsked(why) => body.push_str(&format!("{label:<width$}  {why}\n")),
        }
    }
    format!(
        "distcc farm: {answering} of {} hosts answering, {busy} of {slots} slots busy, \
         {queued} queued\n\n{body}",
        seen.len()
    )
}

/// Runs the view: once, or every `delay` redrawing the terminal in place. Returns the
/// exit code.
pub fn main(delay: Option<Duration>) -> i32 {
    let top = super::hosts::distcc_dir();
    let env = std::env::var("DISTCC_HOSTS").ok();
    // Home and clear below, then the screen: redrawn in place.
    let clear = if delay.is_some() { "\x1b[H\x1b[J" } else { "" };
    super::state::repeat(delay, || {
        // Read again each time: the daemons `+zeroconf` stands for come and go (and the
        // read keeps its browser running). A list that fails while the view runs is shown
        // until it is right again.
        let list = match super::hosts::load(env.as_deref(), top.as_deref()) {
            Ok(list) => list,
            Err(e) if delay.is_some() => return Ok(format!("{clear}distcc farm: {e}\n")),
            Err(e) => {
                eprintln!("distccmon-text: ERROR: {e}");
                return Err(crate::exitcode::BAD_HOSTSPEC);
            }
        };
        Ok(format!("{clear}{}", render(&survey(&list.hosts))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_strings_cannot_drive_the_terminal() {
        let text = r#"{"cpus":2,"slots":2,"running":1,"queued":0,"jobs":[{"client":"c","compiler":"gcc","input":"\u001b]0;PWNED\u0007\u001b[2Jx.c","seconds":1}],"recent":[{"input":"\u009bbad.c","result":"compile_error","client":"c"}]}"#;
        let doc = json::parse(text).unwrap();
        let screen = render(&[("h:1".into(), Seen::State(doc))]);
        assert!(
            !screen.chars().any(|c| c.is_control() && c != '\n'),
            "{screen:?}"
        );
        assert!(screen.contains("?]0;PWNED??[2Jx.c"), "{screen}");
        assert!(screen.contains("?bad.c"), "{screen}");
    }
}
