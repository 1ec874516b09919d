//! A worker's TFTP endpoint, sans-IO (in the manner of quinn-proto's
//! `Endpoint`): it owns the worker's transfers by client address, the limits
//! per client and per worker, the admission of requests and their refusals,
//! the TID check, single-port routing, the timer table, and the record of a
//! finished transfer. A backend keeps only sockets, buffers and the send path.
//!
//! Call order, as for every engine here: one of `handle` (a datagram on the
//! request port), `open` (the socket a [`Handled::Admit`] asked for),
//! `handle_transfer` (a datagram on a transfer's own socket) or
//! `handle_timeout`; then `poll_transmit` until `None`; then `poll_event`
//! until `None` (each [`Ended`] transfer's resources go back with
//! [`Endpoint::release`] once the backend has no operation on them); then
//! `poll_timeout` for the next wake-up.
//!
//! A request is parsed once ([`Request::parse`]) and granted once the
//! transfer's socket says what path MTU its blocks must fit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Error, Event, Failure, Request, Settings, Transfer, Transmit, Where};
use crate::proto::timers::{Armed, Timers};
use crate::store::{Published, Snapshot};
use crate::wire::{self, tftp};

/// Requests longer than this are refused (RFC 2347 keeps them under 512).
pub const MAX_REQUEST: usize = 2048;

/// A transfer whose client has sent nothing for this long may be ended to
/// admit a new request when the worker is full (the one silent longest
/// first): a flood of requests that never acknowledge ends its own oldest
/// members, while transfers that acknowledge (firmware does within
/// milliseconds) are heard from too recently to be chosen. A flood starves
/// new requests only past `max_transfers` per this period, 40,000 requests
/// a second per worker at the default limit.
pub const EVICT_SILENT: Duration = Duration::from_millis(250);

/// What bounds a worker's transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live transfers per worker; more are refused with an ERROR.
    pub max_transfers: usize,
    /// Live transfers per client address.
    pub max_per_client: u32,
    /// Every transfer is answered from the request port (no socket of its own).
    pub single_port: bool,
}

/// A transfer's handle: an index the backend may use for its own slots. It is
/// reused only after [`Endpoint::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub usize);

/// A datagram received on the request port.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The address it was sent to (the transfer answers from it).
    pub local: IpAddr,
    /// The sender.
    pub peer: SocketAddr,
    /// Its bytes (as many as were read).
    pub bytes: &'a [u8],
    /// It was longer than the receive buffer.
    pub truncated: bool,
    /// The wall time (unix seconds), for pages rendered per machine.
    pub unix_secs: u64,
}

/// What became of a datagram on the request port.
#[derive(Debug)]
pub enum Handled {
    /// Handed to a live transfer (single-port mode); `Err`: the transfer
    /// dropped it (count `e.kind()`).
    Delivered(Id, Result<(), Error>),
    /// A request within the limits: open the transfer's socket from `local`
    /// (unless single-port), then call [`Endpoint::open`].
    Admit(Admit),
    /// Nothing to do; the reason, for a debug line.
    Ignored(&'static str),
}

/// An admitted request waiting for its socket.
#[derive(Debug)]
pub struct Admit {
    request: Request,
    /// The address the transfer answers from.
    pub local: IpAddr,
    /// The client.
    pub peer: SocketAddr,
}

/// Which socket a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The request port (refusals; every transfer in single-port mode).
    Request,
    /// Transfer `Id`'s own socket (single-port mode: the request port).
    Transfer(Id),
}

/// A datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// From which socket.
    pub port: Port,
    /// To whom.
    pub peer: SocketAddr,
    /// What: control bytes in the scratch buffer, or a window of the
    /// transfer's blocks (gathered from [`Endpoint::transfer`]'s payload).
    pub what: Transmit,
}

/// The record of a transfer that ended: what its access line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The transfer.
    pub id: Id,
    /// The client.
    pub peer: SocketAddr,
    /// URL-style path of the file.
    pub path: Box<str>,
    /// `done`, `size_probe`, `timeout`, `client_error` or `evicted` (its
    /// client silent while the worker was full).
    pub result: &'static str,
    /// Bytes delivered (0 unless done).
    pub bytes: u64,
    /// Granted block size.
    pub blksize: u16,
    /// Granted window size.
    pub windowsize: u16,
    /// Windows sent again.
    pub resent: u32,
    /// Blocks acknowledged, and blocks in the file.
    pub blocks: (u64, u64),
    /// From the request to the end.
    pub duration: Duration,
}

#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    transfer: Transfer,
    path: Box<str>,
    started: Instant,
    /// The last datagram from the client (or the request).
    heard: Instant,
    armed: Armed,
    /// Ended: no longer routed, timed or counted; waits for `release`.
    ended: bool,
}

/// An ERROR to send, encoded when polled.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    port: Port,
    peer: SocketAddr,
    code: u16,
    message: &'static str,
}

/// One worker's transfers.
#[derive(Debug)]
pub struct Endpoint {
    settings: Settings,
    limits: Limits,
    /// Where new requests look their files up: `snapshot` is the published
    /// one as of the last request (live transfers hold their own files).
    published: Arc<Published>,
    snapshot: Arc<Snapshot>,
    root: Option<Box<str>>,
    /// Per local address, the URL prefix its requests are served under.
    by_local: Vec<(IpAddr, Box<str>)>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_peer: HashMap<SocketAddr, Id>,
    per_ip: HashMap<IpAddr, u32>,
    timers: Timers,
    /// Transfers to poll for output, in the order they were touched.
    dirty: VecDeque<Id>,
    refusals: VecDeque<Refusal>,
    ended: VecDeque<Ended>,
}

impl Endpoint {
    /// An endpoint serving what `published` holds; `root` is the canonical root directory,
    /// so that an absolute name inside it is served (as dnsmasq does).
    pub fn new(
        settings: Settings,
        limits: Limits,
        published: Arc<Published>,
        root: Option<&str>,
    ) -> Self {
        Self {
            settings,
            limits,
            snapshot: published.current(),
            published,
            root: root.map(Into::into),
            by_local: Vec::new(),
            entries: Vec::new(),
            free: Vec::new(),
            by_peer: HashMap::new(),
            per_ip: HashMap::new(),
            timers: Timers::default(),
            dirty: VecDeque::new(),
            refusals: VecDeque::new(),
            ended: VecDeque::new(),
        }
    }

    /// Requests that reach `addr` are served under `prefix` (an interface's
    /// own root, mounted there).
    #[must_use]
    pub fn with_local_roots(mut self, roots: Vec<(IpAddr, Box<str>)>) -> Self {
        self.by_local = roots;
        self
    }

    /// Whether transfers are answered from the request port.
    pub fn single_port(&self) -> bool {
        self.limits.single_port
    }

    /// Live transfers (ended ones not counted).
    pub fn live(&self) -> usize {
        self.by_peer.len()
    }

    /// A datagram on the request port.
    ///
    /// # Errors
    /// A refused request (log it as refused); its ERROR reply, if any, is
    /// queued for [`Self::poll_transmit`].
    pub fn handle(&mut self, now: Instant, d: Datagram<'_>) -> Result<Handled, Error> {
        if let Some(&id) = self.by_peer.get(&d.peer) {
            if !self.limits.single_port {
                // Firmware repeats its RRQ while the first answer is in flight:
                // the live transfer's own timer resends; nothing new starts.
                return Ok(Handled::Ignored("repeated request for a live transfer"));
            }
            let result = self.deliver(now, id, d.bytes);
            return Ok(Handled::Delivered(id, result));
        }
        if let Ok(p) = tftp::Packet::new_checked(d.bytes) {
            if !matches!(p.opcode(), tftp::Opcode::Rrq | tftp::Opcode::Wrq) {
                return Ok(Handled::Ignored("stray packet on the request port"));
            }
        }
        // One atomic load, unless a new snapshot was published.
        self.published.refresh(&mut self.snapshot);
        if self.by_peer.len() >= self.limits.max_transfers {
            self.evict_silent(now);
        }
        self.admit(d)
            .map_err(|e| self.refuse(Port::Request, d.peer, e))
    }

    /// Ends the transfer whose client has been silent longest, if for at
    /// least [`EVICT_SILENT`]; its client is told the server is busy.
    fn evict_silent(&mut self, now: Instant) {
        let victim = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().filter(|e| !e.ended).map(|e| (e.heard, i)))
            .filter(|(heard, _)| now.saturating_duration_since(*heard) >= EVICT_SILENT)
            .min();
        let Some((_, index)) = victim else {
            return;
        };
        let id = Id(index);
        if let Some(peer) = self.live_entry(id).map(|e| e.peer) {
            let _ = self.refuse(
                Port::Transfer(id),
                peer,
                Error::Busy("server busy: transfer ended for a new request, retry"),
            );
            self.finish(now, id, "evicted");
        }
    }

    fn admit(&self, d: Datagram<'_>) -> Result<Handled, Error> {
        if d.truncated || d.bytes.len() > MAX_REQUEST {
            return Err(Error::Wire(wire::Error::Malformed(
                "request longer than 2048 bytes",
            )));
        }
        if self.by_peer.len() >= self.limits.max_transfers {
            return Err(Error::Busy("server busy: too many transfers, retry later"));
        }
        let from_peer = self.per_ip.get(&d.peer.ip()).copied().unwrap_or(0);
        if from_peer >= self.limits.max_per_client {
            return Err(Error::Busy(
                "too many transfers from this address, retry later",
            ));
        }
        let prefix = self
            .by_local
            .iter()
            .find(|(a, _)| *a == d.local)
            .map(|(_, p)| &**p);
        let at = Where {
            root: self.root.as_deref(),
            path_mtu: None,
            prefix,
            peer: Some(d.peer.ip()),
            unix_secs: d.unix_secs,
        };
        let request = Request::parse(d.bytes, &self.snapshot, &at, &self.settings)?;
        Ok(Handled::Admit(Admit {
            request,
            local: d.local,
            peer: d.peer,
        }))
    }

    /// Starts the transfer `admit` asked for, its socket opened with a path
    /// of `path_mtu` to the client (`Err`: no socket could be opened).
    ///
    /// # Errors
    /// The socket could not be opened: the client is told to retry.
    pub fn open(
        &mut self,
        now: Instant,
        admit: Admit,
        path_mtu: Result<Option<u32>, ()>,
    ) -> Result<Id, Error> {
        let Ok(path_mtu) = path_mtu else {
            let e = Error::Busy("server cannot open a socket, retry later");
            return Err(self.refuse(Port::Request, admit.peer, e));
        };
        let accepted = admit.request.grant(&self.settings, path_mtu);
        let path = accepted.path.clone();
        let transfer = Transfer::new(now, accepted, &self.settings);
        let index = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        let id = Id(index);
        self.entries[index] = Some(Entry {
            peer: admit.peer,
            transfer,
            path,
            started: now,
            heard: now,
            armed: Armed::default(),
            ended: false,
        });
        self.by_peer.insert(admit.peer, id);
        *self.per_ip.entry(admit.peer.ip()).or_default() += 1;
        self.dirty.push_back(id);
        Ok(id)
    }

    /// A datagram from `from` on transfer `id`'s own socket.
    ///
    /// # Errors
    /// The datagram was dropped (count `e.kind()`); one from another TID is
    /// answered with ERROR 5 (RFC 1350 §4) and the transfer goes on.
    pub fn handle_transfer(
        &mut self,
        now: Instant,
        id: Id,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let Some(peer) = self.live_entry(id).map(|e| e.peer) else {
            return Ok(());
        };
        if from != peer {
            return Err(self.refuse(Port::Transfer(id), from, Error::UnknownTid));
        }
        self.deliver(now, id, bytes)
    }

    fn deliver(&mut self, now: Instant, id: Id, bytes: &[u8]) -> Result<(), Error> {
        let Some(entry) = self.live_entry(id) else {
            return Ok(());
        };
        entry.heard = now;
        let result = entry.transfer.handle(now, bytes);
        self.dirty.push_back(id);
        result
    }

    /// Fires every transfer timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Let go of an old generation even when no request comes (transfers
        // in flight hold their own payload).
        self.published.refresh(&mut self.snapshot);
        while let Some((index, at)) = self.timers.pop_due(now) {
            let Some(Some(entry)) = self.entries.get_mut(index) else {
                continue;
            };
            entry.armed.fired(at);
            if entry.ended {
                continue;
            }
            entry.transfer.handle_timeout(now);
            self.dirty.push_back(Id(index));
        }
    }

    /// The next datagram to send; control bytes are written into `scratch`.
    /// Call until `None` after every `handle*` and `open`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, scratch: &mut [u8]) -> Option<Outgoing> {
        while let Some(r) = self.refusals.pop_front() {
            if let Ok(len) = tftp::write_error(scratch, r.code, r.message) {
                return Some(Outgoing {
                    port: r.port,
                    peer: r.peer,
                    what: Transmit::Control { len },
                });
            }
        }
        while let Some(&id) = self.dirty.front() {
            let Some(Some(entry)) = self.entries.get_mut(id.0) else {
                self.dirty.pop_front();
                continue;
            };
            if entry.ended {
                self.dirty.pop_front();
                continue;
            }
            if let Some(what) = entry.transfer.poll_transmit(now, scratch) {
                return Some(Outgoing {
                    port: Port::Transfer(id),
                    peer: entry.peer,
                    what,
                });
            }
            self.dirty.pop_front();
            match entry.transfer.poll_event() {
                Some(event) => self.end(now, id, event),
                None => self
                    .timers
                    .arm(&mut entry.armed, id.0, entry.transfer.poll_timeout()),
            }
        }
        None
    }

    /// A transfer that ended since the last call, with its record.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Ended> {
        self.ended.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Transfer `id` (ended ones too, until released): its payload for the
    /// blocks a [`Transmit::Window`] names.
    pub fn transfer(&self, id: Id) -> Option<&Transfer> {
        Some(&self.entries.get(id.0)?.as_ref()?.transfer)
    }

    /// Gives back an ended transfer's id, once the backend holds nothing of it.
    pub fn release(&mut self, id: Id) {
        if let Some(slot) = self.entries.get_mut(id.0) {
            if slot.as_ref().is_some_and(|e| e.ended) {
                *slot = None;
                self.free.push(id.0);
            }
        }
    }

    /// The path transfer `id` serves.
    pub fn path_of(&self, id: Id) -> Option<&str> {
        self.entries.get(id.0)?.as_ref().map(|e| &*e.path)
    }

    fn live_entry(&mut self, id: Id) -> Option<&mut Entry> {
        self.entries.get_mut(id.0)?.as_mut().filter(|e| !e.ended)
    }

    /// Queues the ERROR a refusal earns (if any) and hands the error back.
    fn refuse(&mut self, port: Port, peer: SocketAddr, e: Error) -> Error {
        if let Some((code, message)) = e.reply() {
            self.refusals.push_back(Refusal {
                port,
                peer,
                code,
                message,
            });
        }
        e
    }

    fn end(&mut self, now: Instant, id: Id, event: Event) {
        let result = match event {
            Event::Done { probe: false } => "done",
            Event::Done { probe: true } => "size_probe",
            Event::Failed(Failure::Timeout) => "timeout",
            Event::Failed(Failure::ClientError { .. }) => "client_error",
        };
        self.finish(now, id, result);
    }

    /// Ends transfer `id` with `result` and queues its record.
    fn finish(&mut self, now: Instant, id: Id, result: &'static str) {
        let Some(Some(entry)) = self.entries.get_mut(id.0) else {
            return;
        };
        entry.ended = true;
        let peer = entry.peer;
        let (blksize, windowsize) = entry.transfer.sizes();
        let bytes = if result == "done" {
            entry.transfer.payload().len() as u64
        } else {
            0
        };
        self.ended.push_back(Ended {
            id,
            peer,
            path: entry.path.clone(),
            result,
            bytes,
            blksize,
            windowsize,
            resent: entry.transfer.stats().resent,
            blocks: (entry.transfer.stats().acked, entry.transfer.blocks()),
            duration: now.saturating_duration_since(entry.started),
        });
        if self.by_peer.get(&peer) == Some(&id) {
            self.by_peer.remove(&peer);
        }
        if let Some(n) = self.per_ip.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
    }
}

#[cfg(test)]
mod tests;
