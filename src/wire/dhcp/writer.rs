//! The emitter of replies: fixed fields copied from the request, options in
//! the order added, split at 255 bytes (RFC 3396), END and padding.

use std::net::Ipv4Addr;

use super::{code, field, MessageType, Packet, BROADCAST_FLAG, MAGIC, MIN_LEN};
use crate::wire::Error;

/// Writes a reply into a caller buffer: the fixed fields first, then options in
/// the order added, split at 255 bytes (RFC 3396), then END and padding.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    /// A reply (op 2) to `request`: htype, hlen, xid, flags, giaddr and chaddr
    /// copied, the rest zero, the magic cookie in place.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when `buf` cannot hold a minimal message.
    pub fn reply(buf: &'b mut [u8], request: &Packet<'_>) -> Result<Self, Error> {
        if buf.len() < MIN_LEN {
            return Err(Error::NoRoom);
        }
        buf[..field::OPTIONS].fill(0);
        let r = request.buf;
        buf[field::OP] = 2;
        buf[field::HTYPE] = r[field::HTYPE];
        buf[field::HLEN] = r[field::HLEN];
        buf[field::XID].copy_from_slice(&r[field::XID]);
        buf[field::FLAGS].copy_from_slice(&r[field::FLAGS]);
        buf[field::GIADDR].copy_from_slice(&r[field::GIADDR]);
        buf[field::CHADDR].copy_from_slice(&r[field::CHADDR]);
        buf[field::MAGIC].copy_from_slice(&MAGIC);
        Ok(Self {
            buf,
            at: field::OPTIONS,
        })
    }

    /// A client's request (op 1) from `mac` with `xid`, asking for a broadcast
    /// reply when `broadcast` (a client that cannot receive unicast before it
    /// has an address, as firmware often asks); the rest zero.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when `buf` cannot hold a minimal message.
    pub fn request(
        buf: &'b mut [u8],
        xid: u32,
        mac: [u8; 6],
        broadcast: bool,
    ) -> Result<Self, Error> {
        if buf.len() < MIN_LEN {
            return Err(Error::NoRoom);
        }
        buf[..field::OPTIONS].fill(0);
        buf[field::OP] = 1;
        buf[field::HTYPE] = 1; // Ethernet
        buf[field::HLEN] = 6;
        buf[field::XID].copy_from_slice(&xid.to_be_bytes());
        if broadcast {
            buf[field::FLAGS].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
        }
        buf[field::CHADDR.start..field::CHADDR.start + 6].copy_from_slice(&mac);
        buf[field::MAGIC].copy_from_slice(&MAGIC);
        Ok(Self {
            buf,
            at: field::OPTIONS,
        })
    }

    /// Sets `yiaddr`.
    pub fn yiaddr(&mut self, ip: Ipv4Addr) {
        self.buf[field::YIADDR].copy_from_slice(&ip.octets());
    }

    /// Sets `ciaddr`.
    pub fn ciaddr(&mut self, ip: Ipv4Addr) {
        self.buf[field::CIADDR].copy_from_slice(&ip.octets());
    }

    /// Sets `giaddr` (a relay's address).
    pub fn giaddr(&mut self, ip: Ipv4Addr) {
        self.buf[field::GIADDR].copy_from_slice(&ip.octets());
    }

    /// Sets `hops` (relays passed).
    pub fn hops(&mut self, hops: u8) {
        self.buf[field::HOPS] = hops;
    }

    /// Sets `secs`: how long the client has been trying.
    pub fn secs(&mut self, secs: u16) {
        self.buf[field::SECS].copy_from_slice(&secs.to_be_bytes());
    }

    /// Sets `siaddr` (the next server).
    pub fn siaddr(&mut self, ip: Ipv4Addr) {
        self.buf[field::SIADDR].copy_from_slice(&ip.octets());
    }

    /// Sets the broadcast flag.
    pub fn broadcast_flag(&mut self) {
        self.buf[field::FLAGS].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
    }

    /// Puts `name` in the `sname` field; false (and nothing written) when it
    /// does not fit with its NUL.
    pub fn sname(&mut self, name: &[u8]) -> bool {
        if name.len() >= field::SNAME.len() {
            return false;
        }
        self.buf[field::SNAME.start..field::SNAME.start + name.len()].copy_from_slice(name);
        true
    }

    /// Puts `name` in the `file` field; false (and nothing written) when it does
    /// not fit with its NUL.
    pub fn file(&mut self, name: &[u8]) -> bool {
        if name.len() >= field::FILE.len() {
            return false;
        }
        self.buf[field::FILE.start..field::FILE.start + name.len()].copy_from_slice(name);
        true
    }

    /// Adds option `c`; a value over 255 bytes becomes several fragments.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when the buffer (keeping a byte for END) is full.
    pub fn option(&mut self, c: u8, value: &[u8]) -> Result<(), Error> {
        let mut chunks = value.chunks(255);
        let first = chunks.next().unwrap_or(&[]);
        for chunk in std::iter::once(first).chain(chunks) {
            let end = self.at + 2 + chunk.len();
            if end + 1 > self.buf.len() {
                return Err(Error::NoRoom);
            }
            self.buf[self.at] = c;
            self.buf[self.at + 1] = chunk.len() as u8;
            self.buf[self.at + 2..end].copy_from_slice(chunk);
            self.at = end;
        }
        Ok(())
    }

    /// Adds an option of IPv4 addresses.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn option_ips(&mut self, c: u8, ips: &[Ipv4Addr]) -> Result<(), Error> {
        let mut v = [0u8; 252];
        let n = ips.len().min(63);
        for (i, ip) in ips.iter().take(n).enumerate() {
            v[4 * i..4 * i + 4].copy_from_slice(&ip.octets());
        }
        self.option(c, &v[..4 * n])
    }

    /// Adds option 53.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn message_type(&mut self, t: MessageType) -> Result<(), Error> {
        self.option(code::MESSAGE_TYPE, &[t.as_u8()])
    }

    /// Ends the options and pads to [`MIN_LEN`]; returns the message length.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn finish(self) -> Result<usize, Error> {
        if self.at >= self.buf.len() {
            return Err(Error::NoRoom);
        }
        self.buf[self.at] = code::END;
        let len = (self.at + 1).max(MIN_LEN);
        self.buf[self.at + 1..len].fill(0);
        Ok(len)
    }
}
