//! The built-in demo set: what `rackboot serve` offers when no root is given, so a
//! first run needs no files. Sizes match a real Debian netboot (an 850 KB iPXE
//! binary, an 8 MB kernel, a 40 MB initrd); contents are deterministic filler, so
//! that every run, and every server, serves the same bytes under the same ETags.

use std::time::{Duration, UNIX_EPOCH};

use super::{Error, Options, Snapshot};

/// The demo boot script: chains to the demo kernel and initrd by relative URL.
pub const SCRIPT: &str = "#!ipxe\n\
    # rackboot built-in demo: serve your own files with `rackboot serve --root DIR`\n\
    kernel demo/vmlinuz initrd=initrd.gz console=ttyS0 auto=true priority=critical\n\
    initrd demo/initrd.gz\n\
    boot\n";

/// The demo preseed.
pub const PRESEED: &str =
    "# rackboot built-in demo preseed\nd-i debian-installer/locale string en_US.UTF-8\n";

/// (URL path, length) of the generated binaries.
pub const BINARIES: [(&str, usize); 4] = [
    ("/ipxe.efi", 850_528),
    ("/undionly.kpxe", 70_000),
    ("/demo/vmlinuz", 8_200_000),
    ("/demo/initrd.gz", 40_800_000),
];

/// 2026-01-01T00:00:00Z: a fixed date, so the demo's validators never change.
const MTIME_SECS: u64 = 1_767_225_600;

/// The storm's boot script: the demo kernel and initrd by absolute URL under
/// `base` (`http://host:port`), and a preseed URL on the kernel command line, as
/// an installer profile has.
pub fn storm_script(base: &str) -> String {
    format!(
        "#!ipxe\n\
         kernel {base}/demo/vmlinuz initrd=initrd.gz auto=true priority=critical url={base}/preseed.cfg\n\
         initrd {base}/demo/initrd.gz\n\
         boot\n"
    )
}

/// (URL path, length) of the demo's shim and grub, sized as Debian's signed
/// builds (shim-signed, grub-efi-amd64-signed).
pub const GRUB_BINARIES: [(&str, usize); 2] =
    [("/shimx64.efi", 1_048_504), ("/grubx64.efi", 3_843_520)];

/// The demo's shim and grub: (URL path, bytes, modification time).
pub fn grub_binaries() -> Vec<(&'static str, Vec<u8>, std::time::SystemTime)> {
    let mtime = UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    GRUB_BINARIES
        .iter()
        .zip(11..)
        .map(|(&(url, len), seed)| (url, filler(len, seed), mtime))
        .collect()
}

/// The storm's Secure Boot profile: the demo kernel and initrd through grub,
/// the preseed as its answers, taking the machines of `macs` (pinned, as an
/// inventory pins them); `server` (`host:port`) is named in pages grub reads
/// over TFTP. Its iPXE script path is out of the way, so the demo's own
/// `/boot.ipxe` still serves every other machine.
///
/// # Errors
/// Only if the built-in templates did not compile.
pub fn grub_profiles(
    macs: &[[u8; 6]],
    server: &str,
) -> Result<crate::proto::boot::Profiles, String> {
    use crate::proto::boot::{Loader, Mac, Machine, Paths, Profile, Profiles};
    let profile = Profile {
        name: "secure-boot".into(),
        loader: Loader::Grub,
        kernel: "/demo/vmlinuz".into(),
        initrds: vec!["/demo/initrd.gz".into()],
        cmdline: "auto=true priority=critical url={{ config_url }}".into(),
        script: None,
        config: Some(PRESEED.into()),
        matches: crate::proto::boot::Match::default(),
        vars: std::collections::BTreeMap::new(),
        once: false,
        local: None,
    };
    let machines = macs
        .iter()
        .map(|&m| Machine {
            mac: Mac(m),
            profile: Some("secure-boot".into()),
            ..Machine::default()
        })
        .collect();
    let paths = Paths {
        script: "/secure-boot.ipxe".into(),
        ..Paths::default()
    };
    Profiles::new(paths, vec![profile], None, machines, server.into()).map_err(|e| e.to_string())
}

pub(super) fn snapshot(options: &Options) -> Result<Snapshot, Error> {
    with_script(options, SCRIPT)
}

pub(super) fn with_script(options: &Options, script: &str) -> Result<Snapshot, Error> {
    let mtime = UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    let binaries: Vec<(&str, Vec<u8>)> = BINARIES
        .iter()
        .zip(1..)
        .map(|(&(url, len), seed)| (url, filler(len, seed)))
        .collect();
    let texts = [
        ("/boot.ipxe", script.as_bytes()),
        ("/preseed.cfg", PRESEED.as_bytes()),
    ];
    let all = texts
        .into_iter()
        .chain(binaries.iter().map(|(url, bytes)| (*url, bytes.as_slice())));
    Snapshot::from_memory(all.map(|(url, bytes)| (url, bytes, mtime)), options)
}

/// `len` pseudo-random bytes from a fixed seed (xorshift64*): incompressible, so
/// that no layer can make the demo look faster than real files.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_set_has_its_script_and_realistic_sizes() {
        let s = snapshot(&Options {
            max_bytes: u64::MAX,
            mlock: false,
        })
        .unwrap();
        assert_eq!(s.get("/boot.ipxe").unwrap().bytes(), SCRIPT.as_bytes());
        assert_eq!(s.get("/ipxe.efi").unwrap().len(), 850_528);
        assert_eq!(s.get("/demo/initrd.gz").unwrap().len(), 40_800_000);
        assert_eq!(s.len(), 2 + BINARIES.len());
    }

    #[test]
    fn filler_is_deterministic_per_seed() {
        assert_eq!(filler(100, 1), filler(100, 1));
        assert_ne!(filler(100, 1), filler(100, 2));
        assert_eq!(filler(13, 3).len(), 13);
    }
}
