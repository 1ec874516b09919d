//! The lease journal's sync thread, for the epoll DHCP worker: group commit
//! (commit.rs) off the worker's loop.
//!
//! The worker writes each batch's records into the page cache at once and asks
//! this thread to `fdatasync` them; while a sync runs, the worker goes on
//! receiving, sending OFFERs and writing the next records, which the following
//! sync covers. ACKs wait for the sync that covers their record. So a disk that
//! takes a millisecond to sync never stalls the socket, and one sync serves
//! every ACK written while the previous one ran (bench/dhcp measures it).

use std::fs::File;
use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// The handle the worker keeps: at most one sync in flight.
#[derive(Debug)]
pub(crate) struct Syncer {
    requests: Sender<File>,
    results: Receiver<io::Result<()>>,
    in_flight: bool,
}

impl Syncer {
    /// Starts the thread; it wakes `waker` after each sync.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start(waker: Arc<mio::Waker>) -> io::Result<Self> {
        let (requests, todo) = channel::<File>();
        let (done, results) = channel();
        std::thread::Builder::new()
            .name("rackboot-dhcp-sync".into())
            .spawn(move || {
                for file in todo {
                    let result = file.sync_data();
                    if done.send(result).is_err() {
                        return;
                    }
                    // A failed wake leaves the result queued; the worker's next
                    // turn (any datagram) collects it.
                    let _ = waker.wake();
                }
            })?;
        Ok(Self {
            requests,
            results,
            in_flight: false,
        })
    }

    /// Starts a sync of `file` (a handle on the journal). The caller must not
    /// start another before [`Self::poll`] has returned this one's result.
    ///
    /// # Errors
    /// The thread has stopped: the file comes back, to sync in the loop.
    pub(crate) fn start_sync(&mut self, file: File) -> Result<(), (io::Error, File)> {
        debug_assert!(!self.in_flight, "one sync at a time");
        self.requests
            .send(file)
            .map_err(|e| (io::Error::other("the journal sync thread has stopped"), e.0))?;
        self.in_flight = true;
        Ok(())
    }

    /// The result of the sync in flight, once it has finished.
    pub(crate) fn poll(&mut self) -> Option<io::Result<()>> {
        if !self.in_flight {
            return None;
        }
        match self.results.try_recv() {
            Ok(r) => {
                self.in_flight = false;
                Some(r)
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.in_flight = false;
                Some(Err(io::Error::other("the journal sync thread has stopped")))
            }
        }
    }
}
