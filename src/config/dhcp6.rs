//! `[dhcp6]` and `--dhcp6-range`, validated into the DHCPv6 engine's settings.
//! DHCPv6 answers on the `[dhcp]` interfaces, keeps its leases in the same
//! journal and decides boot files by the same rules, so it needs `[dhcp]` in
//! server mode. A subnet may leave its prefix out: it is then the first
//! interface's (its global or unique-local address's prefix), learnt at start.

use std::net::Ipv6Addr;
use std::time::Duration;

use toml::Spanned;

use super::dhcp::Dhcp;
use super::{file, Error, Overrides, Validator};
use crate::proto::dhcp::Mode;
use crate::proto::dhcp6::{Host, Settings, Subnet};

/// Default valid lifetime, seconds.
pub const DEFAULT_VALID_SECS: u32 = 3600;

/// DHCPv6 settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp6 {
    /// Engine settings (the server's DUID, the boot rules and the HTTP port
    /// are filled in at start).
    pub settings: Settings,
    /// One flag per subnet: its prefix is the interface's.
    pub on_interface: Vec<bool>,
    /// Router lifetime the router advertisements give (0: rackboot is not a
    /// default router, the default).
    pub router_lifetime: u16,
}

impl Dhcp6 {
    /// The settings with the interface's prefix filled in where a subnet
    /// left it out (`prefix`: the first interface's global address and
    /// prefix length, if it has one), every range checked against its prefix.
    ///
    /// # Errors
    /// A subnet on the interface when it has no IPv6 prefix, or a range
    /// outside its prefix, named.
    pub fn resolve(&self, prefix: Option<(Ipv6Addr, u8)>) -> Result<Settings, String> {
        let mut s = self.settings.clone();
        for (sub, on_if) in s.subnets.iter_mut().zip(&self.on_interface) {
            if *on_if {
                let Some((addr, len)) = prefix else {
                    return Err(
                        "dhcp6: a subnet without `prefix` (or --dhcp6-range) is on the interface's \
                         IPv6 prefix, but the interface has no global or unique-local IPv6 address: \
                         add one (ip -6 addr add fd00:1::1/64 dev IF) or give the subnet a prefix"
                            .into(),
                    );
                };
                sub.prefix = addr;
                sub.len = len;
            }
            for (a, b) in &sub.ranges {
                if !sub.contains(*a) || !sub.contains(*b) {
                    return Err(format!(
                        "dhcp6: range {a}-{b} lies outside its subnet {}/{}: give ranges inside the prefix",
                        sub.prefix, sub.len
                    ));
                }
            }
        }
        Ok(s)
    }
}

impl Validator<'_> {
    /// `[dhcp6]` and `--dhcp6-range` into `dhcp.v6`.
    pub(super) fn dhcp6(
        &self,
        raw: Option<&file::Dhcp6>,
        cli: &Overrides,
        dhcp: Option<&mut Dhcp>,
    ) -> Result<(), Error> {
        if raw.is_none() && cli.dhcp6_ranges.is_empty() {
            return Ok(());
        }
        let Some(dhcp) = dhcp else {
            return Err(self.invalid(
                None,
                "dhcp6",
                "is set, but [dhcp] is not".into(),
                "DHCPv6 answers on [dhcp]'s interface and keeps its leases in dhcp.lease_file: \
                 add --interface IF (or [dhcp] with `interface`)",
            ));
        };
        if dhcp.settings.mode == Mode::Proxy {
            return Err(self.invalid(
                None,
                "dhcp6",
                "is set with dhcp.mode = \"proxy\"".into(),
                "DHCPv6 here is a full server (it gives addresses): run [dhcp] in server mode, \
                 or leave [dhcp6] out beside another DHCPv6 server",
            ));
        }
        let empty = file::Dhcp6::default();
        let d = raw.unwrap_or(&empty);
        let mut subnets = Vec::new();
        let mut on_interface = Vec::new();
        for s in &d.subnet {
            let (sub, on_if) = self.subnet6(s)?;
            subnets.push(sub);
            on_interface.push(on_if);
        }
        if !cli.dhcp6_ranges.is_empty() {
            // `--dhcp6-range` replaces the file's subnets, as --dhcp-range does.
            subnets.clear();
            on_interface.clear();
            for r in &cli.dhcp6_ranges {
                subnets.push(self.cli_range6(r)?);
                on_interface.push(true);
            }
        }
        if subnets.is_empty() {
            return Err(self.invalid(
                None,
                "dhcp6.subnet",
                "is missing".into(),
                "add --dhcp6-range FIRST,LAST (or a [[dhcp6.subnet]] with `ranges`, or without \
                 them for stateless answers)",
            ));
        }
        let hosts = d
            .host
            .iter()
            .map(|h| self.host6(h))
            .collect::<Result<Vec<_>, _>>()?;
        let secs = |s: &Option<Spanned<i64>>, key, default| {
            self.opt_int(s, key, 1..=86_400 * 365, default)
                .map(|n| Duration::from_secs(n as u64))
        };
        let defaults = Settings::default();
        dhcp.v6 = Some(Dhcp6 {
            settings: Settings {
                subnets,
                hosts,
                rapid_commit: d.rapid_commit.unwrap_or(true),
                offer: secs(&d.offer_secs, "dhcp6.offer_secs", 30)?,
                decline: secs(&d.decline_secs, "dhcp6.decline_secs", 600)?,
                preference: self.opt_int(&d.preference, "dhcp6.preference", 0..=255, 255)? as u8,
                held_offers_percent: self.opt_int(
                    &d.held_offers_percent,
                    "dhcp6.held_offers_percent",
                    1..=100,
                    50,
                )? as u8,
                ..defaults
            },
            on_interface,
            router_lifetime: self.opt_int(
                &d.router_lifetime_secs,
                "dhcp6.router_lifetime_secs",
                0..=9000,
                0,
            )? as u16,
        });
        Ok(())
    }

    fn ip6(&self, s: &Spanned<String>, key: &'static str) -> Result<Ipv6Addr, Error> {
        s.get_ref().trim().parse().map_err(|_| {
            self.invalid(
                Some(s.span().start),
                key,
                format!("is {:?}, not an IPv6 address", s.get_ref()),
                "write an IPv6 address, e.g. \"fd00:1::10\"",
            )
        })
    }

    fn subnet6(&self, s: &file::Subnet6) -> Result<(Subnet, bool), Error> {
        let (prefix, len, on_if) = match &s.prefix {
            None => (Ipv6Addr::UNSPECIFIED, 0, true),
            Some(p) => {
                let bad = || {
                    self.invalid(
                        Some(p.span().start),
                        "dhcp6.subnet.prefix",
                        format!("is {:?}", p.get_ref()),
                        "write PREFIX/LEN, e.g. \"fd00:1::/64\"",
                    )
                };
                let (a, l) = p.get_ref().split_once('/').ok_or_else(bad)?;
                let a: Ipv6Addr = a.trim().parse().map_err(|_| bad())?;
                let l: u8 = l
                    .trim()
                    .parse()
                    .ok()
                    .filter(|l| *l <= 128)
                    .ok_or_else(bad)?;
                (a, l, false)
            }
        };
        let mut ranges = Vec::new();
        for r in &s.ranges {
            let bad = |why: &str| {
                self.invalid(
                    Some(r.span().start),
                    "dhcp6.subnet.ranges",
                    format!("has {:?}{why}", r.get_ref()),
                    "write \"FIRST-LAST\", e.g. \"fd00:1::100-fd00:1::1ff\", FIRST not above LAST",
                )
            };
            // An IPv6 address has no '-', so the first one splits.
            let (a, b) = r.get_ref().split_once('-').ok_or_else(|| bad(""))?;
            let a: Ipv6Addr = a.trim().parse().map_err(|_| bad(""))?;
            let b: Ipv6Addr = b.trim().parse().map_err(|_| bad(""))?;
            if a > b {
                return Err(bad(", which runs backwards"));
            }
            ranges.push((a, b));
        }
        let valid = self.opt_int(
            &s.valid_secs,
            "dhcp6.subnet.valid_secs",
            60..=86_400 * 365,
            i64::from(DEFAULT_VALID_SECS),
        )? as u32;
        let preferred = self.opt_int(
            &s.preferred_secs,
            "dhcp6.subnet.preferred_secs",
            60..=i64::from(valid),
            i64::from(valid) / 4 * 3,
        )? as u32;
        let dns = s
            .dns
            .iter()
            .map(|d| self.ip6(d, "dhcp6.subnet.dns"))
            .collect::<Result<Vec<_>, _>>()?;
        let sub = Subnet {
            prefix,
            len,
            ranges,
            preferred,
            valid,
            dns,
            domains: s.domains.clone(),
        };
        if !on_if {
            for (a, b) in &sub.ranges {
                if !sub.contains(*a) || !sub.contains(*b) {
                    let at = s.ranges.first().map(|r| r.span().start);
                    return Err(self.invalid(
                        at,
                        "dhcp6.subnet.ranges",
                        format!("has {a}-{b}, outside {prefix}/{len}"),
                        "give ranges inside the subnet's prefix",
                    ));
                }
            }
        }
        Ok((sub, on_if))
    }

    fn cli_range6(&self, r: &str) -> Result<Subnet, Error> {
        let bad = || {
            self.invalid(
                None,
                "--dhcp6-range",
                format!("is {r:?}"),
                "write FIRST,LAST[,VALID_SECS], e.g. fd00:1::100,fd00:1::1ff,3600",
            )
        };
        let mut parts = r.split(',');
        let mut addr = || -> Result<Ipv6Addr, Error> {
            parts
                .next()
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(bad)
        };
        let (a, b) = (addr()?, addr()?);
        let valid = match parts.next() {
            None => DEFAULT_VALID_SECS,
            Some(p) => p.trim().parse().ok().filter(|n| *n >= 60).ok_or_else(bad)?,
        };
        if parts.next().is_some() || a > b {
            return Err(bad());
        }
        Ok(Subnet {
            prefix: Ipv6Addr::UNSPECIFIED,
            len: 0,
            ranges: vec![(a, b)],
            preferred: valid / 4 * 3,
            valid,
            dns: Vec::new(),
            domains: Vec::new(),
        })
    }

    fn host6(&self, h: &file::Host6) -> Result<Host, Error> {
        let mac = match &h.mac {
            Some(m) => {
                let b = self.mac(m, "dhcp6.host.mac", true)?;
                Some(<[u8; 6]>::try_from(b.as_slice()).unwrap_or_default())
            }
            None => None,
        };
        let duid = match &h.duid {
            Some(d) => Some(
                super::dhcp::decode_hex(d.get_ref())
                    .filter(|b| (2..=130).contains(&b.len()))
                    .ok_or_else(|| {
                        self.invalid(
                            Some(d.span().start),
                            "dhcp6.host.duid",
                            format!("is {:?}", d.get_ref()),
                            "write the DUID in hex, e.g. \"00:03:00:01:52:54:00:12:34:56\"",
                        )
                    })?,
            ),
            None => None,
        };
        if mac.is_none() && duid.is_none() {
            return Err(self.invalid(
                None,
                "dhcp6.host",
                "has neither `mac` nor `duid`".into(),
                "give the machine's mac (or its DUID) so the reservation can find it",
            ));
        }
        Ok(Host {
            mac,
            duid,
            ip: h
                .ip
                .as_ref()
                .map(|i| self.ip6(i, "dhcp6.host.ip"))
                .transpose()?,
            hostname: h.hostname.clone(),
        })
    }
}
