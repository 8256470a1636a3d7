//! GSS-API (Kerberos) mutual authentication as distcc 3.4 does it, before the classic
//! protocol on a connection: the client sends `*` and the daemon echoes it; context tokens
//! go both ways as `TLEN` packets (a 12-byte header, then the token) until both ends are
//! done, with mutual authentication, replay and sequence detection required; then the
//! daemon sends one byte, `y` if the client's principal may use it, `n` if not. Nothing is
//! encrypted: 3.4 authenticates and nothing more.
//!
//! The library is MIT Kerberos' `libgssapi_krb5.so.2`, opened when GSS-API is first used,
//! so that neither building nor running distcc needs it otherwise. Which principals a
//! daemon admits, and which hosts a client authenticates, is the caller's business.

use std::ffi::{c_int, c_void, CString};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::OnceLock;

use crate::wire::{self, Token};

/// The byte each end sends first.
pub const HANDSHAKE: u8 = b'*';
/// The daemon's verdict after the context is made.
pub const ACCESS: u8 = b'y';
pub const NO_ACCESS: u8 = b'n';

/// The packet that carries a context token.
const TLEN: Token = *b"TLEN";
/// The longest token accepted: a Kerberos AP-REQ with a large PAC is some tens of KiB.
const MAX_TOKEN: u32 = 1 << 20;

type OmUint32 = u32;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

impl Buffer {
    fn empty() -> Buffer {
        Buffer {
            length: 0,
            value: std::ptr::null_mut(),
        }
    }

    fn borrowing(bytes: &[u8]) -> Buffer {
        Buffer {
            length: bytes.len(),
            value: bytes.as_ptr() as *mut c_void,
        }
    }

    /// The bytes of a buffer the library filled.
    fn bytes(&self) -> &[u8] {
        if self.value.is_null() || self.length == 0 {
            return &[];
        }
        // SAFETY: the library filled `length` bytes at `value`, kept until released.
        unsafe { std::slice::from_raw_parts(self.value as *const u8, self.length) }
    }
}

#[repr(C)]
struct Oid {
    length: OmUint32,
    elements: *mut c_void,
}

type Name = *mut c_void;
type Context = *mut c_void;
type Credential = *mut c_void;

const MUTUAL: OmUint32 = 2;
const REPLAY: OmUint32 = 4;
const SEQUENCE: OmUint32 = 8;
const ANONYMOUS: OmUint32 = 0x40;
/// What both ends of distcc 3.4 require.
const REQUIRED: OmUint32 = MUTUAL | REPLAY | SEQUENCE;
const COMPLETE: OmUint32 = 0;
const CONTINUE_NEEDED: OmUint32 = 1;
const GSS_CODE: c_int = 1;
const MECH_CODE: c_int = 2;
const ACCEPT_ONLY: c_int = 2;

fn is_error(major: OmUint32) -> bool {
    major & 0xffff_0000 != 0
}

/// The library's functions and name types, found by name.
struct Library {
    import_name:
        unsafe extern "C" fn(*mut OmUint32, *mut Buffer, *const Oid, *mut Name) -> OmUint32,
    release_name: unsafe extern "C" fn(*mut OmUint32, *mut Name) -> OmUint32,
    release_buffer: unsafe extern "C" fn(*mut OmUint32, *mut Buffer) -> OmUint32,
    init_sec_context: unsafe extern "C" fn(
        *mut OmUint32,
        Credential,
        *mut Context,
        Name,
        *const Oid,
        OmUint32,
        OmUint32,
        *const c_void,
        *mut Buffer,
        *mut *const Oid,
        *mut Buffer,
        *mut OmUint32,
        *mut OmUint32,
    ) -> OmUint32,
    accept_sec_context: unsafe extern "C" fn(
        *mut OmUint32,
        *mut Context,
        Credential,
        *mut Buffer,
        *const c_void,
        *mut Name,
        *mut *const Oid,
        *mut Buffer,
        *mut OmUint32,
        *mut OmUint32,
        *mut Credential,
    ) -> OmUint32,
    delete_sec_context: unsafe extern "C" fn(*mut OmUint32, *mut Context, *mut Buffer) -> OmUint32,
    display_name:
        unsafe extern "C" fn(*mut OmUint32, Name, *mut Buffer, *mut *const Oid) -> OmUint32,
    display_status: unsafe extern "C" fn(
        *mut OmUint32,
        OmUint32,
        c_int,
        *const Oid,
        *mut OmUint32,
        *mut Buffer,
    ) -> OmUint32,
    acquire_cred: unsafe extern "C" fn(
        *mut OmUint32,
        Name,
        OmUint32,
        *const c_void,
        c_int,
        *mut Credential,
        *mut *mut c_void,
        *mut OmUint32,
    ) -> OmUint32,
    host_based_service: *const Oid,
    user_name: *const Oid,
}

// SAFETY: the pointers are to the library's code and constant name types, which live as
// long as the process (the library is never closed) and are never written.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

const LIBRARY: &str = "libgssapi_krb5.so.2";

impl Library {
    fn open() -> Result<Library, String> {
        /// A function pointer of type `F` at `address`.
        ///
        /// SAFETY: `F` must be the function pointer type of the code at `address`.
        unsafe fn function<F: Copy>(address: *mut c_void) -> F {
            std::mem::transmute_copy::<*mut c_void, F>(&address)
        }
        let name = CString::new(LIBRARY).expect("no NUL");
        // SAFETY: dlopen with a valid C string; the handle is kept for the process.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "cannot load {LIBRARY} (install MIT Kerberos' GSS-API library, Debian's \
                 libgssapi-krb5-2)"
            ));
        }
        let symbol = |name: &str| -> Result<*mut c_void, String> {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: a lookup in a library that stays open.
            let found = unsafe { libc::dlsym(handle, c.as_ptr()) };
            if found.is_null() {
                Err(format!("{LIBRARY} has no {name}"))
            } else {
                Ok(found)
            }
        };
        // SAFETY: each symbol is the MIT GSS-API function of that name, whose C signature
        // the field's type spells; the name types are `gss_OID` variables.
        unsafe {
            Ok(Library {
                import_name: function(symbol("gss_import_name")?),
                release_name: function(symbol("gss_release_name")?),
                release_buffer: function(symbol("gss_release_buffer")?),
                init_sec_context: function(symbol("gss_init_sec_context")?),
                accept_sec_context: function(symbol("gss_accept_sec_context")?),
                delete_sec_context: function(symbol("gss_delete_sec_context")?),
                display_name: function(symbol("gss_display_name")?),
                display_status: function(symbol("gss_display_status")?),
                acquire_cred: function(symbol("gss_acquire_cred")?),
                host_based_service: *(symbol("GSS_C_NT_HOSTBASED_SERVICE")? as *const *const Oid),
                user_name: *(symbol("GSS_C_NT_USER_NAME")? as *const *const Oid),
            })
        }
    }

    fn get() -> Result<&'static Library, GssError> {
        static LIB: OnceLock<Result<Library, String>> = OnceLock::new();
        LIB.get_or_init(Library::open)
            .as_ref()
            .map_err(|e| GssError::Library(e.clone()))
    }

    /// The library's words for a failed call.
    fn explain(&self, major: OmUint32, minor: OmUint32) -> String {
        let mut words = Vec::new();
        for (code, kind) in [(major, GSS_CODE), (minor, MECH_CODE)] {
            if code == 0 {
                continue;
            }
            let mut context = 0;
            loop {
                let (mut m, mut text) = (0, Buffer::empty());
                // SAFETY: a status code and a buffer the library fills and we release.
                let r = unsafe {
                    (self.display_status)(
                        &mut m,
                        code,
                        kind,
                        std::ptr::null(),
                        &mut context,
                        &mut text,
                    )
                };
                if r != COMPLETE {
                    break;
                }
                words.push(String::from_utf8_lossy(text.bytes()).into_owned());
                // SAFETY: releases the buffer just filled.
                unsafe { (self.release_buffer)(&mut m, &mut text) };
                if context == 0 {
                    break;
                }
            }
        }
        words.join("; ")
    }

    /// `name` in the library's form: as a host-based service (`service@host`) when it has
    /// an `@`, as a principal otherwise, as 3.4 imports them.
    fn import(&self, name: &str, host_based: bool) -> Result<OwnedName<'_>, GssError> {
        let mut buffer = Buffer::borrowing(name.as_bytes());
        let (mut minor, mut out) = (0, std::ptr::null_mut());
        let kind = if host_based {
            self.host_based_service
        } else {
            self.user_name
        };
        // SAFETY: the buffer borrows `name` for the call; the name is released on drop.
        let major = unsafe { (self.import_name)(&mut minor, &mut buffer, kind, &mut out) };
        if major != COMPLETE {
            return Err(GssError::Failed {
                what: format!("import the name {name}"),
                why: self.explain(major, minor),
            });
        }
        Ok(OwnedName {
            lib: self,
            name: out,
        })
    }
}

struct OwnedName<'a> {
    lib: &'a Library,
    name: Name,
}

impl OwnedName<'_> {
    /// The name as the library writes it (`user@REALM`); `None` when it cannot.
    fn text(&self) -> Option<String> {
        let (mut minor, mut text) = (0, Buffer::empty());
        // SAFETY: a name we hold and a buffer the library fills and we release.
        unsafe {
            let major =
                (self.lib.display_name)(&mut minor, self.name, &mut text, std::ptr::null_mut());
            let shown = String::from_utf8_lossy(text.bytes()).into_owned();
            (self.lib.release_buffer)(&mut minor, &mut text);
            (major == COMPLETE && !shown.is_empty()).then_some(shown)
        }
    }
}

impl Drop for OwnedName<'_> {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: releases a name the library made, once.
        unsafe { (self.lib.release_name)(&mut minor, &mut self.name) };
    }
}

struct OwnedContext<'a> {
    lib: &'a Library,
    context: Context,
}

impl Drop for OwnedContext<'_> {
    fn drop(&mut self) {
        if !self.context.is_null() {
            let mut minor = 0;
            // SAFETY: deletes a context the library made, once, without a token for the peer.
            unsafe {
                (self.lib.delete_sec_context)(&mut minor, &mut self.context, std::ptr::null_mut())
            };
        }
    }
}

/// Why authentication did not succeed.
#[derive(Debug)]
pub enum GssError {
    Library(String),
    Io(io::Error),
    /// The peer did not answer the handshake byte with its own.
    NoHandshake(Option<u8>),
    /// A call to the library failed: what it was doing, and the library's words.
    Failed {
        what: String,
        why: String,
    },
    /// Mutual authentication, replay or sequence detection was not granted.
    Flags,
    /// A token length that is none.
    BadToken(u32),
    /// The daemon does not admit this principal.
    Denied,
    /// The daemon closed the connection before its verdict.
    NoVerdict,
    /// The daemon answered with a refusal instead (ours, when it does not authenticate
    /// or serves only TLS): what it said.
    Refused(String),
}

impl GssError {
    /// Whether the trouble is with reaching the host (it went silent, or broke the
    /// connection), rather than a refusal or a problem here: such a host is backed off.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            GssError::Io(_) | GssError::NoHandshake(None) | GssError::NoVerdict
        )
    }
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GssError::Library(e) => write!(f, "{e}"),
            GssError::Io(e) => write!(f, "{e}"),
            GssError::NoHandshake(None) => write!(
                f,
                "no GSS-API handshake within {}s: does this host run distccd --auth?",
                ECHO_TIMEOUT.as_secs()
            ),
            GssError::NoHandshake(Some(b)) => write!(
                f,
                "no GSS-API handshake (got {:?} instead of '*'): does the other end \
                 authenticate?",
                *b as char
            ),
            GssError::Failed { what, why } => write!(f, "GSS-API: failed to {what}: {why}"),
            GssError::Flags => write!(
                f,
                "GSS-API: mutual authentication, replay or sequence detection not granted"
            ),
            GssError::BadToken(n) => write!(f, "GSS-API: malformed token length {n}"),
            GssError::Denied => write!(
                f,
                "access denied by the host: your principal may be blacklisted or not \
                 whitelisted there"
            ),
            GssError::NoVerdict => write!(
                f,
                "the host closed the connection before saying whether it admits you"
            ),
            GssError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for GssError {}

impl From<io::Error> for GssError {
    fn from(e: io::Error) -> Self {
        GssError::Io(e)
    }
}

fn read_byte(stream: &mut impl Read) -> Result<Option<u8>, GssError> {
    let mut b = [0u8; 1];
    match stream.read(&mut b)? {
        0 => Ok(None),
        _ => Ok(Some(b[0])),
    }
}

fn send_token(stream: &mut impl Write, token: &[u8]) -> Result<(), GssError> {
    let mut packet = wire::header(TLEN, token.len() as u32).to_vec();
    packet.extend_from_slice(token);
    stream.write_all(&packet)?;
    stream.flush()?;
    Ok(())
}

fn recv_token(stream: &mut impl Read) -> Result<Vec<u8>, GssError> {
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let len = wire::parse_header(&head, TLEN).map_err(|e| GssError::Io(io::Error::other(e)))?;
    if len == 0 || len > MAX_TOKEN {
        return Err(GssError::BadToken(len));
    }
    let mut token = vec![0; len as usize];
    stream.read_exact(&mut token)?;
    Ok(token)
}

/// The canonical name of the host at the other end of `sock`, found from its address as
/// distcc 3.4 finds it (so that a host listed by an alias or an address is authenticated
/// as itself).
pub fn peer_name(sock: &std::net::TcpStream) -> io::Result<String> {
    let addr = socket2::SockAddr::from(sock.peer_addr()?);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: an address of its stated length, and a buffer of the stated length that the
    // call fills with a NUL-terminated name.
    let rc = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast(),
            addr.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        // SAFETY: gai_strerror returns a static NUL-terminated message.
        let why = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(io::Error::other(format!(
            "no name for {}: {}",
            sock.peer_addr()?,
            why.to_string_lossy()
        )));
    }
    // SAFETY: the call wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// What follows each call of a context loop, on either side: the token the call made goes
/// to the peer (and is released), and the result says whether the context is complete,
/// with the protections distcc 3.4 requires.
fn step_done(
    lib: &Library,
    stream: &mut impl Write,
    (major, minor): (OmUint32, OmUint32),
    output: &mut Buffer,
    flags: OmUint32,
    what: impl FnOnce() -> String,
) -> Result<bool, GssError> {
    let token = output.bytes().to_vec();
    // SAFETY: releases the token the call made, once.
    unsafe { (lib.release_buffer)(&mut 0, output) };
    if is_error(major) {
        return Err(GssError::Failed {
            what: what(),
            why: lib.explain(major, minor),
        });
    }
    if !token.is_empty() {
        send_token(stream, &token)?;
    }
    if major & CONTINUE_NEEDED != 0 {
        return Ok(false);
    }
    if flags & REQUIRED != REQUIRED {
        return Err(GssError::Flags);
    }
    Ok(true)
}

/// The client's side, on a connection to the host whose canonical name is `host`: the
/// service principal is `$DISTCC_PRINCIPAL@host` (host-based) when `principal` is given,
/// else `host/host`, as 3.4 names it. Returns once the daemon said `y`.
pub fn authenticate(
    stream: &mut std::net::TcpStream,
    host: &str,
    principal: Option<&str>,
) -> Result<(), GssError> {
    let lib = Library::get()?;
    let target = match principal {
        Some(service) => lib.import(&format!("{service}@{host}"), true)?,
        None => lib.import(&format!("host/{host}"), false)?,
    };
    // A daemon that does not authenticate (distcc 3.4's without --auth) takes the `*` for
    // the start of a request and waits for the rest: the echo is waited for a while, not
    // for the whole I/O timeout. Long enough for a daemon whose workers are all busy.
    let io_timeout = stream.read_timeout()?;
    stream.set_read_timeout(Some(ECHO_TIMEOUT))?;
    stream.write_all(&[HANDSHAKE])?;
    let result = exchange(lib, stream, &target);
    stream.set_read_timeout(io_timeout)?;
    result
}

/// How long a client waits for the daemon's `*`, and for its verdict.
pub const ECHO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What follows the client's `*`: the daemon's, the context, the verdict.
fn exchange(
    lib: &Library,
    stream: &mut std::net::TcpStream,
    target: &OwnedName<'_>,
) -> Result<(), GssError> {
    let timed_out = |e: GssError| match e {
        GssError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            GssError::NoHandshake(None)
        }
        e => e,
    };
    match read_byte(stream).map_err(timed_out)? {
        Some(HANDSHAKE) => {}
        Some(b'E') => return Err(refusal(stream)),
        other => return Err(GssError::NoHandshake(other)),
    }
    let mut context = OwnedContext {
        lib,
        context: std::ptr::null_mut(),
    };
    let mut input: Option<Vec<u8>> = None;
    loop {
        let (mut minor, mut flags, mut output) = (0, 0, Buffer::empty());
        let mut given = match &input {
            Some(token) => Buffer::borrowing(token),
            None => Buffer::empty(),
        };
        // SAFETY: every pointer is to a local the call fills or reads; the output token is
        // released below.
        let major = unsafe {
            (lib.init_sec_context)(
                &mut minor,
                std::ptr::null_mut(),
                &mut context.context,
                target.name,
                std::ptr::null(),
                REQUIRED,
                0,
                std::ptr::null(),
                &mut given,
                std::ptr::null_mut(),
                &mut output,
                &mut flags,
                std::ptr::null_mut(),
            )
        };
        let what = || format!("authenticate to {}", target.text().unwrap_or_default());
        if step_done(lib, stream, (major, minor), &mut output, flags, what)? {
            break;
        }
        input = Some(recv_token(stream)?);
    }
    match read_byte(stream)? {
        Some(ACCESS) => Ok(()),
        Some(NO_ACCESS) => Err(GssError::Denied),
        _ => Err(GssError::NoVerdict),
    }
}

/// Our daemon's refusal, whose first byte was read: the rest of its `EMSG` packet.
fn refusal(stream: &mut impl Read) -> GssError {
    let mut head = [0u8; 12];
    head[0] = b'E';
    let text = stream
        .read_exact(&mut head[1..])
        .map_err(|e| e.to_string())
        .and_then(|()| wire::parse_header(&head, wire::EMSG).map_err(|e| e.to_string()))
        .and_then(|len| {
            let mut text = vec![0; (len as usize).min(4096)];
            stream.read_exact(&mut text).map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&text).into_owned())
        });
    match text {
        Ok(why) => GssError::Refused(why),
        Err(_) => GssError::NoHandshake(Some(b'E')),
    }
}

/// A daemon's credentials, to accept contexts with.
pub struct Acceptor {
    lib: &'static Library,
    credential: Credential,
    /// The principal they are for.
    pub principal: String,
}

// SAFETY: MIT's credential handles may be used from several threads at once (the library
// is thread-safe); this one is only read after it is made, and released at exit.
unsafe impl Send for Acceptor {}
unsafe impl Sync for Acceptor {}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Acceptor({})", self.principal)
    }
}

impl Acceptor {
    /// Credentials for `principal` (`$DISTCCD_PRINCIPAL`): a host-based service name when
    /// it has an `@`, a principal name otherwise, as 3.4 takes it; its keys come from the
    /// keytab (`KRB5_KTNAME`, else `/etc/krb5.keytab`).
    pub fn acquire(principal: &str) -> Result<Acceptor, GssError> {
        let lib = Library::get()?;
        let name = lib.import(principal, principal.contains('@'))?;
        let (mut minor, mut credential) = (0, std::ptr::null_mut());
        // SAFETY: a name we hold; the credential is kept for the daemon's life.
        let major = unsafe {
            (lib.acquire_cred)(
                &mut minor,
                name.name,
                0,
                std::ptr::null(),
                ACCEPT_ONLY,
                &mut credential,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if major != COMPLETE {
            return Err(GssError::Failed {
                what: format!("acquire credentials for {principal}"),
                why: lib.explain(major, minor),
            });
        }
        Ok(Acceptor {
            lib,
            credential,
            principal: principal.to_string(),
        })
    }

    /// The daemon's side, once the client's `*` was read: echoes it, accepts the client's
    /// context, and returns the client's principal (`user@REALM`). The verdict byte is the
    /// caller's to send.
    pub fn accept(&self, stream: &mut (impl Read + Write)) -> Result<String, GssError> {
        let lib = self.lib;
        stream.write_all(&[HANDSHAKE])?;
        stream.flush()?;
        let mut context = OwnedContext {
            lib,
            context: std::ptr::null_mut(),
        };
        loop {
            let token = recv_token(stream)?;
            let mut given = Buffer::borrowing(&token);
            let (mut minor, mut flags, mut output) = (0, 0, Buffer::empty());
            let mut client: Name = std::ptr::null_mut();
            // SAFETY: every pointer is to a local the call fills or reads; the output
            // token and the client's name are released below.
            let major = unsafe {
                (lib.accept_sec_context)(
                    &mut minor,
                    &mut context.context,
                    self.credential,
                    &mut given,
                    std::ptr::null(),
                    &mut client,
                    std::ptr::null_mut(),
                    &mut output,
                    &mut flags,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            let client = (!client.is_null()).then_some(OwnedName { lib, name: client });
            let what = || "accept the client's context".to_string();
            if step_done(lib, stream, (major, minor), &mut output, flags, what)? {
                // Anonymous contexts name no one a list could admit or refuse.
                if flags & ANONYMOUS != 0 {
                    return Err(GssError::Failed {
                        what: "accept the client's context".into(),
                        why: "the client is anonymous".into(),
                    });
                }
                return client.and_then(|c| c.text()).ok_or(GssError::Failed {
                    what: "name the client".into(),
                    why: "the library gave no name".into(),
                });
            }
        }
    }
}

/// A principal list (`--whitelist`, `--blacklist`): one name per line, without `@REALM`,
/// compared whole, as 3.4 compares them.
#[derive(Debug, Clone)]
pub struct PrincipalList {
    names: std::collections::HashSet<String>,
    pub admit_listed: bool,
}

impl PrincipalList {
    pub fn load(path: &std::path::Path, admit_listed: bool) -> io::Result<PrincipalList> {
        let text = std::fs::read_to_string(path)?;
        Ok(PrincipalList {
            names: text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            admit_listed,
        })
    }

    /// Whether `principal` (`user@REALM`) may use the daemon.
    pub fn admits(&self, principal: &str) -> bool {
        let user = principal.split('@').next().unwrap_or(principal);
        self.names.contains(user) == self.admit_listed
    }
}
