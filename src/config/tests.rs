use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, Path::new("rackboot.toml"), &Overrides::default())
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.root, None);
    assert_eq!(c.http.listen.port(), 80);
    assert_eq!(c.http.settings, Settings::default());
    assert!(c.workers >= 1);
    assert_eq!(c.store.max_bytes, 8192 << 20);
    assert_eq!(c.http.busy_poll, Duration::from_micros(50));
}

#[test]
fn a_full_file_is_read() {
    let c = parse(
        "root = \"/tmp\"\nworkers = 3\n[http]\nlisten = \"127.0.0.1:8080\"\nidle_secs = 5\nmax_headers = 10\n\
         [store]\nmax_mib = 100\nmlock = false\n[log]\nformat = \"json\"\naccess = false\nlevel = \"debug\"\n",
    )
    .unwrap();
    assert_eq!(c.root.as_deref(), Some(Path::new("/tmp")));
    assert_eq!(c.workers, 3);
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.http.settings.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.http.settings.limits.max_headers, 10);
    assert!(!c.http.settings.access_log && !c.store.mlock);
    assert_eq!((c.log.format, c.log.level), (LogFormat::Json, Level::Debug));
}

#[test]
fn no_pxedhcp_false_keeps_ipxes_proxydhcp_wait() {
    let ipxe_rule = |extra: &str| {
        let c = parse(&format!(
            "[dhcp]\ninterface = \"eth9\"\n{extra}[[dhcp.subnet]]\nnetwork = \"10.0.0.0/24\"\n\
             ranges = [\"10.0.0.10-10.0.0.20\"]\n"
        ))
        .unwrap();
        let rules = c.dhcp.unwrap().settings.rules;
        let r = rules.into_iter().find(|r| r.name == "ipxe").unwrap();
        r.action.unwrap().no_pxedhcp
    };
    assert!(ipxe_rule(""), "175.176 is sent by default");
    assert!(!ipxe_rule("no_pxedhcp = false\n"));
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let msg = parse("[http]\nlisten = \"0.0.0.0:80\"\nlisen = 1\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 3") && msg.contains("lisen"), "{msg}");
}

#[test]
fn a_bad_value_names_key_line_and_fix() {
    let msg = parse("\n[http]\nlisten = \"nowhere\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("rackboot.toml:3: `http.listen`") && msg.contains("ADDR:PORT"),
        "{msg}"
    );
    let msg = parse("[http]\nmax_headers = 0\n").unwrap_err().to_string();
    assert!(
        msg.contains(":2: `http.max_headers` is 0") && msg.contains("from 1 to 256"),
        "{msg}"
    );
    let msg = parse("root = \"/nonexistent/boot\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains(":1: `root`"), "{msg}");
    let msg = parse("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
    assert!(msg.contains("line 2") && msg.contains("json"), "{msg}");
}

#[test]
fn tftp_is_off_until_asked_for_and_defaults_to_port_69() {
    assert!(parse("").unwrap().tftp.is_none());
    let t = parse("[tftp]\n").unwrap().tftp.unwrap();
    assert_eq!(t.listen, "0.0.0.0:69".parse().unwrap());
    let t = parse("[tftp]\nlisten = \"10.0.0.1\"\nsingle_port = true\nmax_windowsize = 16\n")
        .unwrap()
        .tftp
        .unwrap();
    assert_eq!(
        (t.listen.port(), t.single_port, t.settings.max_windowsize),
        (69, true, 16)
    );
    let msg = parse("[tftp]\nmax_windowsize = 100\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains(":2: `tftp.max_windowsize` is 100"), "{msg}");
    let cli = Overrides {
        tftp: Some("127.0.0.1:6969".into()),
        ..Overrides::default()
    };
    assert_eq!(
        Config::parse("", Path::new("f"), &cli)
            .unwrap()
            .tftp
            .unwrap()
            .listen
            .port(),
        6969
    );
}

#[test]
fn the_command_line_wins_and_is_checked_too() {
    let cli = Overrides {
        http: Some("127.0.0.1:9".parse().unwrap()),
        workers: Some(2),
        ..Overrides::default()
    };
    let c = Config::parse(
        "workers = 7\n[http]\nlisten = \"0.0.0.0:1\"\n",
        Path::new("f"),
        &cli,
    )
    .unwrap();
    assert_eq!((c.workers, c.http.listen.port()), (2, 9));
    let cli = Overrides {
        root: Some("/nonexistent".into()),
        ..Overrides::default()
    };
    let msg = Config::parse("", Path::new("f"), &cli)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("command line: `--root`"), "{msg}");
}

#[test]
fn a_pxe_menu_is_read_and_its_mistakes_are_named() {
    let menu = |items: &str| {
        parse(&format!(
            "[dhcp]\ninterface = \"eth9\"\nmode = \"proxy\"\n{items}"
        ))
        .map(|c| c.dhcp.unwrap().settings.pxe_menu.unwrap())
    };
    let m = menu(
        "[dhcp.pxe_prompt]\ntext = \"Boot\"\ntimeout = 5\n\
         [[dhcp.pxe_service]]\narch = \"x86PC\"\ntext = \"Install\"\nfile = \"undionly.kpxe\"\n\
         [[dhcp.pxe_service]]\narch = 7\ntext = \"Other\"\ntype = 12\nserver = \"10.0.0.9\"\n\
         [[dhcp.pxe_service]]\narch = \"bc_efi\"\ntext = \"EFI\"\nfile = \"ipxe.efi\"\n\
         [[dhcp.pxe_service]]\narch = \"x86PC\"\ntext = \"Disk\"\n",
    )
    .unwrap();
    let kinds: Vec<_> = m.items.iter().map(|i| (i.arch, i.boot_type)).collect();
    assert_eq!(kinds, [(0, 32768), (7, 12), (9, 32769), (0, 0)]);
    assert_eq!(
        m.items[1].server,
        Some(std::net::Ipv4Addr::new(10, 0, 0, 9))
    );
    assert_eq!(m.prompt.map(|p| p.timeout), Some(5));
    let bad = |items: &str, key: &str| {
        let msg = menu(items).unwrap_err().to_string();
        assert!(msg.contains(key), "{msg}");
    };
    bad(
        "[[dhcp.pxe_service]]\narch = \"amiga\"\ntext = \"x\"\n",
        "dhcp.pxe_service.arch",
    );
    bad(
        "[[dhcp.pxe_service]]\narch = 0\ntext = \"x\"\nfile = \"a\"\ntype = 3\n",
        "dhcp.pxe_service.type",
    );
    bad(
        "[dhcp.pxe_prompt]\ntext = \"x\"\ntimeout = 300\n",
        "dhcp.pxe_prompt.timeout",
    );
}

#[test]
fn a_host_is_known_by_its_mac_or_its_client_id() {
    let host = |keys: &str| {
        parse(&format!(
            "[dhcp]\ninterface = \"eth9\"\n[[dhcp.subnet]]\nnetwork = \"10.0.0.0/24\"\n\
             ranges = [\"10.0.0.10-10.0.0.20\"]\n[[dhcp.host]]\n{keys}"
        ))
        .map(|c| c.dhcp.unwrap().settings.hosts.remove(0))
    };
    let h = host("client_id = \"01:02:02:04\"\nip = \"10.0.0.5\"\n").unwrap();
    assert_eq!(h.client_id, Some(vec![1, 2, 2, 4]));
    for bad in [
        "ip = \"10.0.0.5\"\n",
        "mac = \"52:54:00:00:00:01\"\nclient_id = \"01\"\n",
    ] {
        let msg = host(bad).unwrap_err().to_string();
        assert!(
            msg.contains("dhcp.host") && msg.contains("client_id"),
            "{msg}"
        );
    }
    let msg = host("client_id = \"zz\"\n").unwrap_err().to_string();
    assert!(msg.contains("dhcp.host.client_id"), "{msg}");
}

#[test]
fn dhcp_answers_on_one_interface_or_a_list() {
    let dhcp = |iface: &str| {
        parse(&format!(
            "[dhcp]\ninterface = {iface}\n[[dhcp.subnet]]\nnetwork = \"10.0.0.0/24\"\n\
             ranges = [\"10.0.0.10-10.0.0.20\"]\n"
        ))
        .map(|c| c.dhcp.unwrap())
    };
    let one = dhcp("\"eth1\"").unwrap();
    assert_eq!(one.interfaces().collect::<Vec<_>>(), ["eth1"]);
    let two = dhcp("[\"eth1\", \"eth2\"]").unwrap();
    assert_eq!(two.interfaces().collect::<Vec<_>>(), ["eth1", "eth2"]);
    for bad in ["[\"eth1\", \"eth1\"]", "[]", "3", "[\"a b\"]"] {
        let msg = dhcp(bad).unwrap_err().to_string();
        assert!(msg.contains("dhcp.interface"), "{bad}: {msg}");
    }
}

#[test]
fn an_interface_root_is_mounted_for_its_interface_and_mistakes_are_named() {
    let dir = std::env::temp_dir();
    let c = parse(&format!(
        "[tftp]\n[[tftp.interface_root]]\ninterface = \"eth2\"\ndir = \"{}\"\n",
        dir.display()
    ))
    .unwrap();
    let t = c.tftp.unwrap();
    assert_eq!(
        t.interface_roots,
        [("eth2".to_owned(), "/.interface/eth2".to_owned())]
    );
    assert!(c.mounts.iter().any(|(p, _)| p == "/.interface/eth2"));
    let msg =
        parse("[tftp]\n[[tftp.interface_root]]\ninterface = \"eth2\"\ndir = \"/no/such/dir\"\n")
            .unwrap_err()
            .to_string();
    assert!(msg.contains("tftp.interface_root.dir"), "{msg}");
    let msg = parse(&format!(
        "[tftp]\n[[tftp.interface_root]]\ninterface = \"../x\"\ndir = \"{}\"\n",
        dir.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(msg.contains("tftp.interface_root.interface"), "{msg}");
}

#[test]
fn the_fleet_view_is_on_by_default_and_its_sizes_are_checked() {
    let c = parse("").unwrap();
    let f = c.fleet.unwrap();
    assert_eq!(f.limits, crate::fleet::Limits::default());
    assert_eq!(f.timers, crate::fleet::Timers::default());
    let c = parse("[fleet]\nmachines = 500\nboots = 2\ninstaller_secs = 900\n").unwrap();
    let f = c.fleet.unwrap();
    assert_eq!((f.limits.machines, f.limits.boots), (500, 2));
    assert_eq!(f.timers.installer, std::time::Duration::from_secs(900));
    assert!(parse("[fleet]\nenabled = false\n").unwrap().fleet.is_none());
    let msg = parse("[fleet]\nmachines = 0\n").unwrap_err().to_string();
    assert!(
        msg.contains("fleet.machines") && msg.contains("from 1 to 1000000"),
        "{msg}"
    );
    let msg = parse("[fleet]\nanswers_secs = 1\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("fleet.answers_secs"), "{msg}");
    let msg = parse("[fleet]\nmachine = 5\n").unwrap_err().to_string();
    assert!(msg.contains("machine"), "{msg}");
}

#[test]
fn a_profiles_loader_and_the_grub_path_are_checked() {
    let profile = |loader: &str| {
        format!("[[profile]]\nname = \"sb\"\nkernel = \"/linux\"\nloader = \"{loader}\"\n")
    };
    let c = parse(&profile("grub")).unwrap();
    let b = c.boot.unwrap();
    assert!(b.profiles.any_grub());
    assert_eq!(b.profiles.paths().grub, "/boot.grub");
    let msg = parse(&profile("grub2")).unwrap_err().to_string();
    assert!(
        msg.contains(":4: `profile.loader` is \"grub2\"") && msg.contains("\"grub\""),
        "{msg}"
    );
    let msg = parse(&format!(
        "[boot]\ngrub_path = \"/boot.ipxe\"\n{}",
        profile("grub")
    ))
    .unwrap_err()
    .to_string();
    assert!(msg.contains("`boot.grub_path`"), "{msg}");
    let msg = parse("[dhcp]\ninterface = \"lo\"\nmode = \"proxy\"\n[[dhcp.boot]]\nloader = \"shim\"\nfile = \"x.efi\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`dhcp.boot.loader` is \"shim\""), "{msg}");
}

#[test]
fn boot_media_needs_profiles_and_an_address_machines_reach() {
    let profile = "[[profile]]\nname = \"d\"\nkernel = \"/linux\"\n";
    let msg = parse(&format!("[boot]\nmedia = true\n{profile}"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(":2: `boot.media` needs the address machines reach this server at")
            && msg.contains("[boot] server"),
        "{msg}"
    );
    let c = parse(&format!(
        "[boot]\nmedia = true\nserver = \"10.0.0.1:8080\"\n{profile}"
    ))
    .unwrap();
    assert_eq!(c.boot.unwrap().media.as_deref(), Some("10.0.0.1:8080"));
    let c = parse(&format!("[boot]\nmedia = false\n{profile}")).unwrap();
    assert_eq!(c.boot.unwrap().media, None);
    let msg = parse("[boot]\nmedia = true\n").unwrap_err().to_string();
    assert!(
        msg.contains("`boot.media` is on, but no [[profile]]"),
        "{msg}"
    );
}

#[test]
fn dhcp6_is_read_and_its_mistakes_are_named() {
    let v4 = "[dhcp]\ninterface = \"eth9\"\n[[dhcp.subnet]]\nnetwork = \"10.0.0.0/24\"\n\
              ranges = [\"10.0.0.10-10.0.0.20\"]\n";
    let c = parse(&format!(
        "{v4}[dhcp6]\nrapid_commit = false\npreference = 10\nrouter_lifetime_secs = 1800\n\
         [[dhcp6.subnet]]\nprefix = \"fd00:1::/64\"\nranges = [\"fd00:1::100-fd00:1::1ff\"]\n\
         valid_secs = 600\ndns = [\"fd00:1::1\"]\n\
         [[dhcp6.subnet]]\n\
         [[dhcp6.host]]\nmac = \"52:54:00:00:00:01\"\nip = \"fd00:1::5\"\n\
         [[dhcp6.host]]\nduid = \"00:02:00:00:00:09:01\"\n"
    ))
    .unwrap();
    let v6 = c.dhcp.unwrap().v6.unwrap();
    let s = &v6.settings;
    assert!(!s.rapid_commit);
    assert_eq!(s.preference, 10);
    assert_eq!(v6.router_lifetime, 1800);
    assert_eq!(s.subnets[0].size(), 256);
    assert_eq!((s.subnets[0].valid, s.subnets[0].preferred), (600, 450));
    // The second subnet has no prefix (the interface's) and no ranges
    // (stateless).
    assert_eq!(v6.on_interface, [false, true]);
    assert!(s.subnets[1].ranges.is_empty());
    assert_eq!(s.hosts[0].mac, Some([0x52, 0x54, 0, 0, 0, 1]));
    assert_eq!(s.hosts[1].duid.as_deref(), Some(&[0, 2, 0, 0, 0, 9, 1][..]));
    // The interface's prefix filled in at start; none there is an error.
    let resolved = v6
        .resolve(Some(("fd00:2::1".parse().unwrap(), 64)))
        .unwrap();
    assert_eq!(
        resolved.subnets[1].prefix,
        "fd00:2::1".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert!(v6
        .resolve(None)
        .unwrap_err()
        .contains("no global or unique-local"));

    for (text, key, fix) in [
        ("[dhcp6]\n", "dhcp6", "--interface"),
        (
            &format!("{v4}[dhcp6]\n") as &str,
            "dhcp6.subnet",
            "--dhcp6-range",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\nprefix = \"fd00::/64\"\nranges = [\"fd00::9-fd00::1\"]\n"),
            "dhcp6.subnet.ranges",
            "FIRST not above LAST",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\nprefix = \"fd00::/64\"\nranges = [\"fd01::1-fd01::9\"]\n"),
            "dhcp6.subnet.ranges",
            "inside the subnet's prefix",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\nprefix = \"fd00::/200\"\n"),
            "dhcp6.subnet.prefix",
            "PREFIX/LEN",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\n[[dhcp6.host]]\nip = \"fd00::1\"\n"),
            "dhcp6.host",
            "mac",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\n[[dhcp6.host]]\nduid = \"zz\"\n"),
            "dhcp6.host.duid",
            "hex",
        ),
        (
            &format!("{v4}[[dhcp6.subnet]]\n[[dhcp6.host]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.0.0.1\"\n"),
            "dhcp6.host.ip",
            "IPv6 address",
        ),
        (
            "[dhcp]\ninterface = \"eth9\"\nmode = \"proxy\"\n[[dhcp6.subnet]]\n",
            "dhcp6",
            "server mode",
        ),
    ] {
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains(key) && msg.contains(fix), "{text}\n=> {msg}");
    }
    // DHCPv6 alone needs no IPv4 pool.
    let only6 = parse("[dhcp]\ninterface = \"eth9\"\n[[dhcp6.subnet]]\n").unwrap();
    assert!(only6.dhcp.unwrap().settings.subnets.is_empty());
}

#[test]
fn dhcp6_range_on_the_command_line_is_checked() {
    let cli = |r: &str| {
        Config::parse(
            "",
            Path::new("rackboot.toml"),
            &Overrides {
                interface: Some("eth9".into()),
                dhcp_ranges: vec!["10.0.0.10,10.0.0.20".into()],
                dhcp6_ranges: vec![r.into()],
                ..Overrides::default()
            },
        )
    };
    let c = cli("fd00::10,fd00::20,600").unwrap();
    let v6 = c.dhcp.unwrap().v6.unwrap();
    assert_eq!(v6.settings.subnets[0].size(), 17);
    assert_eq!(v6.settings.subnets[0].valid, 600);
    for bad in [
        "fd00::20,fd00::10",
        "fd00::10",
        "10.0.0.1,10.0.0.2",
        "fd00::1,fd00::2,5",
    ] {
        let msg = cli(bad).unwrap_err().to_string();
        assert!(
            msg.contains("--dhcp6-range") && msg.contains("FIRST,LAST"),
            "{msg}"
        );
    }
}
