//! Why a TFTP request was refused or a datagram dropped, and the one place that
//! maps it to the ERROR packet the client is sent (RFC 1350 §5, RFC 2347).

use crate::wire::{self, tftp::Opcode};

/// A refused request or a dropped datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram is not a valid TFTP packet.
    #[error(transparent)]
    Wire(#[from] wire::Error),
    /// No such file in the served root.
    #[error("no such file in the served root: {0}")]
    NotFound(Box<str>),
    /// The name reaches outside the root, or cannot name a file.
    #[error("access violation: {0}")]
    AccessViolation(&'static str),
    /// A write request: the server is read-only.
    #[error("write requests are refused: the server is read-only")]
    WriteRefused,
    /// A mode other than octet and netascii.
    #[error("unsupported transfer mode")]
    Mode,
    /// An option value the server cannot honour (answered with ERROR 8).
    #[error("option refused: {0}")]
    Option(&'static str),
    /// A limit on transfers was reached.
    #[error("server busy: {0}")]
    Busy(&'static str),
    /// A packet that has no meaning in this state (a DATA to the server, say).
    #[error("unexpected {0:?}")]
    Unexpected(Opcode),
    /// An ACK for a block already acknowledged: ignored, so that a late ACK never
    /// triggers a second copy of every later block (Sorcerer's Apprentice).
    #[error("duplicate ACK for block {0}")]
    DuplicateAck(u16),
    /// A datagram to a transfer's socket from another address or port (RFC
    /// 1350 §4: answered with ERROR 5; the transfer goes on).
    #[error("datagram from an unknown transfer ID")]
    UnknownTid,
    /// An ACK for a block never sent.
    #[error("ACK for block {0}, which was never sent")]
    AckNotSent(u16),
}

impl Error {
    /// The ERROR code and message to send, or `None` for a silent drop.
    pub fn reply(&self) -> Option<(u16, &'static str)> {
        match self {
            Error::Wire(_) => Some((4, "malformed request")),
            Error::NotFound(_) => Some((1, "file not found")),
            Error::AccessViolation(why) => Some((2, why)),
            Error::WriteRefused => Some((2, "read-only server")),
            Error::Mode => Some((4, "unsupported mode: use octet or netascii")),
            Error::Option(why) => Some((8, why)),
            Error::Busy(why) => Some((0, why)),
            Error::UnknownTid => Some((5, "unknown transfer ID")),
            Error::Unexpected(_) | Error::DuplicateAck(_) | Error::AckNotSent(_) => None,
        }
    }

    /// A short label for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Wire(e) => e.kind(),
            Error::NotFound(_) => "not_found",
            Error::AccessViolation(_) => "access_violation",
            Error::WriteRefused => "write_refused",
            Error::Mode => "mode",
            Error::Option(_) => "option",
            Error::Busy(_) => "busy",
            Error::Unexpected(_) => "unexpected",
            Error::UnknownTid => "unknown_tid",
            Error::DuplicateAck(_) => "duplicate_ack",
            Error::AckNotSent(_) => "ack_not_sent",
        }
    }
}
