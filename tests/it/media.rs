//! Boot media: `rackboot media` writes the image, `rackboot serve --media`
//! serves it at /boot.iso for the server's own address, and what each says
//! when it cannot. The images boot real firmware in `firmware`.

use std::path::Path;

use crate::support::{curl, header, run, Fixture, Server, TempDir};

/// The text of `inside` in the ISO 9660 image `iso`, read with xorriso.
fn extract(iso: &Path, inside: &str, dir: &Path) -> String {
    let out = dir.join(inside.trim_start_matches('/').replace('/', "_"));
    let o = run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            inside,
            out.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "xorriso could not read {inside} (apt-get install xorriso): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out).unwrap()
}

/// The image's two boot paths name `server`: iPXE's script (BIOS) chains its
/// boot script, grub's configuration (UEFI) fetches its grub page.
fn assert_names(iso: &Path, server: &str, dir: &Path) {
    let bytes = std::fs::read(iso).unwrap();
    assert_eq!(&bytes[0x8001..0x8006], b"CD001", "not an ISO 9660 image");
    assert_eq!(&bytes[510..512], &[0x55, 0xaa], "no boot record for a disk");
    let script = extract(iso, "/rackboot/boot.ipxe", dir);
    assert!(
        script.contains(&format!(
            "dhcp && chain http://{server}/boot.ipxe?mac=${{netX/mac:hexhyp}}"
        )),
        "{script}"
    );
    let grub = extract(iso, "/boot/grub/grub.cfg", dir);
    assert!(
        grub.contains(&format!("set root=(http,{server})")),
        "{grub}"
    );
    assert!(
        grub.contains("configfile \"/boot.grub?mac=${net_efinet0_dhcp_mac}&arch=${grub_cpu}"),
        "{grub}"
    );
    assert!(grub.contains("linux16 /rackboot/ipxe.lkrn"), "{grub}");
}

#[test]
fn rackboot_media_writes_an_image_that_names_the_server_and_says_what_is_wrong() {
    let dir = TempDir::new("media");
    let iso = dir.0.join("boot.iso");
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &[
            "media",
            "--server",
            "http://10.81.0.1:8080",
            "--out",
            iso.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("wrote"),
        "{o:?}"
    );
    assert_names(&iso, "10.81.0.1:8080", &dir.0);

    for (bad, says) in [
        ("https://10.81.0.1", "is not an http:// URL"),
        ("http://10.81.0.1/boot.ipxe", "with no path"),
    ] {
        let out = dir.0.join("bad.iso");
        let o = run(
            env!("CARGO_BIN_EXE_rackboot"),
            &["media", "--server", bad, "--out", out.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{bad}: {err}");
        assert!(!out.exists(), "{bad}: an image was written");
    }
}

#[test]
fn serve_media_serves_the_image_for_its_own_address_with_ranges() {
    let f = Fixture::new();
    let dir = TempDir::new("media-serve");
    let cfg = dir.0.join("rackboot.toml");
    std::fs::write(&cfg, "[boot]\nserver = \"10.81.0.1:8080\"\n").unwrap();
    let kernel = f.root().join("big.bin");
    let s = Server::start(
        &f.root(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--kernel",
            kernel.to_str().unwrap(),
            "--media",
        ],
    );
    let url = format!("http://{}/boot.iso", s.addr);
    let iso = dir.0.join("served.iso");
    let (code, headers, body) = curl(&[&url]);
    assert_eq!(code, 200);
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/x-iso9660-image")
    );
    std::fs::write(&iso, &body).unwrap();
    assert_names(&iso, "10.81.0.1:8080", &dir.0);
    // BMC virtual media reads the image in ranges.
    let (code, _, part) = curl(&["-r", "32768-32773", &url]);
    assert_eq!((code, part.as_slice()), (206, &body[32768..32774]));
}

#[test]
fn media_without_an_address_machines_reach_or_without_profiles_is_refused_at_start() {
    let f = Fixture::new();
    let kernel = f.root().join("big.bin");
    let root = f.root();
    let kernel = kernel.to_str().unwrap();
    let address = "`--media` needs the address machines reach this server at";
    let set_server = "set [boot] server";
    for (args, says, fix) in [
        (
            vec!["--kernel", kernel, "--media", "--http", "0.0.0.0:8080"],
            address,
            set_server,
        ),
        (
            vec!["--kernel", kernel, "--media", "--http", "127.0.0.1:0"],
            address,
            set_server,
        ),
        (
            vec!["--media"],
            "no [[profile]] renders the pages",
            "add a [[profile]]",
        ),
    ] {
        for command in ["check", "serve"] {
            // Bounded: a serve that wrongly starts is stopped, and fails below.
            let mut all = vec![
                "20",
                env!("CARGO_BIN_EXE_rackboot"),
                command,
                "--root",
                root.to_str().unwrap(),
                "--admin-socket",
                "",
            ];
            all.extend(&args);
            let o = run("timeout", &all);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success() && err.contains(says) && err.contains(fix),
                "{all:?}: {err}"
            );
        }
    }
}
