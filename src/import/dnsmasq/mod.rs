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

mod directives;
pub mod leases;
mod options;
mod opts;
pub mod read;
mod render;

use directives::*;
use options::*;

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
    /// The (first) interface's network, when known: ranges on it need no
    /// `network`.
    pub iface_net: Option<(Ipv4Addr, u8)>,
    /// Each interface's network, when known (ranges on the others get a
    /// `network`, and their interface tags one).
    pub nets: Vec<(String, (Ipv4Addr, u8))>,
    /// Each interface's IPv4 address (for `listen-address`).
    pub addrs: Vec<(String, Ipv4Addr)>,
    /// The host's /etc/hosts (IPv4): where dnsmasq finds a boot server
    /// given by name.
    pub names: Vec<(String, Ipv4Addr)>,
}

impl Host {
    /// The network of interface `name`, when known.
    pub fn net_of(&self, name: &str) -> Option<(Ipv4Addr, u8)> {
        self.nets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, net)| *net)
    }

    /// The known interface network holding `ip`.
    pub fn net_holding(&self, ip: Ipv4Addr) -> Option<(Ipv4Addr, u8)> {
        self.nets.iter().map(|(_, net)| *net).find(|(n, p)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*p)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(*n)
        })
    }

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

/// Sets `key = value` in the `[tftp]` lines, after the comment `from`; a
/// key set before is replaced (a repeated line: the last counts, as in
/// dnsmasq), so the table never holds a key twice.
fn tftp_set(tftp: &mut String, from: &str, key: &str, value: &str) {
    let prefix = format!("{key} = ");
    let mut lines: Vec<&str> = tftp.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.starts_with(&prefix)) {
        // Its comment line goes with it.
        let start = if i > 0 && lines[i - 1].starts_with('#') {
            i - 1
        } else {
            i
        };
        lines.drain(start..=i);
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "{from}{prefix}{value}");
    *tftp = out;
}

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
    let mut interfaces: Vec<String> = Vec::new();
    let mut excepted: Vec<String> = Vec::new();
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
    let mut interface_roots = String::new();
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
            "listen-address" => {
                // DHCP on the interface that has the address (not loopback).
                for a in v.split(',').filter_map(|a| a.trim().parse::<Ipv4Addr>().ok()) {
                    match host.addrs.iter().find(|(_, x)| *x == a) {
                        Some((name, _)) if !interfaces.contains(name) => interfaces.push(name.clone()),
                        Some(_) => {}
                        None if a.is_loopback() => {}
                        None => note(&mut o, &format!("no interface here has {a}: give --interface"), Severity::Changes),
                    }
                }
            }
            "except-interface" => {
                excepted.extend(v.split(',').map(|n| n.trim().to_owned()));
            }
            "interface" => {
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if name.contains('*') {
                        note(&mut o, "an interface name with `*` is not carried over: name each interface", Severity::Changes);
                    } else if !interfaces.iter().any(|i| i == name) {
                        interfaces.push(name.to_owned());
                    }
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
                let mut parts = v.split(',').map(str::trim);
                let dir = parts.next().unwrap_or("").to_owned();
                match parts.next() {
                    // Requests that reach that interface are served from DIR.
                    Some(iface) if !iface.is_empty() => {
                        let _ = write!(
                            interface_roots,
                            "\n{from}[[tftp.interface_root]]\ninterface = {}\ndir = {}\n",
                            q(iface),
                            q(&dir)
                        );
                    }
                    // As in dnsmasq, the last one counts.
                    _ => tftp_root = Some(dir),
                }
            }
            "tftp-max" => match v.trim().parse::<u32>() {
                Ok(n) => {
                    tftp_set(&mut o.tftp, &from, "max_transfers", &n.to_string());
                }
                Err(_) => note(&mut o, "not a number", Severity::Changes),
            },
            "tftp-no-blocksize" => {
                tftp_set(&mut o.tftp, &from, "blksize", "false");
            }
            "tftp-lowercase" => {
                tftp_set(&mut o.tftp, &from, "lowercase", "true");
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
    encap_options(encaps, &mut o);
    if mode_proxy && !pxe_on {
        o.notes.push(Note {
            at: At { file: PathBuf::new(), line: 0 },
            line: String::new(),
            why: "a proxy dhcp-range without pxe-service: dnsmasq gives no proxy answers then; rackboot answers PXE firmware with the dhcp-boot file".into(),
            severity: Severity::Harmless,
        });
    }
    // Without interface= or listen-address=, dnsmasq answers DHCP on every
    // interface but the excepted ones and loopback, where a range is on its
    // network: the same interfaces, of this host's.
    if interfaces.is_empty() {
        for (name, (n, p)) in &host.nets {
            let mask = u32::MAX.checked_shl(32 - u32::from(*p)).unwrap_or(0);
            let on = |ip: Ipv4Addr| u32::from(ip) & mask == u32::from(*n);
            if name != "lo" && !excepted.contains(name) && ranges.iter().any(|(_, r)| on(r.first)) {
                interfaces.push(name.clone());
            }
        }
    }
    interfaces.retain(|i| !excepted.contains(i));
    let first_net = interfaces.first().and_then(|i| host.net_of(i));
    let host = &Host {
        iface_net: first_net.or(host.iface_net),
        ..host.clone()
    };
    let iface = interfaces.first().cloned().unwrap_or_default();
    if iface.is_empty() {
        o.notes.push(Note {
            at: At { file: PathBuf::new(), line: 0 },
            line: String::new(),
            why: "no `interface=`: dnsmasq then answers on every interface; rackboot answers on one (give --interface)".into(),
            severity: Severity::Harmless,
        });
    }
    for (line, r) in &ranges {
        range_subnet(line, r, host, dns_port, domain.as_deref(), &mut o);
    }
    // The implicit tags: the interface's name, and `known`.
    let mut head = String::new();
    match interfaces.as_slice() {
        [one] if o.used_tags.contains(one) => {
            let _ = write!(head, "\n# dnsmasq tags every request with the interface it came in on\n[[dhcp.boot]]\nset_tag = {}\n", list(std::slice::from_ref(one)));
        }
        several => {
            for name in several.iter().filter(|n| o.used_tags.contains(*n)) {
                // Several interfaces: a request's is the one on its network.
                match host.net_of(name) {
                    Some((n, p)) => {
                        let _ = write!(head, "\n# dnsmasq tags every request with the interface it came in on\n[[dhcp.boot]]\nsubnet = {}\nset_tag = {}\n", q(&format!("{n}/{p}")), list(std::slice::from_ref(name)));
                    }
                    None => o.notes.push(Note {
                        at: At { file: PathBuf::new(), line: 0 },
                        line: String::new(),
                        why: format!("the `{name}` interface tag needs {name}'s network, not known here (run the import on the server)"),
                        severity: Severity::Changes,
                    }),
                }
            }
        }
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
        match interfaces.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(toml, "interface = {}", q(one));
            }
            several => {
                let _ = writeln!(toml, "interface = {}", list(several));
            }
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
        toml.push_str(&interface_roots);
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

#[cfg(test)]
mod tests;
