//! Load balancing among servers that share one pool, in the manner of RFC
//! 3074: a hash of the client's hardware address picks one of 256 buckets,
//! the buckets are split evenly among the servers, and a server answers a
//! client of another's bucket only once the client's `secs` field shows it
//! has waited `wait_secs` (its own server is down or slow). No server talks
//! to another: a dead peer is covered by the clients' own clocks.

/// This server's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Servers sharing the clients (2 or more).
    pub servers: u8,
    /// This server's place, `0..servers`.
    pub index: u8,
    /// `secs` from which every server answers.
    pub wait_secs: u16,
}

/// The bucket (0..=255) of a hardware address: FNV-1a folded to a byte, so
/// that consecutive MACs (a rack's) spread over the buckets.
pub fn bucket(mac: &[u8]) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in mac {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24)) as u8
}

impl Balance {
    /// The server whose bucket `mac` falls in.
    pub fn owner(&self, mac: &[u8]) -> u8 {
        ((u32::from(bucket(mac)) * u32::from(self.servers)) >> 8) as u8
    }

    /// Whether this server answers a client with hardware address `mac`
    /// whose message says it has waited `secs`.
    pub fn answers(&self, mac: &[u8], secs: u16) -> bool {
        self.owner(mac) == self.index || secs >= self.wait_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rack_of_consecutive_macs_splits_evenly_and_a_waiting_client_is_answered_by_all() {
        let pair = |index| Balance {
            servers: 2,
            index,
            wait_secs: 3,
        };
        let mut firsts = [0u32; 2];
        for i in 0..1000u32 {
            let mac = [0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8];
            let mine: Vec<bool> = (0..2).map(|s| pair(s).answers(&mac, 0)).collect();
            // Exactly one answers at once; both once the client has waited.
            assert_eq!(mine.iter().filter(|&&m| m).count(), 1, "{mac:?}");
            firsts[usize::from(pair(0).owner(&mac))] += 1;
            assert!(pair(0).answers(&mac, 3) && pair(1).answers(&mac, 3));
        }
        assert!(
            firsts.iter().all(|&n| (400..=600).contains(&n)),
            "{firsts:?}"
        );
        let three = Balance {
            servers: 3,
            index: 2,
            wait_secs: 3,
        };
        assert!((0..=255u8).any(|b| three.owner(&[b]) == 2));
        assert!((0..=255u8).all(|b| three.owner(&[b]) < 3));
    }
}
