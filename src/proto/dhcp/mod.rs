//! DHCPv4 for network boot, sans-IO: a full server (pools, reservations, leases)
//! or a proxyDHCP server (boot answers only). This file decides (which address,
//! whether to answer); policy.rs picks the boot answer, reply.rs writes the
//! replies and where they go, subnet.rs holds the pools' arithmetic.
//!
//! The contract is every engine's: [`Engine::handle`] takes `now`, one received
//! datagram and where it arrived ([`Input`], parsed once into a [`Request`]),
//! and writes at most one reply with where it must go ([`Dest`], RFC 2131 §4.1);
//! an `Err` is why nothing of its own was sent (error.rs maps it to a NAK or to
//! silence, and names its counter). Held offers expire by the engine's timer
//! ([`Engine::poll_timeout`], [`Engine::handle_timeout`]). Time is the
//! monotonic `Instant` of the other engines; leases outlive the process, so the
//! table keeps unix seconds, derived from the wall clock read once at start plus
//! the monotonic time since (a clock step while serving moves no lease).
//! Lease changes are queued as journal records in the table; the backend makes
//! them durable ([`Engine::take_journal`]) before it sends the replies.

pub mod balance;
mod error;
mod flood;
pub mod policy;
mod pool;
pub mod pxe;
mod reply;
mod request;
mod subnet;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lease::{Lease, Table};
use crate::wire::dhcp::{code, Chaddr, MessageType, PXE_PORT, SERVER_PORT};
pub use error::Error;
use policy::{Action, Rule};
use request::Request;
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
    /// How long an offered address stays reserved for its client.
    pub offer: Duration,
    /// How long a declined address stays out of use.
    pub decline: Duration,
    /// Subnets (server mode).
    pub subnets: Vec<Subnet>,
    /// Reservations.
    pub hosts: Vec<Host>,
    /// Boot policy, first match wins.
    pub rules: Vec<Rule>,
    /// The HTTP port, for `{http}` in boot URLs.
    pub http_port: u16,
    /// Options sent by tag (dnsmasq's `dhcp-option`), after the subnet's,
    /// replacing any of the same number.
    pub options: Vec<policy::TaggedOption>,
    /// Send configured options only when the client's option 55 asks for
    /// them (unless forced), as dnsmasq does; otherwise always.
    pub options_when_asked: bool,
    /// Probe an address for another user (conflict detection) before it is
    /// first offered: the engine asks with [`Outcome::Probe`] and the backend
    /// answers with [`Engine::probe_result`].
    pub probe: bool,
    /// A PXE boot menu (dnsmasq's `pxe-service`): PXEClient answers carry it
    /// in option 43, and boot server requests on :4011 are answered.
    pub pxe_menu: Option<pxe::Menu>,
    /// At most this share (percent) of a subnet's pool is held by offers at
    /// once; past it, offers are made without a hold (see flood.rs).
    pub held_offers_percent: u8,
    /// Messages answered per MAC per second (0: no limit).
    pub answers_per_mac: u32,
    /// The boot profiles, for rules that ask for a client's loader.
    pub profiles: Option<SharedProfiles>,
    /// This server's share of the clients when several serve one pool.
    pub balance: Option<balance::Balance>,
}

/// The boot profiles as the DHCP engine holds them: settings are equal when
/// they hold the same compiled profiles.
#[derive(Clone)]
pub struct SharedProfiles(pub std::sync::Arc<crate::proto::boot::Profiles>);

impl PartialEq for SharedProfiles {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedProfiles {}

impl std::fmt::Debug for SharedProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedProfiles")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Server,
            authoritative: true,
            offer: Duration::from_secs(30),
            decline: Duration::from_secs(600),
            subnets: Vec::new(),
            hosts: Vec::new(),
            rules: policy::defaults(),
            http_port: 80,
            options: Vec::new(),
            options_when_asked: false,
            probe: false,
            pxe_menu: None,
            held_offers_percent: 50,
            answers_per_mac: 20,
            profiles: None,
            balance: None,
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
    /// The client's hardware address, for the log.
    pub chaddr: Chaddr,
}

/// What the engine did with a message it handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send this.
    Reply(Reply),
    /// Before offering this address, find out whether something already uses
    /// it (an ICMP echo); report with [`Engine::probe_result`]. The address is
    /// held meanwhile, and the client's retransmissions wait for the result.
    Probe(Ipv4Addr),
    /// A RELEASE freed the client's lease.
    Released,
    /// A DECLINE put the address out of use for `Settings::decline`.
    Declined,
}

/// Counts of what the engine did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handled.
    pub received: u64,
    /// Messages understood, by their type (`discover`, `request`, ...).
    pub received_by_type: HashMap<&'static str, u64>,
    /// OFFERs written.
    pub offers: u64,
    /// ACKs written.
    pub acks: u64,
    /// NAKs written.
    pub naks: u64,
    /// Messages answered by no reply, by [`Error::kind`].
    pub quiet: HashMap<&'static str, u64>,
    /// Datagrams dropped as unusable, by [`Error::kind`].
    pub dropped: HashMap<&'static str, u64>,
    /// Addresses found in use by a probe (then quarantined like a DECLINE).
    pub conflicts: u64,
    /// OFFERs made without holding their address: the subnet's held offers
    /// were at their bound (a DISCOVER flood).
    pub offers_unheld: u64,
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    ip: Ipv4Addr,
    expires_at: Instant,
    /// When it was (last) offered: the start of the offer-to-ACK time.
    offered_at: Instant,
}

/// A DISCOVER waiting for the probe of the address it is to be offered.
#[derive(Debug)]
struct Probing {
    datagram: Box<[u8]>,
    server: Ipv4Addr,
    peer: SocketAddrV4,
}

/// The DHCP engine: settings, the lease table and the outstanding offers.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    table: Table,
    offers: HashMap<Arc<[u8]>, Offer>,
    offered: HashMap<Ipv4Addr, Arc<[u8]>>,
    /// Offer deadlines, earliest first; an entry whose offer moved or went is
    /// skipped (or re-armed) when it fires.
    expiry: BinaryHeap<Reverse<(Instant, Arc<[u8]>)>>,
    /// Reserved addresses, each with its host (an index into the hosts).
    reserved: HashMap<Ipv4Addr, usize>,
    cursors: Vec<u64>,
    probing: HashMap<Ipv4Addr, Probing>,
    counters: Counters,
    /// Microseconds from an OFFER to the REQUEST that took it.
    offer_to_ack: hdrhistogram::Histogram<u64>,
    /// Held offers per subnet, answers per MAC.
    guard: flood::Guard,
    /// The wall clock at `epoch`, for lease times.
    epoch: Instant,
    epoch_unix: u64,
}

/// The reserved addresses of `settings`, each with the host it is kept for.
fn reservations(settings: &Settings) -> HashMap<Ipv4Addr, usize> {
    settings
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((h.ip?, i)))
        .collect()
}

/// The decided boot answer for one request.
struct Boot<'a> {
    rule: &'a Rule,
    action: &'a Action,
}

impl Engine {
    /// An engine over `table` (replayed from the journal), started at `now`,
    /// when the wall clock read `unix` seconds.
    pub fn new(settings: Settings, table: Table, now: Instant, unix: u64) -> Self {
        let reserved = reservations(&settings);
        let cursors = first_cursors(&settings);
        let guard = flood::Guard::new(settings.subnets.len());
        Self {
            settings,
            table,
            offers: HashMap::new(),
            offered: HashMap::new(),
            expiry: BinaryHeap::new(),
            reserved,
            cursors,
            probing: HashMap::new(),
            counters: Counters::default(),
            offer_to_ack: crate::metrics::micros_histogram(),
            guard,
            epoch: now,
            epoch_unix: unix,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Frees the lease on `ip` (an operator's order): the address is free for
    /// the next client; false when no lease holds it.
    pub fn free_lease(&mut self, ip: Ipv4Addr) -> bool {
        if !matches!(self.table.get(ip), Some(crate::lease::Entry::Bound(_))) {
            return false;
        }
        self.table.free(ip);
        self.rewind(ip);
        true
    }

    /// Serves `settings` from now on (a reload), keeping the lease table, the
    /// offers and the probes. Returns how many active leases at `now` lie in
    /// no pool and no reservation any more: they are kept until they expire
    /// and not renewed ([`Error::PoolGone`]).
    pub fn reconfigure(&mut self, settings: Settings, now: Instant) -> usize {
        self.reserved = reservations(&settings);
        self.cursors = first_cursors(&settings);
        self.settings = settings;
        self.recount_held();
        let unix = self.unix(now);
        self.table
            .active(unix)
            .filter(|l| {
                !self.settings.subnets.iter().any(|s| s.in_ranges(l.ip))
                    && !self.reserved.contains_key(&l.ip)
            })
            .count()
    }

    /// Follows a change another server made to the shared lease store (or
    /// the store's answer about an address): the table takes it, nothing is
    /// queued to write.
    pub fn learn(&mut self, r: crate::lease::Record) {
        let freed = match r {
            crate::lease::Record::Freed(ip) => Some(ip),
            _ => None,
        };
        self.table.learn(r);
        if let Some(ip) = freed {
            self.rewind(ip);
        }
    }

    /// The lease table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Microseconds from each OFFER to the REQUEST that took it (its ACK
    /// leaves after its journal sync).
    pub fn offer_to_ack(&self) -> &hdrhistogram::Histogram<u64> {
        &self.offer_to_ack
    }

    /// Unix seconds at `now`, for lease times.
    pub fn unix(&self, now: Instant) -> u64 {
        self.epoch_unix + now.saturating_duration_since(self.epoch).as_secs()
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

    /// Handles one datagram at `now`, writing any reply into `out`.
    ///
    /// # Errors
    /// Why nothing of its own was sent (a NAK is a reply, not an error):
    /// count it under `e.kind()`, as dropped when `e.is_drop()`.
    pub fn handle(
        &mut self,
        now: Instant,
        input: Input<'_>,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        self.counters.received += 1;
        let outcome = Request::parse(input).and_then(|mut r| {
            self.rekey(&mut r);
            *self
                .counters
                .received_by_type
                .entry(r.kind.name())
                .or_default() += 1;
            if !self.admit(now, r.packet.mac()) {
                return Err(Error::RateLimited);
            }
            self.dispatch(now, &r, out)
        });
        self.count(outcome)
    }

    /// Expires the offers due at `now`: their addresses may be offered again.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, client))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let client = Arc::clone(client);
            self.expiry.pop();
            match self.offers.get(&*client) {
                // Renewed by a later DISCOVER: wait for its new deadline.
                Some(o) if o.expires_at > now => self.expiry.push(Reverse((o.expires_at, client))),
                Some(o) => {
                    let ip = o.ip;
                    self.offers.remove(&*client);
                    if self.offered.get(&ip).is_some_and(|c| **c == *client) {
                        self.unhold_ip(ip);
                    }
                }
                None => {}
            }
        }
    }

    /// When [`Self::handle_timeout`] is next due: the earliest offer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Reports the probe of `ip` asked for by [`Outcome::Probe`]: `in_use` when
    /// something answered. A free address is offered (the reply is written into
    /// `out`); one in use is quarantined for `Settings::decline` and the
    /// client's DISCOVER is answered again with another address, which may be
    /// probed in turn.
    ///
    /// # Errors
    /// As for [`Self::handle`].
    pub fn probe_result(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        in_use: bool,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let Some(waiting) = self.probing.remove(&ip) else {
            return self.count(Err(Error::NoProbe));
        };
        let input = Input {
            bytes: &waiting.datagram,
            server: waiting.server,
            port: SERVER_PORT,
            peer: waiting.peer,
        };
        let outcome = Request::parse(input).and_then(|mut r| {
            self.rekey(&mut r);
            if in_use {
                self.counters.conflicts += 1;
                self.drop_offer(r.client.as_bytes());
                let until = self.unix(now) + self.settings.decline.as_secs();
                self.table.decline(ip, until);
            }
            self.dispatch(now, &r, out)
        });
        self.count(outcome)
    }

    /// The local address whose DISCOVER waits on the probe of `ip`.
    pub fn probe_server(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        self.probing.get(&ip).map(|p| p.server)
    }

    /// Addresses being probed.
    pub fn probing(&self) -> usize {
        self.probing.len()
    }

    fn count(&mut self, outcome: Result<Outcome, Error>) -> Result<Outcome, Error> {
        match &outcome {
            Ok(Outcome::Reply(r)) => match r.kind {
                MessageType::Offer => self.counters.offers += 1,
                MessageType::Nak => self.counters.naks += 1,
                _ => self.counters.acks += 1,
            },
            Ok(_) => {}
            Err(e) if e.is_drop() => *self.counters.dropped.entry(e.kind()).or_default() += 1,
            Err(e) => *self.counters.quiet.entry(e.kind()).or_default() += 1,
        }
        outcome
    }

    /// The answer to `r`; an error the client must hear of becomes a NAK here.
    fn dispatch(
        &mut self,
        now: Instant,
        r: &Request<'_>,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let item = self.settings.pxe_menu.as_ref().and(self.boot_item(r));
        let result = match (item, self.settings.mode) {
            (Some(_), _) if self.ignored(r, None) => Err(Error::Ignored),
            (Some(item), _) => self.boot_server(r, item, out),
            (None, Mode::Server) => self.server(now, r, out),
            (None, Mode::Proxy) => self.proxy(r, out),
        };
        match result {
            Err(e) => match e.nak() {
                Some(why) => self.nak(r, why, out),
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// The lease time for `mac` in `subnet`: its reservation's, else the
    /// subnet's.
    fn lease_secs(&self, subnet: usize, r: &Request<'_>) -> u32 {
        self.host_of(r)
            .and_then(|h| h.lease_secs)
            .unwrap_or(self.settings.subnets[subnet].lease_secs)
    }

    /// A machine whose host says to ignore its client id (dnsmasq's
    /// `dhcp-host=MAC,id:*`) is known by its MAC alone: its firmware, iPXE
    /// and OS, each with a client id of its own, share one lease.
    fn rekey(&self, r: &mut Request<'_>) {
        let Some(mac) = r.packet.mac() else {
            return;
        };
        if self
            .settings
            .hosts
            .iter()
            .any(|h| h.ignore_client_id && h.client_id.is_none() && h.is(Some(mac), &[]))
        {
            r.client = request::ClientKey::hardware(&r.packet);
        }
    }

    /// The menu item a PXE client's REQUEST or INFORM asks a boot server for.
    fn boot_item(&self, r: &Request<'_>) -> Option<[u8; 4]> {
        if !matches!(r.kind, MessageType::Request | MessageType::Inform) {
            return None;
        }
        let vendor = r.options.get(code::VENDOR_CLASS)?;
        if !vendor.starts_with(b"PXEClient") {
            return None;
        }
        pxe::boot_item(&r.options.get(code::VENDOR)?)
    }

    /// Whether a rule with `ignore` decides for this client (only looked at
    /// when a rule has it).
    fn ignored(&self, r: &Request<'_>, subnet: Option<usize>) -> bool {
        let rules = &self.settings.rules;
        if !rules
            .iter()
            .any(|x| x.action.as_ref().is_some_and(|a| a.ignore))
        {
            return false;
        }
        let mut facts = policy::Firmware::of(&r.options, r.packet.chaddr(), r.packet.giaddr());
        if let Some(s) = subnet.and_then(|i| self.settings.subnets.get(i)) {
            facts.network = Some((s.network, s.prefix));
        }
        facts.known = self.host_of(r).is_some();
        let initial = subnet.map_or(&[][..], |s| &self.settings.subnets[s].set_tags);
        policy::decide_tagged(rules, &facts, initial)
            .0
            .is_some_and(|(_, a)| a.ignore)
    }

    fn server(&mut self, now: Instant, r: &Request<'_>, out: &mut [u8]) -> Result<Outcome, Error> {
        if r.input.port == PXE_PORT {
            return Err(Error::PxePortInServerMode);
        }
        let candidates = self.subnets_of(r);
        let subnet = *candidates.first().ok_or(Error::NoSubnet)?;
        if self.ignored(r, Some(subnet)) {
            return Err(Error::Ignored);
        }
        let client = r.client.as_bytes();
        let requested = r.options.ip(code::REQUESTED_IP);
        if let Some(b) = self.settings.balance {
            // Clients not yet bound to a server: DISCOVER, and INIT-REBOOT.
            let unbound = r.kind == MessageType::Discover
                || (r.kind == MessageType::Request
                    && r.options.ip(code::SERVER_ID).is_none()
                    && r.packet.ciaddr().is_unspecified());
            if unbound && !b.answers(r.packet.chaddr(), r.packet.secs()) {
                return Err(Error::OtherServersShare);
            }
        }
        match r.kind {
            MessageType::Discover => {
                let held = self
                    .offers
                    .get(client)
                    .copied()
                    .filter(|x| x.expires_at > now);
                if held.is_some_and(|x| self.probing.contains_key(&x.ip)) {
                    return Err(Error::ProbeInProgress);
                }
                // The first subnet (of those serving the client) with an
                // address left.
                let (subnet, ip) = candidates
                    .iter()
                    .find_map(|&s| Some((s, self.choose(now, s, r, requested)?)))
                    .ok_or(Error::PoolExhausted)?;
                // Probed once already, or the client's own: no second probe.
                let known = held.is_some_and(|x| x.ip == ip)
                    || self.table.of_client(client).is_some_and(|l| l.ip == ip)
                    || self.reservation_for(r) == Some(ip);
                if !known && !self.may_hold(subnet) {
                    // A flood holds its share already: offered, not held.
                    self.counters.offers_unheld += 1;
                    return self.answer(r, subnet, MessageType::Offer, ip, out);
                }
                self.hold(now, client, ip);
                if self.settings.probe && !known {
                    self.probing.insert(
                        ip,
                        Probing {
                            datagram: r.input.bytes.into(),
                            server: r.input.server,
                            peer: r.input.peer,
                        },
                    );
                    return Ok(Outcome::Probe(ip));
                }
                self.answer(r, subnet, MessageType::Offer, ip, out)
            }
            MessageType::Request => self.request(now, r, &candidates, requested, out),
            MessageType::Decline => {
                let ip = requested.ok_or(Error::NoAddress("DECLINE"))?;
                let ours = self.table.of_client(client).is_some_and(|l| l.ip == ip)
                    || self.offers.get(client).is_some_and(|x| x.ip == ip);
                if !ours {
                    return Err(Error::DeclineNotOurs);
                }
                self.drop_offer(client);
                let until = self.unix(now) + self.settings.decline.as_secs();
                self.table.decline(ip, until);
                Ok(Outcome::Declined)
            }
            MessageType::Release => {
                let ip = r.packet.ciaddr();
                if self.table.of_client(client).is_none_or(|l| l.ip != ip) {
                    return Err(Error::ReleaseNotOurs);
                }
                self.table.free(ip);
                self.rewind(ip);
                Ok(Outcome::Released)
            }
            MessageType::Inform => {
                self.answer(r, subnet, MessageType::Ack, Ipv4Addr::UNSPECIFIED, out)
            }
            _ => Err(Error::ServerMessage),
        }
    }

    fn request(
        &mut self,
        now: Instant,
        r: &Request<'_>,
        candidates: &[usize],
        requested: Option<Ipv4Addr>,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        // The subnet whose ranges hold `ip` (of those serving the client).
        let holding = |ip: Ipv4Addr| {
            candidates
                .iter()
                .copied()
                .find(|&s| self.settings.subnets[s].in_ranges(ip))
                .unwrap_or(candidates[0])
        };
        let subnet = candidates[0];
        let client = r.client.as_bytes();
        let unix = self.unix(now);
        let ciaddr = r.packet.ciaddr();
        let mac = r.packet.mac();
        let held = self
            .table
            .of_client(client)
            .map(|l| l.ip)
            .filter(|ip| self.table.is_free_for(*ip, client, unix));
        let ip = if let Some(server_id) = r.options.ip(code::SERVER_ID) {
            // SELECTING: the client picked one OFFER among several.
            if server_id != r.input.server {
                self.drop_offer(client);
                return Err(Error::OtherServer);
            }
            let offered = self.offers.get(client).map(|x| x.ip);
            match requested {
                Some(ip) if offered == Some(ip) || held == Some(ip) => ip,
                // The offer ran out while the client's REQUEST was lost or
                // late (EDK2 resends it at 4, 12 and 28 s): the address is
                // still the client's to take if nobody else holds it.
                Some(ip)
                    if self.settings.subnets.iter().any(|s| s.in_ranges(ip))
                        && (self.usable(now, holding(ip), ip, client, mac)
                            || self.reservation_for(r) == Some(ip)) =>
                {
                    ip
                }
                _ => return Err(Error::NotOffered),
            }
        } else if ciaddr.is_unspecified() {
            // INIT-REBOOT: a client that remembers its address.
            let ip = requested.ok_or(Error::NoAddress("REQUEST"))?;
            if !self.settings.subnets[subnet].contains(ip) {
                return Err(Error::NotOnNetwork);
            }
            if held != Some(ip) {
                let usable = self.usable(now, holding(ip), ip, client, mac)
                    || self.reservation_for(r) == Some(ip);
                if !self.settings.authoritative {
                    return Err(Error::NoRecord);
                }
                if !usable {
                    return Err(Error::Unavailable);
                }
            }
            ip
        } else {
            // RENEWING (unicast) or REBINDING (broadcast).
            if held != Some(ciaddr) {
                let ours =
                    self.settings.authoritative && self.settings.subnets[subnet].contains(ciaddr);
                return Err(if ours {
                    Error::NoLease
                } else {
                    Error::NoLeaseElsewhere
                });
            }
            ciaddr
        };
        // A lease whose address a reload took out of every pool runs out
        // rather than being renewed (a reservation keeps it).
        if held == Some(ip)
            && !self.settings.subnets.iter().any(|s| s.in_ranges(ip))
            && self.reservation_for(r) != Some(ip)
        {
            return Err(Error::PoolGone);
        }
        let subnet = holding(ip);
        let lease_secs = self.lease_secs(subnet, r);
        let hostname: Box<str> = match self.host_of(r).and_then(|h| h.hostname.as_deref()) {
            Some(name) => name.into(),
            None => r
                .options
                .get(code::HOSTNAME)
                .and_then(|h| std::str::from_utf8(&h).ok().map(Box::from))
                .unwrap_or_default(),
        };
        // The offer becomes the lease (an offer of another address is given back).
        match self.offers.get(client) {
            Some(o) if o.ip == ip => {
                let waited = now.saturating_duration_since(o.offered_at);
                let _ = self
                    .offer_to_ack
                    .record(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
                self.offers.remove(client);
                self.unhold_ip(ip);
            }
            _ => self.drop_offer(client),
        }
        self.table.bind(Lease {
            ip,
            client: client.into(),
            hw: r.packet.chaddr().into(),
            hostname,
            expires: unix + u64::from(lease_secs),
        });
        self.answer(r, subnet, MessageType::Ack, ip, out)
    }

    /// The subnets a request belongs to, in order: the relay's network, else
    /// the receiving interface's; of several subnets of that network, those
    /// whose tag filter the client passes (dnsmasq's `dhcp-range=tag:X,...`).
    fn subnets_of(&self, r: &Request<'_>) -> Vec<usize> {
        let giaddr = r.packet.giaddr();
        let at = if giaddr.is_unspecified() {
            r.input.server
        } else {
            giaddr
        };
        let subnets = &self.settings.subnets;
        let mut found: Vec<usize> = (0..subnets.len())
            .filter(|&i| subnets[i].contains(at))
            .collect();
        let Some(s) = found.first().map(|&i| &subnets[i]) else {
            return found;
        };
        if found.iter().any(|&i| subnets[i].is_filtered()) {
            let mut facts = policy::Firmware::of(&r.options, r.packet.chaddr(), giaddr);
            facts.network = Some((s.network, s.prefix));
            facts.known = self.host_of(r).is_some();
            let (_, tags) = policy::decide_tagged(&self.settings.rules, &facts, &[]);
            found.retain(|&i| subnets[i].serves(&tags));
        }
        found
    }

    /// Per subnet: its pool's size, the active leases and the offers held in
    /// its ranges at `now`.
    pub fn pool_use(&self, now: Instant) -> Vec<(&Subnet, u64, u64, u64)> {
        let unix = self.unix(now);
        self.settings
            .subnets
            .iter()
            .map(|s| {
                let leased = self
                    .table
                    .active(unix)
                    .filter(|l| s.in_ranges(l.ip))
                    .count();
                let offered = self
                    .offers
                    .values()
                    .filter(|o| o.expires_at > now && s.in_ranges(o.ip))
                    .count();
                (s, s.size(), leased as u64, offered as u64)
            })
            .collect()
    }

    /// Outstanding offers (not yet expired at `now`).
    pub fn offers(&self, now: Instant) -> usize {
        self.offers.values().filter(|o| o.expires_at > now).count()
    }
}

/// Where each subnet's allocation walk begins: at the start, or, when
/// servers share the pool, at this server's part of it, so that two servers
/// allocating at once seldom reach for the same address.
fn first_cursors(settings: &Settings) -> Vec<u64> {
    settings
        .subnets
        .iter()
        .map(|s| pool::share(settings.balance, s.size()).0)
        .collect()
}
