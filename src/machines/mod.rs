//! What the server knows of machines beyond its configuration file: the
//! changes made through the admin API (hostname, labels, vars, profile pin,
//! netboot state), each machine's install round (what a done URL is signed
//! for), and what each machine was last seen asking for.
//!
//! The configuration file's `[[machine]]` entries are the base; a machine's
//! API record lies over its entry field by field (a field the API set wins;
//! labels and vars merge key by key, the API's value winning). Deleting a
//! machine through the API removes its record: the file's entry, if any,
//! shows again. Records are durable before a change is answered (see
//! [`journal`], or [`shared`] when several servers share a PostgreSQL
//! store); what machines were seen doing is kept in memory only, for at
//! most [`SEEN_MAX`] machines (the longest unseen is forgotten first).

pub mod journal;
pub mod shared;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use crate::proto::boot::Mac;
use journal::Journal;

/// How many machines' last sighting is kept.
pub const SEEN_MAX: usize = 100_000;

/// What a machine's boot script does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Netboot {
    /// Boot its profile's installer; when the installer reports done, `local`.
    Install,
    /// Exit to the firmware's next boot device (the installed disk).
    Local,
    /// Boot its profile's installer every time.
    Always,
}

impl Netboot {
    /// Its name in the API and the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Local => "local",
            Self::Always => "always",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "install" => Some(Self::Install),
            "local" => Some(Self::Local),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

/// What the admin API set for one machine; a field it did not set is `None`
/// (or empty) and leaves the configuration file's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its profile, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Labels for profiles' `match`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Template variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// What its boot script does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netboot: Option<Netboot>,
}

impl Overlay {
    /// Checks what a client may put in templates: hostname characters, label
    /// and variable names.
    ///
    /// # Errors
    /// The first field that does not fit, named, with the fix.
    pub fn check(&self) -> Result<(), String> {
        if let Some(h) = &self.hostname {
            if h.is_empty()
                || h.len() > 253
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return Err(format!(
                    "`hostname` is {h:?}: use letters, digits, `-`, `.` or `_` (at most 253)"
                ));
            }
        }
        for (what, map) in [("labels", &self.labels), ("vars", &self.vars)] {
            if let Some(k) = map.keys().find(|k| {
                k.is_empty()
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            }) {
                return Err(format!(
                    "`{what}` has the name {k:?}: use letters, digits, `-` or `_`"
                ));
            }
        }
        Ok(())
    }
}

/// One machine's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// What the API set, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Overlay>,
    /// The install round: one more each time the API may have put the machine
    /// back to installing. A done URL is valid for its round only.
    #[serde(default)]
    pub round: u32,
    /// When its installer last reported done (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<u64>,
}

/// The step of its boot a machine was last seen at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// It fetched its boot script (the installer's).
    Script,
    /// Its installer fetched its answers.
    Config,
    /// Its installer reported done.
    Done,
    /// It fetched the local-boot script.
    Local,
}

impl Phase {
    /// Every phase, for metrics.
    pub const ALL: [Phase; 4] = [Self::Script, Self::Config, Self::Done, Self::Local];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Script => "script",
            Self::Config => "config",
            Self::Done => "done",
            Self::Local => "local",
        }
    }
}

/// What a machine last said of itself and asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// SMBIOS UUID.
    pub uuid: String,
    /// iPXE's build architecture.
    pub arch: String,
    /// iPXE's platform.
    pub platform: String,
    /// The hostname it reported.
    pub hostname: String,
    /// The address it asked from.
    pub ip: Option<IpAddr>,
    /// The profile it got.
    pub profile: String,
    /// What it asked for last.
    pub phase: Option<Phase>,
    /// When (unix seconds).
    pub at: u64,
}

/// Where changes are made durable.
#[derive(Debug)]
enum Keeper {
    /// This server's state file.
    File(Journal),
    /// The PostgreSQL store several servers share.
    Shared(Box<shared::Writer>),
}

/// The machines' records, durable when opened on a file or a store.
pub struct Book {
    key: [u8; 32],
    records: RwLock<HashMap<Mac, Record>>,
    /// Held while a change is written, so changes apply in the order they
    /// are kept.
    keeper: Mutex<Result<Keeper, String>>,
    seen: Mutex<HashMap<Mac, Seen>>,
    /// Where pages rendered for machines are told to the fleet view.
    fleet: std::sync::OnceLock<crate::fleet::Sink>,
}

impl std::fmt::Debug for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Book")
            .field("records", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl Book {
    /// A book with no file: it serves the configuration's inventory and
    /// refuses every change, saying `why`.
    pub fn memory(why: &str) -> Self {
        let mut key = [0; 32];
        // Done URLs of a book without a file are never honoured; the key
        // need not be secret, only fixed.
        key[0] = 1;
        Self {
            key,
            records: RwLock::default(),
            keeper: Mutex::new(Err(why.to_owned())),
            seen: Mutex::default(),
            fleet: std::sync::OnceLock::new(),
        }
    }

    /// The book kept in the state file `path`.
    ///
    /// # Errors
    /// The file cannot be opened, locked or read (the text says what to do).
    pub fn open(path: &Path) -> Result<Self, String> {
        let (journal, key, records) = Journal::open(path)?;
        tracing::info!(file = %path.display(), machines = records.len(), "machines state file open");
        Ok(Self {
            key,
            records: RwLock::new(records),
            keeper: Mutex::new(Ok(Keeper::File(journal))),
            seen: Mutex::default(),
            fleet: std::sync::OnceLock::new(),
        })
    }

    /// The book kept in the PostgreSQL store `target`, followed for the
    /// other servers' changes by a thread of its own.
    ///
    /// # Errors
    /// The store cannot be reached or read, or the thread cannot start.
    pub fn open_shared(target: &shared::Target) -> Result<Arc<Self>, String> {
        let (writer, key, records) = shared::open(target)?;
        tracing::info!(
            machines = records.len(),
            "machines: records kept in the PostgreSQL store"
        );
        let book = Arc::new(Self {
            key,
            records: RwLock::new(records),
            keeper: Mutex::new(Ok(Keeper::Shared(Box::new(writer)))),
            seen: Mutex::default(),
            fleet: std::sync::OnceLock::new(),
        });
        shared::follow(target.clone(), Arc::downgrade(&book))
            .map_err(|e| format!("machines: cannot start the store's thread: {e}"))?;
        Ok(book)
    }

    /// Takes `record` for `mac` from another server.
    fn learn(&self, mac: Mac, record: Record) {
        self.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(mac, record);
    }

    /// Takes every record from the store, read again.
    fn replace(&self, records: HashMap<Mac, Record>) {
        *self.records.write().unwrap_or_else(PoisonError::into_inner) = records;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Mac, Record>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `mac`'s record, if it has one.
    pub fn record(&self, mac: &Mac) -> Option<Record> {
        self.read().get(mac).cloned()
    }

    /// The API's overlay for `mac`, if any.
    pub fn overlay(&self, mac: &Mac) -> Option<Overlay> {
        self.read().get(mac).and_then(|r| r.machine.clone())
    }

    /// Every record.
    pub fn records(&self) -> Vec<(Mac, Record)> {
        self.read().iter().map(|(m, r)| (*m, r.clone())).collect()
    }

    /// Whether changes are kept; if not, why.
    pub fn durable(&self) -> Result<(), String> {
        match &*self.keeper.lock().unwrap_or_else(PoisonError::into_inner) {
            Ok(_) => Ok(()),
            Err(why) => Err(why.clone()),
        }
    }

    /// Changes `mac`'s record with `edit` (which may refuse), writes it
    /// durably, then makes it visible. Returns the record as it now is.
    ///
    /// # Errors
    /// `edit` refused (its text), there is no state file, or the write or
    /// its sync failed: nothing changed.
    pub fn change(
        &self,
        mac: Mac,
        edit: impl FnOnce(&mut Record) -> Result<(), String>,
    ) -> Result<Record, String> {
        let mut keeper = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        let record = match &mut *keeper {
            Err(why) => return Err(why.clone()),
            // The store applies the edit to what it holds, which another
            // server may have changed.
            Ok(Keeper::Shared(w)) => w.change(mac, edit)?,
            Ok(Keeper::File(journal)) => {
                let mut record = self.record(&mac).unwrap_or_default();
                edit(&mut record)?;
                journal.append(&mac, &record).map_err(|e| {
                    tracing::error!(file = %journal.path().display(), error = %e, %mac, "machines state file: a change could not be made durable; it is refused");
                    format!(
                        "the change could not be made durable in {}: {e}; nothing changed",
                        journal.path().display()
                    )
                })?;
                record
            }
        };
        self.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(mac, record.clone());
        Ok(record)
    }

    /// The signature of `mac`'s done URL for `round`.
    pub fn done_tag(&self, mac: &Mac, round: u32) -> String {
        // HMAC takes a key of any length; this cannot fail.
        let Ok(mut h) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        h.update(b"rackboot done\0");
        h.update(&mac.0);
        h.update(&round.to_le_bytes());
        h.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `tag` is `mac`'s signature for `round` (in constant time).
    pub fn tag_fits(&self, mac: &Mac, round: u32, tag: &str) -> bool {
        let want = self.done_tag(mac, round);
        want.len() == tag.len()
            && want
                .bytes()
                .zip(tag.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Notes what `mac` asked for.
    pub fn saw(&self, mac: Mac, seen: Seen) {
        let mut all = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() >= SEEN_MAX && !all.contains_key(&mac) {
            if let Some(oldest) = all.iter().min_by_key(|(_, s)| s.at).map(|(m, _)| *m) {
                all.remove(&oldest);
            }
        }
        all.insert(mac, seen);
    }

    /// Moves `mac`'s last sighting to `phase`, when it has one.
    pub fn saw_phase(&self, mac: &Mac, phase: Phase, at: u64) {
        let mut all = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = all.get_mut(mac) {
            s.phase = Some(phase);
            s.at = at;
        }
    }

    /// What `mac` was last seen asking for.
    pub fn seen(&self, mac: &Mac) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(mac)
            .cloned()
    }

    /// Every machine seen.
    pub fn all_seen(&self) -> Vec<(Mac, Seen)> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(m, s)| (*m, s.clone()))
            .collect()
    }

    /// Tells the pages rendered for machines to the fleet view, through
    /// `sink` (the first one set stays).
    pub fn set_fleet(&self, sink: crate::fleet::Sink) {
        let _ = self.fleet.set(sink);
    }

    /// Tells the fleet view that `kind` was rendered for `mac`, asking from
    /// `peer`: `body` for scripts (cut to [`crate::fleet::SCRIPT_MAX`]), or
    /// why its template failed.
    pub fn rendered(
        &self,
        mac: Mac,
        peer: Option<IpAddr>,
        kind: crate::fleet::PageKind,
        body: Option<&str>,
        error: Option<&str>,
    ) {
        let Some(sink) = self.fleet.get() else {
            return;
        };
        sink.send(|| {
            let body = body.map(|b| {
                let mut end = b.len().min(crate::fleet::SCRIPT_MAX);
                while !b.is_char_boundary(end) {
                    end -= 1;
                }
                b[..end].into()
            });
            crate::fleet::Event::Page(crate::fleet::Page {
                at: crate::io::clock::now(),
                mac,
                peer: peer.map(|p| p.to_canonical()),
                kind,
                body,
                error: error.map(Into::into),
            })
        });
    }

    /// Forgets what `mac` was seen doing.
    pub fn forget(&self, mac: &Mac) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(mac);
    }
}

#[cfg(test)]
mod tests;
