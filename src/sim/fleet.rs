//! Who boots in a storm: N machines drawn from a firmware mix, each with its own
//! MAC, UUID, first xid and power-on time, all from one seed, so that a storm
//! printed with its seed can be played again machine for machine.

use std::time::Duration;

use super::dhcp::Identity;

/// Firmware kinds and their weights, e.g. `edk2=40,ipxe-bios=40,uefi-http=20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(Identity, u32)>);

/// The default mix: mixed BIOS and UEFI, as a rack of mixed generations is.
pub const DEFAULT_MIX: &str = "edk2=40,ipxe-bios=40,uefi-http=20";

/// The mix names, in the order reports list them.
pub const KINDS: [(&str, Identity); 5] = [
    ("edk2", Identity::Edk2Pxe),
    ("ipxe-bios", Identity::IpxeBios),
    ("ipxe-efi", Identity::IpxeEfi),
    ("uefi-http", Identity::UefiHttp),
    ("grub", Identity::Grub),
];

/// The mix name of `identity`.
pub fn kind_name(identity: Identity) -> &'static str {
    KINDS
        .iter()
        .find(|(_, i)| *i == identity)
        .map_or("installer", |(n, _)| n)
}

impl Mix {
    /// Parses `name=weight,...`.
    ///
    /// # Errors
    /// An unknown name, a weight that is not a number, or all weights zero; the
    /// message names the part and the accepted names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let names = KINDS.map(|(n, _)| n).join(", ");
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let Some(&(_, identity)) = KINDS.iter().find(|(n, _)| *n == name.trim()) else {
                return Err(format!(
                    "unknown firmware kind {name:?} in --mix (known: {names})"
                ));
            };
            let weight: u32 = weight.trim().parse().map_err(|_| {
                format!("--mix weight of {name} must be a whole number, got {weight:?}")
            })?;
            out.push((identity, weight));
        }
        if out.iter().all(|(_, w)| *w == 0) {
            return Err(format!(
                "--mix gives no machines: name at least one of {names} with a weight above 0"
            ));
        }
        Ok(Self(out))
    }

    /// How many of `n` machines each kind gets: proportional, remainders to
    /// the kinds listed first.
    pub fn split(&self, n: usize) -> Vec<(Identity, usize)> {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut counts: Vec<(Identity, usize)> = self
            .0
            .iter()
            .map(|&(i, w)| (i, (n as u64 * u64::from(w) / total.max(1)) as usize))
            .collect();
        let mut left = n - counts.iter().map(|(_, c)| c).sum::<usize>();
        for (k, (_, c)) in counts.iter_mut().enumerate() {
            if left == 0 {
                break;
            }
            if self.0[k].1 > 0 {
                *c += 1;
                left -= 1;
            }
        }
        counts
    }
}

/// One machine of the storm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Its firmware.
    pub identity: Identity,
    /// Its MAC: locally administered, unique within the storm.
    pub mac: [u8; 6],
    /// Its SMBIOS UUID.
    pub uuid: [u8; 16],
    /// Its first DHCP transaction id.
    pub xid: u32,
    /// When it powers on, from the storm's start.
    pub start: Duration,
}

/// `n` machines of `mix`, powering on at random times within `ramp` (all at
/// once when zero), shuffled so that kinds interleave; the same seed gives the
/// same fleet.
pub fn fleet(n: usize, mix: &Mix, ramp: Duration, seed: u64) -> Vec<Spec> {
    let mut rng = SplitMix64(seed);
    let prefix = rng.next_u64().to_le_bytes();
    let mut kinds: Vec<Identity> = mix
        .split(n)
        .into_iter()
        .flat_map(|(i, c)| std::iter::repeat_n(i, c))
        .collect();
    // Fisher-Yates.
    for k in (1..kinds.len()).rev() {
        let j = (rng.next_u64() % (k as u64 + 1)) as usize;
        kinds.swap(k, j);
    }
    let ramp_us = ramp.as_micros() as u64;
    let mut out: Vec<Spec> = kinds
        .into_iter()
        .enumerate()
        .map(|(k, identity)| {
            let k = k as u32;
            let [_, a, b, c] = k.to_be_bytes();
            let mut uuid = [0u8; 16];
            uuid[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            uuid[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            let start_us = if ramp_us == 0 {
                0
            } else {
                rng.next_u64() % ramp_us
            };
            Spec {
                identity,
                // Locally administered, unicast; three bytes of the seed keep two
                // storms on one link apart, three of the index keep machines apart.
                mac: [0x02, prefix[0], prefix[1], a, b, c],
                uuid,
                xid: rng.next_u64() as u32,
                start: Duration::from_micros(start_us),
            }
        })
        .collect();
    out.sort_by_key(|s| s.start);
    out
}

/// A small seeded generator (SplitMix64): enough for a replayable storm.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_parses_and_splits_every_machine() {
        let mix = Mix::parse(DEFAULT_MIX).unwrap();
        let split = mix.split(7);
        assert_eq!(split.iter().map(|(_, c)| c).sum::<usize>(), 7);
        assert_eq!(split[0], (Identity::Edk2Pxe, 3));
        assert_eq!(split[2], (Identity::UefiHttp, 1));
        assert_eq!(
            Mix::parse("uefi-http").unwrap().split(5),
            [(Identity::UefiHttp, 5)]
        );
        let zero = Mix::parse("edk2=0,ipxe-bios=2").unwrap().split(3);
        assert_eq!(zero, [(Identity::Edk2Pxe, 0), (Identity::IpxeBios, 3)]);
    }

    #[test]
    fn a_bad_mix_names_the_part_and_the_known_kinds() {
        let e = Mix::parse("edk2=40,bios=60").unwrap_err();
        assert!(e.contains("\"bios\"") && e.contains("ipxe-bios"), "{e}");
        assert!(Mix::parse("edk2=x").unwrap_err().contains("whole number"));
        assert!(Mix::parse("edk2=0").unwrap_err().contains("no machines"));
    }

    #[test]
    fn a_seed_gives_the_same_fleet_and_macs_never_repeat() {
        let mix = Mix::parse(DEFAULT_MIX).unwrap();
        let ramp = Duration::from_secs(10);
        let a = fleet(1000, &mix, ramp, 42);
        assert_eq!(a, fleet(1000, &mix, ramp, 42));
        assert_ne!(a, fleet(1000, &mix, ramp, 43));
        let macs: std::collections::HashSet<_> = a.iter().map(|s| s.mac).collect();
        assert_eq!(macs.len(), 1000);
        assert!(a.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(a.iter().all(|s| s.start < ramp));
        assert!(a.iter().all(|s| s.mac[0] & 0x03 == 0x02));
        let at_once = fleet(10, &mix, Duration::ZERO, 1);
        assert!(at_once.iter().all(|s| s.start.is_zero()));
    }
}
