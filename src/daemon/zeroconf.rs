//! `--zeroconf`: the daemon announces itself over mDNS/DNS-SD the way distcc 3.4 does, so
//! that clients with `+zeroconf` in their host list (3.4's and ours) find it: service
//! `_distcc._tcp`, instance `distcc@HOSTNAME`, 3.4's TXT records (`txtvers`, `cpus`,
//! `jobs`, `distcc`, `gnuhost`, `cc_version`, `cc_machine`) and the subtype its clients
//! browse for, named after `cc`'s target and version.
//!
//! As 3.4, only over IPv4: a browser given an IPv6 link-local address would write it
//! without its scope, which no host list can use. Unlike 3.4, a daemon that `--listen`s on
//! one address announces that address only (and nothing for a loopback address, which
//! would send other machines' jobs to themselves), and a stopping daemon says goodbye, so
//! that browsers drop it at once instead of when its records expire.
//!
//! The mDNS protocol (probing, answering, announcing) is the `mdns-sd` crate's; it shares
//! UDP port 5353 with an Avahi daemon on the same host.

use std::net::IpAddr;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

use crate::farm::zeroconf::{cc_identity, subtype, SERVICE};

/// The announcement of this daemon, withdrawn by [`Announcement::stop`].
pub struct Announcement {
    mdns: ServiceDaemon,
    fullname: String,
}

impl Announcement {
    /// Announces a daemon on `port`, reachable at `listen` (every IPv4 address when it is
    /// the unspecified address), that runs up to `jobs` jobs.
    pub fn start(port: u16, listen: IpAddr, jobs: usize) -> Result<Announcement, String> {
        if listen.is_loopback() {
            return Err(format!(
                "it listens on {listen}, which no other machine can reach (nothing announced)"
            ));
        }
        let host = nix::unistd::gethostname()
            .map_err(|e| format!("cannot get the host name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let identity = cc_identity();
        let mut txt = vec![
            ("txtvers", "1".to_string()),
            ("cpus", cpus.to_string()),
            ("jobs", jobs.to_string()),
            // The behaviour and protocols served; our own version beside it.
            ("distcc", "3.4".to_string()),
            ("distcc-rs", env!("CARGO_PKG_VERSION").to_string()),
            ("gnuhost", crate::gnu_host()),
        ];
        let ty = match &identity {
            Some((version, machine)) => {
                txt.push(("cc_version", version.clone()));
                txt.push(("cc_machine", machine.clone()));
                subtype(version, machine)
            }
            None => {
                log::warn!(
                    "cannot ask cc for its version and target: announcing without the \
                     subtype that distcc clients browse for"
                );
                SERVICE.to_string()
            }
        };
        let address = Some(listen).filter(|a| !a.is_unspecified());
        if let Some(IpAddr::V6(a)) = address {
            return Err(format!(
                "--zeroconf announces IPv4 addresses only, and --listen {a} is IPv6"
            ));
        }
        let addresses: Vec<IpAddr> = address.into_iter().collect();
        let info = ServiceInfo::new(
            &format!("{ty}.local."),
            &format!("distcc@{host}"),
            // A host name of our own, not the machine's: Avahi publishes the machine's
            // with its IPv6 link-local addresses too, and a 3.4 client that resolved ours
            // through it could write one of those, which no client can connect to.
            &format!("distcc-{host}.local."),
            addresses.as_slice(),
            port,
            txt.as_slice(),
        )
        .map_err(|e| e.to_string())?;
        let mut info = if address.is_none() {
            info.enable_addr_auto()
        } else {
            info
        };
        // Addresses of the IPv4 interfaces only: an AAAA record beside the A record would
        // let a browser (3.4's, through Avahi) pick a link-local address it cannot use.
        info.set_interfaces(vec![IfKind::IPv4]);
        let fullname = info.get_fullname().to_string();
        let mdns = ServiceDaemon::new().map_err(|e| e.to_string())?;
        mdns.disable_interface(IfKind::IPv6)
            .map_err(|e| e.to_string())?;
        mdns.register(info).map_err(|e| e.to_string())?;
        let at = address.map_or("every IPv4 address".to_string(), |a| a.to_string());
        log::info!("announcing {fullname} over mDNS: {at}, port {port}, {jobs} jobs, {ty}");
        Ok(Announcement { mdns, fullname })
    }

    /// Says goodbye, so that browsers drop this daemon now.
    pub fn stop(self) {
        if let Ok(done) = self.mdns.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.mdns.shutdown();
    }
}
