//! dnsmasq's lease file (`dhcp-leasefile`), read into rackboot's leases: one
//! line per lease, `EXPIRY MAC IP HOSTNAME CLIENT-ID`, where EXPIRY is unix
//! seconds (0: never), HOSTNAME and CLIENT-ID are `*` when absent, and
//! CLIENT-ID is option 61 as colon-separated hex. DHCPv6 lines (after a
//! `duid` line) are not IPv4 leases and are skipped.

use std::net::Ipv4Addr;

use crate::lease::Lease;

/// A lease without an end: dnsmasq writes 0; rackboot keeps it a century.
const FOREVER_SECS: u64 = 100 * 365 * 86_400;

/// The IPv4 leases of a dnsmasq lease file's `text`, still active at `now`
/// (unix seconds), and the lines that could not be read (line, reason).
pub fn parse(text: &str, now: u64) -> (Vec<Lease>, Vec<(usize, String)>) {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f[0] == "duid" {
            // Everything after is DHCPv6.
            break;
        }
        match lease(&f, now) {
            Ok(Some(l)) => out.push(l),
            Ok(None) => {}
            Err(e) => bad.push((i + 1, e)),
        }
    }
    (out, bad)
}

fn lease(f: &[&str], now: u64) -> Result<Option<Lease>, String> {
    let [expiry, mac, ip, hostname, client, ..] = f else {
        return Err("expected EXPIRY MAC IP HOSTNAME CLIENT-ID".into());
    };
    let expiry: u64 = expiry
        .parse()
        .map_err(|_| format!("expiry {expiry:?} is not unix seconds"))?;
    let expires = if expiry == 0 {
        now + FOREVER_SECS
    } else {
        expiry
    };
    if expires <= now {
        return Ok(None);
    }
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    let hw = hex(mac).ok_or_else(|| format!("{mac:?} is not a hardware address"))?;
    if hw.is_empty() || hw.len() > 16 {
        return Err(format!("{mac:?} is not a hardware address"));
    }
    // The key the engine builds for this client: an option 61 that is just
    // htype 1 + the MAC names the hardware address, as no option 61 does.
    let by_hw = || [&[1u8, 1][..], &hw].concat();
    let client_key = match *client {
        "*" => by_hw(),
        c => {
            let id = hex(c).ok_or_else(|| format!("client id {c:?} is not hex"))?;
            if id.first() == Some(&1) && id.get(1..) == Some(&hw[..]) {
                by_hw()
            } else {
                [&[0u8][..], &id].concat()
            }
        }
    };
    Ok(Some(Lease {
        ip,
        client: client_key.into(),
        hw: hw.into(),
        hostname: if *hostname == "*" { "" } else { hostname }.into(),
        expires,
    }))
}

/// `aa:bb:cc` as bytes.
fn hex(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|b| {
            (b.len() <= 2 && !b.is_empty())
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_lease_lines_become_leases_keyed_as_the_engine_keys_them() {
        let text = "1796300000 52:54:00:12:34:56 10.0.0.42 node-a 01:52:54:00:12:34:56\n\
                    0 52:54:00:12:34:57 10.0.0.43 * *\n\
                    1796300000 52:54:00:12:34:58 10.0.0.44 * ff:00:00:00:01\n\
                    100 52:54:00:12:34:59 10.0.0.45 old *\n\
                    garbage\n\
                    duid 00:01:00:01\n\
                    1796300000 1234 ::1 * 00:01\n";
        let (leases, bad) = parse(text, 1_796_200_000);
        assert_eq!(leases.len(), 3, "{leases:?}");
        assert_eq!(
            leases[0].client[..],
            [1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
        );
        assert_eq!(&*leases[0].hostname, "node-a");
        assert_eq!(
            leases[1].client[..],
            [1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x57]
        );
        assert!(leases[1].expires > 1_796_200_000 + 86_400 * 365);
        assert_eq!(leases[2].client[..], [0, 0xff, 0, 0, 0, 1]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 5);
    }
}
