//! ASYNC_CANCEL: entries that name operations, not memory, so the driver
//! submits them without an op of their own.

use io_uring::{opcode, squeue, types};

/// Cancels the operation submitted with `user_data`.
pub(crate) fn one(user_data: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(user_data).build()
}

/// Cancels every operation on descriptor `fd`.
pub(crate) fn fd(fd: std::os::fd::RawFd) -> squeue::Entry {
    opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build()
}

/// Cancels every operation of the ring.
pub(crate) fn all() -> squeue::Entry {
    opcode::AsyncCancel2::new(types::CancelBuilder::any()).build()
}
