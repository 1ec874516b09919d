//! What the fault model holds back, and a machine's DHCP message on its way
//! to the server (through the in-process engine, or out on the link).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

use super::Dhcp;
use crate::proto::dhcp::{Input, Outcome as DhcpOutcome};
use crate::proto::dhcp6::Input as Input6;
use crate::sim::dhcp6::link_local;
use crate::sim::faults::{Fate, Faults, Way};
use crate::sim::fleet::Family;
use crate::sim::machine::Machine;
use crate::wire::dhcp6::CLIENT_PORT;
use crate::wire::ipv6;

/// A packet the fault model holds back.
#[derive(Debug)]
pub(super) enum Held {
    /// Machine `k`'s DHCP message, of its family.
    DhcpOut(usize, Family, Vec<u8>),
    /// Machine `k`'s TFTP datagram to an address, from its `n`th socket.
    TftpOut(usize, u32, SocketAddr, Vec<u8>),
    /// A DHCP message (either family) for machine `k`.
    DhcpIn(usize, Vec<u8>),
    /// A TFTP datagram for machine `k`'s `n`th socket from the server's port.
    TftpIn(usize, u32, u16, Vec<u8>),
}

/// Packets held back, due at their instants (a sequence number keeps
/// packets due together in the order they were held).
#[derive(Debug, Default)]
pub(super) struct Hold {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    packets: HashMap<u64, Held>,
    seq: u64,
}

impl Hold {
    pub(super) fn put(&mut self, at: Instant, p: Held) {
        self.seq += 1;
        self.due.push(Reverse((at, self.seq)));
        self.packets.insert(self.seq, p);
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|r| r.0 .0)
    }

    pub(super) fn take_due(&mut self, now: Instant) -> Option<Held> {
        let &Reverse((at, id)) = self.due.peek()?;
        if at > now {
            return None;
        }
        self.due.pop();
        self.packets.remove(&id)
    }
}

/// Machine `m`'s DHCP message `bytes` of `family` reaches the server: an
/// engine's answer comes back through the fault model; a link's goes out
/// as a frame (DHCPv6 from the machine's link-local address). With no
/// DHCPv6 here, a DHCPv6 message goes nowhere: the machine's schedule runs
/// out and names it.
#[allow(clippy::too_many_arguments)]
pub(super) fn dhcp_out(
    dhcp: &mut Dhcp,
    faults: &mut Faults,
    hold: &mut Hold,
    rx: &mut [u8],
    frame: &mut Vec<u8>,
    m: &mut Machine,
    k: usize,
    mac: [u8; 6],
    family: Family,
    now: Instant,
    bytes: &[u8],
) {
    let reply = match (family, dhcp) {
        (Family::V4, Dhcp::Engine { engine, server, .. }) => {
            let input = Input {
                bytes,
                server: *server,
                port: 67,
                peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            };
            engine.handle_timeout(now);
            match engine.handle(now, input, rx) {
                Ok(DhcpOutcome::Reply(r)) => Some(r.len),
                _ => None,
            }
        }
        (
            Family::V6,
            Dhcp::Engine {
                v6: Some((engine, server)),
                ..
            },
        ) => {
            let input = Input6 {
                bytes,
                peer: SocketAddrV6::new(link_local(mac), CLIENT_PORT, 0, 1),
                local: *server,
            };
            engine.handle_timeout(now);
            engine.handle(now, input, rx).ok().map(|r| r.len)
        }
        // A frame the queue refused is lost on the wire, as on a busy link;
        // the client's retransmission covers it.
        (Family::V4, Dhcp::Raw { link, .. }) => {
            let _ = link.send_dhcp(mac, bytes, frame);
            None
        }
        (Family::V6, Dhcp::Raw { v6: Some(link), .. }) => {
            ipv6::dhcp6_frame(mac, link_local(mac), bytes, frame);
            let _ = link.send_frame(frame);
            None
        }
        (Family::V6, _) => None,
    };
    if let Some(len) = reply {
        match faults.fate(Way::In, now) {
            Fate::Pass => m.handle_dhcp(now, &rx[..len]),
            Fate::Hold(at) => hold.put(at, Held::DhcpIn(k, rx[..len].to_vec())),
            Fate::Drop => {}
        }
    }
}
