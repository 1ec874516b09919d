//! Real firmware booting the Debian 12 installer from one `rackboot serve`:
//! QEMU (TCG) on a tap in a namespace the test makes, bridged to rackboot's
//! interface. A test passes when the installer's kernel has booted (serial
//! console) and the installer fetched its preseed over HTTP. Needs root,
//! qemu-system-x86, ipxe-qemu, ipxe, ovmf and debian-installer-12-netboot-amd64;
//! their files are found with `dpkg -L`, never by a fixed path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ns::{sh, Kill, Net};
use crate::support::{rackboot_in, run, TempDir};

/// Each boot is bounded; TCG reaches the installer's preseed in ~2-3 min here.
const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// The file of `package` whose path ends with `suffix`.
fn package_file(package: &str, suffix: &str) -> PathBuf {
    let out = run("dpkg", &["-L", package]);
    assert!(
        out.status.success(),
        "{package} is not installed: apt-get install {package}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with(suffix))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{package} has no file ending in {suffix}"))
}

/// The Debian 12 installer's kernel and initrd (debian-installer-12-netboot-amd64).
fn installer() -> (PathBuf, PathBuf) {
    let di = "debian-installer-12-netboot-amd64";
    (
        package_file(di, "/text/debian-installer/amd64/linux"),
        package_file(di, "/text/debian-installer/amd64/initrd.gz"),
    )
}

/// A namespace with bridge `br0` at `server`/24 and `taps` taps (`tap0`, ...) on it.
fn boot_network(net: &mut Net, server: &str, taps: usize) -> String {
    let ns = net.ns("q");
    sh(&format!(
        "ip -n {ns} link add br0 type bridge && ip -n {ns} addr add {server}/24 dev br0 && \
         ip -n {ns} link set br0 up"
    ));
    for i in 0..taps {
        sh(&format!(
            "ip -n {ns} tuntap add dev tap{i} mode tap && \
             ip -n {ns} link set tap{i} master br0 && ip -n {ns} link set tap{i} up"
        ));
    }
    ns
}

/// rackboot serving DHCP, TFTP and HTTP on `br0` with `boot` (a config's
/// profiles) and `args`; its log goes to `log`.
fn serve(ns: &str, server: &str, dir: &Path, boot: &str, args: &[&str], log: &Path) -> Kill {
    let config = dir.join("rackboot.toml");
    let prefix = server.rsplit_once('.').unwrap().0;
    let text = format!(
        "[dhcp]\ninterface = \"br0\"\nlease_file = \"{dir}/leases\"\n[[dhcp.subnet]]\n\
         ranges = [\"{prefix}.100-{prefix}.200\"]\nrouter = \"{server}\"\ndns = [\"{server}\"]\n{boot}",
        dir = dir.display()
    );
    std::fs::write(&config, text).unwrap();
    let child = rackboot_in(Some(ns))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(args)
        .args(["--http", &format!("{server}:80")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let kill = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("dhcp listening")
    {
        assert!(
            Instant::now() < deadline,
            "rackboot did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kill
}

/// QEMU with `firmware` args and the virtio NIC `nic` (netdev `n0`) on `tap`.
fn qemu(ns: &str, tap: &str, serial: &Path, firmware: &[String], nic: &str) -> Kill {
    assert!(
        run("sh", &["-c", "command -v qemu-system-x86_64"])
            .status
            .success(),
        "qemu-system-x86_64 is not installed: apt-get install qemu-system-x86 ipxe-qemu"
    );
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "1024",
        ])
        .args(["-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(firmware)
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            "-device",
            nic,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Kill(child)
}

/// Waits (bounded) until the installer fetched its preseed (`answers`, the
/// rendered config's target); returns rackboot's log and the serial console.
fn wait_for_preseed(
    log: &Path,
    serial: &Path,
    answers: &str,
    started: Instant,
) -> (String, String) {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let console =
            String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default()).into_owned();
        let fetched = text.lines().any(|l| {
            l.contains(&format!("target={answers}"))
                && l.contains("status=200")
                && l.contains("debian-installer")
        });
        if fetched {
            return (text, console);
        }
        assert!(
            started.elapsed() < BOOT_LIMIT,
            "no preseed fetched in {BOOT_LIMIT:?}.\nrackboot log:\n{text}\nserial console (tail):\n{}",
            console.chars().rev().take(3000).collect::<String>().chars().rev().collect::<String>()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn assert_installer_booted(log: &str, console: &str, answers: &str) {
    assert!(
        console.contains("Linux version")
            && console.contains(&format!("url=http://10.81.0.1{answers}"))
            && console.contains("console=ttyS0,115200"),
        "the serial console does not show the installer's kernel booting with its profile's command line:\n{console}"
    );
    for path in ["/boot.ipxe?mac=", "/boot/linux", "/boot/initrd.gz"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("target={path}")) && l.contains("status=200")),
            "{path} was not served:\n{log}"
        );
    }
}

/// Boots a virtio NIC with `mac` under `firmware` (its QEMU arguments, files
/// made in the test's directory) against `rackboot serve --kernel --initrd`
/// (the built-in defaults: no root, iPXE's binaries found on the machine) until
/// the installer fetched its rendered preseed; checks the kernel booted and
/// returns rackboot's log.
fn boot_installer(
    tag: &str,
    firmware: impl FnOnce(&Path) -> Vec<String>,
    mac: &str,
    nic: &str,
) -> String {
    let _turn = crate::support::heavy();
    let mut net = Net::new(tag);
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new(tag);
    let log = dir.0.join("rackboot.log");
    let (kernel, initrd) = installer();
    let (kernel, initrd) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let args = [
        "--kernel",
        kernel,
        "--initrd",
        initrd,
        "--cmdline",
        "console=ttyS0,115200",
    ];
    let _rackboot = serve(&ns, server, &dir.0, "", &args, &log);
    let firmware = firmware(&dir.0);
    let serial = dir.0.join("serial.log");
    let started = Instant::now();
    let _vm = qemu(
        &ns,
        "tap0",
        &serial,
        &firmware,
        &format!("virtio-net-pci,netdev=n0,mac={mac}{nic}"),
    );
    let answers = format!("/config?mac={}", mac.replace(':', "-"));
    let (log, console) = wait_for_preseed(&log, &serial, &answers, started);
    assert_installer_booted(&log, &console, &answers);
    log
}

#[test]
fn seabios_with_the_ipxe_rom_boots_the_installer_to_its_preseed() {
    // SeaBIOS runs the virtio NIC's iPXE ROM (ipxe-qemu): iPXE's own DHCP, then
    // the boot script over HTTP.
    let log = boot_installer(
        "qb",
        |_| vec!["-boot".into(), "n".into()],
        "52:54:00:81:00:01",
        "",
    );
    assert!(
        !log.contains("proto=tftp"),
        "an iPXE ROM needs no TFTP:\n{log}"
    );
}

#[test]
fn ovmf_edk2_pxe_tftps_snponly_efi_and_boots_the_installer_to_its_preseed() {
    // romfile= leaves the NIC without iPXE's ROM: EDK2's own PXE client runs,
    // TFTPs iPXE (snponly.efi), and iPXE takes over from there.
    let log = boot_installer(
        "qu",
        |dir| {
            let (code, vars) = ovmf(dir);
            pflash(&code, &vars)
        },
        "52:54:00:81:00:02",
        ",romfile=",
    );
    // The built-in defaults serve iPXE's snponly.efi (found with dpkg), which
    // EDK2 PXE gets instead of ipxe.efi.
    assert!(
        log.lines()
            .any(|l| l.contains("proto=tftp") && l.contains("file=/snponly.efi result=done")),
        "EDK2 did not fetch snponly.efi over TFTP:\n{log}"
    );
    // EDK2 (client id 01+MAC), iPXE and the installer (none) are one machine:
    // one address for all three DHCP exchanges.
    let acked: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains("dhcp ACK mac=52:54:00:81:00:02"))
        .filter_map(|l| l.split("ip=").nth(1))
        .collect();
    assert_eq!(acked.len(), 1, "one address per machine:\n{log}");
}

/// OVMF's code and a copy of its variable store in `dir`.
fn ovmf(dir: &Path) -> (PathBuf, PathBuf) {
    let vars = dir.join("vars.fd");
    std::fs::copy(package_file("ovmf", "/OVMF_VARS_4M.fd"), &vars).unwrap();
    (package_file("ovmf", "/OVMF_CODE_4M.fd"), vars)
}

fn pflash(code: &Path, vars: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ]
}

#[test]
fn ovmf_uefi_http_boot_fetches_ipxe_efi_over_http_and_boots_the_installer() {
    // EDK2's own HTTP boot (HttpBootDxe, in Debian's OVMF): its variable store
    // gets a one-time boot entry for the URI of ipxe.efi (virt-fw-vars), so the
    // firmware DHCPs as an HTTPClient and GETs ipxe.efi itself: no TFTP at all.
    let log = boot_installer(
        "qh",
        |dir| {
            let (code, vars) = ovmf(dir);
            let out = Command::new("virt-fw-vars")
                .arg("--input")
                .arg(&vars)
                .arg("--output")
                .arg(dir.join("vars-http.fd"))
                .args(["--set-boot-uri", "http://10.81.0.1/ipxe.efi"])
                .output()
                .expect("virt-fw-vars is missing: pip install virt-firmware");
            assert!(
                out.status.success(),
                "virt-fw-vars: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(dir.join("vars-http.fd"), &vars).unwrap();
            pflash(&code, &vars)
        },
        "52:54:00:81:00:03",
        ",romfile=",
    );
    assert!(
        log.lines()
            .any(|l| l.contains("target=/ipxe.efi status=200") && l.contains("UefiHttpBoot")),
        "EDK2's HTTP boot did not fetch ipxe.efi:\n{log}"
    );
    assert!(
        !log.contains("proto=tftp"),
        "HTTP boot needs no TFTP:\n{log}"
    );
}

#[test]
fn two_machines_in_one_run_boot_their_own_profiles() {
    // Two SeaBIOS + iPXE machines at once on one rackboot; a profile each by
    // MAC. Each kernel's command line (printed first on its serial console)
    // carries its own profile's marker.
    let _turn = crate::support::heavy();
    let mut net = Net::new("q2");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 2);
    let dir = TempDir::new("q2");
    let log = dir.0.join("rackboot.log");
    let (kernel, initrd) = installer();
    let (kernel, initrd) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let profile = |name: &str, mac: &str| {
        format!(
            "[[profile]]\nname = \"{name}\"\nkernel = \"/boot/linux\"\ninitrd = [\"/boot/initrd.gz\"]\n\
             cmdline = \"console=ttyS0,115200 rackboot.profile={name} rackboot.host={{{{ hostname }}}}\"\n\
             [profile.match]\nmac = [\"{mac}\"]\n"
        )
    };
    let boot = format!(
        "{}{}[[machine]]\nmac = \"52:54:00:81:00:12\"\nhostname = \"beta-12\"\n",
        profile("alpha", "52:54:00:81:00:11"),
        profile("beta", "52:54:00:81:00:1*")
    );
    let args = ["--kernel", kernel, "--initrd", initrd];
    let _rackboot = serve(&ns, server, &dir.0, &boot, &args, &log);
    let machines = [
        ("tap0", "52:54:00:81:00:11", "alpha"),
        ("tap1", "52:54:00:81:00:12", "beta"),
    ];
    let started = Instant::now();
    let vms: Vec<(Kill, PathBuf, &str)> = machines
        .iter()
        .map(|&(tap, mac, profile)| {
            let serial = dir.0.join(format!("{profile}.serial"));
            let nic = format!("virtio-net-pci,netdev=n0,mac={mac}");
            let vm = qemu(&ns, tap, &serial, &["-boot".into(), "n".into()], &nic);
            (vm, serial, profile)
        })
        .collect();
    let command_line = |serial: &Path| {
        String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default())
            .lines()
            .find(|l| l.contains("Command line:"))
            .map(str::to_owned)
    };
    loop {
        let lines: Vec<Option<String>> = vms.iter().map(|(_, s, _)| command_line(s)).collect();
        if lines.iter().all(Option::is_some) {
            for (line, (_, _, profile)) in lines.iter().flatten().zip(&vms) {
                assert!(
                    line.contains(&format!("rackboot.profile={profile} ")),
                    "{profile}: {line}"
                );
                let other = if *profile == "alpha" { "beta" } else { "alpha" };
                assert!(!line.contains(other), "{profile}: {line}");
            }
            // The inventory's name reached the second machine; the first has none.
            assert!(
                lines[0].as_deref().unwrap().ends_with("rackboot.host="),
                "{lines:?}"
            );
            assert!(
                lines[1]
                    .as_deref()
                    .unwrap()
                    .ends_with("rackboot.host=beta-12"),
                "{lines:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < BOOT_LIMIT,
            "not both kernels booted in {BOOT_LIMIT:?}: {lines:?}\nrackboot log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
