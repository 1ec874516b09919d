//! `rackboot storm`: its machines against the in-process rackboot (self mode),
//! against dnsmasq + nginx over a veth pair (so its protocols are the real ones,
//! not only rackboot's), and against a link where nothing answers.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ns::{in_ns, spawn_in, Kill, Net};
use crate::support::{rackboot_in, run, TempDir};

pub(crate) const NBP: u64 = 850_528;
const KERNEL: u64 = 8_200_000;
const INITRD: u64 = 40_800_000;

pub(crate) fn storm(netns: Option<&str>, args: &[&str]) -> (Output, Value) {
    let dir = TempDir::new("storm");
    let json = dir.0.join("report.json");
    let out = rackboot_in(netns)
        .arg("storm")
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, serde_json::from_str(&text).unwrap())
}

pub(crate) fn phase<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {r:#}"))
}

pub(crate) fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every machine booted through every phase, the counts and bytes add up, and
/// the bytes are exactly what the files hold (`script` and `preseed` are the
/// lengths of the boot script and answer file served).
fn assert_all_booted(out: &Output, r: &Value, machines: u64, script: u64, preseed: u64) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "storm failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("booted {machines}/{machines}")),
        "{stdout}"
    );
    assert_eq!(r["schema"], "rackboot-storm/1");
    assert_eq!(
        (n(&r["machines"]), n(&r["booted"]), n(&r["failed"])),
        (machines, machines, 0)
    );
    assert_eq!(r["failures"].as_array().unwrap().len(), 0);
    let mix = r["mix"].as_object().unwrap();
    assert_eq!(mix.values().map(n).sum::<u64>(), machines);
    let kind = |k: &str| mix.get(k).map_or(0, n);
    let firmware_nbp = kind("edk2") + kind("uefi-http");
    for (name, count) in [
        ("dhcp", machines),
        ("nbp", firmware_nbp),
        ("ipxe-dhcp", firmware_nbp),
        ("script", machines),
        ("kernel", machines),
        ("initrd", machines),
        ("installer-dhcp", machines),
        ("answers", machines),
    ] {
        let p = phase(r, name);
        assert_eq!(n(&p["count"]), count, "phase {name}: {p}");
        assert_eq!(n(&p["failures"]), 0);
        assert!(p["p50_ms"].as_f64().unwrap() <= p["max_ms"].as_f64().unwrap());
    }
    assert_eq!(n(&r["total"]["count"]), machines);
    let phases: u64 = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| n(&p["bytes"]))
        .sum();
    assert_eq!(
        phases,
        n(&r["bytes"]),
        "the phases' bytes add up to the total"
    );
    assert_eq!(n(&phase(r, "nbp")["bytes"]), firmware_nbp * NBP);
    assert_eq!(n(&phase(r, "kernel")["bytes"]), machines * KERNEL);
    assert_eq!(n(&phase(r, "initrd")["bytes"]), machines * INITRD);
    assert_eq!(n(&phase(r, "script")["bytes"]), machines * script);
    assert_eq!(n(&phase(r, "answers")["bytes"]), machines * preseed);
}

#[test]
fn two_hundred_machines_boot_against_the_in_process_rackboot() {
    let _turn = crate::support::heavy();
    let dir = TempDir::new("storm-svg");
    let svg = dir.0.join("storm.svg");
    let (out, r) = storm(
        None,
        &[
            "--machines",
            "200",
            "--seed",
            "7",
            "--quiet",
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    // The self mode's script names 127.0.0.1 and the in-process server's port.
    let target = r["target"].as_str().unwrap();
    let port = target
        .split("HTTP 127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let script = rackboot::store::builtin::storm_script(&base).len() as u64;
    let preseed = rackboot::store::builtin::PRESEED.len() as u64;
    assert_all_booted(&out, &r, 200, script, preseed);
    assert_eq!(n(&r["seed"]), 7);
    assert!(r["cpu"]["storm_s"].as_f64().unwrap() > 0.0);
    assert!(r["cpu"]["server_s"].as_f64().unwrap() > 0.0);
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("CDF of total boot time"));
}

#[test]
fn a_secure_boot_fleet_boots_through_shim_and_grub_against_the_in_process_rackboot() {
    // grub machines are pinned to the in-process server's grub profile: DHCP
    // hands them shim, shim fetches grub, grub reads the stub grub.cfg and
    // its own page by MAC, then the kernel and initrd over TFTP.
    let (out, r) = storm(
        None,
        &[
            "--machines",
            "8",
            "--mix",
            "grub=1,edk2=1",
            "--seed",
            "3",
            "--quiet",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (8, 0), "{r:#}");
    assert_eq!((n(&r["mix"]["grub"]), n(&r["mix"]["edk2"])), (4, 4));
    let signed: u64 = rackboot::store::builtin::GRUB_BINARIES
        .iter()
        .map(|(_, len)| *len as u64)
        .sum();
    assert_eq!(
        n(&phase(&r, "nbp")["bytes"]),
        4 * NBP + 4 * signed,
        "edk2 machines fetch iPXE; grub machines shim and grub"
    );
    // Only the iPXE machines run iPXE's DHCP; every machine loads the kernel.
    assert_eq!(n(&phase(&r, "ipxe-dhcp")["count"]), 4);
    assert_eq!(n(&phase(&r, "kernel")["bytes"]), 8 * KERNEL);
    assert_eq!(n(&phase(&r, "initrd")["bytes"]), 8 * INITRD);
    let preseed = rackboot::store::builtin::PRESEED.len() as u64;
    assert_eq!(n(&phase(&r, "answers")["bytes"]), 8 * preseed);
}

#[test]
fn a_dual_stack_fleet_boots_against_the_in_process_rackboot() {
    // Half of each kind on IPv6: DHCPv6 into the in-process engine (the
    // server `::1`), the NBP by option 59's TFTP or HTTP URL, iPXE's
    // script from `[::1]`; grub machines stay on IPv4.
    let (out, r) = storm(
        None,
        &[
            "--machines",
            "24",
            "--family",
            "dual",
            "--mix",
            "edk2=1,ipxe-bios=1,uefi-http=1,grub=1",
            "--seed",
            "5",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (24, 0), "{r:#}");
    let fam = &r["families"];
    assert_eq!(
        (n(&fam["ipv4"]["booted"]), n(&fam["ipv6"]["booted"])),
        (15, 9),
        "grub's 6 stay on IPv4; half of the other 18 go to IPv6: {fam}"
    );
    assert!(stdout.contains("families: ipv4 15/15 booted, ipv6 9/9 booted"));
    assert!(r["target"].as_str().unwrap().contains("HTTP [::]:"));
    assert_eq!(n(&phase(&r, "kernel")["bytes"]), 24 * KERNEL);
    // --family 6 with grub in the mix is refused, naming the fix.
    let o = crate::support::rackboot_in(None)
        .args(["storm", "--family", "6", "--mix", "grub=1", "--quiet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--family dual"), "{err}");
}

#[test]
fn held_tftp_datagrams_die_with_their_socket() {
    // Under --delay, EDK2's ERROR ending its size probe is still held when
    // its download opens a new socket: sent from that socket it reached the
    // server as a datagram of an unknown transfer, and the server's ERROR 5
    // failed the machine. A closed port drops it on a real network.
    let (out, r) = storm(
        None,
        &[
            "--machines",
            "10",
            "--mix",
            "edk2",
            "--delay",
            "5",
            "--until",
            "nbp",
            "--seed",
            "3",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{r:#}");
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (10, 0));
    assert_eq!(n(&phase(&r, "nbp")["bytes"]), 10 * NBP);
}

#[test]
fn a_bad_option_is_named_and_exits_2() {
    let bin = env!("CARGO_BIN_EXE_rackboot");
    let out = run(bin, &["storm", "--mix", "edk2=1,bios=1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"bios\"") && err.contains("ipxe-bios"),
        "{err}"
    );
    let out = run(bin, &["storm", "--until", "desktop"]);
    assert_eq!(out.status.code(), Some(2));
    // The DHCP load stream: DHCP only, and somewhere to send.
    for (args, says) in [
        (&["storm", "--rate", "100"][..], "--until dhcp"),
        (
            &["storm", "--rate", "100", "--until", "dhcp"][..],
            "--relay ADDR --server ADDR",
        ),
        (
            &[
                "storm", "--rate", "100", "--until", "dhcp", "--relay", "10.9.9.9",
            ][..],
            "--relay needs --server",
        ),
    ] {
        let out = run(bin, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn machines_on_a_silent_link_fail_in_dhcp_and_the_exit_status_says_so() {
    let mut net = Net::new("st");
    let (a, b) = (net.ns("a"), net.ns("b"));
    Net::veth(&a, "eth0", None, &b, "eth0", None);
    let started = Instant::now();
    let (out, r) = storm(
        Some(&a),
        &[
            "--interface",
            "eth0",
            "--machines",
            "3",
            "--mix",
            "ipxe-bios",
            "--quiet",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (0, 3));
    let f = &r["failures"][0];
    assert_eq!(f["phase"], "dhcp");
    assert_eq!(f["reason"], "no OFFER to the DISCOVER");
    assert_eq!(n(&f["machines"]), 3);
    assert_eq!(n(&phase(&r, "dhcp")["failures"]), 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAILED 3 machines in dhcp: no OFFER"),
        "{stdout}"
    );
    // iPXE gives up after its 1+2+4+8 s schedule.
    assert!(started.elapsed() >= Duration::from_secs(15));
}

/// The boot files, as a real netboot tree has them, with a script naming `host`.
pub(crate) fn netboot_tree(www: &Path, host: &str) -> (u64, u64) {
    std::fs::create_dir_all(www).unwrap();
    let script = format!(
        "#!ipxe\nkernel http://{host}/vmlinuz initrd=initrd.gz auto=true priority=critical url=http://{host}/preseed.cfg\ninitrd http://{host}/initrd.gz\nboot\n"
    );
    let preseed = "d-i debian-installer/locale string en_US.UTF-8\n";
    std::fs::write(www.join("boot.ipxe"), &script).unwrap();
    std::fs::write(www.join("preseed.cfg"), preseed).unwrap();
    for (name, len, seed) in [
        ("ipxe.efi", NBP, 1),
        ("vmlinuz", KERNEL, 2),
        ("initrd.gz", INITRD, 3),
    ] {
        let bytes = rackboot::store::builtin::filler(len as usize, seed);
        std::fs::write(www.join(name), bytes).unwrap();
    }
    (script.len() as u64, preseed.len() as u64)
}

pub(crate) fn wait_for(ns: &str, cmd: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !in_ns(ns, cmd).status.success() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fifty_machines_boot_against_dnsmasq_and_nginx() {
    let _turn = crate::support::heavy();
    for (tool, package) in [("dnsmasq", "dnsmasq-base"), ("nginx", "nginx")] {
        assert!(
            run("sh", &["-c", &format!("command -v {tool}")])
                .status
                .success(),
            "{tool} is not installed: apt-get install {package}"
        );
    }
    let mut net = Net::new("sp");
    let (srv, cli) = (net.ns("s"), net.ns("c"));
    Net::veth(
        &srv,
        "eth0",
        Some("10.78.0.1/24"),
        &cli,
        "eth0",
        Some("10.78.0.2/24"),
    );
    // The storm's side takes the pool as local: each machine's TFTP and HTTP
    // leave from its leased address.
    crate::ns::sh(&format!(
        "ip -n {cli} route add local 10.78.0.128/25 dev eth0"
    ));
    let dir = TempDir::new("storm-peers");
    let www = dir.0.join("www");
    let (script, preseed) = netboot_tree(&www, "10.78.0.1");
    let d = dir.0.display();
    // --no-ping: dnsmasq's default ping check takes ~3 s per new address, one
    // at a time, so a storm outlasts iPXE's DHCP schedule (bench/storm measures
    // that default); this test is about the protocols.
    let _dnsmasq = Kill(spawn_in(
        &srv,
        &format!(
            "exec dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root \
             --interface=eth0 --bind-interfaces --dhcp-range=10.78.0.130,10.78.0.250,600 \
             --dhcp-leasefile={d}/leases --pid-file={d}/dnsmasq.pid --dhcp-lease-max=10000 --no-ping \
             --enable-tftp --tftp-root={d}/www --tftp-max=1000 \
             --dhcp-match=set:ipxe,175 --dhcp-vendorclass=set:http,HTTPClient \
             --dhcp-boot=tag:ipxe,http://10.78.0.1/boot.ipxe \
             --dhcp-boot=tag:http,tag:!ipxe,http://10.78.0.1/ipxe.efi \
             --dhcp-boot=tag:!ipxe,tag:!http,ipxe.efi \
             --dhcp-option-force=tag:http,60,HTTPClient"
        ),
    ));
    std::fs::write(
        dir.0.join("nginx.conf"),
        format!(
            "user root;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 10000;\n\
             default_type application/octet-stream;\n\
             server {{ listen 10.78.0.1:80; root {d}/www; }} }}\n"
        ),
    )
    .unwrap();
    let _nginx = Kill(spawn_in(
        &srv,
        &format!("exec nginx -p {d} -c {d}/nginx.conf -g 'daemon off;'"),
    ));
    wait_for(&srv, "ss -lun | grep -q ':67 '", "dnsmasq");
    wait_for(
        &cli,
        "curl -sf -o /dev/null http://10.78.0.1/preseed.cfg",
        "nginx",
    );
    let (out, r) = storm(
        Some(&cli),
        &[
            "--interface",
            "eth0",
            "--machines",
            "50",
            "--seed",
            "11",
            "--quiet",
        ],
    );
    assert_all_booted(&out, &r, 50, script, preseed);
    assert!(
        r["target"]
            .as_str()
            .unwrap()
            .contains("each machine from its leased address"),
        "{}",
        r["target"]
    );
    // Every machine's DHCP went over the link: dnsmasq leased to all 50 MACs.
    let leases = std::fs::read_to_string(dir.0.join("leases")).unwrap();
    let macs: std::collections::HashSet<&str> =
        leases.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(macs.len(), 50, "{leases}");
}

/// What a storm under loss must show: every machine booted unless its
/// firmware gave up by its own timers (and the report says which), the fault
/// model stated, and packets dropped both ways.
fn assert_only_timers_failed(out: &Output, r: &Value, machines: u64, loss: &str) {
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(n(&r["booted"]) + n(&r["failed"]), machines, "{table}");
    assert_eq!(r["failed"], r["failed_by_timers"], "{table}");
    assert!(n(&r["booted"]) > 0, "{table}");
    assert_eq!(
        out.status.code(),
        Some(if n(&r["failed"]) == 0 { 0 } else { 1 })
    );
    let model = r["faults"]["model"].as_str().unwrap();
    assert!(
        model.contains(&format!("{loss}.0 % of the machines'")),
        "{model}"
    );
    assert!(
        n(&r["faults"]["dropped_out"]) > 0 && n(&r["faults"]["dropped_in"]) > 0,
        "{table}"
    );
    assert!(table.contains("faults: "), "{table}");
}

#[test]
fn under_10_and_30_percent_loss_only_firmware_that_gives_up_fails() {
    let _turn = crate::support::heavy();
    // In-process: two storms at once (they wait on firmware timers, not the
    // CPU). At 10 %, the default mix up to its NBP (EDK2's TFTP included); at
    // 30 %, iPXE ROMs through their whole boot (TFTP at 30 % takes EDK2
    // minutes per NBP, and HTTP is TCP's).
    let runs: Vec<_> = [
        ("10", &["--until", "nbp"][..]),
        ("30", &["--mix", "ipxe-bios=1"][..]),
    ]
    .into_iter()
    .map(|(loss, extra)| {
        std::thread::spawn(move || {
            let args = ["--machines", "60", "--seed", "9", "--quiet", "--loss", loss];
            let (out, r) = storm(None, &[&args[..], extra].concat());
            (loss, out, r)
        })
    })
    .collect();
    // Against `rackboot serve` over a veth: the same faults on raw frames.
    let mut net = Net::new("sl");
    let (srv, cli) = (net.ns("s"), net.ns("c"));
    Net::veth(
        &srv,
        "eth0",
        Some("10.82.0.1/24"),
        &cli,
        "eth0",
        Some("10.82.0.2/24"),
    );
    crate::ns::sh(&format!(
        "ip -n {cli} route add local 10.82.0.128/25 dev eth0"
    ));
    let dir = TempDir::new("storm-loss");
    let www = dir.0.join("www");
    netboot_tree(&www, "10.82.0.1");
    let _server = crate::support::Server::start_in(
        Some(&srv),
        "10.82.0.1",
        &www,
        &[
            "--interface",
            "eth0",
            "--dhcp-range",
            "10.82.0.130,10.82.0.250,600",
            "--dhcp-lease-file",
            dir.0.join("leases").to_str().unwrap(),
            "--tftp",
            "10.82.0.1:69",
            "--no-access-log",
        ],
    );
    let (out, r) = storm(
        Some(&cli),
        &[
            "--interface",
            "eth0",
            "--machines",
            "40",
            "--seed",
            "4",
            "--until",
            "ipxe-dhcp",
            "--loss",
            "10",
            "--quiet",
        ],
    );
    assert_only_timers_failed(&out, &r, 40, "10");
    for h in runs {
        let (loss, out, r) = h.join().unwrap();
        assert_only_timers_failed(&out, &r, 60, loss);
    }
}
