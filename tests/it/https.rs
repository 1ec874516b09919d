//! HTTPS beside HTTP: `rackboot ca` makes the CA and the server's
//! certificate, `rackboot serve --tls-cert --tls-key` serves the same tree
//! and pages over TLS (rustls), and curl checks what a client would.

use std::path::Path;

use crate::support::{curl, header, run, Fixture, Server, TempDir};

/// `rackboot ca` in `dir` for `names`; its output.
fn ca(dir: &Path, names: &[&str]) -> String {
    let mut args = vec!["ca", "--dir", dir.to_str().unwrap()];
    for n in names {
        args.extend(["--name", n]);
    }
    let o = run(env!("CARGO_BIN_EXE_rackboot"), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start(f: &Fixture, tls: &Path, extra: &[&str]) -> Server {
    let cert = tls.join("server.pem");
    let key = tls.join("server.key");
    let mut args = vec![
        "--https",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&f.root(), &args)
}

#[test]
fn the_same_tree_is_served_over_https_to_a_client_that_trusts_the_ca() {
    let f = Fixture::new();
    let dir = TempDir::new("https");
    let tls = dir.0.join("tls");
    let said = ca(&tls, &["127.0.0.1", "boot.example"]);
    assert!(said.contains("made the CA"), "{said}");
    let s = start(&f, &tls, &[]);
    let https = s.https.unwrap();
    let ca_pem = tls.join("ca.pem");
    let cacert = ["--cacert", ca_pem.to_str().unwrap()];
    let url = |path: &str| format!("https://{https}{path}");

    // The whole file, byte for byte; a range; a missing file.
    let (code, headers, body) = curl(&[&cacert[..], &[&url("/big.bin")]].concat());
    assert_eq!(code, 200);
    assert!(body == f.big, "the body differs from the file");
    assert_eq!(
        header(&headers, "content-length").as_deref(),
        Some(f.big.len().to_string().as_str())
    );
    let (code, _, body) = curl(&[&cacert[..], &["-r", "1000-1999", &url("/big.bin")]].concat());
    assert_eq!((code, body.as_slice()), (206, &f.big[1000..2000]));
    let (code, _, _) = curl(&[&cacert[..], &[&url("/missing")]].concat());
    assert_eq!(code, 404);

    // Keep-alive: two requests, one TLS connection.
    let o = run(
        "curl",
        &[
            "-sS",
            "--cacert",
            ca_pem.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects} ",
            &url("/boot.ipxe"),
            &url("/efi/ipxe.efi"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 0 ", "{o:?}");

    // A client that does not trust the CA is refused by its own check.
    let o = run("curl", &["-sS", "-o", "/dev/null", &url("/boot.ipxe")]);
    assert_eq!(o.status.code(), Some(60), "{o:?}");
    // Plain HTTP sent to the TLS port is refused and the server goes on,
    // on both ports.
    let o = run(
        "curl",
        &["-sS", "-m", "5", &format!("http://{https}/boot.ipxe")],
    );
    assert!(!o.status.success(), "{o:?}");
    let (code, _, body) = curl(&[&cacert[..], &[&url("/boot.ipxe")]].concat());
    assert_eq!(
        (code, body.as_slice()),
        (200, &b"#!ipxe\nkernel big.bin\nboot\n"[..])
    );
    let (code, _, _) = curl(&[&format!("http://{}/boot.ipxe", s.addr)]);
    assert_eq!(code, 200);

    // A second run keeps the CA: the new server certificate chains to it.
    let again = ca(&tls, &["127.0.0.1"]);
    assert!(again.contains("kept the CA"), "{again}");
    let fingerprint = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("CA SHA-256 fingerprint"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(fingerprint(&said), fingerprint(&again));
    let o = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca_pem.to_str().unwrap(),
            tls.join("server.pem").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn pages_rendered_over_https_name_https_urls() {
    let f = Fixture::new();
    let dir = TempDir::new("https-pages");
    let tls = dir.0.join("tls");
    ca(&tls, &["127.0.0.1"]);
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        "[[profile]]\nname = \"d\"\nkernel = \"/big.bin\"\n\
         cmdline = \"url={{ config_url }}\"\n[boot]\ndefault = \"d\"\n",
    )
    .unwrap();
    let s = start(&f, &tls, &["--config", config.to_str().unwrap()]);
    let https = s.https.unwrap();
    let ca_pem = tls.join("ca.pem");
    let (code, _, body) = curl(&[
        "--cacert",
        ca_pem.to_str().unwrap(),
        &format!("https://{https}/boot.ipxe?mac=52-54-00-00-00-01"),
    ]);
    let script = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{script}");
    assert!(
        script.contains(&format!("kernel https://{https}/big.bin"))
            && script.contains(&format!("url=https://{https}/config?mac=52-54-00-00-00-01")),
        "{script}"
    );
    // The same page over plain HTTP names plain URLs.
    let (_, _, body) = curl(&[&format!(
        "http://{}/boot.ipxe?mac=52-54-00-00-00-01",
        s.addr
    )]);
    assert!(
        String::from_utf8_lossy(&body).contains(&format!("kernel http://{}/big.bin", s.addr)),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn tls_mistakes_stop_the_start_naming_the_key() {
    let dir = TempDir::new("https-check");
    let (a, b) = (dir.0.join("a"), dir.0.join("b"));
    ca(&a, &["127.0.0.1"]);
    ca(&b, &["127.0.0.1"]);
    let check = |cert: &Path, key: &Path| {
        let o = run(
            env!("CARGO_BIN_EXE_rackboot"),
            &[
                "check",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, err) = check(&a.join("server.pem"), &b.join("server.key"));
    assert!(
        !ok && err.contains("`http.tls_key`") && err.contains("does not fit"),
        "{err}"
    );
    let (ok, err) = check(&dir.0.join("none.pem"), &a.join("server.key"));
    assert!(
        !ok && err.contains("`http.tls_cert`") && err.contains("none.pem"),
        "{err}"
    );
    let (ok, err) = check(&a.join("server.key"), &a.join("server.key"));
    assert!(!ok && err.contains("holds no certificate"), "{err}");
    let (ok, _) = check(&a.join("server.pem"), &a.join("server.key"));
    assert!(ok);
}
