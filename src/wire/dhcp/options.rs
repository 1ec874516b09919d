//! The option index of a received message: it follows option overload
//! (option 52 into `file`/`sname`) and joins split long options (RFC 3396);
//! and the walker of sub-options (options 43, 82, 175).

use core::ops::Range;
use std::borrow::Cow;
use std::net::Ipv4Addr;

use super::{code, field, MessageType, MAX_FRAGMENTS};
use crate::wire::Error;

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

    pub(super) fn fragments(&self, c: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
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

    /// The data of `enterprise` in option 124 (V-I vendor class, RFC 3925):
    /// `enterprise(4) len(1) data` blocks.
    pub fn vendor_class_of(&self, enterprise: u32) -> Option<Vec<u8>> {
        let v = self.get(124)?;
        let mut rest = &*v;
        while rest.len() >= 5 {
            let (head, tail) = rest.split_at(5);
            let n = usize::from(head[4]);
            let data = tail.get(..n)?;
            if u32::from_be_bytes([head[0], head[1], head[2], head[3]]) == enterprise {
                return Some(data.to_vec());
            }
            rest = &tail[n..];
        }
        None
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

#[derive(Debug, Clone, Copy, Default)]
struct Fragment {
    code: u8,
    at: u16,
    len: u8,
}
