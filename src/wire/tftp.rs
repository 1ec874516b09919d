//! TFTP packets (RFC 1350 §5, option extension RFC 2347): read-only views over
//! received datagrams and emitters into caller buffers.

use core::ops::Range;

use crate::wire::Error;

/// Largest block size a client may ask for (RFC 2348).
pub const MAX_BLKSIZE: u16 = 65464;
/// Bytes before the payload of a DATA packet.
pub const DATA_HEADER: usize = 4;

mod field {
    use super::Range;
    pub(super) const OPCODE: Range<usize> = 0..2;
    pub(super) const BLOCK: Range<usize> = 2..4;
    pub(super) const ERROR_MESSAGE: usize = 4;
    pub(super) const REQUEST: usize = 2;
}

/// TFTP opcodes (RFC 1350 §5, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// Read request.
    Rrq,
    /// Write request.
    Wrq,
    /// Data block.
    Data,
    /// Acknowledgment.
    Ack,
    /// Error.
    Error,
    /// Option acknowledgment.
    Oack,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for Opcode {
    fn from(v: u16) -> Self {
        match v {
            1 => Opcode::Rrq,
            2 => Opcode::Wrq,
            3 => Opcode::Data,
            4 => Opcode::Ack,
            5 => Opcode::Error,
            6 => Opcode::Oack,
            other => Opcode::Unknown(other),
        }
    }
}

impl From<Opcode> for u16 {
    fn from(o: Opcode) -> u16 {
        match o {
            Opcode::Rrq => 1,
            Opcode::Wrq => 2,
            Opcode::Data => 3,
            Opcode::Ack => 4,
            Opcode::Error => 5,
            Opcode::Oack => 6,
            Opcode::Unknown(v) => v,
        }
    }
}

/// A received TFTP datagram.
#[derive(Debug, Clone, Copy)]
pub struct Packet<B> {
    buf: B,
}

impl<B: AsRef<[u8]>> Packet<B> {
    /// Checks that the opcode is present; after `Ok`, [`Self::opcode`] cannot fail.
    ///
    /// # Errors
    /// [`Error::Truncated`] for fewer than 2 bytes.
    pub fn new_checked(buf: B) -> Result<Self, Error> {
        let have = buf.as_ref().len();
        if have < field::OPCODE.end {
            return Err(Error::Truncated {
                need: field::OPCODE.end,
                have,
            });
        }
        Ok(Self { buf })
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode::from(be16(&self.buf.as_ref()[field::OPCODE]))
    }

    /// The block number of a DATA or ACK packet (RFC 1350 §5).
    ///
    /// # Errors
    /// [`Error::Truncated`] when the datagram ends before it.
    pub fn block(&self) -> Result<u16, Error> {
        let b = self.buf.as_ref();
        b.get(field::BLOCK).map(be16).ok_or(Error::Truncated {
            need: field::BLOCK.end,
            have: b.len(),
        })
    }

    /// The error code of an ERROR packet (same place as a block number).
    ///
    /// # Errors
    /// [`Error::Truncated`] when the datagram ends before it.
    pub fn error_code(&self) -> Result<u16, Error> {
        self.block()
    }

    /// The message of an ERROR packet, without its NUL (lenient: a missing NUL
    /// takes the rest of the datagram).
    pub fn error_message(&self) -> &[u8] {
        let rest = self.buf.as_ref().get(field::ERROR_MESSAGE..).unwrap_or(&[]);
        rest.split(|&b| b == 0).next().unwrap_or(rest)
    }

    /// The `name value` pairs of an OACK (RFC 2347).
    pub fn oack_options(&self) -> Options<'_> {
        Options {
            rest: self.buf.as_ref().get(field::REQUEST..).unwrap_or(&[]),
        }
    }

    /// The request fields of an RRQ or WRQ.
    ///
    /// # Errors
    /// A filename or mode without its NUL.
    pub fn request(&self) -> Result<Request<'_>, Error> {
        let body = self.buf.as_ref().get(field::REQUEST..).unwrap_or(&[]);
        let (filename, rest) = split_nul(body).ok_or(Error::Unterminated("filename"))?;
        let (mode, options) = split_nul(rest).ok_or(Error::Unterminated("mode"))?;
        Ok(Request {
            filename,
            mode,
            options,
        })
    }
}

/// The fields of a read or write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent.
    pub filename: &'a [u8],
    /// The transfer mode as sent (`octet`, `netascii`, any case).
    pub mode: &'a [u8],
    options: &'a [u8],
}

impl<'a> Request<'a> {
    /// The options (RFC 2347) in the order sent.
    pub fn options(&self) -> Options<'a> {
        Options { rest: self.options }
    }
}

/// Iterator over `name NUL value NUL` pairs. A malformed pair yields one `Err`, then
/// the iterator ends.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = match split_nul(self.rest) {
            None => Err(Error::Unterminated("option name")),
            Some((name, rest)) => match split_nul(rest) {
                Some((value, rest)) => {
                    self.rest = rest;
                    return Some(Ok((name, value)));
                }
                None => Err(Error::OptionWithoutValue),
            },
        };
        self.rest = &[];
        Some(item)
    }
}

fn split_nul(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = b.iter().position(|&c| c == 0)?;
    Some((&b[..at], &b[at + 1..]))
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

/// The 4-byte header of DATA block `block`.
pub fn data_header(block: u16) -> [u8; DATA_HEADER] {
    let [hi, lo] = block.to_be_bytes();
    [0, 3, hi, lo]
}

/// Writes an ACK; returns its length.
///
/// # Errors
/// [`Error::NoRoom`] when `buf` is shorter than 4 bytes.
pub fn write_ack(buf: &mut [u8], block: u16) -> Result<usize, Error> {
    let [hi, lo] = block.to_be_bytes();
    put(buf, 0, &[0, 4, hi, lo])
}

/// Writes an ERROR with `code` and `message`; returns its length.
///
/// # Errors
/// [`Error::NoRoom`] when the message does not fit.
pub fn write_error(buf: &mut [u8], code: u16, message: &str) -> Result<usize, Error> {
    let [hi, lo] = code.to_be_bytes();
    let n = put(buf, 0, &[0, 5, hi, lo])?;
    let n = put(buf, n, message.as_bytes())?;
    put(buf, n, &[0])
}

/// Writes an OACK listing `options` (name, value); returns its length.
///
/// # Errors
/// [`Error::NoRoom`] when they do not fit.
pub fn write_oack(buf: &mut [u8], options: &[(&str, u64)]) -> Result<usize, Error> {
    let mut n = put(buf, 0, &[0, 6])?;
    let mut digits = [0u8; 20];
    for (name, value) in options {
        n = put(buf, n, name.as_bytes())?;
        n = put(buf, n, &[0])?;
        n = put(buf, n, crate::wire::decimal(*value, &mut digits))?;
        n = put(buf, n, &[0])?;
    }
    Ok(n)
}

/// Writes an RRQ (for clients: the simulator and tests).
///
/// # Errors
/// [`Error::NoRoom`] when it does not fit.
pub fn write_rrq(
    buf: &mut [u8],
    filename: &str,
    mode: &str,
    options: &[(&str, &str)],
) -> Result<usize, Error> {
    let mut n = put(buf, 0, &[0, 1])?;
    for field in [filename, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(k, v)| [*k, *v]))
    {
        n = put(buf, n, field.as_bytes())?;
        n = put(buf, n, &[0])?;
    }
    Ok(n)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<usize, Error> {
    let end = at.checked_add(bytes.len()).ok_or(Error::NoRoom)?;
    buf.get_mut(at..end)
        .ok_or(Error::NoRoom)?
        .copy_from_slice(bytes);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EDK2's size probe (CLIENTS.md): RRQ ipxe.efi octet tsize=0 blksize=1468 windowsize=4.
    const EDK2_PROBE: &[u8] =
        b"\x00\x01ipxe.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";

    #[test]
    fn edk2s_probe_parses_with_its_options() {
        let p = Packet::new_checked(EDK2_PROBE).unwrap();
        assert_eq!(p.opcode(), Opcode::Rrq);
        let r = p.request().unwrap();
        assert_eq!((r.filename, r.mode), (&b"ipxe.efi"[..], &b"octet"[..]));
        let opts: Vec<_> = r.options().map(Result::unwrap).collect();
        assert_eq!(
            opts,
            [
                (&b"tsize"[..], &b"0"[..]),
                (b"blksize", b"1468"),
                (b"windowsize", b"4")
            ]
        );
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        assert_eq!(
            Packet::new_checked(&b"\x00"[..]).unwrap_err(),
            Error::Truncated { need: 2, have: 1 }
        );
        let p = Packet::new_checked(&b"\x00\x01file"[..]).unwrap();
        assert_eq!(p.request().unwrap_err(), Error::Unterminated("filename"));
        let p = Packet::new_checked(&b"\x00\x01file\x00octet"[..]).unwrap();
        assert_eq!(p.request().unwrap_err(), Error::Unterminated("mode"));
        let p = Packet::new_checked(&b"\x00\x01f\x00octet\x00blksize\x00"[..]).unwrap();
        let mut opts = p.request().unwrap().options();
        assert_eq!(opts.next(), Some(Err(Error::OptionWithoutValue)));
        assert_eq!(opts.next(), None);
        let p = Packet::new_checked(&b"\x00\x04\x00"[..]).unwrap();
        assert!(p.block().is_err());
    }

    #[test]
    fn opcodes_convert_both_ways() {
        for v in 0..10u16 {
            assert_eq!(u16::from(Opcode::from(v)), v);
        }
        assert_eq!(Opcode::from(9), Opcode::Unknown(9));
    }

    #[test]
    fn emitters_write_exact_bytes_and_refuse_small_buffers() {
        let mut b = [0xa5u8; 64];
        assert_eq!(write_ack(&mut b, 0x1234), Ok(4));
        assert_eq!(&b[..5], b"\x00\x04\x12\x34\xa5");
        let n = write_error(&mut b, 2, "read-only").unwrap();
        assert_eq!(&b[..n], b"\x00\x05\x00\x02read-only\x00");
        let n = write_oack(&mut b, &[("blksize", 1468), ("tsize", 0)]).unwrap();
        assert_eq!(&b[..n], b"\x00\x06blksize\x001468\x00tsize\x000\x00");
        assert_eq!(
            write_oack(&mut b[..10], &[("blksize", 1468)]),
            Err(Error::NoRoom)
        );
        assert_eq!(data_header(65535), [0, 3, 255, 255]);
        let n = write_rrq(&mut b, "a", "octet", &[("tsize", "0")]).unwrap();
        assert_eq!(&b[..n], b"\x00\x01a\x00octet\x00tsize\x000\x00");
    }

    #[test]
    fn error_packets_expose_code_and_message() {
        let p = Packet::new_checked(&b"\x00\x05\x00\x08User aborted the transfer\x00"[..]).unwrap();
        assert_eq!((p.opcode(), p.error_code()), (Opcode::Error, Ok(8)));
        assert_eq!(p.error_message(), b"User aborted the transfer");
    }
}
