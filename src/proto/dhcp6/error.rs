//! Why the DHCPv6 engine sent nothing: a drop (the datagram was unusable) or
//! a quiet refusal (a well-formed message this server does not answer).
//! Statuses the client must hear (NoAddrsAvail, NoBinding, NotOnLink) are
//! replies, not errors.

use crate::wire;

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a valid DHCPv6 message (truncated, overrunning options, relay
    /// nesting past 32 hops, too large).
    #[error(transparent)]
    Malformed(wire::Error),
    /// The message needs a client identifier it lacks.
    #[error("no client identifier")]
    NoClientId,
    /// A SOLICIT, CONFIRM or REBIND that names a server (RFC 8415 §16).
    #[error("server identifier where none belongs")]
    Misaddressed,
    /// Meant for another server, or for none where ours is required.
    #[error("for another server")]
    NotOurs,
    /// A server's or relay's reply sent to the server.
    #[error("not a client message")]
    NotAClientMessage,
    /// No configured subnet holds the client's link.
    #[error("no subnet for this client's link")]
    NoSubnet,
    /// A CONFIRM naming no address.
    #[error("confirm without addresses")]
    NothingToConfirm,
    /// The answer does not fit the reply buffer.
    #[error("reply too large: {0}")]
    NoRoom(wire::Error),
}

impl Error {
    /// A short label for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed(e) => e.kind(),
            Error::NoClientId => "no_client_id",
            Error::Misaddressed => "misaddressed",
            Error::NotOurs => "not_ours",
            Error::NotAClientMessage => "not_a_client_message",
            Error::NoSubnet => "no_subnet",
            Error::NothingToConfirm => "nothing_to_confirm",
            Error::NoRoom(_) => "reply_too_large",
        }
    }

    /// Whether the datagram was unusable (counted as dropped), rather than a
    /// message this server chose not to answer.
    pub fn is_drop(&self) -> bool {
        matches!(
            self,
            Error::Malformed(_)
                | Error::NoClientId
                | Error::Misaddressed
                | Error::NotAClientMessage
        )
    }
}
