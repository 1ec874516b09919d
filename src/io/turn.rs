//! One turn of a worker's loop: wait for readiness, but no later than the next
//! deadline, and not at all while busy-polling (for `busy_poll` after the last
//! readable event the worker polls with a zero timeout, so a request arriving soon after
//! another does not wait for a halted core to wake; see config::DEFAULT_BUSY_POLL_US).
//! Every worker kind waits through this, so the rule lives once.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::{clock, Error};

/// A worker's readiness buffer and busy-poll state.
#[derive(Debug)]
pub(crate) struct Turn {
    worker: usize,
    events: Events,
    busy_poll: Duration,
    active_at: Instant,
}

impl Turn {
    pub(crate) fn new(worker: usize, busy_poll: Duration) -> Self {
        Self {
            worker,
            events: Events::with_capacity(1024),
            busy_poll,
            active_at: clock::now(),
        }
    }

    /// Waits until something is ready or `deadline` passes (immediately when
    /// `more_work` says earlier work is pending). Returns the instant every engine
    /// sees this turn; the ready events are in [`Self::events`].
    ///
    /// # Errors
    /// Only a failure of the poller itself; an interrupted wait is an empty turn.
    pub(crate) fn wait(
        &mut self,
        poll: &mut Poll,
        deadline: Option<Instant>,
        more_work: bool,
    ) -> Result<Instant, Error> {
        let spinning = clock::now().saturating_duration_since(self.active_at) < self.busy_poll;
        let timeout = if more_work || spinning {
            Some(Duration::ZERO)
        } else {
            deadline.map(|at| at.saturating_duration_since(clock::now()))
        };
        match poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(source) => {
                return Err(Error::Poll {
                    worker: self.worker,
                    op: "epoll_wait",
                    source,
                })
            }
        }
        let now = clock::now();
        // Only arriving data starts a spin: a request soon follows a request,
        // but a socket that drained a body wakes the worker anyway, and spinning
        // through a bulk send only burns the core (bench/backends).
        if self.events.iter().any(|e| e.is_readable()) {
            self.active_at = now;
        }
        Ok(now)
    }

    /// The events of the last wait.
    pub(crate) fn events(&self) -> &Events {
        &self.events
    }
}
