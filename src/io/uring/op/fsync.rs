//! FSYNC: a file's data (and, unless `datasync`, its metadata) to disk, on a
//! handle the op owns.

use std::fs::File;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

/// An fsync of a file handle the op owns (a duplicate of the worker's, so the
/// worker may replace its own file meanwhile).
#[derive(Debug)]
pub(crate) struct Fsync {
    file: File,
    datasync: bool,
}

impl Fsync {
    /// fdatasync(2) of `file`.
    pub(crate) fn data(file: File) -> Self {
        Self {
            file,
            datasync: true,
        }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let flags = if self.datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.file.as_raw_fd()))
            .flags(flags)
            .build()
    }
}
