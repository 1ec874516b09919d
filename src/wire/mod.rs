//! Message formats only: zero-copy views over received bytes and emitters into
//! caller buffers. Nothing here does I/O, reads a clock or allocates per message;
//! `proto/` builds on these views and `io/` feeds them bytes.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dhcp;
pub mod dhcp6;
pub mod error;
pub mod http;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tftp;

pub use error::Error;

/// `v` in decimal ASCII, written into `digits` without the formatting machinery
/// (it runs per response and per OACK).
pub fn decimal(mut v: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &digits[at..];
        }
    }
}
