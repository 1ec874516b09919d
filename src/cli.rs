//! Subcommands: `serve` runs the server, `check` validates a configuration and
//! prints what would be served, `storm` (storm.rs) plays a boot storm. Raw arguments are parsed by clap, then validated
//! into a typed `Config` together with the file (ripgrep's two steps).

use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
mod ca;
mod db;
mod media;
mod package;
mod status;
mod storm;

use clap::{Parser, Subcommand};
use rackboot::config::boot::MEDIA_PATH;
use rackboot::config::{self, Config, Level, LogFormat, Overrides};
use rackboot::store::{self, Snapshot};

/// rackboot: a network boot server that serves boot files from memory.
#[derive(Debug, Parser)]
#[command(version = env!("RACKBOOT_VERSION"), about, long_about = None)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the boot files of a directory (or the built-in demo set) over HTTP.
    Serve(Common),
    /// Validate a configuration and print what it would serve, with totals.
    Check(Common),
    /// The running server's DHCP leases (`list`, `free IP`), through its admin
    /// socket; with --dhcp-lease-file or --config and no subcommand, read the
    /// lease journal itself (read-only; for a stopped server).
    Leases(LeasesArgs),
    /// The shared PostgreSQL lease store (`[store] backend = "postgres"`):
    /// `migrate` creates or upgrades its schema, `check` reaches it and says
    /// what it holds.
    Db(db::Args),
    /// Print the rackboot.toml equivalent to a dnsmasq configuration
    /// (--dnsmasq-conf), each item under the line it came from; lines not
    /// carried over are listed on stderr.
    Import(Common),
    /// The machines the running server knows (`list`, `show`, `set`, `delete`),
    /// through its admin socket.
    Machines(admin::MachinesArgs),
    /// Play N machines booting at once and report how long each phase made them wait
    /// (without --interface: against an in-process rackboot on loopback).
    Storm(storm::Args),
    /// Ask the running server to re-read its configuration and files (as SIGHUP
    /// does); exits non-zero, saying why, when it refuses.
    Reload(ReloadArgs),
    /// The fleet's boots as the running server sees them: machines by phase, the
    /// stuck first with their diagnosis; with a MAC, that machine's timeline.
    Status(status::Args),
    /// Make a local certificate authority (kept) and a server certificate
    /// for the names given, for `[http] tls_cert`/`tls_key`; prints the CA's
    /// fingerprint for iPXE's `trust`.
    Ca(ca::Args),
    /// Write boot media (a hybrid ISO that is also a USB image) that boots
    /// BIOS and UEFI machines into this server's boot flow with any DHCP
    /// server: no PXE needed.
    Media(media::Args),
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    PackageFiles {
        /// Where.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReloadArgs {
    /// The server's admin socket [default: /run/rackboot/admin.sock].
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LeasesArgs {
    #[command(subcommand)]
    action: Option<admin::LeaseAction>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, clap::Args)]
struct Common {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of boot files to serve (without it: the built-in demo set).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// HTTP listen address [default: 0.0.0.0:80].
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<std::net::SocketAddr>,
    /// HTTPS listen address, with --tls-cert and --tls-key [default: the
    /// HTTP address, port 443].
    #[arg(long, value_name = "ADDR:PORT")]
    https: Option<std::net::SocketAddr>,
    /// Serve HTTPS beside HTTP with this certificate chain (PEM; `rackboot ca`
    /// makes one).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Answer TFTP on ADDR[:PORT] (port 69 when left out) [default: off].
    #[arg(long, value_name = "ADDR[:PORT]")]
    tftp: Option<String>,
    /// Answer every TFTP transfer from the TFTP port (clients behind NAT or strict firewalls).
    #[arg(long)]
    tftp_single_port: bool,
    /// Answer DHCP on this interface (the boot network) [default: off].
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Give addresses FIRST to LAST on the interface's network (repeatable).
    #[arg(long, value_name = "FIRST,LAST[,LEASE_SECS]")]
    dhcp_range: Vec<String>,
    /// Also serve DHCPv6: give addresses FIRST to LAST on the interface's
    /// IPv6 prefix (repeatable).
    #[arg(long, value_name = "FIRST,LAST[,VALID_SECS]")]
    dhcp6_range: Vec<String>,
    /// ProxyDHCP: another server gives addresses; answer PXE clients with what to boot.
    #[arg(long)]
    dhcp_proxy: bool,
    /// The lease journal [default: /var/lib/rackboot/dhcp.leases].
    #[arg(long, value_name = "FILE")]
    dhcp_lease_file: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Log line format: text or json [default: text].
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    log_format: Option<LogFormat>,
    /// Log level: error, warn, info, debug or trace [default: info].
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    log_level: Option<Level>,
    /// Do not log one line per HTTP request.
    #[arg(long)]
    no_access_log: bool,
    /// Boot every machine into this kernel (the default profile; with --initrd,
    /// served with iPXE's binaries, a generated script and preseed).
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// An initrd for --kernel (repeatable, in order).
    #[arg(long, value_name = "PATH")]
    initrd: Vec<PathBuf>,
    /// Arguments appended to the --kernel command line (e.g. "console=ttyS0,115200").
    #[arg(long, value_name = "ARGS")]
    cmdline: Option<String>,
    /// The installer's answers for --kernel: a Jinja template [default: a minimal Debian preseed].
    #[arg(long, value_name = "FILE")]
    preseed: Option<PathBuf>,
    /// I/O backend of the HTTP and TFTP workers: auto (io_uring where the kernel
    /// allows it, else epoll), uring or mio [default: auto; env RACKBOOT_BACKEND].
    #[arg(long, value_name = "BACKEND", env = "RACKBOOT_BACKEND", value_parser = parse_backend)]
    backend: Option<config::Backend>,
    /// How the io_uring backend sends large HTTP bodies: send, send-zc or splice
    /// [default: send].
    #[arg(long, value_name = "PATH", value_parser = parse_body)]
    http_body: Option<config::Body>,
    /// How the io_uring backend sends a TFTP window: sendmsg or sendmsg-zc
    /// [default: sendmsg].
    #[arg(long, value_name = "PATH", value_parser = parse_tftp_send)]
    tftp_send: Option<config::TftpSend>,
    /// The admin API's Unix socket [default: /run/rackboot/admin.sock; "" for none].
    #[arg(long, value_name = "PATH", value_parser = path_or_empty)]
    admin_socket: Option<PathBuf>,
    /// With --kernel: install each machine once, then boot it from its disk
    /// (netboot `local`) once its installer fetched its done URL.
    #[arg(long)]
    once: bool,
    /// With --kernel: the loader its machines run, ipxe or grub (shim and
    /// grub, signed, for Secure Boot) [default: ipxe].
    #[arg(long, value_name = "LOADER")]
    loader: Option<String>,
    /// The machines state file: the admin API's machine changes and
    /// install-once state [default: /var/lib/rackboot/machines.state].
    #[arg(long, value_name = "FILE")]
    boot_state_file: Option<PathBuf>,
    /// Serve boot media at /boot.iso: the image `rackboot media` makes, for
    /// this server's own address (BMC virtual media, machines without PXE).
    #[arg(long)]
    media: bool,
    /// Serve from a dnsmasq configuration (dnsmasq.conf and what it
    /// includes), translated as `rackboot import` prints it.
    #[arg(long, value_name = "FILE")]
    dnsmasq_conf: Option<PathBuf>,
    /// Serve nginx's site from its configuration (listen, root, locations
    /// with root or alias), alone or with --dnsmasq-conf.
    #[arg(long, value_name = "FILE")]
    nginx_conf: Option<PathBuf>,
    /// Go on when lines that change DHCP or TFTP answers cannot be carried
    /// over from --dnsmasq-conf (each is listed).
    #[arg(long)]
    allow_partial: bool,
    /// Reload whenever the config file, the served tree or a boot file changes
    /// (debounced: a burst of changes is one reload).
    #[arg(long)]
    watch: bool,
}

/// A path, where "" is a value (it turns the thing off), not a missing one.
fn path_or_empty(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

pub(crate) fn parse_backend(s: &str) -> Result<config::Backend, String> {
    match s {
        "auto" => Ok(config::Backend::Auto),
        "mio" => Ok(config::Backend::Mio),
        "uring" => Ok(config::Backend::Uring),
        _ => Err("expected `auto`, `uring` or `mio`".into()),
    }
}

fn parse_body(s: &str) -> Result<config::Body, String> {
    match s {
        "splice" => Ok(config::Body::Splice),
        "send-zc" => Ok(config::Body::SendZc),
        "send" => Ok(config::Body::Send),
        _ => Err("expected `splice`, `send-zc` or `send`".into()),
    }
}

fn parse_tftp_send(s: &str) -> Result<config::TftpSend, String> {
    match s {
        "sendmsg" => Ok(config::TftpSend::Sendmsg),
        "sendmsg-zc" => Ok(config::TftpSend::SendmsgZc),
        _ => Err("expected `sendmsg` or `sendmsg-zc`".into()),
    }
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".into()),
    }
}

fn parse_level(s: &str) -> Result<Level, String> {
    Ok(match s {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        _ => return Err("expected one of error, warn, info, debug, trace".into()),
    })
}

impl Args {
    fn common(&self) -> Option<&Common> {
        match &self.command {
            Command::Serve(c) | Command::Check(c) => Some(c),
            Command::Leases(l) => Some(&l.common),
            Command::Db(d) => Some(d.common()),
            Command::Storm(_)
            | Command::Reload(_)
            | Command::Machines(_)
            | Command::Import(_)
            | Command::Status(_)
            | Command::Ca(_)
            | Command::Media(_)
            | Command::PackageFiles { .. } => None,
        }
    }

    /// Runs a subcommand that only asks the running server (it reads no
    /// configuration): its exit code.
    pub(crate) fn ask_server(&self) -> Option<ExitCode> {
        match &self.command {
            Command::Reload(r) => Some(reload(r)),
            Command::Machines(m) => Some(admin::machines(m)),
            Command::Status(s) => Some(status::run(s)),
            Command::PackageFiles { dir } => Some(package::run(dir)),
            Command::Ca(a) => Some(ca::run(a)),
            Command::Media(a) => Some(media::run(a)),
            Command::Import(c) => Some(import(c)),
            Command::Leases(l) => {
                let from_file = l.common.dhcp_lease_file.is_some() || l.common.config.is_some();
                match (&l.action, from_file) {
                    (Some(a), _) => Some(admin::leases(a)),
                    (None, true) => None,
                    (None, false) => Some(admin::leases(&admin::LeaseAction::List {
                        socket: admin::Socket::from_common(l.common.admin_socket.clone()),
                    })),
                }
            }
            _ => None,
        }
    }

    /// The storm's options, when the subcommand is `storm` (it has no config).
    pub(crate) fn storm(&self) -> Option<&storm::Args> {
        match &self.command {
            Command::Storm(s) => Some(s),
            _ => None,
        }
    }
}

/// Runs `rackboot storm`.
pub(crate) fn run_storm(args: &storm::Args) -> ExitCode {
    storm::run(args)
}

/// Reads and validates the configuration the arguments name (the defaults for
/// a subcommand that takes none).
pub(crate) fn load_config(args: &Args) -> Result<Config, config::Error> {
    let Some(c) = args.common() else {
        return Config::load(None, &Overrides::default());
    };
    if let Some(path) = c.dnsmasq_conf.as_ref().or(c.nginx_conf.as_ref()) {
        return from_dnsmasq(c, path).map(|(config, _)| config);
    }
    Config::load(c.config.as_deref(), &overrides(c))
}

/// The dnsmasq configuration at `path`, translated (its notes on stderr)
/// and the translation validated as a rackboot configuration.
fn from_dnsmasq(
    c: &Common,
    path: &std::path::Path,
) -> Result<(Config, rackboot::import::dnsmasq::Imported), config::Error> {
    let imported = translate_dnsmasq(c, path)?;
    if imported.partial() && !c.allow_partial {
        let n = imported
            .notes
            .iter()
            .filter(|n| n.severity == rackboot::import::dnsmasq::Severity::Changes)
            .count();
        return Err(config::Error::Parse {
            path: path.to_owned(),
            message: format!(
                "{n} line(s) that change DHCP or TFTP answers cannot be carried over (listed above); \
                 --allow-partial serves without them"
            ),
        });
    }
    let origin = PathBuf::from(format!("{} (translated)", path.display()));
    let config = Config::parse(&imported.toml, &origin, &overrides(c))?;
    Ok((config, imported))
}

/// Reads and translates the dnsmasq configuration at `path`, listing on
/// stderr every line not carried over.
fn translate_dnsmasq(
    c: &Common,
    path: &std::path::Path,
) -> Result<rackboot::import::dnsmasq::Imported, config::Error> {
    use rackboot::import::dnsmasq;
    if c.config.is_some() {
        return Err(config::Error::Parse {
            path: path.to_owned(),
            message: "give --config or --dnsmasq-conf, not both".into(),
        });
    }
    let nginx = match &c.nginx_conf {
        Some(n) => {
            Some(
                rackboot::import::nginx::read(n).map_err(|message| config::Error::Parse {
                    path: n.clone(),
                    message,
                })?,
            )
        }
        None => None,
    };
    let Some(path) = c.dnsmasq_conf.as_deref() else {
        let imported = dnsmasq::Imported::nginx_only(nginx.unwrap_or_default());
        print_notes(&imported, path);
        return Ok(imported);
    };
    let lines = dnsmasq::read::read(path).map_err(|e| config::Error::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // The interfaces' networks, where this host has them.
    let mut ifnames: Vec<String> = c.interface.iter().cloned().collect();
    for l in lines.iter().filter(|l| l.key == "interface") {
        let value = l.value.as_deref().unwrap_or("");
        ifnames.extend(value.split(',').map(|v| v.trim().to_owned()));
    }
    // And every interface of this host, for dnsmasq's defaults (DHCP where a
    // range is on an interface's network) and listen-address.
    let mut all: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    for n in &ifnames {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    let found: Vec<(String, rackboot::io::dhcp::Iface)> = all
        .iter()
        .filter_map(|n| Some((n.clone(), rackboot::io::dhcp::interface(n).ok()?)))
        .collect();
    let nets: Vec<(String, (std::net::Ipv4Addr, u8))> = found
        .iter()
        .map(|(n, i)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(i.prefix)).unwrap_or(0);
            (
                n.clone(),
                (std::net::Ipv4Addr::from(u32::from(i.addr) & mask), i.prefix),
            )
        })
        .collect();
    let addrs: Vec<(String, std::net::Ipv4Addr)> =
        found.iter().map(|(n, i)| (n.clone(), i.addr)).collect();
    let iface_net = ifnames
        .first()
        .and_then(|n| nets.iter().find(|(name, _)| name == n).map(|(_, net)| *net));
    // Boot servers given by name resolve through /etc/hosts, as in dnsmasq.
    let names = std::fs::read_to_string("/etc/hosts")
        .map(|t| dnsmasq::hosts_file(&t))
        .unwrap_or_default();
    let mut imported = dnsmasq::translate(
        &lines,
        &dnsmasq::Host {
            iface_net,
            nets,
            addrs,
            names,
        },
    );
    if let Some(n) = nginx {
        imported = imported.with_nginx(n);
    }
    print_notes(&imported, path);
    Ok(imported)
}

/// Every line not carried over, on stderr.
fn print_notes(imported: &rackboot::import::dnsmasq::Imported, path: &std::path::Path) {
    use rackboot::import::dnsmasq::Severity;
    for n in &imported.notes {
        let what = match n.severity {
            Severity::Changes => "NOT CARRIED OVER, answers differ",
            Severity::Dns => "DNS, not served",
            Severity::Harmless => "not needed",
            Severity::Http => "HTTP, not carried over",
        };
        if n.line.is_empty() {
            eprintln!("rackboot: {}: {}", path.display(), n.why);
        } else {
            eprintln!("rackboot: {}: {}: {what}: {}", n.at, n.line, n.why);
        }
    }
}

/// `rackboot import`: the translation on stdout.
fn import(c: &Common) -> ExitCode {
    let Some(path) = c.dnsmasq_conf.as_ref().or(c.nginx_conf.as_ref()) else {
        eprintln!("rackboot import: give --dnsmasq-conf FILE and/or --nginx-conf FILE");
        return ExitCode::from(2);
    };
    let imported = match translate_dnsmasq(c, path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("rackboot import: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", imported.toml);
    if let Err(e) = Config::parse(
        &imported.toml,
        std::path::Path::new("(translated)"),
        &Overrides::default(),
    ) {
        eprintln!("rackboot import: the translation does not validate on this machine: {e}");
    }
    if imported.partial() && !c.allow_partial {
        eprintln!(
            "rackboot import: lines that change DHCP or TFTP answers were not carried over (listed above); \
             --allow-partial exits 0 anyway"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The command line's values that win over the file.
fn overrides(c: &Common) -> Overrides {
    Overrides {
        root: c.root.clone(),
        http: c.http,
        https: c.https,
        tls_cert: c.tls_cert.clone(),
        tls_key: c.tls_key.clone(),
        workers: c.workers,
        log_format: c.log_format,
        log_level: c.log_level,
        no_access_log: c.no_access_log,
        tftp: c.tftp.clone(),
        tftp_single_port: c.tftp_single_port,
        interface: c.interface.clone(),
        dhcp_ranges: c.dhcp_range.clone(),
        dhcp_proxy: c.dhcp_proxy,
        dhcp_lease_file: c.dhcp_lease_file.clone(),
        dhcp6_ranges: c.dhcp6_range.clone(),
        kernel: c.kernel.clone(),
        initrd: c.initrd.clone(),
        cmdline: c.cmdline.clone(),
        preseed: c.preseed.clone(),
        backend: c.backend,
        http_body: c.http_body,
        tftp_send: c.tftp_send,
        admin_socket: c.admin_socket.clone(),
        once: c.once,
        loader: c.loader.clone(),
        boot_state_file: c.boot_state_file.clone(),
        media: c.media,
    }
}

/// Runs the subcommand; the exit code is 0 on success, 1 on a runtime failure.
pub(crate) fn run(args: Args, config: Config) -> ExitCode {
    let result = match args.command {
        Command::Serve(ref c) => serve(&config, c),
        Command::Check(ref c) => check(&config, c.config.as_deref()),
        Command::Leases(ref l) => leases(&config, l.common.dhcp_lease_file.as_deref()),
        Command::Db(ref d) => db::run(&config, &d.action),
        Command::Machines(ref m) => return admin::machines(m),
        Command::Import(ref c) => return import(c),
        Command::Storm(ref s) => return storm::run(s),
        Command::Reload(ref r) => return reload(r),
        Command::Status(ref s) => return status::run(s),
        Command::Ca(ref a) => return ca::run(a),
        Command::Media(ref a) => return media::run(a),
        Command::PackageFiles { ref dir } => return package::run(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("rackboot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the configuration serves: the root walked, with the files of
/// `--kernel`/`--initrd` and (for those built-in defaults) iPXE's binaries the
/// root lacks; `None` for the built-in demo set.
fn plan(config: &Config) -> Result<Option<store::Plan>, Box<dyn std::error::Error>> {
    let cap = config.store.max_bytes;
    let boot = config.boot.as_ref().filter(|b| !b.files.is_empty());
    let mut plan = match (&config.root, boot) {
        (Some(root), _) => store::plan(root, cap)?,
        (None, _) if !config.mounts.is_empty() => store::Plan::default(),
        (None, Some(_)) => store::Plan::default(),
        (None, None) => return Ok(None),
    };
    for (prefix, dir) in &config.mounts {
        let sub = store::plan(dir, cap)?;
        for f in sub.files {
            let url = format!("{prefix}{}", f.url);
            if plan.files.iter().any(|x| x.url == url) {
                tracing::warn!(%url, dir = %dir.display(), "a mounted file has the URL of one already served; the first is kept");
                continue;
            }
            plan.add(&url, &f.source, cap)?;
        }
    }
    if let Some(b) = boot {
        for (url, file) in &b.files {
            plan.add(url, file, cap)?;
        }
        if b.find_ipxe {
            let urls = store::ipxe::NAMES.map(|n| format!("/{n}"));
            if let Some(e) = add_packaged(&mut plan, &urls, store::ipxe::find, cap)? {
                tracing::warn!("{e}; PXE firmware will not find its iPXE binary");
            }
        }
    }
    if config.boot.as_ref().is_some_and(|b| b.profiles.any_grub()) {
        let urls = store::signed::NAMES.map(String::from);
        if let Some(e) = add_packaged(&mut plan, &urls, store::signed::find, cap)? {
            return Err(format!("a [[profile]] has loader = \"grub\", but {e}").into());
        }
        let urls = store::signed::NAMES_ARM64.map(String::from);
        if let Some(e) = add_packaged(&mut plan, &urls, store::signed::find_arm64, cap)? {
            tracing::info!("{e}: arm64 machines of a grub profile get a plain lease");
        }
    }
    Ok(Some(plan))
}

/// Adds the files `find` locates in the machine's packages under those of
/// `urls` the plan does not serve yet (a root's own copies win); `find` is
/// asked only when one is missing. `Some(sentence)` when it cannot locate them.
fn add_packaged(
    plan: &mut store::Plan,
    urls: &[String],
    find: impl FnOnce() -> Result<Vec<(String, PathBuf)>, String>,
    cap: u64,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let missing = |plan: &store::Plan, url: &str| !plan.files.iter().any(|f| f.url == url);
    if !urls.iter().any(|u| missing(plan, u)) {
        return Ok(None);
    }
    match find() {
        Ok(found) => {
            for (url, file) in found {
                if missing(plan, &url) {
                    plan.add(&url, &file, cap)?;
                }
            }
            Ok(None)
        }
        Err(e) => Ok(Some(e)),
    }
}

/// The snapshot `config` serves; files unchanged since `previous` are shared.
fn load_snapshot(
    config: &Config,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, Box<dyn std::error::Error>> {
    let snapshot = match plan(config)? {
        Some(plan) => match previous {
            Some(p) => Snapshot::from_plan_after(&plan, &config.store, p)?,
            None => Snapshot::from_plan(&plan, &config.store)?,
        },
        None => {
            tracing::warn!("no --root and no `root` in the config: serving the built-in demo set (/boot.ipxe, /demo/...)");
            Snapshot::builtin(&config.store)?
        }
    };
    profile_files(config, |p| snapshot.get(p).is_some())?;
    let mut snapshot = snapshot;
    if let Some(b) = config.boot.as_ref() {
        add_media(&mut snapshot, b, &config.store, previous)?;
    }
    Ok(snapshot)
}

/// The boot media image for `authority`, from the profiles' page paths.
fn make_media(boot: &config::boot::Boot, authority: &str) -> Result<Vec<u8>, String> {
    let paths = boot.profiles.paths();
    store::media::Server::parse(&format!("http://{authority}"))
        .and_then(|server| store::media::build(&server, &paths.script, &paths.grub))
        .map_err(|e| format!("[boot] media: {e}"))
}

/// With `[boot] media`: the image for this server at `/boot.iso`, unless the
/// root serves its own there.
/// A reload that changes neither the address nor the page paths keeps the
/// same image, and so its validators (a BMC reading it in ranges goes on).
fn add_media(
    snapshot: &mut Snapshot,
    boot: &config::boot::Boot,
    options: &store::Options,
    previous: Option<&Snapshot>,
) -> Result<(), Box<dyn std::error::Error>> {
    /// What the image served now was made for: address and page paths.
    static MADE_FOR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let Some(authority) = &boot.media else {
        return Ok(());
    };
    let mut made_for = MADE_FOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if snapshot.get(MEDIA_PATH).is_some() {
        tracing::warn!("the root's {MEDIA_PATH} is served as it is, not the boot media [boot] media would make");
        *made_for = None;
        return Ok(());
    }
    let paths = boot.profiles.paths();
    let key = format!("{authority} {} {}", paths.script, paths.grub);
    if made_for.as_deref() == Some(key.as_str())
        && previous.is_some_and(|p| snapshot.share(p, MEDIA_PATH))
    {
        return Ok(());
    }
    let bytes = make_media(boot, authority)?;
    let total = snapshot.total_bytes() + bytes.len() as u64;
    if total > options.max_bytes {
        return Err(format!(
            "[boot] media: the image ({} bytes) takes the served set to {total} bytes, past \
             store.max_mib ({} MiB): raise store.max_mib",
            bytes.len(),
            options.max_bytes >> 20
        )
        .into());
    }
    let mtime =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(rackboot::io::clock::unix_now());
    snapshot.insert_memory(MEDIA_PATH, &bytes, mtime, options)?;
    *made_for = Some(key);
    tracing::info!(
        path = MEDIA_PATH,
        bytes = bytes.len(),
        server = %authority,
        "boot media served: BIOS and UEFI machines booting it run DHCP, then this server's boot pages"
    );
    Ok(())
}

/// Every kernel and initrd a profile names by path must be served here.
fn profile_files(config: &Config, have: impl Fn(&str) -> bool) -> Result<(), String> {
    let Some(boot) = &config.boot else {
        return Ok(());
    };
    for p in boot.profiles.profiles() {
        for (key, path) in
            std::iter::once(("kernel", &p.kernel)).chain(p.initrds.iter().map(|i| ("initrd", i)))
        {
            if path.starts_with('/') && !have(path) {
                return Err(format!(
                    "profile {:?}: `{key}` is {path}, which is not served here (add the file under the root, or fix the path)",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

fn serve(config: &Config, c: &Common) -> Result<(), Box<dyn std::error::Error>> {
    let snapshot = load_snapshot(config, None)?;
    let locked = snapshot.files().iter().filter(|f| f.is_locked()).count();
    tracing::info!(
        files = snapshot.len(),
        bytes = snapshot.total_bytes(),
        locked,
        "boot files loaded into memory"
    );
    // A reload reads the same file with the same command line, and checks
    // what `check` checks.
    let (path, overrides, common) = (c.config.clone(), overrides(c), c.clone());
    let rebuild: rackboot::control::Rebuild = Box::new(move |current| {
        // dnsmasq's files are translated again, as a SIGHUP makes dnsmasq
        // re-read its hosts and options files.
        let config = match common.dnsmasq_conf.as_ref().or(common.nginx_conf.as_ref()) {
            Some(d) => from_dnsmasq(&common, d).map(|(c, _)| c),
            None => Config::load(path.as_deref(), &overrides),
        }
        .map_err(|e| e.to_string())?;
        let snapshot = load_snapshot(&config, Some(current)).map_err(|e| e.to_string())?;
        Ok((config, snapshot))
    });
    let mut watch = Vec::new();
    if c.watch {
        use rackboot::watch::Watch;
        watch.extend(config.root.as_deref().map(Watch::tree));
        watch.extend(c.config.as_deref().and_then(Watch::file));
        watch.extend(c.nginx_conf.as_deref().and_then(Watch::file));
        watch.extend(config.mounts.iter().map(|(_, d)| Watch::tree(d)));
        if let Some(d) = &c.dnsmasq_conf {
            // Every file the configuration reads, and its hosts and options
            // files and directories.
            let lines = rackboot::import::dnsmasq::read::read(d).unwrap_or_default();
            let mut files: Vec<PathBuf> = lines.iter().map(|l| l.at.file.clone()).collect();
            files.extend(
                lines
                    .iter()
                    .filter(|l| {
                        [
                            "dhcp-hostsfile",
                            "dhcp-hostsdir",
                            "dhcp-optsfile",
                            "dhcp-optsdir",
                        ]
                        .contains(&l.key.as_str())
                    })
                    .filter_map(|l| l.value.as_deref().map(PathBuf::from)),
            );
            files.sort();
            files.dedup();
            for f in files {
                watch.extend(if f.is_dir() {
                    Some(Watch::tree(&f))
                } else {
                    Watch::file(&f)
                });
            }
        }
        let boot_files = config
            .boot
            .iter()
            .flat_map(|b| b.files.iter().map(|(_, f)| f));
        watch.extend(boot_files.filter_map(|f| Watch::file(f)));
        if watch.is_empty() {
            tracing::warn!("--watch: nothing on disk to watch (no --config, no root)");
        }
    }
    rackboot::runtime::serve(config, snapshot, rebuild, watch)?;
    Ok(())
}

/// `rackboot reload`: POST /api/v1/reload on the admin socket.
pub(crate) fn reload(args: &ReloadArgs) -> ExitCode {
    let path = args
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_ADMIN_SOCKET));
    match rackboot::admin::client::post(&path, "/api/v1/reload") {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprint!("rackboot reload: refused ({status}): {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rackboot reload: {e}");
            ExitCode::FAILURE
        }
    }
}

fn leases(
    config: &Config,
    flag: Option<&std::path::Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    if config.dhcp.as_ref().is_some_and(|d| d.store.is_some()) {
        let (mut c, _, _) = db::lease_store(config)?;
        rackboot::lease::pg::check_version(&mut c)?;
        let records = rackboot::lease::pg::load(&mut c)?;
        let mut out = String::new();
        let now = rackboot::io::clock::unix_now();
        lease_rows(
            &rackboot::lease::Table::from_records(records),
            now,
            &mut out,
        );
        print!("{out}");
        return Ok(());
    }
    let path = match (&config.dhcp, flag) {
        (Some(d), _) => d.lease_file.clone(),
        (None, Some(p)) => p.to_path_buf(),
        (None, None) => config::dhcp::DEFAULT_LEASE_FILE.into(),
    };
    let replay = rackboot::lease::journal::read(&path)
        .map_err(|e| format!("lease file {}: {e}", path.display()))?;
    for (offset, len) in &replay.damaged {
        eprintln!(
            "rackboot: lease file {}: {len} damaged bytes at offset {offset} skipped (checksum mismatch); the server keeps the records around them",
            path.display()
        );
    }
    let now = rackboot::io::clock::unix_now();
    let mut out = String::new();
    // DHCPv4 leases, then DHCPv6's (the same journal holds both).
    let (v6, v4): (Vec<_>, Vec<_>) = replay.records.into_iter().partition(|r| r.is_v6());
    lease_rows(&rackboot::lease::Table::from_records(v4), now, &mut out);
    lease_rows(&rackboot::lease::Table6::from_records(v6), now, &mut out);
    let mut stdout = std::io::stdout().lock();
    match std::io::Write::write_all(&mut stdout, out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// One line per binding of `table`, by address: address, MAC (`-` when a
/// DHCPv6 client's is not known), expiry, state, host name.
fn lease_rows<A: rackboot::lease::Family + Ord + std::fmt::Display>(
    table: &rackboot::lease::Leases<A>,
    now: u64,
    out: &mut String,
) {
    use std::fmt::Write as _;
    let mut rows: Vec<_> = table.bound().collect();
    rows.sort_by_key(|l| l.ip);
    for l in rows {
        let mac: Vec<String> = l.hw.iter().map(|b| format!("{b:02x}")).collect();
        let mac = if mac.is_empty() {
            "-".to_owned()
        } else {
            mac.join(":")
        };
        let state = if l.expires > now { "active" } else { "expired" };
        let name = if l.hostname.is_empty() {
            "*"
        } else {
            &l.hostname
        };
        let _ = writeln!(out, "{} {mac} {} {state} {name}", l.ip, l.expires);
    }
}

fn check(
    config: &Config,
    path: Option<&std::path::Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = String::new();
    let result = check_into(config, path, &mut out);
    // One write; a reader that stops early (`| head`) ends the output, not the process.
    let mut stdout = std::io::stdout().lock();
    match std::io::Write::write_all(&mut stdout, out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    result
}

fn boot_summary(config: &Config, out: &mut String) {
    use std::fmt::Write as _;
    let Some(b) = &config.boot else {
        let _ = writeln!(
            out,
            "boot profiles: none (the root's files are served as they are)"
        );
        return;
    };
    let p = &b.profiles;
    let _ = writeln!(
        out,
        "boot profiles: {} (default: {}), {} machines in the inventory; scripts at {}, grub at {}, answers at {}; every template rendered",
        p.profiles().len(),
        p.default_name().unwrap_or("none: unknown machines are told so and exit"),
        p.machines(),
        p.paths().script,
        p.paths().grub,
        p.paths().config
    );
    for q in p.profiles() {
        let _ = writeln!(
            out,
            "  profile {}: loader {}, kernel {}, {} initrd(s), {}{}",
            q.name,
            q.loader.name(),
            q.kernel,
            q.initrds.len(),
            if q.config.is_some() {
                "answers template"
            } else {
                "no answers template"
            },
            if q.matches.is_empty() && p.default_name() != Some(q.name.as_str()) {
                ", taken only by the [[machine]] entries naming it"
            } else {
                ""
            }
        );
    }
}

fn check_into(
    config: &Config,
    path: Option<&std::path::Path>,
    out: &mut String,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "config: {}",
        path.map_or_else(
            || "none (defaults)".to_owned(),
            |p| format!("{} is valid", p.display())
        )
    );
    let _ = writeln!(
        out,
        "http: {} with {} workers, {} connections per worker",
        config.http.listen, config.workers, config.http.max_connections
    );
    if let Some(h) = &config.https {
        let _ = writeln!(
            out,
            "https: {} (certificate {}, key {}; the chain and key fit)",
            h.listen,
            h.cert.display(),
            h.key.display()
        );
    }
    let _ = writeln!(
        out,
        "admin API: {}{}",
        config.admin.socket.as_ref().map_or_else(
            || "no Unix socket".to_owned(),
            |p| format!("socket {}", p.display())
        ),
        config
            .admin
            .tcp
            .as_ref()
            .map_or_else(String::new, |t| format!(
                ", TCP {} (bearer token)",
                t.listen
            ))
    );
    let _ = match &config.tftp {
        Some(t) => writeln!(
            out,
            "tftp: {}{}, windows up to {}, {} transfers per worker",
            t.listen,
            if t.single_port { " (single port)" } else { "" },
            t.settings.max_windowsize,
            t.max_transfers
        ),
        None => writeln!(out, "tftp: off"),
    };
    let _ = match &config.dhcp {
        Some(d) => {
            let s = &d.settings;
            let pool: u64 = s.subnets.iter().map(|n| n.size()).sum();
            writeln!(
                out,
                "dhcp: {:?} on {}, {} subnets, {pool} addresses, {} reservations, {} boot rules, leases in {}",
                s.mode,
                d.interfaces().collect::<Vec<_>>().join(", "),
                s.subnets.len(),
                s.hosts.len(),
                s.rules.len(),
                match &d.store {
                    Some(st) => format!("PostgreSQL at {} as {:?}", db::store_place(&st.url), st.name),
                    None => d.lease_file.display().to_string(),
                }
            )
        }
        None => writeln!(out, "dhcp: off"),
    };
    if let Some(b) = config.dhcp.as_ref().and_then(|d| d.settings.balance) {
        let _ = writeln!(
            out,
            "dhcp: server {} of {} sharing the clients (dhcp.balance); the others' clients are answered once they have waited {} s",
            b.index, b.servers, b.wait_secs
        );
    }
    if config.shared_store().is_some() {
        // `check` reaches the database: a wrong URL or password shows here.
        let (mut c, place, _) = db::lease_store(config)?;
        match rackboot::lease::pg::check_version(&mut c) {
            Ok(()) => {
                let _ = writeln!(
                    out,
                    "store: PostgreSQL at {place} reached, schema version {}; it keeps {}",
                    rackboot::lease::pg::SCHEMA_VERSION,
                    match (
                        config.dhcp.as_ref().is_some_and(|d| d.store.is_some()),
                        config.boot.as_ref().is_some_and(|b| b.shared.is_some())
                    ) {
                        (true, true) => "the DHCP leases and the machines' records",
                        (true, false) => "the DHCP leases",
                        _ => "the machines' records",
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(out, "store: PostgreSQL at {place} reached; {e} (the server creates a missing schema at start)");
            }
        }
    }
    let _ = match config.dhcp.as_ref().and_then(|d| d.v6.as_ref()) {
        Some(v6) => {
            let s = &v6.settings;
            let subnets: Vec<String> = s
                .subnets
                .iter()
                .zip(&v6.on_interface)
                .map(|(n, on_if)| {
                    let at = if *on_if {
                        "the interface's prefix".to_owned()
                    } else {
                        format!("{}/{}", n.prefix, n.len)
                    };
                    if n.ranges.is_empty() {
                        format!("{at} stateless")
                    } else {
                        format!("{at} {} addresses", n.size())
                    }
                })
                .collect();
            writeln!(
                out,
                "dhcp6: server on the dhcp interfaces, {} ({}), {} reservations, rapid commit {}, \
                 the same boot rules, leases in the same journal",
                if subnets.len() == 1 {
                    "1 subnet".to_owned()
                } else {
                    format!("{} subnets", subnets.len())
                },
                subnets.join("; "),
                s.hosts.len(),
                if s.rapid_commit { "on" } else { "off" }
            )
        }
        None => writeln!(out, "dhcp6: off"),
    };
    let cap = config.store.max_bytes;
    boot_summary(config, out);
    let Some(plan) = plan(config)? else {
        let s = Snapshot::builtin(&store::Options {
            mlock: false,
            ..config.store
        })?;
        let _ = writeln!(out, "root: none: the built-in demo set");
        for f in s.files() {
            let _ = writeln!(
                out,
                "{:>12}  {:<32}  {}",
                f.len(),
                f.content_type(),
                f.path()
            );
        }
        profile_files(config, |p| s.get(p).is_some())?;
        let _ = writeln!(out, "total: {} files, {} bytes", s.len(), s.total_bytes());
        return Ok(());
    };
    if config.root.is_some() {
        let _ = writeln!(out, "root: {}", plan.root.display());
    } else {
        let _ = writeln!(out, "root: none: the files given on the command line");
    }
    for f in &plan.files {
        // Readable now? The server would fail its start on this file otherwise.
        std::fs::File::open(&f.source).map_err(|source| store::Error::Read {
            path: f.source.clone(),
            source,
        })?;
        let _ = writeln!(
            out,
            "{:>12}  {:<32}  {}",
            f.len,
            store::mime::for_path(&f.url),
            f.url
        );
    }
    for l in &plan.skipped_links {
        let _ = writeln!(
            out,
            "{:>12}  {:<32}  {l}",
            "skipped", "(symlink leads outside the root)"
        );
    }
    profile_files(config, |p| plan.files.iter().any(|f| f.url == p))?;
    let media = config
        .boot
        .as_ref()
        .and_then(|b| Some((b, b.media.as_ref()?)));
    if let Some((b, authority)) = media {
        if plan.files.iter().any(|f| f.url == MEDIA_PATH) {
            let _ = writeln!(
                out,
                "warning: the root's {MEDIA_PATH} is served as it is, not the boot media [boot] media would make"
            );
        } else {
            // Made here as at start, so a missing tool is found now.
            let bytes = make_media(b, authority)?;
            let _ = writeln!(
                out,
                "{:>12}  {:<32}  {MEDIA_PATH} (boot media: DHCP, then http://{authority})",
                bytes.len(),
                store::mime::for_path(MEDIA_PATH),
            );
        }
    }
    if let Some(b) = &config.boot {
        let paths = b.profiles.paths();
        if b.profiles.any_grub() {
            for f in plan
                .files
                .iter()
                .filter(|f| rackboot::proto::boot::grub::is_config(&f.url))
            {
                let _ = writeln!(
                    out,
                    "warning: the root's {} is served as it is: grub reading it does not get the stub that loads its machine's profile (remove it, or make it `configfile` {}?mac=${{net_default_mac}})",
                    f.url, paths.grub
                );
            }
        }
        for page in [&paths.script, &paths.grub, &paths.config] {
            if plan.files.iter().any(|f| &f.url == page) {
                let _ = writeln!(
                    out,
                    "warning: the root's {page} is not served: the boot profiles render that path per machine (remove the file, or move [boot] script_path/grub_path/config_path)"
                );
            }
        }
    }
    if let Some(d) = &config.dhcp {
        let have = |p: &str| {
            plan.files.iter().any(|f| f.url == p)
                || config.boot.as_ref().is_some_and(|b| b.profiles.renders(p))
        };
        let mut d = d.clone();
        let grub = config.boot.as_ref().is_some_and(|b| b.profiles.any_grub());
        let fitted =
            rackboot::proto::dhcp::policy::fit(&mut d.settings.rules, have, grub, d.uefi_snponly);
        if fitted.snponly {
            let _ = writeln!(
                out,
                "dhcp: UEFI PXE firmware gets snponly.efi (dhcp.uefi_snponly)"
            );
        }
        if !fitted.unserved.is_empty() {
            let _ = writeln!(
                out,
                "dhcp: no boot binary for {}: their firmware gets a plain lease (put the file in the root to boot them)",
                fitted.describe_unserved()
            );
        }
        if let Some(rule) = &fitted.unsigned_to_uefi {
            let _ = writeln!(
                out,
                "note: boot rule {rule} hands iPXE (unsigned) to UEFI machines: those enforcing Secure Boot refuse it; {}",
                if grub {
                    "machines of a profile with loader = \"grub\" get the signed shim instead"
                } else {
                    "a [[profile]] with loader = \"grub\" boots them through the signed shim and grub"
                }
            );
        }
        for (rule, path) in &fitted.missing {
            let _ = writeln!(
                out,
                "warning: boot rule {rule} names {path}, which the root does not hold: clients it matches will not boot (add the file, or change the rule's `file`)"
            );
        }
    }
    let _ = writeln!(
        out,
        "total: {} files, {} bytes ({:.1} MiB of the {} MiB cap)",
        plan.files.len(),
        plan.total_bytes,
        plan.total_bytes as f64 / f64::from(1 << 20),
        cap >> 20
    );
    Ok(())
}
