//! The storm machines' own sockets: a TFTP socket per transfer, an HTTP
//! connection per machine (from the leased address when the host has it),
//! and the reads and writes on them that the driver's loop makes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Poll, Token};

use super::Conn;

pub(super) fn udp_socket(poll: &Poll, token: Token, source: IpAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let local = SocketAddr::from((source, 0));
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, None)?;
    socket.set_nonblocking(true)?;
    free_bind(&socket, source)?;
    socket.bind(&local.into())?;
    let mut sock = UdpSocket::from_std(socket.into());
    poll.registry()
        .register(&mut sock, token, Interest::READABLE)?;
    Ok(sock)
}

pub(super) fn connect(
    poll: &Poll,
    token: Token,
    source: IpAddr,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    // A URL's IPv6 host is bracketed.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the name has no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    if !source.is_unspecified() && source.is_ipv4() == addr.is_ipv4() {
        free_bind(&socket, source)?;
        socket.bind(&SocketAddr::from((source, 0)).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let mut stream = TcpStream::from_std(socket.into());
    let _ = stream.set_nodelay(true);
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// Where a machine's traffic leaves from: its IPv4 lease, unless leases are
/// not local to this host; its IPv6 lease when the host routes it as local
/// (`local6`, from [`local_prefixes6`]); else the host's own address.
pub(super) fn source_of(own_address: bool, local6: &[(u128, u8)], lease: Option<IpAddr>) -> IpAddr {
    match lease {
        Some(IpAddr::V4(ip)) if !own_address => IpAddr::V4(ip),
        Some(IpAddr::V6(ip)) if covers(local6, ip) => IpAddr::V6(ip),
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// An IPv6 lease the host takes as its own by a `local` route is no address
/// of an interface, and IPv6 (unlike IPv4) binds to it only with
/// IPV6_FREEBIND; the route brings the replies back.
fn free_bind(socket: &socket2::Socket, source: IpAddr) -> std::io::Result<()> {
    match source {
        IpAddr::V6(ip) if !ip.is_unspecified() => socket.set_freebind_v6(true),
        _ => Ok(()),
    }
}

/// `RTF_LOCAL` in /proc/net/ipv6_route's flags.
const RTF_LOCAL: u32 = 0x8000_0000;

/// The IPv6 prefixes this host takes as its own by `local` routes
/// (`ip -6 route add local PREFIX dev IF`), shorter than /128 (an
/// interface's own addresses need no help), from /proc/net/ipv6_route.
pub(super) fn local_prefixes6() -> Vec<(u128, u8)> {
    local_routes(&std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default())
}

fn local_routes(text: &str) -> Vec<(u128, u8)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            (flags & RTF_LOCAL != 0 && len < 128).then_some((dest, len))
        })
        .collect()
}

/// Whether `ip` lies in one of `prefixes`.
pub(super) fn covers(prefixes: &[(u128, u8)], ip: Ipv6Addr) -> bool {
    let v = u128::from(ip);
    prefixes.iter().any(|&(p, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        v & mask == p & mask
    })
}

/// The hardware address of `interface` (this namespace's), for answering
/// neighbor solicitations for the IPv6 leases it takes as local.
pub(super) fn interface_mac(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

/// Where the machines' TFTP and HTTP leave from, and what the storm learnt
/// of it.
#[derive(Debug)]
pub(super) struct Sources {
    /// IPv4 leases are not local here (set at the first bind that fails):
    /// every IPv4 machine leaves from the host's own address.
    pub(super) own_address: bool,
    /// IPv6 prefixes the host takes as local: IPv6 machines in them play
    /// from their leases.
    pub(super) local6: Vec<(u128, u8)>,
    /// Some IPv6 machine played from its lease.
    pub(super) from_leases6: bool,
    /// On a link (not self mode), where a missing local route is worth
    /// saying.
    raw: bool,
    warned6: bool,
}

impl Sources {
    pub(super) fn new(raw: bool, local6: Vec<(u128, u8)>) -> Self {
        Self {
            own_address: false,
            local6,
            from_leases6: false,
            raw,
            warned6: false,
        }
    }

    /// The source for a machine holding `lease` ([`source_of`]); an IPv6
    /// lease that is not local is said once, with the fix.
    pub(super) fn of(&mut self, lease: Option<IpAddr>) -> IpAddr {
        let source = source_of(self.own_address, &self.local6, lease);
        if let Some(IpAddr::V6(lease)) = lease {
            if !source.is_unspecified() {
                self.from_leases6 = true;
            } else if self.raw && !std::mem::replace(&mut self.warned6, true) {
                eprintln!(
                    "storm: IPv6 leases such as {lease} are not local to this host, so IPv6 machines' TFTP \
                     and HTTP leave from its own address (a server limiting transfers per client sees one \
                     client); to play each from its lease: ip -6 route add local POOL/PREFIX dev IF"
                );
            }
        }
        source
    }
}

/// Opens a socket from `source`; when that address is not this host's, says
/// so once and opens it (and every later one) from the host's own address.
pub(super) fn retry_from_host<T>(
    own_address: &mut bool,
    source: IpAddr,
    mut open: impl FnMut(IpAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    match open(source) {
        // An IPv6 lease is tried only under a local route (see
        // [`Sources::of`]): should it fail all the same, that machine falls
        // back alone, and the IPv4 machines keep their leases.
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && source.is_ipv6() => {
            open(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && !source.is_unspecified() => {
            if !std::mem::replace(own_address, true) {
                eprintln!(
                    "storm: leased addresses such as {source} are not local to this host, so TFTP and HTTP \
                     leave from its own address (a server limiting transfers per client sees one client); \
                     to play each machine from its lease: ip route add local POOL/PREFIX dev IF"
                );
            }
            open(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }
        other => other,
    }
}

/// Drops up to `n` bytes waiting on `stream` without copying them.
pub(super) fn discard(stream: &TcpStream, n: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut sink = [0u8; 1];
    loop {
        // SAFETY: with MSG_TRUNC a TCP socket discards the bytes instead of
        // writing them; `sink` is a valid buffer in any case.
        let r = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                sink.as_mut_ptr().cast(),
                n as usize,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes what the connection has queued, as far as the socket takes it.
pub(super) fn flush(c: &mut Conn) -> std::io::Result<()> {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::NotConnected
                ) =>
            {
                return Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_routes_are_read_from_the_kernels_table() {
        // An interface's own address (/128, local), a `local` /120 route,
        // and an ordinary on-link /64.
        let table = "\
fd000201000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
fd000201000000000000000000000100 78 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 80000001     eth0
fd000201000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
";
        let local = local_routes(table);
        assert_eq!(local.len(), 1);
        assert!(covers(&local, "fd00:201::1ff".parse().unwrap()));
        assert!(!covers(&local, "fd00:201::200".parse().unwrap()));
        assert!(!covers(&local, "fd00:201::2".parse().unwrap()));
        let lease = IpAddr::V6("fd00:201::150".parse().unwrap());
        assert_eq!(source_of(false, &local, Some(lease)), lease);
        assert!(source_of(false, &[], Some(lease)).is_unspecified());
    }
}
