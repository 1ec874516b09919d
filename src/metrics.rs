//! Prometheus metrics. Each HTTP and TFTP worker counts into its own block
//! (a cache line or more of atomics that only it writes, with relaxed
//! stores): no lock and no counter shared between workers on the hot path.
//! A scrape reads every block and renders the text format; DHCP's figures
//! come from its worker through its mailbox, the rest from the control.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::proto::http::Served;
use crate::proto::tftp::endpoint::Ended;

/// Upper bounds (seconds) of the HTTP time-to-first-byte histogram.
const TTFB_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];
/// TFTP transfer results, as `Ended::result` names them.
const TFTP_RESULTS: [&str; 5] = ["done", "size_probe", "timeout", "client_error", "evicted"];

/// One HTTP worker's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Http {
    /// Responses by status class (1xx to 5xx).
    responses: [AtomicU64; 5],
    /// Body bytes written.
    bytes: AtomicU64,
    /// Connections open.
    open: AtomicI64,
    /// Idle or half-read connections dropped to take a new one at the limit.
    evicted: AtomicU64,
    /// Connections refused with 503 at the limit (every one was busy).
    refused: AtomicU64,
    /// Time to first byte: counts per bucket (the last is +Inf), and the sum
    /// in microseconds.
    ttfb: [AtomicU64; TTFB_BUCKETS.len() + 1],
    ttfb_sum_us: AtomicU64,
}

/// Adds `n` to a counter only this worker writes (a load and a store: no
/// locked instruction on the hot path).
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Http {
    /// A response ended.
    pub fn served(&self, s: &Served) {
        let class = usize::from(s.status / 100).clamp(1, 5) - 1;
        bump(&self.responses[class], 1);
        bump(&self.bytes, s.bytes);
        if let Some(t) = s.first_byte {
            let secs = t.as_secs_f64();
            let at = TTFB_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(TTFB_BUCKETS.len());
            bump(&self.ttfb[at], 1);
            bump(&self.ttfb_sum_us, t.as_micros() as u64);
        }
    }

    /// An idle connection was dropped to take a new one.
    pub fn evicted(&self) {
        bump(&self.evicted, 1);
    }

    /// A connection was refused at the limit.
    pub fn refused(&self) {
        bump(&self.refused, 1);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.open.store(self.open.load(Relaxed) + delta, Relaxed);
    }
}

/// One TFTP worker's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Tftp {
    /// Transfers ended, by [`TFTP_RESULTS`].
    ended: [AtomicU64; TFTP_RESULTS.len()],
    /// Requests refused.
    refused: AtomicU64,
    /// Bytes delivered.
    bytes: AtomicU64,
    /// Windows sent again.
    resent: AtomicU64,
    /// Transfers open.
    open: AtomicI64,
}

impl Tftp {
    /// A transfer ended.
    pub fn ended(&self, e: &Ended) {
        if let Some(i) = TFTP_RESULTS.iter().position(|r| *r == e.result) {
            bump(&self.ended[i], 1);
        }
        bump(&self.bytes, e.bytes);
        bump(&self.resent, u64::from(e.resent));
        self.open.store(self.open.load(Relaxed) - 1, Relaxed);
    }

    /// A transfer started.
    pub fn started(&self) {
        self.open.store(self.open.load(Relaxed) + 1, Relaxed);
    }

    /// A request was refused.
    pub fn refused(&self) {
        bump(&self.refused, 1);
    }
}

/// Every worker's counters.
#[derive(Debug)]
pub struct Metrics {
    http: Box<[Http]>,
    tftp: Box<[Tftp]>,
    fleet: crate::fleet::Sink,
}

impl Metrics {
    /// Blocks for `http` and `tftp` workers.
    pub fn new(http: usize, tftp: usize) -> Self {
        Self {
            http: (0..http).map(|_| Http::default()).collect(),
            tftp: (0..tftp).map(|_| Tftp::default()).collect(),
            fleet: crate::fleet::Sink::off(),
        }
    }

    /// With the workers' events going to the fleet view through `sink`.
    pub fn with_fleet(mut self, sink: crate::fleet::Sink) -> Self {
        self.fleet = sink;
        self
    }

    /// Where the workers send what the fleet view joins.
    pub fn fleet(&self) -> &crate::fleet::Sink {
        &self.fleet
    }

    /// HTTP worker `id`'s block (a spare one past the count, never read).
    pub fn http(&self, id: usize) -> &Http {
        static SPARE: std::sync::OnceLock<Http> = std::sync::OnceLock::new();
        self.http
            .get(id)
            .unwrap_or_else(|| SPARE.get_or_init(Http::default))
    }

    /// TFTP worker `id`'s block.
    pub fn tftp(&self, id: usize) -> &Tftp {
        static SPARE: std::sync::OnceLock<Tftp> = std::sync::OnceLock::new();
        self.tftp
            .get(id)
            .unwrap_or_else(|| SPARE.get_or_init(Tftp::default))
    }

    /// The HTTP and TFTP workers' figures in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "rackboot_http_responses_total",
            "counter",
            "HTTP responses by status class.",
        );
        for (w, h) in self.http.iter().enumerate() {
            for (i, c) in h.responses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rackboot_http_responses_total{{worker=\"{w}\",class=\"{}xx\"}} {}",
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        per_worker(
            out,
            "rackboot_http_body_bytes_total",
            "counter",
            "HTTP body bytes written.",
            &self.http,
            |h| h.bytes.load(Relaxed) as i64,
        );
        per_worker(
            out,
            "rackboot_http_connections",
            "gauge",
            "HTTP connections open.",
            &self.http,
            |h| h.open.load(Relaxed),
        );
        per_worker(
            out,
            "rackboot_http_connections_evicted_total",
            "counter",
            "Idle or half-read HTTP connections dropped at http.max_connections to take a new one.",
            &self.http,
            |h| h.evicted.load(Relaxed) as i64,
        );
        per_worker(
            out,
            "rackboot_http_connections_refused_total",
            "counter",
            "HTTP connections refused with 503 at http.max_connections (every one had a response in flight).",
            &self.http,
            |h| h.refused.load(Relaxed) as i64,
        );
        family(
            out,
            "rackboot_http_first_byte_seconds",
            "histogram",
            "HTTP time from the request head to the first byte written.",
        );
        for (w, h) in self.http.iter().enumerate() {
            let mut total = 0;
            for (i, c) in h.ttfb.iter().enumerate() {
                total += c.load(Relaxed);
                let le = TTFB_BUCKETS
                    .get(i)
                    .map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "rackboot_http_first_byte_seconds_bucket{{worker=\"{w}\",le=\"{le}\"}} {total}"
                );
            }
            let sum = h.ttfb_sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "rackboot_http_first_byte_seconds_sum{{worker=\"{w}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "rackboot_http_first_byte_seconds_count{{worker=\"{w}\"}} {total}"
            );
        }
        family(
            out,
            "rackboot_tftp_transfers_total",
            "counter",
            "TFTP transfers ended, by result.",
        );
        for (w, t) in self.tftp.iter().enumerate() {
            for (r, c) in TFTP_RESULTS.iter().zip(&t.ended) {
                let _ = writeln!(
                    out,
                    "rackboot_tftp_transfers_total{{worker=\"{w}\",result=\"{r}\"}} {}",
                    c.load(Relaxed)
                );
            }
        }
        per_worker(
            out,
            "rackboot_tftp_refused_total",
            "counter",
            "TFTP requests refused.",
            &self.tftp,
            |t| t.refused.load(Relaxed) as i64,
        );
        per_worker(
            out,
            "rackboot_tftp_bytes_total",
            "counter",
            "TFTP bytes delivered.",
            &self.tftp,
            |t| t.bytes.load(Relaxed) as i64,
        );
        per_worker(
            out,
            "rackboot_tftp_windows_resent_total",
            "counter",
            "TFTP windows sent again.",
            &self.tftp,
            |t| t.resent.load(Relaxed) as i64,
        );
        per_worker(
            out,
            "rackboot_tftp_transfers",
            "gauge",
            "TFTP transfers open.",
            &self.tftp,
            |t| t.open.load(Relaxed),
        );
    }
}

/// An empty histogram of microseconds, three significant digits, growing as
/// values need.
#[allow(
    clippy::expect_used,
    reason = "3 significant digits is within hdrhistogram's accepted 0..=5"
)]
pub fn micros_histogram() -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::new(3).expect("3 significant digits are accepted");
    h.auto(true);
    h
}

/// `h` (microseconds) as a Prometheus histogram in seconds: cumulative
/// counts at each of `bounds` (seconds), `+Inf`, the sum and the count.
pub fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &hdrhistogram::Histogram<u64>,
    bounds: &[f64],
) {
    family(out, name, "histogram", help);
    for b in bounds {
        let micros = (b * 1e6) as u64;
        let n = if h.is_empty() {
            0
        } else {
            h.count_between(0, micros)
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let _ = writeln!(out, "{name}_sum {}", h.mean() * h.len() as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.len());
}

/// A family's HELP and TYPE lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample without labels.
pub fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn per_worker<T>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    blocks: &[T],
    value: impl Fn(&T) -> i64,
) {
    family(out, name, kind, help);
    for (w, b) in blocks.iter().enumerate() {
        let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", value(b));
    }
}
