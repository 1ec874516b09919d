//! The two NDP messages (RFC 4861) a boot server needs: a router solicitation
//! is recognised, and a router advertisement is written. Without DHCPv6 it
//! says "no router here" (router lifetime 0, no prefix, no M/O flags), which
//! ends iPXE's IPv6 autoconfiguration at once instead of after its ~15 s of
//! unanswered solicitations. With DHCPv6 it sets M and O (addresses and
//! configuration come from DHCPv6) and carries the served prefix as on-link
//! but not for autoconfiguration (so clients reach the server's address on
//! the link, and take their address from DHCPv6 alone); the router lifetime
//! stays 0 unless a configuration asks for a default route. The kernel fills
//! in the ICMPv6 checksum of a raw socket.
//!
//! Another router's advertisement is read too ([`Advert`]), so that the log
//! can say what it tells the machines. Messages are framed with `pnet_packet`;
//! the options of a received one are walked here first, because an option
//! length of 0 or past the end makes the whole message invalid (RFC 4861
//! 4.6) and pnet's own walk would not stop there.

use std::net::Ipv6Addr;

use pnet_packet::icmpv6::ndp::{
    MutableRouterAdvertPacket, NdpOption, NdpOptionTypes, RouterAdvertFlags, RouterAdvertPacket,
};
use pnet_packet::icmpv6::Icmpv6Types;

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// Bytes of the advertisement without a prefix: the 16-byte header and a
/// source link-layer address option.
pub const RA_LEN: usize = 24;
/// Bytes of a prefix information option.
const PREFIX_LEN: usize = 32;

/// What DHCPv6 on the link makes the advertisement say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Managed {
    /// The served prefix, on-link (L set, A clear).
    pub prefix: Option<(Ipv6Addr, u8)>,
    /// Router lifetime in seconds (0: not a default router).
    pub router_lifetime: u16,
}

/// A router advertisement from `mac`: "no router, no prefix, no DHCPv6"
/// without `managed`; with it, M and O set and the prefix on-link.
pub fn router_advertisement(mac: [u8; 6], managed: Option<Managed>) -> Vec<u8> {
    // Options are 8-byte units; pnet's data is what follows type and length.
    let mut options = vec![NdpOption {
        option_type: NdpOptionTypes::SourceLLAddr,
        length: 1,
        data: mac.to_vec(),
    }];
    let (mut flags, mut lifetime) = (0, 0);
    if let Some(m) = managed {
        flags = RouterAdvertFlags::ManagedAddressConf | RouterAdvertFlags::OtherConf;
        lifetime = m.router_lifetime;
        if let Some((prefix, len)) = m.prefix {
            let mut d = vec![0u8; PREFIX_LEN - 2];
            d[0] = len;
            d[1] = ON_LINK; // not autonomous: addresses come from DHCPv6
            d[2..6].copy_from_slice(&u32::MAX.to_be_bytes()); // valid: infinite
            d[6..10].copy_from_slice(&u32::MAX.to_be_bytes()); // preferred
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            d[14..30].copy_from_slice(&(u128::from(prefix) & mask).to_be_bytes());
            options.push(NdpOption {
                option_type: NdpOptionTypes::PrefixInformation,
                length: 4,
                data: d,
            });
        }
    }
    let size = 16
        + options
            .iter()
            .map(|o| usize::from(o.length) * 8)
            .sum::<usize>();
    let mut ra = vec![0u8; size];
    // Code, checksum (the kernel's), hop limit 0 (unspecified), reachable
    // time and retrans timer 0 stay zero.
    if let Some(mut p) = MutableRouterAdvertPacket::new(&mut ra) {
        p.set_icmpv6_type(Icmpv6Types::RouterAdvert);
        p.set_flags(flags);
        p.set_lifetime(lifetime);
        p.set_options(&options);
    }
    ra
}

/// A prefix information option's L flag: the prefix is on the link.
const ON_LINK: u8 = 0x80;
/// ... and its A flag: hosts make their own address in it (SLAAC).
const AUTONOMOUS: u8 = 0x40;

/// What a router's advertisement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// M: addresses come from DHCPv6.
    pub managed: bool,
    /// O: other configuration comes from DHCPv6.
    pub other: bool,
    /// Seconds it is a default router for (0: none).
    pub router_lifetime: u16,
    /// Its prefixes: address, length, on-link, autonomous (SLAAC).
    pub prefixes: Vec<(Ipv6Addr, u8, bool, bool)>,
}

impl std::fmt::Display for Advert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "M {}, O {}, router lifetime {} s, prefixes [",
            u8::from(self.managed),
            u8::from(self.other),
            self.router_lifetime
        )?;
        for (i, (p, len, on_link, auto)) in self.prefixes.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let mut flags = String::new();
            if *on_link {
                flags.push('L');
            }
            if *auto {
                flags.push('A');
            }
            write!(f, "{sep}{p}/{len} {flags}")?;
        }
        f.write_str("]")
    }
}

/// Reads a router advertisement; None when `message` is not a valid one.
pub fn parse_advertisement(message: &[u8]) -> Option<Advert> {
    if message.len() < 16 || kind(message)? != ROUTER_ADVERTISEMENT || message[1] != 0 {
        return None;
    }
    let mut prefixes = Vec::new();
    let mut at = 16;
    while at < message.len() {
        let len = usize::from(*message.get(at + 1)?) * 8;
        if len == 0 || at + len > message.len() {
            return None;
        }
        let o = &message[at..at + len];
        if o[0] == NdpOptionTypes::PrefixInformation.0 && len == PREFIX_LEN {
            let prefix: [u8; 16] = o[16..32].try_into().ok()?;
            prefixes.push((
                Ipv6Addr::from(prefix),
                o[2],
                o[3] & ON_LINK != 0,
                o[3] & AUTONOMOUS != 0,
            ));
        }
        at += len;
    }
    let p = RouterAdvertPacket::new(message)?;
    Some(Advert {
        managed: p.get_flags() & RouterAdvertFlags::ManagedAddressConf != 0,
        other: p.get_flags() & RouterAdvertFlags::OtherConf != 0,
        router_lifetime: p.get_lifetime(),
        prefixes,
    })
}

/// The ICMPv6 type of a message, if it has one.
pub fn kind(message: &[u8]) -> Option<u8> {
    message.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertisement_says_no_router_and_carries_the_mac() {
        let ra = router_advertisement([2, 0, 0, 0, 0, 9], None);
        assert_eq!(ra.len(), RA_LEN);
        assert_eq!(kind(&ra), Some(ROUTER_ADVERTISEMENT));
        assert_eq!(&ra[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(ra[5] & 0xc0, 0, "no M/O flags");
        assert_eq!(&ra[16..], &[1, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(kind(&[]), None);
    }

    #[test]
    fn with_dhcpv6_it_sets_m_and_o_and_gives_the_prefix_on_link() {
        let managed = Managed {
            prefix: Some(("fd00:1::1".parse().unwrap(), 64)),
            router_lifetime: 0,
        };
        let ra = router_advertisement([2, 0, 0, 0, 0, 9], Some(managed));
        assert_eq!(ra.len(), RA_LEN + 32);
        assert_eq!(ra[5] & 0xc0, 0xc0, "M and O");
        assert_eq!(&ra[6..8], &[0, 0], "still no default router");
        let p = &ra[RA_LEN..];
        assert_eq!((p[0], p[1], p[2]), (3, 4, 64));
        assert_eq!(p[3], 0x80, "on-link, not autonomous");
        let prefix: Ipv6Addr = <[u8; 16]>::try_from(&p[16..32]).unwrap().into();
        assert_eq!(prefix, "fd00:1::".parse::<Ipv6Addr>().unwrap());
        let router = router_advertisement(
            [2; 6],
            Some(Managed {
                prefix: None,
                router_lifetime: 1800,
            }),
        );
        assert_eq!(router.len(), RA_LEN);
        assert_eq!(&router[6..8], &1800u16.to_be_bytes());
    }

    #[test]
    fn an_advertisement_reads_back_what_it_says() {
        let none = parse_advertisement(&router_advertisement([2; 6], None)).unwrap();
        assert_eq!(
            none,
            Advert {
                managed: false,
                other: false,
                router_lifetime: 0,
                prefixes: vec![],
            }
        );
        let managed = Managed {
            prefix: Some(("fd00:1::1".parse().unwrap(), 64)),
            router_lifetime: 600,
        };
        let ours = parse_advertisement(&router_advertisement([2; 6], Some(managed))).unwrap();
        assert_eq!(
            ours.to_string(),
            "M 1, O 1, router lifetime 600 s, prefixes [fd00:1::/64 L]"
        );
    }

    #[test]
    fn another_routers_slaac_advertisement_is_read_and_bad_ones_are_not() {
        // A typical router's: no M, a default route, an autonomous prefix,
        // an MTU option and an RDNSS (type 25, 3 units) beside it.
        let mut ra = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        ra.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        let mut p = vec![3, 4, 64, 0xc0];
        p.extend_from_slice(&86400u32.to_be_bytes());
        p.extend_from_slice(&14400u32.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&"2001:db8:7::".parse::<Ipv6Addr>().unwrap().octets());
        ra.extend_from_slice(&p);
        let mut rdnss = vec![25, 3, 0, 0, 0, 0, 0x0e, 0x10];
        rdnss.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
        ]);
        ra.extend_from_slice(&rdnss);
        let a = parse_advertisement(&ra).unwrap();
        assert_eq!(
            a.to_string(),
            "M 0, O 0, router lifetime 1800 s, prefixes [2001:db8:7::/64 LA]"
        );
        // An option of length 0, one past the end, a truncated header, a
        // solicitation: not advertisements to read.
        let mut zero = ra.clone();
        zero[17] = 0;
        assert_eq!(parse_advertisement(&zero), None);
        let mut over = ra.clone();
        over[17] = 200;
        assert_eq!(parse_advertisement(&over), None);
        assert_eq!(parse_advertisement(&ra[..12]), None);
        assert_eq!(parse_advertisement(&ra[..ra.len() - 1]), None);
        let mut rs = ra.clone();
        rs[0] = ROUTER_SOLICITATION;
        assert_eq!(parse_advertisement(&rs), None);
        // Every length of every byte pattern: no panic.
        for n in 0..ra.len() {
            for b in [0u8, 1, 31, 32, 255] {
                let mut m = ra[..n].to_vec();
                if n > 17 {
                    m[17] = b;
                }
                let _ = parse_advertisement(&m);
            }
        }
    }
}
