//! sendfile(2) from a boot file's memfd to a socket: the kernel moves page
//! references of the sealed memfd into the socket, no user-space copy.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends up to `count` bytes of `file` starting at `offset` to `socket`.
/// Returns the bytes sent; `WouldBlock` when the socket buffer is full.
pub(crate) fn sendfile(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both descriptors are borrowed for the call, so they stay open; `off`
    // is a live local the kernel updates; no other memory of ours is touched.
    let n = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
