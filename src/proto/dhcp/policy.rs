//! The boot policy: an ordered list of rules, evaluated per request. A rule that
//! matches adds its tags; the first matching rule with a boot action decides
//! what the client boots (dnsmasq's `dhcp-match`/`tag:` model, in one list).

use std::net::Ipv4Addr;

use crate::proto::boot::{Facts, Loader, Mac, Profiles};
use crate::wire::dhcp::{code, relay, Options};

/// iPXE's `${buildarch}` and `${platform}` for a client architecture (option
/// 93, RFC 4578 and IANA's registry), so that a profile's `match` reads a
/// DHCP request as it reads an iPXE script request.
pub fn arch_names(arch: u16) -> (&'static str, &'static str) {
    match arch {
        0 => ("i386", "pcbios"),
        6 => ("i386", "efi"),
        7 | 9 | 16 => ("x86_64", "efi"),
        10 | 18 => ("arm32", "efi"),
        11 | 19 => ("arm64", "efi"),
        25 | 26 => ("riscv32", "efi"),
        27 | 28 => ("riscv64", "efi"),
        _ => ("", ""),
    }
}

/// What a rule looks at. Every field given must match; an empty `Match` matches
/// every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Client architectures (option 93), any of.
    pub arch: Vec<u16>,
    /// Vendor class (option 60) prefix, e.g. `PXEClient`, `HTTPClient`, `d-i`.
    pub vendor: Option<Vec<u8>>,
    /// A user class (option 77) item.
    pub user_class: Option<Vec<u8>>,
    /// Whether the client is iPXE (user class `iPXE` or option 175).
    pub ipxe: Option<bool>,
    /// MAC address prefix (all six bytes for one machine).
    pub mac: Option<Vec<u8>>,
    /// Client UUID (option 97's 16 bytes).
    pub uuid: Option<[u8; 16]>,
    /// Relay agent address (giaddr).
    pub relay: Option<Ipv4Addr>,
    /// Relay agent circuit id (option 82.1).
    pub circuit_id: Option<Vec<u8>>,
    /// Relay agent remote id (option 82.2).
    pub remote_id: Option<Vec<u8>>,
    /// Options the request must carry, each present or with a value
    /// (dnsmasq's `dhcp-match`).
    pub option: Vec<OptionTest>,
    /// The whole MAC, `None` bytes matching any (dnsmasq's `dhcp-mac`).
    pub mac_glob: Option<Vec<Option<u8>>>,
    /// Vendor class (option 60) containing these bytes (`dhcp-vendorclass`).
    pub vendor_has: Option<Vec<u8>>,
    /// A user class (option 77) item containing these bytes (`dhcp-userclass`).
    pub user_class_has: Option<Vec<u8>>,
    /// The subnet the client is answered in (`network`, `prefix`).
    pub network: Option<(Ipv4Addr, u8)>,
    /// Whether the client has a reservation (`[[dhcp.host]]`).
    pub known: Option<bool>,
    /// The loader of the profile the client would get (`[[profile]]`
    /// `loader`), chosen from what its request says.
    pub loader: Option<Loader>,
    /// Tags set by earlier rules, all of.
    pub tags: Vec<String>,
    /// Tags that must not be set.
    pub not_tags: Vec<String>,
}

/// One option a request must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionTest {
    /// Its number.
    pub code: u8,
    /// Its value: bytes, `None` matching any byte; `None` for "present".
    pub value: Option<Vec<Option<u8>>>,
    /// Where in the option the value must be.
    pub at: ValueAt,
    /// Inside vendor-identifying option 125, for this enterprise number.
    pub enterprise: Option<u32>,
}

/// Where a matched value sits in an option (dnsmasq's `match_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueAt {
    /// At its start (hex bytes).
    #[default]
    Start,
    /// Anywhere in it (text).
    Anywhere,
    /// Equal to one of its elements of the value's width (a number or an
    /// address in a list, e.g. one of option 93's architectures).
    Element,
}

/// An option sent when its tags match (dnsmasq's `dhcp-option`): per option
/// number, the tagged ones that match win over untagged ones, and of those
/// the first listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedOption {
    /// Tags required, all of.
    pub tags: Vec<String>,
    /// Tags forbidden.
    pub not_tags: Vec<String>,
    /// Its number.
    pub code: u8,
    /// Its value.
    pub value: Vec<u8>,
    /// Sent even when the client's option 55 does not ask for it.
    pub force: bool,
    /// Its value is addresses, and 0.0.0.0 means the server's own.
    pub zero_is_self: bool,
}

/// What a matching rule makes the server answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    /// Boot file: a TFTP file name, or an `http://` URL. `{server}` becomes the
    /// server's address, `{http}` its HTTP `host:port`, `{mac}` the client's MAC.
    pub file: Option<String>,
    /// Next server (siaddr) for a TFTP file; the server itself when unset.
    pub next_server: Option<Ipv4Addr>,
    /// Send iPXE option 175.176 (`no-pxedhcp`), so iPXE skips its ProxyDHCP wait.
    pub no_pxedhcp: bool,
    /// Extra options, by number, as raw values.
    pub options: Vec<(u8, Vec<u8>)>,
    /// The server name field (sname) of the reply.
    pub server_name: Option<String>,
    /// Answer nothing at all.
    pub ignore: bool,
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// A name for logs (`boot[3]` when the config gives none).
    pub name: String,
    /// When it applies.
    pub when: Match,
    /// Tags it sets when it matches.
    pub set_tags: Vec<String>,
    /// Its answer; a rule without one only sets tags.
    pub action: Option<Action>,
}

/// What a firmware's DHCP request says about the machine, as `[[dhcp.boot]]`
/// rules match it: option 93, option 60, iPXE's marks, chaddr, giaddr. It is
/// borrowed from the datagram (matched per packet without a copy), where the
/// profiles' facts (`proto::boot::Facts`) are owned strings from an iPXE
/// script request's query, read once per script; the two share only the MAC,
/// so they are two types.
#[derive(Debug, Clone)]
pub struct Firmware<'a> {
    /// Option 93.
    pub arch: Option<u16>,
    /// Option 60.
    pub vendor: Option<std::borrow::Cow<'a, [u8]>>,
    /// iPXE (user class or 175).
    pub ipxe: bool,
    /// chaddr.
    pub mac: &'a [u8],
    /// giaddr, when relayed.
    pub relay: Option<Ipv4Addr>,
    /// The subnet the client is answered in, when known.
    pub network: Option<(Ipv4Addr, u8)>,
    /// Whether it has a reservation.
    pub known: bool,
    /// The boot profiles, when rules ask for a client's loader.
    pub profiles: Option<&'a Profiles>,
    options: &'a Options<'a>,
}

impl<'a> Firmware<'a> {
    /// The facts of a request.
    pub fn of(options: &'a Options<'a>, chaddr: &'a [u8], giaddr: Ipv4Addr) -> Self {
        Self {
            arch: options.client_arch(),
            vendor: options.get(code::VENDOR_CLASS),
            ipxe: options.is_ipxe(),
            mac: chaddr,
            relay: (!giaddr.is_unspecified()).then_some(giaddr),
            network: None,
            known: false,
            profiles: None,
            options,
        }
    }

    /// The loader of the profile this client would get: its MAC, its
    /// architecture (option 93) and platform as a profile's `match` reads
    /// them, its inventory entry and labels. A UUID or hostname is not known
    /// at DHCP time, so a profile that matches only on those is not chosen
    /// here (pin such machines to it in `[[machine]]`).
    pub fn loader(&self) -> Loader {
        let (Some(profiles), Ok(mac)) = (self.profiles, <[u8; 6]>::try_from(self.mac)) else {
            return Loader::Ipxe;
        };
        let (arch, platform) = self.arch.map_or(("", ""), arch_names);
        let facts = Facts {
            mac: Some(Mac(mac)),
            arch: arch.into(),
            platform: platform.into(),
            ..Facts::default()
        };
        profiles.loader_for(&facts)
    }

    /// Whether the vendor class starts with `prefix`.
    pub fn vendor_is(&self, prefix: &[u8]) -> bool {
        self.vendor
            .as_deref()
            .is_some_and(|v| v.starts_with(prefix))
    }

    /// A PXE or UEFI HTTP boot client (the ones proxyDHCP answers).
    pub fn is_pxe(&self) -> bool {
        self.vendor_is(b"PXEClient") || self.vendor_is(b"HTTPClient")
    }

    /// A UEFI HTTP boot client.
    pub fn is_http_client(&self) -> bool {
        self.vendor_is(b"HTTPClient")
    }
}

impl Match {
    fn matches(&self, f: &Firmware<'_>, tags: &[&str]) -> bool {
        if !self.arch.is_empty() && !f.arch.is_some_and(|a| self.arch.contains(&a)) {
            return false;
        }
        if let Some(v) = &self.vendor {
            if !f.vendor_is(v) {
                return false;
            }
        }
        if let Some(u) = &self.user_class {
            if !f.options.has_user_class(u) {
                return false;
            }
        }
        if self.ipxe.is_some_and(|want| want != f.ipxe) {
            return false;
        }
        if let Some(m) = &self.mac {
            if !f.mac.starts_with(m) {
                return false;
            }
        }
        if let Some(g) = &self.mac_glob {
            if !glob_equal(g, f.mac) {
                return false;
            }
        }
        if let Some(v) = &self.vendor_has {
            if !f.vendor.as_deref().is_some_and(|got| contains(got, v)) {
                return false;
            }
        }
        if let Some(u) = &self.user_class_has {
            let items = f.options.get(code::USER_CLASS);
            if !items.as_deref().is_some_and(|got| contains(got, u)) {
                return false;
            }
        }
        if self.network.is_some() && self.network != f.network {
            return false;
        }
        if self.known.is_some_and(|k| k != f.known) {
            return false;
        }
        if self.loader.is_some_and(|l| l != f.loader()) {
            return false;
        }
        for t in &self.option {
            let got = match t.enterprise {
                Some(e) => f.options.vendor_class_of(e),
                None => f.options.get(t.code).map(|v| v.into_owned()),
            };
            let fits = match (&got, &t.value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(got), Some(want)) => match t.at {
                    ValueAt::Start => {
                        got.len() >= want.len() && glob_equal(want, &got[..want.len()])
                    }
                    ValueAt::Anywhere => glob_within(want, got),
                    ValueAt::Element => {
                        !want.is_empty() && got.chunks(want.len()).any(|c| glob_equal(want, c))
                    }
                },
            };
            if !fits {
                return false;
            }
        }
        if let Some(u) = &self.uuid {
            // Option 97: a type byte (0) then the 16-byte UUID.
            let got = f.options.get(code::UUID);
            if got.as_deref().and_then(|v| v.get(1..17)) != Some(&u[..]) {
                return false;
            }
        }
        if self.relay.is_some() && self.relay != f.relay {
            return false;
        }
        for (want, sub) in [
            (&self.circuit_id, relay::CIRCUIT_ID),
            (&self.remote_id, relay::REMOTE_ID),
        ] {
            if let Some(want) = want {
                if f.options.sub(code::RELAY_AGENT, sub).as_ref() != Some(want) {
                    return false;
                }
            }
        }
        self.tags.iter().all(|t| tags.contains(&t.as_str()))
            && !self.not_tags.iter().any(|t| tags.contains(&t.as_str()))
    }
}

/// Evaluates `rules` in order; returns the first matching rule that has an action.
pub fn decide<'r>(rules: &'r [Rule], f: &Firmware<'_>) -> Option<(&'r Rule, &'r Action)> {
    decide_tagged(rules, f, &[]).0
}

/// As [`decide`], and the tags the client ends with: every rule without an
/// action is evaluated, also after the deciding rule (rules with an action
/// after it are not).
///
/// The client starts with `initial` (its subnet's tags).
pub fn decide_tagged<'r>(
    rules: &'r [Rule],
    f: &Firmware<'_>,
    initial: &'r [String],
) -> (Option<(&'r Rule, &'r Action)>, Vec<&'r str>) {
    let mut tags: Vec<&str> = initial.iter().map(String::as_str).collect();
    let mut decided = None;
    for r in rules {
        if (decided.is_some() && r.action.is_some()) || !r.when.matches(f, &tags) {
            continue;
        }
        tags.extend(r.set_tags.iter().map(String::as_str));
        if let (Some(a), None) = (&r.action, &decided) {
            decided = Some((r, a));
        }
    }
    (decided, tags)
}

/// Whether a client with `tags` has all of `want` and none of `refuse`:
/// the one tag filter options, subnets, hosts and PXE menu items share.
pub fn tags_fit(want: &[String], refuse: &[String], tags: &[&str]) -> bool {
    want.iter().all(|t| tags.contains(&t.as_str()))
        && !refuse.iter().any(|t| tags.contains(&t.as_str()))
}

/// Which of `options` apply to a client with `tags`, by dnsmasq's rule: per
/// option number, the matching tagged ones if any, else the untagged ones;
/// of several, the first listed. In list order.
pub fn tagged_options<'o>(options: &'o [TaggedOption], tags: &[&str]) -> Vec<&'o TaggedOption> {
    let fits = |o: &TaggedOption| tags_fit(&o.tags, &o.not_tags, tags);
    let tagged = |o: &TaggedOption| !o.tags.is_empty() || !o.not_tags.is_empty();
    let mut out: Vec<&TaggedOption> = Vec::new();
    for o in options {
        if !fits(o) || out.iter().any(|x| x.code == o.code) {
            continue;
        }
        if !tagged(o)
            && options
                .iter()
                .any(|x| x.code == o.code && tagged(x) && fits(x))
        {
            continue;
        }
        out.push(o);
    }
    out
}

/// Whether `pattern` (`None` bytes match any) equals `got`.
fn glob_equal(pattern: &[Option<u8>], got: &[u8]) -> bool {
    pattern.len() == got.len()
        && pattern
            .iter()
            .zip(got)
            .all(|(p, g)| p.is_none_or(|p| p == *g))
}

/// Whether `pattern` occurs in `got` at some offset.
fn glob_within(pattern: &[Option<u8>], got: &[u8]) -> bool {
    pattern.is_empty()
        || (pattern.len() <= got.len()
            && got.windows(pattern.len()).any(|w| glob_equal(pattern, w)))
}

fn contains(got: &[u8], want: &[u8]) -> bool {
    want.is_empty() || got.windows(want.len()).any(|w| w == want)
}

/// The iPXE binary each architecture's firmware is given by the built-in
/// rules: (name for logs, PXE types, HTTP boot types, file). x86-64 is
/// first; the others are given only where the served set holds their file.
pub const ARCHITECTURES: [(&str, &[u16], &[u16], &str); 6] = [
    ("x86-64", &[7, 9], &[16], "ipxe.efi"),
    ("bios", &[0], &[], "undionly.kpxe"),
    ("ia32", &[6], &[15], "ipxe-i386.efi"),
    ("arm64", &[11], &[19], "ipxe-arm64.efi"),
    ("arm32", &[10], &[18], "ipxe-arm32.efi"),
    ("riscv64", &[27], &[28], "ipxe-riscv64.efi"),
];

/// The signed shim each architecture's UEFI PXE firmware is given when its
/// machine's profile runs grub: (name for logs, PXE types, rule name, file).
/// x86-64 is first; arm64 is given only where the served set holds its shim.
pub const GRUB_ARCHITECTURES: [(&str, &[u16], &str, &str); 2] = [
    ("x86-64", &[7, 9], "uefi-pxe-grub", "shimx64.efi"),
    ("arm64", &[11], "arm64-pxe-grub", "shimaa64.efi"),
];

/// The rules used when the configuration gives none: iPXE gets the boot script
/// over HTTP (and no ProxyDHCP wait); UEFI HTTP boot and PXE firmware get the
/// iPXE binary for their architecture (option 93), by URL or over TFTP; a
/// UEFI PXE machine whose profile runs grub gets the signed shim; anything
/// else (an installer, an OS, an architecture with no binary) gets a plain
/// lease.
pub fn defaults() -> Vec<Rule> {
    let rule = |name: String, when: Match, file: String, no_pxedhcp: bool| Rule {
        name,
        when,
        set_tags: Vec::new(),
        action: Some(Action {
            file: Some(file),
            no_pxedhcp,
            ..Action::default()
        }),
    };
    let mut rules = vec![rule(
        "ipxe".into(),
        Match {
            ipxe: Some(true),
            ..Match::default()
        },
        "http://{http}/boot.ipxe".into(),
        true,
    )];
    for (_, pxe, name, file) in GRUB_ARCHITECTURES {
        let when = Match {
            vendor: Some(b"PXEClient".to_vec()),
            arch: pxe.to_vec(),
            loader: Some(Loader::Grub),
            ..Match::default()
        };
        rules.push(rule(name.into(), when, file.into(), false));
    }
    for (arch, pxe, http, file) in ARCHITECTURES {
        let name = |kind: &str| match arch {
            "x86-64" => format!("uefi-{kind}"),
            "bios" => format!("bios-{kind}"),
            other => format!("{other}-{kind}"),
        };
        if !http.is_empty() {
            let when = Match {
                vendor: Some(b"HTTPClient".to_vec()),
                arch: http.to_vec(),
                ..Match::default()
            };
            rules.push(rule(
                name("http"),
                when,
                format!("http://{{http}}/{file}"),
                false,
            ));
        }
        let when = Match {
            vendor: Some(b"PXEClient".to_vec()),
            arch: pxe.to_vec(),
            ..Match::default()
        };
        rules.push(rule(name("pxe"), when, file.into(), false));
    }
    rules
}

/// Drops the built-in rules of architectures other than x86 whose iPXE
/// binary `have` (a lookup of served URL paths) does not hold, so that such
/// a machine gets a plain lease rather than a file nobody serves. Returns
/// each architecture with no binary and the file it would need, for
/// `rackboot check` and the start-up log.
pub fn unserved_architectures(
    rules: &mut Vec<Rule>,
    have: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    let builtin = defaults();
    let mut out = Vec::new();
    for (arch, _, _, file) in ARCHITECTURES {
        // x86's rules stay: a missing file there is a mistake to report.
        if have(&format!("/{file}")) || matches!(arch, "x86-64" | "bios") {
            continue;
        }
        out.push((arch, file));
        rules.retain(|r| {
            !(builtin.contains(r)
                && r.action
                    .as_ref()
                    .and_then(|a| a.file.as_deref())
                    .is_some_and(|f| f == file || f.strip_prefix("http://{http}/") == Some(file)))
        });
    }
    out
}

/// What fitting the rules to the served set did and found, for the
/// start-up log and `rackboot check` alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fitted {
    /// The UEFI PXE rule now names snponly.efi.
    pub snponly: bool,
    /// Architectures left with a plain lease, and the file each lacks.
    pub unserved: Vec<(&'static str, &'static str)>,
    /// The first rule that hands unsigned iPXE to UEFI machines.
    pub unsigned_to_uefi: Option<String>,
    /// `(rule, path)` of files rules name that nobody serves.
    pub missing: Vec<(String, String)>,
}

impl Fitted {
    /// `arm64 (ipxe-arm64.efi), ...`: the architectures with no boot binary
    /// and the file that would give them one.
    pub fn describe_unserved(&self) -> String {
        self.unserved
            .iter()
            .map(|(arch, file)| format!("{arch} ({file})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fits `rules` to what `have` (a lookup of served URL paths) holds: grub's
/// rules go when no profile runs grub (`any_grub`), UEFI PXE gets
/// snponly.efi when asked (`snponly`) and served, architectures with no
/// binary get a plain lease; says what it did and what is still missing.
pub fn fit(
    rules: &mut Vec<Rule>,
    have: impl Fn(&str) -> bool,
    any_grub: bool,
    snponly: bool,
) -> Fitted {
    let mut unserved = Vec::new();
    if any_grub {
        // Architectures other than x86 whose shim is not served: their
        // grub machines get a plain lease, never the unsigned iPXE a later
        // rule would give.
        let builtin = defaults();
        for (arch, _, name, file) in GRUB_ARCHITECTURES.iter().filter(|g| g.0 != "x86-64") {
            if !have(&format!("/{file}")) {
                for r in rules
                    .iter_mut()
                    .filter(|r| r.name == *name && builtin.contains(r))
                {
                    r.action = Some(Action::default());
                }
                unserved.push((*arch, *file));
            }
        }
    } else {
        drop_grub_rules(rules);
    }
    let snponly = snponly && prefer_snponly(rules, &have);
    let mut unserved_ipxe = unserved_architectures(rules, &have);
    unserved_ipxe.extend(unserved);
    let unserved = unserved_ipxe;
    Fitted {
        snponly,
        unserved,
        unsigned_to_uefi: unsigned_to_uefi(rules).map(str::to_owned),
        missing: missing_files(rules, &have),
    }
}

/// The first rule that hands an iPXE binary to UEFI firmware (PXE or HTTP
/// boot): such a machine enforcing Secure Boot refuses it, since Debian's
/// iPXE is not signed.
pub fn unsigned_to_uefi(rules: &[Rule]) -> Option<&str> {
    rules
        .iter()
        .filter(|r| r.when.loader != Some(Loader::Grub) && r.when.ipxe != Some(true))
        .filter(|r| r.when.arch.iter().any(|&a| a != 0))
        .find(|r| {
            r.action
                .as_ref()
                .and_then(|a| a.file.as_deref())
                .is_some_and(|f| {
                    let name = f.rsplit('/').next().unwrap_or(f);
                    name.starts_with("ipxe") || name == "snponly.efi"
                })
        })
        .map(|r| r.name.as_str())
}

/// Drops the rules that match only grub machines, for a configuration where
/// no profile runs grub (they could never match, and their files are not
/// served).
pub fn drop_grub_rules(rules: &mut Vec<Rule>) {
    rules.retain(|r| r.when.loader != Some(Loader::Grub));
}

/// Points the built-in UEFI PXE rule at snponly.efi (iPXE driving the NIC
/// through the firmware's own driver, the one that just loaded it) instead of
/// ipxe.efi (iPXE's own drivers) when `have` (a lookup of served URL paths) holds
/// it. Under OVMF, EDK2 PXE reached its boot script 4.2 s sooner with it
/// (10.2 s vs 14.4 s after power-on). Returns whether a rule changed.
pub fn prefer_snponly(rules: &mut [Rule], have: impl Fn(&str) -> bool) -> bool {
    if !have("/snponly.efi") {
        return false;
    }
    let mut changed = false;
    for r in rules.iter_mut().filter(|r| r.name == "uefi-pxe") {
        if let Some(a) = r
            .action
            .as_mut()
            .filter(|a| a.file.as_deref() == Some("ipxe.efi"))
        {
            a.file = Some("snponly.efi".into());
            changed = true;
        }
    }
    changed
}

/// Boot files the rules name that rackboot itself must serve but `have` (a
/// lookup of URL paths in the served root) does not hold: `(rule, path)` pairs,
/// for `rackboot check` and the start-up log. A file on another next-server,
/// a URL on another host, or a name built per machine (`{mac}`) is not checked.
pub fn missing_files(rules: &[Rule], have: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in rules {
        let Some(a) = &r.action else { continue };
        let (Some(file), None) = (&a.file, a.next_server) else {
            continue;
        };
        let path = ["http://{http}", "http://{server}"]
            .iter()
            .find_map(|p| file.strip_prefix(p))
            .map(|rest| rest.split(['?', '#']).next().unwrap_or(rest).to_owned())
            .or_else(|| (!file.contains("://")).then(|| format!("/{}", file.replace('\\', "/"))));
        match path {
            Some(p) if !p.contains('{') && !have(&p) => out.push((r.name.clone(), p)),
            _ => {}
        }
    }
    out
}

/// `template` with `{server}`, `{http}` and `{mac}` filled in, written into
/// `buf` without allocating; the length, or `None` when it does not fit.
pub fn render(
    template: &str,
    server: Ipv4Addr,
    http_port: u16,
    mac: &[u8],
    buf: &mut [u8],
) -> Option<usize> {
    use std::io::Write;
    let mut w = std::io::Cursor::new(buf);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        w.write_all(&rest.as_bytes()[..at]).ok()?;
        rest = &rest[at..];
        let filled = if let Some(r) = rest.strip_prefix("{server}") {
            write!(w, "{server}").ok()?;
            r
        } else if let Some(r) = rest.strip_prefix("{http}") {
            if http_port == 80 {
                write!(w, "{server}").ok()?;
            } else {
                write!(w, "{server}:{http_port}").ok()?;
            }
            r
        } else if let Some(r) = rest.strip_prefix("{mac}") {
            for (i, b) in mac.iter().enumerate() {
                let sep = if i > 0 { ":" } else { "" };
                write!(w, "{sep}{b:02x}").ok()?;
            }
            r
        } else {
            w.write_all(b"{").ok()?;
            &rest[1..]
        };
        rest = filled;
    }
    w.write_all(rest.as_bytes()).ok()?;
    usize::try_from(w.position()).ok()
}

/// `ip` in dotted form into `buf` (15 bytes suffice); its length.
pub fn ip_text(ip: Ipv4Addr, buf: &mut [u8; 15]) -> usize {
    use std::io::Write;
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(w, "{ip}");
    w.position() as usize
}
