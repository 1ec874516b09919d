//! Floods, bounded in count and time, inside namespaces, while real clients
//! are served: a DISCOVER flood from random MACs (perfdhcp -i) against a small
//! pool, TFTP read requests from many source ports that never acknowledge,
//! and thousands of idle and slowloris HTTP connections beside a download.
//! Needs root.

use std::time::{Duration, Instant};

use crate::dhcp::{dora_ip, shared_segment};
use crate::ns::{in_ns, spawn_in, Kill, Net};
use crate::support::{run, Fixture, Server};

#[test]
fn a_discover_flood_cannot_hold_the_pool_and_real_clients_get_leases() {
    let _turn = crate::support::heavy();
    assert!(
        run("sh", &["-c", "command -v perfdhcp"]).status.success(),
        "perfdhcp is not installed: apt-get install kea-admin"
    );
    let mut net = Net::new("fd");
    let (s, d, c) = shared_segment(&mut net, 206);
    let f = Fixture::new();
    let server = Server::start_in(
        Some(&s),
        "10.206.0.1",
        &f.root(),
        &[
            "--interface",
            "eth0",
            "--dhcp-range",
            "10.206.0.100,10.206.0.199",
            "--no-access-log",
        ],
    );
    // 2,000 DISCOVERs a second from up to 100,000 MACs, relayed from d, for
    // at most 12 s: without a bound, the 100 addresses would all be held.
    let mut flood = Kill(spawn_in(
        &d,
        "perfdhcp -4 -i -l 10.206.0.2 -r 2000 -R 100000 -n 20000 -p 12 10.206.0.1 >/dev/null 2>&1",
    ));
    std::thread::sleep(Duration::from_secs(3));
    let mut most_held = 0;
    let mut ips = Vec::new();
    for i in 0..5 {
        ips.push(dora_ip(&c, &format!("52:54:00:fd:00:{i:02x}")));
        most_held = most_held
            .max(server.metric(
                "rackboot_dhcp_pool_addresses{subnet=\"10.206.0.0/24\",state=\"offered\"}",
            ));
    }
    let unheld = server.metric("rackboot_dhcp_offers_unheld_total");
    flood.wait_at_most(Duration::from_secs(30));
    // busybox udhcpc after the flood, on the same pool.
    let o = in_ns(
        &c,
        "timeout 30 busybox udhcpc -i eth0 -n -q -f -t 5 -T 1 -s /bin/true",
    );
    assert!(
        o.status.success(),
        "udhcpc got no lease (apt-get install busybox): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        unheld > 1000,
        "the flood ran past the bound: {unheld} unheld offers"
    );
    assert!(most_held <= 50, "offers held {most_held} of 100 addresses");
    let distinct: std::collections::HashSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 5, "{ips:?}");
}

/// The best of three downloads of `url`, in bytes per second, each checked
/// whole against `want`.
fn best_rate(url: &str, want: &str) -> f64 {
    (0..3)
        .map(|_| {
            let o = run(
                "sh",
                &["-c", &format!("curl -s -S -o - -w '%{{stderr}}%{{speed_download}} %{{http_code}}' {url} | sha256sum")],
            );
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            let sum = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(err.ends_with(" 200") && sum.starts_with(want), "{err} {sum}");
            err.split(' ').next().unwrap().parse::<f64>().unwrap()
        })
        .fold(0.0, f64::max)
}

#[test]
fn ten_thousand_idle_and_slowloris_connections_do_not_stop_a_download() {
    let _turn = crate::support::heavy();
    let dir = crate::support::TempDir::new("flood-http");
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big = rackboot::store::builtin::filler(40 << 20, 3);
    std::fs::write(root.join("initrd.gz"), &big).unwrap();
    let want = crate::support::sha256(&big);
    // 3,000 a worker: the flood's 10,000 pass the limit, so it must evict.
    let config = dir.0.join("rackboot.toml");
    std::fs::write(&config, "[http]\nmax_connections = 3000\n").unwrap();
    let server = Server::start(
        &root,
        &["--config", config.to_str().unwrap(), "--no-access-log"],
    );
    let url = server.url("/initrd.gz");
    let alone = best_rate(&url, &want);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/idle_flood.py");
    let addr = server.addr;
    let mut flood = std::process::Command::new("python3")
        .args([
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            "8000",
            "2000",
            "25",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = std::io::BufReader::new(flood.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "open 10000", "the flood did not connect");
    let flooded = best_rate(&url, &want);
    // The slowloris heads run out of time (http.head_secs) while it lasts.
    std::thread::sleep(Duration::from_secs(12));
    let after_heads = best_rate(&url, &want);
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let _ = flood.wait();
    let evicted = server.metric_sum("rackboot_http_connections_evicted_total", |_| true);
    let refused = server.metric_sum("rackboot_http_connections_refused_total", |_| true);
    let closed: Vec<u64> = line
        .split(' ')
        .skip(1)
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(
        evicted > 0,
        "10,000 connections past a limit of 6,000 evicted none"
    );
    assert_eq!(
        refused, 0,
        "a download was refused while idle connections could go"
    );
    assert_eq!(
        closed[1], 2000,
        "every slowloris head is cut (timed out or evicted): {line}"
    );
    assert!(closed[0] + closed[1] >= 4000, "the limit held: {line}");
    // Speed is for benchmarks (bench/http --flood compares the rates); here
    // each download must complete, whole and checksummed, beside the flood.
    eprintln!("download alone {alone:.0} B/s, during the flood {flooded:.0} B/s, after the heads {after_heads:.0} B/s");
}

#[test]
fn a_flood_of_silent_tftp_requests_does_not_starve_a_real_transfer() {
    let _turn = crate::support::heavy();
    let f = Fixture::new();
    let dir = crate::support::TempDir::new("flood-tftp");
    // 400 transfers a worker: the flood's 3,000 pass it many times over.
    let config = dir.0.join("rackboot.toml");
    std::fs::write(&config, "[tftp]\nmax_transfers = 400\n").unwrap();
    let server = Server::start(
        &f.root(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--tftp",
            "127.0.0.1:0",
            "--no-access-log",
        ],
    );
    let t = server.tftp.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tftp_flood.py");
    let mut flood = Kill(
        std::process::Command::new("python3")
            .args([
                script,
                "127.0.0.1",
                &t.port().to_string(),
                "big.bin",
                "3000",
                "20",
            ])
            .spawn()
            .expect("python3"),
    );
    // Into the flood: the worker is full of silent transfers by now.
    std::thread::sleep(Duration::from_secs(4));
    let got = dir.0.join("big.bin");
    let o = run(
        "atftp",
        &[
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "big.bin",
            "-l",
            got.to_str().unwrap(),
            "127.0.0.1",
            &t.port().to_string(),
        ],
    );
    let evicted = server.metric_sum("rackboot_tftp_transfers_total", |l| {
        l.contains("result=\"evicted\"")
    });
    let _ = flood.0.kill();
    assert_eq!(
        crate::support::sha256(&std::fs::read(&got).unwrap_or_default()),
        crate::support::sha256(&f.big),
        "atftp during the flood (apt-get install atftp): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        evicted > 0,
        "the flood filled no worker: no transfer was evicted"
    );
}

#[test]
fn a_flood_of_malformed_dhcp_is_counted_and_dropped_while_clients_are_served() {
    let mut net = Net::new("fm");
    let (s, d, c) = shared_segment(&mut net, 207);
    let f = Fixture::new();
    let server = Server::start_in(
        Some(&s),
        "10.207.0.1",
        &f.root(),
        &[
            "--interface",
            "eth0",
            "--dhcp-range",
            "10.207.0.100,10.207.0.199",
            "--no-access-log",
        ],
    );
    // 6 kinds of unusable datagram, 5,000 times each, from d.
    let mut flood = Kill(spawn_in(
        &d,
        &format!(
            "python3 {} eth0 52:54:00:fe:00:01 garbage 10.207.0.1 --repeat 5000",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/dhcp_client.py")
        ),
    ));
    let ip = dora_ip(&c, "52:54:00:fe:00:02");
    assert!(ip.starts_with("10.207.0."), "{ip}");
    assert!(
        flood.wait_at_most(Duration::from_secs(60)),
        "the flood did not end in 60 s"
    );
    // Every malformed one is counted (none crashed the worker), and the log
    // sums them instead of a line each. The two answerable kinds in the mix
    // (a REQUEST to NAK, a DISCOVER) come from one MAC, 10,000 times: past
    // dhcp.answers_per_mac a second they are dropped as rate_limited.
    let by_reason = |limited: bool| {
        server.metric_sum("rackboot_dhcp_dropped_total", |l| {
            l.contains("rate_limited") == limited
        })
    };
    let mut malformed = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        malformed = by_reason(false);
        if malformed >= 30_000 {
            break;
        }
    }
    assert_eq!(
        malformed, 30_000,
        "every malformed datagram is counted once"
    );
    let limited = by_reason(true);
    assert!(
        (9_000..10_000).contains(&limited),
        "one MAC's 10,000 answerable messages, all but ~20 a second dropped: {limited}"
    );
    // The summary comes 5 s after the first drop.
    let summaries = || {
        server
            .log()
            .iter()
            .filter(|l| l.contains("datagrams dropped"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while summaries() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = summaries();
    assert!(
        (1..=4).contains(&lines),
        "one summary line per 5 s, not one per datagram: {lines}"
    );
    assert_eq!(dora_ip(&c, "52:54:00:fe:00:02"), ip, "the worker serves on");
}
