//! The PostgreSQL lease store's thread (`[store] backend = "postgres"`):
//! group commit to the database, as sync_thread.rs is to the journal's disk.
//!
//! The worker hands over a batch of records (every change since the last
//! batch began) and goes on answering; the thread commits it in one
//! transaction (lease/pg.rs decides each binding in the database) and posts
//! the outcome to the worker's mailbox. At most one batch is in flight; the
//! ACKs written meanwhile wait for the next (bounded: past [`MAX_WAITING`]
//! the newest are not sent, and the clients retry).
//!
//! Between batches the thread collects what the other servers committed
//! (their NOTIFY announcements) and posts it too. A lost connection is
//! retried once a second; every batch meanwhile fails at once (its ACKs are
//! not sent, so no client is told of a lease the database does not hold),
//! and on reconnection the whole table is read again.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::mailbox::{Command, Mailbox};
use crate::io::clock;
use crate::lease::journal::Record;
use crate::lease::pg;

/// ACKs that may wait for the next commit while one runs.
pub(crate) const MAX_WAITING: usize = 4096;
/// How often the thread looks for other servers' announcements when idle.
const LISTEN_EVERY: Duration = Duration::from_millis(50);
/// Tries of a batch that met a deadlock or a moved row.
const TRIES: usize = 4;

/// Where the store is and who this server is.
pub use crate::config::dhcp::LeaseStore as Target;

/// What the thread posts to the worker.
#[derive(Debug)]
pub enum Event {
    /// The batch in flight ended.
    Committed {
        /// What the database did, or why it did nothing.
        result: Result<pg::Committed, String>,
        /// How long the commit took.
        took: Duration,
    },
    /// Other servers' committed changes.
    Learned(Vec<Record>),
    /// The whole table, read again after a reconnection.
    Reloaded(Vec<Record>),
}

/// A connection to the store, made at start (where an error stops the
/// server), used by the thread after.
pub struct Connected(pub(crate) Client);

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connected")
    }
}

/// A batch of journal-encoded records and the unix second it was made at.
struct Batch {
    bytes: Vec<u8>,
    now: u64,
}

/// The worker's handle.
#[derive(Debug)]
pub(crate) struct Remote {
    batches: SyncSender<Batch>,
    /// Records written since the batch in flight began.
    pub(crate) pending: Vec<u8>,
    /// A batch is in flight.
    pub(crate) busy: bool,
    /// Commits that ended, ever, and their total time.
    pub(crate) commits: u64,
    pub(crate) commit_secs: f64,
    /// The last commit's time.
    pub(crate) last_commit: Duration,
    /// Bindings the database refused (another server's client held them).
    pub(crate) refused: u64,
    /// Commits that failed.
    pub(crate) failures: u64,
    /// ACKs not sent because too many waited.
    pub(crate) overflow: u64,
    /// Changes learned from other servers.
    pub(crate) learned: u64,
    /// The last commit failed.
    pub(crate) failing: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} bytes)", self.bytes.len())
    }
}

impl Remote {
    /// Starts the thread on `client` (connected, schema checked, listening),
    /// posting to `mailbox`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn spawn(
        target: Target,
        client: Connected,
        mailbox: Arc<Mailbox>,
    ) -> std::io::Result<Self> {
        let (batches, todo) = sync_channel::<Batch>(1);
        std::thread::Builder::new()
            .name("rackboot-dhcp-store".into())
            .spawn(move || run(&target, Some(client.0), &mailbox, &todo))?;
        Ok(Self {
            batches,
            pending: Vec::new(),
            busy: false,
            commits: 0,
            commit_secs: 0.0,
            last_commit: Duration::ZERO,
            refused: 0,
            failures: 0,
            overflow: 0,
            learned: 0,
            failing: false,
        })
    }

    /// Hands the pending records to the thread, unless a batch is in flight
    /// or nothing is pending. True when a batch left.
    pub(crate) fn start(&mut self, now: u64) -> bool {
        if self.busy || self.pending.is_empty() {
            return false;
        }
        let bytes = std::mem::take(&mut self.pending);
        match self.batches.try_send(Batch { bytes, now }) {
            Ok(()) => {
                self.busy = true;
                true
            }
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                self.pending = b.bytes;
                false
            }
        }
    }

    /// The store's figures as Prometheus text; `waiting` ACKs wait for the
    /// next commit.
    pub(crate) fn metrics(&self, out: &mut String, waiting: usize) {
        use crate::metrics::sample;
        let store: [(&str, &str, &str, String); 9] = [
            ("rackboot_dhcp_store_commits_total", "counter", "Commits to the PostgreSQL lease store that ended (each covers every change of its group).", self.commits.to_string()),
            ("rackboot_dhcp_store_commit_seconds_total", "counter", "Time those commits took, summed (divide by the commits for the mean).", format!("{:.6}", self.commit_secs)),
            ("rackboot_dhcp_store_commit_last_seconds", "gauge", "The last commit's time.", format!("{:.6}", self.last_commit.as_secs_f64())),
            ("rackboot_dhcp_store_queue", "gauge", "ACKs waiting for the next commit (they leave once it ends).", waiting.to_string()),
            ("rackboot_dhcp_store_refused_total", "counter", "Bindings the store refused: another server's client held the address (their ACKs were not sent).", self.refused.to_string()),
            ("rackboot_dhcp_store_failures_total", "counter", "Commits that failed (the database slow, down or unreachable): their ACKs were not sent.", self.failures.to_string()),
            ("rackboot_dhcp_store_failing", "gauge", "1 while the last commit failed, else 0.", u64::from(self.failing).to_string()),
            ("rackboot_dhcp_store_learned_total", "counter", "Lease changes learned from the other servers sharing the store.", self.learned.to_string()),
            ("rackboot_dhcp_store_queue_overflow_total", "counter", "ACKs not sent because too many waited for the store (the clients retry).", self.overflow.to_string()),
        ];
        for (name, kind, help, value) in store {
            sample(out, name, kind, help, value);
        }
    }

    /// Records an ended commit.
    pub(crate) fn ended(&mut self, ok: bool, took: Duration, refused: usize) {
        self.busy = false;
        self.commits += 1;
        self.commit_secs += took.as_secs_f64();
        self.last_commit = took;
        self.refused += refused as u64;
        if ok {
            if self.failing {
                tracing::warn!("dhcp: the PostgreSQL lease store commits again; ACKs flow");
            }
            self.failing = false;
        } else {
            self.failures += 1;
            self.failing = true;
        }
    }
}

/// Connects, checks the schema and listens for the other servers.
///
/// # Errors
/// The database cannot be reached, or its schema is not this build's.
pub fn open(target: &Target) -> Result<(Connected, Vec<Record>), String> {
    let mut c = pg::connect(&target.url, target.password_file.as_deref())?;
    pg::ready(&mut c, "dhcp")?;
    c.batch_execute(&format!("LISTEN {}", pg::CHANNEL))
        .map_err(|e| format!("store: LISTEN: {e}"))?;
    let records = pg::load(&mut c)?;
    Ok((Connected(c), records))
}

fn post(mailbox: &Mailbox, e: Event) {
    // A failed wake leaves the event queued; the worker's next turn sees it.
    let _ = mailbox.send(Command::Store(e));
}

/// A connection and its prepared statements.
struct Link {
    client: Client,
    st: pg::Statements,
}

impl Link {
    fn new(mut client: Client) -> Result<Self, String> {
        let st = pg::prepare(&mut client).map_err(|e| format!("store: {}", pg::said(&e)))?;
        Ok(Self { client, st })
    }
}

/// One log line at the start of a run of failures, then one a minute.
fn due(logged_at: &mut Option<Instant>) -> bool {
    let now = clock::now();
    if logged_at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
        return false;
    }
    *logged_at = Some(now);
    true
}

fn run(target: &Target, first: Option<Client>, mailbox: &Mailbox, todo: &Receiver<Batch>) {
    let mut retry_at = clock::now();
    let mut logged_at: Option<Instant> = None;
    let mut link = first.and_then(|c| Link::new(c).ok());
    loop {
        if link.is_none() && clock::now() >= retry_at {
            match open(target).and_then(|(Connected(c), records)| Ok((Link::new(c)?, records))) {
                Ok((l, records)) => {
                    tracing::warn!(
                        leases = records.len(),
                        "dhcp: reconnected to the PostgreSQL lease store; table read again"
                    );
                    link = Some(l);
                    post(mailbox, Event::Reloaded(records));
                }
                Err(e) => {
                    if due(&mut logged_at) {
                        tracing::error!(error = %e, "dhcp: the PostgreSQL lease store is unreachable; ACKs are held back (clients retry) until it returns");
                    }
                    retry_at = clock::now() + Duration::from_secs(1);
                }
            }
        }
        // Whether the connection was just used: it read what the server sent.
        let mut used = false;
        match todo.recv_timeout(LISTEN_EVERY) {
            Ok(batch) => {
                used = true;
                let started = clock::now();
                let result = match link.as_mut() {
                    Some(l) => commit(l, &target.name, &batch),
                    None => Err("not connected".to_string()),
                };
                match &result {
                    Ok(_) => logged_at = None,
                    Err(e) => {
                        if due(&mut logged_at) {
                            tracing::error!(error = %e, "dhcp: lease commits to PostgreSQL fail; their ACKs are not sent (clients retry)");
                        }
                        if link.as_ref().is_some_and(|l| l.client.is_closed()) {
                            link = None;
                        }
                    }
                }
                post(
                    mailbox,
                    Event::Committed {
                        result,
                        took: clock::now().duration_since(started),
                    },
                );
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Some(l) = link.as_mut() {
            match listen(&mut l.client, &target.name, used) {
                Ok(records) if records.is_empty() => {}
                Ok(records) => post(mailbox, Event::Learned(records)),
                Err(e) => {
                    tracing::warn!(error = %e, "dhcp: lost the PostgreSQL lease store's announcements; reconnecting");
                    link = None;
                }
            }
        }
    }
}

fn commit(l: &mut Link, name: &str, batch: &Batch) -> Result<pg::Committed, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        match pg::commit(&mut l.client, &l.st, name, &batch.bytes, batch.now) {
            Ok(done) => return Ok(done),
            Err(e) if tries < TRIES && pg::retryable(&e) => {
                tracing::debug!(error = %e, tries, "dhcp: lease commit retried");
            }
            Err(e) => return Err(pg::said(&e)),
        }
    }
}

/// Other servers' announcements received so far. An idle connection has
/// read nothing from its socket since its last statement: it is given a
/// millisecond to (the client's reactor only reads while it waits), so that
/// an idle server still learns the others' leases within `LISTEN_EVERY`.
fn listen(c: &mut Client, me: &str, used: bool) -> Result<Vec<Record>, postgres::Error> {
    let mut out = Vec::new();
    let mut n = c.notifications();
    let mut note = if used {
        n.iter().next()?
    } else {
        n.timeout_iter(Duration::from_millis(1)).next()?
    };
    let mut rest = n.iter();
    while let Some(got) = note {
        match pg::announced(got.payload()) {
            Some((who, records)) if who != me => out.extend(records),
            Some(_) => {}
            None => {
                tracing::debug!("dhcp: an announcement on the lease channel that is not rackboot's")
            }
        }
        note = rest.next()?;
    }
    Ok(out)
}
