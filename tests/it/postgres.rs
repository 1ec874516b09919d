//! Several rackboot servers over one PostgreSQL lease store: PostgreSQL from
//! Debian's package, initialised and started here in a temporary directory
//! (its socket there, TCP on a private loopback port), torn down after.
//! Servers run in network namespaces on one bridged segment and reach the
//! database through its Unix socket (a path, so namespaces share it);
//! `rackboot storm` plays the machines as raw frames. Needs root.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::dhcp::Capture;
use crate::ns::{sh, spawn_in, Kill, Net};
use crate::storm::{n, storm};
use crate::support::{run, Fixture, Server, TempDir};

/// A PostgreSQL server of its own.
pub(crate) struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub(crate) port: u16,
}

fn as_postgres(tool: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec!["-u", "postgres", "--", tool.to_str().unwrap()];
    all.extend_from_slice(args);
    run("runuser", &all)
}

impl Postgres {
    pub(crate) fn start() -> Self {
        let pkgs = run(
            "sh",
            &[
                "-c",
                "dpkg-query -W -f='${Package}\\n' 'postgresql-[0-9]*' 2>/dev/null",
            ],
        );
        let pkg = String::from_utf8_lossy(&pkgs.stdout)
            .lines()
            .find(|p| p["postgresql-".len()..].chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned);
        let initdb = pkg.and_then(|p| {
            let files = run("dpkg", &["-L", &p]);
            String::from_utf8_lossy(&files.stdout)
                .lines()
                .find(|l| l.ends_with("/bin/initdb"))
                .map(PathBuf::from)
        });
        let Some(initdb) = initdb else {
            panic!("PostgreSQL is not installed: apt-get install postgresql");
        };
        let bin = initdb.parent().unwrap().to_path_buf();
        let dir = TempDir::new("pg");
        sh(&format!("chown postgres {}", dir.0.display()));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let data = dir.0.join("data");
        let o = as_postgres(
            &initdb,
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "rackboot",
                "--no-sync",
            ],
        );
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let pg = Self { dir, bin, port };
        pg.up();
        let o = as_postgres(
            &pg.bin.join("createdb"),
            &[
                "-h",
                pg.socket(),
                "-p",
                &port.to_string(),
                "-U",
                "rackboot",
                "rackboot",
            ],
        );
        assert!(
            o.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        pg
    }

    /// pg_ctl on this server's data directory, as the postgres user.
    fn ctl(&self, args: &[&str]) -> Output {
        let data = self.dir.0.join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres(&self.bin.join("pg_ctl"), &all)
    }

    fn socket(&self) -> &str {
        self.dir.0.to_str().unwrap()
    }

    /// Starts (or restarts) the server and waits until it accepts.
    pub(crate) fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            self.port,
            self.socket()
        );
        let log = self.dir.0.join("log");
        let o = self.ctl(&["-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"]);
        assert!(
            o.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once (as a crash would: no checkpoint).
    pub(crate) fn down(&self) {
        let o = self.ctl(&["-m", "immediate", "-w", "stop"]);
        assert!(
            o.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The connection string rackboot is given: the Unix socket.
    pub(crate) fn url(&self) -> String {
        format!(
            "host={} port={} user=rackboot dbname=rackboot",
            self.socket(),
            self.port
        )
    }

    /// One query's rows, `|`-separated.
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        let psql = self.bin.join("psql");
        let o = as_postgres(
            &psql,
            &[
                "-At",
                "-h",
                self.socket(),
                "-p",
                &self.port.to_string(),
                "-U",
                "rackboot",
                "rackboot",
                "-c",
                sql,
            ],
        );
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.ctl(&["-m", "immediate", "stop"]);
    }
}

/// A bridged segment of /20 (2,000 machines' worth): servers on `.0.1`,
/// `.0.2`, ... and one namespace for the storm, without an address.
fn segment(net: &mut Net, servers: usize) -> (Vec<String>, String) {
    let sw = net.ns("w");
    sh(&format!(
        "ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up"
    ));
    let mut out = Vec::new();
    for i in 0..servers {
        let ns = net.ns(&format!("s{i}"));
        let ip = format!("10.210.0.{}/20", i + 1);
        crate::ns::Net::veth(&sw, &format!("p{i}"), None, &ns, "eth0", Some(&ip));
        sh(&format!("ip -n {sw} link set p{i} master br0"));
        out.push(ns);
    }
    let c = net.ns("c");
    crate::ns::Net::veth(&sw, "pc", None, &c, "eth0", None);
    sh(&format!("ip -n {sw} link set pc master br0"));
    (out, c)
}

/// What server `index` serves: a boot script, and a small kernel and
/// initrd (the storm's machines fetch them from the server that answered
/// their DHCP).
fn tree(dir: &TempDir, index: usize) -> PathBuf {
    let www = dir.0.join(format!("www-{index}"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("boot.ipxe"),
        "#!ipxe\nkernel vmlinuz initrd=initrd.gz auto=true\ninitrd initrd.gz\nboot\n",
    )
    .unwrap();
    for (name, len, seed) in [("vmlinuz", 64 << 10, 2), ("initrd.gz", 256 << 10, 3)] {
        std::fs::write(www.join(name), rackboot::store::builtin::filler(len, seed)).unwrap();
    }
    www
}

/// Server `index` of `servers` on its namespace, leases in `pg`.
fn start(
    ns: &str,
    index: usize,
    servers: usize,
    pg: &Postgres,
    dir: &TempDir,
    subnets: &str,
) -> Server {
    let config = dir.0.join(format!("rackboot-{index}.toml"));
    let balance = if servers > 1 {
        format!("[dhcp.balance]\nservers = {servers}\nindex = {index}\nwait_secs = 3\n")
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "[dhcp]\ninterface = \"eth0\"\nprobe_ms = 0\nanswers_per_mac = 0\n\
             [[dhcp.subnet]]\nranges = [\"10.210.1.0-10.210.12.255\"]\n{subnets}{balance}\
             [store]\nbackend = \"postgres\"\nurl = \"{}\"\nserver_name = \"server-{index}\"\n",
            pg.url()
        ),
    )
    .unwrap();
    Server::start_in(
        Some(ns),
        &format!("10.210.0.{}", index + 1),
        &tree(dir, index),
        &[
            "--config",
            config.to_str().unwrap(),
            "--no-access-log",
            "--interface",
            "eth0",
        ],
    )
}

/// The storm's DHCP alone: `machines` from `c`, each its own MAC (`seed`).
fn dhcp_storm(c: &str, machines: usize, seed: u64, ramp: &str) -> (Output, serde_json::Value) {
    storm(
        Some(c),
        &[
            "--interface",
            "eth0",
            "--until",
            "dhcp",
            "--machines",
            &machines.to_string(),
            "--ramp",
            ramp,
            "--seed",
            &seed.to_string(),
            "--deadline",
            "120",
            "--quiet",
        ],
    )
}

/// A storm in the background (`args` after `storm --interface eth0`), its
/// JSON report read by [`Background::report`].
struct Background {
    running: Kill,
    _dir: TempDir,
    json: PathBuf,
}

impl Background {
    fn start(c: &str, args: &str) -> Self {
        let dir = TempDir::new("pg-storm");
        let json = dir.0.join("r.json");
        let running = Kill(spawn_in(
            c,
            &format!(
                "{} storm --interface eth0 --quiet --json {} {args}",
                env!("CARGO_BIN_EXE_rackboot"),
                json.display()
            ),
        ));
        Self {
            running,
            _dir: dir,
            json,
        }
    }

    /// Waits for the storm's end (at most `secs`): its report.
    fn report(mut self, secs: u64) -> serde_json::Value {
        assert!(
            self.running.wait_at_most(Duration::from_secs(secs)),
            "the storm did not end"
        );
        serde_json::from_str(&std::fs::read_to_string(&self.json).unwrap()).unwrap()
    }
}

/// No address ACKed to two MACs on the wire, and every ACK in the store.
fn one_owner_each(acks: &[(String, String)], pg: &Postgres) -> HashMap<String, String> {
    let mut owner: HashMap<String, String> = HashMap::new();
    for (ip, mac) in acks {
        let prev = owner.insert(ip.clone(), mac.clone());
        assert!(
            prev.as_ref().is_none_or(|p| p == mac),
            "{ip} ACKed to {} and {mac}",
            prev.unwrap()
        );
    }
    let rows =
        pg.query("SELECT host(ip), encode(hw, 'hex') FROM rackboot_lease4 WHERE state = 'bound'");
    let held: HashMap<String, String> = rows
        .iter()
        .map(|r| {
            let (ip, hw) = r.split_once('|').unwrap();
            let mac: Vec<String> = (0..hw.len())
                .step_by(2)
                .map(|i| hw[i..i + 2].to_owned())
                .collect();
            (ip.to_owned(), mac.join(":"))
        })
        .collect();
    for (ip, mac) in &owner {
        assert_eq!(
            held.get(ip),
            Some(mac),
            "ACKed lease {ip} -> {mac} is not in the store"
        );
    }
    held
}

/// PostgreSQL, a segment with `servers` namespaces and the storm's, the
/// served files, and a capture of every server's reply on the storm's side.
struct Rig {
    pg: Postgres,
    net: Net,
    servers: Vec<String>,
    c: String,
    dir: TempDir,
    capture: Option<Capture>,
}

impl Rig {
    fn new(tag: &str, servers: usize) -> Self {
        let pg = Postgres::start();
        let mut net = Net::new(tag);
        let (names, c) = segment(&mut net, servers);
        let dir = TempDir::new(tag);
        let capture = Some(Capture::start(
            &c,
            "eth0",
            "udp src port 67",
            &dir.0.join("acks.pcap"),
        ));
        Self {
            pg,
            net,
            servers: names,
            c,
            dir,
            capture,
        }
    }

    /// Server `index` of all the rig's.
    fn server(&self, index: usize) -> Server {
        self.server_with(index, "")
    }

    /// Server `index`, serving `subnets` (TOML) beside its segment's.
    fn server_with(&self, index: usize, subnets: &str) -> Server {
        let n = self.servers.len();
        start(&self.servers[index], index, n, &self.pg, &self.dir, subnets)
    }

    /// Gives the storm's side an address and takes the pool's addresses as
    /// local, so that machines fetch over TCP from their leased addresses.
    fn fetch_from_leases(&self) {
        sh(&format!(
            "ip -n {} addr add 10.210.0.100/20 dev eth0",
            self.c
        ));
        for pool in [
            "10.210.1.0/24",
            "10.210.2.0/23",
            "10.210.4.0/22",
            "10.210.8.0/22",
            "10.210.12.0/24",
        ] {
            sh(&format!("ip -n {} route add local {pool} dev eth0", self.c));
        }
    }

    /// The capture's ACKs, checked against the store: its bound leases.
    fn checked(&mut self) -> HashMap<String, String> {
        let acks = self.capture.take().unwrap().acked();
        one_owner_each(&acks, &self.pg)
    }
}

fn acks_of(s: &Server) -> u64 {
    s.metric("rackboot_dhcp_replies_total{type=\"ack\"}")
}

#[test]
fn two_servers_share_a_storm_through_one_store_with_no_address_twice() {
    let _turn = crate::support::heavy();
    let mut rig = Rig::new("pg", 2);
    let (a, b) = (rig.server(0), rig.server(1));
    rig.fetch_from_leases();
    // Each machine boots to its installer's DHCP: firmware DHCP, iPXE's
    // script, kernel and initrd from the server that answered, then the
    // installer's own DHCP (the same lease, renewed).
    let (out, r) = storm(
        Some(&rig.c),
        &[
            "--interface",
            "eth0",
            "--until",
            "installer-dhcp",
            "--mix",
            "ipxe-bios=1",
            "--machines",
            "2000",
            "--ramp",
            "4",
            "--seed",
            "11",
            "--deadline",
            "150",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (2000, 0), "{stdout}");
    for p in ["dhcp", "script", "kernel", "initrd", "installer-dhcp"] {
        assert_eq!(
            n(&crate::storm::phase(&r, p)["count"]),
            2000,
            "{p}: {stdout}"
        );
    }
    let held = rig.checked();
    assert_eq!(held.len(), 2000, "every machine's lease is in the store");
    let distinct: std::collections::HashSet<_> = held.values().collect();
    assert_eq!(distinct.len(), 2000, "one address per machine");
    // The load is split: each server ACKed a fair share.
    let (na, nb) = (acks_of(&a), acks_of(&b));
    assert!(na >= 600 && nb >= 600, "ACKs: server 0 {na}, server 1 {nb}");
    // Each learned the other's leases from the store's announcements.
    for s in [&a, &b] {
        assert!(s.metric("rackboot_dhcp_store_learned_total") >= 600);
        assert_eq!(s.metric("rackboot_dhcp_store_failures_total"), 0);
    }
    // The admin API's lease list is the store's: both servers' leases.
    let (code, body) = a.api("GET", "/api/v1/leases");
    assert_eq!(code, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed.iter().filter(|l| l["state"] == "active").count(),
        2000
    );
    // `rackboot leases` and `db check` read the store.
    let config = rig.dir.0.join("rackboot-0.toml");
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &["leases", "--config", config.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains(" active ")).count(),
        2000,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &["db", "check", "--config", config.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && text.contains("2000 active leases")
            && text.contains("written by 2 servers"),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_server_killed_mid_storm_is_covered_by_the_other_and_rejoins_without_a_duplicate() {
    let _turn = crate::support::heavy();
    let mut rig = Rig::new("pk", 2);
    let (a, b) = (rig.server(0), rig.server(1));
    rig.fetch_from_leases();
    // 2,000 machines over 10 s; server 1 dies 3 s in. A machine that took
    // server 1's OFFER just before cannot have it ACKed: its firmware fails
    // this network boot and starts it again (--boot-retries), and then
    // server 0 answers once its DISCOVERs' `secs` reach wait_secs. To the
    // installer's DHCP: an installer that chose server 1 sends its REQUESTs,
    // then starts over with DISCOVER, as udhcpc does.
    let storm = Background::start(
        &rig.c,
        "--until installer-dhcp --mix ipxe-bios=1 --machines 2000 --ramp 10 --seed 21 \
         --boot-retries 2 --deadline 150",
    );
    std::thread::sleep(Duration::from_secs(3));
    let before = acks_of(&b);
    drop(b); // SIGKILL
    let r = storm.report(150);
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (2000, 0), "{r:#}");
    assert!(before > 0, "server 1 answered before it died");
    // Server 0 answered server 1's share once those clients had waited.
    let stepped_in = a.metric_sum("rackboot_dhcp_unanswered_total", |l| {
        l.contains("other_servers_share")
    });
    assert!(stepped_in > 0, "server 0 never left a client to server 1");
    // Server 1 back: it reads the store again and serves new machines
    // without handing out an address already held.
    let b = rig.server(1);
    let (out, r) = dhcp_storm(&rig.c, 300, 22, "2");
    assert_eq!(
        (n(&r["booted"]), n(&r["failed"])),
        (300, 0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(acks_of(&b) > 50, "the restarted server took its share");
    assert_eq!(rig.checked().len(), 2300);
}

#[test]
fn the_database_stopped_for_ten_seconds_holds_acks_back_and_loses_none() {
    let _turn = crate::support::heavy();
    let mut rig = Rig::new("pd", 1);
    let a = rig.server(0);
    // EDK2 and UEFI HTTP boot: their retries (60 s) outlast the outage.
    let storm = Background::start(
        &rig.c,
        "--until dhcp --machines 600 --ramp 20 --seed 31 --mix edk2=1,uefi-http=1 --deadline 150",
    );
    std::thread::sleep(Duration::from_secs(4));
    rig.pg.down();
    std::thread::sleep(Duration::from_secs(10));
    let failing = a.metric("rackboot_dhcp_store_failing");
    rig.pg.up();
    let r = storm.report(200);
    assert_eq!(failing, 1, "the outage showed in the metrics");
    assert!(a.metric("rackboot_dhcp_store_failures_total") > 0);
    // EDK2 retries for 60 s: every machine booted once the store was back.
    assert_eq!((n(&r["booted"]), n(&r["failed"])), (600, 0), "{r:#}");
    assert_eq!(a.metric("rackboot_dhcp_store_failing"), 0);
    // No ACK left without its lease in the store, before or after the stop.
    assert_eq!(rig.checked().len(), 600);
    let log = a.log().join("\n");
    assert!(
        log.contains("PostgreSQL lease store is unreachable")
            || log.contains("lease commits to PostgreSQL fail"),
        "{log}"
    );
}

#[test]
fn a_store_config_mistake_names_the_key() {
    let dir = TempDir::new("pg-config");
    let config = dir.0.join("rackboot.toml");
    let bin = env!("CARGO_BIN_EXE_rackboot");
    const SUBNET: &str = "[dhcp]\ninterface = \"lo\"\n[[dhcp.subnet]]\nnetwork = \"127.0.0.0/8\"\nranges = [\"127.0.0.100-127.0.0.199\"]\n";
    for (text, key) in [
        (
            SUBNET.to_owned() + "[store]\nbackend = \"mysql\"\n",
            "store.backend",
        ),
        (
            SUBNET.to_owned() + "[store]\nbackend = \"postgres\"\n",
            "store.url",
        ),
        (
            SUBNET.to_owned() + "[store]\nurl = \"host=/tmp\"\n",
            "store.url",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"host=/tmp\"\n".to_owned(),
            "store.backend",
        ),
        (
            SUBNET.to_owned() + "[dhcp.balance]\nservers = 2\nindex = 2\n",
            "dhcp.balance.index",
        ),
        (
            SUBNET.to_owned() + "[dhcp.balance]\nservers = 1\nindex = 0\n",
            "dhcp.balance.servers",
        ),
    ] {
        std::fs::write(&config, &text).unwrap();
        let o = run(bin, &["check", "--config", config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(key), "{text}: {err}");
    }
    // A URL nothing answers: `check` reaches for the database and says so.
    std::fs::write(
        &config,
        SUBNET.to_owned() + "[store]\nbackend = \"postgres\"\nurl = \"postgresql://rackboot@127.0.0.1:1/rackboot\"\n",
    )
    .unwrap();
    let o = run(bin, &["check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("store.url: cannot reach PostgreSQL"),
        "{err}"
    );
}

#[test]
fn two_servers_behind_one_relay_serve_its_two_subnets() {
    let _turn = crate::support::heavy();
    assert!(
        run("sh", &["-c", "command -v dhcrelay"]).status.success(),
        "dhcrelay is missing: apt-get install isc-dhcp-relay"
    );
    // The storm's namespace is the relay here: on the segment as 10.210.0.3,
    // with a link to each relayed subnet's machines.
    let mut rig = Rig::new("pr", 2);
    let relay = rig.c.clone();
    sh(&format!("ip -n {relay} addr add 10.210.0.3/20 dev eth0"));
    let mut racks = Vec::new();
    for (i, net) in [(1, 211), (2, 212)] {
        let ns = rig.net.ns(&format!("r{i}"));
        let gw = format!("10.{net}.0.1/24");
        crate::ns::Net::veth(&relay, &format!("down{i}"), Some(&gw), &ns, "eth0", None);
        for s in &rig.servers {
            sh(&format!(
                "ip -n {s} route add 10.{net}.0.0/24 via 10.210.0.3"
            ));
        }
        racks.push(ns);
    }
    let subnets = "[[dhcp.subnet]]\nnetwork = \"10.211.0.0/24\"\nranges = [\"10.211.0.100-10.211.0.250\"]\n\
                   [[dhcp.subnet]]\nnetwork = \"10.212.0.0/24\"\nranges = [\"10.212.0.100-10.212.0.250\"]\n";
    let (a, b) = (rig.server_with(0, subnets), rig.server_with(1, subnets));
    let _relay = Kill(spawn_in(
        &relay,
        "exec dhcrelay -4 -d -a -iu eth0 -id down1 -id down2 10.210.0.1 10.210.0.2",
    ));
    std::thread::sleep(Duration::from_millis(500));
    // 100 machines in each relayed subnet at once.
    let storms: Vec<Background> = racks
        .iter()
        .zip([41, 42])
        .map(|(ns, seed)| {
            Background::start(
                ns,
                &format!("--until dhcp --machines 100 --ramp 2 --seed {seed} --deadline 90"),
            )
        })
        .collect();
    for s in storms {
        let r = s.report(120);
        assert_eq!((n(&r["booted"]), n(&r["failed"])), (100, 0), "{r:#}");
    }
    let held = rig.checked();
    for net in ["10.211.", "10.212."] {
        assert_eq!(
            held.keys().filter(|ip| ip.starts_with(net)).count(),
            100,
            "each relayed subnet's machines got its addresses: {held:?}"
        );
    }
    let (na, nb) = (acks_of(&a), acks_of(&b));
    assert!(
        na >= 40 && nb >= 40,
        "ACKs through the relay: server 0 {na}, server 1 {nb}"
    );
}

#[test]
fn servers_migrating_an_empty_database_at_once_both_succeed() {
    // PostgreSQL's start is a burst of CPU and disk: not beside a timed test.
    let _turn = crate::support::heavy();
    let pg = Postgres::start();
    let dir = TempDir::new("pg-migrate");
    let config = dir.0.join("rackboot.toml");
    std::fs::write(
        &config,
        format!(
            "[dhcp]\ninterface = \"lo\"\n[[dhcp.subnet]]\nnetwork = \"127.0.0.0/8\"\n\
             ranges = [\"127.0.0.100-127.0.0.199\"]\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n",
            pg.url()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_rackboot");
    let o = run(bin, &["db", "check", "--config", config.to_str().unwrap()]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("run `rackboot db migrate`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Four at once, as servers of one fleet starting together would.
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(bin)
                .args(["db", "migrate", "--config", config.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(bin, &["db", "check", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("schema version 2, 0 active leases"),
        "{text}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM rackboot_schema"), ["1"]);
}

/// Polls `check` every 10 ms until it returns Ok, at most 10 s (else
/// panics with its last Err); how long it took.
fn eventually(mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let t0 = std::time::Instant::now();
    loop {
        let why = match check() {
            Ok(()) => return t0.elapsed(),
            Err(why) => why,
        };
        assert!(t0.elapsed() < Duration::from_secs(10), "{why}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `s`'s script for `mac` contains `want`; how long it took.
fn until_script(s: &Server, mac: &str, want: &str) -> Duration {
    eventually(|| {
        let body = crate::machines::script(s, mac);
        match body.contains(want) {
            true => Ok(()),
            false => Err(format!(
                "{want:?} never reached this server's script:\n{body}"
            )),
        }
    })
}

#[test]
fn a_machine_changed_through_one_servers_api_boots_the_same_from_the_other() {
    use crate::machines::{get, json, kill_9, script, setup, CONFIG};
    let pg = Postgres::start();
    let f = Fixture::new();
    let dir = TempDir::new("pg-machines");
    let config_of = |name: &str| {
        let text = format!(
            "{CONFIG}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nserver_name = \"{name}\"\n",
            pg.url()
        );
        let path = setup(&dir.0, &text);
        let own = dir.0.join(format!("{name}.toml"));
        std::fs::rename(path, &own).unwrap();
        own.to_str().unwrap().to_owned()
    };
    let (ca, cb) = (config_of("a"), config_of("b"));
    let a = Server::start(&f.root(), &["--config", &ca]);
    let b = Server::start(&f.root(), &["--config", &cb]);
    let mac = "52:54:00:aa:00:02";
    assert!(script(&b, "52-54-00-aa-00-02").contains("boots profile debian"));

    // A pins a profile and a name: B's next scripts boot it.
    let (code, body) = a.api_json(
        "PUT",
        &format!("/api/v1/machines/{mac}"),
        r#"{"profile":"db","hostname":"db-7"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let took = until_script(&b, "52-54-00-aa-00-02", "db=db-7");
    eprintln!("a change on A reached B's scripts in {took:?}");
    let (code, body) = b.api("GET", &format!("/api/v1/machines/{mac}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["profile"], "db", "{body}");
    assert_eq!(json(&body)["hostname"], "db-7", "{body}");
    // The row is in the database, written by A.
    assert_eq!(
        pg.query("SELECT server || ' ' || (record->'machine'->>'profile') FROM rackboot_machine"),
        ["a db"]
    );

    // B labels a machine the file does not know; A boots it with the label.
    let other = "02:00:00:00:00:07";
    let (code, body) = b.api_json(
        "PATCH",
        &format!("/api/v1/machines/{other}"),
        r#"{"labels":{"rack":"r9"},"vars":{"disk":"/dev/nvme0n1"}}"#,
    );
    assert_eq!(code, 200, "{body}");
    until_script(&a, "02-00-00-00-00-07", "rescue r9 /dev/nvme0n1");

    // Install-once: the installer's done URL, signed by A, is honoured by B
    // (one key for the fleet), and then both boot the machine from disk.
    let once = "52-54-00-aa-00-05";
    assert!(script(&a, once).contains("netboot=install"));
    let (code, answers) = get(&a, &format!("/config?mac={once}"));
    assert_eq!(code, 200, "{answers}");
    let done = answers
        .split_whitespace()
        .find(|w| w.contains("/done/"))
        .unwrap_or_else(|| panic!("no done URL in {answers}"))
        .replace(&a.addr.to_string(), &b.addr.to_string());
    let (code, _, body) = crate::support::curl(&[&done]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    for s in [&a, &b] {
        until_script(s, once, "\nexit\n");
    }
    // Put back to installing through A: a new round; B boots the installer
    // again and the old done URL no longer works on either.
    let (code, body) = a.api_json(
        "PATCH",
        "/api/v1/machines/52:54:00:aa:00:05",
        r#"{"netboot":"install"}"#,
    );
    assert_eq!(code, 200, "{body}");
    until_script(&b, once, "netboot=install");
    assert_eq!(crate::support::curl(&[&done]).0, 410);

    // B restarted after kill -9 reads every record from the store.
    kill_9(&b);
    drop(b);
    let b = Server::start(&f.root(), &["--config", &cb]);
    assert!(script(&b, "52-54-00-aa-00-02").contains("db=db-7"));
    assert!(script(&b, "02-00-00-00-00-07").contains("rescue r9 /dev/nvme0n1"));
    assert!(script(&b, once).contains("netboot=install"));

    // The database stopped: scripts go on from what each server holds, a
    // change is refused and says why, and nothing is lost when it returns.
    pg.down();
    assert!(script(&a, "52-54-00-aa-00-02").contains("db=db-7"));
    let (code, body) = a.api_json(
        "PATCH",
        &format!("/api/v1/machines/{mac}"),
        r#"{"hostname":"db-8"}"#,
    );
    assert_ne!(code, 200, "{body}");
    assert!(body.contains("PostgreSQL store"), "{body}");
    assert!(script(&b, "52-54-00-aa-00-02").contains("db=db-7"));
    pg.up();
    let (code, body) = a.api_json(
        "PATCH",
        &format!("/api/v1/machines/{mac}"),
        r#"{"hostname":"db-8"}"#,
    );
    assert_eq!(code, 200, "{body}");
    // B's listener reconnects (each second) and reads everything again.
    until_script(&b, "52-54-00-aa-00-02", "db=db-8");
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &["db", "check", "--config", &ca],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("3 machine records"),
        "{text}"
    );

    // A state file beside the store is a mistake, named.
    let o = run(
        env!("CARGO_BIN_EXE_rackboot"),
        &[
            "check",
            "--config",
            &ca,
            "--boot-state-file",
            "/tmp/x.state",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("boot.state_file"),
        "{err}"
    );
}

/// Waits until `sql` returns `want`.
fn until_rows(pg: &Postgres, sql: &str, want: &[&str]) {
    eventually(|| {
        let got = pg.query(sql);
        match got == want {
            true => Ok(()),
            false => Err(format!("{sql}: {got:?}, not {want:?}")),
        }
    });
}

#[test]
fn reservations_declines_and_releases_hold_across_the_pair() {
    use crate::dhcp::{ack_field, client};
    let rig = Rig::new("pv", 2);
    let host = "[[dhcp.host]]\nmac = \"52:54:00:cc:00:01\"\nip = \"10.210.5.5\"\n";
    let servers = [rig.server_with(0, host), rig.server_with(1, host)];
    rig.fetch_from_leases();
    let dora = |mac: &str| {
        let (ok, out) = client(&rig.c, &format!("eth0 {mac} dora --wait 2 --first"));
        assert!(ok, "{out}");
        (
            ack_field(&out, "yiaddr").unwrap(),
            ack_field(&out, "server").unwrap(),
        )
    };
    let state = |ip: &str| format!("SELECT state FROM rackboot_lease4 WHERE ip = '{ip}'");

    // The reserved machine gets its address from whichever server answers,
    // and the store holds it as that machine's.
    let (ip, _) = dora("52:54:00:cc:00:01");
    assert_eq!(ip, "10.210.5.5");
    until_rows(
        &rig.pg,
        "SELECT encode(hw, 'hex') FROM rackboot_lease4 WHERE ip = '10.210.5.5' AND state = 'bound'",
        &["525400cc0001"],
    );

    // A machine declines its address: the store quarantines it, the other
    // server learns it, and no machine gets it again.
    let learned = |i: usize| servers[i].metric("rackboot_dhcp_store_learned_total");
    // (The reserved lease's announcement is in by now.)
    std::thread::sleep(Duration::from_millis(500));
    let before = [learned(0), learned(1)];
    let (bad, by) = dora("52:54:00:cc:00:02");
    let other = usize::from(by == "10.210.0.1");
    let (ok, out) = client(
        &rig.c,
        &format!("eth0 52:54:00:cc:00:02 decline {bad} {by}"),
    );
    assert!(ok, "{out}");
    until_rows(&rig.pg, &state(&bad), &["declined"]);
    // The binding and the decline, both announced by the server that made
    // them.
    eventually(|| match learned(other) >= before[other] + 2 {
        true => Ok(()),
        false => Err(format!(
            "server {other} did not learn the binding and the decline: {before:?} -> {}\n{}",
            learned(other),
            servers[other].log().join("\n")
        )),
    });
    let mut answered = HashMap::new();
    for i in 3..23 {
        let (ip, by) = dora(&format!("52:54:00:cc:00:{i:02x}"));
        assert_ne!(ip, bad, "a declined address was handed out again");
        *answered.entry(by).or_insert(0) += 1;
    }
    assert_eq!(answered.len(), 2, "both servers answer: {answered:?}");

    // A RELEASE to the server that gave the lease frees it in the store.
    let (ip, by) = dora("52:54:00:cc:00:30");
    until_rows(&rig.pg, &state(&ip), &["bound"]);
    let (ok, out) = client(&rig.c, &format!("eth0 52:54:00:cc:00:30 release {ip} {by}"));
    assert!(ok, "{out}");
    until_rows(&rig.pg, &state(&ip), &["free"]);
}
