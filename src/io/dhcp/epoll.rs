//! The DHCP worker on epoll: readiness on the sockets, the journal's sync on
//! a second thread (sync_thread.rs) that wakes the loop when it is done.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use super::sync_thread::Syncer;
use super::{Pending, Route, Server, Start, BATCH, RX};
use crate::io::{clock, turn::Turn, udp, Error};

const SYNCED: Token = Token(0);
const PROBE: Token = Token(1);
const MAILBOX: Token = Token(2);
/// Port `i`'s :67, :4011, advertisement and :547 sockets are tokens
/// `PORTS + 4i`, `+ 1`, `+ 2` and `+ 3` (the loop reads every socket on a
/// wake).
const PORTS: usize = 16;

/// A port's receiving sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    /// :67.
    Main,
    /// :4011.
    Pxe,
    /// :547.
    V6,
}

/// The DHCP worker on epoll.
#[derive(Debug)]
pub struct Worker {
    server: Server,
    poll: Poll,
    turn: Turn,
    /// Syncs the journal beside the loop (server mode).
    syncer: Option<Syncer>,
}

impl Worker {
    /// Registers `server`'s sockets with a new poller and starts the sync
    /// thread.
    ///
    /// # Errors
    /// The poller or the thread cannot be created.
    pub fn new(server: Server) -> Result<Self, Error> {
        let epoll = |source| Error::Poll {
            worker: 0,
            op: "dhcp epoll",
            source,
        };
        let poll = Poll::new().map_err(epoll)?;
        let register = |fd: i32, token| {
            poll.registry()
                .register(&mut SourceFd(&fd), token, Interest::READABLE)
        };
        for (i, port) in server.ports.iter().enumerate() {
            register(port.main.as_raw_fd(), Token(PORTS + 4 * i)).map_err(epoll)?;
            if let Some(s) = &port.pxe {
                register(s.as_raw_fd(), Token(PORTS + 4 * i + 1)).map_err(epoll)?;
            }
            if let Some(s) = &port.v6 {
                register(s.as_raw_fd(), Token(PORTS + 4 * i + 3)).map_err(epoll)?;
            }
            if let Some(a) = &port.ra {
                if let Err(e) = register(a.raw_fd(), Token(PORTS + 4 * i + 2)) {
                    tracing::warn!(error = %e, "dhcp: cannot poll the router advertisement socket");
                }
            }
        }
        if let Some(p) = &server.prober {
            register(p.fd(), PROBE).map_err(epoll)?;
        }
        if let Some(m) = &server.mailbox {
            register(m.as_raw_fd(), MAILBOX).map_err(epoll)?;
        }
        let syncer = match &server.journal {
            Some(_) => {
                let waker = mio::Waker::new(poll.registry(), SYNCED).map_err(epoll)?;
                Some(
                    Syncer::start(Arc::new(waker)).map_err(|source| Error::Poll {
                        worker: 0,
                        op: "start the journal sync thread",
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Self {
            server,
            poll,
            turn: Turn::new(0, std::time::Duration::ZERO),
            syncer,
        })
    }

    /// Serves until a fatal error.
    ///
    /// # Errors
    /// Only a failure of the poller.
    pub fn run(mut self) -> Result<(), Error> {
        tracing::info!(backend = "epoll", "dhcp worker serving");
        let mut bufs = vec![[0u8; 1500]; BATCH];
        let mut rx = [0u8; RX];
        let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
        loop {
            let deadline = self.server.deadline();
            let now = self.turn.wait(&mut self.poll, deadline, false)?;
            self.server.handle_timeout(now);
            let acks = self.server.handle_commands(now);
            self.send_all(&acks);
            self.server.recycle(acks);
            if let Some(result) = self.syncer.as_mut().and_then(Syncer::poll) {
                let acks = self.server.synced(result);
                self.send_all(&acks);
                self.server.recycle(acks);
            }
            let replies = self.server.finish_probes(now);
            self.send_all(&replies);
            for ra in self.server.ports.iter_mut().filter_map(|p| p.ra.as_mut()) {
                ra.handle_readable(now);
            }
            loop {
                pending.clear();
                self.drain(&mut rx, &mut bufs, &mut pending);
                self.server.write_journal(&mut pending);
                for (p, buf) in pending.iter().zip(&bufs) {
                    if self.server.needs_sync(p) {
                        self.server.hold(*p, &buf[..p.reply.len()]);
                    } else {
                        self.send(p, &buf[..p.reply.len()]);
                    }
                }
                if pending.len() < BATCH {
                    break;
                }
            }
            self.start_sync();
            self.server.report(now);
        }
    }

    /// Starts the next sync on the thread (or, without it, here).
    fn start_sync(&mut self) {
        match self.server.start_sync() {
            Start::Idle => {}
            Start::Ready(acks) => {
                self.send_all(&acks);
                self.server.recycle(acks);
            }
            Start::Sync(file) => {
                let started = match self.syncer.as_mut() {
                    Some(s) => s.start_sync(file),
                    None => Err((io::Error::other("no sync thread"), file)),
                };
                if let Err((e, file)) = started {
                    // No second thread: sync here, as the loop did before group commit.
                    tracing::warn!(error = %e, "dhcp: syncing the lease journal in the loop");
                    let acks = self.server.synced(file.sync_data());
                    self.send_all(&acks);
                    self.server.recycle(acks);
                }
            }
        }
    }

    /// Reads up to a batch from every port's sockets and lets the engine
    /// answer.
    fn drain(&mut self, rx: &mut [u8], bufs: &mut [[u8; 1500]], pending: &mut Vec<Pending>) {
        let now = clock::now();
        // (port, which socket, done)
        let mut sockets: Vec<(usize, Socket, bool)> = Vec::new();
        for (i, p) in self.server.ports.iter().enumerate() {
            sockets.push((i, Socket::Main, false));
            if p.pxe.is_some() {
                sockets.push((i, Socket::Pxe, false));
            }
            if p.v6.is_some() {
                sockets.push((i, Socket::V6, false));
            }
        }
        while pending.len() < BATCH && sockets.iter().any(|s| !s.2) {
            for (port, which, done) in &mut sockets {
                if *done || pending.len() >= BATCH {
                    continue;
                }
                let p = &self.server.ports[*port];
                let sock = match (*which, &p.pxe, &p.v6) {
                    (Socket::Main, _, _) => &p.main,
                    (Socket::Pxe, Some(x), _) | (Socket::V6, _, Some(x)) => x,
                    _ => continue,
                };
                let got = match udp::recv(sock, rx) {
                    Ok(r) => r,
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            tracing::debug!(error = %e, "dhcp recv");
                        }
                        *done = true;
                        continue;
                    }
                };
                let out = &mut bufs[pending.len()];
                let bytes = &rx[..got.len.min(rx.len())];
                let answered = match which {
                    Socket::V6 => self.server.answer6(now, *port, &got, bytes, out),
                    _ => {
                        let from_pxe = *which == Socket::Pxe;
                        self.server.answer(now, *port, &got, bytes, from_pxe, out)
                    }
                };
                if let Some(p) = answered {
                    pending.push(p);
                }
            }
        }
    }

    fn send_all(&self, replies: &[(Pending, Vec<u8>)]) {
        for (p, bytes) in replies {
            self.send(p, bytes);
        }
    }

    fn send(&self, p: &Pending, bytes: &[u8]) {
        let s = &self.server;
        let port = &s.ports[p.port];
        let result = match s.route(p, bytes) {
            Route::Main(a) => port.main.send_to(bytes, a).map(drop),
            Route::Pxe(a) => match &port.pxe {
                Some(pxe) => pxe.send_to(bytes, a).map(drop),
                None => Ok(()),
            },
            Route::Link { mac, headers } => {
                port.link.send_to(port.iface.index, mac, &[&headers, bytes])
            }
            Route::V6(a) => match &port.v6 {
                Some(v6) => v6.send_to(bytes, a).map(drop),
                None => Ok(()),
            },
            Route::Nowhere => Ok(()),
        };
        s.log_sent(p, result.as_ref().map(|_| ()));
    }
}
