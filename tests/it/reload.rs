//! Live reload and the admin API: SIGHUP, `rackboot reload` and
//! `POST /api/v1/reload` publish new files to new requests while transfers in
//! flight finish with the bytes they started with; a reload that fails
//! changes nothing and says why.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{curl, run, sha256, Fixture, Server, TempDir};

/// GET `path` over the admin socket: (status, body).
fn admin(server: &Server, method: &str, path: &str) -> (u16, String) {
    let (code, _, body) = curl(&[
        "--unix-socket",
        server.admin.to_str().unwrap(),
        "-X",
        method,
        &format!("http://rackboot{path}"),
    ]);
    (code, String::from_utf8(body).unwrap())
}

/// The JSON number `key` in `body`.
fn number(body: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
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
    let (code, body) = admin(&server, "GET", "/api/v1/status");
    assert_eq!((code, number(&body, "generation")), (200, 0), "{body}");

    // A 40 MB download at 20 MB/s and a 30 MB TFTP transfer (61,440
    // blocks of 512 bytes, one at a time), both running while the files change.
    let url = server.url("/big.bin");
    let http = std::thread::spawn(move || curl(&["--limit-rate", "20M", &url]));
    let tftp = server.tftp.unwrap();
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
    std::thread::sleep(Duration::from_millis(300));
    let big_new = rackboot::store::builtin::filler(f.big.len(), 99);
    let tftp_new = rackboot::store::builtin::filler(30 << 20, 4);
    std::fs::write(root.join("big.bin"), &big_new).unwrap();
    std::fs::write(root.join("tftp.bin"), &tftp_new).unwrap();
    std::fs::write(root.join("boot.ipxe"), b"#!ipxe\necho generation one\n").unwrap();
    assert!(run("kill", &["-HUP", &server.pid().to_string()])
        .status
        .success());
    until_served(&server, "/boot.ipxe", b"#!ipxe\necho generation one\n");
    assert!(
        !get.is_finished(),
        "the TFTP transfer ended before the reload: make it longer"
    );

    let (code, _, body) = http.join().unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        sha256(&body),
        sha256(&f.big),
        "the download kept its generation"
    );
    let got = get.join().unwrap();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(
        sha256(&std::fs::read(&out).unwrap()),
        sha256(&tftp_old),
        "the TFTP transfer kept its generation"
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
    let (code, body) = admin(&server, "POST", "/api/v1/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("bogus_key"), "{body}");
    let (code, body) = admin(&server, "GET", "/api/v1/status");
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

    let (code, body) = admin(&server, "GET", "/api/v1/files");
    assert_eq!(code, 200, "{body}");
    let files: serde_json::Value = serde_json::from_str(&body).unwrap();
    let big = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/big.bin")
        .unwrap_or_else(|| panic!("no /big.bin in {body}"));
    assert_eq!(big["bytes"].as_u64(), Some(f.big.len() as u64));
    let (code, body) = admin(&server, "GET", "/api/v1/status");
    assert_eq!(code, 200);
    assert_eq!(
        number(&body, "files"),
        files.as_array().unwrap().len() as u64
    );
    assert_eq!(admin(&server, "GET", "/api/v1/nothing").0, 404);
    assert_eq!(admin(&server, "GET", "/api/v1/reload").0, 405);
    assert_eq!(admin(&server, "DELETE", "/api/v1/status").0, 405);
    let (code, body) = admin(&server, "POST", "/api/v1/reload");
    assert_eq!((code, number(&body, "generation")), (200, 1), "{body}");

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
