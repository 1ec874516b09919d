use super::*;
use crate::fleet::testkit::{machine, Play, SCRIPT, SCRIPT_URL};

fn phases(b: &Boot) -> Vec<&'static str> {
    b.steps
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.phase.name())
        .collect()
}

#[test]
fn an_edk2_boot_is_joined_across_dhcp_tftp_and_http_in_order() {
    let mut p = Play::new();
    let (mac, ip) = machine(1);
    p.edk2(mac, ip, 7, true);
    let b = p.boot(mac);
    assert_eq!(
        phases(b),
        [
            "dhcp",
            "nbp",
            "ipxe-dhcp",
            "script",
            "kernel",
            "initrd",
            "installer-dhcp",
            "answers"
        ]
    );
    // The size probe is kept, as a note, not as the NBP.
    assert_eq!(b.steps[1].note.as_deref(), Some("size probe"));
    assert_eq!(b.given.nbp, "ipxe.efi");
    assert_eq!(b.given.script, SCRIPT_URL);
    assert_eq!(b.script.as_deref(), Some(SCRIPT));
    assert_eq!(b.firmware, "uefi-pxe arch 7");
    assert_eq!(b.phase(), Phase::Answers);
    let (state, d) = b.state(&p.fleet.timers, p.at(1000.0));
    assert_eq!((state, d), (State::Booted, None));
    // Each DHCP step is one exchange: DISCOVER and REQUEST, no resends.
    let dhcp = b.last_of(Phase::Dhcp).unwrap();
    assert_eq!(dhcp.what, "discover→offer, request→ack");
    assert_eq!(dhcp.resends, 0);
    assert_eq!(p.fleet.machine(&mac).unwrap().ip, Some(IpAddr::V4(ip)));
}

#[test]
fn an_ipxe_rom_boot_starts_with_ipxes_own_dhcp_and_has_no_nbp() {
    let mut p = Play::new();
    let (mac, ip) = machine(2);
    p.lease(0.0, mac, "ipxe-bios", ip, SCRIPT_URL, true);
    p.get(13.0, ip, "/boot.ipxe", 120);
    p.get(13.2, ip, "/d-i/linux", 100);
    let b = p.boot(mac);
    assert_eq!(phases(b), ["dhcp", "script", "kernel"]);
    assert_eq!(b.firmware, "ipxe-rom (bios) arch 0");
    assert!(b.given.nbp.is_empty());
}

#[test]
fn a_retransmitted_discover_is_a_resend_of_the_same_step() {
    let mut p = Play::new();
    let (mac, ip) = machine(3);
    let offer = crate::fleet::testkit::answer(2, ip, "ipxe.efi", true);
    p.dhcp(0.0, mac, "edk2-discover", Ok(offer.clone()));
    p.dhcp(4.0, mac, "edk2-discover", Ok(offer));
    p.dhcp(
        8.0,
        mac,
        "edk2-request",
        Ok(crate::fleet::testkit::answer(5, ip, "ipxe.efi", true)),
    );
    let b = p.boot(mac);
    assert_eq!(b.steps.len(), 1);
    assert_eq!(b.steps[0].resends, 1);
    assert_eq!(b.steps[0].end, Some(p.at(8.0)));
}

#[test]
fn a_power_on_after_a_boot_starts_a_new_one_and_only_the_last_n_are_kept() {
    let mut p = Play::with(Limits {
        boots: 2,
        ..Limits::default()
    });
    let (mac, ip) = machine(4);
    for k in 0..3 {
        let s = f64::from(k) * 1000.0;
        p.lease(s, mac, "edk2", ip, "ipxe.efi", true);
        p.fetch(
            s + 4.0,
            s + 5.0,
            ip,
            crate::fleet::Proto::Tftp,
            "/ipxe.efi",
            "done",
            10,
            (1, 1),
        );
    }
    let m = p.fleet.machine(&mac).unwrap();
    assert_eq!(m.boots.len(), 2);
    assert_eq!(m.boots[0].started, p.at(1000.0));
    assert_eq!(m.boots[1].started, p.at(2000.0));
    assert!(m.boots.iter().all(|b| b.phase() == Phase::Nbp));
}

#[test]
fn past_its_limit_the_fleet_forgets_the_machines_seen_least_recently() {
    let mut p = Play::with(Limits {
        machines: 32,
        ..Limits::default()
    });
    for n in 0..40u8 {
        let (mac, ip) = machine(n);
        p.lease(f64::from(n), mac, "edk2", ip, "ipxe.efi", true);
    }
    assert!(p.fleet.len() <= 32, "{}", p.fleet.len());
    assert_eq!(p.fleet.forgotten as usize + p.fleet.len(), 40);
    // The newest are kept, the oldest gone.
    assert!(p.fleet.machine(&machine(39).0).is_some());
    assert!(p.fleet.machine(&machine(0).0).is_none());
}

#[test]
fn a_transfer_from_an_address_no_machine_holds_is_counted_unjoined() {
    let mut p = Play::new();
    p.get(
        1.0,
        std::net::Ipv4Addr::new(10, 0, 0, 250),
        "/boot.ipxe",
        10,
    );
    assert_eq!(p.fleet.unjoined, 1);
    assert!(p.fleet.is_empty());
    assert_eq!(p.fleet.unjoined_recent[0].path, "/boot.ipxe");
}

#[test]
fn a_running_transfer_shows_and_its_end_completes_the_same_step() {
    let mut p = Play::new();
    let (mac, ip) = machine(5);
    p.edk2(mac, ip, 3, true);
    p.start(23.3, ip, crate::fleet::Proto::Http, "/d-i/linux");
    let b = p.boot(mac);
    let running = b.steps.last().unwrap();
    assert_eq!((running.phase, running.end), (Phase::Kernel, None));
    // Running: not stuck, however long it takes.
    assert_eq!(b.state(&p.fleet.timers, p.at(500.0)).0, State::Booting);
    p.get(23.3, ip, "/d-i/linux", 100);
    let b = p.boot(mac);
    assert_eq!(
        b.steps.iter().filter(|s| s.phase == Phase::Kernel).count(),
        1
    );
    assert!(b.completed(Phase::Kernel));
}

#[test]
fn a_rendered_script_joins_its_machine_by_the_mac_it_named() {
    let mut p = Play::new();
    let (mac, ip) = machine(6);
    // DHCP from another server: the script's ?mac= is the first sight.
    p.page(
        1.0,
        mac,
        ip,
        crate::fleet::PageKind::Script,
        Some(SCRIPT),
        None,
    );
    p.get(1.0, ip, "/boot.ipxe?mac=52-54-00-12-34-06", 200);
    p.get(1.5, ip, "/d-i/linux", 100);
    p.get(2.0, ip, "/d-i/initrd.gz", 100);
    let b = p.boot(mac);
    assert_eq!(phases(b), ["script", "kernel", "initrd"]);
    assert_eq!(b.firmware, "unknown (no DHCP seen)");
}

#[test]
fn files_the_script_does_not_name_are_placed_by_order() {
    let mut p = Play::new();
    let (mac, ip) = machine(7);
    p.lease(
        0.0,
        mac,
        "ipxe-bios",
        ip,
        "http://10.0.0.1/other.ipxe",
        true,
    );
    p.get(1.0, ip, "/other.ipxe", 10);
    p.get(2.0, ip, "/vmlinuz", 10);
    p.get(3.0, ip, "/initrd.img", 10);
    p.get(4.0, ip, "/initrd2.img", 10);
    assert_eq!(
        phases(p.boot(mac)),
        ["dhcp", "script", "kernel", "initrd", "initrd"]
    );
}

#[test]
fn an_installed_systems_dhcp_starts_no_boot() {
    let mut p = Play::new();
    let (mac, ip) = machine(8);
    p.lease(0.0, mac, "d-i", ip, "", true);
    assert!(p.fleet.is_empty());
    // After a boot's answers, the installer renewing is no new step.
    p.edk2(mac, ip, 7, true);
    let n = p.boot(mac).steps.len();
    p.lease(500.0, mac, "d-i", ip, "", true);
    assert_eq!(p.boot(mac).steps.len(), n);
}
