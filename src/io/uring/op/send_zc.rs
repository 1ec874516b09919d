//! SEND_ZC from a boot file's mapping: the kernel references the pages until
//! its notification, the op's last completion, so the op holds the file until
//! then.

use io_uring::{opcode, squeue};

use super::{fd, Pages, Shared};

/// A zero-copy SEND of a range of a file's mapping.
pub(crate) struct SendZc {
    socket: Shared,
    pages: Pages,
    flags: i32,
}

impl std::fmt::Debug for SendZc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendZc").finish_non_exhaustive()
    }
}

impl SendZc {
    /// Sends `pages` without a copy.
    pub(crate) fn file(socket: Shared, pages: Pages, flags: i32) -> Self {
        Self {
            socket,
            pages,
            flags,
        }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let (ptr, len) = self.pages.raw();
        opcode::SendZc::new(fd(&self.socket), ptr, len)
            .flags(self.flags)
            .build()
    }
}
