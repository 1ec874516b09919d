//! One sealed, read-only in-memory file: a memfd that can no longer be written,
//! shrunk or grown, and its read-only shared mapping. The only unsafe code of the
//! store lives here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};

use memmap2::{Mmap, MmapOptions};

/// A write-sealed memfd and its mapping. Both live exactly as long as this value.
#[derive(Debug)]
pub(super) struct Sealed {
    file: File,
    map: Mmap,
    locked: bool,
}

impl Sealed {
    /// Copies `len` bytes from `source` into a new memfd named `name`, seals it and
    /// maps it. A source that changes length meanwhile is an error.
    pub(super) fn copy_from(name: &str, source: &mut impl Read, len: u64) -> io::Result<Self> {
        let mut file = create(name)?;
        // The size first: with transparent huge pages for shmem at `within_size`
        // (tuning/README.md), the kernel then backs the file with huge pages, and
        // sendfile and splice look a page up per 2 MiB instead of per 4 KiB.
        file.set_len(len)?;
        let copied = io::copy(&mut source.take(len), &mut file)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while loading: read {copied} of {len} bytes"),
            ));
        }
        Self::seal_and_map(file)
    }

    /// A memfd holding `bytes`.
    pub(super) fn from_bytes(name: &str, bytes: &[u8]) -> io::Result<Self> {
        let mut file = create(name)?;
        file.set_len(bytes.len() as u64)?;
        file.write_all(bytes)?;
        Self::seal_and_map(file)
    }

    fn seal_and_map(file: File) -> io::Result<Self> {
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on a descriptor this function owns; F_ADD_SEALS takes an int
        // argument and touches no memory of ours.
        let rc = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::F_ADD_SEALS,
                seals,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the memfd is sealed against write, shrink and grow (and against new
        // seals), and no writable mapping of it exists, so the mapped bytes can never
        // change or vanish while `map` lives: the hazard of mapping a file (another
        // writer, truncation -> SIGBUS) cannot arise. What remains: the kernel may
        // still swap the pages out when they are not locked; that costs latency, not
        // soundness.
        let map = unsafe { MmapOptions::new().populate().map(&file)? };
        Ok(Self {
            file,
            map,
            locked: false,
        })
    }

    /// Locks the mapping's pages in memory.
    pub(super) fn lock(&mut self) -> io::Result<()> {
        self.map.lock()?;
        self.locked = true;
        Ok(())
    }

    pub(super) fn is_locked(&self) -> bool {
        self.locked
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn create(name: &str) -> io::Result<File> {
    // memfd names are for /proc only; keep them short and NUL-free.
    let mut cname: Vec<u8> = b"rackboot:"
        .iter()
        .chain(name.as_bytes())
        .copied()
        .filter(|&b| b != 0)
        .take(240)
        .collect();
    cname.push(0);
    // SAFETY: `cname` is a NUL-terminated buffer that outlives the call.
    let fd = unsafe {
        libc::memfd_create(
            cname.as_ptr().cast(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_sealed_file_cannot_be_written_or_resized() {
        let s = Sealed::from_bytes("t", b"hello").unwrap();
        assert_eq!(s.bytes(), b"hello");
        let fd = s.fd().as_raw_fd();
        // Writing through a second descriptor must fail with EPERM.
        let mut again = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
            .unwrap();
        assert!(again.write_all(b"x").is_err());
        assert!(again.set_len(1).is_err());
        assert!(again.set_len(100).is_err());
        assert_eq!(s.bytes(), b"hello");
    }

    #[test]
    fn an_empty_file_maps_to_no_bytes() {
        let s = Sealed::from_bytes("empty", b"").unwrap();
        assert!(s.bytes().is_empty());
    }

    #[test]
    fn a_short_source_is_an_error() {
        let err = Sealed::copy_from("short", &mut &b"abc"[..], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
