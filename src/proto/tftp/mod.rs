//! TFTP read transfers (RFC 1350, options RFC 2347-2349, windows RFC 7440), sans-IO.
//!
//! A worker's [`Endpoint`] admits requests (parsed once into a [`Request`],
//! granted once the transfer's socket tells the path MTU) within its
//! [`Limits`], routes datagrams to transfers, refuses with ERROR packets and
//! keeps the transfers' timers; [`accept`] is the one-call form for callers
//! without limits (the simulator). A `Transfer` is driven like every engine here: `handle` each
//! datagram from the client and `handle_timeout` at `poll_timeout`, then
//! `poll_transmit` until `None` (a [`Transmit::Window`] names absolute blocks; the
//! backend gathers their bytes from [`Transfer::payload`]), then `poll_event`.

pub mod endpoint;
mod error;
mod request;
#[cfg(test)]
mod tests;
mod transfer;

use std::time::Duration;

pub use endpoint::{Endpoint, Limits};
pub use error::Error;
pub use request::{accept, Accepted, Negotiated, Payload, Request, Where};
pub use transfer::{Event, Failure, Stats, Transfer, Transmit};

/// Most blocks one GSO send carries (the kernel's UDP_MAX_SEGMENTS).
pub const GSO_MAX_SEGMENTS: u64 = 128;
/// Most bytes one UDP send carries, all segments together.
pub const GSO_MAX_BYTES: u64 = 65_507;
/// IPv4 + UDP + TFTP DATA headers: a block of `mtu - 32` fills one frame
/// (an IPv6 path's MTU is read 20 bytes smaller, for its longer header).
pub const HEADERS: u32 = 20 + 8 + 4;

/// Transfer policy shared by a worker's transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// First retransmission timeout (a client's `timeout` option replaces it).
    pub timeout: Duration,
    /// Back-off stops doubling here.
    pub max_timeout: Duration,
    /// Retransmissions of one window before the transfer fails.
    pub retries: u32,
    /// Largest window granted (RFC 7440 allows up to 65535).
    pub max_windowsize: u16,
    /// Grant the blksize option (RFC 2348); off, every transfer uses 512-byte
    /// blocks (dnsmasq's `tftp-no-blocksize`, for firmware that asks for more
    /// than it can take).
    pub blksize: bool,
    /// Look file names up in lower case (dnsmasq's `tftp-lowercase`, for
    /// clients that ask in the wrong case for a tree of lower-case files).
    pub lowercase: bool,
}

impl Default for Settings {
    fn default() -> Self {
        // 1 + 2 x 14 = 29 s of patience, one datagram per 2 s at most to a
        // silent client. Clients give up after ~25 s without data (tftp-hpa); in
        // that time a block goes out ~13 times, so at 30 % loss it is lost for
        // good with probability 0.3^13 (2e-7). Measured with 6 retries and an 8 s
        // cap: 1 to 2 of 50 transfers at 30 % loss timed out.
        Self {
            timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(2),
            retries: 15,
            max_windowsize: 64,
            blksize: true,
            lowercase: false,
        }
    }
}
