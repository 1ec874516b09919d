//! Link-layer (AF_PACKET) sockets, for DHCP to and from machines that have no
//! address yet; the one place such sockets are opened.
//!
//! - The DHCP server's sender ([`Link::sender`]): a reply to a client without
//!   an address leaves as a frame to its MAC (or to ff:ff:ff:ff:ff:ff), not as
//!   a datagram to 255.255.255.255: the IP path needs a neighbour entry even for
//!   broadcast, and a full ARP table (a large rack, see tuning/60-rackboot.conf)
//!   made the kernel drop those sends while reporting success. The kernel
//!   writes the Ethernet header; rackboot writes IPv4 and UDP.
//! - The storm's link ([`Link::open`], `rackboot storm --interface`): virtual
//!   machines have no address and each its own MAC, so their DHCP leaves as
//!   whole frames written from that MAC, and replies (broadcast, or unicast to
//!   a MAC the host does not own) are read off the link before the IP stack
//!   would drop them. A socket filter passes only IPv4 UDP to port 68, so a
//!   storm's TFTP and HTTP bytes never cross into this socket. Its IPv6
//!   machines have a second one ([`Link::open6`]): DHCPv6 to port 546 and the
//!   neighbor solicitations for their link-local addresses, which they
//!   answer, else no server's kernel could send them a reply.

use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::wire::ipv4;

const ETH_HEADER: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// A packet socket on one interface.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    interface: String,
}

/// "IPv4, UDP, not a fragment, destination port 68" as classic BPF.
const FILTER: [libc::sock_filter; 11] = [
    op(0x28, 0, 0, 12),     // ldh [12]
    op(0x15, 0, 8, 0x0800), // jeq IPv4, else drop
    op(0x30, 0, 0, 23),     // ldb [23]
    op(0x15, 0, 6, 17),     // jeq UDP, else drop
    op(0x28, 0, 0, 20),     // ldh [20]
    op(0x45, 4, 0, 0x1fff), // jset fragment offset: drop
    op(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf)
    op(0x48, 0, 0, 16),     // ldh [x+16]: UDP destination port
    op(0x15, 0, 1, 68),     // jeq 68, else drop
    op(0x06, 0, 0, 0xffff), // accept
    op(0x06, 0, 0, 0),      // drop
];

/// "IPv6, and UDP to port 546 or an ICMPv6 neighbor solicitation" (no
/// extension headers: neither DHCPv6 replies nor solicitations carry them).
const FILTER6: [libc::sock_filter; 11] = [
    op(0x28, 0, 0, 12),     // ldh [12]
    op(0x15, 0, 8, 0x86dd), // jeq IPv6, else drop
    op(0x30, 0, 0, 20),     // ldb [20]: next header
    op(0x15, 0, 2, 17),     // jeq UDP, else try ICMPv6
    op(0x28, 0, 0, 56),     // ldh [56]: UDP destination port
    op(0x15, 3, 4, 546),    // jeq 546: accept, else drop
    op(0x15, 0, 3, 58),     // jeq ICMPv6, else drop
    op(0x30, 0, 0, 54),     // ldb [54]: ICMPv6 type
    op(0x15, 0, 1, 135),    // jeq neighbor solicitation, else drop
    op(0x06, 0, 0, 0xffff), // accept
    op(0x06, 0, 0, 0),      // drop
];

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn last_error(op: &str, interface: &str) -> String {
    let e = std::io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            " (raw frames need root or CAP_NET_RAW: run as root, or without --interface for the self mode)"
        }
        Some(libc::ENODEV) => " (no such interface: `ip link` lists them)",
        Some(libc::ENETDOWN) => " (the interface is down: `ip link set IF up`)",
        _ => "",
    };
    format!("{op} on {interface}: {e}{hint}")
}

/// The link-layer address of `mac` on interface `ifindex`, for IPv4 frames.
pub(crate) fn address(ifindex: i32, mac: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; zeroed is valid before the fields are set.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_IP.to_be();
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&mac);
    to
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Link {
    /// A send-only packet socket for IPv4 frames on interface `ifindex`
    /// (protocol 0: the kernel delivers it nothing), named `interface` in
    /// messages.
    ///
    /// # Errors
    /// The process may not open raw sockets (needs CAP_NET_RAW).
    pub fn sender(interface: &str) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            interface: interface.to_owned(),
        })
    }

    /// Another descriptor on the same socket.
    ///
    /// # Errors
    /// The process is out of descriptors.
    pub(crate) fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Sends `parts` (an IPv4 packet) as one frame to `mac` on `ifindex`.
    ///
    /// # Errors
    /// The kernel refused the frame.
    pub fn send_to(&self, ifindex: i32, mac: [u8; 6], parts: &[&[u8]]) -> io::Result<()> {
        let to = address(ifindex, mac);
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 4];
        let n = parts.len().min(iov.len());
        for (v, p) in iov.iter_mut().zip(&parts[..n]) {
            *v = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
        }
        // SAFETY: msghdr is plain data; zeroed is valid before the fields are set.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&to as *const libc::sockaddr_ll).cast_mut().cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n;
        // SAFETY: `msg` points at `to`, `iov` and the borrowed parts, all alive
        // for the call; the kernel only reads them.
        if unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A nonblocking packet socket bound to `interface`, filtered to DHCP
    /// replies, in promiscuous mode (a unicast reply goes to a MAC that is not
    /// the interface's).
    ///
    /// # Errors
    /// The interface does not exist, or the process may not open raw sockets;
    /// the message says which and what to do.
    pub fn open(interface: &str) -> Result<Self, String> {
        Self::open_filtered(interface, ETH_P_IP, &FILTER, "the DHCP filter")
    }

    /// [`Self::open`] for the storm's IPv6 machines: frames for DHCPv6
    /// clients (UDP to port 546) and neighbor solicitations, read whole
    /// ([`Self::recv_frame`]); frames are sent whole ([`Self::send_frame`]).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open6(interface: &str) -> Result<Self, String> {
        Self::open_filtered(interface, ETH_P_IPV6, &FILTER6, "the DHCPv6 filter")
    }

    fn open_filtered(
        interface: &str,
        protocol: u16,
        filter: &'static [libc::sock_filter],
        what: &str,
    ) -> Result<Self, String> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| format!("interface name {interface:?} holds a NUL byte"))?;
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(last_error("find the interface", interface));
        }
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(protocol.to_be()),
            )
        };
        if raw < 0 {
            return Err(last_error("open a packet socket", interface));
        }
        // SAFETY: `raw` is a fresh descriptor this function owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // The kernel copies the program (which points at `filter`) during the call.
        let rc = set_option(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &program);
        if rc.is_err() {
            return Err(last_error(&format!("attach {what}"), interface));
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error("bind the packet socket", interface));
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: index as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        let rc = set_option(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq);
        if rc.is_err() {
            return Err(last_error("enter promiscuous mode", interface));
        }
        // A rack's OFFERs arrive in one burst: with the default buffer the
        // socket drops most of a thousand, and the machines retransmit as if
        // the server had not answered.
        for (force, plain, bytes) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 64 << 20),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, 8 << 20),
        ] {
            let level = libc::SOL_SOCKET;
            if set_option(&fd, level, force, &bytes).is_err() {
                let _ = set_option(&fd, level, plain, &bytes);
            }
        }
        Ok(Self {
            fd,
            interface: interface.to_owned(),
        })
    }

    /// The interface's name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Its descriptor, for the poller.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Broadcasts `payload` as a DHCP client with no address: from `mac`,
    /// 0.0.0.0:68 to 255.255.255.255:67.
    ///
    /// # Errors
    /// The kernel refused the frame (a full queue shows as `WouldBlock`).
    pub fn send_dhcp(
        &self,
        mac: [u8; 6],
        payload: &[u8],
        frame: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        frame.clear();
        frame.extend_from_slice(&[0xff; 6]);
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
        frame.extend_from_slice(&ipv4::udp_headers(
            Ipv4Addr::UNSPECIFIED,
            68,
            Ipv4Addr::BROADCAST,
            67,
            payload,
        ));
        frame.extend_from_slice(payload);
        // SAFETY: `frame` is valid for reads of its length during the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `frame`, a whole Ethernet frame.
    ///
    /// # Errors
    /// The kernel refused the frame (a full queue shows as `WouldBlock`).
    pub fn send_frame(&self, frame: &[u8]) -> std::io::Result<()> {
        // SAFETY: `frame` is valid for reads of its length during the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next whole frame the filter passed, written into `buf`: its
    /// length, or `None` when no frame waits.
    ///
    /// # Errors
    /// The socket failed.
    pub fn recv_frame(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is valid for writes of its length during the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => return Ok(None),
                std::io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
    }

    /// The next frame's DHCP payload, written into `buf`: its range there, or
    /// `None` when no frame waits. Frames the filter let through that are not
    /// well-formed IPv4/UDP are skipped.
    ///
    /// # Errors
    /// The socket failed.
    pub fn recv_dhcp(&self, buf: &mut [u8]) -> std::io::Result<Option<std::ops::Range<usize>>> {
        while let Some(n) = self.recv_frame(buf)? {
            if let Some(range) = udp_payload(&buf[..n]) {
                return Ok(Some(range));
            }
        }
        Ok(None)
    }
}

/// setsockopt(2) with `value` as the option's plain-data argument.
fn set_option<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: `value` is a valid, initialised T for the call to read, and the
    // length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where the UDP payload of an Ethernet + IPv4 + UDP frame lies.
fn udp_payload(frame: &[u8]) -> Option<std::ops::Range<usize>> {
    let ip = frame.get(ETH_HEADER..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let udp = ip.get(ihl..total.min(ip.len()))?;
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    let start = ETH_HEADER + ihl + 8;
    let end = ETH_HEADER + ihl + len.min(udp.len());
    (start <= end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_of_a_frame_is_found_and_short_frames_are_not() {
        let payload = b"dhcp reply";
        let mut frame = vec![0u8; ETH_HEADER];
        frame[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        frame.extend_from_slice(&ipv4::udp_headers(
            Ipv4Addr::new(10, 0, 0, 1),
            67,
            Ipv4Addr::BROADCAST,
            68,
            payload,
        ));
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&[0; 6]); // Ethernet padding
        let r = udp_payload(&frame).unwrap();
        assert_eq!(&frame[r], payload);
        assert_eq!(udp_payload(&frame[..20]), None);
    }
}
