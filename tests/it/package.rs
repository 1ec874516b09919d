//! The Debian package, as an operator installs it: built with cargo-deb
//! (tuning/deb/build), installed with `apt-get install ./rackboot_*.deb`,
//! its example config checked, its man pages and bash completions loaded,
//! and the unit's command run as the unit's user with exactly the unit's
//! capabilities (setpriv) serving a udhcpc client, an atftp fetch and curl
//! in a namespace. Without CAP_NET_RAW it says which feature needs it.
//! Needs root; it installs the package on this machine.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ns::{in_ns, Kill, Net};
use crate::support::{run, sha256, TempDir};

/// The capabilities `tuning/rackboot.service` grants, as setpriv names them.
const UNIT_CAPS: &str = "net_bind_service,net_raw,ipc_lock";

fn ok(cmd: &str) -> String {
    let o = run("sh", &["-c", cmd]);
    assert!(
        o.status.success(),
        "{cmd}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The unit's ExecStart line, with the config it names replaced by `config`.
fn exec_start(config: &Path) -> String {
    let unit = std::fs::read_to_string("/lib/systemd/system/rackboot.service").unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    assert!(line.starts_with("/usr/bin/rackboot serve"), "{line}");
    line.replace("/etc/rackboot/rackboot.toml", config.to_str().unwrap())
}

/// `cmd` in `ns` as the user rackboot with the capabilities `caps` only.
fn as_unit(ns: &str, caps: &str, cmd: &str) -> String {
    let set = caps
        .split(',')
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "exec ip netns exec {ns} setpriv --reuid=rackboot --regid=rackboot --init-groups \
         --inh-caps=-all,{set} --ambient-caps=-all,{set} --bounding-set=-all,{set} \
         --no-new-privs {cmd}"
    )
}

#[test]
fn the_deb_installs_and_runs_as_its_user_with_the_units_capabilities() {
    let _turn = crate::support::heavy();
    for (tool, package) in [
        ("setpriv", "util-linux"),
        ("man", "man-db"),
        ("busybox", "busybox"),
        ("atftp", "atftp"),
    ] {
        assert!(
            run("sh", &["-c", &format!("command -v {tool}")])
                .status
                .success(),
            "{tool} is missing: apt-get install {package}"
        );
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    ok(&format!("{repo}/tuning/deb/build -o {repo}/target/debian/"));
    let deb = std::fs::read_dir(format!("{repo}/target/debian"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("tuning/deb/build made no .deb");
    ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall {} >/dev/null",
        deb.display()
    ));

    // What the package put in place.
    let version = ok("/usr/bin/rackboot --version");
    assert!(version.contains("(git "), "{version}");
    ok("getent passwd rackboot");
    assert_eq!(ok("stat -c %U /var/lib/rackboot").trim(), "rackboot");
    let check = ok("rackboot check --config /etc/rackboot/rackboot.toml");
    assert!(check.contains("0.0.0.0:80"), "{check}");
    let man = ok("MANWIDTH=100 man -P cat rackboot-serve 2>/dev/null");
    assert!(
        man.contains("rackboot-serve(1)") && man.contains("SYNOPSIS") && man.contains("dhcp-range"),
        "{man}"
    );
    let completion = ok(
        "bash -c 'source /usr/share/bash-completion/completions/rackboot && complete -p rackboot'",
    );
    assert!(completion.contains("rackboot"), "{completion}");

    // The unit's command as the unit's user with the unit's capabilities,
    // on a veth in namespaces.
    let mut net = Net::new("pk");
    let (srv, cli) = (net.ns("s"), net.ns("c"));
    Net::veth(&srv, "eth0", Some("10.84.0.1/24"), &cli, "eth0", None);
    let dir = TempDir::new("package");
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let nbp = rackboot::store::builtin::filler(300_000, 9);
    std::fs::write(root.join("ipxe.efi"), &nbp).unwrap();
    let state = dir.0.join("state");
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"{root}\"\n[dhcp]\ninterface = \"eth0\"\nlease_file = \"{state}/leases\"\n\
             [[dhcp.subnet]]\nranges = [\"10.84.0.100-10.84.0.150\"]\n\
             [tftp]\nlisten = \"10.84.0.1:69\"\n[http]\nlisten = \"10.84.0.1:80\"\n\
             [admin]\nsocket = \"{state}/admin.sock\"\n[boot]\nstate_file = \"{state}/machines\"\n",
            root = root.display(),
            state = state.display()
        ),
    )
    .unwrap();
    ok(&format!(
        "chmod 755 {d} {d}/root && chmod 644 {d}/root/ipxe.efi {d}/rackboot.toml && \
         install -d -o rackboot -g rackboot {d}/state",
        d = dir.0.display()
    ));
    let log = dir.0.join("serve.log");
    let cmd = exec_start(&config);
    let server = Kill(
        Command::new("sh")
            .args([
                "-c",
                &format!("{} >{} 2>&1", as_unit(&srv, UNIT_CAPS, &cmd), log.display()),
            ])
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("dhcp listening")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "rackboot did not start as its user:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Running as rackboot, started with the unit's three capabilities; once
    // its sockets are open every thread keeps CAP_IPC_LOCK (page-locking what
    // a reload loads) and nothing else.
    let pid = ok(&format!(
        "pgrep -u rackboot -f 'rackboot serve --config {}'",
        config.display()
    ));
    let pid = pid.trim();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("dropped=CAP_NET_BIND_SERVICE, CAP_NET_RAW kept=CAP_IPC_LOCK"),
        "{log_text}"
    );
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert!(tasks.len() >= 4, "{} threads", tasks.len());
    for t in tasks {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        let field = |name: &str| {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim();
            u64::from_str_radix(hex, 16).unwrap()
        };
        let name = status.lines().next().unwrap_or("").to_owned();
        // CAP_IPC_LOCK is capability 14.
        assert_eq!(
            (field("CapEff:"), field("CapPrm:")),
            (1 << 14, 1 << 14),
            "{name}"
        );
    }

    let lease = in_ns(
        &cli,
        "busybox udhcpc -i eth0 -n -q -f -t 5 -T 2 -s /bin/true 2>&1",
    );
    let said = String::from_utf8_lossy(&lease.stdout);
    assert!(
        said.contains("obtained") && said.contains("10.84.0.1"),
        "{said}"
    );
    ok(&format!("ip -n {cli} addr add 10.84.0.120/24 dev eth0"));
    let got = dir.0.join("got.efi");
    let o = in_ns(
        &cli,
        &format!(
            "atftp --get -r ipxe.efi -l {} 10.84.0.1 2>&1",
            got.display()
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(sha256(&std::fs::read(&got).unwrap()), sha256(&nbp));
    let o = in_ns(
        &cli,
        "curl -sS -o /dev/null -w '%{http_code} %{size_download}' http://10.84.0.1/ipxe.efi",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200 300000");
    // It locked its state files as that user.
    assert!(state.join("leases").exists());
    drop(server);

    // Without CAP_NET_RAW it says which feature needs it, and stops.
    let o = run(
        "sh",
        &[
            "-c",
            &format!("{} 2>&1", as_unit(&srv, "net_bind_service,ipc_lock", &cmd)),
        ],
    );
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("CAP_NET_RAW"), "{said}");
}
