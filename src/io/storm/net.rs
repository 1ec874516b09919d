//! The storm machines' own sockets: a TFTP socket per transfer, an HTTP
//! connection per machine (from the leased address when the host has it),
//! and the reads and writes on them that the driver's loop makes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Poll, Token};

use super::Conn;

pub(super) fn udp_socket(poll: &Poll, token: Token, source: IpAddr) -> std::io::Result<UdpSocket> {
    let mut sock = UdpSocket::bind(SocketAddr::from((source, 0)))?;
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
/// not local to this host; an IPv6 machine's from the host's own address
/// (its lease is an address on the machines' link, not this host's).
pub(super) fn source_of(own_address: bool, lease: Option<IpAddr>) -> IpAddr {
    match lease {
        Some(IpAddr::V4(ip)) if !own_address => IpAddr::V4(ip),
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && !source.is_unspecified() => {
            if !std::mem::replace(own_address, true) {
                eprintln!(
                    "storm: leased addresses such as {source} are not local to this host, so TFTP and HTTP \
                     leave from its own address (a server limiting transfers per client sees one client); \
                     to play each machine from its lease: ip route add local POOL/PREFIX dev IF"
                );
            }
            let host = match source {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            open(host)
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
