//! dnsmasq's DHCP option names and how it encodes a value given for each
//! (its `opttab`), for `dhcp-option` and `dhcp-match`.

use std::net::Ipv4Addr;

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A list of IPv4 addresses.
    Ips,
    /// Text.
    Text,
    /// An unsigned number of this many bytes.
    Number(u8),
    /// A time with units (`1h`), 4 bytes.
    Time,
    /// Given by the value's form: decimal, `aa:bb` hex, dotted quads, text.
    Any,
    /// Used by the server itself: not settable by name.
    Internal,
    /// A domain search list (RFC 1035 names).
    Domains,
}

/// (number, name, kind).
const TABLE: &[(u8, &str, Kind)] = &[
    (1, "netmask", Kind::Ips),
    (2, "time-offset", Kind::Number(4)),
    (3, "router", Kind::Ips),
    (6, "dns-server", Kind::Ips),
    (7, "log-server", Kind::Ips),
    (9, "lpr-server", Kind::Ips),
    (12, "hostname", Kind::Internal),
    (13, "boot-file-size", Kind::Number(2)),
    (15, "domain-name", Kind::Text),
    (16, "swap-server", Kind::Ips),
    (17, "root-path", Kind::Text),
    (18, "extension-path", Kind::Text),
    (19, "ip-forward-enable", Kind::Number(1)),
    (20, "non-local-source-routing", Kind::Number(1)),
    (21, "policy-filter", Kind::Ips),
    (22, "max-datagram-reassembly", Kind::Number(2)),
    (23, "default-ttl", Kind::Number(1)),
    (26, "mtu", Kind::Number(2)),
    (27, "all-subnets-local", Kind::Number(1)),
    (28, "broadcast", Kind::Internal),
    (31, "router-discovery", Kind::Number(1)),
    (32, "router-solicitation", Kind::Ips),
    (33, "static-route", Kind::Ips),
    (34, "trailer-encapsulation", Kind::Number(1)),
    (35, "arp-timeout", Kind::Number(4)),
    (36, "ethernet-encap", Kind::Number(1)),
    (37, "tcp-ttl", Kind::Number(1)),
    (38, "tcp-keepalive", Kind::Number(4)),
    (40, "nis-domain", Kind::Text),
    (41, "nis-server", Kind::Ips),
    (42, "ntp-server", Kind::Ips),
    (43, "vendor-encap", Kind::Internal),
    (44, "netbios-ns", Kind::Ips),
    (45, "netbios-dd", Kind::Ips),
    (46, "netbios-nodetype", Kind::Number(1)),
    (47, "netbios-scope", Kind::Any),
    (48, "x-windows-fs", Kind::Ips),
    (49, "x-windows-dm", Kind::Ips),
    (50, "requested-address", Kind::Internal),
    (51, "lease-time", Kind::Internal),
    (52, "option-overload", Kind::Internal),
    (53, "message-type", Kind::Internal),
    (54, "server-identifier", Kind::Internal),
    (55, "parameter-request", Kind::Internal),
    (56, "message", Kind::Internal),
    (57, "max-message-size", Kind::Internal),
    (58, "T1", Kind::Time),
    (59, "T2", Kind::Time),
    (60, "vendor-class", Kind::Any),
    (61, "client-id", Kind::Internal),
    (64, "nis+-domain", Kind::Text),
    (65, "nis+-server", Kind::Ips),
    (66, "tftp-server", Kind::Text),
    (67, "bootfile-name", Kind::Text),
    (68, "mobile-ip-home", Kind::Ips),
    (69, "smtp-server", Kind::Ips),
    (70, "pop3-server", Kind::Ips),
    (71, "nntp-server", Kind::Ips),
    (74, "irc-server", Kind::Ips),
    (77, "user-class", Kind::Any),
    (80, "rapid-commit", Kind::Any),
    (81, "FQDN", Kind::Internal),
    (82, "agent-id", Kind::Internal),
    (93, "client-arch", Kind::Number(2)),
    (94, "client-interface-id", Kind::Any),
    (97, "client-machine-id", Kind::Any),
    (100, "posix-timezone", Kind::Text),
    (101, "tzdb-timezone", Kind::Text),
    (108, "ipv6-only", Kind::Number(4)),
    (118, "subnet-select", Kind::Internal),
    (119, "domain-search", Kind::Domains),
    (120, "sip-server", Kind::Any),
    (121, "classless-static-route", Kind::Any),
    (125, "vendor-id-encap", Kind::Any),
    (150, "tftp-server-address", Kind::Ips),
    (255, "server-ip-address", Kind::Ips),
];

/// The number and kind of option `name` (`option:router`, case-insensitive).
pub(super) fn by_name(name: &str) -> Option<(u8, Kind)> {
    TABLE
        .iter()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(c, _, k)| (c, k))
}

/// The kind of option `code` (`Any` for numbers the table lacks).
pub(super) fn kind_of(code: u8) -> Kind {
    TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(Kind::Any, |&(_, _, k)| k)
}

/// A value as dnsmasq would encode it for an option of `kind`: `Ok(None)`
/// for an empty value ("do not send").
///
/// # Errors
/// The value does not fit the kind.
pub(super) fn encode(kind: Kind, values: &[&str]) -> Result<Option<Vec<u8>>, String> {
    if values.is_empty() || (values.len() == 1 && values[0].is_empty()) {
        return Ok(None);
    }
    let joined = values.join(",");
    let ips = || -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for v in values {
            let ip: Ipv4Addr = v
                .parse()
                .map_err(|_| format!("{v:?} is not an IPv4 address"))?;
            out.extend_from_slice(&ip.octets());
        }
        Ok(out)
    };
    match kind {
        Kind::Ips => ips().map(Some),
        Kind::Text => Ok(Some(joined.into_bytes())),
        Kind::Number(n) => number(&joined, n).map(Some),
        Kind::Time => seconds(&joined)
            .map(|s| Some(s.to_be_bytes().to_vec()))
            .ok_or_else(|| format!("{joined:?} is not a time (e.g. 3600, 1h)")),
        Kind::Domains => {
            let mut out = Vec::new();
            for d in values {
                for label in d.trim_end_matches('.').split('.') {
                    let len = u8::try_from(label.len())
                        .ok()
                        .filter(|l| (1..64).contains(l))
                        .ok_or_else(|| format!("{d:?} is not a domain name"))?;
                    out.push(len);
                    out.extend_from_slice(label.as_bytes());
                }
                out.push(0);
            }
            Ok(Some(out))
        }
        Kind::Internal => Err("dnsmasq does not let this option be set by name".into()),
        Kind::Any => {
            if values.iter().all(|v| v.parse::<Ipv4Addr>().is_ok()) {
                ips().map(Some)
            } else if values.len() == 1 && values[0].contains(':') {
                hex(values[0])
                    .map(Some)
                    .ok_or_else(|| format!("{:?} is not hex bytes", values[0]))
            } else if values.len() == 1 && suffixed(values[0]).is_some() {
                number(values[0], 1).map(Some)
            } else if values.len() == 1 && values[0].bytes().all(|b| b.is_ascii_digit()) {
                let n: u64 = values[0].parse().map_err(|_| "number too large")?;
                let width = if n < 256 {
                    1
                } else if n < 65536 {
                    2
                } else {
                    4
                };
                number(values[0], width).map(Some)
            } else {
                Ok(Some(joined.into_bytes()))
            }
        }
    }
}

/// A decimal number with dnsmasq's size letter (`1b`, `1s`, `1i`: one, two
/// or four bytes): its digits and width.
fn suffixed(v: &str) -> Option<(&str, u8)> {
    let (digits, width) = match v.char_indices().last()? {
        (i, 'b') => (&v[..i], 1),
        (i, 's') => (&v[..i], 2),
        (i, 'i') => (&v[..i], 4),
        _ => return None,
    };
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some((digits, width))
}

fn number(v: &str, width: u8) -> Result<Vec<u8>, String> {
    let (v, width) = suffixed(v).unwrap_or((v, width));
    let n: u64 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
    let bytes = n.to_be_bytes();
    let w = usize::from(width);
    if n >> (8 * w as u32).min(63) != 0 && w < 8 {
        return Err(format!("{n} does not fit {w} byte(s)"));
    }
    Ok(bytes[8 - w..].to_vec())
}

/// `aa:bb:cc` as bytes.
pub(super) fn hex(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| {
            (!b.is_empty() && b.len() <= 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect()
}

/// dnsmasq's lease times: seconds, or a number with s, m, h, d or w.
pub(super) fn seconds(v: &str) -> Option<u32> {
    let v = v.trim();
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 's'),
    };
    let n: u32 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}
