//! Packets: the 12-byte header, bounded bodies, LZO when the version says so, and the
//! limits and errors shared by requests and replies.

use std::fmt;
use std::io::{self, Read, Write};

use super::lzo::{self, LzoError};

/// A packet name: four ASCII letters.
pub type Token = [u8; 4];

pub const DIST: Token = *b"DIST";
pub const ARGC: Token = *b"ARGC";
pub const ARGV: Token = *b"ARGV";
pub const DOTI: Token = *b"DOTI";
pub const DONE: Token = *b"DONE";
pub const STAT: Token = *b"STAT";
pub const SERR: Token = *b"SERR";
pub const SOUT: Token = *b"SOUT";
pub const DOTO: Token = *b"DOTO";
// Protocol 3 (pump mode): the client's working directory, the files it sends (a count, then
// each file's absolute client path with its LZO-compressed content or symlink target), and
// the dependency file in the reply.
pub const CDIR: Token = *b"CDIR";
pub const NFIL: Token = *b"NFIL";
pub const NAME: Token = *b"NAME";
pub const FILE: Token = *b"FILE";
pub const LINK: Token = *b"LINK";
pub const DOTD: Token = *b"DOTD";
/// Our daemon's answer to a request it will not run, in place of `DONE`: the reason, one
/// line of text. Not in distcc 3.4's protocol, which has no error packet: a 3.4 client
/// takes it for a derailed reply, prints it as the "error context", and falls back as
/// after a closed connection.
pub const EMSG: Token = *b"EMSG";
/// Our daemon's note after each reply: 1 when the result came from its cache, 0 when it
/// compiled. distcc 3.4's client stops reading at the reply's end and never sees it.
pub const HITC: Token = *b"HITC";
/// Our daemon's second note: the identity of the compiler it ran (or whose result its
/// cache kept), as `toolchain::identity` makes it, for the client to compare with its own.
pub const CCID: Token = *b"CCID";
/// Our client's ask before a request, our daemon's answer to it, and its last note after
/// a reply: how busy it is (see `load`).
pub const LOAD: Token = *b"LOAD";
/// Our daemon's note after a reply, before `LOAD`: what the job cost there (see `load`).
pub const TIME: Token = *b"TIME";
/// Our daemon's answer to a state ask, after `LOAD`: its jobs as JSON (see `load`).
pub const JSON: Token = *b"JSON";

/// The longest `EMSG` text read.
const MAX_EMSG: usize = 4096;
/// The longest `CCID` note sent or read (gcc's configure line is about 1.5 KB).
pub const MAX_CCID: usize = 8192;

/// The protocol versions. Version 0, which distcc 3.4 quietly treats as 1, is refused on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// Protocol 1: bodies sent as they are.
    #[default]
    Plain = 1,
    /// Protocol 2: bodies compressed with LZO1X.
    Lzo = 2,
    /// Protocol 3: pump mode, where the host preprocesses from the sources and headers sent
    /// (`CDIR`, `NFIL`, `NAME`, `FILE`, `LINK`); bodies compressed; a `DOTD` reply.
    Pump = 3,
}

impl Version {
    pub fn from_wire(v: u32) -> Result<Version, ProtocolError> {
        match v {
            1 => Ok(Version::Plain),
            2 => Ok(Version::Lzo),
            3 => Ok(Version::Pump),
            other => Err(ProtocolError::UnsupportedVersion(other)),
        }
    }

    pub fn number(self) -> u32 {
        self as u32
    }

    /// Whether file bodies are LZO-compressed (protocols 2 and 3).
    pub fn compressed(self) -> bool {
        self != Version::Plain
    }
}

/// Bounds applied while reading, so that a peer cannot make us allocate what it pleases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most `ARGV` entries in one request.
    pub max_args: u32,
    /// Longest single argument, in bytes.
    pub max_arg_len: u32,
    /// Most bytes of all arguments together.
    pub max_argv_bytes: usize,
    /// Largest file body (`DOTI`, `DOTO`, `SERR`, `SOUT`, each `FILE`) after decompression,
    /// in bytes.
    pub max_file: usize,
    /// Most files (`NFIL`) in a protocol 3 request.
    pub max_files: u32,
    /// Longest path (`CDIR`, `NAME`, `LINK`), in bytes.
    pub max_name_len: u32,
    /// Most bytes of all the files of a protocol 3 request together, decompressed, with
    /// their names and link targets.
    pub max_files_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Linux itself allows 128 KiB per argument and about 2 MiB per command line.
            max_args: 65_536,
            max_arg_len: 128 * 1024,
            max_argv_bytes: 4 * 1024 * 1024,
            // Preprocessed C++ translation units of real projects reach tens of MiB.
            max_file: 1024 * 1024 * 1024,
            // A large C++ translation unit reads a few thousand headers, tens of MiB.
            max_files: 100_000,
            max_name_len: 4096,
            max_files_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Everything that can go wrong while reading or writing packets.
#[derive(Debug)]
pub enum ProtocolError {
    /// The connection failed or timed out.
    Io(io::Error),
    /// The peer closed the connection in the middle of `what`.
    Truncated { what: &'static str },
    /// A header named another packet than the one due.
    WrongToken { expected: Token, found: [u8; 4] },
    /// A header's eight characters after the name are not hexadecimal.
    BadHex { token: Token, text: [u8; 8] },
    /// A `DIST` or `DONE` with a version we do not speak.
    UnsupportedVersion(u32),
    /// The reply's `DONE` names another version than the request's `DIST`.
    VersionMismatch { sent: u32, received: u32 },
    /// A count or length is larger than the configured limit.
    TooLarge {
        token: Token,
        value: u64,
        limit: u64,
    },
    /// An argument is not valid UTF-8.
    BadArgument { index: u32 },
    /// A compressed body could not be decoded.
    Lzo { token: Token, error: LzoError },
    /// The host will not run the request, and says why (`EMSG`).
    Refused(String),
    /// A `CDIR`, `NAME` or `LINK` path is not valid UTF-8.
    BadPath { token: Token },
    /// A compressed source expands beyond [`source_bound`] of its size.
    Expands {
        token: Token,
        compressed: u64,
        bound: u64,
    },
}

fn show(t: &[u8]) -> String {
    String::from_utf8_lossy(t).escape_debug().to_string()
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "IO timeout")
            }
            ProtocolError::Io(e) => write!(f, "{e}"),
            ProtocolError::Truncated { what } => {
                write!(f, "connection closed by peer while reading {what}")
            }
            ProtocolError::WrongToken { expected, found } => write!(
                f,
                "protocol derailment: expected token \"{}\", got \"{}\"",
                show(expected),
                show(found)
            ),
            ProtocolError::BadHex { token, text } => write!(
                f,
                "protocol derailment: bad hex value \"{}\" after token \"{}\"",
                show(text),
                show(token)
            ),
            ProtocolError::UnsupportedVersion(v) => write!(
                f,
                "can't handle requested protocol version {v} (this distccd speaks 1, 2 and 3)"
            ),
            ProtocolError::VersionMismatch { sent, received } => write!(
                f,
                "server answered protocol version {received} to a version {sent} request"
            ),
            ProtocolError::TooLarge {
                token,
                value,
                limit,
            } => write!(
                f,
                "{} value {value} exceeds the limit of {limit}",
                show(token)
            ),
            ProtocolError::BadArgument { index } => {
                write!(f, "argument {index} is not valid UTF-8")
            }
            ProtocolError::Lzo { token, error } => {
                write!(f, "corrupt compressed {} body: {error}", show(token))
            }
            ProtocolError::BadPath { token } => {
                write!(f, "{} path is not valid UTF-8", show(token))
            }
            ProtocolError::Refused(why) => write!(f, "the host refused the job: {why}"),
            ProtocolError::Expands {
                token,
                compressed,
                bound,
            } => write!(
                f,
                "compressed {} body of {compressed} bytes expands beyond {bound} bytes \
                 ({MAX_SOURCE_EXPANSION} times its size plus {} KiB, more than any real \
                 source): refused, so that a worker's memory stays proportional to what it \
                 receives",
                show(token),
                SOURCE_EXPANSION_SLACK >> 10
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        ProtocolError::Io(e)
    }
}

/// Encodes one header: the token and its value as eight lowercase hex digits.
pub fn header(token: Token, value: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&token);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in h[4..].iter_mut().enumerate() {
        *b = HEX[((value >> (28 - 4 * i)) & 0xf) as usize];
    }
    h
}

/// Fills `buf` completely, or says which packet the peer cut short.
pub(super) fn read_full(
    r: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), ProtocolError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ProtocolError::Truncated { what }
        } else {
            ProtocolError::Io(e)
        }
    })
}

fn token_name(t: &Token) -> &'static str {
    match t {
        b"DIST" => "DIST",
        b"ARGC" => "ARGC",
        b"ARGV" => "ARGV",
        b"DOTI" => "DOTI",
        b"CCID" => "CCID",
        b"DONE" => "DONE",
        b"STAT" => "STAT",
        b"SERR" => "SERR",
        b"SOUT" => "SOUT",
        b"DOTO" => "DOTO",
        b"CDIR" => "CDIR",
        b"NFIL" => "NFIL",
        b"NAME" => "NAME",
        b"FILE" => "FILE",
        b"LINK" => "LINK",
        b"DOTD" => "DOTD",
        b"LOAD" => "LOAD",
        b"TIME" => "TIME",
        _ => "a packet",
    }
}

/// Reads one header and checks that it is the `expected` packet; returns its value.
pub fn read_header(r: &mut impl Read, expected: Token) -> Result<u32, ProtocolError> {
    let mut h = [0u8; 12];
    read_full(r, &mut h, token_name(&expected))?;
    parse_header(&h, expected)
}

/// Reads one header that should be `expected`; an `EMSG` in its place is the host's
/// refusal, read and returned as [`ProtocolError::Refused`].
pub(super) fn read_header_or_refusal(
    r: &mut impl Read,
    expected: Token,
) -> Result<u32, ProtocolError> {
    let mut h = [0u8; 12];
    read_full(r, &mut h, token_name(&expected))?;
    if h[..4] == EMSG {
        let text = read_body(r, EMSG, parse_header(&h, EMSG)?, MAX_EMSG)?;
        return Err(ProtocolError::Refused(
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    parse_header(&h, expected)
}

/// Sends the refusal `why` (see [`EMSG`]), on one line.
pub fn write_refusal(w: &mut impl Write, why: &str) -> Result<(), ProtocolError> {
    let text = why.replace(['\n', '\r'], " ");
    let mut packet = header(EMSG, header_len(EMSG, text.len() as u64)?).to_vec();
    packet.extend_from_slice(text.as_bytes());
    w.write_all(&packet)?;
    w.flush()?;
    Ok(())
}

/// The value of header `h`, which must name the `expected` packet.
pub fn parse_header(h: &[u8; 12], expected: Token) -> Result<u32, ProtocolError> {
    if h[..4] != expected {
        let mut found = [0u8; 4];
        found.copy_from_slice(&h[..4]);
        return Err(ProtocolError::WrongToken { expected, found });
    }
    let mut value = 0u32;
    for &c in &h[4..] {
        let digit = (c as char).to_digit(16).ok_or_else(|| {
            let mut text = [0u8; 8];
            text.copy_from_slice(&h[4..]);
            ProtocolError::BadHex {
                token: expected,
                text,
            }
        })?;
        value = (value << 4) | digit;
    }
    Ok(value)
}

/// `len` as a body length, or an error when it is over `limit`.
fn within(token: Token, len: u64, limit: usize) -> Result<u64, ProtocolError> {
    if len > limit as u64 {
        return Err(ProtocolError::TooLarge {
            token,
            value: len,
            limit: limit as u64,
        });
    }
    Ok(len)
}

/// `len` as the 32-bit length a header carries.
pub fn header_len(token: Token, len: u64) -> Result<u32, ProtocolError> {
    u32::try_from(len).map_err(|_| ProtocolError::TooLarge {
        token,
        value: len,
        limit: u64::from(u32::MAX),
    })
}

/// Copies exactly `len` bytes of `r` to `w`, or says which packet came up short.
pub(super) fn copy_exact(
    r: &mut impl Read,
    w: &mut impl Write,
    len: u64,
    token: Token,
) -> Result<(), ProtocolError> {
    if io::copy(&mut r.take(len), w)? != len {
        return Err(ProtocolError::Truncated {
            what: token_name(&token),
        });
    }
    Ok(())
}

/// Reads exactly `len` body bytes (at most `limit`), growing the buffer only as bytes
/// arrive.
pub fn read_body(
    r: &mut impl Read,
    token: Token,
    len: u32,
    limit: usize,
) -> Result<Vec<u8>, ProtocolError> {
    let len = within(token, u64::from(len), limit)?;
    let mut body = Vec::with_capacity((len as usize).min(1 << 20));
    copy_exact(r, &mut body, len, token)?;
    Ok(body)
}

/// Writes one file body, compressed when the version says so; an empty file is always sent
/// as an empty body.
pub fn write_file(
    w: &mut impl Write,
    token: Token,
    version: Version,
    data: &[u8],
) -> Result<(), ProtocolError> {
    let compressed;
    let body = if version.compressed() && !data.is_empty() {
        compressed = lzo::compress(data);
        &compressed[..]
    } else {
        data
    };
    let len = header_len(token, body.len() as u64)?;
    if body.len() <= SMALL_FILE {
        // Header and body in one write, so that a small file goes in one packet.
        let mut packet = Vec::with_capacity(12 + body.len());
        packet.extend_from_slice(&header(token, len));
        packet.extend_from_slice(body);
        w.write_all(&packet)?;
    } else {
        w.write_all(&header(token, len))?;
        w.write_all(body)?;
    }
    Ok(())
}

/// Up to this size a file is copied behind its header and sent with it.
pub const SMALL_FILE: usize = 64 << 10;

/// How many times its compressed size a source (`DOTI`) may expand to. Preprocessed C and
/// C++ compress about 4:1 with LZO1X-1 (3.98 for 1.9 MiB of `g++ -E` of a file including
/// `<iostream>`, `<vector>`, `<map>`, `<regex>` and more; 3.42 for its `-fdirectives-only`
/// text; 4.23 for `<stdio.h>` and friends in C). Only long runs of one byte or a short
/// pattern go further, up to LZO's ceiling of about 255: 2 MB of zeros give 225, and the
/// same bytes through `xxd -i` 212. 64 leaves real text a margin of 16, and bounds what a
/// 4 MiB request can make a worker hold to 256 MiB instead of [`Limits::max_file`]. A text
/// beyond it (an embedded table of zeros, say) is refused like any bad request, and the
/// client compiles it locally.
pub const MAX_SOURCE_EXPANSION: usize = 64;

/// What any compressed source may expand to besides [`MAX_SOURCE_EXPANSION`] times its
/// size, so that small bodies are never refused for their ratio.
pub const SOURCE_EXPANSION_SLACK: usize = 1 << 20;

/// The most a `compressed`-byte source may expand to: [`MAX_SOURCE_EXPANSION`] times its
/// size plus [`SOURCE_EXPANSION_SLACK`], capped by `limit`.
pub fn source_bound(compressed: usize, limit: usize) -> usize {
    compressed
        .saturating_mul(MAX_SOURCE_EXPANSION)
        .saturating_add(SOURCE_EXPANSION_SLACK)
        .min(limit)
}

/// Reads one file packet and returns its bytes, decompressed when the version says so.
///
/// A source (`DOTI`, what a daemon's worker receives) may expand only to [`source_bound`]
/// of its compressed size. Other bodies are bounded by `limits.max_file` alone: objects
/// legitimately compress far better than text (a zero-filled `.data` section compresses
/// about 250:1), and a client reads them only from servers it chose. The decoder grows its
/// buffer as it decodes, never to the bound up front.
pub fn read_file(
    r: &mut impl Read,
    token: Token,
    version: Version,
    limits: &Limits,
) -> Result<Vec<u8>, ProtocolError> {
    let len = read_header(r, token)?;
    let body = read_body(r, token, len, limits.max_file)?;
    if !version.compressed() || body.is_empty() {
        return Ok(body);
    }
    let bound = if token == DOTI {
        source_bound(body.len(), limits.max_file)
    } else {
        limits.max_file
    };
    lzo::decompress(&body, bound).map_err(|error| match error {
        LzoError::TooLarge { .. } if bound < limits.max_file => ProtocolError::Expands {
            token,
            compressed: body.len() as u64,
            bound: bound as u64,
        },
        error => ProtocolError::Lzo { token, error },
    })
}

/// Reads one file packet into `out`, decompressed when the version says so, and returns
/// its length. An uncompressed body goes through a small buffer, never whole in memory.
pub fn read_file_into(
    r: &mut impl Read,
    token: Token,
    version: Version,
    limits: &Limits,
    out: &mut impl Write,
) -> Result<u64, ProtocolError> {
    if version.compressed() {
        let body = read_file(r, token, version, limits)?;
        out.write_all(&body)?;
        return Ok(body.len() as u64);
    }
    let len = within(token, u64::from(read_header(r, token)?), limits.max_file)?;
    copy_exact(r, out, len, token)?;
    Ok(len)
}

/// Writes one file packet whose body is the first `len` bytes of `body`, compressed when the
/// version says so. An uncompressed body is copied through a small buffer.
pub fn write_file_from(
    w: &mut impl Write,
    token: Token,
    version: Version,
    body: &mut impl Read,
    len: u64,
) -> Result<(), ProtocolError> {
    if version.compressed() || len <= SMALL_FILE as u64 {
        let mut data = Vec::with_capacity(len as usize);
        body.take(len).read_to_end(&mut data)?;
        return write_file(w, token, version, &data);
    }
    w.write_all(&header(token, header_len(token, len)?))?;
    copy_exact(body, w, len, token)
}
