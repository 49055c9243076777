//! SSRF protection: a destination address is checked at connect time, after DNS resolution,
//! so a public name that resolves to a private address is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A CIDR network from the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| "not an IP address")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| "bad prefix length")?,
            None => max,
        };
        if prefix > max {
            return Err("prefix length too long");
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a publicly routable unicast IPv4 address.
fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // includes 169.254.169.254 (cloud metadata)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Whether `ip` is a publicly routable unicast IPv6 address: inside global unicast
/// `2000::/3`, outside every special-purpose block there, and, for the forms that carry an
/// IPv4 address, only when that address is global too. Decided by "globally routable", not
/// by a list of known bad ranges: everything outside `2000::/3` (loopback, unspecified,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, discard-only
/// `100::/64`, unique local `fc00::/7`, link local `fe80::/10`, site local `fec0::/10`,
/// multicast) is refused.
fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if s[0] & 0xe000 != 0x2000 {
        return false; // not global unicast 2000::/3
    }
    match s[0] {
        // IETF protocol assignments 2001::/23: Teredo 2001::/32 (which embeds an IPv4
        // address), benchmarking, ORCHID, …; and documentation 2001:db8::/32.
        0x2001 if s[1] < 0x0200 || s[1] == 0x0db8 => false,
        // 6to4 2002::/16 carries an IPv4 address in bits 16..48: judged by it.
        0x2002 => is_global_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )),
        // Documentation 3fff::/20.
        0x3fff if s[1] < 0x1000 => false,
        _ => true,
    }
}

/// Whether a delivery may connect to `ip`: public addresses always, others only when an
/// allow-listed network contains them.
pub fn is_allowed(ip: IpAddr, allowed: &[Network]) -> bool {
    let ip = canonical(ip);
    let global = match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    };
    global || allowed.iter().any(|net| net.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_allowed(ip(bad), &[]), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "1.1.1.1",
        ] {
            assert!(is_allowed(ip(good), &[]), "{good} must be allowed");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_or_reach_internal_addresses_are_refused() {
        for bad in [
            "::127.0.0.1",                          // IPv4-compatible (deprecated)
            "::10.0.0.1",                           // IPv4-compatible, private
            "::8.8.8.8",                            // IPv4-compatible, even of a public address
            "2002:a00:1::",                         // 6to4 of 10.0.0.1
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::",                     // 6to4 of 169.254.169.254 (metadata)
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo (embeds an IPv4 address)
            "2001:2::1",                            // benchmarking
            "2001:db8::1",                          // documentation
            "3fff::1",                              // documentation
            "64:ff9b::a00:1",                       // NAT64 of 10.0.0.1
            "64:ff9b::808:808", // NAT64, even of a public address (local translator)
            "64:ff9b:1::1",     // local-use NAT64
            "100::1",           // discard-only
            "fec0::1",          // site local (deprecated)
            "fc00::1",          // unique local
            "ff02::1",          // multicast
            "5f00::1",          // outside 2000::/3 (SRv6 SIDs, unassigned)
            "::",               // unspecified
        ] {
            assert!(!is_allowed(ip(bad), &[]), "{bad} must be refused");
        }
        for good in [
            "2002:808:808::1", // 6to4 of 8.8.8.8
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
        ] {
            assert!(is_allowed(ip(good), &[]), "{good} must be allowed");
        }
        for bad in [
            "192.88.99.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "224.0.0.1",
        ] {
            assert!(!is_allowed(ip(bad), &[]), "{bad} must be refused");
        }
    }

    #[test]
    fn allow_list_opens_exactly_its_networks() {
        let allowed = [
            Network::parse("127.0.0.0/8").unwrap(),
            Network::parse("::1").unwrap(),
        ];
        assert!(is_allowed(ip("127.0.0.1"), &allowed));
        assert!(is_allowed(ip("127.9.9.9"), &allowed));
        assert!(is_allowed(ip("::ffff:127.0.0.1"), &allowed));
        assert!(is_allowed(ip("::1"), &allowed));
        assert!(!is_allowed(ip("10.0.0.1"), &allowed));
    }

    #[test]
    fn network_parsing() {
        assert!(Network::parse("10.0.0.0/8").is_ok());
        assert!(Network::parse("::/0").is_ok());
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope/8").is_err());
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }
}
