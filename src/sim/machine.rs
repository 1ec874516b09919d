//! One virtual machine booting, sans-IO: the phases of CLIENTS.md chained as
//! real firmware chains them (firmware DHCP, the NBP over TFTP or HTTP, iPXE's
//! DHCP, the boot script, kernel, initrds, the installer's DHCP, its answer
//! file), each phase's end time recorded, and the first failure named with its
//! phase. A Secure Boot machine (`Identity::Grub`) chains shim's and grub's
//! TFTP pattern instead: shim, its probes and grub (the NBP phase), grub's
//! probes, `grub.cfg` and the page it loads (the script phase), then kernel
//! and initrds from where the page names them. The driver moves the bytes: DHCP broadcasts, TFTP datagrams to the
//! server, HTTP on one keep-alive connection per host.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::dhcp::{self, Client, Identity};
use super::dhcp6;
use super::fleet::Family;
use super::grub;
use super::http::{self, Get, Target};
use super::script;
use super::tftp::{self, Download, To};

/// A step of the boot, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The firmware's DHCP (for an iPXE ROM, iPXE's own).
    Dhcp,
    /// The network boot program (iPXE) over TFTP, or over HTTP for UEFI HTTP boot.
    Nbp,
    /// iPXE's DHCP, after the NBP started.
    IpxeDhcp,
    /// The boot script over HTTP.
    Script,
    /// The kernel.
    Kernel,
    /// The initrd(s).
    Initrd,
    /// The installer's DHCP.
    InstallerDhcp,
    /// The installer's answer file (preseed, kickstart).
    Answers,
}

impl Phase {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Dhcp => "dhcp",
            Phase::Nbp => "nbp",
            Phase::IpxeDhcp => "ipxe-dhcp",
            Phase::Script => "script",
            Phase::Kernel => "kernel",
            Phase::Initrd => "initrd",
            Phase::InstallerDhcp => "installer-dhcp",
            Phase::Answers => "answers",
        }
    }
}

/// What to send; its bytes are in the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A DHCP message to broadcast to port 67.
    Dhcp {
        /// Its length.
        len: usize,
    },
    /// A DHCPv6 message from the machine's link-local address, port 546, to
    /// All_DHCP_Relay_Agents_and_Servers, port 547.
    Dhcp6 {
        /// Its length.
        len: usize,
    },
    /// A TFTP datagram to `server`.
    Tftp {
        /// The server's address.
        server: IpAddr,
        /// Its request port, or the transfer's port.
        to: To,
        /// Its length.
        len: usize,
    },
    /// HTTP request bytes for the connection to `target`'s host and port
    /// (opened by the driver if it is not open yet).
    Http {
        /// Where.
        target: Target,
        /// Their length.
        len: usize,
    },
}

/// A phase that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Which.
    pub phase: Phase,
    /// When, from the machine's start.
    pub at: Duration,
    /// Body bytes it received.
    pub bytes: u64,
    /// Its DHCP messages or TFTP packets sent again after a timeout.
    pub retries: u32,
}

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every phase up to the last asked for ended.
    Booted,
    /// A phase failed.
    Failed {
        /// The phase.
        phase: Phase,
        /// Why, for the report.
        reason: String,
    },
}

#[derive(Debug)]
enum Step {
    Dhcp(Client),
    Dhcp6(dhcp6::Client),
    Tftp(Download, IpAddr, Need),
    Http(Get, Target),
    Done,
}

/// One machine.
#[derive(Debug)]
pub struct Machine {
    identity: Identity,
    family: Family,
    mac: [u8; 6],
    uuid: [u8; 16],
    xid: u32,
    until: Phase,
    phase: Phase,
    step: Step,
    started: Instant,
    /// Each phase that ended, in order.
    pub ended: Vec<Ended>,
    /// Body bytes received over TFTP and HTTP, all phases.
    pub bytes: u64,
    /// When the boot ended (booted or failed), from the machine's start.
    pub finished: Option<Duration>,
    /// The address its last DHCP exchange leased.
    address: Option<IpAddr>,
    /// The last response said `Connection: close`.
    close_http: bool,
    /// Bytes and retries of the phase in progress.
    phase_bytes: u64,
    phase_retries: u32,
    /// Script plan still to follow: initrds left, and the answer-file URL.
    initrds: Vec<String>,
    answers: Option<String>,
    script_url: String,
    event: Option<Event>,
    /// A grub machine's TFTP files still to fetch, in order, and its TFTP
    /// server.
    fetches: VecDeque<Fetch>,
    tftp_server: IpAddr,
    /// grub configurations followed by `configfile`.
    configs: u32,
    /// Network boots left to start again when a step before the installer
    /// fails.
    boot_retries: u32,
    /// Network boots started again so far.
    restarts: u32,
}

/// What a TFTP download is to its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Need {
    /// A missing file fails the boot (else it is a probe, and the next
    /// fetch follows).
    must: bool,
    /// The body is a grub configuration to follow.
    read: bool,
}

/// One TFTP file of the grub path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetch {
    phase: Phase,
    name: String,
    need: Need,
}

/// What shim asks for after itself (Debian's signed shim under OVMF, by
/// the firmware's TFTP): its revocation and certificate probes, which may
/// be missing, then its second stage, which must not.
const SHIM_PROBES: [&str; 3] = [
    "revocations_sku.efi",
    "revocations_sbat.efi",
    "shim_certificate_0.efi",
];

/// The lists grub's normal mode reads under `$prefix/x86_64-efi`, which may
/// be missing.
const GRUB_LISTS: [&str; 4] = ["command.lst", "fs.lst", "crypto.lst", "terminal.lst"];

/// A probe: missing is fine.
const PROBE: Need = Need {
    must: false,
    read: false,
};
/// A file the boot needs.
const MUST: Need = Need {
    must: true,
    read: false,
};
/// A grub configuration the boot needs, to follow.
const READ: Need = Need {
    must: true,
    read: true,
};

/// `configfile` hops a virtual grub follows before it gives up.
const MAX_CONFIGS: u32 = 8;

const KEEP: usize = 64 * 1024;
const USER_AGENT_IPXE: &str = "iPXE/1.0.0+git-20190125.36a4c85-5.1";
const USER_AGENT_DI: &str = "debian-installer";
const USER_AGENT_GRUB: &str = "GRUB 2.06-13+deb12u2";

impl Machine {
    /// A machine of `identity` powering on at `now`, stopping after `until`.
    pub fn new(
        now: Instant,
        identity: Identity,
        mac: [u8; 6],
        uuid: [u8; 16],
        xid: u32,
        until: Phase,
    ) -> Self {
        Self {
            identity,
            family: Family::V4,
            mac,
            uuid,
            xid,
            until,
            phase: Phase::Dhcp,
            step: Step::Dhcp(Client::new(now, identity, mac, uuid, xid)),
            started: now,
            ended: Vec::new(),
            bytes: 0,
            finished: None,
            address: None,
            close_http: false,
            phase_bytes: 0,
            phase_retries: 0,
            initrds: Vec::new(),
            answers: None,
            script_url: String::new(),
            event: None,
            fetches: VecDeque::new(),
            tftp_server: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            configs: 0,
            boot_retries: 0,
            restarts: 0,
        }
    }

    /// The machine boots over IPv6 (DHCPv6 at each DHCP step, its boot
    /// files from option 59's URLs) rather than IPv4.
    #[must_use]
    pub fn on_ipv6(mut self) -> Self {
        self.family = Family::V6;
        self.step = self.dhcp(self.started, self.identity);
        self
    }

    /// Its address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The phase in progress (the last one, once ended).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A DHCP reply of its family: a broadcast or frame for port 68, or a
    /// DHCPv6 datagram for port 546 of its link-local address.
    pub fn handle_dhcp(&mut self, now: Instant, bytes: &[u8]) {
        let _ = match &mut self.step {
            Step::Dhcp(c) => c.handle(now, bytes),
            Step::Dhcp6(c) => c.handle(now, bytes),
            _ => return,
        };
        self.advance(now);
    }

    /// A TFTP datagram from the server's port `from`.
    pub fn handle_tftp(&mut self, now: Instant, from: u16, bytes: &[u8]) {
        if let Step::Tftp(d, ..) = &mut self.step {
            let _ = d.handle(now, from, bytes);
            self.advance(now);
        }
    }

    /// Bytes read on the HTTP connection; returns how many this machine took.
    pub fn handle_http(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let Step::Http(g, _) = &mut self.step else {
            return 0;
        };
        let used = g.handle(bytes);
        self.advance(now);
        used
    }

    /// Body bytes the driver may drop unread (see [`Get::discardable`]).
    pub fn http_discardable(&self) -> u64 {
        match &self.step {
            Step::Http(g, _) => g.discardable(),
            _ => 0,
        }
    }

    /// `n` body bytes were dropped unread.
    pub fn handle_http_discarded(&mut self, now: Instant, n: u64) {
        if let Step::Http(g, _) = &mut self.step {
            g.handle_discarded(n);
            self.advance(now);
        }
    }

    /// The HTTP connection closed.
    pub fn handle_http_eof(&mut self, now: Instant) {
        if let Step::Http(g, _) = &mut self.step {
            g.handle_eof();
            self.advance(now);
        }
    }

    /// Fires the current phase's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.step {
            Step::Dhcp(c) => c.handle_timeout(now),
            Step::Dhcp6(c) => c.handle_timeout(now),
            Step::Tftp(d, ..) => d.handle_timeout(now),
            Step::Http(..) | Step::Done => {}
        }
        self.advance(now);
    }

    /// When [`Self::handle_timeout`] is next due (HTTP waits have no timer of
    /// their own here: the driver bounds a connection's silence).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.step {
            Step::Dhcp(c) => c.poll_timeout(),
            Step::Dhcp6(c) => c.poll_timeout(),
            Step::Tftp(d, ..) => d.poll_timeout(),
            Step::Http(..) | Step::Done => None,
        }
    }

    /// The next thing to send, written into `out`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Send> {
        if let Some(send) = self.transmit_step(now, out) {
            return Some(send);
        }
        // A step may end only once its last datagram is out (the final TFTP
        // ACK): move on, and send what the next phase starts with.
        self.advance(now);
        self.transmit_step(now, out)
    }

    fn transmit_step(&mut self, now: Instant, out: &mut [u8]) -> Option<Send> {
        match &mut self.step {
            Step::Dhcp(c) => c.poll_transmit(now, out).map(|len| Send::Dhcp { len }),
            Step::Dhcp6(c) => c.poll_transmit(now, out).map(|len| Send::Dhcp6 { len }),
            Step::Tftp(d, server, _) => d.poll_transmit(now, out).map(|(len, to)| Send::Tftp {
                server: *server,
                to,
                len,
            }),
            Step::Http(g, target) => {
                let bytes = g.poll_transmit()?;
                let dst = out.get_mut(..bytes.len())?;
                dst.copy_from_slice(bytes);
                Some(Send::Http {
                    target: target.clone(),
                    len: bytes.len(),
                })
            }
            Step::Done => None,
        }
    }

    /// How the boot ended, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// Starts the network boot again up to `n` times when a step before the
    /// installer fails: the firmware's DHCP (no OFFER, no ACK, a NAK), the
    /// NBP, iPXE's DHCP, script, kernel or initrd (a server gone, a transfer
    /// cut), as firmware retrying its boot options does (OVMF; server BIOSes'
    /// PXE retry; iPXE returning its error to the firmware): from power-on
    /// again, a new DHCP exchange with `secs` from 0. The phases of the failed
    /// attempt are not reported; the first phase's time counts from power-on.
    #[must_use]
    pub fn with_boot_retries(mut self, n: u32) -> Self {
        self.boot_retries = n;
        self
    }

    /// Moves to the next phase when the current one has ended.
    fn advance(&mut self, now: Instant) {
        let outcome: Result<Option<Next>, String> = match &mut self.step {
            Step::Dhcp(c) => match c.poll_event() {
                None => return,
                Some(dhcp::Event::Failed(why)) => Err(why.to_owned()),
                Some(dhcp::Event::Bound { lease, retries }) => {
                    self.phase_retries += retries;
                    self.after_dhcp(Lease {
                        ip: lease.ip.into(),
                        next_server: lease.next_server.into(),
                        file: lease.file,
                    })
                }
            },
            Step::Dhcp6(c) => match c.poll_event() {
                None => return,
                Some(dhcp6::Event::Failed(why)) => Err(why.to_owned()),
                Some(dhcp6::Event::Bound { ip, url, retries }) => {
                    self.phase_retries += retries;
                    // Option 59 names the server in its URL.
                    let next_server = url_host(&url).unwrap_or(IpAddr::V6(ip));
                    self.after_dhcp(Lease {
                        ip: ip.into(),
                        next_server,
                        file: url,
                    })
                }
            },
            Step::Tftp(d, _, need) => match d.poll_event() {
                None => return,
                Some(tftp::Event::Failed(_)) if !need.must => self.after_tftp(None),
                Some(tftp::Event::Failed(why)) => Err(why),
                Some(tftp::Event::Done { bytes, resends, .. }) => {
                    self.phase_bytes += bytes;
                    self.phase_retries += resends;
                    let body = need.read.then(|| d.take_body());
                    self.after_tftp(body)
                }
            },
            Step::Http(g, _) => match g.poll_event() {
                None => return,
                Some(Err(e)) => Err(e.to_string()),
                Some(Ok(r)) if r.status != 200 => Err(format!("HTTP {}", r.status)),
                Some(Ok(r)) => {
                    self.close_http |= !r.keep_alive;
                    self.phase_bytes += r.bytes;
                    self.after_http(&r.body)
                }
            },
            Step::Done => return,
        };
        match outcome {
            Err(reason) => self.fail(now, self.phase, reason),
            // Another file of the same phase (grub's path): the phase goes on.
            Ok(Some(Next::Fetch(f))) if f.phase == self.phase => {
                self.step = self.fetch(now, &f);
            }
            Ok(next) => {
                self.bytes += self.phase_bytes;
                self.ended.push(Ended {
                    phase: self.phase,
                    at: now - self.started,
                    bytes: std::mem::take(&mut self.phase_bytes),
                    retries: std::mem::take(&mut self.phase_retries),
                });
                let next = if self.phase >= self.until { None } else { next };
                match next.map(|n| self.start(now, n)) {
                    None => {
                        self.step = Step::Done;
                        self.finished = Some(now - self.started);
                        self.event = Some(Event::Booted);
                    }
                    Some(Ok(())) => {}
                    Some(Err((phase, reason))) => self.fail(now, phase, reason),
                }
            }
        }
    }

    /// Ends the boot in `phase`, failed for `reason`, unless it may start
    /// again (see [`Self::with_boot_retries`]).
    fn fail(&mut self, now: Instant, phase: Phase, reason: String) {
        if self.boot_retries > 0 && phase < Phase::InstallerDhcp {
            self.restart(now);
            return;
        }
        self.give_up(now, phase, reason);
    }

    /// Starts the network boot again, from power-on's DHCP.
    fn restart(&mut self, now: Instant) {
        self.boot_retries -= 1;
        self.phase = Phase::Dhcp;
        self.ended.clear();
        self.bytes = 0;
        self.phase_bytes = 0;
        // The new DHCP phase counts every boot started again as a retry.
        self.restarts += 1;
        self.phase_retries = self.restarts;
        self.address = None;
        // The driver drops any connection to the old server.
        self.close_http = true;
        self.initrds.clear();
        self.answers = None;
        self.script_url.clear();
        self.fetches.clear();
        self.tftp_server = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        self.configs = 0;
        self.xid = self.xid.wrapping_add(0x0100_0000);
        self.step = self.dhcp(now, self.identity);
    }

    /// Ends the boot in `phase`, failed for `reason`, for good.
    fn give_up(&mut self, now: Instant, phase: Phase, reason: String) {
        self.step = Step::Done;
        self.finished = Some(now - self.started);
        self.event = Some(Event::Failed { phase, reason });
    }

    /// Ends the boot now, failed in the phase in progress: the driver's own
    /// verdicts (a connection refused or silent too long, the storm's deadline).
    /// Nothing happens to a machine whose boot already ended.
    pub fn abort(&mut self, now: Instant, reason: String) {
        if !matches!(self.step, Step::Done) {
            self.fail(now, self.phase, reason);
        }
    }

    /// [`Self::abort`], with no boot started again (the storm's deadline).
    pub fn abort_for_good(&mut self, now: Instant, reason: String) {
        if !matches!(self.step, Step::Done) {
            self.give_up(now, self.phase, reason);
        }
    }

    /// Whether the server ended the HTTP connection's keep-alive (the driver
    /// opens a new one for the next request).
    pub fn close_http_pending(&self) -> bool {
        self.close_http
    }

    /// [`Self::close_http_pending`], cleared.
    pub fn take_close_http(&mut self) -> bool {
        std::mem::take(&mut self.close_http)
    }

    /// The address its DHCP leased, once it has one: where its TFTP and HTTP
    /// come from on a real network.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }

    /// Whether the boot ended.
    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// Whether the phase in progress is waiting on HTTP (the driver times its
    /// silence).
    pub fn is_on_http(&self) -> bool {
        matches!(self.step, Step::Http(..))
    }

    /// Whether the phase in progress is a TFTP download.
    pub fn is_on_tftp(&self) -> bool {
        matches!(self.step, Step::Tftp(..))
    }

    fn after_dhcp(&mut self, lease: Lease) -> Result<Option<Next>, String> {
        self.address = Some(lease.ip);
        if self.phase == Phase::Dhcp {
            self.tftp_server = lease.next_server;
        }
        match self.phase {
            Phase::InstallerDhcp => Ok(self.answers.clone().map(Next::Answers)),
            // An iPXE ROM's DHCP, or iPXE's after the NBP: the script URL.
            Phase::IpxeDhcp => script_of(&lease),
            _ if matches!(self.identity, Identity::IpxeBios | Identity::IpxeEfi) => {
                script_of(&lease)
            }
            _ if lease.file.is_empty() => Err("the DHCP answer names no boot file".into()),
            _ if lease.file.starts_with("http://") => Ok(Some(Next::NbpHttp(lease.file))),
            _ => match lease.file.strip_prefix("tftp://") {
                // Option 59's `tftp://[server]/file`: EDK2 asks for the
                // path after the host.
                Some(rest) => match (url_host(&lease.file), rest.split_once('/')) {
                    (Some(server), Some((_, name))) => {
                        Ok(Some(Next::NbpTftp(name.to_owned(), server)))
                    }
                    _ => Err(format!(
                        "the boot file URL {:?} names no server and file",
                        lease.file
                    )),
                },
                None => Ok(Some(Next::NbpTftp(lease.file, lease.next_server))),
            },
        }
    }

    fn after_http(&mut self, body: &[u8]) -> Result<Option<Next>, String> {
        match self.phase {
            Phase::Nbp => Ok(Some(Next::IpxeDhcp)),
            Phase::Script => {
                let text = script::expand(&String::from_utf8_lossy(body), |n| self.setting(n));
                let plan = script::plan(&text, &self.script_url).map_err(|e| e.to_string())?;
                if let Some(chain) = plan.chain {
                    return Ok(Some(Next::Script(chain)));
                }
                self.initrds = plan.initrds;
                self.initrds.reverse();
                self.answers = plan.answers;
                // `plan` guarantees a kernel when there is no chain.
                Ok(plan.kernel.map(Next::Kernel))
            }
            Phase::Kernel | Phase::Initrd => Ok(Some(self.after_load())),
            _ => Ok(None),
        }
    }

    /// After the kernel or an initrd: the next initrd, else the installer.
    fn after_load(&mut self) -> Next {
        match self.initrds.pop() {
            Some(url) => Next::Initrd(url),
            None => Next::InstallerDhcp,
        }
    }

    /// After a TFTP download (`body` when it was a configuration to read,
    /// `None` when a probe found nothing): what comes next.
    fn after_tftp(&mut self, body: Option<Vec<u8>>) -> Result<Option<Next>, String> {
        match self.phase {
            Phase::Kernel | Phase::Initrd => return Ok(Some(self.after_load())),
            Phase::Nbp if self.identity != Identity::Grub => return Ok(Some(Next::IpxeDhcp)),
            _ => {}
        }
        if let Some(body) = body {
            let server = match self.tftp_server {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => return Err("grub plays IPv4 only".into()),
            };
            let machine = grub::Machine {
                mac: self.mac,
                server,
            };
            let plan =
                grub::plan(&String::from_utf8_lossy(&body), &machine).map_err(|e| e.to_string())?;
            if let Some(name) = plan.configfile {
                self.configs += 1;
                if self.configs > MAX_CONFIGS {
                    return Err(format!(
                        "grub's configfile chain goes past {MAX_CONFIGS} files"
                    ));
                }
                return Ok(Some(Next::Fetch(Fetch {
                    phase: Phase::Script,
                    name,
                    need: READ,
                })));
            }
            self.initrds = plan.initrds;
            self.initrds.reverse();
            self.answers = plan.answers;
            // `plan` guarantees a kernel when there is no configfile.
            return Ok(plan.kernel.map(Next::Kernel));
        }
        self.fetches
            .pop_front()
            .map(|f| Some(Next::Fetch(f)))
            .ok_or_else(|| "grub read no configuration".to_owned())
    }

    /// The files shim and grub fetch after the NBP `file` (shim), in order:
    /// shim's probes and grub at the root, then grub's lists and
    /// `grub.cfg` under its prefix, the `grub` directory beside shim.
    fn grub_path(file: &str) -> VecDeque<Fetch> {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        let prefix = format!("{}/grub", dir.trim_start_matches('/'));
        let mut out: VecDeque<Fetch> = SHIM_PROBES
            .iter()
            .map(|n| Fetch {
                phase: Phase::Nbp,
                name: (*n).to_owned(),
                need: PROBE,
            })
            .collect();
        out.push_back(Fetch {
            phase: Phase::Nbp,
            name: "grubx64.efi".into(),
            need: MUST,
        });
        out.extend(GRUB_LISTS.iter().map(|n| Fetch {
            phase: Phase::Script,
            name: format!("/{prefix}/x86_64-efi/{n}"),
            need: PROBE,
        }));
        out.push_back(Fetch {
            phase: Phase::Script,
            name: format!("/{prefix}/grub.cfg"),
            need: READ,
        });
        out
    }

    /// The TFTP step of `f`: shim's files by the firmware's TFTP, grub's
    /// by grub's own.
    fn fetch(&self, now: Instant, f: &Fetch) -> Step {
        let request = if f.phase == Phase::Nbp {
            tftp::Request::edk2(&f.name)
        } else {
            tftp::Request::grub(&f.name, if f.need.read { KEEP } else { 0 })
        };
        Step::Tftp(Download::new(now, request), self.tftp_server, f.need)
    }

    /// The step loading a kernel or initrd from `url`: TFTP for `tftp://`
    /// (grub's `$root`), else HTTP.
    fn load(&self, now: Instant, url: &str, agent: &str) -> Result<Step, http::Error> {
        match url.strip_prefix("tftp://") {
            Some(rest) => {
                let name = rest.find('/').map_or("/", |at| &rest[at..]);
                Ok(Step::Tftp(
                    Download::new(now, tftp::Request::grub(name, 0)),
                    self.tftp_server,
                    MUST,
                ))
            }
            None => get(url, agent, 0),
        }
    }

    /// Begins the phase `next` names.
    ///
    /// # Errors
    /// Its URL is not one the simulator can fetch.
    fn start(&mut self, now: Instant, next: Next) -> Result<(), (Phase, String)> {
        self.xid = self.xid.wrapping_add(0x0100_0000);
        let (phase, step) = match next {
            Next::NbpTftp(file, server) => {
                if self.identity == Identity::Grub {
                    self.fetches = Self::grub_path(&file);
                }
                (
                    Phase::Nbp,
                    Ok(Step::Tftp(
                        Download::new(now, tftp::Request::edk2(&file)),
                        server,
                        MUST,
                    )),
                )
            }
            Next::Fetch(f) => (f.phase, Ok(self.fetch(now, &f))),
            Next::NbpHttp(url) => (Phase::Nbp, get(&url, USER_AGENT_IPXE, 0)),
            Next::IpxeDhcp => (Phase::IpxeDhcp, Ok(self.dhcp(now, Identity::IpxeEfi))),
            Next::Script(url) => {
                self.script_url = url.clone();
                (Phase::Script, get(&url, USER_AGENT_IPXE, KEEP))
            }
            Next::Kernel(url) => (Phase::Kernel, self.load(now, &url, self.loader_agent())),
            Next::Initrd(url) => (Phase::Initrd, self.load(now, &url, self.loader_agent())),
            Next::InstallerDhcp => (
                Phase::InstallerDhcp,
                Ok(self.dhcp(now, Identity::Installer)),
            ),
            Next::Answers(url) => (Phase::Answers, get(&url, USER_AGENT_DI, KEEP)),
        };
        self.phase = phase;
        self.step = step.map_err(|e| (phase, e.to_string()))?;
        Ok(())
    }

    /// The `User-Agent` of the loader that fetches the kernel and initrds.
    fn loader_agent(&self) -> &'static str {
        if self.identity == Identity::Grub {
            USER_AGENT_GRUB
        } else {
            USER_AGENT_IPXE
        }
    }

    /// The iPXE setting `name` of this machine, as its iPXE would give it.
    fn setting(&self, name: &str) -> Option<String> {
        let [a, b, c, d, e, f] = self.mac;
        let efi = !matches!(self.identity, Identity::IpxeBios);
        Some(match name {
            "mac" => format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}"),
            "uuid" => {
                let u = self.uuid.map(|b| format!("{b:02x}")).concat();
                format!(
                    "{}-{}-{}-{}-{}",
                    &u[..8],
                    &u[8..12],
                    &u[12..16],
                    &u[16..20],
                    &u[20..]
                )
            }
            "buildarch" => if efi { "x86_64" } else { "i386" }.into(),
            "platform" => if efi { "efi" } else { "pcbios" }.into(),
            "ip" => self.address?.to_string(),
            _ => return None,
        })
    }

    /// A DHCP exchange of `identity` from this machine's MAC and UUID, in
    /// its address family.
    fn dhcp(&self, now: Instant, identity: Identity) -> Step {
        match self.family {
            Family::V4 => Step::Dhcp(Client::new(now, identity, self.mac, self.uuid, self.xid)),
            Family::V6 => Step::Dhcp6(dhcp6::Client::new(
                now, identity, self.mac, self.uuid, self.xid,
            )),
        }
    }
}

fn get(url: &str, agent: &str, keep: usize) -> Result<Step, http::Error> {
    let t = http::target(url)?;
    Ok(Step::Http(Get::new(&t, agent, keep), t))
}

/// What comes after a phase.
#[derive(Debug)]
enum Next {
    NbpTftp(String, IpAddr),
    Fetch(Fetch),
    NbpHttp(String),
    IpxeDhcp,
    Script(String),
    Kernel(String),
    Initrd(String),
    InstallerDhcp,
    Answers(String),
}

/// What a DHCP exchange of either family ended in.
#[derive(Debug)]
struct Lease {
    ip: IpAddr,
    /// Where a TFTP boot file is fetched.
    next_server: IpAddr,
    /// The boot file or its URL, empty when none.
    file: String,
}

/// The address in a URL's host (`tftp://[fd00::1]/f`, `http://10.0.0.1:8080/`).
fn url_host(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0.parse().ok(),
        None => authority.split(':').next()?.parse().ok(),
    }
}

fn script_of(lease: &Lease) -> Result<Option<Next>, String> {
    if lease.file.starts_with("http://") {
        Ok(Some(Next::Script(lease.file.clone())))
    } else {
        Err(format!(
            "iPXE was not given a script URL (got {:?}): it would load itself again",
            lease.file
        ))
    }
}

#[cfg(test)]
mod tests;
