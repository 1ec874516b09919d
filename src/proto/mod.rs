//! Protocol engines, sans-IO: each takes bytes (or a timer) and `now`, and returns
//! what to send and when to wake it. Backends in `io/` (and the simulator) drive
//! them; nothing here owns a socket or reads a clock.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod boot;
pub mod dhcp;
pub mod dhcp6;
pub mod http;
pub mod tftp;
pub(crate) mod timers;
