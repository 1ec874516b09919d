//! The io_uring HTTP worker: the same [`Connection`] engine as the mio worker,
//! driven by completions instead of readiness. One ring per worker; a multishot
//! accept on the listener; per connection at most one receive and one send in
//! flight (two unlinked sends on one TCP socket may reorder its bytes, measured
//! on this kernel).
//!
//! Buffers the kernel holds: a connection's receive is multishot and lands in
//! the worker's provided buffers (never the engine's, which the engine may
//! compact while a receive is armed); on completion the bytes are copied into
//! the engine, or into the slot's stash while the engine has no room, and the
//! buffer goes straight back to the kernel. An idle connection so holds no
//! receive buffer and needs no new receive per request. A stash that grows past
//! [`STASH`] (a client sending faster than its answers drain) cancels the
//! receive until it empties: the peer then waits on TCP's window. A head (and a body up to
//! [`INLINE_BODY`]) is sent from the slot's copy. A larger body leaves by the
//! worker's [`Body`] path: `splice` (memfd -> the slot's pipe -> socket, two
//! linked operations), `send-zc` (from the file's mapping; the kernel references
//! the pages until its notification completion, so the slot holds the file's
//! `Arc` until every notification has come back) or `send` (the kernel copies
//! from the mapping). A slot whose connection closed is freed only when no
//! operation or notification of it is outstanding; until then its generation
//! tells stale completions apart.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types};

use super::ring::{split, user_data, Ring, BUFFER_GROUP};
use crate::config::{self, Body};
use crate::io::clock::{self, DateCache};
use crate::io::Error;
use crate::proto::boot::Profiles;
use crate::proto::http::{Connection, Context, Event, Transmit};
use crate::proto::timers::{Armed, Timers};
use crate::store::{BootFile, Published, Snapshot};

/// Bodies up to this size are copied behind the head and sent with it.
const INLINE_BODY: u64 = 32 << 10;
/// Most bytes of one body send (`send`, `send-zc`).
const SEND_CHUNK: usize = 4 << 20;
/// Provided receive buffers per worker, and the size of each: a boot client's
/// request fits one; a longer one spans several.
const BUFFERS: u16 = 1024;
const BUFFER: u32 = 2 << 10;
/// Received bytes a slot holds for its engine before its receive is paused.
const STASH: usize = 64 << 10;
/// Pipe capacity asked for per connection (`splice`): one splice pair moves
/// this much. 1 MiB is the default pipe-max-size.
const PIPE: usize = 1 << 20;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
/// A send to the socket: SEND, SEND_ZC (and its notification) or the pipe's
/// splice into the socket.
const SEND: u64 = 2;
const CANCEL: u64 = 3;
/// The memfd's splice into the pipe.
const SPLICE_IN: u64 = 4;
/// The wait for room in the socket before the pipe's splice into it.
const POLL: u64 = 5;

/// A connection's pipe for the `splice` path.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Capacity granted (the kernel may refuse to grow it).
    size: usize,
    /// Body bytes read into the pipe and not yet sent.
    held: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live array of two ints, what pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both are new descriptors that we own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
        let size =
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE as libc::c_int) };
        // Refused (over pipe-user-pages-soft for an unprivileged user): the
        // default 64 KiB still works, in smaller steps.
        let size = if size > 0 { size as usize } else { 64 << 10 };
        Ok(Self {
            read,
            write,
            size,
            held: 0,
        })
    }
}

struct Slot {
    stream: TcpStream,
    peer: SocketAddr,
    /// The snapshot the connection started on.
    snapshot: Arc<Snapshot>,
    conn: Connection,
    armed: Armed,
    gen: u32,
    /// The multishot receive is armed (until a completion without MORE).
    recv_armed: bool,
    /// A cancel of the receive is on its way (the stash is over [`STASH`]).
    recv_paused: bool,
    /// Bytes received that the engine had no room for yet.
    stash: Vec<u8>,
    /// The peer's EOF arrived behind the stash: the engine hears of it once
    /// the stash is empty.
    eof: bool,
    out: Out,
    closing: bool,
    cancelled: bool,
}

/// A slot's sending side: what the kernel may still read.
#[derive(Default)]
struct Out {
    tx: Vec<u8>,
    send_inflight: bool,
    splice_inflight: bool,
    poll_inflight: bool,
    /// The file the send in flight reads from, kept alive until it completes.
    tx_file: Option<Arc<BootFile>>,
    pipe: Option<Pipe>,
    /// SEND_ZC notifications still to come, and the files they pin: released
    /// together when the count reaches zero (a notification does not say which
    /// send it ends, so no file is let go before all of them are).
    zc_pending: u32,
    zc_files: Vec<Arc<BootFile>>,
}

/// What a send's completion means for the connection.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// This many bytes reached the socket.
    Bytes(usize),
    /// A SEND_ZC notification: pages were let go; nothing was sent.
    Notified,
    /// Nothing went out, and nothing failed: drive again (a short splice into
    /// the pipe broke the link, or EAGAIN).
    Retry,
    /// The send failed with this errno.
    Failed(i32),
}

impl Out {
    /// Books the completion of this slot's send (or a SEND_ZC notification),
    /// releasing what the kernel no longer holds.
    fn completed(&mut self, result: i32, flags: u32) -> Sent {
        if cqueue::notif(flags) {
            self.zc_pending = self.zc_pending.saturating_sub(1);
            if self.zc_pending == 0 {
                self.zc_files.clear();
            }
            return Sent::Notified;
        }
        self.send_inflight = false;
        let file = self.tx_file.take();
        if cqueue::more(flags) {
            // SEND_ZC: the pages stay referenced until the notification.
            self.zc_pending += 1;
            self.zc_files.extend(file);
        }
        let pipe = self.pipe.as_mut().filter(|p| p.held > 0);
        match result {
            n if n >= 0 => {
                if let Some(p) = pipe {
                    p.held = p.held.saturating_sub(n as usize);
                }
                Sent::Bytes(n as usize)
            }
            // Only a broken link cancels a live connection's send (the worker
            // cancels only when closing): the splice into the pipe came up
            // short or failed, and what the pipe holds, if anything, goes next.
            e if e == -libc::ECANCELED => Sent::Retry,
            e if e == -libc::EAGAIN => Sent::Retry,
            e => Sent::Failed(-e),
        }
    }
}

impl Slot {
    fn idle(&self) -> bool {
        !self.recv_armed
            && !self.out.send_inflight
            && !self.out.splice_inflight
            && !self.out.poll_inflight
            && self.out.zc_pending == 0
    }
}

/// One io_uring HTTP worker.
pub struct Worker {
    id: usize,
    ring: Ring,
    listener: std::net::TcpListener,
    accept_armed: bool,
    /// After an accept failure (EMFILE, ENFILE, ENOBUFS): no new accept before
    /// this, so that a full descriptor table does not spin the worker; clients
    /// wait in the listen queue.
    accept_after: Option<Instant>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    gens: Vec<u32>,
    live: usize,
    timers: Timers,
    /// What new connections are served from; each keeps the one it started on.
    published: Arc<Published>,
    snapshot: Arc<Snapshot>,
    boot: Option<Arc<Profiles>>,
    config: config::Http,
    body: Body,
    date: DateCache,
    done: Vec<(u64, i32, u32)>,
    active_at: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("uring::http::Worker")
            .field("id", &self.id)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker serving what `published` holds on `listener`.
    ///
    /// # Errors
    /// The ring cannot be set up (io_uring disabled, denied or too old).
    pub fn new(
        id: usize,
        listener: std::net::TcpListener,
        published: Arc<Published>,
        config: config::Http,
        boot: Option<Arc<Profiles>>,
    ) -> Result<Self, Error> {
        let mut ring = Ring::new(id, 1024)?;
        ring.provide(BUFFERS, BUFFER)?;
        Ok(Self {
            id,
            ring,
            listener,
            accept_armed: false,
            accept_after: None,
            slots: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            live: 0,
            timers: Timers::default(),
            snapshot: published.current(),
            published,
            boot,
            body: config.body,
            config,
            date: DateCache::default(),
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
            if self.accept_after.is_some_and(|t| t <= clock::now()) {
                self.accept_after = None;
            }
            if !self.accept_armed && self.accept_after.is_none() {
                let sqe = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
                    .build()
                    .user_data(user_data(ACCEPT, 0, 0));
                self.push(&sqe)?;
                self.accept_armed = true;
            }
            let now = clock::now();
            // Busy-poll as the mio worker does: for `busy_poll` after data last
            // arrived, look again without sleeping.
            let wait = if now.saturating_duration_since(self.active_at) < self.config.busy_poll {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .next()
                    .into_iter()
                    .chain(self.accept_after)
                    .min()
                    .map(|at| {
                        at.saturating_duration_since(now)
                            .max(Duration::from_millis(1))
                    })
            };
            let mut done = std::mem::take(&mut self.done);
            self.ring.submit_and_wait(wait, &mut done)?;
            let now = clock::now();
            if !done.is_empty() {
                self.date.refresh();
            }
            // As the mio worker: only received data (or a new connection)
            // starts a spin, not a send's completion.
            if done
                .iter()
                .any(|&(d, r, _)| matches!(split(d).0, RECV | ACCEPT) && r > 0)
            {
                self.active_at = now;
            }
            for &(data, result, flags) in &done {
                self.complete(data, result, flags, now)?;
            }
            self.done = done;
            self.fire_timers(now)?;
        }
    }

    fn push(&mut self, sqe: &squeue::Entry) -> Result<(), Error> {
        // SAFETY: every buffer an entry names lives in a slot (its rx, its tx,
        // its pipe) or in a file mapping held by the slot's Arc until the
        // completion (for SEND_ZC, the notification) is reaped; a slot with
        // anything outstanding is never freed, and its socket stays open.
        unsafe { self.ring.push(sqe) }
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32, now: Instant) -> Result<(), Error> {
        let (kind, index, gen) = split(data);
        if kind == ACCEPT {
            if !cqueue::more(flags) {
                self.accept_armed = false;
            }
            if result == -libc::ECONNABORTED {
                // A client that reset before it was accepted: the next one waits.
            } else if result >= 0 {
                // SAFETY: a completed accept hands over a new, owned descriptor.
                let stream = unsafe { TcpStream::from_raw_fd(result) };
                self.open(stream, now)?;
            } else if !self.accept_armed && self.accept_after.is_none() {
                let e = io::Error::from_raw_os_error(-result);
                tracing::warn!(worker = self.id, error = %e, "accept failed; clients wait in the queue");
                self.accept_after = Some(now + Duration::from_millis(100));
            }
            return Ok(());
        }
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Ok(());
        };
        if super::ring::gen_bits(slot.gen) != gen {
            return Ok(());
        }
        match kind {
            RECV => {
                if !cqueue::more(flags) {
                    slot.recv_armed = false;
                    slot.recv_paused = false;
                }
                if result > 0 {
                    let bid = cqueue::buffer_select(flags);
                    // SAFETY: the bid is this completion's, not yet given back.
                    match bid.and_then(|b| unsafe { self.ring.filled(b, result as usize) }) {
                        Some(_) if slot.closing => {}
                        Some(bytes) => {
                            // Straight into the engine; only what it has no room
                            // for (or what must queue behind the stash) waits.
                            let taken = if slot.stash.is_empty() {
                                deliver(&mut slot.conn, bytes, now)
                            } else {
                                0
                            };
                            slot.stash.extend_from_slice(&bytes[taken..]);
                        }
                        // The kernel named no buffer we offered: the bytes are lost.
                        None => slot.conn.abort(now),
                    }
                    if let Some(b) = bid {
                        self.ring.give_back(b);
                    }
                } else if result == 0 {
                    if slot.stash.is_empty() {
                        slot.conn.handle_eof(now);
                    } else {
                        slot.eof = true;
                    }
                } else if !matches!(-result, libc::ECANCELED | libc::ENOBUFS) {
                    // ENOBUFS: every buffer was taken in one batch; they are all
                    // back by now, and `drive` arms the receive again.
                    slot.conn.abort(now);
                }
            }
            SEND => match slot.out.completed(result, flags) {
                Sent::Notified | Sent::Retry => {}
                Sent::Bytes(n) => {
                    if !slot.closing {
                        slot.conn.sent(now, n);
                    }
                }
                Sent::Failed(_) if slot.closing => {}
                Sent::Failed(errno) => {
                    if self.body == Body::SendZc && matches!(errno, libc::EOPNOTSUPP | libc::EINVAL)
                    {
                        tracing::warn!(
                            worker = self.id,
                            "SEND_ZC refused by the kernel; bodies use SEND"
                        );
                        self.body = Body::Send;
                    } else {
                        slot.conn.abort(now);
                    }
                }
            },
            POLL => slot.out.poll_inflight = false,
            SPLICE_IN => {
                slot.out.splice_inflight = false;
                if result > 0 {
                    if let Some(p) = slot.out.pipe.as_mut() {
                        p.held += result as usize;
                    }
                } else if result < 0 && result != -libc::ECANCELED && !slot.closing {
                    let e = io::Error::from_raw_os_error(-result);
                    tracing::warn!(worker = self.id, error = %e, "splice from a boot file failed; bodies use SEND");
                    self.body = Body::Send;
                }
            }
            _ => {}
        }
        self.drive(index, now)
    }

    fn open(&mut self, stream: TcpStream, now: Instant) -> Result<(), Error> {
        let Ok(peer) = stream.peer_addr() else {
            return Ok(());
        };
        if self.live >= self.config.max_connections {
            use std::io::Write as _;
            let _ = (&stream).write(crate::proto::http::BUSY);
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            self.slots.len() - 1
        });
        self.gens[index] = self.gens[index].wrapping_add(1);
        self.published.refresh(&mut self.snapshot);
        self.slots[index] = Some(Slot {
            stream,
            peer,
            snapshot: Arc::clone(&self.snapshot),
            conn: Connection::new(now, self.config.settings),
            armed: Armed::default(),
            gen: self.gens[index],
            recv_armed: false,
            recv_paused: false,
            stash: Vec::new(),
            eof: false,
            out: Out::default(),
            closing: false,
            cancelled: false,
        });
        self.live += 1;
        self.drive(index, now)
    }

    /// Starts what the engine wants next: a send of its next bytes, a receive.
    fn drive(&mut self, index: usize, now: Instant) -> Result<(), Error> {
        let mut sqes: Vec<squeue::Entry> = Vec::with_capacity(3);
        let mut free = false;
        {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                return Ok(());
            };
            if !slot.closing {
                feed(slot, now);
            }
            let ctx = Context {
                snapshot: &slot.snapshot,
                date: self.date.text(),
                boot: self.boot.as_deref(),
                peer: Some(slot.peer.ip()),
            };
            if !slot.closing && !slot.out.send_inflight && !slot.out.splice_inflight {
                if let Some(t) = slot.conn.poll_transmit(now, &ctx) {
                    let fd = types::Fd(slot.stream.as_raw_fd());
                    let data = |kind| user_data(kind, index, slot.gen);
                    match start_send(&mut slot.out, fd, data, &t, self.body, &slot.snapshot) {
                        Some(ops) => sqes.extend(ops),
                        // Nothing to write (the engine finishes empty bodies itself).
                        None => slot.conn.sent(now, 0),
                    }
                }
            }
            if slot.closing {
            } else if !slot.recv_armed {
                // (An EOF waiting behind the stash keeps it non-empty.)
                if slot.stash.is_empty() && slot.conn.wants_read() {
                    sqes.push(
                        opcode::RecvMulti::new(types::Fd(slot.stream.as_raw_fd()), BUFFER_GROUP)
                            .build()
                            .user_data(user_data(RECV, index, slot.gen)),
                    );
                    slot.recv_armed = true;
                }
            } else if slot.stash.len() > STASH && !slot.recv_paused {
                tracing::debug!(worker = self.id, peer = %slot.peer, stashed = slot.stash.len(), "receive paused until the engine catches up");
                slot.recv_paused = true;
                sqes.push(
                    opcode::AsyncCancel::new(user_data(RECV, index, slot.gen))
                        .build()
                        .user_data(user_data(CANCEL, index, slot.gen)),
                );
            }
            while let Some(ev) = slot.conn.poll_event() {
                match ev {
                    Event::Access(a) => crate::io::access::http(self.id, slot.peer, &a),
                    Event::HalfClose => {
                        let _ = slot.stream.shutdown(Shutdown::Write);
                    }
                    Event::Close => slot.closing = true,
                }
            }
            if slot.closing {
                if slot.idle() {
                    free = true;
                } else if !slot.cancelled && (slot.recv_armed || slot.out.send_inflight) {
                    slot.cancelled = true;
                    sqes.push(
                        opcode::AsyncCancel2::new(
                            types::CancelBuilder::fd(types::Fd(slot.stream.as_raw_fd())).all(),
                        )
                        .build()
                        .user_data(user_data(CANCEL, index, slot.gen)),
                    );
                }
            } else {
                self.timers
                    .arm(&mut slot.armed, index, slot.conn.poll_timeout());
            }
        }
        for sqe in &sqes {
            self.push(sqe)?;
        }
        if free {
            self.slots[index] = None;
            self.free.push(index);
            self.live -= 1;
        }
        Ok(())
    }

    fn fire_timers(&mut self, now: Instant) -> Result<(), Error> {
        while let Some((index, at)) = self.timers.pop_due(now) {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                continue;
            };
            slot.armed.fired(at);
            if slot.conn.poll_timeout().is_some_and(|t| t <= now) {
                slot.conn.handle_timeout(now);
            }
            self.drive(index, now)?;
        }
        Ok(())
    }
}

/// Copies the front of `bytes` into the engine while it has room; how many
/// bytes it took.
fn deliver(conn: &mut Connection, bytes: &[u8], now: Instant) -> usize {
    let mut taken = 0;
    while taken < bytes.len() && conn.wants_read() {
        let buf = conn.recv_buf();
        let n = buf.len().min(bytes.len() - taken);
        if n == 0 {
            break;
        }
        buf[..n].copy_from_slice(&bytes[taken..taken + n]);
        conn.handle_recv(now, n);
        taken += n;
    }
    taken
}

/// Moves stashed bytes into the engine while it has room, then tells it of an
/// EOF that arrived behind them.
fn feed(slot: &mut Slot, now: Instant) {
    if !slot.stash.is_empty() {
        let taken = deliver(&mut slot.conn, &slot.stash, now);
        slot.stash.drain(..taken);
    }
    if slot.eof && slot.stash.is_empty() {
        slot.eof = false;
        slot.conn.handle_eof(now);
    }
}

/// The operations that send what `t` names, marking the slot's sends in flight;
/// `None` when there is nothing to write.
fn start_send(
    slot: &mut Out,
    fd: types::Fd,
    data: impl Fn(u64) -> u64,
    t: &Transmit<'_>,
    body: Body,
    snapshot: &Snapshot,
) -> Option<Vec<squeue::Entry>> {
    let send_data = data(SEND);
    let file = t.file.filter(|f| f.len > 0);
    let large = file.filter(|f| f.len > INLINE_BODY);
    if !t.bytes.is_empty() || large.is_none() {
        // The head, with a small body behind it, from the slot's own copy. Before
        // a large body the head goes alone, with MSG_MORE so that it shares a
        // segment with the first body bytes.
        slot.tx.clear();
        slot.tx.extend_from_slice(t.bytes);
        let mut flags = libc::MSG_NOSIGNAL;
        match file {
            Some(f) if f.len <= INLINE_BODY => {
                let start = usize::try_from(f.offset).ok()?;
                slot.tx
                    .extend_from_slice(f.file.bytes().get(start..start + f.len as usize)?);
            }
            Some(_) => flags |= libc::MSG_MORE,
            None => {}
        }
        if slot.tx.is_empty() {
            return None;
        }
        slot.send_inflight = true;
        let op = opcode::Send::new(fd, slot.tx.as_ptr(), slot.tx.len() as u32)
            .flags(flags)
            .build()
            .user_data(send_data);
        return Some(vec![op]);
    }
    let f = large?;
    let offset = usize::try_from(f.offset).ok()?;
    let remaining = usize::try_from(f.len).unwrap_or(usize::MAX);
    if body == Body::Splice {
        if slot.pipe.is_none() {
            match Pipe::new() {
                Ok(p) => slot.pipe = Some(p),
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splice; this body is sent with SEND");
                }
            }
        }
        if let Some(p) = &slot.pipe {
            // io_uring runs every splice on a kernel worker thread; one that
            // blocks on a full socket holds its thread (1,000 threads for 1,000
            // slow readers, bench/backends). So the splice into the socket does
            // not block, and a poll for room is linked before it.
            let to_socket = |len: usize| {
                [
                    opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                        .build()
                        .flags(squeue::Flags::IO_LINK)
                        .user_data(data(POLL)),
                    opcode::Splice::new(types::Fd(p.read.as_raw_fd()), -1, fd, -1, len as u32)
                        .flags(libc::SPLICE_F_NONBLOCK)
                        .build()
                        .user_data(send_data),
                ]
            };
            slot.send_inflight = true;
            slot.poll_inflight = true;
            if p.held > 0 {
                // Bytes an earlier short splice left in the pipe come first; the
                // engine's offset already points past them.
                return Some(to_socket(p.held).to_vec());
            }
            let len = remaining.min(p.size);
            slot.splice_inflight = true;
            let fill = opcode::Splice::new(
                types::Fd(f.file.fd().as_raw_fd()),
                f.offset as i64,
                types::Fd(p.write.as_raw_fd()),
                -1,
                len as u32,
            )
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(data(SPLICE_IN));
            let [poll, out] = to_socket(len);
            return Some(vec![fill, poll, out]);
        }
    }
    let bytes = f.file.bytes().get(offset..)?;
    let len = remaining.min(SEND_CHUNK).min(bytes.len());
    slot.tx_file = snapshot.get(f.file.path()).cloned();
    slot.send_inflight = true;
    let op = if body == Body::SendZc {
        opcode::SendZc::new(fd, bytes.as_ptr(), len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    } else {
        opcode::Send::new(fd, bytes.as_ptr(), len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    };
    Some(vec![op.user_data(send_data)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::FileRange;
    use std::io::Read;
    use std::time::SystemTime;

    /// A real ring and a loopback TCP pair: the send `start_send` builds for
    /// `body`, completed by the kernel, booked by `Out::completed`; returns the
    /// file's strong count after each completion and the bytes the peer read.
    fn send_through_the_kernel(body: Body) -> (Vec<(Sent, usize)>, Vec<u8>, Vec<u8>) {
        let content: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        let options = crate::store::Options {
            max_bytes: 1 << 30,
            mlock: false,
        };
        let snapshot =
            Snapshot::from_memory([("/f", &content[..], SystemTime::UNIX_EPOCH)], &options)
                .unwrap();
        let file = Arc::clone(snapshot.get("/f").unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0; 256 << 10];
            client.read_exact(&mut got).unwrap();
            got
        });
        let mut ring = Ring::new(0, 8).unwrap();
        let mut out = Out::default();
        let t = Transmit {
            bytes: &[],
            file: Some(FileRange {
                file: &file,
                offset: 4096,
                len: 256 << 10,
            }),
        };
        let fd = types::Fd(server.as_raw_fd());
        let ops = start_send(&mut out, fd, |k| user_data(k, 0, 1), &t, body, &snapshot).unwrap();
        for op in &ops {
            // SAFETY: `out` (and the file it holds), `server` and the pipe live
            // until the loop below has reaped every completion.
            unsafe { ring.push(op) }.unwrap();
        }
        let mut seen = Vec::new();
        let mut done = Vec::new();
        let mut sent = 0;
        while sent < 256 << 10 || out.zc_pending > 0 {
            ring.submit_and_wait(Some(Duration::from_secs(5)), &mut done)
                .unwrap();
            for &(data, result, flags) in &done {
                let (kind, _, _) = split(data);
                let outcome = if kind == SPLICE_IN {
                    out.splice_inflight = false;
                    out.pipe.as_mut().unwrap().held += result as usize;
                    continue;
                } else if kind == POLL {
                    out.poll_inflight = false;
                    continue;
                } else {
                    out.completed(result, flags)
                };
                if let Sent::Bytes(n) = outcome {
                    sent += n;
                }
                seen.push((outcome, Arc::strong_count(&file)));
            }
            if sent < 256 << 10
                && !out.send_inflight
                && !out.splice_inflight
                && !out.poll_inflight
                && seen.len() < 64
            {
                let t = Transmit {
                    bytes: &[],
                    file: Some(FileRange {
                        file: &file,
                        offset: 4096 + sent as u64,
                        len: (256 << 10) - sent as u64,
                    }),
                };
                for op in
                    start_send(&mut out, fd, |k| user_data(k, 0, 1), &t, body, &snapshot).unwrap()
                {
                    // SAFETY: as above.
                    unsafe { ring.push(&op) }.unwrap();
                }
            }
        }
        (
            seen,
            reader.join().unwrap(),
            content[4096..4096 + (256 << 10)].to_vec(),
        )
    }

    #[test]
    fn a_zero_copy_send_holds_its_file_until_the_kernel_lets_go() {
        let (seen, got, want) = send_through_the_kernel(Body::SendZc);
        assert_eq!(got, want);
        // The snapshot and the test hold the file; so does the send until its
        // notification (its completion says one is coming), and nothing after.
        let (first, count) = &seen[0];
        assert!(matches!(first, Sent::Bytes(_)), "{seen:?}");
        assert_eq!(*count, 3, "held after the send completed: {seen:?}");
        assert_eq!(seen.last().unwrap(), &(Sent::Notified, 2), "{seen:?}");
    }

    #[test]
    fn a_splice_body_moves_through_the_pipe_intact() {
        let (seen, got, want) = send_through_the_kernel(Body::Splice);
        assert_eq!(got, want);
        assert!(
            seen.iter().all(|(s, _)| matches!(s, Sent::Bytes(_))),
            "{seen:?}"
        );
    }
}
