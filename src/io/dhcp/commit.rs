//! Group commit: an ACK never leaves before its lease record is on disk, and
//! one `fdatasync` covers every ACK written while the previous one ran. The
//! worker writes each batch's records into the page cache at once; OFFERs,
//! NAKs and proxy answers leave at once, ACKs wait here. How the sync runs is
//! the backend's: a ring operation (io_uring) or a second thread (epoll,
//! sync_thread.rs); both report its result to [`Commit::finished`].

use std::fs::File;
use std::io;

use super::Pending;
use crate::lease::{Journal, Table};

/// Compact the journal when it is this many times the live table, and large.
const COMPACT_RATIO: u64 = 4;
const COMPACT_MIN: u64 = 1 << 20;
/// ACK buffers kept for reuse: a sync's worth in a rack's burst.
const SPARE: usize = 1024;

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

    /// Takes back the buffers of ACKs that were sent.
    pub(super) fn recycle(&mut self, acks: Acks) {
        self.spare.extend(
            acks.into_iter()
                .map(|(_, b)| b)
                .take(SPARE.saturating_sub(self.spare.len())),
        );
    }

    /// Starts the next sync, unless one runs or nothing is written. Compacts
    /// the journal first when it has grown large against the live `table`.
    pub(super) fn start(&mut self, journal: &mut Journal, table: &Table, unix: u64) -> Start {
        if self.busy || !self.unsynced {
            return Start::Idle;
        }
        self.unsynced = false;
        let live = table.len() as u64 * 64;
        if journal.len() > COMPACT_MIN && journal.len() > COMPACT_RATIO * live {
            // No sync is running, so the file may be replaced; the new file is
            // synced whole, records of the waiting ACKs included.
            match journal.compact(&table.snapshot(unix)) {
                Ok(()) => {
                    tracing::info!(bytes = journal.len(), "dhcp: lease journal compacted");
                    return Start::Ready(std::mem::take(&mut self.next));
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
                tracing::error!(error = %e, "dhcp: cannot open the lease journal to sync it; ACKs held back until it can");
                self.next.clear();
                Start::Idle
            }
        }
    }

    /// The sync started last ended with `result`: the ACKs it covers, to
    /// send; none if it failed (the clients retry, and their retries write
    /// the records again).
    pub(super) fn finished(&mut self, result: io::Result<()>) -> Acks {
        self.busy = false;
        let acks = std::mem::take(&mut self.in_sync);
        match result {
            Ok(()) => acks,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    held_back = acks.len(),
                    "dhcp: cannot sync the lease journal; ACKs held back until it can"
                );
                Vec::new()
            }
        }
    }
}
