//! ACCEPT, multishot: one submission accepts connections until it fails.

use io_uring::{opcode, squeue};

use super::{fd, Shared};

/// A multishot accept on a listener; each completion's result is a new,
/// owned descriptor (or a negated errno).
pub(crate) struct Accept {
    listener: Shared,
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accept").finish_non_exhaustive()
    }
}

impl Accept {
    /// Accepts on `listener` until cancelled or failed.
    pub(crate) fn multishot(listener: Shared) -> Self {
        Self { listener }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        opcode::AcceptMulti::new(fd(&self.listener)).build()
    }
}
