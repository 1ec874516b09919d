//! The two NDP messages (RFC 4861) a boot server needs: a router solicitation
//! is recognised, and a router advertisement that says "no router here" is
//! written (router lifetime 0, no prefix, no M/O flags), which ends iPXE's IPv6
//! autoconfiguration at once instead of after its ~15 s of unanswered
//! solicitations. The kernel fills in the ICMPv6 checksum of a raw socket.

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// Bytes of the advertisement: the 16-byte header and a source link-layer
/// address option.
pub const RA_LEN: usize = 24;

/// A router advertisement from `mac` that advertises no default router, no
/// prefix and no DHCPv6 (M and O clear).
pub fn no_router_advertisement(mac: [u8; 6]) -> [u8; RA_LEN] {
    let mut ra = [0u8; RA_LEN];
    ra[0] = ROUTER_ADVERTISEMENT;
    // code, checksum (kernel), cur hop limit 0 (unspecified), flags 0, router
    // lifetime 0, reachable time 0, retrans timer 0: all zero.
    ra[16] = 1; // source link-layer address
    ra[17] = 1; // length in units of 8 bytes
    ra[18..24].copy_from_slice(&mac);
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
        let ra = no_router_advertisement([2, 0, 0, 0, 0, 9]);
        assert_eq!(kind(&ra), Some(ROUTER_ADVERTISEMENT));
        assert_eq!(&ra[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(ra[5] & 0xc0, 0, "no M/O flags");
        assert_eq!(&ra[16..], &[1, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(kind(&[]), None);
    }
}
