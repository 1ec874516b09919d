//! Writing the engine's answers: OFFER/ACK with the subnet's options and the
//! boot policy's answer, NAK, the proxyDHCP answer, and where each goes (RFC
//! 2131 §4.1). The decisions (which address, whether to answer) are in mod.rs.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::policy::{self, Firmware};
use super::{Boot, Dest, Engine, Error, Mode, Outcome, Reply, Request};
use crate::wire::dhcp::{
    self, code, ipxe, MessageType, Packet, Writer, CLIENT_PORT, PXE_PORT, SERVER_PORT,
};

impl Engine {
    pub(super) fn proxy(&mut self, r: &Request<'_>, out: &mut [u8]) -> Result<Outcome, Error> {
        let (p, o, input) = (&r.packet, &r.options, &r.input);
        let facts = Firmware::of(o, p.chaddr(), p.giaddr());
        if !facts.is_pxe() {
            return Err(Error::NotPxe);
        }
        if self.ignored(r, None) {
            return Err(Error::Ignored);
        }
        let kind = match (r.kind, input.port) {
            (MessageType::Discover, SERVER_PORT) => MessageType::Offer,
            (MessageType::Request | MessageType::Inform, PXE_PORT) => MessageType::Ack,
            _ => return Err(Error::ProxyMessage),
        };
        let boot = self.boot(&facts).ok_or(Error::NoBootRule)?;
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
            self.write_boot(&mut w, r, &facts, &boot)?;
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let len = result.map_err(|_| Error::ReplyTooLarge)?;
        let to = if input.port == PXE_PORT {
            Dest::Unicast(input.peer)
        } else {
            destination(p, MessageType::Offer, Ipv4Addr::UNSPECIFIED)
        };
        Ok(Outcome::Reply(Reply {
            len,
            to,
            kind,
            ip: Ipv4Addr::UNSPECIFIED,
            chaddr: p.hw(),
        }))
    }

    fn boot(&self, facts: &Firmware<'_>) -> Option<Boot<'_>> {
        self.boot_tagged(facts).0
    }

    /// The boot answer and the tags the client ends with.
    fn boot_tagged(&self, facts: &Firmware<'_>) -> (Option<Boot<'_>>, Vec<&str>) {
        let (decided, tags) = policy::decide_tagged(&self.settings.rules, facts);
        (decided.map(|(rule, action)| Boot { rule, action }), tags)
    }

    fn write_boot(
        &self,
        w: &mut Writer<'_>,
        r: &Request<'_>,
        facts: &Firmware<'_>,
        boot: &Boot<'_>,
    ) -> Result<(), crate::wire::Error> {
        let (o, server) = (&r.options, r.input.server);
        let asked = |c: u8| o.get(code::PARAMS).is_some_and(|l| l.contains(&c));
        // Rendered on the stack: a boot file name fits an option (255 bytes).
        let mut rendered = [0u8; 255];
        let file =
            boot.action.file.as_deref().map(|f| {
                policy::render(f, server, self.settings.http_port, facts.mac, &mut rendered)
            });
        if let Some(name) = &boot.action.server_name {
            if !w.sname(name.as_bytes()) || asked(code::TFTP_SERVER) {
                w.option(code::TFTP_SERVER, name.as_bytes())?;
            }
            if boot.action.file.is_none() {
                w.siaddr(boot.action.next_server.unwrap_or(server));
            }
        }
        if let Some(file) = file {
            let file = &rendered[..file.ok_or(crate::wire::Error::Malformed(
                "boot file name over 255 bytes",
            ))?];
            let url = file.starts_with(b"http://") || file.starts_with(b"https://");
            let in_field = w.file(file);
            if !in_field || asked(code::BOOTFILE) || url {
                w.option(code::BOOTFILE, file)?;
            }
            if !url {
                let next = boot.action.next_server.unwrap_or(server);
                w.siaddr(next);
                // dnsmasq's way (options only as configured) names no
                // TFTP server in option 66 unless a dhcp-option does.
                if asked(code::TFTP_SERVER)
                    && boot.action.server_name.is_none()
                    && !self.settings.options_when_asked
                {
                    let mut text = [0u8; 15];
                    let n = policy::ip_text(next, &mut text);
                    w.option(code::TFTP_SERVER, &text[..n])?;
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
        tracing::debug!(rule = %boot.rule.name, "boot policy");
        Ok(())
    }

    pub(super) fn answer(
        &mut self,
        r: &Request<'_>,
        subnet: usize,
        kind: MessageType,
        ip: Ipv4Addr,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let (p, o, input) = (&r.packet, &r.options, &r.input);
        let inform = ip.is_unspecified();
        let s = &self.settings.subnets[subnet];
        let host = self.host_of(p.mac());
        let mut facts = Firmware::of(o, p.chaddr(), p.giaddr());
        facts.network = Some((s.network, s.prefix));
        facts.known = host.is_some();
        let (boot, tags) = self.boot_tagged(&facts);
        let extra = policy::tagged_options(&self.settings.options, &tags);
        let requested = o.get(code::PARAMS);
        // dnsmasq's way (`options_when_asked`): a configured option goes
        // only to a client whose option 55 lists it (or that sends none).
        let send = |c: u8| {
            !self.settings.options_when_asked || requested.as_deref().is_none_or(|l| l.contains(&c))
        };
        // A tagged option replaces the subnet's of the same number.
        let own = |c: u8| send(c) && !extra.iter().any(|x| x.code == c);
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            w.yiaddr(ip);
            if inform || kind == MessageType::Ack {
                w.ciaddr(p.ciaddr());
            }
            w.message_type(kind)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            // The next server is this one unless a boot rule names another
            // (as dnsmasq answers every client).
            w.siaddr(input.server);
            if !inform {
                let l = s.lease_secs;
                w.option(code::LEASE_TIME, &l.to_be_bytes())?;
                w.option(code::RENEWAL, &(l / 2).to_be_bytes())?;
                w.option(code::REBINDING, &(l / 8 * 7).to_be_bytes())?;
            }
            if !extra.iter().any(|x| x.code == code::SUBNET_MASK) {
                w.option(code::SUBNET_MASK, &s.mask().octets())?;
            }
            if !extra.iter().any(|x| x.code == code::BROADCAST) {
                w.option(code::BROADCAST, &s.broadcast().octets())?;
            }
            if let Some(r) = s.router.filter(|_| own(code::ROUTER)) {
                w.option(code::ROUTER, &r.octets())?;
            }
            if !s.dns.is_empty() && own(code::DNS) {
                w.option_ips(code::DNS, &s.dns)?;
            }
            if let Some(d) = s.domain.as_ref().filter(|_| own(code::DOMAIN)) {
                w.option(code::DOMAIN, d.as_bytes())?;
            }
            if !s.ntp.is_empty() && own(code::NTP) {
                w.option_ips(code::NTP, &s.ntp)?;
            }
            if let Some(m) = s.mtu.filter(|_| own(code::MTU)) {
                w.option(code::MTU, &m.to_be_bytes())?;
            }
            if let Some(name) = host
                .and_then(|h| h.hostname.as_deref())
                .filter(|_| own(code::HOSTNAME))
            {
                w.option(code::HOSTNAME, name.as_bytes())?;
            }
            if let Some(b) = &boot {
                self.write_boot(&mut w, r, &facts, b)?;
            }
            for x in &extra {
                // An empty value only keeps the subnet's option out
                // (dnsmasq's `dhcp-option=3`).
                if x.value.is_empty() || !(x.force || send(x.code)) {
                    continue;
                }
                if x.zero_is_self {
                    // 0.0.0.0 in an address list is this server.
                    let mut v = x.value.clone();
                    for quad in v
                        .chunks_mut(4)
                        .filter(|q| q.len() == 4 && q.iter().all(|b| *b == 0))
                    {
                        quad.copy_from_slice(&input.server.octets());
                    }
                    w.option(x.code, &v)?;
                } else {
                    w.option(x.code, &x.value)?;
                }
            }
            for (c, v) in s.options.iter().chain(host.map_or(&[][..], |h| &h.options)) {
                w.option(*c, v)?;
            }
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let len = result.map_err(|_| Error::ReplyTooLarge)?;
        let to = if inform && p.giaddr().is_unspecified() && !p.ciaddr().is_unspecified() {
            Dest::Unicast(SocketAddrV4::new(p.ciaddr(), CLIENT_PORT))
        } else {
            destination(p, kind, ip)
        };
        Ok(Outcome::Reply(Reply {
            len,
            to,
            kind,
            ip,
            chaddr: p.hw(),
        }))
    }

    pub(super) fn nak(
        &mut self,
        r: &Request<'_>,
        why: &'static str,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let (p, o, input) = (&r.packet, &r.options, &r.input);
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
        let len = result.map_err(|_| Error::ReplyTooLarge)?;
        tracing::debug!(why, "NAK");
        Ok(Outcome::Reply(Reply {
            len,
            to: destination(p, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
            kind: MessageType::Nak,
            ip: Ipv4Addr::UNSPECIFIED,
            chaddr: p.hw(),
        }))
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
