//! One HTTP/1.1 connection as a state machine: buffers request bytes, answers one
//! request at a time (pipelined ones wait in order), names the file bytes to send
//! and keeps the connection's deadlines. See the module doc for the call order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::response::{self, Plan};
use super::{Context, Error, Settings};
use crate::store::BootFile;
use crate::wire::http::{self as wire_http, Method, Parse, Version};

/// Bytes to write next: `bytes` from memory, then `file` bytes (either may be empty).
/// The backend writes what it can and reports the count with [`Connection::sent`].
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    /// The rest of the response head (and an error's text body).
    pub bytes: &'a [u8],
    /// The rest of the file body.
    pub file: Option<FileRange<'a>>,
}

/// A byte range of a boot file: the engine names it, `io/` gathers it.
#[derive(Debug, Clone, Copy)]
pub struct FileRange<'a> {
    /// The file (the backend may hold it for as long as the kernel reads it).
    pub file: &'a Arc<BootFile>,
    /// First byte offset.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl<'a> FileRange<'a> {
    /// The range's first `max` bytes or fewer, from the file's mapping;
    /// `None` when the range is not inside the file.
    pub fn bytes(&self, max: usize) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let len = usize::try_from(self.len).unwrap_or(usize::MAX).min(max);
        self.file.bytes().get(start..start.checked_add(len)?)
    }
}

/// Something the backend must act on or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A response ended (written whole, or cut short): what metrics count.
    Served(Served),
    /// A response was fully written: its access log record (when kept).
    Access(Access),
    /// A response with a body of [`crate::fleet::LONG_BODY`] or more began
    /// (when records are kept): its request target.
    Begun(Box<str>),
    /// Shut down the write side: the last response is out, the client reads to EOF.
    HalfClose,
    /// Close the socket and drop the connection.
    Close,
}

/// What every response's end tells the metrics, whatever the access log does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Status code.
    pub status: u16,
    /// Body bytes written.
    pub bytes: u64,
    /// From the request head to the first byte written (`None`: none was).
    pub first_byte: Option<Duration>,
    /// From the request head to the last byte, or to the cut.
    pub duration: Duration,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Request method.
    pub method: Method,
    /// Request target as sent.
    pub target: Box<str>,
    /// Request version.
    pub version: Version,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the parsed head to the last byte written.
    pub duration: Duration,
    /// `User-Agent`, if sent.
    pub user_agent: Option<Box<str>>,
    /// Why the request failed, for error statuses.
    pub error: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first byte of a request.
    Idle {
        idle_at: Instant,
    },
    /// Part of a request head has arrived.
    Reading {
        head_at: Instant,
    },
    /// A response is being written.
    Sending {
        stall_at: Instant,
        close: bool,
    },
    /// The write side is shut; input is drained until EOF or `until`.
    Lingering {
        until: Instant,
    },
    Closed,
}

/// The sans-IO engine of one HTTP connection. Owns no socket and no clock.
#[derive(Debug)]
pub struct Connection {
    settings: Settings,
    state: State,
    rx: Box<[u8]>,
    rx_len: usize,
    peer_eof: bool,
    out: Vec<u8>,
    out_sent: usize,
    body: Option<(Arc<BootFile>, u64, u64)>,
    /// Bytes of this response written so far, and how many of them are head.
    written: u64,
    head_len: u64,
    access: Option<(Access, Instant)>,
    /// The response in flight: status, when it started, when its first byte
    /// went out.
    response: Option<(u16, Instant, Option<Instant>)>,
    path: String,
    events: VecDeque<Event>,
}

impl Connection {
    /// A connection accepted at `now`.
    pub fn new(now: Instant, settings: Settings) -> Self {
        Self {
            state: State::Idle {
                idle_at: now + settings.idle_timeout,
            },
            rx: vec![0; settings.limits.max_head.max(1)].into_boxed_slice(),
            rx_len: 0,
            peer_eof: false,
            out: Vec::with_capacity(512),
            out_sent: 0,
            body: None,
            written: 0,
            head_len: 0,
            access: None,
            response: None,
            path: String::with_capacity(128),
            events: VecDeque::with_capacity(4),
            settings,
        }
    }

    /// Where the backend reads the next bytes into; empty when the engine cannot
    /// take more now (a full buffer behind a response in flight, or closed).
    pub fn recv_buf(&mut self) -> &mut [u8] {
        match self.state {
            State::Closed => &mut [],
            State::Lingering { .. } => &mut self.rx[..],
            _ => &mut self.rx[self.rx_len..],
        }
    }

    /// Whether the backend should read from the socket. Never after EOF:
    /// nothing more can come, and a socket at EOF is always readable, so a
    /// backend that read on would spin (it did, when wrk closed 1,000
    /// connections in the middle of their bodies: bench/backends).
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Closed => false,
            _ if self.peer_eof => false,
            State::Lingering { .. } => true,
            _ => self.rx_len < self.rx.len(),
        }
    }

    /// `n` bytes were read into [`Self::recv_buf`]; `n == 0` is not EOF (use `handle_eof`).
    pub fn handle_recv(&mut self, now: Instant, n: usize) {
        match self.state {
            State::Closed | State::Lingering { .. } => {}
            _ => {
                self.rx_len = (self.rx_len + n).min(self.rx.len());
                if let (State::Idle { .. }, true) = (self.state, self.rx_len > 0) {
                    self.state = State::Reading {
                        head_at: now + self.settings.head_timeout,
                    };
                }
            }
        }
    }

    /// The peer closed its write side.
    pub fn handle_eof(&mut self, now: Instant) {
        self.peer_eof = true;
        match self.state {
            State::Idle { .. } | State::Lingering { .. } => self.close(now, None),
            // Buffered requests are still answered; see `next_request`.
            State::Reading { .. } | State::Sending { .. } | State::Closed => {}
        }
    }

    /// Fires the deadline if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| at <= now) {
            tracing::debug!(state = ?self.state, "connection timed out");
            self.close(now, Some("timeout"));
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle { idle_at } => Some(idle_at),
            State::Reading { head_at } => Some(head_at),
            State::Sending { stall_at, .. } => Some(stall_at),
            State::Lingering { until } => Some(until),
            State::Closed => None,
        }
    }

    /// The next bytes to write, answering the next buffered request if none is in flight.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, ctx: &Context<'_>) -> Option<Transmit<'_>> {
        if let State::Idle { .. } | State::Reading { .. } = self.state {
            self.next_request(now, ctx);
        }
        let State::Sending { .. } = self.state else {
            return None;
        };
        let file = self.body.as_ref().map(|(file, offset, len)| FileRange {
            file,
            offset: *offset,
            len: *len,
        });
        Some(Transmit {
            bytes: &self.out[self.out_sent..],
            file,
        })
    }

    /// `n` bytes of the last [`Transmit`] were written (memory bytes first).
    pub fn sent(&mut self, now: Instant, n: usize) {
        let State::Sending { close, .. } = self.state else {
            return;
        };
        self.written += n as u64;
        if let Some((_, _, first @ None)) = &mut self.response {
            if n > 0 {
                *first = Some(now);
            }
        }
        let from_out = n.min(self.out.len() - self.out_sent);
        self.out_sent += from_out;
        let mut rest = (n - from_out) as u64;
        if let Some((_, offset, len)) = &mut self.body {
            let step = rest.min(*len);
            *offset += step;
            *len -= step;
            rest -= step;
        }
        debug_assert_eq!(rest, 0, "backend reported more bytes than it was given");
        self.state = State::Sending {
            stall_at: now + self.settings.send_timeout,
            close,
        };
        if self.out_sent == self.out.len() && self.body.as_ref().is_none_or(|b| b.2 == 0) {
            self.finish_response(now, close);
        }
    }

    /// The next event for the backend.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the connection is closed (after [`Event::Close`]).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn next_request(&mut self, now: Instant, ctx: &Context<'_>) {
        let Self {
            rx,
            rx_len,
            settings,
            path,
            out,
            ..
        } = self;
        let (plan, access, consumed) = match wire_http::parse(&rx[..*rx_len], &settings.limits) {
            Ok(Parse::Complete { request, head_len }) => {
                let plan = response::respond(&request, ctx, path, out);
                let access = settings.access_log.then(|| Access {
                    method: request.method,
                    target: request.target.into(),
                    version: request.version,
                    status: plan.status,
                    bytes: 0,
                    duration: Duration::ZERO,
                    user_agent: request
                        .user_agent
                        .map(|ua| String::from_utf8_lossy(ua).into()),
                    error: plan.error.map(|e| e.kind()),
                });
                (plan, access, head_len)
            }
            Ok(Parse::Partial) => {
                if self.peer_eof {
                    self.close(now, None);
                }
                return;
            }
            Err(e) => {
                let plan = response::error(out, ctx, Error::Wire(e), Version::Http11, true, false);
                let access = settings.access_log.then(|| Access {
                    method: Method::Other,
                    target: "-".into(),
                    version: Version::Http11,
                    status: plan.status,
                    bytes: 0,
                    duration: Duration::ZERO,
                    user_agent: None,
                    error: Some(Error::Wire(e).kind()),
                });
                tracing::debug!(error = %e, "bad request head");
                (plan, access, self.rx_len)
            }
        };
        self.rx.copy_within(consumed..self.rx_len, 0);
        self.rx_len -= consumed;
        self.start_response(now, plan, access);
    }

    fn start_response(&mut self, now: Instant, plan: Plan, access: Option<Access>) {
        if let (Some(a), Some((_, _, len))) = (&access, &plan.body) {
            if *len >= crate::fleet::LONG_BODY {
                self.events.push_back(Event::Begun(a.target.clone()));
            }
        }
        self.out_sent = 0;
        self.body = plan.body;
        self.written = 0;
        self.head_len = self.out.len() as u64 - plan.inline_body;
        self.access = access.map(|a| (a, now));
        self.response = Some((plan.status, now, None));
        self.state = State::Sending {
            stall_at: now + self.settings.send_timeout,
            close: plan.close,
        };
    }

    fn finish_response(&mut self, now: Instant, close: bool) {
        self.log_access(now, None);
        self.body = None;
        if close || (self.peer_eof && self.rx_len == 0) {
            self.rx_len = 0;
            self.state = State::Lingering {
                until: now + self.settings.linger,
            };
            self.events.push_back(Event::HalfClose);
            if self.peer_eof {
                self.close(now, None);
            }
        } else if self.rx_len > 0 {
            self.state = State::Reading {
                head_at: now + self.settings.head_timeout,
            };
        } else {
            self.state = State::Idle {
                idle_at: now + self.settings.idle_timeout,
            };
        }
    }

    /// Emits the access record of the response in flight, if one is kept.
    fn log_access(&mut self, now: Instant, abort: Option<&'static str>) {
        if let Some((status, started, first)) = self.response.take() {
            self.events.push_back(Event::Served(Served {
                status,
                bytes: self.written.saturating_sub(self.head_len),
                first_byte: first.map(|f| f.saturating_duration_since(started)),
                duration: now.saturating_duration_since(started),
            }));
        }
        if let Some((mut access, started)) = self.access.take() {
            access.bytes = self.written.saturating_sub(self.head_len);
            access.duration = now.saturating_duration_since(started);
            access.error = access.error.or(abort);
            self.events.push_back(Event::Access(access));
        }
    }

    /// When this connection, idle or with half a request head, would time
    /// out; `None` while a response is in flight (or after). A full worker
    /// drops the connection with the earliest such deadline to take a new
    /// one, so idle and slowloris connections cannot lock clients out.
    #[must_use]
    pub fn evictable(&self) -> Option<Instant> {
        match self.state {
            State::Idle { idle_at } => Some(idle_at),
            State::Reading { head_at } => Some(head_at),
            _ => None,
        }
    }

    /// Of `conns` (index, connection), the one to evict first: the
    /// evictable one nearest its deadline.
    pub fn first_to_evict<'a>(conns: impl Iterator<Item = (usize, &'a Self)>) -> Option<usize> {
        conns
            .filter_map(|(i, c)| Some((c.evictable()?, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// The socket failed (reset, broken pipe): the connection ends now.
    pub fn abort(&mut self, now: Instant) {
        self.close(now, Some("aborted"));
    }

    fn close(&mut self, now: Instant, why: Option<&'static str>) {
        if self.state != State::Closed {
            if let State::Sending { .. } = self.state {
                // An unfinished response is logged too: the operator sees who stalled.
                self.log_access(now, why.or(Some("aborted")));
            }
            self.state = State::Closed;
            self.body = None;
            self.events.push_back(Event::Close);
        }
    }
}
