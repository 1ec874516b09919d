//! The I/O backends themselves: which one runs and why, every io_uring body
//! path (splice, send-zc, send) and both TFTP send paths (sendmsg,
//! sendmsg-zc) serving the same bytes. The rest of the
//! suite runs once per backend (tests/run sets RACKBOOT_BACKEND).

use crate::support::{curl, run, sha256, Fixture, Server, TempDir, BIG_LEN};
use std::time::{Duration, Instant};

/// The server's "io backend" line, waited for (it follows "http listening").
fn backend_line(s: &Server) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = s.log().into_iter().find(|l| l.contains("io backend")) {
            return l;
        }
        assert!(
            Instant::now() < end,
            "no io backend line:\n{}",
            s.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_backend_is_said_once_with_its_reason_and_auto_picks_io_uring_on_this_kernel() {
    let f = Fixture::new();
    for (flag, name, reason) in [
        ("mio", "epoll", "--backend mio"),
        ("uring", "io_uring", "--backend uring"),
        (
            "auto",
            "io_uring",
            "auto: the kernel supports every operation",
        ),
    ] {
        let s = Server::start(&f.root(), &["--backend", flag, "--tftp", "127.0.0.1:0"]);
        let line = backend_line(&s);
        assert!(
            line.contains(&format!("backend=\"{name}\"")),
            "{flag}: {line}"
        );
        assert!(line.contains(reason), "{flag}: {line}");
        let (code, _, body) = curl(&[&s.url("/efi/ipxe.efi")]);
        assert_eq!((code, body.len()), (200, 850_528), "{flag}");
        let log = s.log();
        assert_eq!(
            log.iter().filter(|l| l.contains("io backend")).count(),
            1,
            "{flag}"
        );
        assert!(
            !log.iter().any(|l| l.contains("unavailable")),
            "{flag}: a worker fell back:\n{}",
            log.join("\n")
        );
    }
}

#[test]
fn every_io_uring_body_path_serves_whole_files_ranges_and_keep_alive_intact() {
    let f = Fixture::new();
    for body in ["splice", "send-zc", "send"] {
        let s = Server::start(&f.root(), &["--backend", "uring", "--http-body", body]);
        let (code, _, got) = curl(&[&s.url("/big.bin")]);
        assert_eq!((code, got.len()), (200, BIG_LEN), "{body}");
        assert_eq!(sha256(&got), sha256(&f.big), "{body}");
        // A range that starts and ends inside a pipe's (or a send's) worth.
        let (code, _, got) = curl(&["-r", "1000001-3500000", &s.url("/big.bin")]);
        assert_eq!(code, 206, "{body}");
        assert_eq!(got, &f.big[1_000_001..=3_500_000], "{body}");
        // Three responses on one connection: big, small, big again (curl's -w
        // writes each status after its body).
        let (code, _, got) = curl(&[
            &s.url("/big.bin"),
            &s.url("/efi/ipxe.efi"),
            &s.url("/big.bin"),
        ]);
        assert_eq!(code, 200, "{body}");
        let small = 850_528;
        assert_eq!(got.len(), 2 * BIG_LEN + small + 6, "{body}");
        assert_eq!(sha256(&got[..BIG_LEN]), sha256(&f.big), "{body}");
        assert_eq!(&got[BIG_LEN..BIG_LEN + 3], b"200", "{body}");
        assert_eq!(
            sha256(&got[BIG_LEN + small + 6..]),
            sha256(&f.big),
            "{body}"
        );
        let peers: Vec<String> = s
            .log()
            .iter()
            .filter(|l| l.contains("request") && l.contains("status=200"))
            .filter_map(|l| {
                l.split("peer=")
                    .nth(1)?
                    .split(' ')
                    .next()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(peers.len(), 4, "{body}: {peers:?}");
        assert!(
            peers[1..].iter().all(|p| *p == peers[1]),
            "{body}: one connection: {peers:?}"
        );
        let log = s.log();
        assert!(
            !log.iter().any(|l| l.contains("bodies use SEND")),
            "{body} fell back:\n{}",
            log.join("\n")
        );
    }
}

#[test]
fn both_io_uring_tftp_send_paths_serve_whole_files_to_real_clients() {
    let f = Fixture::new();
    let efi = std::fs::read(f.root().join("efi/ipxe.efi")).unwrap();
    let out = TempDir::new("tftp-send-paths");
    for send in ["sendmsg", "sendmsg-zc"] {
        let s = Server::start(
            &f.root(),
            &[
                "--backend",
                "uring",
                "--tftp",
                "127.0.0.1:0",
                "--tftp-send",
                send,
                "--log-level",
                "debug",
            ],
        );
        let t = s.tftp.unwrap();
        let (host, port) = (t.ip().to_string(), t.port().to_string());
        // EDK2's window (4 x 1468: one zero-copy message), a window that takes
        // several (16 x 1468 is 3 under the default 17-fragment limit), small
        // blocks in a long window, and a block larger than the MTU.
        for (remote, want, blksize, window) in [
            ("efi/ipxe.efi", &efi, 1468, 4),
            ("big.bin", &f.big, 1468, 16),
            ("efi/ipxe.efi", &efi, 512, 64),
            ("efi/ipxe.efi", &efi, 65464, 2),
        ] {
            let dst = out.0.join(format!("{send}-{blksize}-{window}"));
            let o = run(
                "atftp",
                &[
                    "--option",
                    &format!("blksize {blksize}"),
                    "--option",
                    &format!("windowsize {window}"),
                    "-g",
                    "-r",
                    remote,
                    "-l",
                    dst.to_str().unwrap(),
                    &host,
                    &port,
                ],
            );
            let got = std::fs::read(&dst).unwrap_or_default();
            assert_eq!(
                (got.len(), sha256(&got)),
                (want.len(), sha256(want)),
                "{send} {remote} blksize {blksize} windowsize {window}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let log = s.log();
        assert!(
            !log.iter()
                .any(|l| l.contains("refused") || l.contains("send failed")),
            "{send}:\n{}",
            log.join("\n")
        );
        // The zero-copy path really ran: its notifications came back (and said
        // whether the kernel copied, which it does on loopback).
        assert_eq!(
            log.iter().any(|l| l.contains("SENDMSG_ZC:")),
            send == "sendmsg-zc",
            "{send}:\n{}",
            log.join("\n")
        );
    }
}
