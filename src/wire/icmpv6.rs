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

use std::net::Ipv6Addr;

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
    let mut ra = vec![0u8; RA_LEN];
    ra[0] = ROUTER_ADVERTISEMENT;
    // code, checksum (kernel), cur hop limit 0 (unspecified), flags, router
    // lifetime, reachable time 0, retrans timer 0.
    ra[16] = 1; // source link-layer address
    ra[17] = 1; // length in units of 8 bytes
    ra[18..24].copy_from_slice(&mac);
    if let Some(m) = managed {
        ra[5] = 0x80 | 0x40; // M, O
        ra[6..8].copy_from_slice(&m.router_lifetime.to_be_bytes());
        if let Some((prefix, len)) = m.prefix {
            let mut p = [0u8; PREFIX_LEN];
            p[0] = 3; // prefix information
            p[1] = 4; // 32 bytes
            p[2] = len;
            p[3] = 0x80; // on-link; not autonomous
            p[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // valid: infinite
            p[8..12].copy_from_slice(&u32::MAX.to_be_bytes()); // preferred
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            p[16..32].copy_from_slice(&(u128::from(prefix) & mask).to_be_bytes());
            ra.extend_from_slice(&p);
        }
    }
    ra
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
}
