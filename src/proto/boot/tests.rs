use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

const MAC1: &str = "mac=52-54-00-81-00-01";

fn debian() -> Profile {
    Profile {
        loader: Loader::Ipxe,
        name: "debian".into(),
        kernel: "/d-i/linux".into(),
        initrds: vec!["/d-i/initrd.gz".into()],
        cmdline: "auto=true  url={{ config_url }} hostname={{ hostname }}\n{{ vars.console }}"
            .into(),
        script: None,
        config: Some(
            "d-i netcfg/get_hostname string {{ hostname }}\n# {{ ip }} {{ vars.disk }}\n".into(),
        ),
        matches: Match {
            mac: vec!["52:54:00:81:*".into()],
            ..Match::default()
        },
        vars: BTreeMap::from([
            ("console".into(), "console=ttyS0".into()),
            ("disk".into(), "/dev/sda".into()),
        ]),
        once: true,
        local: None,
    }
}

fn rescue() -> Profile {
    Profile {
        loader: Loader::Ipxe,
        name: "rescue".into(),
        kernel: "http://mirror.example/rescue/vmlinuz".into(),
        initrds: vec![],
        cmdline: "rescue".into(),
        script: Some("#!ipxe\nkernel {{ kernel_url }} {{ cmdline }} {{ labels.rack | default(\"none\") }}\nboot\n".into()),
        config: None,
        matches: Match {
            labels: BTreeMap::from([("role".into(), "rescue".into())]),
            ..Match::default()
        },
        vars: BTreeMap::new(),
        once: false,
        local: None,
    }
}

fn machine(mac: &str) -> Machine {
    Machine {
        mac: Mac::parse(mac).unwrap(),
        ..Machine::default()
    }
}

fn profiles(default: Option<usize>, machines: Vec<Machine>) -> Profiles {
    Profiles::new(
        Paths::default(),
        vec![debian(), rescue()],
        default,
        machines,
        "10.0.0.1".into(),
    )
    .unwrap()
}

fn origin() -> Origin<'static> {
    Origin {
        host: Some("10.81.0.1"),
        peer: Some(IpAddr::from([10, 81, 0, 101])),
        unix_secs: 1_000,
        tls: false,
        port: 80,
    }
}

#[test]
fn a_script_request_without_a_mac_chains_back_with_ipxe_settings() {
    let p = profiles(None, vec![]);
    let page = p.answer("/boot.ipxe", "", origin()).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body,
        "#!ipxe\nchain /boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}\
         &platform=${platform}&hostname=${hostname:uristring}\n"
    );
    assert_eq!(p.answer("/other", "", origin()), None);
    assert_eq!(p.answer("/config", "", origin()).unwrap().status, 400);
}

#[test]
fn a_matched_machine_gets_its_profiles_script_with_its_facts() {
    let p = profiles(None, vec![]);
    let page = p
        .answer(
            "/boot.ipxe",
            &format!("{MAC1}&arch=x86_64&platform=efi&hostname=web-01"),
            origin(),
        )
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body,
        "#!ipxe\necho rackboot: 52:54:00:81:00:01 boots profile debian\n\
         kernel http://10.81.0.1/d-i/linux initrd=initrd.gz auto=true \
         url=http://10.81.0.1/config?mac=52-54-00-81-00-01&arch=x86_64&platform=efi&hostname=web-01 \
         hostname=web-01 console=ttyS0\n\
         initrd http://10.81.0.1/d-i/initrd.gz\nboot\n"
    );
    let config = p
        .answer("/config", "mac=52-54-00-81-00-01&hostname=web-01", origin())
        .unwrap();
    assert_eq!(
        (config.status, config.body.as_str()),
        (
            200,
            "d-i netcfg/get_hostname string web-01\n# 10.81.0.101 /dev/sda\n"
        )
    );
}

#[test]
fn an_unknown_machine_gets_the_default_or_an_echo_and_exit_never_an_error() {
    let stranger = "mac=02-00-00-00-00-09&arch=i386&platform=pcbios";
    let none = profiles(None, vec![]);
    let page = none.answer("/boot.ipxe", stranger, origin()).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.starts_with("#!ipxe\necho rackboot: no profile takes machine 02:00:00:00:00:09 (arch i386, platform pcbios, uuid -)"), "{}", page.body);
    assert!(page.body.ends_with("\nexit 1\n"), "{}", page.body);
    assert_eq!(
        none.answer("/config", stranger, origin()).unwrap().status,
        404
    );

    let with_default = profiles(Some(1), vec![]);
    let page = with_default
        .answer("/boot.ipxe", stranger, origin())
        .unwrap();
    assert_eq!(
        page.body,
        "#!ipxe\nkernel http://mirror.example/rescue/vmlinuz rescue none\nboot\n"
    );
    // A profile without a config template serves none.
    assert_eq!(
        with_default
            .answer("/config", stranger, origin())
            .unwrap()
            .status,
        404
    );
}

#[test]
fn the_inventory_names_labels_and_pins_profiles() {
    let mut pinned = machine("52:54:00:81:00:02");
    pinned.profile = Some("rescue".into());
    pinned.labels.insert("rack".into(), "r7".into());
    let mut labelled = machine("02:00:00:00:00:03");
    labelled.labels.insert("role".into(), "rescue".into());
    labelled.labels.insert("rack".into(), "r9".into());
    let mut named = machine("52:54:00:81:00:04");
    named.hostname = Some("db-04".into());
    named.vars.insert("disk".into(), "/dev/nvme0n1".into());
    let p = profiles(None, vec![pinned, labelled, named]);
    let body = |q: &str, path: &str| p.answer(path, q, origin()).unwrap().body;
    assert!(body("mac=52-54-00-81-00-02", "/boot.ipxe").ends_with("rescue r7\nboot\n"));
    assert!(body("mac=02-00-00-00-00-03", "/boot.ipxe").ends_with("rescue r9\nboot\n"));
    // The inventory's name and variables win over what the machine says.
    assert_eq!(
        body("mac=52-54-00-81-00-04&hostname=other", "/config"),
        "d-i netcfg/get_hostname string db-04\n# 10.81.0.101 /dev/nvme0n1\n"
    );
}

#[test]
fn match_keys_must_all_fit() {
    let m = Match {
        mac: vec!["52:54:00:*".into()],
        platform: vec!["efi".into()],
        ..Match::default()
    };
    let facts = |q: &str| Facts::from_query(q);
    assert!(m.fits(&facts("mac=52-54-00-00-00-01&platform=efi"), NO_LABELS));
    assert!(!m.fits(&facts("mac=52-54-00-00-00-01&platform=pcbios"), NO_LABELS));
    assert!(!m.fits(&facts("mac=02-54-00-00-00-01&platform=efi"), NO_LABELS));
    assert!(
        !Match::default().fits(&facts(MAC1), NO_LABELS),
        "an empty match takes nobody"
    );
}

#[test]
fn template_mistakes_are_caught_when_loading_naming_profile_template_and_line() {
    let mut bad = debian();
    bad.config = Some("ok\n{% if hostname %}\nno endif\n".into());
    let e = Profiles::new(Paths::default(), vec![bad], None, vec![], "h".into()).unwrap_err();
    assert_eq!((e.profile.as_str(), e.what.as_str()), ("debian", "config"));
    assert!(e.message.contains("line"), "{e}");

    let mut undefined = debian();
    undefined.cmdline = "url={{ confg_url }}".into();
    let e = Profiles::new(Paths::default(), vec![undefined], None, vec![], "h".into()).unwrap_err();
    assert_eq!(e.what, "cmdline");
    assert!(e.message.contains("undefined"), "{e}");

    // A variable only one machine lacks is caught for that machine.
    // A profile only the inventory names is rendered for those machines only,
    // and a variable one of them lacks is caught for that machine.
    let mut pinned = debian();
    pinned.config = Some("{{ vars.rack }}".into());
    pinned.matches = Match::default();
    let pin = |mac: &str, rack: Option<&str>| {
        let mut m = machine(mac);
        m.profile = Some("debian".into());
        if let Some(r) = rack {
            m.vars.insert("rack".into(), r.into());
        }
        m
    };
    let ok = vec![pin("52:54:00:81:00:05", Some("r1"))];
    Profiles::new(Paths::default(), vec![pinned.clone()], None, ok, "h".into()).unwrap();
    let lacking = vec![
        pin("52:54:00:81:00:05", Some("r1")),
        pin("52:54:00:81:00:06", None),
    ];
    let e = Profiles::new(Paths::default(), vec![pinned], None, lacking, "h".into()).unwrap_err();
    assert_eq!(e.what, "config for machine 52:54:00:81:00:06", "{e}");
}

#[test]
fn a_host_header_that_could_break_a_url_is_not_used() {
    let p = profiles(None, vec![]);
    let evil = Origin {
        host: Some("x\nkernel evil"),
        peer: None,
        unix_secs: 0,
        tls: false,
        port: 8080,
    };
    let page = p.answer("/boot.ipxe", MAC1, evil).unwrap();
    assert!(
        page.body.contains("kernel http://10.0.0.1/d-i/linux"),
        "{}",
        page.body
    );
}

#[test]
fn a_host_header_without_the_port_gets_the_port_the_request_came_in_on() {
    let p = profiles(None, vec![]);
    for (host, port, tls, named) in [
        ("10.81.0.1", 8080, false, "http://10.81.0.1:8080/d-i/linux"),
        (
            "10.81.0.1:8080",
            8080,
            false,
            "http://10.81.0.1:8080/d-i/linux",
        ),
        ("10.81.0.1", 80, false, "http://10.81.0.1/d-i/linux"),
        ("10.81.0.1", 443, true, "https://10.81.0.1/d-i/linux"),
        ("[fd00::1]", 8080, false, "http://[fd00::1]:8080/d-i/linux"),
        ("[fd00::1]:81", 8080, false, "http://[fd00::1]:81/d-i/linux"),
    ] {
        let at = Origin {
            host: Some(host),
            port,
            tls,
            ..origin()
        };
        let page = p.answer("/boot.ipxe", MAC1, at).unwrap();
        assert!(page.body.contains(named), "{host} on {port}: {}", page.body);
    }
}

#[test]
fn a_once_machine_boots_local_after_its_done_url_and_a_stale_one_is_gone() {
    let dir = std::env::temp_dir().join(format!("rackboot-boot-once-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let book = std::sync::Arc::new(crate::machines::Book::open(&dir.join("m")).unwrap());
    let p = profiles(None, vec![])
        .with_book(std::sync::Arc::clone(&book))
        .unwrap();
    let mac = Mac::parse("52:54:00:81:00:01").unwrap();
    let tag = book.done_tag(&mac, 0);
    let installing = p.answer("/boot.ipxe", MAC1, origin()).unwrap();
    assert!(installing
        .body
        .contains("kernel http://10.81.0.1/d-i/linux"));
    let done = format!("/done/52-54-00-81-00-01/0/{tag}");
    assert_eq!(p.answer(&done, "", origin()).unwrap().status, 200);
    let local = p.answer("/boot.ipxe", MAC1, origin()).unwrap();
    assert_eq!(
        local.body,
        "#!ipxe\necho rackboot: 52:54:00:81:00:01 is installed (netboot local): booting the next device\nexit\n"
    );
    assert_eq!(
        book.seen(&mac).unwrap().phase,
        Some(crate::machines::Phase::Local)
    );
    // Another round: the old URL is spent.
    book.change(mac, |r| {
        r.round += 1;
        r.machine = None;
        Ok(())
    })
    .unwrap();
    assert_eq!(p.answer(&done, "", origin()).unwrap().status, 410);
    let wrong = format!("/done/52-54-00-81-00-02/0/{tag}");
    assert_eq!(p.answer(&wrong, "", origin()).unwrap().status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_grub_request_gets_the_profile_as_a_grub_configuration() {
    let mut grub = debian();
    grub.loader = Loader::Grub;
    let p = Profiles::new(
        Paths::default(),
        vec![grub, rescue()],
        None,
        vec![],
        "10.0.0.1".into(),
    )
    .unwrap();
    // Over TFTP there is no Host: URLs name the configured server.
    let tftp = Origin {
        host: None,
        ..origin()
    };
    let page = p
        .answer(
            "/boot.grub",
            "mac=52:54:00:81:00:01&arch=x86_64&platform=efi",
            tftp,
        )
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body,
        "set timeout=0\n\
         menuentry 'rackboot: 52:54:00:81:00:01 boots profile debian' {\n\
         \x20   echo 'rackboot: 52:54:00:81:00:01 boots profile debian'\n\
         \x20   linux /d-i/linux auto=true \
         'url=http://10.0.0.1/config?mac=52-54-00-81-00-01&arch=x86_64&platform=efi' \
         hostname= console=ttyS0\n\
         \x20   initrd /d-i/initrd.gz\n\
         }\n"
    );
    assert!(p.any_grub());
    let facts = Facts::from_query(MAC1);
    assert_eq!(p.loader_for(&facts), Loader::Grub);
    // The same machine asking iPXE's path gets the built-in iPXE script: a
    // profile boots under either loader.
    let script = p.answer("/boot.ipxe", MAC1, origin()).unwrap();
    assert!(script.body.starts_with("#!ipxe\n"), "{}", script.body);
    // An iPXE profile's machine, asked by grub, gets grub's syntax; a URL
    // kernel becomes a grub HTTP device.
    let m = Machine {
        labels: BTreeMap::from([("role".into(), "rescue".into())]),
        ..machine("52:54:00:99:00:01")
    };
    let p = profiles(None, vec![m]);
    let page = p
        .answer("/boot.grub", "mac=52:54:00:99:00:01", origin())
        .unwrap();
    assert!(
        page.body
            .contains("    linux (http,mirror.example)/rescue/vmlinuz rescue\n"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("initrd"), "{}", page.body);
    assert_eq!(
        p.loader_for(&Facts::from_query("mac=52:54:00:99:00:01")),
        Loader::Ipxe
    );
    // Without a MAC grub is told what to ask.
    assert_eq!(p.answer("/boot.grub", "", origin()).unwrap().status, 400);
}

#[test]
fn a_grub_profiles_own_templates_replace_the_grub_pages_only() {
    let mut grub = debian();
    grub.loader = Loader::Grub;
    grub.script = Some("linux {{ grub_kernel }} {{ grub_cmdline }}\nboot\n".into());
    grub.local = Some("echo local {{ mac }}\nexit\n".into());
    let installed = Machine {
        netboot: Some(Netboot::Local),
        ..machine("52:54:00:81:00:01")
    };
    let p = Profiles::new(
        Paths::default(),
        vec![grub],
        None,
        vec![installed],
        "10.0.0.1".into(),
    )
    .unwrap();
    let local = p.answer("/boot.grub", MAC1, origin()).unwrap();
    assert_eq!(local.body, "echo local 52:54:00:81:00:01\nexit\n");
    let ipxe = p.answer("/boot.ipxe", MAC1, origin()).unwrap();
    assert!(ipxe.body.contains("\nexit\n") && ipxe.body.starts_with("#!ipxe"));
    let other = p
        .answer("/boot.grub", "mac=52:54:00:81:00:02", origin())
        .unwrap();
    assert!(
        other.body.starts_with("linux /d-i/linux auto=true"),
        "{}",
        other.body
    );
    // An unknown machine under grub gets grub's echo and exit.
    let none = p
        .answer("/boot.grub", "mac=02:00:00:00:00:09", origin())
        .unwrap();
    assert!(
        none.body
            .starts_with("echo 'rackboot: no profile takes machine 02:00:00:00:00:09"),
        "{}",
        none.body
    );
    assert!(none.body.ends_with("\nexit\n"));
}
