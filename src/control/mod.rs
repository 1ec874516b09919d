//! What a running server can be asked to do and say, whoever asks (SIGHUP,
//! the admin API, `rackboot reload`): reload its configuration and served
//! files, and report its status. A reload builds the next snapshot off the hot
//! path (loading, validating and dry-rendering as `rackboot check` does) and
//! publishes it with one call; transfers and connections in flight finish on
//! the generation they started with. A reload that fails changes nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::config::dhcp::Dhcp;
use crate::config::{Admin, Backend, Config};
use crate::io::dhcp::{Command, LeaseView, Mailbox, Unanswered};
use crate::machines::Book;
use crate::metrics::Metrics;
use crate::proto::dhcp::Settings;
use crate::store::{Published, Snapshot};

mod machines;
pub use machines::{MachineView, Refused};

/// How long a reload waits for the DHCP worker to take its new settings.
const DHCP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands `settings` to the DHCP worker and waits for its answer.
fn ask_dhcp(mailbox: &Mailbox, (settings, settings6): Prepared) -> Result<String, String> {
    let ask = |reply| Command::Reconfigure {
        settings,
        settings6,
        reply,
    };
    match mailbox.ask(ask, DHCP_WAIT) {
        Ok(said) => said,
        Err(Unanswered::Unreachable(e)) => Err(format!("dhcp: cannot reach the DHCP worker: {e}")),
        Err(Unanswered::Late) => Err(
            "dhcp: the DHCP worker did not take the new settings in time; it keeps the old ones"
                .into(),
        ),
    }
}

/// New DHCP settings for the worker: DHCPv4's, and DHCPv6's when it is on.
type Prepared = (Box<Settings>, Option<Box<crate::proto::dhcp6::Settings>>);

/// What an admin request tells its caller when the DHCP worker gave no answer.
fn unanswered(e: Unanswered) -> String {
    match e {
        Unanswered::Unreachable(e) => format!("cannot reach the DHCP worker: {e}"),
        Unanswered::Late => "the DHCP worker did not answer".to_owned(),
    }
}

/// Builds the next generation from the one served now: the configuration
/// re-read with the command line it started with, and the snapshot it serves
/// (its profiles attached by the caller; unchanged files may be shared). The
/// text of an error says what to fix.
pub type Rebuild = Box<dyn Fn(&Snapshot) -> Result<(Config, Snapshot), String> + Send + Sync>;

/// The settings a reload cannot change in a running server (sockets, threads,
/// the DHCP engine), as they were at start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fixed {
    http: std::net::SocketAddr,
    tftp: Option<(std::net::SocketAddr, bool)>,
    workers: usize,
    backend: Backend,
    /// The DHCP worker's sockets and journal: interfaces, lease file, probes
    /// on or off, router advertisements (the rest of `[dhcp]` reloads).
    dhcp: Option<(Vec<String>, std::path::PathBuf, bool, bool, bool)>,
    /// The PostgreSQL store, when leases or machines are kept there.
    store: Option<crate::config::dhcp::LeaseStore>,
    admin: Admin,
    /// The machines state file, when profiles are served.
    state_file: Option<std::path::PathBuf>,
    /// `[fleet]`: the collector's sizes and waits are set at start.
    fleet: Option<crate::config::Fleet>,
}

impl Fixed {
    fn of(c: &Config) -> Self {
        Self {
            http: c.http.listen,
            tftp: c.tftp.as_ref().map(|t| (t.listen, t.single_port)),
            workers: c.workers,
            backend: c.backend,
            dhcp: c.dhcp.as_ref().map(|d| {
                (
                    d.interfaces().map(str::to_owned).collect(),
                    d.lease_file.clone(),
                    d.probe.is_zero(),
                    d.router_advertisement,
                    d.v6.is_some(),
                )
            }),
            store: c.shared_store().cloned(),
            admin: c.admin.clone(),
            state_file: c.boot.as_ref().map(|b| b.state_file.0.clone()),
            fleet: c.fleet,
        }
    }

    /// What `next` changes that needs a restart.
    fn differences(&self, next: &Fixed) -> Vec<String> {
        [
            ("http.listen", self.http != next.http),
            ("[tftp] listen or single_port", self.tftp != next.tftp),
            ("workers", self.workers != next.workers),
            ("backend", self.backend != next.backend),
            (
                "[dhcp] on or off, interface, lease_file, probe_ms on or off, router_advertisement, [dhcp6] on or off",
                self.dhcp != next.dhcp,
            ),
            ("[store]", self.store != next.store),
            ("[admin]", self.admin != next.admin),
            (
                "boot.state_file (or [[profile]] added to a server that started without)",
                self.state_file != next.state_file,
            ),
            ("[fleet]", self.fleet != next.fleet),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(what, _)| format!("{what} changed: it takes effect at the next restart"))
        .collect()
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The generation now served to new requests.
    pub generation: u64,
    /// Files and bytes it holds.
    pub files: usize,
    /// Total bytes.
    pub bytes: u64,
    /// Boot profiles it renders.
    pub profiles: usize,
    /// What the DHCP worker said of its new settings, when `[dhcp]` changed.
    pub dhcp: Option<String>,
    /// Changes read but not applied until a restart.
    pub not_applied: Vec<String>,
}

/// The server's status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// rackboot's version.
    pub version: &'static str,
    /// The generation new requests get.
    pub generation: u64,
    /// Seconds since the start.
    pub uptime_secs: u64,
    /// Worker threads per protocol.
    pub workers: usize,
    /// The I/O backend asked for (`Auto` is resolved per worker at start).
    pub backend: String,
    /// Files and bytes served.
    pub files: usize,
    /// Total bytes.
    pub bytes: u64,
    /// Reloads done, and failed, since the start.
    pub reloads: u64,
    /// Reloads refused.
    pub reloads_failed: u64,
}

/// One served file.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// URL path.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Its ETag.
    pub etag: String,
    /// Held in locked memory.
    pub locked: bool,
}

#[derive(Debug, Default)]
struct Counts {
    done: u64,
    failed: u64,
}

/// The running server's control: reload and status.
pub struct Control {
    published: Arc<Published>,
    rebuild: Rebuild,
    /// The DHCP worker's mailbox, when DHCP runs; and the `[dhcp]` it serves.
    dhcp: Option<Arc<Mailbox>>,
    dhcp_config: Mutex<Option<Dhcp>>,
    /// The workers' counters.
    metrics: Arc<Metrics>,
    /// The machines' records, attached to every generation's profiles.
    book: Arc<Book>,
    fixed: Fixed,
    started: Instant,
    /// One reload at a time; the counts.
    reloads: Mutex<Counts>,
    /// The boot timelines, when kept.
    fleet: Option<Arc<crate::fleet::collect::View>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("generation", &self.published.generation())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// The control of a server started with `config`, serving `published`;
    /// `rebuild` makes the next generation.
    pub fn new(
        config: &Config,
        published: Arc<Published>,
        rebuild: Rebuild,
        dhcp: Option<Arc<Mailbox>>,
        metrics: Arc<Metrics>,
        book: Arc<Book>,
    ) -> Self {
        Self {
            published,
            rebuild,
            dhcp,
            metrics,
            book,
            dhcp_config: Mutex::new(config.dhcp.clone()),
            fixed: Fixed::of(config),
            started: crate::io::clock::now(),
            reloads: Mutex::new(Counts::default()),
            fleet: None,
        }
    }

    /// With the boot timelines of `view`.
    #[must_use]
    pub fn with_fleet(mut self, view: Option<Arc<crate::fleet::collect::View>>) -> Self {
        self.fleet = view;
        self
    }

    /// The boot timelines, when kept.
    pub fn fleet(&self) -> Option<&crate::fleet::collect::View> {
        self.fleet.as_deref()
    }

    /// Re-reads the configuration and the served files and publishes them;
    /// `why` names who asked (for the log).
    ///
    /// # Errors
    /// The configuration or a file could not be read, validated or rendered:
    /// nothing changed, and the old generation is still served.
    pub fn reload(&self, why: &str) -> Result<Reloaded, String> {
        let mut counts = self.reloads.lock().unwrap_or_else(PoisonError::into_inner);
        let began = crate::io::clock::now();
        let built = (self.rebuild)(&self.published.current());
        let (config, snapshot) = match built {
            Ok(b) => b,
            Err(e) => {
                counts.failed += 1;
                tracing::error!(by = why, error = %e, generation = self.published.generation(), "reload refused: still serving the old generation");
                return Err(e);
            }
        };
        let profiles = match config
            .boot
            .as_ref()
            .map(|b| b.profiles.with_book(Arc::clone(&self.book)))
        {
            None => None,
            Some(Ok(p)) => Some(Arc::new(p)),
            Some(Err(e)) => {
                counts.failed += 1;
                tracing::error!(by = why, error = %e, generation = self.published.generation(), "reload refused: still serving the old generation");
                return Err(e);
            }
        };
        let n_profiles = profiles.as_ref().map_or(0, |p| p.profiles().len());
        let snapshot = snapshot.with_profiles(profiles);
        let (files, bytes) = (snapshot.len(), snapshot.total_bytes());
        let mut not_applied = self.fixed.differences(&Fixed::of(&config));
        // DHCP settings are checked against the interface before anything is
        // published, so that a bad range refuses the whole reload.
        let dhcp = match self.dhcp_settings(&config, &snapshot) {
            Ok(d) => d,
            Err(e) => {
                counts.failed += 1;
                tracing::error!(by = why, error = %e, generation = self.published.generation(), "reload refused: still serving the old generation");
                return Err(e);
            }
        };
        let generation = self.published.publish(snapshot);
        counts.done += 1;
        let mut dhcp_said = None;
        if let (Some((settings, raw)), Some(mailbox)) = (dhcp, &self.dhcp) {
            match ask_dhcp(mailbox, settings) {
                Ok(said) => {
                    *self
                        .dhcp_config
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(raw);
                    dhcp_said = Some(said);
                }
                Err(e) => not_applied.push(e),
            }
        }
        for n in &not_applied {
            tracing::warn!(by = why, "reload: {n}");
        }
        tracing::info!(
            by = why,
            generation,
            files,
            bytes,
            profiles = n_profiles,
            ms = crate::io::clock::now()
                .saturating_duration_since(began)
                .as_millis() as u64,
            "reloaded: new requests get the new generation, those in flight finish on theirs"
        );
        Ok(Reloaded {
            generation,
            files,
            bytes,
            profiles: n_profiles,
            dhcp: dhcp_said,
            not_applied,
        })
    }

    /// The DHCP settings to hand the worker, resolved against its interface,
    /// when `[dhcp]` changed and can be applied live.
    ///
    /// # Errors
    /// The interface cannot be read, or a range lies outside its network.
    fn dhcp_settings(
        &self,
        config: &Config,
        snapshot: &Snapshot,
    ) -> Result<Option<(Prepared, Dhcp)>, String> {
        let (Some(next), Some(_)) = (&config.dhcp, &self.dhcp) else {
            return Ok(None);
        };
        let current = self
            .dhcp_config
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref() == Some(next) || Fixed::of(config).dhcp != self.fixed.dhcp {
            return Ok(None);
        }
        let prepared = crate::io::dhcp::prepare(next, snapshot);
        let mut ifaces = Vec::new();
        let mut first_v6 = None;
        for name in prepared.interfaces() {
            let i = crate::io::dhcp::interface_for(&prepared, name)
                .map_err(|e| format!("dhcp: {e}"))?;
            if ifaces.is_empty() {
                first_v6 = i.v6;
            }
            ifaces.push((i.addr, i.prefix));
        }
        let settings = prepared
            .resolve(&ifaces)
            .map_err(|e| format!("dhcp: {e}"))?;
        // DHCPv6's subnets lie on the first interface's prefix, as at start.
        let settings6 = match &prepared.v6 {
            Some(v6) => Some(Box::new(v6.resolve(first_v6)?)),
            None => None,
        };
        Ok(Some(((Box::new(settings), settings6), next.clone())))
    }

    /// The status now.
    pub fn status(&self) -> Status {
        let snapshot = self.published.current();
        let counts = self.reloads.lock().unwrap_or_else(PoisonError::into_inner);
        Status {
            version: env!("CARGO_PKG_VERSION"),
            generation: snapshot.generation(),
            uptime_secs: crate::io::clock::now()
                .saturating_duration_since(self.started)
                .as_secs(),
            workers: self.fixed.workers,
            backend: format!("{:?}", self.fixed.backend).to_lowercase(),
            files: snapshot.len(),
            bytes: snapshot.total_bytes(),
            reloads: counts.done,
            reloads_failed: counts.failed,
        }
    }

    /// Every figure, in Prometheus' text format: the workers' counters, the
    /// DHCP worker's (asked through its mailbox), reloads and generation.
    pub fn metrics(&self) -> String {
        use crate::metrics::sample;
        let mut out = String::new();
        self.metrics.render(&mut out);
        if let Some(mailbox) = &self.dhcp {
            if let Ok(text) = mailbox.ask(|reply| Command::Metrics { reply }, DHCP_WAIT) {
                out.push_str(&text);
            }
        }
        let status = self.status();
        sample(
            &mut out,
            "rackboot_generation",
            "gauge",
            "The served generation (0 at start, one more per reload).",
            status.generation,
        );
        crate::metrics::family(
            &mut out,
            "rackboot_reloads_total",
            "counter",
            "Reloads, by result.",
        );
        out.push_str(&format!(
            "rackboot_reloads_total{{result=\"ok\"}} {}\nrackboot_reloads_total{{result=\"refused\"}} {}\n",
            status.reloads, status.reloads_failed
        ));
        sample(
            &mut out,
            "rackboot_served_files",
            "gauge",
            "Files in the served generation.",
            status.files,
        );
        sample(
            &mut out,
            "rackboot_served_bytes",
            "gauge",
            "Bytes in the served generation.",
            status.bytes,
        );
        if let Some(fleet) = self.fleet() {
            let summary = fleet.summary(&crate::fleet::view::Query {
                limit: Some(0),
                ..Default::default()
            });
            crate::metrics::family(
                &mut out,
                "rackboot_fleet_machines",
                "gauge",
                "Machines whose boots the fleet view follows, by their latest boot's state.",
            );
            for (state, n) in &summary.counts.states {
                out.push_str(&format!(
                    "rackboot_fleet_machines{{state=\"{state}\"}} {n}\n"
                ));
            }
            sample(
                &mut out,
                "rackboot_fleet_forgotten_total",
                "counter",
                "Machines the fleet view forgot to stay within fleet.machines.",
                summary.forgotten,
            );
            sample(
                &mut out,
                "rackboot_fleet_events_dropped_total",
                "counter",
                "Events the workers dropped because the fleet view's queue was full.",
                summary.dropped_events,
            );
        }
        if let Some((netboot, phase)) = self.machine_counts() {
            crate::metrics::family(
                &mut out,
                "rackboot_machines",
                "gauge",
                "Machines known (inventory, admin API, seen), by what their boot script does.",
            );
            for (n, count) in netboot {
                out.push_str(&format!("rackboot_machines{{netboot=\"{n}\"}} {count}\n"));
            }
            crate::metrics::family(
                &mut out,
                "rackboot_machines_by_phase",
                "gauge",
                "Machines seen, by what they asked for last (script, config, done, local).",
            );
            for (f, count) in phase {
                out.push_str(&format!(
                    "rackboot_machines_by_phase{{phase=\"{f}\"}} {count}\n"
                ));
            }
        }
        sample(
            &mut out,
            "rackboot_uptime_seconds",
            "gauge",
            "Seconds since the start.",
            status.uptime_secs,
        );
        out
    }

    /// Every lease: the shared store's when there is one (every server's
    /// leases, as the database holds them), else the DHCP worker's table.
    ///
    /// # Errors
    /// DHCP is off, its worker does not answer, or the store cannot be read.
    pub fn leases(&self) -> Result<Vec<LeaseView>, String> {
        let mailbox = self.dhcp.as_ref().ok_or("DHCP is off on this server")?;
        let store = self
            .dhcp_config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|d| d.store.clone());
        if let Some(st) = store {
            use crate::lease::pg;
            let mut c = pg::connect(&st.url, st.password_file.as_deref())?;
            let table = crate::lease::Table::from_records(pg::load(&mut c)?);
            return Ok(LeaseView::all(&table, crate::io::clock::unix_now()));
        }
        mailbox
            .ask(|reply| Command::Leases { reply }, DHCP_WAIT)
            .map_err(unanswered)
    }

    /// Frees the lease on `ip`, durably.
    ///
    /// # Errors
    /// DHCP is off, no lease holds `ip`, or the journal cannot be written.
    pub fn free_lease(&self, ip: std::net::IpAddr) -> Result<(), String> {
        let mailbox = self.dhcp.as_ref().ok_or("DHCP is off on this server")?;
        mailbox
            .ask(|reply| Command::Free { ip, reply }, DHCP_WAIT)
            .map_err(unanswered)?
    }

    /// The files served to new requests, by path.
    pub fn files(&self) -> Vec<FileInfo> {
        let snapshot = self.published.current();
        let mut out: Vec<FileInfo> = snapshot
            .files()
            .iter()
            .map(|f| FileInfo {
                path: f.path().to_owned(),
                bytes: f.len(),
                etag: f.etag().trim_matches('"').to_owned(),
                locked: f.is_locked(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}
