//! Configuration: the TOML file (file.rs) validated into typed runtime values, with
//! command-line overrides. Every error names the key (or flag), the line, and the fix.
#![forbid(unsafe_code)]

pub mod boot;
pub mod dhcp;
pub mod dhcp6;
pub mod file;
pub mod tls;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::{Backend, Body, Level, LogFormat, TftpSend};
use toml::Spanned;

use crate::proto::http::Settings;
use crate::store;
use crate::wire::http::{Limits, MAX_HEADERS_CAP};

/// The default HTTP address: every interface, port 80, as iPXE scripts expect.
pub const DEFAULT_HTTP: &str = "0.0.0.0:80";
/// The admin API's Unix socket unless `admin.socket` says otherwise.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/rackboot/admin.sock";

/// Default busy-poll window. bench/http, 1 KB script over one keep-alive
/// connection, server and client on different cores of this 2-vCPU VM: 10,269
/// req/s without it, 35,386 with 50 us, 43,852 with 200 us; the window bounds the
/// CPU spent after the last event, and an idle server never spins.
pub const DEFAULT_BUSY_POLL_US: i64 = 50;

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message: line, column, key and what was expected.
        message: String,
    },
    /// A value has the right type but cannot be used.
    #[error("{at}: `{key}` {problem} ({fix})")]
    Invalid {
        /// `file:line`, or `command line`.
        at: String,
        /// The key or flag.
        key: &'static str,
        /// What is wrong, with the value.
        problem: String,
        /// What to write instead.
        fix: String,
    },
}

/// Values from the command line; each wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--root`
    pub root: Option<PathBuf>,
    /// `--http`
    pub http: Option<SocketAddr>,
    /// `--https`
    pub https: Option<SocketAddr>,
    /// `--tls-cert`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<PathBuf>,
    /// `--workers`
    pub workers: Option<usize>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
    /// `--log-level`
    pub log_level: Option<Level>,
    /// `--no-access-log`
    pub no_access_log: bool,
    /// `--tftp ADDR[:PORT]`
    pub tftp: Option<String>,
    /// `--tftp-single-port`
    pub tftp_single_port: bool,
    /// `--interface`
    pub interface: Option<String>,
    /// `--dhcp-range`, each `FIRST,LAST[,LEASE_SECS]`
    pub dhcp_ranges: Vec<String>,
    /// `--dhcp-proxy`
    pub dhcp_proxy: bool,
    /// `--dhcp-lease-file`
    pub dhcp_lease_file: Option<PathBuf>,
    /// `--dhcp6-range`, each `FIRST,LAST[,VALID_SECS]`
    pub dhcp6_ranges: Vec<String>,
    /// `--kernel`: serve this kernel to every machine (the default profile).
    pub kernel: Option<PathBuf>,
    /// `--initrd` (repeatable)
    pub initrd: Vec<PathBuf>,
    /// `--cmdline`: appended to the default profile's command line.
    pub cmdline: Option<String>,
    /// `--preseed`: the default profile's answers template.
    pub preseed: Option<PathBuf>,
    /// `--backend`
    pub backend: Option<Backend>,
    /// `--http-body`
    pub http_body: Option<Body>,
    /// `--tftp-send`
    pub tftp_send: Option<TftpSend>,
    /// `--admin-socket`.
    pub admin_socket: Option<PathBuf>,
    /// `--once`: the `--kernel` profile installs each machine once.
    pub once: bool,
    /// `--loader`: what the `--kernel` profile's machines run.
    pub loader: Option<String>,
    /// `--boot-state-file`: the machines state file.
    pub boot_state_file: Option<PathBuf>,
    /// `--media`: serve boot media at `/boot.iso`.
    pub media: bool,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Served directory; `None` serves the built-in demo set.
    pub root: Option<PathBuf>,
    /// More directories, served under URL prefixes: (prefix without a
    /// trailing `/`, `""` for the top; directory).
    pub mounts: Vec<(String, PathBuf)>,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// HTTP listener.
    pub http: Http,
    /// HTTPS, beside it, when configured.
    pub https: Option<tls::Https>,
    /// TFTP, when enabled.
    pub tftp: Option<Tftp>,
    /// DHCP, when enabled.
    pub dhcp: Option<dhcp::Dhcp>,
    /// Store options.
    pub store: store::Options,
    /// Logging.
    pub log: Log,
    /// Boot profiles, when any are configured.
    pub boot: Option<boot::Boot>,
    /// The HTTP and TFTP workers' I/O backend, as asked (`auto` is resolved
    /// when the server starts).
    pub backend: Backend,
    /// The admin API's listeners.
    pub admin: Admin,
    /// The boot timelines, unless turned off.
    pub fleet: Option<Fleet>,
}

/// `[fleet]`: what the boot timelines keep and when a machine is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    /// How much is kept.
    pub limits: crate::fleet::Limits,
    /// The waits.
    pub timers: crate::fleet::Timers,
}

/// Where the admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The Unix socket, unless turned off.
    pub socket: Option<PathBuf>,
    /// Whether the socket is the default one (a default that cannot be bound
    /// is a warning; one the operator named is an error).
    pub socket_is_default: bool,
    /// TCP, when configured.
    pub tcp: Option<AdminTcp>,
    /// A TCP listener for `GET /metrics` alone (no token: it only reads).
    pub metrics: Option<SocketAddr>,
}

/// The admin API on TCP, with the token its clients must send.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTcp {
    /// Listen address.
    pub listen: SocketAddr,
    /// The bearer token (never printed).
    pub token: String,
}

impl std::fmt::Debug for AdminTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTcp")
            .field("listen", &self.listen)
            .field("token", &"(hidden)")
            .finish()
    }
}

/// HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    /// Listen address.
    pub listen: SocketAddr,
    /// Per-connection engine settings.
    pub settings: Settings,
    /// Open connections per worker; more are answered 503 and closed.
    pub max_connections: usize,
    /// After activity, a worker polls without sleeping for this long before it
    /// blocks (zero: never spins).
    pub busy_poll: Duration,
    /// How the io_uring worker sends large bodies.
    pub body: Body,
}

/// TFTP settings.
#[derive(Debug, Clone)]
pub struct Tftp {
    /// Listen address.
    pub listen: SocketAddr,
    /// Answer every transfer from the listening port.
    pub single_port: bool,
    /// Transfer engine settings.
    pub settings: crate::proto::tftp::Settings,
    /// Live transfers per worker; more are refused with an ERROR.
    pub max_transfers: usize,
    /// Live transfers per client address, per worker (workers share nothing).
    pub max_per_client: u32,
    /// Busy-poll window after activity (shared with HTTP's setting).
    pub busy_poll: Duration,
    /// How the io_uring worker sends a window.
    pub send: TftpSend,
    /// Per interface, the URL prefix its requests are served under (its
    /// `[[tftp.interface_root]]` directory, mounted there).
    pub interface_roots: Vec<(String, String)>,
}

/// Where an interface's own TFTP root is mounted.
pub fn interface_root_prefix(interface: &str) -> String {
    format!("/.interface/{interface}")
}

/// Logging settings.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// Line format.
    pub format: LogFormat,
    /// Verbosity.
    pub level: Level,
}

impl Config {
    /// The PostgreSQL store `[store]` names, if any: it holds the DHCP
    /// leases, the machines' records, or both (the same target either way).
    pub fn shared_store(&self) -> Option<&dhcp::LeaseStore> {
        let leases = self.dhcp.as_ref().and_then(|d| d.store.as_ref());
        leases.or_else(|| self.boot.as_ref().and_then(|b| b.shared.as_ref()))
    }

    /// Reads and validates `path` (or only defaults when `None`), then applies `cli`.
    ///
    /// # Errors
    /// See [`Error`]: each names the key or flag and the fix.
    pub fn load(path: Option<&Path>, cli: &Overrides) -> Result<Self, Error> {
        let Some(path) = path else {
            return Self::validate(file::File::default(), "", Path::new("(defaults)"), cli);
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path, cli)
    }

    /// Parses and validates TOML `text` read from `path`.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn parse(text: &str, path: &Path, cli: &Overrides) -> Result<Self, Error> {
        let raw: file::File = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.into(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::validate(raw, text, path, cli)
    }

    fn validate(raw: file::File, text: &str, path: &Path, cli: &Overrides) -> Result<Self, Error> {
        let v = Validator { text, path };
        let root = match (&cli.root, &raw.root) {
            (Some(p), _) => Some(v.dir(None, "--root", p)?),
            (None, Some(s)) => Some(v.dir(Some(s), "root", Path::new(s.get_ref()))?),
            (None, None) => None,
        };
        let workers = match (cli.workers, &raw.workers) {
            (Some(0), _) => {
                return Err(v.invalid(
                    None,
                    "--workers",
                    "is 0".into(),
                    "give at least 1, or leave it out for one per core",
                ))
            }
            (Some(n), _) => n,
            (None, Some(n)) => v.int(
                n,
                "workers",
                0..=1024,
                "a count from 1 to 1024, or 0 for one per core",
            )? as usize,
            (None, None) => 0,
        };
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let h = &raw.http;
        // With DHCPv6 on, machines are told [server6] URLs: HTTP and TFTP
        // listen on both families unless told where (one dual-stack socket).
        let v6_asked = raw.dhcp6.is_some() || !cli.dhcp6_ranges.is_empty();
        let listen = match (cli.http, &h.listen) {
            (Some(a), _) => a,
            (None, Some(s)) => s.get_ref().parse().map_err(|_| {
                v.invalid(
                    Some(s.span().start),
                    "http.listen",
                    format!("is {:?}, not an address", s.get_ref()),
                    "write ADDR:PORT, e.g. \"0.0.0.0:80\"",
                )
            })?,
            (None, None) if v6_asked => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)),
            (None, None) => DEFAULT_HTTP
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 80))),
        };
        let d = Settings::default();
        let max_head = v.opt_int(
            &h.max_head_bytes,
            "http.max_head_bytes",
            1024..=1 << 20,
            d.limits.max_head as i64,
        )? as usize;
        let max_target = v.opt_int(
            &h.max_target_bytes,
            "http.max_target_bytes",
            16..=max_head as i64,
            d.limits.max_target as i64,
        )? as usize;
        let max_headers = v.opt_int(
            &h.max_headers,
            "http.max_headers",
            1..=MAX_HEADERS_CAP as i64,
            d.limits.max_headers as i64,
        )? as usize;
        let secs = |s, key, default: Duration| {
            v.opt_int(s, key, 1..=86_400, default.as_secs() as i64)
                .map(|n| Duration::from_secs(n as u64))
        };
        let settings = Settings {
            limits: Limits {
                max_head,
                max_headers,
                max_target,
            },
            idle_timeout: secs(&h.idle_secs, "http.idle_secs", d.idle_timeout)?,
            head_timeout: secs(&h.head_secs, "http.head_secs", d.head_timeout)?,
            send_timeout: secs(&h.send_secs, "http.send_secs", d.send_timeout)?,
            access_log: !cli.no_access_log && raw.log.access.unwrap_or(true),
            ..d
        };
        let max_connections = v.opt_int(
            &h.max_connections,
            "http.max_connections",
            1..=1_000_000,
            10_000,
        )? as usize;
        let busy_poll_us = v.opt_int(
            &h.busy_poll_us,
            "http.busy_poll_us",
            0..=10_000,
            DEFAULT_BUSY_POLL_US,
        )?;
        let busy_poll = Duration::from_micros(busy_poll_us as u64);
        let mut dhcp = v.dhcp(raw.dhcp.as_ref(), cli, listen.port(), v6_asked)?;
        v.dhcp6(raw.dhcp6.as_ref(), cli, dhcp.as_mut())?;
        let shared = v.lease_store(&raw.store, dhcp.as_mut())?;
        // PXE firmware fetches its first file over TFTP: a boot server that
        // answers DHCP turns TFTP on unless told where.
        let wants_tftp = dhcp.is_some() && raw.tftp.is_none();
        let empty = file::Tftp::default();
        let tftp_raw = raw.tftp.as_ref().or(wants_tftp.then_some(&empty));
        let tftp = v.tftp(tftp_raw, cli, busy_poll, v6_asked)?;
        let mut boot = v.boot(&raw, cli, listen)?;
        v.shared_machines(&raw, shared, dhcp.is_some(), boot.as_mut())?;
        let admin = v.admin(&raw.admin, cli)?;
        let fleet = v.fleet(&raw.fleet)?;
        let max_mib = v.opt_int(&raw.store.max_mib, "store.max_mib", 1..=1 << 20, 8192)? as u64;
        let mut mounts = Vec::new();
        for m in &raw.mount {
            let dir = v.dir(Some(&m.dir), "mount.dir", Path::new(m.dir.get_ref()))?;
            let p = m.path.get_ref().trim_end_matches('/');
            if !(m.path.get_ref().starts_with('/')
                && !p.contains(['?', '#', ' ', '%'])
                && !p.split('/').any(|s| s == ".." || s == "."))
            {
                return Err(v.invalid(
                    Some(m.path.span().start),
                    "mount.path",
                    format!("is {:?}", m.path.get_ref()),
                    "write a URL path such as \"/images\" (or \"/\" to serve the directory beside the root)",
                ));
            }
            mounts.push((p.to_owned(), dir));
        }
        let mut tftp = tftp;
        if let (Some(t), Some(raw_t)) = (tftp.as_mut(), raw.tftp.as_ref()) {
            for r in &raw_t.interface_root {
                let name = r.interface.get_ref();
                if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '.']) {
                    return Err(v.invalid(
                        Some(r.interface.span().start),
                        "tftp.interface_root.interface",
                        format!("is {name:?}, not an interface name"),
                        "give a name as `ip link` shows it, e.g. eth1",
                    ));
                }
                let dir = v.dir(
                    Some(&r.dir),
                    "tftp.interface_root.dir",
                    Path::new(r.dir.get_ref()),
                )?;
                let prefix = interface_root_prefix(name);
                mounts.push((prefix.clone(), dir));
                t.interface_roots.push((name.clone(), prefix));
            }
        }
        Ok(Config {
            root,
            mounts,
            workers,
            http: Http {
                listen,
                settings,
                max_connections,
                busy_poll,
                body: cli.http_body.or(h.body).unwrap_or_default(),
            },
            https: v.https(h, cli, listen)?,
            tftp,
            dhcp,
            store: store::Options {
                max_bytes: max_mib << 20,
                mlock: raw.store.mlock.unwrap_or(true),
            },
            log: Log {
                format: cli.log_format.or(raw.log.format).unwrap_or_default(),
                level: cli.log_level.or(raw.log.level).unwrap_or_default(),
            },
            boot,
            backend: cli.backend.or(raw.backend).unwrap_or_default(),
            admin,
            fleet,
        })
    }
}

/// `ADDR:PORT`, or `ADDR` alone for the TFTP port 69.
fn tftp_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 69))
    })
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    /// `[fleet]`: on by default, its sizes and waits in range.
    fn fleet(&self, raw: &file::Fleet) -> Result<Option<Fleet>, Error> {
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let d = crate::fleet::Limits::default();
        let t = crate::fleet::Timers::default();
        let machines = self.opt_int(
            &raw.machines,
            "fleet.machines",
            1..=1_000_000,
            d.machines as i64,
        )?;
        let boots = self.opt_int(&raw.boots, "fleet.boots", 1..=64, d.boots as i64)?;
        let secs = |s: &Option<Spanned<i64>>, key, default: Duration| {
            self.opt_int(s, key, 10..=86_400, default.as_secs() as i64)
                .map(|n| Duration::from_secs(n as u64))
        };
        Ok(Some(Fleet {
            limits: crate::fleet::Limits {
                machines: machines as usize,
                boots: boots as usize,
                ..d
            },
            timers: crate::fleet::Timers {
                installer: secs(&raw.installer_secs, "fleet.installer_secs", t.installer)?,
                answers: secs(&raw.answers_secs, "fleet.answers_secs", t.answers)?,
                ..t
            },
        }))
    }

    /// `[admin]`: the socket (default, named, or "" for none) and TCP with
    /// its token.
    fn admin(&self, raw: &file::Admin, cli: &Overrides) -> Result<Admin, Error> {
        let (socket, socket_is_default) = match (&cli.admin_socket, &raw.socket) {
            (Some(p), _) if p.as_os_str().is_empty() => (None, false),
            (Some(p), _) => (Some(p.clone()), false),
            (None, Some(s)) if s.get_ref().is_empty() => (None, false),
            (None, Some(s)) => (Some(PathBuf::from(s.get_ref())), false),
            (None, None) => (Some(PathBuf::from(DEFAULT_ADMIN_SOCKET)), true),
        };
        let tcp = match (&raw.listen, &raw.token_file) {
            (None, None) => None,
            (None, Some(t)) => {
                return Err(self.invalid(
                    Some(t.span().start),
                    "admin.token_file",
                    "is set without admin.listen".into(),
                    "add admin.listen = \"ADDR:PORT\" for the API on TCP, or remove token_file",
                ))
            }
            (Some(l), None) => {
                return Err(self.invalid(
                    Some(l.span().start),
                    "admin.listen",
                    "has no admin.token_file: the API on TCP always needs a token".into(),
                    "write a random token into a file only rackboot's user can read and set admin.token_file to it",
                ))
            }
            (Some(l), Some(t)) => {
                let listen = l.get_ref().parse().map_err(|_| {
                    self.invalid(
                        Some(l.span().start),
                        "admin.listen",
                        format!("is {:?}, not an address", l.get_ref()),
                        "write ADDR:PORT, e.g. \"127.0.0.1:9180\"",
                    )
                })?;
                let token = std::fs::read_to_string(t.get_ref()).map_err(|e| {
                    self.invalid(
                        Some(t.span().start),
                        "admin.token_file",
                        format!("cannot be read: {e}"),
                        "name a readable file holding the token",
                    )
                })?;
                let token = token.trim().to_owned();
                if token.len() < 16 {
                    return Err(self.invalid(
                        Some(t.span().start),
                        "admin.token_file",
                        "holds a token shorter than 16 characters".into(),
                        "put a long random token in it (e.g. `openssl rand -hex 32`)",
                    ));
                }
                Some(AdminTcp { listen, token })
            }
        };
        let metrics = match &raw.metrics_listen {
            Some(l) => Some(l.get_ref().parse().map_err(|_| {
                self.invalid(
                    Some(l.span().start),
                    "admin.metrics_listen",
                    format!("is {:?}, not an address", l.get_ref()),
                    "write ADDR:PORT, e.g. \"0.0.0.0:9181\" for Prometheus",
                )
            })?),
            None => None,
        };
        Ok(Admin {
            socket,
            socket_is_default,
            tcp,
            metrics,
        })
    }

    /// `[store]` with PostgreSQL and boot profiles: the machines' records
    /// go to the store too (and `boot.state_file` has no use).
    fn shared_machines(
        &self,
        raw: &file::File,
        shared: Option<dhcp::LeaseStore>,
        has_dhcp: bool,
        boot: Option<&mut boot::Boot>,
    ) -> Result<(), Error> {
        let Some(shared) = shared else {
            return Ok(());
        };
        let backend_at = raw.store.backend.as_ref().map(|b| b.span().start);
        let Some(boot) = boot else {
            if has_dhcp {
                return Ok(());
            }
            return Err(self.invalid(
                backend_at,
                "store.backend",
                "is \"postgres\" but this server neither answers DHCP nor serves boot profiles: the store holds leases and machines".into(),
                "add a [dhcp] table or [[profile]]s, or remove store.backend",
            ));
        };
        if !boot.state_file.1 {
            let at = raw.boot.state_file.as_ref().map(|s| s.span().start);
            return Err(self.invalid(
                at,
                "boot.state_file",
                "is set, but with store.backend = \"postgres\" the machines' records are kept in the store".into(),
                "remove boot.state_file (or --boot-state-file)",
            ));
        }
        boot.shared = Some(shared);
        Ok(())
    }

    /// `[store] backend`, `url`, `password_file`, `server_name`: the
    /// shared PostgreSQL store, given to `dhcp` (and returned for the
    /// machines' records).
    fn lease_store(
        &self,
        st: &file::Store,
        dhcp: Option<&mut dhcp::Dhcp>,
    ) -> Result<Option<dhcp::LeaseStore>, Error> {
        let key_at = |k: &Option<Spanned<String>>| k.as_ref().map(|s| s.span().start);
        let postgres = match &st.backend {
            None => false,
            Some(b) if b.get_ref() == "journal" => false,
            Some(b) if b.get_ref() == "postgres" => true,
            Some(b) => {
                return Err(self.invalid(
                    Some(b.span().start),
                    "store.backend",
                    format!("is {:?}", b.get_ref()),
                    "write \"journal\" (leases in dhcp.lease_file, the default) or \"postgres\" (shared by several servers; set store.url)",
                ))
            }
        };
        if !postgres {
            for (k, name) in [
                (&st.url, "store.url"),
                (&st.password_file, "store.password_file"),
                (&st.server_name, "store.server_name"),
            ] {
                if k.is_some() {
                    return Err(self.invalid(
                        key_at(k),
                        name,
                        "is set but the leases are kept in the journal".into(),
                        "add store.backend = \"postgres\", or remove the key",
                    ));
                }
            }
            return Ok(None);
        }
        let Some(url) = &st.url else {
            return Err(self.invalid(
                key_at(&st.backend),
                "store.url",
                "is missing with store.backend = \"postgres\"".into(),
                "add store.url = \"postgresql://rackboot@db.example:5432/rackboot\"",
            ));
        };
        if let Err(e) = url.get_ref().parse::<postgres::Config>() {
            return Err(self.invalid(
                Some(url.span().start),
                "store.url",
                format!("does not parse: {e}"),
                "write postgresql://user@host:port/dbname (a password goes in store.password_file)",
            ));
        }
        let password_file = match &st.password_file {
            Some(p) if !Path::new(p.get_ref()).is_file() => {
                return Err(self.invalid(
                    Some(p.span().start),
                    "store.password_file",
                    format!("{} is not a readable file", p.get_ref()),
                    "give a file whose first line is the database password",
                ))
            }
            Some(p) => Some(PathBuf::from(p.get_ref())),
            None => None,
        };
        let name = match &st.server_name {
            Some(n)
                if n.get_ref().is_empty()
                    || n.get_ref().contains(char::is_whitespace)
                    || n.get_ref().len() > 63 =>
            {
                return Err(self.invalid(
                    Some(n.span().start),
                    "store.server_name",
                    format!("is {:?}", n.get_ref()),
                    "give a name of 1 to 63 characters without spaces, different on each server",
                ))
            }
            Some(n) => n.get_ref().clone(),
            None => host_name(),
        };
        let target = dhcp::LeaseStore {
            url: url.get_ref().clone(),
            password_file,
            name,
        };
        let Some(d) = dhcp else {
            return Ok(Some(target));
        };
        if d.v6.is_some() {
            return Err(self.invalid(
                key_at(&st.backend),
                "store.backend",
                "is \"postgres\" with [dhcp6] on: DHCPv6 leases are kept in the journal only so far".into(),
                "serve DHCPv6 from a server with the journal (remove store.backend there), or leave [dhcp6] out",
            ));
        }
        d.store = Some(target.clone());
        Ok(Some(target))
    }

    fn invalid(
        &self,
        at: Option<usize>,
        key: &'static str,
        problem: String,
        fix: impl Into<String>,
    ) -> Error {
        let at = match at {
            Some(offset) => {
                let line = self
                    .text
                    .get(..offset)
                    .map_or(1, |t| t.matches('\n').count() + 1);
                format!("{}:{line}", self.path.display())
            }
            None => "command line".to_owned(),
        };
        Error::Invalid {
            at,
            key,
            problem,
            fix: fix.into(),
        }
    }

    fn int(
        &self,
        s: &Spanned<i64>,
        key: &'static str,
        range: RangeInclusive<i64>,
        fix: &str,
    ) -> Result<i64, Error> {
        let n = *s.get_ref();
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.invalid(Some(s.span().start), key, format!("is {n}"), fix))
        }
    }

    fn opt_int(
        &self,
        s: &Option<Spanned<i64>>,
        key: &'static str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, Error> {
        match s {
            None => Ok(default),
            Some(s) => {
                let fix = format!(
                    "give a whole number from {} to {}, or leave it out for {default}",
                    range.start(),
                    range.end()
                );
                self.int(s, key, range, &fix)
            }
        }
    }

    fn tftp(
        &self,
        raw: Option<&file::Tftp>,
        cli: &Overrides,
        busy_poll: Duration,
        dual_stack: bool,
    ) -> Result<Option<Tftp>, Error> {
        let empty = file::Tftp::default();
        let t = raw.unwrap_or(&empty);
        let listen = match (&cli.tftp, &t.listen) {
            (Some(a), _) => tftp_addr(a).ok_or_else(|| {
                self.invalid(
                    None,
                    "--tftp",
                    format!("is {a:?}, not an address"),
                    "write ADDR or ADDR:PORT, e.g. 10.0.0.1 or 0.0.0.0:69",
                )
            })?,
            (None, Some(s)) => tftp_addr(s.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(s.span().start),
                    "tftp.listen",
                    format!("is {:?}, not an address", s.get_ref()),
                    "write \"ADDR\" or \"ADDR:PORT\", e.g. \"0.0.0.0:69\"",
                )
            })?,
            (None, None) if raw.is_some() && dual_stack => {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 69))
            }
            (None, None) if raw.is_some() => SocketAddr::from(([0, 0, 0, 0], 69)),
            (None, None) => return Ok(None),
        };
        let d = crate::proto::tftp::Settings::default();
        let timeout = self.opt_int(
            &t.timeout_secs,
            "tftp.timeout_secs",
            1..=255,
            d.timeout.as_secs() as i64,
        )?;
        let settings = crate::proto::tftp::Settings {
            timeout: Duration::from_secs(timeout as u64),
            max_timeout: d.max_timeout.max(Duration::from_secs(timeout as u64)),
            retries: self.opt_int(&t.retries, "tftp.retries", 1..=50, i64::from(d.retries))? as u32,
            max_windowsize: self.opt_int(
                &t.max_windowsize,
                "tftp.max_windowsize",
                1..=64,
                i64::from(d.max_windowsize),
            )? as u16,
            blksize: t.blksize.unwrap_or(true),
            lowercase: t.lowercase.unwrap_or(false),
        };
        Ok(Some(Tftp {
            listen,
            single_port: cli.tftp_single_port || t.single_port.unwrap_or(false),
            settings,
            max_transfers: self.opt_int(
                &t.max_transfers,
                "tftp.max_transfers",
                1..=100_000,
                10_000,
            )? as usize,
            max_per_client: self.opt_int(
                &t.max_per_client,
                "tftp.max_per_client",
                1..=10_000,
                256,
            )? as u32,
            busy_poll,
            send: cli.tftp_send.or(t.send).unwrap_or_default(),
            interface_roots: Vec::new(),
        }))
    }

    fn dir(
        &self,
        at: Option<&Spanned<String>>,
        key: &'static str,
        p: &Path,
    ) -> Result<PathBuf, Error> {
        if p.is_dir() {
            return Ok(p.to_path_buf());
        }
        let problem = match std::fs::metadata(p) {
            Ok(_) => format!("is {}, which is not a directory", p.display()),
            Err(e) => format!("is {}: {e}", p.display()),
        };
        Err(self.invalid(
            at.map(|s| s.span().start),
            key,
            problem,
            "name the directory that holds the boot files",
        ))
    }
}

#[cfg(test)]
mod tests;

/// This host's name (the default `store.server_name`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rackboot".into())
}
