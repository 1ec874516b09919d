//! One TFTP read transfer: OACK, then windows of blocks, sliding on ACKs,
//! resent on timeout with back-off, until the last block is acknowledged.
//!
//! Blocks are numbered absolutely from 1 (`u64`); the wire number is that
//! modulo 65536, so a file of more than 65535 blocks rolls over to 0 and on.

use std::time::{Duration, Instant};

use super::{Accepted, Error, Payload, Settings};
use crate::wire::tftp::{self, Opcode, Packet};

/// What to send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// An OACK (or ERROR) written into the scratch buffer: `scratch[..len]`.
    Control {
        /// Its length.
        len: usize,
    },
    /// Blocks `first..first + count` (absolute numbers): one GSO send.
    Window {
        /// First absolute block number.
        first: u64,
        /// How many blocks.
        count: u16,
        /// Block size (the last block of the file may be shorter).
        blksize: u16,
    },
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The last block was acknowledged, or an EDK2-style size probe ended as
    /// it should (ERROR 8 after the OACK).
    Done {
        /// It was a size probe, not a download.
        probe: bool,
    },
    /// The transfer was abandoned.
    Failed(Failure),
}

/// Why a transfer was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client stopped acknowledging.
    Timeout,
    /// The client sent an ERROR.
    ClientError {
        /// Its code.
        code: u16,
    },
}

/// Counters for the transfer's log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Windows (or OACKs) sent again after a timeout or a partial ACK.
    pub resent: u32,
    /// Duplicate ACKs ignored.
    pub duplicate_acks: u32,
    /// Blocks acknowledged.
    pub acked: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The OACK is due (`pending`) or waits for ACK 0.
    Oack {
        pending: bool,
        retry_at: Instant,
    },
    /// Blocks up to `acked` are acknowledged, up to `sent` sent; `next` goes next.
    Sending {
        acked: u64,
        next: u64,
        sent: u64,
        retry_at: Instant,
    },
    Finished,
}

/// One read transfer. Owns no socket and no clock.
#[derive(Debug)]
pub struct Transfer {
    payload: Payload,
    blksize: u16,
    windowsize: u16,
    blocks: u64,
    oack: Vec<(&'static str, u64)>,
    probe_possible: bool,
    state: State,
    base_timeout: Duration,
    timeout: Duration,
    max_timeout: Duration,
    tries: u32,
    max_tries: u32,
    stats: Stats,
    event: Option<Event>,
}

impl Transfer {
    /// A transfer of an accepted request, starting at `now`.
    pub fn new(now: Instant, accepted: Accepted, settings: &Settings) -> Self {
        let n = accepted.negotiated;
        let len = accepted.payload.bytes().len() as u64;
        let blksize = n.blksize.max(1);
        let timeout = n.timeout.unwrap_or(settings.timeout);
        let state = if n.oack.is_empty() {
            State::Sending {
                acked: 0,
                next: 1,
                sent: 0,
                retry_at: now,
            }
        } else {
            State::Oack {
                pending: true,
                retry_at: now,
            }
        };
        Self {
            payload: accepted.payload,
            blksize,
            windowsize: n.windowsize.max(1),
            // The last block is short, possibly empty (RFC 1350 §6).
            blocks: len / u64::from(blksize) + 1,
            oack: n.oack,
            probe_possible: n.tsize,
            state,
            base_timeout: timeout,
            timeout,
            max_timeout: settings.max_timeout.max(timeout),
            tries: 0,
            max_tries: settings.retries,
            stats: Stats::default(),
            event: None,
        }
    }

    /// The bytes the transfer sends; block `k` is [`Self::block`]`(k)` of them.
    pub fn payload(&self) -> &[u8] {
        self.payload.bytes()
    }

    /// What [`Self::payload`] reads from, for a backend whose sends outlive
    /// the call that starts them (io_uring): a clone keeps the bytes alive.
    pub fn payload_source(&self) -> &Payload {
        &self.payload
    }

    /// Byte range of absolute block `k` (1-based) within [`Self::payload`].
    pub fn block(&self, k: u64) -> std::ops::Range<usize> {
        let len = self.payload.bytes().len() as u64;
        let start = (k.saturating_sub(1) * u64::from(self.blksize)).min(len);
        let end = (start + u64::from(self.blksize)).min(len);
        start as usize..end as usize
    }

    /// Number of blocks, the final short one included.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Granted block and window sizes.
    pub fn sizes(&self) -> (u16, u16) {
        (self.blksize, self.windowsize)
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// One datagram from the client's TID.
    ///
    /// # Errors
    /// The datagram was dropped (state unchanged); count `e.kind()`.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let packet = Packet::new_checked(datagram)?;
        match packet.opcode() {
            Opcode::Ack => self.on_ack(now, packet.block()?),
            Opcode::Error => {
                let code = packet.error_code().unwrap_or(0);
                // EDK2 asks tsize, reads the OACK, then aborts with ERROR 8 (CLIENTS.md).
                let probe =
                    matches!(self.state, State::Oack { .. }) && self.probe_possible && code == 8;
                self.finish(if probe {
                    Event::Done { probe: true }
                } else {
                    Event::Failed(Failure::ClientError { code })
                });
                Ok(())
            }
            other => Err(Error::Unexpected(other)),
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) -> Result<(), Error> {
        match &mut self.state {
            State::Oack { .. } if block == 0 => {
                self.state = State::Sending {
                    acked: 0,
                    next: 1,
                    sent: 0,
                    retry_at: now + self.base_timeout,
                };
                self.progress();
                Ok(())
            }
            State::Oack { .. } | State::Finished => Err(Error::Unexpected(Opcode::Ack)),
            State::Sending {
                acked, next, sent, ..
            } => {
                // The absolute block this wire number names, at or after `acked`.
                let k = *acked + u64::from(block.wrapping_sub(*acked as u16));
                if k == *acked {
                    self.stats.duplicate_acks += 1;
                    return Err(Error::DuplicateAck(block));
                }
                if k > *sent {
                    return Err(Error::AckNotSent(block));
                }
                *acked = k;
                if k < *sent {
                    // RFC 7440 §4: an ACK inside the window says what arrived in
                    // order; the window restarts after it.
                    *next = k + 1;
                    self.stats.resent += 1;
                }
                self.stats.acked = k;
                if let State::Sending { retry_at, .. } = &mut self.state {
                    *retry_at = now + self.base_timeout;
                }
                if k == self.blocks {
                    self.finish(Event::Done { probe: false });
                } else {
                    self.progress();
                }
                Ok(())
            }
        }
    }

    /// Fires the retransmission timer if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|at| at > now) {
            return;
        }
        self.tries += 1;
        if self.tries > self.max_tries {
            self.finish(Event::Failed(Failure::Timeout));
            return;
        }
        self.timeout = (self.timeout * 2).min(self.max_timeout);
        self.stats.resent += 1;
        match &mut self.state {
            State::Oack { pending, .. } => *pending = true,
            State::Sending { acked, next, .. } => *next = *acked + 1,
            State::Finished => {}
        }
    }

    /// The next datagram(s) to send. `scratch` receives control packets.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, scratch: &mut [u8]) -> Option<Transmit> {
        let timeout = self.timeout;
        match &mut self.state {
            State::Oack { pending, retry_at } if *pending => {
                let len = tftp::write_oack(scratch, &self.oack).ok()?;
                *pending = false;
                *retry_at = now + timeout;
                Some(Transmit::Control { len })
            }
            State::Sending {
                acked,
                next,
                sent,
                retry_at,
            } => {
                let end = (*acked + u64::from(self.windowsize)).min(self.blocks);
                if *next > end {
                    return None;
                }
                let first = *next;
                *next = end + 1;
                *sent = (*sent).max(end);
                *retry_at = now + timeout;
                Some(Transmit::Window {
                    first,
                    count: (end - first + 1) as u16,
                    blksize: self.blksize,
                })
            }
            _ => None,
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Oack {
                pending: false,
                retry_at,
            } => Some(retry_at),
            State::Sending { retry_at, .. } => Some(retry_at),
            _ => None,
        }
    }

    /// How the transfer ended, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// Whether the transfer has ended.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    fn progress(&mut self) {
        self.tries = 0;
        self.timeout = self.base_timeout;
    }

    fn finish(&mut self, event: Event) {
        if self.state != State::Finished {
            self.state = State::Finished;
            self.event = Some(event);
        }
    }
}
