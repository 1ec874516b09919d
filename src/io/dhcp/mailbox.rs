//! What other threads ask of the DHCP worker (the one owner of the lease
//! table and the engine): a queue and an eventfd that wakes the worker's poll
//! or ring. Each command carries the channel its answer goes back on.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use crate::proto::dhcp::Settings;

/// A request to the DHCP worker.
#[derive(Debug)]
pub enum Command {
    /// Serve these settings (resolved against the interface) from now on,
    /// keeping the lease table; the answer says what it did.
    Reconfigure {
        /// The new settings.
        settings: Box<Settings>,
        /// The new DHCPv6 subnets, hosts and options, when `[dhcp6]` is on
        /// (its server DUID and the HTTP port stay).
        settings6: Option<Box<crate::proto::dhcp6::Settings>>,
        /// Where the answer goes.
        reply: Sender<Result<String, String>>,
    },
    /// The worker's figures in Prometheus' text format.
    Metrics {
        /// Where the answer goes.
        reply: Sender<String>,
    },
    /// Every lease in the table.
    Leases {
        /// Where the answer goes.
        reply: Sender<Vec<LeaseView>>,
    },
    /// The PostgreSQL lease store's thread reports (remote.rs).
    Store(super::remote::Event),
    /// Free the lease on this address, durably, before the answer.
    Free {
        /// The address (IPv4 or IPv6).
        ip: std::net::IpAddr,
        /// Where the answer goes.
        reply: Sender<Result<(), String>>,
    },
}

/// Why a question to the worker got no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// The worker could not be woken.
    Unreachable(io::Error),
    /// It did not answer in time.
    Late,
}

/// A lease as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseView {
    /// The address (IPv4 or IPv6).
    pub ip: std::net::IpAddr,
    /// The client's hardware address, `aa:bb:...`.
    pub mac: String,
    /// The host name it sent or was given.
    pub hostname: String,
    /// When it ends, unix seconds.
    pub expires: u64,
    /// `active` or `expired`.
    pub state: &'static str,
}

impl LeaseView {
    /// Every bound lease of `table` (DHCPv4's or DHCPv6's) at unix second
    /// `unix`, by address.
    pub fn all<A: crate::lease::Family + Copy + Into<std::net::IpAddr>>(
        table: &crate::lease::Leases<A>,
        unix: u64,
    ) -> Vec<Self> {
        let mut all: Vec<Self> = table
            .bound()
            .map(|l| Self {
                ip: l.ip.into(),
                mac: crate::wire::dhcp::Chaddr::new(&l.hw).to_string(),
                hostname: l.hostname.to_string(),
                expires: l.expires,
                state: if l.expires > unix {
                    "active"
                } else {
                    "expired"
                },
            })
            .collect();
        all.sort_by_key(|l| l.ip);
        all
    }
}

/// The DHCP worker's mailbox.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Command>>,
    /// Something was queued since the last take: the worker's check per turn
    /// costs one load, not a lock or a syscall.
    pending: AtomicBool,
    wake: OwnedFd,
}

impl AsRawFd for Mailbox {
    fn as_raw_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }
}

impl Mailbox {
    /// An empty mailbox.
    ///
    /// # Errors
    /// No eventfd (out of descriptors).
    pub fn new() -> io::Result<Arc<Self>> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            pending: AtomicBool::new(false),
            // SAFETY: a fresh descriptor nobody else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    /// Queues `command` and wakes the worker.
    ///
    /// # Errors
    /// The worker cannot be woken (it will still see the command at its next
    /// turn).
    pub fn send(&self, command: Command) -> io::Result<()> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(command);
        self.pending.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives for the call.
        let n = unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
        if n == 8 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sends the command `make` builds around a reply channel and waits up to
    /// `wait` for the worker's answer.
    ///
    /// # Errors
    /// The worker cannot be woken, or it did not answer in time.
    pub fn ask<T>(
        &self,
        make: impl FnOnce(Sender<T>) -> Command,
        wait: std::time::Duration,
    ) -> Result<T, Unanswered> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.send(make(reply)).map_err(Unanswered::Unreachable)?;
        answer.recv_timeout(wait).map_err(|_| Unanswered::Late)
    }

    /// The commands queued (the wake is reset).
    pub(crate) fn take(&self) -> Vec<Command> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, which lives for the call.
        let _ = unsafe { libc::read(self.wake.as_raw_fd(), (&raw mut count).cast(), 8) };
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}
