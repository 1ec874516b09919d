//! The fleet view: every machine's way through its boot (firmware DHCP, the
//! NBP, iPXE's DHCP, the script, kernel, initrds, the installer's DHCP, its
//! answers, its done call), joined across protocols, with a diagnosis when
//! it stalls.
//!
//! The workers never share it: each sends small [`Event`]s through a bounded
//! queue ([`Sink`], a `try_send` that never blocks; a full queue drops the
//! event and counts it). One thread ([`collect`]) owns the [`Fleet`], joins
//! the events into timelines as they come and answers the admin API from
//! them. Joining needs every worker's events anyway (a machine's DHCP is on
//! the DHCP worker, its TFTP on one core, its HTTP on another), so merging
//! them as they arrive costs what merging them when asked would, and a query
//! is answered from state already joined.

pub mod boot;
pub mod collect;
pub mod diagnose;
#[cfg(test)]
mod testkit;
pub mod timeline;
pub mod view;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

pub use crate::proto::boot::Mac;
pub use timeline::{Fleet, Limits, Phase, State, Timers};

/// Who sent a DHCP message, from what it says of itself (CLIENTS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Firmware PXE or HTTP boot (option 60 `PXEClient`/`HTTPClient`, no iPXE).
    Firmware,
    /// iPXE (user class `iPXE` or option 175).
    Ipxe,
    /// Anything else: the installer (`d-i`), an installed system.
    Other,
}

impl Client {
    /// Reads it from whether the request is iPXE's (user class `iPXE` or
    /// option 175) and its vendor class (60).
    pub fn of(ipxe: bool, vendor: Option<&[u8]>) -> Self {
        if ipxe {
            Self::Ipxe
        } else if vendor
            .is_some_and(|v| v.starts_with(b"PXEClient") || v.starts_with(b"HTTPClient"))
        {
            Self::Firmware
        } else {
            Self::Other
        }
    }
}

/// What the server did with a DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An OFFER (or a proxy offer).
    Offer,
    /// An ACK.
    Ack,
    /// A NAK.
    Nak,
    /// Nothing, and why.
    Silent(&'static str),
}

/// A DHCP message and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    /// When it was answered (or dropped).
    pub at: Instant,
    /// The client's hardware address.
    pub mac: Mac,
    /// Who sent it.
    pub client: Client,
    /// The request's type: `discover`, `request`, `inform`, ...
    pub request: &'static str,
    /// Option 93, when sent.
    pub arch: Option<u16>,
    /// The answer.
    pub answer: Answer,
    /// The address given (yiaddr), else the client's own (ciaddr).
    pub ip: Option<Ipv4Addr>,
    /// The boot file given (`file` or option 67), empty when none.
    pub file: Box<str>,
    /// The next server (siaddr), when given.
    pub next_server: Option<Ipv4Addr>,
    /// Whether the answer carried DNS servers (option 6).
    pub dns: bool,
}

/// TFTP or HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TFTP.
    Tftp,
    /// HTTP.
    Http,
}

impl Proto {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tftp => "tftp",
            Self::Http => "http",
        }
    }
}

/// A file transfer that started (TFTP, and HTTP bodies of [`LONG_BODY`] or
/// more): it shows as running until its [`Fetch`] comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// When.
    pub at: Instant,
    /// The client.
    pub peer: IpAddr,
    /// How.
    pub proto: Proto,
    /// The path asked for (an HTTP target without its query).
    pub path: Box<str>,
}

/// HTTP responses with bodies this long report their start too.
pub const LONG_BODY: u64 = 1 << 20;

/// A file transfer that ended, or a request refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// The client.
    pub peer: IpAddr,
    /// How.
    pub proto: Proto,
    /// The path asked for (an HTTP target with its query).
    pub path: Box<str>,
    /// HTTP status; 0 for TFTP.
    pub status: u16,
    /// `done`, `size_probe`, `timeout`, `client_error`, `refused: ...` (TFTP),
    /// or the HTTP error's kind (`-` when none).
    pub result: Box<str>,
    /// Body bytes delivered.
    pub bytes: u64,
    /// Windows sent again (TFTP).
    pub resent: u32,
    /// Blocks acknowledged and in the file (TFTP).
    pub blocks: (u64, u64),
    /// Block size (TFTP).
    pub blksize: u16,
}

impl Fetch {
    /// Whether the file went out whole (a TFTP size probe counts: the
    /// client asked only for the size).
    pub fn ok(&self) -> bool {
        match self.proto {
            Proto::Tftp => matches!(&*self.result, "done"),
            Proto::Http => (200..300).contains(&self.status),
        }
    }
}

/// What a page rendered for a machine was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// Its boot script.
    Script,
    /// The local-boot script.
    Local,
    /// Its installer's answers.
    Config,
    /// Its done call.
    Done,
}

/// A page the boot profiles rendered for a machine that named itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// When.
    pub at: Instant,
    /// The machine.
    pub mac: Mac,
    /// Where it asked from.
    pub peer: Option<IpAddr>,
    /// Which page.
    pub kind: PageKind,
    /// The body, for scripts (at most [`SCRIPT_MAX`] bytes kept).
    pub body: Option<Box<str>>,
    /// Why its template failed, when it did.
    pub error: Option<Box<str>>,
}

/// The longest script kept per boot.
pub const SCRIPT_MAX: usize = 4096;

/// One thing a worker saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A DHCP message and its answer.
    Dhcp(Dhcp),
    /// A transfer started.
    Start(Start),
    /// A transfer ended.
    Fetch(Fetch),
    /// A page rendered.
    Page(Page),
}

/// How many events may wait for the collector before new ones are dropped.
pub const QUEUE: usize = 16_384;

/// Where workers send events: cheap to clone, never blocks; off, it drops
/// everything at the cost of a branch.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    tx: Option<SyncSender<Event>>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// A sink that keeps nothing (the view is off).
    pub fn off() -> Self {
        Self::default()
    }

    /// Whether events are kept.
    pub fn on(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends `event` built by `make`, when the view is on. A full queue
    /// drops it (counted).
    pub fn send(&self, make: impl FnOnce() -> Event) {
        if let Some(tx) = &self.tx {
            match tx.try_send(make()) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Events dropped on a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Dhcp {
    /// The event of `request` answered by `reply` (its bytes), or left
    /// unanswered for the reason given; `None` for bytes that are no DHCP
    /// message from a client with a MAC.
    pub fn from_wire(
        at: Instant,
        request: &[u8],
        reply: Result<&[u8], &'static str>,
    ) -> Option<Self> {
        use crate::wire::dhcp::{MessageType, Packet};
        let p = Packet::new_checked(request).ok()?;
        let o = p.options().ok()?;
        let mac = Mac(p.mac()?);
        let request_type = match o.message_type()? {
            MessageType::Discover => "discover",
            MessageType::Request => "request",
            MessageType::Inform => "inform",
            MessageType::Decline => "decline",
            MessageType::Release => "release",
            MessageType::Offer | MessageType::Ack | MessageType::Nak => return None,
        };
        let client = Client::of(o.is_ipxe(), o.get(60).as_deref());
        let ciaddr = Some(p.ciaddr()).filter(|a| !a.is_unspecified());
        let mut event = Self {
            at,
            mac,
            client,
            request: request_type,
            arch: o.client_arch(),
            answer: Answer::Silent("dropped"),
            ip: ciaddr,
            file: "".into(),
            next_server: None,
            dns: false,
        };
        match reply {
            Err(why) => event.answer = Answer::Silent(why),
            Ok(bytes) => {
                let r = Packet::new_checked(bytes).ok()?;
                let ro = r.options().ok()?;
                event.answer = match ro.message_type()? {
                    MessageType::Offer => Answer::Offer,
                    MessageType::Ack => Answer::Ack,
                    MessageType::Nak => Answer::Nak,
                    _ => return None,
                };
                let yiaddr = r.yiaddr();
                if !yiaddr.is_unspecified() {
                    event.ip = Some(yiaddr);
                }
                let file = ro.get(67).map_or_else(
                    || {
                        let f = r.file();
                        let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
                        String::from_utf8_lossy(&f[..end]).into_owned()
                    },
                    |f| String::from_utf8_lossy(f.strip_suffix(&[0]).unwrap_or(&f)).into_owned(),
                );
                event.file = file.into();
                event.next_server = Some(r.siaddr()).filter(|a| !a.is_unspecified());
                event.dns = ro.has(6);
            }
        }
        Some(event)
    }
}
