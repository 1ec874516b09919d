//! A virtual machine's TFTP download, sans-IO, as EDK2 makes it: a size probe
//! (RRQ with `tsize`, then ERROR 8 after the OACK), then the RRQ with `blksize`
//! and `windowsize`, an ACK at the end of each window (RFC 7440), and the
//! firmware's retransmission of its last packet when the server goes quiet.

use std::time::{Duration, Instant};

use crate::wire::tftp::{self, Opcode, Packet};

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The file name the DHCP answer gave.
    pub file: String,
    /// EDK2 first probes the size with `tsize` and aborts (ERROR 8).
    pub size_probe: bool,
    /// Asked block size (EDK2: 1468).
    pub blksize: u16,
    /// Asked window size (EDK2: 4); 1 asks for none.
    pub windowsize: u16,
    /// Wait before resending the last packet.
    pub timeout: Duration,
    /// Resends before giving up.
    pub retries: u32,
    /// Body bytes kept for the caller to read (a configuration file); 0
    /// keeps none.
    pub keep: usize,
}

impl Request {
    /// EDK2's request for `file` (CLIENTS.md): probe, blksize 1468, windowsize 4.
    pub fn edk2(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            size_probe: true,
            blksize: 1468,
            windowsize: 4,
            timeout: Duration::from_secs(4),
            retries: 5,
            keep: 0,
        }
    }

    /// grub's request for `file` (its tftp module): no size probe, blksize
    /// 1024, no window; `keep` body bytes kept for a configuration file.
    pub fn grub(file: &str, keep: usize) -> Self {
        Self {
            file: file.to_owned(),
            size_probe: false,
            blksize: 1024,
            windowsize: 1,
            timeout: Duration::from_secs(4),
            retries: 5,
            keep,
        }
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// The server's request port (69).
    Server,
    /// The transfer's own port on the server (its TID).
    Tid(u16),
}

/// How the download ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The whole file arrived.
    Done {
        /// Bytes received.
        bytes: u64,
        /// The size the probe announced, if it ran.
        tsize: Option<u64>,
        /// Packets resent after a timeout.
        resends: u32,
    },
    /// Gave up; the reason names it.
    Failed(String),
}

#[derive(Debug)]
enum State {
    /// RRQ sent (with `tsize` when probing); waiting for the OACK or DATA 1.
    Asking {
        probing: bool,
    },
    /// Receiving from `tid`; `next` is the absolute block expected.
    Receiving {
        tid: u16,
        next: u64,
    },
    Done,
}

/// One file's download.
#[derive(Debug)]
pub struct Download {
    request: Request,
    state: State,
    blksize: u16,
    windowsize: u16,
    /// The packet to (re)send and where.
    last: Vec<u8>,
    last_to: To,
    send_due: bool,
    /// ERROR 8 to the probe's TID, sent once.
    abort_probe: Option<u16>,
    retry_at: Instant,
    attempts: u32,
    bytes: u64,
    /// The first `request.keep` body bytes.
    body: Vec<u8>,
    tsize: Option<u64>,
    resends: u32,
    event: Option<Event>,
}

impl Download {
    /// A download whose first RRQ goes out at `now`.
    pub fn new(now: Instant, request: Request) -> Self {
        let mut d = Self {
            state: State::Asking {
                probing: request.size_probe,
            },
            blksize: 512,
            windowsize: 1,
            last: Vec::new(),
            last_to: To::Server,
            send_due: true,
            abort_probe: None,
            retry_at: now + request.timeout,
            attempts: 0,
            bytes: 0,
            body: Vec::new(),
            tsize: None,
            resends: 0,
            event: None,
            request,
        };
        d.rrq();
        d
    }

    fn rrq(&mut self) {
        let (blk, win) = (
            self.request.blksize.to_string(),
            self.request.windowsize.to_string(),
        );
        let mut options = vec![("blksize", blk.as_str())];
        if self.request.windowsize > 1 {
            options.push(("windowsize", win.as_str()));
        }
        if matches!(self.state, State::Asking { probing: true }) {
            options.insert(0, ("tsize", "0"));
        }
        let mut buf = [0u8; 512];
        let len = tftp::write_rrq(&mut buf, &self.request.file, "octet", &options).unwrap_or(0);
        self.last = buf[..len].to_vec();
        self.last_to = To::Server;
        self.send_due = true;
    }

    fn ack(&mut self, tid: u16, block: u64) {
        let mut buf = [0u8; 4];
        let _ = tftp::write_ack(&mut buf, block as u16);
        self.last = buf.to_vec();
        self.last_to = To::Tid(tid);
        self.send_due = true;
    }

    /// One datagram from the server's port `from`.
    ///
    /// # Errors
    /// The datagram is not a TFTP packet.
    pub fn handle(
        &mut self,
        now: Instant,
        from: u16,
        datagram: &[u8],
    ) -> Result<(), crate::wire::Error> {
        let p = Packet::new_checked(datagram)?;
        match (&self.state, p.opcode()) {
            (State::Done, _) => {}
            (_, Opcode::Error) => {
                let why = format!(
                    "ERROR {} from the server: {}",
                    p.error_code().unwrap_or(0),
                    String::from_utf8_lossy(p.error_message())
                );
                self.finish(Event::Failed(why));
            }
            (State::Asking { probing }, Opcode::Oack) => {
                let probing = *probing;
                for (name, value) in p.oack_options().flatten() {
                    let v = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                    match (name.to_ascii_lowercase().as_slice(), v) {
                        (b"tsize", Some(v)) => self.tsize = Some(v),
                        (b"blksize", Some(v)) => self.blksize = u16::try_from(v).unwrap_or(512),
                        (b"windowsize", Some(v)) => {
                            self.windowsize = u16::try_from(v).unwrap_or(1).max(1)
                        }
                        _ => {}
                    }
                }
                if probing {
                    // EDK2 only wanted the size: abort, then ask again for real.
                    self.abort_probe = Some(from);
                    self.state = State::Asking { probing: false };
                    (self.blksize, self.windowsize) = (512, 1);
                    self.rrq();
                } else {
                    self.state = State::Receiving { tid: from, next: 1 };
                    self.ack(from, 0);
                }
                self.progress(now);
            }
            (State::Asking { probing: false }, Opcode::Data) => {
                // The server ignored every option: lock-step, 512-byte blocks.
                self.state = State::Receiving { tid: from, next: 1 };
                self.data(now, from, &p, datagram)?;
            }
            (State::Receiving { .. }, Opcode::Data) => self.data(now, from, &p, datagram)?,
            _ => {}
        }
        Ok(())
    }

    fn data(
        &mut self,
        now: Instant,
        from: u16,
        p: &Packet<&[u8]>,
        datagram: &[u8],
    ) -> Result<(), crate::wire::Error> {
        let len = datagram.len();
        let State::Receiving { tid, next } = self.state else {
            return Ok(());
        };
        if from != tid {
            return Ok(());
        }
        let block = p.block()?;
        let payload = len.saturating_sub(tftp::DATA_HEADER);
        if block != next as u16 {
            // Out of order: ACK the last block in order so the server resends
            // from there (RFC 7440 §4).
            self.ack(tid, next - 1);
            return Ok(());
        }
        self.bytes += payload as u64;
        let room = self.request.keep.saturating_sub(self.body.len());
        if let Some(data) = datagram.get(tftp::DATA_HEADER..) {
            self.body.extend_from_slice(&data[..data.len().min(room)]);
        }
        self.progress(now);
        if payload < usize::from(self.blksize) {
            self.ack(tid, next);
            self.send_due = true;
            let event = Event::Done {
                bytes: self.bytes,
                tsize: self.tsize,
                resends: self.resends,
            };
            self.finish_after_send(event);
            return Ok(());
        }
        self.state = State::Receiving {
            tid,
            next: next + 1,
        };
        if next % u64::from(self.windowsize) == 0 {
            self.ack(tid, next);
        }
        Ok(())
    }

    /// The body bytes kept (see [`Request::keep`]), taken.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    fn progress(&mut self, now: Instant) {
        self.attempts = 0;
        self.retry_at = now + self.request.timeout;
    }

    /// Resends the last packet when the server has been quiet too long; gives
    /// up after the request's retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Done) || self.retry_at > now {
            return;
        }
        if self.attempts >= self.request.retries {
            let why = match self.state {
                State::Asking { .. } => "no answer to the read request",
                _ => "the server stopped sending",
            };
            self.finish(Event::Failed(why.to_owned()));
            return;
        }
        self.attempts += 1;
        self.resends += 1;
        self.retry_at = now + self.request.timeout;
        self.send_due = true;
    }

    /// The next datagram to send, written into `out`: its length and where.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Instant, out: &mut [u8]) -> Option<(usize, To)> {
        if let Some(tid) = self.abort_probe.take() {
            let len = tftp::write_error(out, 8, "size probe").ok()?;
            return Some((len, To::Tid(tid)));
        }
        if !std::mem::take(&mut self.send_due) {
            return None;
        }
        let dst = out.get_mut(..self.last.len())?;
        dst.copy_from_slice(&self.last);
        Some((self.last.len(), self.last_to))
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done => None,
            _ => Some(self.retry_at),
        }
    }

    /// How the download ended, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.send_due {
            return None; // the last ACK goes out first
        }
        self.event.take()
    }

    fn finish(&mut self, event: Event) {
        self.state = State::Done;
        self.send_due = false;
        self.event = Some(event);
    }

    fn finish_after_send(&mut self, event: Event) {
        self.state = State::Done;
        self.event = Some(event);
    }
}

#[cfg(test)]
mod tests;
