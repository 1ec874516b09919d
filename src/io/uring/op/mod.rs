//! The operations a worker submits, one kind per file (in the manner of
//! tokio-uring): each owns what the kernel reads or writes for it, and a handle
//! on its descriptor, until the driver has reaped its last completion. An op's
//! entry points only into heap blocks the op owns (a `Vec`, a `Box`, an `Rc`,
//! a file's mapping), never into the op itself, so the op may move after its
//! entry is built.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;

use io_uring::squeue;

use crate::store::BootFile;

mod accept;
pub(crate) mod cancel;
mod fsync;
mod poll;
mod recv;
mod send;
mod send_zc;
pub(crate) mod sendmsg;
mod splice;

pub(crate) use accept::Accept;
pub(crate) use fsync::Fsync;
pub(crate) use poll::Poll;
pub(crate) use recv::{Recv, RecvMsg, RecvMsgMulti};
pub(crate) use send::Send;
pub(crate) use send_zc::SendZc;
pub(crate) use sendmsg::SendMsg;
pub(crate) use splice::{End, Splice};

/// A descriptor an operation keeps open: the worker holds one handle, each op
/// on it another, and the descriptor closes with the last (so its number is
/// never reused under an operation).
pub(crate) type Shared = Rc<dyn AsRawFd>;

/// One operation of any kind.
#[derive(Debug)]
pub(crate) enum Op {
    /// A multishot accept.
    Accept(Accept),
    /// A multishot receive into the ring's provided buffers.
    Recv(Recv),
    /// One RECVMSG into its own buffer.
    RecvMsg(RecvMsg),
    /// A multishot RECVMSG into the ring's provided buffers.
    RecvMsgMulti(RecvMsgMulti),
    /// A SEND from a copy or a file's mapping.
    Send(Send),
    /// A SEND_ZC from a file's mapping.
    SendZc(SendZc),
    /// A SENDMSG (or SENDMSG_ZC) of a message it owns.
    SendMsg(SendMsg),
    /// A splice between a file or pipe and a socket or pipe.
    Splice(Splice),
    /// A one-shot poll.
    Poll(Poll),
    /// An fsync or fdatasync.
    Fsync(Fsync),
}

impl Op {
    /// The submission entry (the driver adds its `user_data`).
    pub(super) fn entry(&mut self) -> squeue::Entry {
        match self {
            Op::Accept(o) => o.entry(),
            Op::Recv(o) => o.entry(),
            Op::RecvMsg(o) => o.entry(),
            Op::RecvMsgMulti(o) => o.entry(),
            Op::Send(o) => o.entry(),
            Op::SendZc(o) => o.entry(),
            Op::SendMsg(o) => o.entry(),
            Op::Splice(o) => o.entry(),
            Op::Poll(o) => o.entry(),
            Op::Fsync(o) => o.entry(),
        }
    }
}

/// The raw descriptor of a handle, for an entry.
fn fd(shared: &Shared) -> io_uring::types::Fd {
    io_uring::types::Fd(shared.as_raw_fd())
}

/// A range of a boot file's mapping that a send reads, with the file held
/// so that its pages outlive the send.
pub(crate) struct Pages {
    file: Arc<BootFile>,
    offset: usize,
    len: usize,
}

impl Pages {
    /// `len` bytes of `file` from `offset`; `None` when that is not inside it.
    pub(crate) fn new(file: Arc<BootFile>, offset: usize, len: usize) -> Option<Self> {
        file.bytes().get(offset..offset.checked_add(len)?)?;
        Some(Self { file, offset, len })
    }

    /// Where the range starts, and its length (checked when it was made).
    fn raw(&self) -> (*const u8, u32) {
        let bytes = self.file.bytes();
        (bytes[self.offset..].as_ptr(), self.len as u32)
    }
}
