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
fn a_pxe_menu_setup_is_named_line_by_line_and_refused_unless_partial_is_allowed() {
    let dir = TempDir::new("import-fog");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dnsmasq/fog-proxy.conf"
    ))
    .unwrap()
    .replace("{DIR}", &dir.0.display().to_string());
    let conf = write(&dir.0, "fog.conf", &text);
    let (code, out, err) = rackboot(&["import", "--dnsmasq-conf", &conf]);
    assert_ne!(code, 0, "{err}");
    for line in [18, 19, 20, 21] {
        assert!(
            err.contains(&format!("{conf}:{line}: ")) && err.contains("NOT CARRIED OVER"),
            "line {line} not named:\n{err}"
        );
    }
    assert!(
        err.contains(&format!("{conf}:7: log-dhcp: not needed")),
        "{err}"
    );
    // The rest is translated all the same.
    assert!(out.contains("mode = \"proxy\""), "{out}");
    let (code, out, _) = rackboot(&["import", "--dnsmasq-conf", &conf, "--allow-partial"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("vendor_contains = \"PXEClient:Arch:00007\""),
        "{out}"
    );
    // serve refuses to start on it, naming why.
    let (code, _, err) = rackboot(&[
        "serve",
        "--dnsmasq-conf",
        &conf,
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
            "port=0\ninterface=lo\nconf-dir={},*.conf\n",
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
