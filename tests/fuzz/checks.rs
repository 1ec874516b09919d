//! The invariants the fuzz targets assert, shared with the stable corpus replay
//! (tests/it/fuzz_replay.rs includes this file too).
#![allow(dead_code, unreachable_pub, reason = "each includer uses part of it")]

use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use rackboot::proto::boot::{Match, Origin, Paths, Profile, Profiles};
use rackboot::proto::http::{Connection, Context, Event, Settings};
use rackboot::store::{Options, Snapshot};
use rackboot::wire::http::{self, range, target, Limits, Parse};

/// Parser, Range and target decoding on one input.
pub fn head(data: &[u8]) {
    let limits = Limits {
        max_head: 8192,
        max_headers: 32,
        max_target: 2048,
    };
    if let Ok(Parse::Complete { request, head_len }) = http::parse(data, &limits) {
        assert!(head_len <= data.len() && head_len <= limits.max_head);
        let mut path = String::new();
        if target::decode_path(request.target, &mut path).is_ok() {
            assert!(path.starts_with('/'), "{path:?}");
            assert!(path.split('/').all(|s| s != ".." && s != "."), "{path:?}");
            assert!(!path.contains('\0') && !path.contains('\\'), "{path:?}");
        }
        if let Some(r) = request.range {
            for len in [0, 1, 1000, u64::MAX] {
                if let range::Spec::Part { first, last } = range::resolve(r, len) {
                    assert!(first <= last && last < len);
                }
            }
        }
    }
}

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let mtime = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let big = vec![7u8; 100_000];
        let files = [
            ("/boot.ipxe", &b"#!ipxe\n"[..]),
            ("/big", &big[..]),
            ("/empty", &b""[..]),
        ];
        Snapshot::from_memory(
            files.map(|(u, b)| (u, b, mtime)),
            &Options {
                max_bytes: u64::MAX,
                mlock: false,
            },
        )
        .expect("memfd")
    })
}

fn profiles() -> &'static Profiles {
    static P: OnceLock<Profiles> = OnceLock::new();
    P.get_or_init(|| {
        let profile = Profile {
            loader: rackboot::proto::boot::Loader::Grub,
            name: "any".into(),
            kernel: "/big".into(),
            initrds: vec!["/empty".into()],
            cmdline: "url={{ config_url }} host={{ hostname }} uuid={{ uuid }}".into(),
            script: None,
            config: Some("{{ mac }} {{ ip }} {{ hostname }} {{ arch }} {{ platform }}\n".into()),
            matches: Match {
                platform: vec!["pcbios".into()],
                ..Match::default()
            },
            vars: Default::default(),
            once: true,
            local: None,
        };
        Profiles::new(
            Paths::default(),
            vec![profile],
            Some(0),
            vec![],
            "192.0.2.1".into(),
        )
        .expect("profiles")
    })
}

/// A boot profile page for any query and `Host`: never a panic, and nothing a
/// client sends adds a line to its script or its answers.
pub fn boot_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (host, query) = text.split_once(' ').unwrap_or(("", &text));
    let origin = Origin {
        host: Some(host),
        peer: None,
        unix_secs: 0,
        tls: data.first().is_some_and(|b| b & 1 == 1),
        port: data.get(1).map_or(80, |&b| u16::from(b) * 100),
    };
    let p = profiles();
    if let Some(page) = p.answer("/boot.ipxe", query, origin) {
        assert_eq!(page.status, 200);
        assert!(page.body.starts_with("#!ipxe\n"), "{:?}", page.body);
        // chain (2 lines), echo + exit (4), or the profile's script (5).
        assert!(page.body.lines().count() <= 5, "{:?}", page.body);
    }
    if let Some(page) = p.answer("/boot.grub", query, origin) {
        // The grub page (6 lines), echo + sleep + exit (3), or a 400.
        assert!(page.body.lines().count() <= 6, "{:?}", page.body);
    }
    if let Some(page) = p.answer("/config", query, origin) {
        assert!(page.body.lines().count() == 1, "{:?}", page.body);
    }
    // A done URL made of anything: never honoured without its signature.
    let done = format!("/done/{query}");
    if let Some(page) = p.answer(&done, "", origin) {
        assert_eq!(page.status, 404, "{done:?}: {:?}", page.body);
    }
}

/// The engine fed `data`: the first byte of each chunk says how many bytes follow
/// (1..=64), how many the "socket" accepts per write, and whether a timer fires.
pub fn engine(data: &[u8]) {
    let snapshot = snapshot();
    #[allow(
        clippy::disallowed_methods,
        reason = "a base instant; the fuzz clock only adds to it"
    )]
    let mut now = Instant::now();
    let settings = Settings {
        limits: Limits {
            max_head: 512,
            max_headers: 16,
            max_target: 128,
        },
        ..Settings::default()
    };
    let mut conn = Connection::new(now, settings);
    let ctx = Context {
        snapshot,
        date: "Wed, 25 Nov 2026 00:00:00 GMT",
        boot: Some(profiles()),
        peer: Some(std::net::IpAddr::from([192, 0, 2, 77])),
        unix_secs: 0,
        tls: false,
        port: 80,
    };
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let take = (usize::from(ctl & 0x3f) + 1).min(tail.len());
        let (chunk, tail) = tail.split_at(take);
        rest = tail;
        let buf = conn.recv_buf();
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n > 0 {
            conn.handle_recv(now, n);
        } else if ctl & 0x40 != 0 {
            conn.handle_eof(now);
        }
        let per_write = 1 + usize::from(ctl) * 97;
        let mut writes = 0;
        while let Some(t) = conn.poll_transmit(now, &ctx) {
            if let Some(f) = t.file {
                assert!(
                    f.offset + f.len <= f.file.len(),
                    "engine named bytes past the end"
                );
            }
            let offered = t.bytes.len() as u64 + t.file.map_or(0, |f| f.len);
            let n = per_write.min(offered as usize);
            conn.sent(now, n);
            writes += 1;
            if writes > 10_000 {
                break; // a slow socket: leave the rest for the next turn
            }
        }
        while let Some(e) = conn.poll_event() {
            if let Event::Access(a) = e {
                assert!((100..600).contains(&a.status));
            }
        }
        if ctl & 0x80 != 0 {
            if let Some(at) = conn.poll_timeout() {
                now = at;
                conn.handle_timeout(now);
            }
        }
        if conn.is_closed() {
            assert!(conn.recv_buf().is_empty() && conn.poll_timeout().is_none());
            return;
        }
    }
}

/// TFTP request acceptance on one datagram: a refusal or a transfer, never a
/// panic, and never a path outside the root.
pub fn tftp_request(data: &[u8]) {
    use rackboot::proto::tftp::{accept, Settings, Where};
    for path_mtu in [None, Some(1500), Some(576)] {
        if let Ok(a) = accept(
            data,
            snapshot(),
            &Settings::default(),
            Where {
                root: Some("/srv/tftp"),
                path_mtu,
                prefix: None,
                peer: None,
                unix_secs: 0,
            },
        ) {
            assert!(
                a.path.starts_with('/') && !a.path.split('/').any(|s| s == ".."),
                "{}",
                a.path
            );
            let n = &a.negotiated;
            assert!((8..=65464).contains(&n.blksize) && (1..=64).contains(&n.windowsize));
            if let Some(mtu) = path_mtu {
                assert!(u32::from(n.blksize) + 32 <= mtu.max(40));
            }
        }
    }
}

/// A TFTP transfer fed arbitrary datagrams and timer firings: never a panic,
/// never a window past the file, and it always ends within its retry budget.
pub fn tftp_transfer(data: &[u8]) {
    use rackboot::proto::tftp::{accept, Settings, Transfer, Transmit, Where};
    let rrq = b"\x00\x01big\x00octet\x00blksize\x00512\x00windowsize\x008\x00";
    let Ok(accepted) = accept(rrq, snapshot(), &Settings::default(), Where::default()) else {
        return;
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "a base instant; the fuzz clock only adds to it"
    )]
    let mut now = Instant::now();
    let mut t = Transfer::new(now, accepted, &Settings::default());
    let mut scratch = [0u8; 512];
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let take = usize::from(ctl & 0x0f).min(tail.len());
        let (datagram, tail) = tail.split_at(take);
        rest = tail;
        let _ = t.handle(now, datagram);
        if ctl & 0x80 != 0 {
            if let Some(at) = t.poll_timeout() {
                now = at;
                t.handle_timeout(now);
            }
        }
        while let Some(x) = t.poll_transmit(now, &mut scratch) {
            if let Transmit::Window { first, count, .. } = x {
                assert!(first >= 1 && first + u64::from(count) - 1 <= t.blocks());
            }
        }
        let _ = t.poll_event();
    }
    // Silence from now on: the retry budget ends it.
    for _ in 0..64 {
        let Some(at) = t.poll_timeout() else { break };
        now = at;
        t.handle_timeout(now);
        while t.poll_transmit(now, &mut scratch).is_some() {}
    }
    assert!(
        t.poll_timeout().is_none(),
        "a silent client must end the transfer"
    );
}

/// DHCP view and option index on one datagram, and a reply written for it.
pub fn dhcp_packet(data: &[u8]) {
    use rackboot::wire::dhcp::{MessageType, Packet, Writer};
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.mac(), p.xid(), p.ciaddr(), p.giaddr(), p.file());
    assert!(p.chaddr().len() <= 16);
    let Ok(o) = p.options() else {
        return;
    };
    let codes: Vec<u8> = o.codes().collect();
    for c in &codes {
        assert!(o.get(*c).is_some(), "listed code {c} has a value");
    }
    let _ = (
        o.message_type(),
        o.client_arch(),
        o.is_ipxe(),
        o.has_user_class(b"iPXE"),
    );
    // A reply to any request fits its buffer and parses back with the same xid.
    let mut out = [0xa5u8; 1500];
    let written = (|| {
        let mut w = Writer::reply(&mut out, &p)?;
        w.message_type(MessageType::Offer)?;
        for c in &codes {
            if let Some(v) = o.get(*c) {
                w.option(*c, &v)?;
            }
        }
        w.finish()
    })();
    if let Ok(len) = written {
        assert!(len <= out.len());
        let back = Packet::new_checked(&out[..len]).expect("our reply parses");
        assert_eq!(back.xid(), p.xid());
        let bo = back.options().expect("our options parse");
        assert_eq!(bo.message_type(), Some(MessageType::Offer));
    }
}

/// The DHCP engine on a run of datagrams (the input split at each 0xFD byte),
/// at advancing times and on both ports: never a panic, replies fit their
/// buffer and parse, and the table's two indexes agree (each active lease is
/// its client's one lease), so no address is held for two clients.
pub fn dhcp_engine(data: &[u8]) {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use rackboot::lease::Table;
    use rackboot::proto::dhcp::{Engine, Input, Outcome, Settings, Subnet};
    use rackboot::wire::dhcp::Packet;

    let subnet = Subnet {
        network: Ipv4Addr::new(10, 77, 0, 0),
        prefix: 24,
        ranges: vec![(Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 103))],
        exclude: vec![Ipv4Addr::new(10, 77, 0, 101)],
        lease_secs: 60,
        router: None,
        dns: vec![Ipv4Addr::new(10, 77, 0, 1)],
        domain: None,
        ntp: Vec::new(),
        mtu: None,
        options: Vec::new(),
        tags: Vec::new(),
        not_tags: Vec::new(),
        set_tags: Vec::new(),
    };
    let settings = Settings {
        subnets: vec![subnet],
        ..Settings::default()
    };
    let t0 = rackboot::io::clock::now();
    let mut engine = Engine::new(settings, Table::default(), t0, 1_800_000_000);
    let mut out = [0u8; 1500];
    let mut now = t0;
    let mut i = 0;
    for chunk in data.split(|b| *b == 0xfd) {
        i += 1;
        now +=
            std::time::Duration::from_secs(u64::from(chunk.first().copied().unwrap_or(0) % 8) * 10);
        engine.handle_timeout(now);
        let input = Input {
            bytes: chunk,
            server: Ipv4Addr::new(10, 77, 0, 1),
            port: if i % 5 == 0 { 4011 } else { 67 },
            peer: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 9), 68),
        };
        if let Ok(Outcome::Reply(r)) = engine.handle(now, input, &mut out) {
            assert!(r.len <= out.len());
            assert!(Packet::new_checked(&out[..r.len]).is_ok(), "reply parses");
        }
        let _ = engine.take_journal();
        one_lease_per_client(engine.table(), engine.unix(now));
    }
}

/// Each active lease is its client's, and no client holds two.
fn one_lease_per_client<A: rackboot::lease::Family>(table: &rackboot::lease::Leases<A>, unix: u64) {
    let mut clients = std::collections::HashSet::new();
    for l in table.active(unix) {
        let mine = table.of_client(&l.client).map(|x| x.ip);
        assert_eq!(
            mine,
            Some(l.ip),
            "the client's lease is the address's lease"
        );
        assert!(clients.insert(&l.client), "one lease per client");
    }
}

/// A dnsmasq configuration made of anything: read and translated without a
/// panic, and the translation is always TOML of rackboot's own keys (no value
/// from the file can break out of its string or add a key).
pub fn dnsmasq_conf(data: &[u8]) {
    use rackboot::import::dnsmasq::{read, translate, At, Host};
    let text = String::from_utf8_lossy(data);
    let lines: Vec<_> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            read::parse_line(
                l,
                &At {
                    file: "fuzz.conf".into(),
                    line: i + 1,
                },
            )
            .ok()
            .flatten()
        })
        .collect();
    let imported = translate(&lines, &Host::default());
    let parsed = rackboot::config::Config::parse(
        &imported.toml,
        std::path::Path::new("fuzz.toml"),
        &rackboot::config::Overrides::default(),
    );
    if let Err(rackboot::config::Error::Parse { message, .. }) = parsed {
        panic!(
            "the translation is not rackboot TOML: {message}\n{}",
            imported.toml
        );
    }
}

/// The journal's replay: whatever the bytes, the damaged stretches lie in
/// order inside them, the good records end where it says, and the good
/// records written again replay to themselves with nothing damaged.
pub fn lease_journal(data: &[u8]) {
    use rackboot::lease::journal;
    let replay = journal::decode(data);
    assert!(replay.end <= data.len());
    let mut at = 0;
    for &(offset, len) in &replay.damaged {
        assert!(
            offset >= at && len > 0 && offset + len <= replay.end,
            "{:?}",
            replay.damaged
        );
        at = offset + len;
    }
    let mut again = Vec::new();
    for r in &replay.records {
        journal::encode(r, &mut again);
    }
    let second = journal::decode(&again);
    assert_eq!(second.records, replay.records);
    assert!(second.damaged.is_empty() && second.end == again.len());
}

/// A DHCPv6 datagram made of anything: unwrapped (relays at most 32 deep)
/// and read without a panic; every option view stays inside the message, and
/// a relayed reply written for it reads back as RELAY-REPL layers around the
/// message.
pub fn dhcp6_packet(data: &[u8]) {
    use rackboot::wire::dhcp6::{code, Options, Received, Writer, HOP_LIMIT};
    let Ok(r) = Received::parse(data) else {
        return;
    };
    assert!(r.relays.len() <= usize::from(HOP_LIMIT));
    let m = r.message;
    let _ = (r.mac(), r.link(), m.client_id(), m.server_id(), m.elapsed());
    let _ = (m.options.client_arch(), m.options.vendor_class());
    assert!(m.options.user_classes().all(|c| c.len() <= data.len()));
    assert!(m.options.requested().count() <= data.len() / 2);
    if let Ok(ias) = m.options.ia_nas() {
        for ia in &ias {
            assert!(ia.addresses().count() <= data.len() / 24);
        }
    }
    let mut out = vec![0u8; 8192];
    let mut w = Writer::new(&mut out);
    let mut opened = Vec::new();
    for relay in &r.relays {
        opened.push(w.relay_reply(relay).expect("room for the relay layers"));
    }
    w.message(m.kind, m.xid).expect("room");
    for open in opened.into_iter().rev() {
        w.end(open).expect("lengths fit");
    }
    let n = w.len();
    let mut at = &out[..n];
    for _ in &r.relays {
        let opts = Options::parse(&at[34..]).expect("a relay layer reads back");
        at = opts.get(code::RELAY_MSG).expect("with its message");
    }
    assert_eq!(&at[..4], &[m.kind.to_u8(), m.xid[0], m.xid[1], m.xid[2]]);
}

/// DHCPv6: the sans-IO engine on runs of datagrams at advancing times, on a
/// four-address pool; every reply parses, and each binding is its client's.
pub fn dhcp6_engine(data: &[u8]) {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use rackboot::lease::Table6;
    use rackboot::proto::dhcp6::{duid_ll, Engine, Input, Settings, Subnet};
    use rackboot::wire::dhcp6::{Message, MessageType, Options};

    let ip = |s: &str| s.parse::<Ipv6Addr>().expect("an address");
    let settings = Settings {
        duid: duid_ll([2, 0, 0, 0, 0, 1]),
        subnets: vec![Subnet {
            prefix: ip("fd00:77::"),
            len: 64,
            ranges: vec![(ip("fd00:77::100"), ip("fd00:77::103"))],
            preferred: 45,
            valid: 60,
            dns: vec![ip("fd00:77::1")],
            domains: vec!["fuzz.example".into()],
        }],
        ..Settings::default()
    };
    let t0 = rackboot::io::clock::now();
    let mut engine = Engine::new(settings, Table6::default(), t0, 1_800_000_000);
    let mut out = [0u8; 1500];
    let mut now = t0;
    for chunk in data.split(|b| *b == 0xfd) {
        now +=
            std::time::Duration::from_secs(u64::from(chunk.first().copied().unwrap_or(0) % 8) * 10);
        engine.handle_timeout(now);
        let input = Input {
            bytes: chunk,
            peer: SocketAddrV6::new(ip("fe80::9"), 546, 0, 2),
            local: ip("fd00:77::1"),
        };
        if let Ok(r) = engine.handle(now, input, &mut out) {
            assert!(r.len <= out.len());
            let reply = &out[..r.len];
            if reply[0] == MessageType::RelayRepl.to_u8() {
                assert!(Options::parse(&reply[34..]).is_ok(), "relay reply parses");
            } else {
                let m = Message::parse(reply).expect("reply parses");
                assert!(matches!(
                    m.kind,
                    MessageType::Advertise | MessageType::Reply
                ));
            }
        }
        let _ = engine.take_journal();
        one_lease_per_client(engine.table(), engine.unix(now));
    }
}
