//! Integration tests: a real `rackboot` process on loopback, real clients (curl),
#![allow(
    clippy::disallowed_methods,
    reason = "tests wait on real processes with deadlines"
)]
//! real sockets. One binary with one module per area, as ripgrep's tests are.
//! A missing tool fails the test and says what to install; nothing is skipped.

mod backends;
mod bad_input;
mod check;
mod concurrency;
mod dhcp;
mod dhcp6;
mod dnsmasq;
mod firmware;
mod fleet;
mod flood;
mod fuzz_replay;
mod https;
mod import;
mod journal;
mod loopback;
mod machines;
mod media;
mod metrics;
mod netns;
mod ns;
mod package;
mod postgres;
mod profiles;
mod reload;
mod storm;
mod support;
mod tftp;
