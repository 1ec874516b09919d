//! Capabilities after start: a server needs `CAP_NET_BIND_SERVICE` and
//! `CAP_NET_RAW` only to open its sockets (ports below 1024, raw frames,
//! `SO_BINDTODEVICE`), all opened before any worker runs; later it needs
//! `CAP_IPC_LOCK` only, and only to page-lock what a reload loads. Linux
//! keeps capabilities per thread, so the main thread calls [`settle`] once
//! those sockets are open and before it starts any thread: every thread
//! (the libraries' too) inherits [`set_kept`]'s capabilities (permitted,
//! effective) and none of the rest, inheritable and ambient ones included.

use std::sync::OnceLock;

/// `CAP_IPC_LOCK`'s number.
pub const CAP_IPC_LOCK: u32 = 14;

static KEPT: OnceLock<u64> = OnceLock::new();

/// The capabilities threads keep from now on (bits by number). Set once, by
/// the server at its start; without it [`settle`] changes nothing (the
/// storm's in-process server, tests).
pub fn set_kept(caps: &[u32]) {
    let _ = KEPT.set(caps.iter().fold(0, |m, c| m | 1u64 << c));
}

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two words.
const VERSION_3: u32 = 0x2008_0522;

/// The calling thread's permitted capabilities (bits by number).
pub fn permitted() -> std::io::Result<u64> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` words for version 3 into `data`,
    // which is valid and large enough; `header` is valid.
    let r = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32)
}

/// Keeps, in the calling thread, only the capabilities [`set_kept`] named
/// (of those it has); returns the ones it dropped (bits by number).
///
/// # Errors
/// capget or capset failed.
pub fn settle() -> std::io::Result<u64> {
    let Some(&kept) = KEPT.get() else {
        return Ok(0);
    };
    let had = permitted()?;
    let keep = had & kept;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let word = |bits: u64, hi: bool| if hi { (bits >> 32) as u32 } else { bits as u32 };
    let data = [false, true].map(|hi| Data {
        effective: word(keep, hi),
        permitted: word(keep, hi),
        inheritable: 0,
    });
    // SAFETY: capset reads `header` and two `Data` words, both valid.
    let r = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(had & !keep)
}

/// Capability numbers as names, for the log.
pub fn names(bits: u64) -> String {
    const NAMES: [(u32, &str); 4] = [
        (10, "CAP_NET_BIND_SERVICE"),
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (CAP_IPC_LOCK, "CAP_IPC_LOCK"),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(n, _)| bits & 1 << n != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect();
    let others = bits & !NAMES.iter().fold(0u64, |m, (n, _)| m | 1 << n);
    if others != 0 {
        out.push(format!("{} more", others.count_ones()));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}
