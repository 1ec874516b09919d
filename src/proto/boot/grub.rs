//! grub as a loader: the signed chain Secure Boot machines run (EDK2 PXE ->
//! shim -> grub -> a signed kernel), with a grub configuration rendered per
//! machine from the same profile an iPXE machine boots.
//!
//! How a grub machine is told apart: Debian's signed network grub reads
//! `$prefix/grub.cfg` (its prefix is `grub/` beside the boot file), the same
//! name for every machine, and cannot load modules (lockdown) nor speak HTTP.
//! So every `grub.cfg` it asks for is a one-line stub, the same for all, that
//! loads this machine's own page over TFTP with grub's own settings in the
//! name: `($root)/boot.grub?mac=${net_default_mac}&arch=...`. The MAC is the
//! NIC's, as grub read it from the firmware: no lease lookup, so it holds with
//! another team's DHCP, through relays, and for a machine whose lease was made
//! elsewhere. The kernel and initrds are then fetched from the same TFTP
//! server (`($root)/path`), or over HTTP (`(http,host)/path`) where a profile
//! names an `http://` URL and the grub build has HTTP.

/// The built-in grub page: boot the profile's kernel with its command line and
/// initrds, at once.
pub const DEFAULT: &str = "set timeout=0\n\
    menuentry 'rackboot: {{ mac }} boots profile {{ profile }}' {\n\
    \x20   echo 'rackboot: {{ mac }} boots profile {{ profile }}'\n\
    \x20   linux {{ grub_kernel }} {{ grub_cmdline }}\n\
    {% if grub_initrds %}    initrd{% for u in grub_initrds %} {{ u }}{% endfor %}\n{% endif %}\
    }\n";

/// The built-in grub local-boot page: grub's `exit` returns to the firmware,
/// whose boot manager tries its next entry.
pub const DEFAULT_LOCAL: &str =
    "echo 'rackboot: {{ mac }} is installed (netboot local): booting the next device'\n\
    exit\n";

/// The file name grub reads its configuration from, in any directory.
pub const CONFIG_NAME: &str = "grub.cfg";

/// shim's second stage (and its MOK manager and fallback), which shim asks
/// for at the root of the TFTP tree or beside itself, whichever the firmware
/// told it: served from `/NAME` wherever asked.
pub const SECOND_STAGE: [&str; 6] = [
    "grubx64.efi",
    "grubaa64.efi",
    "mmx64.efi",
    "mmaa64.efi",
    "fbx64.efi",
    "fbaa64.efi",
];

/// The stub every `grub.cfg` request gets: load this machine's page, named by
/// grub's own settings, from the server grub came from.
pub fn stub(grub_path: &str) -> String {
    format!(
        "# rackboot: each machine's own configuration, by its MAC\n\
         configfile \"($root){grub_path}?mac=${{net_default_mac}}&arch=${{grub_cpu}}&platform=${{grub_platform}}\"\n\
         echo 'rackboot: no configuration for this machine (see the server log)'\n\
         sleep 5\n"
    )
}

/// Whether a requested file name (its last segment) is one grub reads its
/// configuration from.
pub fn is_config(path: &str) -> bool {
    path.rsplit('/').next() == Some(CONFIG_NAME)
}

/// The served name of shim's second stage asked for as `path`, if it is one.
pub fn second_stage(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next()?;
    SECOND_STAGE.iter().copied().find(|s| *s == name)
}

/// A kernel or initrd as grub names it: a served path as it is (on grub's
/// `$root`, the server it came from), an `http://host/path` URL as
/// `(http,host)/path`.
pub fn device_path(target: &str) -> String {
    match target.strip_prefix("http://") {
        Some(rest) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            format!("(http,{host}){path}")
        }
        None => target.to_owned(),
    }
}

/// A command line as grub reads it back unchanged: each word with a
/// character grub's script syntax treats specially (`$`, `;`, `&`, quotes,
/// ...) is single-quoted, a `'` in it written as `'\''`.
pub fn quote_cmdline(cmdline: &str) -> String {
    cmdline
        .split_whitespace()
        .map(|w| {
            if w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./:=,+-@%".contains(&b))
            {
                w.to_owned()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_grub_would_change_are_quoted() {
        assert_eq!(
            quote_cmdline("auto=true  url=http://h/config?mac=1&arch=x86_64 console=ttyS0,115200"),
            "auto=true 'url=http://h/config?mac=1&arch=x86_64' console=ttyS0,115200"
        );
        assert_eq!(quote_cmdline("a=it's $x"), r"'a=it'\''s' '$x'");
    }

    #[test]
    fn served_paths_stay_and_urls_become_grub_devices() {
        assert_eq!(device_path("/d-i/linux"), "/d-i/linux");
        assert_eq!(
            device_path("http://10.0.0.1:8080/d-i/linux"),
            "(http,10.0.0.1:8080)/d-i/linux"
        );
        assert_eq!(device_path("http://mirror"), "(http,mirror)/");
    }

    #[test]
    fn grub_config_names_and_shim_stages_are_found_in_any_directory() {
        assert!(is_config("/grub/grub.cfg"));
        assert!(is_config(
            "/debian-installer/amd64/grub/x86_64-efi/grub.cfg"
        ));
        assert!(!is_config("/grub/grub.cfg-01-52-54-00-12-34-56"));
        assert_eq!(
            second_stage("/debian-installer/amd64/grubx64.efi"),
            Some("grubx64.efi")
        );
        assert_eq!(second_stage("/grubx64.efi.signed"), None);
    }

    #[test]
    fn the_stub_names_the_machine_by_grubs_own_settings() {
        let s = stub("/boot.grub");
        assert!(s.contains(
            "configfile \"($root)/boot.grub?mac=${net_default_mac}&arch=${grub_cpu}&platform=${grub_platform}\""
        ));
    }
}
