//! The machines' records in the PostgreSQL store, shared by every server
//! that names it: what the admin API set, each machine's install round and
//! when its installer reported done, and the key done URLs are signed with.
//!
//! Each server keeps every record in memory and renders from there, so a
//! slow or unreachable database never holds a script back. A change is made
//! in one transaction that locks the machine's row, applies the edit to what
//! the database holds (not to this server's copy), writes it back and
//! announces the MAC with `NOTIFY`; the change is answered once that commits.
//! A listening thread on every server reads each announced record again, so a
//! change made through one server's API is in the others' next scripts within
//! the time a notification takes (milliseconds on a LAN). After losing the
//! database, the thread reconnects each second and reads every record again.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, GenericClient};

use super::{Book, Mac, Record};
use crate::io::clock;
use crate::lease::pg;

pub use crate::config::dhcp::LeaseStore as Target;

/// The channel changes are announced on.
pub const CHANNEL: &str = "rackboot_machine";

/// Writes changes; held under the book's lock, so one change at a time.
pub struct Writer {
    target: Target,
    client: Option<Client>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("server", &self.target.name)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

/// What the store held at open.
pub type Opened = (Writer, [u8; 32], HashMap<Mac, Record>);

/// Connects, makes a new database ready, and reads the signing key (made
/// here by the first server) and every record.
///
/// # Errors
/// The database cannot be reached, its schema is not this build's, or a
/// record in it does not parse.
pub fn open(target: &Target) -> Result<Opened, String> {
    let mut c = pg::connect(&target.url, target.password_file.as_deref())?;
    pg::ready(&mut c, "machines")?;
    let key = signing_key(&mut c)?;
    let records = load(&mut c)?;
    Ok((
        Writer {
            target: target.clone(),
            client: Some(c),
        },
        key,
        records,
    ))
}

fn signing_key(c: &mut Client) -> Result<[u8; 32], String> {
    let fresh = super::journal::fresh_key()
        .map_err(|e| format!("machines: cannot read /dev/urandom for the signing key: {e}"))?;
    // The first server to get here makes the key; every later one reads it.
    c.execute(
        "INSERT INTO rackboot_machine_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        &[&&fresh[..]],
    )
    .map_err(|e| format!("store: machines' signing key: {}", pg::said(&e)))?;
    let key: Vec<u8> = c
        .query_one("SELECT key FROM rackboot_machine_key WHERE id = 1", &[])
        .map_err(|e| format!("store: machines' signing key: {}", pg::said(&e)))?
        .get(0);
    key.try_into()
        .map_err(|_| "store: the machines' signing key is not 32 bytes".to_string())
}

fn parse(mac: &[u8], json: &str) -> Result<(Mac, Record), String> {
    let mac: [u8; 6] = mac
        .try_into()
        .map_err(|_| format!("store: a machine's MAC has {} bytes", mac.len()))?;
    let mac = Mac(mac);
    let record = serde_json::from_str(json)
        .map_err(|e| format!("store: machine {mac}'s record does not parse: {e}"))?;
    Ok((mac, record))
}

/// Every record.
///
/// # Errors
/// A query fails, or a record does not parse (named).
pub fn load(c: &mut impl GenericClient) -> Result<HashMap<Mac, Record>, String> {
    let rows = c
        .query("SELECT mac, record::text FROM rackboot_machine", &[])
        .map_err(|e| format!("store: reading the machines: {}", pg::said(&e)))?;
    rows.iter().map(|r| parse(r.get(0), r.get(1))).collect()
}

/// How many machines the store holds records for.
///
/// # Errors
/// A query fails.
pub fn count(c: &mut impl GenericClient) -> Result<i64, String> {
    c.query_one("SELECT count(*) FROM rackboot_machine", &[])
        .map(|r| r.get(0))
        .map_err(|e| format!("store: {}", pg::said(&e)))
}

impl Writer {
    /// Applies `edit` to what the store holds for `mac`, writes it back and
    /// announces it, in one transaction; returns the record as committed.
    ///
    /// # Errors
    /// `edit` refused (its text; nothing written), or the database failed
    /// (nothing changed).
    pub fn change(
        &mut self,
        mac: Mac,
        edit: impl FnOnce(&mut Record) -> Result<(), String>,
    ) -> Result<Record, String> {
        let failed = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, %mac, "machines: a change could not be made durable in the PostgreSQL store; it is refused");
            format!("the change could not be made durable in the PostgreSQL store: {e}; nothing changed")
        };
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let c = pg::connect(&self.target.url, self.target.password_file.as_deref())
                .map_err(|e| failed(&e))?;
            self.client = Some(c);
        }
        let Some(c) = self.client.as_mut() else {
            return Err(failed(&"not connected"));
        };
        let result = write(c, &self.target.name, mac, edit);
        if c.is_closed() {
            self.client = None;
        }
        match result {
            Ok(r) => Ok(r),
            Err(Failure::Refused(why)) => Err(why),
            Err(Failure::Db(e)) => Err(failed(&e)),
        }
    }
}

enum Failure {
    Refused(String),
    Db(String),
}

fn write(
    c: &mut Client,
    server: &str,
    mac: Mac,
    edit: impl FnOnce(&mut Record) -> Result<(), String>,
) -> Result<Record, Failure> {
    let db = |e: postgres::Error| Failure::Db(pg::said(&e));
    let mut tx = c.transaction().map_err(db)?;
    // Two servers changing one machine take turns on its row.
    tx.execute(
        "INSERT INTO rackboot_machine (mac, record, server) VALUES ($1, '{}', $2) ON CONFLICT (mac) DO NOTHING",
        &[&&mac.0[..], &server],
    )
    .map_err(db)?;
    let json: String = tx
        .query_one(
            "SELECT record::text FROM rackboot_machine WHERE mac = $1 FOR UPDATE",
            &[&&mac.0[..]],
        )
        .map_err(db)?
        .get(0);
    let (_, mut record) = parse(&mac.0, &json).map_err(Failure::Db)?;
    edit(&mut record).map_err(Failure::Refused)?;
    let json = serde_json::to_string(&record).map_err(|e| Failure::Db(e.to_string()))?;
    tx.execute(
        "UPDATE rackboot_machine SET record = $2::text::jsonb, server = $3, updated = now() WHERE mac = $1",
        &[&&mac.0[..], &json, &server],
    )
    .map_err(db)?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &format!("{server} {mac}")],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(record)
}

/// Starts the thread that keeps `book`'s records up with the other
/// servers' changes; it ends when the book is dropped.
///
/// # Errors
/// The thread cannot be spawned.
pub fn follow(target: Target, book: Weak<Book>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("rackboot-machines-store".into())
        .spawn(move || run(&target, &book))
        .map(drop)
}

fn run(target: &Target, book: &Weak<Book>) {
    let mut logged_at: Option<Instant> = None;
    let mut first = true;
    while book.strong_count() > 0 {
        let mut c = match connect_listening(target) {
            Ok(c) => c,
            Err(e) => {
                if logged_at
                    .is_none_or(|t| clock::now().duration_since(t) >= Duration::from_secs(60))
                {
                    logged_at = Some(clock::now());
                    tracing::error!(error = %e, "machines: the PostgreSQL store is unreachable; scripts use the records last read, and API changes are refused until it returns");
                }
                // Waits before the next try (nothing unparks it).
                std::thread::park_timeout(Duration::from_secs(1));
                continue;
            }
        };
        // Listening first, then reading everything: nothing announced in
        // between is missed.
        match load(&mut c) {
            Ok(records) => {
                let Some(b) = book.upgrade() else { return };
                if !first {
                    tracing::warn!(
                        machines = records.len(),
                        "machines: reconnected to the PostgreSQL store; records read again"
                    );
                }
                b.replace(records);
            }
            Err(e) => {
                tracing::error!(error = %e, "machines: reading the PostgreSQL store");
                // Waits before the next try (nothing unparks it).
                std::thread::park_timeout(Duration::from_secs(1));
                continue;
            }
        }
        first = false;
        logged_at = None;
        if let Err(e) = listen(&mut c, book) {
            tracing::warn!(error = %e, "machines: lost the PostgreSQL store's announcements; reconnecting");
        }
    }
}

fn connect_listening(target: &Target) -> Result<Client, String> {
    let mut c = pg::connect(&target.url, target.password_file.as_deref())?;
    c.batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| format!("store: LISTEN: {}", pg::said(&e)))?;
    Ok(c)
}

/// MACs announced, waiting up to a second for the first.
fn announced(c: &mut Client) -> Result<Vec<Mac>, postgres::Error> {
    let mut macs = Vec::new();
    let mut n = c.notifications();
    let mut note = n.timeout_iter(Duration::from_secs(1)).next()?;
    let mut rest = n.iter();
    while let Some(got) = note {
        match got
            .payload()
            .split_once(' ')
            .and_then(|(_, m)| Mac::parse(m))
        {
            Some(m) => macs.push(m),
            None => tracing::debug!("machines: an announcement that is not rackboot's"),
        }
        if macs.len() >= 1000 {
            break;
        }
        note = rest.next()?;
    }
    Ok(macs)
}

/// Reads each announced record again, until the connection fails or the
/// book is dropped.
fn listen(c: &mut Client, book: &Weak<Book>) -> Result<(), String> {
    loop {
        let mut macs = announced(c).map_err(|e| pg::said(&e))?;
        let Some(b) = book.upgrade() else {
            return Ok(());
        };
        if macs.is_empty() {
            // An idle connection is still checked once a second.
            c.simple_query("").map_err(|e| pg::said(&e))?;
            continue;
        }
        macs.sort_unstable_by_key(|m| m.0);
        macs.dedup();
        let keys: Vec<&[u8]> = macs.iter().map(|m| &m.0[..]).collect();
        let rows = c
            .query(
                "SELECT mac, record::text FROM rackboot_machine WHERE mac = ANY($1)",
                &[&keys],
            )
            .map_err(|e| pg::said(&e))?;
        for r in &rows {
            match parse(r.get(0), r.get(1)) {
                Ok((mac, record)) => b.learn(mac, record),
                Err(e) => tracing::warn!(error = %e, "machines: an announced record is skipped"),
            }
        }
    }
}
