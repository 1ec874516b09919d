//! SENDMSG and SENDMSG_ZC of a boxed [`MsgOut`] (address, iovecs, headers,
//! control data), with what keeps the payloads it points at alive (a TFTP
//! transfer's file or converted copy). For SENDMSG_ZC the kernel references
//! the headers and pages until its notification, the op's last completion.

use io_uring::{opcode, squeue};

use super::{fd, Shared};
use crate::io::udp::MsgOut;
use crate::proto::tftp::Payload;

/// IORING_SEND_ZC_REPORT_USAGE (an SQE ioprio flag): the notification says
/// whether the kernel fell back to copying.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// IORING_NOTIF_USAGE_ZC_COPIED: set in a notification's result when it copied.
pub(crate) const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// A message to send, and the payload its iovecs point into.
pub(crate) struct SendMsg {
    socket: Shared,
    msg: Box<MsgOut>,
    /// Keeps alive the pages the message's iovecs point at.
    _payload: Option<Payload>,
    zc: bool,
}

impl std::fmt::Debug for SendMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMsg")
            .field("zc", &self.zc)
            .finish_non_exhaustive()
    }
}

impl SendMsg {
    /// Sends `msg` on `socket`; `payload` keeps what its iovecs point at (none
    /// when the message holds its own copy). With `zc`, as SENDMSG_ZC.
    pub(crate) fn new(
        socket: Shared,
        msg: Box<MsgOut>,
        payload: Option<Payload>,
        zc: bool,
    ) -> Self {
        Self {
            socket,
            msg,
            _payload: payload,
            zc,
        }
    }

    /// Whether it was sent as SENDMSG_ZC.
    pub(crate) fn is_zc(&self) -> bool {
        self.zc
    }

    /// Whether the kernel cuts it into segments (UDP GSO).
    pub(crate) fn is_gso(&self) -> bool {
        self.msg.is_gso()
    }

    /// The message box, to reuse.
    pub(crate) fn into_msg(self) -> Box<MsgOut> {
        self.msg
    }

    pub(super) fn entry(&mut self) -> squeue::Entry {
        let msg = self.msg.msghdr();
        if self.zc {
            opcode::SendMsgZc::new(fd(&self.socket), msg)
                .ioprio(SEND_ZC_REPORT_USAGE)
                .build()
        } else {
            opcode::SendMsg::new(fd(&self.socket), msg).build()
        }
    }
}
