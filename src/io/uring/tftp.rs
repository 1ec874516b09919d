//! The io_uring TFTP worker: the same [`Endpoint`] (proto/tftp/endpoint.rs:
//! admission, limits, TID, timers) as the mio worker, driven by completions on
//! the worker's [`Driver`]. [`LISTEN_DEPTH`] RECVMSGs in flight on the request
//! port (with IP_PKTINFO, so a transfer answers from the address the request
//! reached) and one multishot RECVMSG on each transfer's own socket, into the
//! ring's provided buffers (1,024 of 512 bytes): a transfer waiting for an ACK
//! holds no receive buffer of its own, and an ACK needs no new submission. A
//! window leaves as one SENDMSG carrying a UDP_SEGMENT cmsg over the file's
//! mapping, every send of a turn in one io_uring_enter. With `tftp.send =
//! "sendmsg-zc"` a window leaves as SENDMSG_ZC instead, cut into as many
//! messages as the kernel's fragment limit needs (zc.rs). Retransmissions are
//! the endpoint's timers, and the ring's wait carries the earliest of them.
//!
//! What the kernel holds belongs to the ops (driver.rs): a send's boxed
//! message with a clone of the transfer's payload, a request-port receive's
//! boxed buffer, and a handle on the socket. An ended transfer's id goes back
//! to the endpoint at once; its receive is cancelled and its socket closes
//! with the last op that holds it.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Completion, Driver};
use super::op::sendmsg::NOTIF_USAGE_ZC_COPIED;
use super::op::{Op, RecvMsg, RecvMsgMulti, SendMsg, Shared};
use super::ring::Ring;
use super::zc;
use crate::config::{self, TftpSend};
use crate::io::udp::{self, MsgIn, MsgOut};
use crate::io::{access, clock, transfer, Error};
use crate::proto::tftp::endpoint::{Datagram, Id, Outgoing, Port};
use crate::proto::tftp::{Endpoint, Transmit};
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
/// Message boxes kept for reuse.
const SPARE: usize = 256;

/// A transfer's slot and its generation, as its receive is tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Xfer {
    index: usize,
    gen: u32,
}

/// What an operation is for.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Listen,
    Recv(Xfer),
    Send,
}

/// What the worker holds of one transfer (the endpoint holds the rest).
struct Slot {
    /// The transfer's own socket; `None` in single-port mode.
    socket: Option<Rc<UdpSocket>>,
    gen: u32,
    recv_armed: bool,
}

/// One io_uring TFTP worker.
pub struct Worker {
    id: usize,
    driver: Driver<Tag>,
    listener: Rc<UdpSocket>,
    /// Request-port receives in flight, and boxes for the next ones.
    listening: usize,
    #[allow(
        clippy::vec_box,
        reason = "each box is lent to a receive whose msghdr points into it"
    )]
    listen_spare: Vec<Box<MsgIn>>,
    /// The transfers' multishot receives' msghdr: it says how much of each
    /// provided buffer the peer's address and the control data take.
    template: Rc<libc::msghdr>,
    /// What the worker holds of each transfer, by endpoint id.
    slots: Vec<Option<Slot>>,
    gens: Vec<u32>,
    endpoint: Endpoint,
    #[allow(
        clippy::vec_box,
        reason = "each box is lent to a send whose msghdr points into it"
    )]
    spare: Vec<Box<MsgOut>>,
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
    done: Vec<Completion<Tag>>,
    active_at: Instant,
    /// Every worker's counters (this one writes only its own).
    metrics: Arc<crate::metrics::Metrics>,
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
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, Error> {
        let mut ring = Ring::new(id, 1024)?;
        ring.provide(BUFFERS, BUFFER)?;
        Ok(Self {
            id,
            driver: Driver::new(ring),
            listener: Rc::new(listener),
            listening: 0,
            listen_spare: (0..LISTEN_DEPTH).map(|_| MsgIn::new(RX)).collect(),
            template: Rc::new(*udp::multishot_template()),
            slots: Vec::new(),
            gens: Vec::new(),
            endpoint: transfer::endpoint(&config, published, root.as_deref()),
            spare: Vec::new(),
            zc: config.send == TftpSend::SendmsgZc,
            config,
            gso: true,
            zc_frags: zc::max_skb_frags(),
            // SAFETY: sysconf has no preconditions.
            page: usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
                .ok()
                .filter(|&p| p > 0)
                .unwrap_or(4096),
            zc_told: false,
            scratch: vec![0; 1024],
            done: Vec::with_capacity(1024),
            active_at: clock::now(),
            metrics,
        })
    }

    /// Serves until the ring fails.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub fn run(mut self) -> Result<(), Error> {
        loop {
            while self.listening < LISTEN_DEPTH {
                let msg = self.listen_spare.pop().unwrap_or_else(|| MsgIn::new(RX));
                let listener: Shared = self.listener.clone();
                self.driver
                    .submit(Tag::Listen, Op::RecvMsg(RecvMsg::new(listener, msg)))?;
                self.listening += 1;
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
            self.driver.turn(wait, &mut done)?;
            let now = clock::now();
            if !done.is_empty() {
                self.active_at = now;
            }
            for c in done.drain(..) {
                self.complete(c, now)?;
            }
            self.done = done;
            self.endpoint.handle_timeout(now);
            self.flush(now)?;
        }
    }

    fn complete(&mut self, c: Completion<Tag>, now: Instant) -> Result<(), Error> {
        match c.tag {
            Tag::Listen => {
                self.listening -= 1;
                let Some(Op::RecvMsg(r)) = c.op else {
                    return Ok(());
                };
                let msg = r.into_msg();
                if c.result < 0 {
                    let e = io::Error::from_raw_os_error(-c.result);
                    tracing::debug!(worker = self.id, error = %e, "tftp receive failed");
                } else {
                    self.on_request(now, &msg, c.result as usize)?;
                }
                self.listen_spare.push(msg);
                Ok(())
            }
            Tag::Recv(x) => {
                let bid = c.buffer();
                self.transfer_received(x, &c, now)?;
                // Back to the kernel whatever became of the datagram.
                if let Some(b) = bid {
                    self.driver.buffers().give_back(b);
                }
                Ok(())
            }
            Tag::Send => {
                self.sent(c);
                Ok(())
            }
        }
    }

    /// A send's completion, or its zero-copy notification.
    fn sent(&mut self, c: Completion<Tag>) {
        if c.is_notification() {
            // SENDMSG_ZC's second completion: the kernel let go of the pages.
            if !self.zc_told {
                self.zc_told = true;
                if c.result as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                    tracing::info!(worker = self.id, "SENDMSG_ZC: the kernel copied the pages (loopback, veth or a device without scatter-gather): no saving here");
                } else {
                    tracing::info!(worker = self.id, "SENDMSG_ZC: windows leave without a copy");
                }
            }
        } else if c.result < 0 {
            let e = io::Error::from_raw_os_error(-c.result);
            // The op is handed back now unless a notification follows; either
            // way the first completion says what the send was.
            let (zc, gso) = match &c.op {
                Some(Op::SendMsg(s)) => (s.is_zc(), s.is_gso()),
                _ => (self.zc, self.gso),
            };
            if zc
                && self.zc
                && matches!(-c.result, libc::EOPNOTSUPP | libc::EINVAL | libc::EMSGSIZE)
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
        if let Some(Op::SendMsg(s)) = c.op {
            if self.spare.len() < SPARE {
                self.spare.push(s.into_msg());
            }
        }
    }

    /// A completion of a transfer's multishot receive.
    fn transfer_received(
        &mut self,
        x: Xfer,
        c: &Completion<Tag>,
        now: Instant,
    ) -> Result<(), Error> {
        let Some(Some(slot)) = self.slots.get_mut(x.index) else {
            return Ok(());
        };
        if slot.gen != x.gen {
            return Ok(());
        }
        if c.op.is_some() {
            // The multishot receive ended (cancelled, out of buffers, failed):
            // armed again below.
            slot.recv_armed = false;
        }
        if c.result >= 0 {
            let ring = self.driver.buffers();
            // SAFETY: the buffer is this completion's, given back only after.
            let buffer = c
                .buffer()
                .and_then(|b| unsafe { ring.filled(b, c.result as usize) });
            match buffer.and_then(|b| udp::multishot_received(b, &self.template)) {
                Some((from, Some(bytes))) => {
                    if let Err(e) = self.endpoint.handle_transfer(now, Id(x.index), from, bytes) {
                        tracing::debug!(peer = %from, reason = e.kind(), error = %e, "tftp datagram dropped");
                    }
                }
                Some((from, None)) => {
                    let limit = BUFFER as usize - udp::MULTISHOT_OVERHEAD;
                    tracing::debug!(peer = %from, limit, "tftp datagram over the receive buffer dropped");
                }
                None => tracing::debug!(transfer = x.index, "tftp receive named no buffer"),
            }
        } else if !matches!(-c.result, libc::ECANCELED | libc::ENOBUFS) {
            // ENOBUFS: every buffer was taken in one batch; they are back by
            // the next submission, and the datagram waits in the socket.
            let e = io::Error::from_raw_os_error(-c.result);
            tracing::debug!(transfer = x.index, error = %e, "tftp transfer receive failed");
        }
        self.arm_recv(x.index)
    }

    /// A datagram of `n` bytes in request-port receive `msg`.
    fn on_request(&mut self, now: Instant, msg: &MsgIn, n: usize) -> Result<(), Error> {
        let Some((r, datagram)) = msg.received(n) else {
            return Ok(());
        };
        let d = Datagram {
            local: r.reply_from(self.config.listen.ip()),
            peer: r.peer,
            bytes: datagram,
            truncated: r.truncated,
            unix_secs: crate::io::clock::unix_now(),
        };
        let metrics = self.metrics.tftp(self.id);
        let sink = self.metrics.fleet();
        let Some((id, socket)) = transfer::on_request(&mut self.endpoint, now, d, metrics, sink)
        else {
            return Ok(());
        };
        if self.slots.len() <= id.0 {
            self.slots.resize_with(id.0 + 1, || None);
            self.gens.resize(id.0 + 1, 0);
        }
        self.gens[id.0] = self.gens[id.0].wrapping_add(1);
        self.slots[id.0] = Some(Slot {
            socket: socket.map(Rc::new),
            gen: self.gens[id.0],
            recv_armed: false,
        });
        self.arm_recv(id.0)
    }

    /// Keeps one multishot receive armed on a live transfer's own socket.
    fn arm_recv(&mut self, index: usize) -> Result<(), Error> {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Ok(());
        };
        if slot.recv_armed {
            return Ok(());
        }
        if let Some(s) = &slot.socket {
            let op = RecvMsgMulti::new(s.clone(), Rc::clone(&self.template));
            let x = Xfer {
                index,
                gen: slot.gen,
            };
            self.driver.submit(Tag::Recv(x), Op::RecvMsgMulti(op))?;
            slot.recv_armed = true;
        }
        Ok(())
    }

    /// Sends what the endpoint names, and lets ended transfers go.
    fn flush(&mut self, now: Instant) -> Result<(), Error> {
        while let Some(out) = self.endpoint.poll_transmit(now, &mut self.scratch) {
            self.transmit(&out)?;
        }
        while let Some(ended) = self.endpoint.poll_event() {
            access::tftp_done(&ended, self.metrics.fleet());
            self.metrics.tftp(self.id).ended(&ended);
            // Its receive is cancelled; its socket closes with the last op that
            // holds it, and its id is free for the next transfer now.
            if let Some(Some(slot)) = self.slots.get_mut(ended.id.0).map(Option::take) {
                if let (true, Some(s)) = (slot.recv_armed, &slot.socket) {
                    self.driver.cancel_fd(s.as_raw_fd())?;
                }
            }
            self.endpoint.release(ended.id);
        }
        Ok(())
    }

    /// Submits the sends for one datagram (or window) the endpoint names.
    fn transmit(&mut self, out: &Outgoing) -> Result<(), Error> {
        let slot_index = match out.port {
            Port::Transfer(id) => Some(id.0),
            Port::Request => None,
        };
        let socket: Shared = slot_index
            .and_then(|i| self.slots.get(i)?.as_ref()?.socket.clone())
            .map_or_else(|| self.listener.clone() as Shared, |s| s as Shared);
        match out.what {
            Transmit::Control { len } => {
                let mut msg = self.spare.pop().unwrap_or_else(|| Box::new(MsgOut::new()));
                msg.set_bytes(out.peer, &self.scratch[..len]);
                let op = SendMsg::new(socket, msg, None, false);
                self.driver.submit(Tag::Send, Op::SendMsg(op))?;
            }
            Transmit::Window {
                first,
                count,
                blksize,
            } => {
                let Some(transfer) = slot_index.and_then(|i| self.endpoint.transfer(Id(i))) else {
                    return Ok(());
                };
                let payload = transfer.payload_source().clone();
                let mut heads = [[0u8; 4]; udp::MAX_BLOCKS];
                let (parts, n) = udp::window_parts(transfer, first, count, &mut heads);
                let parts = &parts[..n];
                // Copying: the whole window in one GSO message.
                // Zero-copy: as many as the fragment limit needs.
                let per_run = if self.gso { udp::MAX_BLOCKS } else { 1 };
                let limit = if self.zc { self.zc_frags } else { usize::MAX };
                for (from, to, fits) in zc::window_runs(parts, limit, per_run, self.page) {
                    let mut msg = self.spare.pop().unwrap_or_else(|| Box::new(MsgOut::new()));
                    let segment = (to - from > 1).then_some(blksize + 4);
                    msg.set_parts(out.peer, &parts[from..to], segment);
                    let op =
                        SendMsg::new(socket.clone(), msg, Some(payload.clone()), self.zc && fits);
                    self.driver.submit(Tag::Send, Op::SendMsg(op))?;
                }
            }
        }
        Ok(())
    }
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
