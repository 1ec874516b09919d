//! `rackboot check`: what would be served, and config mistakes named by key and line.

use std::process::Command;

use crate::support::{Fixture, TempDir};

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_valid_config_lists_the_files_and_totals() {
    let f = Fixture::new();
    let dir = TempDir::new("check");
    let cfg = dir.0.join("rackboot.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n[http]\nlisten = \"127.0.0.1:8080\"\n",
            f.root()
        ),
    )
    .unwrap();
    let (code, out, err) = check(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "/big.bin",
        "/boot.ipxe",
        "/efi/ipxe.efi",
        "/inside",
        "127.0.0.1:8080",
        "total: 4 files, 80850555 bytes",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.contains("/leak") && out.contains("outside the root"),
        "{out}"
    );
}

#[test]
fn mistakes_exit_non_zero_naming_the_key_and_line() {
    let dir = TempDir::new("check-bad");
    let cfg = dir.0.join("rackboot.toml");
    for (text, want) in [
        ("[http]\nlisen = \"0.0.0.0:80\"\n", "line 2"),
        (
            "[http]\nlisten = \"0.0.0.0\"\n",
            "rackboot.toml:2: `http.listen`",
        ),
        ("workers = -1\n", "rackboot.toml:1: `workers` is -1"),
        ("root = \"/nonexistent/boot\"\n", "rackboot.toml:1: `root`"),
        ("[store]\nmax_mib = 0\n", "`store.max_mib` is 0"),
        (
            "backend = \"fast\"\n",
            "line 1, column 11\n  |\n1 | backend = \"fast\"\n  |           ^^^^^^\nunknown variant `fast`, expected one of `auto`, `mio`, `uring`",
        ),
        (
            "[http]\nbody = \"zc\"\n",
            "line 2, column 8\n  |\n2 | body = \"zc\"\n  |        ^^^^\nunknown variant `zc`, expected one of `splice`, `send-zc`, `send`",
        ),
        (
            "[tftp]\nsend = \"zc\"\n",
            "line 2, column 8\n  |\n2 | send = \"zc\"\n  |        ^^^^\nunknown variant `zc`, expected `sendmsg` or `sendmsg-zc`",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let (code, _, err) = check(&["--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn a_root_over_the_cap_fails_naming_the_file() {
    let f = Fixture::new();
    let dir = TempDir::new("check-cap");
    let cfg = dir.0.join("rackboot.toml");
    std::fs::write(
        &cfg,
        format!("root = {:?}\n[store]\nmax_mib = 10\n", f.root()),
    )
    .unwrap();
    let (code, _, err) = check(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("big.bin") && err.contains("store.max_mib"),
        "{err}"
    );
}

#[test]
fn without_a_root_the_demo_set_is_listed() {
    let (code, out, err) = check(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("/boot.ipxe") && out.contains("/demo/initrd.gz"),
        "{out}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let f = Fixture::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/rackboot.toml");
    let (code, out, err) = check(&["--config", example, "--root", f.root().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("0.0.0.0:80") && out.contains("/boot.ipxe"),
        "{out}"
    );
    assert!(out.contains("tftp: 0.0.0.0:69, windows up to 64"), "{out}");
}

#[test]
fn the_shipped_dhcp_example_config_is_valid() {
    let f = Fixture::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/rackboot-dhcp.toml");
    let (code, out, err) = check(&["--config", example, "--root", f.root().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dhcp: Server on eth1, 2 subnets") && out.contains("2 reservations"),
        "{out}"
    );
    // With [dhcp6], on both families: one dual-stack socket.
    assert!(out.contains("tftp: [::]:69"), "DHCP turns TFTP on: {out}");
    assert!(
        out.contains("dhcp6: server on the dhcp interfaces, 2 subnets (the interface's prefix 256 addresses; fd00:20::/64 4096 addresses), 1 reservations"),
        "{out}"
    );
}

#[test]
fn the_shipped_profiles_example_is_valid() {
    let dir = TempDir::new("check-profiles");
    let root = dir.0.join("root");
    std::fs::create_dir_all(root.join("d-i")).unwrap();
    std::fs::write(root.join("d-i/linux"), b"kernel").unwrap();
    std::fs::write(root.join("d-i/initrd.gz"), b"initrd").unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/rackboot-profiles.toml");
    let (code, out, err) = check(&["--config", example, "--root", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("boot profiles: 4 (default: debian), 2 machines in the inventory"),
        "{out}"
    );
}
