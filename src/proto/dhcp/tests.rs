use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::policy::{Action, Match, Rule};
use super::*;
use crate::lease::{journal, Entry};
use crate::wire::dhcp::Packet;
use crate::wire::dhcp::{MessageType as T, MAGIC};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const NOW: u64 = 1_800_000_000;

fn subnet(net: [u8; 3], first: u8, last: u8) -> Subnet {
    Subnet {
        network: Ipv4Addr::new(net[0], net[1], net[2], 0),
        prefix: 24,
        ranges: vec![(
            Ipv4Addr::new(net[0], net[1], net[2], first),
            Ipv4Addr::new(net[0], net[1], net[2], last),
        )],
        exclude: Vec::new(),
        lease_secs: 3600,
        router: Some(Ipv4Addr::new(net[0], net[1], net[2], 1)),
        dns: vec![Ipv4Addr::new(net[0], net[1], net[2], 1)],
        domain: Some("rack.lan".into()),
        ntp: Vec::new(),
        mtu: None,
        options: vec![(252, b"x".to_vec())],
        tags: Vec::new(),
        not_tags: Vec::new(),
        set_tags: Vec::new(),
    }
}

fn settings() -> Settings {
    Settings {
        subnets: vec![subnet([10, 77, 0], 100, 199), subnet([10, 88, 0], 10, 20)],
        ..Settings::default()
    }
}

fn engine() -> Engine {
    Engine::new(settings(), Table::default(), base(), NOW)
}

/// The fake clock's start, which the engine's clock reads as unix second `NOW`.
fn base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(crate::testutil::t0)
}

/// The engine's `Instant` for unix second `unix` (the fake clock starts at `NOW`).
fn at(unix: u64) -> std::time::Instant {
    base() + std::time::Duration::from_secs(unix - NOW)
}

/// A client message: type, MAC (last byte), extra raw options, ciaddr, giaddr.
struct Msg {
    t: T,
    mac: u8,
    options: Vec<u8>,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    broadcast: bool,
}

impl Msg {
    fn new(t: T, mac: u8) -> Self {
        Self {
            t,
            mac,
            options: Vec::new(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
        }
    }
    fn opt(mut self, code: u8, v: &[u8]) -> Self {
        self.options.extend_from_slice(&[code, v.len() as u8]);
        self.options.extend_from_slice(v);
        self
    }
    fn requested(self, ip: Ipv4Addr) -> Self {
        self.opt(code::REQUESTED_IP, &ip.octets())
    }
    fn server_id(self, ip: Ipv4Addr) -> Self {
        self.opt(code::SERVER_ID, &ip.octets())
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&(0x1000 + u32::from(self.mac)).to_be_bytes());
        if self.broadcast {
            b[10] = 0x80;
        }
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, self.mac]);
        b[236..240].copy_from_slice(&MAGIC);
        b.extend_from_slice(&[53, 1, self.t.as_u8()]);
        b.extend_from_slice(&self.options);
        b.push(255);
        b
    }
}

struct Got {
    outcome: Result<Outcome, Error>,
    bytes: Vec<u8>,
}

impl Got {
    fn reply(&self) -> Reply {
        match self.outcome {
            Ok(Outcome::Reply(r)) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }
    fn packet(&self) -> Packet<'_> {
        Packet::new_checked(&self.bytes[..self.reply().len]).unwrap()
    }
    fn opt(&self, c: u8) -> Option<Vec<u8>> {
        self.packet()
            .options()
            .unwrap()
            .get(c)
            .map(|v| v.into_owned())
    }
}

fn send_at(e: &mut Engine, bytes: &[u8], port: u16, now: u64) -> Got {
    let mut out = vec![0u8; 1500];
    let input = Input {
        bytes,
        server: SERVER,
        port,
        peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    };
    let outcome = e.handle(at(now), input, &mut out);
    Got {
        outcome,
        bytes: out,
    }
}

fn send(e: &mut Engine, m: &Msg) -> Got {
    send_at(e, &m.bytes(), 67, NOW)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/dhcp/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// DISCOVER then REQUEST; returns the address ACKed.
fn dora(e: &mut Engine, mac: u8) -> Ipv4Addr {
    let offer = send(e, &Msg::new(T::Discover, mac)).reply();
    let ack = send(
        e,
        &Msg::new(T::Request, mac)
            .requested(offer.ip)
            .server_id(SERVER),
    )
    .reply();
    assert_eq!((ack.kind, ack.ip), (T::Ack, offer.ip));
    ack.ip
}

#[test]
fn discover_request_gives_a_durable_lease_with_the_subnet_options() {
    let mut e = engine();
    let offer = send(&mut e, &Msg::new(T::Discover, 1));
    let r = offer.reply();
    assert_eq!(r.kind, T::Offer);
    assert_eq!(r.ip, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(
        r.to,
        Dest::Link {
            mac: [0x52, 0x54, 0, 0, 0, 1],
            ip: r.ip
        }
    );
    assert_eq!(offer.opt(code::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(offer.opt(code::DNS), Some(vec![10, 77, 0, 1]));
    assert_eq!(
        offer.opt(code::LEASE_TIME),
        Some(3600u32.to_be_bytes().to_vec())
    );
    assert_eq!(offer.opt(252), Some(b"x".to_vec()));
    assert!(e.take_journal().is_empty(), "an OFFER writes nothing");
    let ack = send(
        &mut e,
        &Msg::new(T::Request, 1).requested(r.ip).server_id(SERVER),
    );
    assert_eq!(ack.reply().kind, T::Ack);
    let records = journal::decode(&e.take_journal()).records;
    assert!(
        matches!(&records[..], [journal::Record::Bound(l)] if l.ip == r.ip && l.expires == NOW + 3600)
    );
}

#[test]
fn the_broadcast_flag_and_a_known_address_choose_the_destination() {
    let mut e = engine();
    let mut m = Msg::new(T::Discover, 1);
    m.broadcast = true;
    assert_eq!(send(&mut e, &m).reply().to, Dest::Broadcast);
    let ip = dora(&mut e, 2);
    let mut renew = Msg::new(T::Request, 2);
    renew.ciaddr = ip;
    let r = send(&mut e, &renew).reply();
    assert_eq!((r.kind, r.ip), (T::Ack, ip));
    assert_eq!(r.to, Dest::Unicast(SocketAddrV4::new(ip, 68)));
}

#[test]
fn a_rack_bursting_discovers_gets_distinct_addresses_from_an_exact_pool() {
    let mut s = settings();
    s.subnets[0].ranges = vec![(Ipv4Addr::new(10, 77, 0, 10), Ipv4Addr::new(10, 77, 0, 209))];
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let mut seen = HashSet::new();
    // Every machine sends its DISCOVER twice (a firmware retry) before anyone
    // requests; 200 machines, 200 addresses.
    for round in 0..2 {
        for mac in 0..200u8 {
            let r = send(&mut e, &Msg::new(T::Discover, mac)).reply();
            if round == 0 {
                assert!(seen.insert(r.ip), "{} offered twice", r.ip);
            } else {
                assert!(seen.contains(&r.ip));
            }
        }
    }
    let acked: HashSet<_> = (0..200u8).map(|mac| dora(&mut e, mac)).collect();
    assert_eq!(acked.len(), 200);
    // Addresses go out in order.
    assert!(
        acked.contains(&Ipv4Addr::new(10, 77, 0, 10))
            && acked.contains(&Ipv4Addr::new(10, 77, 0, 209))
    );
    assert_eq!(
        send(&mut e, &Msg::new(T::Discover, 250)).outcome,
        Err(Error::PoolExhausted)
    );
}

#[test]
fn a_request_for_another_servers_offer_leaves_nothing_behind() {
    let mut e = engine();
    let offer = send(&mut e, &Msg::new(T::Discover, 1)).reply();
    assert_eq!(e.offers(at(NOW)), 1);
    let other = Ipv4Addr::new(10, 77, 0, 2);
    let got = send(
        &mut e,
        &Msg::new(T::Request, 1)
            .requested(Ipv4Addr::new(10, 77, 0, 50))
            .server_id(other),
    );
    assert_eq!(got.outcome, Err(Error::OtherServer));
    assert_eq!(e.offers(at(NOW)), 0);
    assert!(e.table().is_empty() && e.take_journal().is_empty());
    // The address is free for the next machine at once.
    assert_eq!(send(&mut e, &Msg::new(T::Discover, 2)).reply().ip, offer.ip);
}

#[test]
fn leases_survive_a_restart_and_init_reboot_is_acked() {
    let mut e = engine();
    let ip = dora(&mut e, 7);
    let records = journal::decode(&e.take_journal()).records;
    let mut e = Engine::new(settings(), Table::from_records(records), base(), NOW);
    let r = send(&mut e, &Msg::new(T::Request, 7).requested(ip)).reply();
    assert_eq!((r.kind, r.ip), (T::Ack, ip));
    // Another machine never gets it, and asking for it is refused.
    assert_ne!(send(&mut e, &Msg::new(T::Discover, 8)).reply().ip, ip);
    let nak = send(&mut e, &Msg::new(T::Request, 8).requested(ip)).reply();
    assert_eq!(nak.kind, T::Nak);
    // A DISCOVER from the same machine is offered its old address.
    assert_eq!(send(&mut e, &Msg::new(T::Discover, 7)).reply().ip, ip);
}

#[test]
fn init_reboot_elsewhere_is_nakked_unless_not_authoritative() {
    let mut e = engine();
    let m = Msg::new(T::Request, 3).requested(Ipv4Addr::new(192, 168, 1, 5));
    let r = send(&mut e, &m).reply();
    assert_eq!((r.kind, r.to), (T::Nak, Dest::Broadcast));
    // Unknown client asking for a free pool address: authoritative grants it.
    let m = Msg::new(T::Request, 3).requested(Ipv4Addr::new(10, 77, 0, 150));
    assert_eq!(send(&mut e, &m).reply().kind, T::Ack);
    let mut s = settings();
    s.authoritative = false;
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let m = Msg::new(T::Request, 4).requested(Ipv4Addr::new(10, 77, 0, 151));
    assert_eq!(send(&mut e, &m).outcome, Err(Error::NoRecord));
}

#[test]
fn decline_quarantines_and_release_frees() {
    let mut e = engine();
    let ip = dora(&mut e, 1);
    let got = send(&mut e, &Msg::new(T::Decline, 1).requested(ip));
    assert_eq!(got.outcome, Ok(Outcome::Declined));
    let next = send(&mut e, &Msg::new(T::Discover, 1)).reply().ip;
    assert_ne!(next, ip, "a declined address is not offered again");
    let asks = Msg::new(T::Discover, 9).requested(ip);
    assert_ne!(send(&mut e, &asks).reply().ip, ip);
    let later = send_at(&mut e, &asks.bytes(), 67, NOW + 601);
    assert_eq!(
        later.reply().ip,
        ip,
        "after the quarantine it is usable again"
    );

    let mut e = engine();
    let ip = dora(&mut e, 1);
    let mut rel = Msg::new(T::Release, 1);
    rel.ciaddr = ip;
    assert_eq!(send(&mut e, &rel).outcome, Ok(Outcome::Released));
    assert!(e
        .table()
        .of_client(&[1, 1, 0x52, 0x54, 0, 0, 0, 1])
        .is_none());
    // Another client may have it now.
    let _ = send(&mut e, &Msg::new(T::Discover, 2));
    let m = Msg::new(T::Request, 2).requested(ip).server_id(SERVER);
    assert_eq!(send(&mut e, &m).reply().ip, ip);
}

#[test]
fn inform_is_answered_without_a_lease() {
    let mut e = engine();
    let mut m = Msg::new(T::Inform, 1);
    m.ciaddr = Ipv4Addr::new(10, 77, 0, 9);
    let got = send(&mut e, &m);
    let r = got.reply();
    assert_eq!((r.kind, r.ip), (T::Ack, Ipv4Addr::UNSPECIFIED));
    assert_eq!(r.to, Dest::Unicast(SocketAddrV4::new(m.ciaddr, 68)));
    assert_eq!(got.opt(code::LEASE_TIME), None);
    assert!(got.opt(code::DNS).is_some());
    assert!(e.table().is_empty());
}

#[test]
fn relayed_requests_get_their_subnet_and_option_82_back() {
    let mut e = engine();
    let mut m = Msg::new(T::Discover, 1).opt(code::RELAY_AGENT, &[1, 3, b'p', b'1', b'7']);
    m.giaddr = Ipv4Addr::new(10, 88, 0, 1);
    let got = send(&mut e, &m);
    let r = got.reply();
    assert_eq!(r.ip, Ipv4Addr::new(10, 88, 0, 10));
    assert_eq!(r.to, Dest::Relay(SocketAddrV4::new(m.giaddr, 67)));
    assert_eq!(
        got.opt(code::RELAY_AGENT),
        Some(vec![1, 3, b'p', b'1', b'7'])
    );
    assert_eq!(got.opt(code::ROUTER), Some(vec![10, 88, 0, 1]));
    m.giaddr = Ipv4Addr::new(172, 16, 0, 1);
    assert_eq!(send(&mut e, &m).outcome, Err(Error::NoSubnet));
}

#[test]
fn edk2_gets_ipxe_efi_over_tftp_without_a_bare_pxeclient() {
    let mut e = engine();
    let got = send_at(&mut e, &fixture("edk2-discover"), 67, NOW);
    let p = got.packet();
    assert_eq!(p.file(), b"ipxe.efi");
    assert_eq!(p.siaddr(), SERVER);
    assert_eq!(
        got.opt(code::VENDOR_CLASS),
        None,
        "a PXEClient offer sends EDK2 to port 4011"
    );
}

#[test]
fn ipxe_gets_the_script_url_never_the_binary_again() {
    let mut e = engine();
    for name in ["ipxe-bios-discover", "ipxe-efi-discover"] {
        let got = send_at(&mut e, &fixture(name), 67, NOW);
        assert_eq!(got.packet().file(), b"http://10.77.0.1/boot.ipxe", "{name}");
        assert_eq!(got.opt(code::IPXE), Some(vec![176, 1, 1]), "{name}");
    }
    let mut s = settings();
    s.http_port = 8080;
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let got = send_at(&mut e, &fixture("ipxe-efi-discover"), 67, NOW);
    assert_eq!(got.packet().file(), b"http://10.77.0.1:8080/boot.ipxe");
}

#[test]
fn uefi_http_boot_gets_httpclient_and_a_url() {
    let mut e = engine();
    let m = Msg::new(T::Discover, 1)
        .opt(code::CLIENT_ARCH, &[0, 16])
        .opt(code::VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003001");
    let got = send(&mut e, &m);
    assert_eq!(got.opt(code::VENDOR_CLASS), Some(b"HTTPClient".to_vec()));
    assert_eq!(got.packet().file(), b"http://10.77.0.1/ipxe.efi");
    assert_eq!(
        got.opt(code::BOOTFILE),
        Some(b"http://10.77.0.1/ipxe.efi".to_vec())
    );
}

#[test]
fn the_installer_gets_a_plain_lease_with_dns() {
    let mut e = engine();
    let got = send_at(&mut e, &fixture("d-i-discover"), 67, NOW);
    assert_eq!(got.packet().file(), b"");
    assert_eq!(got.opt(code::BOOTFILE), None);
    assert_eq!(got.opt(code::DNS), Some(vec![10, 77, 0, 1]));
}

#[test]
fn rules_match_in_order_and_tags_carry_forward() {
    let mut s = settings();
    s.rules = vec![
        Rule {
            name: "rack7".into(),
            when: Match {
                mac: Some(vec![0x52, 0x54, 0, 0]),
                ..Match::default()
            },
            set_tags: vec!["rack7".into()],
            action: None,
        },
        Rule {
            name: "rack7-ipxe".into(),
            when: Match {
                ipxe: Some(true),
                tags: vec!["rack7".into()],
                ..Match::default()
            },
            set_tags: Vec::new(),
            action: Some(Action {
                file: Some("http://{server}/rack7/{mac}.ipxe".into()),
                ..Action::default()
            }),
        },
    ];
    s.rules.extend(policy::defaults());
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let m = Msg::new(T::Discover, 0x2a).opt(code::USER_CLASS, b"iPXE");
    let got = send(&mut e, &m);
    assert_eq!(
        got.packet().file(),
        b"http://10.77.0.1/rack7/52:54:00:00:00:2a.ipxe"
    );
    assert_eq!(
        got.opt(code::IPXE),
        None,
        "the matching rule did not ask for 175"
    );
}

#[test]
fn reservations_win_and_are_kept_from_others() {
    let mut s = settings();
    s.hosts = vec![Host {
        other_macs: Vec::new(),
        ignore_client_id: false,
        tags: Vec::new(),
        not_tags: Vec::new(),
        lease_secs: None,
        client_id: None,
        mac: [0x52, 0x54, 0, 0, 0, 5],
        ip: Some(Ipv4Addr::new(10, 77, 0, 100)),
        hostname: Some("node05".into()),
        options: Vec::new(),
    }];
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let other = send(&mut e, &Msg::new(T::Discover, 1)).reply();
    assert_eq!(other.ip, Ipv4Addr::new(10, 77, 0, 101));
    let got = send(&mut e, &Msg::new(T::Discover, 5));
    assert_eq!(got.reply().ip, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(got.opt(code::HOSTNAME), Some(b"node05".to_vec()));
}

#[test]
fn proxy_answers_pxe_clients_only_and_without_an_address() {
    let s = Settings {
        mode: Mode::Proxy,
        ..Settings::default()
    };
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let got = send_at(&mut e, &fixture("edk2-discover"), 67, NOW);
    let r = got.reply();
    assert_eq!((r.kind, r.to), (T::Offer, Dest::Broadcast));
    let p = got.packet();
    assert_eq!((p.yiaddr(), p.siaddr()), (Ipv4Addr::UNSPECIFIED, SERVER));
    assert_eq!(p.file(), b"ipxe.efi");
    assert_eq!(got.opt(code::VENDOR_CLASS), Some(b"PXEClient".to_vec()));
    assert_eq!(got.opt(code::VENDOR), Some(vec![6, 1, 8, 255]));
    assert_eq!(got.opt(code::UUID).map(|u| u.len()), Some(17));
    assert_eq!(
        send_at(&mut e, &fixture("d-i-discover"), 67, NOW).outcome,
        Err(Error::NotPxe)
    );
    assert_eq!(
        send_at(&mut e, &fixture("edk2-request"), 67, NOW).outcome,
        Err(Error::ProxyMessage)
    );
    // The port-4011 REQUEST is answered to where it came from.
    let mut out = vec![0u8; 1500];
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 145), 68);
    let req = fixture("edk2-request");
    let input = Input {
        bytes: &req,
        server: SERVER,
        port: 4011,
        peer,
    };
    let Ok(Outcome::Reply(r)) = e.handle(at(NOW), input, &mut out) else {
        panic!("no ACK on 4011")
    };
    assert_eq!((r.kind, r.to), (T::Ack, Dest::Unicast(peer)));
    assert!(e.table().is_empty() && e.take_journal().is_empty());
}

#[test]
fn bad_input_is_dropped_and_counted() {
    let mut e = engine();
    let good = Msg::new(T::Discover, 1).bytes();
    let mut cases: Vec<Vec<u8>> = vec![good[..100].to_vec(), Vec::new()];
    let mut cookie = good.clone();
    cookie[236] = 1;
    cases.push(cookie);
    let mut hlen = good.clone();
    hlen[2] = 100;
    cases.push(hlen);
    let mut past = good[..240].to_vec();
    past.extend_from_slice(&[53, 1, 1, 12, 250, 1, 2]);
    cases.push(past);
    let many: Vec<u8> = (0..300).flat_map(|_| [12u8, 1, b'a']).collect();
    cases.push(
        Msg::new(T::Discover, 1).opt(0, &[]).bytes()[..240]
            .iter()
            .chain(&[53, 1, 1])
            .chain(&many)
            .copied()
            .collect(),
    );
    let mut loop52 = Msg::new(T::Discover, 1).opt(code::OVERLOAD, &[3]).bytes();
    loop52[108..111].copy_from_slice(&[52, 1, 3]);
    loop52[44..47].copy_from_slice(&[52, 1, 3]);
    for c in &cases {
        assert!(
            matches!(send_at(&mut e, c, 67, NOW).outcome, Err(e) if e.is_drop()),
            "{c:?}"
        );
    }
    // An overload loop is read once and answered.
    assert_eq!(send_at(&mut e, &loop52, 67, NOW).reply().kind, T::Offer);
    let long_id = Msg::new(T::Discover, 2).opt(code::CLIENT_ID, &[7u8; 255]);
    assert_eq!(send(&mut e, &long_id).reply().kind, T::Offer);
    assert_eq!(
        e.counters().dropped.values().sum::<u64>(),
        cases.len() as u64
    );
    // Service goes on.
    assert_eq!(dora(&mut e, 3).octets()[..3], [10, 77, 0]);
}

#[test]
fn check_names_boot_files_the_root_lacks_and_skips_what_others_serve() {
    let mut rules = policy::defaults();
    rules.push(Rule {
        name: "elsewhere".into(),
        when: Match::default(),
        set_tags: Vec::new(),
        action: Some(Action {
            file: Some("pxelinux.0".into()),
            next_server: Some(Ipv4Addr::new(10, 0, 0, 9)),
            ..Action::default()
        }),
    });
    rules.push(Rule {
        name: "per-mac".into(),
        when: Match::default(),
        set_tags: Vec::new(),
        action: Some(Action {
            file: Some("http://{http}/m/{mac}.ipxe".into()),
            ..Action::default()
        }),
    });
    let have = |p: &str| ["/boot.ipxe", "/ipxe.efi", "/ipxe-arm64.efi"].contains(&p);
    policy::drop_grub_rules(&mut rules);
    let unserved = policy::unserved_architectures(&mut rules, have);
    assert_eq!(
        unserved,
        [
            ("ia32", "ipxe-i386.efi"),
            ("arm32", "ipxe-arm32.efi"),
            ("riscv64", "ipxe-riscv64.efi")
        ]
    );
    // Architectures other than x86 with no binary lose their rules (a plain
    // lease); BIOS keeps its rule, so the missing file is reported.
    let missing = policy::missing_files(&rules, have);
    assert_eq!(
        missing,
        vec![("bios-pxe".to_owned(), "/undionly.kpxe".to_owned())]
    );
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ipxe",
            "uefi-http",
            "uefi-pxe",
            "bios-pxe",
            "arm64-http",
            "arm64-pxe",
            "elsewhere",
            "per-mac"
        ]
    );
}

#[test]
fn each_architecture_gets_its_own_binary_by_pxe_and_http_boot() {
    let mut e = engine();
    let cases: [(u16, &[u8]); 11] = [
        (0, b"undionly.kpxe"),
        (7, b"ipxe.efi"),
        (9, b"ipxe.efi"),
        (16, b"http://10.77.0.1/ipxe.efi"),
        (11, b"ipxe-arm64.efi"),
        (19, b"http://10.77.0.1/ipxe-arm64.efi"),
        (10, b"ipxe-arm32.efi"),
        (18, b"http://10.77.0.1/ipxe-arm32.efi"),
        (27, b"ipxe-riscv64.efi"),
        (28, b"http://10.77.0.1/ipxe-riscv64.efi"),
        // An architecture no rule knows gets a plain lease, never x86's file.
        (20, b""),
    ];
    for (i, (arch, want)) in cases.into_iter().enumerate() {
        let kind = if want.starts_with(b"http") || arch == 20 {
            "HTTPClient"
        } else {
            "PXEClient"
        };
        let m = Msg::new(T::Discover, i as u8 + 1)
            .opt(code::CLIENT_ARCH, &arch.to_be_bytes())
            .opt(
                code::VENDOR_CLASS,
                format!("{kind}:Arch:{arch:05}:UNDI:003001").as_bytes(),
            );
        let got = send(&mut e, &m);
        assert_eq!(
            String::from_utf8_lossy(got.packet().file()),
            String::from_utf8_lossy(want),
            "arch {arch}"
        );
    }
}

#[test]
fn a_probed_address_in_use_is_quarantined_and_the_next_one_offered() {
    let mut e = Engine::new(
        Settings {
            probe: true,
            ..settings()
        },
        Table::default(),
        base(),
        NOW,
    );
    let first = Ipv4Addr::new(10, 77, 0, 100);
    let discover = Msg::new(T::Discover, 1);
    assert_eq!(send(&mut e, &discover).outcome, Ok(Outcome::Probe(first)));
    // The client's retransmission waits for the probe; another client does not
    // get the address being probed.
    assert_eq!(send(&mut e, &discover).outcome, Err(Error::ProbeInProgress));
    let second = Ipv4Addr::new(10, 77, 0, 101);
    assert_eq!(
        send(&mut e, &Msg::new(T::Discover, 2)).outcome,
        Ok(Outcome::Probe(second))
    );

    // Something answers for .100: quarantined, and client 1 is probed for .102.
    let mut out = [0u8; 1500];
    let third = Ipv4Addr::new(10, 77, 0, 102);
    assert_eq!(
        e.probe_result(at(NOW), first, true, &mut out),
        Ok(Outcome::Probe(third))
    );
    assert!(matches!(e.table().get(first), Some(Entry::Declined(_))));
    assert_eq!(e.counters().conflicts, 1);
    // Nothing answers for .102: client 1 is offered it, and takes it.
    let offer = match e.probe_result(at(NOW), third, false, &mut out) {
        Ok(Outcome::Reply(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((offer.kind, offer.ip), (T::Offer, third));
    let request = Msg::new(T::Request, 1).requested(third).server_id(SERVER);
    assert_eq!(send(&mut e, &request).reply().ip, third);
    // A known address is not probed again: client 1's next DISCOVER is its lease.
    assert_eq!(send(&mut e, &discover).reply().ip, third);
    // A stale report is ignored.
    assert_eq!(
        e.probe_result(at(NOW), first, false, &mut out),
        Err(Error::NoProbe)
    );
    assert_eq!(e.probing(), 1, "client 2's probe still runs");
}

#[test]
fn a_client_id_of_htype_and_mac_finds_the_lease_of_that_mac() {
    // EDK2 sends option 61 = 01 + MAC; iPXE on the same NIC sends none.
    let mut e = engine();
    let id = [1, 0x52, 0x54, 0, 0, 0, 7];
    let offer = send(&mut e, &Msg::new(T::Discover, 7).opt(code::CLIENT_ID, &id)).reply();
    let ack = send(
        &mut e,
        &Msg::new(T::Request, 7)
            .opt(code::CLIENT_ID, &id)
            .requested(offer.ip)
            .server_id(SERVER),
    )
    .reply();
    assert_eq!(ack.kind, T::Ack);
    assert_eq!(dora(&mut e, 7), ack.ip, "iPXE gets the firmware's address");
    // Any other client id is its own client.
    let other = send(
        &mut e,
        &Msg::new(T::Discover, 7).opt(code::CLIENT_ID, b"rack-7"),
    )
    .reply();
    assert_ne!(other.ip, ack.ip);
}

#[test]
fn edk2_gets_snponly_efi_when_it_is_served_else_ipxe_efi() {
    let file = |rules: &[policy::Rule]| {
        rules
            .iter()
            .find(|r| r.name == "uefi-pxe")
            .and_then(|r| r.action.as_ref())
            .and_then(|a| a.file.clone())
    };
    let mut rules = policy::defaults();
    assert!(!policy::prefer_snponly(&mut rules, |p| p == "/ipxe.efi"));
    assert_eq!(file(&rules).as_deref(), Some("ipxe.efi"));
    assert!(policy::prefer_snponly(&mut rules, |p| p == "/snponly.efi"));
    assert_eq!(file(&rules).as_deref(), Some("snponly.efi"));
    // iPXE itself and UEFI HTTP boot keep their answers.
    let ipxe = rules.iter().find(|r| r.name == "ipxe").unwrap();
    assert_eq!(
        ipxe.action.as_ref().unwrap().file.as_deref(),
        Some("http://{http}/boot.ipxe")
    );
    // An operator's own rule naming ipxe.efi is left alone.
    let mut own = vec![policy::Rule {
        name: "mine".into(),
        ..rules[0].clone()
    }];
    own[0].action.as_mut().unwrap().file = Some("ipxe.efi".into());
    assert!(!policy::prefer_snponly(&mut own, |_| true));
}

#[test]
fn an_offer_expires_on_the_engine_timer_and_frees_its_address() {
    let mut e = engine();
    let first = send(&mut e, &Msg::new(T::Discover, 1)).reply().ip;
    assert_eq!(e.poll_timeout(), Some(at(NOW + 30)));
    // Held for client 1: client 2 is offered the next address.
    assert_ne!(send(&mut e, &Msg::new(T::Discover, 2)).reply().ip, first);
    e.handle_timeout(at(NOW + 29));
    assert_eq!(e.offers(at(NOW + 29)), 2);
    e.handle_timeout(at(NOW + 30));
    assert_eq!(e.offers(at(NOW)), 0, "both expired, not merely past due");
    assert_eq!(e.poll_timeout(), None);
    // A DISCOVER renews its offer: the old deadline re-arms at the new one.
    send_at(&mut e, &Msg::new(T::Discover, 3).bytes(), 67, NOW + 40);
    send_at(&mut e, &Msg::new(T::Discover, 3).bytes(), 67, NOW + 60);
    e.handle_timeout(at(NOW + 70));
    assert_eq!(e.offers(at(NOW + 70)), 1);
    assert_eq!(e.poll_timeout(), Some(at(NOW + 90)));
}

#[test]
fn boot_file_templates_render_on_the_stack() {
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    for (template, port, want) in [
        (
            "http://{http}/boot.ipxe?mac={mac}",
            8080,
            "http://10.77.0.1:8080/boot.ipxe?mac=52:54:00:12:34:56",
        ),
        ("http://{http}/x", 80, "http://10.77.0.1/x"),
        (
            "tftp://{server}/{unknown}/ipxe.efi",
            80,
            "tftp://10.77.0.1/{unknown}/ipxe.efi",
        ),
        ("plain.efi", 80, "plain.efi"),
        ("{", 80, "{"),
    ] {
        let mut buf = [0u8; 255];
        let n = policy::render(template, SERVER, port, &mac, &mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
    }
    let long = "x".repeat(300);
    assert_eq!(
        policy::render(&long, SERVER, 80, &mac, &mut [0u8; 255]),
        None
    );
}

#[test]
fn a_reload_that_moves_the_pool_lets_old_leases_run_out_and_gives_new_ones() {
    let mut e = engine();
    let old = dora(&mut e, 7);
    assert!((100..=199).contains(&old.octets()[3]));
    // The first subnet's range moves to .200-.250.
    let mut s = settings();
    s.subnets[0] = subnet([10, 77, 0], 200, 250);
    assert_eq!(e.reconfigure(s, at(NOW + 10)), 1, "one lease lies outside");
    // Its RENEW and INIT-REBOOT get no answer: the client keeps the address
    // until the lease ends, and the table keeps the lease.
    let mut renew = Msg::new(T::Request, 7);
    renew.ciaddr = old;
    assert_eq!(
        send_at(&mut e, &renew.bytes(), 67, NOW + 20).outcome,
        Err(Error::PoolGone)
    );
    let reboot = Msg::new(T::Request, 7).requested(old);
    assert_eq!(
        send_at(&mut e, &reboot.bytes(), 67, NOW + 20).outcome,
        Err(Error::PoolGone)
    );
    assert_eq!(Error::PoolGone.nak(), None, "silence, not a NAK");
    assert_eq!(e.table().len(), 1, "the lease is kept");
    // When it starts over, it gets an address of the new range.
    let offer = send_at(&mut e, &Msg::new(T::Discover, 7).bytes(), 67, NOW + 30).reply();
    assert!((200..=250).contains(&offer.ip.octets()[3]), "{offer:?}");
    let req = Msg::new(T::Request, 7)
        .requested(offer.ip)
        .server_id(SERVER);
    let ack = send_at(&mut e, &req.bytes(), 67, NOW + 30).reply();
    assert_eq!((ack.kind, ack.ip), (T::Ack, offer.ip));
    // A reservation keeps an address outside the pools renewable.
    let mut e = engine();
    let reserved = dora(&mut e, 9);
    let mut s = settings();
    s.subnets[0] = subnet([10, 77, 0], 200, 250);
    s.hosts = vec![Host {
        other_macs: Vec::new(),
        ignore_client_id: false,
        tags: Vec::new(),
        not_tags: Vec::new(),
        lease_secs: None,
        client_id: None,
        mac: [0x52, 0x54, 0, 0, 0, 9],
        ip: Some(reserved),
        hostname: None,
        options: Vec::new(),
    }];
    assert_eq!(e.reconfigure(s, at(NOW + 10)), 0);
    let mut renew = Msg::new(T::Request, 9);
    renew.ciaddr = reserved;
    let r = send_at(&mut e, &renew.bytes(), 67, NOW + 20).reply();
    assert_eq!((r.kind, r.ip), (T::Ack, reserved));
}

#[test]
fn the_time_from_offer_to_the_request_that_takes_it_is_recorded() {
    let mut e = engine();
    let offer = send_at(&mut e, &Msg::new(T::Discover, 9).bytes(), 67, NOW).reply();
    let request = Msg::new(T::Request, 9)
        .requested(offer.ip)
        .server_id(SERVER)
        .bytes();
    assert_eq!(send_at(&mut e, &request, 67, NOW + 3).reply().kind, T::Ack);
    let h = e.offer_to_ack();
    assert_eq!(h.len(), 1);
    assert!(h.equivalent(h.max(), 3_000_000), "{}", h.max());
    // A renewal is no offer taken.
    send_at(&mut e, &request, 67, NOW + 4);
    assert_eq!(e.offer_to_ack().len(), 1);
}

fn fog_menu() -> pxe::Menu {
    let item = |arch, text: &str, boot_type, file: Option<&str>| pxe::Item {
        arch,
        text: text.into(),
        boot_type,
        file: file.map(str::to_owned),
        server: None,
        tags: vec![],
        not_tags: vec![],
    };
    pxe::Menu {
        items: vec![
            item(0, "Install", 32768, Some("undionly.kpxe")),
            item(0, "Local disk", 0, None),
            item(7, "UEFI", 32769, Some("ipxe.efi")),
        ],
        prompt: None,
    }
}

fn pxe_client(t: T, mac: u8, arch: u16) -> Msg {
    let vendor = format!("PXEClient:Arch:{arch:05}:UNDI:002001");
    Msg::new(t, mac)
        .opt(code::PARAMS, &[1, 3, 43, 60, 66, 67])
        .opt(code::VENDOR_CLASS, vendor.as_bytes())
        .opt(code::CLIENT_ARCH, &arch.to_be_bytes())
        .opt(code::UUID, &[0; 17])
}

#[test]
fn a_proxy_with_a_menu_shows_bios_the_menu_and_its_boot_server_gives_the_item() {
    let s = Settings {
        mode: Mode::Proxy,
        pxe_menu: Some(fog_menu()),
        ..Settings::default()
    };
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let offer = send(&mut e, &pxe_client(T::Discover, 1, 0));
    assert_eq!(offer.reply().kind, T::Offer);
    let p = offer.packet();
    // The boot rule's file rides along (dnsmasq's dhcp-boot), for firmware
    // that takes no menu; no address.
    assert_eq!(
        (p.yiaddr(), p.siaddr(), p.file()),
        (
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &b"undionly.kpxe"[..]
        )
    );
    let menu = offer.opt(code::VENDOR).unwrap();
    assert_eq!(
        &menu[..6],
        &[6, 1, 3, 10, 4, 255],
        "two items: wait for a choice"
    );
    assert!(
        menu.windows(9)
            .any(|w| w == [8, 7, 0x80, 0, 1, 10, 77, 0, 1]),
        "{menu:?}"
    );
    // The firmware picks item 0x8000 from the boot server, on :4011.
    let mut pick = pxe_client(T::Request, 1, 0).opt(code::VENDOR, &[71, 4, 0x80, 0, 0, 0, 255]);
    pick.ciaddr = Ipv4Addr::new(10, 77, 0, 50);
    let ack = send_at(&mut e, &pick.bytes(), 4011, NOW);
    let p = ack.packet();
    assert_eq!(ack.reply().kind, T::Ack);
    assert_eq!((p.yiaddr(), p.siaddr()), (pick.ciaddr, SERVER));
    assert_eq!(p.file(), b"undionly.kpxe");
    assert_eq!(ack.opt(code::VENDOR), Some(vec![71, 4, 0x80, 0, 0, 0, 255]));
    assert_eq!(ack.opt(code::VENDOR_CLASS), Some(b"PXEClient".to_vec()));
    // A type no item has, or boot integrity services, get silence.
    let none = pxe_client(T::Request, 1, 0).opt(code::VENDOR, &[71, 4, 0, 9, 0, 0]);
    let mut none = none;
    none.ciaddr = pick.ciaddr;
    assert_eq!(
        send_at(&mut e, &none.bytes(), 4011, NOW).outcome,
        Err(Error::NoMenuItem)
    );
    let mut bis = pxe_client(T::Request, 1, 0).opt(code::VENDOR, &[71, 4, 0x80, 0, 0x80, 0]);
    bis.ciaddr = pick.ciaddr;
    assert_eq!(
        send_at(&mut e, &bis.bytes(), 4011, NOW).outcome,
        Err(Error::PxeBis)
    );
}

#[test]
fn uefi_with_one_item_is_sent_to_4011_for_it_and_a_server_menu_rides_on_the_ack() {
    let s = Settings {
        mode: Mode::Proxy,
        pxe_menu: Some(fog_menu()),
        ..Settings::default()
    };
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let offer = send(&mut e, &pxe_client(T::Discover, 2, 7));
    let p = offer.packet();
    assert_eq!((p.siaddr(), p.file()), (SERVER, &b""[..]));
    assert_eq!(offer.opt(code::VENDOR), None, "UEFI gets its item on :4011");
    let mut ask = pxe_client(T::Request, 2, 7);
    ask.ciaddr = Ipv4Addr::new(10, 77, 0, 51);
    let ack = send_at(&mut e, &ask.bytes(), 4011, NOW);
    let p = ack.packet();
    assert_eq!((p.siaddr(), p.file()), (SERVER, &b"ipxe.efi"[..]));
    assert_eq!(p.sname(), b"10.77.0.1");

    // In server mode a PXE client's ACK carries the menu (43) and PXEClient.
    let mut e = Engine::new(
        Settings {
            pxe_menu: Some(fog_menu()),
            ..settings()
        },
        Table::default(),
        base(),
        NOW,
    );
    let offer = send(&mut e, &pxe_client(T::Discover, 3, 0));
    assert!(offer.opt(code::VENDOR).is_some_and(|v| v[..3] == [6, 1, 3]));
    assert_eq!(offer.opt(code::VENDOR_CLASS), Some(b"PXEClient".to_vec()));
    assert_eq!(offer.opt(code::UUID), Some(vec![0; 17]));
    // ...but not a plain client's, nor UEFI's with its one item.
    let plain = send(
        &mut e,
        &Msg::new(T::Discover, 4).opt(code::PARAMS, &[43, 60]),
    );
    assert_eq!(plain.opt(code::VENDOR), None);
    assert_eq!(
        send(&mut e, &pxe_client(T::Discover, 5, 7)).opt(code::VENDOR),
        None
    );
}

#[test]
fn a_reservation_by_client_id_goes_to_the_client_that_sends_it() {
    let mut s = settings();
    let ip = Ipv4Addr::new(10, 77, 0, 150);
    s.hosts = vec![Host {
        other_macs: Vec::new(),
        ignore_client_id: false,
        tags: Vec::new(),
        not_tags: Vec::new(),
        mac: [0; 6],
        client_id: Some(vec![1, 2, 2, 4]),
        ip: Some(ip),
        hostname: Some("marjorie".into()),
        lease_secs: None,
        options: Vec::new(),
    }];
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    let with_id = Msg::new(T::Discover, 7).opt(code::CLIENT_ID, &[1, 2, 2, 4]);
    assert_eq!(send(&mut e, &with_id).reply().ip, ip);
    // Another client (or the same MAC without that id) gets a pool address.
    let other = send(&mut e, &Msg::new(T::Discover, 8)).reply().ip;
    assert_ne!(other, ip);
}

#[test]
fn a_host_that_ignores_client_ids_keeps_one_lease_for_its_mac() {
    let mut s = settings();
    s.hosts = vec![Host {
        other_macs: Vec::new(),
        mac: [0x52, 0x54, 0, 0, 0, 9],
        client_id: None,
        ignore_client_id: true,
        ip: None,
        hostname: None,
        lease_secs: None,
        options: Vec::new(),
        tags: Vec::new(),
        not_tags: Vec::new(),
    }];
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    // Firmware and its OS send different client ids from one NIC.
    let first = dora_with(&mut e, 9, &[1, 1, 1]);
    let second = dora_with(&mut e, 9, &[2, 2, 2]);
    assert_eq!(first, second, "one machine, one address");
    // Without the host's say-so, two ids are two clients.
    let mut e = Engine::new(settings(), Table::default(), base(), NOW);
    assert_ne!(
        dora_with(&mut e, 9, &[1, 1, 1]),
        dora_with(&mut e, 9, &[2, 2, 2])
    );
}

/// DISCOVER then REQUEST from `mac` with client id `id`: the address ACKed.
fn dora_with(e: &mut Engine, mac: u8, id: &[u8]) -> Ipv4Addr {
    let offer = send(e, &Msg::new(T::Discover, mac).opt(code::CLIENT_ID, id)).reply();
    let ack = send(
        e,
        &Msg::new(T::Request, mac)
            .opt(code::CLIENT_ID, id)
            .requested(offer.ip)
            .server_id(SERVER),
    )
    .reply();
    assert_eq!(ack.kind, T::Ack);
    ack.ip
}

#[test]
fn one_address_for_a_machines_several_nics_goes_to_whichever_asks() {
    let mut s = settings();
    let ip = Ipv4Addr::new(10, 77, 0, 160);
    s.hosts = vec![Host {
        mac: [0x52, 0x54, 0, 0, 0, 21],
        other_macs: vec![[0x52, 0x54, 0, 0, 0, 22]],
        client_id: None,
        ignore_client_id: false,
        ip: Some(ip),
        hostname: None,
        lease_secs: None,
        options: Vec::new(),
        tags: Vec::new(),
        not_tags: Vec::new(),
    }];
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    assert_eq!(dora(&mut e, 21), ip);
    // The wireless NIC asks: it gets the address, the wired one's lease goes.
    assert_eq!(dora(&mut e, 22), ip);
    assert_eq!(e.table().bound().filter(|l| l.ip == ip).count(), 1);
    // Another machine never gets it.
    assert_ne!(dora(&mut e, 23), ip);
}

#[test]
fn a_request_after_its_offer_ran_out_is_acked_while_the_address_is_free() {
    let mut e = engine();
    let offer = send(&mut e, &Msg::new(T::Discover, 1));
    let ip = offer.reply().ip;
    // 40 s later (the 30 s offer hold is over), the REQUEST that was lost
    // on the way comes again.
    let late = Msg::new(T::Request, 1).requested(ip).server_id(SERVER);
    e.handle_timeout(at(NOW + 40));
    let ack = send_at(&mut e, &late.bytes(), 67, NOW + 40);
    assert_eq!((ack.reply().kind, ack.reply().ip), (T::Ack, ip));
    // An address another client took meanwhile is refused.
    let mut e = engine();
    let ip = send(&mut e, &Msg::new(T::Discover, 1)).reply().ip;
    e.handle_timeout(at(NOW + 40));
    let other = Msg::new(T::Discover, 2).requested(ip);
    assert_eq!(send_at(&mut e, &other.bytes(), 67, NOW + 40).reply().ip, ip);
    let late = Msg::new(T::Request, 1).requested(ip).server_id(SERVER);
    assert_eq!(
        send_at(&mut e, &late.bytes(), 67, NOW + 41).reply().kind,
        T::Nak
    );
    // An address outside every pool is not taken.
    let far = Msg::new(T::Request, 3)
        .requested(Ipv4Addr::new(10, 77, 0, 5))
        .server_id(SERVER);
    assert_eq!(
        send_at(&mut e, &far.bytes(), 67, NOW + 41).reply().kind,
        T::Nak
    );
}

/// A DISCOVER from MAC 52:54:01:00:hi:lo.
fn flood_discover(n: u16) -> Vec<u8> {
    let mut b = Msg::new(T::Discover, 0).bytes();
    b[30..34].copy_from_slice(&[1, 0, (n >> 8) as u8, n as u8]);
    b
}

#[test]
fn a_discover_flood_holds_at_most_its_share_and_real_clients_still_get_leases() {
    let mut e = engine();
    for n in 0..300 {
        let got = send_at(&mut e, &flood_discover(n), 67, NOW);
        assert_eq!(got.reply().kind, T::Offer, "every DISCOVER is answered");
    }
    // 10.77.0.100-199: half of 100 held, the rest offered unheld.
    assert_eq!(e.held_offers()[0], 50);
    assert_eq!(e.counters().offers_unheld, 250);
    // A real client still completes, and its lease is durable.
    let ip = dora(&mut e, 7);
    assert!(
        matches!(e.table().get(ip), Some(Entry::Bound(l)) if l.hw[..] == [0x52, 0x54, 0, 0, 0, 7]),
        "{ip}"
    );
    let records = journal::decode(&e.take_journal()).records;
    assert!(matches!(&records[..], [journal::Record::Bound(l)] if l.ip == ip));
    // Held offers run out on time and are counted down.
    e.handle_timeout(at(NOW + 31));
    assert_eq!(e.held_offers()[0], 0);
}

#[test]
fn two_clients_offered_one_unheld_address_the_first_request_wins() {
    let mut e = Engine::new(
        Settings {
            held_offers_percent: 1,
            ..settings()
        },
        Table::default(),
        base(),
        NOW,
    );
    // The first offer holds the one address the bound allows.
    let _ = send(&mut e, &Msg::new(T::Discover, 1)).reply();
    let a = send(&mut e, &Msg::new(T::Discover, 2)).reply();
    // Offered to 2 unheld; 3's DISCOVER may be offered the same address.
    let free_again = Msg::new(T::Request, 3).requested(a.ip).server_id(SERVER);
    let ack = send(
        &mut e,
        &Msg::new(T::Request, 2).requested(a.ip).server_id(SERVER),
    )
    .reply();
    assert_eq!((ack.kind, ack.ip), (T::Ack, a.ip));
    let nak = send(&mut e, &free_again).reply();
    assert_eq!(nak.kind, T::Nak, "the address went to the first REQUEST");
}

#[test]
fn one_mac_is_answered_at_most_answers_per_mac_times_a_second() {
    let mut e = engine();
    let d = Msg::new(T::Discover, 9).bytes();
    let answered = (0..25)
        .filter(|_| send_at(&mut e, &d, 67, NOW).outcome.is_ok())
        .count();
    assert_eq!(answered, 20);
    assert_eq!(e.counters().dropped.get("rate_limited"), Some(&5));
    // Another MAC is not held back, and the next second starts afresh.
    assert!(send(&mut e, &Msg::new(T::Discover, 10)).outcome.is_ok());
    assert!(send_at(&mut e, &d, 67, NOW + 1).outcome.is_ok());
}

#[test]
fn a_uefi_pxe_machine_of_a_grub_profile_gets_the_signed_shim() {
    use crate::proto::boot::{Loader, Match as Takes, Paths, Profile, Profiles};
    let grub = Profile {
        name: "secure".into(),
        loader: Loader::Grub,
        kernel: "/linux".into(),
        matches: Takes {
            mac: vec!["52:54:00:00:00:0?".into()],
            arch: vec!["x86_64".into()],
            ..Takes::default()
        },
        ..Profile::default()
    };
    let plain = Profile {
        name: "plain".into(),
        kernel: "/linux".into(),
        ..Profile::default()
    };
    let profiles = Profiles::new(
        Paths::default(),
        vec![grub, plain],
        Some(1),
        vec![],
        "h".into(),
    )
    .unwrap();
    let s = Settings {
        profiles: Some(SharedProfiles(std::sync::Arc::new(profiles))),
        ..settings()
    };
    let mut e = Engine::new(s, Table::default(), base(), NOW);
    // MAC ...:01 fits the grub profile; ...:21 gets the default (iPXE).
    let shim = send(&mut e, &pxe_client(T::Discover, 1, 7));
    assert_eq!(shim.packet().file(), b"shimx64.efi");
    let ipxe = send(&mut e, &pxe_client(T::Discover, 0x21, 7));
    assert_eq!(ipxe.packet().file(), b"ipxe.efi");
    // The profile matches x86_64 only: the same MAC as BIOS gets undionly.
    let bios = send(&mut e, &pxe_client(T::Discover, 2, 0));
    assert_eq!(bios.packet().file(), b"undionly.kpxe");
}

#[test]
fn an_arm64_machine_of_a_grub_profile_gets_arm64s_shim_only_where_it_is_served() {
    use crate::proto::boot::{Loader, Match as Takes, Paths, Profile, Profiles};
    let arm = Profile {
        name: "arm".into(),
        loader: Loader::Grub,
        kernel: "/arm64/linux".into(),
        matches: Takes {
            arch: vec!["arm64".into()],
            ..Takes::default()
        },
        ..Profile::default()
    };
    let profiles = Profiles::new(Paths::default(), vec![arm], None, vec![], "h".into()).unwrap();
    let profiles = Some(SharedProfiles(std::sync::Arc::new(profiles)));
    for (served, want) in [(true, &b"shimaa64.efi"[..]), (false, b"")] {
        let mut rules = policy::defaults();
        // arm64's iPXE is served: a grub machine must still not get it.
        let have = |p: &str| {
            ["/shimx64.efi", "/ipxe-arm64.efi"].contains(&p) || (served && p == "/shimaa64.efi")
        };
        let fitted = policy::fit(&mut rules, have, true, false);
        assert_eq!(
            fitted.unserved.contains(&("arm64", "shimaa64.efi")),
            !served,
            "{:?}",
            fitted.unserved
        );
        let s = Settings {
            rules,
            profiles: profiles.clone(),
            ..settings()
        };
        let mut e = Engine::new(s, Table::default(), base(), NOW);
        let got = send(&mut e, &pxe_client(T::Discover, 1, 11));
        assert_eq!(
            String::from_utf8_lossy(got.packet().file()),
            String::from_utf8_lossy(want),
            "shimaa64.efi served: {served}"
        );
    }
}

/// Two engines sharing the 10.77.0.100-199 pool (RFC 3074 style).
fn pair_member(index: u8) -> Engine {
    let s = Settings {
        balance: Some(balance::Balance {
            servers: 2,
            index,
            wait_secs: 3,
        }),
        ..settings()
    };
    Engine::new(s, Table::default(), base(), NOW)
}

#[test]
fn servers_sharing_a_pool_answer_their_own_share_and_a_waiting_client_of_the_other() {
    let (mut a, mut b) = (pair_member(0), pair_member(1));
    let mut from = [Vec::new(), Vec::new()];
    for mac in 0..40u8 {
        let m = Msg::new(T::Discover, mac);
        let (ga, gb) = (send(&mut a, &m), send(&mut b, &m));
        // Exactly one server answers a client that has not waited.
        match (&ga.outcome, &gb.outcome) {
            (Ok(Outcome::Reply(r)), Err(Error::OtherServersShare)) => from[0].push(r.ip),
            (Err(Error::OtherServersShare), Ok(Outcome::Reply(r))) => from[1].push(r.ip),
            other => panic!("{mac}: {other:?}"),
        }
    }
    assert!(from.iter().all(|f| f.len() >= 10), "{from:?}");
    // Each allocates from its own half: .100-.149 and .150-.199.
    assert!(from[0].iter().all(|ip| ip.octets()[3] < 150), "{from:?}");
    assert!(from[1].iter().all(|ip| ip.octets()[3] >= 150), "{from:?}");
    // A client of server 1's share whose DISCOVER says it waited 3 s (server
    // 1 is down) gets server 0's OFFER.
    let mac = (100..=255u8)
        .find(|&m| {
            b.settings()
                .balance
                .unwrap()
                .owner(&[0x52, 0x54, 0, 0, 0, m])
                == 1
        })
        .unwrap();
    let mut bytes = Msg::new(T::Discover, mac).bytes();
    assert!(matches!(
        send_at(&mut a, &bytes, 67, NOW).outcome,
        Err(Error::OtherServersShare)
    ));
    bytes[8..10].copy_from_slice(&3u16.to_be_bytes());
    let offer = send_at(&mut a, &bytes, 67, NOW).reply();
    assert_eq!(offer.kind, T::Offer);
    assert_eq!(a.counters().dropped.get("other_servers_share"), None);
}

#[test]
fn a_lease_learned_from_another_server_is_never_offered() {
    let mut e = engine();
    // Another server bound .100 (the first address this one would offer).
    e.learn(journal::Record::Bound(crate::lease::Lease {
        ip: Ipv4Addr::new(10, 77, 0, 100),
        client: vec![1, 0x52, 0x54, 0, 0, 9, 9].into(),
        hw: vec![0x52, 0x54, 0, 0, 9, 9].into(),
        hostname: "".into(),
        expires: NOW + 600,
    }));
    assert!(
        e.take_journal().is_empty(),
        "a learned change is not written again"
    );
    assert_eq!(dora(&mut e, 1), Ipv4Addr::new(10, 77, 0, 101));
    // Freed there: free here too.
    e.learn(journal::Record::Freed(Ipv4Addr::new(10, 77, 0, 100)));
    assert_eq!(dora(&mut e, 2), Ipv4Addr::new(10, 77, 0, 100));
}
