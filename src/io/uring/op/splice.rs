//! SPLICE between a file's memfd, a pipe and a socket (the HTTP worker's
//! splice body path: memfd -> pipe -> socket, linked). io_uring runs every
//! splice on a kernel worker thread.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::Shared;
use crate::store::BootFile;

/// One end of a splice, held open by the op.
pub(crate) enum End {
    /// A boot file's memfd, at an offset.
    File(Arc<BootFile>, u64),
    /// A pipe end or a socket (no offset).
    Fd(Shared),
}

impl End {
    fn raw(&self) -> (types::Fd, i64) {
        match self {
            End::File(f, offset) => (types::Fd(f.fd().as_raw_fd()), *offset as i64),
            End::Fd(s) => (types::Fd(s.as_raw_fd()), -1),
        }
    }
}

/// A splice of up to `len` bytes.
pub(crate) struct Splice {
    from: End,
    to: End,
    len: u32,
    flags: u32,
}

impl std::fmt::Debug for Splice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splice")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Splice {
    /// Moves up to `len` bytes from `from` to `to` with `flags` (SPLICE_F_*).
    pub(crate) fn new(from: End, to: End, len: u32, flags: u32) -> Self {
        Self {
            from,
            to,
            len,
            flags,
        }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let ((fd_in, off_in), (fd_out, off_out)) = (self.from.raw(), self.to.raw());
        opcode::Splice::new(fd_in, off_in, fd_out, off_out, self.len)
            .flags(self.flags)
            .build()
    }
}
