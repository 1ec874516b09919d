//! The signed Secure Boot chain as the machine's package manager installed it:
//! Microsoft-signed shim and Debian-signed network grub, served where the root
//! has none when a profile runs grub. Their place is asked of dpkg at run
//! time, never assumed: Debian's shim-signed and grub-efi-amd64-signed
//! packages, else the pair the Debian installer's netboot tree carries
//! (`bootnetx64.efi`, `grubx64.efi`). A pair comes from one source, so that
//! shim's revocation list (SBAT) and grub's generation fit each other.

use std::path::PathBuf;
use std::process::Command;

/// The URL paths firmware and shim ask for: shim (the boot file DHCP names)
/// and its second stage.
pub const NAMES: [&str; 2] = ["/shimx64.efi", "/grubx64.efi"];

/// The URL paths of the arm64 pair.
pub const NAMES_ARM64: [&str; 2] = ["/shimaa64.efi", "/grubaa64.efi"];

/// (URL path, file) for arm64's shim and grub: the pair the Debian
/// installer's arm64 netboot tree carries (`bootnetaa64.efi`,
/// `grubaa64.efi`; debian-installer-12-netboot-arm64 installs on any
/// architecture), for arm64 machines of a grub profile.
///
/// # Errors
/// A sentence for the operator: the pair is not installed.
pub fn find_arm64() -> Result<Vec<(String, PathBuf)>, String> {
    match ["/arm64/bootnetaa64.efi", "/arm64/grubaa64.efi"].map(installer_file) {
        [Some(shim), Some(grub)] => Ok(vec![
            (NAMES_ARM64[0].into(), shim),
            (NAMES_ARM64[1].into(), grub),
        ]),
        _ => Err("arm64's shim and grub are not installed (apt-get install \
             debian-installer-12-netboot-arm64, or put shimaa64.efi and grubaa64.efi in the root)"
            .into()),
    }
}

/// (URL path, file) for shim and grub.
///
/// # Errors
/// A sentence for the operator: dpkg is missing, or neither source is
/// installed.
pub fn find() -> Result<Vec<(String, PathBuf)>, String> {
    let packaged = [
        ("shim-signed", "/shimx64.efi.signed"),
        ("grub-efi-amd64-signed", "/grubnetx64.efi.signed"),
    ]
    .map(|(package, suffix)| package_file(package, suffix));
    if let [Ok(Some(shim)), Ok(Some(grub))] = &packaged {
        return Ok(pair(shim.clone(), grub.clone()));
    }
    if let [Some(shim), Some(grub)] =
        ["/amd64/bootnetx64.efi", "/amd64/grubx64.efi"].map(installer_file)
    {
        return Ok(pair(shim, grub));
    }
    if let Err(e) = &packaged[0] {
        return Err(format!(
            "cannot ask dpkg where shim and grub are ({e}): put shimx64.efi and grubx64.efi in the root"
        ));
    }
    Err(
        "shim and grub (signed) are not installed: apt-get install shim-signed \
         grub-efi-amd64-signed, or put shimx64.efi and grubx64.efi in the root"
            .into(),
    )
}

fn pair(shim: PathBuf, grub: PathBuf) -> Vec<(String, PathBuf)> {
    vec![(NAMES[0].into(), shim), (NAMES[1].into(), grub)]
}

/// The file of `package` whose path ends with `suffix`; `None` when the
/// package is not installed or has none.
fn package_file(package: &str, suffix: &str) -> Result<Option<PathBuf>, std::io::Error> {
    let out = Command::new("dpkg").args(["-L", package]).output()?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with(suffix) && std::path::Path::new(l).is_file())
        .map(PathBuf::from))
}

/// A file of an installed Debian installer netboot package ending with
/// `suffix` (its text-mode tree first).
fn installer_file(suffix: &str) -> Option<PathBuf> {
    // A pattern starting with `/` would match only that whole path.
    let out = Command::new("dpkg")
        .args(["-S", &format!("*{suffix}")])
        .output()
        .ok()?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut found: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("debian-installer-"))
        .filter_map(|l| l.split_once(": ").map(|(_, path)| path))
        .filter(|p| p.ends_with(suffix) && std::path::Path::new(p).is_file())
        .collect();
    found.sort_by_key(|p| !p.contains("/text/"));
    found.first().map(PathBuf::from)
}
