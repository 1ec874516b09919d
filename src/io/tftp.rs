//! The mio TFTP worker: one per core, with its own SO_REUSEPORT socket on the
//! TFTP port (a client's datagrams always hash to the same member) and one
//! ephemeral socket per transfer (the RFC's TID), bound to the address the request
//! arrived on. Every protocol decision is the worker's [`Endpoint`]'s
//! (proto/tftp/endpoint.rs); this file owns the sockets and the send path:
//! windows go out as one GSO sendmsg over the file's mapping, or, where the
//! kernel refuses GSO, as one sendmmsg. In single-port mode every transfer is
//! answered from the listening socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Poll, Token};

use super::turn::Turn;
use super::udp::{self, Received};
use super::{access, transfer, Error};
use crate::config;
use crate::proto::tftp::endpoint::{Datagram, Id, Outgoing, Port};
use crate::proto::tftp::{Endpoint, Transmit};
use crate::store::Published;

const LISTENER: Token = Token(usize::MAX);
/// Largest datagram read; a longer one is truncated and refused.
const RX: usize = 65_536;

/// One TFTP worker.
pub struct Worker {
    id: usize,
    poll: Poll,
    listener: mio::net::UdpSocket,
    /// Each transfer's own socket, by endpoint id (`None` in single-port mode).
    sockets: Vec<Option<mio::net::UdpSocket>>,
    endpoint: Endpoint,
    config: config::Tftp,
    gso: bool,
    rx: Vec<u8>,
    scratch: Vec<u8>,
    /// Every worker's counters (this one writes only its own).
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("transfers", &self.endpoint.live())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker answering on `listener` (a reuseport member, IP_PKTINFO on).
    ///
    /// # Errors
    /// The poller cannot be created or the socket registered.
    pub fn new(
        id: usize,
        listener: UdpSocket,
        published: Arc<Published>,
        config: config::Tftp,
        root: Option<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, Error> {
        let err = |op| {
            move |source| Error::Poll {
                worker: id,
                op,
                source,
            }
        };
        let poll = Poll::new().map_err(err("epoll_create"))?;
        let mut listener = mio::net::UdpSocket::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(err("register tftp socket"))?;
        Ok(Self {
            id,
            poll,
            listener,
            sockets: Vec::new(),
            endpoint: transfer::endpoint(&config, published, root.as_deref()),
            config,
            gso: true,
            rx: vec![0; RX],
            scratch: vec![0; 1024],
            metrics,
        })
    }

    /// Serves until the poller fails.
    ///
    /// # Errors
    /// Only a failure of the poller itself.
    pub fn run(mut self) -> Result<(), Error> {
        let mut turn = Turn::new(self.id, self.config.busy_poll);
        loop {
            let now = turn.wait(&mut self.poll, self.endpoint.poll_timeout(), false)?;
            for ev in turn.events().iter() {
                match ev.token() {
                    LISTENER => self.on_listener(now),
                    Token(i) => self.on_transfer_socket(Id(i), now),
                }
            }
            self.endpoint.handle_timeout(now);
            self.flush(now);
        }
    }

    fn on_listener(&mut self, now: Instant) {
        loop {
            let r = match udp::recv(&self.listener, &mut self.rx) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(worker = self.id, error = %e, "tftp receive failed");
                    return;
                }
            };
            self.on_request(now, r);
            self.flush(now);
        }
    }

    fn on_request(&mut self, now: Instant, r: Received) {
        let d = Datagram {
            local: r.reply_from(self.config.listen.ip()),
            peer: r.peer,
            bytes: &self.rx[..r.len],
            truncated: r.truncated,
            unix_secs: crate::io::clock::unix_now(),
        };
        let metrics = self.metrics.tftp(self.id);
        let sink = self.metrics.fleet();
        let Some((id, socket)) = transfer::on_request(&mut self.endpoint, now, d, metrics, sink)
        else {
            return;
        };
        if self.sockets.len() <= id.0 {
            self.sockets.resize_with(id.0 + 1, || None);
        }
        if let Some(s) = socket {
            let mut s = mio::net::UdpSocket::from_std(s);
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut s, Token(id.0), Interest::READABLE)
            {
                // The transfer's timer gives up on it; nothing is received.
                tracing::warn!(worker = self.id, error = %e, "cannot register a transfer socket");
            }
            self.sockets[id.0] = Some(s);
        }
    }

    /// Reads every datagram waiting on a transfer's own socket.
    fn on_transfer_socket(&mut self, id: Id, now: Instant) {
        loop {
            let Some(Some(socket)) = self.sockets.get(id.0) else {
                return;
            };
            let (len, from) = match socket.recv_from(&mut self.rx) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(transfer = id.0, error = %e, "tftp transfer receive failed");
                    break;
                }
            };
            if let Err(e) = self
                .endpoint
                .handle_transfer(now, id, from, &self.rx[..len])
            {
                tracing::debug!(peer = %from, reason = e.kind(), error = %e, "tftp datagram dropped");
            }
            self.flush(now);
        }
    }

    /// Sends what the endpoint names and closes the sockets of ended transfers.
    fn flush(&mut self, now: Instant) {
        while let Some(out) = self.endpoint.poll_transmit(now, &mut self.scratch) {
            if let Err(e) = self.send(&out) {
                // A window that did not go out is resent by the transfer's timer.
                tracing::debug!(peer = %out.peer, error = %e, "tftp send failed");
            }
        }
        while let Some(ended) = self.endpoint.poll_event() {
            access::tftp_done(&ended, self.metrics.fleet());
            self.metrics.tftp(self.id).ended(&ended);
            if let Some(mut s) = self.sockets.get_mut(ended.id.0).and_then(Option::take) {
                let _ = self.poll.registry().deregister(&mut s);
            }
            self.endpoint.release(ended.id);
        }
    }

    fn send(&mut self, out: &Outgoing) -> io::Result<()> {
        let socket = match out.port {
            Port::Transfer(id) => self.sockets.get(id.0).and_then(Option::as_ref),
            Port::Request => None,
        }
        .unwrap_or(&self.listener);
        match out.what {
            Transmit::Control { len } => socket.send_to(&self.scratch[..len], out.peer).map(drop),
            Transmit::Window {
                first,
                count,
                blksize,
            } => {
                let Port::Transfer(id) = out.port else {
                    return Ok(());
                };
                let Some(transfer) = self.endpoint.transfer(id) else {
                    return Ok(());
                };
                let mut heads = [[0u8; 4]; udp::MAX_BLOCKS];
                let (parts, n) = udp::window_parts(transfer, first, count, &mut heads);
                send_window(socket, out.peer, &parts[..n], blksize, &mut self.gso)
            }
        }
    }
}

/// One window: 4-byte headers interleaved with slices of the payload.
fn send_window(
    socket: &mio::net::UdpSocket,
    peer: SocketAddr,
    parts: &[(&[u8], &[u8])],
    blksize: u16,
    gso: &mut bool,
) -> io::Result<()> {
    if parts.len() > 1 && *gso {
        match udp::send_gso(socket, peer, parts, Some(blksize + 4)) {
            Ok(_) => return Ok(()),
            Err(e) if udp::gso_refused(&e) => {
                tracing::warn!(error = %e, "UDP GSO refused by the kernel; sending windows with sendmmsg");
                *gso = false;
            }
            Err(e) => return Err(e),
        }
    }
    if parts.len() == 1 {
        udp::send_gso(socket, peer, parts, None).map(drop)
    } else {
        udp::send_each(socket, peer, parts).map(drop)
    }
}

/// `count` UDP sockets bound to `addr` with SO_REUSEPORT, IP_PKTINFO on and a
/// large receive buffer (a rack's requests arrive in one burst).
///
/// # Errors
/// [`Error::Listen`] naming the address and a hint.
pub fn reuseport_sockets(addr: SocketAddr, count: usize) -> Result<Vec<UdpSocket>, Error> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut bound = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let make = || -> io::Result<UdpSocket> {
            let s = Socket::new(Domain::for_address(bound), Type::DGRAM, Some(Protocol::UDP))?;
            crate::io::socket::dual_stack(&s, bound)?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_nonblocking(true)?;
            let _ = s.set_recv_buffer_size(4 << 20);
            s.bind(&bound.into())?;
            if bound.is_ipv4() {
                udp::enable_pktinfo(&s)?;
            } else {
                udp::enable_pktinfo6(&s)?;
            }
            Ok(s.into())
        };
        let s = make().map_err(|e| Error::listen(bound, e))?;
        bound = s.local_addr().map_err(|e| Error::listen(bound, e))?;
        out.push(s);
    }
    Ok(out)
}
