//! DHCPv6 messages (RFC 8415): read-only views over a received datagram, a
//! client/server message ([`Message`]) or a relay message ([`Relay`], RFC 8415
//! §9), an option walker that checks every length once at parse, views of the
//! options a boot server reads (IA_NA, IAADDR, DUID, client architecture,
//! vendor and user class), and an emitter for replies ([`Writer`]).

use std::net::Ipv6Addr;

use crate::wire::Error;

mod writer;

pub use writer::Writer;

/// The servers' and relays' port.
pub const SERVER_PORT: u16 = 547;
/// The clients' port.
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (link-scoped), where clients send.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Most relay hops a message may have passed (RFC 8415 §7.6 HOP_COUNT_LIMIT);
/// deeper nesting is a drop.
pub const HOP_LIMIT: u8 = 32;
/// Most options one message (or one nested option list) may carry.
pub const MAX_OPTIONS: usize = 128;
/// Largest datagram read: past it a message is a drop, not a parse.
pub const MAX_LEN: usize = 4096;

/// Option codes used by the server.
#[allow(
    missing_docs,
    reason = "each constant is the RFC 8415 (or RFC 5970) option of its name"
)]
pub mod code {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const BOOTFILE_URL: u16 = 59;
    pub const BOOTFILE_PARAM: u16 = 60;
    pub const CLIENT_ARCH: u16 = 61;
    pub const NII: u16 = 62;
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
}

/// Status codes (RFC 8415 §21.13).
#[allow(
    missing_docs,
    reason = "each constant is the RFC 8415 status of its name"
)]
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const UNSPEC_FAIL: u16 = 1;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const USE_MULTICAST: u16 = 5;
}

/// Message types (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "each variant is the RFC 8415 message type of its name"
)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
}

impl MessageType {
    /// The type of wire value `v`, if known.
    pub fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Solicit,
            2 => Advertise,
            3 => Request,
            4 => Confirm,
            5 => Renew,
            6 => Rebind,
            7 => Reply,
            8 => Release,
            9 => Decline,
            10 => Reconfigure,
            11 => InformationRequest,
            12 => RelayForw,
            13 => RelayRepl,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        use MessageType::*;
        match self {
            Solicit => 1,
            Advertise => 2,
            Request => 3,
            Confirm => 4,
            Renew => 5,
            Rebind => 6,
            Reply => 7,
            Release => 8,
            Decline => 9,
            Reconfigure => 10,
            InformationRequest => 11,
            RelayForw => 12,
            RelayRepl => 13,
        }
    }

    /// A short name for logs and counters.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Solicit => "solicit",
            Advertise => "advertise",
            Request => "request",
            Confirm => "confirm",
            Renew => "renew",
            Rebind => "rebind",
            Reply => "reply",
            Release => "release",
            Decline => "decline",
            Reconfigure => "reconfigure",
            InformationRequest => "information_request",
            RelayForw => "relay_forw",
            RelayRepl => "relay_repl",
        }
    }
}

/// A list of options: `code: u16, len: u16, data[len]` repeated, every
/// length checked when the list was made.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    buf: &'a [u8],
}

impl<'a> Options<'a> {
    /// The options of `buf`, each length checked against the bytes left.
    ///
    /// # Errors
    /// [`Error::Truncated`] when an option runs past the end,
    /// [`Error::TooManyOptions`] past [`MAX_OPTIONS`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut at = 0;
        let mut count = 0;
        while at < buf.len() {
            let Some(head) = buf.get(at..at + 4) else {
                return Err(Error::Truncated {
                    need: at + 4,
                    have: buf.len(),
                });
            };
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            if at + 4 + len > buf.len() {
                return Err(Error::Truncated {
                    need: at + 4 + len,
                    have: buf.len(),
                });
            }
            count += 1;
            if count > MAX_OPTIONS {
                return Err(Error::TooManyOptions { limit: MAX_OPTIONS });
            }
            at += 4 + len;
        }
        Ok(Self { buf })
    }

    /// Every option, in order, as `(code, data)`.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        let buf = self.buf;
        let mut at = 0;
        std::iter::from_fn(move || {
            let head = buf.get(at..at + 4)?;
            let code = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let data = buf.get(at + 4..at + 4 + len)?;
            at += 4 + len;
            Some((code, data))
        })
    }

    /// The data of the first option `code`.
    pub fn get(&self, code: u16) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, d)| d)
    }

    /// Every option `code`, in order.
    pub fn all(&self, code: u16) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(c, _)| *c == code).map(|(_, d)| d)
    }

    /// Whether option `code` is present.
    pub fn has(&self, code: u16) -> bool {
        self.get(code).is_some()
    }

    /// The option codes the client asked for (ORO, option 6).
    pub fn requested(&self) -> impl Iterator<Item = u16> + 'a {
        self.get(code::ORO)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// The client's first architecture type (option 61, RFC 5970), numbered
    /// as DHCPv4's option 93.
    pub fn client_arch(&self) -> Option<u16> {
        let v = self.get(code::CLIENT_ARCH)?;
        Some(u16::from_be_bytes([*v.first()?, *v.get(1)?]))
    }

    /// The vendor class (option 16): the enterprise number and its first
    /// opaque item (`PXEClient:Arch:...`, `HTTPClient:...`).
    pub fn vendor_class(&self) -> Option<(u32, &'a [u8])> {
        let v = self.get(code::VENDOR_CLASS)?;
        let enterprise = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
        let item = items(v.get(4..)?).next().unwrap_or_default();
        Some((enterprise, item))
    }

    /// The user class items (option 15), each without its length.
    pub fn user_classes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        items(self.get(code::USER_CLASS).unwrap_or_default())
    }

    /// The link-layer address a relay saw (option 79, RFC 6939), when it is
    /// Ethernet's.
    pub fn link_layer_mac(&self) -> Option<[u8; 6]> {
        let v = self.get(code::CLIENT_LINKLAYER_ADDR)?;
        (v.len() == 8 && v[..2] == [0, 1])
            .then(|| v[2..].try_into().ok())
            .flatten()
    }

    /// The IA_NA options, each parsed.
    ///
    /// # Errors
    /// The first IA_NA too short for its fixed fields or with bad options.
    pub fn ia_nas(&self) -> Result<Vec<IaNa<'a>>, Error> {
        self.all(code::IA_NA).map(IaNa::parse).collect()
    }
}

/// The `len: u16, data` items of a user or vendor class.
fn items(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
        let item = buf.get(2..2 + len)?;
        buf = &buf[2 + len..];
        Some(item)
    })
}

/// An identity association for non-temporary addresses (RFC 8415 §21.4).
#[derive(Debug, Clone, Copy)]
pub struct IaNa<'a> {
    /// The client's IAID.
    pub iaid: u32,
    /// T1 the client proposes (seconds).
    pub t1: u32,
    /// T2 the client proposes.
    pub t2: u32,
    /// Its options (IAADDR, status).
    pub options: Options<'a>,
}

impl<'a> IaNa<'a> {
    /// The IA_NA in an option's data.
    ///
    /// # Errors
    /// Shorter than 12 bytes, or bad options.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let fixed = data.get(..12).ok_or(Error::Truncated {
            need: 12,
            have: data.len(),
        })?;
        let word =
            |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        Ok(Self {
            iaid: word(0),
            t1: word(4),
            t2: word(8),
            options: Options::parse(&data[12..])?,
        })
    }

    /// The addresses the client names in this IA (IAADDR options), with the
    /// lifetimes it proposes; malformed ones are skipped.
    pub fn addresses(&self) -> impl Iterator<Item = IaAddr> + 'a {
        self.options.all(code::IAADDR).filter_map(IaAddr::parse)
    }
}

/// An address in an IA (RFC 8415 §21.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds.
    pub valid: u32,
}

impl IaAddr {
    /// The IAADDR in an option's data (its own options are not read).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let addr: [u8; 16] = data.get(..16)?.try_into().ok()?;
        let word = |i: usize| Some(u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?));
        Some(Self {
            addr: Ipv6Addr::from(addr),
            preferred: word(16)?,
            valid: word(20)?,
        })
    }
}

/// The Ethernet address a DUID carries: DUID-LLT (type 1) or DUID-LL (type 3)
/// with hardware type 1 (RFC 8415 §11.2, §11.4).
pub fn duid_mac(duid: &[u8]) -> Option<[u8; 6]> {
    let (kind, hw) = (duid.get(..2)?, duid.get(2..4)?);
    if hw != [0, 1] {
        return None;
    }
    let mac = match kind {
        [0, 1] => duid.get(8..)?,
        [0, 3] => duid.get(4..)?,
        _ => return None,
    };
    mac.try_into().ok()
}

/// A client/server message (RFC 8415 §8): type, transaction id, options.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Its type.
    pub kind: MessageType,
    /// Its transaction id (24 bits).
    pub xid: [u8; 3],
    /// Its options.
    pub options: Options<'a>,
}

impl<'a> Message<'a> {
    /// The message in `buf`.
    ///
    /// # Errors
    /// Shorter than 4 bytes, larger than [`MAX_LEN`], an unknown or relay
    /// type, or bad options.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() > MAX_LEN {
            return Err(Error::Malformed("message larger than 4096 bytes"));
        }
        let head = buf.get(..4).ok_or(Error::Truncated {
            need: 4,
            have: buf.len(),
        })?;
        let kind = match MessageType::from_u8(head[0]) {
            Some(MessageType::RelayForw | MessageType::RelayRepl) => {
                return Err(Error::Malformed(
                    "relay message where a client message belongs",
                ))
            }
            Some(k) => k,
            None => return Err(Error::Malformed("unknown DHCPv6 message type")),
        };
        Ok(Self {
            kind,
            xid: [head[1], head[2], head[3]],
            options: Options::parse(&buf[4..])?,
        })
    }

    /// The client's DUID (option 1).
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.options.get(code::CLIENTID)
    }

    /// The server DUID the client names (option 2).
    pub fn server_id(&self) -> Option<&'a [u8]> {
        self.options.get(code::SERVERID)
    }

    /// The client's elapsed time (option 8), hundredths of a second.
    pub fn elapsed(&self) -> Option<u16> {
        let v = self.options.get(code::ELAPSED_TIME)?;
        Some(u16::from_be_bytes(v.try_into().ok()?))
    }
}

/// One relay hop (RFC 8415 §9): RELAY-FORW from a relay agent, with the
/// message it carries in option 9.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    /// How many relays this message passed before this one.
    pub hops: u8,
    /// An address on the link the client is on (unspecified if none).
    pub link: Ipv6Addr,
    /// The address the relay received the message from.
    pub peer: Ipv6Addr,
    /// The relay's options (interface-id, link-layer address, the message).
    pub options: Options<'a>,
}

impl<'a> Relay<'a> {
    /// The RELAY-FORW in `buf`.
    ///
    /// # Errors
    /// Shorter than 34 bytes, another type, or bad options.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let head = buf.get(..34).ok_or(Error::Truncated {
            need: 34,
            have: buf.len(),
        })?;
        if head[0] != MessageType::RelayForw.to_u8() {
            return Err(Error::Malformed("not a RELAY-FORW"));
        }
        let addr = |r: core::ops::Range<usize>| -> Result<Ipv6Addr, Error> {
            let a: [u8; 16] = head[r]
                .try_into()
                .map_err(|_| Error::Malformed("address"))?;
            Ok(Ipv6Addr::from(a))
        };
        Ok(Self {
            hops: head[1],
            link: addr(2..18)?,
            peer: addr(18..34)?,
            options: Options::parse(&buf[34..])?,
        })
    }

    /// The relayed message (option 9).
    pub fn message(&self) -> Option<&'a [u8]> {
        self.options.get(code::RELAY_MSG)
    }

    /// The relay's interface-id (option 18), echoed in its RELAY-REPL.
    pub fn interface_id(&self) -> Option<&'a [u8]> {
        self.options.get(code::INTERFACE_ID)
    }
}

/// A received datagram unwrapped: the relays it passed, outermost first, and
/// the client's message inside.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    /// The relays, outermost (the one that sent it to us) first.
    pub relays: Vec<Relay<'a>>,
    /// The client's message.
    pub message: Message<'a>,
}

impl<'a> Received<'a> {
    /// Unwraps `buf`: RELAY-FORW messages down to the client's message, at
    /// most [`HOP_LIMIT`] deep.
    ///
    /// # Errors
    /// A malformed layer, a relay without a message, nesting past the limit.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() > MAX_LEN {
            return Err(Error::Malformed("message larger than 4096 bytes"));
        }
        let mut relays = Vec::new();
        let mut at = buf;
        while at.first() == Some(&MessageType::RelayForw.to_u8()) {
            if relays.len() >= usize::from(HOP_LIMIT) {
                return Err(Error::Malformed("relayed through more than 32 hops"));
            }
            let r = Relay::parse(at)?;
            at = r
                .message()
                .ok_or(Error::Malformed("RELAY-FORW without a relay message"))?;
            relays.push(r);
        }
        Ok(Self {
            relays,
            message: Message::parse(at)?,
        })
    }

    /// The client's Ethernet address, as best known: a relay's option 79
    /// (the innermost relay's, nearest the client), else the client's DUID
    /// when it carries one.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.relays
            .iter()
            .rev()
            .find_map(|r| r.options.link_layer_mac())
            .or_else(|| self.message.client_id().and_then(duid_mac))
    }

    /// The link the client is on, as the relay nearest it says (None when
    /// not relayed, or when no relay gave a link address that names a
    /// prefix: unspecified and link-local ones do not).
    pub fn link(&self) -> Option<Ipv6Addr> {
        self.relays
            .iter()
            .rev()
            .map(|r| r.link)
            .find(|l| !l.is_unspecified() && !l.is_unicast_link_local())
    }
}

#[cfg(test)]
mod tests;
