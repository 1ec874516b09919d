//! The simulator's DHCP clients against the real engine, on a virtual clock:
//! each firmware identity ends with what the boot policy gives it, after the
//! waits the real firmware makes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::*;
use crate::proto::dhcp::{policy, Engine, Input, Mode, Outcome};
use crate::testutil;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn server(mode: Mode, rules: Vec<policy::Rule>, address: Ipv4Addr) -> (Engine, Ipv4Addr) {
    (testutil::dhcp_engine(mode, rules), address)
}

/// Plays `client` (made at `t0`) against `servers` (each with its address) on
/// a virtual clock until it ends; the event and the virtual seconds it took.
fn play(t0: Instant, mut client: Client, servers: &mut [(Engine, Ipv4Addr)]) -> (Event, Duration) {
    let mut now = t0;
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    for _ in 0..1000 {
        while let Some(len) = client.poll_transmit(now, &mut tx) {
            for (engine, addr) in servers.iter_mut() {
                let input = Input {
                    bytes: &tx[..len],
                    server: *addr,
                    port: 67,
                    peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                };
                if let Ok(Outcome::Reply(r)) = engine.handle(now, input, &mut rx) {
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

fn mac(last: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0x77, 0, last]
}

fn bound(e: Event) -> (Offer, u32) {
    match e {
        Event::Bound { lease, retries } => (lease, retries),
        other => panic!("not bound: {other:?}"),
    }
}

#[test]
fn edk2_collects_offers_for_four_seconds_then_gets_ipxe_efi_over_tftp() {
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::Edk2Pxe, mac(1), [7; 16], 0x11);
    let (e, took) = play(
        t0,
        client,
        &mut [server(Mode::Server, policy::defaults(), SERVER)],
    );
    let (lease, retries) = bound(e);
    assert_eq!(lease.ip, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(
        (lease.file.as_str(), lease.next_server),
        ("ipxe.efi", SERVER)
    );
    assert_eq!((retries, took), (0, Duration::from_secs(4)));
}

#[test]
fn ipxe_told_no_pxedhcp_takes_the_first_offer_and_the_script_url() {
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::IpxeBios, mac(2), [7; 16], 0x22);
    let (e, took) = play(
        t0,
        client,
        &mut [server(Mode::Server, policy::defaults(), SERVER)],
    );
    let (lease, _) = bound(e);
    assert!(lease.no_pxedhcp);
    assert_eq!(lease.file, "http://10.77.0.1/boot.ipxe");
    assert_eq!(took, Duration::ZERO, "no ProxyDHCP wait");
}

#[test]
fn the_installer_gets_a_plain_lease() {
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::Installer, mac(3), [7; 16], 0x33);
    let (e, _) = play(
        t0,
        client,
        &mut [server(Mode::Server, policy::defaults(), SERVER)],
    );
    assert_eq!(bound(e).0.file, "");
}

#[test]
fn the_installer_whose_server_died_after_its_offer_starts_over_with_discover() {
    // Server A offers, then dies before the REQUEST: udhcpc (the
    // installer's client) sends its REQUESTs, then goes back to DISCOVER,
    // and server B answers that.
    let t0 = testutil::t0();
    let mut client = Client::new(t0, Identity::Installer, mac(9), [7; 16], 0x99);
    let (mut a, _) = server(Mode::Server, policy::defaults(), SERVER);
    let b_addr = Ipv4Addr::new(10, 77, 0, 2);
    let (mut b, _) = server(Mode::Server, policy::defaults(), b_addr);
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    let mut now = t0;
    let mut alive_a = true;
    for _ in 0..100 {
        while let Some(len) = client.poll_transmit(now, &mut tx) {
            let (engine, addr) = if alive_a {
                (&mut a, SERVER)
            } else {
                (&mut b, b_addr)
            };
            let input = Input {
                bytes: &tx[..len],
                server: addr,
                port: 67,
                peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            };
            if let Ok(Outcome::Reply(r)) = engine.handle(now, input, &mut rx) {
                client.handle(now, &rx[..r.len]).unwrap();
                // A's OFFER is out; then it dies.
                alive_a = false;
            }
            client.handle_timeout(now);
        }
        if let Some(e) = client.poll_event() {
            let (lease, retries) = bound(e);
            assert_eq!(lease.server, b_addr);
            // Three REQUESTs again, then one DISCOVER.
            assert_eq!(retries, 4);
            assert_eq!(now - t0, Duration::from_secs(12));
            return;
        }
        now = client.poll_timeout().expect("a live client has a timer");
        client.handle_timeout(now);
    }
    panic!("the installer never got its lease");
}

#[test]
fn a_proxy_offer_supplies_the_boot_file_the_address_offer_lacks() {
    let plain = server(Mode::Server, Vec::new(), Ipv4Addr::new(10, 77, 0, 2));
    let proxy = server(Mode::Proxy, policy::defaults(), SERVER);
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::UefiHttp, mac(4), [7; 16], 0x44);
    let (e, _) = play(t0, client, &mut [plain, proxy]);
    let (lease, _) = bound(e);
    assert_eq!(
        lease.server,
        Ipv4Addr::new(10, 77, 0, 2),
        "address from the full server"
    );
    assert_eq!(
        lease.file, "http://10.77.0.1/ipxe.efi",
        "boot file from the proxy"
    );
}

#[test]
fn with_no_server_edk2_gives_up_after_its_whole_schedule() {
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::Edk2Pxe, mac(5), [7; 16], 0x55);
    let (e, took) = play(t0, client, &mut []);
    assert_eq!(e, Event::Failed("no OFFER to the DISCOVER"));
    assert_eq!(took, Duration::from_secs(4 + 8 + 16 + 32));
}

#[test]
fn replies_for_another_transaction_are_ignored_and_garbage_is_an_error() {
    let t0 = testutil::t0();
    let mut c = Client::new(t0, Identity::IpxeEfi, mac(6), [7; 16], 0x66);
    let mut other = Client::new(t0, Identity::IpxeEfi, mac(7), [7; 16], 0x77);
    let (mut engine, addr) = server(Mode::Server, policy::defaults(), SERVER);
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    let len = other.poll_transmit(t0, &mut tx).unwrap();
    let input = Input {
        bytes: &tx[..len],
        server: addr,
        port: 67,
        peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    };
    let Ok(Outcome::Reply(r)) = engine.handle(t0, input, &mut rx) else {
        panic!("no offer");
    };
    c.handle(t0, &rx[..r.len]).unwrap();
    assert_eq!(c.poll_event(), None);
    assert!(
        c.poll_transmit(t0, &mut tx).is_some(),
        "still selecting: its DISCOVER is due"
    );
    assert!(c.handle(t0, b"not dhcp").is_err());
}

#[test]
fn a_boot_file_ending_in_nul_is_read_as_the_c_string_firmware_sees() {
    // dnsmasq sends option 67 with its NUL terminator.
    let mut rules = policy::defaults();
    for r in &mut rules {
        if let Some(a) = r.action.as_mut() {
            if a.file.as_deref() == Some("ipxe.efi") {
                a.file = Some("ipxe.efi\0".into());
            }
        }
    }
    let t0 = testutil::t0();
    let client = Client::new(t0, Identity::Edk2Pxe, mac(8), [7; 16], 0x88);
    let (e, _) = play(t0, client, &mut [server(Mode::Server, rules, SERVER)]);
    assert_eq!(bound(e).0.file, "ipxe.efi");
}

#[test]
fn edk2_chooses_when_its_retransmission_timer_runs_out_not_before() {
    // The first DISCOVER goes unanswered; the OFFER to the second (sent at
    // 4 s) arrives at 6 s: EDK2 chooses when that DISCOVER's 8 s timer ends,
    // at 12 s, and sends no third DISCOVER.
    let (mut engine, _) = server(Mode::Server, policy::defaults(), SERVER);
    let t0 = testutil::t0();
    let mut c = Client::new(t0, Identity::Edk2Pxe, mac(9), [7; 16], 0x99);
    let (mut tx, mut rx) = ([0u8; 1500], [0u8; 1500]);
    assert!(c.poll_transmit(t0, &mut tx).is_some());
    let at4 = t0 + Duration::from_secs(4);
    assert_eq!(c.poll_timeout(), Some(at4));
    c.handle_timeout(at4);
    let len = c.poll_transmit(at4, &mut tx).unwrap();
    let input = Input {
        bytes: &tx[..len],
        server: SERVER,
        port: 67,
        peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    };
    let Ok(Outcome::Reply(r)) = engine.handle(at4, input, &mut rx) else {
        panic!("no offer")
    };
    c.handle(t0 + Duration::from_secs(6), &rx[..r.len]).unwrap();
    let at12 = t0 + Duration::from_secs(12);
    assert_eq!(c.poll_timeout(), Some(at12));
    c.handle_timeout(at12);
    let len = c.poll_transmit(at12, &mut tx).unwrap();
    let sent = crate::wire::dhcp::Packet::new_checked(&tx[..len]).unwrap();
    assert_eq!(
        sent.options().unwrap().message_type(),
        Some(MessageType::Request)
    );
}

#[test]
fn secs_counts_from_the_first_discover_as_firmware_fills_it() {
    let t0 = testutil::t0();
    let mut client = Client::new(t0, Identity::Edk2Pxe, mac(9), [7; 16], 0x19);
    let mut tx = [0u8; 1500];
    let secs = |tx: &[u8], len| {
        crate::wire::dhcp::Packet::new_checked(&tx[..len])
            .unwrap()
            .secs()
    };
    let len = client.poll_transmit(t0, &mut tx).unwrap();
    assert_eq!(secs(&tx, len), 0);
    // Nobody answers: EDK2 retransmits at 4 s, then 12 s.
    let at = client.poll_timeout().unwrap();
    client.handle_timeout(at);
    let len = client.poll_transmit(at, &mut tx).unwrap();
    assert_eq!(secs(&tx, len), 4);
    let at = client.poll_timeout().unwrap();
    client.handle_timeout(at);
    let len = client.poll_transmit(at, &mut tx).unwrap();
    assert_eq!(secs(&tx, len), 12);
}
