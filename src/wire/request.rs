//! Requests: `DIST`, `ARGC`, the `ARGV`s, then the preprocessed source in `DOTI`. Reading
//! bounds every count and length before allocating; what a request means is `cmdline`'s.

use std::io::{Read, Write};

use super::packet::*;

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

/// Reads `DIST`, `ARGC` and the `ARGV`s of a protocol 1 or 2 request (protocol 3 has
/// [`read_request_head`](super::read_request_head)).
pub fn read_request_header(
    r: &mut impl Read,
    limits: &Limits,
) -> Result<(Version, Vec<String>), ProtocolError> {
    let version = Version::from_wire(read_header(r, DIST)?)?;
    if version == Version::Pump {
        // `CDIR` comes first: see `read_request_head`.
        return Err(ProtocolError::WrongToken {
            expected: ARGC,
            found: CDIR,
        });
    }
    Ok((version, read_argv(r, limits)?))
}

/// Reads `ARGC` and the `ARGV`s.
pub(super) fn read_argv(r: &mut impl Read, limits: &Limits) -> Result<Vec<String>, ProtocolError> {
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
    Ok(argv)
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
