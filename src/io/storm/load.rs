//! `rackboot storm --until dhcp --rate N --duration S`: an open-loop stream
//! of new machines' DHCP at a fixed rate, to measure a server past where
//! perfdhcp stops. Machine `i` sends its DISCOVER at `i / rate` seconds
//! whatever the server did before (open loop: a slow server is not given
//! time it did not earn), its REQUEST as soon as an OFFER arrives, and is
//! answered when its ACK arrives. Each machine has its own MAC and xid.
//!
//! The frames go out as raw Ethernet broadcasts on an interface, or as UDP
//! from a relay's address (giaddr, port 67) to the servers, as dhcrelay
//! sends them. One thread, one socket, sends batched per millisecond; the
//! report counts answered, late, unanswered and NAKed machines, addresses
//! ACKed to two MACs, and the DISCOVER-to-ACK latency.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::io::clock;
use crate::io::link::Link;
use crate::wire::dhcp::{code, MessageType, Packet, Writer};

/// How the frames travel.
#[derive(Debug)]
pub enum Path {
    /// Raw broadcasts on a link, from each machine's MAC.
    Raw(Link),
    /// UDP from a relay's address to the servers.
    Relay {
        /// Bound to the relay's address, port 67.
        socket: UdpSocket,
        /// The relay's address (giaddr).
        relay: Ipv4Addr,
        /// Where each message goes (every one, as a relay sends).
        servers: Vec<SocketAddrV4>,
    },
}

/// What to play.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// New machines a second.
    pub rate: u32,
    /// How long machines keep coming.
    pub duration: Duration,
    /// An ACK later than this after its DISCOVER counts as late.
    pub late: Duration,
    /// How long answers are awaited after the last DISCOVER.
    pub grace: Duration,
    /// Picks the MACs and xids (a different seed, different machines).
    pub seed: u64,
}

/// What the stream saw.
#[derive(Debug)]
pub struct Report {
    /// Machines that sent a DISCOVER.
    pub machines: u64,
    /// Of them, OFFERed, and ACKed.
    pub offered: u64,
    /// ACKed.
    pub answered: u64,
    /// ACKed, later than [`Load::late`].
    pub late: u64,
    /// NAKed.
    pub naked: u64,
    /// Addresses ACKed to two machines.
    pub duplicates: u64,
    /// Sends the kernel refused (a full queue).
    pub send_errors: u64,
    /// DISCOVER to ACK, microseconds.
    pub latency: hdrhistogram::Histogram<u64>,
    /// From the first DISCOVER to the last DISCOVER sent.
    pub sending: Duration,
    /// This process's CPU time.
    pub cpu: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Exchange {
    /// Nanoseconds from the start to the DISCOVER.
    sent: u64,
    requested: bool,
    done: bool,
}

/// The MAC of machine `i`: locally administered, unicast, from the seed.
fn mac(seed: u64, i: u32) -> [u8; 6] {
    let s = (seed as u16).to_be_bytes();
    let b = i.to_be_bytes();
    [0x02 | (s[0] & 0xfc), s[1], b[0], b[1], b[2], b[3]]
}

/// The xid of machine `i` (the index is recovered from it).
fn xid(seed: u64, i: u32) -> u32 {
    i ^ ((seed as u32) & 0xfff0_0000)
}

fn index(seed: u64, xid: u32) -> u32 {
    xid ^ ((seed as u32) & 0xfff0_0000)
}

/// A DISCOVER, or a REQUEST for `offer` from `server`, of machine `i`.
fn message(
    out: &mut [u8],
    seed: u64,
    i: u32,
    relay: Option<Ipv4Addr>,
    request: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Option<usize> {
    let mut w = Writer::request(out, xid(seed, i), mac(seed, i), relay.is_none()).ok()?;
    if let Some(r) = relay {
        w.giaddr(r);
        w.hops(1);
    }
    match request {
        None => w.message_type(MessageType::Discover).ok()?,
        Some((ip, server)) => {
            w.message_type(MessageType::Request).ok()?;
            w.option(code::REQUESTED_IP, &ip.octets()).ok()?;
            w.option(code::SERVER_ID, &server.octets()).ok()?;
        }
    }
    w.option(code::PARAMS, &[1, 3, 6, 15, 28, 42]).ok()?;
    w.finish().ok()
}

impl Path {
    fn send(&self, bytes: &[u8], from: [u8; 6], frame: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Path::Raw(link) => link.send_dhcp(from, bytes, frame),
            Path::Relay {
                socket, servers, ..
            } => {
                for s in servers {
                    socket.send_to(bytes, *s)?;
                }
                Ok(())
            }
        }
    }

    fn recv<'b>(&self, buf: &'b mut [u8]) -> std::io::Result<Option<&'b [u8]>> {
        match self {
            Path::Raw(link) => Ok(link.recv_dhcp(buf)?.map(|r| &buf[r])),
            Path::Relay { socket, .. } => match socket.recv_from(buf) {
                Ok((n, _)) => Ok(Some(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Path::Raw(link) => link.raw_fd(),
            Path::Relay { socket, .. } => std::os::fd::AsRawFd::as_raw_fd(socket),
        }
    }

    fn relay(&self) -> Option<Ipv4Addr> {
        match self {
            Path::Raw(_) => None,
            Path::Relay { relay, .. } => Some(*relay),
        }
    }
}

/// Opens the relay's socket on `relay`:67, to send to `servers`.
///
/// # Errors
/// The address cannot be bound (not this host's, or port 67 taken).
pub fn relay(relay: Ipv4Addr, servers: &[Ipv4Addr]) -> Result<Path, String> {
    let socket = UdpSocket::bind(SocketAddr::from((relay, 67)))
        .map_err(|e| format!("--relay {relay}: cannot bind {relay}:67: {e} (give an address of this host, and run as root)"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("--relay: {e}"))?;
    let s2 = socket2::SockRef::from(&socket);
    let _ = s2.set_recv_buffer_size(8 << 20);
    let _ = s2.set_send_buffer_size(8 << 20);
    Ok(Path::Relay {
        socket,
        relay,
        servers: servers.iter().map(|&s| SocketAddrV4::new(s, 67)).collect(),
    })
}

/// Plays `load` over `path`.
pub fn run(path: &Path, load: Load) -> Report {
    let total = (u64::from(load.rate) * load.duration.as_millis() as u64 / 1000) as u32;
    let mut ex = vec![Exchange::default(); total as usize];
    let mut owner: HashMap<Ipv4Addr, u32> = HashMap::new();
    let (mut out, mut rx, mut frame) = ([0u8; 600], [0u8; 2048], Vec::with_capacity(700));
    let mut report = Report {
        machines: 0,
        offered: 0,
        answered: 0,
        late: 0,
        naked: 0,
        duplicates: 0,
        send_errors: 0,
        latency: hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        sending: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    let cpu0 = super::sys::process_cpu();
    let start: Instant = clock::now();
    let relay = path.relay();
    let late_ns = load.late.as_nanos() as u64;
    let mut next = 0u32;
    loop {
        let now = clock::now();
        let elapsed = now.duration_since(start);
        // Every DISCOVER due by now (open loop).
        let due = ((elapsed.as_nanos() * u128::from(load.rate)) / 1_000_000_000)
            .min(u128::from(total)) as u32;
        while next < due {
            let i = next;
            next += 1;
            if let Some(len) = message(&mut out, load.seed, i, relay, None) {
                ex[i as usize].sent = now.duration_since(start).as_nanos() as u64;
                if path
                    .send(&out[..len], mac(load.seed, i), &mut frame)
                    .is_err()
                {
                    report.send_errors += 1;
                }
                report.machines += 1;
            }
        }
        if next == total && report.sending.is_zero() {
            report.sending = elapsed;
        }
        // Every reply waiting.
        while let Ok(Some(got)) = path.recv(&mut rx) {
            let Ok(p) = Packet::new_checked(got) else {
                continue;
            };
            let i = index(load.seed, p.xid());
            if p.op() != 2 || i >= total || p.chaddr() != mac(load.seed, i) {
                continue;
            }
            let Ok(opts) = p.options() else {
                continue;
            };
            let e = &mut ex[i as usize];
            match opts.message_type() {
                Some(MessageType::Offer) if !e.requested => {
                    e.requested = true;
                    report.offered += 1;
                    let server = opts.ip(code::SERVER_ID).unwrap_or(p.siaddr());
                    let ip = p.yiaddr();
                    if let Some(len) = message(&mut out, load.seed, i, relay, Some((ip, server))) {
                        if path
                            .send(&out[..len], mac(load.seed, i), &mut frame)
                            .is_err()
                        {
                            report.send_errors += 1;
                        }
                    }
                }
                Some(MessageType::Ack) if !e.done => {
                    e.done = true;
                    report.answered += 1;
                    let took = (clock::now().duration_since(start).as_nanos() as u64)
                        .saturating_sub(e.sent);
                    if took > late_ns {
                        report.late += 1;
                    }
                    let _ = report.latency.record((took / 1000).max(1));
                    if let Some(prev) = owner.insert(p.yiaddr(), i) {
                        if prev != i {
                            report.duplicates += 1;
                        }
                    }
                }
                Some(MessageType::Nak) if !e.done => {
                    e.done = true;
                    report.naked += 1;
                }
                _ => {}
            }
        }
        if next == total
            && (report.answered + report.naked == u64::from(total)
                || elapsed >= report.sending + load.grace)
        {
            break;
        }
        // Sleep until the next DISCOVER is due or a reply comes (a
        // millisecond at most: sends go out in per-millisecond batches).
        let mut pfd = libc::pollfd {
            fd: path.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = if next < total { 1 } else { 10 };
        // SAFETY: one valid pollfd for the call.
        unsafe { libc::poll(&raw mut pfd, 1, wait) };
    }
    report.cpu = super::sys::process_cpu().saturating_sub(cpu0);
    report
}

impl Report {
    /// Machines that got no ACK or NAK.
    pub fn unanswered(&self) -> u64 {
        self.machines - self.answered - self.naked
    }

    /// The report as text lines.
    pub fn text(&self, load: &Load) -> String {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        let secs = self.sending.as_secs_f64().max(1e-9);
        format!(
            "dhcp load: {} machines at {} a second for {:.1} s (sent at {:.0}/s)\n\
             answered {} ({} later than {} ms), unanswered {}, NAKed {}, addresses ACKed twice {}\n\
             DISCOVER to ACK: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             storm CPU {:.2} s ({:.1} ms per 1,000 exchanges); sends refused {}\n",
            self.machines,
            load.rate,
            load.duration.as_secs_f64(),
            self.machines as f64 / secs,
            self.answered,
            self.late,
            load.late.as_millis(),
            self.unanswered(),
            self.naked,
            self.duplicates,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            self.latency.max() as f64 / 1000.0,
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / (self.machines.max(1) as f64),
            self.send_errors,
        )
    }

    /// The report as JSON.
    pub fn json(&self, load: &Load) -> serde_json::Value {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        serde_json::json!({
            "schema": "rackboot-dhcp-load/1",
            "rate": load.rate,
            "duration_s": load.duration.as_secs_f64(),
            "machines": self.machines,
            "sent_per_s": self.machines as f64 / self.sending.as_secs_f64().max(1e-9),
            "offered": self.offered,
            "answered": self.answered,
            "late": self.late,
            "late_ms": load.late.as_millis() as u64,
            "unanswered": self.unanswered(),
            "naked": self.naked,
            "duplicates": self.duplicates,
            "send_errors": self.send_errors,
            "p50_ms": ms(0.5),
            "p90_ms": ms(0.9),
            "p99_ms": ms(0.99),
            "max_ms": self.latency.max() as f64 / 1000.0,
            "cpu_s": self.cpu.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_have_distinct_macs_and_xids_that_name_them_back() {
        let seed = 0x1234_5678_9abc;
        let mut macs = std::collections::HashSet::new();
        for i in (0..2_000_000u32).step_by(997) {
            assert_eq!(index(seed, xid(seed, i)), i);
            let m = mac(seed, i);
            assert_eq!(m[0] & 0x03, 0x02, "locally administered, unicast");
            assert!(macs.insert(m));
        }
        let mut out = [0u8; 600];
        let relay = Ipv4Addr::new(10, 0, 0, 2);
        let len = message(&mut out, seed, 7, Some(relay), None).unwrap();
        let p = Packet::new_checked(&out[..len]).unwrap();
        assert_eq!((p.giaddr(), p.xid()), (relay, xid(seed, 7)));
        assert_eq!(
            p.options().unwrap().message_type(),
            Some(MessageType::Discover)
        );
        let len = message(&mut out, seed, 7, None, Some((relay, relay))).unwrap();
        let p = Packet::new_checked(&out[..len]).unwrap();
        assert_eq!(
            p.options().unwrap().message_type(),
            Some(MessageType::Request)
        );
        assert_eq!(p.flags() & 0x8000, 0x8000, "raw: a broadcast reply asked");
    }
}
