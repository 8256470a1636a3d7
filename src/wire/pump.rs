//! Protocol 3 (pump mode): the request carries the client's working directory (`CDIR`), its
//! full command line, and the files the host needs to preprocess the source itself (`NFIL`,
//! then per file `NAME` with `FILE` or `LINK`); the reply of a successful compile ends with
//! the dependency file (`DOTD`, see `reply`).
//!
//! `FILE` bodies travel as the client holds them, already LZO-compressed (distcc 3.4's
//! include server compresses them once for the whole build), so [`write_pump_request`] sends
//! them as given. Reading is one file at a time ([`PumpFiles::next`]), bounded by
//! [`Limits`]: how many files, how long a name or link, how large each body and all of them
//! together, and how far each may expand ([`source_bound`]). What a name means on the host
//! (where it is written, which names are allowed) is the daemon's.

use std::io::{BufWriter, Read, Write};

use super::lzo::{self, LzoError};
use super::packet::*;

/// The content of one file of a protocol 3 request, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The LZO-compressed bytes, as sent on the wire; empty for an empty file.
    File(Vec<u8>),
    /// A symbolic link: its target.
    Link(String),
}

/// One file of a protocol 3 request: its absolute path on the client and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpFile {
    pub name: String,
    pub content: Content,
}

/// The name under which our client lists, among a request's files, the system headers the
/// compile reads: no request carries them (the host reads its own), so a host whose differ
/// would compile another object without a word. Each line is a header's size and
/// modification time, which installing the same package gives every machine alike, then
/// its path ([`system_headers_list`]). Our daemon compares them with its own before
/// compiling ([`first_other_system_header`]); distcc 3.4's writes the list into its job
/// root like any file, where nothing reads it.
pub const SYSTEM_HEADERS: &str = "/.distcc-rs/system-headers";

/// What our daemon's refusal says when a listed header differs on the host: the client
/// then sends the job as preprocessed text, which carries its own headers.
pub const OTHER_SYSTEM_HEADER: &str = "differs on this host from the client's";

/// The name under which our client lists, first among a request's files, the files whose
/// first line is the `#line 1 "<dir>/<name>"` an include server puts before a file it found
/// through an absolute directory (its mirror's `.abs` files), one name a line. That line
/// keeps `__FILE__` right on a daemon that does not map its job directory away (3.4's);
/// ours does, and drops it: the name may be another compile's (the mirror writes each
/// file once, with the first name it was found by), and it costs clang its DWARF 5
/// checksums. distcc 3.4's daemon writes the list into its job root, where nothing reads it.
pub const LINE_MARKED: &str = "/.distcc-rs/line-marked";

/// The longest [`SYSTEM_HEADERS`] or [`LINE_MARKED`] list a daemon takes: a C++ unit's
/// lists are tens of kilobytes.
pub const MAX_LIST: usize = 4 << 20;

/// A header's identity as listed: size, and modification time in seconds and nanoseconds.
fn header_identity(path: &str) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec()))
}

/// The list of [`SYSTEM_HEADERS`] for `paths` as they are here, then `absent` (paths
/// where no header is here), each as `absent PATH`; a path that cannot be read, or holds
/// a newline, is left out.
pub fn system_headers_list<'p>(paths: impl Iterator<Item = &'p str>, absent: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for path in paths.filter(|p| !p.contains('\n')) {
        if let Some((size, secs, nanos)) = header_identity(path) {
            out.push_str(&format!("{size} {secs} {nanos} {path}\n"));
        }
    }
    for path in absent.iter().filter(|p| !p.contains('\n')) {
        out.push_str(&format!("{ABSENT}{path}\n"));
    }
    out.into_bytes()
}

/// How a [`SYSTEM_HEADERS`] line starts for a path where the client has no header.
const ABSENT: &str = "absent ";

/// The first header of a [`SYSTEM_HEADERS`] list that is not here as it is on the client
/// (another size or time, or missing; or here where the client has none), if any; a line
/// not shaped as a list's counts as such a header.
pub fn first_other_system_header(list: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(list);
    text.lines().find_map(|line| {
        if let Some(path) = line.strip_prefix(ABSENT) {
            let here = std::fs::metadata(path).is_ok_and(|m| m.is_file());
            return here.then(|| path.to_string());
        }
        let mut words = line.splitn(4, ' ');
        let mut number = || words.next()?.parse::<i64>().ok();
        let listed = (number(), number(), number());
        let path = words.next().unwrap_or(line);
        let here = header_identity(path).map(|(size, s, n)| (Some(size as i64), Some(s), Some(n)));
        (here != Some(listed)).then(|| path.to_string())
    })
}

/// Sends a whole protocol 3 request: `DIST(3)`, `CDIR`, `ARGC`, the `ARGV`s (the client's
/// full command line), `NFIL` and the files, whose `FILE` bodies go as given (already
/// compressed).
pub fn write_pump_request(
    w: &mut impl Write,
    cwd: &str,
    argv: &[String],
    files: &[PumpFile],
) -> Result<(), ProtocolError> {
    let mut w = BufWriter::with_capacity(64 << 10, w);
    w.write_all(&header(DIST, Version::Pump.number()))?;
    write_string(&mut w, CDIR, cwd)?;
    w.write_all(&header(ARGC, header_len(ARGC, argv.len() as u64)?))?;
    for a in argv {
        write_string(&mut w, ARGV, a)?;
    }
    w.write_all(&header(NFIL, header_len(NFIL, files.len() as u64)?))?;
    for f in files {
        write_string(&mut w, NAME, &f.name)?;
        match &f.content {
            Content::File(body) => {
                w.write_all(&header(FILE, header_len(FILE, body.len() as u64)?))?;
                w.write_all(body)?;
            }
            Content::Link(target) => write_string(&mut w, LINK, target)?,
        }
    }
    w.flush()?;
    Ok(())
}

fn write_string(w: &mut impl Write, token: Token, s: &str) -> Result<(), ProtocolError> {
    w.write_all(&header(token, header_len(token, s.len() as u64)?))?;
    w.write_all(s.as_bytes())?;
    Ok(())
}

/// The start of any request: its version, the client's working directory (protocol 3
/// only) and its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub version: Version,
    pub cwd: Option<String>,
    pub argv: Vec<String>,
}

/// Reads `DIST`, then `CDIR` for protocol 3, then `ARGC` and the `ARGV`s.
pub fn read_request_head(r: &mut impl Read, limits: &Limits) -> Result<RequestHead, ProtocolError> {
    let version = Version::from_wire(read_header(r, DIST)?)?;
    let cwd = match version {
        Version::Pump => Some(read_string(r, CDIR, limits)?),
        _ => None,
    };
    let argv = super::request::read_argv(r, limits)?;
    Ok(RequestHead { version, cwd, argv })
}

/// Reads a `CDIR`, `NAME` or `LINK` string, at most `limits.max_name_len` bytes of UTF-8.
fn read_string(r: &mut impl Read, token: Token, limits: &Limits) -> Result<String, ProtocolError> {
    let len = read_header(r, token)?;
    read_string_body(r, token, len, limits)
}

fn read_string_body(
    r: &mut impl Read,
    token: Token,
    len: u32,
    limits: &Limits,
) -> Result<String, ProtocolError> {
    let body = read_body(r, token, len, limits.max_name_len as usize)?;
    String::from_utf8(body).map_err(|_| ProtocolError::BadPath { token })
}

/// A file as the daemon receives it: its client path and its content, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    pub name: String,
    pub content: Received,
}

/// The content of a received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The file's bytes, decompressed.
    File(Vec<u8>),
    /// A symbolic link's target, as sent.
    Link(String),
}

/// The files of a protocol 3 request, read one at a time after [`read_request_head`].
#[derive(Debug)]
pub struct PumpFiles {
    remaining: u32,
    /// Bytes of names, links and decompressed bodies so far.
    total: u64,
}

impl PumpFiles {
    /// Reads `NFIL`, bounded by `limits.max_files`.
    pub fn start(r: &mut impl Read, limits: &Limits) -> Result<PumpFiles, ProtocolError> {
        let count = read_header(r, NFIL)?;
        if count > limits.max_files {
            return Err(ProtocolError::TooLarge {
                token: NFIL,
                value: u64::from(count),
                limit: u64::from(limits.max_files),
            });
        }
        Ok(PumpFiles {
            remaining: count,
            total: 0,
        })
    }

    /// How many files are still to come.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Reads the next file, or `None` after the last. Each body may expand to
    /// [`source_bound`] of its compressed size, and all files together to
    /// `limits.max_files_bytes`.
    pub fn next(
        &mut self,
        r: &mut impl Read,
        limits: &Limits,
    ) -> Result<Option<ReceivedFile>, ProtocolError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let name = read_string(r, NAME, limits)?;
        self.count(NAME, name.len() as u64, limits)?;
        let mut h = [0u8; 12];
        read_full(r, &mut h, "FILE")?;
        let content = if h[..4] == LINK {
            let target = read_string_body(r, LINK, parse_header(&h, LINK)?, limits)?;
            self.count(LINK, target.len() as u64, limits)?;
            Received::Link(target)
        } else {
            let len = parse_header(&h, FILE)?;
            let body = read_body(r, FILE, len, limits.max_file)?;
            self.count(FILE, body.len() as u64, limits)?;
            if body.is_empty() {
                Received::File(body)
            } else {
                let left = limits.max_files_bytes.saturating_sub(self.total);
                let bound = source_bound(body.len(), limits.max_file)
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let data = lzo::decompress(&body, bound).map_err(|error| match error {
                    LzoError::TooLarge { .. } => ProtocolError::Expands {
                        token: FILE,
                        compressed: body.len() as u64,
                        bound: bound as u64,
                    },
                    error => ProtocolError::Lzo { token: FILE, error },
                })?;
                // The compressed size was counted; the decompressed one replaces it.
                self.total -= body.len() as u64;
                self.count(FILE, data.len() as u64, limits)?;
                Received::File(data)
            }
        };
        Ok(Some(ReceivedFile { name, content }))
    }

    fn count(&mut self, token: Token, len: u64, limits: &Limits) -> Result<(), ProtocolError> {
        self.total += len;
        if self.total > limits.max_files_bytes {
            return Err(ProtocolError::TooLarge {
                token,
                value: self.total,
                limit: limits.max_files_bytes,
            });
        }
        Ok(())
    }
}
