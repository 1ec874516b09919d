//! One received datagram, parsed once into a [`Request`]: the fixed fields,
//! the options, the message type, where it arrived, and the client's identity
//! as a key built on the stack.

use super::{Error, Input};
use crate::wire::dhcp::{code, MessageType, Options, Packet};

/// A client's identity as a key, built on the stack for every datagram (only
/// an offer or a lease that is kept copies it): option 61 when sent, else
/// htype + chaddr. An option 61 that is just htype + chaddr (what EDK2 sends)
/// names the hardware address too: iPXE and the installer on the same NIC send
/// none, and must find the same lease, as they do with dnsmasq (one address
/// per machine, not three).
#[derive(Clone, Copy)]
pub(super) struct ClientKey {
    len: usize,
    bytes: [u8; 2 + 256],
}

impl ClientKey {
    fn of(p: &Packet<'_>, o: &Options<'_>) -> Self {
        let mut k = Self {
            len: 0,
            bytes: [0; 258],
        };
        let mut put = |parts: &[&[u8]]| {
            k.len = 0;
            for part in parts {
                k.bytes[k.len..k.len + part.len()].copy_from_slice(part);
                k.len += part.len();
            }
        };
        // In bounds: htype + chaddr is at most 2 + 16 bytes (new_checked
        // refuses an hlen over 16), a client id at most 1 + 256 (guarded below).
        let chaddr = p.chaddr();
        match o.get(code::CLIENT_ID) {
            Some(id) if id.first() == Some(&p.htype()) && id.get(1..) == Some(chaddr) => {
                put(&[&[1, p.htype()], chaddr])
            }
            // An id too long for the key (only RFC 3396 concatenation makes
            // one) identifies by hardware address instead.
            Some(id) if !id.is_empty() && id.len() <= 256 => put(&[&[0], &id]),
            _ => put(&[&[1, p.htype()], chaddr]),
        }
        k
    }

    /// The key of the hardware address alone (`1, htype, chaddr`).
    pub(super) fn hardware(p: &Packet<'_>) -> Self {
        let mut k = Self {
            len: 0,
            bytes: [0; 258],
        };
        let chaddr = p.chaddr();
        k.bytes[0] = 1;
        k.bytes[1] = p.htype();
        k.bytes[2..2 + chaddr.len()].copy_from_slice(chaddr);
        k.len = 2 + chaddr.len();
        k
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// One datagram, parsed once: the fixed fields, the options, the message
/// type, where it arrived and who sent it.
#[derive(Clone)]
pub(super) struct Request<'a> {
    pub(super) packet: Packet<'a>,
    pub(super) options: Options<'a>,
    pub(super) kind: MessageType,
    pub(super) input: Input<'a>,
    pub(super) client: ClientKey,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("chaddr", &self.packet.hw())
            .field("xid", &self.packet.xid())
            .finish_non_exhaustive()
    }
}

impl<'a> Request<'a> {
    /// Checks and reads `input`'s datagram.
    ///
    /// # Errors
    /// It is not a usable client message.
    pub(super) fn parse(input: Input<'a>) -> Result<Self, Error> {
        let packet = Packet::new_checked(input.bytes)?;
        if packet.op() != 1 {
            return Err(Error::NotRequest);
        }
        let options = packet.options()?;
        let kind = options.message_type().ok_or(Error::Bootp)?;
        let client = ClientKey::of(&packet, &options);
        Ok(Self {
            packet,
            options,
            kind,
            input,
            client,
        })
    }
}
