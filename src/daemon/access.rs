//! Who may connect to the daemon: the `--allow ADDR[/BITS]` list, IPv4 and IPv6, with
//! IPv4-mapped IPv6 clients matched against IPv4 entries. A host name is resolved once, at
//! start-up, into all its addresses (`resolve`).
//!
//! This module only answers "is this address allowed"; the daemon closes the connection.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::str::FromStr;

/// One `--allow` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    addr: IpAddr,
    bits: u8,
}

/// A malformed `--allow` value, or a host name that does not resolve (and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAllow(pub String, pub Option<String>);

impl fmt::Display for BadAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.1 {
            None => write!(
                f,
                "bad --allow value \"{}\": expected an IPv4 or IPv6 address or a host name, \
                 optionally with /BITS",
                self.0
            ),
            Some(why) => write!(
                f,
                "cannot resolve --allow host name \"{}\": {why}; give an address instead, or \
                 fix the name",
                self.0
            ),
        }
    }
}

impl std::error::Error for BadAllow {}

impl FromStr for Allow {
    type Err = BadAllow;

    fn from_str(s: &str) -> Result<Allow, BadAllow> {
        let bad = || BadAllow(s.to_string(), None);
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(bad());
        }
        Ok(Allow { addr, bits })
    }
}

/// The entries of one `--allow` value: an address, or every address a host name resolves
/// to now. A `/BITS` after a name applies to its IPv4 addresses when BITS is 32 or less,
/// else to its IPv6 addresses; the name's other addresses are allowed one by one, so that a
/// mask meant for one family never opens a range of the other.
pub fn resolve(spec: &str) -> Result<Vec<Allow>, BadAllow> {
    if let Ok(allow) = spec.parse::<Allow>() {
        return Ok(vec![allow]);
    }
    let bad = |why: Option<String>| BadAllow(spec.to_string(), why);
    let (name, bits) = match spec.split_once('/') {
        Some((n, b)) => (n, Some(b.parse::<u8>().map_err(|_| bad(None))?)),
        None => (spec, None),
    };
    let plausible = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !plausible || name.parse::<IpAddr>().is_ok() || bits.is_some_and(|b| b > 128) {
        return Err(bad(None));
    }
    let addrs = (name, 0)
        .to_socket_addrs()
        .map_err(|e| bad(Some(e.to_string())))?;
    let mut list: Vec<Allow> = Vec::new();
    for addr in addrs.map(|a| a.ip()) {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) if (b <= 32) == addr.is_ipv4() => b,
            _ => max,
        };
        let allow = Allow { addr, bits };
        if !list.contains(&allow) {
            list.push(allow);
        }
    }
    if list.is_empty() {
        return Err(bad(Some("no addresses".into())));
    }
    Ok(list)
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// The private ranges of `--allow-private`, loopback of both families included (distcc
/// 3.4 forgets `::1`).
pub const PRIVATE: &[&str] = &[
    "192.168.0.0/16",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "127.0.0.0/8",
    "fe80::/10",
    "fc00::/7",
    "::1/128",
];

fn prefix_matches(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

impl Allow {
    pub fn matches(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, client) {
            (IpAddr::V4(a), IpAddr::V4(c)) => prefix_matches(&a.octets(), &c.octets(), self.bits),
            (IpAddr::V6(a), IpAddr::V6(c)) => prefix_matches(&a.octets(), &c.octets(), self.bits),
            _ => false,
        }
    }
}

/// True when `client` matches one of `list`.
pub fn allowed(list: &[Allow], client: IpAddr) -> bool {
    list.iter().any(|a| a.matches(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(list: &[&str], client: &str) -> bool {
        let list: Vec<Allow> = list.iter().map(|s| s.parse().unwrap()).collect();
        allowed(&list, client.parse().unwrap())
    }

    #[test]
    fn matching() {
        assert!(ok(&["127.0.0.1"], "127.0.0.1"));
        assert!(!ok(&["127.0.0.1"], "127.0.0.2"));
        assert!(ok(&["10.0.0.0/8"], "10.200.3.4"));
        assert!(ok(&["172.16.0.0/12"], "172.31.255.1"));
        assert!(!ok(&["172.16.0.0/12"], "172.32.0.1"));
        assert!(ok(&["127.0.0.0/8"], "::ffff:127.0.0.5"));
        assert!(ok(&["::1"], "::1"));
        assert!(!ok(&["::1"], "127.0.0.1"));
        assert!(ok(&["0.0.0.0/0"], "192.0.2.1"));
        assert!(ok(PRIVATE, "::1"));
    }

    #[test]
    fn bad_values() {
        for bad in ["", "1.2.3", "1.2.3.4/33", "::1/129", "host", "1.2.3.4/x"] {
            assert!(bad.parse::<Allow>().is_err(), "{bad}");
        }
        for bad in [
            "",
            "1.2.3.4/33",
            "::1/129",
            "local host",
            "localhost/x",
            "a/200",
        ] {
            assert_eq!(resolve(bad).unwrap_err().1, None, "{bad}");
        }
        let err = resolve("no-such-host.invalid").unwrap_err();
        assert!(
            err.1.is_some() && err.to_string().contains("cannot resolve"),
            "{err}"
        );
    }

    #[test]
    fn host_names_resolve_to_all_their_addresses() {
        let list = resolve("localhost").unwrap();
        assert!(allowed(&list, "127.0.0.1".parse().unwrap()), "{list:?}");
        assert!(!allowed(&list, "127.0.0.2".parse().unwrap()), "{list:?}");
        // A mask for IPv4 widens only the IPv4 addresses.
        let list = resolve("localhost/8").unwrap();
        assert!(allowed(&list, "127.1.2.3".parse().unwrap()), "{list:?}");
        assert!(list.iter().all(|a| a.addr.is_ipv4() || a.bits == 128));
        assert_eq!(resolve("127.0.0.1/8").unwrap().len(), 1);
    }
}
