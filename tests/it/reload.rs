//! Live reload and the admin API: SIGHUP, `rackboot reload` and
//! `POST /api/v1/reload` publish new files to new requests while transfers in
//! flight finish with the bytes they started with; a reload that fails
//! changes nothing and says why.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{curl, run, sha256, Fixture, Server, TempDir};

/// The JSON number `key` in `body`.
fn number(body: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// GETs `path` over HTTP/1.1, reads its first MiB, counts itself in
/// `started`, waits for `go`, then reads the rest: whether the body is
/// exactly `want` (compared as it arrives; hashing 8 GB in a debug build
/// would take minutes).
fn http_paused(
    addr: SocketAddr,
    path: &str,
    want: &[u8],
    started: &AtomicUsize,
    go: &AtomicBool,
) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut at: Option<usize> = None;
    let mut same = true;
    let mut counted = false;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let body = match at {
            Some(_) => &buf[..n],
            None => {
                head.extend_from_slice(&buf[..n]);
                let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                assert!(
                    head.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&head[..end])
                );
                at = Some(0);
                &head[end + 4..]
            }
        };
        let got = at.unwrap_or(0);
        same &= want.get(got..got + body.len()) == Some(body);
        let got = got + body.len();
        at = Some(got);
        if !counted && got >= 1 << 20 {
            counted = true;
            started.fetch_add(1, Ordering::SeqCst);
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    same && at == Some(want.len())
}

/// GET `path` on an open keep-alive connection: the body.
fn get_on(s: &mut TcpStream, path: &str) -> Vec<u8> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if got.len() >= end + 4 + len {
            return got[end + 4..end + 4 + len].to_vec();
        }
    }
}

/// Reads `file` over TFTP (512-byte blocks, one at a time), pausing after
/// 100 blocks (counted in `started`) until `go`: what it got.
fn tftp_paused(server: SocketAddr, file: &str, started: &AtomicUsize, go: &AtomicBool) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let rrq = [&[0u8, 1][..], file.as_bytes(), b"\0octet\0"].concat();
    sock.send_to(&rrq, server).unwrap();
    let (mut got, mut next, mut peer, mut buf) = (Vec::new(), 1u16, None, [0u8; 600]);
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            // A lost datagram: the server resends on its timer.
            Err(_) => continue,
        };
        assert_eq!(&buf[..2], &[0, 3], "not DATA: {:?}", &buf[..n]);
        let peer = *peer.get_or_insert(from);
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        if block == next {
            got.extend_from_slice(&buf[4..n]);
            next = next.wrapping_add(1);
        }
        if block == 100 && next == 101 {
            started.fetch_add(1, Ordering::SeqCst);
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        sock.send_to(&[0, 4, buf[2], buf[3]], peer).unwrap();
        if n < 4 + 512 && block == next.wrapping_sub(1) {
            return got;
        }
    }
}

/// Waits until GET `path` answers `want` (at most 20 s).
fn until_served(server: &Server, path: &str, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, body) = curl(&[&server.url(path)]);
        if code == 200 && body == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never served the new bytes (last: {code}, {} bytes)\n{}",
            body.len(),
            server.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(dir: &Path, root: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("rackboot.toml");
    std::fs::write(
        &path,
        format!("root = {:?}\n{extra}", root.to_str().unwrap()),
    )
    .unwrap();
    path
}

#[test]
fn transfers_straddling_a_reload_keep_their_bytes_and_new_requests_get_the_new_ones() {
    let _turn = crate::support::heavy();
    let f = Fixture::new();
    let root = f.root();
    let tftp_old = rackboot::store::builtin::filler(30 << 20, 3);
    std::fs::write(root.join("tftp.bin"), &tftp_old).unwrap();
    let dir = TempDir::new("reload");
    let config = write_config(&dir.0, &root, "");
    let server = Server::start(
        &root,
        &[
            "--config",
            config.to_str().unwrap(),
            "--tftp",
            "127.0.0.1:0",
        ],
    );
    let (code, body) = server.api("GET", "/api/v1/status");
    assert_eq!((code, number(&body, "generation")), (200, 0), "{body}");

    // 200 downloads of 40 MB and 50 TFTP transfers of ipxe.efi, each paused part way
    // until the reload is done (so each surely straddles it), and one real
    // tftp-hpa transfer of 30 MB (61,440 blocks of 512 bytes, one at a time).
    let reloaded = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let old_big = Arc::new(f.big.clone());
    let downloads: Vec<_> = (0..200)
        .map(|_| {
            let (addr, reloaded, started) = (server.addr, reloaded.clone(), started.clone());
            let want = old_big.clone();
            std::thread::spawn(move || http_paused(addr, "/big.bin", &want, &started, &reloaded))
        })
        .collect();
    let tftp = server.tftp.unwrap();
    let transfers: Vec<_> = (0..50)
        .map(|_| {
            let (reloaded, started) = (reloaded.clone(), started.clone());
            std::thread::spawn(move || tftp_paused(tftp, "efi/ipxe.efi", &started, &reloaded))
        })
        .collect();
    let out = dir.0.join("tftp.out");
    let get = {
        let out = out.clone();
        std::thread::spawn(move || {
            run(
                "tftp",
                &[
                    &tftp.ip().to_string(),
                    &tftp.port().to_string(),
                    "-m",
                    "binary",
                    "-c",
                    "get",
                    "tftp.bin",
                    out.to_str().unwrap(),
                ],
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::SeqCst) < 250 {
        assert!(Instant::now() < deadline, "the transfers did not all start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let big_new = rackboot::store::builtin::filler(f.big.len(), 99);
    let tftp_new = rackboot::store::builtin::filler(30 << 20, 4);
    std::fs::write(root.join("big.bin"), &big_new).unwrap();
    std::fs::write(root.join("tftp.bin"), &tftp_new).unwrap();
    let efi_old = std::fs::read(root.join("efi/ipxe.efi")).unwrap();
    std::fs::write(root.join("efi/ipxe.efi"), b"the next generation's NBP").unwrap();
    std::fs::write(root.join("boot.ipxe"), b"#!ipxe\necho generation one\n").unwrap();
    assert!(run("kill", &["-HUP", &server.pid().to_string()])
        .status
        .success());
    until_served(&server, "/boot.ipxe", b"#!ipxe\necho generation one\n");
    reloaded.store(true, Ordering::SeqCst);
    assert!(
        !get.is_finished(),
        "the tftp-hpa transfer ended before the reload: make it longer"
    );

    for d in downloads {
        assert!(d.join().unwrap(), "a download kept its generation");
    }
    for t in transfers {
        assert!(
            t.join().unwrap() == efi_old,
            "a TFTP transfer kept its generation"
        );
    }
    let old_tftp = sha256(&tftp_old);
    let got = get.join().unwrap();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(
        sha256(&std::fs::read(&out).unwrap()),
        old_tftp,
        "the tftp-hpa transfer kept its generation"
    );
    let (_, _, body) = curl(&[&server.url("/big.bin")]);
    assert_eq!(
        sha256(&body),
        sha256(&big_new),
        "a new request gets the new file"
    );
    assert!(server
        .log()
        .iter()
        .any(|l| l.contains("reloaded") && l.contains("SIGHUP")));

    // `rackboot reload`: the next generation, said on stdout.
    let (ok, stdout, stderr) = crate::support::reload(&server.admin);
    assert!(ok, "{stderr}");
    assert_eq!(number(&stdout, "generation"), 2, "{stdout}");

    // A broken config is refused, naming the key; the old generation goes on.
    std::fs::write(&config, "bogus_key = 1\n").unwrap();
    let (ok, _, stderr) = crate::support::reload(&server.admin);
    assert!(!ok, "a broken config must be refused");
    assert!(stderr.contains("bogus_key"), "{stderr}");
    let (code, body) = server.api("POST", "/api/v1/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("bogus_key"), "{body}");
    let (code, body) = server.api("GET", "/api/v1/status");
    assert_eq!(code, 200);
    assert_eq!(number(&body, "generation"), 2, "{body}");
    assert_eq!(number(&body, "reloads_failed"), 2, "{body}");
    until_served(&server, "/boot.ipxe", b"#!ipxe\necho generation one\n");
}

#[test]
fn the_admin_api_answers_on_its_socket_and_on_tcp_only_with_the_token() {
    let f = Fixture::new();
    let dir = TempDir::new("admin");
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.0.join("token"), format!("{token}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        &dir.0,
        &f.root(),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n",
            dir.0.join("token").to_str().unwrap()
        ),
    );
    let server = Server::start(&f.root(), &["--config", config.to_str().unwrap()]);

    let (code, body) = server.api("GET", "/api/v1/files");
    assert_eq!(code, 200, "{body}");
    let files: serde_json::Value = serde_json::from_str(&body).unwrap();
    let big = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/big.bin")
        .unwrap_or_else(|| panic!("no /big.bin in {body}"));
    assert_eq!(big["bytes"].as_u64(), Some(f.big.len() as u64));
    let (code, body) = server.api("GET", "/api/v1/status");
    assert_eq!(code, 200);
    assert_eq!(
        number(&body, "files"),
        files.as_array().unwrap().len() as u64
    );
    assert_eq!(server.api("GET", "/api/v1/nothing").0, 404);
    assert_eq!(
        server.api("GET", "/api/v1/leases").0,
        409,
        "DHCP is off here"
    );
    assert_eq!(server.api("GET", "/api/v1/reload").0, 405);
    assert_eq!(server.api("DELETE", "/api/v1/status").0, 405);
    // A keep-alive connection opened before the reload gets the new files
    // for its requests after it.
    let mut kept = TcpStream::connect(server.addr).unwrap();
    assert_eq!(
        get_on(&mut kept, "/boot.ipxe"),
        std::fs::read(f.root().join("boot.ipxe")).unwrap()
    );
    std::fs::write(f.root().join("boot.ipxe"), b"#!ipxe\necho after\n").unwrap();
    let (code, body) = server.api("POST", "/api/v1/reload");
    assert_eq!((code, number(&body, "generation")), (200, 1), "{body}");
    assert_eq!(get_on(&mut kept, "/boot.ipxe"), b"#!ipxe\necho after\n");

    // TCP: 401 without the token or with a wrong one, 200 with it; the token
    // never reaches the log.
    let url = format!("http://127.0.0.1:{port}/api/v1/status");
    assert_eq!(curl(&[&url]).0, 401);
    assert_eq!(curl(&["-H", "Authorization: Bearer wrong", &url]).0, 401);
    let (code, _, body) = curl(&["-H", &format!("Authorization: Bearer {token}"), &url]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!server.log().iter().any(|l| l.contains(token)));
}

#[test]
fn a_missing_token_file_or_a_tcp_listener_without_one_fails_the_start_naming_the_key() {
    let f = Fixture::new();
    let dir = TempDir::new("admin-bad");
    for (extra, key) in [
        ("[admin]\nlisten = \"127.0.0.1:9\"\n", "admin.listen"),
        (
            "[admin]\nlisten = \"127.0.0.1:9\"\ntoken_file = \"/nonexistent/token\"\n",
            "admin.token_file",
        ),
    ] {
        let config = write_config(&dir.0, &f.root(), extra);
        let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
            .args(["check", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(key),
            "{extra}: {stderr}"
        );
    }
}

#[test]
fn watch_reloads_a_changed_tree_once_and_refuses_a_broken_config() {
    let f = Fixture::new();
    let root = f.root();
    let dir = TempDir::new("watch");
    let config = write_config(&dir.0, &root, "");
    let server = Server::start(&root, &["--config", config.to_str().unwrap(), "--watch"]);
    // A burst of changes (ten files written back to back) is one reload.
    for i in 0..10 {
        std::fs::write(root.join(format!("new-{i}.txt")), format!("file {i}")).unwrap();
    }
    std::fs::write(root.join("boot.ipxe"), b"#!ipxe\necho watched\n").unwrap();
    until_served(&server, "/boot.ipxe", b"#!ipxe\necho watched\n");
    until_served(&server, "/new-9.txt", b"file 9");
    std::thread::sleep(Duration::from_secs(1));
    let (_, body) = server.api("GET", "/api/v1/status");
    assert_eq!(
        number(&body, "reloads"),
        1,
        "one reload for the burst: {body}"
    );
    // A broken config is refused and said so; the files stay served.
    std::fs::write(&config, "bogus_key = 1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(server.log().iter().any(|l| l.contains("reload refused"))
        && server.log().iter().any(|l| l.contains("bogus_key")))
    {
        assert!(Instant::now() < deadline, "{}", server.log().join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    until_served(&server, "/boot.ipxe", b"#!ipxe\necho watched\n");
}
