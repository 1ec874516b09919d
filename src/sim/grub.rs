//! What a virtual grub does with a configuration file: the `configfile` it
//! loads instead, or the `linux` and `initrd` lines it boots, each file named
//! as grub names it (`($root)/path` or `/path` on the TFTP server grub came
//! from, `(http,host)/path` over HTTP), and the installer's answer-file URL
//! on the kernel command line. grub's `${name}` settings are filled in from
//! the machine. Other commands are skipped; a configuration that boots
//! nothing is reported as such.

use std::net::Ipv4Addr;

/// The steps a configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `configfile PATH`: a TFTP name to read and follow instead.
    pub configfile: Option<String>,
    /// The kernel, as a URL (`tftp://server/path` or `http://...`).
    pub kernel: Option<String>,
    /// The initrds, same form, in order.
    pub initrds: Vec<String>,
    /// The installer's answer-file URL from the kernel command line.
    pub answers: Option<String>,
}

/// Why a configuration could not be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Neither a kernel nor a configfile.
    #[error("grub's configuration boots nothing (no linux or configfile line)")]
    NothingToBoot,
}

/// The settings grub fills in: `net_default_mac`, `grub_cpu`, `grub_platform`.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// Its MAC.
    pub mac: [u8; 6],
    /// The TFTP server grub came from (`$root`).
    pub server: Ipv4Addr,
}

impl Machine {
    fn setting(&self, name: &str) -> String {
        let [a, b, c, d, e, f] = self.mac;
        match name {
            "net_default_mac" => format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}"),
            "grub_cpu" => "x86_64".into(),
            "grub_platform" => "efi".into(),
            "root" => format!("tftp,{}", self.server),
            _ => String::new(),
        }
    }
}

/// Reads `text` as grub would for `machine`.
///
/// # Errors
/// The configuration boots nothing (a page telling an unknown machine so).
pub fn plan(text: &str, machine: &Machine) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    for line in text.lines() {
        let words = words(&expand(line, machine));
        let Some((command, rest)) = words.split_first() else {
            continue;
        };
        match command.as_str() {
            "configfile" => {
                plan.configfile = rest.first().map(|p| tftp_name(p));
                break;
            }
            "linux" | "linuxefi" => {
                plan.kernel = rest.first().map(|p| url(p, machine.server));
                plan.answers = rest
                    .iter()
                    .skip(1)
                    .find_map(|w| super::script::answers_url(w))
                    .map(str::to_owned);
            }
            "initrd" | "initrdefi" => {
                plan.initrds
                    .extend(rest.iter().map(|p| url(p, machine.server)));
            }
            _ => {}
        }
    }
    if plan.kernel.is_none() && plan.configfile.is_none() {
        return Err(Error::NothingToBoot);
    }
    Ok(plan)
}

/// `line`'s `$name` and `${name}` filled in.
fn expand(line: &str, machine: &Machine) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push_str(&machine.setting(name));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// grub's words: split at blanks outside quotes, quotes removed; a `#` at a
/// word's start ends the line.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if !started => break,
            (None, ' ' | '\t') => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// A file as grub names it, as the URL the machine fetches.
fn url(path: &str, server: Ipv4Addr) -> String {
    if let Some(rest) = path.strip_prefix("(http,") {
        if let Some((host, file)) = rest.split_once(')') {
            return format!("http://{host}{file}");
        }
    }
    format!("tftp://{server}{}", tftp_name(path))
}

/// A TFTP file as grub names it (`(tftp,server)/p`, `(tftp)/p`, `/p`): `/p`.
fn tftp_name(path: &str) -> String {
    let file = match path.strip_prefix('(') {
        Some(rest) => rest.split_once(')').map_or(rest, |(_, f)| f),
        None => path,
    };
    if file.starts_with('/') {
        file.to_owned()
    } else {
        format!("/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: Machine = Machine {
        mac: [0x02, 0, 0, 0, 0, 0x2a],
        server: Ipv4Addr::new(127, 0, 0, 1),
    };

    #[test]
    fn the_stub_loads_the_machines_own_page_by_its_mac() {
        let stub = crate::proto::boot::grub::stub("/boot.grub");
        let p = plan(&stub, &MACHINE).unwrap();
        assert_eq!(
            p.configfile.as_deref(),
            Some("/boot.grub?mac=02:00:00:00:00:2a&arch=x86_64&platform=efi")
        );
        assert_eq!(p.kernel, None);
    }

    #[test]
    fn a_page_gives_the_kernel_initrds_and_answers_in_either_transport() {
        let page = "set timeout=0\n\
            menuentry 'rackboot: x boots profile d' {\n\
            \x20   echo 'rackboot: x'\n\
            \x20   linux /demo/vmlinuz auto=true 'url=http://127.0.0.1:8080/config?mac=02-00&arch=x86_64'\n\
            \x20   initrd /demo/initrd.gz (http,127.0.0.1:8080)/extra.img\n\
            }\n";
        let p = plan(page, &MACHINE).unwrap();
        assert_eq!(p.kernel.as_deref(), Some("tftp://127.0.0.1/demo/vmlinuz"));
        assert_eq!(
            p.initrds,
            [
                "tftp://127.0.0.1/demo/initrd.gz",
                "http://127.0.0.1:8080/extra.img"
            ]
        );
        assert_eq!(
            p.answers.as_deref(),
            Some("http://127.0.0.1:8080/config?mac=02-00&arch=x86_64")
        );
    }

    #[test]
    fn a_page_that_boots_nothing_is_said_so() {
        let page = "echo 'rackboot: no profile takes this machine'\nsleep 5\n# linux /x\n";
        assert_eq!(plan(page, &MACHINE), Err(Error::NothingToBoot));
    }
}
