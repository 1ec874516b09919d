//! BOOTP/DHCPv4 messages (RFC 2131, options RFC 2132): a read-only view over a
//! received datagram, an option index that follows option overload (option 52
//! into `file`/`sname`) and joins split long options (RFC 3396), sub-option
//! walkers for option 43/82/175, and an emitter for replies.

use core::ops::Range;
use std::borrow::Cow;
use std::net::Ipv4Addr;

use crate::wire::Error;

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
#[allow(missing_docs)]
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
#[allow(missing_docs)]
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

#[derive(Debug, Clone, Copy, Default)]
struct Fragment {
    code: u8,
    at: u16,
    len: u8,
}

/// The options of one message, indexed without copying: each fragment points into
/// the datagram. Lookups join the fragments of a split option (RFC 3396) and only
/// then allocate.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    buf: &'a [u8],
    fragments: [Fragment; MAX_FRAGMENTS],
    n: usize,
}

impl<'a> Options<'a> {
    /// Indexes the options field, then `file` and `sname` when option 52 says
    /// they hold options. Option 52 is honoured only in the options field, so
    /// an overload cannot loop.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an option whose length runs past its field;
    /// [`Error::TooManyOptions`] past [`MAX_FRAGMENTS`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut o = Self {
            buf,
            fragments: [Fragment::default(); MAX_FRAGMENTS],
            n: 0,
        };
        o.scan(field::OPTIONS..buf.len(), true)?;
        let overload = o.first(code::OVERLOAD).and_then(|v| v.first().copied());
        if matches!(overload, Some(1 | 3)) {
            o.scan(field::FILE, false)?;
        }
        if matches!(overload, Some(2 | 3)) {
            o.scan(field::SNAME, false)?;
        }
        Ok(o)
    }

    fn scan(&mut self, region: Range<usize>, main: bool) -> Result<(), Error> {
        let mut at = region.start;
        while at < region.end {
            let c = self.buf[at];
            match c {
                code::PAD => {
                    at += 1;
                    continue;
                }
                code::END => return Ok(()),
                _ => {}
            }
            let len = *self
                .buf
                .get(at + 1)
                .filter(|_| at + 1 < region.end)
                .ok_or(Error::Malformed("option without its length"))?;
            let start = at + 2;
            let end = start + usize::from(len);
            if end > region.end {
                return Err(Error::Malformed("option length past the end"));
            }
            if main || c != code::OVERLOAD {
                if self.n == MAX_FRAGMENTS {
                    return Err(Error::TooManyOptions {
                        limit: MAX_FRAGMENTS,
                    });
                }
                self.fragments[self.n] = Fragment {
                    code: c,
                    at: start as u16,
                    len,
                };
                self.n += 1;
            }
            at = end;
        }
        Ok(())
    }

    fn fragments(&self, c: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        let buf = self.buf;
        self.fragments[..self.n]
            .iter()
            .filter(move |f| f.code == c)
            .map(move |f| &buf[usize::from(f.at)..usize::from(f.at) + usize::from(f.len)])
    }

    fn first(&self, c: u8) -> Option<&'a [u8]> {
        self.fragments(c).next()
    }

    /// Whether option `c` is present.
    pub fn has(&self, c: u8) -> bool {
        self.first(c).is_some()
    }

    /// Option `c`'s value, its fragments joined (RFC 3396).
    pub fn get(&self, c: u8) -> Option<Cow<'a, [u8]>> {
        let mut it = self.fragments(c);
        let first = it.next()?;
        match it.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut v = [first, second].concat();
                for f in it {
                    v.extend_from_slice(f);
                }
                Some(Cow::Owned(v))
            }
        }
    }

    /// The codes present, in order, each once.
    pub fn codes(&self) -> impl Iterator<Item = u8> + '_ {
        self.fragments[..self.n]
            .iter()
            .enumerate()
            .filter(|(i, f)| !self.fragments[..*i].iter().any(|g| g.code == f.code))
            .map(|(_, f)| f.code)
    }

    /// Option 53.
    pub fn message_type(&self) -> Option<MessageType> {
        self.first(code::MESSAGE_TYPE)
            .and_then(|v| v.first().copied())
            .and_then(MessageType::from_u8)
    }

    /// An option holding exactly one IPv4 address (50, 54).
    pub fn ip(&self, c: u8) -> Option<Ipv4Addr> {
        let v = self.get(c)?;
        <[u8; 4]>::try_from(&*v).ok().map(Ipv4Addr::from)
    }

    /// Option 93's first architecture type.
    pub fn client_arch(&self) -> Option<u16> {
        let v = self.get(code::CLIENT_ARCH)?;
        Some(u16::from_be_bytes([*v.first()?, *v.get(1)?]))
    }

    /// Whether a user class (option 77) equals `name`, in RFC 3004's form
    /// (length-prefixed items) or the plain form iPXE sends.
    pub fn has_user_class(&self, name: &[u8]) -> bool {
        let Some(v) = self.get(code::USER_CLASS) else {
            return false;
        };
        if *v == *name {
            return true;
        }
        let mut rest = &*v;
        while let Some((&len, tail)) = rest.split_first() {
            let Some(item) = tail.get(..usize::from(len)) else {
                return false;
            };
            if item == name {
                return true;
            }
            rest = &tail[usize::from(len)..];
        }
        false
    }

    /// An iPXE client: user class `iPXE` or iPXE's option 175.
    pub fn is_ipxe(&self) -> bool {
        self.has(code::IPXE) || self.has_user_class(b"iPXE")
    }

    /// Sub-option `sub` of encapsulated option `c` (43, 82, 175).
    pub fn sub(&self, c: u8, sub: u8) -> Option<Vec<u8>> {
        let v = self.get(c)?;
        SubOptions::new(&v)
            .find(|(s, _)| *s == sub)
            .map(|(_, val)| val.to_vec())
    }
}

/// Walks `code len value` sub-options (RFC 2132 §8.4, RFC 3046); stops at PAD/END
/// runs or at the first sub-option that runs past the end.
#[derive(Debug, Clone)]
pub struct SubOptions<'a> {
    rest: &'a [u8],
}

impl<'a> SubOptions<'a> {
    /// Over the value of an encapsulating option.
    pub fn new(value: &'a [u8]) -> Self {
        Self { rest: value }
    }
}

impl<'a> Iterator for SubOptions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&c, tail) = self.rest.split_first()?;
            match c {
                code::PAD => self.rest = tail,
                code::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let (&len, tail) = tail.split_first()?;
                    let Some(value) = tail.get(..usize::from(len)) else {
                        self.rest = &[];
                        return None;
                    };
                    self.rest = &tail[usize::from(len)..];
                    return Some((c, value));
                }
            }
        }
    }
}

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

    /// Sets `siaddr` (the next server).
    pub fn siaddr(&mut self, ip: Ipv4Addr) {
        self.buf[field::SIADDR].copy_from_slice(&ip.octets());
    }

    /// Sets the broadcast flag.
    pub fn broadcast_flag(&mut self) {
        self.buf[field::FLAGS].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
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

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_request_reads_back_with_its_fields_and_options() {
        let mut buf = [0xa5u8; 600];
        let mac = [0x52, 0x54, 0, 0x77, 0, 0x10];
        let mut w = Writer::request(&mut buf, 0xdead_beef, mac, true).unwrap();
        w.message_type(MessageType::Discover).unwrap();
        w.option(code::CLIENT_ARCH, &[0, 7]).unwrap();
        let len = w.finish().unwrap();
        assert_eq!(len, MIN_LEN);
        let p = Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!((p.op(), p.xid(), p.mac()), (1, 0xdead_beef, Some(mac)));
        assert_eq!(p.flags(), BROADCAST_FLAG);
        assert!(p.ciaddr().is_unspecified() && p.giaddr().is_unspecified());
        let o = p.options().unwrap();
        assert_eq!(o.message_type(), Some(MessageType::Discover));
        assert_eq!(o.client_arch(), Some(7));
        assert!(Writer::request(&mut [0u8; 100], 1, mac, false).is_err());
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/dhcp/{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap()
    }

    /// A request with the given raw options (already TLV-encoded).
    pub(crate) fn request(options: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        b[236..240].copy_from_slice(&MAGIC);
        b.extend_from_slice(options);
        b.push(255);
        b
    }

    #[test]
    fn edk2_discover_is_read() {
        let b = fixture("edk2-discover");
        let p = Packet::new_checked(&b).unwrap();
        assert_eq!(p.mac(), Some([0x52, 0x54, 0, 0x77, 0, 0x10]));
        let o = p.options().unwrap();
        assert_eq!(o.message_type(), Some(MessageType::Discover));
        assert_eq!(o.client_arch(), Some(7));
        assert_eq!(
            &*o.get(code::VENDOR_CLASS).unwrap(),
            b"PXEClient:Arch:00007:UNDI:003000"
        );
        assert!(!o.is_ipxe());
        assert_eq!(o.get(code::UUID).map(|u| u.len()), Some(17));
    }

    #[test]
    fn ipxe_requests_are_told_apart() {
        for name in [
            "ipxe-bios-discover",
            "ipxe-efi-discover",
            "ipxe-efi-request",
        ] {
            let b = fixture(name);
            let o = Packet::new_checked(&b).unwrap().options().unwrap();
            assert!(o.is_ipxe(), "{name}");
            assert!(o.has_user_class(b"iPXE"), "{name}");
            assert!(o.has(code::IPXE), "{name}");
        }
        let b = fixture("ipxe-efi-request");
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert_eq!(o.message_type(), Some(MessageType::Request));
        assert_eq!(o.ip(code::SERVER_ID), Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(
            o.ip(code::REQUESTED_IP),
            Some(Ipv4Addr::new(10, 77, 0, 145))
        );
    }

    #[test]
    fn the_installer_has_no_pxe_identity() {
        let b = fixture("d-i-discover");
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert_eq!(o.client_arch(), None);
        assert_eq!(&*o.get(code::VENDOR_CLASS).unwrap(), b"d-i");
        assert!(!o.is_ipxe());
    }

    #[test]
    fn rfc3004_user_class_items_are_matched() {
        let b = request(&[
            77, 11, 4, b'i', b'P', b'X', b'E', 5, b'o', b't', b'h', b'e', b'r',
        ]);
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert!(o.has_user_class(b"iPXE") && o.has_user_class(b"other"));
        assert!(!o.has_user_class(b"iPX"));
    }

    #[test]
    fn split_options_are_joined_and_overload_is_followed() {
        // Option 12 split in two fragments, option 52 = 1 (file holds options).
        let mut b = request(&[12, 3, b'a', b'b', b'c', 52, 1, 1, 12, 2, b'd', b'e']);
        b[108..113].copy_from_slice(&[53, 1, 1, 255, 0]);
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert_eq!(&*o.get(12).unwrap(), b"abcde");
        assert_eq!(o.message_type(), Some(MessageType::Discover));
    }

    #[test]
    fn an_overload_inside_file_does_not_loop() {
        let mut b = request(&[52, 1, 3, 53, 1, 1]);
        b[108..111].copy_from_slice(&[52, 1, 3]);
        b[44..47].copy_from_slice(&[52, 1, 1]);
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert_eq!(o.fragments(52).count(), 1);
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = request(&[53, 1, 1]);
        assert!(matches!(
            Packet::new_checked(&good[..100]),
            Err(Error::Truncated { .. })
        ));
        let mut bad = good.clone();
        bad[236] = 0;
        assert!(Packet::new_checked(&bad).is_err());
        let mut bad = good.clone();
        bad[2] = 100;
        assert!(Packet::new_checked(&bad).is_err());
        let past = request(&[53, 1, 1, 12, 200, b'x']);
        assert!(Packet::new_checked(&past).unwrap().options().is_err());
        let many: Vec<u8> = (0..300).flat_map(|_| [12u8, 0]).collect();
        let many = request(&many);
        assert!(matches!(
            Packet::new_checked(&many).unwrap().options(),
            Err(Error::TooManyOptions { .. })
        ));
    }

    #[test]
    fn the_writer_splits_long_options_and_pads() {
        let req = request(&[53, 1, 1]);
        let p = Packet::new_checked(&req).unwrap();
        let mut buf = [0u8; 1500];
        let mut w = Writer::reply(&mut buf, &p).unwrap();
        w.yiaddr(Ipv4Addr::new(10, 0, 0, 5));
        w.message_type(MessageType::Offer).unwrap();
        w.option(code::BOOTFILE, &[b'x'; 300]).unwrap();
        assert!(w.file(b"ipxe.efi"));
        let len = w.finish().unwrap();
        let r = Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!((r.op(), r.xid(), r.chaddr()), (2, 0x1234_5678, p.chaddr()));
        assert_eq!(r.yiaddr(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(r.file(), b"ipxe.efi");
        let o = r.options().unwrap();
        assert_eq!(o.get(code::BOOTFILE).unwrap().len(), 300);
        assert_eq!(o.fragments(code::BOOTFILE).count(), 2);
        assert!(len >= MIN_LEN);
    }

    #[test]
    fn sub_options_stop_at_a_bad_length() {
        let v = [1, 2, b'a', b'b', 2, 9, b'x'];
        let subs: Vec<_> = SubOptions::new(&v).collect();
        assert_eq!(subs, vec![(1, &b"ab"[..])]);
    }
}
