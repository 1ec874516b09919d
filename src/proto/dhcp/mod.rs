//! DHCPv4 for network boot, sans-IO: a full server (pools, reservations, leases)
//! or a proxyDHCP server (boot answers only). This file decides (which address,
//! whether to answer); policy.rs picks the boot answer, reply.rs writes the
//! replies and where they go, subnet.rs holds the pools' arithmetic.
//!
//! [`Engine::handle`] takes one received datagram, where it arrived and `now`
//! (unix seconds: leases outlive the process, so they are kept in wall time) and
//! writes at most one reply with where it must go ([`Dest`], RFC 2131 §4.1).
//! Lease changes are queued as journal records in the table; the backend makes
//! them durable ([`Engine::take_journal`]) before it sends the replies.

pub mod policy;
mod reply;
mod subnet;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::lease::{Entry, Lease, Table};
use crate::wire::dhcp::{code, MessageType, Options, Packet, PXE_PORT, SERVER_PORT};
use policy::{Action, Rule};
pub use subnet::{Host, Subnet};

/// Full server or proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Owns the addresses of its subnets.
    #[default]
    Server,
    /// Another server gives addresses; this one only says what to boot.
    Proxy,
}

/// Everything the engine is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Server or proxy.
    pub mode: Mode,
    /// NAK requests for addresses this server does not know, on its subnets.
    pub authoritative: bool,
    /// How long an offered address stays reserved for its client, seconds.
    pub offer_secs: u64,
    /// How long a declined address stays out of use, seconds.
    pub decline_secs: u64,
    /// Subnets (server mode).
    pub subnets: Vec<Subnet>,
    /// Reservations.
    pub hosts: Vec<Host>,
    /// Boot policy, first match wins.
    pub rules: Vec<Rule>,
    /// The HTTP port, for `{http}` in boot URLs.
    pub http_port: u16,
    /// Probe an address for another user (conflict detection) before it is
    /// first offered: the engine asks with [`Outcome::Probe`] and the backend
    /// answers with [`Engine::probe_result`].
    pub probe: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Server,
            authoritative: true,
            offer_secs: 30,
            decline_secs: 600,
            subnets: Vec::new(),
            hosts: Vec::new(),
            rules: policy::defaults(),
            http_port: 80,
            probe: false,
        }
    }
}

/// Where a datagram came in.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The datagram.
    pub bytes: &'a [u8],
    /// The server's address on the interface it arrived on (its server identifier).
    pub server: Ipv4Addr,
    /// The local port (67, or 4011 for proxyDHCP requests).
    pub port: u16,
    /// The sender.
    pub peer: SocketAddrV4,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To a relay agent, port 67.
    Relay(SocketAddrV4),
    /// To a client that has an address (or to a proxyDHCP requester).
    Unicast(SocketAddrV4),
    /// To 255.255.255.255:68 on the interface.
    Broadcast,
    /// To a client with no address yet: a frame to its MAC, IP `ip`, port 68.
    Link {
        /// Destination MAC.
        mac: [u8; 6],
        /// Destination IP (the offered address).
        ip: Ipv4Addr,
    },
}

/// A reply the engine wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Bytes written into the output buffer.
    pub len: usize,
    /// Where they go.
    pub to: Dest,
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// The address given (unspecified for NAK, INFORM and proxy answers).
    pub ip: Ipv4Addr,
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send this.
    Reply(Reply),
    /// Understood, no reply due (a RELEASE, a DECLINE, a REQUEST for another
    /// server, a client this mode does not serve); the reason names it.
    Quiet(&'static str),
    /// Not a usable message (counted and dropped); the reason names it.
    Dropped(&'static str),
    /// Before offering this address, find out whether something already uses
    /// it (an ICMP echo); report with [`Engine::probe_result`]. The address is
    /// held meanwhile, and the client's retransmissions wait for the result.
    Probe(Ipv4Addr),
}

/// Counts of what the engine did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handled.
    pub received: u64,
    /// OFFERs written.
    pub offers: u64,
    /// ACKs written.
    pub acks: u64,
    /// NAKs written.
    pub naks: u64,
    /// Messages answered by no reply, by reason.
    pub quiet: HashMap<&'static str, u64>,
    /// Datagrams dropped, by reason.
    pub dropped: HashMap<&'static str, u64>,
    /// Addresses found in use by a probe (then quarantined like a DECLINE).
    pub conflicts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    ip: Ipv4Addr,
    until: u64,
}

/// A DISCOVER waiting for the probe of the address it is to be offered.
#[derive(Debug)]
struct Probing {
    client: Box<[u8]>,
    datagram: Box<[u8]>,
    server: Ipv4Addr,
    peer: SocketAddrV4,
}

/// The DHCP engine: settings, the lease table and the outstanding offers.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    table: Table,
    offers: HashMap<Box<[u8]>, Offer>,
    offered: HashMap<Ipv4Addr, Box<[u8]>>,
    reserved: HashMap<Ipv4Addr, [u8; 6]>,
    cursors: Vec<u64>,
    probing: HashMap<Ipv4Addr, Probing>,
    counters: Counters,
}

/// The decided boot answer for one request.
struct Boot<'a> {
    rule: &'a Rule,
    action: &'a Action,
    file: Option<String>,
}

impl Engine {
    /// An engine over `table` (replayed from the journal).
    pub fn new(settings: Settings, table: Table) -> Self {
        let reserved = settings
            .hosts
            .iter()
            .filter_map(|h| Some((h.ip?, h.mac)))
            .collect();
        let cursors = vec![0; settings.subnets.len()];
        Self {
            settings,
            table,
            offers: HashMap::new(),
            offered: HashMap::new(),
            reserved,
            cursors,
            probing: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The lease table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Journal records queued since the last call; write and sync them before
    /// sending the replies of the batch.
    pub fn take_journal(&mut self) -> Vec<u8> {
        self.table.take_pending()
    }

    /// Puts back records whose write failed (see [`Table::restore_pending`]).
    pub fn restore_journal(&mut self, bytes: Vec<u8>) {
        self.table.restore_pending(bytes);
    }

    /// Handles one datagram at `now` (unix seconds), writing any reply into `out`.
    pub fn handle(&mut self, input: &Input<'_>, now: u64, out: &mut [u8]) -> Outcome {
        self.counters.received += 1;
        if self.counters.received % 4096 == 0 {
            self.expire_offers(now);
        }
        let outcome = self.dispatch(input, now, out);
        self.count(outcome)
    }

    /// Reports the probe of `ip` asked for by [`Outcome::Probe`]: `in_use` when
    /// something answered. A free address is offered (the reply is written into
    /// `out`); one in use is quarantined for `decline_secs` and the client's
    /// DISCOVER is answered again with another address, which may be probed in
    /// turn.
    pub fn probe_result(
        &mut self,
        ip: Ipv4Addr,
        in_use: bool,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        let Some(waiting) = self.probing.remove(&ip) else {
            return self.count(Outcome::Quiet("no probe for this address"));
        };
        if in_use {
            self.counters.conflicts += 1;
            self.drop_offer(&waiting.client);
            self.table.decline(ip, now + self.settings.decline_secs);
        }
        let input = Input {
            bytes: &waiting.datagram,
            server: waiting.server,
            port: SERVER_PORT,
            peer: waiting.peer,
        };
        let outcome = self.dispatch(&input, now, out);
        self.count(outcome)
    }

    /// Addresses being probed.
    pub fn probing(&self) -> usize {
        self.probing.len()
    }

    fn count(&mut self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Reply(r) => match r.kind {
                MessageType::Offer => self.counters.offers += 1,
                MessageType::Nak => self.counters.naks += 1,
                _ => self.counters.acks += 1,
            },
            Outcome::Quiet(why) => *self.counters.quiet.entry(why).or_default() += 1,
            Outcome::Dropped(why) => *self.counters.dropped.entry(why).or_default() += 1,
            Outcome::Probe(_) => {}
        }
        outcome
    }

    fn dispatch(&mut self, input: &Input<'_>, now: u64, out: &mut [u8]) -> Outcome {
        match Packet::new_checked(input.bytes) {
            Err(e) => Outcome::Dropped(e.kind()),
            Ok(p) if p.op() != 1 => Outcome::Dropped("not a request"),
            Ok(p) => match p.options() {
                Err(e) => Outcome::Dropped(e.kind()),
                Ok(o) => match o.message_type() {
                    None => Outcome::Quiet("BOOTP without DHCP message type"),
                    Some(t) => match self.settings.mode {
                        Mode::Server => self.server(&p, &o, t, input, now, out),
                        Mode::Proxy => self.proxy(&p, &o, t, input, out),
                    },
                },
            },
        }
    }

    fn server(
        &mut self,
        p: &Packet<'_>,
        o: &Options<'_>,
        t: MessageType,
        input: &Input<'_>,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        if input.port == PXE_PORT {
            return Outcome::Quiet("port 4011 in server mode");
        }
        let Some(subnet) = self.subnet_of(p, input) else {
            return Outcome::Quiet("no subnet for this client");
        };
        let client = client_key(p, o);
        let requested = o.ip(code::REQUESTED_IP);
        match t {
            MessageType::Discover => {
                let held = self.offers.get(&client).copied().filter(|x| x.until > now);
                if held.is_some_and(|x| self.probing.contains_key(&x.ip)) {
                    return Outcome::Quiet("probe of its address in progress");
                }
                let Some(ip) = self.choose(subnet, &client, p.mac(), requested, now) else {
                    return Outcome::Quiet("pool exhausted");
                };
                // Probed once already, or the client's own: no second probe.
                let known = held.is_some_and(|x| x.ip == ip)
                    || self.table.of_client(&client).is_some_and(|l| l.ip == ip)
                    || self.reservation_for(p.mac()) == Some(ip);
                if let Some(old) = self.offers.insert(
                    client.clone(),
                    Offer {
                        ip,
                        until: now + self.settings.offer_secs,
                    },
                ) {
                    if old.ip != ip {
                        self.offered.remove(&old.ip);
                    }
                }
                self.offered.insert(ip, client.clone());
                if self.settings.probe && !known {
                    self.probing.insert(
                        ip,
                        Probing {
                            client,
                            datagram: input.bytes.into(),
                            server: input.server,
                            peer: input.peer,
                        },
                    );
                    return Outcome::Probe(ip);
                }
                self.answer(p, o, input, subnet, MessageType::Offer, ip, out)
            }
            MessageType::Request => self.request(p, o, input, subnet, client, requested, now, out),
            MessageType::Decline => {
                let Some(ip) = requested else {
                    return Outcome::Dropped("DECLINE without an address");
                };
                let ours = self.table.of_client(&client).is_some_and(|l| l.ip == ip)
                    || self.offers.get(&client).is_some_and(|x| x.ip == ip);
                if !ours {
                    return Outcome::Quiet("DECLINE of an address not given to this client");
                }
                self.drop_offer(&client);
                self.table.decline(ip, now + self.settings.decline_secs);
                Outcome::Quiet("declined")
            }
            MessageType::Release => {
                let ip = p.ciaddr();
                if self.table.of_client(&client).is_some_and(|l| l.ip == ip) {
                    self.table.free(ip);
                    self.rewind(ip);
                    Outcome::Quiet("released")
                } else {
                    Outcome::Quiet("RELEASE of an address not leased to this client")
                }
            }
            MessageType::Inform => self.answer(
                p,
                o,
                input,
                subnet,
                MessageType::Ack,
                Ipv4Addr::UNSPECIFIED,
                out,
            ),
            _ => Outcome::Dropped("server message from a client"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        p: &Packet<'_>,
        o: &Options<'_>,
        input: &Input<'_>,
        subnet: usize,
        client: Box<[u8]>,
        requested: Option<Ipv4Addr>,
        now: u64,
        out: &mut [u8],
    ) -> Outcome {
        let ciaddr = p.ciaddr();
        let held = self
            .table
            .of_client(&client)
            .map(|l| l.ip)
            .filter(|ip| self.table.is_free_for(*ip, &client, now));
        let ip = if let Some(server_id) = o.ip(code::SERVER_ID) {
            // SELECTING: the client picked one OFFER among several.
            if server_id != input.server {
                self.drop_offer(&client);
                return Outcome::Quiet("client chose another server");
            }
            let offered = self.offers.get(&client).map(|x| x.ip);
            match requested {
                Some(ip) if offered == Some(ip) || held == Some(ip) => ip,
                _ => return self.nak(p, o, input, "requested address was not offered", out),
            }
        } else if ciaddr.is_unspecified() {
            // INIT-REBOOT: a client that remembers its address.
            let Some(ip) = requested else {
                return Outcome::Dropped("REQUEST without an address");
            };
            if !self.settings.subnets[subnet].contains(ip) {
                return self.nak(p, o, input, "address not on this network", out);
            }
            if held != Some(ip) {
                let usable = self.usable(subnet, ip, &client, p.mac(), now)
                    || self.reservation_for(p.mac()) == Some(ip);
                if !self.settings.authoritative {
                    return Outcome::Quiet("no record of this client (not authoritative)");
                }
                if !usable {
                    return self.nak(p, o, input, "address not available", out);
                }
            }
            ip
        } else {
            // RENEWING (unicast) or REBINDING (broadcast).
            if held != Some(ciaddr) {
                return if self.settings.authoritative
                    && self.settings.subnets[subnet].contains(ciaddr)
                {
                    self.nak(p, o, input, "no lease for this address", out)
                } else {
                    Outcome::Quiet("no lease for this address")
                };
            }
            ciaddr
        };
        let lease_secs = self.settings.subnets[subnet].lease_secs;
        let hostname = self
            .host_of(p.mac())
            .and_then(|h| h.hostname.clone())
            .or_else(|| {
                o.get(code::HOSTNAME)
                    .and_then(|h| String::from_utf8(h.into_owned()).ok())
            })
            .unwrap_or_default();
        // The offer becomes the lease (an offer of another address is given back).
        match self.offers.get(&client) {
            Some(o) if o.ip == ip => {
                self.offers.remove(&client);
                self.offered.remove(&ip);
            }
            _ => self.drop_offer(&client),
        }
        self.table.bind(Lease {
            ip,
            client,
            hw: p.chaddr().into(),
            hostname: hostname.into(),
            expires: now + u64::from(lease_secs),
        });
        self.answer(p, o, input, subnet, MessageType::Ack, ip, out)
    }

    /// The subnet a request belongs to: the relay's, else the client's current
    /// address's, else the receiving interface's.
    fn subnet_of(&self, p: &Packet<'_>, input: &Input<'_>) -> Option<usize> {
        let find = |ip: Ipv4Addr| self.settings.subnets.iter().position(|s| s.contains(ip));
        if !p.giaddr().is_unspecified() {
            return find(p.giaddr());
        }
        find(input.server)
    }

    fn host_of(&self, mac: Option<[u8; 6]>) -> Option<&Host> {
        let mac = mac?;
        self.settings.hosts.iter().find(|h| h.mac == mac)
    }

    fn reservation_for(&self, mac: Option<[u8; 6]>) -> Option<Ipv4Addr> {
        self.host_of(mac)?.ip
    }

    /// Whether `ip` may be offered to `client` now.
    fn usable(
        &self,
        subnet: usize,
        ip: Ipv4Addr,
        client: &[u8],
        mac: Option<[u8; 6]>,
        now: u64,
    ) -> bool {
        let s = &self.settings.subnets[subnet];
        s.in_ranges(ip)
            && ip != s.network
            && ip != s.broadcast()
            && !s.exclude.contains(&ip)
            && self.reserved.get(&ip).is_none_or(|m| Some(*m) == mac)
            && self.table.is_free_for(ip, client, now)
            && self
                .offered
                .get(&ip)
                .is_none_or(|c| **c == *client || self.offers.get(c).is_none_or(|o| o.until <= now))
    }

    /// The address to offer: the reservation, the outstanding offer, the
    /// client's last lease, the address it asks for, else the next free one in
    /// order.
    fn choose(
        &mut self,
        subnet: usize,
        client: &[u8],
        mac: Option<[u8; 6]>,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = self.reservation_for(mac) {
            if self.settings.subnets[subnet].contains(ip) {
                return Some(ip);
            }
        }
        let offered = self
            .offers
            .get(client)
            .filter(|o| o.until > now)
            .map(|o| o.ip);
        let held = self.table.of_client(client).map(|l| l.ip);
        for ip in [offered, held, requested].into_iter().flatten() {
            if self.usable(subnet, ip, client, mac, now) {
                return Some(ip);
            }
        }
        let size = self.settings.subnets[subnet].size();
        let start = self.cursors[subnet];
        // First pass, in order from the cursor: addresses no other client ever
        // held. Second pass: expired leases of other clients.
        let fresh =
            |ip| !matches!(self.table.get(ip), Some(Entry::Bound(l)) if *l.client != *client);
        for step in 0..size {
            let i = (start + step) % size;
            let ip = self.settings.subnets[subnet].nth(i)?;
            if fresh(ip) && self.usable(subnet, ip, client, mac, now) {
                self.cursors[subnet] = (i + 1) % size;
                return Some(ip);
            }
        }
        (0..size)
            .filter_map(|i| self.settings.subnets[subnet].nth(i))
            .find(|ip| self.usable(subnet, *ip, client, mac, now))
    }

    fn drop_offer(&mut self, client: &[u8]) {
        if let Some(o) = self.offers.remove(client) {
            if self.offered.get(&o.ip).is_some_and(|c| **c == *client) {
                self.offered.remove(&o.ip);
                self.rewind(o.ip);
            }
        }
    }

    /// Moves the allocation cursor back to `ip` when it became free below it,
    /// so that the pool stays packed from its start.
    fn rewind(&mut self, ip: Ipv4Addr) {
        for (s, cursor) in self.settings.subnets.iter().zip(&mut self.cursors) {
            if let Some(i) = s.index(ip) {
                *cursor = (*cursor).min(i);
            }
        }
    }

    fn expire_offers(&mut self, now: u64) {
        self.offers.retain(|_, o| o.until > now);
        let offers = &self.offers;
        self.offered
            .retain(|ip, c| offers.get(c).is_some_and(|o| o.ip == *ip));
    }

    /// Outstanding offers (not yet expired at `now`).
    pub fn offers(&self, now: u64) -> usize {
        self.offers.values().filter(|o| o.until > now).count()
    }
}

/// The client's identity: option 61 when sent, else htype + chaddr. An option
/// 61 that is just htype + chaddr (what EDK2 sends) names the hardware address
/// too: iPXE and the installer on the same NIC send none, and must find the
/// same lease, as they do with dnsmasq (one address per machine, not three).
fn client_key(p: &Packet<'_>, o: &Options<'_>) -> Box<[u8]> {
    let hardware = || [&[1u8, p.htype()][..], p.chaddr()].concat().into();
    match o.get(code::CLIENT_ID) {
        Some(id) if id.first() == Some(&p.htype()) && id.get(1..) == Some(p.chaddr()) => hardware(),
        Some(id) if !id.is_empty() => [&[0u8][..], &id].concat().into(),
        _ => hardware(),
    }
}
