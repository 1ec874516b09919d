//! Group commit: an ACK never leaves before its lease record is on disk, and
//! one `fdatasync` covers every ACK written while the previous one ran. The
//! worker writes each batch's records into the page cache at once; OFFERs,
//! NAKs and proxy answers leave at once, ACKs wait here. How the sync runs is
//! the backend's: a ring operation (io_uring) or a second thread (epoll,
//! sync_thread.rs); both report its result to [`Commit::finished`].
//!
//! A disk that fails (ENOSPC on write, EIO on sync) turns ACKs into silence:
//! the clients retry, and a retry's record is written again. After a failed
//! sync the file's state is unknown (Linux may drop the dirty pages), so the
//! next commit rewrites the journal whole from the table before it syncs
//! anything else. [`Health`] logs the first failure at once, then one line
//! per [`LOG_EVERY`] while it lasts, and the recovery.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use crate::io::clock;

use super::Pending;
use crate::lease::Journal;

/// Compact the journal when it is this many times the live table, and large.
const COMPACT_RATIO: u64 = 4;
const COMPACT_MIN: u64 = 1 << 20;
/// ACK buffers kept for reuse: a sync's worth in a rack's burst.
const SPARE: usize = 1024;
/// After a failed rewrite, the next is tried no sooner than this.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// While the disk fails, one log line per this.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(60);

/// A journal operation that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Appending records (ENOSPC on a full disk).
    Write,
    /// fdatasync, or the rewrite of the whole file after a failed one.
    Sync,
}

/// What the journal's disk has been doing, for logs and metrics.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Writes that failed (ENOSPC, EIO, ...), ever.
    pub(crate) write_errors: u64,
    /// Syncs (and rewrites) that failed, ever.
    pub(crate) sync_errors: u64,
    /// ACKs not sent because their record could not be made durable, ever.
    pub(crate) acks_held_back: u64,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// Failures in the current run, and since the last log line.
    run: u64,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Health {
    /// Whether the last operation on the journal failed.
    pub(crate) fn failing(&self) -> bool {
        self.failing_since.is_some()
    }

    /// `op` failed with `e`, holding back `held` ACKs.
    pub(crate) fn failed(&mut self, now: Instant, op: Op, e: &io::Error, held: usize) {
        match op {
            Op::Write => self.write_errors += 1,
            Op::Sync => self.sync_errors += 1,
        }
        self.acks_held_back += held as u64;
        self.run += 1;
        self.unlogged += 1;
        let since = *self.failing_since.get_or_insert(now);
        let due = self
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        if !due {
            return;
        }
        self.logged_at = Some(now);
        let hint = match e.raw_os_error() {
            Some(28) => " (the disk is full: free space; rackboot recovers by itself)",
            Some(5) => {
                " (an I/O error: check the disk; rackboot retries and rewrites the journal whole)"
            }
            _ => "",
        };
        tracing::error!(
            ?op,
            error = %e,
            failures = self.unlogged,
            failing_secs = now.duration_since(since).as_secs(),
            "dhcp: the lease journal cannot be {}; ACKs are held back (clients retry) until it can{hint}",
            if op == Op::Write { "written" } else { "synced" },
        );
        self.unlogged = 0;
    }

    /// An operation on the journal succeeded.
    pub(crate) fn ok(&mut self, now: Instant) {
        if let Some(since) = self.failing_since.take() {
            tracing::warn!(
                failures = self.run,
                secs = now.duration_since(since).as_secs(),
                "dhcp: the lease journal is writable again; ACKs flow"
            );
            self.run = 0;
            self.unlogged = 0;
            self.logged_at = None;
        }
    }
}

/// ACKs waiting for the disk, each with its bytes.
pub(crate) type Acks = Vec<(Pending, Vec<u8>)>;

/// The group commit's state.
#[derive(Debug, Default)]
pub(super) struct Commit {
    /// ACKs the sync in flight covers.
    in_sync: Acks,
    /// ACKs written after it started.
    next: Acks,
    /// Records written since the last sync began (RELEASE and DECLINE records
    /// have no ACK waiting, but are synced all the same).
    unsynced: bool,
    /// A sync is running.
    busy: bool,
    /// Buffers of ACKs sent, for the next ones (no allocation per ACK once
    /// warm).
    spare: Vec<Vec<u8>>,
    /// A sync failed: rewrite the file whole before trusting it again.
    rewrite: bool,
    /// No rewrite is tried again before this (a failing disk is not asked
    /// for a whole file on every batch).
    retry_at: Option<Instant>,
    /// The disk's record.
    pub(crate) health: Health,
}

/// What to do after [`Commit::start`].
#[derive(Debug)]
pub(crate) enum Start {
    /// Nothing to sync, or a sync is running (its end starts the next).
    Idle,
    /// Sync this handle on the journal, then call [`Commit::finished`].
    Sync(File),
    /// These ACKs are on disk already (the journal was compacted): send them.
    Ready(Acks),
}

impl Commit {
    /// Records were written to the journal.
    pub(super) fn written(&mut self) {
        self.unsynced = true;
    }

    /// Holds an ACK until the sync that covers its record.
    pub(super) fn hold(&mut self, p: Pending, bytes: &[u8]) {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        self.next.push((p, buf));
    }

    /// ACKs waiting for the next commit.
    pub(super) fn waiting(&self) -> usize {
        self.next.len()
    }

    /// The waiting ACKs, taken (to send, or to drop).
    pub(super) fn take_waiting(&mut self) -> Acks {
        std::mem::take(&mut self.next)
    }

    /// A commit to a remote store began: it covers the ACKs waiting now.
    pub(super) fn begin_remote(&mut self) {
        self.in_sync = std::mem::take(&mut self.next);
        self.busy = true;
    }

    /// The remote commit ended: the ACKs it covered.
    pub(super) fn end_remote(&mut self) -> Acks {
        self.busy = false;
        std::mem::take(&mut self.in_sync)
    }

    /// Takes back the buffers of ACKs that were sent.
    pub(super) fn recycle(&mut self, acks: Acks) {
        self.spare.extend(
            acks.into_iter()
                .map(|(_, b)| b)
                .take(SPARE.saturating_sub(self.spare.len())),
        );
    }

    /// Starts the next sync, unless one runs or nothing is written. Compacts
    /// the journal first when it has grown large against the live `table`, or
    /// when the last sync failed.
    pub(super) fn start(
        &mut self,
        journal: &mut Journal,
        live: usize,
        snapshot: impl FnOnce() -> Vec<u8>,
    ) -> Start {
        if self.busy || !(self.unsynced || self.rewrite) {
            return Start::Idle;
        }
        self.unsynced = false;
        let now = clock::now();
        if self.rewrite && self.retry_at.is_some_and(|t| now < t) {
            self.health.acks_held_back += std::mem::take(&mut self.next).len() as u64;
            return Start::Idle;
        }
        let live = live as u64 * 64;
        let large = journal.len() > COMPACT_MIN && journal.len() > COMPACT_RATIO * live;
        if self.rewrite || large {
            // No sync is running, so the file may be replaced; the new file is
            // synced whole, records of the waiting ACKs included.
            match journal.compact(&snapshot()) {
                Ok(()) => {
                    tracing::info!(
                        bytes = journal.len(),
                        rewrite = self.rewrite,
                        "dhcp: lease journal compacted"
                    );
                    self.rewrite = false;
                    self.retry_at = None;
                    self.health.ok(now);
                    return Start::Ready(std::mem::take(&mut self.next));
                }
                Err(e) if self.rewrite => {
                    let held = std::mem::take(&mut self.next);
                    self.health.failed(now, Op::Sync, &e, held.len());
                    self.retry_at = Some(now + RETRY_EVERY);
                    return Start::Idle;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dhcp: lease journal compaction failed; still appending")
                }
            }
        }
        match journal.sync_handle() {
            Ok(file) => {
                self.in_sync = std::mem::take(&mut self.next);
                self.busy = true;
                Start::Sync(file)
            }
            Err(e) => {
                let held = std::mem::take(&mut self.next);
                self.health.failed(now, Op::Sync, &e, held.len());
                Start::Idle
            }
        }
    }

    /// The sync started last ended with `result`: the ACKs it covers, to
    /// send; none if it failed (the clients retry, and their retries write
    /// the records again, into a journal rewritten whole first).
    pub(super) fn finished(&mut self, result: io::Result<()>) -> Acks {
        self.busy = false;
        let acks = std::mem::take(&mut self.in_sync);
        match result {
            Ok(()) => {
                self.health.ok(clock::now());
                acks
            }
            Err(e) => {
                self.health.failed(clock::now(), Op::Sync, &e, acks.len());
                self.rewrite = true;
                Vec::new()
            }
        }
    }
}
