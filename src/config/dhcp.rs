//! `[dhcp]` and the DHCP flags, validated into the engine's settings. Subnets may
//! leave their network out (then it is the interface's, learnt at start, as
//! `--dhcp-range` does); everything else is checked here, naming the key.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{file, Error, Overrides, Validator};
use crate::proto::dhcp::{
    policy::{self, Action, Match, OptionTest, Rule, TaggedOption, ValueAt},
    pxe, Host, Mode, Settings, Subnet,
};

/// The default lease journal.
pub const DEFAULT_LEASE_FILE: &str = "/var/lib/rackboot/dhcp.leases";
/// Default lease time, seconds (dnsmasq's default).
pub const DEFAULT_LEASE_SECS: i64 = 3600;

/// DHCP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    /// The interface answered on (the first, whose network subnets without
    /// a `network` are on).
    pub interface: String,
    /// More interfaces answered on (the same subnets, leases and rules; each
    /// request is answered in the subnet of the interface it came in on, or
    /// of its relay).
    pub also_interfaces: Vec<String>,
    /// The lease journal.
    pub lease_file: PathBuf,
    /// dnsmasq's lease file, read into an empty journal at start.
    pub import_leases: Option<PathBuf>,
    /// Engine settings; subnets listed in `on_interface` get their network,
    /// router and DNS from the interface at start.
    pub settings: Settings,
    /// One flag per subnet: the network is the interface's.
    pub on_interface: Vec<bool>,
    /// One flag per subnet: no `router` given.
    pub default_router: Vec<bool>,
    /// One flag per subnet: no `dns` given.
    pub default_dns: Vec<bool>,
    /// How long a conflict probe waits for an answer (zero: no probe).
    pub probe: std::time::Duration,
    /// Advertise "no IPv6 router" on the interface (ends iPXE's IPv6 wait).
    pub router_advertisement: bool,
    /// UEFI PXE firmware gets snponly.efi instead of ipxe.efi when it is served.
    pub uefi_snponly: bool,
    /// DHCPv6 on the same interfaces, with the same journal and boot rules.
    pub v6: Option<super::dhcp6::Dhcp6>,
    /// The shared PostgreSQL lease store, instead of the journal.
    pub store: Option<LeaseStore>,
}

/// `[store] backend = "postgres"`: where the leases live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStore {
    /// The connection URL.
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// This server's name in the store (its rows, its announcements).
    pub name: String,
}

impl Dhcp {
    /// Every interface answered on, the first first.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.interface.as_str())
            .chain(self.also_interfaces.iter().map(String::as_str))
    }

    /// The settings with the interfaces' addresses and networks filled in
    /// (`ifaces`, as [`Self::interfaces`] lists them), and every range
    /// checked against its network. A subnet without `network` is on the
    /// first interface; a subnet on an interface's network gets that address
    /// as its default router and DNS server (the first's when it is on none).
    ///
    /// # Errors
    /// A range outside its subnet, named.
    pub fn resolve(&self, ifaces: &[(Ipv4Addr, u8)]) -> Result<Settings, String> {
        let mut s = self.settings.clone();
        let Some(&(addr, prefix)) = ifaces.first() else {
            return Err("no interface to answer on".into());
        };
        let net = |ip: Ipv4Addr| {
            Ipv4Addr::from(
                u32::from(ip) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
            )
        };
        for (i, sub) in s.subnets.iter_mut().enumerate() {
            if self.on_interface[i] {
                sub.network = net(addr);
                sub.prefix = prefix;
            }
            let local = ifaces.iter().map(|(a, _)| *a).find(|a| sub.contains(*a));
            if let (true, Some(a)) = (self.default_router[i], local) {
                sub.router = Some(a);
            }
            if self.default_dns[i] {
                sub.dns = vec![local.unwrap_or(addr)];
            }
            for (a, b) in &sub.ranges {
                if !sub.contains(*a) || !sub.contains(*b) {
                    return Err(format!(
                        "dhcp range {a}-{b} is outside {}/{} (the {}): give a range inside it",
                        sub.network,
                        sub.prefix,
                        if self.on_interface[i] {
                            format!("network of {}", self.interface)
                        } else {
                            "subnet's `network`".to_owned()
                        }
                    ));
                }
            }
        }
        Ok(s)
    }
}

impl Validator<'_> {
    pub(super) fn dhcp(
        &self,
        raw: Option<&file::Dhcp>,
        cli: &Overrides,
        http_port: u16,
        v6_asked: bool,
    ) -> Result<Option<Dhcp>, Error> {
        let asked = raw.is_some()
            || cli.interface.is_some()
            || !cli.dhcp_ranges.is_empty()
            || cli.dhcp_proxy;
        if !asked {
            return Ok(None);
        }
        let empty = file::Dhcp::default();
        let d = raw.unwrap_or(&empty);
        let at = d.interface.as_ref().map(|s| s.span().start);
        let names: Vec<String> = match (&cli.interface, &d.interface) {
            (Some(i), _) => vec![i.clone()],
            (None, Some(i)) => match i.get_ref() {
                toml::Value::String(s) => vec![s.clone()],
                toml::Value::Array(a) if !a.is_empty() => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).unwrap_or_default())
                    .collect(),
                other => {
                    return Err(self.invalid(
                        at,
                        "dhcp.interface",
                        format!("is {other:?}"),
                        "give a name, e.g. \"eth1\", or a list, e.g. [\"eth1\", \"eth2\"]",
                    ))
                }
            },
            (None, None) => {
                return Err(self.invalid(
                    None,
                    "dhcp.interface",
                    "is missing".into(),
                    "name the boot network's interface: --interface IF or `interface = \"eth1\"` in [dhcp]",
                ))
            }
        };
        for name in &names {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(self.invalid(
                    at,
                    "dhcp.interface",
                    format!("has {name:?}, not an interface name"),
                    "give a name as `ip link` shows it, e.g. eth1",
                ));
            }
        }
        if let Some(twice) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            return Err(self.invalid(
                at,
                "dhcp.interface",
                format!("names {:?} twice", twice.1),
                "list each interface once",
            ));
        }
        let interface = names[0].clone();
        let also_interfaces = names[1..].to_vec();
        let mode = match (cli.dhcp_proxy, &d.mode) {
            (true, _) => Mode::Proxy,
            (false, None) => Mode::Server,
            (false, Some(m)) => match m.get_ref().as_str() {
                "server" => Mode::Server,
                "proxy" => Mode::Proxy,
                other => {
                    return Err(self.invalid(
                        Some(m.span().start),
                        "dhcp.mode",
                        format!("is {other:?}"),
                        "write \"server\" (rackboot gives addresses) or \"proxy\" (another server does)",
                    ))
                }
            },
        };
        let mut subnets = Vec::new();
        let (mut on_interface, mut default_router, mut default_dns) =
            (Vec::new(), Vec::new(), Vec::new());
        for s in &d.subnet {
            let (sub, on_if) = self.subnet(s)?;
            default_router.push(s.router.is_none());
            default_dns.push(s.dns.is_none());
            subnets.push(sub);
            on_interface.push(on_if);
        }
        if !cli.dhcp_ranges.is_empty() {
            // `--dhcp-range` replaces the file's subnets, as dnsmasq's flag would.
            subnets.clear();
            on_interface.clear();
            default_router.clear();
            default_dns.clear();
            for r in &cli.dhcp_ranges {
                subnets.push(self.cli_range(r)?);
                on_interface.push(true);
                default_router.push(true);
                default_dns.push(true);
            }
        }
        if mode == Mode::Server && subnets.is_empty() && !v6_asked {
            return Err(self.invalid(
                None,
                "dhcp.subnet",
                "is missing: a full DHCP server needs addresses to give".into(),
                "add --dhcp-range FIRST,LAST (or a [[dhcp.subnet]] with `ranges`), or run --dhcp-proxy beside the existing DHCP server",
            ));
        }
        let hosts = d
            .host
            .iter()
            .map(|h| self.host(h))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::new();
        for (i, b) in d.boot.iter().enumerate() {
            rules.push(self.rule(i, b)?);
        }
        if d.default_rules.unwrap_or(true) {
            // `no_pxedhcp = false` keeps iPXE's ProxyDHCP wait (the built-in iPXE
            // rule sends 175.176 otherwise).
            let no_pxedhcp = d.no_pxedhcp.unwrap_or(true);
            rules.extend(policy::defaults().into_iter().map(|mut r| {
                if let Some(a) = &mut r.action {
                    a.no_pxedhcp &= no_pxedhcp;
                }
                r
            }));
        }
        let secs = |s: &Option<Spanned<i64>>, key, default| {
            self.opt_int(s, key, 1..=86_400 * 365, default)
        };
        let probe_ms = self.opt_int(&d.probe_ms, "dhcp.probe_ms", 0..=5000, 0)?;
        let lease_file = match (&cli.dhcp_lease_file, &d.lease_file) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => PathBuf::from(p.get_ref()),
            (None, None) => PathBuf::from(DEFAULT_LEASE_FILE),
        };
        Ok(Some(Dhcp {
            interface,
            also_interfaces,
            lease_file,
            import_leases: d.import_leases.as_ref().map(|p| PathBuf::from(p.get_ref())),
            settings: Settings {
                mode,
                authoritative: d.authoritative.unwrap_or(true),
                offer: Duration::from_secs(secs(&d.offer_secs, "dhcp.offer_secs", 30)? as u64),
                decline: Duration::from_secs(
                    secs(&d.decline_secs, "dhcp.decline_secs", 600)? as u64
                ),
                subnets,
                hosts,
                rules,
                http_port,
                profiles: None,
                probe: probe_ms > 0,
                held_offers_percent: self.opt_int(
                    &d.held_offers_percent,
                    "dhcp.held_offers_percent",
                    1..=100,
                    50,
                )? as u8,
                answers_per_mac: self.opt_int(
                    &d.answers_per_mac,
                    "dhcp.answers_per_mac",
                    0..=100_000,
                    20,
                )? as u32,
                options: self.tagged_options(&d.option)?,
                balance: self.balance(d.balance.as_ref())?,
                pxe_menu: self.pxe_menu(&d.pxe_service, d.pxe_prompt.as_ref())?,
                options_when_asked: match &d.send_options {
                    None => false,
                    Some(s) if s.get_ref() == "always" => false,
                    Some(s) if s.get_ref() == "asked" => true,
                    Some(s) => {
                        return Err(self.invalid(
                            Some(s.span().start),
                            "dhcp.send_options",
                            format!("is {:?}", s.get_ref()),
                            "write \"always\" (every configured option) or \"asked\" (those in the client's option 55, as dnsmasq)",
                        ))
                    }
                },
            },
            on_interface,
            default_router,
            default_dns,
            probe: std::time::Duration::from_millis(probe_ms as u64),
            router_advertisement: d.router_advertisement.unwrap_or(true),
            uefi_snponly: d.uefi_snponly.unwrap_or(true),
            v6: None,
            store: None,
        }))
    }

    /// `[dhcp.balance]`: this server's share of the clients.
    fn balance(
        &self,
        b: Option<&file::Balance>,
    ) -> Result<Option<crate::proto::dhcp::balance::Balance>, Error> {
        let Some(b) = b else {
            return Ok(None);
        };
        let servers = *b.servers.get_ref();
        if !(2..=16).contains(&servers) {
            return Err(self.invalid(
                Some(b.servers.span().start),
                "dhcp.balance.servers",
                format!("is {servers}"),
                "give how many servers share the clients, from 2 to 16 (leave [dhcp.balance] out for one server)",
            ));
        }
        let index = *b.index.get_ref();
        if !(0..servers).contains(&index) {
            return Err(self.invalid(
                Some(b.index.span().start),
                "dhcp.balance.index",
                format!("is {index}, with {servers} servers"),
                format!(
                    "give this server's place from 0 to {}, a different one on each server",
                    servers - 1
                ),
            ));
        }
        let wait = self.opt_int(&b.wait_secs, "dhcp.balance.wait_secs", 1..=60, 3)?;
        Ok(Some(crate::proto::dhcp::balance::Balance {
            servers: servers as u8,
            index: index as u8,
            wait_secs: wait as u16,
        }))
    }

    fn ip(&self, s: &Spanned<String>, key: &'static str) -> Result<Ipv4Addr, Error> {
        s.get_ref().trim().parse().map_err(|_| {
            self.invalid(
                Some(s.span().start),
                key,
                format!("is {:?}, not an IPv4 address", s.get_ref()),
                "write a dotted address, e.g. \"10.0.0.1\"",
            )
        })
    }

    fn subnet(&self, s: &file::Subnet) -> Result<(Subnet, bool), Error> {
        let (network, prefix, on_if) = match &s.network {
            None => (Ipv4Addr::UNSPECIFIED, 0, true),
            Some(n) => {
                let bad = || {
                    self.invalid(
                        Some(n.span().start),
                        "dhcp.subnet.network",
                        format!("is {:?}", n.get_ref()),
                        "write ADDR/PREFIX, e.g. \"10.0.0.0/24\", or leave it out for the interface's network",
                    )
                };
                let (a, p) = n.get_ref().split_once('/').ok_or_else(bad)?;
                let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
                let p: u8 = p
                    .parse()
                    .ok()
                    .filter(|p| (8..=30).contains(p))
                    .ok_or_else(bad)?;
                (a, p, false)
            }
        };
        let mut ranges = Vec::new();
        for r in &s.ranges {
            ranges.push(self.range(r)?);
        }
        if ranges.is_empty() {
            return Err(self.invalid(
                s.network.as_ref().map(|n| n.span().start),
                "dhcp.subnet.ranges",
                "is empty".into(),
                "give at least one range, e.g. ranges = [\"10.0.0.100-10.0.0.199\"]",
            ));
        }
        let ips = |v: &[Spanned<String>], key| {
            v.iter()
                .map(|s| self.ip(s, key))
                .collect::<Result<Vec<_>, _>>()
        };
        let sub = Subnet {
            network,
            prefix,
            ranges,
            exclude: ips(&s.exclude, "dhcp.subnet.exclude")?,
            lease_secs: self.opt_int(
                &s.lease_secs,
                "dhcp.subnet.lease_secs",
                60..=u32::MAX as i64 / 2,
                DEFAULT_LEASE_SECS,
            )? as u32,
            router: s
                .router
                .as_ref()
                .map(|r| self.ip(r, "dhcp.subnet.router"))
                .transpose()?,
            dns: ips(s.dns.as_deref().unwrap_or(&[]), "dhcp.subnet.dns")?,
            domain: s.domain.clone(),
            ntp: ips(&s.ntp, "dhcp.subnet.ntp")?,
            mtu: s
                .mtu
                .as_ref()
                .map(|m| {
                    self.int(
                        m,
                        "dhcp.subnet.mtu",
                        576..=65535,
                        "give an MTU from 576 to 65535",
                    )
                })
                .transpose()?
                .map(|m| m as u16),
            options: self.raw_options(&s.options)?,
            tags: s.tag.clone(),
            not_tags: s.not_tag.clone(),
            set_tags: s.set_tag.clone(),
        };
        if !on_if {
            for (a, b) in &sub.ranges {
                if !sub.contains(*a) || !sub.contains(*b) {
                    return Err(self.invalid(
                        s.ranges.first().map(|r| r.span().start),
                        "dhcp.subnet.ranges",
                        format!("has {a}-{b}, outside {network}/{prefix}"),
                        "give ranges inside the subnet's `network`",
                    ));
                }
            }
        }
        Ok((sub, on_if))
    }

    fn range(&self, r: &Spanned<String>) -> Result<(Ipv4Addr, Ipv4Addr), Error> {
        let bad = |why: &str| {
            self.invalid(
                Some(r.span().start),
                "dhcp.subnet.ranges",
                format!("has {:?}{why}", r.get_ref()),
                "write \"FIRST-LAST\", e.g. \"10.0.0.100-10.0.0.199\", FIRST not above LAST",
            )
        };
        let (a, b) = r.get_ref().split_once('-').ok_or_else(|| bad(""))?;
        let a: Ipv4Addr = a.trim().parse().map_err(|_| bad(""))?;
        let b: Ipv4Addr = b.trim().parse().map_err(|_| bad(""))?;
        if a > b {
            return Err(bad(", which runs backwards"));
        }
        Ok((a, b))
    }

    fn cli_range(&self, r: &str) -> Result<Subnet, Error> {
        let bad = || {
            self.invalid(
                None,
                "--dhcp-range",
                format!("is {r:?}"),
                "write FIRST,LAST[,LEASE_SECS], e.g. 10.0.0.100,10.0.0.199,3600",
            )
        };
        let mut parts = r.split(',');
        let a: Ipv4Addr = parts
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(bad)?;
        let b: Ipv4Addr = parts
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(bad)?;
        let lease = match parts.next() {
            None => DEFAULT_LEASE_SECS as u32,
            Some(p) => p.trim().parse().ok().filter(|n| *n >= 60).ok_or_else(bad)?,
        };
        if parts.next().is_some() || a > b {
            return Err(bad());
        }
        Ok(Subnet::pool(Ipv4Addr::UNSPECIFIED, 0, (a, b), lease))
    }

    pub(super) fn mac(
        &self,
        s: &Spanned<String>,
        key: &'static str,
        whole: bool,
    ) -> Result<Vec<u8>, Error> {
        let bytes: Option<Vec<u8>> = s
            .get_ref()
            .split([':', '-'])
            .map(|b| {
                (b.len() == 2)
                    .then(|| u8::from_str_radix(b, 16).ok())
                    .flatten()
            })
            .collect();
        match bytes {
            Some(b) if (whole && b.len() == 6) || (!whole && (1..=6).contains(&b.len())) => Ok(b),
            _ => Err(self.invalid(
                Some(s.span().start),
                key,
                format!("is {:?}", s.get_ref()),
                if whole {
                    "write six hex bytes, e.g. \"52:54:00:12:34:56\""
                } else {
                    "write one to six hex bytes, e.g. \"52:54:00\""
                },
            )),
        }
    }

    fn host(&self, h: &file::Host) -> Result<Host, Error> {
        let mut m = [0u8; 6];
        let client_id = match (&h.mac, &h.client_id) {
            (Some(mac), None) => {
                m.copy_from_slice(&self.mac(mac, "dhcp.host.mac", true)?);
                None
            }
            (None, Some(id)) => Some(
                decode_hex(id.get_ref())
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        self.invalid(
                            Some(id.span().start),
                            "dhcp.host.client_id",
                            format!("is {:?}", id.get_ref()),
                            "give option 61's bytes in hex, e.g. \"01:52:54:00:12:34:56\"",
                        )
                    })?,
            ),
            (mac, _) => {
                return Err(self.invalid(
                    mac.as_ref().map(|m| m.span().start),
                    "dhcp.host",
                    "needs one of mac and client_id".into(),
                    "give mac = \"52:54:00:12:34:56\", or client_id = \"01:02:03:04\"",
                ))
            }
        };
        if h.ignore_client_id && client_id.is_some() {
            return Err(self.invalid(
                h.client_id.as_ref().map(|c| c.span().start),
                "dhcp.host.ignore_client_id",
                "is set on a host known by its client_id".into(),
                "give mac with ignore_client_id, or client_id alone",
            ));
        }
        let mut other_macs = Vec::new();
        for o in &h.other_macs {
            let mut x = [0u8; 6];
            x.copy_from_slice(&self.mac(o, "dhcp.host.other_macs", true)?);
            other_macs.push(x);
        }
        if !other_macs.is_empty() && h.mac.is_none() {
            return Err(self.invalid(
                h.other_macs.first().map(|o| o.span().start),
                "dhcp.host.other_macs",
                "is given without mac".into(),
                "give the machine's first MAC as mac, the others as other_macs",
            ));
        }
        Ok(Host {
            mac: m,
            other_macs,
            client_id,
            ignore_client_id: h.ignore_client_id,
            tags: h.tag.clone(),
            not_tags: h.not_tag.clone(),
            ip: h
                .ip
                .as_ref()
                .map(|i| self.ip(i, "dhcp.host.ip"))
                .transpose()?,
            hostname: h.hostname.clone(),
            lease_secs: h
                .lease_secs
                .as_ref()
                .map(|l| {
                    self.int(
                        l,
                        "dhcp.host.lease_secs",
                        120..=i64::from(u32::MAX),
                        "give seconds from 120, or 4294967295 for an infinite lease",
                    )
                })
                .transpose()?
                .map(|l| l as u32),
            options: self.raw_options(&h.options)?,
        })
    }

    fn rule(&self, i: usize, b: &file::Boot) -> Result<Rule, Error> {
        let arch = b
            .arch
            .iter()
            .map(|a| {
                self.int(
                    a,
                    "dhcp.boot.arch",
                    0..=65535,
                    "give option 93 types, e.g. [7, 9]",
                )
                .map(|v| v as u16)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let uuid = match &b.uuid {
            None => None,
            Some(u) => {
                let hex: String = u.get_ref().chars().filter(|c| *c != '-').collect();
                let bytes = decode_hex(&hex).filter(|v| v.len() == 16).ok_or_else(|| {
                    self.invalid(
                        Some(u.span().start),
                        "dhcp.boot.uuid",
                        format!("is {:?}", u.get_ref()),
                        "write 32 hex digits, dashes allowed",
                    )
                })?;
                let mut a = [0u8; 16];
                a.copy_from_slice(&bytes);
                Some(a)
            }
        };
        let has_action = b.file.is_some()
            || b.ignore == Some(true)
            || b.server_name.is_some()
            || b.next_server.is_some()
            || b.no_pxedhcp.is_some()
            || !b.options.is_empty();
        Ok(Rule {
            name: b.name.clone().unwrap_or_else(|| format!("boot[{i}]")),
            when: Match {
                arch,
                vendor: b.vendor.as_ref().map(|v| v.as_bytes().to_vec()),
                user_class: b.user_class.as_ref().map(|v| v.as_bytes().to_vec()),
                ipxe: b.ipxe,
                mac: b
                    .mac
                    .as_ref()
                    .filter(|m| !m.get_ref().contains('*'))
                    .map(|m| self.mac(m, "dhcp.boot.mac", false))
                    .transpose()?,
                mac_glob: b
                    .mac
                    .as_ref()
                    .filter(|m| m.get_ref().contains('*'))
                    .map(|m| self.mac_glob(m))
                    .transpose()?,
                vendor_has: b.vendor_contains.as_ref().map(|v| v.as_bytes().to_vec()),
                user_class_has: b
                    .user_class_contains
                    .as_ref()
                    .map(|v| v.as_bytes().to_vec()),
                option: b
                    .has_option
                    .iter()
                    .map(|t| self.option_test(t))
                    .collect::<Result<_, _>>()?,
                network: b
                    .subnet
                    .as_ref()
                    .map(|n| self.network(n, "dhcp.boot.subnet"))
                    .transpose()?,
                known: b.known,
                loader: b
                    .loader
                    .as_ref()
                    .map(|l| self.loader(l.get_ref(), Some(l.span().start), "dhcp.boot.loader"))
                    .transpose()?,
                uuid,
                relay: b
                    .relay
                    .as_ref()
                    .map(|r| self.ip(r, "dhcp.boot.relay"))
                    .transpose()?,
                circuit_id: b.circuit_id.as_ref().map(|v| v.as_bytes().to_vec()),
                remote_id: b.remote_id.as_ref().map(|v| v.as_bytes().to_vec()),
                tags: b.tag.clone(),
                not_tags: b.not_tag.clone(),
            },
            set_tags: b.set_tag.clone(),
            action: has_action
                .then(|| -> Result<Action, Error> {
                    Ok(Action {
                        file: b.file.clone(),
                        next_server: b
                            .next_server
                            .as_ref()
                            .map(|n| self.ip(n, "dhcp.boot.next_server"))
                            .transpose()?,
                        no_pxedhcp: b.no_pxedhcp.unwrap_or(false),
                        options: self.raw_options(&b.options)?,
                        server_name: b.server_name.clone(),
                        ignore: b.ignore.unwrap_or(false),
                    })
                })
                .transpose()?,
        })
    }

    /// `52:54:00:*:*:*`: six bytes, `*` for any.
    fn mac_glob(&self, s: &Spanned<String>) -> Result<Vec<Option<u8>>, Error> {
        let parts: Vec<Option<Option<u8>>> = s
            .get_ref()
            .split([':', '-'])
            .map(|p| match p {
                "*" => Some(None),
                p if p.len() <= 2 => u8::from_str_radix(p, 16).ok().map(Some),
                _ => None,
            })
            .collect();
        match parts.into_iter().collect::<Option<Vec<_>>>() {
            Some(v) if v.len() == 6 => Ok(v),
            _ => Err(self.invalid(
                Some(s.span().start),
                "dhcp.boot.mac",
                format!("is {:?}", s.get_ref()),
                "write six hex bytes, `*` for any: \"52:54:00:*:*:*\" (or a prefix without `*`)",
            )),
        }
    }

    fn option_test(&self, t: &file::OptionTest) -> Result<OptionTest, Error> {
        let code = self.int(
            &t.code,
            "dhcp.boot.has_option.code",
            0..=255,
            "give an option number",
        )? as u8;
        let bad = |why: &str| {
            self.invalid(
                Some(t.code.span().start),
                "dhcp.boot.has_option",
                why.to_owned(),
                "give at most one of hex = \"01:*:03\", text = \"...\", number = N (with width = 1, 2 or 4)",
            )
        };
        let (value, at) = match (&t.hex, &t.text, t.number) {
            (None, None, None) => (None, ValueAt::Start),
            (Some(h), None, None) => {
                let v = h
                    .split(':')
                    .map(|b| match b {
                        "*" => Some(None),
                        b => u8::from_str_radix(b, 16).ok().map(Some),
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(&format!("hex {h:?} is not colon-separated bytes")))?;
                (Some(v), ValueAt::Start)
            }
            (None, Some(s), None) => (Some(s.bytes().map(Some).collect()), ValueAt::Anywhere),
            (None, None, Some(n)) => {
                let width = t.width.unwrap_or(1);
                let bytes = n.to_be_bytes();
                let v: Vec<Option<u8>> = match width {
                    1 | 2 | 4 => bytes[8 - width as usize..]
                        .iter()
                        .map(|b| Some(*b))
                        .collect(),
                    _ => return Err(bad("`width` is not 1, 2 or 4")),
                };
                (Some(v), ValueAt::Element)
            }
            _ => return Err(bad("has more than one value")),
        };
        Ok(OptionTest {
            code,
            value,
            at,
            enterprise: t.enterprise.map(|e| e as u32),
        })
    }

    /// `ADDR/PREFIX`, the address made its network's.
    fn network(&self, s: &Spanned<String>, key: &'static str) -> Result<(Ipv4Addr, u8), Error> {
        let parsed = s.get_ref().split_once('/').and_then(|(a, p)| {
            let a: Ipv4Addr = a.parse().ok()?;
            let p: u8 = p.parse().ok().filter(|p| *p <= 32)?;
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            Some((Ipv4Addr::from(u32::from(a) & mask), p))
        });
        parsed.ok_or_else(|| {
            self.invalid(
                Some(s.span().start),
                key,
                format!("is {:?}", s.get_ref()),
                "write ADDR/PREFIX, e.g. \"10.1.0.0/24\"",
            )
        })
    }

    fn pxe_menu(
        &self,
        services: &[file::PxeService],
        prompt: Option<&file::PxePrompt>,
    ) -> Result<Option<pxe::Menu>, Error> {
        if services.is_empty() && prompt.is_none() {
            return Ok(None);
        }
        let mut next_type = pxe::FIRST_FILE_TYPE;
        let mut items = Vec::new();
        for s in services {
            let arch = match s.arch.get_ref() {
                toml::Value::Integer(n) => u16::try_from(*n).ok(),
                toml::Value::String(name) => pxe::arch_by_name(name),
                _ => None,
            }
            .ok_or_else(|| {
                self.invalid(
                    Some(s.arch.span().start),
                    "dhcp.pxe_service.arch",
                    format!("is {:?}", s.arch.get_ref()),
                    "give an option 93 number or a PXE name: x86PC, PC98, IA64_EFI, Alpha, Arc_x86, Intel_Lean_Client, IA32_EFI, x86-64_EFI, Xscale_EFI, BC_EFI, ARM32_EFI, ARM64_EFI",
                )
            })?;
            let boot_type =
                match (&s.file, &s.boot_type) {
                    (Some(_), Some(t)) => return Err(self.invalid(
                        Some(t.span().start),
                        "dhcp.pxe_service.type",
                        "is given with file".into(),
                        "give file (this server's file) or type (another boot server's), not both",
                    )),
                    (Some(_), None) => {
                        let t = next_type;
                        next_type = next_type.saturating_add(1);
                        t
                    }
                    (None, Some(t)) => self.int(
                        t,
                        "dhcp.pxe_service.type",
                        0..=65535,
                        "give a boot server type from 0 (local disk) to 65535",
                    )? as u16,
                    (None, None) => 0,
                };
            items.push(pxe::Item {
                arch,
                text: s.text.clone(),
                boot_type,
                file: s.file.clone(),
                server: s
                    .server
                    .as_ref()
                    .map(|x| self.ip(x, "dhcp.pxe_service.server"))
                    .transpose()?,
                tags: s.tag.clone(),
                not_tags: s.not_tag.clone(),
            });
        }
        let prompt = match prompt {
            None => None,
            Some(p) => Some(pxe::Prompt {
                text: p.text.clone(),
                timeout: match &p.timeout {
                    None => 255,
                    Some(t) => self.int(
                        t,
                        "dhcp.pxe_prompt.timeout",
                        0..=255,
                        "give seconds from 0 to 254, or 255 to wait for a key",
                    )? as u8,
                },
                tags: p.tag.clone(),
                not_tags: p.not_tag.clone(),
            }),
        };
        Ok(Some(pxe::Menu { items, prompt }))
    }

    fn raw_options(&self, opts: &[file::RawOption]) -> Result<Vec<(u8, Vec<u8>)>, Error> {
        opts.iter()
            .map(|o| self.raw_option(&o.code, &o.text, &o.ip, &o.hex))
            .collect()
    }

    fn tagged_options(&self, opts: &[file::TaggedOption]) -> Result<Vec<TaggedOption>, Error> {
        opts.iter()
            .map(|o| {
                let (code, value) = self.raw_option(&o.code, &o.text, &o.ip, &o.hex)?;
                Ok(TaggedOption {
                    tags: o.tag.clone(),
                    not_tags: o.not_tag.clone(),
                    code,
                    value,
                    force: o.force,
                    zero_is_self: o.ip.is_some(),
                })
            })
            .collect()
    }

    fn raw_option(
        &self,
        code: &Spanned<i64>,
        text: &Option<String>,
        ip: &Option<Vec<String>>,
        hex: &Option<String>,
    ) -> Result<(u8, Vec<u8>), Error> {
        {
            let o = code;
            let c = self.int(
                o,
                "options.code",
                1..=254,
                "give an option number from 1 to 254",
            )? as u8;
            let bad = |problem: String| {
                self.invalid(
                    Some(o.span().start),
                    "options",
                    problem,
                    "give exactly one of text = \"...\", ip = [\"10.0.0.1\"], hex = \"0a0b\"",
                )
            };
            let value = match (text, ip, hex) {
                (Some(t), None, None) => t.as_bytes().to_vec(),
                (None, Some(ips), None) => {
                    let mut v = Vec::new();
                    for ip in ips {
                        let ip: Ipv4Addr = ip.parse().map_err(|_| {
                            bad(format!("option {c} has {ip:?}, not an IPv4 address"))
                        })?;
                        v.extend_from_slice(&ip.octets());
                    }
                    v
                }
                (None, None, Some(h)) => {
                    decode_hex(h).ok_or_else(|| bad(format!("option {c} has hex {h:?}")))?
                }
                _ => return Err(bad(format!("option {c} needs one value"))),
            };
            Ok((c, value))
        }
    }
}

pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':' && *c != ' ').collect();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
