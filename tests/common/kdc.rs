//! Throwaway MIT Kerberos KDC on loopback, for GSS-API (`,auth`) tests.
//!
//! `Kdc::start()` builds a private realm (`DISTCC.TEST`) in a temp dir,
//! runs `krb5kdc -n` on 127.0.0.1:<ephemeral port> (TCP only), creates the
//! principals `host/localhost` (plus `host/<h_name>` if gethostbyaddr(127.0.0.1)
//! says something other than `localhost`), `alice` and `bob`, exports
//! keytabs, and fills a ticket cache for each user with `kinit -k`.
//! Nothing system-wide is read or written: every tool is pointed at the temp
//! dir through KRB5_CONFIG / KRB5_KDC_PROFILE / KRB5CCNAME / KRB5_KTNAME /
//! KRB5_CLIENT_KTNAME / KRB5RCACHEDIR. Dropping the `Kdc` kills the KDC and
//! removes the dir.
//!
//! Missing Kerberos tools are a hard failure (panic with the apt-get line),
//! not a skip: scripts/test.sh installs `krb5-kdc krb5-admin-server
//! krb5-user`. Callers that prefer to skip can check `Kdc::missing_tools()`
//! first.
//!
//! Permissions: distccd 3.4 (and anything mimicking it) started as root drops
//! to the `distccd`/`nobody` user *before* it acquires its GSS credentials and
//! opens its log file, so the temp dir is 0755, krb5.conf, the keytabs and the
//! black/white list files are 0644, and `scratch_dir()` / the replay-cache dir
//! are 1777. All of it is throwaway test material.
//!
//! Only std + tempfile.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REALM: &str = "DISTCC.TEST";
/// Users that get a principal, a keytab and a ticket cache.
pub const USERS: &[&str] = &["alice", "bob"];

const MASTER_PW: &str = "distcc-test-master-pw";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Kdc {
    child: Child,
    port: u16,
    /// What gethostbyaddr(127.0.0.1) returns here (h_name), i.e. the host
    /// part of the service principal a distcc 3.4 client asks for.
    service_host: String,
    // Last: dropped after `child` is killed in Drop::drop.
    dir: tempfile::TempDir,
}

/// Search PATH plus the sbin dirs (kdb5_util, kadmin.local and krb5kdc live
/// in /usr/sbin, which is not on every user's PATH).
fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "Kerberos test KDC: `{name}` not found. Install MIT Kerberos with \
             `DEBIAN_FRONTEND=noninteractive apt-get install -y krb5-kdc \
             krb5-admin-server krb5-user` (scripts/test.sh does this)"
        )
    })
}

/// A port that is free on 127.0.0.1 for TCP right now (racy by nature; the
/// caller retries if the bind later fails).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// gethostbyaddr(127.0.0.1)->h_name, the way distcc 3.4's client derives the
/// server principal. `getent hosts ADDR` goes through the same glibc NSS
/// call (gethostbyaddr), so it returns the same h_name.
pub fn loopback_h_name() -> String {
    let out = Command::new("getent")
        .args(["hosts", "127.0.0.1"])
        .output()
        .expect("run getent");
    let text = String::from_utf8_lossy(&out.stdout);
    let name = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string);
    name.unwrap_or_else(|| {
        panic!(
            "gethostbyaddr(127.0.0.1) finds no name (getent hosts 127.0.0.1 \
             printed {text:?}); distcc 3.4's ,auth client cannot work without \
             one: add `127.0.0.1 localhost` to /etc/hosts"
        )
    })
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("Kerberos test KDC: {what}: {e}"));
    if !out.status.success() {
        panic!(
            "Kerberos test KDC: {what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

impl Kdc {
    /// Tools `start()` needs that are not installed (empty when all are).
    pub fn missing_tools() -> Vec<&'static str> {
        ["krb5kdc", "kdb5_util", "kadmin.local", "kinit", "getent"]
            .into_iter()
            .filter(|t| find_tool(t).is_none())
            .collect()
    }

    /// Start the realm and KDC. Panics with a clear message if the MIT
    /// Kerberos tools are missing or the KDC does not come up.
    pub fn start() -> Kdc {
        let krb5kdc = tool("krb5kdc");
        let kdb5_util = tool("kdb5_util");
        let kadmin = tool("kadmin.local");
        tool("kinit");

        // The dir must be traversable by the user distccd drops to.
        let base = {
            let t = std::env::temp_dir();
            match fs::metadata(&t) {
                Ok(m) if m.permissions().mode() & 0o001 != 0 => t,
                _ => PathBuf::from("/tmp"),
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("distcc-kdc.")
            .tempdir_in(base)
            .expect("create KDC temp dir");
        set_mode(dir.path(), 0o755);
        let d = dir.path().to_path_buf();
        let rcache = d.join("rcache");
        fs::create_dir(&rcache).unwrap();
        set_mode(&rcache, 0o1777);
        fs::write(d.join("kadm5.acl"), "").unwrap();

        let service_host = loopback_h_name();
        let mut hosts = vec!["localhost".to_string()];
        if service_host != "localhost" {
            hosts.push(service_host.clone());
        }

        // Database: needs kdc.conf (for paths) but not the port yet.
        Self::write_configs(&d, 0);
        let env = Self::admin_env(&d);
        check(
            "kdb5_util create",
            Command::new(&kdb5_util)
                .envs(env.clone())
                .args(["-r", REALM, "-P", MASTER_PW, "create", "-s"])
                .stdin(Stdio::null())
                .output(),
        );

        // All principals and keytabs in one kadmin.local session (commands
        // on stdin). Each principal is exported exactly once: ktadd
        // re-randomizes keys, so a second export would invalidate the first.
        let mut script = String::new();
        let host_princs: Vec<String> = hosts.iter().map(|h| format!("host/{h}@{REALM}")).collect();
        for p in &host_princs {
            script += &format!("addprinc -randkey {p}\n");
        }
        script += &format!(
            "ktadd -k {} {}\n",
            d.join("server.keytab").display(),
            host_princs.join(" ")
        );
        for u in USERS {
            script += &format!("addprinc -randkey {u}@{REALM}\n");
            script += &format!(
                "ktadd -k {} {u}@{REALM}\n",
                d.join(format!("{u}.keytab")).display()
            );
        }
        let mut child = Command::new(&kadmin)
            .envs(env.clone())
            .args(["-r", REALM])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kadmin.local");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = check("kadmin.local", child.wait_with_output());
        // kadmin.local exits 0 even when a command fails: verify the results.
        for kt in std::iter::once("server".to_string()).chain(USERS.iter().map(|u| u.to_string())) {
            let p = d.join(format!("{kt}.keytab"));
            if fs::metadata(&p).map(|m| m.len() == 0).unwrap_or(true) {
                panic!(
                    "Kerberos test KDC: kadmin.local did not write {}:\n{}\n{}",
                    p.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            set_mode(&p, 0o644);
        }

        // KDC on a free port; retry if another process grabbed it first.
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            Self::write_configs(&d, port);
            let log = fs::File::create(d.join("krb5kdc.stderr")).unwrap();
            let mut child = Command::new(&krb5kdc)
                .envs(env.clone())
                .args(["-n", "-r", REALM])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn krb5kdc");
            match Self::wait_ready(&mut child, port) {
                Ok(()) => {
                    let kdc = Kdc {
                        child,
                        port,
                        service_host,
                        dir,
                    };
                    for u in USERS {
                        kdc.kinit(u);
                    }
                    return kdc;
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!(
                        "{e}\nkrb5kdc output: {}\nkdc.log: {}",
                        fs::read_to_string(d.join("krb5kdc.stderr")).unwrap_or_default(),
                        fs::read_to_string(d.join("kdc.log")).unwrap_or_default()
                    );
                }
            }
        }
        panic!("Kerberos test KDC did not start after {START_ATTEMPTS} attempts: {last_err}");
    }

    /// Poll (bounded) until the KDC accepts TCP connections on its port.
    fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("krb5kdc exited early: {st}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Connected: make sure it is our KDC and not a port thief.
                std::thread::sleep(Duration::from_millis(50));
                if child.try_wait().map_err(|e| e.to_string())?.is_none() {
                    return Ok(());
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "krb5kdc not listening on {addr} after {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_configs(d: &Path, port: u16) {
        // krb5.conf: read by every client, the daemon and the KDC.
        // - kdc = 127.0.0.1:PORT (1.20 does not accept a "tcp/" prefix);
        //   udp_preference_limit = 1 makes libkrb5 use TCP, as the KDC has
        //   no UDP listener.
        // - default_realm matters: DISTCCD_PRINCIPAL=host/localhost is
        //   imported as a user name and gets the default realm (Debian's
        //   /etc/krb5.conf says ATHENA.MIT.EDU).
        // - no DNS: dns_lookup_*, rdns, dns_canonicalize_hostname all off,
        //   qualify_shortname empty so "localhost" is never suffixed with a
        //   resolv.conf search domain.
        let krb5 = format!(
            "[libdefaults]\n\
             \tdefault_realm = {REALM}\n\
             \tdns_lookup_kdc = false\n\
             \tdns_lookup_realm = false\n\
             \trdns = false\n\
             \tdns_canonicalize_hostname = false\n\
             \tqualify_shortname = \"\"\n\
             \tudp_preference_limit = 1\n\
             \tticket_lifetime = 24h\n\
             [realms]\n\
             \t{REALM} = {{\n\
             \t\tkdc = 127.0.0.1:{port}\n\
             \t}}\n\
             [domain_realm]\n\
             \tlocalhost = {REALM}\n\
             \t.localhost = {REALM}\n"
        );
        // kdc.conf: TCP only, 127.0.0.1 only. kdc_listen = "" disables UDP
        // (leaving it unset would fall back to kdc_ports = 88,750 on all
        // addresses).
        let kdc = format!(
            "[kdcdefaults]\n\
             \tkdc_listen = \"\"\n\
             \tkdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n\
             \t{REALM} = {{\n\
             \t\tdatabase_name = {db}\n\
             \t\tkey_stash_file = {stash}\n\
             \t\tacl_file = {acl}\n\
             \t\tmax_life = 24h\n\
             \t}}\n\
             [logging]\n\
             \tkdc = FILE:{kdclog}\n\
             \tadmin_server = FILE:{adminlog}\n\
             \tdefault = FILE:{deflog}\n",
            db = d.join("principal").display(),
            stash = d.join("stash").display(),
            acl = d.join("kadm5.acl").display(),
            kdclog = d.join("kdc.log").display(),
            adminlog = d.join("kadmin.log").display(),
            deflog = d.join("krb5lib.log").display(),
        );
        fs::write(d.join("krb5.conf"), krb5).unwrap();
        fs::write(d.join("kdc.conf"), kdc).unwrap();
        set_mode(&d.join("krb5.conf"), 0o644);
    }

    fn admin_env(d: &Path) -> Vec<(String, String)> {
        vec![
            (
                "KRB5_CONFIG".into(),
                d.join("krb5.conf").display().to_string(),
            ),
            (
                "KRB5_KDC_PROFILE".into(),
                d.join("kdc.conf").display().to_string(),
            ),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", d.join("admin.ccache").display()),
            ),
            (
                "KRB5_KTNAME".into(),
                format!("FILE:{}", d.join("admin.keytab").display()),
            ),
        ]
    }

    /// (Re)fill `user`'s ticket cache from its keytab with kinit.
    pub fn kinit(&self, user: &str) {
        check(
            &format!("kinit {user}"),
            Command::new(tool("kinit"))
                .envs(self.client_env(user))
                .arg("-k")
                .arg("-t")
                .arg(self.keytab(user))
                .arg(format!("{user}@{REALM}"))
                .stdin(Stdio::null())
                .output(),
        );
    }

    pub fn realm(&self) -> &str {
        REALM
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }
    pub fn kdc_log(&self) -> String {
        fs::read_to_string(self.dir().join("kdc.log")).unwrap_or_default()
    }
    /// gethostbyaddr(127.0.0.1)->h_name (normally "localhost").
    pub fn service_host(&self) -> &str {
        &self.service_host
    }
    /// The server principal, `host/<h_name>@DISTCC.TEST`.
    pub fn service_principal(&self) -> String {
        format!("host/{}@{REALM}", self.service_host)
    }
    pub fn server_keytab(&self) -> PathBuf {
        self.dir().join("server.keytab")
    }
    pub fn keytab(&self, user: &str) -> PathBuf {
        assert!(
            USERS.contains(&user),
            "unknown test user {user:?}; have {USERS:?}"
        );
        self.dir().join(format!("{user}.keytab"))
    }
    pub fn ccache(&self, user: &str) -> PathBuf {
        self.dir().join(format!("{user}.ccache"))
    }

    /// Environment for a distcc client authenticating as `user` (alice/bob).
    /// KRB5_CLIENT_KTNAME lets libkrb5 get a fresh TGT by itself should the
    /// cache be missing or expired.
    pub fn client_env(&self, user: &str) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", self.ccache(user).display()),
            ),
            (
                "KRB5_CLIENT_KTNAME".into(),
                format!("FILE:{}", self.keytab(user).display()),
            ),
        ]
    }

    /// Environment for a client that has no Kerberos credentials at all
    /// (gss_init_sec_context fails: "No Kerberos credentials available").
    pub fn no_credentials_env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", self.dir().join("nobody.ccache").display()),
            ),
            (
                "KRB5_CLIENT_KTNAME".into(),
                format!("FILE:{}", self.dir().join("nobody.keytab").display()),
            ),
        ]
    }

    /// Environment for `distccd --auth`. DISTCCD_PRINCIPAL has no '@', so
    /// distccd 3.4 imports it as GSS_C_NT_USER_NAME -> host/<h>@DISTCC.TEST
    /// (needs default_realm from KRB5_CONFIG). "host@<h>" (host-based
    /// service form) works too; "host/<h>@DISTCC.TEST" does NOT (the '@'
    /// makes 3.4 import it as a host-based service name).
    pub fn daemon_env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            (
                "KRB5_KTNAME".into(),
                format!("FILE:{}", self.server_keytab().display()),
            ),
            (
                "KRB5RCACHEDIR".into(),
                self.dir().join("rcache").display().to_string(),
            ),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", self.dir().join("daemon.ccache").display()),
            ),
            (
                "DISTCCD_PRINCIPAL".into(),
                format!("host/{}", self.service_host),
            ),
        ]
    }

    /// Write a --whitelist/--blacklist file (principal names without
    /// @REALM, one per line), readable by the daemon's dropped-privilege user.
    pub fn write_list(&self, name: &str, principals: &[&str]) -> PathBuf {
        let p = self.dir().join(name);
        let mut s = String::new();
        for pr in principals {
            s += pr;
            s += "\n";
        }
        fs::write(&p, s).unwrap();
        set_mode(&p, 0o644);
        p
    }

    /// A world-writable (1777) dir under the KDC dir, e.g. for distccd's
    /// --log-file, which distccd opens after dropping root.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        fs::create_dir_all(&p).unwrap();
        set_mode(&p, 0o1777);
        p
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // self.dir (TempDir) is removed when the fields drop, after this.
    }
}
