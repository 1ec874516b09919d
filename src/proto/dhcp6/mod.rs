//! DHCPv6 for network boot, sans-IO (RFC 8415; boot options RFC 5970): IA_NA
//! addresses from pools and reservations, or stateless answers (DNS, boot
//! file URL) where a subnet has no pool.
//!
//! The contract is the DHCPv4 engine's: [`Engine::handle`] takes `now`, one
//! received datagram and where it came from ([`Input`]), and writes at most
//! one reply with where it must go; an `Err` is why nothing was sent, counted
//! under its kind. ADVERTISE holds expire by the engine's timer
//! ([`Engine::poll_timeout`], [`Engine::handle_timeout`]). Lease changes are
//! queued as journal records (the DHCPv6 kinds of the same journal); the
//! backend makes them durable ([`Engine::take_journal`]) before it sends the
//! replies, as for DHCPv4.
//!
//! A client's binding is keyed by its DUID and the IAID of its IA_NA. Its
//! MAC, for reservations, profiles and boot rules, comes from a relay's
//! option 79, else its DUID (LL or LLT). Boot rules are the DHCPv4 engine's
//! (`[[dhcp.boot]]`, the built-in ones per architecture): the request's
//! option 61, vendor class (16) and user class (15) are read as options 93,
//! 60 and 77, and the file a rule names becomes option 59's URL
//! (`tftp://[server]/file`, or the rule's own `http://` URL with `{http}`
//! filled in with the server's bracketed address).
//!
//! This file answers each message and decides its addresses; subnet.rs holds
//! the links, reservations and pool arithmetic, boot.rs the boot answer.

mod boot;
mod error;
mod subnet;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::lease::{Lease6, Table6};
use crate::proto::dhcp::policy::{self, Rule};
use crate::proto::dhcp::SharedProfiles;
use crate::wire::dhcp6::{
    code, status, IaNa, Message, MessageType, Received, Writer, CLIENT_PORT, SERVER_PORT,
};
pub use error::Error;
pub use subnet::{duid_ll, Host, Subnet};
use subnet::{nth, reservations};

/// Everything the engine is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's DUID (option 2).
    pub duid: Vec<u8>,
    /// Links.
    pub subnets: Vec<Subnet>,
    /// Reservations.
    pub hosts: Vec<Host>,
    /// Answer a SOLICIT with Rapid Commit by binding at once (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
    /// How long an advertised address stays held for its client.
    pub offer: Duration,
    /// How long a declined address stays out of use.
    pub decline: Duration,
    /// Option 7 in ADVERTISE: 255 tells a client to take this server at once.
    pub preference: u8,
    /// At most this share (percent) of a pool is held by advertisements.
    pub held_offers_percent: u8,
    /// Boot policy, first match wins (the DHCPv4 engine's rules).
    pub rules: Vec<Rule>,
    /// The HTTP port, for `{http}` in boot URLs.
    pub http_port: u16,
    /// The boot profiles, for rules that ask for a client's loader.
    pub profiles: Option<SharedProfiles>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            duid: Vec::new(),
            subnets: Vec::new(),
            hosts: Vec::new(),
            rapid_commit: true,
            offer: Duration::from_secs(30),
            decline: Duration::from_secs(600),
            preference: 255,
            held_offers_percent: 50,
            rules: policy::defaults(),
            http_port: 80,
            profiles: None,
        }
    }
}

/// Where a datagram came in.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The datagram.
    pub bytes: &'a [u8],
    /// The sender (a client's link-local address, or a relay).
    pub peer: SocketAddrV6,
    /// The server's address on the link it arrived on: the boot URLs name it,
    /// and for a client on the link it picks the subnet.
    pub local: Ipv6Addr,
}

/// A reply the engine wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Bytes written into the output buffer.
    pub len: usize,
    /// Where they go: the client's port 546, or the relay's 547.
    pub to: SocketAddrV6,
    /// ADVERTISE or REPLY.
    pub kind: MessageType,
    /// The first address given, if any.
    pub ip: Option<Ipv6Addr>,
    /// The client's MAC, when known, for the log.
    pub mac: Option<[u8; 6]>,
    /// The message answered.
    pub answered: MessageType,
}

/// Counts of what the engine did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handled.
    pub received: u64,
    /// Messages understood, by type.
    pub received_by_type: HashMap<&'static str, u64>,
    /// ADVERTISEs written.
    pub advertises: u64,
    /// REPLYs written.
    pub replies: u64,
    /// Messages answered by no reply, by [`Error::kind`].
    pub quiet: HashMap<&'static str, u64>,
    /// Datagrams dropped as unusable, by [`Error::kind`].
    pub dropped: HashMap<&'static str, u64>,
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    ip: Ipv6Addr,
    subnet: usize,
    expires_at: Instant,
}

/// The DHCPv6 engine: settings, the lease table and the held advertisements.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    table: Table6,
    offers: HashMap<Box<[u8]>, Offer>,
    offered: HashMap<Ipv6Addr, Box<[u8]>>,
    expiry: BinaryHeap<Reverse<(Instant, Box<[u8]>)>>,
    held: Vec<u128>,
    cursors: Vec<u128>,
    /// Reserved addresses, each with its host (an index into the hosts):
    /// looked up per address a pool walk considers.
    reserved: HashMap<Ipv6Addr, usize>,
    counters: Counters,
    epoch: Instant,
    epoch_unix: u64,
}

/// What one request is about: its client, its link, its boot answer.
struct Client<'a> {
    msg: Message<'a>,
    duid: &'a [u8],
    mac: Option<[u8; 6]>,
    subnet: Option<usize>,
    host: Option<usize>,
}

/// Most pool addresses looked at for one allocation: a pool fuller than that
/// around its cursor answers NoAddrsAvail rather than stall the worker.
const MAX_PROBES: u32 = 65_536;

impl Engine {
    /// An engine over `table` (replayed from the journal), started at `now`,
    /// when the wall clock read `unix` seconds.
    pub fn new(settings: Settings, table: Table6, now: Instant, unix: u64) -> Self {
        let n = settings.subnets.len();
        let reserved = reservations(&settings);
        Self {
            settings,
            table,
            offers: HashMap::new(),
            offered: HashMap::new(),
            expiry: BinaryHeap::new(),
            held: vec![0; n],
            cursors: vec![0; n],
            reserved,
            counters: Counters::default(),
            epoch: now,
            epoch_unix: unix,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Serves `settings` from now on (a reload), keeping leases and offers.
    pub fn reconfigure(&mut self, settings: Settings) {
        let n = settings.subnets.len();
        self.reserved = reservations(&settings);
        self.settings = settings;
        self.cursors = vec![0; n];
        self.held = vec![0; n];
        for o in self.offers.values_mut() {
            match self.settings.subnets.iter().position(|s| s.in_ranges(o.ip)) {
                Some(i) => {
                    o.subnet = i;
                    self.held[i] += 1;
                }
                None => o.subnet = usize::MAX,
            }
        }
    }

    /// The lease table.
    pub fn table(&self) -> &Table6 {
        &self.table
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Unix seconds at `now`.
    pub fn unix(&self, now: Instant) -> u64 {
        self.epoch_unix + now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Frees the bound lease on `ip` (the admin API's request); false when
    /// none holds it.
    pub fn free_lease(&mut self, ip: Ipv6Addr) -> bool {
        if !matches!(self.table.get(ip), Some(crate::lease::Entry::Bound(_))) {
            return false;
        }
        self.table.free(ip);
        true
    }

    /// Journal records queued since the last call; write and sync them before
    /// sending the replies of the batch.
    pub fn take_journal(&mut self) -> Vec<u8> {
        self.table.take_pending()
    }

    /// Puts back records whose write failed.
    pub fn restore_journal(&mut self, bytes: Vec<u8>) {
        self.table.restore_pending(bytes);
    }

    /// Expires the advertisements due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let key = key.clone();
            self.expiry.pop();
            match self.offers.get(&key) {
                Some(o) if o.expires_at > now => self.expiry.push(Reverse((o.expires_at, key))),
                Some(_) => self.drop_offer(&key),
                None => {}
            }
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Counts a datagram too large to have been read whole (the backend
    /// reads at most its buffer): dropped, never parsed.
    pub fn drop_oversize(&mut self) {
        self.counters.received += 1;
        *self.counters.dropped.entry("too_large").or_default() += 1;
    }

    /// Handles one datagram at `now`, writing any reply into `out`.
    ///
    /// # Errors
    /// Why nothing was sent: count it under `e.kind()`, as dropped when
    /// `e.is_drop()`.
    pub fn handle(
        &mut self,
        now: Instant,
        input: Input<'_>,
        out: &mut [u8],
    ) -> Result<Reply, Error> {
        self.counters.received += 1;
        let result = Received::parse(input.bytes)
            .map_err(Error::Malformed)
            .and_then(|r| {
                *self
                    .counters
                    .received_by_type
                    .entry(r.message.kind.name())
                    .or_default() += 1;
                self.answer(now, &input, &r, out)
            });
        match &result {
            Ok(r) if r.kind == MessageType::Advertise => self.counters.advertises += 1,
            Ok(_) => self.counters.replies += 1,
            Err(e) if e.is_drop() => *self.counters.dropped.entry(e.kind()).or_default() += 1,
            Err(e) => *self.counters.quiet.entry(e.kind()).or_default() += 1,
        }
        result
    }

    fn answer(
        &mut self,
        now: Instant,
        input: &Input<'_>,
        r: &Received<'_>,
        out: &mut [u8],
    ) -> Result<Reply, Error> {
        use MessageType as M;
        let msg = r.message;
        let duid = msg.client_id();
        // RFC 8415 §16: what each message must and must not carry.
        match msg.kind {
            M::Solicit | M::Confirm | M::Rebind => {
                if duid.is_none() {
                    return Err(Error::NoClientId);
                }
                if msg.server_id().is_some() {
                    return Err(Error::Misaddressed);
                }
            }
            M::Request | M::Renew | M::Release | M::Decline => {
                if duid.is_none() {
                    return Err(Error::NoClientId);
                }
                if msg.server_id() != Some(&self.settings.duid[..]) {
                    return Err(Error::NotOurs);
                }
            }
            M::InformationRequest => {
                if msg.server_id().is_some_and(|s| s != self.settings.duid) {
                    return Err(Error::NotOurs);
                }
            }
            M::Advertise | M::Reply | M::Reconfigure | M::RelayForw | M::RelayRepl => {
                return Err(Error::NotAClientMessage)
            }
        }
        let link = r.link().unwrap_or(input.local);
        let subnet = self.settings.subnets.iter().position(|s| s.contains(link));
        let mac = r.mac();
        let duid = duid.unwrap_or_default();
        let host = self.settings.hosts.iter().position(|h| {
            h.duid.as_deref().is_some_and(|d| d == duid) || (h.mac.is_some() && h.mac == mac)
        });
        let c = Client {
            msg,
            duid,
            mac,
            subnet,
            host,
        };
        if c.subnet.is_none() && msg.kind != M::InformationRequest {
            return Err(Error::NoSubnet);
        }
        let rapid = msg.kind == M::Solicit
            && self.settings.rapid_commit
            && msg.options.has(code::RAPID_COMMIT);
        let kind = if msg.kind == M::Solicit && !rapid {
            M::Advertise
        } else {
            M::Reply
        };
        // The reply: relay layers outside in, then the message.
        let mut w = Writer::new(out);
        let mut opened = Vec::with_capacity(r.relays.len());
        for relay in &r.relays {
            opened.push(w.relay_reply(relay).map_err(Error::NoRoom)?);
        }
        w.message(kind, msg.xid).map_err(Error::NoRoom)?;
        if !c.duid.is_empty() {
            w.option(code::CLIENTID, c.duid).map_err(Error::NoRoom)?;
        }
        w.option(code::SERVERID, &self.settings.duid)
            .map_err(Error::NoRoom)?;
        if rapid {
            w.option(code::RAPID_COMMIT, &[]).map_err(Error::NoRoom)?;
        }
        let ip = match msg.kind {
            M::Solicit => self.assign(now, &c, &mut w, !rapid)?,
            M::Request => self.assign(now, &c, &mut w, false)?,
            M::Renew | M::Rebind => self.extend(now, &c, &mut w)?,
            M::Release => self.release(&c, &mut w)?,
            M::Decline => self.decline(now, &c, &mut w)?,
            M::Confirm => self.confirm(&c, &mut w)?,
            _ => None,
        };
        if kind == M::Advertise && self.settings.preference > 0 {
            w.option(code::PREFERENCE, &[self.settings.preference])
                .map_err(Error::NoRoom)?;
        }
        if !matches!(msg.kind, M::Release | M::Decline) {
            self.configuration(&c, input.local, &mut w)?;
        }
        for open in opened.into_iter().rev() {
            w.end(open).map_err(Error::NoRoom)?;
        }
        let to = match r.relays.first() {
            Some(_) => SocketAddrV6::new(*input.peer.ip(), SERVER_PORT, 0, 0),
            None => SocketAddrV6::new(*input.peer.ip(), CLIENT_PORT, 0, input.peer.scope_id()),
        };
        Ok(Reply {
            len: w.len(),
            to,
            kind,
            ip,
            mac,
            answered: msg.kind,
        })
    }

    /// The binding key of an IA: the DUID then the IAID.
    fn key(duid: &[u8], ia: &IaNa<'_>) -> Box<[u8]> {
        let mut k = Vec::with_capacity(duid.len() + 4);
        k.extend_from_slice(duid);
        k.extend_from_slice(&ia.iaid.to_be_bytes());
        k.into()
    }

    /// SOLICIT (held when `hold`, else bound) and REQUEST: an address per
    /// IA_NA, or NoAddrsAvail in it.
    fn assign(
        &mut self,
        now: Instant,
        c: &Client<'_>,
        w: &mut Writer<'_>,
        hold: bool,
    ) -> Result<Option<Ipv6Addr>, Error> {
        let Some(s) = c.subnet else {
            return Ok(None);
        };
        let ias = c.msg.options.ia_nas().map_err(Error::Malformed)?;
        let mut first = None;
        for ia in &ias {
            let key = Self::key(c.duid, ia);
            let ip = self.pick(now, s, c, ia, &key);
            let subnet = &self.settings.subnets[s];
            let (preferred, valid) = (subnet.preferred, subnet.valid);
            let open = w
                .ia_na(ia.iaid, preferred / 2, preferred / 5 * 4)
                .map_err(Error::NoRoom)?;
            match ip {
                Some(ip) => {
                    if hold {
                        self.hold(now, s, &key, ip);
                    } else {
                        self.bind(now, c, &key, ip, valid);
                    }
                    w.ia_addr(ip, preferred, valid).map_err(Error::NoRoom)?;
                    first = first.or(Some(ip));
                }
                None => w
                    .status(status::NO_ADDRS_AVAIL, "no addresses available")
                    .map_err(Error::NoRoom)?,
            }
            w.end(open).map_err(Error::NoRoom)?;
        }
        Ok(first)
    }

    /// The address for one IA: its reservation, its offer, its lease, the one
    /// it asks for if free, else the next free one of the pool.
    fn pick(
        &mut self,
        now: Instant,
        s: usize,
        c: &Client<'_>,
        ia: &IaNa<'_>,
        key: &[u8],
    ) -> Option<Ipv6Addr> {
        let unix = self.unix(now);
        if let Some(ip) = c.host.and_then(|h| self.settings.hosts[h].ip) {
            return self.usable(ip, key, c.host, unix).then_some(ip);
        }
        let subnet = &self.settings.subnets[s];
        if let Some(o) = self.offers.get(key) {
            if subnet.in_ranges(o.ip) {
                return Some(o.ip);
            }
        }
        if let Some(l) = self.table.of_client(key) {
            if subnet.in_ranges(l.ip) && self.usable(l.ip, key, c.host, unix) {
                return Some(l.ip);
            }
        }
        for want in ia.addresses() {
            if subnet.in_ranges(want.addr) && self.usable(want.addr, key, c.host, unix) {
                return Some(want.addr);
            }
        }
        if subnet.ranges.is_empty() {
            return None;
        }
        // size x percent / 100 without overflow, for a pool as large as the
        // address space.
        let pct = u128::from(self.settings.held_offers_percent);
        let size = subnet.size();
        let limit = (size / 100)
            .saturating_mul(pct)
            .saturating_add(size % 100 * pct / 100);
        if self.held[s] >= limit.max(1) {
            return None;
        }
        for _ in 0..MAX_PROBES.min(u32::try_from(size).unwrap_or(u32::MAX)) {
            let at = self.cursors[s] % size;
            self.cursors[s] = (at + 1) % size;
            let ip = nth(&self.settings.subnets[s].ranges, at)?;
            if self.usable(ip, key, c.host, unix) {
                return Some(ip);
            }
        }
        None
    }

    /// Whether `ip` may go to `key` (of reservation `host`): not reserved
    /// for another host, not held for another client, free in the table.
    fn usable(&self, ip: Ipv6Addr, key: &[u8], host: Option<usize>, unix: u64) -> bool {
        let reserved_elsewhere = self.reserved.get(&ip).is_some_and(|h| Some(*h) != host);
        !reserved_elsewhere
            && self.offered.get(&ip).is_none_or(|k| **k == *key)
            && self.table.is_free_for(ip, key, unix)
    }

    fn hold(&mut self, now: Instant, s: usize, key: &[u8], ip: Ipv6Addr) {
        let expires_at = now + self.settings.offer;
        if let Some(o) = self.offers.get_mut(key) {
            if o.ip == ip {
                o.expires_at = expires_at;
                return;
            }
        }
        self.drop_offer(key);
        self.offers.insert(
            key.into(),
            Offer {
                ip,
                subnet: s,
                expires_at,
            },
        );
        self.offered.insert(ip, key.into());
        self.held[s] += 1;
        self.expiry.push(Reverse((expires_at, key.into())));
    }

    fn drop_offer(&mut self, key: &[u8]) {
        if let Some(o) = self.offers.remove(key) {
            if self.offered.get(&o.ip).is_some_and(|k| **k == *key) {
                self.offered.remove(&o.ip);
            }
            if let Some(h) = self.held.get_mut(o.subnet) {
                *h = h.saturating_sub(1);
            }
        }
    }

    fn bind(&mut self, now: Instant, c: &Client<'_>, key: &[u8], ip: Ipv6Addr, valid: u32) {
        self.drop_offer(key);
        let hostname = c
            .host
            .and_then(|h| self.settings.hosts[h].hostname.clone())
            .unwrap_or_default();
        self.table.bind(Lease6 {
            ip,
            client: key.into(),
            hw: c.mac.map(|m| m.to_vec()).unwrap_or_default().into(),
            hostname: hostname.into(),
            expires: self.unix(now) + u64::from(valid),
        });
    }

    /// RENEW and REBIND: each IA's binding extended, or NoBinding; an
    /// address no longer on the link is given back with zero lifetimes.
    fn extend(
        &mut self,
        now: Instant,
        c: &Client<'_>,
        w: &mut Writer<'_>,
    ) -> Result<Option<Ipv6Addr>, Error> {
        let Some(s) = c.subnet else {
            return Ok(None);
        };
        let ias = c.msg.options.ia_nas().map_err(Error::Malformed)?;
        let (preferred, valid) = {
            let sub = &self.settings.subnets[s];
            (sub.preferred, sub.valid)
        };
        let unix = self.unix(now);
        let mut first = None;
        for ia in &ias {
            let key = Self::key(c.duid, ia);
            let bound =
                self.table.of_client(&key).map(|l| l.ip).filter(|ip| {
                    self.settings.subnets[s].in_ranges(*ip) || self.reserved_for(c, *ip)
                });
            let open = w
                .ia_na(ia.iaid, preferred / 2, preferred / 5 * 4)
                .map_err(Error::NoRoom)?;
            match bound {
                Some(ip) if self.table.is_free_for(ip, &key, unix) => {
                    self.bind(now, c, &key, ip, valid);
                    w.ia_addr(ip, preferred, valid).map_err(Error::NoRoom)?;
                    first = first.or(Some(ip));
                    // Addresses it names that are not its own: not valid.
                    for other in ia.addresses().filter(|a| a.addr != ip) {
                        w.ia_addr(other.addr, 0, 0).map_err(Error::NoRoom)?;
                    }
                }
                _ => {
                    for a in ia.addresses() {
                        if !self.settings.subnets[s].contains(a.addr) {
                            w.ia_addr(a.addr, 0, 0).map_err(Error::NoRoom)?;
                        }
                    }
                    w.status(status::NO_BINDING, "no binding for this IA")
                        .map_err(Error::NoRoom)?;
                }
            }
            w.end(open).map_err(Error::NoRoom)?;
        }
        Ok(first)
    }

    fn reserved_for(&self, c: &Client<'_>, ip: Ipv6Addr) -> bool {
        c.host.and_then(|h| self.settings.hosts[h].ip) == Some(ip)
    }

    /// RELEASE: the client's bindings of the named addresses freed.
    fn release(&mut self, c: &Client<'_>, w: &mut Writer<'_>) -> Result<Option<Ipv6Addr>, Error> {
        let ias = c.msg.options.ia_nas().map_err(Error::Malformed)?;
        for ia in &ias {
            let key = Self::key(c.duid, ia);
            let mine = self.table.of_client(&key).map(|l| l.ip);
            let mut freed = false;
            for a in ia.addresses() {
                if mine == Some(a.addr) {
                    self.table.free(a.addr);
                    freed = true;
                }
            }
            if !freed {
                let open = w.ia_na(ia.iaid, 0, 0).map_err(Error::NoRoom)?;
                w.status(status::NO_BINDING, "no binding for this IA")
                    .map_err(Error::NoRoom)?;
                w.end(open).map_err(Error::NoRoom)?;
            }
        }
        w.status(status::SUCCESS, "released")
            .map_err(Error::NoRoom)?;
        Ok(None)
    }

    /// DECLINE: the named addresses the client held are put out of use.
    fn decline(
        &mut self,
        now: Instant,
        c: &Client<'_>,
        w: &mut Writer<'_>,
    ) -> Result<Option<Ipv6Addr>, Error> {
        let ias = c.msg.options.ia_nas().map_err(Error::Malformed)?;
        let until = self.unix(now) + self.settings.decline.as_secs();
        for ia in &ias {
            let key = Self::key(c.duid, ia);
            let mine = self.table.of_client(&key).map(|l| l.ip);
            for a in ia.addresses() {
                if mine == Some(a.addr) {
                    self.table.decline(a.addr, until);
                }
            }
        }
        w.status(status::SUCCESS, "declined")
            .map_err(Error::NoRoom)?;
        Ok(None)
    }

    /// CONFIRM: Success when every address named is on the client's link,
    /// NotOnLink otherwise; no addresses, no reply (RFC 8415 §18.3.3).
    fn confirm(&mut self, c: &Client<'_>, w: &mut Writer<'_>) -> Result<Option<Ipv6Addr>, Error> {
        let ias = c.msg.options.ia_nas().map_err(Error::Malformed)?;
        let addrs: Vec<Ipv6Addr> = ias
            .iter()
            .flat_map(|ia| ia.addresses())
            .map(|a| a.addr)
            .collect();
        if addrs.is_empty() {
            return Err(Error::NothingToConfirm);
        }
        let Some(s) = c.subnet else {
            return Err(Error::NoSubnet);
        };
        let on_link = addrs.iter().all(|a| self.settings.subnets[s].contains(*a));
        if on_link {
            w.status(status::SUCCESS, "all addresses on link")
        } else {
            w.status(status::NOT_ON_LINK, "not on link")
        }
        .map_err(Error::NoRoom)?;
        Ok(None)
    }

    /// DNS and the boot answer.
    fn configuration(
        &self,
        c: &Client<'_>,
        server: Ipv6Addr,
        w: &mut Writer<'_>,
    ) -> Result<(), Error> {
        if let Some(s) = c.subnet.map(|s| &self.settings.subnets[s]) {
            if !s.dns.is_empty() {
                let open = w.begin(code::DNS_SERVERS).map_err(Error::NoRoom)?;
                for d in &s.dns {
                    w.put(&d.octets()).map_err(Error::NoRoom)?;
                }
                w.end(open).map_err(Error::NoRoom)?;
            }
            if !s.domains.is_empty() {
                let open = w.begin(code::DOMAIN_LIST).map_err(Error::NoRoom)?;
                for d in &s.domains {
                    for label in d.split('.').filter(|l| !l.is_empty()) {
                        let len = u8::try_from(label.len().min(63)).unwrap_or(63);
                        w.put(&[len]).map_err(Error::NoRoom)?;
                        w.put(&label.as_bytes()[..usize::from(len)])
                            .map_err(Error::NoRoom)?;
                    }
                    w.put(&[0]).map_err(Error::NoRoom)?;
                }
                w.end(open).map_err(Error::NoRoom)?;
            }
        }
        if let Some((url, http)) = self.boot_url(c, server) {
            w.option(code::BOOTFILE_URL, url.as_bytes())
                .map_err(Error::NoRoom)?;
            if http {
                // EDK2's HTTP boot takes an offer as its own by this echo,
                // as with DHCPv4's option 60.
                let open = w.begin(code::VENDOR_CLASS).map_err(Error::NoRoom)?;
                w.put(&343u32.to_be_bytes()).map_err(Error::NoRoom)?;
                w.put(&10u16.to_be_bytes()).map_err(Error::NoRoom)?;
                w.put(b"HTTPClient").map_err(Error::NoRoom)?;
                w.end(open).map_err(Error::NoRoom)?;
            }
        }
        Ok(())
    }
}
