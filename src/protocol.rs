//! distcc's wire protocol, versions 1 (plain) and 2 (LZO-compressed bodies).
//!
//! Every packet starts with a 12-byte header: four ASCII letters naming it and eight hex digits
//! carrying a 32-bit value (a version, a count, a status, or the length of the body that
//! follows). A request is `DIST ARGC ARGV... DOTI`; a reply is `DONE STAT SERR SOUT DOTO`.
//!
//! This module owns the encoding and decoding of those packets over any `Read`/`Write`, and
//! the limits that keep a reader safe from a hostile peer: every count and length is checked
//! against [`Limits`] before anything is allocated, and bodies are read as their bytes arrive,
//! so a header that announces 4 GiB and then stops costs nothing. It does not open sockets,
//! touch files or decide what a request means.

use std::fmt;
use std::io::{self, Read, Write};

use crate::lzo::{self, LzoError};

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

/// The protocol versions this implementation speaks. Version 3 (pump mode) is not yet
/// supported; version 0, which distcc 3.4 quietly treats as 1, is refused on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Protocol 1: bodies sent as they are.
    Plain = 1,
    /// Protocol 2: bodies compressed with LZO1X.
    Lzo = 2,
}

impl Version {
    pub fn from_wire(v: u32) -> Result<Version, ProtocolError> {
        match v {
            1 => Ok(Version::Plain),
            2 => Ok(Version::Lzo),
            other => Err(ProtocolError::UnsupportedVersion(other)),
        }
    }

    pub fn number(self) -> u32 {
        self as u32
    }

    /// Whether file bodies are LZO-compressed (protocol 2).
    pub fn compressed(self) -> bool {
        self == Version::Lzo
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
    /// Largest file body (`DOTI`, `DOTO`, `SERR`, `SOUT`) after decompression, in bytes.
    pub max_file: usize,
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
                "can't handle requested protocol version {v} (this distccd speaks 1 and 2)"
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
fn read_full(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), ProtocolError> {
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
        b"DONE" => "DONE",
        b"STAT" => "STAT",
        b"SERR" => "SERR",
        b"SOUT" => "SOUT",
        b"DOTO" => "DOTO",
        _ => "a packet",
    }
}

/// Reads one header and checks that it is the `expected` packet; returns its value.
pub fn read_header(r: &mut impl Read, expected: Token) -> Result<u32, ProtocolError> {
    let mut h = [0u8; 12];
    read_full(r, &mut h, token_name(&expected))?;
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
fn copy_exact(
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

/// Reads exactly `len` body bytes, growing the buffer only as bytes arrive.
fn read_body(
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

/// Reads one file packet and returns its bytes, decompressed when the version says so.
pub fn read_file(
    r: &mut impl Read,
    token: Token,
    version: Version,
    limits: &Limits,
) -> Result<Vec<u8>, ProtocolError> {
    let len = read_header(r, token)?;
    let body = read_body(r, token, len, limits.max_file)?;
    if version.compressed() && !body.is_empty() {
        lzo::decompress(&body, limits.max_file).map_err(|error| ProtocolError::Lzo { token, error })
    } else {
        Ok(body)
    }
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

/// Sends the first part of a request: `DIST`, `ARGC` and the `ARGV`s. The `.i` follows with
/// [`write_file`] and [`DOTI`].
pub fn write_request_header(
    w: &mut impl Write,
    version: Version,
    argv: &[String],
) -> Result<(), ProtocolError> {
    let mut buf = Vec::with_capacity(24 + argv.iter().map(|a| a.len() + 12).sum::<usize>());
    buf.extend_from_slice(&header(DIST, version.number()));
    buf.extend_from_slice(&header(ARGC, argv.len() as u32));
    for a in argv {
        buf.extend_from_slice(&header(ARGV, a.len() as u32));
        buf.extend_from_slice(a.as_bytes());
    }
    w.write_all(&buf)?;
    Ok(())
}

/// Reads `DIST`, `ARGC` and the `ARGV`s of a request.
pub fn read_request_header(
    r: &mut impl Read,
    limits: &Limits,
) -> Result<(Version, Vec<String>), ProtocolError> {
    let version = Version::from_wire(read_header(r, DIST)?)?;
    let argc = read_header(r, ARGC)?;
    if argc > limits.max_args || argc == 0 {
        return Err(ProtocolError::TooLarge {
            token: ARGC,
            value: u64::from(argc),
            limit: u64::from(limits.max_args),
        });
    }
    let mut argv = Vec::with_capacity(argc.min(1024) as usize);
    let mut total = 0usize;
    for index in 0..argc {
        let len = read_header(r, ARGV)?;
        total += len as usize;
        if len > limits.max_arg_len || total > limits.max_argv_bytes {
            return Err(ProtocolError::TooLarge {
                token: ARGV,
                value: u64::from(len),
                limit: u64::from(limits.max_arg_len),
            });
        }
        let body = read_body(r, ARGV, len, limits.max_arg_len as usize)?;
        argv.push(String::from_utf8(body).map_err(|_| ProtocolError::BadArgument { index })?);
    }
    Ok((version, argv))
}

/// A whole request as the daemon receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub version: Version,
    pub argv: Vec<String>,
    /// The preprocessed source, decompressed.
    pub doti: Vec<u8>,
}

impl Request {
    pub fn write(&self, w: &mut impl Write) -> Result<(), ProtocolError> {
        write_request_header(w, self.version, &self.argv)?;
        write_file(w, DOTI, self.version, &self.doti)
    }

    pub fn read(r: &mut impl Read, limits: &Limits) -> Result<Request, ProtocolError> {
        let (version, argv) = read_request_header(r, limits)?;
        let doti = read_file(r, DOTI, version, limits)?;
        Ok(Request {
            version,
            argv,
            doti,
        })
    }
}

/// A compile result: the wait status and what the compiler printed and produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// POSIX wait status (`exit << 8`, or the signal number).
    pub status: u32,
    pub stderr: Vec<u8>,
    pub stdout: Vec<u8>,
    /// The object (or assembler) file; always empty when `status` is not 0.
    pub output: Vec<u8>,
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
        buf.flush()?;
        Ok(())
    }

    /// Reads a reply to a request sent in `version`.
    pub fn read(
        r: &mut impl Read,
        version: Version,
        limits: &Limits,
    ) -> Result<Reply, ProtocolError> {
        let done = read_header(r, DONE)?;
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
        Ok(Reply {
            status,
            stderr,
            stdout,
            output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_stream_through_small_buffers_both_ways() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        for version in [Version::Plain, Version::Lzo] {
            for body in [&b""[..], b"int x;\n", &big] {
                let mut wire = Vec::new();
                write_file_from(&mut wire, DOTI, version, &mut &body[..], body.len() as u64)
                    .unwrap();
                let mut plain = Vec::new();
                write_file(&mut plain, DOTI, version, body).unwrap();
                assert_eq!(wire, plain, "the same bytes as write_file");
                let mut out = Vec::new();
                let len =
                    read_file_into(&mut &wire[..], DOTI, version, &Limits::default(), &mut out)
                        .unwrap();
                assert_eq!((len, &out[..]), (body.len() as u64, body));
            }
        }
        // A body cut short, and one larger than the limit, are errors.
        let mut wire = Vec::new();
        write_file(&mut wire, DOTI, Version::Plain, &big).unwrap();
        wire.truncate(wire.len() - 1);
        let got = read_file_into(
            &mut &wire[..],
            DOTI,
            Version::Plain,
            &Limits::default(),
            &mut io::sink(),
        );
        assert!(matches!(
            got,
            Err(ProtocolError::Truncated { what: "DOTI" })
        ));
        let limits = Limits {
            max_file: 1000,
            ..Limits::default()
        };
        let got = read_file_into(
            &mut &wire[..],
            DOTI,
            Version::Plain,
            &limits,
            &mut io::sink(),
        );
        assert!(matches!(got, Err(ProtocolError::TooLarge { .. })));
    }

    fn sample_request(version: Version) -> Request {
        Request {
            version,
            argv: argv(&["gcc", "-c", "x.c", "-o", "x.o"]),
            doti: b"int x;\n".to_vec(),
        }
    }

    fn encoded(req: &Request) -> Vec<u8> {
        let mut v = Vec::new();
        req.write(&mut v).unwrap();
        v
    }

    #[test]
    fn headers_are_lowercase_zero_padded_hex() {
        assert_eq!(&header(DIST, 1), b"DIST00000001");
        assert_eq!(&header(DOTI, 0x461c), b"DOTI0000461c");
        assert_eq!(&header(STAT, u32::MAX), b"STATffffffff");
    }

    #[test]
    fn every_token_reads_back() {
        for t in [DIST, ARGC, ARGV, DOTI, DONE, STAT, SERR, SOUT, DOTO] {
            for v in [0, 1, 0x6e00, 0xdead_beef, u32::MAX] {
                assert_eq!(read_header(&mut &header(t, v)[..], t).unwrap(), v);
            }
        }
    }

    #[test]
    fn uppercase_hex_is_accepted_like_distcc() {
        assert_eq!(read_header(&mut &b"DIST0000000A"[..], DIST).unwrap(), 10);
    }

    #[test]
    fn plain_request_matches_distcc_bytes() {
        // The exact 116 bytes distcc 3.4 sends for `gcc -c x.c -o x.o` with "int x;\n".
        let expected: &[u8] = b"DIST00000001ARGC00000005ARGV00000003gccARGV00000002-c\
ARGV00000003x.cARGV00000002-oARGV00000003x.oDOTI00000007int x;\n";
        assert_eq!(encoded(&sample_request(Version::Plain)), expected);
    }

    #[test]
    fn lzo_request_matches_distcc_bytes() {
        let bytes = encoded(&sample_request(Version::Lzo));
        let mut expected = b"DIST00000002ARGC00000005ARGV00000003gccARGV00000002-c\
ARGV00000003x.cARGV00000002-oARGV00000003x.oDOTI0000000b"
            .to_vec();
        expected.extend_from_slice(&[0x18, 0x69, 0x6e, 0x74, 0x20, 0x78, 0x3b, 0x0a, 0x11, 0, 0]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn requests_round_trip() {
        for v in [Version::Plain, Version::Lzo] {
            let mut req = sample_request(v);
            let bytes = encoded(&req);
            assert_eq!(
                Request::read(&mut &bytes[..], &Limits::default()).unwrap(),
                req
            );
            req.doti = Vec::new();
            let bytes = encoded(&req);
            assert!(bytes.ends_with(b"DOTI00000000"));
            assert_eq!(
                Request::read(&mut &bytes[..], &Limits::default()).unwrap(),
                req
            );
        }
    }

    #[test]
    fn replies_round_trip() {
        for v in [Version::Plain, Version::Lzo] {
            let reply = Reply {
                status: 0,
                stderr: b"warning: x\n".to_vec(),
                stdout: Vec::new(),
                output: vec![0x7f, b'E', b'L', b'F', 0, 0, 0, 1],
            };
            let mut bytes = Vec::new();
            reply.write(&mut bytes, v).unwrap();
            assert_eq!(
                Reply::read(&mut &bytes[..], v, &Limits::default()).unwrap(),
                reply
            );
        }
    }

    #[test]
    fn failed_reply_never_carries_output() {
        let reply = Reply {
            status: 1 << 8,
            stderr: b"error\n".to_vec(),
            stdout: Vec::new(),
            output: b"junk".to_vec(),
        };
        let mut bytes = Vec::new();
        reply.write(&mut bytes, Version::Plain).unwrap();
        assert!(bytes.ends_with(b"DOTO00000000"));
        let back = Reply::read(&mut &bytes[..], Version::Plain, &Limits::default()).unwrap();
        assert!(back.output.is_empty());
    }

    #[test]
    fn reply_version_must_match() {
        let mut bytes = Vec::new();
        Reply::default().write(&mut bytes, Version::Plain).unwrap();
        assert!(matches!(
            Reply::read(&mut &bytes[..], Version::Lzo, &Limits::default()),
            Err(ProtocolError::VersionMismatch {
                sent: 2,
                received: 1
            })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for v in [Version::Plain, Version::Lzo] {
            let bytes = encoded(&sample_request(v));
            for cut in 0..bytes.len() {
                let err = Request::read(&mut &bytes[..cut], &Limits::default()).unwrap_err();
                assert!(
                    matches!(
                        err,
                        ProtocolError::Truncated { .. } | ProtocolError::Lzo { .. }
                    ),
                    "cut {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn wrong_token_is_named() {
        let err = read_header(&mut &b"DOTO00000001"[..], DOTI).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol derailment: expected token \"DOTI\", got \"DOTO\""
        );
        let err = Request::read(&mut &b"GET / HTTP/1.1\r\n\r\n"[..], &Limits::default());
        assert!(matches!(err, Err(ProtocolError::WrongToken { .. })));
    }

    #[test]
    fn bad_hex_is_an_error() {
        for bad in [
            &b"DIST0000000g"[..],
            b"DIST-0000001",
            b"DIST 0000001",
            b"DIST+0000001",
        ] {
            assert!(matches!(
                read_header(&mut &bad[..], DIST),
                Err(ProtocolError::BadHex { .. })
            ));
        }
    }

    #[test]
    fn unsupported_versions_are_refused() {
        for v in [0, 3, 4, 0xffff_ffff] {
            let bytes = header(DIST, v);
            assert!(matches!(
                read_request_header(&mut &bytes[..], &Limits::default()),
                Err(ProtocolError::UnsupportedVersion(x)) if x == v
            ));
        }
    }

    #[test]
    fn oversize_lengths_are_refused_before_allocating() {
        let limits = Limits::default();
        let mut huge_argc = header(DIST, 1).to_vec();
        huge_argc.extend_from_slice(&header(ARGC, u32::MAX));
        assert!(matches!(
            read_request_header(&mut &huge_argc[..], &limits),
            Err(ProtocolError::TooLarge { token: ARGC, .. })
        ));

        let mut huge_arg = header(DIST, 1).to_vec();
        huge_arg.extend_from_slice(&header(ARGC, 1));
        huge_arg.extend_from_slice(&header(ARGV, u32::MAX));
        assert!(matches!(
            read_request_header(&mut &huge_arg[..], &limits),
            Err(ProtocolError::TooLarge { token: ARGV, .. })
        ));

        let mut req = encoded(&sample_request(Version::Plain));
        req.truncate(req.len() - 19);
        req.extend_from_slice(&header(DOTI, u32::MAX));
        let small = Limits {
            max_file: 1 << 20,
            ..limits
        };
        assert!(matches!(
            Request::read(&mut &req[..], &small),
            Err(ProtocolError::TooLarge { token: DOTI, .. })
        ));
        // Within the limit but never sent: truncated, without allocating 4 GiB first.
        assert!(matches!(
            Request::read(&mut &req[..], &limits),
            Err(ProtocolError::TooLarge { .. }) | Err(ProtocolError::Truncated { .. })
        ));
    }

    #[test]
    fn argv_total_is_bounded() {
        let limits = Limits {
            max_argv_bytes: 10,
            ..Limits::default()
        };
        let mut bytes = Vec::new();
        write_request_header(
            &mut bytes,
            Version::Plain,
            &argv(&["gcc", "-c", "abcdefgh.c"]),
        )
        .unwrap();
        assert!(matches!(
            read_request_header(&mut &bytes[..], &limits),
            Err(ProtocolError::TooLarge { token: ARGV, .. })
        ));
    }

    #[test]
    fn zero_argc_and_non_utf8_are_refused() {
        let mut bytes = header(DIST, 1).to_vec();
        bytes.extend_from_slice(&header(ARGC, 0));
        assert!(read_request_header(&mut &bytes[..], &Limits::default()).is_err());
        let mut bytes = header(DIST, 1).to_vec();
        bytes.extend_from_slice(&header(ARGC, 1));
        bytes.extend_from_slice(&header(ARGV, 2));
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(
            read_request_header(&mut &bytes[..], &Limits::default()),
            Err(ProtocolError::BadArgument { index: 0 })
        ));
    }

    #[test]
    fn corrupt_lzo_body_is_an_error() {
        let mut bytes = Vec::new();
        write_request_header(&mut bytes, Version::Lzo, &argv(&["gcc", "-c", "x.c"])).unwrap();
        bytes.extend_from_slice(&header(DOTI, 4));
        bytes.extend_from_slice(&[0x40, 0x00, 0x11, 0x00]);
        assert!(matches!(
            Request::read(&mut &bytes[..], &Limits::default()),
            Err(ProtocolError::Lzo { token: DOTI, .. })
        ));
    }
}
