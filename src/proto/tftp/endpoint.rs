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

use super::{Error, Event, Failure, Request, Settings, Transfer, Transmit};
use crate::proto::timers::{Armed, Timers};
use crate::store::Snapshot;
use crate::wire::{self, tftp};

/// Requests longer than this are refused (RFC 2347 keeps them under 512).
pub const MAX_REQUEST: usize = 2048;

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
    /// `done`, `size_probe`, `timeout` or `client_error`.
    pub result: &'static str,
    /// Bytes delivered (0 unless done).
    pub bytes: u64,
    /// Granted block size.
    pub blksize: u16,
    /// Granted window size.
    pub windowsize: u16,
    /// Windows sent again.
    pub resent: u32,
    /// From the request to the end.
    pub duration: Duration,
}

#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    transfer: Transfer,
    path: Box<str>,
    started: Instant,
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
    snapshot: Arc<Snapshot>,
    root: Option<Box<str>>,
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
    /// An endpoint serving `snapshot`; `root` is the canonical root directory,
    /// so that an absolute name inside it is served (as dnsmasq does).
    pub fn new(
        settings: Settings,
        limits: Limits,
        snapshot: Arc<Snapshot>,
        root: Option<&str>,
    ) -> Self {
        Self {
            settings,
            limits,
            snapshot,
            root: root.map(Into::into),
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

    /// New requests are served from `snapshot`; live transfers keep the files
    /// they started with.
    pub fn publish(&mut self, snapshot: Arc<Snapshot>) {
        self.snapshot = snapshot;
    }

    /// Serves new requests from `published`'s snapshot if it moved on.
    pub fn refresh(&mut self, published: &crate::store::Published) {
        published.refresh(&mut self.snapshot);
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
        self.admit(d)
            .map_err(|e| self.refuse(Port::Request, d.peer, e))
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
        let request = Request::parse(d.bytes, &self.snapshot, self.root.as_deref())?;
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
        let result = entry.transfer.handle(now, bytes);
        self.dirty.push_back(id);
        result
    }

    /// Fires every transfer timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
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
        let Some(Some(entry)) = self.entries.get_mut(id.0) else {
            return;
        };
        entry.ended = true;
        let peer = entry.peer;
        let result = match event {
            Event::Done { probe: false } => "done",
            Event::Done { probe: true } => "size_probe",
            Event::Failed(Failure::Timeout) => "timeout",
            Event::Failed(Failure::ClientError { .. }) => "client_error",
        };
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
mod tests {
    use super::*;
    use crate::testutil;
    use std::time::SystemTime;

    const SEC: Duration = Duration::from_secs(1);

    fn endpoint(limits: Limits) -> Endpoint {
        let files = [("/ipxe.efi", &[7u8; 1000][..], SystemTime::UNIX_EPOCH)];
        let options = crate::store::Options {
            max_bytes: 1 << 20,
            mlock: false,
        };
        let snapshot = Arc::new(Snapshot::from_memory(files, &options).unwrap());
        Endpoint::new(Settings::default(), limits, snapshot, Some("/srv/tftp"))
    }

    fn limits(single_port: bool) -> Limits {
        Limits {
            max_transfers: 2,
            max_per_client: 1,
            single_port,
        }
    }

    fn rrq(name: &str) -> Vec<u8> {
        // RFC 1350 §5: opcode 1, file name, NUL, mode, NUL.
        [&[0, 1][..], name.as_bytes(), b"\0octet\0"].concat()
    }

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    fn datagram(bytes: &[u8], from: SocketAddr) -> Datagram<'_> {
        Datagram {
            local: IpAddr::from([10, 0, 0, 1]),
            peer: from,
            bytes,
            truncated: false,
        }
    }

    fn start(e: &mut Endpoint, now: Instant, from: SocketAddr) -> Id {
        let request = rrq("ipxe.efi");
        let Ok(Handled::Admit(a)) = e.handle(now, datagram(&request, from)) else {
            panic!("not admitted");
        };
        e.open(now, a, Ok(Some(1500))).unwrap()
    }

    /// Every datagram queued now: (port, peer, what, control bytes).
    fn drain(e: &mut Endpoint, now: Instant) -> Vec<(Port, SocketAddr, Transmit, Vec<u8>)> {
        let mut scratch = [0xa5u8; 600];
        let mut out = Vec::new();
        while let Some(o) = e.poll_transmit(now, &mut scratch) {
            let bytes = match o.what {
                Transmit::Control { len } => scratch[..len].to_vec(),
                Transmit::Window { .. } => Vec::new(),
            };
            out.push((o.port, o.peer, o.what, bytes));
        }
        out
    }

    #[test]
    fn a_request_becomes_a_transfer_that_ends_with_its_record() {
        let t0 = testutil::t0();
        let mut e = endpoint(limits(false));
        let client = peer(2, 1000);
        let id = start(&mut e, t0, client);
        let window = Transmit::Window {
            first: 1,
            count: 1,
            blksize: 512,
        };
        assert_eq!(
            drain(&mut e, t0),
            [(Port::Transfer(id), client, window, vec![])]
        );
        assert_eq!(e.poll_timeout(), Some(t0 + SEC));
        e.handle_transfer(t0, id, client, &[0, 4, 0, 1]).unwrap();
        assert_eq!(drain(&mut e, t0).len(), 1);
        e.handle_transfer(t0 + SEC / 2, id, client, &[0, 4, 0, 2])
            .unwrap();
        assert!(drain(&mut e, t0 + SEC / 2).is_empty());
        let ended = e.poll_event().unwrap();
        assert_eq!(
            (ended.id, &*ended.path, ended.result, ended.bytes),
            (id, "/ipxe.efi", "done", 1000)
        );
        assert_eq!(ended.duration, SEC / 2);
        assert_eq!(e.live(), 0);
        // The id is reused only once released.
        let other = start(&mut e, t0 + SEC, peer(3, 1000));
        assert_ne!(other, id);
        e.release(id);
        assert_eq!(start(&mut e, t0 + SEC, peer(4, 1000)), id);
    }

    #[test]
    fn limits_refuse_with_error_0_and_a_stranger_gets_error_5() {
        let t0 = testutil::t0();
        let mut e = endpoint(limits(false));
        let a = start(&mut e, t0, peer(2, 1000));
        let request = rrq("ipxe.efi");
        // A second transfer from the same address passes max_per_client.
        let refused = e.handle(t0, datagram(&request, peer(2, 1001)));
        assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
        start(&mut e, t0, peer(3, 1000));
        let refused = e.handle(t0, datagram(&request, peer(4, 1000)));
        assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
        let sent = drain(&mut e, t0);
        let errors: Vec<_> = sent
            .iter()
            .filter(|s| s.0 == Port::Request)
            .map(|s| (s.1, s.3[..4].to_vec()))
            .collect();
        assert_eq!(
            errors,
            [
                (peer(2, 1001), vec![0, 5, 0, 0]),
                (peer(4, 1000), vec![0, 5, 0, 0])
            ]
        );
        // A datagram from another port to transfer `a`'s socket.
        let e5 = e.handle_transfer(t0, a, peer(2, 999), &[0, 4, 0, 1]);
        assert_eq!(e5, Err(Error::UnknownTid));
        let sent = drain(&mut e, t0);
        assert_eq!(sent[0].0, Port::Transfer(a));
        assert_eq!(sent[0].1, peer(2, 999));
        assert_eq!(sent[0].3[..4], [0, 5, 0, 5]);
    }

    #[test]
    fn a_repeated_request_is_ignored_unless_single_port_routes_it() {
        let t0 = testutil::t0();
        let client = peer(2, 1000);
        let request = rrq("ipxe.efi");
        let mut e = endpoint(limits(false));
        start(&mut e, t0, client);
        assert!(matches!(
            e.handle(t0, datagram(&request, client)),
            Ok(Handled::Ignored(_))
        ));
        let mut e = endpoint(limits(true));
        let id = start(&mut e, t0, client);
        drain(&mut e, t0);
        for block in [1, 2] {
            let ack = [0, 4, 0, block];
            assert!(matches!(
                e.handle(t0, datagram(&ack, client)),
                Ok(Handled::Delivered(x, Ok(()))) if x == id
            ));
            drain(&mut e, t0);
        }
        assert_eq!(e.poll_event().map(|x| x.result), Some("done"));
    }

    #[test]
    fn bad_requests_are_refused_before_any_socket_and_strays_ignored() {
        let t0 = testutil::t0();
        let mut e = endpoint(limits(false));
        let from = peer(2, 1000);
        let r = e.handle(t0, datagram(&rrq("../etc/passwd"), from));
        assert!(matches!(r, Err(Error::AccessViolation(_))), "{r:?}");
        let r = e.handle(t0, datagram(&rrq("missing"), from));
        assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
        let long = Datagram {
            truncated: true,
            ..datagram(&[0, 1], from)
        };
        assert!(matches!(e.handle(t0, long), Err(Error::Wire(_))));
        assert!(matches!(
            e.handle(t0, datagram(&[0, 4, 0, 1], from)),
            Ok(Handled::Ignored(_))
        ));
        let codes: Vec<_> = drain(&mut e, t0).iter().map(|s| s.3[3]).collect();
        assert_eq!(codes, [2, 1, 4]);
        // An absolute name inside the root is the same file.
        let r = e.handle(t0, datagram(&rrq("/srv/tftp/ipxe.efi"), from));
        assert!(matches!(r, Ok(Handled::Admit(_))));
        // No socket: the client is told to retry.
        let Ok(Handled::Admit(a)) = e.handle(t0, datagram(&rrq("ipxe.efi"), from)) else {
            panic!()
        };
        assert!(matches!(e.open(t0, a, Err(())), Err(Error::Busy(_))));
        assert_eq!(drain(&mut e, t0)[0].3[..4], [0, 5, 0, 0]);
    }

    #[test]
    fn a_silent_client_times_out_on_the_endpoint_timer() {
        let t0 = testutil::t0();
        let mut e = endpoint(limits(false));
        let id = start(&mut e, t0, peer(2, 1000));
        drain(&mut e, t0);
        while let Some(now) = e.poll_timeout() {
            e.handle_timeout(now);
            drain(&mut e, now);
            if let Some(ended) = e.poll_event() {
                assert_eq!((ended.id, ended.result), (id, "timeout"));
                assert!(now > t0 + 20 * SEC);
                return;
            }
        }
        panic!("no timeout");
    }
}
