//! Load: how busy our daemon says it is, so that a client sends each job where it will
//! start soonest. distcc 3.4 neither sends nor reads any of it.
//!
//! - Before anything else on a connection to a host it knows to be ours, our client asks
//!   (`LOAD`, value 1: "turn me away if you are full", 0: "I will wait"), and waits for
//!   the answer: a `LOAD` packet saying whether the job is admitted, and the figures.
//!   A full daemon answers at once and closes, instead of leaving the connection to wait.
//! - To a host it has not heard from, our client first sends the ask alone on a
//!   connection of its own (value 2: "only tell me"), and closes its side: our daemon
//!   answers and closes; distcc 3.4's takes it for a bad request and closes without a
//!   word, at once since nothing more can come.
//! - A monitor (`distccmon-text --hosts`) asks for the state (value 3): our daemon
//!   answers with the `LOAD` packet, then a `JSON` packet holding the jobs it serves and
//!   the last ones it ended (`daemon::live`), and closes.
//! - After each reply, our daemon's last note is the same packet, its figures as the job
//!   ends (see `reply`). Before it comes `TIME`: how long the job waited for a slot, and
//!   the wall and processor time of its compile, which the client's trace keeps.
//!
//! This module owns the encoding; who is asked and what is done with the answer are the
//! client's and the daemon's business.

use std::io::{Read, Write};

use super::packet::*;

/// The figures a daemon reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Its processors.
    pub cpus: u32,
    /// How many jobs it runs at once (`--jobs`).
    pub slots: u32,
    /// The jobs it runs now.
    pub running: u32,
    /// The connections waiting for one of its slots.
    pub queued: u32,
}

/// A daemon's answer to an ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Whether the connection will be served; if not, the daemon closes it.
    pub admitted: bool,
    pub load: Load,
}

/// What one job cost on the host, in microseconds (`TIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobTimes {
    /// From the connection's arrival to a worker taking it.
    pub waited_us: u64,
    /// The compiler's run, start to end (0 when the result came from the cache).
    pub compile_us: u64,
    /// The processor time of the compiler and the processes it ran.
    pub cpu_us: u64,
}

impl JobTimes {
    /// The note: three big-endian u64 (a longer body is read, its rest ignored).
    pub fn encode(&self) -> Vec<u8> {
        let mut packet = header(TIME, 24).to_vec();
        for n in [self.waited_us, self.compile_us, self.cpu_us] {
            packet.extend_from_slice(&n.to_be_bytes());
        }
        packet
    }

    /// Reads the body of a note whose header announced `len` bytes.
    pub fn read_body(r: &mut impl Read, len: u32) -> Result<JobTimes, ProtocolError> {
        let body = read_body(r, TIME, len, MAX_BODY)?;
        if body.len() < 24 {
            return Err(ProtocolError::Truncated { what: "TIME" });
        }
        let n = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(JobTimes {
            waited_us: n(0),
            compile_us: n(8),
            cpu_us: n(16),
        })
    }
}

/// The body: admitted, then the four figures, each a big-endian u32. A longer body is
/// accepted and its rest ignored, so that later figures can be added.
const BODY: usize = 20;
const MAX_BODY: usize = 256;

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The figures; the job waits if the daemon is full.
    Wait = 0,
    /// The figures; turn the job away if the daemon is full.
    MayRefuse = 1,
    /// The figures alone: no job follows.
    Probe = 2,
    /// The figures and the jobs, as JSON: no job follows.
    State = 3,
}

/// The longest state document read.
pub const MAX_STATE: u32 = 1 << 20;

/// The ask our client sends first.
pub fn load_ask(ask: Ask) -> [u8; 12] {
    header(LOAD, ask as u32)
}

/// The ask that `h` is, if it is one (an unknown value is taken for [`Ask::Wait`]).
pub fn parse_load_ask(h: &[u8; 12]) -> Option<Ask> {
    parse_header(h, LOAD).ok().map(|v| match v {
        1 => Ask::MayRefuse,
        2 => Ask::Probe,
        3 => Ask::State,
        _ => Ask::Wait,
    })
}

/// Reads our daemon's answer to [`Ask::State`]: the figures, then the JSON document.
pub fn read_state(r: &mut impl Read) -> Result<(Answer, String), ProtocolError> {
    let answer = Answer::read(r)?;
    let len = read_header(r, JSON)?;
    let body = read_body(r, JSON, len, MAX_STATE as usize)?;
    let text = String::from_utf8(body).map_err(|_| ProtocolError::BadPath { token: JSON })?;
    Ok((answer, text))
}

impl Answer {
    /// The packet: header and body.
    pub fn encode(&self) -> Vec<u8> {
        let mut packet = header(LOAD, BODY as u32).to_vec();
        let l = &self.load;
        for n in [
            u32::from(self.admitted),
            l.cpus,
            l.slots,
            l.running,
            l.queued,
        ] {
            packet.extend_from_slice(&n.to_be_bytes());
        }
        packet
    }

    pub fn write(&self, w: &mut impl Write) -> Result<(), ProtocolError> {
        w.write_all(&self.encode())?;
        Ok(())
    }

    /// Reads an answer whose header is to come.
    pub fn read(r: &mut impl Read) -> Result<Answer, ProtocolError> {
        let len = read_header(r, LOAD)?;
        Answer::read_body(r, len)
    }

    /// Reads the body of an answer whose header announced `len` bytes.
    pub fn read_body(r: &mut impl Read, len: u32) -> Result<Answer, ProtocolError> {
        let body = read_body(r, LOAD, len, MAX_BODY)?;
        if body.len() < BODY {
            return Err(ProtocolError::Truncated { what: "LOAD" });
        }
        let n = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        Ok(Answer {
            admitted: n(0) != 0,
            load: Load {
                cpus: n(4),
                slots: n(8),
                running: n(12),
                queued: n(16),
            },
        })
    }
}
