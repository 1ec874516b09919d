//! What a machine says about itself when it asks for its boot script: the query
//! string iPXE fills from its settings (`mac`, `uuid`, `arch`, `platform`,
//! `hostname`), each checked against the characters its kind can hold. A value
//! that fails its check is dropped, so nothing a client sends can add a line to a
//! script or a preseed.

use std::fmt;

/// A hardware address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `52:54:00:12:34:56`, `52-54-00-12-34-56` or `525400123456`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex: Vec<u8> = s.bytes().filter(|b| !matches!(b, b':' | b'-')).collect();
        let separators = s.len() - hex.len();
        if hex.len() != 12 || (separators != 0 && separators != 5) {
            return None;
        }
        let mut out = [0; 6];
        for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(out))
    }

    /// `52-54-00-12-34-56`: the form that fits a file name or a URL.
    pub fn hyphens(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// What a machine's iPXE says about it in a script request's query (`mac`,
/// `uuid`, `arch`, `platform`, `hostname`), as profiles match it. Empty strings
/// are facts the machine did not give. DHCP boot rules match on
/// `proto::dhcp::policy::Firmware` instead: that one is borrowed from a
/// firmware's datagram, numeric where this is text (`arch` is option 93
/// there, iPXE's `${buildarch}` here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Hardware address of the booting NIC.
    pub mac: Option<Mac>,
    /// SMBIOS UUID, lowercase.
    pub uuid: String,
    /// iPXE's `${buildarch}`: `x86_64`, `i386`, `arm64`.
    pub arch: String,
    /// iPXE's `${platform}`: `pcbios` or `efi`.
    pub platform: String,
    /// The name the machine was given (DHCP option 12).
    pub hostname: String,
}

impl Facts {
    /// Reads a query string (`a=1&b=2`, percent-encoded, without the `?`).
    pub fn from_query(query: &str) -> Self {
        let mut facts = Facts::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(value) = percent_decode(value) else {
                continue;
            };
            let value = value.trim();
            match key {
                "mac" => facts.mac = Mac::parse(value),
                "uuid" => facts.uuid = checked(value, |c| c.is_ascii_hexdigit() || c == '-'),
                "arch" => facts.arch = checked(value, is_word),
                "platform" => facts.platform = checked(value, is_word),
                "hostname" => {
                    facts.hostname = checked(value, |c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
                    })
                }
                _ => {}
            }
        }
        facts
    }

    /// The facts as a query string, for a URL the installer asks for later
    /// (the MAC first; facts not given are left out).
    pub fn to_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(mac) = self.mac {
            q.push(format!("mac={}", mac.hyphens()));
        }
        for (key, value) in [
            ("uuid", &self.uuid),
            ("arch", &self.arch),
            ("platform", &self.platform),
            ("hostname", &self.hostname),
        ] {
            if !value.is_empty() {
                q.push(format!("{key}={value}"));
            }
        }
        q.join("&")
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `value`, lowercased where it is a UUID, when every character passes `ok` and it
/// is at most 63 bytes; else empty.
fn checked(value: &str, ok: impl Fn(char) -> bool) -> String {
    if value.len() <= 63 && value.chars().all(ok) {
        value.to_ascii_lowercase()
    } else {
        String::new()
    }
}

pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Shell-style match of `text` against `pattern`: `*` is any run, `?` one
/// character, case ignored.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_each_written_form() {
        let m = Mac([0x52, 0x54, 0, 0x12, 0x34, 0xab]);
        for s in [
            "52:54:00:12:34:ab",
            "52-54-00-12-34-AB",
            "52540012 34ab".replace(' ', "").as_str(),
        ] {
            assert_eq!(Mac::parse(s), Some(m), "{s}");
        }
        assert_eq!(m.to_string(), "52:54:00:12:34:ab");
        assert_eq!(m.hyphens(), "52-54-00-12-34-ab");
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:zz",
            "5:254:00:12:34:ab:",
            "52:54-0012:34ab",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_query_gives_the_facts_that_pass_their_checks() {
        let f = Facts::from_query(
            "mac=52-54-00-81-00-01&uuid=8C1B5A2E-0000-4E4E-9E9E-000000000001&arch=x86_64\
             &platform=efi&hostname=web%2D01&extra=1",
        );
        assert_eq!(f.mac, Mac::parse("52:54:00:81:00:01"));
        assert_eq!(f.uuid, "8c1b5a2e-0000-4e4e-9e9e-000000000001");
        assert_eq!((f.arch.as_str(), f.platform.as_str()), ("x86_64", "efi"));
        assert_eq!(f.hostname, "web-01");
        assert_eq!(
            f.to_query(),
            "mac=52-54-00-81-00-01&uuid=8c1b5a2e-0000-4e4e-9e9e-000000000001&arch=x86_64&platform=efi&hostname=web-01"
        );
        // A value that could break a script line is dropped, not repaired.
        let evil = Facts::from_query("mac=xx&hostname=a%0Akernel%20evil&arch=x%20y&uuid=");
        assert_eq!(evil, Facts::default());
        assert_eq!(evil.to_query(), "");
        assert_eq!(Facts::from_query("hostname=%ZZ"), Facts::default());
    }

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob("52:54:00:*", "52:54:00:81:00:01"));
        assert!(glob("WEB-??", "web-01"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(!glob("web-?", "web-01"));
        assert!(!glob("", "x"));
    }
}
