use std::path::Path;

use super::*;

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            read::parse_line(
                l,
                &At {
                    file: "dnsmasq.conf".into(),
                    line: i + 1,
                },
            )
            .unwrap()
        })
        .collect()
}

/// The iPXE chainloading recipe: PXE firmware gets iPXE over TFTP, iPXE (by
/// option 175) gets the HTTP script.
const CHAIN: &str = "
interface=br0
port=0
dhcp-range=10.81.0.100,10.81.0.200,255.255.255.0,12h
dhcp-host=52:54:00:81:00:09,10.81.0.9,node9
dhcp-match=set:ipxe,175 # iPXE sends a 175 option
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:!ipxe,undionly.kpxe
dhcp-boot=tag:efi64,tag:!ipxe,ipxe.efi
dhcp-boot=tag:ipxe,http://10.81.0.1/boot.ipxe
dhcp-option=option:dns-server,0.0.0.0
dhcp-option=tag:efi64,encap:175,190,user
enable-tftp
tftp-root=/srv/tftp
log-dhcp
domain-needed
dhcp-pxe-vendor=PXEClient,Other
";

#[test]
fn the_ipxe_chainloading_recipe_translates_to_a_config_that_validates() {
    let out = translate(&lines(CHAIN), &Host::default());
    let config = crate::config::Config::parse(
        &out.toml.replace("root = \"/srv/tftp\"\n", ""),
        Path::new("generated.toml"),
        &crate::config::Overrides::default(),
    );
    let config = config.unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
    let d = config.dhcp.unwrap();
    assert_eq!(d.interface, "br0");
    assert!(d.settings.options_when_asked);
    assert_eq!(d.settings.subnets[0].lease_secs, 12 * 3600);
    assert!(
        d.settings.subnets[0].dns.is_empty(),
        "port=0: no DNS of its own"
    );
    // Tagged boot lines first, last line first; then untagged.
    let files: Vec<_> = d
        .settings
        .rules
        .iter()
        .filter_map(|r| r.action.as_ref()?.file.clone())
        .collect();
    assert_eq!(
        files,
        ["http://10.81.0.1/boot.ipxe", "ipxe.efi", "undionly.kpxe"]
    );
    // The encapsulated option is one option 175, sub-option 190 = "user".
    assert!(d.settings.options.iter().any(|o| o.code == 175
        && o.value == [190, 4, b'u', b's', b'e', b'r', 255]
        && o.tags == ["efi64"]));
    let severities: Vec<_> = out.notes.iter().map(|n| (n.at.line, n.severity)).collect();
    assert!(
        severities.contains(&(16, Severity::Harmless)),
        "{severities:?}"
    );
    assert!(severities.contains(&(17, Severity::Dns)), "{severities:?}");
    assert!(
        severities.contains(&(18, Severity::Changes)),
        "{severities:?}"
    );
    assert!(out.partial());
    assert!(out
        .toml
        .contains("# dnsmasq.conf:5: dhcp-host=52:54:00:81:00:09,10.81.0.9,node9"));
}

#[test]
fn ranges_parse_as_dnsmasq_reads_them() {
    let r = range("set:red,10.0.0.10,10.0.0.20,255.255.255.0,10.0.0.255,45m").unwrap();
    assert_eq!(
        (r.set.as_slice(), r.lease_secs),
        (&["red".to_owned()][..], 2700)
    );
    assert_eq!(r.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert!(range("10.0.0.0,proxy").unwrap().proxy);
    assert!(range("tag:x,10.0.0.5,static").unwrap().is_static);
    assert_eq!(range("10.0.0.5,10.0.0.9,30").unwrap().lease_secs, 120);
    assert!(range("10.0.0.5").is_err());
}

#[test]
fn vendor_options_tagged_ranges_and_host_leases_carry_over() {
    let conf = "
interface=br0
dhcp-range=tag:green,10.0.0.160,10.0.0.170,12h
dhcp-range=set:red,10.0.0.50,10.0.0.150,12h
dhcp-host=52:54:00:00:00:02,fred,10.0.0.60,45m
dhcp-host=52:54:00:00:00:03,10.0.0.61,infinite
dhcp-option=vendor:MSFT,2,1i
dhcp-option=vendor:PXEClient,1,0.0.0.0
dhcp-option=vi-encap:3561,1,box
";
    let out = translate(&lines(conf), &Host::default());
    assert!(!out.partial(), "{:?}", out.notes);
    let config = crate::config::Config::parse(
        &out.toml,
        Path::new("generated.toml"),
        &crate::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
    let s = config.dhcp.unwrap().settings;
    let (green, red) = (&s.subnets[0], &s.subnets[1]);
    assert_eq!(
        (green.tags.as_slice(), green.set_tags.len()),
        (&["green".to_owned()][..], 0)
    );
    assert_eq!(
        (red.tags.len(), red.set_tags.as_slice()),
        (0, &["red".to_owned()][..])
    );
    let leases: Vec<_> = s.hosts.iter().map(|h| h.lease_secs).collect();
    assert_eq!(leases, [Some(2700), Some(u32::MAX)]);
    // `1i` is four bytes; each vendor class has its own option 43.
    let msft = s
        .options
        .iter()
        .find(|o| o.tags == ["vendor-class:MSFT"])
        .unwrap();
    assert_eq!(
        (msft.code, msft.value.as_slice()),
        (43, &[2, 4, 0, 0, 0, 1, 255][..])
    );
    assert!(s
        .options
        .iter()
        .any(|o| o.tags == ["vendor-class:PXEClient"]));
    assert!(s.rules.iter().any(|r| r.set_tags == ["vendor-class:MSFT"]));
    // vi-encap: option 125, enterprise 3561, its sub-options, no END.
    let vi = s.options.iter().find(|o| o.code == 125).unwrap();
    assert_eq!(vi.value, [0, 0, 0x0d, 0xe9, 5, 1, 3, b'b', b'o', b'x']);
}

#[test]
fn boot_servers_given_by_name_resolve_through_the_hosts_file() {
    let conf = "
dhcp-range=10.0.0.50,10.0.0.150
dhcp-boot=pxelinux.0,boothost,tftp_server_name
pxe-service=x86PC,Install,pxelinux,BootHost
pxe-service=x86PC,Elsewhere,7,nowhere
";
    let host = Host {
        names: hosts_file("127.0.0.1 localhost\n# 10.9.9.9 old\n10.0.0.3 boothost tftp_server_name\n::1 ip6-localhost\n"),
        ..Host::default()
    };
    let out = translate(&lines(conf), &host);
    assert!(
        out.toml
            .contains("server_name = \"boothost\"\nnext_server = \"10.0.0.3\""),
        "{}",
        out.toml
    );
    assert!(out.toml.contains("server = \"10.0.0.3\""), "{}", out.toml);
    let unresolved: Vec<_> = out
        .notes
        .iter()
        .filter(|n| n.why.contains("/etc/hosts"))
        .collect();
    assert_eq!(unresolved.len(), 1, "{:?}", out.notes);
    assert_eq!(unresolved[0].at.line, 5);
}

#[test]
fn without_interface_lines_dhcp_goes_where_dnsmasq_answers() {
    let host = Host {
        nets: vec![
            ("eth0".into(), (Ipv4Addr::new(10, 0, 0, 0), 24)),
            ("eth9".into(), (Ipv4Addr::new(10, 1, 0, 0), 24)),
            ("lo".into(), (Ipv4Addr::new(127, 0, 0, 0), 8)),
            ("wlan0".into(), (Ipv4Addr::new(192, 168, 1, 0), 24)),
        ],
        addrs: vec![("eth9".into(), Ipv4Addr::new(10, 1, 0, 1))],
        ..Host::default()
    };
    let ranges = "dhcp-range=10.0.0.50,10.0.0.150\ndhcp-range=10.1.0.50,10.1.0.150\n";
    let interfaces = |extra: &str| {
        let out = translate(&lines(&format!("{extra}{ranges}")), &host);
        out.toml
            .lines()
            .find_map(|l| l.strip_prefix("interface = "))
            .unwrap_or("")
            .to_owned()
    };
    // Every interface with a range on its network (not wlan0, not lo).
    assert_eq!(interfaces(""), "[\"eth0\", \"eth9\"]");
    assert_eq!(interfaces("except-interface=eth9\n"), "\"eth0\"");
    assert_eq!(
        interfaces("listen-address=10.1.0.1,127.0.0.1\n"),
        "\"eth9\""
    );
}
