//! The IPv4 + UDP headers of a datagram sent as a raw link-layer frame: the DHCP
//! server reaches a client that has no address yet by writing to its MAC
//! directly (RFC 2131 §4.1), so it builds these headers itself. Also the ICMP
//! echo (RFC 792) of a conflict probe, sent and read on a raw socket.

use std::net::Ipv4Addr;

use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{checksum, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::udp::MutableUdpPacket;

/// Bytes of an IPv4 header without options plus a UDP header.
pub const HEADERS: usize = 28;

/// Writes the IPv4 and UDP headers for `payload` from `src:sport` to `dst:dport`,
/// with both checksums. The fields are set through `pnet_packet`'s views; the
/// UDP checksum is summed here, because the payload is not behind the headers
/// in one buffer (it goes out as its own iovec) and pnet's sum over a separate
/// payload leaves out the last byte of an odd-length one.
pub fn udp_headers(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    payload: &[u8],
) -> [u8; HEADERS] {
    let mut h = [0u8; HEADERS];
    let total = (HEADERS + payload.len()) as u16;
    let udp_len = (8 + payload.len()) as u16;
    let (ip, udp) = h.split_at_mut(20);
    if let Some(mut p) = MutableIpv4Packet::new(ip) {
        p.set_version(4);
        p.set_header_length(5);
        p.set_total_length(total);
        p.set_flags(Ipv4Flags::DontFragment);
        p.set_ttl(64);
        p.set_next_level_protocol(IpNextHeaderProtocols::Udp);
        p.set_source(src);
        p.set_destination(dst);
        let sum = checksum(&p.to_immutable());
        p.set_checksum(sum);
    }
    if let Some(mut u) = MutableUdpPacket::new(udp) {
        u.set_source(sport);
        u.set_destination(dport);
        u.set_length(udp_len);
    }
    // Pseudo-header, UDP header, payload (RFC 768).
    let mut acc = sum(&h[12..20], 0) + 17 + u32::from(udp_len);
    acc = sum(&h[20..26], acc);
    acc = sum(payload, acc);
    let udp_sum = match !fold(acc) {
        0 => 0xffff,
        s => s,
    };
    h[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    h
}

/// Bytes of the ICMP echo request a probe sends (header and an 8-byte payload).
pub const ECHO_LEN: usize = 16;

/// An ICMP echo request with `id` and `seq`.
pub fn echo_request(id: u16, seq: u16) -> [u8; ECHO_LEN] {
    let mut b = [0u8; ECHO_LEN];
    b[0] = 8; // echo request
    b[4..6].copy_from_slice(&id.to_be_bytes());
    b[6..8].copy_from_slice(&seq.to_be_bytes());
    b[8..].copy_from_slice(b"rackboot");
    let c = !fold(sum(&b, 0));
    b[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

/// The sender and id of an ICMP echo reply, from a datagram as a raw socket
/// reads it (IPv4 header first); `None` for anything else.
pub fn echo_reply(datagram: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let (&vihl, _) = datagram.split_first()?;
    if vihl >> 4 != 4 || datagram.get(9) != Some(&1) {
        return None; // not IPv4, or not ICMP
    }
    let src: [u8; 4] = datagram.get(12..16)?.try_into().ok()?;
    let icmp = datagram.get(usize::from(vihl & 0x0f) * 4..)?;
    if icmp.first() != Some(&0) {
        return None; // not an echo reply
    }
    let id: [u8; 2] = icmp.get(4..6)?.try_into().ok()?;
    Some((Ipv4Addr::from(src), u16::from_be_bytes(id)))
}

fn sum(b: &[u8], mut acc: u32) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    // Fold early so that large payloads never overflow.
    (acc & 0xffff) + (acc >> 16)
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_checksums_and_its_reply_is_recognised() {
        let req = echo_request(0x1234, 7);
        assert_eq!(fold(sum(&req, 0)), 0xffff);
        // The reply as a raw socket reads it: IPv4 header (ICMP, from
        // 10.0.0.5), then the echo with type 0 and the same id.
        let mut d = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 5, 10, 0, 0, 1,
        ];
        d.extend_from_slice(&req);
        d[20] = 0;
        assert_eq!(echo_reply(&d), Some((Ipv4Addr::new(10, 0, 0, 5), 0x1234)));
        d[20] = 8; // an echo request is not a reply
        assert_eq!(echo_reply(&d), None);
        assert_eq!(echo_reply(&d[..22]), None);
        assert_eq!(echo_reply(&[0x4f; 30]), None);
    }

    #[test]
    fn checksums_verify_to_zero() {
        let payload = b"hello, odd length";
        let h = udp_headers(
            Ipv4Addr::new(10, 0, 0, 1),
            67,
            Ipv4Addr::new(10, 0, 0, 99),
            68,
            payload,
        );
        assert_eq!(fold(sum(&h[..20], 0)), 0xffff);
        // Version 4 and 5 words, don't fragment, TTL 64, UDP, the ports.
        assert_eq!((h[0], h[6], h[8], h[9]), (0x45, 0x40, 64, 17));
        assert_eq!(&h[12..20], &[10, 0, 0, 1, 10, 0, 0, 99]);
        assert_eq!(&h[20..24], &[0, 67, 0, 68]);
        let mut acc = sum(&h[12..20], 0) + 17 + u32::from(u16::from_be_bytes([h[24], h[25]]));
        acc = sum(&h[20..28], acc);
        acc = sum(payload, acc);
        assert_eq!(fold(acc), 0xffff);
        assert_eq!(
            u16::from_be_bytes([h[2], h[3]]) as usize,
            28 + payload.len()
        );
    }
}
