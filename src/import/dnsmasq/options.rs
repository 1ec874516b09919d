//! `dhcp-option` and `dhcp-match`: option numbers and names, values encoded
//! as dnsmasq encodes them, and the encapsulated kinds (`encap:`, `vendor:`,
//! `vi-encap:`) grouped into their parent options.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::{hex_text, list, opts, q, rule_tags, tagged, tagged_from, Out, Tagged};
/// A `dhcp-match` value (after the tag): an option and what it must hold.
pub(super) fn dhcp_match(rest: &[&str]) -> Result<String, String> {
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

pub(super) fn option_code(opt: &str) -> Result<(u8, opts::Kind), String> {
    if let Some(name) = opt.strip_prefix("option:") {
        return opts::by_name(name)
            .ok_or_else(|| format!("option:{name} is not an option name dnsmasq knows"));
    }
    let code: u8 = opt
        .parse()
        .map_err(|_| format!("{opt:?} is not an option number or option:NAME"))?;
    Ok((code, opts::kind_of(code)))
}

pub(super) enum Opt<'a> {
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

pub(super) struct Encap {
    pub(super) from: String,
    pub(super) tags: Tagged<'static>,
    pub(super) parent: u8,
    pub(super) sub: u8,
    pub(super) value: Vec<u8>,
    pub(super) force: bool,
    /// vi-encap: its enterprise number (the parent is option 125).
    pub(super) enterprise: Option<u32>,
}

/// The tag a `vendor:CLASS` option's clients get.
pub(super) fn vendor_tag(class: &str) -> String {
    format!("vendor-class:{class}")
}

pub(super) fn dhcp_option(v: &str) -> Result<Opt<'static>, String> {
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

/// Encapsulated options (`encap:`, `vendor:`, `vi-encap:`) as one parent
/// option per tag set, its sub-options in file order.
pub(super) fn encap_options(encaps: Vec<Encap>, o: &mut Out) {
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
}
