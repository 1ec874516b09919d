//! Message formats only: zero-copy views over received bytes and emitters into
//! caller buffers. Nothing here does I/O, reads a clock or allocates per message;
//! `proto/` builds on these views and `io/` feeds them bytes.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod http;
pub mod tftp;

pub use error::Error;
