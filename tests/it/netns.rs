//! Tests across a real link: two network namespaces joined by a veth pair (made
//! here, removed on drop), rackboot in one, real clients in the other, and packet
//! loss injected with nft in the clients' namespace. Needs root.

use std::process::{Command, Stdio};

use crate::support::{run, sha256, Fixture, Server, TempDir};

/// Two namespaces and a veth between them: server 10.211.N.1, clients 10.211.N.2.
struct Link {
    server_ns: String,
    client_ns: String,
    server_ip: String,
}

impl Link {
    fn new(tag: &str, net: u8) -> Self {
        assert!(
            run("id", &["-u"]).stdout.starts_with(b"0\n"),
            "network namespace tests need root: run tests/run as root (CI does)"
        );
        let pid = std::process::id();
        let (s, c) = (format!("rb{tag}{pid}s"), format!("rb{tag}{pid}c"));
        let sh = |cmd: &str| {
            let o = run("sh", &["-c", cmd]);
            assert!(
                o.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let _ = run("ip", &["netns", "del", &s]);
        let _ = run("ip", &["netns", "del", &c]);
        sh(&format!("ip netns add {s} && ip netns add {c}"));
        let link = Self {
            server_ns: s.clone(),
            client_ns: c.clone(),
            server_ip: format!("10.211.{net}.1"),
        };
        sh(&format!(
            "ip link add {tag}{pid}a type veth peer name {tag}{pid}b"
        ));
        sh(&format!(
            "ip link set {tag}{pid}a netns {s} && ip link set {tag}{pid}b netns {c}"
        ));
        sh(&format!("ip -n {s} addr add 10.211.{net}.1/24 dev {tag}{pid}a && ip -n {s} link set {tag}{pid}a up && ip -n {s} link set lo up"));
        sh(&format!("ip -n {c} addr add 10.211.{net}.2/24 dev {tag}{pid}b && ip -n {c} link set {tag}{pid}b up && ip -n {c} link set lo up"));
        link
    }

    /// Drops `percent` % of the UDP datagrams that reach the clients' namespace.
    fn lose(&self, percent: u32) {
        let ns = &self.client_ns;
        for cmd in [
            "nft add table ip loss".to_owned(),
            "nft add chain ip loss input '{ type filter hook input priority 0 ; }'".to_owned(),
            format!("nft add rule ip loss input meta l4proto udp numgen random mod 100 lt {percent} drop"),
        ] {
            let o = run("ip", &["netns", "exec", ns, "sh", "-c", &cmd]);
            assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth, and so the pair.
        let _ = run("ip", &["netns", "del", &self.server_ns]);
        let _ = run("ip", &["netns", "del", &self.client_ns]);
    }
}

fn fifty_transfers_under_loss(percent: u32, net: u8) {
    let f = Fixture::new();
    let payload = rackboot::store::builtin::filler(16 * 1024, u64::from(percent));
    std::fs::write(f.root().join("loss.bin"), &payload).unwrap();
    let link = Link::new(&format!("l{percent}"), net);
    let tftp = format!("{}:69", link.server_ip);
    let _server = Server::start_in(
        Some(&link.server_ns),
        &link.server_ip,
        &f.root(),
        &["--tftp", &tftp, "--no-access-log"],
    );
    link.lose(percent);
    let out = TempDir::new("loss");
    let children: Vec<_> = (0..50)
        .map(|i| {
            let dst = out.0.join(format!("loss-{i}"));
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &link.client_ns,
                    "tftp",
                    &link.server_ip,
                    "-m",
                    "binary",
                    "-c",
                    "get",
                    "loss.bin",
                ])
                .arg(&dst)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tftp (apt-get install tftp-hpa iproute2)")
        })
        .collect();
    let mut failures = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let got = std::fs::read(out.0.join(format!("loss-{i}"))).unwrap_or_default();
        if sha256(&got) != sha256(&payload) {
            failures.push(format!(
                "client {i}: {} bytes; {}",
                got.len(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{percent} % loss: {} of 50 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fifty_concurrent_transfers_complete_with_10_percent_loss() {
    fifty_transfers_under_loss(10, 10);
}

#[test]
fn fifty_concurrent_transfers_complete_with_30_percent_loss() {
    fifty_transfers_under_loss(30, 30);
}
