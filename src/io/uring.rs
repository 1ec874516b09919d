//! The io_uring HTTP worker (work in progress, selected with `--backend uring`):
//! the same [`Connection`] engine as the mio worker, driven by completions
//! instead of readiness. One ring per worker; a multishot accept on the
//! listener; per connection at most one receive and one send in flight (two
//! unlinked sends on one TCP socket may reorder its bytes, measured on this
//! kernel).
//!
//! Buffers the kernel holds: a receive lands in the slot's own buffer (never the
//! engine's, which the engine may compact while the receive is in flight) and is
//! copied into the engine on completion; a send reads the slot's copy of the
//! head (and of a small body), or the file's read-only mapping, which the slot
//! keeps alive with its own `Arc<BootFile>` until the send completes. A slot
//! whose connection closed is freed only when no operation of it is in flight;
//! until then its generation tells stale completions apart.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::clock::{self, DateCache};
use super::http::log_access;
use super::timers::{Armed, Timers};
use super::Error;
use crate::config;
use crate::proto::boot::Profiles;
use crate::proto::http::{Connection, Context, Event};
use crate::store::{BootFile, Snapshot};

/// Bodies up to this size are copied behind the head and sent with it.
const INLINE_BODY: u64 = 32 << 10;
/// Most bytes of one body send.
const SEND_CHUNK: usize = 4 << 20;
/// Receive buffer per connection.
const RX: usize = 16 << 10;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CANCEL: u64 = 3;

fn user_data(kind: u64, slot: usize, gen: u32) -> u64 {
    kind << 62 | u64::from(gen & 0x3fff_ffff) << 32 | slot as u64
}

fn split(data: u64) -> (u64, usize, u32) {
    (
        data >> 62,
        (data & 0xffff_ffff) as usize,
        ((data >> 32) & 0x3fff_ffff) as u32,
    )
}

struct Slot {
    stream: TcpStream,
    peer: SocketAddr,
    conn: Connection,
    armed: Armed,
    gen: u32,
    rx: Box<[u8]>,
    recv_inflight: bool,
    tx: Vec<u8>,
    /// The file a body send reads from, kept alive until it completes.
    tx_file: Option<Arc<BootFile>>,
    send_inflight: bool,
    closing: bool,
    cancelled: bool,
}

/// One io_uring HTTP worker.
pub struct Worker {
    id: usize,
    ring: IoUring,
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
    snapshot: Arc<Snapshot>,
    boot: Option<Arc<Profiles>>,
    config: config::Http,
    date: DateCache,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("uring::Worker")
            .field("id", &self.id)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker serving `snapshot` on `listener`.
    ///
    /// # Errors
    /// The ring cannot be set up (io_uring disabled, denied or too old).
    pub fn new(
        id: usize,
        listener: std::net::TcpListener,
        snapshot: Arc<Snapshot>,
        config: config::Http,
        boot: Option<Arc<Profiles>>,
    ) -> Result<Self, Error> {
        let ring = IoUring::new(1024).map_err(|source| Error::Poll {
            worker: id,
            op: "io_uring_setup",
            source,
        })?;
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
            snapshot,
            boot,
            config,
            date: DateCache::default(),
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
            let wait = match (self.timers.next(), self.accept_after) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|at| {
                at.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            });
            self.submit_and_wait(wait)?;
            let now = clock::now();
            self.date.refresh();
            let done: Vec<(u64, i32, u32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect();
            for (data, result, flags) in done {
                self.complete(data, result, flags, now)?;
            }
            self.fire_timers(now)?;
        }
    }

    fn submit_and_wait(&mut self, wait: Option<Duration>) -> Result<(), Error> {
        let result = match wait {
            Some(d) => {
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(Error::Poll {
                worker: self.id,
                op: "io_uring_enter",
                source,
            }),
        }
    }

    fn push(&mut self, sqe: &squeue::Entry) -> Result<(), Error> {
        loop {
            // SAFETY: every buffer an entry names lives in a slot (or the
            // snapshot's mapping held by the slot's Arc) until its completion
            // is reaped; slots with operations in flight are never freed.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring.submit().map_err(|source| Error::Poll {
                worker: self.id,
                op: "io_uring_enter",
                source,
            })?;
        }
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32, now: Instant) -> Result<(), Error> {
        let (kind, index, gen) = split(data);
        if kind == ACCEPT {
            if !io_uring::cqueue::more(flags) {
                self.accept_armed = false;
            }
            if result >= 0 {
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
        if slot.gen != gen {
            return Ok(());
        }
        match kind {
            RECV => {
                slot.recv_inflight = false;
                if slot.closing {
                } else if result > 0 {
                    let n = result as usize;
                    let buf = slot.conn.recv_buf();
                    let n = n.min(buf.len());
                    buf[..n].copy_from_slice(&slot.rx[..n]);
                    slot.conn.handle_recv(now, n);
                } else if result == 0 {
                    slot.conn.handle_eof(now);
                } else if result != -libc::ECANCELED {
                    slot.conn.abort(now);
                }
            }
            SEND => {
                slot.send_inflight = false;
                slot.tx_file = None;
                if slot.closing {
                } else if result >= 0 {
                    slot.conn.sent(now, result as usize);
                } else if result != -libc::EAGAIN {
                    slot.conn.abort(now);
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
            let _ = (&stream).write(super::http::BUSY);
            return Ok(());
        }
        let _ = stream.set_nodelay(true);
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            self.slots.len() - 1
        });
        self.gens[index] = self.gens[index].wrapping_add(1);
        self.slots[index] = Some(Slot {
            stream,
            peer,
            conn: Connection::new(now, self.config.settings),
            armed: Armed::default(),
            gen: self.gens[index],
            rx: vec![0; RX].into_boxed_slice(),
            recv_inflight: false,
            tx: Vec::with_capacity(512),
            tx_file: None,
            send_inflight: false,
            closing: false,
            cancelled: false,
        });
        self.live += 1;
        self.drive(index, now)
    }

    /// Starts what the engine wants next: a send of its next bytes, a receive.
    fn drive(&mut self, index: usize, now: Instant) -> Result<(), Error> {
        let mut sqes: Vec<squeue::Entry> = Vec::with_capacity(2);
        let mut free = false;
        {
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                return Ok(());
            };
            let ctx = Context {
                snapshot: &self.snapshot,
                date: self.date.text(),
                boot: self.boot.as_deref(),
                peer: Some(slot.peer.ip()),
            };
            if !slot.closing && !slot.send_inflight {
                if let Some(t) = slot.conn.poll_transmit(now, &ctx) {
                    slot.tx.clear();
                    slot.tx.extend_from_slice(t.bytes);
                    let (ptr, len) = match t.file.filter(|f| f.len > 0) {
                        Some(f) if f.len <= INLINE_BODY || !slot.tx.is_empty() => {
                            if f.len <= INLINE_BODY {
                                let start = f.offset as usize;
                                slot.tx.extend_from_slice(
                                    &f.file.bytes()[start..start + f.len as usize],
                                );
                            }
                            (slot.tx.as_ptr(), slot.tx.len())
                        }
                        Some(f) => {
                            let start = f.offset as usize;
                            let len = (f.len as usize).min(SEND_CHUNK);
                            let ptr = f.file.bytes()[start..].as_ptr();
                            slot.tx_file = self.snapshot.get(f.file.path()).cloned();
                            (ptr, len)
                        }
                        None => (slot.tx.as_ptr(), slot.tx.len()),
                    };
                    if len == 0 {
                        // Nothing to write (the engine finishes empty bodies itself).
                        slot.conn.sent(now, 0);
                    } else {
                        sqes.push(
                            opcode::Send::new(types::Fd(slot.stream.as_raw_fd()), ptr, len as u32)
                                .flags(libc::MSG_NOSIGNAL)
                                .build()
                                .user_data(user_data(SEND, index, slot.gen)),
                        );
                        slot.send_inflight = true;
                    }
                }
            }
            if !slot.closing && !slot.recv_inflight && slot.conn.wants_read() {
                let room = slot.conn.recv_buf().len().min(slot.rx.len());
                if room > 0 {
                    sqes.push(
                        opcode::Recv::new(
                            types::Fd(slot.stream.as_raw_fd()),
                            slot.rx.as_mut_ptr(),
                            room as u32,
                        )
                        .build()
                        .user_data(user_data(RECV, index, slot.gen)),
                    );
                    slot.recv_inflight = true;
                }
            }
            while let Some(ev) = slot.conn.poll_event() {
                match ev {
                    Event::Access(a) => log_access(self.id, slot.peer, &a),
                    Event::HalfClose => {
                        let _ = slot.stream.shutdown(Shutdown::Write);
                    }
                    Event::Close => slot.closing = true,
                }
            }
            if slot.closing {
                if !slot.recv_inflight && !slot.send_inflight {
                    free = true;
                } else if !slot.cancelled {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_kind_slot_and_generation() {
        for (kind, slot, gen) in [
            (ACCEPT, 0, 0),
            (RECV, 7, 1),
            (SEND, u32::MAX as usize, 0x3fff_ffff),
            (CANCEL, 12, 5),
        ] {
            assert_eq!(split(user_data(kind, slot, gen)), (kind, slot, gen));
        }
        // Generations wrap within their 30 bits.
        assert_eq!(split(user_data(RECV, 3, 0x4000_0001)).2, 1);
    }
}
