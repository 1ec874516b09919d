//! HTTP/1.1 serving of boot files (RFC 9110, 9111 validators, 9112 framing): one
//! [`Connection`] engine per TCP connection.
//!
//! Contract (as quinn-proto's): after the backend reads bytes into
//! [`Connection::recv_buf`] it calls [`Connection::handle_recv`] (or `handle_eof`,
//! `handle_timeout`); then [`Connection::poll_transmit`] until `None`, reporting each
//! write with [`Connection::sent`]; then [`Connection::poll_event`] until `None`;
//! then [`Connection::poll_timeout`]. One response is in flight at a time, so
//! pipelined requests wait in the receive buffer: when it is full the backend stops
//! reading, which is the back-pressure a slow reader gets.

mod connection;
mod error;
mod response;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

pub use connection::{Access, Connection, Event, FileRange, Served, Transmit};
pub use error::Error;

use crate::proto::boot::Profiles;
use crate::store::Snapshot;
use crate::wire::http::Limits;

/// Limits and timeouts of every connection of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Request head limits (431/414 past them); `max_head` also sizes the receive buffer.
    pub limits: Limits,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// A request head must be complete this long after its first byte.
    pub head_timeout: Duration,
    /// A response that makes no progress for this long is abandoned.
    pub send_timeout: Duration,
    /// After the last response, unread input is drained for at most this long, so
    /// that the close does not reset the connection before the client reads it.
    pub linger: Duration,
    /// Record one [`Access`] per request.
    pub access_log: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limits: Limits {
                max_head: 16 * 1024,
                max_headers: 64,
                max_target: 4096,
            },
            idle_timeout: Duration::from_secs(60),
            head_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            linger: Duration::from_secs(5),
            access_log: true,
        }
    }
}

/// What every connection of a worker reads while it builds a response.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The files served.
    pub snapshot: &'a Snapshot,
    /// The current `Date` value (IMF-fixdate); the backend refreshes it each second.
    pub date: &'a str,
    /// Boot profiles: their pages (`/boot.ipxe`, `/config`) are rendered per request.
    pub boot: Option<&'a Profiles>,
    /// The connection's peer, a fact for the profiles' templates.
    pub peer: Option<IpAddr>,
    /// The wall time, unix seconds (as `date` says it).
    pub unix_secs: u64,
    /// The connection is HTTPS (rendered pages name `https://` URLs).
    pub tls: bool,
    /// The port the connection came in on: rendered pages name it when
    /// grub's `Host` leaves it out.
    pub port: u16,
}

/// The answer to a connection past the worker's connection limit: sent
/// without reading the request, then the connection is closed.
pub const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
