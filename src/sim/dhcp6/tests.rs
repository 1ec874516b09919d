//! The simulator's DHCPv6 clients against the real DHCPv6 engine, on a
//! virtual clock: each identity ends with the address and boot URL the
//! policy gives it, after the waits its schedule makes.

use std::net::SocketAddrV6;

use super::*;
use crate::lease::Table6;
use crate::proto::dhcp6::{duid_ll, Engine, Input, Settings, Subnet};
use crate::testutil;
use crate::wire::dhcp6::CLIENT_PORT;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 7];
const UUID: [u8; 16] = [0x42; 16];

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn engine(preference: u8, rapid_commit: bool, server: u8) -> Engine {
    let settings = Settings {
        duid: duid_ll([0x52, 0x54, 0, 0, 0, server]),
        subnets: vec![Subnet {
            prefix: ip("fd00:9::"),
            len: 64,
            ranges: vec![(ip("fd00:9::100"), ip("fd00:9::1ff"))],
            preferred: 3000,
            valid: 3600,
            dns: Vec::new(),
            domains: Vec::new(),
        }],
        preference,
        rapid_commit,
        http_port: 8080,
        ..Settings::default()
    };
    Engine::new(settings, Table6::default(), testutil::t0(), 1_800_000_000)
}

/// Plays `client` against `servers` until it ends: the event and the virtual
/// time it took.
fn play(t0: Instant, mut client: Client, servers: &mut [Engine]) -> (Event, Duration) {
    let mut now = t0;
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    for _ in 0..1000 {
        while let Some(len) = client.poll_transmit(now, &mut tx) {
            for engine in servers.iter_mut() {
                let input = Input {
                    bytes: &tx[..len],
                    peer: SocketAddrV6::new(link_local(MAC), CLIENT_PORT, 0, 2),
                    local: ip("fd00:9::1"),
                };
                if let Ok(r) = engine.handle(now, input, &mut rx) {
                    client.handle(now, &rx[..r.len]).unwrap();
                }
            }
        }
        if let Some(e) = client.poll_event() {
            return (e, now - t0);
        }
        now = client.poll_timeout().expect("a live client has a timer");
        client.handle_timeout(now);
    }
    panic!("the client never ended");
}

#[test]
fn edk2_is_bound_with_a_tftp_url_and_ipxe_at_once_by_rapid_commit() {
    let t0 = testutil::t0();
    let c = Client::new(t0, Identity::Edk2Pxe, MAC, UUID, 0x0102_0304);
    let (e, took) = play(t0, c, &mut [engine(255, true, 1)]);
    assert_eq!(
        e,
        Event::Bound {
            ip: ip("fd00:9::100"),
            url: "tftp://[fd00:9::1]/ipxe.efi".into(),
            retries: 0
        }
    );
    assert_eq!(took, Duration::ZERO, "preference 255 is taken at once");
    let c = Client::new(t0, Identity::IpxeEfi, MAC, UUID, 7);
    let (e, _) = play(t0, c, &mut [engine(255, true, 1)]);
    let Event::Bound { url, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(url, "http://[fd00:9::1]:8080/boot.ipxe");
    let c = Client::new(t0, Identity::UefiHttp, MAC, UUID, 7);
    let (e, _) = play(t0, c, &mut [engine(255, true, 1)]);
    assert!(
        matches!(&e, Event::Bound { url, .. } if url == "http://[fd00:9::1]:8080/ipxe.efi"),
        "{e:?}"
    );
    // The installer: an address, no boot file.
    let c = Client::new(t0, Identity::Installer, MAC, UUID, 7);
    let (e, _) = play(t0, c, &mut [engine(255, true, 1)]);
    assert!(
        matches!(&e, Event::Bound { url, .. } if url.is_empty()),
        "{e:?}"
    );
}

#[test]
fn below_preference_255_the_client_waits_and_takes_the_best() {
    let t0 = testutil::t0();
    let c = Client::new(t0, Identity::IpxeEfi, MAC, UUID, 9);
    // Without Rapid Commit the engines advertise; the second is preferred.
    let mut servers = [engine(10, false, 1), engine(20, false, 2)];
    let (e, took) = play(t0, c, &mut servers);
    assert!(matches!(e, Event::Bound { retries: 0, .. }), "{e:?}");
    assert_eq!(
        took,
        Duration::from_secs(1),
        "it collects for its first wait"
    );
    assert_eq!(servers[0].table().len(), 0);
    assert_eq!(servers[1].table().len(), 1);
}

#[test]
fn with_no_server_the_schedule_runs_out_and_names_the_step() {
    let t0 = testutil::t0();
    let c = Client::new(t0, Identity::Edk2Pxe, MAC, UUID, 9);
    let (e, took) = play(t0, c, &mut []);
    assert_eq!(e, Event::Failed("no ADVERTISE to the SOLICIT"));
    assert_eq!(took, Duration::from_secs(4 + 8 + 16 + 32));
}

#[test]
fn replies_for_another_client_are_ignored_and_garbage_is_an_error() {
    let t0 = testutil::t0();
    let mut c = Client::new(t0, Identity::Edk2Pxe, MAC, UUID, 9);
    let mut tx = [0u8; 1500];
    let len = c.poll_transmit(t0, &mut tx).unwrap();
    let mut other = Client::new(t0, Identity::Edk2Pxe, [2, 0, 0, 0, 0, 8], [7; 16], 9);
    let olen = other.poll_transmit(t0, &mut tx[len..]).unwrap();
    let mut e = engine(255, true, 1);
    let mut rx = [0u8; 1500];
    let input = Input {
        bytes: &tx[len..len + olen],
        peer: SocketAddrV6::new(link_local(MAC), CLIENT_PORT, 0, 2),
        local: ip("fd00:9::1"),
    };
    let r = e.handle(t0, input, &mut rx).unwrap();
    c.handle(t0, &rx[..r.len]).unwrap();
    assert_eq!(c.poll_transmit(t0, &mut tx), None, "not its ADVERTISE");
    assert!(c.handle(t0, &[1, 2]).is_err());
}

#[test]
fn the_link_local_address_is_the_modified_eui64() {
    assert_eq!(
        link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        ip("fe80::5054:ff:fe12:3456")
    );
}

#[test]
fn an_advertise_after_the_first_wait_is_taken_at_once() {
    // The first SOLICIT is lost; the second is answered without a
    // preference of 255: past the first wait the client requests at once,
    // not at its next retransmission.
    let t0 = testutil::t0();
    let mut c = Client::new(t0, Identity::Edk2Pxe, MAC, UUID, 9);
    let mut e = engine(10, false, 1);
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    assert!(c.poll_transmit(t0, &mut tx).is_some(), "lost on the way");
    let now = c.poll_timeout().unwrap();
    assert_eq!(now - t0, Duration::from_secs(4));
    c.handle_timeout(now);
    let mut at = now;
    for _ in 0..4 {
        let Some(len) = c.poll_transmit(at, &mut tx) else {
            break;
        };
        let input = Input {
            bytes: &tx[..len],
            peer: SocketAddrV6::new(link_local(MAC), CLIENT_PORT, 0, 2),
            local: ip("fd00:9::1"),
        };
        let r = e.handle(at, input, &mut rx).unwrap();
        c.handle(at, &rx[..r.len]).unwrap();
        at += Duration::from_millis(1);
    }
    assert!(
        matches!(c.poll_event(), Some(Event::Bound { retries: 1, .. })),
        "bound 4 s in, by the second SOLICIT's ADVERTISE"
    );
}

#[test]
fn each_step_of_a_machine_has_its_own_transaction_id() {
    // The machine moves its xid on by 0x0100_0000 per step; the DHCPv6 id
    // (24 bits) must change with it.
    let t0 = testutil::t0();
    let ids: Vec<[u8; 3]> = (0..3u32)
        .map(|step| {
            let mut c = Client::new(t0, Identity::IpxeEfi, MAC, UUID, 0x00ab_cdef + (step << 24));
            let mut tx = [0u8; 1500];
            c.poll_transmit(t0, &mut tx).unwrap();
            [tx[1], tx[2], tx[3]]
        })
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}
