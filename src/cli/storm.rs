//! `rackboot storm`: plays N machines booting at once and reports how long each
//! phase made them wait. With no `--interface` it stores the built-in demo set
//! in an in-process rackboot on loopback (no root, no config); with one, it
//! plays raw DHCP on that link and follows whatever the servers there answer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rackboot::config::{Config, Level, Overrides};
use rackboot::io::link;
use rackboot::io::storm::{self, Dhcp};
use rackboot::proto::dhcp::{policy, Engine, Settings as DhcpSettings, Subnet};
use rackboot::sim::dhcp::Identity;
use rackboot::sim::fleet::{fleet, Families, Family, Mix, DEFAULT_MIX};
use rackboot::sim::machine::Phase;
use rackboot::sim::report::{Report, Run};
use rackboot::store::{builtin, Snapshot};

/// Options of `rackboot storm`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Machines to boot.
    #[arg(long, value_name = "N", default_value_t = 200)]
    machines: usize,
    /// Firmware kinds and weights (edk2, ipxe-bios, ipxe-efi, uefi-http, grub:
    /// Secure Boot through shim and grub).
    #[arg(long, value_name = "KIND=W,...", default_value = DEFAULT_MIX)]
    mix: String,
    /// Address family the machines boot over: 4, 6 (DHCPv6 and option 59's
    /// URLs, TFTP and HTTP over IPv6), or dual (every other machine of each
    /// kind on IPv6; grub machines stay on IPv4).
    #[arg(long, value_name = "4|6|dual", default_value = "4", value_parser = Families::parse)]
    family: Families,
    /// Seed of the fleet (MACs, UUIDs, power-on times) [default: from the clock, printed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Power the machines on at random times over this many seconds [default: all at once].
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    ramp: f64,
    /// Stop each machine after this phase: dhcp, nbp, ipxe-dhcp, script, kernel, initrd,
    /// installer-dhcp, or answers (alias installer).
    #[arg(long, value_name = "PHASE", default_value = "answers", value_parser = parse_phase)]
    until: Phase,
    /// Play real DHCP as raw frames on this interface against whatever answers there
    /// (root or CAP_NET_RAW) [default: an in-process rackboot on loopback].
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// The TFTP server's request port, with --interface.
    #[arg(long, value_name = "PORT", default_value_t = 69)]
    tftp_port: u16,
    /// Fail a machine whose HTTP server is silent this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    http_timeout: u64,
    /// Fail every machine still booting this many seconds after the start.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    deadline: u64,
    /// Write the report as JSON (schema rackboot-storm/1) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw machines per phase over time and the CDF of boot time to FILE (SVG).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Worker threads of the in-process server [default: one per core].
    #[arg(long, value_name = "N")]
    server_workers: Option<usize>,
    /// I/O backend of the in-process server: auto, uring or mio [default: auto].
    #[arg(long, value_name = "BACKEND", env = "RACKBOOT_BACKEND", value_parser = crate::cli::parse_backend)]
    server_backend: Option<rackboot::config::Backend>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Drop P % of the machines' DHCP and TFTP datagrams and frames, and Q % of
    /// the server's on their way back [default Q: P]; seeded by --seed.
    #[arg(long, value_name = "P[,Q]")]
    loss: Option<String>,
    /// Hold every DHCP and TFTP datagram and frame MS milliseconds each way,
    /// plus up to JITTER more.
    #[arg(long, value_name = "MS[,JITTER]")]
    delay: Option<String>,
    /// Hold P % of the DHCP and TFTP datagrams and frames back past later ones.
    #[arg(long, value_name = "P")]
    reorder: Option<String>,
    /// A machine whose boot fails before its installer runs (its firmware's
    /// DHCP, the NBP, iPXE's DHCP, script, kernel or initrd) starts its
    /// network boot again from DHCP, up to N times, as firmware retrying its
    /// boot options does [default: 0, one attempt].
    #[arg(long, value_name = "N", default_value_t = 0)]
    boot_retries: u32,
    /// DHCP load: new machines a second, in an open-loop stream (with --until
    /// dhcp, and --interface or --relay); each does DISCOVER, REQUEST and ends
    /// at its ACK.
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// DHCP load: seconds the stream lasts.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    duration: f64,
    /// DHCP load: send as a relay from this address of the host (giaddr,
    /// port 67) to --server, instead of raw frames on --interface.
    #[arg(long, value_name = "ADDR")]
    relay: Option<std::net::Ipv4Addr>,
    /// DHCP load with --relay: the servers each message goes to.
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    server: Vec<std::net::Ipv4Addr>,
    /// DHCP load: an ACK later than this many milliseconds after its
    /// DISCOVER counts as late.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    late_ms: u64,
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    Ok(match s {
        "dhcp" => Phase::Dhcp,
        "nbp" | "tftp" => Phase::Nbp,
        "ipxe-dhcp" => Phase::IpxeDhcp,
        "script" => Phase::Script,
        "kernel" => Phase::Kernel,
        "initrd" => Phase::Initrd,
        "installer-dhcp" => Phase::InstallerDhcp,
        "answers" | "installer" | "preseed" => Phase::Answers,
        _ => {
            return Err(
                "expected dhcp, nbp, ipxe-dhcp, script, kernel, initrd, installer-dhcp or answers"
                    .into(),
            )
        }
    })
}

/// Where the in-process server keeps the IPv6 machines' iPXE script.
const SCRIPT6: &str = "/boot6.ipxe";

/// Runs the storm; exit status 0 when every machine booted, 1 when any failed,
/// 2 when the storm could not be set up.
pub(crate) fn run(args: &Args) -> ExitCode {
    match play(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rackboot storm: {e}");
            ExitCode::from(2)
        }
    }
}

/// The open-loop DHCP stream (`--rate`): true when every machine was ACKed
/// and no address went to two.
fn load(args: &Args, rate: u32) -> Result<bool, String> {
    use rackboot::io::storm::load;
    if args.until != Phase::Dhcp {
        return Err("--rate plays DHCP only: add --until dhcp".into());
    }
    if args.family != Families::V4 {
        return Err(
            "--rate plays DHCPv4 only: drop --family (DHCPv6 load: perfdhcp -6, as bench/dhcp --family 6 runs it)"
                .into(),
        );
    }
    if rate == 0 || !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        return Err("--rate must be at least 1 and --duration from 0 to 3600 seconds".into());
    }
    let path =
        match (&args.interface, args.relay) {
            (Some(_), Some(_)) => {
                return Err(
                    "give --interface (raw frames) or --relay (UDP as a relay), not both".into(),
                )
            }
            (Some(name), None) => load::Path::Raw(rackboot::io::link::Link::open(name)?),
            (None, Some(relay)) if !args.server.is_empty() => load::relay(relay, &args.server)?,
            (None, Some(_)) => {
                return Err("--relay needs --server ADDR[,ADDR]: where the relay sends".into())
            }
            (None, None) => return Err(
                "--rate needs a target: --interface IF (raw frames) or --relay ADDR --server ADDR"
                    .into(),
            ),
        };
    let settings = load::Load {
        rate,
        duration: Duration::from_secs_f64(args.duration),
        late: Duration::from_millis(args.late_ms),
        grace: Duration::from_secs(3),
        seed: args.seed.unwrap_or_else(clock_seed),
    };
    let report = load::run(&path, settings);
    print!("{}", report.text(&settings));
    if let Some(path) = &args.json {
        std::fs::write(path, report.json(&settings).to_string())
            .map_err(|e| format!("cannot write --json {}: {e}", path.display()))?;
    }
    Ok(report.unanswered() == 0 && report.naked == 0 && report.duplicates == 0)
}

fn play(args: &Args) -> Result<bool, String> {
    if let Some(rate) = args.rate {
        return load(args, rate);
    }
    let mix = Mix::parse(&args.mix)?;
    if args.machines == 0 {
        return Err("--machines must be at least 1".into());
    }
    if !(args.ramp.is_finite() && args.ramp >= 0.0) {
        return Err("--ramp must be a number of seconds, 0 or more".into());
    }
    let model = rackboot::sim::faults::Model::parse(
        args.loss.as_deref(),
        args.delay.as_deref(),
        args.reorder.as_deref(),
    )?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    let mut specs = fleet(
        args.machines,
        &mix,
        Duration::from_secs_f64(args.ramp),
        seed,
    );
    args.family.assign(&mut specs)?;
    let v6 = specs.iter().any(|s| s.family == Family::V6);
    let (dhcp, target, tftp_port) = match &args.interface {
        Some(name) => (
            Dhcp::Raw {
                link: link::Link::open(name)?,
                v6: v6.then(|| link::Link::open6(name)).transpose()?,
            },
            format!("the servers on {name}"),
            args.tftp_port,
        ),
        None => {
            let grub: Vec<[u8; 6]> = specs
                .iter()
                .filter(|s| s.identity == Identity::Grub)
                .map(|s| s.mac)
                .collect();
            self_mode(args.server_workers, args.server_backend, &grub, v6)?
        }
    };
    if !args.quiet {
        eprintln!(
            "storm: {} machines against {target}, seed {seed} (replay with --seed {seed})",
            args.machines
        );
        if !model.is_none() {
            eprintln!("storm: faults: {}", model.describe());
        }
    }
    let settings = storm::Settings {
        fleet: specs,
        until: args.until,
        http_timeout: Duration::from_secs(args.http_timeout.max(1)),
        deadline: Duration::from_secs(args.deadline.max(1)),
        tftp_port,
        progress: !args.quiet,
        files_per_machine: match (args.until, &args.interface) {
            (Phase::Dhcp, _) => 0,
            // The machine's socket and the in-process server's, and the
            // server's socket of EDK2's size probe, which may not be closed
            // yet when its download begins.
            (_, None) => 3,
            (_, Some(_)) => 1,
        },
        faults: rackboot::sim::faults::Faults::new(model, seed),
        boot_retries: args.boot_retries,
    };
    let self_mode = args.interface.is_none();
    let cpu_before = storm::process_cpu();
    let done = storm::run(settings, dhcp)?;
    let server_cpu = self_mode.then(|| {
        storm::process_cpu()
            .saturating_sub(cpu_before)
            .saturating_sub(done.cpu)
    });
    let from = |leases: bool| {
        if leases {
            "its leased address"
        } else {
            "this host's address"
        }
    };
    let target = match args.family {
        Families::V4 if done.from_leases => {
            format!("{target}, each machine from its leased address")
        }
        Families::V4 => format!("{target}, every machine from this host's address"),
        Families::V6 if done.from_leases6 => {
            format!("{target}, each machine from its leased address")
        }
        Families::V6 => format!("{target}, every machine from this host's address"),
        Families::Dual => format!(
            "{target}, each IPv4 machine from {}, each IPv6 one from {}",
            from(done.from_leases),
            from(done.from_leases6)
        ),
    };
    let run = Run {
        seed,
        target,
        until: args.until,
        elapsed: done.elapsed,
        storm_cpu: done.cpu,
        server_cpu,
    };
    let mut report = Report::new(&run, &done.outcomes);
    report.faults = rackboot::sim::report::Faults {
        model: model.describe(),
        dropped_out: done.dropped.0,
        dropped_in: done.dropped.1,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json())
            .map_err(|e| format!("cannot write --json {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let svg = rackboot::sim::svg::render(&report, &done.outcomes, done.elapsed);
        std::fs::write(path, svg)
            .map_err(|e| format!("cannot write --svg {}: {e}", path.display()))?;
    }
    Ok(report.failed == 0)
}

/// Starts rackboot in this process on loopback with the built-in demo set and
/// a boot script naming its own port; DHCP is an engine the driver calls.
/// Machines of `grub` (their MACs) are pinned to a grub profile of the demo
/// kernel and initrd, as a Secure Boot fleet's inventory pins them: DHCP
/// hands them shim, which with grub is served as the demo's binaries are.
/// With `v6` (IPv6 machines play), the server listens on `[::]` (both
/// families) and a DHCPv6 engine answers as the server `::1`: its iPXE
/// script (`/boot6.ipxe`) names `[::1]`, so IPv6 machines load everything
/// over IPv6.
fn self_mode(
    workers: Option<usize>,
    backend: Option<rackboot::config::Backend>,
    grub: &[[u8; 6]],
    v6: bool,
) -> Result<(Dhcp, String, u16), String> {
    let any: std::net::IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };
    let overrides = Overrides {
        backend,
        http: Some(SocketAddr::from((any, 0))),
        tftp: Some(SocketAddr::from((any, 0)).to_string()),
        workers,
        no_access_log: true,
        log_level: Some(Level::Warn),
        ..Overrides::default()
    };
    let mut config = Config::load(None, &overrides).map_err(|e| e.to_string())?;
    let bound = rackboot::runtime::bind(&config).map_err(|e| e.to_string())?;
    let (Some(http), Some(tftp)) = (bound.http_addr(), bound.tftp_addr()) else {
        return Err("the in-process server bound no address".into());
    };
    let options = rackboot::store::Options {
        mlock: false,
        ..config.store
    };
    let http4 = SocketAddr::from((Ipv4Addr::LOCALHOST, http.port()));
    let script = builtin::storm_script(&format!("http://{http4}"));
    let mut snapshot =
        Snapshot::builtin_with_script(&options, &script).map_err(|e| e.to_string())?;
    if v6 {
        let http6 = SocketAddr::from((Ipv6Addr::LOCALHOST, http.port()));
        let script6 = builtin::storm_script(&format!("http://{http6}"));
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(rackboot::io::clock::unix_now());
        snapshot
            .insert_memory(SCRIPT6, script6.as_bytes(), mtime, &options)
            .map_err(|e| e.to_string())?;
    }
    let profiles = if grub.is_empty() {
        None
    } else {
        let profiles = Arc::new(builtin::grub_profiles(grub, &http4.to_string())?);
        for (url, bytes, mtime) in builtin::grub_binaries() {
            snapshot
                .insert_memory(url, &bytes, mtime, &options)
                .map_err(|e| e.to_string())?;
        }
        config.boot = Some(rackboot::config::boot::Boot {
            profiles: Arc::clone(&profiles),
            files: Vec::new(),
            find_ipxe: false,
            state_file: (PathBuf::new(), false),
            shared: None,
            media: None,
        });
        Some(profiles)
    };
    let mut rules = policy::defaults();
    policy::fit(
        &mut rules,
        |p| snapshot.get(p).is_some(),
        profiles.is_some(),
        false,
    );
    std::thread::Builder::new()
        .name("rackboot-server".into())
        .spawn(move || {
            let book = std::sync::Arc::new(rackboot::machines::Book::memory(
                "the storm's in-process server keeps no machines state",
            ));
            let result = rackboot::runtime::publish(&config, snapshot, &book)
                .map_err(|e| e.to_string())
                .and_then(|p| bound.run(&config, p).map_err(|e| e.to_string()));
            if let Err(e) = result {
                eprintln!("rackboot storm: the in-process server stopped: {e}");
            }
        })
        .map_err(|e| format!("cannot start the in-process server: {e}"))?;
    let server = Ipv4Addr::LOCALHOST;
    let subnet = Subnet::pool(
        Ipv4Addr::new(127, 0, 0, 0),
        8,
        (
            Ipv4Addr::new(127, 77, 0, 1),
            Ipv4Addr::new(127, 77, 255, 254),
        ),
        3600,
    );
    let profiles = profiles.map(rackboot::proto::dhcp::SharedProfiles);
    let engine6 = v6.then(|| {
        let mut rules = rules.clone();
        for r in rules.iter_mut().filter(|r| r.name == "ipxe") {
            if let Some(a) = r.action.as_mut() {
                a.file = Some(format!("http://{{http}}{SCRIPT6}"));
            }
        }
        let settings = rackboot::proto::dhcp6::Settings {
            duid: rackboot::proto::dhcp6::duid_ll([0x02, 0, 0, 0x5e, 0, 1]),
            // Loopback's prefix: `::1`, the server, picks it.
            subnets: vec![rackboot::proto::dhcp6::Subnet {
                prefix: Ipv6Addr::UNSPECIFIED,
                len: 64,
                ranges: vec![(
                    Ipv6Addr::new(0, 0, 0, 0, 0x77, 0, 0, 1),
                    Ipv6Addr::new(0, 0, 0, 0, 0x77, 0, 0xffff, 0xfffe),
                )],
                preferred: 3000,
                valid: 3600,
                dns: Vec::new(),
                domains: Vec::new(),
            }],
            rules,
            http_port: http.port(),
            profiles: profiles.clone(),
            ..rackboot::proto::dhcp6::Settings::default()
        };
        let engine = rackboot::proto::dhcp6::Engine::new(
            settings,
            rackboot::lease::Table6::default(),
            rackboot::io::clock::now(),
            rackboot::io::clock::unix_now(),
        );
        (Box::new(engine), Ipv6Addr::LOCALHOST)
    });
    let settings = DhcpSettings {
        subnets: vec![subnet],
        rules,
        profiles,
        http_port: http.port(),
        ..DhcpSettings::default()
    };
    let engine = Engine::new(
        settings,
        rackboot::lease::Table::default(),
        rackboot::io::clock::now(),
        rackboot::io::clock::unix_now(),
    );
    let target = format!("rackboot in-process (HTTP {http}, TFTP {tftp}, DHCP engine in-process)");
    Ok((
        Dhcp::Engine {
            engine: Box::new(engine),
            server,
            v6: engine6,
        },
        target,
        tftp.port(),
    ))
}

/// A seed from the wall clock and the process id, for a storm not asked to
/// replay one.
fn clock_seed() -> u64 {
    rackboot::io::clock::unix_now() % 1_000_000 * 1000 + u64::from(std::process::id() % 1000)
}
