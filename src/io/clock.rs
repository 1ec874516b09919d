//! The backends' only clock reads: a monotonic `now` per loop turn, and the wall
//! time as the HTTP `Date` value, reformatted once per second.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The monotonic time, read once per loop turn and handed to every engine.
#[allow(
    clippy::disallowed_methods,
    reason = "the backends' one monotonic clock read"
)]
pub fn now() -> Instant {
    Instant::now()
}

/// The wall clock in unix seconds: DHCP leases outlive the process, so they are
/// kept in wall time.
#[allow(
    clippy::disallowed_methods,
    reason = "the backends' one wall-clock read for leases"
)]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The wall clock in unix milliseconds (the fleet view's times).
#[allow(
    clippy::disallowed_methods,
    reason = "the fleet view's one wall-clock read, paired with a monotonic one"
)]
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits `d`: only the CLI's `--watch` loops do (nothing in the server sleeps).
#[allow(
    clippy::disallowed_methods,
    reason = "a command-line watch loop between refreshes, never a worker"
)]
pub fn pause(d: std::time::Duration) {
    std::thread::sleep(d);
}

/// The current `Date` header value, cached for the second it names.
#[derive(Debug)]
pub struct DateCache {
    secs: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = Self {
            secs: u64::MAX,
            text: String::new(),
        };
        d.refresh();
        d
    }
}

impl DateCache {
    /// Re-reads the wall clock; reformats only when the second changed.
    #[allow(
        clippy::disallowed_methods,
        reason = "the backends' one wall-clock read"
    )]
    pub fn refresh(&mut self) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
    }

    /// The IMF-fixdate of the last refresh.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The unix seconds of the last refresh.
    pub fn secs(&self) -> u64 {
        self.secs
    }
}
