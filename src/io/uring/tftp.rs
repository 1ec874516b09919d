//! The io_uring TFTP worker: the same [`Transfer`] engine and request gate as
//! the mio worker (io/tftp.rs), driven by completions. One RECVMSG in flight on
//! the request port (with IP_PKTINFO, so a transfer answers from the address
//! the request reached) and one on each transfer's own socket; a window leaves
//! as one SENDMSG carrying a UDP_SEGMENT cmsg over the file's mapping (copying
//! GSO: SENDMSG_ZC with GSO stops at ~7 segments on this kernel, see the design
//! notes), every send of a turn in one io_uring_enter. Retransmissions are the
//! engines' timers, and the ring's wait carries the earliest of them as its
//! timeout.
//!
//! What the kernel holds: a send's msghdr, iovecs, headers, address and cmsg
//! live in its own boxed [`MsgOut`], which also holds a clone of the transfer's
//! payload, until its completion; a receive's buffers live in the slot's (or
//! the worker's) boxed [`MsgIn`]. A transfer's socket is closed only when no
//! operation on it is outstanding (its receive is cancelled first), so a
//! descriptor number is never reused under an operation.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};

use super::ring::{gen_bits, split, user_data, Ring};
use crate::config;
use crate::io::clock;
use crate::io::tftp::{gso_refused, log_end, refusal, window_parts, Gate};
use crate::io::timers::{Armed, Timers};
use crate::io::udp::{self, MsgIn, MsgOut};
use crate::io::Error;
use crate::proto::tftp::{Payload, Transfer, Transmit};
use crate::store::Snapshot;
use crate::wire::tftp::write_error;

/// Largest datagram read on the request port; a longer one is truncated and refused.
const RX: usize = 65_536;
/// Largest datagram read on a transfer's socket (ACK and ERROR are short).
const TRANSFER_RX: usize = 2048;
/// Receives kept in flight on the request port: a rack's burst of requests (or,
/// in single-port mode, every client's ACKs) completes this many per
/// io_uring_enter instead of one.
const LISTEN_DEPTH: usize = 16;

const LISTEN: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CANCEL: u64 = 3;

struct Slot {
    /// The transfer's own socket; `None` in single-port mode.
    socket: Option<UdpSocket>,
    rx: Option<Box<MsgIn>>,
    peer: SocketAddr,
    transfer: Transfer,
    path: Box<str>,
    started: Instant,
    armed: Armed,
    gen: u32,
    recv_inflight: bool,
    sends_inflight: u32,
    /// The transfer ended; the slot waits for its operations to complete.
    closing: bool,
    cancelled: bool,
}

/// A send in flight: its message and what keeps its payload alive.
struct Send {
    msg: MsgOut,
    _payload: Option<Payload>,
    /// The slot (and its generation) whose socket it uses; `None`: the request port.
    owner: Option<(usize, u32)>,
}

/// One io_uring TFTP worker.
pub struct Worker {
    id: usize,
    ring: Ring,
    listener: UdpSocket,
    #[allow(
        clippy::vec_box,
        reason = "the kernel writes into each MsgIn: a Box keeps its address whatever the Vec does"
    )]
    listen_rx: Vec<Box<MsgIn>>,
    listen_armed: Vec<bool>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    gens: Vec<u32>,
    by_peer: HashMap<SocketAddr, usize>,
    per_ip: HashMap<IpAddr, u32>,
    sends: Vec<Option<Box<Send>>>,
    sends_free: Vec<usize>,
    spare: Vec<Box<Send>>,
    timers: Timers,
    snapshot: Arc<Snapshot>,
    config: config::Tftp,
    root: Option<String>,
    gso: bool,
    scratch: Vec<u8>,
    done: Vec<(u64, i32, u32)>,
    active_at: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("uring::tftp::Worker")
            .field("id", &self.id)
            .field("transfers", &self.by_peer.len())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker answering on `listener` (a reuseport member, IP_PKTINFO on).
    ///
    /// # Errors
    /// The ring cannot be set up.
    pub fn new(
        id: usize,
        listener: UdpSocket,
        snapshot: Arc<Snapshot>,
        config: config::Tftp,
        root: Option<String>,
    ) -> Result<Self, Error> {
        Ok(Self {
            id,
            ring: Ring::new(id, 1024)?,
            listener,
            listen_rx: (0..LISTEN_DEPTH).map(|_| MsgIn::new(RX)).collect(),
            listen_armed: vec![false; LISTEN_DEPTH],
            slots: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            by_peer: HashMap::new(),
            per_ip: HashMap::new(),
            sends: Vec::new(),
            sends_free: Vec::new(),
            spare: Vec::new(),
            timers: Timers::default(),
            snapshot,
            config,
            root,
            gso: true,
            scratch: vec![0; 1024],
            done: Vec::with_capacity(1024),
            active_at: clock::now(),
        })
    }

    /// Serves until the ring fails.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub fn run(mut self) -> Result<(), Error> {
        loop {
            for i in 0..LISTEN_DEPTH {
                if !self.listen_armed[i] {
                    let msg = self.listen_rx[i].arm();
                    let sqe = opcode::RecvMsg::new(types::Fd(self.listener.as_raw_fd()), msg)
                        .build()
                        .user_data(user_data(LISTEN, i, 0));
                    self.push(&sqe)?;
                    self.listen_armed[i] = true;
                }
            }
            let now = clock::now();
            let wait = if now.saturating_duration_since(self.active_at) < self.config.busy_poll {
                Some(Duration::ZERO)
            } else {
                self.timers.next().map(|at| {
                    at.saturating_duration_since(now)
                        .max(Duration::from_micros(100))
                })
            };
            let mut done = std::mem::take(&mut self.done);
            self.ring.submit_and_wait(wait, &mut done)?;
            let now = clock::now();
            if !done.is_empty() {
                self.active_at = now;
            }
            for &(data, result, _) in &done {
                self.complete(data, result, now)?;
            }
            self.done = done;
            self.fire_timers(now)?;
        }
    }

    fn push(&mut self, sqe: &squeue::Entry) -> Result<(), Error> {
        // SAFETY: a receive's msghdr and buffer live in a boxed MsgIn owned by
        // the worker or by a slot that is not freed while the receive is in
        // flight; a send's live in its boxed `Send`, kept in `sends` (with a
        // clone of its payload) until the completion; a socket is closed only
        // when none of its operations is outstanding.
        unsafe { self.ring.push(sqe) }
    }

    fn complete(&mut self, data: u64, result: i32, now: Instant) -> Result<(), Error> {
        let (kind, index, gen) = split(data);
        match kind {
            LISTEN => {
                let Some(armed) = self.listen_armed.get_mut(index) else {
                    return Ok(());
                };
                *armed = false;
                if result < 0 {
                    let e = io::Error::from_raw_os_error(-result);
                    tracing::debug!(worker = self.id, error = %e, "tftp receive failed");
                    return Ok(());
                }
                let Some((r, _)) = self.listen_rx[index].received(result as usize) else {
                    return Ok(());
                };
                if let Some(&token) = self.by_peer.get(&r.peer) {
                    if self.config.single_port {
                        let Some((_, bytes)) = self.listen_rx[index].received(r.len) else {
                            return Ok(());
                        };
                        if let Some(Some(slot)) = self.slots.get_mut(token) {
                            if let Err(e) = slot.transfer.handle(now, bytes) {
                                tracing::debug!(peer = %slot.peer, reason = e.kind(), error = %e, "tftp datagram dropped");
                            }
                        }
                        self.drive(token, now)?;
                    } else {
                        tracing::debug!(peer = %r.peer, "repeated request for a live transfer ignored");
                    }
                    return Ok(());
                }
                self.on_request(now, index, r)
            }
            RECV => {
                let Some(Some(slot)) = self.slots.get_mut(index) else {
                    return Ok(());
                };
                if gen_bits(slot.gen) != gen {
                    return Ok(());
                }
                slot.recv_inflight = false;
                if slot.closing {
                    return self.drive(index, now);
                }
                if result >= 0 {
                    let got = slot.rx.as_ref().and_then(|m| m.received(result as usize));
                    if let Some((r, bytes)) = got {
                        if r.peer != slot.peer {
                            // RFC 1350 §4: a packet from another TID gets ERROR 5;
                            // the transfer goes on.
                            if let Ok(n) = write_error(&mut self.scratch, 5, "unknown transfer ID")
                            {
                                let bytes = self.scratch[..n].to_vec();
                                self.send_bytes(Some(index), r.peer, &bytes)?;
                            }
                        } else if let Err(e) = slot.transfer.handle(now, bytes) {
                            tracing::debug!(peer = %slot.peer, reason = e.kind(), error = %e, "tftp datagram dropped");
                        }
                    }
                } else if result != -libc::ECANCELED {
                    let e = io::Error::from_raw_os_error(-result);
                    tracing::debug!(peer = %slot.peer, error = %e, "tftp transfer receive failed");
                }
                self.drive(index, now)
            }
            SEND => {
                let Some(send) = self.sends.get_mut(index).and_then(Option::take) else {
                    return Ok(());
                };
                self.sends_free.push(index);
                let gso = send.msg.is_gso();
                let owner = send.owner;
                self.recycle(send);
                if result < 0 {
                    let e = io::Error::from_raw_os_error(-result);
                    if gso && self.gso && gso_refused(&e) {
                        tracing::warn!(error = %e, "UDP GSO refused by the kernel; sending windows a block per datagram");
                        self.gso = false;
                    } else {
                        // A window that did not go out is resent by the transfer's timer.
                        tracing::debug!(error = %e, "tftp send failed");
                    }
                }
                if let Some((slot_index, slot_gen)) = owner {
                    if let Some(Some(slot)) = self.slots.get_mut(slot_index) {
                        if slot.gen == slot_gen {
                            slot.sends_inflight = slot.sends_inflight.saturating_sub(1);
                            if slot.closing {
                                return self.drive(slot_index, now);
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_request(&mut self, now: Instant, rx: usize, r: udp::Received) -> Result<(), Error> {
        let Some((_, datagram)) = self.listen_rx[rx].received(r.len) else {
            return Ok(());
        };
        let gate = Gate {
            config: &self.config,
            snapshot: &self.snapshot,
            root: self.root.as_deref(),
            live: self.by_peer.len(),
            from_peer: self.per_ip.get(&r.peer.ip()).copied().unwrap_or(0),
        };
        let admitted = match gate.admit(now, datagram, &r) {
            Ok(a) => a,
            Err(None) => return Ok(()),
            Err(Some(e)) => {
                if let Some(n) = refusal(&e, r.peer, &mut self.scratch) {
                    let bytes = self.scratch[..n].to_vec();
                    self.send_bytes(None, r.peer, &bytes)?;
                }
                return Ok(());
            }
        };
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            self.slots.len() - 1
        });
        self.gens[index] = self.gens[index].wrapping_add(1);
        let rx = admitted.socket.as_ref().map(|_| MsgIn::new(TRANSFER_RX));
        self.slots[index] = Some(Slot {
            socket: admitted.socket,
            rx,
            peer: r.peer,
            transfer: admitted.transfer,
            path: admitted.path,
            started: now,
            armed: Armed::default(),
            gen: self.gens[index],
            recv_inflight: false,
            sends_inflight: 0,
            closing: false,
            cancelled: false,
        });
        self.by_peer.insert(r.peer, index);
        *self.per_ip.entry(r.peer.ip()).or_default() += 1;
        self.drive(index, now)
    }

    /// Sends what the engine names, keeps a receive armed, and ends the slot
    /// when the transfer is over and nothing of it is in flight.
    fn drive(&mut self, index: usize, now: Instant) -> Result<(), Error> {
        let mut sqes: Vec<squeue::Entry> = Vec::new();
        let mut ended = false;
        let mut free = false;
        {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                return Ok(());
            };
            if !slot.closing {
                while let Some(t) = slot.transfer.poll_transmit(now, &mut self.scratch) {
                    let fd = slot
                        .socket
                        .as_ref()
                        .map_or(self.listener.as_raw_fd(), AsRawFd::as_raw_fd);
                    let mut msgs = Vec::new();
                    match t {
                        Transmit::Control { len } => {
                            let mut send = take_spare(&mut self.spare);
                            send.msg.set_bytes(slot.peer, &self.scratch[..len]);
                            msgs.push(send);
                        }
                        Transmit::Window {
                            first,
                            count,
                            blksize,
                        } => {
                            let mut heads = [[0u8; 4]; udp::MAX_BLOCKS];
                            let (parts, n) = window_parts(&slot.transfer, first, count, &mut heads);
                            let parts = &parts[..n];
                            if n > 1 && self.gso {
                                let mut send = take_spare(&mut self.spare);
                                send.msg.set_parts(slot.peer, parts, Some(blksize + 4));
                                msgs.push(send);
                            } else {
                                for part in parts {
                                    let mut send = take_spare(&mut self.spare);
                                    send.msg
                                        .set_parts(slot.peer, std::slice::from_ref(part), None);
                                    msgs.push(send);
                                }
                            }
                        }
                    }
                    for mut send in msgs {
                        send._payload = Some(slot.transfer.payload_source().clone());
                        send.owner = slot.socket.as_ref().map(|_| (index, slot.gen));
                        sqes.push(park(&mut self.sends, &mut self.sends_free, send, fd));
                        if slot.socket.is_some() {
                            slot.sends_inflight += 1;
                        }
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
                    slot.closing = true;
                    ended = true;
                }
            }
            if slot.closing {
                if !slot.recv_inflight && slot.sends_inflight == 0 {
                    free = true;
                } else if slot.recv_inflight && !slot.cancelled {
                    slot.cancelled = true;
                    if let Some(s) = &slot.socket {
                        sqes.push(
                            opcode::AsyncCancel2::new(
                                types::CancelBuilder::fd(types::Fd(s.as_raw_fd())).all(),
                            )
                            .build()
                            .user_data(user_data(CANCEL, index, slot.gen)),
                        );
                    }
                }
            } else {
                if !slot.recv_inflight {
                    if let (Some(s), Some(rx)) = (&slot.socket, slot.rx.as_mut()) {
                        sqes.push(
                            opcode::RecvMsg::new(types::Fd(s.as_raw_fd()), rx.arm())
                                .build()
                                .user_data(user_data(RECV, index, slot.gen)),
                        );
                        slot.recv_inflight = true;
                    }
                }
                self.timers
                    .arm(&mut slot.armed, index, slot.transfer.poll_timeout());
            }
            if ended {
                let peer = slot.peer;
                self.by_peer.remove(&peer);
                if let Some(n) = self.per_ip.get_mut(&peer.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip.remove(&peer.ip());
                    }
                }
            }
        }
        for sqe in &sqes {
            self.push(sqe)?;
        }
        if free {
            self.slots[index] = None;
            self.free.push(index);
        }
        Ok(())
    }

    /// One datagram of `bytes` to `peer`, from the slot's socket or the request port.
    fn send_bytes(
        &mut self,
        slot: Option<usize>,
        peer: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let (fd, owner) = match slot.and_then(|i| self.slots.get_mut(i)?.as_mut().map(|s| (i, s))) {
            Some((i, s)) => match &s.socket {
                Some(sock) => {
                    s.sends_inflight += 1;
                    (sock.as_raw_fd(), Some((i, s.gen)))
                }
                None => (self.listener.as_raw_fd(), None),
            },
            None => (self.listener.as_raw_fd(), None),
        };
        let mut send = take_spare(&mut self.spare);
        send.msg.set_bytes(peer, bytes);
        send.owner = owner;
        let sqe = park(&mut self.sends, &mut self.sends_free, send, fd);
        self.push(&sqe)
    }

    fn recycle(&mut self, mut send: Box<Send>) {
        send._payload = None;
        send.owner = None;
        if self.spare.len() < 256 {
            self.spare.push(send);
        }
    }

    fn fire_timers(&mut self, now: Instant) -> Result<(), Error> {
        while let Some((index, at)) = self.timers.pop_due(now) {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                continue;
            };
            slot.armed.fired(at);
            if slot.closing {
                continue;
            }
            slot.transfer.handle_timeout(now);
            self.drive(index, now)?;
        }
        Ok(())
    }
}

/// Keeps `send` in `sends` until its completion and returns its SENDMSG on `fd`.
fn park(
    sends: &mut Vec<Option<Box<Send>>>,
    free: &mut Vec<usize>,
    mut send: Box<Send>,
    fd: std::os::fd::RawFd,
) -> squeue::Entry {
    // The box does not move from here on, so the msghdr stays valid.
    let msg = send.msg.msghdr();
    let at = free.pop().unwrap_or_else(|| {
        sends.push(None);
        sends.len() - 1
    });
    sends[at] = Some(send);
    opcode::SendMsg::new(types::Fd(fd), msg)
        .build()
        .user_data(user_data(SEND, at, 0))
}

fn take_spare(spare: &mut Vec<Box<Send>>) -> Box<Send> {
    spare.pop().unwrap_or_else(|| {
        Box::new(Send {
            msg: MsgOut::new(),
            _payload: None,
            owner: None,
        })
    })
}
