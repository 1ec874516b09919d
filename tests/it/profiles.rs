//! Boot profiles over real HTTP (curl against `rackboot serve`), and their
//! mistakes caught by `rackboot check` before any machine boots.

use std::path::Path;
use std::process::Command;

use crate::support::{curl, header, Fixture, Server, TempDir};

/// Two profiles by MAC pattern and by label, a pinned machine, a default, and an
/// answers template with a variable the inventory overrides.
const CONFIG: &str = r#"
[[machine]]
mac = "52:54:00:aa:00:08"
profile = "db"
vars = { slot = "1" }

[[machine]]
mac = "52:54:00:aa:00:09"
profile = "db"

[boot]
default = "rescue"

[[profile]]
name = "debian"
kernel = "/big.bin"
initrd = ["/efi/ipxe.efi"]
cmdline = "auto=true url={{ config_url }} console={{ vars.console }}"
config = "preseed.j2"
vars = { console = "ttyS0", disk = "/dev/sda" }
[profile.match]
mac = ["52:54:00:aa:*"]

[[profile]]
name = "rescue"
kernel = "http://mirror.invalid/rescue/vmlinuz"
cmdline = "rescue {{ labels.rack | default('no-rack') }}"

[[profile]]
name = "db"
kernel = "/big.bin"
cmdline = "db={{ hostname }}"
[profile.match]
labels = { role = "db" }

[[machine]]
mac = "52:54:00:aa:00:02"
hostname = "web-02"
vars = { disk = "/dev/nvme0n1" }

[[machine]]
mac = "02:00:00:00:00:07"
hostname = "db-07"
labels = { role = "db" }
"#;

const PRESEED: &str = "d-i netcfg/get_hostname string {{ hostname }}\nd-i partman-auto/disk string {{ vars.disk }}\n# {{ ip }}\n";

fn write_config(dir: &Path, config: &str, preseed: &str) -> String {
    std::fs::write(dir.join("preseed.j2"), preseed).unwrap();
    let path = dir.join("rackboot.toml");
    std::fs::write(&path, config).unwrap();
    path.to_str().unwrap().to_owned()
}

fn body(s: &Server, target: &str) -> (u16, String) {
    let (code, headers, body) = curl(&[&s.url(target)]);
    if code == 200 {
        assert_eq!(
            header(&headers, "cache-control").as_deref(),
            Some("no-store"),
            "{target}"
        );
    }
    (code, String::from_utf8(body).unwrap())
}

#[test]
fn each_machine_gets_its_profiles_script_and_answers() {
    let f = Fixture::new();
    let dir = TempDir::new("profiles");
    let config = write_config(&dir.0, CONFIG, PRESEED);
    let s = Server::start(&f.root(), &["--config", &config]);
    let host = s.addr.to_string();

    // iPXE's first request names nobody: it is told to ask again with its settings.
    let (code, chain) = body(&s, "/boot.ipxe");
    assert_eq!(code, 200);
    assert!(
        chain.starts_with("#!ipxe\nchain /boot.ipxe?mac=${netX/mac:hexhyp}&"),
        "{chain}"
    );

    // A MAC the debian profile's pattern takes; the inventory names it.
    let (code, script) = body(
        &s,
        "/boot.ipxe?mac=52-54-00-aa-00-02&arch=x86_64&platform=efi",
    );
    assert_eq!(code, 200);
    let config_url = format!("http://{host}/config?mac=52-54-00-aa-00-02&arch=x86_64&platform=efi");
    assert_eq!(
        script,
        format!(
            "#!ipxe\necho rackboot: 52:54:00:aa:00:02 boots profile debian\n\
             kernel http://{host}/big.bin initrd=ipxe.efi auto=true url={config_url} console=ttyS0\n\
             initrd http://{host}/efi/ipxe.efi\nboot\n"
        )
    );
    // The URL the installer will fetch: its answers, with the inventory's values.
    let (code, answers) = body(&s, &config_url.replace(&format!("http://{host}"), ""));
    assert_eq!(code, 200);
    assert_eq!(
        answers,
        "d-i netcfg/get_hostname string web-02\nd-i partman-auto/disk string /dev/nvme0n1\n# 127.0.0.1\n"
    );

    // A label from the inventory picks the db profile.
    let (_, db) = body(&s, "/boot.ipxe?mac=02-00-00-00-00-07");
    assert!(
        db.contains("kernel http://") && db.contains(" db=db-07\n"),
        "{db}"
    );

    // An unknown MAC gets the default profile, not an error.
    let (code, unknown) = body(
        &s,
        "/boot.ipxe?mac=02-00-00-00-00-99&arch=i386&platform=pcbios",
    );
    assert_eq!(code, 200);
    assert!(
        unknown.contains("kernel http://mirror.invalid/rescue/vmlinuz rescue no-rack\n"),
        "{unknown}"
    );
    // The default profile has no answers template: a plain 404, not a 500.
    assert_eq!(body(&s, "/config?mac=02-00-00-00-00-99").0, 404);
    // Files are still served as before.
    assert_eq!(curl(&[&s.url("/big.bin"), "-o", "/dev/null"]).0, 200);
    let log = s.log().join("\n");
    assert!(
        log.contains("boot: rendered mac=52:54:00:aa:00:02 profile=debian"),
        "{log}"
    );
}

#[test]
fn with_no_default_an_unknown_machine_is_told_so_and_exits() {
    let f = Fixture::new();
    let dir = TempDir::new("profiles-nodefault");
    let config = write_config(&dir.0, &CONFIG.replace("default = \"rescue\"", ""), PRESEED);
    let s = Server::start(&f.root(), &["--config", &config]);
    let (code, script) = body(
        &s,
        "/boot.ipxe?mac=02-00-00-00-00-99&arch=x86_64&platform=efi",
    );
    assert_eq!(code, 200);
    assert!(script.starts_with("#!ipxe\necho rackboot: no profile takes machine 02:00:00:00:00:99 (arch x86_64, platform efi"), "{script}");
    assert!(script.ends_with("exit 1\n"), "{script}");
    // A MAC that is not one, and a config request naming nobody: clear 4xx.
    assert_eq!(body(&s, "/config?mac=zz").0, 400);
    assert!(body(&s, "/boot.ipxe?mac=zz")
        .1
        .contains("chain /boot.ipxe?mac="));
}

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rackboot"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_lists_the_profiles_and_catches_template_and_name_mistakes() {
    let f = Fixture::new();
    let root = f.root();
    let root = root.to_str().unwrap();
    let dir = TempDir::new("profiles-check");
    let config = write_config(&dir.0, CONFIG, PRESEED);
    let (code, out) = check(&["--config", &config, "--root", root]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("boot profiles: 3 (default: rescue), 4 machines"),
        "{out}"
    );
    assert!(
        out.contains("profile debian: loader ipxe, kernel /big.bin, 1 initrd(s), answers template"),
        "{out}"
    );
    assert!(
        out.contains("warning: the root's /boot.ipxe is not served"),
        "{out}"
    );

    for (config, preseed, wants) in [
        // Jinja syntax: the profile, the template and its line.
        (
            CONFIG.to_owned(),
            "ok\n{% if hostname %}\nno end\n".to_owned(),
            vec!["`profile`", "debian", "config", "line"],
        ),
        // A name no machine has.
        (
            CONFIG.to_owned(),
            "{{ vars.dsk }}".to_owned(),
            vec!["debian", "undefined"],
        ),
        // A variable only one machine of the inventory lacks is caught for it.
        (
            CONFIG.replace(
                "cmdline = \"db={{ hostname }}\"\n[profile.match]\nlabels = { role = \"db\" }",
                "cmdline = \"db={{ vars.slot }}\"",
            ),
            PRESEED.to_owned(),
            vec![
                "profile `db`: cmdline for machine 52:54:00:aa:00:09",
                "undefined",
            ],
        ),
        (
            CONFIG.replace(
                "cmdline = \"db={{ hostname }}\"",
                "cmdline = \"db={{ hostnme }}\"",
            ),
            PRESEED.to_owned(),
            vec!["profile `db`: cmdline", "undefined", "line 1"],
        ),
        (
            CONFIG.replace("default = \"rescue\"", "default = \"resuce\""),
            PRESEED.to_owned(),
            vec!["boot.default", "resuce", "debian, rescue, db"],
        ),
        (
            format!("{CONFIG}\n[[machine]]\nmac = \"52:54:00:aa:00:03\"\nprofile = \"nope\"\n"),
            PRESEED.to_owned(),
            vec!["machine.profile", "nope"],
        ),
        (
            format!("{CONFIG}\n[[machine]]\nmac = \"52:54:00:aa:00:02\"\n"),
            PRESEED.to_owned(),
            vec!["machine.mac", "listed twice"],
        ),
        (
            CONFIG.replace(
                "kernel = \"/big.bin\"\ninitrd",
                "kernel = \"/missing\"\ninitrd",
            ),
            PRESEED.to_owned(),
            vec!["profile \"debian\"", "`kernel` is /missing", "not served"],
        ),
        (
            CONFIG.replace("preseed.j2", "nowhere.j2"),
            PRESEED.to_owned(),
            vec!["profile.config", "nowhere.j2"],
        ),
        (
            CONFIG.replace("mac = [\"52:54:00:aa:*\"]", "mac = [\"52:54:zz:*\"]"),
            PRESEED.to_owned(),
            vec!["profile.match.mac", "52:54:zz:*"],
        ),
        (
            CONFIG.replace("name = \"db\"", "name = \"debian\""),
            PRESEED.to_owned(),
            vec!["profile.name", "used twice"],
        ),
        (
            CONFIG.replace(
                "default = \"rescue\"",
                "default = \"rescue\"\nscript_path = \"boot.ipxe\"",
            ),
            PRESEED.to_owned(),
            vec!["boot.script_path", "URL path"],
        ),
        (
            CONFIG.replace(
                "kernel = \"/big.bin\"\ninitrd",
                "kernel = \"big.bin\"\ninitrd",
            ),
            PRESEED.to_owned(),
            vec!["profile.kernel", "http:// URL"],
        ),
    ] {
        let d = TempDir::new("profiles-bad");
        let path = write_config(&d.0, &config, &preseed);
        let (code, out) = check(&["--config", &path, "--root", root]);
        assert_ne!(code, 0, "accepted: {wants:?}\n{out}");
        for w in &wants {
            assert!(out.contains(w), "{w:?} not in:\n{out}");
        }
        assert!(!out.contains("panicked"), "{out}");
    }
    // An initrd with no kernel to go with it.
    let (code, out) = check(&["--root", root, "--initrd", "/etc/hostname"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("--initrd/--preseed") && out.contains("add --kernel"),
        "{out}"
    );
}

#[test]
fn kernel_and_initrd_flags_serve_the_whole_flow_with_no_config() {
    let f = Fixture::new();
    let dir = TempDir::new("profiles-flags");
    let kernel = dir.0.join("vmlinuz");
    let initrd = dir.0.join("initrd.img");
    std::fs::write(&kernel, b"kernel bytes").unwrap();
    std::fs::write(&initrd, b"initrd bytes").unwrap();
    let empty = dir.0.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let s = Server::start(
        &empty,
        &[
            "--kernel",
            k,
            "--initrd",
            i,
            "--cmdline",
            "console=ttyS0,115200",
        ],
    );
    let host = s.addr.to_string();
    let (code, script) = body(&s, "/boot.ipxe?mac=52-54-00-00-00-01&platform=pcbios");
    assert_eq!(code, 200);
    assert!(
        script.contains(&format!(
            "kernel http://{host}/boot/vmlinuz initrd=initrd.img auto=true priority=critical \
             url=http://{host}/config?mac=52-54-00-00-00-01&platform=pcbios console=ttyS0,115200\n"
        )),
        "{script}"
    );
    assert_eq!(curl(&[&s.url("/boot/initrd.img")]).2, b"initrd bytes");
    let (code, preseed) = body(&s, "/config?mac=52-54-00-00-00-01");
    assert_eq!(code, 200);
    assert!(
        preseed.contains("d-i netcfg/get_hostname string debian-52-54-00-00-00-01\n"),
        "{preseed}"
    );
    // iPXE's binaries, from the machine's ipxe package (found with dpkg).
    for name in ["/undionly.kpxe", "/ipxe.efi"] {
        let (code, _, bytes) = curl(&[&s.url(name)]);
        assert_eq!(code, 200, "{name}: apt-get install ipxe");
        assert!(bytes.len() > 10_000, "{name}");
    }
    drop(f);
}
