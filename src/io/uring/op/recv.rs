//! Receives: RECV and RECVMSG multishot into the ring's provided buffers (a
//! socket waiting for data holds no buffer of its own), and a one-shot RECVMSG
//! into a buffer the op owns (with the control data a multishot receive cannot
//! return, such as IP_PKTINFO).

use std::rc::Rc;

use io_uring::{opcode, squeue};

use super::{fd, Shared};
use crate::io::udp::MsgIn;
use crate::io::uring::ring::BUFFER_GROUP;

/// A multishot RECV on a stream socket into the provided buffers.
pub(crate) struct Recv {
    socket: Shared,
}

impl std::fmt::Debug for Recv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

impl Recv {
    /// Receives on `socket` until cancelled, out of buffers, or at EOF.
    pub(crate) fn multishot(socket: Shared) -> Self {
        Self { socket }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        opcode::RecvMulti::new(fd(&self.socket), BUFFER_GROUP).build()
    }
}

/// One RECVMSG into a boxed [`MsgIn`] the op owns (handed back with the
/// completion, to read and arm again).
pub(crate) struct RecvMsg {
    socket: Shared,
    msg: Box<MsgIn>,
}

impl std::fmt::Debug for RecvMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMsg").finish_non_exhaustive()
    }
}

impl RecvMsg {
    /// A receive on `socket` into `msg`.
    pub(crate) fn new(socket: Shared, msg: Box<MsgIn>) -> Self {
        Self { socket, msg }
    }

    /// The buffer, with what the kernel wrote into it.
    pub(crate) fn into_msg(self) -> Box<MsgIn> {
        self.msg
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        opcode::RecvMsg::new(fd(&self.socket), self.msg.arm()).build()
    }
}

/// A multishot RECVMSG on a datagram socket into the provided buffers, laid
/// out by a template msghdr (see `udp::multishot_template`) the op holds.
pub(crate) struct RecvMsgMulti {
    socket: Shared,
    template: Rc<libc::msghdr>,
}

impl std::fmt::Debug for RecvMsgMulti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMsgMulti").finish_non_exhaustive()
    }
}

impl RecvMsgMulti {
    /// Receives on `socket` until cancelled or out of buffers.
    pub(crate) fn new(socket: Shared, template: Rc<libc::msghdr>) -> Self {
        Self { socket, template }
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let template: *const libc::msghdr = &*self.template;
        opcode::RecvMsgMulti::new(fd(&self.socket), template, BUFFER_GROUP).build()
    }
}
