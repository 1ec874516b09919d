use super::*;
use crate::lease::journal;
use crate::wire::dhcp6::{IaAddr, Options};

const NOW_UNIX: u64 = 1_800_000_000;
const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0, 0xee, 0, 1];

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn settings() -> Settings {
    Settings {
        duid: duid_ll(SERVER_MAC),
        subnets: vec![
            Subnet {
                prefix: ip("fd00:1::"),
                len: 64,
                ranges: vec![(ip("fd00:1::100"), ip("fd00:1::1ff"))],
                preferred: 3000,
                valid: 3600,
                dns: vec![ip("fd00:1::1")],
                domains: vec!["boot.example".into()],
            },
            Subnet {
                prefix: ip("fd00:2::"),
                len: 64,
                ranges: vec![(ip("fd00:2::100"), ip("fd00:2::101"))],
                preferred: 3000,
                valid: 3600,
                dns: Vec::new(),
                domains: Vec::new(),
            },
        ],
        ..Settings::default()
    }
}

fn engine(s: Settings) -> (Engine, Instant) {
    let now = crate::testutil::t0();
    (Engine::new(s, Table6::default(), now, NOW_UNIX), now)
}

fn duid_of(mac: [u8; 6]) -> Vec<u8> {
    duid_ll(mac)
}

/// A client message: type, xid 1-2-3, the client's DUID, then `extra`.
struct Msg {
    bytes: Vec<u8>,
}

impl Msg {
    fn new(kind: MessageType, duid: &[u8]) -> Self {
        let mut m = Self {
            bytes: vec![kind.to_u8(), 1, 2, 3],
        };
        if !duid.is_empty() {
            m = m.opt(code::CLIENTID, duid);
        }
        m
    }

    fn opt(mut self, code: u16, data: &[u8]) -> Self {
        self.bytes.extend_from_slice(&code.to_be_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    fn server(self) -> Self {
        self.opt(code::SERVERID, &duid_ll(SERVER_MAC))
    }

    fn ia(self, iaid: u32, addrs: &[Ipv6Addr]) -> Self {
        let mut d = iaid.to_be_bytes().to_vec();
        d.extend_from_slice(&[0; 8]);
        for a in addrs {
            d.extend_from_slice(&code::IAADDR.to_be_bytes());
            d.extend_from_slice(&24u16.to_be_bytes());
            d.extend_from_slice(&a.octets());
            d.extend_from_slice(&[0; 8]);
        }
        self.opt(code::IA_NA, &d)
    }

    fn pxe(self, arch: u16, class: &[u8]) -> Self {
        let mut v = 343u32.to_be_bytes().to_vec();
        v.extend_from_slice(&(class.len() as u16).to_be_bytes());
        v.extend_from_slice(class);
        self.opt(code::CLIENT_ARCH, &arch.to_be_bytes())
            .opt(code::VENDOR_CLASS, &v)
    }
}

fn peer() -> SocketAddrV6 {
    SocketAddrV6::new(ip("fe80::5054:ff:fe00:1"), CLIENT_PORT, 0, 3)
}

fn input(bytes: &[u8]) -> Input<'_> {
    Input {
        bytes,
        peer: peer(),
        local: ip("fd00:1::1"),
    }
}

/// The reply's client message (unwrapping relay replies).
fn reply_message(out: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut interface_ids = Vec::new();
    let mut at = out.to_vec();
    while at[0] == MessageType::RelayRepl.to_u8() {
        let opts = Options::parse(&at[34..]).unwrap();
        interface_ids.push(opts.get(code::INTERFACE_ID).unwrap_or_default().to_vec());
        at = opts.get(code::RELAY_MSG).unwrap().to_vec();
    }
    (at, interface_ids)
}

fn addresses(m: &Message<'_>) -> Vec<IaAddr> {
    m.options
        .ia_nas()
        .unwrap()
        .iter()
        .flat_map(|ia| ia.addresses().collect::<Vec<_>>())
        .collect()
}

fn ia_status(m: &Message<'_>) -> Option<u16> {
    let ia = m.options.ia_nas().unwrap();
    let st = ia.first()?.options.get(code::STATUS_CODE)?;
    Some(u16::from_be_bytes([st[0], st[1]]))
}

fn top_status(m: &Message<'_>) -> Option<u16> {
    let st = m.options.get(code::STATUS_CODE)?;
    Some(u16::from_be_bytes([st[0], st[1]]))
}

const MAC1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const MAC2: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

#[test]
fn an_edk2_pxe_client_is_advertised_an_address_and_its_boot_file_then_bound_by_request() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let solicit = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .ia(1, &[])
        .opt(code::ORO, &[0, 59, 0, 23])
        .pxe(7, b"PXEClient:Arch:00007:UNDI:003000");
    let r = e.handle(now, input(&solicit.bytes), &mut out).unwrap();
    assert_eq!(r.kind, MessageType::Advertise);
    assert_eq!(r.to, SocketAddrV6::new(*peer().ip(), 546, 0, 3));
    assert_eq!(r.mac, Some(MAC1));
    let adv = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(adv.xid, [1, 2, 3]);
    assert_eq!(adv.server_id(), Some(&duid_ll(SERVER_MAC)[..]));
    assert_eq!(adv.client_id(), Some(&duid_of(MAC1)[..]));
    assert_eq!(adv.options.get(code::PREFERENCE), Some(&[255u8][..]));
    let given = addresses(&adv);
    assert_eq!(given.len(), 1);
    assert_eq!(given[0].addr, ip("fd00:1::100"));
    assert_eq!((given[0].preferred, given[0].valid), (3000, 3600));
    assert_eq!(
        adv.options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:1::1]/ipxe.efi"[..])
    );
    assert_eq!(
        adv.options.get(code::DNS_SERVERS),
        Some(&ip("fd00:1::1").octets()[..])
    );
    assert_eq!(
        adv.options.get(code::DOMAIN_LIST),
        Some(&b"\x04boot\x07example\x00"[..])
    );
    // An ADVERTISE commits nothing.
    assert!(e.take_journal().is_empty());

    // Another client meanwhile does not get the held address.
    let other = Msg::new(MessageType::Solicit, &duid_of(MAC2)).ia(1, &[]);
    let r2 = e.handle(now, input(&other.bytes), &mut out).unwrap();
    assert_eq!(r2.ip, Some(ip("fd00:1::101")));

    let request = Msg::new(MessageType::Request, &duid_of(MAC1))
        .server()
        .ia(1, &[ip("fd00:1::100")])
        .pxe(7, b"PXEClient:Arch:00007:UNDI:003000");
    let r = e.handle(now, input(&request.bytes), &mut out).unwrap();
    assert_eq!(r.kind, MessageType::Reply);
    assert_eq!(r.ip, Some(ip("fd00:1::100")));
    let reply = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(addresses(&reply)[0].addr, ip("fd00:1::100"));
    let records = journal::decode(&e.take_journal()).records;
    assert!(matches!(&records[..], [journal::Record::Bound6(l)]
        if l.ip == ip("fd00:1::100") && l.hw[..] == MAC1 && l.expires == NOW_UNIX + 3600));
}

#[test]
fn a_request_for_another_server_or_without_a_client_id_gets_nothing() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let foreign = Msg::new(MessageType::Request, &duid_of(MAC1))
        .opt(code::SERVERID, &duid_ll([9; 6]))
        .ia(1, &[]);
    assert_eq!(
        e.handle(now, input(&foreign.bytes), &mut out),
        Err(Error::NotOurs)
    );
    let anonymous = Msg::new(MessageType::Solicit, &[]).ia(1, &[]);
    assert_eq!(
        e.handle(now, input(&anonymous.bytes), &mut out),
        Err(Error::NoClientId)
    );
    let named = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .server()
        .ia(1, &[]);
    assert_eq!(
        e.handle(now, input(&named.bytes), &mut out),
        Err(Error::Misaddressed)
    );
    let from_a_server = Msg::new(MessageType::Advertise, &duid_of(MAC1));
    assert_eq!(
        e.handle(now, input(&from_a_server.bytes), &mut out),
        Err(Error::NotAClientMessage)
    );
    assert_eq!(e.counters().quiet.get("not_ours"), Some(&1));
    assert_eq!(e.counters().dropped.get("no_client_id"), Some(&1));
    assert!(e.take_journal().is_empty());
}

#[test]
fn malformed_datagrams_are_dropped_and_counted() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let mut overrun = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .ia(1, &[])
        .bytes;
    overrun.truncate(overrun.len() - 3);
    let mut deep = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .ia(1, &[])
        .bytes;
    for hop in 0..33u8 {
        let mut r = vec![12, hop];
        r.extend_from_slice(&[0; 32]);
        r.extend_from_slice(&code::RELAY_MSG.to_be_bytes());
        r.extend_from_slice(&(deep.len() as u16).to_be_bytes());
        r.extend_from_slice(&deep);
        deep = r;
    }
    let huge = vec![1u8; 70_000];
    for bad in [&overrun[..], &deep[..], &huge[..], &[1, 2][..], &[][..]] {
        assert!(matches!(
            e.handle(now, input(bad), &mut out),
            Err(Error::Malformed(_))
        ));
    }
    let dropped: u64 = e.counters().dropped.values().sum();
    assert_eq!(dropped, 5);
    // A reply buffer too small is an error, not a panic.
    let ok = Msg::new(MessageType::Solicit, &duid_of(MAC1)).ia(1, &[]);
    let mut tiny = [0u8; 20];
    assert!(matches!(
        e.handle(now, input(&ok.bytes), &mut tiny),
        Err(Error::NoRoom(_))
    ));
}

#[test]
fn rapid_commit_binds_at_once() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let solicit = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .opt(code::RAPID_COMMIT, &[])
        .ia(7, &[]);
    let r = e.handle(now, input(&solicit.bytes), &mut out).unwrap();
    assert_eq!(r.kind, MessageType::Reply);
    let m = Message::parse(&out[..r.len]).unwrap();
    assert!(m.options.has(code::RAPID_COMMIT));
    assert_eq!(journal::decode(&e.take_journal()).records.len(), 1);
    // With Rapid Commit off, the same SOLICIT is advertised.
    let (mut e, now) = engine(Settings {
        rapid_commit: false,
        ..settings()
    });
    let r = e.handle(now, input(&solicit.bytes), &mut out).unwrap();
    assert_eq!(r.kind, MessageType::Advertise);
}

fn bind(e: &mut Engine, now: Instant, mac: [u8; 6], iaid: u32) -> Ipv6Addr {
    let mut out = [0u8; 1500];
    let m = Msg::new(MessageType::Solicit, &duid_of(mac))
        .opt(code::RAPID_COMMIT, &[])
        .ia(iaid, &[]);
    e.handle(now, input(&m.bytes), &mut out)
        .unwrap()
        .ip
        .unwrap()
}

#[test]
fn renew_rebind_release_and_decline_act_on_the_clients_own_binding() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let a = bind(&mut e, now, MAC1, 1);
    e.take_journal();

    let later = now + Duration::from_secs(1000);
    let renew = Msg::new(MessageType::Renew, &duid_of(MAC1))
        .server()
        .ia(1, &[a]);
    let r = e.handle(later, input(&renew.bytes), &mut out).unwrap();
    assert_eq!(r.ip, Some(a));
    let records = journal::decode(&e.take_journal()).records;
    assert!(
        matches!(&records[..], [journal::Record::Bound6(l)] if l.expires == NOW_UNIX + 1000 + 3600)
    );

    // An IA the server does not know: NoBinding.
    let unknown = Msg::new(MessageType::Renew, &duid_of(MAC1))
        .server()
        .ia(2, &[a]);
    let r = e.handle(later, input(&unknown.bytes), &mut out).unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(ia_status(&m), Some(status::NO_BINDING));

    // REBIND names no server and is answered the same.
    let rebind = Msg::new(MessageType::Rebind, &duid_of(MAC1)).ia(1, &[a]);
    let r = e.handle(later, input(&rebind.bytes), &mut out).unwrap();
    assert_eq!(r.ip, Some(a));

    // Another client cannot release it.
    let thief = Msg::new(MessageType::Release, &duid_of(MAC2))
        .server()
        .ia(1, &[a]);
    e.handle(later, input(&thief.bytes), &mut out).unwrap();
    assert!(e.table().active(NOW_UNIX + 1000).any(|l| l.ip == a));

    let release = Msg::new(MessageType::Release, &duid_of(MAC1))
        .server()
        .ia(1, &[a]);
    let r = e.handle(later, input(&release.bytes), &mut out).unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(top_status(&m), Some(status::SUCCESS));
    assert_eq!(e.table().active(NOW_UNIX + 1000).count(), 0);

    // Declined: the next client does not get that address.
    let b = bind(&mut e, later, MAC2, 1);
    let decline = Msg::new(MessageType::Decline, &duid_of(MAC2))
        .server()
        .ia(1, &[b]);
    e.handle(later, input(&decline.bytes), &mut out).unwrap();
    let c = bind(&mut e, later, [0x52, 0x54, 0, 0, 0, 3], 1);
    assert_ne!(c, b);
}

#[test]
fn leases_replayed_from_the_journal_are_renewed_by_a_new_engine() {
    let (mut e, now) = engine(settings());
    let a = bind(&mut e, now, MAC1, 1);
    let table = Table6::from_records(journal::decode(&e.take_journal()).records);
    let mut e2 = Engine::new(settings(), table, now, NOW_UNIX + 5);
    let mut out = [0u8; 1500];
    let renew = Msg::new(MessageType::Renew, &duid_of(MAC1))
        .server()
        .ia(1, &[a]);
    assert_eq!(
        e2.handle(now, input(&renew.bytes), &mut out).unwrap().ip,
        Some(a)
    );
    // And a new client does not get it.
    assert_ne!(bind(&mut e2, now, MAC2, 1), a);
}

#[test]
fn reservations_by_mac_or_duid_keep_their_address() {
    let mut s = settings();
    s.hosts = vec![
        Host {
            mac: Some(MAC2),
            ip: Some(ip("fd00:1::100")),
            hostname: Some("node2".into()),
            ..Host::default()
        },
        Host {
            duid: Some(vec![0, 2, 0, 0, 0, 9, 1, 2, 3]),
            ip: Some(ip("fd00:1::150")),
            ..Host::default()
        },
    ];
    let (mut e, now) = engine(s);
    // The first pool address is MAC2's: MAC1 gets the next.
    assert_eq!(bind(&mut e, now, MAC1, 1), ip("fd00:1::101"));
    assert_eq!(bind(&mut e, now, MAC2, 1), ip("fd00:1::100"));
    let mut out = [0u8; 1500];
    let en = Msg::new(MessageType::Solicit, &[0, 2, 0, 0, 0, 9, 1, 2, 3])
        .opt(code::RAPID_COMMIT, &[])
        .ia(1, &[]);
    let r = e.handle(now, input(&en.bytes), &mut out).unwrap();
    assert_eq!(r.ip, Some(ip("fd00:1::150")));
    assert!(e
        .table()
        .active(NOW_UNIX)
        .any(|l| l.ip == ip("fd00:1::100") && &*l.hostname == "node2"));
}

fn relay_forw(inner: &[u8], link: Ipv6Addr, mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut r = vec![12, 0];
    r.extend_from_slice(&link.octets());
    r.extend_from_slice(&ip("fe80::aa").octets());
    let mut opt = |code: u16, data: &[u8]| {
        r.extend_from_slice(&code.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
    };
    opt(code::INTERFACE_ID, b"rack7");
    if let Some(mac) = mac {
        let mut ll = vec![0, 1];
        ll.extend_from_slice(&mac);
        opt(code::CLIENT_LINKLAYER_ADDR, &ll);
    }
    opt(code::RELAY_MSG, inner);
    r
}

#[test]
fn a_relayed_client_gets_its_links_address_through_the_relay() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    // A DUID-UUID: the MAC comes from the relay's option 79.
    let mut uuid = vec![0, 4];
    uuid.extend_from_slice(&[7; 16]);
    let inner = Msg::new(MessageType::Solicit, &uuid)
        .ia(1, &[])
        .pxe(7, b"PXEClient:Arch:00007:UNDI:003000");
    let forw = relay_forw(&inner.bytes, ip("fd00:2::1"), Some(MAC2));
    let relay = SocketAddrV6::new(ip("fd00:9::5"), 547, 0, 0);
    let r = e
        .handle(
            now,
            Input {
                bytes: &forw,
                peer: relay,
                local: ip("fd00:1::1"),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(r.to, relay);
    assert_eq!(r.mac, Some(MAC2));
    assert_eq!(r.ip, Some(ip("fd00:2::100")));
    let (inner, ids) = reply_message(&out[..r.len]);
    assert_eq!(ids, [b"rack7".to_vec()]);
    let m = Message::parse(&inner).unwrap();
    assert_eq!(m.kind, MessageType::Advertise);
    assert_eq!(addresses(&m)[0].addr, ip("fd00:2::100"));
    // A link no subnet holds: no answer.
    let stray = relay_forw(
        &Msg::new(MessageType::Solicit, &uuid).ia(1, &[]).bytes,
        ip("fd00:7::1"),
        None,
    );
    assert_eq!(
        e.handle(
            now,
            Input {
                bytes: &stray,
                peer: relay,
                local: ip("fd00:1::1")
            },
            &mut out
        ),
        Err(Error::NoSubnet)
    );
}

#[test]
fn a_full_pool_answers_no_addrs_avail() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let link2 = |m: &Msg| relay_forw(&m.bytes, ip("fd00:2::1"), None);
    for (i, mac) in [MAC1, MAC2].into_iter().enumerate() {
        let m = Msg::new(MessageType::Solicit, &duid_of(mac))
            .opt(code::RAPID_COMMIT, &[])
            .ia(1, &[]);
        let forw = link2(&m);
        let r = e
            .handle(
                now,
                Input {
                    bytes: &forw,
                    peer: peer(),
                    local: ip("fd00:1::1"),
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(r.ip, Some(ip(&format!("fd00:2::10{i}"))));
    }
    let m = Msg::new(MessageType::Solicit, &duid_of([1; 6])).ia(1, &[]);
    let forw = link2(&m);
    let r = e
        .handle(
            now,
            Input {
                bytes: &forw,
                peer: peer(),
                local: ip("fd00:1::1"),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(r.ip, None);
    let (inner, _) = reply_message(&out[..r.len]);
    assert_eq!(
        ia_status(&Message::parse(&inner).unwrap()),
        Some(status::NO_ADDRS_AVAIL)
    );
}

#[test]
fn advertised_holds_expire_on_the_timer_and_are_bounded() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let m = Msg::new(MessageType::Solicit, &duid_of(MAC1)).ia(1, &[]);
    assert_eq!(
        e.handle(now, input(&m.bytes), &mut out).unwrap().ip,
        Some(ip("fd00:1::100"))
    );
    let due = e.poll_timeout().unwrap();
    assert_eq!(due, now + Duration::from_secs(30));
    e.handle_timeout(due);
    assert_eq!(e.poll_timeout(), None);
    // Held offers stop at half the pool: 256 addresses, 128 holds.
    let mut held = 0;
    for i in 0..300u32 {
        let mut mac = [2, 0, 0, 0, 0, 0];
        mac[2..].copy_from_slice(&i.to_be_bytes());
        let m = Msg::new(MessageType::Solicit, &duid_of(mac)).ia(1, &[]);
        if e.handle(now, input(&m.bytes), &mut out)
            .unwrap()
            .ip
            .is_some()
        {
            held += 1;
        }
    }
    assert_eq!(held, 128);
}

#[test]
fn boot_urls_follow_the_firmware() {
    let (mut e, now) = engine(Settings {
        http_port: 8080,
        ..settings()
    });
    let mut out = [0u8; 1500];
    let url = |e: &mut Engine, m: Msg| {
        let mut out = [0u8; 1500];
        let r = e.handle(now, input(&m.bytes), &mut out).unwrap();
        let m = Message::parse(&out[..r.len]).unwrap();
        (
            m.options
                .get(code::BOOTFILE_URL)
                .map(|u| String::from_utf8(u.to_vec()).unwrap()),
            m.options.vendor_class().map(|(e, c)| (e, c.to_vec())),
        )
    };
    // iPXE (user class "iPXE"): the boot script over HTTP.
    let ipxe = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .ia(1, &[])
        .opt(code::USER_CLASS, b"\x00\x04iPXE");
    assert_eq!(
        url(&mut e, ipxe).0.as_deref(),
        Some("http://[fd00:1::1]:8080/boot.ipxe")
    );
    // UEFI HTTP boot (arch 16): ipxe.efi by URL, with the HTTPClient echo.
    let http = Msg::new(MessageType::Solicit, &duid_of(MAC2))
        .ia(1, &[])
        .pxe(16, b"HTTPClient:Arch:00016:UNDI:003001");
    let (u, class) = url(&mut e, http);
    assert_eq!(u.as_deref(), Some("http://[fd00:1::1]:8080/ipxe.efi"));
    assert_eq!(class, Some((343, b"HTTPClient".to_vec())));
    // An installer (no class, no arch): an address, no boot file.
    let plain = Msg::new(MessageType::Solicit, &duid_of([3; 6])).ia(1, &[]);
    assert_eq!(url(&mut e, plain).0, None);
    // INFORMATION-REQUEST: no IA, the configuration and boot file.
    let info = Msg::new(MessageType::InformationRequest, &duid_of([4; 6]))
        .pxe(7, b"PXEClient:Arch:00007:UNDI:003000");
    let r = e.handle(now, input(&info.bytes), &mut out).unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(m.kind, MessageType::Reply);
    assert!(m.options.ia_nas().unwrap().is_empty());
    assert!(m.options.has(code::DNS_SERVERS));
    assert_eq!(
        m.options.get(code::BOOTFILE_URL),
        Some(&b"tftp://[fd00:1::1]/ipxe.efi"[..])
    );
}

#[test]
fn confirm_says_whether_the_addresses_are_on_link() {
    let (mut e, now) = engine(settings());
    let mut out = [0u8; 1500];
    let on = Msg::new(MessageType::Confirm, &duid_of(MAC1)).ia(1, &[ip("fd00:1::123")]);
    let r = e.handle(now, input(&on.bytes), &mut out).unwrap();
    assert_eq!(
        top_status(&Message::parse(&out[..r.len]).unwrap()),
        Some(status::SUCCESS)
    );
    let off = Msg::new(MessageType::Confirm, &duid_of(MAC1)).ia(1, &[ip("fd00:2::100")]);
    let r = e.handle(now, input(&off.bytes), &mut out).unwrap();
    assert_eq!(
        top_status(&Message::parse(&out[..r.len]).unwrap()),
        Some(status::NOT_ON_LINK)
    );
    let none = Msg::new(MessageType::Confirm, &duid_of(MAC1)).ia(1, &[]);
    assert_eq!(
        e.handle(now, input(&none.bytes), &mut out),
        Err(Error::NothingToConfirm)
    );
}

#[test]
fn a_stateless_link_answers_without_addresses() {
    let mut s = settings();
    s.subnets[0].ranges.clear();
    let (mut e, now) = engine(s);
    let mut out = [0u8; 1500];
    let m = Msg::new(MessageType::Solicit, &duid_of(MAC1))
        .ia(1, &[])
        .pxe(7, b"PXEClient:Arch:00007:UNDI:003000");
    let r = e.handle(now, input(&m.bytes), &mut out).unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(ia_status(&m), Some(status::NO_ADDRS_AVAIL));
    assert!(m.options.has(code::BOOTFILE_URL));
}

#[test]
fn a_pool_as_large_as_the_address_space_neither_overflows_nor_stalls() {
    let mut s = settings();
    s.subnets[0] = Subnet {
        prefix: ip("::"),
        len: 0,
        ranges: vec![(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))],
        ..s.subnets[0].clone()
    };
    let (mut e, now) = engine(s);
    assert_eq!(bind(&mut e, now, MAC1, 1), ip("::"));
    assert_eq!(bind(&mut e, now, MAC2, 1), ip("::1"));
}
