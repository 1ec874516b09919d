//! UDP syscalls the socket crates do not offer: receiving with the local
//! destination address (IP_PKTINFO, IPV6_PKTINFO), sending a window of TFTP blocks as one GSO
//! datagram train (UDP_SEGMENT) or, where GSO is unavailable, as one sendmmsg,
//! and reading a path's MTU. Each unsafe block builds a msghdr over buffers that
//! outlive the call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// Most iovecs one send uses: a header and a slice per block.
pub(crate) const MAX_BLOCKS: usize = 128;

/// Asks the kernel to report each datagram's destination address.
pub(crate) fn enable_pktinfo(sock: &impl AsRawFd) -> io::Result<()> {
    setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
}

/// The same for an IPv6 socket: IPv6 destinations, and (on a dual-stack
/// socket) the IPv4 ones of mapped datagrams.
pub(crate) fn enable_pktinfo6(sock: &impl AsRawFd) -> io::Result<()> {
    setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
}

fn setsockopt_int(sock: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live local int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A received datagram: length, sender, the local address it was sent to (the
/// address replies should come from), and whether it was cut to fit `buf`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) peer: SocketAddr,
    pub(crate) local: Option<IpAddr>,
    pub(crate) truncated: bool,
}

impl Received {
    /// The address a reply to it should leave from, for a socket bound to
    /// `bound`: the local destination when it is one a socket can bind to
    /// without more (an IPv4 one on an IPv6 socket in its mapped form; a
    /// link-local IPv6 one would need its interface, so the bound address
    /// is kept and the kernel picks), else `bound`.
    pub(crate) fn reply_from(&self, bound: IpAddr) -> IpAddr {
        match (self.local, bound) {
            (Some(IpAddr::V4(a)), IpAddr::V6(_)) => IpAddr::V6(a.to_ipv6_mapped()),
            (Some(IpAddr::V6(a)), IpAddr::V6(_)) if a.is_unicast_link_local() => bound,
            (Some(IpAddr::V6(a)), IpAddr::V4(_)) if a.to_ipv4_mapped().is_none() => bound,
            (Some(local), _) => local,
            (None, _) => bound,
        }
    }
}

/// recvmsg with IP_PKTINFO.
pub(crate) fn recv(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: sockaddr_storage and the cmsg buffer are plain data; zeroed is valid.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut control = [0u64; 16]; // 128 bytes, 8-aligned: room for either pktinfo
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>();
    // SAFETY: every pointer in `msg` refers to a live local or to `buf`, with the
    // lengths given; the kernel writes only within them.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    received(&msg, &name, n as usize).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// What a recvmsg of `n` bytes over `msg` (whose name is `name`) received.
pub(crate) fn received(
    msg: &libc::msghdr,
    name: &libc::sockaddr_storage,
    n: usize,
) -> Option<Received> {
    let peer = sockaddr_to_std(name)?;
    let mut local = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // `msg_controllen`; in_pktinfo is read unaligned from a cmsg of that type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_spec_dst.s_addr,
                ))));
            } else if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_PKTINFO
            {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    Some(Received {
        len: n,
        peer,
        local,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// A receive whose buffers live in one heap block, for an operation the kernel
/// completes later (io_uring RECVMSG): the block must stay put and unread until
/// the completion.
pub(crate) struct MsgIn {
    name: libc::sockaddr_storage,
    control: [u64; 16],
    iov: libc::iovec,
    msg: libc::msghdr,
    buf: Box<[u8]>,
}

impl MsgIn {
    /// A receive into a buffer of `size` bytes.
    pub(crate) fn new(size: usize) -> Box<Self> {
        // SAFETY: sockaddr_storage, iovec and msghdr are plain data; zeroed is valid.
        let mut m = Box::new(unsafe {
            MsgIn {
                name: zeroed(),
                control: [0; 16],
                iov: zeroed(),
                msg: zeroed(),
                buf: Box::new([]),
            }
        });
        m.buf = vec![0; size].into_boxed_slice();
        m
    }

    /// The msghdr for the next receive, pointing into this block.
    pub(crate) fn arm(&mut self) -> *mut libc::msghdr {
        self.iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        self.msg.msg_name = (&mut self.name as *mut libc::sockaddr_storage).cast();
        self.msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_control = self.control.as_mut_ptr().cast();
        self.msg.msg_controllen = size_of::<[u64; 16]>();
        self.msg.msg_flags = 0;
        &mut self.msg
    }

    /// What a completed receive of `n` bytes got, and its bytes.
    pub(crate) fn received(&self, n: usize) -> Option<(Received, &[u8])> {
        let r = received(&self.msg, &self.name, n)?;
        Some((r, self.buf.get(..n)?))
    }
}

/// The msghdr a multishot RECVMSG is armed with: room for the peer's address
/// (IPv4 or IPv6) in each provided buffer, no control data. The kernel reads it at every
/// completion, so it must stay put as long as the receive is armed.
pub(crate) fn multishot_template() -> Box<libc::msghdr> {
    // SAFETY: msghdr is plain data; zeroed is valid (no buffers named).
    let mut msg: Box<libc::msghdr> = Box::new(unsafe { zeroed() });
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg
}

/// The bytes of each provided buffer a multishot RECVMSG armed with
/// [`multishot_template`] keeps for the kernel's header and the address.
/// (struct io_uring_recvmsg_out is four u32s.)
pub(crate) const MULTISHOT_OVERHEAD: usize = 16 + size_of::<libc::sockaddr_in6>();

/// The sender and the datagram a multishot RECVMSG put in `buffer` (laid out
/// by `template`); the datagram is `None` when it was longer than the buffer.
/// `None` when the buffer does not hold the kernel's layout or a known address.
pub(crate) fn multishot_received<'b>(
    buffer: &'b [u8],
    template: &libc::msghdr,
) -> Option<(SocketAddr, Option<&'b [u8]>)> {
    let out = io_uring::types::RecvMsgOut::parse(buffer, template).ok()?;
    if out.is_name_data_truncated() {
        return None;
    }
    let name = out.name_data();
    // SAFETY: sockaddr_storage is plain data; zeroed is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let n = name.len().min(size_of::<libc::sockaddr_storage>());
    // SAFETY: at most size_of::<sockaddr_storage>() bytes into the storage.
    unsafe {
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            n,
        );
    }
    let peer = sockaddr_to_std(&storage)?;
    // The payload ends the buffer (the completion's length covers the
    // kernel's header, the address, the control data and the payload).
    let len = out.payload_data().len();
    let payload = (!out.is_payload_truncated()).then(|| buffer.get(buffer.len() - len..));
    Some((peer, payload.flatten()))
}

/// A datagram (train) to send whose msghdr, iovecs, headers, address and
/// control block live together: on the stack for a sendmsg now, or boxed for an
/// operation the kernel completes later (io_uring SENDMSG), which must not move
/// or change until its completion. The payload slices it points at are the
/// caller's to keep alive.
pub(crate) struct MsgOut {
    name: libc::sockaddr_storage,
    namelen: libc::socklen_t,
    heads: [[u8; 4]; MAX_BLOCKS],
    iov: [libc::iovec; 2 * MAX_BLOCKS],
    iovlen: usize,
    control: [u64; 4],
    segment: Option<u16>,
    msg: libc::msghdr,
    /// A control datagram's own copy (OACK, ERROR).
    own: Vec<u8>,
}

impl MsgOut {
    pub(crate) fn new() -> Self {
        // SAFETY: every field is plain data (or an empty Vec, set after); zeroed
        // is valid for the former.
        let mut m: MsgOut = unsafe {
            let mut m = std::mem::MaybeUninit::<MsgOut>::zeroed();
            std::ptr::write(std::ptr::addr_of_mut!((*m.as_mut_ptr()).own), Vec::new());
            m.assume_init()
        };
        m.iovlen = 0;
        m
    }

    /// (header, payload) pairs, at most [`MAX_BLOCKS`]; headers are copied
    /// (4 bytes each), payloads are pointed at. With `segment`, the kernel cuts
    /// the train into datagrams of that size (UDP GSO).
    pub(crate) fn set_parts(
        &mut self,
        peer: SocketAddr,
        parts: &[(&[u8], &[u8])],
        segment: Option<u16>,
    ) {
        (self.name, self.namelen) = std_to_sockaddr(peer);
        let parts = parts.get(..MAX_BLOCKS.min(parts.len())).unwrap_or(parts);
        for (i, (head, body)) in parts.iter().enumerate() {
            let n = head.len().min(4);
            self.heads[i][..n].copy_from_slice(&head[..n]);
            self.iov[2 * i] = libc::iovec {
                iov_base: self.heads[i].as_mut_ptr().cast(),
                iov_len: n,
            };
            self.iov[2 * i + 1] = libc::iovec {
                iov_base: body.as_ptr().cast_mut().cast(),
                iov_len: body.len(),
            };
        }
        self.iovlen = 2 * parts.len();
        self.segment = segment;
    }

    /// One datagram of `bytes`, copied.
    pub(crate) fn set_bytes(&mut self, peer: SocketAddr, bytes: &[u8]) {
        (self.name, self.namelen) = std_to_sockaddr(peer);
        self.own.clear();
        self.own.extend_from_slice(bytes);
        self.iov[0] = libc::iovec {
            iov_base: self.own.as_mut_ptr().cast(),
            iov_len: self.own.len(),
        };
        self.iovlen = 1;
        self.segment = None;
    }

    /// One frame of `parts`, copied, to a link-layer address (a packet
    /// socket's send).
    pub(crate) fn set_link(&mut self, to: &libc::sockaddr_ll, parts: &[&[u8]]) {
        // SAFETY: sockaddr_storage is plain data; zeroed is valid.
        self.name = unsafe { zeroed() };
        // SAFETY: a sockaddr_ll (20 bytes) fits in the storage (128), and both
        // are plain data.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (to as *const libc::sockaddr_ll).cast::<u8>(),
                (&mut self.name as *mut libc::sockaddr_storage).cast::<u8>(),
                size_of::<libc::sockaddr_ll>(),
            );
        }
        self.namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        self.own.clear();
        for p in parts {
            self.own.extend_from_slice(p);
        }
        self.iov[0] = libc::iovec {
            iov_base: self.own.as_mut_ptr().cast(),
            iov_len: self.own.len(),
        };
        self.iovlen = 1;
        self.segment = None;
    }

    /// Whether this train is cut by the kernel (GSO).
    pub(crate) fn is_gso(&self) -> bool {
        self.segment.is_some()
    }

    /// The msghdr, pointing into this value where it is now: valid until it
    /// moves or is set again.
    pub(crate) fn msghdr(&mut self) -> *const libc::msghdr {
        self.msg.msg_name = (&mut self.name as *mut libc::sockaddr_storage).cast();
        self.msg.msg_namelen = self.namelen;
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iovlen;
        self.msg.msg_control = std::ptr::null_mut();
        self.msg.msg_controllen = 0;
        if let Some(size) = self.segment {
            self.msg.msg_control = self.control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a pure size computation.
            self.msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
            // SAFETY: the control buffer (32 bytes, 8-aligned) holds one cmsg with
            // a u16, which is what msg_controllen says; the writes stay inside it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&self.msg);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
            }
        }
        &self.msg
    }
}

/// Sends `parts` (header, payload pairs) to `peer` as one sendmsg. With `segment`,
/// the kernel cuts the train into datagrams of that many bytes (UDP GSO; the last
/// may be shorter), so a whole window costs one syscall.
pub(crate) fn send_gso(
    sock: &impl AsRawFd,
    peer: SocketAddr,
    parts: &[(&[u8], &[u8])],
    segment: Option<u16>,
) -> io::Result<usize> {
    let mut m = MsgOut::new();
    m.set_parts(peer, parts, segment);
    // SAFETY: the msghdr points into `m` (not moved since) and at the borrowed
    // `parts`, which outlive the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), m.msghdr(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sends each (header, payload) pair as its own datagram with one sendmmsg;
/// returns how many datagrams went out.
pub(crate) fn send_each(
    sock: &impl AsRawFd,
    peer: SocketAddr,
    parts: &[(&[u8], &[u8])],
) -> io::Result<usize> {
    let parts = parts.get(..MAX_BLOCKS.min(parts.len())).unwrap_or(parts);
    let (mut name, namelen) = std_to_sockaddr(peer);
    let mut iov = iovecs(parts);
    // SAFETY: mmsghdr is plain data; zeroed is valid before the fields are set.
    let mut msgs: [libc::mmsghdr; MAX_BLOCKS] = unsafe { zeroed() };
    for (i, m) in msgs.iter_mut().enumerate().take(parts.len()) {
        m.msg_hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = namelen;
        m.msg_hdr.msg_iov = iov[2 * i..].as_mut_ptr();
        m.msg_hdr.msg_iovlen = 2;
    }
    // SAFETY: each mmsghdr points at live locals (`name`, `iov`) and the borrowed
    // `parts`; the count passed is the number initialised.
    let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), parts.len() as u32, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The MTU of the route to `peer`, learnt by connecting `sock` briefly (IP_MTU
/// needs a connected socket); the socket is left unconnected. For an IPv6
/// peer it is IPV6_MTU less the 20 bytes by which IPv6's header is longer
/// than IPv4's: the IPv4 MTU with the same room for UDP, which is what the
/// TFTP grant (`proto::tftp::HEADERS`) takes. Without it a 1,468-byte block
/// asked for on a 1,500-byte IPv6 link was granted and never fitted a frame.
pub(crate) fn path_mtu(sock: &UdpSocket, peer: SocketAddr) -> Option<u32> {
    sock.connect(peer).ok()?;
    let v6 = matches!(peer, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none());
    let (level, option, longer) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU, IPV6_HEADER_EXTRA)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU, 0)
    };
    let mut mtu: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `mtu` and `len` are live locals of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            option,
            (&mut mtu as *mut i32).cast(),
            &mut len,
        )
    };
    let mtu = mtu.saturating_sub(longer);
    // Dissolve the association (connect to AF_UNSPEC), so any source can reach us.
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is the documented way.
    let mut unspec: libc::sockaddr = unsafe { zeroed() };
    unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: `unspec` is a live local of the size passed.
    unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &unspec,
            size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    (rc == 0 && mtu > 0).then_some(mtu as u32)
}

/// IPv6's fixed header (40 bytes) less IPv4's (20).
const IPV6_HEADER_EXTRA: i32 = 20;

/// One iovec per header and per payload slice, in order. The iovecs point into
/// `parts`, which must outlive the syscall that reads them.
fn iovecs(parts: &[(&[u8], &[u8])]) -> [libc::iovec; 2 * MAX_BLOCKS] {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2 * MAX_BLOCKS];
    for (i, (head, body)) in parts.iter().take(MAX_BLOCKS).enumerate() {
        iov[2 * i] = libc::iovec {
            iov_base: head.as_ptr().cast_mut().cast(),
            iov_len: head.len(),
        };
        iov[2 * i + 1] = libc::iovec {
            iov_base: body.as_ptr().cast_mut().cast(),
            iov_len: body.len(),
        };
    }
    iov
}

fn std_to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let s = socket2::SockAddr::from(addr);
    // SAFETY: SockAddr holds a valid sockaddr_storage of length `s.len()`.
    let storage = unsafe { std::ptr::read(s.as_ptr().cast::<libc::sockaddr_storage>()) };
    (storage, s.len())
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Whether a failed GSO send says the kernel or device cannot segment UDP.
pub(crate) fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// A window's (header, payload) pairs, of which the first few are used.
pub(crate) type Parts<'a> = [(&'a [u8], &'a [u8]); MAX_BLOCKS];

/// The (header, payload) pairs of a TFTP window: `count` blocks from absolute
/// block `first` (at most [`MAX_BLOCKS`]), headers written into `heads`,
/// payloads borrowed from the transfer's mapping. Returns the pairs and how
/// many are used.
pub(crate) fn window_parts<'a>(
    transfer: &'a crate::proto::tftp::Transfer,
    first: u64,
    count: u16,
    heads: &'a mut [[u8; 4]; MAX_BLOCKS],
) -> (Parts<'a>, usize) {
    let payload = transfer.payload();
    let count = usize::from(count).min(MAX_BLOCKS);
    for (i, head) in heads.iter_mut().enumerate().take(count) {
        // The wire number wraps past 65535.
        *head = crate::wire::tftp::data_header((first + i as u64) as u16);
    }
    let mut parts: Parts<'a> = [(&[], &[]); MAX_BLOCKS];
    for (i, (part, head)) in parts.iter_mut().zip(heads.iter()).enumerate().take(count) {
        *part = (
            head,
            payload.get(transfer.block(first + i as u64)).unwrap_or(&[]),
        );
    }
    (parts, count)
}

/// A TFTP transfer's socket (its TID), bound to the address the request
/// reached, and the MTU of its path to `peer`, which the blocks must fit. In
/// single-port mode no socket is kept; the MTU is read all the same.
///
/// # Errors
/// No socket could be bound (descriptors exhausted, say).
pub(crate) fn transfer_socket(
    local: std::net::IpAddr,
    peer: SocketAddr,
    single_port: bool,
) -> io::Result<(Option<UdpSocket>, Option<u32>)> {
    if single_port {
        let mtu = UdpSocket::bind(SocketAddr::new(local, 0))
            .ok()
            .and_then(|s| path_mtu(&s, peer));
        return Ok((None, mtu));
    }
    let s = UdpSocket::bind(SocketAddr::new(local, 0))?;
    s.set_nonblocking(true)?;
    let mtu = path_mtu(&s, peer);
    Ok((Some(s), mtu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_socket_reports_ipv6_and_mapped_ipv4_destinations() {
        let rx = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        rx.set_only_v6(false).unwrap();
        rx.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
            .unwrap();
        let rx: UdpSocket = rx.into();
        enable_pktinfo6(&rx).unwrap();
        let port = rx.local_addr().unwrap().port();
        let mut buf = [0u8; 64];
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

        let tx6 = UdpSocket::bind("[::1]:0").unwrap();
        tx6.send_to(b"six", ("::1", port)).unwrap();
        let r = recv(&rx, &mut buf).unwrap();
        assert_eq!(r.local, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(r.reply_from(any6), IpAddr::V6(Ipv6Addr::LOCALHOST));

        let tx4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx4.send_to(b"four", ("127.0.0.1", port)).unwrap();
        let r = recv(&rx, &mut buf).unwrap();
        assert_eq!(r.local, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // Mapped, so that the transfer's socket is IPv6 like the peer's address.
        let from = r.reply_from(any6);
        assert_eq!(from, IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
        assert!(UdpSocket::bind(SocketAddr::new(from, 0)).is_ok());

        // A link-local destination would need its interface to bind to.
        let ll = Received {
            len: 1,
            peer: SocketAddr::from((Ipv6Addr::LOCALHOST, 1)),
            local: Some(IpAddr::V6("fe80::1".parse().unwrap())),
            truncated: false,
        };
        assert_eq!(ll.reply_from(any6), any6);
    }

    #[test]
    fn a_gso_window_arrives_as_separate_datagrams_with_the_local_address() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_pktinfo(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let blocks = [[1u8; 100], [2u8; 100], [3u8; 100]];
        let heads = [[0, 3, 0, 1], [0, 3, 0, 2], [0, 3, 0, 3]];
        let parts: Vec<(&[u8], &[u8])> = vec![
            (&heads[0], &blocks[0]),
            (&heads[1], &blocks[1]),
            (&heads[2], &blocks[2][..40]),
        ];
        let sent = send_gso(&tx, rx.local_addr().unwrap(), &parts, Some(104)).unwrap();
        assert_eq!(sent, 104 + 104 + 44);
        let mut buf = [0u8; 2048];
        for (i, want) in [104, 104, 44].into_iter().enumerate() {
            let r = recv(&rx, &mut buf).unwrap();
            assert_eq!(r.len, want);
            assert_eq!(buf[3], i as u8 + 1);
            assert_eq!(r.local, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            assert_eq!(r.peer, tx.local_addr().unwrap());
        }
        assert_eq!(send_each(&tx, rx.local_addr().unwrap(), &parts).unwrap(), 3);
        assert_eq!(recv(&rx, &mut buf).unwrap().len, 104);
    }

    #[test]
    fn the_path_mtu_of_loopback_is_read_and_the_socket_stays_unconnected() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mtu = path_mtu(&s, other.local_addr().unwrap()).unwrap();
        assert!((65_000..=65_536).contains(&mtu), "loopback MTU {mtu}");
        assert!(s.peer_addr().is_err(), "left unconnected");
        // IPv6: the same link leaves 20 bytes less for UDP.
        let s6 = UdpSocket::bind("[::1]:0").unwrap();
        let other6 = UdpSocket::bind("[::1]:0").unwrap();
        let mtu6 = path_mtu(&s6, other6.local_addr().unwrap()).unwrap();
        assert!(
            (64_980..=65_516).contains(&mtu6),
            "IPv6 loopback MTU less 20: {mtu6}"
        );
    }
}
