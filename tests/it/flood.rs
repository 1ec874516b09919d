//! Floods, bounded in count and time, inside namespaces, while real clients
//! are served: a DISCOVER flood from random MACs (perfdhcp -i) against a small
//! pool, TFTP read requests from many source ports that never acknowledge,
//! and thousands of idle and slowloris HTTP connections beside a download.
//! Needs root.

use std::time::{Duration, Instant};

use crate::dhcp::{dora_ip, shared_segment};
use crate::ns::{in_ns, spawn_in, Kill, Net};
use crate::support::{run, Fixture, Server};

/// The value of the first metric line starting with `name`.
fn metric(s: &Server, name: &str) -> u64 {
    let (_, text) = s.api("GET", "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

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
        most_held = most_held.max(metric(
            &server,
            "rackboot_dhcp_pool_addresses{subnet=\"10.206.0.0/24\",state=\"offered\"}",
        ));
    }
    let unheld = metric(&server, "rackboot_dhcp_offers_unheld_total");
    let deadline = Instant::now() + Duration::from_secs(30);
    while flood.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
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
