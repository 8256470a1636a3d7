//! Reaching a host: a TCP connection with distcc's timeouts (4 s to connect, tried on each
//! address the name resolves to; `DISTCC_IO_TIMEOUT`, default 300 s and read by the
//! configuration, for every later wait), TLS over it (`tls`, with the key files of `keys`),
//! or the pipes of an SSH process.
//!
//! This module knows nothing of the protocol spoken over the connection.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::logging::strerror;

pub mod gssapi;
pub mod keys;
pub mod tls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// Why a host could not be reached.
#[derive(Debug)]
pub enum ConnectError {
    Resolve {
        host: String,
        error: io::Error,
    },
    Connect {
        addr: String,
        error: io::Error,
    },
    /// The TLS handshake failed for another reason than the host's key.
    Tls {
        host: String,
        error: io::Error,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { host, error } => {
                write!(f, "failed to look up host \"{host}\": {}", strerror(error))
            }
            ConnectError::Connect { addr, error } if error.kind() == io::ErrorKind::TimedOut => {
                write!(f, "timeout while connecting to {addr}")
            }
            ConnectError::Connect { addr, error } => {
                write!(f, "failed to connect to {addr}: {}", strerror(error))
            }
            ConnectError::Tls { host, error }
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "timeout during the TLS handshake with {host}")
            }
            ConnectError::Tls { host, error } => write!(
                f,
                "TLS handshake with {host} failed: {} (does its distccd serve TLS? it needs \
                 --key)",
                strerror(error)
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

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

/// The program and arguments that reach a host over SSH, as distcc 3.4 builds them:
/// `ssh` (`$DISTCC_SSH` split on spaces; `ssh` when empty), `[-l USER] HOST COMMAND --inetd
/// --enable-tcp-insecure`, where COMMAND defaults to `distccd`. The daemon at the other
/// end serves one job on the pipes; the SSH login has already vouched for the user.
pub fn ssh_command(
    ssh: &[String],
    user: Option<&str>,
    host: &str,
    command: Option<&str>,
) -> Vec<String> {
    let mut argv = ssh.to_vec();
    if argv.is_empty() {
        argv.push("ssh".into());
    }
    if let Some(user) = user {
        argv.extend(["-l".into(), user.into()]);
    }
    argv.push(host.into());
    argv.push(command.unwrap_or("distccd").into());
    argv.extend(["--inetd".into(), "--enable-tcp-insecure".into()]);
    argv
}

/// A job's connection: a TCP stream, TLS over one, or the pipes of an SSH process.
pub enum Connection {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Ssh(SshPipe),
}

/// An SSH process whose stdin and stdout carry the protocol.
pub struct SshPipe {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::process::ChildStdout,
}

/// Starts `argv` (from [`ssh_command`]) with its stdin and stdout as the connection; its
/// stderr stays the user's, so that SSH can say what went wrong.
pub fn ssh(argv: &[String]) -> Result<Connection, ConnectError> {
    use std::process::{Command, Stdio};
    let fail = |error| ConnectError::Connect {
        addr: argv.join(" "),
        error,
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(fail(io::Error::other("no pipes to the ssh process")));
    };
    Ok(Connection::Ssh(SshPipe {
        child,
        stdin: Some(stdin),
        stdout,
    }))
}

impl Connection {
    /// Sends `head`, then the first `len` bytes of `file`: over TCP with
    /// sendfile, the header held back (`MSG_MORE`) to leave in the same packet as the
    /// start of the file.
    pub fn write_with_file(&mut self, head: &[u8], file: &File, len: u64) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => {
                let mut rest = head;
                while !rest.is_empty() {
                    let n = socket2::SockRef::from(&*s).send_with_flags(rest, libc::MSG_MORE)?;
                    rest = &rest[n..];
                }
                send_file(file, &*s, len)
            }
            // The file goes through our memory to be encrypted, in one write with the
            // header: records are then full.
            Connection::Tls(_) => {
                // In pieces, the header with the first: a large text is not held twice.
                use std::os::unix::fs::FileExt;
                const PIECE: u64 = 256 << 10;
                let mut data = head.to_vec();
                let mut offset = 0;
                while offset < len {
                    let n = PIECE.min(len - offset);
                    let start = data.len();
                    data.resize(start + n as usize, 0);
                    file.read_exact_at(&mut data[start..], offset)?;
                    io::Write::write_all(self, &data)?;
                    data.clear();
                    offset += n;
                }
                io::Write::write_all(self, &data)
            }
            Connection::Ssh(p) => {
                let stdin = p.stdin.as_ref().ok_or(io::ErrorKind::BrokenPipe)?;
                io::Write::write_all(&mut &*stdin, head)?;
                send_file(file, stdin, len)
            }
        }
    }
}

/// Sends exactly the first `len` bytes of `file` (whatever its position) into `out` with
/// sendfile: the kernel copies straight from the file's pages, the data never enters
/// our memory. Called by hand because std's `io::copy` will not use sendfile from a
/// file into a socket (the file could change while its pages wait in the socket
/// buffer; ours are private memory files and temporary files that no one writes
/// any more) and falls back to 8 KiB reads and writes.
fn send_file(file: &File, out: impl AsFd, len: u64) -> io::Result<()> {
    let mut offset: libc::off_t = 0;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        match nix::sys::sendfile::sendfile(&out, file, Some(&mut offset), chunk) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => left -= n as u64,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Connection {
    /// What the connection has moved so far as the kernel counts it: bytes sent (and
    /// acknowledged), bytes received, and the smoothed round-trip time in µs. `None` over
    /// SSH, whose pipes say nothing of the network.
    pub fn traffic(&self) -> Option<(u64, u64, u64)> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Connection::Tcp(s) => s.as_raw_fd(),
            Connection::Tls(s) => s.sock.as_raw_fd(),
            Connection::Ssh(_) => return None,
        };
        // SAFETY: getsockopt writes at most `len` bytes into a zeroed plain struct.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        // An older kernel fills less of the struct: its counts are not known then.
        let known = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
        (rc == 0 && len as usize >= known).then_some((
            info.tcpi_bytes_acked,
            info.tcpi_bytes_received,
            u64::from(info.tcpi_rtt),
        ))
    }
}

impl io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.read(buf),
            Connection::Tls(s) => s.read(buf),
            Connection::Ssh(p) => p.stdout.read(buf),
        }
    }
}

impl io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.write(buf),
            Connection::Tls(s) => tls::send(s, buf),
            Connection::Ssh(p) => match &mut p.stdin {
                Some(stdin) => stdin.write(buf),
                None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            },
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.flush(),
            Connection::Tls(s) => s.flush(),
            Connection::Ssh(p) => p.stdin.as_mut().map_or(Ok(()), |s| s.flush()),
        }
    }
}

impl Drop for SshPipe {
    fn drop(&mut self) {
        // End of input lets the daemon and ssh finish; a moment later, stop waiting.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A file of `n` bytes that are not all alike, positioned at its start.
    fn file_of(n: usize) -> (File, Vec<u8>) {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        // Left at its end: what is sent is read from the start all the same.
        file.write_all(&data).unwrap();
        (file, data)
    }

    #[test]
    fn header_and_file_arrive_whole_over_tcp_and_pipes() {
        let (file, data) = file_of(300_000);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            listener.accept().unwrap().0.read_to_end(&mut got).unwrap();
            got
        });
        let mut tcp = Connection::Tcp(connect("127.0.0.1", port, Duration::from_secs(5)).unwrap());
        tcp.write_with_file(b"HEAD", &file, data.len() as u64)
            .unwrap();
        drop(tcp);
        assert_eq!(reader.join().unwrap(), [b"HEAD".as_slice(), &data].concat());

        // `cat` stands in for ssh: what is written comes back. A short file is an error.
        let (file, data) = file_of(100_000);
        let mut pipe = ssh(&["cat".to_string()]).unwrap();
        pipe.write_with_file(b"HEAD", &file, data.len() as u64)
            .unwrap();
        let Connection::Ssh(p) = &mut pipe else {
            unreachable!()
        };
        drop(p.stdin.take());
        let mut got = Vec::new();
        p.stdout.read_to_end(&mut got).unwrap();
        assert_eq!(got, [b"HEAD".as_slice(), &data].concat());
        let (file, _) = file_of(10);
        let mut pipe = ssh(&["cat".to_string()]).unwrap();
        assert!(pipe.write_with_file(b"", &file, 11).is_err());
    }

    #[test]
    fn header_and_file_arrive_whole_over_tls() {
        let dir = tempfile::tempdir().unwrap();
        let server = keys::KeyPair::generate(&dir.path().join("s"), "s").unwrap();
        let client = keys::KeyPair::generate(&dir.path().join("c"), "c").unwrap();
        // Several pieces, the last a short one.
        let (file, data) = file_of(700_001);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = tls::server_config(&server).unwrap();
        let reader = std::thread::spawn(move || {
            let mut stream = tls::accept(config, listener.accept().unwrap().0).unwrap();
            let mut got = vec![0; 4 + 700_001];
            stream.read_exact(&mut got).unwrap();
            got
        });
        let check = tls::HostKeyCheck::new(vec![server.public.fingerprint()]);
        let config = tls::client_config(&client, check).unwrap();
        let sock = connect("127.0.0.1", addr.port(), Duration::from_secs(5)).unwrap();
        let stream = tls::connect(config, "127.0.0.1", sock, Duration::from_secs(5)).unwrap();
        let mut conn = Connection::Tls(Box::new(stream));
        conn.write_with_file(b"HEAD", &file, data.len() as u64)
            .unwrap();
        assert_eq!(reader.join().unwrap(), [b"HEAD".as_slice(), &data].concat());
    }
}
