//! Whole boots on a virtual clock: a machine against the real DHCP and TFTP
//! engines and an HTTP responder over the same in-memory files.

use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::*;
use crate::proto::dhcp::{policy, Input, Mode, Outcome};
use crate::proto::tftp::{self as ptftp, accept, Transfer, Transmit, Where};
use crate::store::{Options, Snapshot};
use crate::testutil;
use crate::wire::tftp::data_header;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);

/// The DHCPv6 engine of the boots: the pool on `fd00:77::/64`, the server
/// `fd00:77::1`, the default boot rules.
fn dhcp6_engine() -> crate::proto::dhcp6::Engine {
    use crate::proto::dhcp6::{duid_ll, Engine, Settings, Subnet};
    let settings = Settings {
        duid: duid_ll([0x52, 0x54, 0, 0, 0, 1]),
        subnets: vec![Subnet {
            prefix: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0),
            len: 64,
            ranges: vec![(
                Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x100),
                Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x1ff),
            )],
            preferred: 3000,
            valid: 3600,
            dns: Vec::new(),
            domains: Vec::new(),
        }],
        ..Settings::default()
    };
    Engine::new(
        settings,
        crate::lease::Table6::default(),
        testutil::t0(),
        1_800_000_000,
    )
}
const KERNEL: usize = 300_000;
const INITRD: usize = 700_000;

fn files(script: &str) -> Snapshot {
    files_with(script, &[])
}

/// The iPXE set (`script` as `/boot.ipxe`) and `more` files.
fn files_with(script: &str, more: &[(&str, &[u8])]) -> Snapshot {
    let nbp = vec![0x11u8; 850_528];
    let kernel = vec![0x22u8; KERNEL];
    let initrd = vec![0x33u8; INITRD];
    let set = [
        ("/ipxe.efi", &nbp[..]),
        ("/boot.ipxe", script.as_bytes()),
        ("/linux", &kernel[..]),
        ("/initrd.gz", &initrd[..]),
        ("/preseed.cfg", PRESEED),
    ];
    Snapshot::from_memory(
        set.iter()
            .chain(more)
            .map(|&(u, b)| (u, b, std::time::UNIX_EPOCH)),
        &Options {
            max_bytes: u64::MAX,
            mlock: false,
        },
    )
    .unwrap()
}

const PRESEED: &[u8] = b"d-i debian-installer/locale string en_US.UTF-8\n";

/// A minimal HTTP responder over `files`: the whole file or 404.
fn respond(files: &Snapshot, request: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let path = text.split(' ').nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match files.get(path) {
        Some(f) => {
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", f.len()).into_bytes();
            r.extend_from_slice(f.bytes());
            r
        }
        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
}

/// Boots `m` to its end against the servers; its event.
fn boot(t0: Instant, m: &mut Machine, files: &Snapshot) -> Event {
    let mut dhcp = testutil::dhcp_engine(Mode::Server, policy::defaults());
    let mut dhcp6 = dhcp6_engine();
    let v6 = m.family() == Family::V6;
    let settings = ptftp::Settings::default();
    let mut transfers: Vec<(u16, Transfer)> = Vec::new();
    let (mut out, mut rx, mut scratch) = ([0u8; 1500], [0u8; 1500], [0u8; 1500]);
    let mut now = t0;
    for _ in 0..200_000 {
        loop {
            let mut moved = false;
            while let Some(send) = m.poll_transmit(now, &mut out) {
                moved = true;
                match send {
                    Send::Dhcp { len } => {
                        let input = Input {
                            bytes: &out[..len],
                            server: SERVER,
                            port: 67,
                            peer: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                        };
                        if let Ok(Outcome::Reply(r)) = dhcp.handle(now, input, &mut rx) {
                            m.handle_dhcp(now, &rx[..r.len]);
                        }
                    }
                    Send::Dhcp6 { len } => {
                        let input = crate::proto::dhcp6::Input {
                            bytes: &out[..len],
                            peer: SocketAddrV6::new(
                                crate::sim::dhcp6::link_local(m.mac),
                                546,
                                0,
                                2,
                            ),
                            local: SERVER6,
                        };
                        if let Ok(r) = dhcp6.handle(now, input, &mut rx) {
                            m.handle_dhcp(now, &rx[..r.len]);
                        }
                    }
                    Send::Tftp { server, to, len } => {
                        let want: IpAddr = if v6 { SERVER6.into() } else { SERVER.into() };
                        assert_eq!(server, want);
                        match to {
                            To::Server => {
                                let tid = 2000 + transfers.len() as u16;
                                match accept(&out[..len], files, &settings, Where::default()) {
                                    Ok(a) => {
                                        transfers.push((tid, Transfer::new(now, a, &settings)));
                                    }
                                    // A missing file: the server's ERROR.
                                    Err(e) => {
                                        let (code, text) = e.reply().unwrap();
                                        let n = crate::wire::tftp::write_error(
                                            &mut scratch,
                                            code,
                                            text,
                                        )
                                        .unwrap();
                                        m.handle_tftp(now, tid, &scratch[..n]);
                                    }
                                }
                            }
                            To::Tid(tid) => {
                                if let Some((_, t)) =
                                    transfers.iter_mut().find(|(id, _)| *id == tid)
                                {
                                    let _ = t.handle(now, &out[..len]);
                                }
                            }
                        }
                    }
                    Send::Http { target, len } => {
                        let want = if v6 { "[fd00:77::1]" } else { "10.77.0.1" };
                        assert_eq!(target.host, want);
                        let response = respond(files, &out[..len]);
                        let used = m.handle_http(now, &response);
                        assert_eq!(used, response.len());
                    }
                }
            }
            for (tid, t) in &mut transfers {
                while let Some(tx) = t.poll_transmit(now, &mut scratch) {
                    moved = true;
                    match tx {
                        Transmit::Control { len } => m.handle_tftp(now, *tid, &scratch[..len]),
                        Transmit::Window { first, count, .. } => {
                            for k in first..first + u64::from(count) {
                                let mut data = data_header(k as u16).to_vec();
                                data.extend_from_slice(&t.payload()[t.block(k)]);
                                m.handle_tftp(now, *tid, &data);
                            }
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        if let Some(e) = m.poll_event() {
            return e;
        }
        now = m.poll_timeout().expect("a waiting machine has a timer");
        m.handle_timeout(now);
    }
    panic!("the machine never ended");
}

fn mac(last: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0x77, 0, last]
}

const SCRIPT: &str = "#!ipxe\nkernel linux initrd=initrd.gz auto=true url=http://10.77.0.1/preseed.cfg\ninitrd initrd.gz\nboot\n";

#[test]
fn an_edk2_machine_boots_through_every_phase_to_its_answer_file() {
    let files = files(SCRIPT);
    let t0 = testutil::t0();
    let mut m = Machine::new(
        t0,
        Identity::Edk2Pxe,
        mac(1),
        [9; 16],
        0x100,
        Phase::Answers,
    );
    assert_eq!(boot(t0, &mut m, &files), Event::Booted);
    let phases: Vec<Phase> = m.ended.iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Dhcp,
            Phase::Nbp,
            Phase::IpxeDhcp,
            Phase::Script,
            Phase::Kernel,
            Phase::Initrd,
            Phase::InstallerDhcp,
            Phase::Answers
        ]
    );
    // EDK2 collects offers for 4 s; the rest is instant on a perfect network.
    assert_eq!(m.ended[0].at, Duration::from_secs(4));
    let preseed = 47;
    assert_eq!(
        m.bytes,
        (850_528 + SCRIPT.len() + KERNEL + INITRD + preseed) as u64
    );
}

#[test]
fn ipv6_machines_boot_by_dhcpv6_and_option_59s_urls() {
    // Host-absolute paths: iPXE resolves them against the script's URL, so
    // the script serves both families.
    let script = "#!ipxe\nkernel /linux initrd=initrd.gz auto=true url=/preseed.cfg\n\
                  initrd /initrd.gz\nboot\n";
    let files = files(script);
    let t0 = testutil::t0();
    for (k, identity) in [Identity::Edk2Pxe, Identity::IpxeBios, Identity::UefiHttp]
        .into_iter()
        .enumerate()
    {
        let mut m =
            Machine::new(t0, identity, mac(20 + k as u8), [9; 16], 7, Phase::Answers).on_ipv6();
        assert_eq!(boot(t0, &mut m, &files), Event::Booted, "{identity:?}");
        let phases: Vec<Phase> = m.ended.iter().map(|e| e.phase).collect();
        assert_eq!(phases.first(), Some(&Phase::Dhcp));
        assert_eq!(phases.last(), Some(&Phase::Answers));
        let IpAddr::V6(ip) = m.address().unwrap() else {
            panic!("an IPv4 lease")
        };
        assert_eq!(ip.segments()[..2], [0xfd00, 0x77], "{ip}");
        // EDK2 fetched ipxe.efi by TFTP, the others by HTTP: each phase
        // counted its bytes.
        assert!(m.bytes > (KERNEL + INITRD) as u64);
    }
}

#[test]
fn an_ipxe_rom_goes_straight_to_the_script_and_until_stops_early() {
    let files = files(SCRIPT);
    let t0 = testutil::t0();
    let mut m = Machine::new(
        t0,
        Identity::IpxeBios,
        mac(2),
        [9; 16],
        0x200,
        Phase::Kernel,
    );
    assert_eq!(boot(t0, &mut m, &files), Event::Booted);
    let phases: Vec<Phase> = m.ended.iter().map(|e| e.phase).collect();
    assert_eq!(phases, [Phase::Dhcp, Phase::Script, Phase::Kernel]);
}

#[test]
fn a_missing_kernel_fails_in_its_phase_with_the_status() {
    let files = files("#!ipxe\nkernel missing-linux\nboot\n");
    let t0 = testutil::t0();
    let mut m = Machine::new(
        t0,
        Identity::UefiHttp,
        mac(3),
        [9; 16],
        0x300,
        Phase::Answers,
    );
    assert_eq!(
        boot(t0, &mut m, &files),
        Event::Failed {
            phase: Phase::Kernel,
            reason: "HTTP 404".into()
        }
    );
    assert_eq!(m.ended.len(), 4, "dhcp, nbp over HTTP, ipxe-dhcp, script");
}

#[test]
fn a_grub_machine_follows_shim_and_grub_over_tftp_to_its_answer_file() {
    // shim (the DHCP answer's file) asks for its probes, missing here, then
    // grub at the root; grub reads its lists (missing) and grub.cfg under
    // the prefix beside shim, follows `configfile`, and loads the kernel and
    // initrd from its $root over TFTP.
    let grubx64 = vec![0x44u8; 90_000];
    let stub = "configfile \"($root)/grub/machine-${net_default_mac}.cfg\"\n";
    let page = "menuentry 'x' {\n  linux ($root)/linux auto=true 'url=http://10.77.0.1/preseed.cfg'\n  initrd /initrd.gz\n}\n";
    let files = files_with(
        SCRIPT,
        &[
            ("/grubx64.efi", &grubx64[..]),
            ("/grub/grub.cfg", stub.as_bytes()),
            ("/grub/machine-52:54:00:77:00:04.cfg", page.as_bytes()),
        ],
    );
    let t0 = testutil::t0();
    let mut m = Machine::new(t0, Identity::Grub, mac(4), [9; 16], 0x400, Phase::Answers);
    assert_eq!(boot(t0, &mut m, &files), Event::Booted);
    let phases: Vec<Phase> = m.ended.iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Dhcp,
            Phase::Nbp,
            Phase::Script,
            Phase::Kernel,
            Phase::Initrd,
            Phase::InstallerDhcp,
            Phase::Answers
        ]
    );
    assert_eq!(m.ended[1].bytes, (850_528 + 90_000) as u64, "shim and grub");
    assert_eq!(m.ended[2].bytes, (stub.len() + page.len()) as u64);
    assert_eq!(m.ended[3].bytes, KERNEL as u64);
    assert_eq!(m.ended[6].bytes, PRESEED.len() as u64);
}

#[test]
fn a_grub_machine_without_grub_at_the_root_fails_in_nbp() {
    let files = files(SCRIPT);
    let t0 = testutil::t0();
    let mut m = Machine::new(t0, Identity::Grub, mac(5), [9; 16], 0x500, Phase::Answers);
    match boot(t0, &mut m, &files) {
        Event::Failed { phase, reason } => {
            assert_eq!(phase, Phase::Nbp);
            assert!(reason.contains("ERROR"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_failed_firmware_dhcp_starts_the_network_boot_again_when_the_firmware_retries() {
    let t0 = testutil::t0();
    let silent = |retries| {
        let mut m = Machine::new(t0, Identity::IpxeBios, mac(7), [9; 16], 0x700, Phase::Dhcp)
            .with_boot_retries(retries);
        let mut out = [0u8; 1500];
        let (mut now, mut xids) = (t0, Vec::new());
        loop {
            while let Some(Send::Dhcp { len }) = m.poll_transmit(now, &mut out) {
                let p = crate::wire::dhcp::Packet::new_checked(&out[..len]).unwrap();
                xids.push((p.xid(), p.secs()));
            }
            if let Some(e) = m.poll_event() {
                return (e, now - t0, xids);
            }
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
        }
    };
    let (once, took_once, sent_once) = silent(0);
    assert!(
        matches!(
            once,
            Event::Failed {
                phase: Phase::Dhcp,
                ..
            }
        ),
        "{once:?}"
    );
    let (twice, took_twice, sent_twice) = silent(1);
    assert!(matches!(
        twice,
        Event::Failed {
            phase: Phase::Dhcp,
            ..
        }
    ));
    // iPXE's 1+2+4+8 s schedule, then again from the start: a new exchange
    // (a new xid) whose secs counts from 0 again.
    assert_eq!(
        (took_once, took_twice),
        (Duration::from_secs(15), Duration::from_secs(30))
    );
    assert_eq!(sent_twice.len(), 2 * sent_once.len());
    let second = &sent_twice[sent_once.len()];
    assert!(
        second.0 != sent_twice[0].0 && second.1 == 0,
        "{sent_twice:?}"
    );
}

#[test]
fn a_boot_failing_past_dhcp_starts_again_from_dhcp_when_the_firmware_retries() {
    let files = files(SCRIPT);
    let t0 = testutil::t0();
    for retries in [0, 1, 2] {
        let mut m = Machine::new(t0, Identity::Grub, mac(6), [9; 16], 0x600, Phase::Answers)
            .with_boot_retries(retries);
        // No grub at the root: every attempt fails in the NBP phase.
        match boot(t0, &mut m, &files) {
            Event::Failed { phase, .. } => assert_eq!(phase, Phase::Nbp),
            e => panic!("{e:?}"),
        }
        // Only the last attempt's phases are kept; its DHCP counts the
        // boots started again.
        assert_eq!(m.ended.len(), 1, "{:?}", m.ended);
        assert_eq!(m.ended[0].phase, Phase::Dhcp);
        assert_eq!(m.ended[0].retries, retries);
        assert_eq!(m.bytes, 0);
    }
}
