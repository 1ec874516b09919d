//! I/O backends: they own the sockets and the clock and drive the sans-IO engines.
//! Today one backend, mio (epoll); io_uring slots in beside it with the same
//! engines. All unsafe code of the server outside `store/` lives here, in small
//! wrappers (sendfile.rs, socket.rs).

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
