//! BOOTP/DHCPv4 messages (RFC 2131, options RFC 2132): a read-only view over a
//! received datagram, an option index that follows option overload (option 52
//! into `file`/`sname`) and joins split long options (RFC 3396), sub-option
//! walkers for option 43/82/175, and an emitter for replies.

use core::ops::Range;
use std::net::Ipv4Addr;

use crate::wire::Error;

mod options;
mod writer;

pub use options::{Options, SubOptions};
pub use writer::Writer;

/// The server's port.
pub const SERVER_PORT: u16 = 67;
/// The client's port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server port (proxyDHCP REQUESTs, PXE spec 2.1).
pub const PXE_PORT: u16 = 4011;
/// The magic cookie that starts the options (RFC 2131 §3).
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Smallest BOOTP message; replies are padded to it (RFC 1542 §3.3).
pub const MIN_LEN: usize = 300;
/// Most option fragments one message may carry; more is a drop.
pub const MAX_FRAGMENTS: usize = 192;
/// The BOOTP broadcast flag.
pub const BROADCAST_FLAG: u16 = 0x8000;

mod field {
    use super::Range;
    pub(super) const OP: usize = 0;
    pub(super) const HTYPE: usize = 1;
    pub(super) const HLEN: usize = 2;
    pub(super) const HOPS: usize = 3;
    pub(super) const XID: Range<usize> = 4..8;
    pub(super) const SECS: Range<usize> = 8..10;
    pub(super) const FLAGS: Range<usize> = 10..12;
    pub(super) const CIADDR: Range<usize> = 12..16;
    pub(super) const YIADDR: Range<usize> = 16..20;
    pub(super) const SIADDR: Range<usize> = 20..24;
    pub(super) const GIADDR: Range<usize> = 24..28;
    pub(super) const CHADDR: Range<usize> = 28..44;
    pub(super) const SNAME: Range<usize> = 44..108;
    pub(super) const FILE: Range<usize> = 108..236;
    pub(super) const MAGIC: Range<usize> = 236..240;
    pub(super) const OPTIONS: usize = 240;
}

/// Option codes used by the server.
#[allow(
    missing_docs,
    reason = "each constant is the RFC 2132 option of its name"
)]
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const VENDOR: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMS: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const RENEWAL: u8 = 58;
    pub const REBINDING: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const UUID: u8 = 97;
    pub const IPXE: u8 = 175;
    pub const END: u8 = 255;
}

/// iPXE's encapsulated option 175 sub-options.
pub mod ipxe {
    /// `no-pxedhcp`: do not wait for ProxyDHCP offers.
    pub const NO_PXEDHCP: u8 = 176;
}

/// Relay agent information sub-options (RFC 3046).
pub mod relay {
    /// Agent circuit ID.
    pub const CIRCUIT_ID: u8 = 1;
    /// Agent remote ID.
    pub const REMOTE_ID: u8 = 2;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "each variant is the RFC 2132 message type of its name"
)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    /// The type for option 53's value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }

    /// Option 53's value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
        }
    }

    /// The name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Discover => "DISCOVER",
            Self::Offer => "OFFER",
            Self::Request => "REQUEST",
            Self::Decline => "DECLINE",
            Self::Ack => "ACK",
            Self::Nak => "NAK",
            Self::Release => "RELEASE",
            Self::Inform => "INFORM",
        }
    }
}

/// A client hardware address (chaddr cut to `hlen`, at most 16 bytes), kept
/// by value: printing it (`52:54:00:12:34:56`) allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Chaddr {
    len: u8,
    bytes: [u8; 16],
}

impl Chaddr {
    /// The first 16 bytes of `b`.
    pub fn new(b: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        let len = b.len().min(16);
        bytes[..len].copy_from_slice(&b[..len]);
        Self {
            len: len as u8,
            bytes,
        }
    }

    /// The address's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Display for Chaddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Chaddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A received BOOTP/DHCP message: fixed fields checked, options not yet read.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks the fixed header, `hlen` and the magic cookie.
    ///
    /// # Errors
    /// [`Error::Truncated`] below 240 bytes; [`Error::Malformed`] for an unknown
    /// `op`, `hlen` over 16 or a wrong magic cookie.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() < field::OPTIONS {
            return Err(Error::Truncated {
                need: field::OPTIONS,
                have: buf.len(),
            });
        }
        if !matches!(buf[field::OP], 1 | 2) {
            return Err(Error::Malformed("BOOTP op is neither 1 nor 2"));
        }
        if usize::from(buf[field::HLEN]) > field::CHADDR.len() {
            return Err(Error::Malformed("hlen over 16"));
        }
        if buf[field::MAGIC] != MAGIC {
            return Err(Error::Malformed("no DHCP magic cookie"));
        }
        Ok(Self { buf })
    }

    /// The whole datagram.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// 1 for a request, 2 for a reply.
    pub fn op(&self) -> u8 {
        self.buf[field::OP]
    }

    /// Hardware type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.buf[field::HTYPE]
    }

    /// The client hardware address, `hlen` bytes.
    pub fn chaddr(&self) -> &'a [u8] {
        let hlen = usize::from(self.buf[field::HLEN]);
        &self.buf[field::CHADDR.start..field::CHADDR.start + hlen]
    }

    /// The client hardware address as a value (for logs and replies).
    pub fn hw(&self) -> Chaddr {
        Chaddr::new(self.chaddr())
    }

    /// The chaddr of an Ethernet client.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.htype() != 1 {
            return None;
        }
        self.chaddr().try_into().ok()
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes(arr(&self.buf[field::XID]))
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        u16::from_be_bytes(arr(&self.buf[field::SECS]))
    }

    /// The flags; see [`BROADCAST_FLAG`].
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes(arr(&self.buf[field::FLAGS]))
    }

    /// Client's current address (renewing, rebinding, INFORM).
    pub fn ciaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(&self.buf[field::CIADDR]))
    }

    /// "Your" address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(&self.buf[field::YIADDR]))
    }

    /// Next server address.
    pub fn siaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(&self.buf[field::SIADDR]))
    }

    /// Relay agent address (zero when not relayed).
    pub fn giaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(&self.buf[field::GIADDR]))
    }

    /// The `sname` field up to its NUL (meaningless when overloaded).
    pub fn sname(&self) -> &'a [u8] {
        until_nul(&self.buf[field::SNAME])
    }

    /// The `file` field up to its NUL (meaningless when overloaded).
    pub fn file(&self) -> &'a [u8] {
        until_nul(&self.buf[field::FILE])
    }

    /// Reads the options (see [`Options`]).
    ///
    /// # Errors
    /// See [`Options::parse`].
    pub fn options(&self) -> Result<Options<'a>, Error> {
        Options::parse(self.buf)
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or(b)
}

#[cfg(test)]
mod tests;
