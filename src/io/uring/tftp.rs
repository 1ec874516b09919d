//! The io_uring TFTP worker: the same [`Endpoint`] (proto/tftp/endpoint.rs:
//! admission, limits, TID, timers) as the mio worker, driven by completions. One RECVMSG in flight on
//! the request port (with IP_PKTINFO, so a transfer answers from the address
//! the request reached) and one on each transfer's own socket; a window leaves
//! as one SENDMSG carrying a UDP_SEGMENT cmsg over the file's mapping, every
//! send of a turn in one io_uring_enter. With `tftp.send = "sendmsg-zc"` a
//! window leaves as SENDMSG_ZC instead, cut into as many messages as the
//! kernel's fragment limit needs (each block is a fragment for its header and
//! one per page its payload touches; a message over `net.core.max_skb_frags`
//! fails with EMSGSIZE). Retransmissions are the engines' timers, and the
//! ring's wait carries the earliest of them as its timeout.
//!
//! A transfer's socket has one multishot RECVMSG armed for its life, into the
//! worker's provided buffers (1,024 of 2 KiB): a transfer waiting for an ACK
//! holds no receive buffer of its own, and an ACK needs no new submission.
//!
//! What the kernel holds: a send's msghdr, iovecs, headers, address and cmsg
//! live in its own boxed [`MsgOut`], which also holds a clone of the transfer's
//! payload, until its completion (for SENDMSG_ZC, until its notification: the
//! socket references the headers and the mapping's pages until then); the
//! request port's receives write into the worker's boxed [`MsgIn`]s, the
//! transfers' into the ring's provided buffers, laid out by the worker's boxed
//! template msghdr. A transfer's socket is closed only when no
//! operation on it is outstanding (its receive is cancelled first), so a
//! descriptor number is never reused under an operation.

use std::io;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types};

use super::ring::{gen_bits, split, user_data, Ring, BUFFER_GROUP};
use super::zc;
use crate::config::{self, TftpSend};
use crate::io::udp::{self, MsgIn, MsgOut};
use crate::io::{access, clock, transfer, Error};
use crate::proto::tftp::endpoint::{Datagram, Id, Outgoing, Port};
use crate::proto::tftp::{Endpoint, Payload, Transmit};
use crate::store::Published;

/// Largest datagram read on the request port; a longer one is truncated and refused.
const RX: usize = 65_536;
/// Provided buffers for the transfers' receives, and the size of each: the
/// kernel's header and the peer's address take 44 bytes, which leaves 468 for
/// a datagram (an ACK is 4; an ERROR carries a short message; a longer
/// datagram is dropped). 512 KiB per worker, where each transfer had its own
/// 2 KiB buffer before.
const BUFFERS: u16 = 1024;
const BUFFER: u32 = 512;
/// Receives kept in flight on the request port: a rack's burst of requests (or,
/// in single-port mode, every client's ACKs) completes this many per
/// io_uring_enter instead of one.
const LISTEN_DEPTH: usize = 16;

const LISTEN: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CANCEL: u64 = 3;

/// What the worker holds of one transfer (the endpoint holds the rest).
struct Slot {
    /// The transfer's own socket; `None` in single-port mode.
    socket: Option<UdpSocket>,
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
    /// Sent by SENDMSG_ZC: held until the kernel's notification.
    zc: bool,
}

/// IORING_SEND_ZC_REPORT_USAGE (an SQE ioprio flag): the notification says
/// whether the kernel fell back to copying.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// IORING_NOTIF_USAGE_ZC_COPIED: set in a notification's result when it copied.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

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
    /// The transfers' multishot receives' msghdr: it says how much of each
    /// provided buffer the peer's address and the control data take.
    transfer_rx: Box<libc::msghdr>,
    /// What the worker holds of each transfer, by endpoint id.
    slots: Vec<Option<Slot>>,
    gens: Vec<u32>,
    endpoint: Endpoint,
    sends: Vec<Option<Box<Send>>>,
    sends_free: Vec<usize>,
    spare: Vec<Box<Send>>,
    config: config::Tftp,
    gso: bool,
    /// Windows go out by SENDMSG_ZC (until the kernel refuses it).
    zc: bool,
    /// `net.core.max_skb_frags`, and the base page size, for cutting windows.
    zc_frags: usize,
    page: usize,
    /// The kernel's first notification said whether it copied: logged once.
    zc_told: bool,
    scratch: Vec<u8>,
    sqes: Vec<squeue::Entry>,
    done: Vec<(u64, i32, u32)>,
    active_at: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("uring::tftp::Worker")
            .field("id", &self.id)
            .field("transfers", &self.endpoint.live())
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
        published: Arc<Published>,
        config: config::Tftp,
        root: Option<String>,
    ) -> Result<Self, Error> {
        let mut ring = Ring::new(id, 1024)?;
        ring.provide(BUFFERS, BUFFER)?;
        Ok(Self {
            id,
            ring,
            listener,
            listen_rx: (0..LISTEN_DEPTH).map(|_| MsgIn::new(RX)).collect(),
            listen_armed: vec![false; LISTEN_DEPTH],
            transfer_rx: udp::multishot_template(),
            slots: Vec::new(),
            gens: Vec::new(),
            endpoint: transfer::endpoint(&config, published, root.as_deref()),
            sends: Vec::new(),
            sends_free: Vec::new(),
            spare: Vec::new(),
            config,
            gso: true,
            zc: config.send == TftpSend::SendmsgZc,
            zc_frags: zc::max_skb_frags(),
            // SAFETY: sysconf has no preconditions.
            page: usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
                .ok()
                .filter(|&p| p > 0)
                .unwrap_or(4096),
            zc_told: false,
            scratch: vec![0; 1024],
            sqes: Vec::new(),
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
                self.endpoint.poll_timeout().map(|at| {
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
            for &(data, result, flags) in &done {
                self.complete(data, result, flags, now)?;
            }
            self.done = done;
            self.endpoint.handle_timeout(now);
            self.flush(now)?;
        }
    }

    fn push(&mut self, sqe: &squeue::Entry) -> Result<(), Error> {
        // SAFETY: a request-port receive's msghdr and buffer live in a boxed
        // MsgIn the worker owns; a transfer's multishot receive reads the
        // worker's boxed template and writes into the ring's provided buffers,
        // both kept as long as the ring; a send's live in its boxed `Send`, kept in `sends` (with a
        // clone of its payload) until the completion; a socket is closed only
        // when none of its operations is outstanding.
        unsafe { self.ring.push(sqe) }
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32, now: Instant) -> Result<(), Error> {
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
                self.on_request(now, index, result as usize)
            }
            RECV => {
                let bid = cqueue::buffer_select(flags);
                let r = self.transfer_received(index, gen, result, flags, bid, now);
                // Back to the kernel whatever became of the datagram.
                if let Some(b) = bid {
                    self.ring.give_back(b);
                }
                r
            }
            SEND => {
                if cqueue::notif(flags) {
                    // SENDMSG_ZC's second completion: the kernel let go of the pages.
                    if !self.zc_told {
                        self.zc_told = true;
                        let copied = result as u32 & NOTIF_USAGE_ZC_COPIED != 0;
                        if copied {
                            tracing::info!(worker = self.id, "SENDMSG_ZC: the kernel copied the pages (loopback, veth or a device without scatter-gather): no saving here");
                        } else {
                            tracing::info!(
                                worker = self.id,
                                "SENDMSG_ZC: windows leave without a copy"
                            );
                        }
                    }
                } else {
                    let Some(send) = self.sends.get(index).and_then(Option::as_ref) else {
                        return Ok(());
                    };
                    let (gso, zc) = (send.msg.is_gso(), send.zc);
                    if result < 0 {
                        let e = io::Error::from_raw_os_error(-result);
                        if zc
                            && self.zc
                            && matches!(-result, libc::EOPNOTSUPP | libc::EINVAL | libc::EMSGSIZE)
                        {
                            tracing::warn!(worker = self.id, error = %e, "SENDMSG_ZC refused by the kernel; windows use SENDMSG");
                            self.zc = false;
                        } else if gso && self.gso && udp::gso_refused(&e) {
                            tracing::warn!(error = %e, "UDP GSO refused by the kernel; sending windows a block per datagram");
                            self.gso = false;
                        } else {
                            // A window that did not go out is resent by the transfer's timer.
                            tracing::debug!(error = %e, "tftp send failed");
                        }
                    }
                    if cqueue::more(flags) {
                        // The notification follows; the send stays parked until then.
                        return Ok(());
                    }
                }
                let Some(send) = self.sends.get_mut(index).and_then(Option::take) else {
                    return Ok(());
                };
                self.sends_free.push(index);
                let owner = send.owner;
                self.recycle(send);
                if let Some((slot_index, slot_gen)) = owner {
                    if let Some(Some(slot)) = self.slots.get_mut(slot_index) {
                        if slot.gen == slot_gen {
                            slot.sends_inflight = slot.sends_inflight.saturating_sub(1);
                            if slot.closing {
                                self.settle(slot_index);
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A completion of slot `index`'s multishot receive, whose datagram (if
    /// any) is in provided buffer `bid`.
    fn transfer_received(
        &mut self,
        index: usize,
        gen: u32,
        result: i32,
        flags: u32,
        bid: Option<u16>,
        now: Instant,
    ) -> Result<(), Error> {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Ok(());
        };
        if gen_bits(slot.gen) != gen {
            return Ok(());
        }
        if !cqueue::more(flags) {
            // The multishot receive ended (cancelled, out of buffers, failed):
            // armed again below unless the transfer is closing.
            slot.recv_inflight = false;
        }
        if slot.closing {
            self.settle(index);
            return Ok(());
        }
        if result >= 0 {
            // SAFETY: `bid` is this completion's buffer, given back only after.
            let buffer = bid.and_then(|b| unsafe { self.ring.filled(b, result as usize) });
            match buffer.and_then(|b| udp::multishot_received(b, &self.transfer_rx)) {
                Some((from, Some(bytes))) => {
                    if let Err(e) = self.endpoint.handle_transfer(now, Id(index), from, bytes) {
                        tracing::debug!(peer = %from, reason = e.kind(), error = %e, "tftp datagram dropped");
                    }
                }
                Some((from, None)) => {
                    let limit = BUFFER as usize - udp::MULTISHOT_OVERHEAD;
                    tracing::debug!(peer = %from, limit, "tftp datagram over the receive buffer dropped");
                }
                None => tracing::debug!(transfer = index, "tftp receive named no buffer"),
            }
        } else if !matches!(-result, libc::ECANCELED | libc::ENOBUFS) {
            // ENOBUFS: every buffer was taken in one batch; they are back by
            // the next submission, and the datagram waits in the socket.
            let e = io::Error::from_raw_os_error(-result);
            tracing::debug!(transfer = index, error = %e, "tftp transfer receive failed");
        }
        self.arm_recv(index);
        Ok(())
    }

    /// A datagram of `n` bytes in request-port receive `rx`.
    fn on_request(&mut self, now: Instant, rx: usize, n: usize) -> Result<(), Error> {
        let Some((r, datagram)) = self.listen_rx[rx].received(n) else {
            return Ok(());
        };
        let d = Datagram {
            local: r.local.map(IpAddr::V4).unwrap_or(self.config.listen.ip()),
            peer: r.peer,
            bytes: datagram,
            truncated: r.truncated,
        };
        let Some((id, socket)) = transfer::on_request(&mut self.endpoint, now, d) else {
            return Ok(());
        };
        if self.slots.len() <= id.0 {
            self.slots.resize_with(id.0 + 1, || None);
            self.gens.resize(id.0 + 1, 0);
        }
        self.gens[id.0] = self.gens[id.0].wrapping_add(1);
        self.slots[id.0] = Some(Slot {
            socket,
            gen: self.gens[id.0],
            recv_inflight: false,
            sends_inflight: 0,
            closing: false,
            cancelled: false,
        });
        self.arm_recv(id.0);
        Ok(())
    }

    /// Keeps one multishot receive armed on a live transfer's own socket.
    fn arm_recv(&mut self, index: usize) {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        if slot.closing || slot.recv_inflight {
            return;
        }
        if let Some(s) = &slot.socket {
            let template: *const libc::msghdr = &*self.transfer_rx;
            self.sqes.push(
                opcode::RecvMsgMulti::new(types::Fd(s.as_raw_fd()), template, BUFFER_GROUP)
                    .build()
                    .user_data(user_data(RECV, index, slot.gen)),
            );
            slot.recv_inflight = true;
        }
    }

    /// Sends what the endpoint names and starts closing ended transfers; then
    /// queues every operation built.
    fn flush(&mut self, now: Instant) -> Result<(), Error> {
        while let Some(out) = self.endpoint.poll_transmit(now, &mut self.scratch) {
            self.transmit(&out);
        }
        while let Some(ended) = self.endpoint.poll_event() {
            access::tftp_ended(&ended);
            match self.slots.get_mut(ended.id.0) {
                Some(Some(slot)) => {
                    slot.closing = true;
                    self.settle(ended.id.0);
                }
                _ => self.endpoint.release(ended.id),
            }
        }
        for sqe in std::mem::take(&mut self.sqes) {
            self.push(&sqe)?;
        }
        Ok(())
    }

    /// Builds the sends for one datagram (or window) the endpoint names.
    fn transmit(&mut self, out: &Outgoing) {
        let slot_index = match out.port {
            Port::Transfer(id) => Some(id.0),
            Port::Request => None,
        };
        let slot = slot_index.and_then(|i| Some((i, self.slots.get_mut(i)?.as_mut()?)));
        let (fd, owner) = match &slot {
            Some((i, s)) => match &s.socket {
                Some(sock) => (sock.as_raw_fd(), Some((*i, s.gen))),
                None => (self.listener.as_raw_fd(), None),
            },
            None => (self.listener.as_raw_fd(), None),
        };
        let mut msgs = Vec::new();
        let mut payload = None;
        match out.what {
            Transmit::Control { len } => {
                let mut send = take_spare(&mut self.spare);
                send.msg.set_bytes(out.peer, &self.scratch[..len]);
                msgs.push(send);
            }
            Transmit::Window {
                first,
                count,
                blksize,
            } => {
                let Some(transfer) = slot_index.and_then(|i| self.endpoint.transfer(Id(i))) else {
                    return;
                };
                payload = Some(transfer.payload_source().clone());
                let mut heads = [[0u8; 4]; udp::MAX_BLOCKS];
                let (parts, n) = udp::window_parts(transfer, first, count, &mut heads);
                let parts = &parts[..n];
                // Copying: the whole window in one GSO message.
                // Zero-copy: as many as the fragment limit needs.
                let per_run = if self.gso { udp::MAX_BLOCKS } else { 1 };
                let limit = if self.zc { self.zc_frags } else { usize::MAX };
                for (from, to, fits) in zc::window_runs(parts, limit, per_run, self.page) {
                    let mut send = take_spare(&mut self.spare);
                    let segment = (to - from > 1).then_some(blksize + 4);
                    send.msg.set_parts(out.peer, &parts[from..to], segment);
                    send.zc = self.zc && fits;
                    msgs.push(send);
                }
            }
        }
        if let (Some((_, slot)), Some(_)) = (slot, owner) {
            slot.sends_inflight += msgs.len() as u32;
        }
        for mut send in msgs {
            send._payload = payload.clone();
            send.owner = owner;
            self.sqes
                .push(park(&mut self.sends, &mut self.sends_free, send, fd));
        }
    }

    /// A closing slot: cancels its receive, and once nothing of it is in
    /// flight, closes its socket and gives its id back to the endpoint.
    fn settle(&mut self, index: usize) {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        if !slot.recv_inflight && slot.sends_inflight == 0 {
            self.slots[index] = None;
            self.endpoint.release(Id(index));
        } else if slot.recv_inflight && !slot.cancelled {
            slot.cancelled = true;
            if let Some(s) = &slot.socket {
                self.sqes.push(
                    opcode::AsyncCancel2::new(
                        types::CancelBuilder::fd(types::Fd(s.as_raw_fd())).all(),
                    )
                    .build()
                    .user_data(user_data(CANCEL, index, slot.gen)),
                );
            }
        }
    }

    fn recycle(&mut self, mut send: Box<Send>) {
        send._payload = None;
        send.owner = None;
        send.zc = false;
        if self.spare.len() < 256 {
            self.spare.push(send);
        }
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
    let zc = send.zc;
    sends[at] = Some(send);
    let sqe = if zc {
        opcode::SendMsgZc::new(types::Fd(fd), msg)
            .ioprio(SEND_ZC_REPORT_USAGE)
            .build()
    } else {
        opcode::SendMsg::new(types::Fd(fd), msg).build()
    };
    sqe.user_data(user_data(SEND, at, 0))
}

fn take_spare(spare: &mut Vec<Box<Send>>) -> Box<Send> {
    spare.pop().unwrap_or_else(|| {
        Box::new(Send {
            msg: MsgOut::new(),
            _payload: None,
            owner: None,
            zc: false,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use io_uring::{cqueue, opcode, types};

    use crate::io::udp;
    use crate::io::uring::ring::{Ring, BUFFER_GROUP};

    #[test]
    fn a_multishot_receive_out_of_buffers_ends_and_rearmed_loses_no_datagram() {
        // Two buffers of 256 bytes (the kernel's header and the address leave
        // 212 for the datagram) for six datagrams sent before the first is
        // reaped: the receive ends with ENOBUFS after two, and each re-arm
        // takes the next ones from the socket.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let mut ring = Ring::new(0, 8).unwrap();
        ring.provide(2, 256).unwrap();
        let template = udp::multishot_template();
        let mut sent: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let room = 256 - udp::MULTISHOT_OVERHEAD;
        sent[3] = vec![3; room + 1]; // over the buffer: seen, flagged, not delivered
        sent[4] = vec![4; room]; // fills it exactly
        for d in &sent {
            client.send_to(d, to).unwrap();
        }
        let (mut got, mut ended_empty, mut done) = (Vec::new(), 0, Vec::new());
        let mut armed = false;
        for _ in 0..20 {
            if got.len() == sent.len() {
                break;
            }
            if !armed {
                let t: *const libc::msghdr = &*template;
                let sqe = opcode::RecvMsgMulti::new(types::Fd(server.as_raw_fd()), t, BUFFER_GROUP)
                    .build()
                    .user_data(1);
                // SAFETY: the template and the buffers outlive the ring's use.
                unsafe { ring.push(&sqe) }.unwrap();
                armed = true;
            }
            ring.submit_and_wait(Some(Duration::from_secs(5)), &mut done)
                .unwrap();
            for &(_, result, flags) in &done {
                armed &= cqueue::more(flags);
                if result == -libc::ENOBUFS {
                    ended_empty += 1;
                    continue;
                }
                assert!(result > 0, "receive failed: {result}");
                let bid = cqueue::buffer_select(flags).unwrap();
                // SAFETY: this completion's buffer, given back below.
                let buffer = unsafe { ring.filled(bid, result as usize) }.unwrap();
                let (peer, payload) = udp::multishot_received(buffer, &template).unwrap();
                assert_eq!(peer, client.local_addr().unwrap());
                got.push(payload.map(<[u8]>::to_vec));
                ring.give_back(bid);
            }
        }
        let want: Vec<Option<Vec<u8>>> = sent
            .iter()
            .map(|d| (d.len() <= room).then(|| d.clone()))
            .collect();
        assert_eq!(got, want, "every datagram in order, the long one flagged");
        assert!(
            ended_empty > 0,
            "the receive ran out of buffers at least once"
        );
    }
}
