//! The boot interface: its index, address, prefix and MAC as the kernel
//! reports them, the DHCP sockets bound to it, and the check that its ARP
//! table can hold the pools on its link.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::io::udp;

/// The boot interface as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Index.
    pub index: i32,
    /// First IPv4 address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Hardware address.
    pub mac: [u8; 6],
    /// First global or unique-local IPv6 address, with its prefix length.
    pub v6: Option<(Ipv6Addr, u8)>,
}

/// Looks `name` up: index, first IPv4 address with prefix, MAC.
///
/// # Errors
/// No such interface, or it has no IPv4 address.
pub fn interface(name: &str) -> io::Result<Iface> {
    lookup(name, true)
}

/// Looks `name` up for the DHCP worker of `config`: an IPv4 address is
/// needed unless DHCPv6 serves and no IPv4 pool is configured (an IPv6-only
/// link), where it is then unspecified.
///
/// # Errors
/// No such interface, or it lacks the address its service needs.
pub fn interface_for(config: &crate::config::dhcp::Dhcp, name: &str) -> io::Result<Iface> {
    let v6_only = config.v6.is_some()
        && config.settings.subnets.is_empty()
        && config.settings.mode == crate::proto::dhcp::Mode::Server;
    let i = lookup(name, !v6_only)?;
    if v6_only && i.v6.is_none() && i.addr.is_unspecified() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{name} has neither an IPv4 address nor a global or unique-local IPv6 address: give it the boot network's server address (ip -6 addr add fd00:1::1/64 dev {name})"),
        ));
    }
    Ok(i)
}

fn lookup(name: &str, need_v4: bool) -> io::Result<Iface> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `addrs`, freed below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut v4, mut v6, mut mac, mut index) = (None, None, None, None);
    let mut at = addrs;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*at };
        at = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let n = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if n.to_bytes() != name.as_bytes() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of its family.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET && v4.is_none() {
            // SAFETY: an AF_INET address is a sockaddr_in; the netmask is too.
            let (a, m) = unsafe {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                (
                    u32::from_be(a.sin_addr.s_addr),
                    u32::from_be(m.sin_addr.s_addr),
                )
            };
            v4 = Some((Ipv4Addr::from(a), m.count_ones() as u8));
        } else if family == libc::AF_INET6 && v6.is_none() && !ifa.ifa_netmask.is_null() {
            // SAFETY: an AF_INET6 address is a sockaddr_in6; the netmask is too.
            let (a, m) = unsafe {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                (a.sin6_addr.s6_addr, m.sin6_addr.s6_addr)
            };
            let a = Ipv6Addr::from(a);
            // Link-local addresses name no prefix to give addresses from.
            if !a.is_unicast_link_local() && !a.is_loopback() {
                v6 = Some((a, u128::from_be_bytes(m).count_ones() as u8));
            }
        } else if family == libc::AF_PACKET {
            // SAFETY: an AF_PACKET address is a sockaddr_ll.
            let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
            index = Some(ll.sll_ifindex);
            if ll.sll_halen == 6 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&ll.sll_addr[..6]);
                mac = Some(m);
            }
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addrs) };
    let index = index.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named {name} (see `ip link`)"),
        )
    })?;
    let (addr, prefix) = match v4 {
        Some(v4) => v4,
        None if !need_v4 => (Ipv4Addr::UNSPECIFIED, 0),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{name} has no IPv4 address: give it the boot network's server address (ip addr add ... dev {name})"),
            ))
        }
    };
    Ok(Iface {
        name: name.to_owned(),
        index,
        addr,
        prefix,
        mac: mac.unwrap_or_default(),
        v6,
    })
}

/// The DHCPv6 socket on `iface`: `[::]:547`, bound to the interface, joined
/// to All_DHCP_Relay_Agents_and_Servers there (clients send to it; relays
/// send to the server's address).
pub(super) fn udp6_socket(iface: &Iface) -> io::Result<UdpSocket> {
    use crate::wire::dhcp6::{ALL_SERVERS, SERVER_PORT};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, SERVER_PORT)).into())?;
    s.join_multicast_v6(&ALL_SERVERS, iface.index as u32)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

pub(super) fn udp_socket(iface: &Iface, port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    // A rack powering on is a burst: hold it in the queue rather than drop it
    // (a lost DISCOVER costs the client 4 s or more).
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    s.set_nonblocking(true)?;
    let s: UdpSocket = s.into();
    udp::enable_pktinfo(&s)?;
    Ok(s)
}

/// Warns when the pools on the server's own link hold more addresses than the
/// kernel's ARP table takes: past `gc_thresh3` entries it drops sends to new
/// neighbours, and TFTP and HTTP to the machines stall.
pub(super) fn warn_if_arp_table_small(settings: &crate::proto::dhcp::Settings, iface: &Iface) {
    let on_link: u64 = settings
        .subnets
        .iter()
        .filter(|s| s.contains(iface.addr))
        .map(|s| s.size())
        .sum();
    let path = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    else {
        return;
    };
    if on_link > limit {
        tracing::warn!(
            pool = on_link,
            arp_limit = limit,
            "dhcp: the pool on {} holds more addresses than the ARP table takes \
             (net.ipv4.neigh.default.gc_thresh3): past it the kernel drops traffic to new machines; \
             raise it (tuning/60-rackboot.conf)",
            iface.name
        );
    }
}
