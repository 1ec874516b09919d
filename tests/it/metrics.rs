//! Prometheus metrics: a real Prometheus scrapes rackboot while a storm of
//! machines boots against it over a veth, and its query API must give the
//! DHCP ACKs and the bytes the storm's own report counts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ns::{in_ns, spawn_in, Kill, Net};
use crate::storm::{n, netboot_tree, phase, storm, wait_for, NBP};
use crate::support::{run, Server, TempDir};

/// The value of PromQL `query` in `ns`'s Prometheus, once it has one.
fn query(ns: &str, query: &str) -> Option<f64> {
    let o = in_ns(
        ns,
        &format!("curl -sfG http://127.0.0.1:19190/api/v1/query --data-urlencode 'query={query}'"),
    );
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_what_the_storm_counted() {
    let _turn = crate::support::heavy();
    assert!(
        run("sh", &["-c", "command -v prometheus"]).status.success(),
        "prometheus is not installed: apt-get install prometheus"
    );
    let mut net = Net::new("pm");
    let (srv, cli) = (net.ns("s"), net.ns("c"));
    Net::veth(
        &srv,
        "eth0",
        Some("10.79.0.1/24"),
        &cli,
        "eth0",
        Some("10.79.0.2/24"),
    );
    crate::ns::sh(&format!(
        "ip -n {cli} route add local 10.79.0.128/25 dev eth0"
    ));
    let dir = TempDir::new("metrics");
    let www = dir.0.join("www");
    netboot_tree(&www, "10.79.0.1");
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        format!(
            "[dhcp]\ninterface = \"eth0\"\nlease_file = \"{d}/leases\"\nprobe_ms = 0\n\
             [[dhcp.subnet]]\nranges = [\"10.79.0.130-10.79.0.250\"]\n\
             [tftp]\nlisten = \"10.79.0.1:69\"\n\
             [admin]\nmetrics_listen = \"127.0.0.1:19181\"\n",
            d = dir.0.display()
        ),
    )
    .unwrap();
    let server = Server::start_in(
        Some(&srv),
        "10.79.0.1",
        &www,
        &["--config", config.to_str().unwrap(), "--no-access-log"],
    );
    // The script names the port HTTP got: written, then reloaded.
    netboot_tree(&www, &format!("10.79.0.1:{}", server.addr.port()));
    let (ok, _, err) = crate::support::reload(&server.admin);
    assert!(ok, "{err}");
    std::fs::write(
        dir.0.join("prometheus.yml"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rackboot\n    \
         static_configs:\n      - targets: ['127.0.0.1:19181']\n",
    )
    .unwrap();
    let d = dir.0.display();
    let _prometheus = Kill(spawn_in(
        &srv,
        &format!(
            "exec prometheus --config.file={d}/prometheus.yml --storage.tsdb.path={d}/tsdb \
             --web.listen-address=127.0.0.1:19190 >{d}/prometheus.log 2>&1"
        ),
    ));
    wait_for(
        &srv,
        "curl -sf http://127.0.0.1:19190/-/ready",
        "prometheus",
    );

    let (out, r) = storm(
        Some(&cli),
        &[
            "--interface",
            "eth0",
            "--machines",
            "20",
            "--seed",
            "5",
            "--quiet",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mix = r["mix"].as_object().unwrap();
    let edk2 = mix.get("edk2").map_or(0, n);
    let acks = ["dhcp", "ipxe-dhcp", "installer-dhcp"]
        .iter()
        .map(|p| n(&phase(&r, p)["count"]))
        .sum::<u64>();
    let tftp_bytes = edk2 * NBP;
    let http_bytes = n(&r["bytes"]) - tftp_bytes;

    // Prometheus' view, once a scrape after the storm has landed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = [
        ("sum(rackboot_dhcp_replies_total{type=\"ack\"})", acks),
        ("sum(rackboot_http_body_bytes_total)", http_bytes),
        ("sum(rackboot_tftp_bytes_total)", tftp_bytes),
        ("sum(rackboot_tftp_transfers_total{result=\"done\"})", edk2),
    ];
    loop {
        let got: Vec<Option<f64>> = want.iter().map(|(q, _)| query(&srv, q)).collect();
        if got
            .iter()
            .zip(&want)
            .all(|(g, (_, w))| *g == Some(*w as f64))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus says {got:?}, the storm counted {:?}\n{}",
            want.iter().map(|w| w.1).collect::<Vec<_>>(),
            std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Histograms and gauges are there too.
    assert!(query(&srv, "sum(rackboot_http_first_byte_seconds_count)").unwrap_or(0.0) > 0.0);
    assert!(
        query(&srv, "sum(rackboot_dhcp_pool_addresses{state=\"leased\"})").unwrap_or(0.0) >= 20.0
    );
    assert_eq!(query(&srv, "rackboot_generation"), Some(1.0));
    // Every ACK of the storm's DHCP followed an OFFER: the offer-to-ACK
    // histogram counted each, and Prometheus can take its quantiles.
    let taken = query(&srv, "rackboot_dhcp_offer_to_ack_seconds_count").unwrap_or(0.0);
    assert!(taken > 0.0 && taken <= acks as f64, "{taken} of {acks}");
    // Each ACK answered a REQUEST counted by type.
    let requests = query(&srv, "rackboot_dhcp_messages_total{type=\"request\"}").unwrap_or(0.0);
    assert!(
        requests >= acks as f64,
        "{requests} REQUESTs for {acks} ACKs"
    );
    let p99 = query(
        &srv,
        "histogram_quantile(0.99, rackboot_dhcp_offer_to_ack_seconds_bucket)",
    );
    assert!(p99.is_some_and(|s| s > 0.0 && s <= 8.0), "{p99:?}");
}
