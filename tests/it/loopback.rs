//! curl against a running server: whole files, ranges, validators, connection reuse.

use crate::support::{curl, header, raw, run, sha256, status_of, Fixture, Server, BIG_LEN, SECRET};
use std::time::Duration;

#[test]
fn a_40mb_file_downloads_intact() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let (code, headers, body) = curl(&[&s.url("/big.bin")]);
    assert_eq!(code, 200);
    assert_eq!(
        header(&headers, "content-length").as_deref(),
        Some("40000000")
    );
    assert_eq!(body.len(), BIG_LEN);
    assert_eq!(sha256(&body), sha256(&f.big));
    // The same bytes through a symlink that stays inside the root.
    let (code, _, body) = curl(&[&s.url("/inside")]);
    assert_eq!((code, sha256(&body)), (200, sha256(&f.big)));
}

#[test]
fn ranges_return_exactly_the_bytes_asked_for() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let url = s.url("/big.bin");
    let n = BIG_LEN;
    for (range, first, last) in [
        ("0-99", 0, 99),                               // first bytes
        ("20000000-20000999", 20_000_000, 20_000_999), // middle
        ("-500", n - 500, n - 1),                      // suffix
        ("39999000-", 39_999_000, n - 1),              // open-ended
        ("39999990-50000000", 39_999_990, n - 1),      // clamped at the end
    ] {
        let (code, headers, body) = curl(&["-r", range, &url]);
        assert_eq!(code, 206, "{range}");
        assert_eq!(
            header(&headers, "content-range"),
            Some(format!("bytes {first}-{last}/{n}")),
            "{range}"
        );
        assert_eq!(body, &f.big[first..=last], "{range}");
    }
    let (code, headers, body) = curl(&["-r", "40000000-", &url]);
    assert_eq!(code, 416);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes */{n}"))
    );
    assert!(!body.windows(16).any(|w| f.big.starts_with(w)));
}

#[test]
fn head_reports_the_length_and_sends_no_body() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let (code, headers, _) = curl(&["-I", &s.url("/efi/ipxe.efi")]);
    assert_eq!(code, 200);
    assert_eq!(
        header(&headers, "content-length").as_deref(),
        Some("850528")
    );
    assert_eq!(header(&headers, "accept-ranges").as_deref(), Some("bytes"));
    assert!(header(&headers, "etag").is_some() && header(&headers, "last-modified").is_some());
    // On the wire, the response ends with its head.
    let (resp, closed) = raw(
        s.addr,
        b"HEAD /efi/ipxe.efi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(
        closed
            && resp.ends_with(b"\r\n\r\n")
            && resp.windows(4).filter(|w| w == b"\r\n\r\n").count() == 1
    );
    let (_, headers, _) = curl(&["-I", &s.url("/boot.ipxe")]);
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn if_range_honours_right_validators_and_ignores_wrong_ones() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let url = s.url("/big.bin");
    let (_, headers, _) = curl(&["-I", &url]);
    let etag = header(&headers, "etag").unwrap();
    let date = header(&headers, "last-modified").unwrap();
    for (validator, want) in [
        (etag.clone(), 206),
        (date, 206),
        ("\"not-the-etag\"".to_owned(), 200),
        (format!("W/{etag}"), 200),
        ("Thu, 01 Jan 1998 00:00:00 GMT".to_owned(), 200),
    ] {
        let (code, _, body) = curl(&["-r", "0-9", "-H", &format!("If-Range: {validator}"), &url]);
        assert_eq!(code, want, "If-Range: {validator}");
        assert_eq!(
            body.len(),
            if want == 206 { 10 } else { BIG_LEN },
            "If-Range: {validator}"
        );
    }
    let (code, _, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((code, body.len()), (304, 0));
}

#[test]
fn keep_alive_serves_two_urls_on_one_connection() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let out = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &s.url("/boot.ipxe"),
            &s.url("/efi/ipxe.efi"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 1\n200 0\n",
        "the second URL reused the connection"
    );
}

#[test]
fn http_1_0_is_served_and_closed() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let (code, headers, body) = curl(&["-0", &s.url("/boot.ipxe")]);
    assert_eq!(code, 200);
    assert!(headers.starts_with("HTTP/1.1 200"));
    assert_eq!(header(&headers, "connection").as_deref(), Some("close"));
    assert_eq!(body, b"#!ipxe\nkernel big.bin\nboot\n");
}

#[test]
fn a_missing_file_is_404() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    assert_eq!(curl(&[&s.url("/no/such/file")]).0, 404);
    assert_eq!(curl(&[&s.url("/efi")]).0, 404, "a directory is not a file");
}

#[test]
fn no_traversal_form_returns_a_byte_from_outside_the_root() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let secret_path = f.dir.0.join("secret.txt");
    let absolute = format!("http://x{}", secret_path.display());
    // curl --path-as-is sends these exactly as written.
    for target in [
        "/../secret.txt",
        "/efi/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2e/secret.txt",
        "/efi%2f..%2f..%2fsecret.txt",
        "/leak",
    ] {
        let (code, _, body) = curl(&["--path-as-is", &s.url(target)]);
        assert!((400..500).contains(&code), "{target}: {code}");
        assert!(!contains(&body, SECRET), "{target} leaked the secret");
    }
    // Forms curl will not send: raw requests.
    for target in [
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/secret.txt%00",
        "/a/%00/../..",
        absolute.as_str(),
        "../secret.txt",
        "*",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (resp, _) = raw(s.addr, req.as_bytes(), Duration::from_secs(10));
        let code = status_of(&resp).unwrap_or(0);
        assert!(
            (400..500).contains(&code),
            "{target}: {}",
            String::from_utf8_lossy(&resp)
        );
        assert!(!contains(&resp, SECRET), "{target} leaked the secret");
    }
    let (resp, _) = raw(
        s.addr,
        b"GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&resp), Some(400));
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let f = Fixture::new();
    let s = Server::start(&f.root(), &["--log-format", "json"]);
    assert_eq!(curl(&["-A", "iPXE/1.0.0", &s.url("/boot.ipxe")]).0, 200);
    assert_eq!(curl(&[&s.url("/nothing")]).0, 404);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<String> = s
            .log()
            .into_iter()
            .filter(|l| l.contains("\"message\":\"request\""))
            .collect();
        if lines.len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::yield_now();
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("\"status\":200")
            && lines[0].contains("\"agent\":\"iPXE/1.0.0\"")
            && lines[0].contains("\"target\":\"/boot.ipxe\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"status\":404") && lines[1].contains("\"error\":\"not_found\""),
        "{}",
        lines[1]
    );
}

#[test]
fn a_client_that_pipelines_faster_than_it_reads_gets_every_answer_in_order() {
    use std::io::{Read, Write};
    // 3,000 requests (about 150 KiB) written at once while the reader waits:
    // the server holds more than a receive's worth before it answers, and must
    // neither drop, reorder nor stall any of them.
    const N: usize = 3000;
    let f = Fixture::new();
    let s = Server::start(&f.root(), &[]);
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for i in 0..N {
            let last = if i + 1 == N {
                "Connection: close\r\n"
            } else {
                ""
            };
            write!(
                requests,
                "GET /boot.ipxe?{i} HTTP/1.1\r\nHost: x\r\n{last}\r\n"
            )
            .unwrap();
        }
        writer.write_all(&requests).unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    let body = b"#!ipxe\nkernel big.bin\nboot\n";
    let answers = got
        .windows(b"HTTP/1.1 200".len())
        .filter(|w| w == b"HTTP/1.1 200")
        .count();
    let bodies = got.windows(body.len()).filter(|w| w == body).count();
    assert_eq!((answers, bodies), (N, N), "{} bytes back", got.len());
    assert!(got.ends_with(body), "the last answer is whole");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
