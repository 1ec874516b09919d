//! Engine tests: byte fixtures in, bytes and file ranges out, on a fake clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::store::{Options, Snapshot};
use crate::testutil;

const SEC: Duration = Duration::from_secs(1);
const DATE: &str = "Wed, 25 Nov 2026 04:11:00 GMT";
/// Last-Modified of every fixture file.
const MTIME: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

fn snapshot() -> Snapshot {
    let mtime = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let kernel: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let files = [
        ("/boot.ipxe", &b"#!ipxe\nchain kernel\n"[..]),
        ("/linux", &kernel[..]),
        ("/empty", &b""[..]),
    ];
    Snapshot::from_memory(
        files.map(|(u, b)| (u, b, mtime)),
        &Options {
            max_bytes: u64::MAX,
            mlock: false,
        },
    )
    .unwrap()
}

/// A connection and its world, with the backend's loop written out.
struct Harness {
    snapshot: Snapshot,
    conn: Connection,
    now: std::time::Instant,
}

/// What the backend would have written and recorded.
#[derive(Debug, Default)]
struct Wrote {
    text: String,
    file: Vec<(u64, u64)>,
    events: Vec<Event>,
}

impl Harness {
    fn new() -> Self {
        Self::with(Settings::default())
    }

    fn with(settings: Settings) -> Self {
        let now = testutil::t0();
        Self {
            snapshot: snapshot(),
            conn: Connection::new(now, settings),
            now,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> usize {
        let buf = self.conn.recv_buf();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.conn.handle_recv(self.now, n);
        n
    }

    fn ctx(snapshot: &Snapshot) -> Context<'_> {
        Context {
            snapshot,
            date: DATE,
            boot: None,
            peer: None,
            unix_secs: 0,
            tls: false,
            port: 80,
        }
    }

    /// Writes everything the engine offers, at most `limit` bytes per call.
    fn drain(&mut self, limit: usize) -> Wrote {
        let mut w = Wrote::default();
        let ctx = Self::ctx(&self.snapshot);
        while let Some(t) = self.conn.poll_transmit(self.now, &ctx) {
            let n = if !t.bytes.is_empty() {
                let n = t.bytes.len().min(limit);
                w.text.push_str(std::str::from_utf8(&t.bytes[..n]).unwrap());
                n
            } else {
                let f = t.file.unwrap();
                let n = f.len.min(limit as u64);
                w.file.push((f.offset, n));
                n as usize
            };
            self.conn.sent(self.now, n);
        }
        while let Some(e) = self.conn.poll_event() {
            w.events.push(e);
        }
        w
    }

    fn request(&mut self, bytes: &[u8]) -> Wrote {
        assert_eq!(self.feed(bytes), bytes.len());
        self.drain(usize::MAX)
    }
}

fn status(w: &Wrote) -> u16 {
    w.text[9..12].parse().unwrap()
}

fn header<'a>(w: &'a Wrote, name: &str) -> Option<&'a str> {
    let head = w.text.split("\r\n\r\n").next().unwrap();
    head.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn get_sends_the_head_then_names_the_whole_file() {
    let mut h = Harness::new();
    let w = h.request(b"GET /linux HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&w), 200);
    assert_eq!(header(&w, "Content-Length"), Some("1000"));
    assert_eq!(header(&w, "Content-Type"), Some("application/octet-stream"));
    assert_eq!(header(&w, "Accept-Ranges"), Some("bytes"));
    assert_eq!(header(&w, "Last-Modified"), Some(MTIME));
    assert_eq!(header(&w, "Date"), Some(DATE));
    assert_eq!(header(&w, "Connection"), None);
    assert!(header(&w, "ETag").unwrap().starts_with('"'));
    assert_eq!(w.file, [(0, 1000)]);
    // What the metrics count comes first, then the access record.
    let Event::Served(s) = &w.events[0] else {
        panic!("{:?}", w.events)
    };
    assert_eq!((s.status, s.bytes), (200, 1000));
    let Event::Access(a) = &w.events[1] else {
        panic!("{:?}", w.events)
    };
    assert_eq!((a.status, a.bytes, &*a.target), (200, 1000, "/linux"));
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Settings::default().idle_timeout)
    );
}

#[test]
fn partial_writes_resume_where_they_stopped() {
    let mut h = Harness::new();
    h.feed(b"GET /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    let w = h.drain(300);
    assert_eq!(w.file, [(0, 300), (300, 300), (600, 300), (900, 100)]);
    assert!(w.text.ends_with("\r\n\r\n"));
}

#[test]
fn head_sends_headers_and_no_body() {
    let mut h = Harness::new();
    let w = h.request(b"HEAD /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status(&w), 200);
    assert_eq!(header(&w, "Content-Length"), Some("20"));
    assert_eq!(
        header(&w, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(w.file.is_empty() && w.text.ends_with("\r\n\r\n"));
}

#[test]
fn a_range_gets_206_with_content_range() {
    let mut h = Harness::new();
    let w = h.request(b"GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=100-199\r\n\r\n");
    assert_eq!(status(&w), 206);
    assert_eq!(header(&w, "Content-Range"), Some("bytes 100-199/1000"));
    assert_eq!(header(&w, "Content-Length"), Some("100"));
    assert_eq!(w.file, [(100, 100)]);
    let w = h.request(b"GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=-10\r\n\r\n");
    assert_eq!(header(&w, "Content-Range"), Some("bytes 990-999/1000"));
}

#[test]
fn a_range_past_the_end_gets_416_with_the_length() {
    let mut h = Harness::new();
    let w = h.request(b"GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-\r\n\r\n");
    assert_eq!(status(&w), 416);
    assert_eq!(header(&w, "Content-Range"), Some("bytes */1000"));
    assert!(w.file.is_empty());
    // The connection stays usable.
    assert_eq!(
        status(&h.request(b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n")),
        200
    );
}

#[test]
fn if_range_with_a_stale_validator_sends_the_whole_file() {
    let mut h = Harness::new();
    let etag = header(
        &h.request(b"HEAD /linux HTTP/1.1\r\nHost: t\r\n\r\n"),
        "ETag",
    )
    .unwrap()
    .to_owned();
    let right =
        format!("GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: {etag}\r\n\r\n");
    assert_eq!(status(&h.request(right.as_bytes())), 206);
    let wrong =
        b"GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: \"other\"\r\n\r\n";
    let w = h.request(wrong);
    assert_eq!((status(&w), &w.file[..]), (200, &[(0, 1000)][..]));
    let date =
        format!("GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: {MTIME}\r\n\r\n");
    assert_eq!(status(&h.request(date.as_bytes())), 206);
    let old = b"GET /linux HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";
    assert_eq!(status(&h.request(old)), 200);
}

#[test]
fn validators_that_match_get_304_without_a_body() {
    let mut h = Harness::new();
    let etag = header(
        &h.request(b"HEAD /linux HTTP/1.1\r\nHost: t\r\n\r\n"),
        "ETag",
    )
    .unwrap()
    .to_owned();
    for req in [
        format!("GET /linux HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
        format!("GET /linux HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\", W/{etag}\r\n\r\n"),
        "GET /linux HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n".to_owned(),
        format!("GET /linux HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {MTIME}\r\n\r\n"),
    ] {
        let w = h.request(req.as_bytes());
        assert_eq!(status(&w), 304, "{req}");
        assert!(w.file.is_empty() && header(&w, "Content-Length").is_none());
    }
    let stale = b"GET /linux HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";
    assert_eq!(status(&h.request(stale)), 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let both = format!(
        "GET /linux HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\nIf-Modified-Since: {MTIME}\r\n\r\n"
    );
    assert_eq!(status(&h.request(both.as_bytes())), 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new();
    h.feed(
        b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nHEAD /linux HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let w = h.drain(usize::MAX);
    let statuses: Vec<u16> = w
        .events
        .iter()
        .filter_map(|e| {
            if let Event::Access(a) = e {
                Some(a.status)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(statuses, [200, 404, 200]);
    assert_eq!(w.text.matches("HTTP/1.1 ").count(), 3);
}

#[test]
fn a_request_split_across_reads_is_assembled() {
    let mut h = Harness::new();
    h.feed(b"GET /boot");
    assert!(h.drain(usize::MAX).text.is_empty());
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Settings::default().head_timeout)
    );
    assert_eq!(
        status(&h.request(b".ipxe HTTP/1.1\r\nHost: t\r\n\r\n")),
        200
    );
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let mut h = Harness::new();
    let w = h.request(b"GET /boot.ipxe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(header(&w, "Connection"), Some("keep-alive"));
    assert!(!w.events.contains(&Event::HalfClose));
    let w = h.request(b"GET /boot.ipxe HTTP/1.0\r\n\r\n");
    assert_eq!(header(&w, "Connection"), Some("close"));
    assert!(w.events.contains(&Event::HalfClose));
    h.conn.handle_eof(h.now);
    assert_eq!(h.conn.poll_event(), Some(Event::Close));
}

#[test]
fn connection_close_half_closes_then_lingers_until_eof_or_deadline() {
    let mut h = Harness::new();
    let w = h.request(
        b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /linux HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(
        w.text.matches("HTTP/1.1 ").count(),
        1,
        "nothing after close is answered"
    );
    assert_eq!(w.events.last(), Some(&Event::HalfClose));
    assert!(h.conn.wants_read(), "input is drained while lingering");
    let linger = h.conn.poll_timeout().unwrap();
    h.conn.handle_timeout(linger);
    assert_eq!(h.conn.poll_event(), Some(Event::Close));
    assert!(h.conn.is_closed());
}

#[test]
fn other_methods_get_405_with_allow() {
    let mut h = Harness::new();
    let w = h.request(b"DELETE /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status(&w), 405);
    assert_eq!(header(&w, "Allow"), Some("GET, HEAD"));
    assert_eq!(
        header(&w, "Connection"),
        None,
        "no body, so the connection stays"
    );
    let w = h.request(
        b"POST /linux HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /empty HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(status(&w), 405);
    assert_eq!(
        header(&w, "Connection"),
        Some("close"),
        "its body is never read as a request"
    );
    assert_eq!(w.text.matches("HTTP/1.1").count(), 1);
}

#[test]
fn a_body_on_get_gets_400_and_the_connection_closes() {
    let mut h = Harness::new();
    let w = h.request(b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(status(&w), 400);
    assert_eq!(w.events.last(), Some(&Event::HalfClose));
    let mut h = Harness::new();
    assert_eq!(
        status(&h.request(b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")),
        200
    );
}

#[test]
fn framing_errors_answer_and_close() {
    for (req, code) in [
        (
            &b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"GET /linux HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n",
            400,
        ),
        (b"\x00\x01garbage\r\n\r\n", 400),
    ] {
        let mut h = Harness::new();
        let w = h.request(req);
        assert_eq!(status(&w), code, "{}", String::from_utf8_lossy(req));
        assert_eq!(header(&w, "Connection"), Some("close"));
        assert_eq!(w.events.last(), Some(&Event::HalfClose));
    }
}

#[test]
fn an_oversized_head_gets_431_and_a_long_target_414() {
    let mut h = Harness::new();
    let mut req = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    while req.len() < 20_000 {
        req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    h.feed(&req); // takes what fits the buffer
    assert_eq!(status(&h.drain(usize::MAX)), 431);
    let mut h = Harness::new();
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    h.feed(long.as_bytes());
    assert_eq!(status(&h.drain(usize::MAX)), 414);
}

#[test]
fn traversal_attempts_never_reach_a_file() {
    let mut h = Harness::new();
    for t in [
        "/../linux",
        "/%2e%2e/linux",
        "/x%2f..%2flinux",
        "/..\\linux",
        "/linux%00",
        "http://h/../linux",
    ] {
        let w = h.request(format!("GET {t} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(status(&w), 400, "{t}");
        assert!(w.file.is_empty());
    }
    assert_eq!(
        status(&h.request(b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")),
        404
    );
    assert_eq!(
        status(&h.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")),
        404
    );
    assert_eq!(
        status(&h.request(b"GET /./linux HTTP/1.1\r\nHost: t\r\n\r\n")),
        200
    );
}

#[test]
fn an_idle_connection_closes_at_its_deadline() {
    let mut h = Harness::new();
    let idle = Settings::default().idle_timeout;
    h.conn.handle_timeout(h.now + idle - SEC);
    assert_eq!(h.conn.poll_event(), None);
    h.conn.handle_timeout(h.now + idle);
    assert_eq!(h.conn.poll_event(), Some(Event::Close));
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn a_stalled_response_is_abandoned_and_logged_as_aborted() {
    let mut h = Harness::new();
    h.feed(b"GET /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    let ctx = Harness::ctx(&h.snapshot);
    let head_len = h.conn.poll_transmit(h.now, &ctx).unwrap().bytes.len();
    h.conn.sent(h.now, head_len + 10);
    let stall = h.conn.poll_timeout().unwrap();
    assert_eq!(stall, h.now + Settings::default().send_timeout);
    h.conn.handle_timeout(stall);
    let Some(Event::Served(s)) = h.conn.poll_event() else {
        panic!()
    };
    assert_eq!(
        (s.status, s.bytes, s.duration),
        (200, 10, Settings::default().send_timeout)
    );
    let Some(Event::Access(a)) = h.conn.poll_event() else {
        panic!()
    };
    assert_eq!((a.bytes, a.error), (10, Some("timeout")));
    assert_eq!(h.conn.poll_event(), Some(Event::Close));
}

#[test]
fn progress_pushes_the_send_deadline_back() {
    let mut h = Harness::new();
    h.feed(b"GET /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    let ctx = Harness::ctx(&h.snapshot);
    let _ = h.conn.poll_transmit(h.now, &ctx);
    h.conn.sent(h.now + 30 * SEC, 10);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + 30 * SEC + Settings::default().send_timeout)
    );
}

#[test]
fn a_full_buffer_behind_a_response_stops_reading() {
    let settings = Settings {
        limits: crate::wire::http::Limits {
            max_head: 64,
            max_headers: 8,
            max_target: 32,
        },
        ..Settings::default()
    };
    let mut h = Harness::with(settings);
    h.feed(b"GET /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    let ctx = Harness::ctx(&h.snapshot);
    let _ = h.conn.poll_transmit(h.now, &ctx);
    h.feed(&[b'G'; 64]);
    assert!(!h.conn.wants_read() && h.conn.recv_buf().is_empty());
}

#[test]
fn regression_8_eof_while_sending_a_body_stops_asking_for_reads() {
    let mut h = Harness::new();
    h.feed(b"GET /linux HTTP/1.1\r\nHost: t\r\n\r\n");
    let ctx = Harness::ctx(&h.snapshot);
    let head = h.conn.poll_transmit(h.now, &ctx).unwrap().bytes.len();
    h.conn.sent(h.now, head);
    let body = h.conn.poll_transmit(h.now, &ctx).unwrap().file.unwrap();
    assert_eq!((body.offset, body.len), (0, 1000));
    h.conn.sent(h.now, 100); // the socket took part of the body
    assert!(h.conn.wants_read());
    // The client closed while its body is still going out: the response goes
    // on (or fails on a send), but a read can only say EOF again.
    h.conn.handle_eof(h.now);
    assert!(!h.conn.wants_read());
    let w = h.drain(usize::MAX);
    assert_eq!(w.file, [(100, 900)]);
    assert_eq!(w.events.last(), Some(&Event::Close));
}

#[test]
fn eof_after_a_pipelined_batch_answers_it_then_closes() {
    let mut h = Harness::new();
    h.feed(b"GET /boot.ipxe HTTP/1.1\r\nHost: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
    h.conn.handle_eof(h.now);
    let w = h.drain(usize::MAX);
    assert_eq!(w.text.matches("HTTP/1.1 200").count(), 2);
    assert_eq!(w.events.last(), Some(&Event::Close));
}

#[test]
fn unix_epoch_mtime_is_formatted_as_an_http_date() {
    let s = Snapshot::from_memory(
        [("/a", &b"x"[..], SystemTime::UNIX_EPOCH)],
        &Options {
            max_bytes: 10,
            mlock: false,
        },
    )
    .unwrap();
    assert_eq!(
        s.get("/a").unwrap().last_modified(),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
}

#[test]
fn an_http_1_1_request_without_host_gets_400_and_the_connection_closes() {
    let mut h = Harness::new();
    let w = h.request(b"GET /linux HTTP/1.1\r\n\r\n");
    assert_eq!(status(&w), 400);
    assert_eq!(header(&w, "Connection"), Some("close"));
    assert!(w.file.is_empty());
    // HTTP/1.0 names no host and is served.
    let mut h = Harness::new();
    assert_eq!(status(&h.request(b"GET /linux HTTP/1.0\r\n\r\n")), 200);
}
