//! Conflict probes: an ICMP echo to an address before it is first offered, on
//! a raw socket bound to the boot interface. A host that answers holds the
//! address without a lease from us (a static address, another server's lease);
//! the engine then quarantines it and offers another. Probes run beside the
//! DHCP loop: a client whose address is being probed waits, no other does.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::wire::ipv4;

/// The probes in flight and their socket.
#[derive(Debug)]
pub(crate) struct Prober {
    socket: Socket,
    wait: Duration,
    id: u16,
    seq: u16,
    due: HashMap<Ipv4Addr, Instant>,
}

impl Prober {
    /// A raw ICMP socket on `iface` (needs CAP_NET_RAW); probes wait `wait`.
    pub(crate) fn open(iface: &str, wait: Duration) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        socket.bind_device(Some(iface.as_bytes()))?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            wait,
            // Tells our echoes' replies from those of other pingers on the host.
            id: (std::process::id() & 0xffff) as u16,
            seq: 0,
            due: HashMap::new(),
        })
    }

    /// The descriptor to poll for replies.
    pub(crate) fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// Sends an echo to `ip`; its answer is due by `now + wait`. A failed send
    /// is logged and the probe simply times out (the address counts as free).
    pub(crate) fn start(&mut self, ip: Ipv4Addr, now: Instant) {
        self.seq = self.seq.wrapping_add(1);
        let echo = ipv4::echo_request(self.id, self.seq);
        let to = SockAddr::from(SocketAddrV4::new(ip, 0));
        if let Err(e) = self.socket.send_to(&echo, &to) {
            tracing::debug!(%ip, error = %e, "dhcp: conflict probe not sent");
        }
        self.due.insert(ip, now + self.wait);
    }

    /// Addresses whose echo was answered since the last call.
    pub(crate) fn answered(&mut self) -> Vec<Ipv4Addr> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        loop {
            match (&self.socket).read(&mut buf) {
                Ok(n) => {
                    let reply = buf.get(..n).and_then(ipv4::echo_reply);
                    if let Some((ip, id)) = reply {
                        if id == self.id && self.due.remove(&ip).is_some() {
                            out.push(ip);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "dhcp: conflict probe socket");
                    return out;
                }
            }
        }
    }

    /// Addresses whose wait ended at `now` with no answer.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<Ipv4Addr> {
        let mut out = Vec::new();
        self.due.retain(|ip, at| {
            let due = *at <= now;
            if due {
                out.push(*ip);
            }
            !due
        });
        out
    }

    /// When the next probe's wait ends.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}
