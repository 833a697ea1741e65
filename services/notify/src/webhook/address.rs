//! Which addresses a webhook may reach. A tenant chooses the URL, so a
//! notifier that followed it anywhere would let a tenant probe and call the
//! operator's own network: the cloud metadata service (169.254.169.254),
//! databases on private addresses, admin ports on loopback (SSRF). Only
//! public addresses are reached, unless the operator allows a network
//! (`METERLINE_WEBHOOK_ALLOW_NETS`, e.g. `127.0.0.1/32` for local tests).
//!
//! The check is made on the addresses the name resolves to, at each
//! attempt, and the connection goes to those very addresses (a resolver
//! that filters, not a check before the client resolves again), so a DNS
//! answer that changes between check and connect cannot slip past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: the prefix is 0 to {max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(u32::from(net) as u128, u32::from(ip) as u128, 32, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is not public, or `None` if it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_private() => "private",
        // 169.254.169.254 is the metadata service of most clouds.
        _ if ip.is_link_local() => "link-local (cloud metadata)",
        // Carrier-grade NAT; Alibaba's metadata service is 100.100.100.200.
        _ if a == 100 && (64..128).contains(&b) => "shared address space",
        _ if a == 192 && b == 0 && ip.octets()[2] == 0 => "IETF protocol assignments",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if ip.is_documentation() => "documentation",
        _ if ip.is_multicast() || ip.is_broadcast() || a >= 240 => "multicast or reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        // fc00::/7, unique local (AWS's metadata service is fd00:ec2::254).
        _ if first & 0xfe00 == 0xfc00 => "unique local",
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        _ if ip.is_multicast() => "multicast",
        // NAT64 and 6to4 can embed any IPv4 address, private ones included.
        _ if first == 0x0064 && ip.segments()[1] == 0xff9b => "NAT64",
        _ if first == 0x2002 => "6to4",
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "documentation",
        _ => return None,
    })
}

/// The operator's exceptions to "public addresses only".
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<Net>,
}

impl AddressPolicy {
    pub fn allowing(allowed: Vec<Net>) -> Self {
        Self { allowed }
    }

    /// `Err(reason)` if a webhook may not connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            Some(_) if self.allowed.iter().any(|n| n.contains(ip)) => Ok(()),
            Some(why) => Err(format!("{ip} is a {why} address (allow it with METERLINE_WEBHOOK_ALLOW_NETS)")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_and_metadata_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            assert!(non_public(ip(a)).is_some(), "{a} must be refused");
            assert!(AddressPolicy::default().check(ip(a)).is_err(), "{a}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn the_operator_can_allow_a_network() {
        let policy = AddressPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]);
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check(ip("127.0.0.2")).is_err());
        assert!(policy.check(ip("10.200.1.1")).is_ok());
        assert!(policy.check(ip("169.254.169.254")).is_err());
        assert!(policy.check(ip("192.168.0.1")).unwrap_err().contains("private"));
    }

    #[test]
    fn networks_parse_and_bad_ones_say_why() {
        assert_eq!("::1".parse::<Net>().unwrap().prefix, 128);
        assert!("10.0.0.0/33".parse::<Net>().unwrap_err().contains("0 to 32"));
        assert!("example.com".parse::<Net>().is_err());
        assert!("0.0.0.0/0".parse::<Net>().unwrap().contains(ip("8.8.8.8")));
    }
}
