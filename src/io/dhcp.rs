//! The DHCP worker: one thread owns the one socket on :67 (bound to the boot
//! interface; a broadcast reaches every member of a reuseport group, so there is
//! exactly one), the :4011 socket in proxy mode, a send-only AF_PACKET socket for
//! frames to clients without an address, the engine and its lease journal.
//!
//! Each turn drains what the sockets hold (up to a batch) and lets the engine
//! answer each datagram. The batch's journal records are written at once;
//! replies that promise nothing durable (OFFER, NAK, proxy answers) leave at
//! once, and ACKs wait for the `fdatasync` that covers their record, which a
//! second thread runs while this one goes on serving (journal_sync.rs): an ACK
//! never leaves before its lease is on disk, and one sync covers every ACK
//! written while the previous sync ran (group commit).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::journal_sync::Syncer;
use super::probe::Prober;
use super::ra::Advertiser;
use super::{clock, turn::Turn, udp, Error};
use crate::config::dhcp::Dhcp;
use crate::lease::{Journal, Table};
use crate::proto::dhcp::{Dest, Engine, Input, Mode, Outcome, Reply};
use crate::wire::dhcp::{MessageType, CLIENT_PORT, PXE_PORT, SERVER_PORT};
use crate::wire::ipv4;

/// Most datagrams handled per turn (and per journal sync).
const BATCH: usize = 256;
/// Compact the journal when it is this many times the live table, and large.
const COMPACT_RATIO: u64 = 4;
const COMPACT_MIN: u64 = 1 << 20;

/// The boot interface as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Index.
    pub index: i32,
    /// First IPv4 address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Hardware address.
    pub mac: [u8; 6],
}

/// Looks `name` up: index, first IPv4 address with prefix, MAC.
///
/// # Errors
/// No such interface, or it has no IPv4 address.
pub fn interface(name: &str) -> io::Result<Iface> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `addrs`, freed below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut v4, mut mac, mut index) = (None, None, None);
    let mut at = addrs;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*at };
        at = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let n = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if n.to_bytes() != name.as_bytes() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of its family.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET && v4.is_none() {
            // SAFETY: an AF_INET address is a sockaddr_in; the netmask is too.
            let (a, m) = unsafe {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                (
                    u32::from_be(a.sin_addr.s_addr),
                    u32::from_be(m.sin_addr.s_addr),
                )
            };
            v4 = Some((Ipv4Addr::from(a), m.count_ones() as u8));
        } else if family == libc::AF_PACKET {
            // SAFETY: an AF_PACKET address is a sockaddr_ll.
            let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
            index = Some(ll.sll_ifindex);
            if ll.sll_halen == 6 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&ll.sll_addr[..6]);
                mac = Some(m);
            }
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addrs) };
    let index = index.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named {name} (see `ip link`)"),
        )
    })?;
    let (addr, prefix) = v4.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{name} has no IPv4 address: give it the boot network's server address (ip addr add ... dev {name})"),
        )
    })?;
    Ok(Iface {
        name: name.to_owned(),
        index,
        addr,
        prefix,
        mac: mac.unwrap_or_default(),
    })
}

fn udp_socket(iface: &Iface, port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    // A rack powering on is a burst: hold it in the queue rather than drop it
    // (a lost DISCOVER costs the client 4 s or more).
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    s.set_nonblocking(true)?;
    let s: UdpSocket = s.into();
    udp::enable_pktinfo(&s)?;
    Ok(s)
}

/// A send-only link-layer socket (protocol 0: the kernel delivers it nothing).
fn link_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send_link(fd: &OwnedFd, ifindex: i32, mac: [u8; 6], frame: &[&[u8]]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zeroed is valid before the fields are set.
    let mut to: libc::sockaddr_ll = unsafe { zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&mac);
    let mut iov: Vec<libc::iovec> = frame
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: msghdr is plain data; zeroed is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut to as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    // SAFETY: `msg` points at `to`, `iov` and the borrowed frame parts, all alive
    // for the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A reply written, and the socket whose request it answers.
#[derive(Debug, Clone, Copy)]
struct Pending {
    reply: Reply,
    from_pxe_port: bool,
}

/// The DHCP worker.
#[derive(Debug)]
pub struct Worker {
    iface: Iface,
    main: mio::net::UdpSocket,
    pxe: Option<mio::net::UdpSocket>,
    link: OwnedFd,
    engine: Engine,
    journal: Option<Journal>,
    poll: Poll,
    turn: Turn,
    access_log: bool,
    /// Conflict probes, when `dhcp.probe_ms` asks for them.
    prober: Option<Prober>,
    /// Router advertisements on the interface (dhcp.router_advertisement).
    ra: Option<Advertiser>,
    /// Syncs the journal beside the loop (server mode).
    syncer: Option<Syncer>,
    /// ACKs the sync in flight covers, and ACKs written after it started.
    in_sync: Vec<(Pending, Vec<u8>)>,
    next: Vec<(Pending, Vec<u8>)>,
    /// Records written since the last sync began (RELEASE and DECLINE records
    /// have no ACK waiting, but are synced all the same).
    unsynced: bool,
    /// Drops already reported, and when the next summary is due.
    reported: u64,
    report_at: Option<Instant>,
}

/// How long drops are gathered before one summary line reports them (a storm of
/// bad datagrams is one line per interval, never one per packet).
const REPORT_EVERY: Duration = Duration::from_secs(5);

const MAIN: Token = Token(0);
const PXE: Token = Token(1);
const SYNCED: Token = Token(2);
const PROBE: Token = Token(3);
const RA: Token = Token(4);

impl Worker {
    /// Opens the sockets on the configured interface, replays the lease journal.
    ///
    /// # Errors
    /// The interface is missing or has no address, a socket cannot be bound, the
    /// journal cannot be opened, or a range lies outside the interface's network.
    pub fn new(config: &Dhcp, http_port: u16, access_log: bool) -> Result<Self, String> {
        let iface = interface(&config.interface).map_err(|e| format!("dhcp: {e}"))?;
        let mut settings = config
            .resolve(iface.addr, iface.prefix)
            .map_err(|e| format!("dhcp: {e}"))?;
        // Boot URLs name the port HTTP really listens on (it may be picked at bind).
        settings.http_port = http_port;
        let listen = |port| {
            udp_socket(&iface, port).map_err(|e| {
                let hint = match e.kind() {
                    io::ErrorKind::PermissionDenied => " (DHCP needs root, or CAP_NET_BIND_SERVICE and CAP_NET_RAW)",
                    io::ErrorKind::AddrInUse => " (another DHCP server holds it: stop it, or run rackboot with --dhcp-proxy beside it)",
                    _ => "",
                };
                format!("dhcp: cannot listen on {}:{port}: {e}{hint}", iface.name)
            })
        };
        let main = listen(SERVER_PORT)?;
        let pxe = if settings.mode == Mode::Proxy {
            Some(listen(PXE_PORT)?)
        } else {
            None
        };
        let link = link_socket().map_err(|e| {
            format!("dhcp: cannot open a raw socket to reach clients without an address: {e} (needs CAP_NET_RAW)")
        })?;
        // A proxy gives no addresses, so it keeps no journal.
        let (journal, records, torn) = if settings.mode == Mode::Server {
            let (j, r, t) = Journal::open(&config.lease_file)
                .map_err(|e| format!("dhcp: lease file {}: {e}", config.lease_file.display()))?;
            (Some(j), r, t)
        } else {
            (None, Vec::new(), 0)
        };
        if torn > 0 {
            tracing::warn!(file = %config.lease_file.display(), bytes = torn, "lease journal had a torn tail (a crash mid-write); cut it off");
        }
        let table = Table::from_records(records);
        let now = clock::unix_now();
        tracing::info!(
            interface = %iface.name,
            addr = %iface.addr,
            mode = ?settings.mode,
            leases = table.active(now).count(),
            pool = settings.subnets.iter().map(|s| s.size()).sum::<u64>(),
            file = %config.lease_file.display(),
            "dhcp listening"
        );
        warn_if_arp_table_small(&settings, &iface);
        let poll = Poll::new().map_err(|e| format!("dhcp: epoll: {e}"))?;
        let mut main = mio::net::UdpSocket::from_std(main);
        poll.registry()
            .register(&mut main, MAIN, Interest::READABLE)
            .map_err(|e| format!("dhcp: epoll: {e}"))?;
        let pxe = match pxe {
            Some(s) => {
                let mut s = mio::net::UdpSocket::from_std(s);
                poll.registry()
                    .register(&mut s, PXE, Interest::READABLE)
                    .map_err(|e| format!("dhcp: epoll: {e}"))?;
                Some(s)
            }
            None => None,
        };
        let prober = if settings.probe {
            let p = Prober::open(&iface.name, config.probe).map_err(|e| {
                format!("dhcp: cannot open the ICMP socket for conflict probes: {e} (needs CAP_NET_RAW; or set dhcp.probe_ms = 0)")
            })?;
            poll.registry()
                .register(&mut mio::unix::SourceFd(&p.fd()), PROBE, Interest::READABLE)
                .map_err(|e| format!("dhcp: epoll: {e}"))?;
            Some(p)
        } else {
            None
        };
        // A kernel without IPv6, or without CAP_NET_RAW, serves on without
        // advertisements: iPXE then waits out its IPv6 autoconfiguration.
        let ra = if config.router_advertisement {
            match Advertiser::start(&iface.name, iface.index as u32, iface.mac, clock::now()) {
                Ok(a) => match poll.registry().register(
                    &mut mio::unix::SourceFd(&a.raw_fd()),
                    RA,
                    Interest::READABLE,
                ) {
                    Ok(()) => Some(a),
                    Err(e) => {
                        tracing::warn!(error = %e, "dhcp: cannot poll the router advertisement socket");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "dhcp: no IPv6 router advertisements (needs IPv6 on the interface and CAP_NET_RAW): \
                         iPXE will wait ~15 s for IPv6 at each start; set dhcp.router_advertisement = false to silence"
                    );
                    None
                }
            }
        } else {
            None
        };
        let syncer = match &journal {
            Some(_) => {
                let waker = mio::Waker::new(poll.registry(), SYNCED)
                    .map_err(|e| format!("dhcp: epoll: {e}"))?;
                Some(
                    Syncer::start(std::sync::Arc::new(waker))
                        .map_err(|e| format!("dhcp: cannot start the journal sync thread: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Self {
            iface,
            main,
            pxe,
            link,
            engine: Engine::new(settings, table, clock::now(), now),
            journal,
            poll,
            turn: Turn::new(0, std::time::Duration::ZERO),
            access_log,
            prober,
            ra,
            syncer,
            in_sync: Vec::new(),
            next: Vec::new(),
            unsynced: false,
            reported: 0,
            report_at: None,
        })
    }

    /// Serves until a fatal error.
    ///
    /// # Errors
    /// Only a failure of the poller.
    pub fn run(mut self) -> Result<(), Error> {
        let mut bufs = vec![[0u8; 1500]; BATCH];
        let mut rx = [0u8; 2048];
        let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
        loop {
            let deadline = [
                self.report_at,
                self.prober.as_ref().and_then(Prober::next_due),
                self.engine.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let now = self.turn.wait(&mut self.poll, deadline, false)?;
            self.engine.handle_timeout(now);
            self.collect_sync();
            self.finish_probes(now);
            if let Some(ra) = self.ra.as_mut() {
                ra.handle_readable(now);
            }
            loop {
                pending.clear();
                self.drain(&mut rx, &mut bufs, &mut pending);
                self.write_journal(&mut pending);
                for (p, buf) in pending.iter().zip(&bufs) {
                    if self.needs_sync(p) {
                        self.next.push((*p, buf[..p.reply.len].to_vec()));
                    } else {
                        self.send(p, &buf[..p.reply.len]);
                    }
                }
                if pending.len() < BATCH {
                    break;
                }
            }
            self.start_sync();
            self.report(now);
        }
    }

    /// Hands the engine the probes that were answered or timed out; the
    /// DISCOVERs they held are answered now (an OFFER never waits for the disk).
    fn finish_probes(&mut self, now: Instant) {
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        let done: Vec<(Ipv4Addr, bool)> = prober
            .answered()
            .into_iter()
            .map(|ip| (ip, true))
            .chain(prober.expired(now).into_iter().map(|ip| (ip, false)))
            .collect();
        let mut out = [0u8; 1500];
        for (ip, in_use) in done {
            if in_use {
                tracing::warn!(%ip, "dhcp: address answers a ping but has no lease here (a static address?); kept out of use for dhcp.decline_secs");
            }
            match self.engine.probe_result(now, ip, in_use, &mut out) {
                Ok(Outcome::Reply(r)) => self.send(
                    &Pending {
                        reply: r,
                        from_pxe_port: false,
                    },
                    &out[..r.len],
                ),
                Ok(Outcome::Probe(next)) => self.start_probe(next, now),
                Ok(other) => tracing::debug!(%ip, ?other, "dhcp: probe ended without a reply"),
                Err(e) => {
                    tracing::debug!(%ip, reason = e.kind(), "dhcp: probe ended without a reply")
                }
            }
        }
    }

    fn start_probe(&mut self, ip: Ipv4Addr, now: Instant) {
        match self.prober.as_mut() {
            Some(p) => p.start(ip, now),
            // Settings ask for probes only when the prober is open.
            None => tracing::debug!(%ip, "dhcp: probe asked without a prober"),
        }
    }

    /// Whether `p` promises a lease, so must wait until its record is on disk.
    fn needs_sync(&self, p: &Pending) -> bool {
        self.syncer.is_some() && p.reply.kind == MessageType::Ack && !p.reply.ip.is_unspecified()
    }

    /// Sends the ACKs of a finished sync (or holds them back if it failed: the
    /// clients retry, and their retries write the records again).
    fn collect_sync(&mut self) {
        let Some(result) = self.syncer.as_mut().and_then(Syncer::poll) else {
            return;
        };
        let acks = std::mem::take(&mut self.in_sync);
        match result {
            Ok(()) => {
                for (p, bytes) in &acks {
                    self.send(p, bytes);
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                held_back = acks.len(),
                "dhcp: cannot sync the lease journal; ACKs held back until it can"
            ),
        }
    }

    /// Starts a sync for the ACKs waiting, unless one is running (its end
    /// starts the next). Compacts the journal first when it has grown large.
    fn start_sync(&mut self) {
        let (Some(syncer), Some(journal)) = (self.syncer.as_mut(), self.journal.as_mut()) else {
            return;
        };
        if syncer.busy() || !self.unsynced {
            return;
        }
        self.unsynced = false;
        let live = self.engine.table().len() as u64 * 64;
        if journal.len() > COMPACT_MIN && journal.len() > COMPACT_RATIO * live {
            // No sync is running, so the file may be replaced; the new file is
            // synced whole, records of the waiting ACKs included.
            match journal.compact(&self.engine.table().snapshot(clock::unix_now())) {
                Ok(()) => {
                    tracing::info!(bytes = journal.len(), "dhcp: lease journal compacted");
                    for (p, bytes) in std::mem::take(&mut self.next) {
                        self.send(&p, &bytes);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dhcp: lease journal compaction failed; still appending")
                }
            }
        }
        let started = journal
            .sync_handle()
            .and_then(|file| syncer.start_sync(file));
        match started {
            Ok(()) => self.in_sync = std::mem::take(&mut self.next),
            // No second thread: sync here, as the loop did before group commit.
            Err(e) => {
                tracing::warn!(error = %e, "dhcp: syncing the lease journal in the loop");
                let acks = std::mem::take(&mut self.next);
                match journal.append(&[]) {
                    Ok(()) => acks.iter().for_each(|(p, bytes)| self.send(p, bytes)),
                    Err(e) => {
                        tracing::error!(error = %e, "dhcp: cannot sync the lease journal; ACKs held back until it can")
                    }
                }
            }
        }
    }

    /// Logs one summary of the datagrams dropped since the last one, at most
    /// once per [`REPORT_EVERY`].
    fn report(&mut self, now: Instant) {
        let dropped = &self.engine.counters().dropped;
        let total: u64 = dropped.values().sum();
        match self.report_at {
            None if total > self.reported => self.report_at = Some(now + REPORT_EVERY),
            Some(at) if at <= now => {
                let mut reasons: Vec<_> = dropped.iter().collect();
                reasons.sort();
                let reasons = reasons
                    .iter()
                    .map(|(why, n)| format!("{why}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::info!(
                    new = total - self.reported,
                    total,
                    reasons,
                    "dhcp: datagrams dropped"
                );
                self.reported = total;
                self.report_at = None;
            }
            _ => {}
        }
    }

    /// Reads up to a batch from both sockets and lets the engine answer.
    fn drain(&mut self, rx: &mut [u8], bufs: &mut [[u8; 1500]], pending: &mut Vec<Pending>) {
        let now = clock::now();
        let mut idle = [false, self.pxe.is_none()];
        while pending.len() < BATCH && !(idle[0] && idle[1]) {
            for (i, done) in idle.iter_mut().enumerate() {
                if *done || pending.len() >= BATCH {
                    continue;
                }
                let sock: &mio::net::UdpSocket = match (i, &self.pxe) {
                    (0, _) => &self.main,
                    (_, Some(p)) => p,
                    _ => continue,
                };
                let got = match udp::recv(sock, rx) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        *done = true;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "dhcp recv");
                        *done = true;
                        continue;
                    }
                };
                let SocketAddr::V4(peer) = got.peer else {
                    continue;
                };
                if got.truncated {
                    tracing::debug!(%peer, "dhcp datagram over 2048 bytes dropped");
                    continue;
                }
                let input = Input {
                    bytes: &rx[..got.len],
                    server: self.iface.addr,
                    port: if i == 0 { SERVER_PORT } else { PXE_PORT },
                    peer,
                };
                let out = &mut bufs[pending.len()];
                match self.engine.handle(now, input, out) {
                    Ok(Outcome::Reply(r)) => pending.push(Pending {
                        reply: r,
                        from_pxe_port: i == 1,
                    }),
                    Ok(Outcome::Probe(ip)) => self.start_probe(ip, now),
                    Ok(other) => tracing::debug!(%peer, ?other, "dhcp: no reply due"),
                    Err(e) if e.is_drop() => {
                        tracing::debug!(%peer, reason = e.kind(), error = %e, "dhcp: dropped")
                    }
                    Err(e) => {
                        tracing::debug!(%peer, reason = e.kind(), error = %e, "dhcp: no reply")
                    }
                }
            }
        }
    }

    /// Writes the batch's lease changes to the journal (the sync comes later);
    /// if the write fails, the batch's ACKs are held back (the clients retry)
    /// and the records are kept for the next batch.
    fn write_journal(&mut self, pending: &mut Vec<Pending>) {
        let bytes = self.engine.take_journal();
        if bytes.is_empty() {
            return;
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        match journal.write(&bytes) {
            Ok(()) => self.unsynced = true,
            Err(e) => {
                tracing::error!(error = %e, "dhcp: cannot write the lease journal; ACKs held back until it can");
                self.engine.restore_journal(bytes);
                pending.retain(|p| p.reply.kind != MessageType::Ack || p.reply.ip.is_unspecified());
            }
        }
    }

    fn send(&self, p: &Pending, bytes: &[u8]) {
        let result = match p.reply.to {
            Dest::Relay(a) => self.main.send_to(bytes, SocketAddr::V4(a)).map(drop),
            Dest::Unicast(a) if p.from_pxe_port => match &self.pxe {
                Some(s) => s.send_to(bytes, SocketAddr::V4(a)).map(drop),
                None => Ok(()),
            },
            Dest::Unicast(a) => self.main.send_to(bytes, SocketAddr::V4(a)).map(drop),
            // A frame to ff:ff:ff:ff:ff:ff, not a datagram to 255.255.255.255:
            // the IP path needs a neighbour entry even for broadcast, and a
            // full ARP table (a large rack, see tuning/60-rackboot.conf) made
            // the kernel drop those sends while reporting success.
            Dest::Broadcast => {
                let headers = ipv4::udp_headers(
                    self.iface.addr,
                    SERVER_PORT,
                    Ipv4Addr::BROADCAST,
                    CLIENT_PORT,
                    bytes,
                );
                send_link(&self.link, self.iface.index, [0xff; 6], &[&headers, bytes])
            }
            Dest::Link { mac, ip } => {
                let headers =
                    ipv4::udp_headers(self.iface.addr, SERVER_PORT, ip, CLIENT_PORT, bytes);
                send_link(&self.link, self.iface.index, mac, &[&headers, bytes])
            }
        };
        match (&result, p.reply.kind) {
            (Err(e), _) => tracing::warn!(error = %e, to = ?p.reply.to, "dhcp: send failed"),
            // ACKs and NAKs are the DHCP access log.
            (Ok(()), MessageType::Ack) if self.access_log && !p.reply.ip.is_unspecified() => {
                tracing::info!(mac = %p.reply.chaddr, ip = %p.reply.ip, "dhcp ACK")
            }
            (Ok(()), MessageType::Nak) if self.access_log => {
                tracing::info!(mac = %p.reply.chaddr, "dhcp NAK")
            }
            (Ok(()), kind) => {
                tracing::debug!(mac = %p.reply.chaddr, ip = %p.reply.ip, kind = kind.name(), to = ?p.reply.to, "dhcp reply")
            }
        }
    }
}

/// Warns when the pools on the server's own link hold more addresses than the
/// kernel's ARP table takes: past `gc_thresh3` entries it drops sends to new
/// neighbours, and TFTP and HTTP to the machines stall.
fn warn_if_arp_table_small(settings: &crate::proto::dhcp::Settings, iface: &Iface) {
    let on_link: u64 = settings
        .subnets
        .iter()
        .filter(|s| s.contains(iface.addr))
        .map(|s| s.size())
        .sum();
    let path = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    else {
        return;
    };
    if on_link > limit {
        tracing::warn!(
            pool = on_link,
            arp_limit = limit,
            "dhcp: the pool on {} holds more addresses than the ARP table takes \
             (net.ipv4.neigh.default.gc_thresh3): past it the kernel drops traffic to new machines; \
             raise it (tuning/60-rackboot.conf)",
            iface.name
        );
    }
}
