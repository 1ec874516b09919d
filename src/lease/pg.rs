//! The DHCPv4 lease table in PostgreSQL, shared by several rackboot servers,
//! and the schema it shares with the machines' records
//! ([`crate::machines::shared`]).
//!
//! Each server keeps its table in memory, as with the journal, and commits
//! its changes here in groups; the database decides, row by row, whether a
//! binding may be made: an `INSERT ... ON CONFLICT DO UPDATE ... WHERE` that
//! takes the address only if it is free, expired, or already this client's.
//! Two servers that chose the same address for two clients cannot both win:
//! the second waits on the first's row lock, then sees its row and takes
//! nothing. What a commit changed is announced with `NOTIFY` in the same
//! transaction, so the other servers learn it once it is committed, in commit
//! order, and their tables stay close to the database's.
//!
//! Schema versions are numbered; [`migrate`] brings a database to
//! [`SCHEMA_VERSION`] in one transaction, [`version`] reads where it is.

use std::net::{IpAddr, Ipv4Addr};

use postgres::{Client, GenericClient, NoTls};

use super::journal::{self, Record};
use super::Lease;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i32 = 2;

/// The channel commits are announced on.
pub const CHANNEL: &str = "rackboot_lease4";

/// Bytes of records per announcement (NOTIFY payloads stop near 8,000
/// bytes; records travel hex-encoded after the server's name).
const NOTIFY_CHUNK: usize = 3000;

/// Version 1: leases (bound, freed, declined) with a change sequence.
const V1: &str = "
CREATE TABLE rackboot_schema (version integer NOT NULL);
INSERT INTO rackboot_schema VALUES (0);
CREATE SEQUENCE rackboot_lease_seq;
CREATE TABLE rackboot_lease4 (
    ip inet PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('bound', 'free', 'declined')),
    client bytea,
    hw bytea NOT NULL DEFAULT ''::bytea,
    hostname text NOT NULL DEFAULT '',
    expires bigint NOT NULL,
    server text NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('rackboot_lease_seq'),
    updated timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'bound') = (client IS NOT NULL))
);
CREATE UNIQUE INDEX rackboot_lease4_client ON rackboot_lease4 (client);
";

/// Version 2: the machines' records (what the admin API set, the install
/// round, when the installer reported done) and the key done URLs are signed
/// with, shared by every server.
const V2: &str = "
CREATE TABLE rackboot_machine (
    mac bytea PRIMARY KEY CHECK (length(mac) = 6),
    record jsonb NOT NULL,
    server text NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rackboot_machine_key (
    id integer PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL CHECK (length(key) = 32)
);
";

/// Each migration, from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Connects to `url`; a password read from `password_file` (its first line)
/// replaces any in the URL.
///
/// # Errors
/// The URL does not parse, the file cannot be read, or the server refuses.
pub fn connect(url: &str, password_file: Option<&std::path::Path>) -> Result<Client, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| {
        format!("store.url: {e} (write postgresql://user@host:port/dbname or host=... dbname=...)")
    })?;
    if let Some(p) = password_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("store.password_file {}: {e}", p.display()))?;
        config.password(text.lines().next().unwrap_or("").trim_end());
    }
    config.application_name("rackboot");
    config.connect_timeout(std::time::Duration::from_secs(5));
    config
        .connect(NoTls)
        .map_err(|e| format!("store.url: cannot reach PostgreSQL: {e}{}", source_of(&e)))
}

/// What the database said, in full (`postgres::Error` alone prints "db
/// error").
pub fn said(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}

fn source_of(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

/// The schema version of the database (0: none of ours yet).
///
/// # Errors
/// A query fails.
pub fn version(c: &mut impl GenericClient) -> Result<i32, String> {
    let exists: bool = c
        .query_one("SELECT to_regclass('rackboot_schema') IS NOT NULL", &[])
        .map_err(|e| format!("store: {}", said(&e)))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    c.query_one("SELECT version FROM rackboot_schema", &[])
        .map(|r| r.get(0))
        .map_err(|e| format!("store: reading the schema version: {}", said(&e)))
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; returns the
/// version it found.
///
/// # Errors
/// The database is newer than this build, or a statement fails (nothing is
/// changed then).
pub fn migrate(c: &mut Client) -> Result<i32, String> {
    // One migrating server at a time: the lock is taken before the
    // transaction begins, so that the transaction sees what the one before
    // it committed.
    c.execute("SELECT pg_advisory_lock(7461)", &[])
        .map_err(|e| format!("store: {}", said(&e)))?;
    let result = migrate_locked(c);
    let _ = c.execute("SELECT pg_advisory_unlock(7461)", &[]);
    result
}

fn migrate_locked(c: &mut Client) -> Result<i32, String> {
    let mut tx = c
        .transaction()
        .map_err(|e| format!("store: {}", said(&e)))?;
    let found = version(&mut tx)?;
    if found > SCHEMA_VERSION {
        return Err(format!(
            "store: the database's schema is version {found}, newer than this rackboot's {SCHEMA_VERSION}: upgrade rackboot"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)
            .map_err(|e| format!("store: migrating to schema version {}: {}", i + 1, said(&e)))?;
        tx.execute(
            "UPDATE rackboot_schema SET version = $1",
            &[&(i as i32 + 1)],
        )
        .map_err(|e| format!("store: {}", said(&e)))?;
    }
    tx.commit().map_err(|e| format!("store: {}", said(&e)))?;
    Ok(found)
}

/// Makes a new database ready (as `rackboot db migrate` would), then checks
/// that the schema is this build's.
///
/// # Errors
/// A query fails, or the schema is older or newer than this build's.
pub fn ready(c: &mut Client, what: &str) -> Result<(), String> {
    if version(c)? == 0 {
        migrate(c)?;
        tracing::info!(
            version = SCHEMA_VERSION,
            "{what}: the PostgreSQL store had no schema; created"
        );
    }
    check_version(c)
}

/// Checks that the schema is this build's.
///
/// # Errors
/// It is missing, older or newer, with the fix.
pub fn check_version(c: &mut Client) -> Result<(), String> {
    match version(c)? {
        SCHEMA_VERSION => Ok(()),
        0 => Err("store: the database has no rackboot schema: run `rackboot db migrate`".into()),
        v if v < SCHEMA_VERSION => Err(format!(
            "store: the database's schema is version {v}, this rackboot needs {SCHEMA_VERSION}: run `rackboot db migrate`"
        )),
        v => Err(format!(
            "store: the database's schema is version {v}, newer than this rackboot's {SCHEMA_VERSION}: upgrade rackboot"
        )),
    }
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn row_record(r: &postgres::Row) -> Option<Record> {
    let ip = v4(r.get(0))?;
    let state: &str = r.get(1);
    let expires: i64 = r.get(5);
    Some(match state {
        "bound" => Record::Bound(Lease {
            ip,
            client: r.get::<_, Vec<u8>>(2).into(),
            hw: r.get::<_, Vec<u8>>(3).into(),
            hostname: r.get::<_, String>(4).into(),
            expires: expires.max(0) as u64,
        }),
        "declined" => Record::Declined(ip, expires.max(0) as u64),
        _ => Record::Freed(ip),
    })
}

/// Every row, as records to build a table from.
///
/// # Errors
/// A query fails.
pub fn load(c: &mut Client) -> Result<Vec<Record>, String> {
    let rows = c
        .query(
            "SELECT ip, state, coalesce(client, ''::bytea), hw, hostname, expires FROM rackboot_lease4",
            &[],
        )
        .map_err(|e| format!("store: reading the leases: {}", said(&e)))?;
    Ok(rows.iter().filter_map(row_record).collect())
}

/// What one commit did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Addresses whose binding the database refused: another server's client
    /// holds them.
    pub refused: Vec<Ipv4Addr>,
    /// What the database holds for each refused address, to correct the
    /// table with.
    pub truth: Vec<Record>,
    /// Records committed.
    pub applied: usize,
}

/// The statements a commit runs, prepared once per connection.
#[derive(Debug)]
pub struct Statements {
    free_other: postgres::Statement,
    bind: postgres::Statement,
    decline: postgres::Statement,
    free: postgres::Statement,
}

/// Prepares the commit's statements on `c`.
///
/// # Errors
/// The database refused them (a schema not this build's).
pub fn prepare(c: &mut Client) -> Result<Statements, postgres::Error> {
    let free_other = c.prepare(
        "UPDATE rackboot_lease4 SET state = 'free', client = NULL, server = $3, seq = nextval('rackboot_lease_seq'), updated = now() \
         WHERE client = $1 AND ip <> $2",
    )?;
    let bind = c.prepare(
        "INSERT INTO rackboot_lease4 (ip, state, client, hw, hostname, expires, server) VALUES ($1, 'bound', $2, $3, $4, $5, $6) \
         ON CONFLICT (ip) DO UPDATE SET state = 'bound', client = excluded.client, hw = excluded.hw, hostname = excluded.hostname, \
         expires = excluded.expires, server = excluded.server, seq = nextval('rackboot_lease_seq'), updated = now() \
         WHERE rackboot_lease4.state = 'free' OR rackboot_lease4.client = excluded.client OR rackboot_lease4.expires <= $7 \
         RETURNING ip",
    )?;
    let decline = c.prepare(
        "INSERT INTO rackboot_lease4 (ip, state, client, expires, server) VALUES ($1, 'declined', NULL, $2, $3) \
         ON CONFLICT (ip) DO UPDATE SET state = 'declined', client = NULL, expires = excluded.expires, \
         server = excluded.server, seq = nextval('rackboot_lease_seq'), updated = now()",
    )?;
    let free = c.prepare(
        "UPDATE rackboot_lease4 SET state = 'free', client = NULL, server = $2, seq = nextval('rackboot_lease_seq'), updated = now() \
         WHERE ip = $1 AND state <> 'free'",
    )?;
    Ok(Statements {
        free_other,
        bind,
        decline,
        free,
    })
}

/// Commits the journal-encoded records in `bytes` in one transaction, as
/// `server`, at unix second `now`, and announces what it applied.
///
/// # Errors
/// The database failed; nothing of the batch is committed.
pub fn commit(
    c: &mut Client,
    st: &Statements,
    server: &str,
    bytes: &[u8],
    now: u64,
) -> Result<Committed, postgres::Error> {
    let records = journal::decode(bytes).records;
    let now = now as i64;
    let mut tx = c.transaction()?;
    let Statements {
        free_other,
        bind,
        decline,
        free,
    } = st;
    let mut out = Committed::default();
    let mut applied = Vec::new();
    for r in records {
        match &r {
            Record::Bound(l) => {
                let ip = IpAddr::V4(l.ip);
                tx.execute(free_other, &[&&*l.client, &ip, &server])?;
                let expires = l.expires as i64;
                let got = tx.query_opt(
                    bind,
                    &[
                        &ip,
                        &&*l.client,
                        &&*l.hw,
                        &&*l.hostname,
                        &expires,
                        &server,
                        &now,
                    ],
                )?;
                if got.is_none() {
                    out.refused.push(l.ip);
                    continue;
                }
            }
            Record::Declined(ip, until) => {
                let until = *until as i64;
                tx.execute(decline, &[&IpAddr::V4(*ip), &until, &server])?;
            }
            Record::Freed(ip) => {
                tx.execute(free, &[&IpAddr::V4(*ip), &server])?;
            }
            // DHCPv6 records stay in the journal (see config: [dhcp6] with
            // a PostgreSQL store is refused at start).
            _ => continue,
        }
        journal::encode(&r, &mut applied);
        out.applied += 1;
    }
    if !out.refused.is_empty() {
        let ips: Vec<IpAddr> = out.refused.iter().map(|&a| IpAddr::V4(a)).collect();
        let rows = tx.query(
            "SELECT ip, state, coalesce(client, ''::bytea), hw, hostname, expires FROM rackboot_lease4 WHERE ip = ANY($1)",
            &[&ips],
        )?;
        out.truth = rows.iter().filter_map(row_record).collect();
    }
    for chunk in applied_chunks(&applied) {
        let payload = format!("{server} {}", hex(chunk));
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])?;
    }
    tx.commit()?;
    Ok(out)
}

/// Splits encoded records at record boundaries into announcement-sized
/// pieces.
fn applied_chunks(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        let len = journal::record_len(&bytes[at..]).unwrap_or(bytes.len() - at);
        if at + len - start > NOTIFY_CHUNK && at > start {
            out.push(&bytes[start..at]);
            start = at;
        }
        at += len;
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An announcement's sender and records; None when it is not one of ours.
pub fn announced(payload: &str) -> Option<(&str, Vec<Record>)> {
    let (server, hexed) = payload.split_once(' ')?;
    if hexed.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hexed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hexed.get(i..i + 2)?, 16).ok())
        .collect();
    Some((server, journal::decode(&bytes?).records))
}

/// Whether `e` is worth retrying the batch for: a deadlock between two
/// servers' batches, a serialization failure, or a client's row moved by
/// another server between our statements.
pub fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_carry_records_in_chunks_at_record_boundaries() {
        let mut bytes = Vec::new();
        for i in 0..200u32 {
            journal::encode(
                &Record::Bound(Lease {
                    ip: Ipv4Addr::from(0x0a00_0000 + i),
                    client: vec![1, 0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8].into(),
                    hw: vec![0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8].into(),
                    hostname: "node".into(),
                    expires: 1000 + u64::from(i),
                }),
                &mut bytes,
            );
        }
        let chunks = applied_chunks(&bytes);
        assert!(chunks.len() > 1);
        let mut back = Vec::new();
        for c in &chunks {
            assert!(c.len() <= NOTIFY_CHUNK);
            let payload = format!("a {}", hex(c));
            assert!(payload.len() < 8000);
            let (who, records) = announced(&payload).unwrap();
            assert_eq!(who, "a");
            back.extend(records);
        }
        assert_eq!(back, journal::decode(&bytes).records);
        assert!(announced("a 0").is_none());
        assert!(announced("a zz").is_none());
        assert!(announced("nospace").is_none());
    }
}
