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
    /// Whether it boots over IPv4 or IPv6.
    pub family: Family,
}

/// A machine's address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// DHCPv4, TFTP and HTTP over IPv4.
    V4,
    /// DHCPv6 (option 59's boot file URLs), TFTP and HTTP over IPv6.
    V6,
}

impl Family {
    /// Its name in reports: `ipv4`, `ipv6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// Which families a storm plays (`--family 4|6|dual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    /// Every machine on IPv4.
    V4,
    /// Every machine on IPv6.
    V6,
    /// Every other machine of each kind on IPv6, the rest on IPv4.
    Dual,
}

impl Families {
    /// `4`, `6` or `dual`.
    ///
    /// # Errors
    /// Anything else, with what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "4" | "ipv4" => Ok(Self::V4),
            "6" | "ipv6" => Ok(Self::V6),
            "dual" | "46" => Ok(Self::Dual),
            _ => Err(format!("--family must be 4, 6 or dual, got {text:?}")),
        }
    }

    /// Gives each machine of `specs` its family: under `Dual`, alternate
    /// machines of each firmware kind, so that both families have the mix.
    ///
    /// # Errors
    /// A Secure Boot (grub) machine asked to play IPv6: shim and grub's
    /// path is played over IPv4 only.
    pub fn assign(self, specs: &mut [Spec]) -> Result<(), String> {
        let mut seen: Vec<(Identity, usize)> = Vec::new();
        for s in specs.iter_mut() {
            let n = match seen.iter_mut().find(|(i, _)| *i == s.identity) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((s.identity, 0));
                    0
                }
            };
            s.family = match self {
                Self::V4 => Family::V4,
                Self::V6 => Family::V6,
                Self::Dual if s.identity == Identity::Grub => Family::V4,
                Self::Dual if n % 2 == 1 => Family::V6,
                Self::Dual => Family::V4,
            };
            if s.family == Family::V6 && s.identity == Identity::Grub {
                return Err(
                    "grub (Secure Boot through shim) plays IPv4 only: drop it from --mix with \
                     --family 6, or use --family dual, where grub machines stay on IPv4"
                        .into(),
                );
            }
        }
        Ok(())
    }
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
                family: Family::V4,
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
        assert!(a.iter().all(|s| s.family == Family::V4));
        assert_ne!(a, fleet(1000, &mix, ramp, 43));
        let macs: std::collections::HashSet<_> = a.iter().map(|s| s.mac).collect();
        assert_eq!(macs.len(), 1000);
        assert!(a.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(a.iter().all(|s| s.start < ramp));
        assert!(a.iter().all(|s| s.mac[0] & 0x03 == 0x02));
        let at_once = fleet(10, &mix, Duration::ZERO, 1);
        assert!(at_once.iter().all(|s| s.start.is_zero()));
    }

    #[test]
    fn dual_puts_half_of_each_kind_on_ipv6_and_grub_stays_on_ipv4() {
        let mix = Mix::parse("edk2=1,uefi-http=1,grub=1").unwrap();
        let mut specs = fleet(300, &mix, Duration::ZERO, 7);
        Families::Dual.assign(&mut specs).unwrap();
        let count = |i: Identity, f: Family| {
            specs
                .iter()
                .filter(|s| s.identity == i && s.family == f)
                .count()
        };
        assert_eq!(count(Identity::Edk2Pxe, Family::V6), 50);
        assert_eq!(count(Identity::UefiHttp, Family::V4), 50);
        assert_eq!(count(Identity::Grub, Family::V6), 0);
        let err = Families::V6.assign(&mut specs).unwrap_err();
        assert!(
            err.contains("grub") && err.contains("--family dual"),
            "{err}"
        );
        assert_eq!(
            Families::parse("5").unwrap_err(),
            "--family must be 4, 6 or dual, got \"5\""
        );
    }
}
