//! Whole Ethernet frames of IPv6 machines that live only on a packet socket
//! (`rackboot storm --interface` playing IPv6 machines): their DHCPv6 from
//! their link-local address, and the neighbor advertisements that let a
//! server's kernel reach that address (RFC 4861 §7.2.4). Framed with
//! `pnet_packet`; read back with the same.

use std::net::Ipv6Addr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
    NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types, MutableIcmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::udp::{self, MutableUdpPacket, UdpPacket};
use pnet_packet::Packet;

use crate::wire::dhcp6::{ALL_SERVERS, CLIENT_PORT, SERVER_PORT};

const ETH: usize = 14;
const IP6: usize = 40;
const UDP: usize = 8;
/// A neighbor advertisement with its target link-layer address option.
const NA: usize = 32;

/// What a frame read off the link is to the machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame6 {
    /// A datagram for a DHCPv6 client (port 546) on the machine of MAC
    /// `to`: its payload's range in the frame.
    Dhcp {
        /// The destination MAC.
        to: [u8; 6],
        /// The payload.
        payload: std::ops::Range<usize>,
    },
    /// A neighbor solicitation for `target`, from `from_mac` (and address
    /// `from`; unspecified in duplicate address detection).
    Solicit {
        /// The address asked about.
        target: Ipv6Addr,
        /// The asker's MAC.
        from_mac: [u8; 6],
        /// The asker's address.
        from: Ipv6Addr,
    },
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464 §7).
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The addresses of one frame's Ethernet and IPv6 headers.
struct Ends {
    from_mac: [u8; 6],
    to_mac: [u8; 6],
    from: Ipv6Addr,
    to: Ipv6Addr,
}

/// Sizes `frame` for `body` bytes after the Ethernet and IPv6 headers,
/// writes those headers, and returns the body to fill.
fn headers<'f>(
    frame: &'f mut Vec<u8>,
    ends: &Ends,
    next: pnet_packet::ip::IpNextHeaderProtocol,
    hop_limit: u8,
    body: usize,
) -> &'f mut [u8] {
    frame.clear();
    frame.resize(ETH + IP6 + body, 0);
    let (eth, rest) = frame.split_at_mut(ETH);
    if let Some(mut e) = MutableEthernetPacket::new(eth) {
        e.set_destination(ends.to_mac.into());
        e.set_source(ends.from_mac.into());
        e.set_ethertype(EtherTypes::Ipv6);
    }
    let (ip, body) = rest.split_at_mut(IP6);
    if let Some(mut p) = MutableIpv6Packet::new(ip) {
        p.set_version(6);
        p.set_payload_length(body.len() as u16);
        p.set_next_header(next);
        p.set_hop_limit(hop_limit);
        p.set_source(ends.from);
        p.set_destination(ends.to);
    }
    body
}

/// Writes into `frame` a DHCPv6 message `payload` from `mac` (its
/// link-local address `src`, port 546) to All_DHCP_Relay_Agents_and_Servers.
pub fn dhcp6_frame(mac: [u8; 6], src: Ipv6Addr, payload: &[u8], frame: &mut Vec<u8>) {
    let udp_len = UDP + payload.len();
    let ends = Ends {
        from_mac: mac,
        to_mac: multicast_mac(ALL_SERVERS),
        from: src,
        to: ALL_SERVERS,
    };
    // One hop: a client's multicast stays on its link (relays forward it).
    let datagram = headers(frame, &ends, IpNextHeaderProtocols::Udp, 1, udp_len);
    if let Some(mut u) = MutableUdpPacket::new(datagram) {
        u.set_source(CLIENT_PORT);
        u.set_destination(SERVER_PORT);
        u.set_length(udp_len as u16);
        u.set_payload(payload);
        // Over IPv6 a zero checksum means none, which receivers drop
        // (RFC 8200 §8.1): a sum of zero is sent as its complement.
        let sum = udp::ipv6_checksum(&u.to_immutable(), &src, &ALL_SERVERS);
        u.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

/// Writes into `frame` the neighbor advertisement machine `mac` (owning
/// `target`) sends in answer to a solicitation from `to_mac`, `to`.
pub fn neighbor_advert_frame(
    mac: [u8; 6],
    target: Ipv6Addr,
    to_mac: [u8; 6],
    to: Ipv6Addr,
    frame: &mut Vec<u8>,
) {
    // A solicitation from the unspecified address (duplicate address
    // detection) is answered to all nodes, not solicited (§7.2.4).
    let (dst, dst_mac, flags) = if to.is_unspecified() {
        let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (all, multicast_mac(all), NeighborAdvertFlags::Override)
    } else {
        (
            to,
            to_mac,
            NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override,
        )
    };
    let ends = Ends {
        from_mac: mac,
        to_mac: dst_mac,
        from: target,
        to: dst,
    };
    // Neighbor discovery is only believed at hop limit 255 (§7.1.2).
    let message = headers(frame, &ends, IpNextHeaderProtocols::Icmpv6, 255, NA);
    if let Some(mut na) = MutableNeighborAdvertPacket::new(message) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_flags(flags);
        na.set_target_addr(target);
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: mac.to_vec(),
        }]);
    }
    if let Some(mut m) = MutableIcmpv6Packet::new(message) {
        let sum = icmpv6::checksum(&m.to_immutable(), &target, &dst);
        m.set_checksum(sum);
    }
}

/// What `frame` is to the storm's IPv6 machines, if anything: a DHCPv6
/// client datagram, or a neighbor solicitation at hop limit 255 with a
/// good checksum; everything else is `None`.
pub fn read_frame6(frame: &[u8]) -> Option<Frame6> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new(eth.payload())?;
    if ip.get_version() != 6 {
        return None;
    }
    let len = usize::from(ip.get_payload_length());
    let body = frame.get(ETH + IP6..ETH + IP6 + len)?;
    match ip.get_next_header() {
        IpNextHeaderProtocols::Udp => {
            let u = UdpPacket::new(body)?;
            let ulen = usize::from(u.get_length());
            if u.get_destination() != CLIENT_PORT || !(UDP..=body.len()).contains(&ulen) {
                return None;
            }
            // The UDP checksum is not checked: a sender on the same host
            // (a veth peer) leaves it to offload, so a packet socket reads
            // it partial; the DHCPv6 view checks what it reads.
            let start = ETH + IP6 + UDP;
            Some(Frame6::Dhcp {
                to: eth.get_destination().octets(),
                payload: start..ETH + IP6 + ulen,
            })
        }
        IpNextHeaderProtocols::Icmpv6 => {
            let m = Icmpv6Packet::new(body)?;
            if m.get_icmpv6_type() != Icmpv6Types::NeighborSolicit
                || ip.get_hop_limit() != 255
                || body.len() < 24
                || icmpv6::checksum(&m, &ip.get_source(), &ip.get_destination()) != m.get_checksum()
            {
                return None;
            }
            // The target is bytes 8..24; options are not needed (the
            // Ethernet source is the asker's MAC), so pnet's option walk,
            // which overflows on long options, is never run.
            let ns = NeighborSolicitPacket::new(&body[..24])?;
            Some(Frame6::Solicit {
                target: ns.get_target_addr(),
                from_mac: eth.get_source().octets(),
                from: ip.get_source(),
            })
        }
        _ => None,
    }
}

/// The MAC of a modified-EUI-64 link-local address (the inverse of the
/// machines' `fe80::` addresses), if it is one.
pub fn eui64_mac(ip: Ipv6Addr) -> Option<[u8; 6]> {
    let o = ip.octets();
    if o[..8] != [0xfe, 0x80, 0, 0, 0, 0, 0, 0] || o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::dhcp6::link_local;

    const MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 9];

    #[test]
    fn a_dhcp6_frame_reads_back_and_its_checksum_holds() {
        let src = link_local(MAC);
        let mut f = Vec::new();
        dhcp6_frame(MAC, src, b"odd-length payload", &mut f);
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 1, 0, 2]);
        let u = UdpPacket::new(&f[ETH + IP6..]).unwrap();
        assert_eq!(u.get_checksum(), udp::ipv6_checksum(&u, &src, &ALL_SERVERS));
        // A reply to the machine reads as DHCP for its MAC: the same frame
        // with the ports and the Ethernet destination turned round.
        let mut r = f.clone();
        r[..6].copy_from_slice(&MAC);
        r[ETH + IP6..ETH + IP6 + 4].copy_from_slice(&[2, 0x23, 2, 0x22]);
        let mut u = MutableUdpPacket::new(&mut r[ETH + IP6..]).unwrap();
        u.set_checksum(0);
        let Some(Frame6::Dhcp { to, payload }) = read_frame6(&r) else {
            panic!("not read")
        };
        assert_eq!((to, &r[payload]), (MAC, &b"odd-length payload"[..]));
        // A frame to the servers' port is not for a machine; nor is a
        // truncated one.
        assert_eq!(read_frame6(&f), None);
        assert_eq!(read_frame6(&r[..50]), None);
    }

    #[test]
    fn a_solicitation_is_answered_with_the_machines_mac() {
        let target = link_local(MAC);
        let asker = "fe80::1".parse().unwrap();
        let mut na = Vec::new();
        neighbor_advert_frame(MAC, target, [0x52, 0, 0, 0, 0, 1], asker, &mut na);
        assert_eq!(na.len(), ETH + IP6 + NA);
        let m = Icmpv6Packet::new(&na[ETH + IP6..]).unwrap();
        assert_eq!(m.get_icmpv6_type(), Icmpv6Types::NeighborAdvert);
        assert_eq!(m.get_checksum(), icmpv6::checksum(&m, &target, &asker));
        assert_eq!(&na[ETH + IP6 + 4], &0x60, "solicited and override");
        assert_eq!(&na[na.len() - 6..], &MAC);
        // The same bytes as a solicitation (type 135) read as one.
        let mut ns = na.clone();
        ns[ETH + IP6] = 135;
        let mut m = MutableIcmpv6Packet::new(&mut ns[ETH + IP6..]).unwrap();
        let sum = icmpv6::checksum(&m.to_immutable(), &target, &asker);
        m.set_checksum(sum);
        assert_eq!(
            read_frame6(&ns),
            Some(Frame6::Solicit {
                target,
                from_mac: MAC,
                from: target
            })
        );
        assert_eq!(eui64_mac(target), Some(MAC));
        assert_eq!(eui64_mac("fd00::1".parse().unwrap()), None);
    }
}
