//! TFTP against a running server: real clients (tftp-hpa, atftp, curl, busybox),
//! EDK2's exact request sequence replayed, and hostile datagrams.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::support::{run, sha256, Fixture, Server, TempDir};

fn start(f: &Fixture) -> (Server, SocketAddr) {
    let s = Server::start(&f.root(), &["--tftp", "127.0.0.1:0"]);
    let t = s.tftp.unwrap();
    (s, t)
}

/// tftp-hpa fetching `remote` from `t` into `dst` in `mode` (binary or ascii).
fn tftp_hpa(
    t: SocketAddr,
    mode: &str,
    remote: &str,
    dst: &std::path::Path,
) -> std::process::Output {
    run(
        "tftp",
        &[
            &t.ip().to_string(),
            &t.port().to_string(),
            "-m",
            mode,
            "-c",
            "get",
            remote,
            dst.to_str().unwrap(),
        ],
    )
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn real_clients_fetch_both_sizes_intact() {
    let f = Fixture::new();
    let (_s, t) = start(&f);
    let efi = std::fs::read(f.root().join("efi/ipxe.efi")).unwrap();
    let out = TempDir::new("tftp-clients");
    let (host, port) = (t.ip().to_string(), t.port().to_string());
    for (name, remote, want) in [("efi", "efi/ipxe.efi", &efi), ("big", "big.bin", &f.big)] {
        // tftp-hpa: lock-step at the default 512-byte blocks; the 40 MB file is
        // 78,125 blocks, so the block number rolls over past 65535.
        let hpa = out.0.join(format!("hpa-{name}"));
        let o = tftp_hpa(t, "binary", remote, &hpa);
        assert_eq!(
            sha256(&read(&hpa)),
            sha256(want),
            "tftp-hpa {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let at = out.0.join(format!("atftp-{name}"));
        let o = run(
            "atftp",
            &[
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 8",
                "-g",
                "-r",
                remote,
                "-l",
                at.to_str().unwrap(),
                &host,
                &port,
            ],
        );
        assert_eq!(
            sha256(&read(&at)),
            sha256(want),
            "atftp {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let cu = out.0.join(format!("curl-{name}"));
        let url = format!("tftp://{t}/{remote}");
        let o = run(
            "curl",
            &[
                "-s",
                "-S",
                "--tftp-blksize",
                "1468",
                "-o",
                cu.to_str().unwrap(),
                &url,
            ],
        );
        assert_eq!(
            sha256(&read(&cu)),
            sha256(want),
            "curl {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bb = out.0.join(format!("busybox-{name}"));
        let o = run(
            "busybox",
            &[
                "tftp",
                "-g",
                "-r",
                remote,
                "-l",
                bb.to_str().unwrap(),
                "-b",
                "1468",
                &host,
                &port,
            ],
        );
        assert_eq!(
            sha256(&read(&bb)),
            sha256(want),
            "busybox {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A scripted client on one UDP socket.
struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl Client {
    fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self {
            sock,
            server,
            buf: vec![0; 70_000],
        }
    }

    fn rrq(&self, name: &str, opts: &[(&str, &str)]) {
        let mut b = vec![0u8; 12_000];
        let n = rackboot::wire::tftp::write_rrq(&mut b, name, "octet", opts).unwrap();
        self.sock.send_to(&b[..n], self.server).unwrap();
    }

    /// The next datagram and where it came from; `None` on timeout.
    fn recv(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        let (n, from) = self.sock.recv_from(&mut self.buf).ok()?;
        Some((self.buf[..n].to_vec(), from))
    }

    fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, to).unwrap();
    }
}

fn ack(block: u16) -> [u8; 4] {
    let [h, l] = block.to_be_bytes();
    [0, 4, h, l]
}

/// ERROR code of a datagram, if it is one.
fn error_code(d: &[u8]) -> Option<u16> {
    (d.len() >= 4 && d[..2] == [0, 5]).then(|| u16::from_be_bytes([d[2], d[3]]))
}

#[test]
fn edk2s_probe_then_windowed_download_replays_exactly() {
    let f = Fixture::new();
    let (s, t) = start(&f);
    let efi = std::fs::read(f.root().join("efi/ipxe.efi")).unwrap();
    let mut c = Client::new(t);
    // 1. The size probe: tsize=0 blksize=1468 windowsize=4, then ERROR 8 after the OACK.
    c.rrq(
        "efi/ipxe.efi",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let (oack, tid) = c.recv().expect("OACK");
    assert_eq!(
        oack,
        b"\x00\x06tsize\x00850528\x00blksize\x001468\x00windowsize\x004\x00"
    );
    c.send(tid, b"\x00\x05\x00\x08User aborted the transfer\x00");
    // 2. The download: blksize=1468 windowsize=4.
    let mut c = Client::new(t);
    c.rrq("efi/ipxe.efi", &[("blksize", "1468"), ("windowsize", "4")]);
    let (oack, tid) = c.recv().expect("OACK");
    assert_eq!(oack, b"\x00\x06blksize\x001468\x00windowsize\x004\x00");
    assert_ne!(
        tid.port(),
        t.port(),
        "answered from the transfer's own port"
    );
    c.send(tid, &ack(0));
    let mut file = Vec::new();
    let mut windows = Vec::new();
    'download: loop {
        let mut in_window = 0;
        loop {
            let (d, from) = c.recv().expect("DATA");
            assert_eq!((from, &d[..2]), (tid, &[0u8, 3][..]));
            let block = u16::from_be_bytes([d[2], d[3]]);
            assert_eq!(usize::from(block), file.len() / 1468 + 1, "blocks in order");
            file.extend_from_slice(&d[4..]);
            in_window += 1;
            if d.len() - 4 < 1468 {
                c.send(tid, &ack(block));
                windows.push(in_window);
                break 'download;
            }
            if in_window == 4 {
                c.send(tid, &ack(block));
                windows.push(in_window);
                break;
            }
        }
    }
    assert_eq!(sha256(&file), sha256(&efi));
    assert_eq!(windows.len(), 145, "580 blocks in windows of 4");
    assert!(windows.iter().all(|&w| w == 4));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.log().iter().any(|l| l.contains("size_probe")) && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
    assert!(
        s.log().iter().any(|l| l.contains("result=size_probe")),
        "the probe is counted as a probe"
    );
}

#[test]
fn hostile_requests_get_the_rfc_answer_and_transfers_go_on() {
    let f = Fixture::new();
    let (_s, t) = start(&f);
    let mut c = Client::new(t);
    let long_name = "a".repeat(10_000);
    let many: Vec<(String, String)> = (0..100)
        .map(|i| (format!("x-opt{i}"), "1".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (what, opts, name, want) in [
        ("blksize 0", vec![("blksize", "0")], "boot.ipxe", Some(8)),
        (
            "windowsize 0",
            vec![("windowsize", "0")],
            "boot.ipxe",
            Some(8),
        ),
        ("a missing file", vec![], "nope.efi", Some(1)),
        ("a dot-dot path", vec![], "../secret.txt", Some(2)),
        (
            "an absolute path outside the root",
            vec![],
            "/etc/passwd",
            Some(2),
        ),
        ("a 10 KB file name", vec![], long_name.as_str(), Some(4)),
    ] {
        c.rrq(name, &opts);
        let (d, _) = c.recv().unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(error_code(&d), want, "{what}: {d:?}");
    }
    for (what, opts, want_blksize, want_window) in [
        (
            "blksize 70000",
            vec![("blksize", "70000")],
            Some(65464),
            None,
        ),
        (
            "windowsize 1000",
            vec![("windowsize", "1000")],
            None,
            Some(64),
        ),
        ("100 options", many, None, None),
    ] {
        let mut c = Client::new(t);
        c.rrq("boot.ipxe", &opts);
        let (d, tid) = c.recv().unwrap_or_else(|| panic!("{what}: no answer"));
        let text = String::from_utf8_lossy(&d).into_owned();
        if let Some(b) = want_blksize {
            assert!(
                d.starts_with(b"\x00\x06") && text.contains(&format!("blksize\0{b}\0")),
                "{what}: {text:?}"
            );
        }
        if let Some(w) = want_window {
            assert!(
                d.starts_with(b"\x00\x06") && text.contains(&format!("windowsize\0{w}\0")),
                "{what}: {text:?}"
            );
        }
        if d.starts_with(b"\x00\x06") {
            c.send(tid, &ack(0));
            let (d, _) = c.recv().expect("DATA after the OACK");
            assert_eq!(&d[..4], b"\x00\x03\x00\x01", "{what}");
        } else {
            assert_eq!(&d[..4], b"\x00\x03\x00\x01", "{what}: data without options");
        }
    }
    // A write request, malformed requests: ERROR 2, ERROR 4 or a clean drop.
    let mut c = Client::new(t);
    c.send(t, b"\x00\x02file\x00octet\x00");
    assert_eq!(error_code(&c.recv().unwrap().0), Some(2));
    c.send(t, b"\x00\x01boot.ipxe\x00octet\x00blksize\x00");
    assert_eq!(
        error_code(&c.recv().unwrap().0),
        Some(4),
        "an option without a value"
    );
    c.send(t, b"\x00\x01boot.ipxe");
    assert_eq!(
        error_code(&c.recv().unwrap().0),
        Some(4),
        "truncated request"
    );
    for junk in [
        &b"\x00"[..],
        b"\x00\x09abc",
        b"\x00\x03\x00\x01data",
        b"\x00\x04\x00\x01",
    ] {
        c.send(t, junk); // dropped: no answer, no crash
    }

    // Mid-transfer: an ACK for a block never sent, DATA to the server, a
    // 4,000-byte datagram and an ACK from a stranger's port are dropped (the
    // stranger gets ERROR 5); the transfer then completes.
    let mut c = Client::new(t);
    c.rrq("efi/ipxe.efi", &[("blksize", "1468")]);
    let (_, tid) = c.recv().unwrap();
    c.send(tid, &ack(0));
    let (d1, _) = c.recv().unwrap();
    assert_eq!(&d1[..4], b"\x00\x03\x00\x01");
    c.send(tid, &ack(500));
    c.send(tid, b"\x00\x03\x00\x01data");
    // Longer than a transfer's receive buffer (an ACK is 4 bytes): dropped.
    let mut long = ack(1).to_vec();
    long.resize(4000, b'x');
    c.send(tid, &long);
    let mut stranger = Client::new(t);
    stranger.send(tid, &ack(1));
    assert_eq!(error_code(&stranger.recv().expect("ERROR 5").0), Some(5));
    let mut file = d1[4..].to_vec();
    let mut block = 1u16;
    loop {
        c.send(tid, &ack(block));
        let (d, _) = c.recv().expect("the transfer goes on");
        let b = u16::from_be_bytes([d[2], d[3]]);
        if b == block {
            continue; // a resend after our stray packets: ACK again
        }
        block = b;
        file.extend_from_slice(&d[4..]);
        if d.len() - 4 < 1468 {
            c.send(tid, &ack(block));
            break;
        }
    }
    assert_eq!(
        sha256(&file),
        sha256(&std::fs::read(f.root().join("efi/ipxe.efi")).unwrap())
    );

    // An ERROR mid-transfer ends it; the server keeps serving.
    let mut c = Client::new(t);
    c.rrq("big.bin", &[]);
    let (_, tid) = c.recv().unwrap();
    c.send(tid, b"\x00\x05\x00\x00stop\x00");
    let out = TempDir::new("tftp-after");
    let dst = out.0.join("boot.ipxe");
    tftp_hpa(t, "binary", "boot.ipxe", &dst);
    assert_eq!(read(&dst), b"#!ipxe\nkernel big.bin\nboot\n");
}

#[test]
fn single_port_mode_answers_from_the_tftp_port_with_real_clients() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &["--tftp", "127.0.0.1:0", "--tftp-single-port"]);
    let t = s.tftp.unwrap();
    let mut c = Client::new(t);
    c.rrq("boot.ipxe", &[("blksize", "1468")]);
    let (_, from) = c.recv().expect("OACK");
    assert_eq!(from, t, "answered from the TFTP port itself");
    let out = TempDir::new("single-port");
    let at = out.0.join("efi");
    run(
        "atftp",
        &[
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "efi/ipxe.efi",
            "-l",
            at.to_str().unwrap(),
            &t.ip().to_string(),
            &t.port().to_string(),
        ],
    );
    assert_eq!(
        sha256(&read(&at)),
        sha256(&std::fs::read(f.root().join("efi/ipxe.efi")).unwrap())
    );
}

#[test]
fn a_repeated_request_is_a_retransmission_not_a_second_transfer() {
    let f = Fixture::new();
    let (_s, t) = start(&f);
    let mut c = Client::new(t);
    c.rrq("efi/ipxe.efi", &[("blksize", "1468")]);
    c.rrq("efi/ipxe.efi", &[("blksize", "1468")]);
    let (first, tid) = c.recv().expect("OACK");
    assert!(first.starts_with(b"\x00\x06"));
    // Only one transfer answers: nothing comes from a second TID before the
    // first one's retransmission timer (1 s) would fire.
    c.sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Some((_, from)) = c.recv() {
        assert_eq!(from, tid, "a second transfer was started");
    }
}

#[test]
fn the_per_client_limit_answers_busy_and_netascii_round_trips() {
    let f = Fixture::new();
    let dir = TempDir::new("tftp-limit");
    let cfg = dir.0.join("rackboot.toml");
    std::fs::write(&cfg, "[tftp]\nmax_per_client = 1\n").unwrap();
    // The limit is per worker (workers share nothing): one worker sees every client.
    let s = Server::start(
        &f.root(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tftp",
            "127.0.0.1:0",
            "--workers",
            "1",
        ],
    );
    let t = s.tftp.unwrap();
    let mut a = Client::new(t);
    a.rrq("big.bin", &[]);
    assert!(a.recv().is_some(), "the first transfer starts");
    let mut b = Client::new(t);
    b.rrq("boot.ipxe", &[]);
    let (d, _) = b.recv().expect("an answer, never silence");
    assert_eq!(error_code(&d), Some(0));
    assert!(String::from_utf8_lossy(&d).contains("too many transfers"));
    // tftp-hpa in ascii mode converts netascii back: the same text arrives.
    let out = dir.0.join("ascii");
    let s2 = Server::start(&f.root(), &["--tftp", "127.0.0.1:0"]);
    let t2 = s2.tftp.unwrap();
    tftp_hpa(t2, "ascii", "boot.ipxe", &out);
    assert_eq!(read(&out), b"#!ipxe\nkernel big.bin\nboot\n");
}
