//! Replies: `DONE`, the status in `STAT`, the compiler's stderr and stdout (`SERR`, `SOUT`)
//! and the object (`DOTO`), which a failed compile never carries; or, from our daemon, the
//! reason it will not run the request (`EMSG`). In protocol 3 a successful reply ends with
//! the dependency file (`DOTD`). After the reply our daemon adds notes: `HITC`, which
//! says whether the result came from its cache, `TIME`, what the job cost there, `LOAD`,
//! how busy it is as the job ends (see `load`), and last `CCID`, the identity of its
//! compiler, which may take it a moment to know. distcc 3.4's client stops reading at the
//! reply's end and never sees them.

use std::io::{self, Read, Write};

use super::load::{Answer, JobTimes, Load};
use super::packet::*;

/// A compile result: the wait status and what the compiler printed and produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// POSIX wait status (`exit << 8`, or the signal number).
    pub status: u32,
    pub stderr: Vec<u8>,
    pub stdout: Vec<u8>,
    /// The object (or assembler) file; always empty when `status` is not 0.
    pub output: Vec<u8>,
    /// Protocol 3: the dependency file, its paths the client's; read and written only when
    /// `status` is 0 (an absent one is sent empty).
    pub deps: Option<Vec<u8>>,
    /// Our daemon answered from its cache (its `HITC` note, read by [`Reply::read_note`];
    /// not part of the reply itself).
    pub from_cache: bool,
    /// What our daemon said its compiler is (its `CCID` note); `None` from distcc 3.4.
    pub compiler: Option<String>,
    /// How busy our daemon said it is as the job ended (its `LOAD` note).
    pub load: Option<Load>,
    /// What our daemon said the job cost there (its `TIME` note).
    pub times: Option<JobTimes>,
}

impl Reply {
    pub fn write(&self, w: &mut impl Write, version: Version) -> Result<(), ProtocolError> {
        let output: &[u8] = if self.status == 0 { &self.output } else { &[] };
        self.write_with_output(w, version, &mut &output[..], output.len() as u64)
    }

    /// Writes the reply with the first `len` bytes of `output` as its object instead of
    /// `self.output`, so that a daemon can send an object file without holding it whole.
    /// Buffered, so that a small reply leaves in one write.
    pub fn write_with_output(
        &self,
        w: &mut impl Write,
        version: Version,
        output: &mut impl Read,
        len: u64,
    ) -> Result<(), ProtocolError> {
        let mut buf = io::BufWriter::with_capacity(2 * SMALL_FILE, w);
        buf.write_all(&header(DONE, version.number()))?;
        buf.write_all(&header(STAT, self.status))?;
        write_file(&mut buf, SERR, version, &self.stderr)?;
        write_file(&mut buf, SOUT, version, &self.stdout)?;
        write_file_from(&mut buf, DOTO, version, output, len)?;
        if version == Version::Pump && self.status == 0 {
            write_file(&mut buf, DOTD, version, self.deps.as_deref().unwrap_or(&[]))?;
        }
        buf.flush()?;
        Ok(())
    }

    /// Reads a reply to a request sent in `version`.
    pub fn read(
        r: &mut impl Read,
        version: Version,
        limits: &Limits,
    ) -> Result<Reply, ProtocolError> {
        let done = read_header_or_refusal(r, DONE)?;
        if done != version.number() {
            return Err(ProtocolError::VersionMismatch {
                sent: version.number(),
                received: done,
            });
        }
        let status = read_header(r, STAT)?;
        let stderr = read_file(r, SERR, version, limits)?;
        let stdout = read_file(r, SOUT, version, limits)?;
        let output = read_file(r, DOTO, version, limits)?;
        let deps = if version == Version::Pump && status == 0 {
            Some(read_file(r, DOTD, version, limits)?)
        } else {
            None
        };
        Ok(Reply {
            status,
            stderr,
            stdout,
            output,
            deps,
            from_cache: false,
            compiler: None,
            load: None,
            times: None,
        })
    }

    /// Our daemon's first notes after the reply, which cost it nothing: [`HITC`],
    /// [`TIME`], and [`LOAD`] when it counts its jobs (a standalone daemon does). The
    /// compiler's identity may follow ([`Reply::write_compiler_note`]).
    pub fn write_note(
        w: &mut impl Write,
        from_cache: bool,
        times: JobTimes,
        load: Option<Load>,
    ) -> io::Result<()> {
        let mut notes = header(HITC, u32::from(from_cache)).to_vec();
        notes.extend_from_slice(&times.encode());
        if let Some(load) = load {
            notes.extend_from_slice(
                &Answer {
                    admitted: true,
                    load,
                }
                .encode(),
            );
        }
        w.write_all(&notes)?;
        w.flush()
    }

    /// Our daemon's last note: the identity of its compiler ([`CCID`]), which it may take
    /// a run of the compiler to know.
    pub fn write_compiler_note(w: &mut impl Write, text: &str) -> io::Result<()> {
        if text.len() > MAX_CCID {
            return Ok(());
        }
        let mut note = header(CCID, text.len() as u32).to_vec();
        note.extend_from_slice(text.as_bytes());
        w.write_all(&note)
    }

    /// Reads our daemon's notes after the reply into [`Reply::from_cache`],
    /// [`Reply::times`], [`Reply::load`] and, with `compiler`, [`Reply::compiler`]: until
    /// what is wanted has come (the load, and the compiler's identity with `compiler`),
    /// or something else comes, or the connection ends. distcc 3.4's daemon sends none
    /// and closes the connection: then they stay unset.
    pub fn read_note(&mut self, r: &mut impl Read, compiler: bool) {
        let Ok(hit) = read_header(r, HITC) else {
            return;
        };
        self.from_cache = hit == 1;
        let mut h = [0u8; 12];
        while !(self.load.is_some() && (self.compiler.is_some() || !compiler))
            && r.read_exact(&mut h).is_ok()
        {
            let read = if let Ok(len) = parse_header(&h, CCID) {
                read_body(r, CCID, len, MAX_CCID)
                    .map(|text| self.compiler = Some(String::from_utf8_lossy(&text).into()))
            } else if let Ok(len) = parse_header(&h, TIME) {
                JobTimes::read_body(r, len).map(|times| self.times = Some(times))
            } else if let Ok(len) = parse_header(&h, LOAD) {
                Answer::read_body(r, len).map(|answer| self.load = Some(answer.load))
            } else {
                return;
            };
            if read.is_err() {
                return;
            }
        }
    }
}
