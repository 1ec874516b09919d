//! The storm driver: thousands of `sim::machine::Machine`s multiplexed on one
//! mio poll loop. Each machine's TFTP download gets its own UDP socket and its
//! HTTP one keep-alive connection, as a real machine's would; its DHCP goes
//! either into an in-process engine (self mode: loopback has no broadcast and no
//! link layer) or out as raw frames from its own MAC (`--interface`). Timers sit
//! in one heap; a sweep four times a second times out silent HTTP, enforces the
//! storm's deadline and prints the progress line. One loop over one state
//! (the machines' slots), so one file; what it needs beside it is in
//! hold.rs (the fault model's held packets), net.rs and sys.rs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::io::clock;

mod hold;
pub mod load;
mod net;
mod sys;

use crate::proto::dhcp::Engine;
use crate::sim::faults::{Fate, Faults, Way};
use crate::sim::fleet::Family;
use crate::sim::fleet::Spec;
use crate::sim::machine::{Event, Machine, Phase, Send};
use crate::sim::report::{Outcome, PHASES};
use crate::sim::tftp::To;
use crate::wire::ipv6;
use hold::{dhcp_out, Held, Hold};
use net::{
    connect, covers, discard, flush, interface_mac, local_prefixes6, retry_from_host, udp_socket,
    Sources,
};
pub use sys::{process_cpu, thread_cpu};

/// Where the machines' DHCP goes.
#[derive(Debug)]
pub enum Dhcp {
    /// Into an engine in this process, as if it sat on the machines' link;
    /// `server` is its address.
    Engine {
        /// The engine.
        engine: Box<Engine>,
        /// The server's address (its identifier and next-server).
        server: Ipv4Addr,
        /// The DHCPv6 engine and the server's IPv6 address, for IPv6
        /// machines.
        v6: Option<(Box<crate::proto::dhcp6::Engine>, Ipv6Addr)>,
    },
    /// Out on a link as raw frames.
    Raw {
        /// IPv4 machines' DHCP.
        link: crate::io::link::Link,
        /// IPv6 machines' DHCPv6 and neighbor discovery ([`Link::open6`]).
        ///
        /// [`Link::open6`]: crate::io::link::Link::open6
        v6: Option<crate::io::link::Link>,
    },
}

/// How to play the storm.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The machines.
    pub fleet: Vec<Spec>,
    /// The last phase each plays.
    pub until: Phase,
    /// An HTTP exchange silent this long fails its machine.
    pub http_timeout: Duration,
    /// Machines still booting this long after the storm's start fail.
    pub deadline: Duration,
    /// The TFTP server's request port.
    pub tftp_port: u16,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Open files the process may need per machine (a socket each in the
    /// storm; two when the server runs in the same process).
    pub files_per_machine: usize,
    /// What happens to the machines' datagrams and frames on the way.
    pub faults: Faults,
    /// Times a machine whose firmware DHCP failed starts its network boot
    /// again (the firmware's boot-option retry).
    pub boot_retries: u32,
}

/// What the storm saw.
#[derive(Debug)]
pub struct Done {
    /// Every machine's boot, in fleet order.
    pub outcomes: Vec<Outcome>,
    /// From the storm's start to the last machine's end.
    pub elapsed: Duration,
    /// CPU time of the driver's thread.
    pub cpu: Duration,
    /// Whether the IPv4 machines' TFTP and HTTP left from each one's leased
    /// address (else from the host's own).
    pub from_leases: bool,
    /// Whether IPv6 machines' TFTP and HTTP left from their leases (the host
    /// takes them as local: `ip -6 route add local`).
    pub from_leases6: bool,
    /// Datagrams and frames the fault model dropped: the machines', the server's.
    pub dropped: (u64, u64),
}

const RAW: Token = Token(usize::MAX);
const RAW6: Token = Token(usize::MAX - 1);
const SWEEP: Duration = Duration::from_millis(250);
const READ_BUF: usize = 256 * 1024;
/// Reads of one connection per loop turn: a fast body must not starve the
/// other machines' TFTP ACKs (the server would time out and resend).
const READS_PER_TURN: usize = 4;
const DISCARD_MAX: u64 = 1 << 20;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    host: String,
    port: u16,
    out: Vec<u8>,
    last: Instant,
}

#[derive(Debug)]
struct Slot {
    m: Machine,
    tftp: Option<(UdpSocket, IpAddr)>,
    /// TFTP sockets opened so far: a datagram the fault model held for an
    /// earlier socket is lost with it, as on a network the closed port
    /// would drop it (sent from the new socket, the server answers "unknown
    /// transfer ID" and the machine fails).
    tftp_socket: u32,
    http: Option<Conn>,
    armed: Option<Instant>,
}

struct Driver {
    settings: Settings,
    dhcp: Dhcp,
    poll: Poll,
    slots: Vec<Option<Slot>>,
    outcomes: Vec<Option<Outcome>>,
    macs: HashMap<[u8; 6], usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// What the fault model holds back.
    hold: Hold,
    /// Connections left readable after their turn.
    ready: Vec<usize>,
    /// Where TFTP and HTTP leave from.
    sources: Sources,
    /// The link's own MAC: neighbor advertisements for the IPv6 leases it
    /// takes as local.
    host_mac: Option<[u8; 6]>,
    started: Instant,
    ended: usize,
    out: Vec<u8>,
    rx: Vec<u8>,
    frame: Vec<u8>,
}

/// Plays the storm to its end: every machine booted or failed.
///
/// # Errors
/// The poller could not be created, or the raw link failed.
pub fn run(settings: Settings, dhcp: Dhcp) -> Result<Done, String> {
    /// Descriptors the process holds besides the machines' (poller, link,
    /// listeners, the in-process server's own).
    const SPARE: usize = 256;
    let per = settings.files_per_machine.max(1);
    let (limit, bound) = crate::io::fd_limit::raise(settings.fleet.len() * per + SPARE);
    if let Some(why) = bound {
        let at_once = limit.saturating_sub(SPARE) / per;
        let together = settings.fleet.iter().filter(|s| s.start.is_zero()).count();
        let msg = format!(
            "this storm can hold {at_once} machines' sockets at once ({per} each), bounded by {why}"
        );
        if together > at_once {
            return Err(format!(
                "{msg}; {together} machines power on together: play at most {at_once}, or spread them (--ramp)"
            ));
        }
        eprintln!("storm: {msg}; machines past it fail with 'Too many open files'");
    }
    let poll = Poll::new().map_err(|e| format!("create the poller: {e}"))?;
    if let Dhcp::Raw { link, v6 } = &dhcp {
        poll.registry()
            .register(&mut SourceFd(&link.raw_fd()), RAW, Interest::READABLE)
            .map_err(|e| format!("poll the raw link: {e}"))?;
        if let Some(link6) = v6 {
            poll.registry()
                .register(&mut SourceFd(&link6.raw_fd()), RAW6, Interest::READABLE)
                .map_err(|e| format!("poll the raw IPv6 link: {e}"))?;
        }
    }
    let n = settings.fleet.len();
    let macs = settings
        .fleet
        .iter()
        .enumerate()
        .map(|(k, s)| (s.mac, k))
        .collect();
    let raw = matches!(dhcp, Dhcp::Raw { .. });
    let (local6, host_mac) = match &dhcp {
        Dhcp::Raw { v6: Some(link), .. } => (local_prefixes6(), interface_mac(link.interface())),
        _ => (Vec::new(), None),
    };
    let cpu0 = thread_cpu();
    let mut d = Driver {
        settings,
        dhcp,
        poll,
        slots: (0..n).map(|_| None).collect(),
        outcomes: (0..n).map(|_| None).collect(),
        macs,
        timers: BinaryHeap::new(),
        hold: Hold::default(),
        ready: Vec::new(),
        sources: Sources::new(raw, local6),
        host_mac,
        started: clock::now(),
        ended: 0,
        out: vec![0; 2048],
        rx: vec![0; READ_BUF],
        frame: Vec::with_capacity(2048),
    };
    d.run()?;
    let elapsed = clock::now() - d.started;
    let outcomes = d
        .outcomes
        .into_iter()
        .zip(&d.settings.fleet)
        .map(|(o, s)| {
            o.unwrap_or_else(|| Outcome {
                identity: s.identity,
                family: s.family,
                start: s.start,
                ended: Vec::new(),
                finished: None,
                failure: Some((Phase::Dhcp, "never powered on".into())),
            })
        })
        .collect();
    Ok(Done {
        outcomes,
        dropped: d.settings.faults.dropped,
        from_leases: !d.sources.own_address,
        from_leases6: d.sources.from_leases6,
        elapsed,
        cpu: thread_cpu().saturating_sub(cpu0),
    })
}

impl Driver {
    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let n = self.slots.len();
        let mut next_start = 0;
        let mut next_sweep = self.started;
        let mut last_progress = self.started;
        let tty = std::io::stderr().is_terminal();
        while self.ended < n {
            let now = clock::now();
            while next_start < n && self.started + self.settings.fleet[next_start].start <= now {
                self.power_on(now, next_start);
                next_start += 1;
            }
            while let Some(&Reverse((at, k))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                let Some(slot) = self.slots[k].as_mut() else {
                    continue;
                };
                if slot.armed != Some(at) {
                    continue;
                }
                slot.armed = None;
                slot.m.handle_timeout(now);
                self.pump(now, k);
            }
            self.release(now);
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP;
                let every = if tty {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(5)
                };
                if self.settings.progress && now - last_progress >= every {
                    last_progress = now;
                    self.progress(now, tty);
                }
            }
            if self.ended >= n {
                break;
            }
            let mut wake = next_sweep;
            if let Some(&Reverse((at, _))) = self.timers.peek() {
                wake = wake.min(at);
            }
            if let Some(at) = self.hold.next_due() {
                wake = wake.min(at);
            }
            if let Some(s) = self.settings.fleet.get(next_start) {
                wake = wake.min(self.started + s.start);
            }
            let mut wait = wake.saturating_duration_since(clock::now());
            let again = std::mem::take(&mut self.ready);
            if !again.is_empty() {
                wait = Duration::ZERO;
                let now = clock::now();
                for k in again {
                    self.on_http(now, k, false);
                    self.pump(now, k);
                }
            }
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let now = clock::now();
            for event in &events {
                match event.token() {
                    RAW => self.read_raw(now)?,
                    RAW6 => self.read_raw6(now)?,
                    Token(t) => {
                        let k = t >> 1;
                        if t & 1 == 0 {
                            self.read_tftp(now, k);
                        } else {
                            self.on_http(now, k, event.is_writable());
                        }
                        self.pump(now, k);
                    }
                }
            }
        }
        if self.settings.progress {
            self.progress(clock::now(), tty);
            if tty {
                eprintln!();
            }
        }
        Ok(())
    }

    fn power_on(&mut self, now: Instant, k: usize) {
        let s = &self.settings.fleet[k];
        let mut m = Machine::new(now, s.identity, s.mac, s.uuid, s.xid, self.settings.until)
            .with_boot_retries(self.settings.boot_retries);
        if s.family == Family::V6 {
            m = m.on_ipv6();
        }
        self.slots[k] = Some(Slot {
            m,
            tftp: None,
            tftp_socket: 0,
            http: None,
            armed: None,
        });
        self.pump(now, k);
    }

    /// Sends what machine `k` has to send, records its end, arms its timer.
    fn pump(&mut self, now: Instant, k: usize) {
        let Some(slot) = self.slots[k].as_mut() else {
            return;
        };
        if slot.m.take_close_http() {
            if let Some(mut c) = slot.http.take() {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
        while let Some(send) = slot.m.poll_transmit(now, &mut self.out) {
            match send {
                Send::Dhcp { len } | Send::Dhcp6 { len } => {
                    let family = slot.m.family();
                    let bytes = &self.out[..len];
                    match self.settings.faults.fate(Way::Out, now) {
                        Fate::Drop => {}
                        Fate::Hold(at) => {
                            self.hold.put(at, Held::DhcpOut(k, family, bytes.to_vec()));
                        }
                        Fate::Pass => dhcp_out(
                            &mut self.dhcp,
                            &mut self.settings.faults,
                            &mut self.hold,
                            &mut self.rx,
                            &mut self.frame,
                            &mut slot.m,
                            k,
                            self.settings.fleet[k].mac,
                            family,
                            now,
                            bytes,
                        ),
                    }
                }
                Send::Tftp { server, to, len } => {
                    let port = match to {
                        To::Server => self.settings.tftp_port,
                        To::Tid(p) => p,
                    };
                    let dest = SocketAddr::from((server, port));
                    // Each read request leaves from a new port, as EDK2's do
                    // (its size probe and its download are two transfers).
                    if to == To::Server || slot.tftp.as_ref().is_some_and(|(_, s)| *s != server) {
                        if let Some((mut sock, _)) = slot.tftp.take() {
                            let _ = self.poll.registry().deregister(&mut sock);
                        }
                    }
                    if slot.tftp.is_none() {
                        let source = self.sources.of(slot.m.address());
                        match retry_from_host(&mut self.sources.own_address, source, |src| {
                            udp_socket(&self.poll, Token(k << 1), src)
                        }) {
                            Ok(sock) => {
                                slot.tftp = Some((sock, server));
                                slot.tftp_socket += 1;
                            }
                            Err(e) => {
                                slot.m.abort(now, format!("open a TFTP socket: {e}"));
                                break;
                            }
                        }
                    }
                    if let Some((sock, _)) = &slot.tftp {
                        match self.settings.faults.fate(Way::Out, now) {
                            // A datagram the kernel refused is a lost datagram.
                            Fate::Pass => drop(sock.send_to(&self.out[..len], dest)),
                            Fate::Hold(at) => {
                                self.hold.put(
                                    at,
                                    Held::TftpOut(
                                        k,
                                        slot.tftp_socket,
                                        dest,
                                        self.out[..len].to_vec(),
                                    ),
                                );
                            }
                            Fate::Drop => {}
                        }
                    }
                }
                Send::Http { target, len } => {
                    let reuse = slot
                        .http
                        .as_ref()
                        .is_some_and(|c| c.host == target.host && c.port == target.port);
                    if !reuse {
                        if let Some(mut c) = slot.http.take() {
                            let _ = self.poll.registry().deregister(&mut c.stream);
                        }
                        let source = self.sources.of(slot.m.address());
                        let token = Token(k << 1 | 1);
                        let (host, port) = (&target.host, target.port);
                        match retry_from_host(&mut self.sources.own_address, source, |src| {
                            connect(&self.poll, token, src, host, port)
                        }) {
                            Ok(stream) => {
                                slot.http = Some(Conn {
                                    stream,
                                    host: target.host.clone(),
                                    port: target.port,
                                    out: Vec::new(),
                                    last: now,
                                });
                            }
                            Err(e) => {
                                slot.m.abort(
                                    now,
                                    format!("connect to {}:{}: {e}", target.host, target.port),
                                );
                                break;
                            }
                        }
                    }
                    if let Some(c) = slot.http.as_mut() {
                        c.out.extend_from_slice(&self.out[..len]);
                        c.last = now;
                        if let Err(e) = flush(c) {
                            let why = format!("HTTP to {}:{}: {e}", c.host, c.port);
                            slot.m.abort(now, why);
                        }
                    }
                }
            }
        }
        if slot.tftp.is_some() && !slot.m.is_on_tftp() {
            if let Some((mut sock, _)) = slot.tftp.take() {
                let _ = self.poll.registry().deregister(&mut sock);
            }
        }
        if let Some(event) = slot.m.poll_event() {
            self.finish(k, event);
            return;
        }
        let due = slot.m.poll_timeout();
        if due != slot.armed {
            slot.armed = due;
            if let Some(at) = due {
                self.timers.push(Reverse((at, k)));
            }
        }
    }

    fn finish(&mut self, k: usize, event: Event) {
        let Some(mut slot) = self.slots[k].take() else {
            return;
        };
        if let Some((mut sock, _)) = slot.tftp.take() {
            let _ = self.poll.registry().deregister(&mut sock);
        }
        if let Some(mut c) = slot.http.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        let s = &self.settings.fleet[k];
        let failure = match event {
            Event::Booted => None,
            Event::Failed { phase, reason } => Some((phase, reason)),
        };
        self.outcomes[k] = Some(Outcome {
            identity: s.identity,
            family: s.family,
            start: s.start,
            ended: std::mem::take(&mut slot.m.ended),
            finished: slot.m.finished,
            failure,
        });
        self.ended += 1;
    }

    fn read_raw(&mut self, now: Instant) -> Result<(), String> {
        loop {
            let Dhcp::Raw { link, .. } = &self.dhcp else {
                return Ok(());
            };
            let range = match link.recv_dhcp(&mut self.rx) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("read the raw link {}: {e}", link.interface())),
            };
            // chaddr: the BOOTP header's bytes 28..34.
            let payload = &self.rx[range];
            let Some(mac) = payload
                .get(28..34)
                .and_then(|m| <[u8; 6]>::try_from(m).ok())
            else {
                continue;
            };
            let Some(&k) = self.macs.get(&mac) else {
                continue;
            };
            if let Some(slot) = self.slots[k].as_mut() {
                match self.settings.faults.fate(Way::In, now) {
                    Fate::Pass => slot.m.handle_dhcp(now, payload),
                    Fate::Hold(at) => self.hold.put(at, Held::DhcpIn(k, payload.to_vec())),
                    Fate::Drop => {}
                }
                self.pump(now, k);
            }
        }
    }

    /// Frames for the IPv6 machines: DHCPv6 replies go to the machine of
    /// their MAC; a neighbor solicitation for a machine's link-local
    /// address is answered from its MAC at once (not subject to the fault
    /// model: it is the link working, not the boot protocol).
    fn read_raw6(&mut self, now: Instant) -> Result<(), String> {
        loop {
            let Dhcp::Raw { v6: Some(link), .. } = &self.dhcp else {
                return Ok(());
            };
            let n = match link.recv_frame(&mut self.rx) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("read the raw link {}: {e}", link.interface())),
            };
            match ipv6::read_frame6(&self.rx[..n]) {
                Some(ipv6::Frame6::Dhcp { to, payload }) => {
                    let Some(&k) = self.macs.get(&to) else {
                        continue;
                    };
                    let Some(slot) = self.slots[k].as_mut() else {
                        continue;
                    };
                    let payload = &self.rx[payload];
                    match self.settings.faults.fate(Way::In, now) {
                        Fate::Pass => slot.m.handle_dhcp(now, payload),
                        Fate::Hold(at) => self.hold.put(at, Held::DhcpIn(k, payload.to_vec())),
                        Fate::Drop => {}
                    }
                    self.pump(now, k);
                }
                Some(ipv6::Frame6::Solicit {
                    target,
                    from_mac,
                    from,
                }) => {
                    // A machine's link-local address: the machine answers.
                    // A lease the host takes as local: the host (its MAC),
                    // as proxy, since its kernel answers only for the
                    // addresses of its interfaces.
                    let owner = match ipv6::eui64_mac(target) {
                        Some(mac) => self
                            .macs
                            .get(&mac)
                            .is_some_and(|&k| self.slots[k].is_some())
                            .then_some(mac),
                        None if covers(&self.sources.local6, target) => {
                            self.host_mac.filter(|_| {
                                self.slots
                                    .iter()
                                    .flatten()
                                    .any(|s| s.m.address() == Some(IpAddr::V6(target)))
                            })
                        }
                        None => None,
                    };
                    if let Some(mac) = owner {
                        ipv6::neighbor_advert_frame(mac, target, from_mac, from, &mut self.frame);
                        // A refused frame is a lost one: the kernel asks again.
                        let _ = link.send_frame(&self.frame);
                    }
                }
                None => {}
            }
        }
    }

    fn read_tftp(&mut self, now: Instant, k: usize) {
        let Some(slot) = self.slots[k].as_mut() else {
            return;
        };
        let Some((sock, server)) = &slot.tftp else {
            return;
        };
        loop {
            match sock.recv_from(&mut self.rx) {
                Ok((n, from)) if from.ip() == *server => {
                    match self.settings.faults.fate(Way::In, now) {
                        Fate::Pass => slot.m.handle_tftp(now, from.port(), &self.rx[..n]),
                        Fate::Hold(at) => {
                            let bytes = self.rx[..n].to_vec();
                            let p = Held::TftpIn(k, slot.tftp_socket, from.port(), bytes);
                            self.hold.put(at, p);
                        }
                        Fate::Drop => {}
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn on_http(&mut self, now: Instant, k: usize, writable: bool) {
        let Some(slot) = self.slots[k].as_mut() else {
            return;
        };
        let Some(c) = slot.http.as_mut() else {
            return;
        };
        if writable {
            if let Err(e) = flush(c) {
                let why = format!("HTTP to {}:{}: {e}", c.host, c.port);
                slot.m.abort(now, why);
                return;
            }
        }
        for _ in 0..READS_PER_TURN {
            // Body bytes the machine does not keep are dropped in the kernel
            // (MSG_TRUNC): counting 40 MB needs no copy of it.
            let skip = slot.m.http_discardable();
            let got = if skip > 0 {
                discard(&c.stream, skip.min(DISCARD_MAX)).map(|n| (n, true))
            } else {
                c.stream.read(&mut self.rx).map(|n| (n, false))
            };
            match got {
                Ok((0, _)) => {
                    let _ = self.poll.registry().deregister(&mut c.stream);
                    slot.http = None;
                    slot.m.handle_http_eof(now);
                    return;
                }
                Ok((n, dropped)) => {
                    c.last = now;
                    if dropped {
                        slot.m.handle_http_discarded(now, n as u64);
                    } else {
                        let _ = slot.m.handle_http(now, &self.rx[..n]);
                    }
                    if !slot.m.is_on_http() || slot.m.close_http_pending() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("HTTP from {}:{}: {e}", c.host, c.port);
                    slot.m.abort(now, why);
                    return;
                }
            }
        }
        // Still readable: come back after the other machines had their turn
        // (readiness is edge-triggered, so no new event would come).
        self.ready.push(k);
    }

    /// Delivers the held packets now due.
    fn release(&mut self, now: Instant) {
        while let Some(p) = self.hold.take_due(now) {
            let k = match &p {
                Held::DhcpOut(k, ..)
                | Held::TftpOut(k, ..)
                | Held::DhcpIn(k, _)
                | Held::TftpIn(k, ..) => *k,
            };
            // A machine that ended meanwhile gets nothing.
            let Some(slot) = self.slots[k].as_mut() else {
                continue;
            };
            match p {
                Held::DhcpOut(_, family, bytes) => dhcp_out(
                    &mut self.dhcp,
                    &mut self.settings.faults,
                    &mut self.hold,
                    &mut self.rx,
                    &mut self.frame,
                    &mut slot.m,
                    k,
                    self.settings.fleet[k].mac,
                    family,
                    now,
                    &bytes,
                ),
                Held::TftpOut(_, socket, dest, bytes) => {
                    if let Some((sock, _)) =
                        slot.tftp.as_ref().filter(|_| slot.tftp_socket == socket)
                    {
                        let _ = sock.send_to(&bytes, dest);
                    }
                }
                Held::DhcpIn(_, bytes) => slot.m.handle_dhcp(now, &bytes),
                Held::TftpIn(_, socket, port, bytes) => {
                    if slot.m.is_on_tftp() && slot.tftp.is_some() && slot.tftp_socket == socket {
                        slot.m.handle_tftp(now, port, &bytes);
                    }
                }
            }
            self.pump(now, k);
        }
    }

    /// Times out silent HTTP exchanges and machines past the deadline.
    fn sweep(&mut self, now: Instant) {
        let past_deadline = now - self.started >= self.settings.deadline;
        for k in 0..self.slots.len() {
            let Some(slot) = self.slots[k].as_mut() else {
                continue;
            };
            let mut aborted = false;
            if past_deadline {
                let why = format!(
                    "still booting at the storm's deadline ({} s)",
                    self.settings.deadline.as_secs()
                );
                slot.m.abort_for_good(now, why);
                aborted = true;
            } else if slot.m.is_on_http() {
                let silent = slot.http.as_ref().map_or(Duration::ZERO, |c| now - c.last);
                if silent >= self.settings.http_timeout {
                    let why = format!(
                        "no HTTP bytes for {} s",
                        self.settings.http_timeout.as_secs()
                    );
                    slot.m.abort(now, why);
                    aborted = true;
                }
            }
            // Ended, or started again (its new DHCP to send).
            if aborted || slot.m.is_done() {
                self.pump(now, k);
            }
        }
    }

    fn progress(&self, now: Instant, tty: bool) {
        let mut in_phase = [0usize; PHASES.len()];
        for slot in self.slots.iter().flatten() {
            in_phase[slot.m.phase() as usize] += 1;
        }
        let booted = self
            .outcomes
            .iter()
            .flatten()
            .filter(|o| o.failure.is_none())
            .count();
        let failed = self.ended - booted;
        let waiting = self.slots.len() - self.ended - in_phase.iter().sum::<usize>();
        let mut line = format!("storm {:>6.1} s:", (now - self.started).as_secs_f64());
        if waiting > 0 {
            line.push_str(&format!(" off {waiting}"));
        }
        for (p, c) in PHASES.iter().zip(in_phase) {
            if c > 0 {
                line.push_str(&format!(" {} {c}", p.name()));
            }
        }
        line.push_str(&format!(
            " | booted {booted} failed {failed} of {}",
            self.slots.len()
        ));
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }
}
