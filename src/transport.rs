//! Reaching a host: a TCP connection with distcc's timeouts (4 s to connect, tried on each
//! address the name resolves to; `DISTCC_IO_TIMEOUT`, default 300 s, for every later wait).
//!
//! This module knows nothing of the protocol spoken over the connection.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a host could not be reached.
#[derive(Debug)]
pub enum ConnectError {
    Resolve { host: String, error: io::Error },
    Connect { addr: String, error: io::Error },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { host, error } => {
                write!(f, "failed to look up host \"{host}\": {error}")
            }
            ConnectError::Connect { addr, error } if error.kind() == io::ErrorKind::TimedOut => {
                write!(f, "timeout while connecting to {addr}")
            }
            ConnectError::Connect { addr, error } => {
                write!(f, "failed to connect to {addr}: {error}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

/// A `DISTCC_IO_TIMEOUT` that is not a positive number of seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTimeout(pub String);

impl fmt::Display for BadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bad DISTCC_IO_TIMEOUT value {:?}: expected a positive number of seconds",
            self.0
        )
    }
}

impl std::error::Error for BadTimeout {}

/// The per-wait network timeout: `DISTCC_IO_TIMEOUT` seconds, default 300.
pub fn io_timeout() -> Result<Duration, BadTimeout> {
    match std::env::var("DISTCC_IO_TIMEOUT") {
        Err(_) => Ok(DEFAULT_IO_TIMEOUT),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
            _ => Err(BadTimeout(v)),
        },
    }
}

/// Connects to `host:port`, trying each address in turn.
pub fn connect(host: &str, port: u16, io_timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|error| ConnectError::Resolve {
            host: host.to_string(),
            error,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                // Whole packets are written at once; Nagle would only delay the last one.
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(io_timeout))
                    .and_then(|_| s.set_write_timeout(Some(io_timeout)))
                    .map_err(|error| ConnectError::Connect {
                        addr: addr.to_string(),
                        error,
                    })?;
                return Ok(s);
            }
            Err(error) => {
                last = Some(ConnectError::Connect {
                    addr: addr.to_string(),
                    error,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Resolve {
        host: host.to_string(),
        error: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    }))
}
