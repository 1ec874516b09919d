//! HTTPS on the epoll worker: a rustls session between the socket and the
//! same HTTP engine. Records are read from the socket into the session, the
//! plaintext into the engine's receive buffer; what the engine names to send
//! (head, then a slice of the file's mapping) is sealed into records, which
//! go to the socket. Body bytes are copied once, into the record being
//! encrypted: there is no zero-copy path through TLS, and plain HTTP keeps
//! its own.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::{record, Then, Worker, TURN_BUDGET};
use crate::proto::http::{Context, FileRange, Transmit};

/// Plaintext sealed per step: at most this much waits in the session's
/// buffer, so a large body streams as the socket drains.
const SEAL_LIMIT: usize = 256 << 10;
/// The most plaintext one TLS record carries.
const RECORD: u64 = 16 << 10;

/// One connection's TLS state.
#[derive(Debug)]
pub(super) struct Session {
    conn: rustls::ServerConnection,
    /// The peer closed (TCP end of stream, or its close_notify): read no more.
    eof: bool,
    /// A head and a small body, joined into one record.
    scratch: Vec<u8>,
}

impl Session {
    pub(super) fn new(mut conn: rustls::ServerConnection) -> Self {
        conn.set_buffer_limit(Some(SEAL_LIMIT));
        Self {
            conn,
            eof: false,
            scratch: Vec::new(),
        }
    }
}

impl Worker {
    /// [`Worker::drive`] for an HTTPS connection.
    pub(super) fn drive_tls(&mut self, token: usize, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(token) else {
            return;
        };
        self.published
            .follow(&mut self.snapshot, &mut slot.snapshot);
        let ctx = Context {
            snapshot: &slot.snapshot,
            date: self.date.text(),
            boot: slot.snapshot.profiles(),
            peer: Some(slot.peer.ip()),
            unix_secs: self.date.secs(),
            tls: true,
            port: self.port,
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return;
        };
        let mut budget = TURN_BUDGET;
        let mut closed = false;
        loop {
            let mut progress = false;
            // What the engine names, sealed into records.
            if !tls.conn.is_handshaking() {
                while let Some(t) = slot.conn.poll_transmit(now, &ctx) {
                    let n = match seal(&mut tls.conn, &mut tls.scratch, &t) {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "tls write failed");
                            slot.conn.abort(now);
                            break;
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    slot.conn.sent(now, n);
                    budget = budget.saturating_sub(n);
                    progress = true;
                    if budget == 0 {
                        break;
                    }
                }
            }
            // Records out.
            while slot.writable && tls.conn.wants_write() {
                match tls.conn.write_tls(&mut &slot.stream) {
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "send failed");
                        slot.conn.abort(now);
                        tls.eof = true;
                        break;
                    }
                }
            }
            // Records in.
            if slot.readable && !tls.eof && tls.conn.wants_read() && budget > 0 {
                match tls.conn.read_tls(&mut &slot.stream) {
                    Ok(0) => {
                        tls.eof = true;
                        slot.conn.handle_eof(now);
                        progress = true;
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        progress = true;
                        if let Err(e) = tls.conn.process_new_packets() {
                            // The alert rustls queued goes out before the close.
                            let _ = tls.conn.write_tls(&mut &slot.stream);
                            tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "tls handshake or record refused");
                            tls.eof = true;
                            slot.conn.abort(now);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!(worker = self.id, peer = %slot.peer, error = %e, "receive failed");
                        tls.eof = true;
                        slot.conn.abort(now);
                    }
                }
            }
            // Plaintext in, to the engine.
            if slot.conn.wants_read() {
                match tls.conn.reader().read(slot.conn.recv_buf()) {
                    Ok(0) => {
                        // close_notify: the client is done sending.
                        if !std::mem::replace(&mut tls.eof, true) {
                            slot.conn.handle_eof(now);
                            progress = true;
                        }
                    }
                    Ok(n) => {
                        slot.conn.handle_recv(now, n);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        // The peer closed without close_notify (truncation):
                        // what it sent is all it sends.
                        if !std::mem::replace(&mut tls.eof, true) {
                            slot.conn.handle_eof(now);
                            progress = true;
                        }
                    }
                }
            }
            while let Some(ev) = slot.conn.poll_event() {
                match record(&self.metrics, self.id, self.log_access, slot.peer, ev) {
                    Then::Nothing => {}
                    Then::HalfClose => {
                        tls.conn.send_close_notify();
                        progress = true;
                    }
                    Then::Close => {
                        tls.conn.send_close_notify();
                        let _ = tls.conn.write_tls(&mut &slot.stream);
                        closed = true;
                    }
                }
            }
            if closed || !progress {
                break;
            }
            if budget == 0 {
                self.ready.push(token);
                break;
            }
        }
        if closed {
            self.remove(token);
        } else {
            self.rearm(token);
        }
    }
}

/// Seals what `t` names into `conn`'s records: the head, then as much of the
/// file's slice as the session's buffer takes. Returns the bytes taken.
fn seal(
    conn: &mut rustls::ServerConnection,
    scratch: &mut Vec<u8>,
    t: &Transmit<'_>,
) -> io::Result<usize> {
    let mut w = conn.writer();
    // A head and a small body go out as one record, not two: each write is
    // sealed as a record of its own.
    if let Some(f) = t
        .file
        .filter(|f| f.len > 0 && t.bytes.len() as u64 + f.len <= RECORD)
    {
        scratch.clear();
        scratch.extend_from_slice(t.bytes);
        scratch.extend_from_slice(body(f, usize::MAX)?);
        return w.write(scratch);
    }
    let mut n = 0;
    if !t.bytes.is_empty() {
        n = w.write(t.bytes)?;
        if n < t.bytes.len() {
            return Ok(n);
        }
    }
    if let Some(f) = t.file.filter(|f| f.len > 0) {
        n += w.write(body(f, SEAL_LIMIT)?)?;
    }
    Ok(n)
}

/// The first `max` bytes of `f`, or an error when the range is not in its file.
fn body(f: FileRange<'_>, max: usize) -> io::Result<&[u8]> {
    f.bytes(max)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}
