//! What a running server can be asked to do and say, whoever asks (SIGHUP,
//! the admin API, `rackboot reload`): reload its configuration and served
//! files, and report its status. A reload builds the next snapshot off the hot
//! path (loading, validating and dry-rendering as `rackboot check` does) and
//! publishes it with one call; transfers and connections in flight finish on
//! the generation they started with. A reload that fails changes nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::store::{Published, Snapshot};

/// Builds the next generation: the configuration re-read with the command
/// line it started with, and the snapshot it serves (its profiles attached by
/// the caller). The text of an error says what to fix.
pub type Rebuild = Box<dyn Fn() -> Result<(Config, Snapshot), String> + Send + Sync>;

/// The settings a reload cannot change in a running server (sockets, threads,
/// the DHCP engine), as they were at start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fixed {
    http: String,
    tftp: String,
    workers: usize,
    backend: String,
    dhcp: String,
    admin: String,
}

impl Fixed {
    fn of(c: &Config) -> Self {
        Self {
            http: c.http.listen.to_string(),
            tftp: format!("{:?}", c.tftp.map(|t| (t.listen, t.single_port))),
            workers: c.workers,
            backend: format!("{:?}", c.backend),
            // The DHCP worker keeps the engine it started with (its lease
            // table, pools and rules).
            dhcp: format!("{:?}", c.dhcp),
            admin: format!("{:?}", c.admin),
        }
    }

    /// What `next` changes that needs a restart.
    fn differences(&self, next: &Fixed) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, a: &str, b: &str| {
            if a != b {
                out.push(format!(
                    "{what} changed: it takes effect at the next restart"
                ));
            }
        };
        check("http.listen", &self.http, &next.http);
        check("[tftp] listen or single_port", &self.tftp, &next.tftp);
        check(
            "workers",
            &self.workers.to_string(),
            &next.workers.to_string(),
        );
        check("backend", &self.backend, &next.backend);
        check("[dhcp]", &self.dhcp, &next.dhcp);
        check("[admin]", &self.admin, &next.admin);
        out
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
    fixed: Fixed,
    started: Instant,
    /// One reload at a time; the counts.
    reloads: Mutex<Counts>,
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
    pub fn new(config: &Config, published: Arc<Published>, rebuild: Rebuild) -> Self {
        Self {
            published,
            rebuild,
            fixed: Fixed::of(config),
            started: crate::io::clock::now(),
            reloads: Mutex::new(Counts::default()),
        }
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
        let built = (self.rebuild)();
        let (config, snapshot) = match built {
            Ok(b) => b,
            Err(e) => {
                counts.failed += 1;
                tracing::error!(by = why, error = %e, generation = self.published.generation(), "reload refused: still serving the old generation");
                return Err(e);
            }
        };
        let profiles = config.boot.as_ref().map(|b| Arc::clone(&b.profiles));
        let n_profiles = profiles.as_ref().map_or(0, |p| p.profiles().len());
        let snapshot = snapshot.with_profiles(profiles);
        let (files, bytes) = (snapshot.len(), snapshot.total_bytes());
        let not_applied = self.fixed.differences(&Fixed::of(&config));
        let generation = self.published.publish(snapshot);
        counts.done += 1;
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
            not_applied,
        })
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
            backend: self.fixed.backend.to_lowercase(),
            files: snapshot.len(),
            bytes: snapshot.total_bytes(),
            reloads: counts.done,
            reloads_failed: counts.failed,
        }
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
