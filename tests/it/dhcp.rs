//! DHCP across real links: network namespaces joined by veth pairs (and a bridge
//! where several hosts share a segment), rackboot in one, real clients (busybox
//! udhcpc, dhclient, dnsmasq, dhcrelay, perfdhcp) and a scripted firmware-like
//! client (dhcp_client.py) in the others. Needs root.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::ns::{in_ns, sh, spawn_in, Kill, Net};
use crate::support::{run, Fixture, Server, TempDir};

pub(crate) fn client(ns: &str, args: &str) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/dhcp_client.py");
    let o = in_ns(ns, &format!("python3 {script} {args}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// The server's "datagrams dropped" log line (it comes at most 5 s after
/// the first drop; waits up to 10 s).
pub(crate) fn drop_summary(server: &Server) -> String {
    let summary = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        server
            .log()
            .into_iter()
            .find(|l| l.contains("datagrams dropped"))
    });
    summary.unwrap_or_else(|| panic!("no drop summary:\n{}", server.log().join("\n")))
}

/// A field of the ACK line, e.g. `"yiaddr"`, as the text after it.
pub(crate) fn ack_field(out: &str, key: &str) -> Option<String> {
    let line = out.lines().find(|l| l.starts_with("{\"ack\": {"))?;
    let at = line.find(&format!("\"{key}\": \""))? + key.len() + 5;
    Some(line[at..].split('"').next()?.to_owned())
}

/// busybox udhcpc once (`-q`): the variables its script saw at `bound`.
fn udhcpc(ns: &str, ifname: &str, dir: &TempDir, extra: &str) -> HashMap<String, String> {
    let script = dir.0.join("udhcpc.sh");
    let env = dir.0.join("udhcpc.env");
    let _ = std::fs::remove_file(&env);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n bound) ip addr add \"$ip/$mask\" dev \"$interface\"; env > {} ;;\nesac\nexit 0\n",
            env.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", script.display()));
    let run = format!(
        "busybox udhcpc -i {ifname} -n -f -t 5 -T 1 -s {} {extra}",
        script.display()
    );
    // `-q` quits without a RELEASE even with `-R`: to release, stop the bound
    // client with SIGTERM instead, as an init system would.
    let cmd = if extra.contains("-R") {
        format!(
            "timeout 30 {run} & pid=$!; for i in $(seq 300); do [ -s {0} ] && break; sleep 0.1; done; \
             kill -TERM $pid; wait $pid",
            env.display()
        )
    } else {
        format!("timeout 30 {run} -q")
    };
    let o = in_ns(ns, &cmd);
    // The address goes only now: flushed at `deconfig`, it could take a queued
    // RELEASE (still waiting for ARP) down with it.
    let _ = in_ns(ns, &format!("ip addr flush dev {ifname}"));
    assert!(
        o.status.success(),
        "udhcpc got no lease (apt-get install busybox): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&env)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// dhclient once (`-1`) with its own lease file; returns the address it holds.
/// dhclient on `ifname`, as a client of its own: it sends a client identifier
/// of its own (busybox udhcpc on the same NIC sends 01 + MAC, which names the
/// NIC itself).
fn dhclient(ns: &str, ifname: &str, dir: &TempDir) -> String {
    let lf = dir.0.join("dhclient.leases");
    let cf = dir.0.join("dhclient.conf");
    std::fs::write(&cf, "send dhcp-client-identifier \"dhclient-test\";\n").unwrap();
    let o = in_ns(
        ns,
        &format!(
            "timeout 60 dhclient -4 -1 -v -cf {} -sf /bin/true -lf {} -pf {} {ifname}; r=$?; dhclient -x -pf {} -sf /bin/true {ifname} 2>/dev/null; exit $r",
            cf.display(),
            lf.display(),
            dir.0.join("dhclient.pid").display(),
            dir.0.join("dhclient.pid").display(),
        ),
    );
    let text = std::fs::read_to_string(&lf).unwrap_or_default();
    assert!(
        o.status.success() && text.contains("fixed-address"),
        "dhclient got no lease (apt-get install isc-dhcp-client): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("option domain-name-servers 10.201.0.1"),
        "{text}"
    );
    let last = text.rsplit("lease {").next().unwrap_or("");
    last.split("fixed-address ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned()
}

pub(crate) fn leases(file: &std::path::Path) -> Vec<(String, String)> {
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &["leases", "--dhcp-lease-file", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(" active "))
        .map(|l| {
            let mut f = l.split(' ');
            (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
        })
        .collect()
}

/// Server 10.201.0.1 on `eth0` of one namespace, clients on `eth0` of another.
pub(crate) fn pair(net: &mut Net) -> (String, String) {
    let (s, c) = (net.ns("s"), net.ns("c"));
    Net::veth(&s, "eth0", Some("10.201.0.1/24"), &c, "eth0", None);
    (s, c)
}

pub(crate) fn start(s: &str, f: &Fixture, leases: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--interface",
        "eth0",
        "--dhcp-lease-file",
        leases.to_str().unwrap(),
        "--no-access-log",
    ];
    args.extend_from_slice(extra);
    Server::start_in(Some(s), "10.201.0.1", &f.root(), &args)
}

/// rackboot on `eth0` of `ns` (HTTP on `ip`) with a config file: `[dhcp]` with
/// its journal in `dir`, then `rest` (more [dhcp] keys, subnets).
fn start_with_config(ns: &str, ip: &str, f: &Fixture, dir: &TempDir, rest: &str) -> Server {
    let config = dir.0.join("rackboot.toml");
    let text = format!(
        "[dhcp]\ninterface = \"eth0\"\nlease_file = \"{}/leases\"\n{rest}",
        dir.0.display()
    );
    std::fs::write(&config, text).unwrap();
    let args = ["--config", config.to_str().unwrap(), "--no-access-log"];
    Server::start_in(Some(ns), ip, &f.root(), &args)
}

#[test]
fn udhcpc_and_dhclient_get_leases_that_survive_a_restart() {
    let mut net = Net::new("a");
    let (s, c) = pair(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp-restart");
    let file = dir.0.join("leases");
    let range = ["--dhcp-range", "10.201.0.100,10.201.0.199,600"];
    let server = start(&s, &f, &file, &range);
    let env = udhcpc(&c, "eth0", &dir, "");
    let ip = env["ip"].clone();
    assert!(ip.starts_with("10.201.0.1"), "{env:?}");
    assert_eq!(env["subnet"], "255.255.255.0");
    assert_eq!(env["router"], "10.201.0.1");
    assert_eq!(env["dns"], "10.201.0.1");
    assert_eq!(env["lease"], "600");
    assert_eq!(env["serverid"], "10.201.0.1");
    let held = dhclient(&c, "eth0", &dir);
    assert_ne!(held, ip, "two clients, two addresses");
    let before = leases(&file);
    assert_eq!(before.len(), 2, "{before:?}");

    // kill -9 and start again: both leases are still there and honoured.
    drop(server);
    let _server = start(&s, &f, &file, &range);
    assert_eq!(leases(&file), before);
    assert_eq!(
        dhclient(&c, "eth0", &dir),
        held,
        "INIT-REBOOT keeps the address"
    );
    let env = udhcpc(&c, "eth0", &dir, &format!("-r {ip}"));
    assert_eq!(env["ip"], ip);
    // A new machine gets neither.
    let (ok, out) = client(&c, "eth0 52:54:00:aa:00:01 dora --wait 1");
    assert!(ok, "{out}");
    let other = ack_field(&out, "yiaddr").unwrap();
    assert!(other != ip && other != held, "{out}");
}

#[test]
fn release_frees_and_decline_quarantines() {
    let mut net = Net::new("r");
    let (s, c) = pair(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp-release");
    let file = dir.0.join("leases");
    let _server = start(
        &s,
        &f,
        &file,
        &["--dhcp-range", "10.201.0.100,10.201.0.199"],
    );
    // udhcpc -R releases its lease when it quits.
    let env = udhcpc(&c, "eth0", &dir, "-R");
    assert_eq!(env["ip"], "10.201.0.100");
    // The RELEASE is unicast and unanswered: give the server a moment to log it.
    let freed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        leases(&file).is_empty()
    });
    assert!(freed, "RELEASE freed the lease: {:?}", leases(&file));
    let (ok, out) = client(&c, "eth0 52:54:00:bb:00:01 dora");
    assert!(ok, "{out}");
    assert_eq!(ack_field(&out, "yiaddr").as_deref(), Some("10.201.0.100"));

    let (ok, out) = client(&c, "eth0 52:54:00:bb:00:02 dora");
    assert!(ok, "{out}");
    let bad = ack_field(&out, "yiaddr").unwrap();
    let (ok, out) = client(
        &c,
        &format!("eth0 52:54:00:bb:00:02 decline {bad} 10.201.0.1"),
    );
    assert!(ok, "{out}");
    for mac in ["52:54:00:bb:00:02", "52:54:00:bb:00:03"] {
        let (ok, out) = client(&c, &format!("eth0 {mac} dora"));
        assert!(ok, "{out}");
        assert_ne!(
            ack_field(&out, "yiaddr").unwrap(),
            bad,
            "declined address handed out again"
        );
    }
}

#[test]
fn firmware_identities_get_what_the_boot_policy_says() {
    let mut net = Net::new("p");
    let (s, c) = pair(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp-policy");
    let server = start(
        &s,
        &f,
        &dir.0.join("leases"),
        &["--dhcp-range", "10.201.0.100,10.201.0.199"],
    );
    let http = server.addr.port();
    let edk2 = "--arch 7 --vendor PXEClient:Arch:00007:UNDI:003000 --uuid";
    let (ok, out) = client(&c, &format!("eth0 52:54:00:cc:00:01 dora {edk2}"));
    assert!(ok, "{out}");
    assert_eq!(
        ack_field(&out, "file").as_deref(),
        Some("ipxe.efi"),
        "{out}"
    );
    assert_eq!(ack_field(&out, "siaddr").as_deref(), Some("10.201.0.1"));
    assert!(
        !out.contains("\"60\":"),
        "no bare PXEClient in a full offer: {out}"
    );

    let ipxe = "--arch 7 --vendor PXEClient:Arch:00007:UNDI:003010 --user-class iPXE --ipxe";
    let (ok, out) = client(&c, &format!("eth0 52:54:00:cc:00:01 dora {ipxe}"));
    assert!(ok, "{out}");
    assert_eq!(
        ack_field(&out, "file"),
        Some(format!("http://10.201.0.1:{http}/boot.ipxe")),
        "iPXE gets the script, never the binary again: {out}"
    );
    assert!(
        out.contains("\"175\": \"b00101\""),
        "no-pxedhcp sent: {out}"
    );

    let http_boot = "--arch 16 --vendor HTTPClient:Arch:00016:UNDI:003001";
    let (ok, out) = client(&c, &format!("eth0 52:54:00:cc:00:02 dora {http_boot}"));
    assert!(ok, "{out}");
    assert_eq!(
        ack_field(&out, "file"),
        Some(format!("http://10.201.0.1:{http}/ipxe.efi"))
    );
    assert!(
        out.contains("\"60\": \"48545450436c69656e74\""),
        "HTTPClient echoed: {out}"
    );

    let bios = "--arch 0 --vendor PXEClient:Arch:00000:UNDI:002001";
    let (ok, out) = client(&c, &format!("eth0 52:54:00:cc:00:03 dora {bios}"));
    assert!(ok, "{out}");
    assert_eq!(ack_field(&out, "file").as_deref(), Some("undionly.kpxe"));

    let (ok, out) = client(&c, "eth0 52:54:00:cc:00:01 dora --vendor d-i");
    assert!(ok, "{out}");
    assert_eq!(ack_field(&out, "file").as_deref(), Some(""), "{out}");
    assert!(
        out.contains("\"6\": \"0ac90001\""),
        "DNS for the installer: {out}"
    );

    // Garbage on :67 is dropped and service goes on.
    sh(&format!("ip -n {c} addr add 10.201.0.9/24 dev eth0"));
    let (ok, out) = client(&c, "eth0 52:54:00:cc:00:09 garbage 10.201.0.1");
    assert!(ok, "{out}");
    sh(&format!("ip -n {c} addr del 10.201.0.9/24 dev eth0"));
    let (ok, out) = client(&c, "eth0 52:54:00:cc:00:04 dora");
    assert!(ok, "{out}");
    // The six unusable datagrams (empty, truncated, bad cookie, hlen 100, an
    // option past the end, 300 options) are counted in one summary line; the
    // REQUEST for an address on no network was NAKed and the 255-byte client id
    // was offered an address.
    let summary = drop_summary(&server);
    assert!(summary.contains("total=6"), "{summary}");
}

/// Server `s` (.1), dnsmasq `d` (.2) and client `c` (no address) on one bridge
/// in `10.NET.0.0/24`.
pub(crate) fn shared_segment(net: &mut Net, subnet: u8) -> (String, String, String) {
    let (s, d, c, sw) = (net.ns("s"), net.ns("d"), net.ns("c"), net.ns("w"));
    sh(&format!(
        "ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up"
    ));
    let (a, b) = (format!("10.{subnet}.0.1/24"), format!("10.{subnet}.0.2/24"));
    for (ns, ip, port) in [
        (&s, Some(&*a), "p1"),
        (&d, Some(&*b), "p2"),
        (&c, None, "p3"),
    ] {
        Net::veth(&sw, port, None, ns, "eth0", ip);
        sh(&format!("ip -n {sw} link set {port} master br0"));
    }
    (s, d, c)
}

/// dnsmasq as a full DHCP server on `eth0` of `ns`, handing out `range`.
fn dnsmasq(ns: &str, dir: &TempDir, range: &str) -> Kill {
    assert!(
        run("sh", &["-c", "command -v dnsmasq"]).status.success(),
        "dnsmasq is not installed: apt-get install dnsmasq-base"
    );
    let cmd = format!(
        "exec dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root --interface=eth0 --bind-interfaces \
         --dhcp-range={range},600 --no-ping --dhcp-leasefile={0}/dnsmasq.leases --pid-file={0}/dnsmasq.pid",
        dir.0.display()
    );
    Kill(spawn_in(ns, &cmd))
}

#[test]
fn a_request_for_dnsmasqs_offer_leaves_no_lease_and_no_hold_behind() {
    let mut net = Net::new("o");
    let (s, d, c) = shared_segment(&mut net, 206);
    let dir = TempDir::new("dhcp-two");
    let _dnsmasq = dnsmasq(&d, &dir, "10.206.0.150,10.206.0.199");
    let f = Fixture::new();
    let file = dir.0.join("leases");
    let _server = Server::start_in(
        Some(&s),
        "10.206.0.1",
        &f.root(),
        &[
            "--interface",
            "eth0",
            "--dhcp-range",
            "10.206.0.100,10.206.0.149",
            "--dhcp-lease-file",
            file.to_str().unwrap(),
            "--no-access-log",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = client(
        &c,
        "eth0 52:54:00:ee:00:01 dora --prefer 10.206.0.2 --wait 2",
    );
    assert!(ok, "{out}");
    let offers = out.lines().next().unwrap();
    assert!(
        offers.contains("\"yiaddr\": \"10.206.0.100\""),
        "both servers offered: {offers}"
    );
    let ip = ack_field(&out, "yiaddr").unwrap();
    assert!(
        ip.starts_with("10.206.0.1") && ip.as_str() >= "10.206.0.150",
        "{out}"
    );
    assert!(
        leases(&file).is_empty(),
        "no lease for a client that chose dnsmasq"
    );
    // The address rackboot held for that offer went back to the pool at once.
    let (ok, out) = client(
        &c,
        "eth0 52:54:00:ee:00:02 dora --prefer 10.206.0.1 --wait 2",
    );
    assert!(ok, "{out}");
    assert_eq!(ack_field(&out, "yiaddr").as_deref(), Some("10.206.0.100"));
    assert_eq!(leases(&file).len(), 1);
}

#[test]
fn proxy_dhcp_beside_dnsmasq_gives_the_boot_file_and_answers_on_4011() {
    let mut net = Net::new("x");
    let (s, d, c) = shared_segment(&mut net, 202);
    let dir = TempDir::new("dhcp-proxy");
    let _dnsmasq = dnsmasq(&d, &dir, "10.202.0.50,10.202.0.99");
    let f = Fixture::new();
    let _server = Server::start_in(
        Some(&s),
        "10.202.0.1",
        &f.root(),
        &["--interface", "eth0", "--dhcp-proxy", "--no-access-log"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let edk2 =
        "--arch 7 --vendor PXEClient:Arch:00007:UNDI:003000 --uuid --prefer 10.202.0.2 --wait 2";
    let (ok, out) = client(&c, &format!("eth0 52:54:00:dd:00:01 dora {edk2}"));
    assert!(ok, "{out}");
    let offers = out.lines().next().unwrap();
    assert!(
        offers.contains("\"server\": \"10.202.0.1\"") && offers.contains("\"yiaddr\": \"0.0.0.0\""),
        "rackboot's proxy offer carries no address: {offers}"
    );
    assert!(offers.contains("\"file\": \"ipxe.efi\""), "{offers}");
    let ip = ack_field(&out, "yiaddr").unwrap();
    assert!(ip.starts_with("10.202.0."), "address from dnsmasq: {out}");
    sh(&format!("ip -n {c} addr add {ip}/24 dev eth0"));
    let (ok, out) = client(
        &c,
        &format!("eth0 52:54:00:dd:00:01 pxe4011 10.202.0.1 {edk2}"),
    );
    assert!(ok, "no answer on 4011: {out}");
    assert_eq!(ack_field(&out, "file").as_deref(), Some("ipxe.efi"));
    assert_eq!(ack_field(&out, "yiaddr").as_deref(), Some("0.0.0.0"));
    sh(&format!("ip -n {c} addr del {ip}/24 dev eth0"));
    // A client that is not PXE is left to dnsmasq alone.
    let (ok, out) = client(&c, "eth0 52:54:00:dd:00:02 dora --vendor d-i --wait 2");
    assert!(ok, "{out}");
    assert!(
        !out.contains("10.202.0.1\""),
        "proxy answered a non-PXE client: {out}"
    );
}

#[test]
fn a_relayed_client_gets_an_address_in_its_own_subnet_and_option_82_back() {
    let mut net = Net::new("y");
    let (s, r, c) = (net.ns("s"), net.ns("r"), net.ns("c"));
    Net::veth(
        &s,
        "eth0",
        Some("10.203.0.1/24"),
        &r,
        "up0",
        Some("10.203.0.2/24"),
    );
    Net::veth(&r, "down0", Some("10.204.0.1/24"), &c, "eth0", None);
    sh(&format!("ip -n {s} route add 10.204.0.0/24 via 10.203.0.2"));
    let dir = TempDir::new("dhcp-relay");
    let f = Fixture::new();
    let _server = start_with_config(
        &s,
        "10.203.0.1",
        &f,
        &dir,
        "[[dhcp.subnet]]\nranges = [\"10.203.0.100-10.203.0.150\"]\n\
         [[dhcp.subnet]]\nnetwork = \"10.204.0.0/24\"\nranges = [\"10.204.0.100-10.204.0.150\"]\n\
         router = \"10.204.0.1\"\n",
    );
    let pcap = dir.0.join("relay.pcap");
    let capture = Capture::start(&r, "up0", "udp port 67", &pcap);
    assert!(
        run("sh", &["-c", "command -v dhcrelay"]).status.success(),
        "dhcrelay is missing: apt-get install isc-dhcp-relay"
    );
    let _relay = Kill(spawn_in(
        &r,
        "exec dhcrelay -4 -d -a -iu up0 -id down0 10.203.0.1",
    ));
    std::thread::sleep(Duration::from_millis(500));
    let env = udhcpc(&c, "eth0", &dir, "");
    assert_eq!(env["ip"], "10.204.0.100", "{env:?}");
    assert_eq!(env["router"], "10.204.0.1");
    let acks = capture.acks(&["dhcp.option.agent_information_option.agent_circuit_id"]);
    assert!(
        acks.iter().any(|a| a[0].len() >= 2),
        "the ACK to the relay carries option 82 with the relay's circuit id: {acks:?}"
    );
}

/// tshark capturing on an interface of a namespace, until read.
pub(crate) struct Capture {
    tshark: Kill,
    pcap: std::path::PathBuf,
}

impl Capture {
    pub(crate) fn start(ns: &str, iface: &str, filter: &str, pcap: &std::path::Path) -> Self {
        assert!(
            run("sh", &["-c", "command -v tshark"]).status.success(),
            "tshark is missing: apt-get install tshark"
        );
        let tshark = Kill(spawn_in(
            ns,
            &format!(
                "exec tshark -q -i {iface} -f '{filter}' -w {}",
                pcap.display()
            ),
        ));
        // tshark writes the file's header once it captures (seconds, on a
        // loaded machine's first run): wait for that, not for a fixed time.
        let started = std::time::Instant::now();
        while std::fs::metadata(pcap).map_or(0, |m| m.len()) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tshark did not start capturing on {iface} in {ns}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        Self {
            tshark,
            pcap: pcap.to_path_buf(),
        }
    }

    /// Stops the capture; every DHCPACK in it as (address, MAC).
    pub(crate) fn acked(self) -> Vec<(String, String)> {
        self.acks(&["dhcp.hw.mac_addr", "dhcp.ip.your"])
            .into_iter()
            .filter_map(|a| Some((a.get(1)?.clone(), a.first()?.clone())))
            .collect()
    }

    /// Stops the capture; `fields` of every DHCPACK in it, one row per ACK.
    pub(crate) fn acks(self, fields: &[&str]) -> Vec<Vec<String>> {
        self.rows("dhcp.option.dhcp == 5", fields)
    }

    /// Stops the capture; `fields` of every packet `display` matches.
    pub(crate) fn rows(self, display: &str, fields: &[&str]) -> Vec<Vec<String>> {
        // Let the last replies land in the file before tshark goes.
        std::thread::sleep(Duration::from_secs(1));
        drop(self.tshark);
        let pcap = self.pcap.to_str().unwrap();
        let mut args = vec!["-r", pcap, "-Y", display, "-T", "fields"];
        for f in fields {
            args.extend(["-e", f]);
        }
        let o = run("tshark", &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

/// perfdhcp's figures: (sent, received, drops) per exchange kind.
fn perfdhcp(ns: &str, rate: u32, count: u32, extra: &str) -> (String, Vec<(u64, u64, u64)>) {
    assert!(
        run("sh", &["-c", "command -v perfdhcp"]).status.success(),
        "perfdhcp is not installed: apt-get install kea-admin"
    );
    let o = in_ns(
        ns,
        &format!(
            "perfdhcp -4 -l 10.205.0.2 -r {rate} -R {count} -n {count} -p {} -W 2000000 {extra} 10.205.0.1 2>&1",
            count / rate + 10
        ),
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let num = |line: &str| -> u64 {
        line.rsplit(':')
            .next()
            .unwrap()
            .trim()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("sent packets:") {
            let get = |name: &str| {
                lines[i..]
                    .iter()
                    .find(|x| x.trim_start().starts_with(name))
                    .map_or(0, |x| num(x))
            };
            out.push((num(l), get("received packets:"), get("drops:")));
        }
    }
    (text, out)
}

pub(crate) fn perf_pair(net: &mut Net) -> (String, String) {
    let (s, c) = (net.ns("s"), net.ns("c"));
    Net::veth(
        &s,
        "eth0",
        Some("10.205.0.1/16"),
        &c,
        "eth0",
        Some("10.205.0.2/16"),
    );
    (s, c)
}

/// A pool of 20,480 addresses for the perfdhcp tests.
const PERF_POOL: &str =
    "[[dhcp.subnet]]\nranges = [\"10.205.1.0-10.205.80.255\"]\nlease_secs = 3600\n";

#[test]
fn perfdhcp_ten_thousand_clients_dora_without_a_drop() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("f");
    let (s, c) = perf_pair(&mut net);
    let dir = TempDir::new("dhcp-perf");
    let f = Fixture::new();
    let _server = start_with_config(&s, "10.205.0.1", &f, &dir, PERF_POOL);
    let (text, stats) = perfdhcp(&c, 1000, 10_000, "");
    assert_eq!(stats.len(), 2, "{text}");
    for (sent, received, drops) in &stats {
        // perfdhcp's threads may overshoot -n by a few exchanges (10,003 seen
        // on a loaded machine); every one sent must be answered.
        assert!(*sent >= 10_000, "{text}");
        assert_eq!((*received, *drops), (*sent, 0), "{text}");
    }
    let held = leases(&dir.0.join("leases"));
    assert_eq!(held.len(), 10_000);
    let ips: HashSet<_> = held.iter().map(|(ip, _)| ip).collect();
    assert_eq!(ips.len(), 10_000, "no address twice");
}

#[test]
fn kill_9_in_the_middle_of_a_storm_loses_no_acked_lease() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("k");
    let (s, c) = perf_pair(&mut net);
    let dir = TempDir::new("dhcp-kill");
    let f = Fixture::new();
    let server = start_with_config(&s, "10.205.0.1", &f, &dir, PERF_POOL);
    let capture = Capture::start(&c, "eth0", "udp src port 67", &dir.0.join("acks.pcap"));
    let storm = {
        let script =
            "perfdhcp -4 -l 10.205.0.2 -r 500 -R 6000 -n 6000 -p 20 10.205.0.1 >/dev/null 2>&1";
        Kill(spawn_in(&c, script))
    };
    std::thread::sleep(Duration::from_secs(4));
    drop(server); // SIGKILL
                  // The same config file, journal and all.
    let _server = start_with_config(&s, "10.205.0.1", &f, &dir, PERF_POOL);
    let mut storm = storm;
    storm.wait_at_most(Duration::from_secs(40));
    let acks = capture.acked();
    assert!(
        acks.len() > 500,
        "the storm ran on both sides of the kill: {} ACKs",
        acks.len()
    );
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (ip, mac) in &acks {
        let prev = owner.insert(ip, mac);
        assert!(
            prev.is_none_or(|p| p == mac),
            "{ip} ACKed to {} and {mac}",
            prev.unwrap()
        );
    }
    let held: HashMap<String, String> = leases(&dir.0.join("leases")).into_iter().collect();
    for (ip, mac) in &acks {
        assert_eq!(held.get(ip), Some(mac), "ACKed lease {ip} -> {mac} lost");
    }
}

#[test]
fn an_address_someone_already_uses_is_found_by_the_probe_and_skipped() {
    let mut net = Net::new("q");
    let (s, squatter, c) = shared_segment(&mut net, 207);
    // The host at .2 also holds .100 without any lease: a static address.
    sh(&format!(
        "ip -n {squatter} addr add 10.207.0.100/24 dev eth0"
    ));
    let dir = TempDir::new("dhcp-probe");
    let f = Fixture::new();
    let server = start_with_config(
        &s,
        "10.207.0.1",
        &f,
        &dir,
        "probe_ms = 500\n[[dhcp.subnet]]\nranges = [\"10.207.0.100-10.207.0.110\"]\n",
    );
    let env = udhcpc(&c, "eth0", &dir, "");
    assert_eq!(
        env["ip"], "10.207.0.101",
        "the squatted .100 is skipped: {env:?}"
    );
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("answers a ping") && l.contains("10.207.0.100")),
        "the conflict is logged:\n{}",
        server.log().join("\n")
    );
}

#[test]
fn a_router_advertisement_says_no_router_at_start_and_to_each_solicitation() {
    let mut net = Net::new("v");
    let (s, c) = (net.ns("s"), net.ns("c"));
    Net::veth(&s, "eth0", Some("10.207.0.1/24"), &c, "eth0", None);
    // The server's advertisement at start leaves from its link-local address,
    // which the kernel holds back until duplicate detection is done.
    let started = std::time::Instant::now();
    while !String::from_utf8_lossy(
        &in_ns(&s, "ip -6 addr show dev eth0 scope link -tentative").stdout,
    )
    .contains("inet6")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server's link-local address stayed tentative"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = TempDir::new("dhcp-ra");
    let capture = Capture::start(&c, "eth0", "icmp6", &dir.0.join("ra.pcap"));
    let f = Fixture::new();
    let pool = "[[dhcp.subnet]]\nranges = [\"10.207.0.100-10.207.0.200\"]\n";
    let _server = start_with_config(&s, "10.207.0.1", &f, &dir, pool);
    // A host whose link comes up solicits a router (after its link-local
    // address is ready): the server answers at once.
    std::thread::sleep(Duration::from_secs(1));
    sh(&format!(
        "ip -n {c} link set eth0 down && ip -n {c} link set eth0 up"
    ));
    std::thread::sleep(Duration::from_secs(4));
    let server_mac = in_ns(&s, "cat /sys/class/net/eth0/address");
    let server_mac = String::from_utf8_lossy(&server_mac.stdout)
        .trim()
        .to_owned();
    let solicitations = {
        let o = run(
            "tshark",
            &[
                "-r",
                dir.0.join("ra.pcap").to_str().unwrap(),
                "-Y",
                "icmpv6.type == 133",
            ],
        );
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let ras = capture.rows(
        "icmpv6.type == 134",
        &[
            "icmpv6.nd.ra.router_lifetime",
            "icmpv6.nd.ra.flag",
            "ipv6.hlim",
            "icmpv6.opt.linkaddr",
            "icmpv6.opt.prefix",
        ],
    );
    assert!(solicitations >= 1, "the client sent no router solicitation");
    assert!(
        ras.len() >= 2,
        "one advertisement at start and one per solicitation: {ras:?}"
    );
    for ra in &ras {
        assert_eq!(ra[0], "0", "router lifetime 0: {ra:?}");
        assert_eq!(ra[1], "0x00", "no M/O flags: {ra:?}");
        assert_eq!(ra[2], "255", "hop limit 255 (RFC 4861): {ra:?}");
        assert_eq!(ra[3], server_mac, "the server's MAC: {ra:?}");
        assert!(ra.get(4).is_none_or(String::is_empty), "no prefix: {ra:?}");
    }
}

#[test]
fn a_reload_changes_pools_and_reservations_and_keeps_every_lease() {
    let mut net = Net::new("r");
    let (s, c) = pair(&mut net);
    let f = Fixture::new();
    let dir = TempDir::new("dhcp-reload");
    let config = |rest: &str| {
        format!("probe_ms = 0\n[[dhcp.subnet]]\nranges = [\"10.201.0.100-10.201.0.109\"]\n{rest}")
    };
    let server = start_with_config(&s, "10.201.0.1", &f, &dir, &config(""));
    let (ok, out) = client(&c, "eth0 52:54:00:dd:00:01 dora");
    assert!(ok, "{out}");
    let first = ack_field(&out, "yiaddr").unwrap();
    assert!(first.starts_with("10.201.0.10"), "{out}");

    // The pool moves and a machine gets a reservation; the same file,
    // rewritten, reloaded by the CLI.
    let path = dir.0.join("rackboot.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("10.201.0.100-10.201.0.109", "10.201.0.150-10.201.0.159")
        + "[[dhcp.host]]\nmac = \"52:54:00:dd:00:02\"\nip = \"10.201.0.42\"\n";
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["reload", "--admin-socket"])
        .arg(&server.admin)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 active leases in no pool"), "{said}");

    assert_eq!(dora_ip(&c, "52:54:00:dd:00:02"), "10.201.0.42");
    assert!(dora_ip(&c, "52:54:00:dd:00:03").starts_with("10.201.0.15"));
    // The first machine's lease is still in the table (and the journal).
    let held = leases(&dir.0.join("leases"));
    assert!(held.iter().any(|(ip, _)| *ip == first), "{held:?}");
    assert!(server
        .log()
        .iter()
        .any(|l| l.contains("kept until they expire")));

    // A range outside the interface's network refuses the whole reload.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("10.201.0.150-10.201.0.159", "10.99.0.1-10.99.0.9");
    std::fs::write(&path, text).unwrap();
    let (ok, _, err) = crate::support::reload(&server.admin);
    assert!(!ok && err.contains("10.99.0.1"), "{err}");
    assert!(dora_ip(&c, "52:54:00:dd:00:04").starts_with("10.201.0.15"));

    // The admin API lists the leases and frees one, durably.
    let (code, body) = server.api("GET", "/api/v1/leases");
    assert_eq!(code, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let find = |ip: &str| listed.as_array().unwrap().iter().any(|l| l["ip"] == ip);
    assert!(find(&first) && find("10.201.0.42"), "{body}");
    assert!(body.contains("52:54:00:dd:00:02"), "{body}");
    assert_eq!(
        server.api("DELETE", &format!("/api/v1/leases/{first}")).0,
        200
    );
    assert_eq!(
        server.api("DELETE", &format!("/api/v1/leases/{first}")).0,
        404
    );
    assert_eq!(server.api("DELETE", "/api/v1/leases/not-an-ip").0, 400);
    // The same through `rackboot leases`, which asks the running server.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rackboot"))
            .args(args)
            .arg("--admin-socket")
            .arg(&server.admin)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, table) = cli(&["leases", "list"]);
    assert!(
        ok && table.starts_with("IP ") && table.contains("10.201.0.42"),
        "{table}"
    );
    assert!(!table.contains(&format!("{first} ")), "{table}");
    let (ok, said) = cli(&["leases", "free", "10.201.0.42"]);
    assert!(ok && said.contains("freed 10.201.0.42"), "{said}");
    let (ok, said) = cli(&["leases", "free", "10.201.0.42"]);
    assert!(!ok && said.contains("404"), "{said}");
    let held = leases(&dir.0.join("leases"));
    assert!(
        !held
            .iter()
            .any(|(ip, _)| *ip == first || ip == "10.201.0.42"),
        "freed on disk: {held:?}"
    );
}

/// The address a scripted DORA from `mac` is ACKed.
pub(crate) fn dora_ip(ns: &str, mac: &str) -> String {
    let (ok, out) = client(ns, &format!("eth0 {mac} dora"));
    assert!(ok, "{out}");
    ack_field(&out, "yiaddr").unwrap_or_else(|| panic!("no ACK: {out}"))
}

#[test]
fn each_architecture_and_loader_gets_its_own_boot_file_and_grub_its_page_over_tftp() {
    let mut net = Net::new("g");
    let (s, c) = pair(&mut net);
    let f = Fixture::new();
    for (name, seed) in [("ipxe-arm64.efi", 1), ("ipxe-riscv64.efi", 2), ("linux", 3)] {
        std::fs::write(
            f.root().join(name),
            rackboot::store::builtin::filler(4096, seed),
        )
        .unwrap();
    }
    let dir = TempDir::new("dhcp-arch");
    let server = start_with_config(
        &s,
        "10.201.0.1",
        &f,
        &dir,
        "[[dhcp.subnet]]\nranges = [\"10.201.0.100-10.201.0.199\"]\n\
         [[profile]]\nname = \"secure\"\nloader = \"grub\"\nkernel = \"/linux\"\n\
         cmdline = \"console=ttyS0 url={{ config_url }}\"\n\
         [profile.match]\nmac = [\"52:54:00:dd:00:0*\"]\n",
    );
    let url = |file: &str| format!("http://10.201.0.1:{}/{file}", server.addr.port());
    // (MAC, option 93, vendor class, boot file). The root holds iPXE for
    // ARM64 and RISC-V 64, not for 32-bit ARM: that firmware gets a plain
    // lease, never another architecture's binary.
    let cases = [
        (
            "52:54:00:dd:01:01",
            11,
            "PXEClient",
            "ipxe-arm64.efi".to_owned(),
        ),
        ("52:54:00:dd:01:02", 19, "HTTPClient", url("ipxe-arm64.efi")),
        (
            "52:54:00:dd:01:03",
            27,
            "PXEClient",
            "ipxe-riscv64.efi".to_owned(),
        ),
        (
            "52:54:00:dd:01:04",
            28,
            "HTTPClient",
            url("ipxe-riscv64.efi"),
        ),
        ("52:54:00:dd:01:05", 10, "PXEClient", String::new()),
        ("52:54:00:dd:01:06", 18, "HTTPClient", String::new()),
        // The grub profile's machine gets the signed shim; another UEFI PXE
        // machine gets iPXE.
        (
            "52:54:00:dd:00:01",
            7,
            "PXEClient",
            "shimx64.efi".to_owned(),
        ),
        ("52:54:00:dd:01:07", 7, "PXEClient", "ipxe.efi".to_owned()),
    ];
    for (mac, arch, kind, want) in &cases {
        let vendor = format!("{kind}:Arch:{arch:05}:UNDI:003001");
        let (ok, out) = client(
            &c,
            &format!("eth0 {mac} dora --arch {arch} --vendor {vendor}"),
        );
        assert!(ok, "{out}");
        assert_eq!(
            ack_field(&out, "file").as_deref(),
            Some(want.as_str()),
            "arch {arch}: {out}"
        );
    }
    // The signed chain over TFTP, as shim and grub ask for it (tftp-hpa).
    sh(&format!("ip -n {c} addr add 10.201.0.50/24 dev eth0"));
    let get = |name: &str| {
        let out = dir.0.join("got");
        let _ = std::fs::remove_file(&out);
        let o = in_ns(
            &c,
            &format!(
                "tftp 10.201.0.1 -m binary -c get '{name}' {}",
                out.display()
            ),
        );
        assert!(
            o.status.success(),
            "tftp (apt-get install tftp-hpa): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(&out).unwrap_or_default()
    };
    let package = |name: &str, suffix: &str| {
        let o = run("dpkg", &["-L", name]);
        let listing = String::from_utf8_lossy(&o.stdout).into_owned();
        let path = listing
            .lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("{name} is not installed: apt-get install {name}"))
            .to_owned();
        std::fs::read(path).unwrap()
    };
    assert_eq!(
        get("shimx64.efi"),
        package("shim-signed", "/shimx64.efi.signed")
    );
    assert_eq!(
        get("debian-installer/amd64/grubx64.efi"),
        package("grub-efi-amd64-signed", "/grubnetx64.efi.signed"),
        "shim's second stage is served wherever shim asks"
    );
    let stub = String::from_utf8(get("grub/grub.cfg")).unwrap();
    assert!(
        stub.contains("configfile \"($root)/boot.grub?mac=${net_default_mac}"),
        "{stub}"
    );
    // (grub writes the MAC with colons; tftp-hpa's `get` would read those as
    // host:file, so hyphens here, which name the same machine.)
    let page = String::from_utf8(get(
        "/boot.grub?mac=52-54-00-dd-00-01&arch=x86_64&platform=efi",
    ))
    .unwrap();
    // Over TFTP there is no Host header: URLs name the HTTP listener as
    // configured (here an ephemeral port).
    assert!(
        page.contains("    linux /linux console=ttyS0 'url=http://10.201.0.1:")
            && page.contains("/config?mac=52-54-00-dd-00-01&arch=x86_64&platform=efi'\n"),
        "{page}"
    );
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("boot: rendered") && l.contains("page=\"grub\"")),
        "{:?}",
        server.log()
    );
}

/// `rackboot storm --until dhcp --rate`: its report as JSON.
fn dhcp_load(ns: &str, args: &str) -> serde_json::Value {
    let dir = TempDir::new("dhcp-load");
    let json = dir.0.join("load.json");
    let o = in_ns(
        ns,
        &format!(
            "{} storm --until dhcp {args} --json {}",
            env!("CARGO_BIN_EXE_rackboot"),
            json.display()
        ),
    );
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(o.status.success(), "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_storms_dhcp_stream_is_answered_in_full_as_a_relay_and_as_raw_frames() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("l");
    let (s, c) = perf_pair(&mut net);
    let dir = TempDir::new("dhcp-load");
    let f = Fixture::new();
    let server = start_with_config(&s, "10.205.0.1", &f, &dir, PERF_POOL);
    // 3,000 machines as a relay at 10.205.0.2, then 1,000 as raw frames.
    let r = dhcp_load(
        &c,
        "--rate 1000 --duration 3 --relay 10.205.0.2 --server 10.205.0.1 --seed 5",
    );
    let raw = dhcp_load(&c, "--rate 500 --duration 2 --interface eth0 --seed 6");
    for (report, machines) in [(&r, 3000), (&raw, 1000)] {
        assert_eq!(report["machines"], machines, "{report}");
        assert_eq!(report["answered"], machines, "{report}");
        assert_eq!(
            (
                &report["unanswered"],
                &report["naked"],
                &report["duplicates"]
            ),
            (&0.into(), &0.into(), &0.into()),
            "{report}"
        );
    }
    // The server agrees: 4,000 leases, each address once.
    assert_eq!(
        server.metric("rackboot_dhcp_replies_total{type=\"ack\"}"),
        4000
    );
    let held = leases(&dir.0.join("leases"));
    let ips: HashSet<_> = held.iter().map(|(ip, _)| ip).collect();
    assert_eq!((held.len(), ips.len()), (4000, 4000));
}
