//! The mio (epoll) HTTP worker: one per core, with its own SO_REUSEPORT listener,
//! its own connections and its own timers; nothing mutable is shared with other
//! workers. Each turn (io/turn.rs: wait, busy-polling after activity, read the
//! clock once): drive every ready connection's engine (write what it names, read
//! what it can take, act on its events), then fire due timers.
//!
//! Fairness: a connection is driven for at most [`TURN_BUDGET`] bytes per turn,
//! then parked on a ready list for the next turn, so that one fast reader on
//! loopback cannot hold the worker while slower connections wait.

mod tls;

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};

use super::clock::DateCache;
use super::sendfile::sendfile;
use super::turn::Turn;
use super::{access, Error};
use crate::config;
use crate::proto::http::{Connection, Context, Event, Transmit};
use crate::proto::timers::{Armed, Timers};
use crate::store::{Published, Snapshot};

/// Bytes one connection may move per turn before others get theirs.
pub const TURN_BUDGET: usize = 4 << 20;
/// Bodies up to this size go out in one writev with the head (copied by the kernel
/// from the mapping); larger ones use sendfile after the head.
const INLINE_BODY: u64 = 32 << 10;
const LISTENER: Token = Token(usize::MAX);

struct Slot {
    stream: TcpStream,
    peer: SocketAddr,
    /// The snapshot the connection started on.
    snapshot: Arc<Snapshot>,
    conn: Connection,
    /// Deadline of this slot's live entry in the timer heap.
    armed: Armed,
    /// Edge-triggered readiness not yet used up (cleared by `WouldBlock`): a
    /// writable edge must not cost a read that can only say EAGAIN, and back.
    readable: bool,
    writable: bool,
    /// The TLS session, on the HTTPS worker.
    tls: Option<Box<tls::Session>>,
}

/// What an engine event leaves for the socket to do.
enum Then {
    Nothing,
    HalfClose,
    Close,
}

/// Gives worker `id`'s engine event to the metrics and the logs; what is
/// left is for the socket.
fn record(
    metrics: &crate::metrics::Metrics,
    id: usize,
    log_access: bool,
    peer: SocketAddr,
    ev: Event,
) -> Then {
    match ev {
        Event::Served(s) => metrics.http(id).served(&s),
        Event::Access(a) => access::http_done(id, peer, &a, log_access, metrics.fleet()),
        Event::Begun(target) => access::http_begun(peer, &target, metrics.fleet()),
        Event::HalfClose => return Then::HalfClose,
        Event::Close => return Then::Close,
    }
    Then::Nothing
}

/// One HTTP worker.
pub struct Worker {
    id: usize,
    poll: Poll,
    listener: TcpListener,
    /// The listener's port, for pages whose client's `Host` leaves it out.
    port: u16,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    timers: Timers,
    ready: Vec<usize>,
    /// What new connections are served from.
    published: Arc<Published>,
    snapshot: Arc<Snapshot>,
    config: config::Http,
    /// Whether responses get access log lines (records are kept for the
    /// fleet view too).
    log_access: bool,
    date: DateCache,
    accept_warned_at: Option<Instant>,
    /// After a failed accept (EMFILE, ENFILE, ENOBUFS): when to try again. The
    /// listener is edge-triggered, so connections left in the queue bring no
    /// new event; without a retry they would wait for the next client's SYN.
    accept_retry_at: Option<Instant>,
    /// Every worker's counters (this one writes only its own).
    metrics: Arc<crate::metrics::Metrics>,
    /// On the HTTPS worker: what each connection's TLS session starts from.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker serving what `published` holds on `listener`.
    ///
    /// # Errors
    /// The poller cannot be created or the listener registered.
    pub fn new(
        id: usize,
        listener: std::net::TcpListener,
        published: Arc<Published>,
        config: config::Http,
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
        let port = listener.local_addr().map_or(0, |a| a.port());
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(err("register listener"))?;
        let log_access = config.settings.access_log;
        let mut config = config;
        config.settings.access_log |= metrics.fleet().on();
        Ok(Self {
            id,
            poll,
            listener,
            port,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: Timers::default(),
            ready: Vec::new(),
            snapshot: published.current(),
            published,
            log_access,
            config,
            date: DateCache::default(),
            accept_warned_at: None,
            accept_retry_at: None,
            metrics,
            tls: None,
        })
    }

    /// This worker serving HTTPS: each connection a TLS session of `server`
    /// in front of the same HTTP engine.
    #[must_use]
    pub fn with_tls(mut self, server: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(server);
        self
    }

    /// Serves until the poller fails.
    ///
    /// # Errors
    /// Only a failure of the poller itself; connection errors end that connection.
    pub fn run(mut self) -> Result<(), Error> {
        let mut turn = Turn::new(self.id, self.config.busy_poll);
        loop {
            let deadline = self
                .timers
                .next()
                .into_iter()
                .chain(self.accept_retry_at)
                .min();
            let now = turn.wait(&mut self.poll, deadline, !self.ready.is_empty())?;
            if self.accept_retry_at.is_some_and(|t| t <= now) {
                self.accept_retry_at = None;
                self.accept(now);
            }
            self.date.refresh();
            for token in std::mem::take(&mut self.ready) {
                self.drive(token, now);
            }
            for ev in turn.events().iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    Token(i) => {
                        if let Some(Some(slot)) = self.slots.get_mut(i) {
                            slot.readable |=
                                ev.is_readable() || ev.is_read_closed() || ev.is_error();
                            slot.writable |=
                                ev.is_writable() || ev.is_write_closed() || ev.is_error();
                        }
                        self.drive(i, now);
                    }
                }
            }
            self.fire_timers(now);
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A client that reset before it was accepted: the next one waits.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the queue keeps the client until a
                    // descriptor frees; try again shortly rather than spin.
                    self.accept_retry_at = Some(now + Duration::from_millis(100));
                    if self
                        .accept_warned_at
                        .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(10))
                    {
                        tracing::warn!(worker = self.id, error = %e, "accept failed; clients wait in the queue");
                        self.accept_warned_at = Some(now);
                    }
                    return;
                }
            };
            if self.live >= self.config.max_connections && !self.evict(now) {
                let _ = (&stream).write(crate::proto::http::BUSY);
                self.metrics.http(self.id).refused();
                tracing::debug!(worker = self.id, %peer, "connection limit reached; refused with 503");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let token = self.free.pop().unwrap_or_else(|| {
                self.slots.push(None);
                self.slots.len() - 1
            });
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::debug!(worker = self.id, %peer, error = %e, "register failed; connection dropped");
                self.free.push(token);
                continue;
            }
            let tls = match &self.tls {
                Some(server) => match rustls::ServerConnection::new(Arc::clone(server)) {
                    Ok(c) => Some(Box::new(tls::Session::new(c))),
                    Err(e) => {
                        tracing::debug!(worker = self.id, %peer, error = %e, "tls session failed; connection dropped");
                        let _ = self.poll.registry().deregister(&mut stream);
                        self.free.push(token);
                        continue;
                    }
                },
                None => None,
            };
            self.published.refresh(&mut self.snapshot);
            self.slots[token] = Some(Slot {
                tls,
                stream,
                peer,
                snapshot: Arc::clone(&self.snapshot),
                conn: Connection::new(now, self.config.settings),
                armed: Armed::default(),
                readable: true,
                writable: true,
            });
            self.live += 1;
            self.metrics.http(self.id).connections(1);
            // A request may already be waiting (edge-triggered: no event would say so).
            self.drive(token, now);
        }
    }

    /// At the connection limit: closes the idle or half-read connection
    /// nearest its timeout, if there is one.
    fn evict(&mut self, now: Instant) -> bool {
        let victim = Connection::first_to_evict(
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, &s.as_ref()?.conn))),
        );
        let Some(token) = victim else {
            return false;
        };
        if let Some(Some(slot)) = self.slots.get_mut(token) {
            slot.conn.abort(now);
        }
        self.drive(token, now);
        self.metrics.http(self.id).evicted();
        true
    }

    /// Moves one connection as far as its socket and the turn budget allow.
    fn drive(&mut self, token: usize, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(token) else {
            return;
        };
        if slot.tls.is_some() {
            return self.drive_tls(token, now);
        }
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
        let mut budget = TURN_BUDGET;
        let mut closed = false;
        loop {
            let mut progress = false;
            while slot.writable {
                let Some(t) = slot.conn.poll_transmit(now, &ctx) else {
                    break;
                };
                match send(&slot.stream, &t) {
                    Ok((n, asked)) => {
                        // A short write means the socket buffer is full; epoll fires
                        // again when space frees, so no EAGAIN call is needed to learn it.
                        slot.writable = n == asked;
                        slot.conn.sent(now, n);
                        budget = budget.saturating_sub(n);
                        progress = true;
                        if budget == 0 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "send failed");
                        slot.conn.abort(now);
                        break;
                    }
                }
            }
            if slot.readable && slot.conn.wants_read() && budget > 0 {
                let buf = slot.conn.recv_buf();
                let room = buf.len();
                match (&slot.stream).read(buf) {
                    Ok(0) => {
                        slot.conn.handle_eof(now);
                        progress = true;
                    }
                    Ok(n) => {
                        // A short read drained the socket; new data brings a new event.
                        slot.readable = n == room;
                        slot.conn.handle_recv(now, n);
                        budget = budget.saturating_sub(n);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "receive failed");
                        slot.conn.abort(now);
                    }
                }
            }
            while let Some(ev) = slot.conn.poll_event() {
                match record(&self.metrics, self.id, self.log_access, slot.peer, ev) {
                    Then::Nothing => {}
                    Then::HalfClose => {
                        let _ = slot.stream.shutdown(Shutdown::Write);
                    }
                    Then::Close => closed = true,
                }
            }
            if closed || !progress {
                break;
            }
            if budget == 0 {
                self.ready.push(token);
                break;
            }
        }
        if closed {
            self.remove(token);
        } else {
            self.rearm(token);
        }
    }

    fn rearm(&mut self, token: usize) {
        if let Some(Some(slot)) = self.slots.get_mut(token) {
            self.timers
                .arm(&mut slot.armed, token, slot.conn.poll_timeout());
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((token, at)) = self.timers.pop_due(now) {
            let Some(Some(slot)) = self.slots.get_mut(token) else {
                continue;
            };
            slot.armed.fired(at);
            if slot.conn.poll_timeout().is_some_and(|t| t <= now) {
                slot.conn.handle_timeout(now);
                self.drive(token, now);
            } else {
                self.rearm(token);
            }
        }
    }

    fn remove(&mut self, token: usize) {
        if let Some(mut slot) = self.slots.get_mut(token).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut slot.stream);
            self.free.push(token);
            self.live -= 1;
            self.metrics.http(self.id).connections(-1);
        }
    }
}

/// Writes what `t` names: head and a small body in one writev; a large body by
/// sendfile after the head (sent with MSG_MORE so that it shares a segment with
/// the first body bytes). Returns (bytes written, bytes offered).
fn send(stream: &TcpStream, t: &Transmit<'_>) -> io::Result<(usize, usize)> {
    let Some(f) = t.file.filter(|f| f.len > 0) else {
        return Ok(((&*stream).write(t.bytes)?, t.bytes.len()));
    };
    if f.len <= INLINE_BODY {
        let body = f
            .bytes(usize::MAX)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let n = (&*stream).write_vectored(&[IoSlice::new(t.bytes), IoSlice::new(body)])?;
        return Ok((n, t.bytes.len() + body.len()));
    }
    if !t.bytes.is_empty() {
        let n = socket2::SockRef::from(stream).send_with_flags(t.bytes, libc::MSG_MORE)?;
        return Ok((n, t.bytes.len()));
    }
    let count = usize::try_from(f.len)
        .unwrap_or(usize::MAX)
        .min(TURN_BUDGET);
    Ok((
        sendfile(stream.as_fd(), f.file.fd(), f.offset, count)?,
        count,
    ))
}
