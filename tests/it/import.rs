//! `rackboot import` and `serve --dnsmasq-conf` on configurations they cannot
//! carry over whole: every line not carried over named with file:line, a
//! non-zero exit unless --allow-partial, includes that loop or cannot be
//! read refused cleanly.

use std::path::Path;
use std::process::Command;

use crate::support::TempDir;

fn rackboot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn a_pxe_menu_is_carried_over_and_what_is_not_is_named_and_refused_unless_partial() {
    let dir = TempDir::new("import-fog");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dnsmasq/fog-proxy.conf"
    ))
    .unwrap()
    .replace("{DIR}", &dir.0.display().to_string());
    let conf = write(&dir.0, "fog.conf", &text);
    let (code, out, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{conf}:7: log-dhcp: not needed")),
        "{err}"
    );
    assert!(out.contains("mode = \"proxy\""), "{out}");
    // Each menu line becomes an item, with its source line.
    for (line, item) in [
        (
            19,
            "arch = \"X86PC\"\ntext = \"Boot to FOG\"\nfile = \"undionly.kpxe\"",
        ),
        (
            20,
            "arch = \"X86-64_EFI\"\ntext = \"Boot to FOG UEFI\"\nfile = \"ipxe.efi\"",
        ),
        (21, "arch = \"BC_EFI\""),
    ] {
        let at = out
            .find(&format!("{conf}:{line}: pxe-service="))
            .unwrap_or_else(|| panic!("line {line} not cited:\n{out}"));
        assert!(out[at..].contains(item), "line {line}: {item}\n{out}");
    }
    assert!(
        out.contains("[dhcp.pxe_prompt]\ntext = \"Booting FOG Client\"\ntimeout = 1"),
        "{out}"
    );
    // A boot server by a name /etc/hosts does not hold cannot be carried over: named, and refused.
    let partial = write(
        &dir.0,
        "named.conf",
        &format!("{text}pxe-service=x86PC,\"Elsewhere\",pxelinux,bootserver.example\n"),
    );
    let (code, out, err) = rackboot(&["import", "--dnsmasq-conf", &partial]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{partial}:23: "))
            && err.contains("NOT CARRIED OVER")
            && err.contains("not in /etc/hosts"),
        "{err}"
    );
    assert!(
        out.contains("[[dhcp.pxe_service]]"),
        "the rest is translated: {out}"
    );
    let (code, _, _) = rackboot(&["import", "--dnsmasq-conf", &partial, "--allow-partial"]);
    assert_eq!(code, 0);
    // serve refuses to start on it, naming why.
    let (code, _, err) = rackboot(&[
        "serve",
        "--dnsmasq-conf",
        &partial,
        "--http",
        "127.0.0.1:0",
        "--admin-socket",
        "",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot be carried over") && err.contains("--allow-partial"),
        "{err}"
    );
}

#[test]
fn bad_lines_unknown_directives_loops_and_unreadable_includes_fail_cleanly() {
    let dir = TempDir::new("import-bad");
    let d = &dir.0;
    // A line that is not an option.
    let conf = write(d, "bad.conf", "port=0\ndhcp range 10.0.0.1\n");
    let (code, _, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{conf}:2: ")) && err.contains("not a dnsmasq option"),
        "{err}"
    );
    // An option no one knows: named, and it makes the import partial.
    let conf = write(d, "unknown.conf", "port=0\ndhcp-frobnicate=yes\n");
    let (code, _, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{conf}:2: dhcp-frobnicate=yes")),
        "{err}"
    );
    // An include loop.
    let a = d.join("a.conf");
    write(d, "b.conf", &format!("conf-file={}\n", a.display()));
    write(
        d,
        "a.conf",
        &format!("port=0\nconf-file={}\n", d.join("b.conf").display()),
    );
    let (code, _, err) = rackboot(&["import", "--dnsmasq-conf", a.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("includes itself"), "{err}");
    // An include that cannot be read: the including line is named.
    let conf = write(
        d,
        "missing.conf",
        "port=0\n\nconf-file=/nonexistent/x.conf\n",
    );
    let (code, _, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{conf}:3: cannot read /nonexistent/x.conf")),
        "{err}"
    );
}

#[test]
fn conf_dir_reads_what_dnsmasq_reads_in_name_order() {
    let dir = TempDir::new("import-dir");
    let d = &dir.0;
    std::fs::create_dir_all(d.join("d")).unwrap();
    write(&d.join("d"), "20-boot.conf", "dhcp-boot=second.kpxe\n");
    write(&d.join("d"), "10-boot.conf", "dhcp-boot=first.kpxe\n");
    write(&d.join("d"), "30-boot.bak", "dhcp-boot=backup.kpxe\n");
    write(&d.join("d"), "40-boot.conf~", "dhcp-boot=editor.kpxe\n");
    write(&d.join("d"), ".hidden.conf", "dhcp-boot=hidden.kpxe\n");
    let conf = write(
        d,
        "main.conf",
        &format!(
            "port=0\ninterface=lo\ndhcp-range=127.0.0.100,127.0.0.150\nconf-dir={},*.conf\n",
            d.join("d").display()
        ),
    );
    let (code, out, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_eq!(code, 0, "{err}");
    let first = out.find("first.kpxe").expect(&out);
    let second = out.find("second.kpxe").expect(&out);
    // dnsmasq tries the last dhcp-boot line first.
    assert!(second < first, "{out}");
    for skipped in ["backup", "editor", "hidden"] {
        assert!(!out.contains(skipped), "{out}");
    }
    assert!(out.contains(&format!(
        "# {}:1: dhcp-boot=first.kpxe",
        d.join("d/10-boot.conf").display()
    )));
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on `port`: status and body.
fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let (code, _, body) = crate::support::curl(&["-g", &format!("http://127.0.0.1:{port}{path}")]);
    (code, body)
}

/// Waits until something answers on `port`.
fn wait_for(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_nginx_site_is_served_alike_by_nginx_and_by_rackboot_from_its_configuration() {
    assert!(
        crate::support::run("sh", &["-c", "command -v nginx"])
            .status
            .success(),
        "nginx is not installed: apt-get install nginx"
    );
    let dir = TempDir::new("import-nginx");
    let d = &dir.0;
    for (path, body) in [
        ("html/boot.ipxe", "#!ipxe\nchain /images/menu.ipxe\n"),
        ("html/nested/a.txt", "a"),
        ("images/d-i/linux", "kernel bytes"),
        ("images/menu.ipxe", "#!ipxe\nmenu\n"),
        ("isos/iso/debian.iso", "iso bytes"),
    ] {
        std::fs::create_dir_all(d.join(path).parent().unwrap()).unwrap();
        std::fs::write(d.join(path), body).unwrap();
    }
    let port = free_port();
    std::fs::create_dir_all(d.join("sites")).unwrap();
    write(
        &d.join("sites"),
        "pxe.conf",
        &format!(
            "server {{\n    listen 127.0.0.1:{port} default_server;\n    root {0}/html;\n    \
             location /images/ {{\n        alias {0}/images/;\n        autoindex on;\n    }}\n    \
             location /iso/ {{ root {0}/isos; }}\n}}\n",
            d.display()
        ),
    );
    let conf = write(
        d,
        "nginx.conf",
        &format!(
            "error_log stderr;\npid {0}/nginx.pid;\nevents {{}}\nhttp {{\n    access_log off;\n    \
             client_body_temp_path {0}/tmp;\n    proxy_temp_path {0}/tmp;\n    fastcgi_temp_path {0}/tmp;\n    \
             uwsgi_temp_path {0}/tmp;\n    scgi_temp_path {0}/tmp;\n    include {0}/sites/*.conf;\n}}\n",
            d.display()
        ),
    );
    let paths = [
        "/boot.ipxe",
        "/nested/a.txt",
        "/images/d-i/linux",
        "/images/menu.ipxe",
        "/iso/debian.iso",
        "/images/nothing",
        "/nothing",
    ];
    let nginx_said: Vec<(u16, Vec<u8>)> = {
        let child = Command::new("nginx")
            .args(["-c", &conf, "-p", d.to_str().unwrap(), "-g", "daemon off;"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let _nginx = crate::ns::Kill(child);
        wait_for(port);
        paths.iter().map(|p| get(port, p)).collect()
    };
    assert_eq!(
        nginx_said[2],
        (200, b"kernel bytes".to_vec()),
        "nginx itself"
    );
    // rackboot on the very same configuration (and port).
    let child = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .args(["serve", "--nginx-conf", &conf, "--admin-socket", ""])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let server = crate::ns::Kill(child);
    wait_for(port);
    let rackboot_said: Vec<(u16, Vec<u8>)> = paths.iter().map(|p| get(port, p)).collect();
    // The same status for every path, the same bytes for every file (error
    // pages are each server's own).
    for ((p, n), r) in paths.iter().zip(&nginx_said).zip(&rackboot_said) {
        assert_eq!(n.0, r.0, "{p}");
        if n.0 == 200 {
            assert_eq!(n.1, r.1, "{p}");
        }
    }
    drop(server);
    // What is not carried over is named.
    let (_, _, err) = rackboot(&["import", "--nginx-conf", &conf]);
    assert!(
        err.contains("pxe.conf:6: autoindex on: HTTP, not carried over"),
        "{err}"
    );
}
