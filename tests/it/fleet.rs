//! The fleet view against a storm: 300 machines boot through `rackboot serve`
//! over a veth, some with a fault (their TFTP dropped by nft, or a profile
//! whose script boots nothing); the API must list exactly those as stuck,
//! each with its diagnosis, and the rest as booted; `rackboot status
//! --compare` must find the storm's and the server's counts equal; and the
//! fleet page, loaded by headless Chromium, must show the same.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rackboot::sim::dhcp::Identity;
use rackboot::sim::fleet::{fleet, Mix, DEFAULT_MIX};
use serde_json::Value;

use crate::ns::{in_ns, Net};
use crate::storm::{phase, storm};
use crate::support::{rackboot_in, run, Server, TempDir};

const MACHINES: usize = 300;
const SEED: u64 = 20;
const TOKEN: &str = "fleet-test-token-0123456789";

fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Chromium's binary, or a failure that says how to install it.
fn chromium() -> String {
    for name in ["chromium", "chromium-browser"] {
        if run("sh", &["-c", &format!("command -v {name}")])
            .status
            .success()
        {
            return name.into();
        }
    }
    panic!("chromium is not installed: apt-get install chromium");
}

/// Headless Chromium in `ns` loading `url`: the DOM once its script has
/// run, and its stderr (console messages).
fn load_page(ns: &str, url: &str, screenshot: Option<&std::path::Path>) -> (String, String) {
    let browser = chromium();
    let dir = TempDir::new("chromium");
    let shot = screenshot.map_or(String::new(), |p| {
        format!("--screenshot={} --window-size=1280,1500", p.display())
    });
    let what = if screenshot.is_some() {
        ""
    } else {
        "--dump-dom"
    };
    let o = in_ns(
        ns,
        &format!(
            "HOME={d} {browser} --headless=new --no-sandbox --disable-gpu --no-first-run \
             --user-data-dir={d}/profile --enable-logging=stderr --v=0 \
             --virtual-time-budget=8000 {shot} {what} '{url}'",
            d = dir.0.display()
        ),
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Console errors in Chromium's log (its own start-up chatter is not).
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn a_storm_with_faults_shows_exactly_the_stuck_machines_with_their_diagnosis() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("fl");
    let (srv, cli) = (net.ns("s"), net.ns("c"));
    Net::veth(
        &srv,
        "eth0",
        Some("10.81.0.1/22"),
        &cli,
        "eth0",
        Some("10.81.0.2/22"),
    );
    crate::ns::sh(&format!(
        "ip -n {cli} route add local 10.81.2.0/23 dev eth0 && ip -n {cli} route add local 10.81.1.0/24 dev eth0"
    ));

    // Which machines get which fault: the storm's fleet is a function of its seed.
    let specs = fleet(
        MACHINES,
        &Mix::parse(DEFAULT_MIX).unwrap(),
        Duration::ZERO,
        SEED,
    );
    let blocked: Vec<_> = specs
        .iter()
        .filter(|s| s.identity == Identity::Edk2Pxe)
        .take(4)
        .collect();
    let broken: Vec<_> = specs
        .iter()
        .filter(|s| s.identity != Identity::Edk2Pxe)
        .take(3)
        .collect();
    let dir = TempDir::new("fleet");
    let www = dir.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    for (name, len, seed) in [
        ("ipxe.efi", 850_528, 1),
        ("vmlinuz", 2_000_000, 2),
        ("initrd.gz", 4_000_000, 3),
    ] {
        std::fs::write(www.join(name), rackboot::store::builtin::filler(len, seed)).unwrap();
    }
    std::fs::write(
        dir.0.join("preseed.j2"),
        "d-i netcfg/get_hostname string {{ hostname }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("nothing.ipxe.j2"),
        "#!ipxe\necho this profile boots nothing yet\nexit\n",
    )
    .unwrap();
    let mut config = format!(
        "[dhcp]\ninterface = \"eth0\"\nlease_file = \"{d}/leases\"\nprobe_ms = 0\n\
         [[dhcp.subnet]]\nranges = [\"10.81.2.1-10.81.3.250\"]\n\
         [tftp]\nlisten = \"10.81.0.1:69\"\n\
         [admin]\nlisten = \"127.0.0.1:19281\"\ntoken_file = \"{d}/token\"\n\
         [boot]\ndefault = \"debian\"\n\
         [[profile]]\nname = \"debian\"\nkernel = \"/vmlinuz\"\ninitrd = [\"/initrd.gz\"]\n\
         cmdline = \"auto=true priority=critical url={{{{ config_url }}}}\"\nconfig = \"preseed.j2\"\n\
         [[profile]]\nname = \"nothing\"\nkernel = \"/vmlinuz\"\nscript = \"nothing.ipxe.j2\"\n",
        d = dir.0.display()
    );
    std::fs::write(dir.0.join("token"), TOKEN).unwrap();
    let mut blocked_ips = Vec::new();
    for (k, s) in blocked.iter().enumerate() {
        let ip = format!("10.81.1.{}", 10 + k);
        config += &format!("[[dhcp.host]]\nmac = \"{}\"\nip = \"{ip}\"\n", mac(s.mac));
        blocked_ips.push(ip);
    }
    for s in &broken {
        config += &format!(
            "[[machine]]\nmac = \"{}\"\nprofile = \"nothing\"\n",
            mac(s.mac)
        );
    }
    let path = dir.0.join("rackboot.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_in(
        Some(&srv),
        "10.81.0.1",
        &www,
        &["--config", path.to_str().unwrap(), "--no-access-log"],
    );
    // Their TFTP requests never reach the server.
    crate::ns::sh(&format!(
        "ip netns exec {srv} nft add table inet fault && \
         ip netns exec {srv} nft add chain inet fault input '{{ type filter hook input priority 0; }}' && \
         ip netns exec {srv} nft add rule inet fault input ip saddr '{{ {} }}' udp dport 69 drop",
        blocked_ips.join(", ")
    ));

    // The page, loaded while the storm runs: it renders without an error.
    let page = "http://127.0.0.1:19281/#token=".to_owned() + TOKEN;
    let during = {
        let srv = srv.clone();
        let page = page.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            load_page(&srv, &page, None)
        })
    };
    let seed = SEED.to_string();
    let machines = MACHINES.to_string();
    let (out, report) = storm(
        Some(&cli),
        &[
            "--interface",
            "eth0",
            "--machines",
            &machines,
            "--seed",
            &seed,
            "--quiet",
        ],
    );
    let (dom, log) = during.join().unwrap();
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page did not render during the storm:\n{dom}\n{log}"
    );
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(report["failed"], 7, "{stdout}");
    assert_eq!(report["booted"], MACHINES as u64 - 7, "{stdout}");

    // The server's view, once every fault has outlasted its firmware's wait.
    let deadline = Instant::now() + Duration::from_secs(90);
    let view = loop {
        let (status, body) = server.api("GET", "/api/v1/boots");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["states"]["stuck"] == 7 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let rows = view["machines"].as_array().unwrap();
    let stuck: BTreeMap<String, String> = rows
        .iter()
        .filter(|r| r["state"] == "stuck")
        .map(|r| {
            (
                r["mac"].as_str().unwrap().to_owned(),
                r["diagnosis"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for s in &blocked {
        want.insert(mac(s.mac), "nbp-not-requested".into());
    }
    for s in &broken {
        want.insert(mac(s.mac), "script-error".into());
    }
    assert_eq!(
        stuck,
        want,
        "{}",
        serde_json::to_string_pretty(&view["machines"][0]).unwrap()
    );
    assert_eq!(
        view["states"]["booted"],
        MACHINES as u64 - 7,
        "{}",
        view["states"]
    );
    assert_eq!(view["tracked"], MACHINES as u64);
    // The stuck come first, and each diagnosis names its evidence.
    assert!(rows[..7].iter().all(|r| r["state"] == "stuck"));
    let broken_row = rows
        .iter()
        .find(|r| r["mac"] == mac(broken[0].mac))
        .unwrap();
    let evidence = broken_row["diagnosis"]["evidence"].to_string();
    assert!(
        evidence.contains("this profile boots nothing yet"),
        "{evidence}"
    );
    let blocked_row = rows
        .iter()
        .find(|r| r["mac"] == mac(blocked[0].mac))
        .unwrap();
    assert_eq!(blocked_row["ip"], blocked_ips[0]);
    assert!(blocked_row["diagnosis"]["summary"]
        .as_str()
        .unwrap()
        .contains("ipxe.efi"));

    // One machine's timeline: every step of an EDK2 boot, in order.
    let edk2 = specs
        .iter()
        .find(|s| s.identity == Identity::Edk2Pxe && !blocked.iter().any(|b| b.mac == s.mac))
        .unwrap();
    let (status, body) = server.api("GET", &format!("/api/v1/machines/{}/boots", mac(edk2.mac)));
    assert_eq!(status, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    let steps: Vec<&str> = t["boots"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == true)
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    let mut seen = steps.clone();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "dhcp",
            "nbp",
            "ipxe-dhcp",
            "script",
            "kernel",
            "initrd",
            "installer-dhcp",
            "answers"
        ],
        "{body}"
    );

    // The storm and the server agree, phase by phase, in one command.
    let json = dir.0.join("storm.json");
    std::fs::write(&json, report.to_string()).unwrap();
    let o = rackboot_in(None)
        .args(["status", "--admin-socket"])
        .arg(&server.admin)
        .arg("--compare")
        .arg(&json)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(said.contains("agree on every phase"), "{said}");
    let dhcp = phase(&report, "dhcp")["count"].as_u64().unwrap();
    assert_eq!(dhcp, MACHINES as u64, "{said}");

    // `rackboot status`: the stuck first, with their diagnosis.
    let o = rackboot_in(None)
        .args(["status", "--admin-socket"])
        .arg(&server.admin)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        table.starts_with(&format!(
            "{MACHINES} machines: 7 stuck, 0 booting, 293 booted"
        )),
        "{table}"
    );
    let first_rows: Vec<&str> = table.lines().skip(4).take(7).collect();
    assert!(first_rows.iter().all(|l| l.starts_with("stuck")), "{table}");

    // The page after the storm: the counts and a stuck machine's row.
    let (dom, log) = load_page(&srv, &page, None);
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
    assert!(dom.contains("id=\"n-stuck\">7<"), "{dom}");
    assert!(dom.contains("id=\"n-booted\">293<"), "{dom}");
    let row = format!("data-mac=\"{}\" data-state=\"stuck\"", mac(blocked[0].mac));
    assert!(dom.contains(&row), "no row {row} in\n{dom}");
    assert!(dom.contains("data-code=\"nbp-not-requested\""));
    // Without the token the API refuses; the page itself holds nothing.
    let o = in_ns(
        &srv,
        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19281/api/v1/boots",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
    let shot = std::env::var_os("RACKBOOT_SCREENSHOT")
        .map_or_else(|| dir.0.join("fleet.png"), std::path::PathBuf::from);
    let _ = load_page(&srv, &page, Some(&shot));
    let png = std::fs::read(&shot).expect("chromium saved no screenshot");
    assert!(png.starts_with(b"\x89PNG"));
}
