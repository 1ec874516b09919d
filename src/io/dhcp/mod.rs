//! The DHCP worker: one thread owns the one socket on :67 (bound to the boot
//! interface; a broadcast reaches every member of a reuseport group, so there is
//! exactly one), the :4011 socket in proxy mode or with a PXE menu, a send-only link socket for
//! frames to clients without an address (io/link.rs), the engine and its lease
//! journal. Where each job lives:
//!
//! - this file: [`Server`], what both backends start from and share: the
//!   sockets, the engine, the journal, conflict probes (io/probe.rs), router
//!   advertisements (io/ra.rs), the drop summary, and where a reply goes;
//! - iface.rs: the boot interface and the sockets bound to it;
//! - commit.rs: group commit (an ACK leaves only once its record is synced,
//!   one sync covering every ACK written while the previous one ran);
//! - mailbox.rs: what other threads ask of the worker (a reload's settings);
//! - epoll.rs: the epoll worker, with its sync thread (sync_thread.rs);
//!   io/uring/dhcp.rs: the io_uring worker, whose receives, sends and
//!   fdatasync are ring operations.
//!
//! Each turn lets the engine answer what arrived (up to a batch), writes the
//! batch's journal records at once, sends what promises nothing durable, and
//! holds ACKs for the sync.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::Link;
use super::probe::Prober;
use super::ra::Advertiser;
use super::{clock, udp};
use crate::config::dhcp::Dhcp;
use crate::lease::journal::Record;
use crate::lease::{Journal, Table, Table6};
use crate::proto::dhcp::{Dest, Engine, Input, Mode, Outcome, Reply};
use crate::proto::dhcp6;
use crate::wire::dhcp::{MessageType, CLIENT_PORT, PXE_PORT, SERVER_PORT};
use crate::wire::ipv4;

mod commit;
pub mod epoll;
mod iface;
mod mailbox;
pub mod remote;
mod sync_thread;

pub(crate) use commit::{Acks, Start};
pub use iface::{interface, interface_for, Iface};
pub use mailbox::{Command, LeaseView, Mailbox, Unanswered};

/// Most datagrams handled per turn (and per journal sync).
pub(crate) const BATCH: usize = 256;
/// Largest DHCP datagram read; a longer one is dropped.
pub(crate) const RX: usize = 2048;
/// How long drops are gathered before one summary line reports them (a storm of
/// bad datagrams is one line per interval, never one per packet).
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// A reply written, and the socket whose request it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) reply: Answer,
    pub(crate) from_pxe_port: bool,
    /// The interface it leaves on (an index into [`Server::ports`]).
    pub(crate) port: usize,
}

/// A reply of either family.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// DHCPv4.
    V4(Reply),
    /// DHCPv6.
    V6(dhcp6::Reply),
}

impl Answer {
    /// Its length in the output buffer.
    pub(crate) fn len(&self) -> usize {
        match self {
            Answer::V4(r) => r.len,
            Answer::V6(r) => r.len,
        }
    }

    /// Whether it promises a binding, so may leave only once its record is
    /// on disk: an ACK with an address; a DHCPv6 REPLY giving addresses.
    fn promises_lease(&self) -> bool {
        match self {
            Answer::V4(r) => r.kind == MessageType::Ack && !r.ip.is_unspecified(),
            Answer::V6(r) => r.kind == crate::wire::dhcp6::MessageType::Reply && r.ip.is_some(),
        }
    }
}

/// One interface DHCP answers on: its sockets and its advertiser.
#[derive(Debug)]
pub struct Port {
    pub(crate) iface: Iface,
    pub(crate) main: UdpSocket,
    pub(crate) pxe: Option<UdpSocket>,
    pub(crate) link: Link,
    /// Router advertisements on it (dhcp.router_advertisement).
    pub(crate) ra: Option<Advertiser>,
    /// DHCPv6 on :547, when `[dhcp6]` is on and the interface has an IPv6
    /// address to name in boot URLs.
    pub(crate) v6: Option<UdpSocket>,
}

/// Where a reply leaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    /// As a datagram from the :67 socket.
    Main(SocketAddrV4),
    /// As a datagram from the :4011 socket.
    Pxe(SocketAddrV4),
    /// As a datagram from the :547 socket.
    V6(SocketAddrV6),
    /// As a frame to `mac`, behind these IPv4 and UDP headers.
    Link {
        mac: [u8; 6],
        headers: [u8; ipv4::HEADERS],
    },
    /// Nowhere (a :4011 answer without that socket).
    Nowhere,
}

/// `dhcp` as it serves `snapshot`: UEFI PXE firmware gets snponly.efi when
/// asked and served; boot rules naming a file nobody serves are warned of.
pub fn prepare(dhcp: &Dhcp, snapshot: &crate::store::Snapshot) -> Dhcp {
    let have =
        |p: &str| snapshot.get(p).is_some() || snapshot.profiles().is_some_and(|b| b.renders(p));
    let mut dhcp = dhcp.clone();
    let profiles = snapshot.profiles_arc();
    let grub = profiles.as_ref().is_some_and(|p| p.any_grub());
    let fitted =
        crate::proto::dhcp::policy::fit(&mut dhcp.settings.rules, have, grub, dhcp.uefi_snponly);
    dhcp.settings.profiles = profiles.map(crate::proto::dhcp::SharedProfiles);
    if fitted.snponly {
        tracing::info!("UEFI PXE firmware gets snponly.efi (dhcp.uefi_snponly)");
    }
    if !fitted.unserved.is_empty() {
        tracing::info!(
            architectures = %fitted.describe_unserved(),
            "firmware of these architectures gets a plain lease: no boot binary is served for it"
        );
    }
    // Once per start or reload: a UEFI machine enforcing Secure Boot refuses
    // iPXE, which is unsigned.
    if let Some(rule) = &fitted.unsigned_to_uefi {
        tracing::info!(
            rule,
            "UEFI machines this rule matches get iPXE, which is unsigned: those enforcing Secure \
             Boot refuse it{}",
            if grub {
                " (machines of a profile with loader = \"grub\" get the signed shim)"
            } else {
                "; give their profile loader = \"grub\" (signed shim and grub)"
            }
        );
    }
    for (rule, path) in &fitted.missing {
        tracing::warn!(
            rule,
            path,
            "boot rule names a file the root does not hold: clients it matches will not boot"
        );
    }
    dhcp
}

/// A counter family with one line per `label` value (lower case), in the
/// order given.
fn labelled(out: &mut String, name: &str, help: &str, label: &str, counts: &[(&str, u64)]) {
    use std::fmt::Write as _;
    crate::metrics::family(out, name, "counter", help);
    for (value, n) in counts {
        let value = value.to_ascii_lowercase();
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// A map of counts by name, sorted by name.
fn sorted<'a>(counts: &std::collections::HashMap<&'a str, u64>) -> Vec<(&'a str, u64)> {
    let mut v: Vec<(&str, u64)> = counts.iter().map(|(k, n)| (*k, *n)).collect();
    v.sort();
    v
}

/// What both DHCP backends start from: the sockets, bound; the engine with
/// its journal replayed; probes and advertisements.
#[derive(Debug)]
pub struct Server {
    /// The interfaces answered on, the first first.
    pub(crate) ports: Vec<Port>,
    engine: Engine,
    /// DHCPv6, when `[dhcp6]` is on.
    engine6: Option<dhcp6::Engine>,
    /// The journal's DHCPv6 bindings while `[dhcp6]` is off: kept through
    /// compactions, so turning it off and on again loses none.
    kept6: Table6,
    pub(crate) journal: Option<Journal>,
    /// The PostgreSQL lease store, instead of the journal (remote.rs).
    remote: Option<remote::Remote>,
    /// Its connection and name until the mailbox lets its thread start.
    remote_start: Option<(remote::Target, remote::Connected)>,
    access_log: bool,
    /// Conflict probes, when `dhcp.probe_ms` asks for them.
    pub(crate) prober: Option<Prober>,
    commit: commit::Commit,
    /// Drops already reported, and when the next summary is due.
    reported: u64,
    report_at: Option<Instant>,
    /// What other threads ask of the worker.
    pub(crate) mailbox: Option<Arc<Mailbox>>,
    /// Where the fleet view's events go.
    fleet: crate::fleet::Sink,
}

/// Carries dnsmasq's leases from `from` into the empty journal `j`, durably:
/// a machine holding an address keeps it when rackboot takes over.
fn import_leases(j: &mut Journal, from: &std::path::Path) -> Result<Vec<Record>, String> {
    let text = match std::fs::read_to_string(from) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %from.display(), "dhcp: no dnsmasq lease file to import");
            return Ok(Vec::new());
        }
        Err(e) => return Err(format!("dhcp: dnsmasq lease file {}: {e}", from.display())),
    };
    let (leases, bad) = crate::import::dnsmasq::leases::parse(&text, clock::unix_now());
    for (line, why) in &bad {
        tracing::warn!(file = %from.display(), line, "dhcp: dnsmasq lease not imported: {why}");
    }
    let records: Vec<Record> = leases.into_iter().map(Record::Bound).collect();
    let mut bytes = Vec::new();
    for r in &records {
        crate::lease::journal::encode(r, &mut bytes);
    }
    j.append(&bytes)
        .map_err(|e| format!("dhcp: cannot write the imported leases: {e}"))?;
    tracing::info!(file = %from.display(), leases = records.len(), "dhcp: imported dnsmasq's leases into the empty journal");
    Ok(records)
}

/// Says what opening the journal found beyond its good records.
fn report_replay(file: &std::path::Path, o: &crate::lease::journal::Opened) {
    if o.torn > 0 {
        tracing::warn!(file = %file.display(), bytes = o.torn, "lease journal had a torn tail (a crash mid-write); cut it off");
    }
    for &(offset, bytes) in &o.damaged {
        tracing::error!(
            file = %file.display(),
            offset,
            bytes,
            "lease journal: a damaged stretch (checksum mismatch) skipped; the records before and after it are kept, \
             a change recorded in it is lost (check the disk)"
        );
    }
    if let Some(aside) = &o.kept_aside {
        tracing::warn!(file = %file.display(), copy = %aside.display(), records = o.records.len(), "lease journal rewritten from its good records; the file as found is kept aside");
    }
}

impl Port {
    /// The sockets on `iface`: :67, :4011 when `pxe`, the link sender, and
    /// router advertisements when `ra`.
    /// `v6`: DHCPv6 on, with this router lifetime in the advertisements.
    fn open(iface: Iface, pxe: bool, ra: bool, v6: Option<u16>) -> Result<Self, String> {
        let listen = |port| {
            iface::udp_socket(&iface, port).map_err(|e| {
                let hint = match e.kind() {
                    io::ErrorKind::PermissionDenied => " (DHCP needs root, or CAP_NET_BIND_SERVICE and CAP_NET_RAW)",
                    io::ErrorKind::AddrInUse => " (another DHCP server holds it: stop it, or run rackboot with --dhcp-proxy beside it)",
                    _ => "",
                };
                format!("dhcp: cannot listen on {}:{port}: {e}{hint}", iface.name)
            })
        };
        let main = listen(SERVER_PORT)?;
        let pxe = if pxe { Some(listen(PXE_PORT)?) } else { None };
        let link = Link::sender(&iface.name).map_err(|e| {
            format!("dhcp: cannot open a raw socket to reach clients without an address: {e} (needs CAP_NET_RAW)")
        })?;
        // A kernel without IPv6, or without CAP_NET_RAW, serves on without
        // advertisements: iPXE then waits out its IPv6 autoconfiguration.
        let ra = if ra {
            let managed = v6.map(|router_lifetime| crate::wire::icmpv6::Managed {
                prefix: iface.v6,
                router_lifetime,
            });
            match Advertiser::start(
                &iface.name,
                iface.index as u32,
                iface.mac,
                managed,
                clock::now(),
            ) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(
                        interface = %iface.name,
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
        let v6 = match (v6.is_some(), iface.v6) {
            (true, Some(_)) => Some(iface::udp6_socket(&iface).map_err(|e| {
                format!(
                    "dhcp6: cannot listen on {}:547: {e}{}",
                    iface.name,
                    if e.kind() == io::ErrorKind::AddrInUse {
                        " (another DHCPv6 server holds it: stop it)"
                    } else {
                        ""
                    }
                )
            })?),
            (true, None) => {
                tracing::warn!(
                    interface = %iface.name,
                    "dhcp6: the interface has no global or unique-local IPv6 address: no DHCPv6 on it"
                );
                None
            }
            (false, _) => None,
        };
        Ok(Self {
            iface,
            main,
            pxe,
            link,
            ra,
            v6,
        })
    }
}

impl Server {
    /// Opens the sockets on the configured interfaces, replays the lease journal.
    ///
    /// # Errors
    /// The interface is missing or has no address, a socket cannot be bound, the
    /// journal cannot be opened, or a range lies outside the interface's network.
    pub fn open(config: &Dhcp, http_port: u16, access_log: bool) -> Result<Self, String> {
        let mut ifaces: Vec<Iface> = Vec::new();
        for name in config.interfaces() {
            let iface = interface_for(config, name).map_err(|e| format!("dhcp: {e}"))?;
            let same = |i: &&Iface| !i.addr.is_unspecified() && i.addr == iface.addr;
            if let Some(other) = ifaces.iter().find(same) {
                return Err(format!(
                    "dhcp: {} and {} have the same address {}: a reply could not tell them apart",
                    other.name, iface.name, iface.addr
                ));
            }
            ifaces.push(iface);
        }
        let nets: Vec<(Ipv4Addr, u8)> = ifaces.iter().map(|i| (i.addr, i.prefix)).collect();
        let mut settings = config.resolve(&nets).map_err(|e| format!("dhcp: {e}"))?;
        // Boot URLs name the port HTTP really listens on (it may be picked at bind).
        settings.http_port = http_port;
        // A PXE menu's boot server answers on :4011 in server mode too (the
        // socket is opened at start: a reload that adds a menu needs a restart
        // for it).
        let pxe = settings.mode == Mode::Proxy || settings.pxe_menu.is_some();
        let mut ports = Vec::new();
        for iface in ifaces {
            let v6 = config.v6.as_ref().map(|v| v.router_lifetime);
            ports.push(Port::open(iface, pxe, config.router_advertisement, v6)?);
        }
        let iface = &ports[0].iface;
        // A proxy gives no addresses, so it keeps no journal.
        let mut remote_start = None;
        let (journal, records) = if let (Mode::Server, Some(target)) =
            (settings.mode, &config.store)
        {
            let (client, records) = remote::open(target).map_err(|e| format!("dhcp: {e}"))?;
            remote_start = Some((target.clone(), client));
            (None, records)
        } else if settings.mode == Mode::Server {
            let o = Journal::open(&config.lease_file)
                .map_err(|e| format!("dhcp: lease file {}: {e}", config.lease_file.display()))?;
            report_replay(&config.lease_file, &o);
            let (mut j, mut r) = (o.journal, o.records);
            if let (true, Some(from)) = (r.is_empty(), &config.import_leases) {
                r = import_leases(&mut j, from)?;
            }
            (Some(j), r)
        } else {
            (None, Vec::new())
        };
        let now = clock::unix_now();
        let (mut records6, records): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(Record::is_v6);
        let engine6 = match &config.v6 {
            Some(v6) => {
                let first = &ports[0].iface;
                if first.v6.is_none() {
                    return Err(format!(
                        "dhcp6: {} has no global or unique-local IPv6 address for boot URLs and its prefix:                          add one (ip -6 addr add fd00:1::1/64 dev {}) or leave [dhcp6] out",
                        first.name, first.name
                    ));
                }
                let mut s6 = v6.resolve(first.v6)?;
                s6.duid = dhcp6::duid_ll(first.mac);
                s6.rules = settings.rules.clone();
                s6.profiles = settings.profiles.clone();
                s6.http_port = http_port;
                let table6 = Table6::from_records(std::mem::take(&mut records6));
                for p in ports.iter().filter(|p| p.v6.is_some()) {
                    if let Some((addr, len)) = p.iface.v6 {
                        tracing::info!(
                            interface = %p.iface.name,
                            addr = %addr,
                            prefix = len,
                            leases = table6.active(now).count(),
                            subnets = s6.subnets.len(),
                            "dhcp6 listening"
                        );
                    }
                }
                Some(dhcp6::Engine::new(s6, table6, clock::now(), now))
            }
            None => None,
        };
        let table = Table::from_records(records);
        for p in &ports {
            tracing::info!(
                interface = %p.iface.name,
                addr = %p.iface.addr,
                mode = ?settings.mode,
                leases = table.active(now).count(),
                pool = settings.subnets.iter().map(|s| s.size()).sum::<u64>(),
                file = %config.lease_file.display(),
                "dhcp listening"
            );
            iface::warn_if_arp_table_small(&settings, &p.iface);
        }
        // Probes leave by the routing table, which knows each subnet's link.
        let prober = if settings.probe {
            Some(Prober::open(&iface.name, config.probe).map_err(|e| {
                format!("dhcp: cannot open the ICMP socket for conflict probes: {e} (needs CAP_NET_RAW; or set dhcp.probe_ms = 0)")
            })?)
        } else {
            None
        };
        Ok(Self {
            ports,
            engine: Engine::new(settings, table, clock::now(), now),
            engine6,
            kept6: Table6::from_records(records6),
            journal,
            remote: None,
            remote_start,
            access_log,
            prober,
            commit: commit::Commit::default(),
            reported: 0,
            report_at: None,
            mailbox: None,
            fleet: crate::fleet::Sink::off(),
        })
    }

    /// Whether it waits for a mailbox to start its lease store's thread.
    pub fn needs_mailbox(&self) -> bool {
        self.remote_start.is_some()
    }

    /// Sends what it answers to the fleet view through `sink`.
    #[must_use]
    pub fn with_fleet(mut self, sink: crate::fleet::Sink) -> Self {
        self.fleet = sink;
        self
    }

    /// Takes commands from `mailbox` (a reload's settings), and starts the
    /// lease store's thread, which posts to it.
    ///
    /// # Errors
    /// The lease store's thread cannot start (it posts to the mailbox).
    pub fn with_mailbox(mut self, mailbox: Option<Arc<Mailbox>>) -> Result<Self, String> {
        self.mailbox = mailbox;
        if let Some((target, client)) = self.remote_start.take() {
            let Some(m) = self.mailbox.clone() else {
                return Err("dhcp: the PostgreSQL lease store needs the worker's mailbox".into());
            };
            self.remote = Some(
                remote::Remote::spawn(target, client, m)
                    .map_err(|e| format!("dhcp: cannot start the lease store's thread: {e}"))?,
            );
        }
        Ok(self)
    }

    /// Carries out what the mailbox holds; returns the ACKs a commit to the
    /// lease store released, to send.
    pub(crate) fn handle_commands(&mut self, now: Instant) -> Acks {
        let Some(mailbox) = &self.mailbox else {
            return Vec::new();
        };
        let mut acks = Vec::new();
        for command in mailbox.take() {
            match command {
                Command::Reconfigure {
                    mut settings,
                    settings6,
                    reply,
                } => {
                    // Boot URLs keep naming the port HTTP really listens on.
                    settings.http_port = self.engine.settings().http_port;
                    if settings.mode != self.engine.settings().mode {
                        let _ = reply.send(Err(
                            "dhcp: the mode (server or proxy) changed: it takes effect at the next restart".into(),
                        ));
                        continue;
                    }
                    if settings.pxe_menu.is_some() && self.ports.iter().any(|p| p.pxe.is_none()) {
                        let _ = reply.send(Err(
                            "dhcp: a PXE menu was added in server mode: its boot server listens on :4011 from the next restart".into(),
                        ));
                        continue;
                    }
                    let mut said6 = String::new();
                    if let Some(e6) = self.engine6.as_mut() {
                        // Boot rules and profiles serve both families; the
                        // server's DUID and the HTTP port stay.
                        let old = e6.settings();
                        let next = settings6.map_or_else(|| old.clone(), |s| *s);
                        let s6 = dhcp6::Settings {
                            rules: settings.rules.clone(),
                            profiles: settings.profiles.clone(),
                            duid: old.duid.clone(),
                            http_port: old.http_port,
                            ..next
                        };
                        let unix = e6.unix(now);
                        let outside = e6
                            .table()
                            .active(unix)
                            .filter(|l| !s6.subnets.iter().any(|s| s.in_ranges(l.ip)))
                            .count();
                        said6 = format!(
                            "; dhcp6: {} subnets, {outside} active leases in no pool now",
                            s6.subnets.len()
                        );
                        e6.reconfigure(s6);
                    }
                    let outside = self.engine.reconfigure(*settings, now);
                    if outside > 0 {
                        tracing::warn!(
                            leases = outside,
                            "dhcp: leases whose address is in no pool since this reload are kept until they expire and not renewed"
                        );
                    }
                    tracing::info!("dhcp: new settings in use; the lease table is kept");
                    let _ = reply.send(Ok(format!(
                        "dhcp: reconfigured, lease table kept; {outside} active leases in no pool now (kept until they expire, not renewed){said6}"
                    )));
                }
                Command::Leases { reply } => {
                    let unix = self.engine.unix(now);
                    let mut all = LeaseView::all(self.engine.table(), unix);
                    if let Some(e6) = &self.engine6 {
                        all.extend(LeaseView::all(e6.table(), e6.unix(now)));
                    }
                    let _ = reply.send(all);
                }
                Command::Free { ip, reply } => {
                    let _ = reply.send(self.free_now(ip));
                }
                Command::Metrics { reply } => {
                    let _ = reply.send(self.metrics(now));
                }
                Command::Store(event) => acks.extend(self.stored(event)),
            }
        }
        acks
    }

    /// What the lease store's thread reported: the ACKs a commit released.
    fn stored(&mut self, event: remote::Event) -> Acks {
        let Some(r) = self.remote.as_mut() else {
            return Vec::new();
        };
        match event {
            remote::Event::Committed { result, took } => {
                let covered = self.commit.end_remote();
                match result {
                    Ok(done) => {
                        r.ended(true, took, done.refused.len());
                        for t in done.truth {
                            self.engine.learn(t);
                        }
                        if done.refused.is_empty() {
                            return covered;
                        }
                        tracing::info!(
                            addresses = ?done.refused,
                            "dhcp: the lease store gave these addresses to another server's clients; their ACKs are not sent (the clients are NAKed on their retry)"
                        );
                        covered
                            .into_iter()
                            .filter(|(p, _)| match p.reply {
                                Answer::V4(a) => !done.refused.contains(&a.ip),
                                Answer::V6(_) => true,
                            })
                            .collect()
                    }
                    Err(_) => {
                        r.ended(false, took, 0);
                        self.commit.health.acks_held_back += covered.len() as u64;
                        Vec::new()
                    }
                }
            }
            remote::Event::Learned(records) | remote::Event::Reloaded(records) => {
                r.learned += records.len() as u64;
                for rec in records {
                    self.engine.learn(rec);
                }
                Vec::new()
            }
        }
    }

    /// The engine's counters and the pools' use, as Prometheus text.
    fn metrics(&self, now: Instant) -> String {
        use crate::metrics::{family, sample};
        use std::fmt::Write as _;
        let c = self.engine.counters();
        let mut out = String::new();
        sample(
            &mut out,
            "rackboot_dhcp_received_total",
            "counter",
            "DHCP datagrams handled.",
            c.received,
        );
        let counters = [
            (
                "rackboot_dhcp_messages_total",
                "DHCP messages received and understood, by type.",
                "type",
                sorted(&c.received_by_type),
            ),
            (
                "rackboot_dhcp_replies_total",
                "DHCP replies written, by type.",
                "type",
                vec![("offer", c.offers), ("ack", c.acks), ("nak", c.naks)],
            ),
            (
                "rackboot_dhcp_dropped_total",
                "DHCP datagrams dropped as unusable, by reason.",
                "reason",
                sorted(&c.dropped),
            ),
            (
                "rackboot_dhcp_unanswered_total",
                "DHCP messages understood and left unanswered, by reason.",
                "reason",
                sorted(&c.quiet),
            ),
        ];
        for (name, help, label, counts) in counters {
            labelled(&mut out, name, help, label, &counts);
        }
        crate::metrics::histogram(
            &mut out,
            "rackboot_dhcp_offer_to_ack_seconds",
            "Time from an OFFER to the REQUEST that took it (its ACK leaves after the journal sync).",
            self.engine.offer_to_ack(),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0],
        );
        sample(
            &mut out,
            "rackboot_dhcp_offers_unheld_total",
            "counter",
            "OFFERs made without holding their address: the subnet's held offers were at dhcp.held_offers_percent (a DISCOVER flood).",
            c.offers_unheld,
        );
        if let Some(r) = &self.remote {
            r.metrics(&mut out, self.commit.waiting());
        }
        let h = &self.commit.health;
        family(
            &mut out,
            "rackboot_dhcp_journal_errors_total",
            "counter",
            "Lease journal operations that failed (the disk full or failing).",
        );
        for (op, n) in [("write", h.write_errors), ("sync", h.sync_errors)] {
            let _ = writeln!(out, "rackboot_dhcp_journal_errors_total{{op=\"{op}\"}} {n}");
        }
        sample(
            &mut out,
            "rackboot_dhcp_journal_failing",
            "gauge",
            "1 while the last lease journal operation failed (ACKs are held back), else 0.",
            u64::from(h.failing()),
        );
        sample(
            &mut out,
            "rackboot_dhcp_acks_held_back_total",
            "counter",
            "ACKs not sent because their lease could not be made durable.",
            h.acks_held_back,
        );
        sample(
            &mut out,
            "rackboot_dhcp_conflicts_total",
            "counter",
            "Addresses a probe found in use.",
            c.conflicts,
        );
        if let Some(e6) = &self.engine6 {
            let c6 = e6.counters();
            sample(
                &mut out,
                "rackboot_dhcp6_received_total",
                "counter",
                "DHCPv6 datagrams handled.",
                c6.received,
            );
            let counters = [
                (
                    "rackboot_dhcp6_messages_total",
                    "DHCPv6 messages received and understood, by type.",
                    "type",
                    sorted(&c6.received_by_type),
                ),
                (
                    "rackboot_dhcp6_replies_total",
                    "DHCPv6 replies written, by type.",
                    "type",
                    vec![("advertise", c6.advertises), ("reply", c6.replies)],
                ),
                (
                    "rackboot_dhcp6_dropped_total",
                    "DHCPv6 datagrams dropped as unusable, by reason.",
                    "reason",
                    sorted(&c6.dropped),
                ),
                (
                    "rackboot_dhcp6_unanswered_total",
                    "DHCPv6 messages understood and left unanswered, by reason.",
                    "reason",
                    sorted(&c6.quiet),
                ),
            ];
            for (name, help, label, counts) in counters {
                labelled(&mut out, name, help, label, &counts);
            }
            let unix = e6.unix(now);
            sample(
                &mut out,
                "rackboot_dhcp6_leases",
                "gauge",
                "DHCPv6 bindings in force.",
                e6.table().active(unix).count() as u64,
            );
        }
        family(
            &mut out,
            "rackboot_dhcp_pool_addresses",
            "gauge",
            "Pool addresses by state, per subnet.",
        );
        for (s, size, leased, offered) in self.engine.pool_use(now) {
            let net = format!("{}/{}", s.network, s.prefix);
            let free = size.saturating_sub(leased + offered);
            for (state, n) in [("leased", leased), ("offered", offered), ("free", free)] {
                let _ = writeln!(
                    out,
                    "rackboot_dhcp_pool_addresses{{subnet=\"{net}\",state=\"{state}\"}} {n}"
                );
            }
        }
        out
    }

    /// Frees the lease on `ip` and syncs its record before returning.
    fn free_now(&mut self, ip: std::net::IpAddr) -> Result<(), String> {
        // The freed lease's record, from the engine of its family.
        let bytes = match (ip, self.engine6.as_mut()) {
            (std::net::IpAddr::V4(a), _) if self.engine.free_lease(a) => self.engine.take_journal(),
            (std::net::IpAddr::V6(a), Some(e6)) => match e6.free_lease(a) {
                true => e6.take_journal(),
                false => Vec::new(),
            },
            _ => Vec::new(),
        };
        if bytes.is_empty() {
            return Err(format!("no lease holds {ip}"));
        }
        if let Some(r) = self.remote.as_mut() {
            // Committed with the turn's group, which starts before the
            // worker waits again.
            r.pending.extend_from_slice(&bytes);
            tracing::info!(%ip, "dhcp: lease freed by the admin API");
            return Ok(());
        }
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        match journal.append(&bytes) {
            Ok(()) => {
                tracing::info!(%ip, "dhcp: lease freed by the admin API");
                Ok(())
            }
            Err(e) => {
                // Kept for the next batch's write, as a client's record would
                // be (the batch writes both engines' records as one journal).
                self.engine.restore_journal(bytes);
                Err(format!("the lease journal cannot be written: {e}; the lease is freed in memory and its record waits"))
            }
        }
    }

    /// When the worker must wake with nothing received: the drop summary, a
    /// probe's end, an offer's expiry.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [
            self.report_at,
            self.prober.as_ref().and_then(Prober::next_due),
            self.engine.poll_timeout(),
            self.engine6.as_ref().and_then(dhcp6::Engine::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is due at `now`: expired offers let go.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now);
        if let Some(e6) = self.engine6.as_mut() {
            e6.handle_timeout(now);
        }
    }

    /// Lets the engine answer `bytes` from `peer` (on :4011 when `from_pxe`),
    /// writing the reply into `out`.
    pub(crate) fn answer(
        &mut self,
        now: Instant,
        port: usize,
        received: &udp::Received,
        bytes: &[u8],
        from_pxe: bool,
        out: &mut [u8],
    ) -> Option<Pending> {
        let std::net::SocketAddr::V4(peer) = received.peer else {
            return None;
        };
        if received.truncated {
            tracing::debug!(%peer, "dhcp datagram over {RX} bytes dropped");
            return None;
        }
        let input = Input {
            bytes,
            server: self.ports[port].iface.addr,
            port: if from_pxe { PXE_PORT } else { SERVER_PORT },
            peer,
        };
        let outcome = self.engine.handle(now, input, out);
        if self.fleet.on() {
            let reply = match &outcome {
                Ok(Outcome::Reply(r)) => Ok(&out[..r.len]),
                Ok(Outcome::Probe(_)) => Err("held for an address probe"),
                Ok(_) => Err("-"),
                Err(e) => Err(e.kind()),
            };
            if !matches!(reply, Err("-")) {
                if let Some(e) = crate::fleet::Dhcp::from_wire(now, bytes, reply) {
                    self.fleet.send(|| crate::fleet::Event::Dhcp(e));
                }
            }
        }
        match outcome {
            Ok(Outcome::Reply(r)) => {
                return Some(Pending {
                    reply: Answer::V4(r),
                    from_pxe_port: from_pxe,
                    port,
                })
            }
            Ok(Outcome::Probe(ip)) => self.start_probe(ip, now),
            Ok(other) => tracing::debug!(%peer, ?other, "dhcp: no reply due"),
            Err(e) if e.is_drop() => {
                tracing::debug!(%peer, reason = e.kind(), error = %e, "dhcp: dropped")
            }
            Err(e) => tracing::debug!(%peer, reason = e.kind(), error = %e, "dhcp: no reply"),
        }
        None
    }

    /// Lets the DHCPv6 engine answer `bytes` that came in on `port`'s :547,
    /// writing the reply into `out`.
    pub(crate) fn answer6(
        &mut self,
        now: Instant,
        port: usize,
        received: &udp::Received,
        bytes: &[u8],
        out: &mut [u8],
    ) -> Option<Pending> {
        let std::net::SocketAddr::V6(peer) = received.peer else {
            return None;
        };
        let (Some(engine), Some((local, _))) = (self.engine6.as_mut(), self.ports[port].iface.v6)
        else {
            return None;
        };
        if received.truncated {
            engine.drop_oversize();
            tracing::debug!(%peer, "dhcp6 datagram over {RX} bytes dropped");
            return None;
        }
        let input = dhcp6::Input { bytes, peer, local };
        match engine.handle(now, input, out) {
            Ok(r) => Some(Pending {
                reply: Answer::V6(r),
                from_pxe_port: false,
                port,
            }),
            Err(e) => {
                let what = if e.is_drop() { "dropped" } else { "no reply" };
                tracing::debug!(%peer, reason = e.kind(), error = %e, "dhcp6: {what}");
                None
            }
        }
    }

    /// The replies to DISCOVERs whose probes were answered or timed out (an
    /// OFFER never waits for the disk).
    pub(crate) fn finish_probes(&mut self, now: Instant) -> Acks {
        let Some(prober) = self.prober.as_mut() else {
            return Vec::new();
        };
        let done: Vec<(Ipv4Addr, bool)> = prober
            .answered()
            .into_iter()
            .map(|ip| (ip, true))
            .chain(prober.expired(now).into_iter().map(|ip| (ip, false)))
            .collect();
        let mut out = [0u8; 1500];
        let mut replies = Vec::new();
        for (ip, in_use) in done {
            if in_use {
                tracing::warn!(%ip, "dhcp: address answers a ping but has no lease here (a static address?); kept out of use for dhcp.decline_secs");
            }
            // The reply leaves on the interface its DISCOVER came in on.
            let port = self
                .engine
                .probe_server(ip)
                .and_then(|a| self.ports.iter().position(|p| p.iface.addr == a))
                .unwrap_or(0);
            match self.engine.probe_result(now, ip, in_use, &mut out) {
                Ok(Outcome::Reply(r)) => replies.push((
                    Pending {
                        reply: Answer::V4(r),
                        from_pxe_port: false,
                        port,
                    },
                    out[..r.len].to_vec(),
                )),
                Ok(Outcome::Probe(next)) => self.start_probe(next, now),
                Ok(other) => tracing::debug!(%ip, ?other, "dhcp: probe ended without a reply"),
                Err(e) => {
                    tracing::debug!(%ip, reason = e.kind(), "dhcp: probe ended without a reply")
                }
            }
        }
        replies
    }

    fn start_probe(&mut self, ip: Ipv4Addr, now: Instant) {
        match self.prober.as_mut() {
            Some(p) => p.start(ip, now),
            // Settings ask for probes only when the prober is open.
            None => tracing::debug!(%ip, "dhcp: probe asked without a prober"),
        }
    }

    /// Whether `p` promises a lease, so must wait until its record is on disk.
    pub(crate) fn needs_sync(&self, p: &Pending) -> bool {
        (self.journal.is_some() || self.remote.is_some()) && p.reply.promises_lease()
    }

    /// Writes the batch's lease changes to the journal (the sync comes later);
    /// if the write fails, the batch's ACKs are held back (the clients retry)
    /// and the records are kept for the next batch.
    pub(crate) fn write_journal(&mut self, pending: &mut Vec<Pending>) {
        let mut bytes = self.engine.take_journal();
        if let Some(e6) = self.engine6.as_mut() {
            bytes.extend(e6.take_journal());
        }
        if bytes.is_empty() {
            return;
        }
        if let Some(r) = self.remote.as_mut() {
            r.pending.extend_from_slice(&bytes);
            return;
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        match journal.write(&bytes) {
            Ok(()) => self.commit.written(),
            Err(e) => {
                // Records are records: the DHCPv4 side keeps both families'
                // for the next batch's write.
                self.engine.restore_journal(bytes);
                let before = pending.len();
                pending.retain(|p| !p.reply.promises_lease());
                let held = before - pending.len();
                self.commit
                    .health
                    .failed(clock::now(), commit::Op::Write, &e, held);
            }
        }
    }

    /// Starts the next journal sync (or lease store commit), if one is due.
    pub(crate) fn start_sync(&mut self) -> Start {
        if let Some(r) = self.remote.as_mut() {
            if r.busy {
                return Start::Idle;
            }
            if r.start(self.engine.unix(clock::now())) {
                self.commit.begin_remote();
            } else if r.pending.is_empty() && self.commit.waiting() > 0 {
                // ACKs whose records were committed already (a renewal
                // repeated within one batch).
                return Start::Ready(self.commit.take_waiting());
            }
            return Start::Idle;
        }
        match self.journal.as_mut() {
            Some(j) => {
                let unix = self.engine.unix(clock::now());
                let t4 = self.engine.table();
                let t6 = self.engine6.as_ref().map_or(&self.kept6, |e| e.table());
                let live = t4.len() + t6.len();
                self.commit.start(j, live, || {
                    let mut all = t4.snapshot(unix);
                    all.extend(t6.snapshot(unix));
                    all
                })
            }
            None => Start::Idle,
        }
    }

    /// Holds an ACK until the sync that covers its record.
    pub(crate) fn hold(&mut self, p: Pending, bytes: &[u8]) {
        if let Some(r) = self.remote.as_mut() {
            if self.commit.waiting() >= remote::MAX_WAITING {
                // The store is slow: past the bound, the client retries.
                r.overflow += 1;
                return;
            }
        }
        self.commit.hold(p, bytes);
    }

    /// Takes back the buffers of replies that were sent.
    pub(crate) fn recycle(&mut self, sent: Acks) {
        self.commit.recycle(sent);
    }

    /// The sync started last ended with `result`: the ACKs to send now.
    pub(crate) fn synced(&mut self, result: io::Result<()>) -> Acks {
        self.commit.finished(result)
    }

    /// Where `p`'s reply (`bytes`) leaves.
    pub(crate) fn route(&self, p: &Pending, bytes: &[u8]) -> Route {
        let port = &self.ports[p.port];
        let frame = |ip| ipv4::udp_headers(port.iface.addr, SERVER_PORT, ip, CLIENT_PORT, bytes);
        let r = match p.reply {
            Answer::V4(r) => r,
            Answer::V6(r) => return Route::V6(r.to),
        };
        match r.to {
            Dest::Relay(a) => Route::Main(a),
            Dest::Unicast(a) if p.from_pxe_port => match &port.pxe {
                Some(_) => Route::Pxe(a),
                None => Route::Nowhere,
            },
            Dest::Unicast(a) => Route::Main(a),
            // A frame to ff:ff:ff:ff:ff:ff, not a datagram to 255.255.255.255
            // (see io/link.rs).
            Dest::Broadcast => Route::Link {
                mac: [0xff; 6],
                headers: frame(Ipv4Addr::BROADCAST),
            },
            Dest::Link { mac, ip } => Route::Link {
                mac,
                headers: frame(ip),
            },
        }
    }

    /// Logs a reply handed to the kernel (ACKs and NAKs are the DHCP access
    /// log), or its failure.
    pub(crate) fn log_sent(&self, p: &Pending, result: Result<(), &io::Error>) {
        let r = match (p.reply, result) {
            (Answer::V6(r), Err(e)) => {
                return tracing::warn!(error = %e, to = %r.to, "dhcp6: send failed");
            }
            (Answer::V6(r), Ok(())) => {
                let mac = r
                    .mac
                    .map(|m| crate::wire::dhcp::Chaddr::new(&m).to_string());
                let mac = mac.as_deref().unwrap_or("-");
                match r.ip {
                    Some(ip)
                        if self.access_log && r.kind == crate::wire::dhcp6::MessageType::Reply =>
                    {
                        tracing::info!(mac, %ip, answered = r.answered.name(), "dhcp6 REPLY")
                    }
                    ip => {
                        tracing::debug!(mac, ip = ?ip, kind = r.kind.name(), answered = r.answered.name(), to = %r.to, "dhcp6 reply")
                    }
                }
                return;
            }
            (Answer::V4(r), _) => r,
        };
        match (result, r.kind) {
            (Err(e), _) => tracing::warn!(error = %e, to = ?r.to, "dhcp: send failed"),
            (Ok(()), MessageType::Ack) if self.access_log && !r.ip.is_unspecified() => {
                tracing::info!(mac = %r.chaddr, ip = %r.ip, "dhcp ACK")
            }
            (Ok(()), MessageType::Nak) if self.access_log => {
                tracing::info!(mac = %r.chaddr, "dhcp NAK")
            }
            (Ok(()), kind) => {
                tracing::debug!(mac = %r.chaddr, ip = %r.ip, kind = kind.name(), to = ?r.to, "dhcp reply")
            }
        }
    }

    /// Logs one summary of the datagrams dropped since the last one, at most
    /// once per [`REPORT_EVERY`].
    pub(crate) fn report(&mut self, now: Instant) {
        // DHCPv4's reasons as they are, DHCPv6's after `dhcp6:`.
        let v6 = self.engine6.as_ref().map(|e| &e.counters().dropped);
        let dropped = self
            .engine
            .counters()
            .dropped
            .iter()
            .map(|(why, n)| (String::from(*why), *n))
            .chain(
                v6.into_iter()
                    .flatten()
                    .map(|(why, n)| (format!("dhcp6:{why}"), *n)),
            );
        let mut reasons: Vec<(String, u64)> = dropped.collect();
        let total: u64 = reasons.iter().map(|(_, n)| n).sum();
        match self.report_at {
            None if total > self.reported => self.report_at = Some(now + REPORT_EVERY),
            Some(at) if at <= now => {
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
}
