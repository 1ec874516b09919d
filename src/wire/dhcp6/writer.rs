//! The emitter: headers and options written in order into a caller buffer.
//! An option that holds options (IA_NA, a relay's message) is opened with
//! [`Writer::begin`] and closed with [`Writer::end`], which writes its length,
//! so a relayed reply is written outside in, in one pass.

use std::net::Ipv6Addr;

use super::{code, MessageType, Relay};
use crate::wire::Error;

/// An open option: where its header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an open option must be closed with Writer::end"]
pub struct Open(usize);

/// Writes a DHCPv6 datagram into a caller buffer.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.at
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// Raw bytes.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when they do not fit.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.at + bytes.len();
        self.buf
            .get_mut(self.at..end)
            .ok_or(Error::NoRoom)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    /// A client/server message header.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn message(&mut self, kind: MessageType, xid: [u8; 3]) -> Result<(), Error> {
        self.put(&[kind.to_u8(), xid[0], xid[1], xid[2]])
    }

    /// A RELAY-REPL answering `relay` (its hop count, link and peer copied,
    /// its interface-id echoed), with its relay message opened: write the
    /// inner message, then close it with [`Self::end`].
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn relay_reply(&mut self, relay: &Relay<'_>) -> Result<Open, Error> {
        self.put(&[MessageType::RelayRepl.to_u8(), relay.hops])?;
        self.put(&relay.link.octets())?;
        self.put(&relay.peer.octets())?;
        if let Some(id) = relay.interface_id() {
            self.option(code::INTERFACE_ID, id)?;
        }
        self.begin(code::RELAY_MSG)
    }

    /// A RELAY-FORW header (a relay agent's, for tests and the storm).
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn relay_forw(&mut self, hops: u8, link: Ipv6Addr, peer: Ipv6Addr) -> Result<(), Error> {
        self.put(&[MessageType::RelayForw.to_u8(), hops])?;
        self.put(&link.octets())?;
        self.put(&peer.octets())
    }

    /// One option.
    ///
    /// # Errors
    /// [`Error::NoRoom`], or data longer than an option holds.
    pub fn option(&mut self, code: u16, data: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(data.len()).map_err(|_| Error::NoRoom)?;
        self.put(&code.to_be_bytes())?;
        self.put(&len.to_be_bytes())?;
        self.put(data)
    }

    /// Opens option `code`, whose data follows until [`Self::end`].
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn begin(&mut self, code: u16) -> Result<Open, Error> {
        let at = self.at;
        self.put(&code.to_be_bytes())?;
        self.put(&[0, 0])?;
        Ok(Open(at))
    }

    /// Closes `open`, writing its length.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when its data is longer than an option holds.
    pub fn end(&mut self, open: Open) -> Result<(), Error> {
        let len = self.at - open.0 - 4;
        let len = u16::try_from(len).map_err(|_| Error::NoRoom)?;
        self.buf[open.0 + 2..open.0 + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// A status code option (RFC 8415 §21.13).
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn status(&mut self, status: u16, message: &str) -> Result<(), Error> {
        let open = self.begin(code::STATUS_CODE)?;
        self.put(&status.to_be_bytes())?;
        self.put(message.as_bytes())?;
        self.end(open)
    }

    /// An IA_NA header with its times, opened: write its IAADDR and status,
    /// then close it.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn ia_na(&mut self, iaid: u32, t1: u32, t2: u32) -> Result<Open, Error> {
        let open = self.begin(code::IA_NA)?;
        self.put(&iaid.to_be_bytes())?;
        self.put(&t1.to_be_bytes())?;
        self.put(&t2.to_be_bytes())?;
        Ok(open)
    }

    /// An IAADDR with its lifetimes.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn ia_addr(&mut self, addr: Ipv6Addr, preferred: u32, valid: u32) -> Result<(), Error> {
        let open = self.begin(code::IAADDR)?;
        self.put(&addr.octets())?;
        self.put(&preferred.to_be_bytes())?;
        self.put(&valid.to_be_bytes())?;
        self.end(open)
    }
}
