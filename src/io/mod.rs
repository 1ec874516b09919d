//! I/O backends: they own the sockets and the clock and drive the sans-IO
//! engines. Two backends drive the same engines: io_uring (uring/, the default
//! where the kernel allows) and mio/epoll (http.rs, tftp.rs, dhcp.rs; the
//! fallback). What both share and neither owns: access.rs (the access log
//! lines), transfer.rs (opening a TFTP transfer's socket), udp.rs (PKTINFO
//! receives, GSO windows, path MTU), socket.rs (listeners, pinning), clock.rs.
//! The DHCP worker (dhcp.rs) runs on epoll, with journal_sync.rs (group
//! commit), probe.rs (conflict pings) and ra.rs (router advertisements) beside
//! it. All unsafe code of the server outside `store/` lives here, in small
//! wrappers.

mod access;
pub mod clock;
pub mod dhcp;
mod error;
pub mod http;
mod journal_sync;
mod probe;
mod ra;
mod sendfile;
pub mod socket;
pub mod storm;
pub mod tftp;
mod transfer;
mod turn;
pub(crate) mod udp;
pub mod uring;

pub use error::Error;
