//! I/O backends: they own the sockets and the clock and drive the sans-IO
//! engines. Two backends drive the same engines: io_uring (uring/, the default
//! where the kernel allows: a driver whose ops own their buffers, and the HTTP,
//! TFTP and DHCP workers) and mio/epoll (http.rs, tftp.rs, dhcp/epoll.rs; the
//! fallback). What both share and neither owns: access.rs (the access log
//! lines), transfer.rs (opening a TFTP transfer's socket), dhcp/ (the DHCP
//! server's sockets, engine, journal and group commit), link.rs (AF_PACKET
//! sockets), udp.rs (PKTINFO receives, GSO windows, path MTU), socket.rs
//! (listeners, pinning), clock.rs, probe.rs (conflict pings) and ra.rs (router
//! advertisements). All unsafe code of the server outside `store/` lives
//! here, in small wrappers.

mod access;
pub mod caps;
pub mod clock;
pub mod dhcp;
mod error;
pub mod fd_limit;
pub mod http;
pub mod link;
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
