//! A virtual machine's DHCP client, sans-IO: one firmware identity's DISCOVER
//! and REQUEST (the options real firmware sends), its retransmission schedule
//! and how long it collects offers, ending in a lease with the boot answer or in
//! a failure that names why. `sim/` drives it on a virtual network or over real
//! sockets; nothing here reads a clock or a socket.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::dhcp::{code, ipxe, MessageType, Packet, Writer};

/// Which firmware (or OS) the machine plays; each sends what the real one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// EDK2's PxeBcDxe (OVMF): arch 7, `PXEClient:Arch:00007:UNDI:003000`.
    Edk2Pxe,
    /// iPXE as a BIOS NIC ROM: arch 0, user class `iPXE`, option 175.
    IpxeBios,
    /// ipxe.efi: arch 7, user class `iPXE`, option 175.
    IpxeEfi,
    /// EDK2's HTTP boot: arch 16, `HTTPClient:Arch:00016:UNDI:003001`.
    UefiHttp,
    /// EDK2's PXE under Secure Boot, booting the signed shim and grub: its
    /// DHCP is EDK2's; shim, then grub, fetch the rest over TFTP.
    Grub,
    /// The Debian installer: vendor class `d-i`, no PXE options.
    Installer,
}

impl Identity {
    /// Gaps between a DISCOVER's retransmissions: EDK2 doubles from 4 s (the
    /// RFC 2131 §4.1 schedule), iPXE from 1 s, the installer's client waits 3 s.
    pub fn retransmit(self) -> &'static [Duration] {
        const EDK2: [Duration; 4] = [
            Duration::from_secs(4),
            Duration::from_secs(8),
            Duration::from_secs(16),
            Duration::from_secs(32),
        ];
        const IPXE: [Duration; 4] = [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
            Duration::from_secs(8),
        ];
        const DI: [Duration; 4] = [Duration::from_secs(3); 4];
        match self {
            Identity::Edk2Pxe | Identity::UefiHttp | Identity::Grub => &EDK2,
            Identity::IpxeBios | Identity::IpxeEfi => &IPXE,
            Identity::Installer => &DI,
        }
    }

    /// When the client, holding its first address OFFER (seen at `now`),
    /// chooses: EDK2 collects offers until its retransmission timer runs out
    /// (`retry_at`: 4 s after the first DISCOVER; Dhcp4Dxe's DhcpOnTimerTick
    /// chooses instead of retransmitting); iPXE waits ~3 s for a ProxyDHCP offer
    /// unless told no-pxedhcp (175.176); the installer takes the first.
    fn decide_at(self, first: &Offer, now: Instant, retry_at: Instant) -> Instant {
        match self {
            Identity::Edk2Pxe | Identity::UefiHttp | Identity::Grub => retry_at,
            Identity::IpxeBios | Identity::IpxeEfi if !first.no_pxedhcp => {
                now + Duration::from_secs(3)
            }
            _ => now,
        }
    }

    fn options(self, w: &mut Writer<'_>, uuid: &[u8; 16]) -> Result<(), crate::wire::Error> {
        let (arch, vendor): (Option<u16>, &[u8]) = match self {
            Identity::Edk2Pxe | Identity::Grub => (Some(7), b"PXEClient:Arch:00007:UNDI:003000"),
            Identity::IpxeBios => (Some(0), b"PXEClient:Arch:00000:UNDI:002001"),
            Identity::IpxeEfi => (Some(7), b"PXEClient:Arch:00007:UNDI:003010"),
            Identity::UefiHttp => (Some(16), b"HTTPClient:Arch:00016:UNDI:003001"),
            Identity::Installer => (None, b"d-i"),
        };
        w.option(
            code::PARAMS,
            &[1, 3, 6, 12, 15, 28, 42, 43, 60, 66, 67, 97, 175],
        )?;
        w.option(code::VENDOR_CLASS, vendor)?;
        if let Some(arch) = arch {
            w.option(code::CLIENT_ARCH, &arch.to_be_bytes())?;
            w.option(code::CLIENT_NDI, &[1, 3, 16])?;
            let mut id = [0u8; 17];
            id[1..].copy_from_slice(uuid);
            w.option(code::UUID, &id)?;
        }
        if matches!(self, Identity::IpxeBios | Identity::IpxeEfi) {
            w.option(code::USER_CLASS, b"iPXE")?;
            // iPXE's feature list (175): a few of its feature codes.
            w.option(code::IPXE, &[0xb1, 0x05, 0x01, 0x1a, 0xf4, 0x10, 0x00])?;
        }
        Ok(())
    }
}

/// What one OFFER said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The address offered (unspecified in a ProxyDHCP offer).
    pub ip: Ipv4Addr,
    /// Option 54.
    pub server: Ipv4Addr,
    /// `siaddr`: where a TFTP boot file is fetched.
    pub next_server: Ipv4Addr,
    /// The boot file (option 67, else the `file` field), empty when none.
    pub file: String,
    /// Option 175.176 was set.
    pub no_pxedhcp: bool,
}

/// How the machine's DHCP ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ACKed: the lease, with the boot answer of the address offer or, where it
    /// had none, of a ProxyDHCP offer.
    Bound {
        /// The ACK's fields.
        lease: Offer,
        /// DISCOVERs and REQUESTs sent beyond the first of each.
        retries: u32,
    },
    /// Gave up; the reason names the step.
    Failed(&'static str),
}

#[derive(Debug)]
enum State {
    Selecting {
        attempt: usize,
        retry_at: Instant,
        decide_at: Option<Instant>,
        offers: Vec<Offer>,
    },
    Requesting {
        offer: Offer,
        proxy_file: Option<String>,
        attempt: usize,
        retry_at: Instant,
    },
    Done,
}

/// One machine's DHCP exchange.
#[derive(Debug)]
pub struct Client {
    identity: Identity,
    mac: [u8; 6],
    uuid: [u8; 16],
    xid: u32,
    /// When the first DISCOVER left: `secs` counts from it, as EDK2 and
    /// iPXE fill it (servers sharing clients by RFC 3074 read it).
    started: Instant,
    state: State,
    /// A message is due: DISCOVER in Selecting, REQUEST in Requesting.
    send_due: bool,
    retries: u32,
    /// Times an unanswered REQUEST sends the client back to DISCOVER
    /// (udhcpc's, the installer's: its chosen server may have died).
    restarts_left: u8,
    event: Option<Event>,
}

impl Client {
    /// A client that sends its first DISCOVER at `now`.
    pub fn new(now: Instant, identity: Identity, mac: [u8; 6], uuid: [u8; 16], xid: u32) -> Self {
        Self {
            identity,
            mac,
            uuid,
            xid,
            started: now,
            state: State::Selecting {
                attempt: 0,
                retry_at: now + identity.retransmit()[0],
                decide_at: None,
                offers: Vec::new(),
            },
            send_due: true,
            retries: 0,
            restarts_left: if identity == Identity::Installer {
                2
            } else {
                0
            },
            event: None,
        }
    }

    /// One datagram from port 67. `Err` when it is not a DHCP reply at all;
    /// replies for other clients or states are ignored.
    ///
    /// # Errors
    /// The datagram is not a DHCP message.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<(), crate::wire::Error> {
        let p = Packet::new_checked(datagram)?;
        let o = p.options()?;
        if p.op() != 2 || p.xid() != self.xid || p.mac() != Some(self.mac) {
            return Ok(());
        }
        let mut file = o
            .get(code::BOOTFILE)
            .map(|f| f.into_owned())
            .unwrap_or_else(|| p.file().to_vec());
        // Firmware reads the name as a C string: dnsmasq ends option 67 with a
        // NUL, and the `file` field is NUL-padded.
        if let Some(end) = file.iter().position(|&b| b == 0) {
            file.truncate(end);
        }
        let seen = Offer {
            ip: p.yiaddr(),
            server: o.ip(code::SERVER_ID).unwrap_or(p.siaddr()),
            next_server: p.siaddr(),
            file: String::from_utf8_lossy(&file).into_owned(),
            no_pxedhcp: o.sub(code::IPXE, ipxe::NO_PXEDHCP).as_deref() == Some(&[1]),
        };
        match (&mut self.state, o.message_type()) {
            (
                State::Selecting {
                    decide_at,
                    offers,
                    retry_at,
                    ..
                },
                Some(MessageType::Offer),
            ) => {
                if decide_at.is_none() && !seen.ip.is_unspecified() {
                    *decide_at = Some(self.identity.decide_at(&seen, now, *retry_at));
                }
                offers.push(seen);
                self.handle_timeout(now);
            }
            (
                State::Requesting {
                    offer, proxy_file, ..
                },
                Some(MessageType::Ack),
            ) if seen.server == offer.server => {
                let mut lease = seen;
                if lease.file.is_empty() {
                    lease.file = proxy_file.take().unwrap_or_default();
                }
                self.finish(Event::Bound {
                    lease,
                    retries: self.retries,
                });
            }
            (State::Requesting { offer, .. }, Some(MessageType::Nak))
                if seen.server == offer.server =>
            {
                self.finish(Event::Failed("NAK to the REQUEST"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Fires what is due at `now`: the choice among offers, a retransmission, or
    /// giving up after the schedule's last wait.
    pub fn handle_timeout(&mut self, now: Instant) {
        let schedule = self.identity.retransmit();
        match &mut self.state {
            State::Selecting {
                decide_at: Some(at),
                offers,
                ..
            } if *at <= now => {
                // The first address offer; a ProxyDHCP offer's boot file is kept
                // for when the address offer carries none (PXE spec).
                let Some(offer) = offers.iter().find(|o| !o.ip.is_unspecified()).cloned() else {
                    return;
                };
                let proxy_file = offers
                    .iter()
                    .find(|o| o.ip.is_unspecified() && !o.file.is_empty())
                    .map(|o| o.file.clone());
                self.state = State::Requesting {
                    offer,
                    proxy_file,
                    attempt: 0,
                    retry_at: now + schedule[0],
                };
                self.send_due = true;
            }
            State::Selecting {
                attempt, retry_at, ..
            }
            | State::Requesting {
                attempt, retry_at, ..
            } if *retry_at <= now => {
                *attempt += 1;
                let Some(wait) = schedule.get(*attempt) else {
                    if matches!(self.state, State::Requesting { .. }) && self.restarts_left > 0 {
                        self.restarts_left -= 1;
                        self.retries += 1;
                        self.state = State::Selecting {
                            attempt: 0,
                            retry_at: now + schedule[0],
                            decide_at: None,
                            offers: Vec::new(),
                        };
                        self.send_due = true;
                        return;
                    }
                    let why = match self.state {
                        State::Requesting { .. } => "no ACK to the REQUEST",
                        _ => "no OFFER to the DISCOVER",
                    };
                    self.finish(Event::Failed(why));
                    return;
                };
                *retry_at = now + *wait;
                self.retries += 1;
                self.send_due = true;
            }
            _ => {}
        }
    }

    /// The next message to broadcast to port 67, written into `out`; its length.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !std::mem::take(&mut self.send_due) {
            return None;
        }
        let secs = now.saturating_duration_since(self.started).as_secs();
        let written = (|| {
            let mut w = Writer::request(out, self.xid, self.mac, true)?;
            w.secs(u16::try_from(secs).unwrap_or(u16::MAX));
            match &self.state {
                State::Selecting { .. } => w.message_type(MessageType::Discover)?,
                State::Requesting { offer, .. } => {
                    w.message_type(MessageType::Request)?;
                    w.option(code::REQUESTED_IP, &offer.ip.octets())?;
                    w.option(code::SERVER_ID, &offer.server.octets())?;
                }
                State::Done => return Err(crate::wire::Error::NoRoom),
            }
            self.identity.options(&mut w, &self.uuid)?;
            w.finish()
        })();
        written.ok()
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Selecting {
                retry_at,
                decide_at,
                ..
            } => Some(decide_at.map_or(*retry_at, |d| d.min(*retry_at))),
            State::Requesting { retry_at, .. } => Some(*retry_at),
            State::Done => None,
        }
    }

    /// How the exchange ended, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    fn finish(&mut self, event: Event) {
        self.state = State::Done;
        self.send_due = false;
        self.event = Some(event);
    }
}

#[cfg(test)]
mod tests;
