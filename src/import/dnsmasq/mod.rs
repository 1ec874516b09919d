//! dnsmasq's configuration translated into rackboot's: the network-boot
//! directives, with dnsmasq's semantics, written as rackboot TOML (each item
//! under a comment naming the line it came from). `rackboot import` prints
//! it; `rackboot serve --dnsmasq-conf` loads it as it would its own file, so
//! what is printed is what is served.
//!
//! How dnsmasq's tags become rackboot's ordered rules: every source of tags
//! (the interface, `dhcp-match`, `dhcp-vendorclass`, `dhcp-userclass`,
//! `dhcp-mac`, `dhcp-circuitid`, `dhcp-remoteid`, `dhcp-host set:`, ranges'
//! `set:`, `known`) is a rule that only sets tags, in that order, then every
//! `tag-if` in file order (dnsmasq runs them after all other tagging), then
//! `dhcp-ignore`, then the `dhcp-boot` lines in the order dnsmasq tries them:
//! the tagged ones from the last line up, then the untagged ones from the
//! last line up. Options go to `[[dhcp.option]]` from the last line up, so
//! that the first that matches is the one dnsmasq would send, and
//! `send_options = "asked"` sends them only when option 55 asks, as dnsmasq
//! does.

pub mod leases;
mod opts;
pub mod read;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use read::{At, Line};

/// What a line that was not carried over does to the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing any client sees (logging, dnsmasq's own process options).
    Harmless,
    /// DNS, which rackboot does not serve.
    Dns,
    /// HTTP (nginx's configuration): what rackboot's HTTP answers differ in.
    Http,
    /// DHCP or TFTP answers would differ from dnsmasq's.
    Changes,
}

/// A line not carried over, or carried over differently.
#[derive(Debug, Clone)]
pub struct Note {
    /// Where.
    pub at: At,
    /// Its text, `key=value`.
    pub line: String,
    /// Why.
    pub why: String,
    /// What it does to the answers.
    pub severity: Severity,
}

/// A translation.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// rackboot's configuration, as TOML.
    pub toml: String,
    /// Lines not carried over (or not wholly).
    pub notes: Vec<Note>,
    /// dnsmasq's lease file, to import at first start.
    pub lease_file: Option<PathBuf>,
    /// The hosts and options files and directories it read (`--watch`
    /// reloads when they change, as dnsmasq re-reads them).
    pub read: Vec<PathBuf>,
    /// The TFTP root (`tftp-root`), served as rackboot's root.
    pub root: Option<String>,
    /// The text after the top-level keys.
    body: String,
}

impl Imported {
    /// Whether a line that changes DHCP or TFTP answers was not carried over.
    pub fn partial(&self) -> bool {
        self.notes.iter().any(|n| n.severity == Severity::Changes)
    }
}

/// Settings of the machine the translation is for.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The interface's network, when known (for dhcp-range tags on it).
    pub iface_net: Option<(Ipv4Addr, u8)>,
    /// The host's /etc/hosts (IPv4): where dnsmasq finds a boot server
    /// given by name.
    pub names: Vec<(String, Ipv4Addr)>,
}

impl Host {
    /// The address of `name` in the hosts file (any case), as dnsmasq
    /// resolves a boot server's name.
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        self.names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(_, ip)| *ip)
    }
}

/// The IPv4 names of a hosts file (`ADDRESS NAME [ALIAS...]`, `#` comments).
pub fn hosts_file(text: &str) -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        out.extend(words.map(|n| (n.to_owned(), ip)));
    }
    out
}

/// What the translation adds for iPXE (see where it is used).
const NO_PXEDHCP: &str = "
# rackboot adds this one answer to dnsmasq's: iPXE (option 175 in its request)
# is told no ProxyDHCP offer will come (iPXE's 175.176 = 1), so it does not wait
# ~3 s for one. Remove these two items if another server on the link answers
# iPXE with ProxyDHCP offers.
[[dhcp.boot]]
has_option = [{ code = 175 }]
set_tag = [\"rackboot-ipxe\"]

[[dhcp.option]]
code = 175
tag = [\"rackboot-ipxe\"]
hex = \"b0:01:01\"
force = true
";

/// Where Debian's dnsmasq keeps its leases unless `dhcp-leasefile` says.
pub const DNSMASQ_LEASES: &str = "/var/lib/misc/dnsmasq.leases";

/// DNS-only options: kept by dnsmasq, not served by rackboot.
const DNS_ONLY: &[&str] = &[
    "domain-needed",
    "bogus-priv",
    "server",
    "local",
    "address",
    "no-resolv",
    "resolv-file",
    "strict-order",
    "cache-size",
    "no-hosts",
    "addn-hosts",
    "expand-hosts",
    "local-ttl",
    "neg-ttl",
    "max-ttl",
    "min-cache-ttl",
    "all-servers",
    "no-negcache",
    "dns-forward-max",
    "cname",
    "mx-host",
    "srv-host",
    "txt-record",
    "ptr-record",
    "host-record",
    "auth-zone",
    "auth-server",
    "dnssec",
    "trust-anchor",
    "rev-server",
    "stop-dns-rebind",
    "rebind-localhost-ok",
    "filterwin2k",
    "log-queries",
    "query-port",
    "edns-packet-max",
    "local-service",
];

/// Options about dnsmasq's own process and logs: nothing a client sees.
const HARMLESS: &[&str] = &[
    "log-dhcp",
    "log-facility",
    "log-async",
    "user",
    "group",
    "pid-file",
    "keep-in-foreground",
    "no-daemon",
    "bind-interfaces",
    "bind-dynamic",
    "except-interface",
    "listen-address",
    "no-ping",
    "dhcp-reply-delay",
    "dhcp-no-override",
    "dhcp-lease-max",
    "tftp-secure",
    "tftp-port-range",
    "dhcp-script",
    "leasefile-ro",
    "conf-dir",
    "conf-file",
    "quiet-dhcp",
    "dhcp-ignore-names",
    "dhcp-broadcast",
    "clear-on-reload",
    "no-poll",
    "dhcp-sequential-ip",
];

#[derive(Default)]
struct Out {
    top: String,
    dhcp: String,
    subnets: String,
    hosts: String,
    tag_rules: String,
    tag_ifs: String,
    ignores: String,
    boots_tagged: Vec<String>,
    boots_untagged: Vec<String>,
    options: Vec<String>,
    pxe: String,
    tftp: String,
    notes: Vec<Note>,
    used_tags: BTreeSet<String>,
}

/// Tags of a value list: `tag:x` / `net:x` (required), `tag:!x` (forbidden),
/// `set:x` (set), and the rest.
#[derive(Default)]
struct Tagged<'a> {
    tags: Vec<String>,
    not_tags: Vec<String>,
    set: Vec<String>,
    rest: Vec<&'a str>,
}

fn tagged(value: &str) -> Tagged<'_> {
    let mut t = Tagged::default();
    for part in value.split(',').map(str::trim) {
        if let Some(x) = part
            .strip_prefix("tag:")
            .or_else(|| part.strip_prefix("net:"))
        {
            match x.strip_prefix('!').or_else(|| x.strip_prefix('#')) {
                Some(n) => t.not_tags.push(n.to_owned()),
                None => t.tags.push(x.to_owned()),
            }
        } else if let Some(x) = part.strip_prefix("set:") {
            t.set.push(x.to_owned());
        } else {
            t.rest.push(part);
        }
    }
    t
}

/// `s` as a TOML comment line: characters a comment cannot hold (controls
/// but tab) become U+FFFD.
fn comment(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    format!("# {clean}\n")
}

/// `s` as a TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn hex_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `lines` with every `dhcp-hostsfile`/`dhcp-hostsdir` line replaced by the
/// `dhcp-host` lines its files hold, and every `dhcp-optsfile`/`dhcp-optsdir`
/// line by `dhcp-option` lines, each at its own file and line; the files and
/// directories read; and the ones that could not be.
fn expand(lines: &[Line]) -> (Vec<Line>, Vec<PathBuf>, Vec<(Line, String)>) {
    let (mut out, mut read, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines {
        let key = match line.key.as_str() {
            "dhcp-hostsfile" | "dhcp-hostsdir" => "dhcp-host",
            "dhcp-optsfile" | "dhcp-optsdir" => "dhcp-option",
            _ => {
                out.push(line.clone());
                continue;
            }
        };
        let path = PathBuf::from(line.value.as_deref().unwrap_or("").trim());
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| {
                            p.is_file()
                                && !p.file_name().is_some_and(|n| {
                                    let n = n.to_string_lossy();
                                    n.starts_with('.') || n.ends_with('~')
                                })
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        read.push(path);
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    failed.push((line.clone(), format!("cannot read {}: {e}", file.display())));
                    continue;
                }
            };
            for (i, l) in text.lines().enumerate() {
                let l = l.split('#').next().unwrap_or("").trim();
                if !l.is_empty() {
                    out.push(Line {
                        at: At {
                            file: file.clone(),
                            line: i + 1,
                        },
                        key: key.to_owned(),
                        value: Some(l.replace('"', "")),
                    });
                }
            }
        }
    }
    (out, read, failed)
}

/// Translates `lines` (read with [`read::read`]).
pub fn translate(lines: &[Line], host: &Host) -> Imported {
    let (lines, read, failed) = expand(lines);
    let lines = &lines[..];
    let mut o = Out::default();
    for (line, why) in failed {
        o.notes.push(Note {
            line: format!("{}={}", line.key, line.value.unwrap_or_default()),
            at: line.at,
            why,
            severity: Severity::Changes,
        });
    }
    let mut interface: Option<String> = None;
    let mut mode_proxy = false;
    let mut authoritative = false;
    let mut dns_port = true;
    let mut domain: Option<String> = None;
    let mut tftp_root: Option<String> = None;
    let mut tftp_on = false;
    let mut lease_file = None;
    let mut ranges: Vec<(&Line, Range)> = Vec::new();
    let mut encaps: Vec<Encap> = Vec::new();
    let (mut pxe_on, mut pxe_prompt) = (false, false);
    let mut vendors: BTreeSet<String> = BTreeSet::new();
    for line in lines {
        let v = line.value.as_deref().unwrap_or("");
        let text = match &line.value {
            Some(v) => format!("{}={v}", line.key),
            None => line.key.clone(),
        };
        let note = |o: &mut Out, why: &str, severity| {
            o.notes.push(Note {
                at: line.at.clone(),
                line: text.clone(),
                why: why.to_owned(),
                severity,
            });
        };
        let from = comment(&format!("{}: {text}", line.at));
        if v.contains("option6:") || v.contains("enterprise:") {
            note(
                &mut o,
                "DHCPv6 only: rackboot does not serve DHCPv6 yet (its IPv4 answers are unchanged)",
                Severity::Harmless,
            );
            continue;
        }
        match line.key.as_str() {
            "interface" => {
                if interface.is_some() {
                    note(&mut o, "rackboot answers DHCP on one interface: the first `interface` is used", Severity::Changes);
                } else {
                    interface = Some(v.split(',').next().unwrap_or("").trim().to_owned());
                }
            }
            "port" => {
                if v.trim() == "0" {
                    dns_port = false;
                } else {
                    note(&mut o, "not served by rackboot: keep dnsmasq for DNS with `port=` and DHCP off", Severity::Dns);
                }
            }
            "domain" => domain = Some(v.split(',').next().unwrap_or("").trim().to_owned()),
            "dhcp-authoritative" => authoritative = true,
            "dhcp-leasefile" | "dhcp-lease-file" => lease_file = Some(PathBuf::from(v)),
            "enable-tftp" => {
                tftp_on = true;
                if !v.is_empty() {
                    note(&mut o, "rackboot's TFTP answers on every address of its listen address, not per interface", Severity::Harmless);
                }
            }
            "tftp-root" => {
                let mut parts = v.split(',');
                let dir = parts.next().unwrap_or("").trim().to_owned();
                if parts.next().is_some() || tftp_root.is_some() {
                    note(&mut o, "rackboot serves one root: a second or per-interface tftp-root is not carried over", Severity::Changes);
                } else {
                    tftp_root = Some(dir);
                }
            }
            "tftp-max" => match v.trim().parse::<u32>() {
                Ok(n) => {
                    let _ = writeln!(o.tftp, "{from}max_transfers = {n}");
                }
                Err(_) => note(&mut o, "not a number", Severity::Changes),
            },
            "tftp-no-blocksize" => {
                let _ = writeln!(o.tftp, "{from}blksize = false");
            }
            "tftp-lowercase" => {
                let _ = writeln!(o.tftp, "{from}lowercase = true");
            }
            "tftp-unique-root" | "tftp-mtu" => note(
                &mut o,
                "rackboot's TFTP has no such switch (one root for every client; blocks fit the path MTU by itself)",
                Severity::Changes,
            ),
            "dhcp-range" => match range(v) {
                Ok(r) => {
                    if r.proxy {
                        mode_proxy = true;
                    }
                    ranges.push((line, r));
                }
                Err(e) => note(&mut o, &e, Severity::Changes),
            },
            "dhcp-host" => dhcp_host(&mut o, v, &from, |o, why, s| note(o, why, s)),
            "dhcp-boot" => {
                let t = tagged(v);
                let mut rule = String::new();
                let _ = write!(rule, "\n{from}[[dhcp.boot]]\nname = {}\n", q(&format!("dhcp-boot:{}", line.at.line)));
                rule_tags(&mut rule, &mut o.used_tags, &t);
                let file = t.rest.first().copied().unwrap_or("");
                if !file.is_empty() {
                    let _ = writeln!(rule, "file = {}", q(file));
                }
                if let Some(sname) = t.rest.get(1).filter(|s| !s.is_empty()) {
                    let _ = writeln!(rule, "server_name = {}", q(sname));
                }
                if let Some(server) = t.rest.get(2).filter(|s| !s.is_empty()) {
                    // An address, or a name dnsmasq looks up in /etc/hosts.
                    match server.parse::<Ipv4Addr>().ok().or_else(|| host.resolve(server)) {
                        Some(ip) => {
                            let _ = writeln!(rule, "next_server = {}", q(&ip.to_string()));
                        }
                        None => note(&mut o, &format!("boot server {server:?} is not in /etc/hosts, where dnsmasq looks it up: give its address"), Severity::Changes),
                    }
                }
                if file.is_empty() && t.rest.get(1).is_none_or(|s| s.is_empty()) {
                    // Nothing to send: still a rule, so it decides.
                    let _ = writeln!(rule, "server_name = \"\"");
                }
                if t.tags.is_empty() && t.not_tags.is_empty() {
                    o.boots_untagged.push(rule);
                } else {
                    o.boots_tagged.push(rule);
                }
            }
            "dhcp-match" => {
                let t = tagged(v);
                let (set, rest) = set_and_rest(&t);
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                match (set, dhcp_match(&rest)) {
                    (Some(set), Ok(test)) => {
                        let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\nhas_option = [{test}]\nset_tag = {}\n", list(&[set]));
                    }
                    (None, _) => note(&mut o, "no tag to set", Severity::Changes),
                    (_, Err(e)) => note(&mut o, &e, Severity::Changes),
                }
            }
            "dhcp-vendorclass" | "dhcp-userclass" => {
                let t = tagged(v);
                let (set, rest) = set_and_rest(&t);
                match (set, rest.first()) {
                    (Some(set), Some(value)) if !value.starts_with("enterprise:") => {
                        let key = if line.key == "dhcp-vendorclass" { "vendor_contains" } else { "user_class_contains" };
                        let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\n{key} = {}\nset_tag = {}\n", q(value), list(&[set]));
                    }
                    _ => note(&mut o, "expected set:TAG,TEXT (enterprise: is DHCPv6)", Severity::Changes),
                }
            }
            "dhcp-mac" => {
                let t = tagged(v);
                let (set, rest) = set_and_rest(&t);
                match (set, rest.first()) {
                    (Some(set), Some(mac)) => {
                        let mac = strip_htype(mac);
                        let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\nmac = {}\nset_tag = {}\n", q(&mac), list(&[set]));
                    }
                    _ => note(&mut o, "expected set:TAG,MAC", Severity::Changes),
                }
            }
            "dhcp-circuitid" | "dhcp-remoteid" => {
                let t = tagged(v);
                let (set, rest) = set_and_rest(&t);
                let key = if line.key == "dhcp-circuitid" { "circuit_id" } else { "remote_id" };
                let value = rest.join(",");
                let bytes = if value.contains(':') && value.split(':').all(|b| b.len() <= 2 && u8::from_str_radix(b, 16).is_ok()) {
                    opts::hex(&value)
                } else {
                    Some(value.into_bytes())
                };
                match (set, bytes.and_then(|b| String::from_utf8(b).ok())) {
                    (Some(set), Some(text)) => {
                        let _ = write!(o.tag_rules, "\n{from}[[dhcp.boot]]\n{key} = {}\nset_tag = {}\n", q(&text), list(&[set]));
                    }
                    _ => note(&mut o, "only a set: tag and a text (or hex that is text) value are carried over", Severity::Changes),
                }
            }
            "tag-if" => {
                let t = tagged(v);
                if t.set.is_empty() || !t.rest.is_empty() || t.tags.iter().chain(&t.not_tags).any(|x| x.contains('*')) {
                    note(&mut o, "expected set:TAG[,set:TAG...][,tag:TAG...] without wildcards", Severity::Changes);
                } else {
                    let _ = write!(o.tag_ifs, "\n{from}[[dhcp.boot]]\n");
                    rule_tags(&mut o.tag_ifs, &mut o.used_tags, &t);
                    let _ = writeln!(o.tag_ifs, "set_tag = {}", list(&t.set));
                }
            }
            "dhcp-ignore" => {
                let t = tagged(v);
                let _ = write!(o.ignores, "\n{from}[[dhcp.boot]]\nname = {}\n", q(&format!("dhcp-ignore:{}", line.at.line)));
                rule_tags(&mut o.ignores, &mut o.used_tags, &t);
                let _ = writeln!(o.ignores, "ignore = true");
            }
            "dhcp-option" | "dhcp-option-force" => {
                let force = line.key == "dhcp-option-force";
                match dhcp_option(v) {
                    Ok(Opt::Plain { tags, code, value }) => {
                        let mut item = format!("\n{from}[[dhcp.option]]\ncode = {code}\n");
                        rule_tags(&mut item, &mut o.used_tags, &tags);
                        let _ = writeln!(item, "{value}");
                        if force {
                            item.push_str("force = true\n");
                        }
                        o.options.push(item);
                    }
                    Ok(Opt::Encap { tags, parent, code, value, vendor, enterprise }) => {
                        if let Some(class) = vendor.filter(|c| vendors.insert(c.clone())) {
                            let _ = write!(
                                o.tag_rules,
                                "\n{from}# (vendor:{class}: clients whose vendor class holds it)\n[[dhcp.boot]]\nvendor_contains = {}\nset_tag = {}\n",
                                q(&class),
                                list(&[vendor_tag(&class)])
                            );
                        }
                        encaps.push(Encap { from, tags, parent, sub: code, value, force, enterprise });
                    }
                    Err(e) => note(&mut o, &e, Severity::Changes),
                }
            }
            "pxe-service" => match pxe_service(v, host) {
                Ok(item) => {
                    pxe_on = true;
                    let _ = write!(o.pxe, "\n{from}[[dhcp.pxe_service]]\n{item}");
                    let t = tagged(v);
                    rule_tags(&mut o.pxe, &mut o.used_tags, &t);
                }
                Err(e) => note(&mut o, &e, Severity::Changes),
            },
            "pxe-prompt" => {
                let t = tagged(v);
                let text = t.rest.first().copied().unwrap_or("");
                let timeout = t.rest.get(1).map(|x| x.trim().parse::<u8>());
                if pxe_prompt {
                    note(&mut o, "a second pxe-prompt: rackboot keeps the first", Severity::Changes);
                } else if text.is_empty() || matches!(timeout, Some(Err(_))) {
                    note(&mut o, "expected pxe-prompt=[tag:TAG,]TEXT[,SECONDS]", Severity::Changes);
                } else {
                    pxe_on = true;
                    pxe_prompt = true;
                    let _ = write!(o.pxe, "\n{from}[dhcp.pxe_prompt]\ntext = {}\n", q(text));
                    if let Some(Ok(secs)) = timeout {
                        let _ = writeln!(o.pxe, "timeout = {secs}");
                    }
                    rule_tags(&mut o.pxe, &mut o.used_tags, &t);
                }
            }
            "dhcp-pxe-vendor" => note(
                &mut o,
                "rackboot's PXE menus answer vendor class PXEClient only",
                Severity::Changes,
            ),
            "read-ethers" => read_ethers(&mut o, ETHERS, &from, |o, why, s| note(o, why, s)),
            k if DNS_ONLY.contains(&k) => note(
                &mut o,
                "not served by rackboot: keep dnsmasq for DNS with `port=` and DHCP off",
                Severity::Dns,
            ),
            k if HARMLESS.contains(&k) => note(&mut o, harmless_why(k), Severity::Harmless),
            _ => note(&mut o, "not a directive rackboot's importer knows", Severity::Changes),
        }
    }
    // Encapsulated options: one parent option per (tags, parent), its
    // sub-options in file order.
    struct Group {
        key: String,
        from: String,
        tags: Vec<String>,
        parent: u8,
        enterprise: Option<u32>,
        value: Vec<u8>,
        force: bool,
    }
    let mut groups: Vec<Group> = Vec::new();
    for e in encaps {
        let key = format!("{:?}|{:?}", e.tags.tags, e.tags.not_tags);
        let mut sub = vec![e.sub, u8::try_from(e.value.len()).unwrap_or(255)];
        sub.extend_from_slice(&e.value);
        match groups
            .iter_mut()
            .find(|g| g.key == key && g.parent == e.parent && g.enterprise == e.enterprise)
        {
            Some(g) => {
                g.value.extend_from_slice(&sub);
                g.from.push_str(&e.from);
                g.force |= e.force;
            }
            None => groups.push(Group {
                key,
                from: e.from,
                tags: e
                    .tags
                    .tags
                    .iter()
                    .cloned()
                    .chain(e.tags.not_tags.iter().map(|t| format!("!{t}")))
                    .collect(),
                parent: e.parent,
                enterprise: e.enterprise,
                value: sub,
                force: e.force,
            }),
        }
    }
    // An option's value: encapsulated sub-options end with an END (255), as
    // dnsmasq sends them; vendor-identifying ones (option 125, RFC 3925) are
    // one block per enterprise, the blocks of one client's tags in one
    // option.
    let mut merged: Vec<Group> = Vec::new();
    for mut g in groups {
        match g.enterprise {
            None => g.value.push(255),
            Some(e) => {
                let mut block = e.to_be_bytes().to_vec();
                block.push(u8::try_from(g.value.len()).unwrap_or(255));
                block.extend_from_slice(&g.value);
                g.value = block;
            }
        }
        match merged
            .iter_mut()
            .find(|m| m.enterprise.is_some() && g.enterprise.is_some() && m.key == g.key)
        {
            Some(m) => {
                m.value.extend_from_slice(&g.value);
                m.from.push_str(&g.from);
                m.force |= g.force;
            }
            None => merged.push(g),
        }
    }
    for g in merged {
        let t = tagged_from(&g.tags);
        let mut item = format!("\n{}[[dhcp.option]]\ncode = {}\n", g.from, g.parent);
        rule_tags(&mut item, &mut o.used_tags, &t);
        let _ = writeln!(item, "hex = {}", q(&hex_text(&g.value)));
        // Sent when the client asks for the parent option, or when one of
        // them is forced (dhcp-option-force).
        if g.force {
            item.push_str("force = true\n");
        }
        o.options.push(item);
    }
    if mode_proxy && !pxe_on {
        o.notes.push(Note {
            at: At { file: PathBuf::new(), line: 0 },
            line: String::new(),
            why: "a proxy dhcp-range without pxe-service: dnsmasq gives no proxy answers then; rackboot answers PXE firmware with the dhcp-boot file".into(),
            severity: Severity::Harmless,
        });
    }
    let iface = interface.clone().unwrap_or_default();
    if iface.is_empty() {
        o.notes.push(Note {
            at: At { file: PathBuf::new(), line: 0 },
            line: String::new(),
            why: "no `interface=`: dnsmasq then answers on every interface; rackboot answers on one (give --interface)".into(),
            severity: Severity::Harmless,
        });
    }
    for (line, r) in &ranges {
        let from = comment(&format!(
            "{}: dhcp-range={}",
            line.at,
            line.value.as_deref().unwrap_or("")
        ));
        if r.proxy {
            continue;
        }
        let net = r.netmask.map(|m| {
            let p = u32::from(m).leading_ones() as u8;
            (Ipv4Addr::from(u32::from(r.first) & u32::from(m)), p)
        });
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
        if let Some(d) = &domain {
            let _ = writeln!(o.subnets, "domain = {}", q(d));
        }
        if !r.set.is_empty() {
            // The range's clients get its tags (only that range's, when
            // several share the network).
            let _ = writeln!(o.subnets, "set_tag = {}", list(&r.set));
        }
    }
    // The implicit tags: the interface's name, and `known`.
    let mut head = String::new();
    if !iface.is_empty() && o.used_tags.contains(&iface) {
        let _ = write!(head, "\n# dnsmasq tags every request with the interface it came in on\n[[dhcp.boot]]\nset_tag = {}\n", list(std::slice::from_ref(&iface)));
    }
    if o.used_tags.contains("known") {
        head.push_str("\n# dnsmasq tags a client with a dhcp-host `known`\n[[dhcp.boot]]\nknown = true\nset_tag = [\"known\"]\n");
    }
    let mut toml = String::new();
    toml.push_str(&o.top);
    // dnsmasq answers DHCP only with a dhcp-range.
    if ranges.is_empty() {
        if !(o.subnets.is_empty()
            && o.hosts.is_empty()
            && o.boots_tagged.is_empty()
            && o.boots_untagged.is_empty())
        {
            o.notes.push(Note {
                at: At {
                    file: PathBuf::new(),
                    line: 0,
                },
                line: String::new(),
                why: "no dhcp-range: dnsmasq answers no DHCP, and neither does the translation"
                    .into(),
                severity: Severity::Harmless,
            });
        }
    } else {
        toml.push_str("\n[dhcp]\n");
        if !iface.is_empty() {
            let _ = writeln!(toml, "interface = {}", q(&iface));
        }
        if mode_proxy {
            toml.push_str("mode = \"proxy\"\n");
        }
        let _ = writeln!(
            toml,
            "authoritative = {authoritative}   # dnsmasq: dhcp-authoritative"
        );
        if !mode_proxy {
            let leases = lease_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(DNSMASQ_LEASES));
            let _ = writeln!(
                toml,
                "import_leases = {}   # dnsmasq's leases, read into an empty journal",
                q(&leases.display().to_string())
            );
        }
        toml.push_str(
            "send_options = \"asked\"   # as dnsmasq: options only when option 55 asks\n",
        );
        toml.push_str(
            "default_rules = false     # only dnsmasq's dhcp-boot lines decide what boots\n",
        );
        toml.push_str("router_advertisement = false\n");
        toml.push_str(&o.dhcp);
        toml.push_str(&o.subnets);
        toml.push_str(&o.hosts);
        toml.push_str(&head);
        toml.push_str(&o.tag_rules);
        toml.push_str(&o.tag_ifs);
        toml.push_str(&o.ignores);
        for r in o
            .boots_tagged
            .iter()
            .rev()
            .chain(o.boots_untagged.iter().rev())
        {
            toml.push_str(r);
        }
        for item in o.options.iter().rev() {
            toml.push_str(item);
        }
        toml.push_str(&o.pxe);
        // The one answer rackboot adds to dnsmasq's: iPXE is told that no
        // ProxyDHCP offer will come (175.176), so it does not wait ~3 s for
        // one after its DHCP. Left out when the configuration sends option
        // 175 itself, and in proxy mode (where a ProxyDHCP server is expected).
        let sends_175 = o.options.iter().any(|x| x.contains("\ncode = 175\n"));
        if !mode_proxy && !sends_175 {
            toml.push_str(NO_PXEDHCP);
        }
    }
    if tftp_on || !o.tftp.is_empty() {
        toml.push_str("\n[tftp]\nlisten = \"0.0.0.0:69\"\n");
        toml.push_str(&o.tftp);
    }
    let mut out = Imported {
        toml: String::new(),
        notes: o.notes,
        lease_file,
        read,
        root: tftp_root,
        body: toml,
    };
    out.toml = out.render(None);
    out
}

impl Imported {
    /// The translation with nginx's (when given): one root (dnsmasq's TFTP
    /// root, else nginx's; nginx's beside it when both), nginx's listen
    /// address and its locations as `[[mount]]`s, and its notes.
    pub fn with_nginx(mut self, nginx: crate::import::nginx::Nginx) -> Self {
        self.toml = self.render(Some(&nginx));
        self.notes.extend(nginx.notes);
        self
    }

    /// nginx's configuration alone (dnsmasq stays, or there is none).
    pub fn nginx_only(nginx: crate::import::nginx::Nginx) -> Self {
        Self::default().with_nginx(nginx)
    }

    fn render(&self, nginx: Option<&crate::import::nginx::Nginx>) -> String {
        let mut t = String::from(
            "# rackboot configuration translated from dnsmasq's (`rackboot import`).\n",
        );
        let nginx_root = nginx
            .and_then(|n| n.root.as_ref())
            .map(|r| r.display().to_string());
        let root = self.root.clone().or_else(|| nginx_root.clone());
        if let Some(r) = &root {
            let _ = writeln!(t, "root = {}", q(r));
        }
        t.push_str(&self.body);
        let Some(n) = nginx else {
            return t;
        };
        if let (Some(r), true) = (&nginx_root, root != nginx_root) {
            let _ = write!(t, "\n# nginx's root, served beside the TFTP root\n[[mount]]\npath = \"/\"\ndir = {}\n", q(r));
        }
        for (prefix, dir) in &n.mounts {
            let _ = write!(
                t,
                "\n{}[[mount]]\npath = {}\ndir = {}\n",
                comment(&format!("nginx location {prefix}")),
                q(prefix),
                q(&dir.display().to_string())
            );
        }
        if let Some(addr) = n.listen {
            let _ = write!(
                t,
                "\n# nginx's listen\n[http]\nlisten = {}\n",
                q(&addr.to_string())
            );
        }
        t
    }
}

/// Where `read-ethers` reads.
const ETHERS: &str = "/etc/ethers";

/// `read-ethers`: each `MAC ADDRESS` line of /etc/ethers is a reservation
/// (a name instead of an address needs DNS, and is not carried over).
fn read_ethers(
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

fn harmless_why(k: &str) -> &'static str {
    match k {
        "no-ping" => "rackboot does not ping before offering unless dhcp.probe_ms is set",
        "bind-interfaces" | "bind-dynamic" | "except-interface" | "listen-address" => {
            "rackboot binds its DHCP sockets to the one interface it answers on"
        }
        "dhcp-lease-max" => "rackboot's pools bound the leases",
        "tftp-secure" => "rackboot serves only the files under its root, loaded at start",
        "tftp-port-range" => {
            "rackboot answers transfers from ephemeral ports (or port 69 with tftp.single_port)"
        }
        "dhcp-reply-delay" => "rackboot answers at once",
        "dhcp-ignore-names" => "client-sent names are not used in rackboot's answers",
        _ => "about dnsmasq's own process or logs: nothing a client sees",
    }
}

fn set_and_rest(t: &Tagged<'_>) -> (Option<String>, Vec<String>) {
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

fn tagged_from(tags: &[String]) -> Tagged<'static> {
    let mut t = Tagged::default();
    for x in tags {
        match x.strip_prefix('!') {
            Some(n) => t.not_tags.push(n.to_owned()),
            None => t.tags.push(x.clone()),
        }
    }
    t
}

fn rule_tags(out: &mut String, used: &mut BTreeSet<String>, t: &Tagged<'_>) {
    if !t.tags.is_empty() {
        let _ = writeln!(out, "tag = {}", list(&t.tags));
    }
    if !t.not_tags.is_empty() {
        let _ = writeln!(out, "not_tag = {}", list(&t.not_tags));
    }
    used.extend(t.tags.iter().chain(&t.not_tags).cloned());
}

fn strip_htype(mac: &str) -> String {
    match mac.split_once('-') {
        Some((t, rest)) if t.len() == 2 && rest.contains(':') => rest.to_owned(),
        _ => mac.to_owned(),
    }
}

/// A `pxe-service` value as the body of a `[[dhcp.pxe_service]]` (its
/// tags left to the caller).
fn pxe_service(v: &str, host: &Host) -> Result<String, String> {
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
struct Range {
    filter: Vec<String>,
    set: Vec<String>,
    first: Ipv4Addr,
    last: Ipv4Addr,
    netmask: Option<Ipv4Addr>,
    lease_secs: u32,
    proxy: bool,
    is_static: bool,
}

fn range(v: &str) -> Result<Range, String> {
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

fn dhcp_host(o: &mut Out, v: &str, from: &str, mut note: impl FnMut(&mut Out, &str, Severity)) {
    let mut macs = Vec::new();
    let (mut ip, mut hostname, mut set) = (None, None, Vec::new());
    let (mut ignore, mut tag_filter, mut id_star) = (false, false, false);
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
            } else if f.starts_with("tag:") {
                tag_filter = true;
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
    if id_star {
        note(
            o,
            "`id:*` (ignore this host's client id) is not carried over: rackboot keys a lease by option 61 when the client sends one",
            Severity::Changes,
        );
    }
    if tag_filter {
        note(
            o,
            "a reservation only for tagged clients (`tag:`) is not carried over",
            Severity::Changes,
        );
    }
    let wild = macs.iter().any(|m| m.contains('*'));
    if ignore {
        for m in &macs {
            let _ = write!(
                o.ignores,
                "\n{from}[[dhcp.boot]]\nmac = {}\nignore = true\n",
                q(m)
            );
        }
        return;
    }
    // Reservations by client id (option 61).
    for id in &ids {
        let hex = hex_text(id);
        let _ = write!(o.hosts, "\n{from}[[dhcp.host]]\nclient_id = {}\n", q(&hex));
        host_fields(o, ip, hostname.as_deref(), lease);
        if !set.is_empty() {
            let _ = write!(
                o.tag_rules,
                "\n{from}[[dhcp.boot]]\nhas_option = [{{ code = 61, hex = {} }}]\nset_tag = {}\n",
                q(&hex),
                list(&set)
            );
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
    if macs.len() > 1 && ip.is_some() {
        note(o, "one address for several MACs is not carried over: rackboot reserves one address per MAC", Severity::Changes);
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
        host_fields(o, ip, hostname.as_deref(), lease);
        if !set.is_empty() {
            let _ = write!(
                o.tag_rules,
                "\n{from}[[dhcp.boot]]\nmac = {}\nset_tag = {}\n",
                q(m),
                list(&set)
            );
        }
    }
}

/// A `[[dhcp.host]]`'s address, name and lease time.
fn host_fields(o: &mut Out, ip: Option<Ipv4Addr>, hostname: Option<&str>, lease: Option<u32>) {
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

/// A `dhcp-match` value (after the tag): an option and what it must hold.
fn dhcp_match(rest: &[&str]) -> Result<String, String> {
    let Some((opt, values)) = rest.split_first() else {
        return Err("dhcp-match names no option".into());
    };
    let (code, kind, enterprise) = if let Some(e) = opt.strip_prefix("vi-encap:") {
        let e: u32 = e
            .parse()
            .map_err(|_| format!("vi-encap:{e} is not a number"))?;
        (0, opts::Kind::Any, Some(e))
    } else if opt.starts_with("option6:") {
        return Err("option6: is DHCPv6, which rackboot does not serve yet".into());
    } else {
        let (code, kind) = option_code(opt)?;
        (code, kind, None)
    };
    let mut test = format!("{{ code = {code}");
    if let Some(e) = enterprise {
        let _ = write!(test, ", enterprise = {e}");
    }
    let value = values.join(",");
    let hexy = value.contains(':')
        && value
            .split(':')
            .all(|b| b == "*" || (b.len() <= 2 && u8::from_str_radix(b, 16).is_ok()));
    if !value.is_empty() {
        if hexy {
            let _ = write!(test, ", hex = {}", q(&value));
        } else if value.bytes().all(|b| b.is_ascii_digit()) {
            let n: u64 = value
                .parse()
                .ok()
                .filter(|n| *n <= u64::from(u32::MAX))
                .ok_or_else(|| format!("{value} is too large for an option value"))?;
            let width = match kind {
                opts::Kind::Number(w) => w,
                _ if n < 256 => 1,
                _ if n < 65536 => 2,
                _ => 4,
            };
            if width < 4 && n >> (8 * u32::from(width)) != 0 {
                return Err(format!("{n} does not fit the option's {width} byte(s)"));
            }
            let _ = write!(test, ", number = {n}, width = {width}");
        } else {
            let _ = write!(test, ", text = {}", q(&value));
        }
    }
    test.push_str(" }");
    Ok(test)
}

fn option_code(opt: &str) -> Result<(u8, opts::Kind), String> {
    if let Some(name) = opt.strip_prefix("option:") {
        return opts::by_name(name)
            .ok_or_else(|| format!("option:{name} is not an option name dnsmasq knows"));
    }
    let code: u8 = opt
        .parse()
        .map_err(|_| format!("{opt:?} is not an option number or option:NAME"))?;
    Ok((code, opts::kind_of(code)))
}

enum Opt<'a> {
    Plain {
        tags: Tagged<'a>,
        code: u8,
        value: String,
    },
    Encap {
        tags: Tagged<'a>,
        parent: u8,
        code: u8,
        value: Vec<u8>,
        /// `vendor:CLASS`: only for clients whose vendor class holds CLASS.
        vendor: Option<String>,
        /// `vi-encap:N`: the enterprise number (option 125).
        enterprise: Option<u32>,
    },
}

struct Encap {
    from: String,
    tags: Tagged<'static>,
    parent: u8,
    sub: u8,
    value: Vec<u8>,
    force: bool,
    /// vi-encap: its enterprise number (the parent is option 125).
    enterprise: Option<u32>,
}

/// The tag a `vendor:CLASS` option's clients get.
fn vendor_tag(class: &str) -> String {
    format!("vendor-class:{class}")
}

fn dhcp_option(v: &str) -> Result<Opt<'static>, String> {
    let t = tagged(v);
    let mut rest = t.rest.iter().copied().peekable();
    let mut parent = None;
    let mut vendor = None;
    let mut enterprise = None;
    while let Some(p) = rest.peek().copied() {
        if let Some(n) = p.strip_prefix("encap:") {
            parent = Some(
                n.parse::<u8>()
                    .map_err(|_| format!("encap:{n} is not an option number"))?,
            );
            rest.next();
        } else if let Some(class) = p.strip_prefix("vendor:") {
            // Option 43's sub-options, for clients of that vendor class.
            if class.is_empty() {
                return Err("vendor: names no vendor class".into());
            }
            parent = Some(43);
            vendor = Some(class.to_owned());
            rest.next();
        } else if let Some(n) = p.strip_prefix("vi-encap:") {
            // Option 125's sub-options under enterprise number N.
            enterprise = Some(
                n.parse::<u32>()
                    .map_err(|_| format!("vi-encap:{n} is not an enterprise number"))?,
            );
            parent = Some(125);
            rest.next();
        } else if p.starts_with("option6:") {
            return Err(format!("{p} options are not carried over yet"));
        } else {
            break;
        }
    }
    let opt = rest.next().ok_or("dhcp-option names no option")?;
    let (code, kind) = option_code(opt)?;
    let values: Vec<&str> = rest.collect();
    // Set tags in dhcp-option are conditions in dnsmasq (an old form).
    let mut tags = Tagged {
        tags: t
            .tags
            .iter()
            .cloned()
            .chain(t.set.iter().cloned())
            .collect(),
        not_tags: t.not_tags.clone(),
        ..Tagged::default()
    };
    tags.rest.clear();
    if let Some(class) = &vendor {
        tags.tags.push(vendor_tag(class));
    }
    if let Some(parent) = parent {
        // A sub-option's number says nothing of its type (dnsmasq reads the
        // value as it looks: addresses, hex, a number, else text).
        let value = opts::encode(opts::Kind::Any, &values)?.unwrap_or_default();
        return Ok(Opt::Encap {
            tags,
            parent,
            code,
            value,
            vendor,
            enterprise,
        });
    }
    let kind = if kind == opts::Kind::Internal && opt.parse::<u8>().is_ok() {
        opts::Kind::Any
    } else {
        kind
    };
    let value = match opts::encode(kind, &values)? {
        None => "hex = \"\"".to_owned(),
        Some(bytes)
            if kind == opts::Kind::Ips
                || (kind == opts::Kind::Any
                    && values.iter().all(|v| v.parse::<Ipv4Addr>().is_ok())) =>
        {
            let _ = bytes;
            format!(
                "ip = {}",
                list(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
            )
        }
        Some(bytes) if kind == opts::Kind::Text => {
            format!("text = {}", q(&String::from_utf8_lossy(&bytes)))
        }
        Some(bytes) => format!("hex = {}", q(&hex_text(&bytes))),
    };
    Ok(Opt::Plain { tags, code, value })
}

#[cfg(test)]
mod tests;
