//! iPXE's binaries as the machine's package manager installed them: the built-in
//! defaults (`rackboot serve --kernel ...`) serve them where the root has none.
//! Their place is asked of dpkg at run time (Debian's `ipxe` package), never
//! assumed.

use std::path::PathBuf;
use std::process::Command;

/// The binaries firmware asks for by name (the DHCP worker's default rules):
/// BIOS PXE, UEFI PXE and UEFI HTTP, and iPXE for UEFI without its own drivers.
pub const NAMES: [&str; 3] = ["undionly.kpxe", "ipxe.efi", "snponly.efi"];

/// (URL path, file) for each of [`NAMES`] the `ipxe` package installed.
///
/// # Errors
/// A sentence for the operator: dpkg is missing, or the package is not
/// installed, or it holds none of the binaries.
pub fn find() -> Result<Vec<(String, PathBuf)>, String> {
    let out = Command::new("dpkg")
        .args(["-L", "ipxe"])
        .output()
        .map_err(|e| {
            format!("cannot ask dpkg where iPXE is ({e}): put undionly.kpxe and ipxe.efi in --root")
        })?;
    if !out.status.success() {
        return Err(
            "the ipxe package is not installed: apt-get install ipxe, or put \
                    undionly.kpxe and ipxe.efi in --root"
                .into(),
        );
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let found: Vec<(String, PathBuf)> = NAMES
        .iter()
        .filter_map(|name| {
            // The package's own directory (…/ipxe/NAME) before copies elsewhere.
            let mut candidates: Vec<&str> = listing
                .lines()
                .filter(|l| l.rsplit('/').next() == Some(name) && std::path::Path::new(l).is_file())
                .collect();
            candidates.sort_by_key(|l| !l.ends_with(&format!("/ipxe/{name}")));
            candidates
                .first()
                .map(|l| (format!("/{name}"), PathBuf::from(l)))
        })
        .collect();
    if found.is_empty() {
        return Err(
            "the ipxe package holds none of undionly.kpxe, ipxe.efi, snponly.efi: \
                    put them in --root"
                .into(),
        );
    }
    Ok(found)
}
