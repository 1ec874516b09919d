use crate::fleet::testkit::{answer, machine, Play};
use crate::fleet::timeline::State;
use crate::fleet::{PageKind, Proto};

/// The diagnosis of `mac`'s boot `s` seconds in: its code, summary and evidence.
fn at(p: &Play, mac: crate::fleet::Mac, s: f64) -> Option<(&'static str, String, Vec<String>)> {
    let (state, d) = p.boot(mac).state(&p.fleet.timers, p.at(s));
    assert_eq!(state == State::Stuck, d.is_some());
    d.map(|d| (d.code, d.summary, d.evidence))
}

#[test]
fn a_dropped_nbp_request_is_nbp_not_requested_after_the_firmwares_wait() {
    let mut p = Play::new();
    let (mac, ip) = machine(1);
    p.edk2(mac, ip, 0, true);
    // EDK2 asks at once; before its wait is over it is only booting.
    assert_eq!(at(&p, mac, 10.0), None);
    let (code, summary, evidence) = at(&p, mac, 20.0).unwrap();
    assert_eq!(code, "nbp-not-requested");
    assert!(summary.contains("ipxe.efi"), "{summary}");
    assert!(evidence[0].contains("next server 10.0.0.1"), "{evidence:?}");
}

#[test]
fn no_boot_file_is_said_when_dhcp_named_none() {
    let mut p = Play::new();
    let (mac, ip) = machine(2);
    p.lease(0.0, mac, "edk2", ip, "", true);
    assert_eq!(at(&p, mac, 20.0).unwrap().0, "no-boot-file");
}

#[test]
fn a_silent_ipxe_after_its_nbp_is_no_ipxe_dhcp() {
    let mut p = Play::new();
    let (mac, ip) = machine(3);
    p.edk2(mac, ip, 1, true);
    assert_eq!(at(&p, mac, 20.0), None);
    let (code, summary, evidence) = at(&p, mac, 40.0).unwrap();
    assert_eq!(code, "no-ipxe-dhcp");
    assert!(summary.contains("STP"), "{summary}");
    assert!(evidence[0].contains("850528 bytes"), "{evidence:?}");
}

#[test]
fn a_transfer_stalled_at_the_same_block_on_every_try_is_tftp_stalled() {
    let mut p = Play::new();
    let (mac, ip) = machine(4);
    p.edk2(mac, ip, 0, true);
    p.fetch(
        4.0,
        30.0,
        ip,
        Proto::Tftp,
        "/ipxe.efi",
        "timeout",
        0,
        (37, 580),
    );
    p.fetch(
        31.0,
        57.0,
        ip,
        Proto::Tftp,
        "/ipxe.efi",
        "timeout",
        0,
        (37, 580),
    );
    // The client may retry at once: not yet.
    assert_eq!(at(&p, mac, 58.0), None);
    let (code, summary, evidence) = at(&p, mac, 61.0).unwrap();
    assert_eq!(code, "tftp-stalled");
    assert!(summary.contains("block 38 on every try"), "{summary}");
    assert!(summary.contains("1500 bytes"), "{summary}");
    assert_eq!(evidence.len(), 2);
    assert!(evidence[1].contains("37 of 580 blocks"), "{evidence:?}");
}

#[test]
fn a_transfer_no_block_of_which_arrived_blames_the_transfer_port() {
    let mut p = Play::new();
    let (mac, ip) = machine(5);
    p.edk2(mac, ip, 0, true);
    p.fetch(
        4.0,
        30.0,
        ip,
        Proto::Tftp,
        "/ipxe.efi",
        "timeout",
        0,
        (0, 580),
    );
    let (code, summary, _) = at(&p, mac, 40.0).unwrap();
    assert_eq!(code, "tftp-stalled");
    assert!(summary.contains("transfer port"), "{summary}");
}

#[test]
fn a_script_that_boots_nothing_is_a_script_error_showing_the_script() {
    let mut p = Play::new();
    let (mac, ip) = machine(6);
    p.edk2(mac, ip, 2, true);
    let broken = "#!ipxe\necho no profile takes this machine\nexit\n";
    p.page(23.0, mac, ip, PageKind::Script, Some(broken), None);
    p.get(
        23.0,
        ip,
        "/boot.ipxe?mac=52-54-00-12-34-06",
        broken.len() as u64,
    );
    assert_eq!(at(&p, mac, 40.0), None);
    let (code, summary, evidence) = at(&p, mac, 60.0).unwrap();
    assert_eq!(code, "script-error");
    assert!(summary.contains("boots nothing"), "{summary}");
    assert!(
        evidence
            .iter()
            .any(|l| l.contains("echo no profile takes this machine")),
        "{evidence:?}"
    );
}

#[test]
fn a_failed_template_is_a_script_error_at_once_with_its_reason() {
    let mut p = Play::new();
    let (mac, ip) = machine(7);
    p.edk2(mac, ip, 2, true);
    let body =
        "#!ipxe\necho rackboot: profile broken failed for this machine: see the server log\nexit\n";
    p.page(
        23.0,
        mac,
        ip,
        PageKind::Script,
        Some(body),
        Some("undefined value `vars.disk`"),
    );
    p.get(23.0, ip, "/boot.ipxe?mac=52-54-00-12-34-07", 10);
    let (code, _, evidence) = at(&p, mac, 23.5).unwrap();
    assert_eq!(code, "script-error");
    assert!(
        evidence.iter().any(|l| l.contains("vars.disk")),
        "{evidence:?}"
    );
}

#[test]
fn a_missing_kernel_is_file_missing() {
    let mut p = Play::new();
    let (mac, ip) = machine(8);
    p.edk2(mac, ip, 3, true);
    p.fetch(23.3, 23.4, ip, Proto::Http, "/d-i/linux", "404", 0, (0, 0));
    let (code, summary, _) = at(&p, mac, 30.0).unwrap();
    assert_eq!(code, "file-missing");
    assert!(summary.contains("/d-i/linux"), "{summary}");
}

#[test]
fn a_kernel_with_no_installer_dhcp_after_it_is_no_installer_dhcp() {
    let mut p = Play::new();
    let (mac, ip) = machine(9);
    p.edk2(mac, ip, 5, true);
    assert_eq!(at(&p, mac, 200.0), None);
    let (code, _, evidence) = at(&p, mac, 400.0).unwrap();
    assert_eq!(code, "no-installer-dhcp");
    assert_eq!(evidence.len(), 2, "{evidence:?}");
}

#[test]
fn an_installer_without_option_6_is_no_answers_naming_the_dns_option() {
    let mut p = Play::new();
    let (mac, ip) = machine(10);
    p.edk2(mac, ip, 6, false);
    let (code, summary, evidence) = at(&p, mac, 300.0).unwrap();
    assert_eq!(code, "no-answers");
    assert!(summary.contains("option 6"), "{summary}");
    assert!(
        evidence.iter().any(|l| l.contains("no DNS server")),
        "{evidence:?}"
    );
    // With option 6 the cause named is the URL.
    let (mac, ip) = machine(11);
    p.edk2(mac, ip, 6, true);
    let (_, summary, _) = at(&p, mac, 300.0).unwrap();
    assert!(summary.contains("url="), "{summary}");
}

#[test]
fn an_unanswered_discover_says_why_and_an_untaken_offer_says_so() {
    let mut p = Play::new();
    let (mac, _) = machine(12);
    p.dhcp(0.0, mac, "edk2-discover", Err("no_free_address"));
    let (code, summary, _) = at(&p, mac, 20.0).unwrap();
    assert_eq!(code, "dhcp-unanswered");
    assert!(summary.contains("no_free_address"), "{summary}");
    let (mac, ip) = machine(13);
    p.dhcp(
        0.0,
        mac,
        "edk2-discover",
        Ok(answer(2, ip, "ipxe.efi", true)),
    );
    assert_eq!(at(&p, mac, 20.0).unwrap().0, "offer-not-taken");
}

#[test]
fn a_nak_is_said_at_once() {
    let mut p = Play::new();
    let (mac, ip) = machine(14);
    p.dhcp(
        0.0,
        mac,
        "edk2-request",
        Ok(answer(6, std::net::Ipv4Addr::UNSPECIFIED, "", false)),
    );
    let _ = ip;
    assert_eq!(at(&p, mac, 4.0).unwrap().0, "dhcp-nak");
}

#[test]
fn a_booted_machine_is_never_stuck() {
    let mut p = Play::new();
    let (mac, ip) = machine(15);
    p.edk2(mac, ip, 7, true);
    assert_eq!(at(&p, mac, 100_000.0), None);
}
