//! Zeroconf: `+zeroconf` in the host list and `distccd --zeroconf`, with distcc 3.4 at the
//! other end both ways.
//!
//! The first test needs no network: another process holds the browser's lock, as a running
//! browser does, and both clients read the host file it keeps. The others run in two network
//! namespaces joined by a veth pair (10.77.x.1 and 10.77.x.2, no other address), each with
//! its own mount and UTS namespace, host name, D-Bus system bus and Avahi daemon (distcc
//! 3.4 publishes and browses through Avahi over D-Bus); they need root, and every process
//! they start is in those namespaces, killed with them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{
    output_within, require_distcc_34, show, DISTCCD_34, DISTCC_34, OUR_DISTCC, OUR_DISTCCD,
};

/// Holds the zeroconf lock under `dir` from another process (fcntl locks are per process),
/// as a running browser does, until killed.
fn hold_browser_lock(dir: &Path) -> Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\n\
             f=open(sys.argv[1],'r+'); fcntl.lockf(f,fcntl.LOCK_EX)\n\
             print('locked',flush=True); time.sleep(60)",
        ])
        .arg(dir.join("zeroconf/lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    child
}

fn show_hosts(program: &str, dir: &Path, list: &str) -> (String, i32) {
    let out = output_within(
        Command::new(program)
            .arg("--show-hosts")
            .env("DISTCC_DIR", dir)
            .env("DISTCC_HOSTS", list),
        30,
    );
    let code = out.status.code().unwrap_or(-1);
    (String::from_utf8(out.stdout).unwrap(), code)
}

#[test]
fn a_browsers_host_file_is_read_as_3_4_reads_it() {
    require_distcc_34();
    let dir = tempfile::tempdir().unwrap();
    let zc = dir.path().join("zeroconf");
    std::fs::create_dir(&zc).unwrap();
    std::fs::write(zc.join("lock"), "").unwrap();
    let hosts = zc.join("hosts");
    std::fs::write(&hosts, "10.1.1.1:3632/5\n[fd00::5]:4000/2\n").unwrap();
    let mut browser = hold_browser_lock(dir.path());
    // An access time from long ago: the read must mark the file.
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&hosts)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_accessed(old))
        .unwrap();
    for list in ["a +zeroconf b", "+zeroconf", "+zeroconf localhost/3"] {
        let ours = show_hosts(OUR_DISTCC, dir.path(), list);
        assert_eq!(ours, show_hosts(DISTCC_34, dir.path(), list), "{list}");
        assert!(
            ours.0.contains("10.1.1.1:3632/5\n[fd00::5]:4000/2\n"),
            "{ours:?}"
        );
    }
    let read = std::fs::metadata(&hosts).unwrap().accessed().unwrap();
    assert!(
        read > old + Duration::from_secs(3000),
        "the file was not marked read"
    );
    // No daemon found: the other hosts are used; with none, the list is refused.
    std::fs::write(&hosts, "").unwrap();
    assert_eq!(
        show_hosts(OUR_DISTCC, dir.path(), "a +zeroconf b"),
        ("a\nb\n".to_string(), 0)
    );
    let out = output_within(
        Command::new(OUR_DISTCC)
            .arg("--show-hosts")
            .env("DISTCC_DIR", dir.path())
            .env("DISTCC_HOSTS", "+zeroconf"),
        30,
    );
    assert_eq!(out.status.code(), Some(106), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zeroconf/hosts contained no hosts; can't distribute work"),
        "{err}"
    );
    browser.kill().unwrap();
    browser.wait().unwrap();
}

/// The networks made so far by this process: each test gets its own /24.
static NETS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// One end of the two-namespace network: a network namespace and a process holding a
/// mount and UTS namespace of its own (a private `/run` with its D-Bus socket, a host
/// name), which commands enter.
struct Side {
    ns: String,
    holder: u32,
    /// `ip netns exec`, which became the holder.
    process: Child,
    address: String,
    host_name: String,
}

/// Two network namespaces joined by a veth pair, removed with everything in them on drop.
struct Lan {
    a: Side,
    b: Side,
    /// 10.77.NET.0/24.
    net: u8,
    work: tempfile::TempDir,
    namespaces: Namespaces,
}

/// Runs `program` with `args` and says whether it succeeded; panics with its output if
/// `must` and it did not.
fn sh(program: &str, args: &[&str], must: bool) -> bool {
    let out = output_within(Command::new(program).args(args), 30);
    assert!(
        !must || out.status.success(),
        "{program} {args:?}: {}",
        show(&out)
    );
    out.status.success()
}

impl Lan {
    /// Makes the network; with `avahi`, a D-Bus system bus and an Avahi daemon on each side.
    fn new(avahi: Avahi) -> Lan {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the zeroconf tests make network namespaces: run them as root"
        );
        for tool in ["ip", "unshare", "nsenter", "dbus-daemon", "avahi-daemon"] {
            assert!(
                sh("sh", &["-c", &format!("command -v {tool}")], false),
                "{tool} is missing: install iproute2, util-linux, dbus and avahi-daemon \
                 (scripts/test.sh does it as root)"
            );
        }
        let net = 1 + NETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("{}-{net}", std::process::id());
        let work = tempfile::tempdir().unwrap();
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let names = [format!("zcA-{id}"), format!("zcB-{id}")];
        // Removes the namespaces and all in them if the set-up fails half way.
        let guard = Namespaces(names.to_vec());
        for ns in &names {
            sh("ip", &["netns", "add", ns], true);
        }
        // Made inside the namespaces: the host's network never sees either end.
        sh(
            "ip",
            &[
                "link", "add", "veth0", "netns", &names[0], "type", "veth", "peer", "name",
                "veth0", "netns", &names[1],
            ],
            true,
        );
        let mut sides = names
            .iter()
            .zip(["a", "b"])
            .enumerate()
            .map(|(i, (ns, tag))| {
                let address = format!("10.77.{net}.{}", i + 1);
                sh("ip", &["-n", ns, "link", "set", "lo", "up"], true);
                sh(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("{address}/24"),
                        "dev",
                        "veth0",
                    ],
                    true,
                );
                sh("ip", &["-n", ns, "link", "set", "veth0", "up"], true);
                let host_name = format!("zc{tag}");
                let (process, holder) = start_holder(ns, &host_name, work.path(), avahi);
                Side {
                    ns: ns.clone(),
                    holder,
                    process,
                    address,
                    host_name,
                }
            });
        let (a, b) = (sides.next().unwrap(), sides.next().unwrap());
        // A link still settling (IPv6 duplicate address detection) is passed over by an mDNS
        // stack that starts then, until it next looks at the interfaces: wait it out, as a
        // machine's interfaces are settled before its daemons start.
        for ns in &names {
            assert!(
                common::wait_for(Duration::from_secs(10), || {
                    let out = Command::new("ip")
                        .args(["-n", ns, "-6", "addr", "show", "dev", "veth0"])
                        .output()
                        .unwrap();
                    let text = String::from_utf8_lossy(&out.stdout);
                    text.contains("inet6") && !text.contains("tentative")
                }),
                "the veth in {ns} did not settle"
            );
        }
        let lan = Lan {
            a,
            b,
            net,
            work,
            namespaces: guard,
        };
        if avahi != Avahi::None {
            for side in [&lan.a, &lan.b] {
                let log = lan
                    .work
                    .path()
                    .join(format!("{}.avahi.log", side.host_name));
                assert!(
                    common::wait_for(Duration::from_secs(20), || {
                        std::fs::read_to_string(&log)
                            .is_ok_and(|t| t.contains("Server startup complete"))
                    }),
                    "avahi-daemon did not start in {}: {}",
                    side.ns,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        lan
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// `program` run inside `side`'s namespaces, in the work directory.
    fn command(&self, side: &Side, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &side.holder.to_string(), "-n", "-m", "-u"])
            .arg(format!("--wd={}", self.dir().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Waits until something in `side` listens on TCP `port`.
    fn wait_listening(&self, side: &Side, port: u16) {
        let filter = format!("sport = :{port}");
        assert!(
            common::wait_for(Duration::from_secs(10), || {
                let out = output_within(self.command(side, "ss").args(["-Hltn", &filter]), 10);
                !out.stdout.is_empty()
            }),
            "nothing listens on port {port} in {}",
            side.ns
        );
    }
}

/// Network namespaces of a test, removed on drop with every process in them.
struct Namespaces(Vec<String>);

impl Namespaces {
    /// Kills everything started in the namespaces: holders, buses, Avahi, daemons,
    /// browsers.
    fn kill_all(&self) {
        for ns in &self.0 {
            for _ in 0..50 {
                let out = Command::new("ip").args(["netns", "pids", ns]).output();
                let pids = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                let pids: Vec<i32> = pids
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.kill_all();
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.namespaces.kill_all();
        for side in [&mut self.a, &mut self.b] {
            let _ = side.process.wait();
        }
    }
}

/// Whether and how each side runs Avahi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Avahi {
    /// No Avahi, no D-Bus.
    None,
    /// As Debian installs it (IPv4 and IPv6), on the veth only.
    AsInstalled,
    /// Over IPv4 only, publishing no IPv6 address: of a service whose host has both, 3.4's
    /// browser writes whichever address it resolves first, sometimes a link-local one
    /// without its scope, which no client can use (ours keeps the IPv4 address). Its own
    /// daemons' tests would fail by chance otherwise.
    Ipv4Only,
}

/// Starts the process that holds `ns`'s mount and UTS namespaces: a private `/run`, the
/// host name, and (as `avahi` says) a D-Bus system bus and an Avahi daemon that serve
/// only the veth. Returns the process and its pid (`ip netns exec` and `unshare` exec what
/// they run, but the pid is read from the holder itself).
fn start_holder(ns: &str, host_name: &str, work: &Path, avahi: Avahi) -> (Child, u32) {
    let conf = work.join(format!("{host_name}.avahi.conf"));
    let ipv6 = match avahi {
        Avahi::Ipv4Only => "use-ipv6=no\n",
        _ => "use-ipv6=yes\n",
    };
    let aaaa = match avahi {
        Avahi::Ipv4Only => "publish-aaaa-on-ipv4=no\n",
        _ => "",
    };
    std::fs::write(
        &conf,
        format!(
            "[server]\nhost-name={host_name}\nuse-ipv4=yes\n{ipv6}\
             allow-interfaces=veth0\nenable-dbus=yes\nratelimit-interval-usec=1000000\n\
             ratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n[publish]\n\
             publish-hinfo=no\npublish-workstation=no\n{aaaa}"
        ),
    )
    .unwrap();
    let pid_file = work.join(format!("{host_name}.holder.pid"));
    let script = r#"
        set -e
        mount -t tmpfs -o mode=0755 zc-run /run
        mkdir -p /run/dbus /run/avahi-daemon /run/lock
        hostname "$1"
        if [ "$4" = yes ]; then
            dbus-daemon --system --nofork --nopidfile >"$2/$1.dbus.log" 2>&1 &
            i=0
            until [ -S /run/dbus/system_bus_socket ] || [ $i -ge 200 ]; do
                sleep 0.05; i=$((i+1))
            done
            avahi-daemon -f "$3" --no-drop-root --no-chroot --no-rlimits \
                >"$2/$1.avahi.log" 2>&1 &
        fi
        echo $$ > "$2/$1.holder.pid.tmp"
        mv "$2/$1.holder.pid.tmp" "$2/$1.holder.pid"
        exec sleep 900
    "#;
    let process = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", script, "holder", host_name])
        .arg(work)
        .arg(&conf)
        .arg(if avahi == Avahi::None { "no" } else { "yes" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pid = None;
    assert!(
        common::wait_for(Duration::from_secs(20), || {
            pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            pid.is_some()
        }),
        "the holder of {ns} did not start"
    );
    (process, pid.unwrap())
}

/// A daemon in a side of the network, logging to the work directory.
struct Served {
    /// The daemon itself: `nsenter` runs it in its own process.
    process: Child,
    log: PathBuf,
    _whitelist: tempfile::TempDir,
}

impl Served {
    /// How many jobs the daemon has logged as compiled, once it logged one (the summary
    /// line follows the reply).
    fn compiled_ok(&self) -> usize {
        let count = || {
            std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .matches("COMPILE_OK")
                .count()
        };
        common::wait_for(Duration::from_secs(10), || count() > 0);
        count()
    }
}

impl Lan {
    /// Starts `program` (our distccd or 3.4's) in `side` with `--zeroconf` and 3 jobs, on
    /// port 3632 of every address.
    fn serve(&self, side: &Side, program: &str, name: &str) -> Served {
        let log = self.dir().join(format!("{name}.log"));
        let whitelist = common::whitelist_dir(&["gcc", "cc", "x86_64-linux-gnu-gcc"]);
        let mut cmd = self.command(side, program);
        cmd.args(["--daemon", "--no-detach", "--zeroconf", "--jobs", "3"])
            .args(["--allow", &format!("10.77.{}.0/24", self.net)])
            .args(["--log-file", log.to_str().unwrap(), "--log-level", "info"]);
        if program == OUR_DISTCCD {
            cmd.args(["--whitelist-dir", whitelist.path().to_str().unwrap()]);
        }
        let process = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.wait_listening(side, 3632);
        Served {
            process,
            log,
            _whitelist: whitelist,
        }
    }

    /// `program` (a distcc client) in side B with `+zeroconf` as its host list and `dir`
    /// as its distcc directory.
    fn client(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = self.command(&self.b, program);
        cmd.env("DISTCC_DIR", dir)
            .env("DISTCC_HOSTS", "+zeroconf")
            .env("DISTCC_FALLBACK", "0");
        cmd
    }

    /// What `program --show-hosts` lists in side B once it lists `expected` (bounded: a
    /// browser may need a few queries to hear a daemon that has just started).
    fn found(&self, program: &str, dir: &Path, expected: &str) -> String {
        std::fs::create_dir_all(dir).unwrap();
        let mut listed = String::new();
        let mut said = String::new();
        let found = common::wait_for(Duration::from_secs(20), || {
            let out = output_within(self.client(program, dir).arg("--show-hosts"), 20);
            listed = String::from_utf8_lossy(&out.stdout).into_owned();
            said = show(&out);
            listed.contains(expected)
        });
        if !found {
            eprintln!("{program} --show-hosts: {said}");
        }
        listed
    }

    /// Compiles a small source with `program` in side B, as a build would, and checks the
    /// object against a local compile of it.
    fn compile(&self, program: &str, dir: &Path, name: &str) {
        let src = self.dir().join(format!("{name}.c"));
        std::fs::write(&src, format!("int {name}(int x) {{ return x * 6 + 1; }}\n")).unwrap();
        let local = self.dir().join(format!("{name}.local.o"));
        let status = Command::new("gcc")
            .args(["-O2", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&local)
            .current_dir(self.dir())
            .status()
            .unwrap();
        assert!(status.success());
        let out = output_within(
            self.client(program, dir)
                .args(["gcc", "-O2", "-c", &format!("{name}.c"), "-o"])
                .arg(format!("{name}.o"))
                .env("DISTCC_VERBOSE", "1"),
            60,
        );
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(
            std::fs::read(self.dir().join(format!("{name}.o"))).unwrap(),
            std::fs::read(&local).unwrap(),
            "{name}.o differs from a local compile"
        );
    }

    /// Restarts `side`'s Avahi daemon, which forgets every record it heard.
    fn restart_avahi(&self, side: &Side) {
        let conf = self.dir().join(format!("{}.avahi.conf", side.host_name));
        let log = self.dir().join(format!("{}.avahi-2.log", side.host_name));
        let script = format!(
            "pid=$(cat /run/avahi-daemon/pid) && kill $pid && i=0 && \
             while [ -e /run/avahi-daemon/pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
             avahi-daemon -f {} --no-drop-root --no-chroot --no-rlimits >{} 2>&1 &",
            conf.display(),
            log.display()
        );
        let started = output_within(self.command(side, "sh").args(["-c", &script]), 20);
        assert!(started.status.success(), "{}", show(&started));
        assert!(
            common::wait_for(Duration::from_secs(20), || std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("Server startup complete"))),
            "avahi-daemon did not restart in {}",
            side.ns
        );
    }

    /// Line by line, what `avahi-browse` resolves in side B for `kind`: `=;veth0;IPv4;...`.
    fn avahi_browse(&self, kind: &str) -> Vec<String> {
        let mut lines = Vec::new();
        common::wait_for(Duration::from_secs(20), || {
            let out = output_within(
                self.command(&self.b, "avahi-browse")
                    .args(["-r", "-t", "-p", "-k", kind]),
                15,
            );
            lines = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("=;veth0;IPv4;"))
                .map(String::from)
                .collect();
            !lines.is_empty()
        });
        lines
    }
}

/// The subtype distcc 3.4 browses for with this machine's `cc`.
fn cc_subtype() -> String {
    let ask = |flag| {
        let out = Command::new("cc").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    distcc_rs::farm::zeroconf::subtype(&ask("-dumpversion"), &ask("-dumpmachine"))
}

/// A `cc` that says it is version 99, first on the `PATH` it returns.
fn other_cc(dir: &Path) -> String {
    let bin = dir.join("other-cc");
    std::fs::create_dir_all(&bin).unwrap();
    let cc = bin.join("cc");
    std::fs::write(
        &cc,
        "#!/bin/sh\n[ \"$1\" = -dumpversion ] && { echo 99; exit 0; }\nexec /usr/bin/cc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn distcc_3_4_finds_and_uses_our_announced_daemon() {
    require_distcc_34();
    // Avahi as installed: it publishes the host's name with its IPv6 addresses too.
    let lan = Lan::new(Avahi::AsInstalled);
    let ours = lan.serve(&lan.a, OUR_DISTCCD, "ours");
    let line = format!("{}:3632/3", lan.a.address);
    // What Avahi resolves: 3.4's records, under the subtype 3.4's clients browse for.
    let records = lan.avahi_browse(&cc_subtype());
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    let name = format!("distcc\\064{}", lan.a.host_name);
    for part in [
        name.as_str(),
        &format!("distcc-{}.local", lan.a.host_name),
        &format!(";{};3632;", lan.a.address),
        "\"txtvers=1\"",
        "\"jobs=3\"",
        "\"distcc=3.4\"",
        "\"gnuhost=x86_64-pc-linux-gnu\"",
        "\"cc_machine=",
        "\"cc_version=",
        "\"cpus=",
    ] {
        assert!(record.contains(part), "{part} not in {record}");
    }
    let dir = lan.dir().join("client-34");
    let listed = lan.found(DISTCC_34, &dir, &line);
    assert_eq!(listed, format!("{line}\n"));
    assert_eq!(
        std::fs::read_to_string(dir.join("zeroconf/hosts")).unwrap(),
        format!("{line}\n")
    );
    lan.compile(DISTCC_34, &dir, "with_34");
    assert_eq!(ours.compiled_ok(), 1);
    // Heard again by asking, long after the daemon's announcements: the records answer a
    // query for the subtype too.
    lan.restart_avahi(&lan.b);
    assert_eq!(lan.avahi_browse(&cc_subtype()), records);
    let dir = lan.dir().join("client-34-later");
    assert_eq!(lan.found(DISTCC_34, &dir, &line), format!("{line}\n"));
}

#[test]
fn we_find_and_use_the_daemon_distcc_3_4_announces() {
    require_distcc_34();
    let lan = Lan::new(Avahi::Ipv4Only);
    let theirs = lan.serve(&lan.a, DISTCCD_34, "theirs");
    let line = format!("{}:3632/3", lan.a.address);
    let (dir_34, dir) = (lan.dir().join("client-34"), lan.dir().join("client"));
    assert_eq!(lan.found(OUR_DISTCC, &dir, &line), format!("{line}\n"));
    lan.compile(OUR_DISTCC, &dir, "with_ours");
    assert_eq!(theirs.compiled_ok(), 1);
    // Our browser's file is 3.4's: the same line for the same daemon.
    assert_eq!(lan.found(DISTCC_34, &dir_34, &line), format!("{line}\n"));
    assert_eq!(
        std::fs::read_to_string(dir_34.join("zeroconf/hosts")).unwrap(),
        std::fs::read_to_string(dir.join("zeroconf/hosts")).unwrap()
    );
    // A client whose cc is another version finds no daemon, with either client: still
    // none after three seconds, well after the daemon was found above.
    let path = other_cc(lan.dir());
    for (program, name) in [(OUR_DISTCC, "other-ours"), (DISTCC_34, "other-34")] {
        let other = lan.dir().join(name);
        std::fs::create_dir(&other).unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let out = output_within(
                lan.client(program, &other)
                    .arg("--show-hosts")
                    .env("PATH", &path),
                30,
            );
            assert_eq!(out.stdout, b"", "{program}: {}", show(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("contained no hosts"), "{program}: {err}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn our_client_and_daemon_need_no_avahi_and_a_stopped_daemon_is_dropped() {
    let lan = Lan::new(Avahi::None);
    let ours = lan.serve(&lan.a, OUR_DISTCCD, "ours");
    let line = format!("{}:3632/3", lan.a.address);
    // Once the daemon has been heard (a browser of another user)...
    let first = lan.dir().join("first");
    assert_eq!(lan.found(OUR_DISTCC, &first, &line), format!("{line}\n"));
    // ...six clients at once, as a `make -j` starts them, with no browser yet: each starts
    // one, one of them wins, and every client gets the daemon (half of them log to a
    // file, which must not become the browser's).
    let dir = lan.dir().join("client");
    std::fs::create_dir(&dir).unwrap();
    let log = lan.dir().join("clients.log");
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let mut cmd = lan.client(OUR_DISTCC, &dir);
            cmd.arg("--show-hosts")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if i % 2 == 0 {
                cmd.env("DISTCC_LOG", &log);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{line}\n"),
            "{}",
            show(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("zeroconf/hosts")).unwrap(),
        format!("{line}\n")
    );
    assert_eq!(lan.found(OUR_DISTCC, &dir, &line), format!("{line}\n"));
    lan.compile(OUR_DISTCC, &dir, "alone");
    assert_eq!(ours.compiled_ok(), 1);
    // The farm view shows the daemons found.
    let view = output_within(
        lan.client(env!("CARGO_BIN_EXE_distccmon-text"), &dir)
            .arg("--hosts"),
        30,
    );
    let screen = String::from_utf8_lossy(&view.stdout);
    assert!(
        screen.contains("1 of 1 hosts answering") && screen.contains(&lan.a.address),
        "{}",
        show(&view)
    );
    // A stopping daemon says goodbye: the browser drops it long before its records expire.
    let mut ours = ours;
    let pid = nix::unistd::Pid::from_raw(ours.process.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    ours.process.wait().unwrap();
    let hosts = dir.join("zeroconf/hosts");
    assert!(
        common::wait_for(Duration::from_secs(10), || std::fs::read_to_string(&hosts)
            .is_ok_and(|t| t.is_empty())),
        "the stopped daemon is still listed: {:?}",
        std::fs::read_to_string(&hosts)
    );
}
