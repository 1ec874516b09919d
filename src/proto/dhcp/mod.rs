//! DHCPv4 for network boot, sans-IO: a full server (pools, reservations, leases)
//! or a proxyDHCP server (boot answers only), with the boot policy in policy.rs.
//!
//! [`Engine::handle`] takes one received datagram, where it arrived and `now`
//! (unix seconds: leases outlive the process, so they are kept in wall time) and
//! writes at most one reply with where it must go ([`Dest`], RFC 2131 §4.1).
//! Lease changes are queued as journal records in the table; the backend makes
//! them durable ([`Engine::take_journal`]) before it sends the replies.

pub mod policy;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::lease::{Entry, Lease, Table};
use crate::wire::dhcp::{
    self, code, ipxe, MessageType, Options, Packet, Writer, CLIENT_PORT, PXE_PORT, SERVER_PORT,
};
use policy::{Action, Facts, Rule};

/// Full server or proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Owns the addresses of its subnets.
    #[default]
    Server,
    /// Another server gives addresses; this one only says what to boot.
    Proxy,
}

/// One subnet the server gives addresses in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Address ranges handed out, inclusive, in allocation order.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Addresses in the ranges never handed out.
    pub exclude: Vec<Ipv4Addr>,
    /// Lease time, seconds.
    pub lease_secs: u32,
    /// Option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 6 (sent whenever set: the Debian installer needs it).
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Raw options by number.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Subnet {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = self.mask_bits();
        u32::from(ip) & mask == u32::from(self.network) & mask
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The subnet mask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// Addresses in the ranges.
    pub fn size(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(a, b)| u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1)
            .sum()
    }

    fn in_ranges(&self, ip: Ipv4Addr) -> bool {
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
    }

    fn index(&self, ip: Ipv4Addr) -> Option<u64> {
        let mut before = 0;
        for (a, b) in &self.ranges {
            if (*a..=*b).contains(&ip) {
                return Some(before + u64::from(u32::from(ip) - u32::from(*a)));
            }
            before += u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1;
        }
        None
    }

    fn nth(&self, mut i: u64) -> Option<Ipv4Addr> {
        for (a, b) in &self.ranges {
            let n = u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1;
            if i < n {
                return Some(Ipv4Addr::from(u32::from(*a) + i as u32));
            }
            i -= n;
        }
        None
    }
}

/// A static reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The machine's MAC.
    pub mac: [u8; 6],
    /// Its address (in one of the subnets; may be outside the ranges).
    pub ip: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Raw options by number.
    pub options: Vec<(u8, Vec<u8>)>,
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
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    ip: Ipv4Addr,
    until: u64,
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
        let outcome = match Packet::new_checked(input.bytes) {
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
        };
        match outcome {
            Outcome::Reply(r) => match r.kind {
                MessageType::Offer => self.counters.offers += 1,
                MessageType::Nak => self.counters.naks += 1,
                _ => self.counters.acks += 1,
            },
            Outcome::Quiet(why) => *self.counters.quiet.entry(why).or_default() += 1,
            Outcome::Dropped(why) => *self.counters.dropped.entry(why).or_default() += 1,
        }
        outcome
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
                let Some(ip) = self.choose(subnet, &client, p.mac(), requested, now) else {
                    return Outcome::Quiet("pool exhausted");
                };
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
                self.offered.insert(ip, client);
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

    fn proxy(
        &mut self,
        p: &Packet<'_>,
        o: &Options<'_>,
        t: MessageType,
        input: &Input<'_>,
        out: &mut [u8],
    ) -> Outcome {
        let facts = Facts::of(o, p.chaddr(), p.giaddr());
        if !facts.is_pxe() {
            return Outcome::Quiet("not a PXE client (proxy mode)");
        }
        let kind = match (t, input.port) {
            (MessageType::Discover, SERVER_PORT) => MessageType::Offer,
            (MessageType::Request | MessageType::Inform, PXE_PORT) => MessageType::Ack,
            _ => return Outcome::Quiet("proxy mode answers DISCOVER and port-4011 REQUEST"),
        };
        let Some(boot) = self.boot(&facts, input.server) else {
            return Outcome::Quiet("no boot rule for this client");
        };
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            w.message_type(kind)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            let class: &[u8] = if facts.is_http_client() {
                b"HTTPClient"
            } else {
                b"PXEClient"
            };
            w.option(code::VENDOR_CLASS, class)?;
            // PXE discovery control: boot file present, no boot server discovery.
            w.option(code::VENDOR, &[6, 1, 8, 255])?;
            if let Some(uuid) = o.get(code::UUID) {
                w.option(code::UUID, &uuid)?;
            }
            self.write_boot(&mut w, o, &facts, &boot, input.server)?;
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let Ok(len) = result else {
            return Outcome::Dropped("reply too large");
        };
        let to = if input.port == PXE_PORT {
            Dest::Unicast(input.peer)
        } else {
            destination(p, MessageType::Offer, Ipv4Addr::UNSPECIFIED)
        };
        Outcome::Reply(Reply {
            len,
            to,
            kind,
            ip: Ipv4Addr::UNSPECIFIED,
        })
    }

    fn boot(&self, facts: &Facts<'_>, server: Ipv4Addr) -> Option<Boot<'_>> {
        let (rule, action) = policy::decide(&self.settings.rules, facts)?;
        let file = action
            .file
            .as_deref()
            .map(|f| policy::render(f, server, self.settings.http_port, facts.mac));
        Some(Boot { rule, action, file })
    }

    fn write_boot(
        &self,
        w: &mut Writer<'_>,
        o: &Options<'_>,
        facts: &Facts<'_>,
        boot: &Boot<'_>,
        server: Ipv4Addr,
    ) -> Result<(), crate::wire::Error> {
        let asked = |c: u8| o.get(code::PARAMS).is_some_and(|l| l.contains(&c));
        if let Some(file) = &boot.file {
            let url = file.starts_with("http://") || file.starts_with("https://");
            let in_field = w.file(file.as_bytes());
            if !in_field || asked(code::BOOTFILE) || url {
                w.option(code::BOOTFILE, file.as_bytes())?;
            }
            if !url {
                let next = boot.action.next_server.unwrap_or(server);
                w.siaddr(next);
                if asked(code::TFTP_SERVER) {
                    w.option(code::TFTP_SERVER, next.to_string().as_bytes())?;
                }
            } else {
                w.siaddr(server);
            }
            if url && facts.is_http_client() && self.settings.mode == Mode::Server {
                // UEFI HTTP boot takes only an offer that says HTTPClient.
                w.option(code::VENDOR_CLASS, b"HTTPClient")?;
            }
        }
        if boot.action.no_pxedhcp && facts.ipxe {
            w.option(code::IPXE, &[ipxe::NO_PXEDHCP, 1, 1])?;
        }
        for (c, v) in &boot.action.options {
            w.option(*c, v)?;
        }
        tracing::debug!(rule = %boot.rule.name, file = ?boot.file, "boot policy");
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        p: &Packet<'_>,
        o: &Options<'_>,
        input: &Input<'_>,
        subnet: usize,
        kind: MessageType,
        ip: Ipv4Addr,
        out: &mut [u8],
    ) -> Outcome {
        let inform = ip.is_unspecified();
        let facts = Facts::of(o, p.chaddr(), p.giaddr());
        let boot = self.boot(&facts, input.server);
        let s = &self.settings.subnets[subnet];
        let host = self.host_of(p.mac());
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            w.yiaddr(ip);
            if inform || kind == MessageType::Ack {
                w.ciaddr(p.ciaddr());
            }
            w.message_type(kind)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            if !inform {
                let l = s.lease_secs;
                w.option(code::LEASE_TIME, &l.to_be_bytes())?;
                w.option(code::RENEWAL, &(l / 2).to_be_bytes())?;
                w.option(code::REBINDING, &(l / 8 * 7).to_be_bytes())?;
            }
            w.option(code::SUBNET_MASK, &s.mask().octets())?;
            w.option(code::BROADCAST, &s.broadcast().octets())?;
            if let Some(r) = s.router {
                w.option(code::ROUTER, &r.octets())?;
            }
            if !s.dns.is_empty() {
                w.option_ips(code::DNS, &s.dns)?;
            }
            if let Some(d) = &s.domain {
                w.option(code::DOMAIN, d.as_bytes())?;
            }
            if !s.ntp.is_empty() {
                w.option_ips(code::NTP, &s.ntp)?;
            }
            if let Some(m) = s.mtu {
                w.option(code::MTU, &m.to_be_bytes())?;
            }
            if let Some(name) = host.and_then(|h| h.hostname.as_deref()) {
                w.option(code::HOSTNAME, name.as_bytes())?;
            }
            if let Some(b) = &boot {
                self.write_boot(&mut w, o, &facts, b, input.server)?;
            }
            for (c, v) in s.options.iter().chain(host.map_or(&[][..], |h| &h.options)) {
                w.option(*c, v)?;
            }
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let Ok(len) = result else {
            return Outcome::Dropped("reply too large");
        };
        let to = if inform && p.giaddr().is_unspecified() && !p.ciaddr().is_unspecified() {
            Dest::Unicast(SocketAddrV4::new(p.ciaddr(), CLIENT_PORT))
        } else {
            destination(p, kind, ip)
        };
        Outcome::Reply(Reply { len, to, kind, ip })
    }

    fn nak(
        &mut self,
        p: &Packet<'_>,
        o: &Options<'_>,
        input: &Input<'_>,
        why: &'static str,
        out: &mut [u8],
    ) -> Outcome {
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            if !p.giaddr().is_unspecified() {
                w.broadcast_flag();
            }
            w.message_type(MessageType::Nak)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            w.option(code::MESSAGE, why.as_bytes())?;
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let Ok(len) = result else {
            return Outcome::Dropped("reply too large");
        };
        tracing::debug!(why, "NAK");
        Outcome::Reply(Reply {
            len,
            to: destination(p, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
            kind: MessageType::Nak,
            ip: Ipv4Addr::UNSPECIFIED,
        })
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

/// The client's identity: option 61 when sent, else htype + chaddr.
fn client_key(p: &Packet<'_>, o: &Options<'_>) -> Box<[u8]> {
    match o.get(code::CLIENT_ID) {
        Some(id) if !id.is_empty() => [&[0u8][..], &id].concat().into(),
        _ => [&[1u8, p.htype()][..], p.chaddr()].concat().into(),
    }
}

/// RFC 2131 §4.1: relay, else the client's address, else broadcast when asked
/// (or for a NAK), else a frame to the MAC.
fn destination(p: &Packet<'_>, kind: MessageType, ip: Ipv4Addr) -> Dest {
    if !p.giaddr().is_unspecified() {
        return Dest::Relay(SocketAddrV4::new(p.giaddr(), SERVER_PORT));
    }
    if kind == MessageType::Nak {
        return Dest::Broadcast;
    }
    if !p.ciaddr().is_unspecified() {
        return Dest::Unicast(SocketAddrV4::new(p.ciaddr(), CLIENT_PORT));
    }
    if p.flags() & dhcp::BROADCAST_FLAG != 0 || ip.is_unspecified() {
        return Dest::Broadcast;
    }
    match p.mac() {
        Some(mac) => Dest::Link { mac, ip },
        None => Dest::Broadcast,
    }
}
