//! A virtual machine's DHCPv6 client, sans-IO (RFC 8415 §18): each firmware
//! identity's SOLICIT and REQUEST with the options the real one sends (EDK2's
//! PxeBcDhcp6: a DUID-UUID, ORO 59/60/23/24, vendor class 343, architecture
//! and NII; iPXE's: user class `iPXE` and Rapid Commit; the installer's: a
//! DUID-LLT and DNS only), the retransmission schedule, and the choice among
//! ADVERTISEs (preference 255 at once, else the best by the end of the
//! first wait). It ends in the address and the boot file URL (option 59), or
//! in a failure that names why. Nothing here reads a clock or a socket.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::dhcp::Identity;
use crate::wire::dhcp6::{code, status, Message, MessageType, Writer};

/// Enterprise number of the PXE vendor class (RFC 5970 §3.3: Intel's).
const PXE_ENTERPRISE: u32 = 343;

/// What the machine's DHCPv6 ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A REPLY bound an address.
    Bound {
        /// The address.
        ip: Ipv6Addr,
        /// Option 59, empty when none.
        url: String,
        /// SOLICITs and REQUESTs sent beyond the first of each.
        retries: u32,
    },
    /// Gave up; the reason names the step.
    Failed(&'static str),
}

/// One ADVERTISE worth requesting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advert {
    server: Vec<u8>,
    preference: u8,
    ip: Ipv6Addr,
    url: String,
}

#[derive(Debug)]
enum State {
    Soliciting {
        attempt: usize,
        retry_at: Instant,
        best: Option<Advert>,
    },
    Requesting {
        advert: Advert,
        attempt: usize,
        retry_at: Instant,
    },
    Done,
}

/// One machine's DHCPv6 exchange.
#[derive(Debug)]
pub struct Client {
    identity: Identity,
    duid: Vec<u8>,
    uuid: [u8; 16],
    xid: [u8; 3],
    started: Instant,
    state: State,
    send_due: bool,
    retries: u32,
    event: Option<Event>,
}

impl Identity {
    /// Gaps between DHCPv6 retransmissions: EDK2's PXE uses its DHCPv4
    /// schedule (4 s doubling), iPXE and the installer's client RFC 8415's
    /// 1 s doubling.
    fn retransmit6(self) -> &'static [Duration] {
        const FAST: [Duration; 6] = [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
            Duration::from_secs(8),
            Duration::from_secs(16),
            Duration::from_secs(32),
        ];
        match self {
            Identity::Edk2Pxe | Identity::UefiHttp | Identity::Grub => self.retransmit(),
            Identity::IpxeBios | Identity::IpxeEfi | Identity::Installer => &FAST,
        }
    }

    /// The client's DUID: firmware and iPXE use a DUID-UUID (type 4) from
    /// SMBIOS; the installer's client a DUID-LLT of its MAC.
    fn duid6(self, mac: [u8; 6], uuid: &[u8; 16]) -> Vec<u8> {
        match self {
            Identity::Installer => {
                let mut d = vec![0, 1, 0, 1, 0x2e, 0x1f, 0x00, 0x01];
                d.extend_from_slice(&mac);
                d
            }
            _ => {
                let mut d = vec![0, 4];
                d.extend_from_slice(uuid);
                d
            }
        }
    }

    fn options6(self, w: &mut Writer<'_>) -> Result<(), crate::wire::Error> {
        let class: Option<(u16, &[u8])> = match self {
            Identity::Edk2Pxe | Identity::Grub => Some((7, b"PXEClient:Arch:00007:UNDI:003000")),
            Identity::IpxeBios => Some((0, b"PXEClient:Arch:00000:UNDI:002001")),
            Identity::IpxeEfi => Some((7, b"PXEClient:Arch:00007:UNDI:003010")),
            Identity::UefiHttp => Some((16, b"HTTPClient:Arch:00016:UNDI:003001")),
            Identity::Installer => None,
        };
        match class {
            Some((arch, vendor)) => {
                w.option(code::ORO, &[0, 59, 0, 60, 0, 23, 0, 24])?;
                let open = w.begin(code::VENDOR_CLASS)?;
                w.put(&PXE_ENTERPRISE.to_be_bytes())?;
                w.put(&(vendor.len() as u16).to_be_bytes())?;
                w.put(vendor)?;
                w.end(open)?;
                w.option(code::CLIENT_ARCH, &arch.to_be_bytes())?;
                w.option(code::NII, &[1, 3, 0])?;
            }
            None => w.option(code::ORO, &[0, 23, 0, 24])?,
        }
        if matches!(self, Identity::IpxeBios | Identity::IpxeEfi) {
            w.option(code::USER_CLASS, b"\x00\x04iPXE")?;
        }
        Ok(())
    }

    /// Whether its SOLICIT asks for Rapid Commit (iPXE's does).
    fn rapid6(self) -> bool {
        matches!(self, Identity::IpxeBios | Identity::IpxeEfi)
    }
}

impl Client {
    /// A client that sends its first SOLICIT at `now`.
    pub fn new(now: Instant, identity: Identity, mac: [u8; 6], uuid: [u8; 16], xid: u32) -> Self {
        // The machine moves its xid on by the top byte at each step; the
        // 24-bit DHCPv6 id folds it in, so that a late REPLY of one step
        // (firmware and iPXE share a DUID) is never taken for the next.
        let [_, a, b, c] = (xid ^ (xid >> 24)).to_be_bytes();
        Self {
            identity,
            duid: identity.duid6(mac, &uuid),
            uuid,
            xid: [a, b, c],
            started: now,
            state: State::Soliciting {
                attempt: 0,
                retry_at: now + identity.retransmit6()[0],
                best: None,
            },
            send_due: true,
            retries: 0,
            event: None,
        }
    }

    /// One datagram from port 547. Replies for other clients or states are
    /// ignored.
    ///
    /// # Errors
    /// The datagram is not a DHCPv6 client message.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<(), crate::wire::Error> {
        let m = Message::parse(datagram).map_err(|_| crate::wire::Error::Malformed("dhcpv6"))?;
        if m.xid != self.xid || m.client_id() != Some(&self.duid[..]) {
            return Ok(());
        }
        let Some(server) = m.server_id() else {
            return Ok(());
        };
        let top = status_of(m.options.get(code::STATUS_CODE));
        let ia = m.options.ia_nas().ok().and_then(|v| v.into_iter().next());
        let ip = ia
            .as_ref()
            .and_then(|ia| ia.addresses().next())
            .map(|a| a.addr);
        let ia_status = ia.and_then(|ia| status_of(ia.options.get(code::STATUS_CODE)));
        let seen = ip
            .filter(|_| top.unwrap_or(0) == status::SUCCESS)
            .filter(|_| ia_status.unwrap_or(0) == status::SUCCESS)
            .map(|ip| Advert {
                server: server.to_vec(),
                preference: m
                    .options
                    .get(code::PREFERENCE)
                    .and_then(|p| p.first().copied())
                    .unwrap_or(0),
                ip,
                url: m
                    .options
                    .get(code::BOOTFILE_URL)
                    .map(|u| String::from_utf8_lossy(u).into_owned())
                    .unwrap_or_default(),
            });
        match (&mut self.state, m.kind) {
            (State::Soliciting { best, attempt, .. }, MessageType::Advertise) => {
                let Some(seen) = seen else { return Ok(()) };
                // RFC 8415 §18.2.1: preference 255 is taken at once, and
                // so is any ADVERTISE once the first wait has passed (EDK2:
                // AdPref 0xff after the first RT); before that the client
                // collects.
                let take_now = seen.preference == 255 || *attempt > 0;
                if best.as_ref().is_none_or(|b| seen.preference > b.preference) {
                    *best = Some(seen);
                }
                if take_now {
                    self.request(now);
                }
            }
            (State::Soliciting { .. }, MessageType::Reply)
                if self.identity.rapid6() && m.options.has(code::RAPID_COMMIT) =>
            {
                match seen {
                    Some(a) => self.bound(a),
                    None => self.finish(Event::Failed("no address in the Rapid Commit REPLY")),
                }
            }
            (State::Requesting { advert, .. }, MessageType::Reply) if advert.server == server => {
                match seen {
                    Some(a) => self.bound(a),
                    None => self.finish(Event::Failed("no address in the REPLY to the REQUEST")),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Fires what is due at `now`: the choice among ADVERTISEs, a
    /// retransmission, or giving up after the schedule's last wait.
    pub fn handle_timeout(&mut self, now: Instant) {
        let schedule = self.identity.retransmit6();
        match &mut self.state {
            State::Soliciting {
                retry_at,
                best: Some(_),
                ..
            } if *retry_at <= now => self.request(now),
            State::Soliciting {
                attempt, retry_at, ..
            }
            | State::Requesting {
                attempt, retry_at, ..
            } if *retry_at <= now => {
                *attempt += 1;
                let Some(wait) = schedule.get(*attempt) else {
                    let why = match self.state {
                        State::Requesting { .. } => "no REPLY to the REQUEST",
                        _ => "no ADVERTISE to the SOLICIT",
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

    /// The next message to send to All_DHCP_Relay_Agents_and_Servers, written
    /// into `out`; its length.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !std::mem::take(&mut self.send_due) {
            return None;
        }
        // Option 8, hundredths of a second since the exchange began.
        let elapsed = now.saturating_duration_since(self.started).as_millis() / 10;
        let elapsed = u16::try_from(elapsed).unwrap_or(u16::MAX);
        let mut w = Writer::new(out);
        let written = (|| {
            let (kind, advert) = match &self.state {
                State::Soliciting { .. } => (MessageType::Solicit, None),
                State::Requesting { advert, .. } => (MessageType::Request, Some(advert)),
                State::Done => return Err(crate::wire::Error::NoRoom),
            };
            w.message(kind, self.xid)?;
            w.option(code::CLIENTID, &self.duid)?;
            if let Some(a) = advert {
                w.option(code::SERVERID, &a.server)?;
            }
            let ia = w.ia_na(iaid(&self.uuid), 0, 0)?;
            if let Some(a) = advert {
                w.ia_addr(a.ip, 0, 0)?;
            }
            w.end(ia)?;
            w.option(code::ELAPSED_TIME, &elapsed.to_be_bytes())?;
            if kind == MessageType::Solicit && self.identity.rapid6() {
                w.option(code::RAPID_COMMIT, &[])?;
            }
            self.identity.options6(&mut w)
        })();
        written.ok().map(|()| w.len())
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Soliciting { retry_at, .. } | State::Requesting { retry_at, .. } => {
                Some(*retry_at)
            }
            State::Done => None,
        }
    }

    /// How the exchange ended, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    fn request(&mut self, now: Instant) {
        let State::Soliciting { best, .. } = &mut self.state else {
            return;
        };
        let Some(advert) = best.take() else { return };
        self.state = State::Requesting {
            advert,
            attempt: 0,
            retry_at: now + self.identity.retransmit6()[0],
        };
        self.send_due = true;
    }

    fn bound(&mut self, a: Advert) {
        self.finish(Event::Bound {
            ip: a.ip,
            url: a.url,
            retries: self.retries,
        });
    }

    fn finish(&mut self, event: Event) {
        self.state = State::Done;
        self.send_due = false;
        self.event = Some(event);
    }
}

/// The IAID: firmware derives it from something stable; the UUID's first
/// bytes are.
fn iaid(uuid: &[u8; 16]) -> u32 {
    u32::from_be_bytes([uuid[0], uuid[1], uuid[2], uuid[3]])
}

fn status_of(data: Option<&[u8]>) -> Option<u16> {
    let d = data?;
    Some(u16::from_be_bytes([*d.first()?, *d.get(1)?]))
}

/// The link-local address of `mac` (RFC 4291 §2.5.1's modified EUI-64):
/// where a machine's DHCPv6 comes from.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests;
