//! SEND on a stream socket, from a copy the op owns or from a boot file's
//! mapping (the op holds the file, so its pages outlive the send).

use io_uring::{opcode, squeue};

use super::{fd, Pages, Shared};

enum From {
    Bytes(Vec<u8>),
    File(Pages),
}

/// A SEND of bytes the op owns or of a range of a file's mapping.
pub(crate) struct Send {
    socket: Shared,
    from: From,
    flags: i32,
}

impl std::fmt::Debug for Send {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Send")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl Send {
    /// Sends `bytes` (the op's own copy) with `flags` (MSG_*).
    pub(crate) fn bytes(socket: Shared, bytes: Vec<u8>, flags: i32) -> Self {
        Self {
            socket,
            from: From::Bytes(bytes),
            flags,
        }
    }

    /// Sends `pages` of a file's mapping.
    pub(crate) fn file(socket: Shared, pages: Pages, flags: i32) -> Self {
        Self {
            socket,
            from: From::File(pages),
            flags,
        }
    }

    /// The op's own copy, to reuse (empty for a file send).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self.from {
            From::Bytes(b) => b,
            From::File(_) => Vec::new(),
        }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let (ptr, len) = match &self.from {
            From::Bytes(b) => (b.as_ptr(), b.len() as u32),
            From::File(pages) => pages.raw(),
        };
        opcode::Send::new(fd(&self.socket), ptr, len)
            .flags(self.flags)
            .build()
    }
}
