//! rackboot from dnsmasq's own configuration, dnsmasq as the oracle: each
//! fixture under tests/fixtures/dnsmasq (a network-boot setup reproduced from
//! public documentation or a repository, named in its first lines) is served
//! first by dnsmasq, then by `rackboot serve --dnsmasq-conf` with the same
//! file on the same link, and the same firmware personas (dhcp_client.py)
//! must get the same answers field by field. Needs root and dnsmasq.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ns::{in_ns, spawn_in, Kill, Net};
use crate::support::{run, Server, TempDir};

/// The server's address on the link; fixtures use 10.90.0.0/24 and `s0`.
const SERVER: &str = "10.90.0.1";
/// The client's address in proxy setups (as if another server gave it).
const CLIENT_AT: &str = "10.90.0.50";

/// (name, dhcp_client.py identity options).
const PERSONAS: &[(&str, &str)] = &[
    (
        "bios-pxe",
        "--arch 0 --vendor PXEClient:Arch:00000:UNDI:002001",
    ),
    (
        "uefi-pxe-7",
        "--arch 7 --vendor PXEClient:Arch:00007:UNDI:003016",
    ),
    (
        "uefi-pxe-9",
        "--arch 9 --vendor PXEClient:Arch:00009:UNDI:003016",
    ),
    (
        "uefi-http",
        "--arch 16 --vendor HTTPClient:Arch:00016:UNDI:003001",
    ),
    (
        "arm64-pxe",
        "--arch 11 --vendor PXEClient:Arch:00011:UNDI:003000",
    ),
    (
        "ipxe-bios",
        "--arch 0 --vendor PXEClient:Arch:00000:UNDI:002001 --user-class iPXE --ipxe",
    ),
    (
        "ipxe-efi",
        "--arch 7 --vendor PXEClient:Arch:00007:UNDI:003016 --user-class iPXE --ipxe",
    ),
    ("plain", ""),
    ("debian-installer", "--vendor d-i"),
];

/// What one persona got: the OFFER, the ACK, and a PXE boot server's ACK
/// (:4011) for the first item of a menu its ACK carried.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    offer: Option<Answer>,
    ack: Option<Answer>,
    boot: Option<Answer>,
}

/// The fields compared.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    kind: u64,
    yiaddr: Ipv4Addr,
    siaddr: String,
    sname: String,
    /// Option 67 when sent, else the file field.
    file: String,
    options: BTreeMap<u8, String>,
}

/// Options not compared: T1/T2 (dnsmasq takes a little off them at random).
const NOT_COMPARED: &[u8] = &[58, 59];

fn answer(v: &Value) -> Option<Answer> {
    let v = v.as_object()?;
    let opts = v["options"].as_object()?;
    let mut options: BTreeMap<u8, String> = opts
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_owned())))
        .filter(|(k, _)| !NOT_COMPARED.contains(k))
        .collect();
    let text = |hex: &str| {
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .to_owned()
    };
    let file = options
        .remove(&67)
        .map(|h| text(&h))
        .unwrap_or_else(|| v["file"].as_str().unwrap_or("").to_owned());
    let sname = options
        .remove(&66)
        .map(|h| text(&h))
        .unwrap_or_else(|| v["sname"].as_str().unwrap_or("").to_owned());
    Some(Answer {
        kind: v["type"].as_u64()?,
        yiaddr: v["yiaddr"].as_str()?.parse().ok()?,
        siaddr: v["siaddr"].as_str()?.to_owned(),
        sname,
        file,
        options,
    })
}

fn dora(ns: &str, mac: &str, identity: &str, proxy: bool) -> Got {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/dhcp_client.py");
    // After a proxy offer, firmware asks the proxy's :4011 from the address
    // another server gave it.
    let at = if proxy {
        format!("--pxe-at {CLIENT_AT}")
    } else {
        String::new()
    };
    let o = in_ns(
        ns,
        &format!("python3 {script} c0 {mac} dora {identity} --wait 2 --first --boot-server {at}"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let mut got = Got {
        offer: None,
        ack: None,
        boot: None,
    };
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(offers) = v.get("offers").and_then(Value::as_array) {
            got.offer = offers.first().and_then(answer);
        }
        if let Some(ack) = v.get("ack") {
            got.ack = answer(ack);
        }
        if let Some(boot) = v.get("boot") {
            got.boot = answer(boot);
        }
    }
    got
}

/// The fixture's dhcp-ranges, as addresses.
fn pools(text: &str) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("dhcp-range="))
        .filter_map(|line| {
            let addrs: Vec<Ipv4Addr> = line
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            Some((*addrs.first()?, *addrs.get(1)?))
        })
        .collect()
}

/// The MACs the fixture reserves.
fn reserved(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("dhcp-host="))
        .filter_map(|l| {
            l.split(',')
                .find(|f| f.len() == 17 && f.matches(':').count() == 5 && !f.contains('*'))
                .map(str::to_owned)
        })
        .collect()
}

/// Each persona (and each reserved MAC, as a plain client) against the
/// server `start` starts; their answers by persona.
fn ask_all(client: &str, text: &str) -> BTreeMap<String, Got> {
    let mut out = BTreeMap::new();
    let proxy = is_proxy(text);
    for (i, (name, identity)) in PERSONAS.iter().enumerate() {
        let mac = format!("02:90:00:00:00:{:02x}", i + 1);
        out.insert((*name).to_owned(), dora(client, &mac, identity, proxy));
    }
    // A reserved machine boots like the rest: as BIOS PXE firmware.
    for mac in reserved(text) {
        out.insert(
            format!("reserved {mac}"),
            dora(client, &mac, PERSONAS[0].1, proxy),
        );
    }
    // So does one reserved by client id (option 61), from a MAC of its own.
    for (i, id) in reserved_ids(text).iter().enumerate() {
        let identity = format!("{} --client-id {id}", PERSONAS[0].1);
        let mac = format!("02:90:00:00:01:{:02x}", i + 1);
        out.insert(
            format!("reserved id:{id}"),
            dora(client, &mac, &identity, proxy),
        );
    }
    out
}

/// The addresses the fixture's dhcp-host lines reserve.
fn reserved_ips(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.strip_prefix("dhcp-host="))
        .flat_map(|l| l.split(',').filter_map(|f| f.trim().parse().ok()))
        .collect()
}

/// The client ids (hex) the fixture reserves.
fn reserved_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("dhcp-host=id:"))
        .filter_map(|l| l.split(',').next())
        .filter(|id| id.contains(':'))
        .map(str::to_owned)
        .collect()
}

/// A proxyDHCP setup: another server gives addresses.
fn is_proxy(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("dhcp-range=") && l.contains(",proxy"))
}

/// Two namespaces joined by a veth: `s0` (10.90.0.1/24) and `c0`.
fn link(net: &mut Net) -> (String, String) {
    let server = net.ns("s");
    let client = net.ns("c");
    Net::veth(&server, "s0", Some("10.90.0.1/24"), &client, "c0", None);
    (server, client)
}

fn run_dnsmasq(ns: &str, conf: &Path, dir: &Path) -> Kill {
    assert!(
        run("sh", &["-c", "command -v dnsmasq"]).status.success(),
        "dnsmasq is not installed: apt-get install dnsmasq"
    );
    let log = dir.join("dnsmasq.log");
    let child = spawn_in(
        ns,
        &format!(
            "exec dnsmasq --keep-in-foreground --conf-file={} --no-ping --user=root \
             --pid-file={} --log-facility={} --log-dhcp",
            conf.display(),
            dir.join("dnsmasq.pid").display(),
            log.display()
        ),
    );
    let kill = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("DHCP")
    {
        assert!(
            Instant::now() < deadline,
            "dnsmasq did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kill
}

/// A fixture with `{DIR}` made the test's directory (the TFTP root).
fn fixture(name: &str, dir: &Path) -> (String, std::path::PathBuf) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dnsmasq/");
    let text = std::fs::read_to_string(format!("{path}{name}"))
        .unwrap()
        .replace("{DIR}", &dir.display().to_string());
    let out = dir.join(name);
    std::fs::write(&out, &text).unwrap();
    (text, out)
}

/// The differences between dnsmasq's answers and rackboot's that are not
/// allowed, as text (empty when they agree).
fn differences(text: &str, want: &BTreeMap<String, Got>, got: &BTreeMap<String, Got>) -> String {
    let mut out = String::new();
    // Which range an address is in (the two servers may pick different
    // addresses, never different ranges).
    let pool_of = |ip: Ipv4Addr| {
        pools(text)
            .into_iter()
            .position(|(a, b)| (u32::from(a)..=u32::from(b)).contains(&u32::from(ip)))
    };
    for (persona, w) in want {
        let g = &got[persona];
        for (step, w, g) in [
            ("OFFER", &w.offer, &g.offer),
            ("ACK", &w.ack, &g.ack),
            ("boot server ACK", &w.boot, &g.boot),
        ] {
            match (w, g) {
                (None, None) => {}
                (Some(w), Some(g)) => {
                    let mut g = g.clone();
                    // Pool clients (a reserved address is no pool address):
                    // any address of the same range (the two servers pick
                    // differently).
                    let reserved = reserved_ips(text);
                    if !reserved.contains(&w.yiaddr)
                        && !reserved.contains(&g.yiaddr)
                        && pool_of(w.yiaddr).is_some()
                        && pool_of(w.yiaddr) == pool_of(g.yiaddr)
                    {
                        g.yiaddr = w.yiaddr;
                    }
                    // The one deliberate difference: rackboot tells iPXE that
                    // no ProxyDHCP offer will come (175.176 = 1), which saves
                    // each iPXE boot ~3 s of waiting for one (bench/storm).
                    if !w.options.contains_key(&175)
                        && g.options.get(&175).map(String::as_str) == Some("b00101")
                    {
                        g.options.remove(&175);
                    }
                    if *w != g {
                        out.push_str(&format!(
                            "{persona} {step}:\n  dnsmasq  {w:?}\n  rackboot {g:?}\n"
                        ));
                    }
                }
                (w, g) => out.push_str(&format!(
                    "{persona} {step}: dnsmasq {}, rackboot {}\n",
                    if w.is_some() {
                        "answered"
                    } else {
                        "was silent"
                    },
                    if g.is_some() {
                        "answered"
                    } else {
                        "was silent"
                    },
                )),
            }
        }
    }
    out
}

/// `rackboot serve --dnsmasq-conf conf` in `ns`, its journal (new, so
/// dnsmasq's leases are imported) in `dir`.
fn rackboot_from(ns: &str, conf: &Path, dir: &Path) -> Server {
    let leases = dir.join("rackboot.leases");
    Server::start_in(
        Some(ns),
        SERVER,
        dir,
        &[
            "--dnsmasq-conf",
            conf.to_str().unwrap(),
            "--interface",
            "s0",
            "--dhcp-lease-file",
            leases.to_str().unwrap(),
        ],
    )
}

/// Serves fixture `name` with dnsmasq, then with rackboot, and compares.
fn same_answers(name: &str) {
    let _turn = crate::support::heavy();
    let mut net = Net::new(&format!("dm{}", name.len()));
    let (server, client) = link(&mut net);
    let dir = TempDir::new("dnsmasq-diff");
    let (text, conf) = fixture(name, &dir.0);
    if is_proxy(&text) {
        let o = in_ns(&client, &format!("ip addr add {CLIENT_AT}/24 dev c0"));
        assert!(o.status.success(), "{o:?}");
    }
    let want = {
        let _dnsmasq = run_dnsmasq(&server, &conf, &dir.0);
        ask_all(&client, &text)
    };
    assert!(
        want.values()
            .any(|g| g.ack.as_ref().is_some_and(|a| !a.file.is_empty())),
        "dnsmasq gave no persona a boot file: the fixture does not exercise boot rules"
    );
    assert!(
        want.values().any(|g| g.ack.is_some()),
        "dnsmasq answered nobody: the fixture or the link is wrong\n{}",
        std::fs::read_to_string(dir.0.join("dnsmasq.log")).unwrap_or_default()
    );
    // A PXE menu in server mode: firmware asks the boot server on :4011.
    if text.contains("\npxe-service=") && !is_proxy(&text) {
        assert!(
            want.values().any(|g| g.boot.is_some()),
            "no persona got dnsmasq's boot server answer: {want:?}"
        );
    }
    // Every machine reserved by client id gets its address from dnsmasq.
    for id in reserved_ids(&text) {
        let ack = want[&format!("reserved id:{id}")].ack.as_ref();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("dhcp-host=id:{id},")));
        let ip = line.and_then(|l| l.split(',').find_map(|f| f.parse::<Ipv4Addr>().ok()));
        assert_eq!(ack.map(|a| a.yiaddr), ip, "id:{id}: {ack:?}");
    }
    let s = rackboot_from(&server, &conf, &dir.0);
    let got = ask_all(&client, &text);
    let diff = differences(&text, &want, &got);
    assert!(
        diff.is_empty(),
        "{name}: rackboot answers differently from dnsmasq:\n{diff}\nrackboot log:\n{}",
        s.log().join("\n")
    );
}

#[test]
fn ipxe_chainloading_recipe() {
    same_answers("ipxe-chainload.conf");
}

#[test]
fn openstack_ironic_inspector() {
    same_answers("ironic-inspector.conf");
}

#[test]
fn openstack_ironic_devstack() {
    same_answers("ironic-devstack.conf");
}

#[test]
fn metal3_ironic_image() {
    same_answers("metal3-ironic-image.conf");
}

#[test]
fn netboot_xyz() {
    same_answers("netboot-xyz.conf");
}

#[test]
fn cobbler() {
    same_answers("cobbler.conf");
}

#[test]
fn arch_wiki_pxe() {
    same_answers("arch-wiki.conf");
}

#[test]
fn matchbox() {
    same_answers("matchbox.conf");
}

#[test]
fn openshift_dev_scripts() {
    same_answers("dev-scripts.conf");
}

/// FOG's ProxyDHCP recipe: a PXE menu (pxe-prompt, pxe-service) beside
/// another DHCP server; BIOS firmware picks the item from :4011, UEFI
/// firmware is sent there for its one item.
#[test]
fn fog_proxy_dhcp_menu() {
    same_answers("fog-proxy.conf");
}

/// dnsmasq's own example file: ranges by tag, a PXE menu in server mode
/// (and its boot server on :4011), vendor-class options, per-host leases.
#[test]
fn dnsmasq_conf_example() {
    same_answers("dnsmasq-example.conf");
}

#[test]
fn forester() {
    same_answers("forester.conf");
}

/// dhclient once on `c0` in `ns`, with its lease file in `dir` (kept across
/// runs, so a second run asks for the address it holds): that address, and
/// what dhclient said.
fn dhclient(ns: &str, dir: &Path) -> (String, String) {
    let lf = dir.join("dhclient.leases");
    let pid = dir.join("dhclient.pid");
    let o = in_ns(
        ns,
        &format!(
            "timeout 60 dhclient -4 -1 -v -sf /bin/true -lf {lf} -pf {pid} c0; r=$?; \
             dhclient -x -pf {pid} -sf /bin/true c0 2>/dev/null; exit $r",
            lf = lf.display(),
            pid = pid.display(),
        ),
    );
    let text = std::fs::read_to_string(&lf).unwrap_or_default();
    assert!(
        o.status.success() && text.contains("fixed-address"),
        "dhclient got no lease (apt-get install isc-dhcp-client): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = text.rsplit("lease {").next().unwrap_or("");
    let ip = last
        .split("fixed-address ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    (ip, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_dhclient_lease_from_dnsmasq_is_kept_when_rackboot_takes_over() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("dmlease");
    let (server, client) = link(&mut net);
    let dir = TempDir::new("dnsmasq-lease");
    let (_, conf) = fixture("ipxe-chainload.conf", &dir.0);
    let before = {
        let _dnsmasq = run_dnsmasq(&server, &conf, &dir.0);
        dhclient(&client, &dir.0)
    };
    let held = std::fs::read_to_string(dir.0.join("dnsmasq.leases")).unwrap_or_default();
    assert!(held.contains(&before.0), "dnsmasq's lease file: {held}");
    let s = rackboot_from(&server, &conf, &dir.0);
    let (after, said) = dhclient(&client, &dir.0);
    let log = s.log().join("\n");
    assert_eq!(
        after, before.0,
        "the address changed when rackboot took over:\n{log}"
    );
    assert!(log.contains("imported dnsmasq's leases"), "{log}");
    // INIT-REBOOT: a REQUEST for the address it holds, ACKed at once.
    assert!(
        said.contains(&format!("DHCPREQUEST for {after}"))
            && said.contains("DHCPACK")
            && !said.contains("DHCPNAK")
            && !said.contains("DHCPDISCOVER"),
        "{said}"
    );
}

#[test]
fn hosts_and_options_files_are_read_and_read_again_on_reload() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("dmhosts");
    let (server, client) = link(&mut net);
    let dir = TempDir::new("dnsmasq-hosts");
    let d = &dir.0;
    std::fs::create_dir_all(d.join("hosts.d")).unwrap();
    std::fs::write(
        d.join("hosts.d/rack1"),
        "52:54:00:90:01:01,10.90.0.31,r1n1\n",
    )
    .unwrap();
    std::fs::write(d.join("opts"), "option:domain-name,rack.example\n").unwrap();
    let conf = d.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "interface=s0\nport=0\ndhcp-range=10.90.0.100,10.90.0.200\ndhcp-leasefile={0}/dnsmasq.leases\n\
             dhcp-hostsdir={0}/hosts.d\ndhcp-optsfile={0}/opts\n",
            d.display()
        ),
    )
    .unwrap();
    let s = rackboot_from(&server, &conf, d);
    let got = dora(&client, "52:54:00:90:01:01", "", false);
    let ack = got.ack.expect("no ACK");
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 90, 0, 31));
    // Option 15 is in the persona's option 55.
    assert_eq!(
        ack.options.get(&15).map(String::as_str),
        Some("7261636b2e6578616d706c65")
    );
    // A new host in the directory, a reload: it is reserved.
    std::fs::write(d.join("hosts.d/rack2"), "52:54:00:90:02:01,10.90.0.32\n").unwrap();
    let (ok, _, err) = crate::support::reload(&s.admin);
    assert!(ok, "{err}");
    let ack = dora(&client, "52:54:00:90:02:01", "", false)
        .ack
        .expect("no ACK");
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 90, 0, 32));
}

/// A dhclient that keeps running through the switch: its lease from dnsmasq
/// is renewed (RENEWING: a unicast REQUEST from its address, RFC 2131
/// §4.3.2) by rackboot, which imported it, with the same address.
#[test]
fn a_running_dhclient_renews_its_dnsmasq_lease_from_rackboot() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("dmrenew");
    let (server, client) = link(&mut net);
    let dir = TempDir::new("dnsmasq-renew");
    let (_, conf) = fixture("ipxe-chainload.conf", &dir.0);
    // Renew every 2 s instead of at half the lease; the script puts the
    // address on the link (a renewal is sent from it).
    let cf = dir.0.join("dhclient.conf");
    std::fs::write(&cf, "supersede dhcp-renewal-time 2;\n").unwrap();
    let script = dir.0.join("dhclient-script");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT)\n  \
         ip addr replace \"$new_ip_address/24\" dev \"$interface\";;\nesac\n",
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    let log = dir.0.join("dhclient.log");
    let acks = |from: usize| -> Vec<String> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.get(from..)
            .unwrap_or("")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let wait_for = |from: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !acks(from).iter().any(|l| l.contains(what)) {
            assert!(
                Instant::now() < deadline,
                "dhclient never said {what:?}: {:?}",
                acks(0)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let _dhclient;
    let before = {
        let _dnsmasq = run_dnsmasq(&server, &conf, &dir.0);
        _dhclient = Kill(spawn_in(
            &client,
            &format!(
                "exec dhclient -4 -d -v -sf {} -cf {} -lf {} -pf {} c0 2>{}",
                script.display(),
                cf.display(),
                dir.0.join("dhclient.leases").display(),
                dir.0.join("dhclient.pid").display(),
                log.display()
            ),
        ));
        wait_for(0, "DHCPACK");
        // One renewal from dnsmasq, so the next one goes to whoever serves.
        let at = std::fs::read_to_string(&log).unwrap().len();
        wait_for(at, "DHCPACK");
        std::fs::read_to_string(&log).unwrap().len()
    };
    let held = std::fs::read_to_string(dir.0.join("dnsmasq.leases")).unwrap_or_default();
    let ip = held.split_whitespace().nth(2).unwrap_or("").to_owned();
    assert!(ip.starts_with("10.90.0."), "dnsmasq's lease file: {held}");
    let s = rackboot_from(&server, &conf, &dir.0);
    // The next renewals are rackboot's: unicast REQUESTs for the address,
    // ACKed, never a NAK or a new DISCOVER.
    let from = std::fs::read_to_string(&log).unwrap().len().max(before);
    wait_for(from, "DHCPACK");
    let said = acks(from);
    let text = said.join("\n");
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("DHCPREQUEST for {ip} on c0 to {SERVER}"))),
        "no unicast renewal: {text}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("DHCPACK of {ip} from {SERVER}"))),
        "{text}"
    );
    assert!(
        !text.contains("DHCPNAK") && !text.contains("DHCPDISCOVER"),
        "{text}"
    );
    let log = s.log().join("\n");
    assert!(log.contains("imported dnsmasq's leases"), "{log}");
}

/// What `tftp-hpa` gets for `file` from `server`, run in `ns`: the bytes,
/// or the client's complaint.
fn tftp_get(ns: &str, server: &str, file: &str, dir: &Path) -> Result<Vec<u8>, String> {
    let out = dir.join(format!("got-{ns}-{}", file.replace('/', "_")));
    let _ = std::fs::remove_file(&out);
    let o = in_ns(
        ns,
        &format!(
            "timeout 20 tftp {server} -m binary -c get {file} {}",
            out.display()
        ),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.code() != Some(127),
        "tftp is missing (apt-get install tftp-hpa): {text}"
    );
    match std::fs::read(&out) {
        Ok(b) if o.status.success() && !text.contains("Error") => Ok(b),
        _ => Err(text),
    }
}

/// dnsmasq on two interfaces (`interface=s0,s1`), a range on each link, the
/// interface tag choosing a boot file, and a TFTP root of s1's own
/// (`tftp-root=DIR,s1`): rackboot from the same file answers each link's
/// clients as dnsmasq does, from that link's range and root.
#[test]
fn two_interfaces_each_with_its_own_range_and_tag() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("dm2if");
    let server = net.ns("s");
    let (a, b) = (net.ns("a"), net.ns("b"));
    Net::veth(&server, "s0", Some("10.90.0.1/24"), &a, "c0", None);
    Net::veth(&server, "s1", Some("10.91.0.1/24"), &b, "c0", None);
    let dir = TempDir::new("dnsmasq-2if");
    let text = format!(
        "interface=s0,s1\nport=0\ndhcp-leasefile={0}/dnsmasq.leases\n\
         dhcp-range=10.90.0.50,10.90.0.150,12h\ndhcp-range=10.91.0.50,10.91.0.150,12h\n\
         dhcp-boot=undionly.kpxe\ndhcp-boot=tag:s1,second.kpxe\nenable-tftp\ntftp-root={0}/main\n\
         tftp-root={0}/s1root,s1\n",
        dir.0.display()
    );
    // The same name in both roots, and one only in s1's.
    for (sub, name, body) in [
        ("main", "undionly.kpxe", "main root\n"),
        ("s1root", "undionly.kpxe", "s1's own root\n"),
        ("s1root", "second.kpxe", "only in s1's root\n"),
    ] {
        std::fs::create_dir_all(dir.0.join(sub)).unwrap();
        std::fs::write(dir.0.join(sub).join(name), body).unwrap();
    }
    let conf = dir.0.join("two.conf");
    std::fs::write(&conf, &text).unwrap();
    let ask = || {
        let mut out = BTreeMap::new();
        for (ns, name, mac) in [
            (&a, "s0 link", "02:90:00:00:02:01"),
            (&b, "s1 link", "02:90:00:00:02:02"),
        ] {
            out.insert(name.to_owned(), dora(ns, mac, PERSONAS[0].1, false));
        }
        out
    };
    // Each link's client at an address of its own, for TFTP.
    in_ns(&a, "ip addr add 10.90.0.200/24 dev c0");
    in_ns(&b, "ip addr add 10.91.0.200/24 dev c0");
    let fetch = || {
        [
            (&a, "10.90.0.1", "undionly.kpxe"),
            (&a, "10.90.0.1", "second.kpxe"),
            (&b, "10.91.0.1", "undionly.kpxe"),
            (&b, "10.91.0.1", "second.kpxe"),
        ]
        .map(|(ns, server, file)| tftp_get(ns, server, file, &dir.0).ok())
    };
    let (want, want_files) = {
        let _dnsmasq = run_dnsmasq(&server, &conf, &dir.0);
        (ask(), fetch())
    };
    assert_eq!(
        want_files,
        [
            Some(b"main root\n".to_vec()),
            None,
            Some(b"s1's own root\n".to_vec()),
            Some(b"only in s1's root\n".to_vec()),
        ],
        "dnsmasq's TFTP per interface"
    );
    let files: Vec<_> = want
        .values()
        .map(|g| {
            g.ack
                .as_ref()
                .map(|x| (x.yiaddr.octets()[1], x.file.clone()))
        })
        .collect();
    assert_eq!(
        files,
        [
            Some((90, "undionly.kpxe".into())),
            Some((91, "second.kpxe".into()))
        ],
        "dnsmasq: {want:?}"
    );
    let leases = dir.0.join("rackboot.leases");
    let s = Server::start_in(
        Some(&server),
        SERVER,
        &dir.0.join("main"),
        &[
            "--dnsmasq-conf",
            conf.to_str().unwrap(),
            "--dhcp-lease-file",
            leases.to_str().unwrap(),
        ],
    );
    let got = ask();
    let diff = differences(&text, &want, &got);
    assert!(
        diff.is_empty(),
        "rackboot answers differently from dnsmasq:\n{diff}\nrackboot log:\n{}",
        s.log().join("\n")
    );
    assert_eq!(
        fetch(),
        want_files,
        "rackboot's TFTP per interface differs from dnsmasq's:\n{}",
        s.log().join("\n")
    );
}
