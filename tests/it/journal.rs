//! The lease journal under disk faults: a full disk (a tiny tmpfs filled up
//! during a perfdhcp storm), fsync failing with EIO (a FUSE pass-through file
//! system, faultfs.py, that fails on demand: the error reaches the server's
//! own fdatasync through the kernel, nothing is preloaded into it), and a
//! journal damaged in the middle. Needs root (mounts, namespaces).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dhcp::{ack_field, client, dora_ip, leases, pair, perf_pair, start, Capture};
use crate::ns::{sh, spawn_in, Kill, Net};
use crate::support::{run, Fixture, Server, TempDir};

/// A mount that is taken down when dropped.
struct Mount(PathBuf, Option<Kill>);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.0.to_str().unwrap()]);
        drop(self.1.take());
    }
}

/// A tmpfs of `size` at `dir`.
fn tmpfs(dir: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size={size} rackboot-it {}",
        dir.display()
    ));
    Mount(dir.to_path_buf(), None)
}

/// faultfs.py over `backing` at `dir`.
fn faultfs(backing: &Path, dir: &Path) -> Mount {
    let python = "/usr/bin/python3";
    assert!(
        run(python, &["-c", "import fusepy"]).status.success(),
        "faultfs needs Debian's fusepy: apt-get install python3-fusepy fuse3"
    );
    std::fs::create_dir_all(backing).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/faultfs.py");
    let child = std::process::Command::new(python)
        .args([script, backing.to_str().unwrap(), dir.to_str().unwrap()])
        .spawn()
        .expect("start faultfs.py");
    let started = Instant::now();
    while !run("mountpoint", &["-q", dir.to_str().unwrap()])
        .status
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "faultfs did not mount"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Mount(dir.to_path_buf(), Some(Kill(child)))
}

fn count(log: &[String], text: &str) -> usize {
    log.iter().filter(|l| l.contains(text)).count()
}

#[test]
fn a_full_disk_mid_storm_holds_acks_back_and_every_ack_sent_is_on_disk() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("jf");
    let (s, c) = perf_pair(&mut net);
    let dir = TempDir::new("journal-full");
    let disk = dir.0.join("disk");
    let _mount = tmpfs(&disk, "512k");
    let file = disk.join("leases");
    let f = Fixture::new();
    let args = [
        "--interface",
        "eth0",
        "--dhcp-lease-file",
        file.to_str().unwrap(),
        "--dhcp-range",
        "10.205.1.0,10.205.80.255",
        "--no-access-log",
    ];
    let server = Server::start_in(Some(&s), "10.205.0.1", &f.root(), &args);
    let capture = Capture::start(&c, "eth0", "udp src port 67", &dir.0.join("acks.pcap"));
    let mut storm = Kill(spawn_in(
        &c,
        "perfdhcp -4 -l 10.205.0.2 -r 200 -R 5000 -n 5000 -p 25 10.205.0.1 >/dev/null 2>&1",
    ));
    std::thread::sleep(Duration::from_secs(4));
    // Fill the disk: dd stops at ENOSPC.
    let _ = run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}/fill", disk.display()),
            "bs=4k",
        ],
    );
    std::thread::sleep(Duration::from_secs(6));
    let errors = server.metric("rackboot_dhcp_journal_errors_total{op=\"write\"}");
    let failing = server.metric("rackboot_dhcp_journal_failing");
    let held = server.metric("rackboot_dhcp_acks_held_back_total");
    std::fs::remove_file(disk.join("fill")).unwrap();
    storm.wait_at_most(Duration::from_secs(60));
    // After the disk has room again, a new client gets its lease.
    let (ok, out) = client(&c, "eth0 52:54:00:fd:00:01 dora --wait 2");
    assert!(ok, "no lease after the disk recovered: {out}");
    let after = ack_field(&out, "yiaddr").unwrap();
    let log = server.log();
    drop(server); // SIGKILL: what is on disk is all there is.
    assert!(
        errors > 0 && held > 0 && failing == 1,
        "errors {errors} held {held} failing {failing}"
    );
    assert_eq!(
        count(&log, "lease journal cannot be written"),
        1,
        "one line per minute while the disk is full:\n{}",
        log.join("\n")
    );
    assert_eq!(count(&log, "writable again"), 1, "{}", log.join("\n"));
    let acks = capture.acked();
    assert!(
        acks.len() > 300,
        "the storm ran on both sides of the fill: {}",
        acks.len()
    );
    let on_disk: std::collections::HashMap<String, String> = leases(&file).into_iter().collect();
    for (ip, mac) in &acks {
        assert_eq!(
            on_disk.get(ip),
            Some(mac),
            "ACK {ip} -> {mac} was sent but is not on disk"
        );
    }
    assert_eq!(
        on_disk.get(&after).map(String::as_str),
        Some("52:54:00:fd:00:01")
    );
}

#[test]
fn fsync_failing_with_eio_sends_no_ack_until_the_journal_is_rewritten() {
    let mut net = Net::new("je");
    let (s, c) = pair(&mut net);
    let dir = TempDir::new("journal-eio");
    let backing = dir.0.join("backing");
    let _mount = faultfs(&backing, &dir.0.join("mnt"));
    let file = dir.0.join("mnt/leases");
    let f = Fixture::new();
    let server = start(
        &s,
        &f,
        &file,
        &["--dhcp-range", "10.201.0.100,10.201.0.199"],
    );
    let first = dora_ip(&c, "52:54:00:ee:00:01");

    std::fs::write(backing.join(".fail-fsync"), b"").unwrap();
    let (ok, out) = client(&c, "eth0 52:54:00:ee:00:02 dora --wait 1");
    assert!(
        !ok && ack_field(&out, "yiaddr").is_none(),
        "an ACK left without a durable record: {out}"
    );
    assert!(server.metric("rackboot_dhcp_journal_errors_total{op=\"sync\"}") > 0);
    assert_eq!(server.metric("rackboot_dhcp_journal_failing"), 1);
    assert!(server.metric("rackboot_dhcp_acks_held_back_total") > 0);

    std::fs::remove_file(backing.join(".fail-fsync")).unwrap();
    let second = dora_ip(&c, "52:54:00:ee:00:02");
    assert_eq!(server.metric("rackboot_dhcp_journal_failing"), 0);
    let log = server.log();
    drop(server);
    assert_eq!(
        count(&log, "lease journal cannot be synced"),
        1,
        "{}",
        log.join("\n")
    );
    assert!(
        count(&log, "rewrite=true") == 1 && count(&log, "writable again") == 1,
        "{}",
        log.join("\n")
    );
    let held: Vec<(String, String)> = leases(&file);
    assert!(
        held.contains(&(first, "52:54:00:ee:00:01".into())),
        "{held:?}"
    );
    assert!(
        held.contains(&(second, "52:54:00:ee:00:02".into())),
        "{held:?}"
    );
}

#[test]
fn a_journal_damaged_in_the_middle_keeps_the_records_around_it() {
    let mut net = Net::new("jd");
    let (s, c) = pair(&mut net);
    let dir = TempDir::new("journal-damage");
    let file = dir.0.join("leases");
    let f = Fixture::new();
    let range = ["--dhcp-range", "10.201.0.100,10.201.0.199"];
    let server = start(&s, &f, &file, &range);
    let macs = [
        "52:54:00:dd:01:01",
        "52:54:00:dd:01:02",
        "52:54:00:dd:01:03",
    ];
    let ips: Vec<String> = macs.iter().map(|m| dora_ip(&c, m)).collect();
    drop(server);

    // Walk the records (magic, then `len: u16, crc: u32, payload`) and flip a
    // bit in the first record of the second machine: records of the first
    // lie before it, of the third after it. (A client that resent its
    // REQUEST on a loaded machine has two records.)
    let mut bytes = std::fs::read(&file).unwrap();
    let mut starts = Vec::new();
    let mut at = 8;
    while at + 6 <= bytes.len() {
        starts.push(at);
        at += 6 + usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    }
    starts.push(bytes.len());
    // payload: kind, ip, time (13 bytes), then client and hw, each `len: u16, bytes`.
    let hw_of = |at: usize| {
        let p = &bytes[at + 6..];
        let client = usize::from(u16::from_le_bytes([p[13], p[14]]));
        let h = 15 + client;
        let n = usize::from(u16::from_le_bytes([p[h], p[h + 1]]));
        p[h + 2..h + 2 + n].to_vec()
    };
    let second = [0x52, 0x54, 0, 0xdd, 1, 2];
    let of_second: Vec<usize> = (0..starts.len() - 1)
        .filter(|&i| hw_of(starts[i]) == second)
        .collect();
    let i = of_second[0];
    assert!(
        i > 0 && i + 1 < starts.len() - 1,
        "records around it: {of_second:?} of {}",
        starts.len() - 1
    );
    bytes[starts[i] + 6 + 2] ^= 0x04;
    std::fs::write(&file, &bytes).unwrap();
    let damaged = (starts[i], starts[i + 1] - starts[i]);

    let server = start(&s, &f, &file, &range);
    // The first machine keeps its address; the third's lease is still held.
    assert_eq!(dora_ip(&c, macs[0]), ips[0]);
    let log = server.log();
    drop(server);
    let line = log
        .iter()
        .find(|l| l.contains("damaged stretch"))
        .unwrap_or_else(|| panic!("no report of the damage:\n{}", log.join("\n")));
    assert!(
        line.contains(&format!("offset={}", damaged.0))
            && line.contains(&format!("bytes={}", damaged.1)),
        "{line}"
    );
    let held = leases(&file);
    assert!(held.contains(&(ips[2].clone(), macs[2].into())), "{held:?}");
    if of_second.len() == 1 {
        assert!(!held.iter().any(|(_, m)| m == macs[1]), "{held:?}");
    }
    let aside: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("leases.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept aside");
    assert_eq!(std::fs::read(dir.0.join(&aside[0])).unwrap(), bytes);
}
