//! The DHCP worker on io_uring, on the worker's [`Driver`]: [`DEPTH`] RECVMSGs
//! in flight on :67 (and on :4011 in proxy mode, with IP_PKTINFO), each reply a
//! SENDMSG of a message the op owns (a datagram, or a frame on the link socket
//! to a client without an address), and the journal's fdatasync an FSYNC op on
//! a handle of its own: group commit (io/dhcp/commit.rs) without a second
//! thread. Conflict probes' and router solicitations' sockets are one-shot
//! polls, read by their owners (io/probe.rs, io/ra.rs) when ready.
//!
//! A reply is logged (the DHCP access log) when it is handed to the kernel; a
//! send the kernel then fails is logged as such.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use super::driver::{Completion, Driver};
use super::op::{Fsync, Op, Poll, RecvMsg, SendMsg, Shared};
use super::ring::Ring;
use crate::io::dhcp::{Pending, Route, Server, Start, BATCH, RX};
use crate::io::udp::{MsgIn, MsgOut};
use crate::io::{clock, link, Error};

/// Receives kept in flight per socket: a rack's burst of DISCOVERs completes
/// this many per io_uring_enter.
const DEPTH: usize = 16;
/// Message boxes kept for reuse.
const SPARE: usize = 256;

/// What an operation is for.
#[derive(Debug, Clone, Copy)]
enum Tag {
    /// A receive on a port's :67, :4011 or :547 (`sock` 0, 1, 2).
    Recv { port: usize, sock: usize },
    /// A reply on its way.
    Send(Pending),
    /// The journal's sync.
    Sync,
    /// The probe socket is readable.
    Probe,
    /// A port's router advertisement socket is readable.
    Ra(usize),
    /// The mailbox was written to.
    Mailbox,
}

/// The DHCP worker on io_uring.
pub struct Worker {
    server: Server,
    driver: Driver<Tag>,
    /// Each port's descriptors, as the server's ports.
    ports: Vec<PortFds>,
    probe: Option<Shared>,
    mailbox: Option<Shared>,
    mailbox_armed: bool,
    probe_armed: bool,
    #[allow(
        clippy::vec_box,
        reason = "each box is lent to a receive whose msghdr points into it"
    )]
    rx_spare: Vec<Box<MsgIn>>,
    #[allow(
        clippy::vec_box,
        reason = "each box is lent to a send whose msghdr points into it"
    )]
    tx_spare: Vec<Box<MsgOut>>,
    bufs: Vec<[u8; 1500]>,
    pending: Vec<Pending>,
    done: Vec<Completion<Tag>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("uring::dhcp::Worker")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// One port's descriptors, duplicated for the ring's ops.
struct PortFds {
    main: Shared,
    pxe: Option<Shared>,
    v6: Option<Shared>,
    link: Shared,
    ra: Option<Shared>,
    /// Receives in flight on :67, :4011 and :547.
    receiving: [usize; 3],
    ra_armed: bool,
}

/// A descriptor of the server's, duplicated for the ring's ops.
fn dup(fd: &impl AsRawFd) -> io::Result<Shared> {
    // SAFETY: the descriptor is open for the duration of the call (it is
    // borrowed), and the duplicate is a new one that we own.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    Ok(Rc::new(borrowed.try_clone_to_owned()?) as Rc<OwnedFd>)
}

impl Worker {
    /// A ring for `server`'s sockets.
    ///
    /// # Errors
    /// The ring cannot be set up, or the descriptors cannot be duplicated:
    /// the server comes back, for the epoll worker.
    pub fn new(server: Server) -> Result<Self, Box<(Error, Server)>> {
        let ring = match Ring::new(0, 512) {
            Ok(r) => r,
            Err(e) => return Err(Box::new((e, server))),
        };
        let fds = || -> io::Result<_> {
            let mut ports = Vec::new();
            for p in &server.ports {
                ports.push(PortFds {
                    main: Rc::new(p.main.try_clone()?) as Rc<UdpSocket>,
                    pxe: match &p.pxe {
                        Some(s) => Some(Rc::new(s.try_clone()?) as Shared),
                        None => None,
                    },
                    v6: match &p.v6 {
                        Some(s) => Some(Rc::new(s.try_clone()?) as Shared),
                        None => None,
                    },
                    link: Rc::new(p.link.try_clone_fd()?) as Rc<OwnedFd>,
                    ra: p.ra.as_ref().map(|a| dup(&a.raw_fd())).transpose()?,
                    receiving: [0; 3],
                    ra_armed: false,
                });
            }
            let probe = server.prober.as_ref().map(|p| dup(&p.fd())).transpose()?;
            let mailbox = server
                .mailbox
                .as_ref()
                .map(|m| dup(&m.as_raw_fd()))
                .transpose()?;
            Ok((ports, probe, mailbox))
        };
        let (ports, probe, mailbox) = match fds() {
            Ok(f) => f,
            Err(source) => {
                let e = Error::Poll {
                    worker: 0,
                    op: "dhcp: duplicate a socket for io_uring",
                    source,
                };
                return Err(Box::new((e, server)));
            }
        };
        Ok(Self {
            server,
            driver: Driver::new(ring),
            ports,
            probe,
            mailbox,
            mailbox_armed: false,
            probe_armed: false,
            rx_spare: Vec::new(),
            tx_spare: Vec::new(),
            bufs: vec![[0u8; 1500]; BATCH],
            pending: Vec::with_capacity(BATCH),
            done: Vec::with_capacity(256),
        })
    }

    /// Serves until the ring fails.
    ///
    /// # Errors
    /// Only a failure of the ring itself.
    pub fn run(mut self) -> Result<(), Error> {
        tracing::info!(backend = "io_uring", "dhcp worker serving");
        loop {
            self.arm()?;
            let now = clock::now();
            let wait = self
                .server
                .deadline()
                .map(|at| at.saturating_duration_since(now));
            let mut done = std::mem::take(&mut self.done);
            self.driver.turn(wait, &mut done)?;
            let now = clock::now();
            self.server.handle_timeout(now);
            for c in done.drain(..) {
                self.complete(c, now)?;
            }
            self.done = done;
            self.answer_batch()?;
            for (p, bytes) in &self.server.finish_probes(now) {
                self.send(p, bytes)?;
            }
            match self.server.start_sync() {
                Start::Idle => {}
                Start::Ready(acks) => {
                    for (p, bytes) in &acks {
                        self.send(p, bytes)?;
                    }
                    self.server.recycle(acks);
                }
                Start::Sync(file) => {
                    self.driver
                        .submit(Tag::Sync, Op::Fsync(Fsync::data(file)))?;
                }
            }
            self.server.report(now);
        }
    }

    /// Keeps the receives and the readiness polls in flight.
    fn arm(&mut self) -> Result<(), Error> {
        for (port, p) in self.ports.iter_mut().enumerate() {
            for sock in 0..3 {
                let socket = match sock {
                    0 => Some(&p.main),
                    1 => p.pxe.as_ref(),
                    _ => p.v6.as_ref(),
                };
                let Some(socket) = socket else {
                    continue;
                };
                while p.receiving[sock] < DEPTH {
                    let msg = self.rx_spare.pop().unwrap_or_else(|| MsgIn::new(RX));
                    let op = Op::RecvMsg(RecvMsg::new(socket.clone(), msg));
                    self.driver.submit(Tag::Recv { port, sock }, op)?;
                    p.receiving[sock] += 1;
                }
            }
            if let (false, Some(fd)) = (p.ra_armed, &p.ra) {
                self.driver
                    .submit(Tag::Ra(port), Op::Poll(Poll::readable(fd.clone())))?;
                p.ra_armed = true;
            }
        }
        if let (false, Some(fd)) = (self.probe_armed, &self.probe) {
            self.driver
                .submit(Tag::Probe, Op::Poll(Poll::readable(fd.clone())))?;
            self.probe_armed = true;
        }
        if let (false, Some(fd)) = (self.mailbox_armed, &self.mailbox) {
            self.driver
                .submit(Tag::Mailbox, Op::Poll(Poll::readable(fd.clone())))?;
            self.mailbox_armed = true;
        }
        Ok(())
    }

    fn complete(&mut self, c: Completion<Tag>, now: Instant) -> Result<(), Error> {
        match c.tag {
            Tag::Recv { port, sock } => {
                self.ports[port].receiving[sock] -= 1;
                let Some(Op::RecvMsg(r)) = c.op else {
                    return Ok(());
                };
                let msg = r.into_msg();
                if c.result < 0 {
                    let e = io::Error::from_raw_os_error(-c.result);
                    tracing::debug!(error = %e, "dhcp recv");
                } else if let Some((got, bytes)) = msg.received(c.result as usize) {
                    if self.pending.len() == BATCH {
                        self.answer_batch()?;
                    }
                    let out = &mut self.bufs[self.pending.len()];
                    let answered = match sock {
                        2 => self.server.answer6(now, port, &got, bytes, out),
                        _ => self.server.answer(now, port, &got, bytes, sock == 1, out),
                    };
                    if let Some(p) = answered {
                        self.pending.push(p);
                    }
                }
                self.rx_spare.push(msg);
            }
            Tag::Send(p) => {
                if c.result < 0 {
                    let e = io::Error::from_raw_os_error(-c.result);
                    self.server.log_sent(&p, Err(&e));
                }
                if let Some(Op::SendMsg(s)) = c.op {
                    if self.tx_spare.len() < SPARE {
                        self.tx_spare.push(s.into_msg());
                    }
                }
            }
            Tag::Sync => {
                let result = if c.result < 0 {
                    Err(io::Error::from_raw_os_error(-c.result))
                } else {
                    Ok(())
                };
                let acks = self.server.synced(result);
                for (p, bytes) in &acks {
                    self.send(p, bytes)?;
                }
                self.server.recycle(acks);
            }
            Tag::Probe => self.probe_armed = false,
            Tag::Mailbox => {
                self.mailbox_armed = false;
                let acks = self.server.handle_commands(now);
                for (p, bytes) in &acks {
                    self.send(p, bytes)?;
                }
                self.server.recycle(acks);
            }
            Tag::Ra(port) => {
                self.ports[port].ra_armed = false;
                if let Some(ra) = self.server.ports[port].ra.as_mut() {
                    ra.handle_readable(now);
                }
            }
        }
        Ok(())
    }

    /// Writes the batch's journal records, sends what promises nothing
    /// durable and holds ACKs for the sync.
    fn answer_batch(&mut self) -> Result<(), Error> {
        let mut pending = std::mem::take(&mut self.pending);
        self.server.write_journal(&mut pending);
        let bufs = std::mem::take(&mut self.bufs);
        for (p, buf) in pending.iter().zip(&bufs) {
            let bytes = &buf[..p.reply.len()];
            if self.server.needs_sync(p) {
                self.server.hold(*p, bytes);
            } else {
                self.send(p, bytes)?;
            }
        }
        self.bufs = bufs;
        pending.clear();
        self.pending = pending;
        Ok(())
    }

    /// Submits `p`'s reply.
    fn send(&mut self, p: &Pending, bytes: &[u8]) -> Result<(), Error> {
        let mut msg = self
            .tx_spare
            .pop()
            .unwrap_or_else(|| Box::new(MsgOut::new()));
        let fds = &self.ports[p.port];
        let socket = match self.server.route(p, bytes) {
            Route::Main(a) => {
                msg.set_bytes(SocketAddr::V4(a), bytes);
                fds.main.clone()
            }
            Route::Pxe(a) => match &fds.pxe {
                Some(s) => {
                    msg.set_bytes(SocketAddr::V4(a), bytes);
                    s.clone()
                }
                None => return Ok(()),
            },
            Route::V6(a) => match &fds.v6 {
                Some(s) => {
                    msg.set_bytes(SocketAddr::V6(a), bytes);
                    s.clone()
                }
                None => return Ok(()),
            },
            Route::Link { mac, headers } => {
                let to = link::address(self.server.ports[p.port].iface.index, mac);
                msg.set_link(&to, &[&headers, bytes]);
                fds.link.clone()
            }
            Route::Nowhere => return Ok(()),
        };
        self.driver.submit(
            Tag::Send(*p),
            Op::SendMsg(SendMsg::new(socket, msg, None, false)),
        )?;
        self.server.log_sent(p, Ok(()));
        Ok(())
    }
}
