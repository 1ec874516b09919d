//! What a virtual iPXE does with a boot script: the `kernel`, `initrd` and
//! `chain` lines it follows, their URLs resolved against the script's own, and
//! the preseed/kickstart URL the kernel command line hands the installer. Other
//! commands (`dhcp`, `echo`, `set`, `sleep`, ...) are skipped; a script with no
//! kernel or chain is reported as such, never guessed at.

/// The steps a script asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `chain URL`: fetch another script (or binary) and follow it instead.
    pub chain: Option<String>,
    /// `kernel URL ARGS`: the kernel's URL.
    pub kernel: Option<String>,
    /// `initrd URL` lines, in order.
    pub initrds: Vec<String>,
    /// The installer's answer-file URL from the kernel command line
    /// (`url=`, `preseed/url=`, `auto-install/url=`, `inst.ks=`, `ks=`).
    pub answers: Option<String>,
}

/// Why a script could not be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body does not start with `#!ipxe`.
    #[error("not an iPXE script (no #!ipxe line)")]
    NotIpxe,
    /// Neither a kernel nor a chain: nothing to boot.
    #[error("the script boots nothing (no kernel or chain line)")]
    NothingToBoot,
}

/// Reads `text`, fetched from `base` (`http://host[:port]/path`).
///
/// # Errors
/// Not a script, or a script that boots nothing (an `exit` script for an
/// unknown machine, say).
pub fn plan(text: &str, base: &str) -> Result<Plan, Error> {
    let mut lines = text.lines();
    if !lines
        .next()
        .is_some_and(|l| l.trim_start().starts_with("#!ipxe"))
    {
        return Err(Error::NotIpxe);
    }
    let mut plan = Plan::default();
    for line in lines {
        let mut rest = line.split_whitespace();
        let Some(command) = rest.next() else { continue };
        // Options come before the URL; `--name` and `--timeout` take a value.
        let url = loop {
            match rest.next() {
                Some("--name" | "-n" | "--timeout" | "-t") => {
                    rest.next();
                }
                Some(w) if w.starts_with('-') => {}
                other => break other.map(|u| resolve(base, u)),
            }
        };
        match command {
            "kernel" | "linux" => {
                plan.kernel = url;
                plan.answers = rest.find_map(answers_url).map(|u| resolve(base, u));
            }
            "initrd" | "module" => plan.initrds.extend(url),
            "chain" | "chainload" => {
                plan.chain = url;
                break;
            }
            _ => {}
        }
    }
    if plan.kernel.is_none() && plan.chain.is_none() {
        return Err(Error::NothingToBoot);
    }
    Ok(plan)
}

/// The installer's answer-file URL, if `arg` is a kernel argument naming one.
pub(crate) fn answers_url(arg: &str) -> Option<&str> {
    let (key, value) = arg.split_once('=')?;
    matches!(
        key,
        "url" | "preseed/url" | "auto-install/url" | "inst.ks" | "ks"
    )
    .then_some(value)
}

/// `text` with iPXE's `${name}` and `${name:type}` settings filled in from
/// `setting` (a name without its `netX/`, `net0/` scope); a setting it does
/// not know is empty, as in iPXE. Types: `hexhyp` writes a MAC with hyphens,
/// the others leave the value as it is.
pub fn expand(text: &str, setting: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let Some(len) = rest[at + 2..].find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let spec = &rest[at + 2..at + 2 + len];
        let (name, kind) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.rsplit('/').next().unwrap_or(name);
        let value = setting(name).unwrap_or_default();
        match kind {
            "hexhyp" => out.push_str(&value.replace(':', "-")),
            _ => out.push_str(&value),
        }
        rest = &rest[at + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// `reference` resolved against `base` the way iPXE does for the forms boot
/// scripts use: absolute URLs, host-absolute paths, and paths relative to the
/// script's directory.
pub fn resolve(base: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_owned();
    }
    let (scheme, after) = base.split_once("://").unwrap_or(("http", base));
    let host_end = after.find('/').unwrap_or(after.len());
    let (host, path) = after.split_at(host_end);
    if let Some(abs) = reference.strip_prefix('/') {
        return format!("{scheme}://{host}/{abs}");
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let dir = path.rfind('/').map_or("", |i| &path[..i]);
    format!("{scheme}://{host}{dir}/{reference}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_filled_in_as_ipxe_does() {
        let got = expand(
            "chain /boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid}&h=${hostname:uristring}&x=${unknown}${",
            |n| match n {
                "mac" => Some("52:54:00:12:34:56".into()),
                "uuid" => Some("u-1".into()),
                _ => None,
            },
        );
        assert_eq!(
            got,
            "chain /boot.ipxe?mac=52-54-00-12-34-56&uuid=u-1&h=&x=${"
        );
    }

    #[test]
    fn the_built_in_demo_script_names_its_kernel_and_initrd() {
        let p = plan(
            crate::store::builtin::SCRIPT,
            "http://10.0.0.1:8080/boot.ipxe",
        )
        .unwrap();
        assert_eq!(
            p.kernel.as_deref(),
            Some("http://10.0.0.1:8080/demo/vmlinuz")
        );
        assert_eq!(p.initrds, ["http://10.0.0.1:8080/demo/initrd.gz"]);
        assert_eq!((p.chain, p.answers), (None, None));
    }

    #[test]
    fn an_installer_script_gives_the_preseed_url_and_a_chain_stops_reading() {
        let text = "#!ipxe\ndhcp\nset base http://10.0.0.1/d-i\n\
                    kernel --name linux /d-i/linux auto=true url=http://10.0.0.1/preseed/52-54-00-77-00-10.cfg priority=critical\n\
                    initrd initrd.gz\nboot\n";
        let p = plan(
            text,
            "http://10.0.0.1/scripts/boot.ipxe?mac=52:54:00:77:00:10",
        )
        .unwrap();
        assert_eq!(p.kernel.as_deref(), Some("http://10.0.0.1/d-i/linux"));
        assert_eq!(p.initrds, ["http://10.0.0.1/scripts/initrd.gz"]);
        assert_eq!(
            p.answers.as_deref(),
            Some("http://10.0.0.1/preseed/52-54-00-77-00-10.cfg")
        );
        let chained = plan(
            "#!ipxe\nchain next.ipxe\nkernel never\n",
            "http://h/a/b.ipxe",
        )
        .unwrap();
        assert_eq!(chained.chain.as_deref(), Some("http://h/a/next.ipxe"));
        assert_eq!(chained.kernel, None);
    }

    #[test]
    fn scripts_that_boot_nothing_or_are_not_scripts_say_so() {
        let unknown = "#!ipxe\necho no profile for this machine\nexit\n";
        assert_eq!(plan(unknown, "http://h/"), Err(Error::NothingToBoot));
        assert_eq!(plan("<html>404</html>", "http://h/"), Err(Error::NotIpxe));
        assert_eq!(plan("", "http://h/"), Err(Error::NotIpxe));
    }
}
