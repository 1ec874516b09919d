//! Writing the engine's answers: OFFER/ACK with the subnet's options and the
//! boot policy's answer, NAK, the proxyDHCP answer, and where each goes (RFC
//! 2131 §4.1). The decisions (which address, whether to answer) are in mod.rs.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::policy::{self, Firmware};
use super::{pxe, Boot, Dest, Engine, Error, Mode, Outcome, Reply, Request};
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
        if self.settings.pxe_menu.is_some() {
            return self.proxy_menu(r, &facts, kind, out);
        }
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
        Ok(pxe_outcome(
            r,
            kind,
            len,
            destination(p, MessageType::Offer, Ipv4Addr::UNSPECIFIED),
        ))
    }

    /// The proxy answer where a PXE menu is configured, as dnsmasq gives it:
    /// BIOS firmware gets the menu on :67 and picks an item from a boot
    /// server; UEFI firmware is sent to :4011 (siaddr), where it gets the
    /// one item of its arch directly, or the menu.
    fn proxy_menu(
        &mut self,
        r: &Request<'_>,
        facts: &Firmware<'_>,
        kind: MessageType,
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let (p, o, input) = (&r.packet, &r.options, &r.input);
        let arch = facts.arch.ok_or(Error::NotPxe)?;
        if !facts.vendor_is(b"PXEClient") {
            return Err(Error::NotPxe);
        }
        let Some(menu) = &self.settings.pxe_menu else {
            return Err(Error::NoBootRule);
        };
        let (boot, tags) = self.boot_tagged(facts, None);
        let on_4011 = input.port == PXE_PORT;
        let single = menu.single_uefi_item(arch, &tags);
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            if kind == MessageType::Offer || p.ciaddr().is_unspecified() {
                w.broadcast_flag();
            } else {
                w.ciaddr(p.ciaddr());
            }
            // UEFI firmware asks :4011 of siaddr for its boot file.
            if arch >= 6 {
                w.siaddr(input.server);
            }
            match (single, &boot) {
                (Some(item), _) if on_4011 => {
                    let at = item.server.unwrap_or(input.server);
                    w.siaddr(at);
                    let mut text = [0u8; 15];
                    let n = policy::ip_text(at, &mut text);
                    w.sname(&text[..n]);
                    if let Some(f) = item.file_for(0) {
                        w.file(f.as_bytes());
                    }
                }
                (Some(_), _) => {}
                (None, Some(b)) => {
                    if let Some(next) = b.action.next_server {
                        w.siaddr(next);
                    }
                    if let Some(f) = &b.action.file {
                        w.file(f.as_bytes());
                    }
                }
                (None, None) => {}
            }
            w.message_type(kind)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            w.option(code::VENDOR_CLASS, b"PXEClient")?;
            if let Some(uuid) = o.get(code::UUID) {
                w.option(code::UUID, &uuid)?;
            }
            if (on_4011 && single.is_none()) || arch < 6 {
                w.option(code::VENDOR, &menu.vendor_option(arch, &tags, input.server))?;
            }
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let len = result.map_err(|_| Error::ReplyTooLarge)?;
        Ok(pxe_outcome(
            r,
            kind,
            len,
            destination(p, MessageType::Offer, Ipv4Addr::UNSPECIFIED),
        ))
    }

    /// A PXE boot server's answer (PXE 2.1 §2.2.6): a REQUEST naming a menu
    /// item (option 43.71) gets that item's file, in proxy and server mode.
    pub(super) fn boot_server(
        &mut self,
        r: &Request<'_>,
        item: [u8; 4],
        out: &mut [u8],
    ) -> Result<Outcome, Error> {
        let (p, o, input) = (&r.packet, &r.options, &r.input);
        let boot_type = u16::from_be_bytes([item[0], item[1]]);
        let layer = u16::from_be_bytes([item[2], item[3]]);
        if layer & 0x8000 != 0 {
            return Err(Error::PxeBis);
        }
        let ciaddr = p.ciaddr();
        let subnets = &self.settings.subnets;
        let on_net = if subnets.is_empty() {
            !ciaddr.is_unspecified()
        } else {
            subnets.iter().any(|s| s.contains(ciaddr))
        };
        if !on_net {
            return Err(Error::NoSubnet);
        }
        let found = self
            .settings
            .pxe_menu
            .as_ref()
            .and_then(|m| m.by_type(boot_type))
            .and_then(|i| Some((i.server, i.file_for(layer)?)));
        let (server, file) = found.ok_or(Error::NoMenuItem)?;
        // The prompt goes along (where its tags fit), as dnsmasq sends it.
        let facts = Firmware::of(o, p.chaddr(), p.giaddr());
        let (_, tags) = self.boot_tagged(&facts, None);
        let prompt = self
            .settings
            .pxe_menu
            .as_ref()
            .and_then(|m| m.prompt_for(&tags));
        let result = (|| -> Result<usize, crate::wire::Error> {
            let mut w = Writer::reply(out, p)?;
            w.yiaddr(ciaddr);
            w.siaddr(server.unwrap_or(input.server));
            w.file(file.as_bytes());
            w.message_type(MessageType::Ack)?;
            w.option(code::SERVER_ID, &input.server.octets())?;
            w.option(code::VENDOR_CLASS, b"PXEClient")?;
            if let Some(uuid) = o.get(code::UUID) {
                w.option(code::UUID, &uuid)?;
            }
            let mut vendor = vec![pxe::sub::BOOT_ITEM, 4];
            vendor.extend_from_slice(&item);
            if let Some(p) = prompt {
                p.write(&mut vendor);
            }
            // And the client's vendor sub-options (dnsmasq's `vendor:`).
            let extra = policy::tagged_options(&self.settings.options, &tags);
            if let Some(x) = extra.iter().find(|x| x.code == code::VENDOR) {
                vendor.extend_from_slice(x.value.strip_suffix(&[255]).unwrap_or(&x.value));
            }
            vendor.push(255);
            w.option(code::VENDOR, &vendor)?;
            if let Some(r) = o.get(code::RELAY_AGENT) {
                w.option(code::RELAY_AGENT, &r)?;
            }
            w.finish()
        })();
        let len = result.map_err(|_| Error::ReplyTooLarge)?;
        let otherwise = destination(p, MessageType::Ack, ciaddr);
        Ok(pxe_outcome(r, MessageType::Ack, len, otherwise))
    }

    fn boot(&self, facts: &Firmware<'_>) -> Option<Boot<'_>> {
        self.boot_tagged(facts, None).0
    }

    /// The boot answer and the tags the client ends with (starting with its
    /// subnet's).
    fn boot_tagged(
        &self,
        facts: &Firmware<'_>,
        subnet: Option<usize>,
    ) -> (Option<Boot<'_>>, Vec<&str>) {
        let initial = subnet.map_or(&[][..], |s| &self.settings.subnets[s].set_tags);
        let mut facts = facts.clone();
        facts.profiles = self.settings.profiles.as_ref().map(|p| &*p.0);
        let (decided, tags) = policy::decide_tagged(&self.settings.rules, &facts, initial);
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
        let host = self.host_of(r);
        let mut facts = Firmware::of(o, p.chaddr(), p.giaddr());
        facts.network = Some((s.network, s.prefix));
        facts.known = host.is_some();
        let (boot, tags) = self.boot_tagged(&facts, Some(subnet));
        let extra = policy::tagged_options(&self.settings.options, &tags);
        let requested = o.get(code::PARAMS);
        // dnsmasq's way (`options_when_asked`): a configured option goes
        // only to a client whose option 55 lists it (or that sends none).
        let send = |c: u8| {
            !self.settings.options_when_asked || requested.as_deref().is_none_or(|l| l.contains(&c))
        };
        // A tagged option replaces the subnet's of the same number.
        let own = |c: u8| send(c) && !extra.iter().any(|x| x.code == c);
        // Where a PXE menu is configured, PXE firmware hears of it (unless
        // it is UEFI with one item of its own: the offer's file is that).
        let pxe_arch = facts
            .arch
            .filter(|_| self.settings.pxe_menu.is_some() && facts.vendor_is(b"PXEClient"));
        let pxe_client = pxe_arch.is_some();
        let asked_43 = requested
            .as_deref()
            .is_some_and(|l| l.contains(&code::VENDOR) || l.contains(&code::VENDOR_CLASS));
        let menu = self
            .settings
            .pxe_menu
            .as_ref()
            .zip(pxe_arch)
            .filter(|(m, a)| asked_43 && m.single_uefi_item(*a, &tags).is_none())
            .map(|(m, a)| {
                // The client's vendor sub-options (dnsmasq's `vendor:`) follow
                // the menu's in the one option 43.
                let mut v = m.vendor_option(a, &tags, input.server);
                if let Some(x) = extra.iter().find(|x| x.code == code::VENDOR) {
                    v.pop();
                    v.extend_from_slice(x.value.strip_suffix(&[255]).unwrap_or(&x.value));
                    v.push(255);
                }
                v
            });
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
                let l = self.lease_secs(subnet, r);
                w.option(code::LEASE_TIME, &l.to_be_bytes())?;
                // An infinite lease has no renewal.
                if l != u32::MAX {
                    w.option(code::RENEWAL, &(l / 2).to_be_bytes())?;
                    w.option(code::REBINDING, &(l / 8 * 7).to_be_bytes())?;
                }
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
            if pxe_client {
                w.option(code::VENDOR_CLASS, b"PXEClient")?;
                if let Some(uuid) = o.get(code::UUID) {
                    w.option(code::UUID, &uuid)?;
                }
            }
            if let Some(v) = &menu {
                w.option(code::VENDOR, v)?;
            }
            for x in &extra {
                // A PXE menu's client gets PXEClient as 60, and 43 with the
                // menu in it.
                if (pxe_client && x.code == code::VENDOR_CLASS)
                    || (menu.is_some() && x.code == code::VENDOR)
                {
                    continue;
                }
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

/// A proxy or boot server answer of `len` bytes: back to the sender of a
/// :4011 request, else to `otherwise`.
fn pxe_outcome(r: &Request<'_>, kind: MessageType, len: usize, otherwise: Dest) -> Outcome {
    let to = if r.input.port == PXE_PORT {
        Dest::Unicast(r.input.peer)
    } else {
        otherwise
    };
    Outcome::Reply(Reply {
        len,
        to,
        kind,
        ip: Ipv4Addr::UNSPECIFIED,
        chaddr: r.packet.hw(),
    })
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
