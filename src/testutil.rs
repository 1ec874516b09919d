//! Helpers for unit tests: a base instant for fake clocks.
#![allow(unreachable_pub, reason = "test-only helpers")]

use std::time::Instant;

/// Any base instant; tests add offsets to it and never sleep.
#[allow(
    clippy::disallowed_methods,
    reason = "the one clock read of the unit tests: a base that fake clocks offset"
)]
pub fn t0() -> Instant {
    Instant::now()
}
