//! Boot media for machines without PXE: one hybrid image (ISO 9660 with El
//! Torito, and a partition table, so the same bytes boot from a CD, from BMC
//! virtual media and written to a USB stick) that starts BIOS and UEFI
//! machines into this server's boot flow. Any DHCP server that gives an
//! address will do: the image needs no boot options.
//!
//! - BIOS: grub (i386-pc) starts iPXE's `ipxe.lkrn` with the media's script
//!   as its initrd, which iPXE runs: `dhcp`, then chain the server's boot
//!   script with the machine's facts, retrying with a message on failure.
//! - UEFI: grub (x86_64-efi) does the same with its own network stack:
//!   `net_bootp`, then the machine's grub page over HTTP, named by the MAC
//!   of the card that got the lease (`net_efinetN_dhcp_mac`: after
//!   `net_bootp` grub 2.06 leaves `net_default_mac` empty). (Debian 12's
//!   `ipxe.efi` is a 2019 build that cannot run a script from its own media.)
//!
//! The image is made by `grub-mkrescue` (grub-common with grub-pc-bin and
//! grub-efi-amd64-bin, xorriso and mtools): Debian's own tool for exactly
//! this hybrid layout, rather than an ISO 9660 + El Torito + FAT writer of
//! our own. Under Secure Boot the media's grub (unsigned) is refused: such
//! machines boot by PXE through shim (`loader = "grub"`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the server is, as the media's scripts name it: `http://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `HOST[:PORT]`.
    pub authority: String,
}

impl Server {
    /// The server of `url` (`http://HOST[:PORT]`, nothing after).
    ///
    /// # Errors
    /// A sentence naming what is wrong and the form to write.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url:?} is not an http:// URL: write http://HOST[:PORT], e.g. http://10.0.0.1")
        })?;
        let authority = rest.trim_end_matches('/');
        if !is_authority(authority) {
            return Err(format!(
                "{url:?}: write http://HOST[:PORT] with no path, e.g. http://10.0.0.1:8080"
            ));
        }
        Ok(Self {
            authority: authority.to_owned(),
        })
    }
}

/// Whether `text` is a `HOST[:PORT]` a URL can carry as it is (an IPv6
/// address in brackets).
pub fn is_authority(text: &str) -> bool {
    let bracketed = text.starts_with('[') == text.contains(']');
    let colons = text
        .rsplit_once(']')
        .map_or(text, |(_, p)| p)
        .matches(':')
        .count();
    !text.is_empty()
        && bracketed
        && colons <= 1
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// The iPXE script the BIOS path runs: DHCP, then the server's boot script
/// (`script_path`) with the machine's facts; on any failure it says so and
/// tries again.
pub fn ipxe_script(server: &Server, script_path: &str) -> String {
    let s = &server.authority;
    format!(
        "#!ipxe\n\
         echo rackboot media: DHCP, then this machine's script from http://{s}\n\
         :retry\n\
         dhcp && chain http://{s}{script_path}?mac=${{netX/mac:hexhyp}}&uuid=${{uuid}}&arch=${{buildarch}}&platform=${{platform}}&hostname=${{hostname:uristring}} && goto end ||\n\
         echo rackboot media: no answer from http://{s} (DHCP or HTTP): retrying in 5 s\n\
         sleep 5\n\
         goto retry\n\
         :end\n"
    )
}

/// The grub configuration on the media: BIOS machines start iPXE with the
/// script; UEFI machines use grub's own DHCP and HTTP for their grub page
/// (`grub_path`).
pub fn grub_config(server: &Server, grub_path: &str) -> String {
    let s = &server.authority;
    // grub 2.06 names the lease of card N `net_efinetN_dhcp_*` and leaves
    // `net_default_mac` empty after `net_bootp`: the page is asked for with
    // the MAC of the first card that got an address.
    let cards: String = (0..CARDS)
        .map(|n| {
            format!(
                "\x20   if [ -n \"$net_efinet{n}_dhcp_mac\" ]; then\n\
                 \x20     configfile \"{grub_path}?mac=${{net_efinet{n}_dhcp_mac}}&arch=${{grub_cpu}}&platform=${{grub_platform}}\"\n\
                 \x20   fi\n"
            )
        })
        .collect();
    format!(
        "set timeout=0\n\
         if [ \"$grub_platform\" = \"pc\" ]; then\n\
         \x20 echo 'rackboot media: starting iPXE'\n\
         \x20 linux16 /rackboot/ipxe.lkrn\n\
         \x20 initrd16 /rackboot/boot.ipxe\n\
         \x20 boot\n\
         fi\n\
         insmod efinet\n\
         insmod http\n\
         echo 'rackboot media: DHCP, then this machine configuration from http://{s}'\n\
         while true; do\n\
         \x20 if net_bootp; then\n\
         \x20   set root=(http,{s})\n\
         {cards}\
         \x20 fi\n\
         \x20 echo 'rackboot media: no answer from http://{s} (DHCP or HTTP): retrying in 5 s'\n\
         \x20 sleep 5\n\
         done\n"
    )
}

/// The network cards the UEFI path looks at for a lease, in order.
const CARDS: usize = 16;

/// Makes the image for `server` and returns its bytes.
///
/// # Errors
/// A tool or file is missing (the sentence says what to install), or
/// grub-mkrescue failed (its own words).
pub fn build(server: &Server, script_path: &str, grub_path: &str) -> Result<Vec<u8>, String> {
    for (path, option) in [(script_path, "--script-path"), (grub_path, "--grub-path")] {
        if !path.starts_with('/')
            || !path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b))
        {
            return Err(format!(
                "{option} {path:?}: write a URL path such as /boot.ipxe (letters, digits, /._-~)"
            ));
        }
    }
    for (dir, package) in [
        ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
        ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
    ] {
        if !Path::new(dir).is_dir() {
            return Err(format!(
                "{dir} is missing, so the image could not boot that firmware: apt-get install {package}"
            ));
        }
    }
    let lkrn = ipxe_lkrn()?;
    let work = Work::new()?;
    let tree = work.0.join("tree");
    let put = |path: &str, bytes: &[u8]| -> Result<(), String> {
        let p = tree.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    };
    let lkrn_bytes = std::fs::read(&lkrn).map_err(|e| format!("{}: {e}", lkrn.display()))?;
    put("rackboot/ipxe.lkrn", &lkrn_bytes)?;
    put(
        "rackboot/boot.ipxe",
        ipxe_script(server, script_path).as_bytes(),
    )?;
    put(
        "boot/grub/grub.cfg",
        grub_config(server, grub_path).as_bytes(),
    )?;
    let out = work.0.join("boot.iso");
    let run = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&out)
        .arg(&tree)
        .output()
        .map_err(|e| {
            format!(
                "cannot run grub-mkrescue ({e}): apt-get install grub-common grub-pc-bin \
                 grub-efi-amd64-bin xorriso mtools"
            )
        })?;
    if !run.status.success() {
        let said = String::from_utf8_lossy(&run.stderr);
        return Err(format!(
            "grub-mkrescue failed: {} (it needs xorriso and mtools: apt-get install xorriso mtools)",
            said.trim()
        ));
    }
    std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// iPXE's BIOS image that boots as a Linux kernel (Debian's ipxe package).
fn ipxe_lkrn() -> Result<PathBuf, String> {
    let out = Command::new("dpkg")
        .args(["-L", "ipxe"])
        .output()
        .map_err(|e| format!("cannot ask dpkg where iPXE is ({e}): apt-get install ipxe"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/ipxe.lkrn") && Path::new(l).is_file())
        .map(PathBuf::from)
        .ok_or_else(|| {
            "the ipxe package (with ipxe.lkrn) is not installed: apt-get install ipxe".into()
        })
}

/// A private working directory, removed when dropped.
struct Work(PathBuf);

impl Work {
    /// A new directory only this process made (mode 0700): a name that
    /// exists, as a directory or a link another user planted, is skipped,
    /// never reused.
    fn new() -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let salt = crate::io::clock::unix_ms();
        for _ in 0..100 {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("rackboot-media-{}-{salt}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("{}: {e}", dir.display())),
            }
        }
        Err(format!(
            "cannot make a private working directory in {}",
            std::env::temp_dir().display()
        ))
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_an_http_authority_and_mistakes_are_said() {
        assert_eq!(
            Server::parse("http://10.0.0.1:8080/").unwrap().authority,
            "10.0.0.1:8080"
        );
        for bad in [
            "10.0.0.1",
            "https://h",
            "http://h/boot.ipxe",
            "http://",
            "http://fd00::1",
            "http://h\"x",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn both_paths_name_the_server_and_the_machine() {
        let s = Server::parse("http://10.0.0.1").unwrap();
        let script = ipxe_script(&s, "/boot.ipxe");
        assert!(script.contains(
            "dhcp && chain http://10.0.0.1/boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid}"
        ));
        assert!(script.contains("goto retry"));
        let cfg = grub_config(&s, "/boot.grub");
        assert!(cfg.contains("set root=(http,10.0.0.1)"));
        assert!(
            cfg.contains("configfile \"/boot.grub?mac=${net_efinet1_dhcp_mac}&arch=${grub_cpu}")
        );
        assert!(cfg.contains("$net_efinet15_dhcp_mac"));
        assert!(Server::parse("http://[fd00::1]:8080").is_ok());
    }
}
