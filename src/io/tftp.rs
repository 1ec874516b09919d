//! The mio TFTP worker: one per core, with its own SO_REUSEPORT socket on the
//! TFTP port (a client's datagrams always hash to the same member) and one
//! ephemeral socket per transfer (the RFC's TID), bound to the address the request
//! arrived on. Windows go out as one GSO sendmsg over the file's mapping; where the
//! kernel refuses GSO, as one sendmmsg. In single-port mode every transfer is
//! answered from the listening socket and datagrams are routed by client address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Poll, Token};

use super::timers::{Armed, Timers};
use super::turn::Turn;
use super::udp::{self, Received};
use super::Error;
use crate::config;
use crate::proto::tftp::{self, Event, Failure, Transfer, Transmit, Where};
use crate::store::Snapshot;
use crate::wire::tftp::{data_header, write_error, Opcode, Packet};

const LISTENER: Token = Token(usize::MAX);
/// Largest datagram read; a longer one is truncated and refused.
const RX: usize = 65_536;
/// Requests longer than this are refused (RFC 2347 keeps them under 512).
const MAX_REQUEST: usize = 2048;

struct Slot {
    /// The transfer's own socket; `None` in single-port mode.
    socket: Option<mio::net::UdpSocket>,
    peer: SocketAddr,
    transfer: Transfer,
    path: Box<str>,
    started: Instant,
    armed: Armed,
}

/// One TFTP worker.
pub struct Worker {
    id: usize,
    poll: Poll,
    listener: mio::net::UdpSocket,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_peer: HashMap<SocketAddr, usize>,
    per_ip: HashMap<IpAddr, u32>,
    timers: Timers,
    snapshot: Arc<Snapshot>,
    config: config::Tftp,
    root: Option<String>,
    gso: bool,
    rx: Vec<u8>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("transfers", &self.by_peer.len())
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
        snapshot: Arc<Snapshot>,
        config: config::Tftp,
        root: Option<String>,
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
            slots: Vec::new(),
            free: Vec::new(),
            by_peer: HashMap::new(),
            per_ip: HashMap::new(),
            timers: Timers::default(),
            snapshot,
            config,
            root,
            gso: true,
            rx: vec![0; RX],
            scratch: vec![0; 1024],
        })
    }

    /// Serves until the poller fails.
    ///
    /// # Errors
    /// Only a failure of the poller itself.
    pub fn run(mut self) -> Result<(), Error> {
        let mut turn = Turn::new(self.id, self.config.busy_poll);
        loop {
            let now = turn.wait(&mut self.poll, self.timers.next(), false)?;
            for ev in turn.events().iter() {
                match ev.token() {
                    LISTENER => self.on_listener(now),
                    Token(i) => self.on_transfer_socket(i, now),
                }
            }
            self.fire_timers(now);
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
            if let Some(&token) = self.by_peer.get(&r.peer) {
                if self.config.single_port {
                    self.deliver(token, now, r.len);
                } else {
                    // Firmware repeats its RRQ while the first answer is in flight:
                    // the live transfer's own timer resends; nothing new starts.
                    tracing::debug!(peer = %r.peer, "repeated request for a live transfer ignored");
                }
                continue;
            }
            self.on_request(now, r);
        }
    }

    fn on_request(&mut self, now: Instant, r: Received) {
        let gate = Gate {
            config: &self.config,
            snapshot: &self.snapshot,
            root: self.root.as_deref(),
            live: self.by_peer.len(),
            from_peer: self.per_ip.get(&r.peer.ip()).copied().unwrap_or(0),
        };
        let admitted = match gate.admit(now, &self.rx[..r.len], &r) {
            Ok(a) => a,
            Err(None) => return,
            Err(Some(e)) => {
                if let Some(n) = refusal(&e, r.peer, &mut self.scratch) {
                    let _ = self.listener.send_to(&self.scratch[..n], r.peer);
                }
                return;
            }
        };
        let token = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let mut socket = admitted.socket.map(mio::net::UdpSocket::from_std);
        if let Some(s) = &mut socket {
            if let Err(e) = self
                .poll
                .registry()
                .register(s, Token(token), Interest::READABLE)
            {
                self.free.push(token);
                tracing::warn!(worker = self.id, error = %e, "cannot register a transfer socket");
                return;
            }
        }
        self.slots[token] = Some(Slot {
            socket,
            peer: r.peer,
            transfer: admitted.transfer,
            path: admitted.path,
            started: now,
            armed: Armed::default(),
        });
        self.by_peer.insert(r.peer, token);
        *self.per_ip.entry(r.peer.ip()).or_default() += 1;
        self.drive(token, now);
    }

    /// Reads every datagram waiting on a transfer's own socket.
    fn on_transfer_socket(&mut self, token: usize, now: Instant) {
        loop {
            let Some(Some(slot)) = self.slots.get(token) else {
                return;
            };
            let Some(socket) = &slot.socket else { return };
            let (len, from) = match socket.recv_from(&mut self.rx) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(peer = %slot.peer, error = %e, "tftp transfer receive failed");
                    break;
                }
            };
            if from != slot.peer {
                // RFC 1350 §4: a packet from another TID gets ERROR 5; the transfer goes on.
                if let Ok(n) = write_error(&mut self.scratch, 5, "unknown transfer ID") {
                    let _ = socket.send_to(&self.scratch[..n], from);
                }
                continue;
            }
            self.deliver(token, now, len);
            if !matches!(self.slots.get(token), Some(Some(_))) {
                return;
            }
        }
    }

    /// Hands `rx[..len]` to a transfer's engine, then drives it.
    fn deliver(&mut self, token: usize, now: Instant, len: usize) {
        let Some(Some(slot)) = self.slots.get_mut(token) else {
            return;
        };
        if let Err(e) = slot.transfer.handle(now, &self.rx[..len]) {
            tracing::debug!(peer = %slot.peer, reason = e.kind(), error = %e, "tftp datagram dropped");
        }
        self.drive(token, now);
    }

    fn drive(&mut self, token: usize, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(token) else {
            return;
        };
        while let Some(t) = slot.transfer.poll_transmit(now, &mut self.scratch) {
            let socket: &mio::net::UdpSocket = slot.socket.as_ref().unwrap_or(&self.listener);
            let sent = match t {
                Transmit::Control { len } => {
                    socket.send_to(&self.scratch[..len], slot.peer).map(drop)
                }
                Transmit::Window {
                    first,
                    count,
                    blksize,
                } => send_window(socket, slot, first, count, blksize, &mut self.gso),
            };
            if let Err(e) = sent {
                // A window that did not go out is resent by the transfer's timer.
                tracing::debug!(peer = %slot.peer, error = %e, "tftp send failed");
            }
        }
        if let Some(event) = slot.transfer.poll_event() {
            log_end(
                &slot.transfer,
                slot.peer,
                &slot.path,
                slot.started,
                now,
                event,
            );
            self.remove(token);
            return;
        }
        self.timers
            .arm(&mut slot.armed, token, slot.transfer.poll_timeout());
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((token, at)) = self.timers.pop_due(now) {
            let Some(Some(slot)) = self.slots.get_mut(token) else {
                continue;
            };
            slot.armed.fired(at);
            slot.transfer.handle_timeout(now);
            self.drive(token, now);
        }
    }

    fn remove(&mut self, token: usize) {
        let Some(mut slot) = self.slots.get_mut(token).and_then(Option::take) else {
            return;
        };
        if let Some(s) = &mut slot.socket {
            let _ = self.poll.registry().deregister(s);
        }
        self.by_peer.remove(&slot.peer);
        if let Some(n) = self.per_ip.get_mut(&slot.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&slot.peer.ip());
            }
        }
        self.free.push(token);
    }
}

/// One window: 4-byte headers interleaved with slices of the payload.
fn send_window(
    socket: &mio::net::UdpSocket,
    slot: &Slot,
    first: u64,
    count: u16,
    blksize: u16,
    gso: &mut bool,
) -> io::Result<()> {
    let mut heads = [[0u8; 4]; udp::MAX_BLOCKS];
    let parts = window_parts(&slot.transfer, first, count, &mut heads);
    let parts = &parts.0[..parts.1];
    if parts.len() > 1 && *gso {
        match udp::send_gso(socket, slot.peer, parts, Some(blksize + 4)) {
            Ok(_) => return Ok(()),
            Err(e) if gso_refused(&e) => {
                tracing::warn!(error = %e, "UDP GSO refused by the kernel; sending windows with sendmmsg");
                *gso = false;
            }
            Err(e) => return Err(e),
        }
    }
    if parts.len() == 1 {
        udp::send_gso(socket, slot.peer, parts, None).map(drop)
    } else {
        udp::send_each(socket, slot.peer, parts).map(drop)
    }
}

/// Whether a failed GSO send says the kernel or device cannot segment UDP.
pub(crate) fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// A window's (header, payload) pairs, of which the first few are used.
pub(crate) type Parts<'a> = [(&'a [u8], &'a [u8]); udp::MAX_BLOCKS];

/// The (header, payload) pairs of a window: `count` blocks from absolute block
/// `first` (at most [`udp::MAX_BLOCKS`]), headers written into `heads`. Returns
/// the pairs and how many are used.
pub(crate) fn window_parts<'a>(
    transfer: &'a Transfer,
    first: u64,
    count: u16,
    heads: &'a mut [[u8; 4]; udp::MAX_BLOCKS],
) -> (Parts<'a>, usize) {
    let payload = transfer.payload();
    let count = usize::from(count).min(udp::MAX_BLOCKS);
    for (i, head) in heads.iter_mut().enumerate().take(count) {
        *head = data_header((first + i as u64) as u16); // the wire number wraps past 65535
    }
    let mut parts: [(&[u8], &[u8]); udp::MAX_BLOCKS] = [(&[], &[]); udp::MAX_BLOCKS];
    for (i, (part, head)) in parts.iter_mut().zip(heads.iter()).enumerate().take(count) {
        *part = (
            head,
            payload.get(transfer.block(first + i as u64)).unwrap_or(&[]),
        );
    }
    (parts, count)
}

/// The limits and lookups that decide a request, shared by both backends.
pub(crate) struct Gate<'a> {
    pub(crate) config: &'a config::Tftp,
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) root: Option<&'a str>,
    /// Live transfers of this worker.
    pub(crate) live: usize,
    /// Live transfers of this worker from the request's address.
    pub(crate) from_peer: u32,
}

/// A request that became a transfer: its engine, the file's path for the log,
/// and its own socket (`None` in single-port mode).
pub(crate) struct Admitted {
    pub(crate) socket: Option<UdpSocket>,
    pub(crate) transfer: Transfer,
    pub(crate) path: Box<str>,
}

impl Gate<'_> {
    /// Decides `datagram`, received as `r` on the request port. `Err(None)`:
    /// drop it silently (not a request); `Err(Some(e))`: refuse it (see
    /// [`refusal`]).
    pub(crate) fn admit(
        &self,
        now: Instant,
        datagram: &[u8],
        r: &Received,
    ) -> Result<Admitted, Option<tftp::Error>> {
        if let Ok(p) = Packet::new_checked(datagram) {
            if !matches!(p.opcode(), Opcode::Rrq | Opcode::Wrq) {
                tracing::debug!(peer = %r.peer, opcode = ?p.opcode(), "stray packet on the request port dropped");
                return Err(None);
            }
        }
        let local = r.local.map(IpAddr::V4).unwrap_or(self.config.listen.ip());
        if r.truncated || r.len > MAX_REQUEST {
            return Err(Some(tftp::Error::Wire(crate::wire::Error::Malformed(
                "request longer than 2048 bytes",
            ))));
        }
        if self.live >= self.config.max_transfers {
            return Err(Some(tftp::Error::Busy(
                "server busy: too many transfers, retry later",
            )));
        }
        if self.from_peer >= self.config.max_per_client {
            return Err(Some(tftp::Error::Busy(
                "too many transfers from this address, retry later",
            )));
        }
        // The transfer's socket first: its route tells the path MTU the blocks must fit.
        let socket = if self.config.single_port {
            None
        } else {
            match UdpSocket::bind(SocketAddr::new(local, 0))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
            {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(%local, error = %e, "cannot open a transfer socket");
                    return Err(Some(tftp::Error::Busy(
                        "server cannot open a socket, retry later",
                    )));
                }
            }
        };
        let path_mtu = match &socket {
            Some(s) => udp::path_mtu(s, r.peer),
            None => UdpSocket::bind(SocketAddr::new(local, 0))
                .ok()
                .and_then(|s| udp::path_mtu(&s, r.peer)),
        };
        let at = Where {
            root: self.root,
            path_mtu,
        };
        let accepted =
            tftp::accept(datagram, self.snapshot, &self.config.settings, at).map_err(Some)?;
        let path = accepted.path.clone();
        Ok(Admitted {
            socket,
            transfer: Transfer::new(now, accepted, &self.config.settings),
            path,
        })
    }
}

/// Logs a refused request and encodes its ERROR reply into `scratch`; returns
/// the reply's length, `None` when the peer is told nothing.
pub(crate) fn refusal(e: &tftp::Error, peer: SocketAddr, scratch: &mut [u8]) -> Option<usize> {
    tracing::info!(target: "rackboot::access", proto = %"tftp", %peer, result = %"refused", reason = %e.kind(), error = %e, "transfer");
    let (code, msg) = e.reply()?;
    write_error(scratch, code, msg).ok()
}

/// The access line of a transfer that ended (both backends).
pub(crate) fn log_end(
    transfer: &Transfer,
    peer: SocketAddr,
    path: &str,
    started: Instant,
    now: Instant,
    event: Event,
) {
    let result = match event {
        Event::Done { probe: false } => "done",
        Event::Done { probe: true } => "size_probe",
        Event::Failed(Failure::Timeout) => "timeout",
        Event::Failed(Failure::ClientError { .. }) => "client_error",
    };
    let (blksize, windowsize) = transfer.sizes();
    let stats = transfer.stats();
    let bytes = if result == "done" {
        transfer.payload().len()
    } else {
        0
    };
    tracing::info!(
        target: "rackboot::access",
        proto = %"tftp",
        %peer,
        file = %path,
        result = %result,
        bytes,
        blksize,
        windowsize,
        resent = stats.resent,
        ms = now.saturating_duration_since(started).as_secs_f64() * 1000.0,
        "transfer"
    );
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
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_nonblocking(true)?;
            let _ = s.set_recv_buffer_size(4 << 20);
            s.bind(&bound.into())?;
            if bound.is_ipv4() {
                udp::enable_pktinfo(&s)?;
            }
            Ok(s.into())
        };
        let s = make().map_err(|e| Error::listen(bound, e))?;
        bound = s.local_addr().map_err(|e| Error::listen(bound, e))?;
        out.push(s);
    }
    Ok(out)
}
