//! The translation of one directive each: `dhcp-range`, `dhcp-host`,
//! `dhcp-option` (with its encapsulations), `dhcp-match`, `pxe-service`,
//! `read-ethers`, and the small readers they share.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::read::Line;
use super::{comment, hex_text, list, opts, q, tagged, Host, Out, Severity, Tagged};
/// Where `read-ethers` reads.
pub(super) const ETHERS: &str = "/etc/ethers";

/// `read-ethers`: each `MAC ADDRESS` line of /etc/ethers is a reservation
/// (a name instead of an address needs DNS, and is not carried over).
pub(super) fn read_ethers(
    o: &mut Out,
    path: &str,
    from: &str,
    mut note: impl FnMut(&mut Out, &str, Severity),
) {
    let Ok(text) = std::fs::read_to_string(path) else {
        // dnsmasq reads nothing either.
        return;
    };
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        let mut f = line.split_whitespace();
        let (Some(mac), Some(who)) = (f.next(), f.next()) else {
            continue;
        };
        match who.parse::<Ipv4Addr>() {
            Ok(ip) => {
                let _ = write!(
                    o.hosts,
                    "\n{from}{}[[dhcp.host]]\nmac = {}\nip = {}\n",
                    comment(&format!("{path}: {line}")),
                    q(mac),
                    q(&ip.to_string())
                );
            }
            Err(_) => note(
                o,
                &format!("{path}: {line}: a host name there needs DNS to find its address; give the address"),
                Severity::Changes,
            ),
        }
    }
}

pub(super) fn harmless_why(k: &str) -> &'static str {
    match k {
        "no-ping" => "rackboot does not ping before offering unless dhcp.probe_ms is set",
        "bind-interfaces" | "bind-dynamic" => {
            "rackboot binds its DHCP sockets to the interfaces it answers on"
        }
        "dhcp-lease-max" => "rackboot's pools bound the leases",
        "tftp-secure" => "rackboot serves only the files under its root, loaded at start",
        "tftp-port-range" => {
            "rackboot answers transfers from ephemeral ports (or port 69 with tftp.single_port)"
        }
        "dhcp-reply-delay" => "rackboot answers at once",
        "dhcp-ignore-names" => "client-sent names are not used in rackboot's answers",
        "dhcp-no-override" => "rackboot never puts options in the file and sname fields",
        _ => "about dnsmasq's own process or logs: nothing a client sees",
    }
}

pub(super) fn set_and_rest(t: &Tagged<'_>) -> (Option<String>, Vec<String>) {
    match t.set.first() {
        Some(s) => (
            Some(s.clone()),
            t.rest.iter().map(|s| (*s).to_owned()).collect(),
        ),
        None => match t.rest.split_first() {
            // The older form: the tag as a bare first word.
            Some((tag, rest)) => (
                Some((*tag).to_owned()),
                rest.iter().map(|s| (*s).to_owned()).collect(),
            ),
            None => (None, Vec::new()),
        },
    }
}

pub(super) fn tagged_from(tags: &[String]) -> Tagged<'static> {
    let mut t = Tagged::default();
    for x in tags {
        match x.strip_prefix('!') {
            Some(n) => t.not_tags.push(n.to_owned()),
            None => t.tags.push(x.clone()),
        }
    }
    t
}

pub(super) fn rule_tags(out: &mut String, used: &mut BTreeSet<String>, t: &Tagged<'_>) {
    if !t.tags.is_empty() {
        let _ = writeln!(out, "tag = {}", list(&t.tags));
    }
    if !t.not_tags.is_empty() {
        let _ = writeln!(out, "not_tag = {}", list(&t.not_tags));
    }
    used.extend(t.tags.iter().chain(&t.not_tags).cloned());
}

pub(super) fn strip_htype(mac: &str) -> String {
    match mac.split_once('-') {
        Some((t, rest)) if t.len() == 2 && rest.contains(':') => rest.to_owned(),
        _ => mac.to_owned(),
    }
}

/// A `pxe-service` value as the body of a `[[dhcp.pxe_service]]` (its
/// tags left to the caller).
pub(super) fn pxe_service(v: &str, host: &Host) -> Result<String, String> {
    let usage = "expected pxe-service=[tag:TAG,]ARCH,TEXT[,FILE|TYPE][,SERVER-ADDRESS]";
    let t = tagged(v);
    let (arch, text) = match t.rest.as_slice() {
        [arch, text, ..] => (*arch, *text),
        _ => return Err(usage.into()),
    };
    let arch = match crate::proto::dhcp::pxe::arch_by_name(arch) {
        Some(_) => q(arch.trim()),
        None => match arch.trim().parse::<u16>() {
            Ok(n) => n.to_string(),
            Err(_) => return Err(format!("{arch:?} is not a PXE architecture name or number")),
        },
    };
    let mut out = format!("arch = {arch}\ntext = {}\n", q(text));
    if let Some(what) = t.rest.get(2).filter(|x| !x.is_empty()) {
        match what.parse::<u16>() {
            Ok(n) => {
                let _ = writeln!(out, "type = {n}");
            }
            Err(_) => {
                let _ = writeln!(out, "file = {}", q(what));
            }
        }
    }
    if let Some(server) = t.rest.get(3).filter(|x| !x.is_empty()) {
        match server.parse::<Ipv4Addr>().ok().or_else(|| host.resolve(server)) {
            Some(ip) => {
                let _ = writeln!(out, "server = {}", q(&ip.to_string()));
            }
            None => {
                return Err(format!(
                    "boot server {server:?} is not in /etc/hosts, where dnsmasq looks it up: give its address"
                ))
            }
        }
    }
    Ok(out)
}

/// One `dhcp-range`.
#[derive(Debug, Clone)]
pub(super) struct Range {
    pub(super) filter: Vec<String>,
    pub(super) set: Vec<String>,
    pub(super) first: Ipv4Addr,
    pub(super) last: Ipv4Addr,
    pub(super) netmask: Option<Ipv4Addr>,
    pub(super) lease_secs: u32,
    pub(super) proxy: bool,
    pub(super) is_static: bool,
}

pub(super) fn range(v: &str) -> Result<Range, String> {
    let mut filter = Vec::new();
    let mut set = Vec::new();
    let mut parts: Vec<&str> = Vec::new();
    for p in v.split(',').map(str::trim) {
        let addressy = p
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
        if parts.is_empty() && !addressy {
            if let Some(t) = p.strip_prefix("tag:").or_else(|| p.strip_prefix("net:")) {
                filter.push(t.to_owned());
            } else {
                set.push(p.strip_prefix("set:").unwrap_or(p).to_owned());
            }
        } else {
            parts.push(p);
        }
    }
    let bad =
        || format!("dhcp-range {v:?} is not START,END|static|proxy[,NETMASK[,BROADCAST]][,LEASE]");
    let first: Ipv4Addr = parts.first().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let second = parts.get(1).copied().ok_or_else(bad)?;
    let (mut last, proxy, is_static) = match second {
        "proxy" => (first, true, false),
        "static" => (first, false, true),
        s => (s.parse().map_err(|_| bad())?, false, false),
    };
    if parts
        .get(1)
        .is_some_and(|_| u32::from(last) < u32::from(first))
    {
        last = first;
    }
    let mut netmask = None;
    let mut lease_secs = 3600;
    for p in parts.iter().skip(2) {
        if let Ok(ip) = p.parse::<Ipv4Addr>() {
            if netmask.is_none() {
                netmask = Some(ip);
            }
            // A second address is the broadcast address: derived anyway.
        } else if *p == "infinite" {
            lease_secs = u32::MAX;
        } else {
            lease_secs = opts::seconds(p).ok_or_else(bad)?.max(120);
        }
    }
    if lease_secs == u32::MAX {
        // rackboot's longest lease: a year.
        lease_secs = 365 * 86_400;
    }
    Ok(Range {
        filter,
        set,
        first,
        last,
        netmask,
        lease_secs,
        proxy,
        is_static,
    })
}

pub(super) fn dhcp_host(
    o: &mut Out,
    v: &str,
    from: &str,
    mut note: impl FnMut(&mut Out, &str, Severity),
) {
    let mut macs = Vec::new();
    let (mut ip, mut hostname, mut set) = (None, None, Vec::new());
    let (mut ignore, mut id_star) = (false, false);
    // `tag:`: the entry holds only for clients with those tags.
    let mut filter = Tagged::default();
    let mut ids: Vec<Vec<u8>> = Vec::new();
    let mut lease: Option<u32> = None;
    for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if f.contains(':') {
            if let Some(id) = f.strip_prefix("id:") {
                // Hex bytes with colons, else the text itself (dnsmasq's way).
                match id {
                    "*" => id_star = true,
                    _ => ids.push(opts::hex(id).unwrap_or_else(|| id.as_bytes().to_vec())),
                }
            } else if let Some(t) = f.strip_prefix("set:").or_else(|| f.strip_prefix("net:")) {
                set.push(t.to_owned());
            } else if let Some(t) = f.strip_prefix("tag:") {
                match t.strip_prefix('!') {
                    Some(not) => filter.not_tags.push(not.to_owned()),
                    None => filter.tags.push(t.to_owned()),
                }
            } else if f.starts_with('[') {
                // IPv6: not served.
            } else {
                macs.push(strip_htype(f));
            }
        } else if f.contains('.') && f.parse::<Ipv4Addr>().is_ok() {
            ip = f.parse::<Ipv4Addr>().ok();
        } else if f == "ignore" {
            ignore = true;
        } else if f == "infinite" {
            lease = Some(u32::MAX);
        } else if let Some(secs) = opts::seconds(f) {
            // dnsmasq's shortest lease is two minutes.
            lease = Some(secs.max(120));
        } else {
            hostname = Some(f.split('.').next().unwrap_or(f).to_owned());
        }
    }
    let wild = macs.iter().any(|m| m.contains('*'));
    if ignore {
        for m in &macs {
            let _ = write!(o.ignores, "\n{from}[[dhcp.boot]]\nmac = {}\n", q(m));
            rule_tags(&mut o.ignores, &mut o.used_tags, &filter);
            o.ignores.push_str("ignore = true\n");
        }
        return;
    }
    // Reservations by client id (option 61).
    for id in &ids {
        let hex = hex_text(id);
        let _ = write!(o.hosts, "\n{from}[[dhcp.host]]\nclient_id = {}\n", q(&hex));
        host_fields(o, ip, hostname.as_deref(), lease, &filter);
        if !set.is_empty() {
            let _ = write!(
                o.tag_rules,
                "\n{from}[[dhcp.boot]]\nhas_option = [{{ code = 61, hex = {} }}]\n",
                q(&hex)
            );
            rule_tags(&mut o.tag_rules, &mut o.used_tags, &filter);
            let _ = writeln!(o.tag_rules, "set_tag = {}", list(&set));
        }
    }
    if macs.is_empty() {
        if ids.is_empty() {
            note(
                o,
                "a dhcp-host without a MAC or client id (a host by name) is not carried over",
                Severity::Changes,
            );
        }
        return;
    }
    if macs.len() > 1 && ip.is_some() && !wild {
        // One machine, several NICs: one address for whichever asks.
        let _ = write!(o.hosts, "\n{from}[[dhcp.host]]\nmac = {}\n", q(&macs[0]));
        let _ = writeln!(o.hosts, "other_macs = {}", list(&macs[1..]));
        if id_star {
            o.hosts.push_str("ignore_client_id = true\n");
        }
        host_fields(o, ip, hostname.as_deref(), lease, &filter);
        for m in &macs {
            if !set.is_empty() {
                let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\nmac = {}\n", q(m));
                rule_tags(&mut o.tag_rules, &mut o.used_tags, &filter);
                let _ = writeln!(o.tag_rules, "set_tag = {}", list(&set));
            }
        }
        return;
    }
    if wild {
        if ip.is_some() || hostname.is_some() {
            note(
                o,
                "an address or name for a wildcard MAC is not carried over",
                Severity::Changes,
            );
        }
        for m in &macs {
            let _ = write!(
                o.tag_rules,
                "\n{from}[[dhcp.boot]]\nmac = {}\nset_tag = {}\n",
                q(m),
                list(&[set.clone(), vec!["known".into()]].concat())
            );
        }
        return;
    }
    for m in &macs {
        let _ = write!(o.hosts, "\n{from}[[dhcp.host]]\nmac = {}\n", q(m));
        if id_star {
            o.hosts.push_str("ignore_client_id = true\n");
        }
        host_fields(o, ip, hostname.as_deref(), lease, &filter);
        if !set.is_empty() {
            let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\nmac = {}\n", q(m));
            rule_tags(&mut o.tag_rules, &mut o.used_tags, &filter);
            let _ = writeln!(o.tag_rules, "set_tag = {}", list(&set));
        }
    }
}

/// A `[[dhcp.host]]`'s address, name and lease time.
pub(super) fn host_fields(
    o: &mut Out,
    ip: Option<Ipv4Addr>,
    hostname: Option<&str>,
    lease: Option<u32>,
    filter: &Tagged<'_>,
) {
    rule_tags(&mut o.hosts, &mut o.used_tags, filter);
    if let Some(ip) = ip {
        let _ = writeln!(o.hosts, "ip = {}", q(&ip.to_string()));
    }
    if let Some(h) = hostname {
        let _ = writeln!(o.hosts, "hostname = {}", q(h));
    }
    if let Some(l) = lease {
        let _ = writeln!(o.hosts, "lease_secs = {l}");
    }
}

/// A server `dhcp-range` as a `[[dhcp.subnet]]` (a proxy range is none).
pub(super) fn range_subnet(
    line: &Line,
    r: &Range,
    host: &Host,
    dns_port: bool,
    domain: Option<&str>,
    o: &mut Out,
) {
    let from = comment(&format!(
        "{}: dhcp-range={}",
        line.at,
        line.value.as_deref().unwrap_or("")
    ));
    if r.proxy {
        return;
    }
    // Its network: by its netmask, else that of the interface it is on.
    let net = r
        .netmask
        .map(|m| {
            let p = u32::from(m).leading_ones() as u8;
            (Ipv4Addr::from(u32::from(r.first) & u32::from(m)), p)
        })
        .or_else(|| host.net_holding(r.first));
    let _ = write!(o.subnets, "\n{from}[[dhcp.subnet]]\n");
    if let Some((n, p)) = net.filter(|n| host.iface_net != Some(*n)) {
        let _ = writeln!(o.subnets, "network = {}", q(&format!("{n}/{p}")));
    }
    if r.is_static {
        o.subnets.push_str("ranges = []\n");
    } else {
        let _ = writeln!(
            o.subnets,
            "ranges = [{}]",
            q(&format!("{}-{}", r.first, r.last))
        );
    }
    let _ = writeln!(o.subnets, "lease_secs = {}", r.lease_secs);
    // A range only for tagged clients (`tag:` on the range).
    let (not, want): (Vec<&String>, Vec<&String>) =
        r.filter.iter().partition(|t| t.starts_with('!'));
    if !want.is_empty() {
        let want: Vec<String> = want.into_iter().cloned().collect();
        let _ = writeln!(o.subnets, "tag = {}", list(&want));
    }
    if !not.is_empty() {
        let not: Vec<String> = not.iter().map(|t| t[1..].to_owned()).collect();
        let _ = writeln!(o.subnets, "not_tag = {}", list(&not));
    }
    o.used_tags.extend(
        r.filter
            .iter()
            .map(|t| t.trim_start_matches('!').to_owned()),
    );
    if !dns_port {
        o.subnets.push_str("dns = []\n");
    }
    if let Some(d) = domain {
        let _ = writeln!(o.subnets, "domain = {}", q(d));
    }
    if !r.set.is_empty() {
        // The range's clients get its tags (only that range's, when
        // several share the network).
        let _ = writeln!(o.subnets, "set_tag = {}", list(&r.set));
    }
}
