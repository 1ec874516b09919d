//! POLL_ADD, one-shot: completes when a descriptor is ready.

use io_uring::{opcode, squeue};

use super::{fd, Shared};

/// A one-shot poll for `events` (POLLIN, POLLOUT) on a descriptor.
pub(crate) struct Poll {
    fd: Shared,
    events: u32,
}

impl std::fmt::Debug for Poll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poll")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Poll {
    /// Readable.
    pub(crate) fn readable(fd: Shared) -> Self {
        Self {
            fd,
            events: libc::POLLIN as u32,
        }
    }

    /// Writable.
    pub(crate) fn writable(fd: Shared) -> Self {
        Self {
            fd,
            events: libc::POLLOUT as u32,
        }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        opcode::PollAdd::new(fd(&self.fd), self.events).build()
    }
}
