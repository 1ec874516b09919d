//! Why a DHCP message got no answer of its own, and the one place that maps
//! that to what the client is told: a NAK (RFC 2131 §4.3.2: the server knows
//! the client's idea is wrong) or silence.

use crate::wire;

/// A message the engine did not answer with an OFFER or ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a valid DHCP/BOOTP message.
    #[error(transparent)]
    Wire(#[from] wire::Error),
    /// A BOOTREPLY (op 2) sent to the server.
    #[error("not a request")]
    NotRequest,
    /// A server's message type (OFFER, ACK, NAK) from a client.
    #[error("server message from a client")]
    ServerMessage,
    /// A plain BOOTP request: this server speaks DHCP only.
    #[error("BOOTP without DHCP message type")]
    Bootp,
    /// A message of this type needs an address option it lacks.
    #[error("{0} without an address")]
    NoAddress(&'static str),
    /// The answer does not fit the reply buffer.
    #[error("reply too large")]
    ReplyTooLarge,
    /// A boot rule says to ignore this client (dnsmasq's `dhcp-ignore`,
    /// `dhcp-host=...,ignore`).
    #[error("ignored by rule")]
    Ignored,
    /// A request to port 4011, which only a proxy answers.
    #[error("port 4011 in server mode")]
    PxePortInServerMode,
    /// No configured subnet holds the client's network.
    #[error("no subnet for this client")]
    NoSubnet,
    /// Every address of the subnet is taken.
    #[error("pool exhausted")]
    PoolExhausted,
    /// The address for this client is being probed; its retransmission waits.
    #[error("probe of its address in progress")]
    ProbeInProgress,
    /// The client chose another server's offer.
    #[error("client chose another server")]
    OtherServer,
    /// The client is another server's to answer first ([dhcp.balance]), and
    /// has not waited long enough for this one to step in.
    #[error("another server's share (load balancing), not waited long enough")]
    OtherServersShare,
    /// SELECTING for an address this server did not offer.
    #[error("requested address was not offered")]
    NotOffered,
    /// INIT-REBOOT for an address on another network.
    #[error("address not on this network")]
    NotOnNetwork,
    /// INIT-REBOOT for an address held by another client or outside the pools.
    #[error("address not available")]
    Unavailable,
    /// INIT-REBOOT from a client without a lease, and the server is not
    /// authoritative: another server may know it.
    #[error("no record of this client (not authoritative)")]
    NoRecord,
    /// RENEWING/REBINDING an address with no lease, on this server's network
    /// and authoritative: the client must start over.
    #[error("no lease for this address")]
    NoLease,
    /// RENEWING/REBINDING an address with no lease, where another server may
    /// hold it.
    #[error("no lease for this address (not ours to refuse)")]
    NoLeaseElsewhere,
    /// RENEWING, REBINDING or INIT-REBOOT of a lease whose address a reload
    /// took out of every pool: the lease is kept until it expires and not
    /// renewed, so the client keeps its address until then and starts over.
    #[error("the lease's address is in no pool since the last reload: not renewed")]
    PoolGone,
    /// A DECLINE of an address not given to this client.
    #[error("DECLINE of an address not given to this client")]
    DeclineNotOurs,
    /// A RELEASE of an address not leased to this client.
    #[error("RELEASE of an address not leased to this client")]
    ReleaseNotOurs,
    /// Proxy mode answers PXE clients only.
    #[error("not a PXE client (proxy mode)")]
    NotPxe,
    /// Proxy mode answers DISCOVER on 67 and REQUEST/INFORM on 4011.
    #[error("proxy mode answers DISCOVER and port-4011 REQUEST")]
    ProxyMessage,
    /// No boot rule matches this client (proxy mode).
    #[error("no boot rule for this client")]
    NoBootRule,
    /// A probe result for an address no DISCOVER waits on.
    #[error("no probe for this address")]
    NoProbe,
    /// A boot server request for a menu item this server has no file for.
    #[error("no PXE menu item of this type with a file")]
    NoMenuItem,
    /// A boot server request with Boot Integrity Services (layer bit 15).
    #[error("PXE boot integrity services are not supported")]
    PxeBis,
    /// More messages from this MAC this second than `answers_per_mac`.
    #[error("too many messages from this MAC this second")]
    RateLimited,
}

impl Error {
    /// The NAK's message (option 56) when the client must be told, else `None`
    /// for silence. The one place that decides between the two.
    pub fn nak(&self) -> Option<&'static str> {
        match self {
            Error::NotOffered => Some("requested address was not offered"),
            Error::NotOnNetwork => Some("address not on this network"),
            Error::Unavailable => Some("address not available"),
            Error::NoLease => Some("no lease for this address"),
            _ => None,
        }
    }

    /// Whether the datagram was unusable (counted as dropped), rather than
    /// understood and left unanswered.
    pub fn is_drop(&self) -> bool {
        matches!(
            self,
            Error::Wire(_)
                | Error::NotRequest
                | Error::ServerMessage
                | Error::NoAddress(_)
                | Error::ReplyTooLarge
                | Error::RateLimited
        )
    }

    /// A short label for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Wire(e) => e.kind(),
            Error::NotRequest => "not_request",
            Error::ServerMessage => "server_message",
            Error::Bootp => "bootp",
            Error::NoAddress(_) => "no_address",
            Error::ReplyTooLarge => "reply_too_large",
            Error::RateLimited => "rate_limited",
            Error::Ignored => "ignored",
            Error::PxePortInServerMode => "pxe_port_in_server_mode",
            Error::NoSubnet => "no_subnet",
            Error::PoolExhausted => "pool_exhausted",
            Error::ProbeInProgress => "probe_in_progress",
            Error::OtherServer => "other_server",
            Error::OtherServersShare => "other_servers_share",
            Error::NotOffered => "not_offered",
            Error::NotOnNetwork => "not_on_network",
            Error::Unavailable => "unavailable",
            Error::NoRecord => "no_record",
            Error::NoLease => "no_lease",
            Error::NoLeaseElsewhere => "no_lease_elsewhere",
            Error::PoolGone => "pool_gone",
            Error::DeclineNotOurs => "decline_not_ours",
            Error::ReleaseNotOurs => "release_not_ours",
            Error::NotPxe => "not_pxe",
            Error::ProxyMessage => "proxy_message",
            Error::NoBootRule => "no_boot_rule",
            Error::NoProbe => "no_probe",
            Error::NoMenuItem => "no_menu_item",
            Error::PxeBis => "pxe_bis",
        }
    }
}
