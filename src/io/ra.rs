//! Router advertisements on the boot interface (`dhcp.router_advertisement`):
//! iPXE configures IPv6 alongside DHCP and waits for a router advertisement
//! before it fetches anything; on a network with no IPv6 router that wait is
//! ~15 s per iPXE start (measured: tests/it/firmware.rs, bench/RESULTS.md). An
//! advertisement that says "no router, no prefix, no DHCPv6" ends it at once;
//! where DHCPv6 serves the link it says "addresses from DHCPv6" (M and O) and
//! names the prefix on-link instead.
//! One is sent at start and one in answer to each solicitation (at most one per
//! 50 ms); if another router advertises on the link, rackboot stops and says so.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::wire::icmpv6;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
const MIN_GAP: Duration = Duration::from_millis(50);

/// The advertiser of one interface.
#[derive(Debug)]
pub(crate) struct Advertiser {
    socket: Socket,
    ifindex: u32,
    interface: String,
    ra: Vec<u8>,
    last: Option<Instant>,
    stopped: bool,
    /// DHCPv6 serves the link (this server's advertisements set M).
    dhcp6: bool,
}

impl Advertiser {
    /// A raw ICMPv6 socket on `interface` (index `ifindex`, hardware address
    /// `mac`) that hears solicitations, and the first advertisement sent;
    /// `managed` when DHCPv6 serves the link (see wire/icmpv6.rs).
    ///
    /// # Errors
    /// The socket cannot be made (no CAP_NET_RAW, IPv6 off on the interface).
    pub(crate) fn start(
        interface: &str,
        ifindex: u32,
        mac: [u8; 6],
        managed: Option<icmpv6::Managed>,
        now: Instant,
    ) -> std::io::Result<Self> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_nonblocking(true)?;
        // RFC 4861 §6.1.2: hosts drop NDP messages whose hop limit is not 255.
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        socket.set_multicast_loop_v6(false)?;
        socket.set_multicast_if_v6(ifindex)?;
        socket.join_multicast_v6(&ALL_ROUTERS, ifindex)?;
        let mut a = Self {
            socket,
            ifindex,
            interface: interface.to_owned(),
            ra: icmpv6::router_advertisement(mac, managed),
            last: None,
            stopped: false,
            dhcp6: managed.is_some(),
        };
        a.advertise(now);
        Ok(a)
    }

    /// Its socket, for the poller.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.socket.as_raw_fd()
    }

    /// Reads what arrived: answers solicitations, and stops for good when
    /// another router advertises.
    pub(crate) fn handle_readable(&mut self, now: Instant) {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(_) => return,
            };
            // SAFETY: recv_from initialised the first `n` bytes.
            let msg = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            match icmpv6::kind(msg) {
                Some(icmpv6::ROUTER_SOLICITATION) => self.advertise(now),
                Some(icmpv6::ROUTER_ADVERTISEMENT) if !self.stopped => {
                    self.stopped = true;
                    let router = from
                        .as_socket_ipv6()
                        .map_or_else(|| "?".to_owned(), |a| a.ip().to_string());
                    self.other_router(&router, icmpv6::parse_advertisement(msg));
                }
                _ => {}
            }
        }
    }

    /// Says what another router on the link advertises, and what that
    /// means for the machines booting here.
    fn other_router(&self, router: &str, said: Option<icmpv6::Advert>) {
        let Some(a) = said else {
            tracing::warn!(
                interface = %self.interface,
                router,
                "another IPv6 router advertises on this link (its advertisement is malformed): rackboot stops its own router advertisements"
            );
            return;
        };
        let advertises = a.to_string();
        if self.dhcp6 && !a.managed {
            tracing::warn!(
                interface = %self.interface,
                router,
                %advertises,
                "another IPv6 router advertises on this link, without the M flag: rackboot stops its own router advertisements, and machines that follow that router's will not ask DHCPv6 for an address (iPXE, EDK2 and the installer take SLAAC then): set AdvManagedFlag (M) on that router for this link, or stop its advertisements here"
            );
        } else {
            tracing::warn!(
                interface = %self.interface,
                router,
                %advertises,
                "another IPv6 router advertises on this link: rackboot stops its own router advertisements"
            );
        }
    }

    fn advertise(&mut self, now: Instant) {
        if self.stopped || self.last.is_some_and(|t| now.duration_since(t) < MIN_GAP) {
            return;
        }
        let to = SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex);
        // Only a sent advertisement starts the gap: one refused (the link-local
        // address still tentative, just after the link came up) must not
        // silence the answer to the next solicitation.
        match self.socket.send_to(&self.ra, &to.into()) {
            Ok(_) => self.last = Some(now),
            Err(e) => {
                tracing::debug!(interface = %self.interface, error = %e, "router advertisement not sent");
            }
        }
    }
}
