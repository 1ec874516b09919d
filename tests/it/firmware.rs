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
         ip -n {ns} addr add fd00:81::1/64 dev br0 nodad && ip -n {ns} link set br0 up"
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
        .arg("--boot-state-file")
        .arg(dir.join("machines.state"))
        .arg("--admin-socket")
        .arg(dir.join("admin.sock"))
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
    qemu_system(
        ("qemu-system-x86_64", "qemu-system-x86 ipxe-qemu"),
        ns,
        tap,
        serial,
        firmware,
        nic,
    )
}

/// [`qemu`] of another system: (binary, the packages that have it).
fn qemu_system(
    (binary, packages): (&str, &str),
    ns: &str,
    tap: &str,
    serial: &Path,
    firmware: &[String],
    nic: &str,
) -> Kill {
    assert!(
        run("sh", &["-c", &format!("command -v {binary}")])
            .status
            .success(),
        "{binary} is not installed: apt-get install {packages}"
    );
    let child = Command::new("ip")
        .args(["netns", "exec", ns, binary, "-accel", "tcg", "-m", "1024"])
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

/// One machine booting the installer: its network, server and VM, kept
/// for what the test does next.
struct Booted {
    log: String,
    /// The boot's packets (DHCP and HTTP on the bridge), when asked for.
    capture: Option<crate::dhcp::Capture>,
    ns: String,
    dir: TempDir,
    vm: Kill,
    _rackboot: Kill,
    _net: Net,
}

/// Boots a virtio NIC with `mac` under `firmware` (its QEMU arguments, files
/// made in the test's directory) against `rackboot serve --kernel --initrd`
/// (the built-in defaults: no root, iPXE's binaries found on the machine,
/// and `extra`) until the installer fetched its rendered preseed; checks the
/// kernel booted.
fn boot_installer(
    tag: &str,
    firmware: impl FnOnce(&Path) -> Vec<String>,
    mac: &str,
    nic: &str,
    extra: &[&str],
    capture: bool,
) -> Booted {
    let mut net = Net::new(tag);
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new(tag);
    let log = dir.0.join("rackboot.log");
    let (kernel, initrd) = installer();
    let (kernel, initrd) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let mut args = vec![
        "--kernel",
        kernel,
        "--initrd",
        initrd,
        "--cmdline",
        "console=ttyS0,115200",
    ];
    args.extend_from_slice(extra);
    let rackboot = serve(&ns, server, &dir.0, "", &args, &log);
    let firmware = firmware(&dir.0);
    let serial = dir.0.join("serial.log");
    let capture = capture.then(|| {
        let pcap = dir.0.join("boot.pcap");
        crate::dhcp::Capture::start(
            &ns,
            "br0",
            "udp port 67 or udp port 68 or tcp port 80",
            &pcap,
        )
    });
    let started = Instant::now();
    let vm = qemu(
        &ns,
        "tap0",
        &serial,
        &firmware,
        &format!("virtio-net-pci,netdev=n0,mac={mac}{nic}"),
    );
    let answers = format!("/config?mac={}", mac.replace(':', "-"));
    let (log, console) = wait_for_preseed(&log, &serial, &answers, started);
    assert_installer_booted(&log, &console, &answers);
    Booted {
        log,
        capture,
        ns,
        dir,
        vm,
        _rackboot: rackboot,
        _net: net,
    }
}

/// A disk whose boot sector writes [`DISK_SAYS`] to COM1 and halts: what
/// "booted from its disk" looks like on the serial console.
fn local_disk(path: &Path) {
    let mut sector = vec![
        0xfa, // cli
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0x16, 0x7c, // mov si, 0x7c16 (the message)
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac, // lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz halt
        0xee, // out dx, al
        0xeb, 0xf8, // jmp lodsb
        0xf4, // halt: hlt
        0xeb, 0xfd, // jmp halt
    ];
    sector.extend_from_slice(DISK_SAYS.as_bytes());
    sector.extend_from_slice(b"\r\n\0");
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xaa]);
    sector.resize(1 << 20, 0);
    std::fs::write(path, sector).unwrap();
}

const DISK_SAYS: &str = "rackboot-test: booted from the local disk";

/// The fleet view's timeline of `mac`'s boot has every step, in order, each
/// starting within a second of its first packet in the capture.
fn timeline_matches_the_capture(booted: &mut Booted, mac: &str) {
    let packets = booted.capture.take().unwrap().rows(
        "dhcp.option.dhcp == 1 || http.request",
        &[
            "frame.time_epoch",
            "dhcp.option.vendor_class_id",
            "http.request.uri",
        ],
    );
    let first = |what: &dyn Fn(&[String]) -> bool| -> f64 {
        packets
            .iter()
            .find(|p| what(p))
            .and_then(|p| p[0].parse().ok())
            .unwrap_or_else(|| panic!("no such packet in the capture: {packets:?}"))
    };
    let o = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(booted.dir.0.join("admin.sock"))
        .arg(format!("http://rackboot/api/v1/machines/{mac}/boots"))
        .output()
        .unwrap();
    let t: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    let steps: Vec<&serde_json::Value> = t["boots"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == true)
        .collect();
    let mut phases: Vec<&str> = steps.iter().map(|s| s["phase"].as_str().unwrap()).collect();
    phases.dedup();
    assert_eq!(
        phases,
        [
            "dhcp",
            "script",
            "kernel",
            "initrd",
            "installer-dhcp",
            "answers"
        ],
        "{t:#}"
    );
    for step in &steps {
        let what = step["what"].as_str().unwrap();
        let seen = match step["phase"].as_str().unwrap() {
            "dhcp" => first(&|p| p[2].is_empty() && p[1] != "d-i"),
            "installer-dhcp" => first(&|p| p[1] == "d-i"),
            _ => first(&|p| p[2].starts_with(what)),
        };
        let at = step["start_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (at - seen).abs() < 1.0,
            "{} ({what}) starts at {at:.3} in the timeline, {seen:.3} in the capture: {t:#}",
            step["phase"]
        );
    }
}

#[test]
fn seabios_installs_once_then_boots_its_disk() {
    // SeaBIOS runs the virtio NIC's iPXE ROM (ipxe-qemu): iPXE's own DHCP, then
    // the boot script over HTTP. The machine has a disk after the network in
    // its boot order; `--once` makes it install once.
    let _turn = crate::support::heavy();
    let mac = "52:54:00:81:00:01";
    let firmware = |dir: &Path| {
        local_disk(&dir.join("disk.img"));
        vec![
            "-boot".into(),
            "order=nc".into(),
            "-drive".into(),
            format!("file={},format=raw,if=ide", dir.join("disk.img").display()),
        ]
    };
    let mut booted = boot_installer("qb", firmware, mac, "", &["--once"], true);
    timeline_matches_the_capture(&mut booted, mac);
    assert!(
        !booted.log.contains("proto=tftp"),
        "an iPXE ROM needs no TFTP:\n{}",
        booted.log
    );
    // The installer's late command would fetch its done URL at the end of
    // the install (a full install needs a mirror): the test fetches it from
    // the answers the installer got.
    let curl = |url: &str| sh(&format!("ip netns exec {} curl -sS -f '{url}'", booted.ns));
    let answers = curl("http://10.81.0.1/config?mac=52-54-00-81-00-01");
    let done = answers
        .lines()
        .find(|l| l.starts_with("d-i preseed/late_command"))
        .and_then(|l| l.split_whitespace().find(|w| w.contains("/done/")))
        .unwrap_or_else(|| panic!("no done URL in the answers:\n{answers}"))
        .to_owned();
    assert!(curl(&done).contains("netboot is now local"));

    // The next power-on of the same machine: the local-boot script, then the
    // firmware's next boot device, and no installer.
    drop(booted.vm);
    let serial = booted.dir.0.join("serial-2.log");
    let log = booted.dir.0.join("rackboot.log");
    let kernels = |text: &str| text.matches("target=/boot/linux").count();
    let before = kernels(&std::fs::read_to_string(&log).unwrap());
    let _vm = qemu(
        &booted.ns,
        "tap0",
        &serial,
        &firmware(&booted.dir.0),
        &format!("virtio-net-pci,netdev=n0,mac={mac}"),
    );
    let started = Instant::now();
    loop {
        let console =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if console.contains(DISK_SAYS) {
            assert!(
                text.contains("page=\"local\"") && kernels(&text) == before,
                "the disk booted, but not through the local-boot script:\n{text}"
            );
            assert!(!console.contains("Linux version"), "{console}");
            break;
        }
        assert!(
            started.elapsed() < BOOT_LIMIT,
            "the second power-on did not reach its disk in {BOOT_LIMIT:?}.\nrackboot log:\n{text}\nserial console:\n{console}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn ovmf_edk2_pxe_tftps_snponly_efi_and_boots_the_installer_to_its_preseed() {
    // romfile= leaves the NIC without iPXE's ROM: EDK2's own PXE client runs,
    // TFTPs iPXE (snponly.efi), and iPXE takes over from there. The link is
    // dual stack (DHCPv6 on, its advertisement with the M flag): the
    // machine boots over IPv4 all the same, and configures IPv6 beside it.
    let _turn = crate::support::heavy();
    let log = boot_installer(
        "qu",
        |dir| {
            let (code, vars) = ovmf(dir);
            pflash(&code, &vars)
        },
        "52:54:00:81:00:02",
        ",romfile=",
        &["--dhcp6-range", "fd00:81::100,fd00:81::1ff"],
        false,
    )
    .log;
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
    // IPv6 was there and taken (iPXE's or the installer's DHCPv6), and the
    // boot went on over IPv4: the script, kernel and initrd from the IPv4
    // peer.
    assert!(
        log.contains("dhcp6 REPLY"),
        "no DHCPv6 binding beside IPv4:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("target=/boot/linux") && l.contains("peer=10.81.0.")),
        "the kernel did not come over IPv4:\n{log}"
    );
}

/// OVMF's code and a copy of its variable store in `dir`.
fn ovmf(dir: &Path) -> (PathBuf, PathBuf) {
    let vars = dir.join("vars.fd");
    std::fs::copy(package_file("ovmf", "/OVMF_VARS_4M.fd"), &vars).unwrap();
    (package_file("ovmf", "/OVMF_CODE_4M.fd"), vars)
}

/// Gives the variable store `vars` a one-time boot entry for `uri` (EDK2's
/// HTTP boot), with virt-fw-vars.
fn set_boot_uri(vars: &Path, uri: &str) {
    let next = vars.with_extension("http.fd");
    let out = Command::new("virt-fw-vars")
        .arg("--input")
        .arg(vars)
        .arg("--output")
        .arg(&next)
        .args(["--set-boot-uri", uri])
        .output()
        .expect("virt-fw-vars is missing: pip install virt-firmware");
    assert!(
        out.status.success(),
        "virt-fw-vars: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&next, vars).unwrap();
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
    let _turn = crate::support::heavy();
    let log = boot_installer(
        "qh",
        |dir| {
            let (code, vars) = ovmf(dir);
            set_boot_uri(&vars, "http://10.81.0.1/ipxe.efi");
            pflash(&code, &vars)
        },
        "52:54:00:81:00:03",
        ",romfile=",
        &[],
        false,
    )
    .log;
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

#[test]
fn seabios_boots_the_installer_from_a_dnsmasq_and_nginx_configuration() {
    boot_from_dnsmasq_and_nginx("qd", "52:54:00:81:00:04", "", |_| {
        vec!["-boot".into(), "n".into()]
    });
}

#[test]
fn ovmf_edk2_pxe_boots_the_installer_from_a_dnsmasq_and_nginx_configuration() {
    // No iPXE ROM: EDK2's own PXE client gets ipxe.efi over TFTP by the
    // recipe's client-arch match, then iPXE chains the HTTP script.
    let log = boot_from_dnsmasq_and_nginx("qe", "52:54:00:81:00:05", ",romfile=", |dir| {
        let (code, vars) = ovmf(dir);
        pflash(&code, &vars)
    });
    assert!(
        log.lines()
            .any(|l| l.contains("proto=tftp") && l.contains("file=/ipxe.efi result=done")),
        "EDK2 did not fetch ipxe.efi over TFTP:\n{log}"
    );
}

/// In `d`: tftp/ with iPXE's undionly.kpxe and ipxe.efi, www/ with a boot
/// script that starts the installer with a preseed, and nginx.conf serving
/// www/ on 10.81.0.1:80 with the installer under /d-i/. Returns nginx.conf.
fn installer_tree(d: &Path) -> PathBuf {
    let (kernel, _) = installer();
    let di = kernel.parent().unwrap();
    std::fs::create_dir_all(d.join("tftp")).unwrap();
    for name in ["undionly.kpxe", "ipxe.efi"] {
        std::fs::copy(
            package_file("ipxe", &format!("/ipxe/{name}")),
            d.join("tftp").join(name),
        )
        .unwrap();
    }
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::write(
        d.join("www/boot.ipxe"),
        "#!ipxe\nkernel http://10.81.0.1/d-i/linux initrd=initrd.gz auto=true priority=critical \
         url=http://10.81.0.1/preseed.cfg console=ttyS0,115200\n\
         initrd http://10.81.0.1/d-i/initrd.gz\nboot\n",
    )
    .unwrap();
    std::fs::write(
        d.join("www/preseed.cfg"),
        "d-i debian-installer/locale string en_US.UTF-8\nd-i keyboard-configuration/xkb-keymap select us\n",
    )
    .unwrap();
    let nginx = d.join("nginx.conf");
    std::fs::write(
        &nginx,
        format!(
            "events {{}}\nhttp {{\n  server {{\n    listen 10.81.0.1:80;\n    root {}/www;\n    \
             location /d-i/ {{ alias {}/; }}\n  }}\n}}\n",
            d.display(),
            di.display()
        ),
    )
    .unwrap();
    nginx
}

/// `rackboot serve --dnsmasq-conf dnsmasq --nginx-conf nginx` in `ns`, its
/// state in `d`, its log in `log`.
fn serve_files(ns: &str, d: &Path, dnsmasq: &Path, nginx: &Path, log: &Path) -> Kill {
    let child = crate::support::rackboot_in(Some(ns))
        .args(["serve", "--dnsmasq-conf", dnsmasq.to_str().unwrap()])
        .args([
            "--nginx-conf",
            nginx.to_str().unwrap(),
            "--admin-socket",
            "",
        ])
        .arg("--boot-state-file")
        .arg(d.join("machines.state"))
        .arg("--dhcp-lease-file")
        .arg(d.join("leases"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Kill(child)
}

/// The seed's recipe, as a provisioning host runs it with dnsmasq + nginx:
/// dnsmasq gives addresses, undionly.kpxe (BIOS) or ipxe.efi (UEFI) over
/// TFTP to PXE firmware and an HTTP script to iPXE; nginx serves the
/// script, the installer and its preseed (the installer's files by an
/// alias). rackboot serves it from those two files, untouched, until the
/// installer fetches its preseed; its log.
fn boot_from_dnsmasq_and_nginx(
    tag: &str,
    mac: &str,
    nic: &str,
    firmware: impl FnOnce(&Path) -> Vec<String>,
) -> String {
    let _turn = crate::support::heavy();
    let mut net = Net::new(tag);
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new(tag);
    let d = &dir.0;
    let nginx = installer_tree(d);
    let dnsmasq = d.join("dnsmasq.conf");
    std::fs::write(
        &dnsmasq,
        format!(
            "interface=br0\nbind-interfaces\nport=0\ndhcp-range=10.81.0.100,10.81.0.200,12h\n\
             dhcp-leasefile={0}/dnsmasq.leases\nenable-tftp\ntftp-root={0}/tftp\n\
             dhcp-option=option:router,10.81.0.1\ndhcp-option=option:dns-server,10.81.0.1\n\
             dhcp-match=set:ipxe,175\ndhcp-match=set:efi,option:client-arch,7\n\
             dhcp-boot=tag:!ipxe,undionly.kpxe\ndhcp-boot=tag:efi,tag:!ipxe,ipxe.efi\n\
             dhcp-boot=tag:ipxe,http://10.81.0.1/boot.ipxe\n",
            d.display()
        ),
    )
    .unwrap();
    let log = d.join("rackboot.log");
    let _rackboot = serve_files(&ns, d, &dnsmasq, &nginx, &log);
    let serial = d.join("serial.log");
    let started = Instant::now();
    let firmware = firmware(d);
    let _vm = qemu(
        &ns,
        "tap0",
        &serial,
        &firmware,
        &format!("virtio-net-pci,netdev=n0,mac={mac}{nic}"),
    );
    let (log, console) = wait_for_preseed(&log, &serial, "/preseed.cfg", started);
    assert!(
        console.contains("Linux version")
            && console.contains("url=http://10.81.0.1/preseed.cfg")
            && console.contains("console=ttyS0,115200"),
        "the serial console does not show the installer's kernel with the script's command line:\n{console}"
    );
    for path in ["/boot.ipxe", "/d-i/linux", "/d-i/initrd.gz"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("target={path} ")) && l.contains("status=200")),
            "{path} was not served:\n{log}"
        );
    }
    log
}

/// FOG's way: another DHCP server gives addresses (dnsmasq, in its own
/// namespace on the bridge) and rackboot, from a dnsmasq.conf with a proxy
/// range and a PXE menu, only says what to boot. OVMF's EDK2 PXE is sent to
/// :4011 for its one menu item (ipxe.efi over TFTP); iPXE asks :4011 too and
/// gets its own item, the HTTP script; the installer then boots to its
/// preseed.
#[test]
fn ovmf_edk2_pxe_boots_from_a_proxy_pxe_menu_beside_another_dhcp_server() {
    let _turn = crate::support::heavy();
    let mut net = Net::new("qp");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new("qp");
    let d = &dir.0;
    let nginx = installer_tree(d);
    // The address server: plain DHCP, no boot answers.
    let other = net.ns("o");
    sh(&format!(
        "ip -n {ns} link add vo0 type veth peer name vo1 netns {other} && \
         ip -n {ns} link set vo0 master br0 && ip -n {ns} link set vo0 up && \
         ip -n {other} addr add 10.81.0.2/24 dev vo1 && ip -n {other} link set vo1 up"
    ));
    let leases = d.join("other.leases");
    let _dhcp = Kill(crate::ns::spawn_in(
        &other,
        &format!(
            "exec dnsmasq --keep-in-foreground --port=0 --interface=vo1 --bind-interfaces \
             --dhcp-range=10.81.0.100,10.81.0.150,12h --dhcp-option=3,10.81.0.1 \
             --dhcp-option=6,10.81.0.1 --dhcp-leasefile={} --no-ping --user=root \
             --pid-file={}",
            leases.display(),
            d.join("other.pid").display()
        ),
    ));
    let conf = d.join("proxy.conf");
    std::fs::write(
        &conf,
        format!(
            "interface=br0\nport=0\ndhcp-range=10.81.0.1,proxy\nenable-tftp\ntftp-root={}/tftp\n\
             dhcp-userclass=set:ipxe,iPXE\n\
             pxe-prompt=\"Booting\",1\n\
             pxe-service=tag:!ipxe,X86-64_EFI,\"Network boot\",ipxe.efi\n\
             pxe-service=tag:ipxe,X86-64_EFI,\"Installer\",http://10.81.0.1/boot.ipxe\n",
            d.display()
        ),
    )
    .unwrap();
    let log = d.join("rackboot.log");
    let _rackboot = serve_files(&ns, d, &conf, &nginx, &log);
    let serial = d.join("serial.log");
    let started = Instant::now();
    let (code, vars) = ovmf(d);
    let _vm = qemu(
        &ns,
        "tap0",
        &serial,
        &pflash(&code, &vars),
        "virtio-net-pci,netdev=n0,mac=52:54:00:81:00:07,romfile=",
    );
    let (log, console) = wait_for_preseed(&log, &serial, "/preseed.cfg", started);
    assert!(
        console.contains("Linux version") && console.contains("url=http://10.81.0.1/preseed.cfg"),
        "the installer's kernel did not boot:\n{console}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("proto=tftp") && l.contains("file=/ipxe.efi result=done")),
        "EDK2 did not fetch its menu item ipxe.efi over TFTP:\n{log}"
    );
    // The addresses came from the other server, never from rackboot.
    let given = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(given.contains("52:54:00:81:00:07"), "{given}");
    assert!(
        !log.contains("dhcp ACK mac=52:54:00:81:00:07 ip=10."),
        "{log}"
    );
}

/// QEMU arguments for OVMF with Secure Boot enforced: the SMM build
/// (`OVMF_CODE_4M.secboot.fd`) and a copy of the variable store with
/// Microsoft's keys enrolled (`OVMF_VARS_4M.ms.fd`), on q35 with SMM.
fn secure_boot(dir: &Path) -> Vec<String> {
    let vars = dir.join("vars.fd");
    std::fs::copy(package_file("ovmf", "/OVMF_VARS_4M.ms.fd"), &vars).unwrap();
    let code = package_file("ovmf", "/OVMF_CODE_4M.secboot.fd");
    let mut args: Vec<String> = [
        "-machine",
        "q35,smm=on",
        "-global",
        "driver=cfi.pflash01,property=secure,value=on",
    ]
    .map(String::from)
    .to_vec();
    args.extend(pflash(&code, &vars));
    args
}

#[test]
fn secure_boot_machines_boot_shim_grub_and_the_signed_installer_of_their_own_grub_profiles() {
    // Two machines with Secure Boot enforced, a grub profile each by MAC.
    // EDK2 PXE gets the Microsoft-signed shim over TFTP; shim verifies and
    // starts Debian's signed grub; grub reads the stub grub.cfg, then its own
    // page by MAC, and boots the installer's signed kernel. Each kernel says
    // Secure Boot is on and carries its own profile's command line; each
    // installer fetches its own preseed.
    let _turn = crate::support::heavy();
    let mut net = Net::new("qs");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 2);
    let dir = TempDir::new("qs");
    let log = dir.0.join("rackboot.log");
    let (kernel, initrd) = installer();
    let (kernel, initrd) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    std::fs::write(
        dir.0.join("preseed.cfg"),
        "d-i debian-installer/locale string en_US.UTF-8\n# {{ profile }} {{ mac }}\n",
    )
    .unwrap();
    let profile = |name: &str, mac: &str| {
        format!(
            "[[profile]]\nname = \"{name}\"\nloader = \"grub\"\nkernel = \"/boot/linux\"\n\
             initrd = [\"/boot/initrd.gz\"]\nconfig = \"preseed.cfg\"\n\
             cmdline = \"auto=true priority=critical url={{{{ config_url }}}} \
             console=ttyS0,115200 rackboot.profile={name}\"\n\
             [profile.match]\nmac = [\"{mac}\"]\n"
        )
    };
    let boot = format!(
        "{}{}",
        profile("alpha", "52:54:00:81:00:21"),
        profile("beta", "52:54:00:81:00:22")
    );
    let args = ["--kernel", kernel, "--initrd", initrd];
    let _rackboot = serve(&ns, server, &dir.0, &boot, &args, &log);
    let machines = [
        ("tap0", "52:54:00:81:00:21", "alpha"),
        ("tap1", "52:54:00:81:00:22", "beta"),
    ];
    let started = Instant::now();
    let vms: Vec<(Kill, PathBuf, &str, &str)> = machines
        .iter()
        .map(|&(tap, mac, profile)| {
            let serial = dir.0.join(format!("{profile}.serial"));
            let nic = format!("virtio-net-pci,netdev=n0,mac={mac},romfile=");
            let vm_dir = dir.0.join(profile);
            std::fs::create_dir_all(&vm_dir).unwrap();
            let vm = qemu(&ns, tap, &serial, &secure_boot(&vm_dir), &nic);
            (vm, serial, mac, profile)
        })
        .collect();
    for (_, serial, mac, profile) in &vms {
        let answers = format!("/config?mac={}", mac.replace(':', "-"));
        let (text, console) = wait_for_preseed(&log, serial, &answers, started);
        assert!(
            console.contains("secureboot: Secure boot enabled"),
            "{profile}: the kernel does not say Secure Boot is on:\n{console}"
        );
        let line = console
            .lines()
            .find(|l| l.contains("Command line:"))
            .unwrap_or_else(|| panic!("{profile}: no command line:\n{console}"));
        assert!(
            line.contains(&format!("rackboot.profile={profile}"))
                && line.contains(&format!("url=http://{server}{answers}")),
            "{profile}: {line}"
        );
        let other = if *profile == "alpha" { "beta" } else { "alpha" };
        assert!(!line.contains(other), "{profile}: {line}");
        // The chain as the server saw it: shim, its second stage, the stub,
        // this machine's page, the kernel and initrd, all over TFTP.
        let served = |file: &str| {
            text.lines().any(|l| {
                l.contains("proto=tftp")
                    && l.contains(&format!("file={file}"))
                    && l.contains("result=done")
            })
        };
        for file in [
            "/shimx64.efi",
            "/grubx64.efi",
            "/grub/grub.cfg",
            &format!("/boot.grub?mac={mac}&arch=x86_64&platform=efi"),
            "/boot/linux",
            "/boot/initrd.gz",
        ] {
            assert!(
                served(file),
                "{profile}: {file} was not served over TFTP:\n{text}"
            );
        }
        assert!(
            !text.contains("target=/boot.ipxe"),
            "a grub machine asked for iPXE's script:\n{text}"
        );
    }
}

#[test]
fn secure_boot_firmware_refuses_unsigned_ipxe() {
    // The control: the same firmware, handed iPXE (unsigned) by the default
    // profile, downloads it and refuses to start it. This proves Secure Boot
    // is enforced in the test above.
    let _turn = crate::support::heavy();
    let mut net = Net::new("qr");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new("qr");
    let log = dir.0.join("rackboot.log");
    let (kernel, initrd) = installer();
    let args = [
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
    ];
    let _rackboot = serve(&ns, server, &dir.0, "", &args, &log);
    let serial = dir.0.join("serial.log");
    let nic = "virtio-net-pci,netdev=n0,mac=52:54:00:81:00:23,romfile=";
    let _vm = qemu(&ns, "tap0", &serial, &secure_boot(&dir.0), nic);
    let started = Instant::now();
    loop {
        let console =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let refused = console.lines().any(|l| {
            l.contains("failed to load") && l.contains("PXEv4") && l.contains("Access Denied")
        });
        if refused {
            assert!(
                text.lines()
                    .any(|l| l.contains("file=/snponly.efi result=done")),
                "the firmware refused something other than iPXE:\n{text}"
            );
            assert!(!text.contains("target=/boot.ipxe"), "iPXE ran:\n{text}");
            break;
        }
        assert!(
            started.elapsed() < BOOT_LIMIT,
            "the firmware did not refuse iPXE in {BOOT_LIMIT:?}.\nrackboot log:\n{text}\nserial console:\n{console}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn boot_media_boots_bios_and_uefi_from_cd_and_disk_with_plain_dhcp_from_dnsmasq() {
    // No PXE at all: dnsmasq (in another namespace) gives addresses with no
    // boot options, rackboot serves HTTP only. The image boots as a CD-ROM
    // under SeaBIOS (iPXE with the media's script) and under OVMF (grub's own
    // DHCP and HTTP), and as a disk under OVMF. Each machine's installer
    // fetches its own preseed from rackboot. Two rounds of at most two
    // machines: TCG runs one core per machine. The second round's CD is the
    // image `serve --media` serves at /boot.iso.
    let _turn = crate::support::heavy();
    let mut net = Net::new("qm");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 3);
    let dir = TempDir::new("qm");
    let d = &dir.0;
    let other = net.ns("o");
    sh(&format!(
        "ip -n {ns} link add vo0 type veth peer name vo1 netns {other} && \
         ip -n {ns} link set vo0 master br0 && ip -n {ns} link set vo0 up && \
         ip -n {other} addr add 10.81.0.2/24 dev vo1 && ip -n {other} link set vo1 up"
    ));
    let _dhcp = Kill(crate::ns::spawn_in(
        &other,
        &format!(
            "exec dnsmasq --keep-in-foreground --port=0 --interface=vo1 --bind-interfaces \
             --dhcp-range=10.81.0.100,10.81.0.150,12h --dhcp-option=3,10.81.0.1 \
             --dhcp-option=6,10.81.0.1 --dhcp-leasefile={} --no-ping --user=root \
             --pid-file={}",
            d.join("other.leases").display(),
            d.join("other.pid").display()
        ),
    ));
    let (kernel, initrd) = installer();
    let log = d.join("rackboot.log");
    let _rackboot = Kill(
        rackboot_in(Some(&ns))
            .arg("serve")
            .arg("--kernel")
            .arg(&kernel)
            .arg("--initrd")
            .arg(&initrd)
            .args(["--cmdline", "console=ttyS0,115200", "--media"])
            .args(["--http", &format!("{server}:80"), "--admin-socket", ""])
            .arg("--boot-state-file")
            .arg(d.join("machines.state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let (iso, img, served) = (d.join("boot.iso"), d.join("boot.img"), d.join("served.iso"));
    for (format, out) in [("iso", &iso), ("img", &img)] {
        let o = run(
            env!("CARGO_BIN_EXE_rackboot"),
            &[
                "media",
                "--server",
                &format!("http://{server}"),
                "--out",
                out.to_str().unwrap(),
                "--format",
                format,
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let fetched = Instant::now();
    loop {
        let o = run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "curl",
                "-sf",
                "-m",
                "10",
                "-o",
                served.to_str().unwrap(),
                &format!("http://{server}/boot.iso"),
            ],
        );
        if o.status.success() {
            break;
        }
        assert!(
            fetched.elapsed() < Duration::from_secs(30),
            "serve --media did not serve /boot.iso"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let uefi = |name: &str| {
        let vm = d.join(name);
        std::fs::create_dir_all(&vm).unwrap();
        let (code, vars) = ovmf(&vm);
        pflash(&code, &vars)
    };
    let cd = |path: &Path| {
        vec![
            "-drive".to_owned(),
            format!("file={},media=cdrom,readonly=on,if=ide", path.display()),
        ]
    };
    let disk = |path: &Path| {
        vec![
            "-drive".to_owned(),
            format!("file={},format=raw,if=virtio,snapshot=on", path.display()),
        ]
    };
    let bios_cd = [cd(&iso), vec!["-boot".into(), "d".into()]].concat();
    let uefi_disk = [uefi("uefi-disk"), disk(&img)].concat();
    let uefi_cd = [uefi("uefi-cd"), cd(&served)].concat();
    let rounds = [
        vec![
            ("tap0", "52:54:00:81:00:31", "bios-cd", bios_cd),
            ("tap1", "52:54:00:81:00:32", "uefi-disk", uefi_disk),
        ],
        vec![("tap2", "52:54:00:81:00:33", "uefi-cd", uefi_cd)],
    ];
    for machines in rounds {
        let started = Instant::now();
        let vms: Vec<(Kill, PathBuf, &str, &str)> = machines
            .iter()
            .map(|(tap, mac, name, firmware)| {
                let serial = d.join(format!("{name}.serial"));
                // No NIC option ROM: the media, not PXE, starts the network boot.
                let nic = format!("virtio-net-pci,netdev=n0,mac={mac},romfile=");
                (qemu(&ns, tap, &serial, firmware, &nic), serial, *mac, *name)
            })
            .collect();
        for (_, serial, mac, name) in &vms {
            let answers = format!("/config?mac={}", mac.replace(':', "-"));
            let (text, console) = wait_for_preseed(&log, serial, &answers, started);
            assert!(
                console.contains("Linux version")
                    && console.contains(&format!("url=http://{server}{answers}")),
                "{name}: the installer's kernel did not boot with its profile's command line:\n{console}"
            );
            let page = if name.starts_with("bios") {
                "/boot.ipxe"
            } else {
                "/boot.grub"
            };
            assert!(
                text.lines().any(|l| l.contains(&format!(
                    "target={page}?mac={}",
                    if page == "/boot.ipxe" {
                        mac.replace(':', "-")
                    } else {
                        (*mac).to_owned()
                    }
                )) && l.contains("status=200")),
                "{name}: its page {page} was not fetched for its MAC:\n{text}"
            );
        }
    }
}

#[test]
fn an_arm64_uefi_machine_of_a_grub_profile_boots_shim_grub_and_the_arm64_installer() {
    // AAVMF (EDK2 for arm64) PXE asks as architecture 11; its grub profile
    // (arch = "arm64") gets arm64's shim and grub from the installer's arm64
    // netboot tree, then the arm64 kernel and initrd, and the installer
    // fetches its preseed. Secure Boot is not enforced here: Debian has no
    // Microsoft-keyed variable store for AAVMF.
    let _turn = crate::support::heavy();
    let mut net = Net::new("qa");
    let server = "10.81.0.1";
    let ns = boot_network(&mut net, server, 1);
    let dir = TempDir::new("qa");
    let log = dir.0.join("rackboot.log");
    let di = "debian-installer-12-netboot-arm64";
    let tree = package_file(di, "/text/debian-installer/arm64/linux");
    let tree = tree.parent().unwrap();
    let boot = format!(
        "[[mount]]\npath = \"/arm64\"\ndir = \"{}\"\n\
         [[profile]]\nname = \"arm\"\nloader = \"grub\"\nkernel = \"/arm64/linux\"\n\
         initrd = [\"/arm64/initrd.gz\"]\n\
         cmdline = \"auto=true priority=critical url=http://{server}/arm64.cfg console=ttyAMA0\"\n\
         [profile.match]\narch = [\"arm64\"]\n",
        tree.display()
    );
    std::fs::write(
        dir.0.join("arm64.cfg"),
        "d-i debian-installer/locale string en_US.UTF-8\n",
    )
    .unwrap();
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(dir.0.join("arm64.cfg"), root.join("arm64.cfg")).unwrap();
    let args = ["--root", root.to_str().unwrap()];
    let _rackboot = serve(&ns, server, &dir.0, &boot, &args, &log);
    let vars = dir.0.join("vars.fd");
    std::fs::copy(package_file("qemu-efi-aarch64", "/AAVMF_VARS.fd"), &vars).unwrap();
    let code = package_file("qemu-efi-aarch64", "/AAVMF_CODE.fd");
    let firmware = [
        vec!["-machine".to_owned(), "virt".to_owned()],
        vec!["-cpu".to_owned(), "max".to_owned()],
        pflash(&code, &vars),
    ]
    .concat();
    let serial = dir.0.join("arm64.serial");
    let mac = "52:54:00:81:00:41";
    let _vm = qemu_system(
        ("qemu-system-aarch64", "qemu-system-arm qemu-efi-aarch64"),
        &ns,
        "tap0",
        &serial,
        &firmware,
        &format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
    );
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let console =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if text.lines().any(|l| {
            l.contains("target=/arm64.cfg")
                && l.contains("status=200")
                && l.contains("debian-installer")
        }) {
            assert!(
                console.contains("Linux version") && console.contains("-arm64 "),
                "the arm64 kernel did not say it booted:\n{console}"
            );
            for file in [
                "/shimaa64.efi",
                "/grubaa64.efi",
                // arm64's signed grub reads its built-in prefix, not beside shim.
                "/debian-installer/arm64/grub/grub.cfg",
                &format!("/boot.grub?mac={mac}&arch=arm64&platform=efi"),
                "/arm64/linux",
                "/arm64/initrd.gz",
            ] {
                assert!(
                    text.lines().any(|l| l.contains("proto=tftp")
                        && l.contains(&format!("file={file}"))
                        && l.contains("result=done")),
                    "{file} was not served over TFTP:\n{text}"
                );
            }
            return;
        }
        assert!(
            started.elapsed() < ARM64_LIMIT,
            "no preseed fetched in {ARM64_LIMIT:?}.\nrackboot log:\n{text}\nserial console (tail):\n{}",
            console.chars().rev().take(3000).collect::<String>().chars().rev().collect::<String>()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// arm64 under TCG is slower than x86 on x86.
const ARM64_LIMIT: Duration = Duration::from_secs(600);

/// One OVMF machine (`mac`; `rom` after the NIC's options) on an
/// IPv6-only link served by rackboot, booted to its preseed: its boot entry
/// `uri` when given (HTTP boot), else the firmware's own network entries.
/// rackboot's log and the serial console.
fn boot_ipv6_only(tag: &str, mac: &str, rom: &str, uri: Option<&str>) -> (String, String) {
    let mut net = Net::new(tag);
    let ns = net.ns("q");
    sh(&format!(
        "ip -n {ns} link add br0 type bridge && ip -n {ns} addr add fd00:81::1/64 dev br0 nodad && \
         ip -n {ns} link set br0 up && ip -n {ns} tuntap add dev tap0 mode tap && \
         ip -n {ns} link set tap0 master br0 && ip -n {ns} link set tap0 up"
    ));
    let dir = TempDir::new(tag);
    let log = dir.0.join("rackboot.log");
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        format!(
            "[dhcp]\ninterface = \"br0\"\nlease_file = \"{}/leases\"\n\
             [[dhcp6.subnet]]\nranges = [\"fd00:81::100-fd00:81::1ff\"]\ndns = [\"fd00:81::1\"]\n",
            dir.0.display()
        ),
    )
    .unwrap();
    let (kernel, initrd) = installer();
    // The installer stops at "no default route" on a link with no router
    // unless told that is fine.
    let cmdline = "console=ttyS0,115200 netcfg/no_default_route=true";
    let child = rackboot_in(Some(&ns))
        .args(["serve", "--config", config.to_str().unwrap()])
        .arg("--kernel")
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--cmdline", cmdline])
        .arg("--boot-state-file")
        .arg(dir.0.join("machines.state"))
        .arg("--admin-socket")
        .arg(dir.0.join("admin.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _rackboot = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("dhcp6 listening")
    {
        assert!(
            Instant::now() < deadline,
            "rackboot did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, vars) = ovmf(&dir.0);
    if let Some(uri) = uri {
        set_boot_uri(&vars, uri);
    }
    let serial = dir.0.join("serial.log");
    let started = Instant::now();
    let nic = format!("virtio-net-pci,netdev=n0,mac={mac}{rom}");
    let _vm = qemu(&ns, "tap0", &serial, &pflash(&code, &vars), &nic);
    let answers = format!("/config?mac={}", mac.replace(':', "-"));
    wait_for_preseed(&log, &serial, &answers, started)
}

#[test]
fn ovmf_edk2_pxe_on_an_ipv6_only_link_tftps_snponly_efi_and_boots_the_installer() {
    // No IPv4 anywhere, and no iPXE ROM on the NIC: EDK2's own network boot
    // entries run in order. PXE over IPv4 finds no DHCP and gives up; PXE
    // over IPv6 takes its address by DHCPv6 and gets option 59, a TFTP URL
    // (tftp://[fd00:81::1]/snponly.efi), and fetches it over TFTP on IPv6;
    // iPXE then goes on over IPv6 as in the HTTP boot test.
    let _turn = crate::support::heavy();
    let (text, console) = boot_ipv6_only("q7", "52:54:00:81:00:67", ",romfile=", None);
    assert!(
        text.lines().any(|l| l.contains("proto=tftp")
            && l.contains("file=/snponly.efi result=done")
            && l.contains("peer=[f")),
        "EDK2 did not fetch snponly.efi over TFTP on IPv6:\n{text}"
    );
    for target in ["/boot.ipxe", "/boot/linux", "/boot/initrd.gz"] {
        assert!(
            text.lines().any(|l| l.contains(&format!("target={target}"))
                && l.contains("status=200")
                && l.contains("iPXE")
                && l.contains("peer=[f")),
            "iPXE did not fetch {target} over IPv6:\n{text}"
        );
    }
    assert!(!text.contains("dhcp ACK"), "{text}");
    assert!(
        console.contains("Start PXE over IPv6")
            && console.contains("Configuring the network with DHCPv6"),
        "the console does not show PXE over IPv6 and the installer's DHCPv6:\n{console}"
    );
}

#[test]
fn ovmf_http_boot_on_an_ipv6_only_link_boots_the_installer_to_its_preseed_over_ipv6() {
    // No IPv4 anywhere: the bridge has only fd00:81::1/64. EDK2's HTTP boot
    // (a URI boot entry) tries IPv4 first and times out, then takes an
    // address by DHCPv6 and GETs ipxe.efi over IPv6; iPXE configures IPv6
    // from the router advertisement's M flag and DHCPv6 (option 59: its boot
    // script), and fetches the script, kernel and initrd over IPv6; the
    // installer configures its network with DHCPv6 and fetches its preseed.
    let _turn = crate::support::heavy();
    let (text, console) = boot_ipv6_only(
        "q6",
        "52:54:00:81:00:66",
        ",romfile=",
        Some("http://[fd00:81::1]/ipxe.efi"),
    );
    let served = |target: &str, agent: &str| {
        text.lines().any(|l| {
            l.contains(&format!("target={target}"))
                && l.contains("status=200")
                && l.contains(agent)
                && l.contains("peer=[f")
        })
    };
    assert!(
        served("/ipxe.efi", "UefiHttpBoot"),
        "EDK2 did not fetch ipxe.efi over IPv6:\n{text}"
    );
    for target in ["/boot.ipxe", "/boot/linux", "/boot/initrd.gz"] {
        assert!(
            served(target, "iPXE"),
            "iPXE did not fetch {target} over IPv6:\n{text}"
        );
    }
    // Firmware, iPXE and the installer each took a DHCPv6 binding; nothing
    // spoke DHCPv4.
    let bound = text.lines().filter(|l| l.contains("dhcp6 REPLY")).count();
    assert!(bound >= 3, "{bound} DHCPv6 bindings:\n{text}");
    assert!(!text.contains("dhcp ACK"), "{text}");
    assert!(
        console.contains("Start HTTP Boot over IPv6")
            && console.contains("Configuring the network with DHCPv6"),
        "the console does not show IPv6 boot and the installer's DHCPv6:\n{console}"
    );
}
