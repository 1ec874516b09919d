//! Links and reservations: a subnet's prefix and pool arithmetic (sizes
//! and walks that hold for a pool as large as the address space), the
//! hosts, and the server's DUID.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use super::Settings;

/// One link's addresses: its prefix and its pool (none: stateless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The link's prefix.
    pub prefix: Ipv6Addr,
    /// Its length.
    pub len: u8,
    /// Pool ranges, inclusive (empty: this link is served stateless).
    pub ranges: Vec<(Ipv6Addr, Ipv6Addr)>,
    /// Preferred lifetime of its addresses, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// Search domains (option 24).
    pub domains: Vec<String>,
}

impl Subnet {
    /// Whether `ip` lies in the link's prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.len.min(128)))
            .unwrap_or(0);
        u128::from(ip) & mask == u128::from(self.prefix) & mask
    }

    /// Whether `ip` lies in a pool range.
    pub fn in_ranges(&self, ip: Ipv6Addr) -> bool {
        let v = u128::from(ip);
        self.ranges
            .iter()
            .any(|(a, b)| (u128::from(*a)..=u128::from(*b)).contains(&v))
    }

    /// Addresses in the pool (saturating).
    pub fn size(&self) -> u128 {
        self.ranges.iter().fold(0u128, |n, (a, b)| {
            n.saturating_add(
                u128::from(*b)
                    .saturating_sub(u128::from(*a))
                    .saturating_add(1),
            )
        })
    }
}

/// A reservation: by MAC or by DUID, a fixed address and/or a name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host {
    /// The client's MAC.
    pub mac: Option<[u8; 6]>,
    /// The client's DUID.
    pub duid: Option<Vec<u8>>,
    /// Its address.
    pub ip: Option<Ipv6Addr>,
    /// Its host name, for the lease.
    pub hostname: Option<String>,
}

/// The server's DUID-LL for an interface's MAC (RFC 8415 §11.4): stable as
/// long as the card is, and no state to keep.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

/// The reserved addresses of `settings`, each with the host it is kept for.
pub(super) fn reservations(settings: &Settings) -> HashMap<Ipv6Addr, usize> {
    settings
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((h.ip?, i)))
        .collect()
}

/// The `at`-th address of `ranges`.
pub(super) fn nth(ranges: &[(Ipv6Addr, Ipv6Addr)], mut at: u128) -> Option<Ipv6Addr> {
    for (a, b) in ranges {
        let n = u128::from(*b)
            .saturating_sub(u128::from(*a))
            .saturating_add(1);
        if at < n {
            return Some(Ipv6Addr::from(u128::from(*a) + at));
        }
        at -= n;
    }
    None
}
