//! The join, sans-IO: events in (with their own times), one timeline per boot
//! out, for at most [`Limits::machines`] machines, each keeping its last
//! [`Limits::boots`] boots.
//!
//! A machine is known by its MAC (DHCP, and the script's `?mac=`); a transfer
//! is joined to the machine that last held its client's address (the lease
//! this server gave, the client's own `ciaddr`, or the address its script
//! request came from). A transfer from an address no machine holds is counted
//! as unjoined (the last few are kept).
//!
//! Which step a transfer is comes from what the machine was told and given:
//! the boot file its firmware's DHCP answer named is its NBP, the file iPXE's
//! answer named its script; the script's `kernel`, `initrd` lines and the
//! kernel command line's answers URL name the rest. A script the server did
//! not render and cannot read, or a path no line names, is placed by order
//! (the first file after the script is the kernel, those after it initrds,
//! what follows the installer's DHCP its answers).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use super::boot::{rooted, url_path, Boot, Given, Step};
use super::{Answer, Client, Dhcp, Event, Fetch, Mac, Page, PageKind, Proto, Start};

/// A step of a boot, in the order a boot takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The firmware's DHCP (for an iPXE ROM, iPXE's own).
    Dhcp,
    /// The network boot program, over TFTP or HTTP.
    Nbp,
    /// iPXE's DHCP after the NBP started.
    IpxeDhcp,
    /// The boot script.
    Script,
    /// The kernel.
    Kernel,
    /// The initrds.
    Initrd,
    /// The installer's DHCP.
    InstallerDhcp,
    /// The installer's answers (preseed, kickstart).
    Answers,
    /// The installer reported done.
    Done,
    /// It got the local-boot script: it boots from its disk.
    Local,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 10] = [
        Self::Dhcp,
        Self::Nbp,
        Self::IpxeDhcp,
        Self::Script,
        Self::Kernel,
        Self::Initrd,
        Self::InstallerDhcp,
        Self::Answers,
        Self::Done,
        Self::Local,
    ];

    /// Its name (the storm's names, and `done`, `local`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dhcp => "dhcp",
            Self::Nbp => "nbp",
            Self::IpxeDhcp => "ipxe-dhcp",
            Self::Script => "script",
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::InstallerDhcp => "installer-dhcp",
            Self::Answers => "answers",
            Self::Done => "done",
            Self::Local => "local",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Whether a boot that reached it has booted: its installer has its
    /// answers, reported done, or it boots from its disk.
    pub fn booted(self) -> bool {
        self >= Self::Answers
    }
}

/// Where a machine's latest boot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Stalled, with a diagnosis.
    Stuck,
    /// On its way, within its firmware's timers.
    Booting,
    /// It reached its answers, reported done, or boots locally.
    Booted,
}

impl State {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stuck => "stuck",
            Self::Booting => "booting",
            Self::Booted => "booted",
        }
    }
}

/// How much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Machines tracked; past it, the sixteenth seen least recently is forgotten.
    pub machines: usize,
    /// Boots kept per machine.
    pub boots: usize,
    /// Steps kept per boot (later ones are counted, not kept).
    pub steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            machines: 10_000,
            boots: 4,
            steps: 32,
        }
    }
}

/// How long each wait may last before a boot counts as stuck: what real
/// firmware does (CLIENTS.md), with room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// An OFFER to a REQUEST (firmware collects offers ~4 s).
    pub request: Duration,
    /// Firmware DHCP's answer to its NBP request (EDK2 asks at once).
    pub nbp: Duration,
    /// The NBP sent to iPXE's DHCP (ipxe.efi starts in ~6 s; snponly in ~2 s).
    pub ipxe: Duration,
    /// iPXE's answer to its script request (after its IPv6 wait, ~13 s).
    pub script: Duration,
    /// The script to its kernel request.
    pub kernel: Duration,
    /// The kernel and initrds to the installer's DHCP (40-90 s under TCG).
    pub installer: Duration,
    /// The installer's DHCP to its answers request.
    pub answers: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(15),
            nbp: Duration::from_secs(15),
            ipxe: Duration::from_secs(30),
            script: Duration::from_secs(30),
            kernel: Duration::from_secs(30),
            installer: Duration::from_secs(300),
            answers: Duration::from_secs(120),
        }
    }
}

/// One machine's boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Its MAC.
    pub mac: Mac,
    /// The address it last held.
    pub ip: Option<IpAddr>,
    /// Its last boots, oldest first.
    pub boots: VecDeque<Boot>,
    /// When its last event came.
    pub last: Instant,
}

/// A transfer from an address no machine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjoined {
    /// When it ended.
    pub at: Instant,
    /// From where.
    pub peer: IpAddr,
    /// How.
    pub proto: Proto,
    /// What.
    pub path: String,
}

/// How many unjoined transfers are kept.
const UNJOINED_KEPT: usize = 32;

/// Every machine's boots.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// How much is kept.
    pub limits: Limits,
    /// When a wait counts as stuck.
    pub timers: Timers,
    machines: HashMap<Mac, Machine>,
    by_ip: HashMap<IpAddr, Mac>,
    /// Machines forgotten to stay within the limit.
    pub forgotten: u64,
    /// Transfers from addresses no machine holds.
    pub unjoined: u64,
    /// The last of them.
    pub unjoined_recent: VecDeque<Unjoined>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new(limits: Limits, timers: Timers) -> Self {
        Self {
            limits: Limits {
                machines: limits.machines.max(1),
                boots: limits.boots.max(1),
                steps: limits.steps.max(4),
            },
            timers,
            machines: HashMap::new(),
            by_ip: HashMap::new(),
            forgotten: 0,
            unjoined: 0,
            unjoined_recent: VecDeque::new(),
        }
    }

    /// Machines tracked.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// One machine.
    pub fn machine(&self, mac: &Mac) -> Option<&Machine> {
        self.machines.get(mac)
    }

    /// Every machine, in no order.
    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values()
    }

    /// Joins `event`. `script_at` gives the text of a script this server
    /// serves as a file (by its path), when the event is a script fetch.
    pub fn handle(&mut self, event: Event, script_at: &dyn Fn(&str) -> Option<String>) {
        match event {
            Event::Dhcp(d) => self.dhcp(d),
            Event::Start(s) => self.start(s),
            Event::Fetch(f) => self.fetch(f, script_at),
            Event::Page(p) => self.page(p),
        }
    }

    fn entry(&mut self, mac: Mac, at: Instant) -> &mut Machine {
        if !self.machines.contains_key(&mac) && self.machines.len() >= self.limits.machines {
            self.forget_oldest();
        }
        let m = self.machines.entry(mac).or_insert_with(|| Machine {
            mac,
            ip: None,
            boots: VecDeque::new(),
            last: at,
        });
        m.last = m.last.max(at);
        m
    }

    /// Forgets the sixteenth of the machines seen least recently (one pass
    /// for many insertions).
    fn forget_oldest(&mut self) {
        let n = (self.machines.len() / 16).max(1);
        let mut lasts: Vec<Instant> = self.machines.values().map(|m| m.last).collect();
        let (_, cut, _) = lasts.select_nth_unstable(n - 1);
        let cut = *cut;
        let mut gone = 0;
        self.machines.retain(|_, m| {
            let keep = gone >= n || m.last > cut;
            if !keep {
                gone += 1;
            }
            keep
        });
        let machines = &self.machines;
        self.by_ip.retain(|_, mac| machines.contains_key(mac));
        self.forgotten += gone as u64;
    }

    fn hold(&mut self, mac: Mac, ip: IpAddr) {
        if let Some(m) = self.machines.get_mut(&mac) {
            if let Some(old) = m.ip.replace(ip) {
                if old != ip && self.by_ip.get(&old) == Some(&mac) {
                    self.by_ip.remove(&old);
                }
            }
        }
        self.by_ip.insert(ip, mac);
    }

    fn dhcp(&mut self, d: Dhcp) {
        let at = d.at;
        let known = self.machines.get(&d.mac);
        let current = known.and_then(|m| m.boots.back());
        let Some((phase, new_boot)) = dhcp_phase(&d, current) else {
            // An installed system's or an unknown client's DHCP: only its
            // address is noted, for a machine already tracked.
            if let (Some(_), Some(ip)) = (known, d.ip.filter(|_| d.answer == Answer::Ack)) {
                self.hold(d.mac, IpAddr::V4(ip));
            }
            return;
        };
        let limits = self.limits;
        let m = self.entry(d.mac, at);
        if new_boot || m.boots.is_empty() {
            if m.boots.len() >= limits.boots {
                m.boots.pop_front();
            }
            m.boots.push_back(Boot::new(at, firmware(&d)));
        }
        let Some(boot) = m.boots.back_mut() else {
            return;
        };
        boot.last = at;
        let open = boot
            .steps
            .iter()
            .rposition(|s| s.phase == phase && (s.end.is_none() || d.request != "discover"));
        let step = match open {
            Some(i) => &mut boot.steps[i],
            None => {
                boot.push(Step::new(phase, "dhcp", String::new(), at), &limits);
                match boot.steps.last_mut() {
                    Some(s) if s.phase == phase && s.start == at => s,
                    _ => return,
                }
            }
        };
        step.messages += 1;
        step.resends = step.messages.saturating_sub(2);
        let answer = match d.answer {
            Answer::Offer => "offer",
            Answer::Ack => "ack",
            Answer::Nak => "nak",
            Answer::Silent(_) => "-",
        };
        if !step.what.is_empty() {
            step.what.push_str(", ");
        }
        if step.what.len() < 200 {
            step.what.push_str(&format!("{}→{answer}", d.request));
        }
        match d.answer {
            Answer::Ack => {
                step.end = Some(at);
                step.ok = true;
                step.note = None;
            }
            Answer::Nak => {
                step.end = Some(at);
                step.ok = false;
                step.note = Some("NAK".into());
            }
            Answer::Silent(why) if !step.ok => step.note = Some(format!("not answered: {why}")),
            Answer::Offer => step.note = None,
            Answer::Silent(_) => {}
        }
        if matches!(d.answer, Answer::Offer | Answer::Ack) {
            if !d.file.is_empty() {
                match phase {
                    Phase::Dhcp if d.client == Client::Firmware => {
                        boot.given.nbp = d.file.to_string()
                    }
                    Phase::Dhcp | Phase::IpxeDhcp => boot.given.script = d.file.to_string(),
                    _ => {}
                }
            }
            if d.next_server.is_some() {
                boot.given.next_server = d.next_server;
            }
            if phase == Phase::InstallerDhcp && d.answer == Answer::Ack {
                boot.given.installer_dns = Some(d.dns);
            }
        }
        if let Some(ip) =
            d.ip.filter(|_| d.answer == Answer::Ack || d.request != "discover")
        {
            self.hold(d.mac, IpAddr::V4(ip));
        }
    }

    fn boot_of(&mut self, peer: IpAddr, at: Instant) -> Option<&mut Boot> {
        let mac = *self.by_ip.get(&peer)?;
        let m = self.machines.get_mut(&mac)?;
        m.last = m.last.max(at);
        let boot = m.boots.back_mut()?;
        boot.last = boot.last.max(at);
        Some(boot)
    }

    fn unjoined(&mut self, at: Instant, peer: IpAddr, proto: Proto, path: &str) {
        self.unjoined += 1;
        if self.unjoined_recent.len() >= UNJOINED_KEPT {
            self.unjoined_recent.pop_front();
        }
        self.unjoined_recent.push_back(Unjoined {
            at,
            peer,
            proto,
            path: path.chars().take(200).collect(),
        });
    }

    fn start(&mut self, s: Start) {
        let limits = self.limits;
        let path = rooted(&s.path);
        let Some(boot) = self.boot_of(s.peer, s.at) else {
            return;
        };
        let phase = boot.classify(s.proto, &path);
        boot.push(Step::new(phase, s.proto.name(), path, s.at), &limits);
    }

    fn fetch(&mut self, f: Fetch, script_at: &dyn Fn(&str) -> Option<String>) {
        let limits = self.limits;
        let path = rooted(&f.path);
        let Some(boot) = self.boot_of(f.peer, f.end) else {
            self.unjoined(f.end, f.peer, f.proto, &f.path);
            return;
        };
        let ok = f.ok();
        let note = (!ok).then(|| match f.proto {
            Proto::Tftp if &*f.result == "size_probe" => "size probe".to_owned(),
            Proto::Tftp => f.result.to_string(),
            Proto::Http => format!("HTTP {} ({})", f.status, f.result),
        });
        let blocks = (f.proto == Proto::Tftp && f.blocks.1 > 0)
            .then_some((f.blocks.0, f.blocks.1, f.blksize));
        let phase = match boot.running(f.proto.name(), &path) {
            Some(step) => {
                step.end = Some(f.end);
                step.bytes = f.bytes;
                step.resends = f.resent;
                step.ok = ok;
                step.note = note;
                step.blocks = blocks;
                step.phase
            }
            None => {
                let phase = boot.classify(f.proto, &path);
                boot.push(
                    Step {
                        end: Some(f.end),
                        bytes: f.bytes,
                        resends: f.resent,
                        ok,
                        note,
                        blocks,
                        ..Step::new(phase, f.proto.name(), path.clone(), f.start)
                    },
                    &limits,
                );
                phase
            }
        };
        if ok && matches!(phase, Phase::Script | Phase::Local) && boot.script.is_none() {
            if let Some(text) = script_at(&path) {
                let base = format!("http://{}{}", host_of(f.peer), f.path);
                boot.learn_script(&text, &base);
            }
        }
    }

    fn page(&mut self, p: Page) {
        let limits = self.limits;
        let m = self.entry(p.mac, p.at);
        let fresh = match m.boots.back() {
            None => true,
            // A script asked for again after the kernel: a new boot.
            Some(b) => p.kind == PageKind::Script && b.phase() > Phase::Script,
        };
        if fresh {
            if m.boots.len() >= limits.boots {
                m.boots.pop_front();
            }
            m.boots
                .push_back(Boot::new(p.at, "unknown (no DHCP seen)".into()));
        }
        if let Some(boot) = m.boots.back_mut() {
            boot.last = p.at;
            boot.expect = Some(p.kind);
            if let Some(e) = p.error {
                boot.page_error = Some(e.to_string());
            }
            if let Some(body) = &p.body {
                // Only the path matters to the plan; the host is any.
                boot.learn_script(body, "http://server/");
            }
        }
        if let Some(ip) = p.peer {
            self.hold(p.mac, ip);
        }
    }
}

/// The host part of a URL for `ip`.
fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// The step a DHCP message belongs to, and whether it starts a new boot;
/// `None` when it is no boot's (an installed system, the installer renewing
/// after its answers, a client never seen booting).
fn dhcp_phase(d: &Dhcp, current: Option<&Boot>) -> Option<(Phase, bool)> {
    let discover = d.request == "discover";
    // Whether `phase`'s last step was answered already.
    let answered = |b: &Boot, phase: Phase| b.last_of(phase).is_some_and(|s| s.end.is_some());
    match d.client {
        Client::Firmware => {
            let new = match current {
                None => true,
                Some(b) => b.phase() > Phase::Dhcp || (discover && answered(b, Phase::Dhcp)),
            };
            Some((Phase::Dhcp, new))
        }
        Client::Ipxe => match current {
            // iPXE loaded by the firmware's NBP.
            Some(b)
                if b.completed(Phase::Nbp)
                    || (b.phase() <= Phase::Nbp && !b.given.nbp.is_empty()) =>
            {
                if b.phase() <= Phase::IpxeDhcp {
                    Some((Phase::IpxeDhcp, false))
                } else {
                    Some((Phase::Dhcp, true))
                }
            }
            // An iPXE ROM's own DHCP, retransmitted.
            Some(b) if b.phase() == Phase::Dhcp && !(discover && answered(b, Phase::Dhcp)) => {
                Some((Phase::Dhcp, false))
            }
            _ => Some((Phase::Dhcp, true)),
        },
        Client::Other => {
            let b = current?;
            (matches!(
                b.phase(),
                Phase::Kernel | Phase::Initrd | Phase::InstallerDhcp
            ) && !(b.completed(Phase::InstallerDhcp)
                && discover
                && answered(b, Phase::InstallerDhcp)))
            .then_some((Phase::InstallerDhcp, false))
        }
    }
}

/// The firmware a boot's first DHCP message shows.
fn firmware(d: &Dhcp) -> String {
    let kind = match (d.client, d.arch) {
        (Client::Ipxe, Some(0) | None) => "ipxe-rom (bios)",
        (Client::Ipxe, Some(_)) => "ipxe-rom (uefi)",
        (_, Some(0)) => "pxe-bios",
        (_, Some(15 | 16 | 19 | 20 | 28 | 29)) => "uefi-http",
        (_, Some(_)) => "uefi-pxe",
        (_, None) => "unknown",
    };
    match d.arch {
        Some(a) => format!("{kind} arch {a}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests;
