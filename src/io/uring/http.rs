//! The io_uring HTTP worker: the same [`Connection`] engine as the mio worker,
//! driven by completions instead of readiness, on the worker's [`Driver`]. A
//! multishot accept on the listener; per connection at most one receive and
//! one send in flight (two unlinked sends on one TCP socket may reorder its
//! bytes, measured on this kernel).
//!
//! A connection's receive is multishot and lands in the ring's provided
//! buffers (never the engine's, which the engine may compact while a receive
//! is armed); on completion the bytes are copied into the engine, or into the
//! connection's stash while the engine has no room, and the buffer goes
//! straight back to the kernel. An idle connection so holds no receive buffer
//! and needs no new receive per request. A stash that grows past [`STASH`] (a
//! client sending faster than its answers drain) cancels the receive until it
//! empties: the peer then waits on TCP's window. Sending is send.rs.
//!
//! What the kernel holds belongs to the ops (driver.rs): a closed connection's
//! slot is freed at once, its operations are cancelled, and its socket closes
//! with the last of them; their late completions carry the slot's old
//! generation and are ignored.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Completion, Driver, OpId};
use super::op::{Accept, Op, Recv, Shared};
use super::ring::Ring;
use crate::config::{self, Body};
use crate::io::clock::{self, DateCache};
use crate::io::Error;
use crate::proto::http::{Connection, Context, Event};
use crate::proto::timers::{Armed, Timers};
use crate::store::{Published, Snapshot};

mod send;
#[cfg(test)]
mod tests;

use send::{Leg, Out, Sent};

/// Provided receive buffers per worker, and the size of each: a boot client's
/// request fits one; a longer one spans several.
const BUFFERS: u16 = 1024;
const BUFFER: u32 = 2 << 10;
/// Received bytes a slot holds for its engine before its receive is paused.
const STASH: usize = 64 << 10;

/// A connection's slot and its generation, as its operations are tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    index: usize,
    gen: u32,
}

/// What an operation is for.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Accept,
    Recv(Conn),
    Send(Conn, Leg),
}

struct Slot {
    stream: Rc<TcpStream>,
    peer: SocketAddr,
    /// The snapshot the connection started on.
    snapshot: Arc<Snapshot>,
    conn: Connection,
    armed: Armed,
    gen: u32,
    /// The multishot receive, while armed (until a completion without MORE).
    recv: Option<OpId>,
    /// A cancel of the receive is on its way (the stash is over [`STASH`]).
    recv_paused: bool,
    /// Bytes received that the engine had no room for yet.
    stash: Vec<u8>,
    /// The peer's EOF arrived behind the stash: the engine hears of it once
    /// the stash is empty.
    eof: bool,
    out: Out,
}

/// One io_uring HTTP worker.
pub struct Worker {
    id: usize,
    driver: Driver<Tag>,
    listener: Shared,
    /// The listener's port, for pages whose client's `Host` leaves it out.
    port: u16,
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
    config: config::Http,
    /// Whether responses get access log lines (records are kept for the
    /// fleet view too).
    log_access: bool,
    body: Body,
    date: DateCache,
    done: Vec<Completion<Tag>>,
    active_at: Instant,
    /// Every worker's counters (this one writes only its own).
    metrics: Arc<crate::metrics::Metrics>,
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
        listener: TcpListener,
        published: Arc<Published>,
        config: config::Http,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, Error> {
        let mut ring = Ring::new(id, 1024)?;
        ring.provide(BUFFERS, BUFFER)?;
        let log_access = config.settings.access_log;
        let mut config = config;
        config.settings.access_log |= metrics.fleet().on();
        Ok(Self {
            id,
            driver: Driver::new(ring),
            port: listener.local_addr().map_or(0, |a| a.port()),
            listener: Rc::new(listener),
            accept_armed: false,
            accept_after: None,
            slots: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            live: 0,
            timers: Timers::default(),
            snapshot: published.current(),
            published,
            body: config.body,
            log_access,
            config,
            date: DateCache::default(),
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
            if self.accept_after.is_some_and(|t| t <= clock::now()) {
                self.accept_after = None;
            }
            if !self.accept_armed && self.accept_after.is_none() {
                let op = Op::Accept(Accept::multishot(Rc::clone(&self.listener)));
                self.driver.submit(Tag::Accept, op)?;
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
            self.driver.turn(wait, &mut done)?;
            let now = clock::now();
            if !done.is_empty() {
                self.date.refresh();
            }
            // As the mio worker: only received data (or a new connection)
            // starts a spin, not a send's completion.
            if done
                .iter()
                .any(|c| matches!(c.tag, Tag::Recv(_) | Tag::Accept) && c.result > 0)
            {
                self.active_at = now;
            }
            for c in done.drain(..) {
                self.complete(c, now)?;
            }
            self.done = done;
            self.fire_timers(now)?;
        }
    }

    fn complete(&mut self, c: Completion<Tag>, now: Instant) -> Result<(), Error> {
        let conn = match c.tag {
            Tag::Accept => return self.accepted(&c, now),
            Tag::Recv(conn) | Tag::Send(conn, _) => conn,
        };
        let bid = c.buffer();
        let Some(Some(slot)) = self
            .slots
            .get_mut(conn.index)
            .filter(|s| s.as_ref().is_some_and(|s| s.gen == conn.gen))
        else {
            // A closed connection's late completion.
            if let Some(b) = bid {
                self.driver.buffers().give_back(b);
            }
            return Ok(());
        };
        match c.tag {
            Tag::Recv(_) => {
                if c.op.is_some() {
                    slot.recv = None;
                    slot.recv_paused = false;
                }
                if c.result > 0 {
                    let ring = self.driver.buffers();
                    // SAFETY: the bid is this completion's, not yet given back.
                    match bid.and_then(|b| unsafe { ring.filled(b, c.result as usize) }) {
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
                        ring.give_back(b);
                    }
                } else if c.result == 0 {
                    if slot.stash.is_empty() {
                        slot.conn.handle_eof(now);
                    } else {
                        slot.eof = true;
                    }
                } else if !matches!(-c.result, libc::ECANCELED | libc::ENOBUFS) {
                    // ENOBUFS: every buffer was taken in one batch; they are all
                    // back by now, and `drive` arms the receive again.
                    slot.conn.abort(now);
                }
            }
            Tag::Send(_, leg) => {
                let sent = slot.out.completed(leg, c.result, c.is_notification());
                if let Some(Op::Send(s)) = c.op {
                    // The head's buffer comes back for the next head.
                    let tx = s.into_bytes();
                    if tx.capacity() > slot.out.tx.capacity() {
                        slot.out.tx = tx;
                    }
                }
                match sent {
                    Sent::Notified | Sent::Retry => {}
                    Sent::Bytes(n) => slot.conn.sent(now, n),
                    Sent::Failed(errno) if leg == Leg::SpliceIn => {
                        let e = io::Error::from_raw_os_error(errno);
                        tracing::warn!(worker = self.id, error = %e, "splice from a boot file failed; bodies use SEND");
                        self.body = Body::Send;
                    }
                    Sent::Failed(errno) => {
                        if self.body == Body::SendZc
                            && matches!(errno, libc::EOPNOTSUPP | libc::EINVAL)
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
                }
            }
            Tag::Accept => {}
        }
        self.drive(conn.index, now)
    }

    fn accepted(&mut self, c: &Completion<Tag>, now: Instant) -> Result<(), Error> {
        if c.op.is_some() {
            self.accept_armed = false;
        }
        if c.result == -libc::ECONNABORTED {
            // A client that reset before it was accepted: the next one waits.
        } else if c.result >= 0 {
            // SAFETY: a completed accept hands over a new, owned descriptor.
            let stream = unsafe { TcpStream::from_raw_fd(c.result) };
            self.open(stream, now)?;
        } else if !self.accept_armed && self.accept_after.is_none() {
            let e = io::Error::from_raw_os_error(-c.result);
            tracing::warn!(worker = self.id, error = %e, "accept failed; clients wait in the queue");
            self.accept_after = Some(now + Duration::from_millis(100));
        }
        Ok(())
    }

    fn open(&mut self, stream: TcpStream, now: Instant) -> Result<(), Error> {
        let Ok(peer) = stream.peer_addr() else {
            return Ok(());
        };
        if self.live >= self.config.max_connections && !self.evict(now)? {
            use std::io::Write as _;
            let _ = (&stream).write(crate::proto::http::BUSY);
            self.metrics.http(self.id).refused();
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
            stream: Rc::new(stream),
            peer,
            snapshot: Arc::clone(&self.snapshot),
            conn: Connection::new(now, self.config.settings),
            armed: Armed::default(),
            gen: self.gens[index],
            recv: None,
            recv_paused: false,
            stash: Vec::new(),
            eof: false,
            out: Out::default(),
        });
        self.live += 1;
        self.metrics.http(self.id).connections(1);
        self.drive(index, now)
    }

    /// At the connection limit: closes the idle or half-read connection
    /// nearest its timeout, if there is one.
    fn evict(&mut self, now: Instant) -> Result<bool, Error> {
        let victim = Connection::first_to_evict(
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, &s.as_ref()?.conn))),
        );
        let Some(index) = victim else {
            return Ok(false);
        };
        if let Some(Some(slot)) = self.slots.get_mut(index) {
            slot.conn.abort(now);
        }
        self.drive(index, now)?;
        self.metrics.http(self.id).evicted();
        Ok(true)
    }

    /// Starts what the engine wants next: a send of its next bytes, a receive;
    /// or closes the connection.
    fn drive(&mut self, index: usize, now: Instant) -> Result<(), Error> {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Ok(());
        };
        let conn = Conn {
            index,
            gen: slot.gen,
        };
        feed(slot, now);
        self.published
            .follow(&mut self.snapshot, &mut slot.snapshot);
        let ctx = Context {
            snapshot: &slot.snapshot,
            date: self.date.text(),
            boot: slot.snapshot.profiles(),
            peer: Some(slot.peer.ip()),
            unix_secs: self.date.secs(),
            tls: false,
            port: self.port,
        };
        let mut closing = false;
        if !slot.out.send_inflight && !slot.out.splice_inflight {
            if let Some(t) = slot.conn.poll_transmit(now, &ctx) {
                let socket: Shared = slot.stream.clone();
                match slot.out.start(&socket, &t, self.body) {
                    Some(ops) if ops.len() == 1 => {
                        for (leg, op) in ops {
                            self.driver.submit(Tag::Send(conn, leg), op)?;
                        }
                    }
                    Some(ops) => {
                        let chain = ops
                            .into_iter()
                            .map(|(leg, op)| (Tag::Send(conn, leg), op))
                            .collect();
                        self.driver.submit_linked(chain)?;
                    }
                    // Nothing to write (the engine finishes empty bodies itself).
                    None => slot.conn.sent(now, 0),
                }
            }
        }
        if slot.recv.is_none() {
            // (An EOF waiting behind the stash keeps it non-empty.)
            if slot.stash.is_empty() && slot.conn.wants_read() {
                let op = Op::Recv(Recv::multishot(slot.stream.clone()));
                slot.recv = Some(self.driver.submit(Tag::Recv(conn), op)?);
            }
        } else if slot.stash.len() > STASH && !slot.recv_paused {
            tracing::debug!(worker = self.id, peer = %slot.peer, stashed = slot.stash.len(), "receive paused until the engine catches up");
            slot.recv_paused = true;
            if let Some(id) = slot.recv {
                self.driver.cancel(id)?;
            }
        }
        while let Some(ev) = slot.conn.poll_event() {
            match ev {
                Event::Served(s) => self.metrics.http(self.id).served(&s),
                Event::Access(a) => crate::io::access::http_done(
                    self.id,
                    slot.peer,
                    &a,
                    self.log_access,
                    self.metrics.fleet(),
                ),
                Event::Begun(target) => {
                    crate::io::access::http_begun(slot.peer, &target, self.metrics.fleet())
                }
                Event::HalfClose => {
                    let _ = slot.stream.shutdown(Shutdown::Write);
                }
                Event::Close => closing = true,
            }
        }
        if !closing {
            self.timers
                .arm(&mut slot.armed, index, slot.conn.poll_timeout());
            return Ok(());
        }
        // Closed: what is in flight is cancelled, and the socket closes with
        // the last op that holds it.
        if slot.recv.is_some() || slot.out.busy() {
            self.driver.cancel_fd(slot.stream.as_raw_fd())?;
        }
        self.slots[index] = None;
        self.free.push(index);
        self.live -= 1;
        self.metrics.http(self.id).connections(-1);
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
