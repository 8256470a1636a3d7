//! TLS 1.3 between our client and our daemon, with pinned Ed25519 keys sent as raw public
//! keys (RFC 7250): no certificates, no authorities. Both ends always show a key and prove
//! they hold it; whether that key is the right one is decided by the lists in `keys` (the
//! client's known hosts, the daemon's authorised keys), not here: the client's verifier
//! compares the host's key with the pins it is given and remembers what it saw, so that a
//! refusal can name both; the daemon's accepts any well-signed key and leaves the verdict
//! to the daemon, which answers an unlisted key with a refusal the user can read.
//!
//! Inside TLS the classic protocol runs unchanged. A TLS connection starts with a
//! handshake record, whose first byte (0x16) no classic request starts with (`DIST`), which
//! is how one port serves both.
//!
//! The provider is ring: the measured handshakes are the fastest of those tried, and it
//! builds with a C compiler alone, where aws-lc needs cmake.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature_with_raw_key, CryptoProvider};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, DistinguishedName,
    Error, ServerConfig, ServerConnection, SignatureScheme,
};

use super::keys::{Fingerprint, KeyPair, PublicKey};

/// The first byte of a TLS connection: a handshake record.
pub const HANDSHAKE: u8 = 0x16;

/// The application protocol named in the handshake: the classic protocol inside TLS.
const ALPN: &[u8] = b"distcc";

/// How long a handshake may take, whatever the connection's own timeout: a client that
/// stalls it holds one of the daemon's workers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our key as TLS shows it.
fn certified(pair: &KeyPair) -> Result<Arc<CertifiedKey>, Error> {
    let der = PrivatePkcs8KeyDer::from(pair.pkcs8.clone());
    let signer = rustls::crypto::ring::sign::any_eddsa_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(pair.public.spki())],
        signer,
    )))
}

/// Checks that `key`, a raw public key, signed the handshake.
fn verify_signature(
    message: &[u8],
    key: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let spki = SubjectPublicKeyInfoDer::from(key.as_ref());
    verify_tls13_signature_with_raw_key(message, &spki, dss, &algorithms)
}

/// What both verifiers say alike: TLS 1.3 only, Ed25519 raw public keys only, and the
/// handshake's signature checked with the key shown.
macro_rules! raw_ed25519_keys {
    () => {
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            Err(Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            key: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_signature(message, key, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

/// The peer's key, once a handshake is done.
pub fn peer_key(conn: &rustls::CommonState) -> Option<PublicKey> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|der| PublicKey::from_spki(der))
}

fn not_ed25519() -> Error {
    Error::InvalidCertificate(CertificateError::BadEncoding)
}

/// The daemon's view of client keys: any Ed25519 key that signs the handshake.
#[derive(Debug)]
struct AnyClientKey;

impl ClientCertVerifier for AnyClientKey {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        PublicKey::from_spki(end_entity).ok_or_else(not_ed25519)?;
        Ok(ClientCertVerified::assertion())
    }

    raw_ed25519_keys!();
}

/// The daemon's side: shows `pair`, asks every client for its key.
pub fn server_config(pair: &KeyPair) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClientKey))
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified(pair)?),
        ));
    config.alpn_protocols = vec![ALPN.to_vec()];
    // Every job is a connection of its own and our clients do not resume sessions: tickets
    // would be made and sent for nothing.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// The client's view of a host's key: one of `pins`, or, with none, any (trust on first
/// use). Keeps the key the host showed.
#[derive(Debug)]
pub struct HostKeyCheck {
    pins: Vec<Fingerprint>,
    seen: Mutex<Option<PublicKey>>,
}

impl HostKeyCheck {
    pub fn new(pins: Vec<Fingerprint>) -> Arc<HostKeyCheck> {
        Arc::new(HostKeyCheck {
            pins,
            seen: Mutex::new(None),
        })
    }

    /// The key the host showed, once it did.
    pub fn seen(&self) -> Option<PublicKey> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ServerCertVerifier for HostKeyCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let key = PublicKey::from_spki(end_entity).ok_or_else(not_ed25519)?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
        if self.pins.is_empty() || self.pins.contains(&key.fingerprint()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    raw_ed25519_keys!();
}

/// The client's side: shows `pair`, checks the host's key with `check`.
pub fn client_config(pair: &KeyPair, check: Arc<HostKeyCheck>) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(check)
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified(pair)?),
        ));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    // The host is known by its key; its name need not travel in the clear.
    config.enable_sni = false;
    Ok(config)
}

/// Runs a handshake over `io` to its end, or to `timeout`. What it leaves to send (the
/// client's Finished) is sent with `flush`; otherwise it leaves with the first data, in one
/// packet, which spares the daemon a wake-up.
fn handshake<C, S, T>(conn: &mut C, io: &mut T, timeout: Duration, flush: bool) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
    T: Read + Write,
{
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake took too long",
            ));
        }
        conn.complete_io(io)?;
    }
    while flush && conn.wants_write() {
        conn.write_tls(io)?;
    }
    Ok(())
}

/// A client's TLS connection to `name` over `sock`, its handshake done.
pub fn connect<T: Read + Write>(
    config: ClientConfig,
    name: &str,
    mut sock: T,
    timeout: Duration,
) -> io::Result<rustls::StreamOwned<ClientConnection, T>> {
    let server_name = ServerName::try_from(name.to_string())
        .unwrap_or_else(|_| ServerName::try_from("distccd").expect("a valid name"));
    let mut conn =
        ClientConnection::new(Arc::new(config), server_name).map_err(io::Error::other)?;
    handshake(&mut conn, &mut sock, timeout, false)?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// Sends `data` on a client's connection, with whatever the handshake left to send.
pub fn send<T: Read + Write>(
    stream: &mut rustls::StreamOwned<ClientConnection, T>,
    data: &[u8],
) -> io::Result<usize> {
    let n = stream.conn.writer().write(data)?;
    while stream.conn.wants_write() {
        stream.conn.write_tls(&mut stream.sock)?;
    }
    Ok(n)
}

/// A daemon's TLS connection over `sock`, its handshake done.
pub fn accept<T: Read + Write>(
    config: Arc<ServerConfig>,
    mut sock: T,
) -> io::Result<rustls::StreamOwned<ServerConnection, T>> {
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    handshake(&mut conn, &mut sock, HANDSHAKE_TIMEOUT, true)?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// The TLS error behind `e`, if it is one.
pub fn tls_error(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(dir: &std::path::Path, name: &str) -> KeyPair {
        KeyPair::generate(&dir.join(name), "test").unwrap()
    }

    /// One exchange over loopback: the client sends "ping", the daemon answers "pong" and
    /// reports the client's key.
    fn exchange(
        server: &KeyPair,
        client: &KeyPair,
        pins: Vec<Fingerprint>,
    ) -> io::Result<PublicKey> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = server_config(server).unwrap();
        let daemon = std::thread::spawn(move || -> Option<PublicKey> {
            let (sock, _) = listener.accept().ok()?;
            let mut tls = accept(config, sock).ok()?;
            let mut got = [0u8; 4];
            tls.read_exact(&mut got).ok()?;
            assert_eq!(&got, b"ping");
            tls.write_all(b"pong").ok()?;
            tls.conn.send_close_notify();
            tls.flush().ok()?;
            peer_key(&tls.conn)
        });
        let check = HostKeyCheck::new(pins);
        let config = client_config(client, check.clone()).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        let result = connect(config, "127.0.0.1", sock, HANDSHAKE_TIMEOUT).and_then(|mut tls| {
            tls.write_all(b"ping")?;
            let mut got = Vec::new();
            tls.read_to_end(&mut got)?;
            assert_eq!(got, b"pong");
            Ok(())
        });
        assert_eq!(check.seen(), Some(server.public));
        let seen_by_daemon = daemon.join().unwrap();
        result.map(|()| seen_by_daemon.expect("the daemon saw a key"))
    }

    #[test]
    fn pinned_keys_let_a_connection_through_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = (pair(dir.path(), "s"), pair(dir.path(), "c"));
        // Pinned, and on first use: the daemon learns the client's key.
        assert_eq!(
            exchange(&server, &client, vec![server.public.fingerprint()]).unwrap(),
            client.public
        );
        assert_eq!(exchange(&server, &client, vec![]).unwrap(), client.public);
        // Another key than the pinned one: refused, with the key seen kept.
        let other = pair(dir.path(), "o");
        let e = exchange(&server, &client, vec![other.public.fingerprint()]).unwrap_err();
        assert!(matches!(
            tls_error(&e),
            Some(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ));
    }
}
