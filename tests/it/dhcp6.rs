//! DHCPv6 across a real link: rackboot in one namespace with an IPv4 and an
//! IPv6 address on its boot interface, real DHCPv6 clients (dhclient -6 from
//! isc-dhcp-client, dhcpcd from dhcpcd-base, perfdhcp -6 from kea-admin) in
//! another. Needs root.

use std::time::Duration;

use crate::dhcp::leases;
use crate::ns::{in_ns, sh, Net};
use crate::support::{Fixture, Server, TempDir};

const SERVER6: &str = "fd00:201::1";

/// Server 10.201.0.1 and fd00:201::1 on `eth0` of one namespace, clients on
/// `eth0` of another; returns once the client's link-local address may send
/// (DAD done).
fn pair6(net: &mut Net) -> (String, String) {
    let (s, c) = (net.ns("s"), net.ns("c"));
    Net::veth(&s, "eth0", Some("10.201.0.1/24"), &c, "eth0", None);
    sh(&format!("ip -n {s} addr add {SERVER6}/64 dev eth0 nodad"));
    settle(&c);
    (s, c)
}

/// Waits until `ns`'s link-local address on eth0 may send (DAD done).
fn settle(ns: &str) {
    let settled = (0..100).any(|_| {
        let o = in_ns(ns, "ip -6 addr show dev eth0");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let ok = text.contains("fe80::") && !text.contains("tentative");
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(settled, "the client's link-local address never settled");
}

/// rackboot in `s` serving `root`, HTTP on `http` (an address, port picked),
/// DHCPv4 and DHCPv6 (`range6`) with the journal `file`, and `extra`.
fn start6(
    s: &str,
    root: &std::path::Path,
    http: &str,
    file: &std::path::Path,
    range6: &str,
    extra: &[&str],
) -> Server {
    let mut args = vec![
        "--interface",
        "eth0",
        "--dhcp-range",
        "10.201.0.100,10.201.0.199",
        "--dhcp6-range",
        range6,
        "--dhcp-lease-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start_in(Some(s), http, root, &args)
}

/// rackboot on `s` with the default DHCPv4 range and fd00:201::100-1ff, its
/// journal in `dir`.
fn serve6(s: &str, f: &Fixture, dir: &TempDir) -> Server {
    let file = dir.0.join("leases");
    start6(
        s,
        &f.root(),
        "10.201.0.1",
        &file,
        "fd00:201::100,fd00:201::1ff",
        &[],
    )
}

/// dhclient -6 once (`-1`), or releasing (`-r`), with its own lease file;
/// returns the address its lease file holds last.
fn dhclient6(ns: &str, dir: &TempDir, release: bool) -> String {
    let lf = dir.0.join("dhclient6.leases");
    let o = in_ns(
        ns,
        // Bound, dhclient goes on in the background to renew: stop it (-x,
        // no RELEASE), as the DHCPv4 helper does.
        &format!(
            "timeout 60 dhclient -6 {} -v -sf /bin/true -lf {} -pf {pid} eth0; r=$?; \
             dhclient -6 -x -pf {pid} -sf /bin/true eth0 2>/dev/null; exit $r",
            if release { "-r" } else { "-1" },
            lf.display(),
            pid = dir.0.join("dhclient6.pid").display(),
        ),
    );
    let text = std::fs::read_to_string(&lf).unwrap_or_default();
    assert!(
        o.status.success() && text.contains("iaaddr"),
        "dhclient -6 got no lease (apt-get install isc-dhcp-client): {}{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    text.rsplit("iaaddr ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned()
}

/// The client's MAC on `eth0`.
fn mac(ns: &str) -> String {
    let o = in_ns(ns, "cat /sys/class/net/eth0/address");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn dhclient_and_dhcpcd_get_ipv6_leases_that_survive_a_kill_and_are_released() {
    let mut net = Net::new("v6");
    let (s, c) = pair6(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-clients");
    let file = dir.0.join("leases");
    let range = "fd00:201::100,fd00:201::1ff,600";
    let server = start6(&s, &f.root(), "10.201.0.1", &file, range, &[]);

    let held = dhclient6(&c, &dir, false);
    assert_eq!(held, "fd00:201::100");
    // The journal holds it, with the MAC from dhclient's DUID-LLT.
    let mine = mac(&c);
    let listed = leases(&file);
    assert!(
        listed.contains(&(held.clone(), mine.clone())),
        "{listed:?} lacks {held} {mine}"
    );

    // dhcpcd listens for the router advertisement first: DHCPv6 starts only
    // on its M flag, and the prefix it carries becomes an on-link route.
    let conf = dir.0.join("dhcpcd.conf");
    std::fs::write(&conf, "ipv6only\nia_na 7\nnohook resolv.conf\n").unwrap();
    let o = in_ns(
        &c,
        &format!(
            // Its state (DUID, leases) on a tmpfs of this namespace's own
            // mounts: no lease of an earlier run is confirmed instead.
            "mkdir -p /var/lib/dhcpcd /run/dhcpcd && mount -t tmpfs none /var/lib/dhcpcd && \
             mount -t tmpfs none /run/dhcpcd && timeout 60 dhcpcd -f {} -1 -B -t 30 -d eth0 2>&1",
            conf.display()
        ),
    );
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "dhcpcd got no lease (apt-get install dhcpcd-base): {said}"
    );
    assert!(said.contains("Router Advertisement from"), "{said}");
    assert!(said.contains("adding route to fd00:201::/64"), "{said}");
    let added = said
        .lines()
        .find_map(|l| l.split("adding address ").nth(1))
        .unwrap_or_else(|| panic!("dhcpcd added no address: {said}"))
        .trim()
        .trim_end_matches("/128")
        .to_owned();
    assert!(added.starts_with("fd00:201::1"), "{added}");
    assert_ne!(added, held, "two IAs, two addresses");
    let before = leases(&file);
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(
        server.metric_sum("rackboot_dhcp6_replies_total", |l| l.contains("reply")),
        2,
        "dhclient's REQUEST and dhcpcd's Rapid Commit SOLICIT"
    );

    // kill -9 and start again: the leases are still there and honoured.
    drop(server);
    let server = start6(&s, &f.root(), "10.201.0.1", &file, range, &[]);
    assert_eq!(leases(&file), before);
    assert_eq!(dhclient6(&c, &dir, false), held, "the same address again");
    // A released address leaves the journal.
    dhclient6(&c, &dir, true);
    let freed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !leases(&file).iter().any(|(ip, _)| *ip == held)
    });
    assert!(freed, "RELEASE freed the lease: {:?}", leases(&file));
    assert!(server.metric("rackboot_dhcp6_leases") >= 1);
}

#[test]
fn relayed_perfdhcp6_gets_every_exchange_answered_and_malformed_datagrams_are_dropped() {
    let mut net = Net::new("p6");
    let (s, c) = pair6(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-perf");
    let file = dir.0.join("leases");
    let server = start6(
        &s,
        &f.root(),
        "10.201.0.1",
        &file,
        "fd00:201::1:0,fd00:201::1:ffff",
        &[],
    );

    // Malformed datagrams to the servers' multicast address: a cut header, an
    // option running past the end, relays nested 33 deep, 5,000 bytes.
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("eth0"))
to = ("ff02::1:2", 547, 0, socket.if_nametoindex("eth0"))
msg = bytes([1, 1, 2, 3]) + struct.pack("!HH", 1, 10) + bytes(4)
for i in range(33):
    msg = bytes([12, i]) + bytes(32) + struct.pack("!HH", 9, len(msg)) + msg
for bad in [b"\x01\x02", bytes([1, 1, 2, 3]) + struct.pack("!HH", 1, 40) + bytes(8), msg, bytes([1]) * 5000]:
    s.sendto(bad, to)
"#;
    let py = dir.0.join("bad6.py");
    std::fs::write(&py, script).unwrap();
    let o = in_ns(&c, &format!("python3 {}", py.display()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dropped = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        server.metric_sum("rackboot_dhcp6_dropped_total", |_| true) >= 4
    });
    assert!(
        dropped,
        "{} dropped",
        server.metric_sum("rackboot_dhcp6_dropped_total", |_| true)
    );
    // ...and said in the log's drop summary, by reason.
    let summary = crate::dhcp::drop_summary(&server);
    assert!(
        summary.contains("total=4") && summary.contains("dhcp6:"),
        "{summary}"
    );

    // perfdhcp as a relay (-A1): 500 exchanges/s from 2,000 clients for 4 s,
    // then 2 s (-W) for the answers to the last ones: without it a SOLICIT
    // sent in the run's last milliseconds counts as dropped.
    let o = in_ns(
        &c,
        "timeout 60 perfdhcp -6 -l eth0 -A1 -r 500 -R 2000 -p 4 -W 2000000 2>&1",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("SOLICIT-ADVERTISE"),
        "perfdhcp did not run (apt-get install kea-admin): {out}"
    );
    let stat = |section: &str, key: &str| -> u64 {
        out.split(section)
            .nth(1)
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix(key)))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} under {section}: {out}"))
    };
    for section in ["SOLICIT-ADVERTISE", "REQUEST-REPLY"] {
        let sent = stat(section, "sent packets:");
        assert!(sent > 1000, "{section}: {out}");
        assert_eq!(stat(section, "received packets:"), sent, "{section}: {out}");
        assert_eq!(stat(section, "rejected leases:"), 0, "{section}: {out}");
    }
    assert!(out.contains("non unique addresses: 0"), "{out}");
    // The bindings are on disk: perfdhcp draws its clients at random from
    // 2,000, so each is bound once however often it was drawn.
    let bound = leases(&file).len();
    assert!((500..=2000).contains(&bound), "{bound} leases: {out}");
}

/// An EDK2-shaped DHCPv6 PXE client: a SOLICIT with Rapid Commit, arch
/// `arch` and vendor class `class`, from port 546 of the link-local address;
/// prints the REPLY's address (IAADDR) and boot file URL (option 59).
const PXE6_CLIENT: &str = r#"
import socket, struct, sys
arch, klass = int(sys.argv[1]), sys.argv[2].encode()
def opt(c, d): return struct.pack("!HH", c, len(d)) + d
ifx = socket.if_nametoindex("eth0")
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifx)
s.bind(("::", 546, 0, ifx))
s.settimeout(2)
duid = bytes([0, 4]) + bytes(range(16))
msg = (bytes([1, 0x12, 0x34, 0x56]) + opt(1, duid) + opt(14, b"") + opt(6, bytes([0, 59, 0, 23]))
       + opt(3, struct.pack("!III", 1, 0, 0)) + opt(8, b"\0\0")
       + opt(16, struct.pack("!IH", 343, len(klass)) + klass) + opt(61, struct.pack("!H", arch)))
for _ in range(5):
    s.sendto(msg, ("ff02::1:2", 547, 0, ifx))
    try:
        data = s.recv(2048)
        break
    except socket.timeout:
        continue
else:
    sys.exit("no reply")
def opts(b):
    while len(b) >= 4:
        c, n = struct.unpack("!HH", b[:4])
        yield c, b[4:4 + n]
        b = b[4 + n:]
o = dict(opts(data[4:]))
ia = o[3]
addr = dict(opts(ia[12:]))[5][:16]
print(socket.inet_ntop(socket.AF_INET6, addr), o[59].decode())
"#;

#[test]
fn an_ipv6_pxe_client_fetches_its_boot_file_over_tftp_and_http_on_ipv6() {
    let mut net = Net::new("b6");
    let (s, c) = pair6(&mut net);
    let dir = TempDir::new("dhcp6-boot");
    // A root with the x86-64 iPXE binary the built-in rules name (200 KB of
    // pseudo-random bytes: a multi-block TFTP transfer).
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let efi: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("ipxe.efi"), &efi).unwrap();
    let file = dir.0.join("leases");
    // Both listeners on [::]: one dual-stack socket each, as the defaults
    // with [dhcp6] are.
    let range = "fd00:201::100,fd00:201::1ff";
    let server = start6(&s, &root, "[::]", &file, range, &["--tftp", "[::]:69"]);
    let port = server.addr.port();
    let py = dir.0.join("pxe6.py");
    std::fs::write(&py, PXE6_CLIENT).unwrap();
    let ask = |arch: u16, class: &str| -> (String, String) {
        let o = in_ns(&c, &format!("python3 {} {arch} {class}", py.display()));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut w = out.split_whitespace();
        (w.next().unwrap().to_owned(), w.next().unwrap().to_owned())
    };
    // UEFI PXE: a TFTP URL on the server's IPv6 address.
    let (addr, url) = ask(7, "PXEClient:Arch:00007:UNDI:003000");
    assert!(addr.starts_with("fd00:201::1"), "{addr}");
    let name = url
        .strip_prefix(&format!("tftp://[{SERVER6}]/"))
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    // The client takes its address (and the prefix's route), as firmware does.
    sh(&format!("ip -n {c} addr add {addr}/64 dev eth0 nodad"));
    let got = dir.0.join("nbp");
    let o = in_ns(
        &c,
        &format!(
            "cd {} && timeout 20 tftp -6 {SERVER6} -c get {name} nbp",
            dir.0.display()
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read(root.join(&name)).unwrap();
    assert_eq!(
        std::fs::read(&got).unwrap(),
        want,
        "{name} over TFTP on IPv6"
    );

    // UEFI HTTP boot: an HTTP URL on [server]:port, fetched over IPv6.
    let (_, url) = ask(16, "HTTPClient:Arch:00016:UNDI:003001");
    assert_eq!(url, format!("http://[{SERVER6}]:{port}/ipxe.efi"));
    let o = in_ns(
        &c,
        &format!("curl -sf -o {} {url}", dir.0.join("efi").display()),
    );
    assert!(o.status.success(), "{url}");
    assert_eq!(std::fs::read(dir.0.join("efi")).unwrap(), efi);
    // The same sockets still serve IPv4.
    let o = in_ns(
        &c,
        &format!(
            "ip addr add 10.201.0.50/24 dev eth0 && curl -sf -o /dev/null http://10.201.0.1:{port}/ipxe.efi"
        ),
    );
    assert!(o.status.success(), "HTTP on IPv4 beside IPv6");
    let log = server.log().join("\n");
    assert!(
        log.contains(&format!("file=/{name}")) && log.contains("result=done"),
        "{log}"
    );
}

#[test]
fn an_ipv6_only_link_is_served_without_an_ipv4_address_anywhere() {
    let mut net = Net::new("o6");
    let (s, c) = (net.ns("s"), net.ns("c"));
    Net::veth(&s, "eth0", None, &c, "eth0", None);
    sh(&format!("ip -n {s} addr add {SERVER6}/64 dev eth0 nodad"));
    settle(&c);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-only");
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        format!(
            "[dhcp]\ninterface = \"eth0\"\nlease_file = \"{}/leases\"\n\
             [[dhcp6.subnet]]\nranges = [\"fd00:201::100-fd00:201::1ff\"]\n",
            dir.0.display()
        ),
    )
    .unwrap();
    let server = Server::start_in(
        Some(&s),
        "[::]",
        &f.root(),
        &["--config", config.to_str().unwrap(), "--interface", "eth0"],
    );
    let held = dhclient6(&c, &dir, false);
    assert_eq!(held, "fd00:201::100");
    sh(&format!("ip -n {c} addr add {held}/64 dev eth0 nodad"));
    let url = format!("http://[{SERVER6}]:{}/boot.ipxe", server.addr.port());
    let o = in_ns(&c, &format!("curl -sf {url}"));
    assert!(o.status.success(), "{url}");
    assert_eq!(
        o.stdout,
        std::fs::read(f.root().join("boot.ipxe")).unwrap(),
        "{url}"
    );
    assert!(
        in_ns(&c, "ip -4 addr show dev eth0").stdout.is_empty(),
        "no IPv4 on the link"
    );
}

#[test]
fn a_reload_changes_the_dhcpv6_pools_and_keeps_the_leases() {
    let mut net = Net::new("v6r");
    let (s, c) = pair6(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-reload");
    let file = dir.0.join("leases");
    let config = dir.0.join("rackboot.toml");
    let write = |range6: &str| {
        std::fs::write(
            &config,
            format!(
                "[dhcp]\ninterface = \"eth0\"\nlease_file = {:?}\n\
                 [[dhcp.subnet]]\nranges = [\"10.201.0.100-10.201.0.199\"]\n\
                 [dhcp6]\n[[dhcp6.subnet]]\nranges = [\"{range6}\"]\nvalid_secs = 600\n",
                file.to_str().unwrap()
            ),
        )
        .unwrap();
    };
    write("fd00:201::100-fd00:201::1ff");
    let server = Server::start_in(
        Some(&s),
        "10.201.0.1",
        &f.root(),
        &["--config", config.to_str().unwrap()],
    );
    let first = dhclient6(&c, &dir, false);
    assert_eq!(first, "fd00:201::100");

    // The pool moves: a reload takes it without a restart, and says what
    // became of the lease in the old one (kept, not renewed).
    write("fd00:201::200-fd00:201::2ff");
    let (code, body) = server.api("POST", "/api/v1/reload");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("dhcp6: 1 subnets, 1 active leases in no pool now"),
        "{body}"
    );
    let other = TempDir::new("dhcp6-reload-2");
    let second = dhclient6(&c, &other, false);
    assert!(second.starts_with("fd00:201::2"), "{second}");
    // The first lease is still in the journal.
    assert!(
        leases(&file).iter().any(|(ip, _)| *ip == first),
        "{:?}",
        leases(&file)
    );
    // The admin API lists both families' leases, with the client's MAC.
    let (code, body) = server.api("GET", "/api/v1/leases");
    assert_eq!(code, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    for ip in [&first, &second] {
        let l = listed
            .iter()
            .find(|l| l["ip"] == ip.as_str())
            .unwrap_or_else(|| panic!("{ip} not in {body}"));
        assert_eq!(l["mac"], mac(&c).as_str(), "{body}");
        assert_eq!(l["state"], "active", "{body}");
    }
    // The API frees a DHCPv6 lease, durably: the journal drops it.
    let (code, body) = server.api("DELETE", &format!("/api/v1/leases/{first}"));
    assert_eq!(code, 200, "{body}");
    assert!(
        !leases(&file).iter().any(|(ip, _)| *ip == first),
        "{:?}",
        leases(&file)
    );
    let (code, body) = server.api("DELETE", &format!("/api/v1/leases/{first}"));
    assert_eq!(code, 404, "{body}");

    // Turning DHCPv6 off needs a restart, and the reload says so.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .split("[dhcp6]")
            .next()
            .unwrap(),
    )
    .unwrap();
    let (_, body) = server.api("POST", "/api/v1/reload");
    assert!(body.contains("[dhcp6] on or off"), "{body}");
}

#[test]
fn another_router_is_named_with_what_it_advertises_and_what_that_means() {
    let mut net = Net::new("v6o");
    let (s, c) = pair6(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-other-router");
    let server = serve6(&s, &f, &dir);
    // A SLAAC router on the link: no M flag, a default route, an autonomous
    // prefix (raw ICMPv6; the kernel fills in the checksum).
    let send = r#"
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
ra = bytes([134, 0, 0, 0, 64, 0]) + struct.pack("!HII", 1800, 0, 0)
ra += bytes([3, 4, 64, 0xc0]) + struct.pack("!III", 86400, 14400, 0)
ra += socket.inet_pton(socket.AF_INET6, "2001:db8:7::")
s.sendto(ra, ("ff02::1", 0, 0, socket.if_nametoindex("eth0")))
"#;
    let script = dir.0.join("ra.py");
    std::fs::write(&script, send).unwrap();
    let o = in_ns(&c, &format!("python3 {}", script.display()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let router = {
        let o = in_ns(&c, "ip -6 -o addr show dev eth0 scope link");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap()
            .to_owned()
    };
    let t0 = std::time::Instant::now();
    let line = loop {
        let log = server.log();
        if let Some(l) = log.iter().find(|l| l.contains("another IPv6 router")) {
            break l.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", log.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    };
    for want in [
        router.as_str(),
        "M 0, O 0, router lifetime 1800 s, prefixes [2001:db8:7::/64 LA]",
        "without the M flag",
        "AdvManagedFlag",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
}

#[test]
fn tftp_answers_from_the_address_each_request_was_sent_to() {
    let mut net = Net::new("v6t");
    let (s, c) = pair6(&mut net);
    // A second address of each family on the server's interface: replies
    // must leave from the one the client asked, or its TFTP drops them.
    sh(&format!(
        "ip -n {s} addr add fd00:201::2/64 dev eth0 nodad && ip -n {s} addr add 10.201.0.2/24 dev eth0 && \
         ip -n {c} addr add fd00:201::50/64 dev eth0 nodad && ip -n {c} addr add 10.201.0.50/24 dev eth0"
    ));
    let f = Fixture::new();
    let dir = TempDir::new("dhcp6-tftp-source");
    let _server = serve6(&s, &f, &dir);
    let script = dir.0.join("rrq.py");
    std::fs::write(
        &script,
        r#"
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(3)
for _ in range(3):
    s.sendto(b"\x00\x01big.bin\x00octet\x00", (sys.argv[1], 69))
    try:
        data, src = s.recvfrom(2048)
        break
    except socket.timeout:
        continue
else:
    sys.exit("no answer")
print(src[0], data[:2].hex())
"#,
    )
    .unwrap();
    for (asked, other) in [
        ("fd00:201::2", "fd00:201::1"),
        ("fd00:201::1", "fd00:201::2"),
        ("10.201.0.2", "10.201.0.1"),
    ] {
        let o = in_ns(&c, &format!("python3 {} {asked}", script.display()));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{asked}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(out.trim(), format!("{asked} 0003"), "not from {other}");
    }
}

#[test]
fn a_dual_stack_storm_boots_both_families_from_raw_frames_on_the_link() {
    // `rackboot storm --interface --family dual` against rackboot serving
    // DHCPv4 and DHCPv6 on one link: the IPv6 machines' SOLICITs leave as
    // frames from their MACs and link-local addresses, they answer the
    // server kernel's neighbor solicitations, and they load the NBP, script,
    // kernel and initrd over IPv6 from option 59's URLs.
    let _turn = crate::support::heavy();
    let mut net = Net::new("sd");
    let (s, c) = pair6(&mut net);
    // The storm host's own addresses; it takes the DHCPv6 pool as local,
    // so that IPv6 machines' TFTP and HTTP leave from their leases (the
    // IPv4 ones leave from 10.201.0.2).
    sh(&format!(
        "ip -n {c} addr add 10.201.0.2/24 dev eth0 && ip -n {c} addr add fd00:201::2/64 dev eth0 nodad && \
         ip -n {c} -6 route add local fd00:201::100/120 dev eth0"
    ));
    let dir = TempDir::new("storm-dual");
    let root = dir.0.join("root");
    crate::storm::netboot_tree(&root, "unused");
    // Host-absolute paths: iPXE resolves them against the script's URL, so
    // one script serves both families.
    std::fs::write(
        root.join("boot.ipxe"),
        "#!ipxe\nkernel /vmlinuz initrd=initrd.gz auto=true url=/preseed.cfg\ninitrd /initrd.gz\nboot\n",
    )
    .unwrap();
    let file = dir.0.join("leases");
    let range = "fd00:201::100,fd00:201::1ff";
    let server = start6(&s, &root, "[::]", &file, range, &["--tftp", "[::]:69"]);
    let (out, r) = crate::storm::storm(
        Some(&c),
        &[
            "--interface",
            "eth0",
            "--family",
            "dual",
            "--machines",
            "24",
            "--mix",
            "edk2=1,ipxe-efi=1,uefi-http=1",
            "--seed",
            "11",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("families: ipv4 12/12 booted, ipv6 12/12 booted"),
        "{stdout}"
    );
    use crate::storm::{n, phase};
    assert_eq!(n(&phase(&r, "answers")["count"]), 24);
    assert_eq!(n(&phase(&r, "kernel")["bytes"]), 24 * 8_200_000);
    assert!(
        r["target"]
            .as_str()
            .unwrap()
            .contains("each IPv6 one from its leased address"),
        "{r:#}"
    );
    // The server saw both families: each IPv6 machine's TFTP and HTTP from
    // its lease (fd00:201::1xx), and DHCPv6 leases beside the DHCPv4 ones in
    // its journal.
    let log = server.log().join("\n");
    assert!(
        log.lines().any(|l| l.contains("proto=tftp")
            && l.contains("file=/ipxe.efi result=done")
            && l.contains("peer=[fd00:201::1")),
        "no TFTP over IPv6:\n{log}"
    );
    for target in ["/boot.ipxe", "/vmlinuz", "/initrd.gz", "/preseed.cfg"] {
        let count = |v6: bool| {
            log.lines()
                .filter(|l| {
                    l.contains(&format!("target={target} "))
                        && l.contains("status=200")
                        && l.contains("peer=[fd00:201::1") == v6
                })
                .count()
        };
        assert_eq!((count(false), count(true)), (12, 12), "{target}:\n{log}");
    }
    let held = leases(&file);
    let v6 = held.iter().filter(|(ip, _)| ip.contains(':')).count();
    let v4 = held.len() - v6;
    // An IPv4 machine keeps one lease (its MAC is its client id); an IPv6
    // one at most two (firmware and iPXE share a DUID-UUID, the installer
    // has its own DUID).
    assert_eq!(v4, 12, "{held:?}");
    assert!((12..=24).contains(&v6), "{held:?}");
}
