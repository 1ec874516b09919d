//! Hostile and broken requests: each gets a 4xx or a clean close, and a download
//! running on the same server meanwhile completes intact.

use std::time::Duration;

use crate::support::{raw, run, sha256, status_of, Fixture, Server};

/// What the server did with one bad request.
fn answer(s: &Server, request: &[u8]) -> (Option<u16>, bool) {
    let (resp, closed) = raw(s.addr, request, Duration::from_secs(15));
    (status_of(&resp), closed)
}

#[test]
fn bad_requests_get_4xx_or_a_clean_close_while_a_download_goes_on() {
    let f = Fixture::new();
    let mut s = Server::start(&f.root(), &[]);
    // A download paced to last several seconds, so that every bad request below
    // lands while it runs (both workers serve both).
    let url = s.url("/big.bin");
    let download =
        std::thread::spawn(move || run("curl", &["-s", "-S", "--limit-rate", "8M", &url]));

    let mut huge_header = b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    huge_header.resize(huge_header.len() + (1 << 20), b'a');
    huge_header.extend_from_slice(b"\r\n\r\n");
    let mut many_headers = b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..10_000 {
        many_headers.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let garbage: Vec<u8> = rackboot::store::builtin::filler(4096, 9);

    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("garbage", garbage, Some(400)),
        (
            "TLS hello",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(),
            Some(400),
        ),
        ("a 1 MB header", huge_header, Some(431)),
        ("10,000 headers", many_headers, Some(431)),
        (
            "two Content-Length",
            b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "a body on GET",
            b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            Some(400),
        ),
        (
            "chunked body on GET",
            b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            Some(400),
        ),
        (
            "a 10 KB target",
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(10_000)).into_bytes(),
            Some(414),
        ),
        (
            "an unknown method",
            b"BREW /boot.ipxe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            Some(405),
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /boot.ipxe HTTP/1.1\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "two Host fields",
            b"GET /boot.ipxe HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Some(400),
        ),
    ];
    for (what, request, want) in &cases {
        let (code, closed) = answer(&s, request);
        assert_eq!(code, *want, "{what}");
        assert!(
            closed,
            "{what}: the server should close after a framing error"
        );
    }

    // A head that never ends, then EOF: closed without an answer, not a crash.
    let (code, closed) = answer(&s, b"GET /boot.ipxe HTTP/1.1\r\nHost: x");
    assert!(code.is_none() && closed);
    // Bare LF line endings are tolerated (RFC 9112 2.2 lets a recipient accept them).
    let (code, _) = answer(
        &s,
        b"GET /boot.ipxe HTTP/1.1\nHost: x\nConnection: close\n\n",
    );
    assert_eq!(code, Some(200));

    let out = download.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha256(&out.stdout),
        sha256(&f.big),
        "the concurrent download is intact"
    );
    assert!(s.alive(), "the server survived");
}

#[test]
fn a_silent_client_is_closed_after_the_head_timeout_config() {
    let f = Fixture::new();
    let dir = crate::support::TempDir::new("cfg");
    let cfg = dir.0.join("rackboot.toml");
    std::fs::write(&cfg, "[http]\nhead_secs = 1\nidle_secs = 1\n").unwrap();
    let s = Server::start(&f.root(), &["--config", cfg.to_str().unwrap()]);
    // Half a request, then nothing: the server must give up and close by itself.
    let (resp, closed) = raw(s.addr, b"GET /boot.ipxe HTT", Duration::from_secs(30));
    assert!(
        resp.is_empty() && closed,
        "closed={closed} resp={:?}",
        String::from_utf8_lossy(&resp)
    );
    // An idle keep-alive connection too.
    let (resp, closed) = raw(
        s.addr,
        b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(30),
    );
    assert_eq!(status_of(&resp), Some(200));
    assert!(closed, "idle connection closed by the server");
}

#[test]
fn regression_8_clients_that_half_close_in_the_middle_of_a_body_leave_the_worker_serving() {
    use std::io::{Read, Write};
    let f = Fixture::new();
    // One worker, so that a worker stuck on the closed connections would be the
    // only one there is.
    let mut s = Server::start(&f.root(), &["--workers", "1"]);
    for round in 0..3 {
        let mut conns = Vec::new();
        for _ in 0..20 {
            let mut c = std::net::TcpStream::connect(s.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut some = [0u8; 65536];
            c.read_exact(&mut some)
                .unwrap_or_else(|e| panic!("round {round}: no body ({e}): the worker is stuck"));
            // The client is done sending and reads no more: the server sees EOF
            // while its socket is full of a body nobody reads.
            c.shutdown(std::net::Shutdown::Write).unwrap();
            conns.push(c);
        }
        let (code, _, body) = crate::support::curl(&["-m", "20", &s.url("/boot.ipxe")]);
        assert_eq!(
            (code, &body[..]),
            (200, &b"#!ipxe\nkernel big.bin\nboot\n"[..]),
            "round {round}"
        );
        drop(conns);
    }
    assert!(s.alive());
}
