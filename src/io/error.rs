//! System failures of the backends, with the operator context (address, syscall).

use std::net::SocketAddr;

/// A failure that stops a listener or a worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
        /// What to try, when the cause is a usual one.
        hint: &'static str,
    },
    /// DHCP could not start (interface, sockets, lease file); the text says why
    /// and what to do.
    #[error("{0}")]
    Dhcp(String),
    /// The admin API could not start; the text says where and what to do.
    #[error("{0}")]
    Admin(String),
    /// The poller failed.
    #[error("worker {worker}: {op}: {source}")]
    Poll {
        /// Worker index.
        worker: usize,
        /// The call that failed.
        op: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
}

impl Error {
    /// A listen failure, with a hint for the usual causes.
    pub(crate) fn listen(addr: SocketAddr, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or pass --http with a port above 1023)"
            }
            std::io::ErrorKind::AddrInUse => " (another server holds this port: stop it or pick another with --http)",
            std::io::ErrorKind::AddrNotAvailable => " (no interface has this address: pass --http with one it has)",
            _ => "",
        };
        Error::Listen { addr, source, hint }
    }
}
